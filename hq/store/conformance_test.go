package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-edge/veil/egress"
)

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// report returns a valid report of device d with the given boot and seq.
func report(d string, boot, seq uint64) egress.Report {
	start := t0.Add(time.Duration(seq) * time.Minute)
	return egress.Report{
		Device: d, Store: "s1", Camera: "cam1", Line: "door",
		Start: start, End: start.Add(time.Minute),
		In: 3, Out: 2, Boot: boot, Seq: seq,
	}
}

func open(t testing.TB, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func count(t testing.TB, s *SQLite) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM windows").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAddDedupe(t *testing.T) {
	a1, a2, b1 := report("a", 1, 1), report("a", 1, 2), report("b", 1, 1)
	a21 := report("a", 2, 1) // same seq, next boot: a different report
	huge, big := report("a", math.MaxUint64, math.MaxUint64), report("a", math.MaxInt64, math.MaxInt64)
	type batch struct {
		reports []egress.Report
		reopen  bool // close and reopen the file before this batch
		added   int
	}
	for _, tc := range []struct {
		name    string
		batches []batch
		rows    int
	}{
		{"distinct", []batch{{reports: []egress.Report{a1, a2, b1, a21}, added: 4}}, 4},
		{"same batch", []batch{{reports: []egress.Report{a1, a1, a2, a1}, added: 2}}, 2},
		{"across batches", []batch{
			{reports: []egress.Report{a1, a2}, added: 2},
			{reports: []egress.Report{a2, b1, a1}, added: 1},
			{reports: []egress.Report{b1}, added: 0},
		}, 3},
		{"across reopen", []batch{
			{reports: []egress.Report{a1, a2}, added: 2},
			{reports: []egress.Report{a1, a2, b1}, reopen: true, added: 1},
			{reports: []egress.Report{b1, a1}, reopen: true, added: 0},
		}, 3},
		{"boot and seq above MaxInt64", []batch{
			{reports: []egress.Report{huge, big, huge}, added: 2},
			{reports: []egress.Report{big, huge}, reopen: true, added: 0},
		}, 2},
		{"empty batch", []batch{{added: 0}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "hq.db")
			s, err := OpenSQLite(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			for i, b := range tc.batches {
				if b.reopen {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					if s, err = OpenSQLite(ctx, path); err != nil {
						t.Fatal(err)
					}
				}
				added, err := s.Add(ctx, b.reports...)
				if err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				if added != b.added {
					t.Errorf("batch %d: added %d, want %d", i, added, b.added)
				}
			}
			if n := count(t, s); n != tc.rows {
				t.Errorf("%d rows stored, want %d", n, tc.rows)
			}
		})
	}
}

func TestAddConflictingDuplicateKeepsFirst(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "hq.db"))
	first := report("a", 1, 1)
	second := first
	second.In, second.Out, second.Store, second.Line = 100, 200, "s2", "exit"
	for i, tc := range []struct {
		reports []egress.Report
		added   int
	}{
		{[]egress.Report{first}, 1},
		{[]egress.Report{second}, 0},
		{[]egress.Report{second, first}, 0},
	} {
		added, err := s.Add(ctx, tc.reports...)
		if err != nil {
			t.Fatal(err)
		}
		if added != tc.added {
			t.Errorf("batch %d: added %d, want %d", i, added, tc.added)
		}
	}
	got, err := s.Totals(ctx, Query{Bucket: Hour})
	if err != nil {
		t.Fatal(err)
	}
	want := []Total{{Store: "s1", Camera: "cam1", Line: "door", Start: t0, In: 3, Out: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("totals %+v, want %+v", got, want)
	}
}

func TestAddInvalidStoresNothing(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*egress.Report)
	}{
		{"device", func(r *egress.Report) { r.Device = "" }},
		{"store", func(r *egress.Report) { r.Store = "shop/1" }},
		{"camera", func(r *egress.Report) { r.Camera = strings.Repeat("c", 65) }},
		{"line", func(r *egress.Report) { r.Line = "" }},
		{"start", func(r *egress.Report) { r.Start = time.Time{} }},
		{"end", func(r *egress.Report) { r.End = r.Start }},
		{"in", func(r *egress.Report) { r.In = -1 }},
		{"out", func(r *egress.Report) { r.Out = -5 }},
		{"boot", func(r *egress.Report) { r.Boot = 0 }},
		{"seq", func(r *egress.Report) { r.Seq = 0 }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, filepath.Join(t.TempDir(), "hq.db"))
			bad := report("a", 1, 3)
			tc.mod(&bad)
			added, err := s.Add(ctx, report("a", 1, 1), report("a", 1, 2), bad, report("a", 1, 4))
			if err == nil {
				t.Fatal("Add accepted an invalid report")
			}
			if !errors.Is(err, egress.ErrInvalid) {
				t.Errorf("error %q does not wrap egress.ErrInvalid", err)
			}
			if want := "report " + tc.field + ":"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the field (%q)", err, want)
			}
			if added != 0 {
				t.Errorf("added %d, want 0", added)
			}
			if n := count(t, s); n != 0 {
				t.Errorf("%d rows stored from a refused batch, want 0", n)
			}
		})
	}
}

type key struct {
	store, camera, line string
	start               time.Time
}

func TestTotals(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "hq.db"))

	// Windows of 7 min 13.5 s over about three days, from 3 stores × 2
	// cameras × 2 lines, with counts that vary, so buckets hold varying
	// numbers of windows and windows cross bucket boundaries.
	base := time.Date(2026, 3, 13, 22, 17, 41, 500_000_000, time.UTC)
	const step = 7*time.Minute + 13500*time.Millisecond
	var all []egress.Report
	var seq uint64
	for _, st := range []string{"s1", "s2", "s3"} {
		for _, cam := range []string{"cam1", "cam2"} {
			dev := st + "-box"
			if cam == "cam2" {
				dev = st + "-box2"
			}
			for _, line := range []string{"door", "exit"} {
				for i := 0; i < 600; i++ {
					seq++
					start := base.Add(time.Duration(i) * step)
					all = append(all, egress.Report{
						Device: dev, Store: st, Camera: cam, Line: line,
						Start: start, End: start.Add(step),
						In: int(seq*7919) % 13, Out: int(seq*104729) % 11,
						Boot: 1, Seq: seq,
					})
				}
			}
		}
	}
	for i := 0; i < len(all); i += 500 {
		batch := all[i:min(i+500, len(all))]
		// Re-send the previous batch's tail too: duplicates must not count twice.
		if i > 0 {
			batch = append(append([]egress.Report(nil), all[i-50:i]...), batch...)
		}
		if _, err := s.Add(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}

	from := time.Date(2026, 3, 14, 10, 30, 0, 0, time.UTC)
	to := time.Date(2026, 3, 15, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		q    Query
	}{
		{"hour all", Query{Bucket: Hour}},
		{"day all", Query{Bucket: Day}},
		{"day store", Query{Store: "s2", Bucket: Day}},
		{"hour store camera", Query{Store: "s3", Camera: "cam2", Bucket: Hour}},
		{"hour camera", Query{Camera: "cam1", Bucket: Hour}},
		{"hour from to", Query{From: from, To: to, Bucket: Hour}},
		{"day from to store", Query{Store: "s1", From: from, To: to, Bucket: Day}},
		{"day from", Query{From: from, Bucket: Day}},
		{"hour to, sub-second bound", Query{To: all[5].Start.Add(time.Nanosecond), Bucket: Hour}},
		{"from exactly a window start", Query{Store: "s1", From: all[5].Start, To: all[8].Start, Bucket: Hour}},
		{"no match", Query{Store: "nowhere", Bucket: Day}},
		{"from in another zone", Query{From: from.In(time.FixedZone("X", 5*3600)), Bucket: Day}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Totals(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			want := expectTotals(all, tc.q)
			if len(want) == 0 && tc.q.Store != "nowhere" {
				t.Fatal("test selects nothing")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %d totals, want %d", len(got), len(want))
				for i := 0; i < max(len(got), len(want)); i++ {
					var g, w Total
					if i < len(got) {
						g = got[i]
					}
					if i < len(want) {
						w = want[i]
					}
					if g != w {
						t.Errorf("[%d] got %+v, want %+v", i, g, w)
					}
				}
			}
		})
	}
}

// expectTotals computes what Totals should return for q, in Go.
func expectTotals(all []egress.Report, q Query) []Total {
	size := time.Hour
	if q.Bucket == Day {
		size = 24 * time.Hour
	}
	sums := map[key]*Total{}
	for _, r := range all {
		if q.Store != "" && r.Store != q.Store || q.Camera != "" && r.Camera != q.Camera ||
			!q.From.IsZero() && r.Start.Before(q.From) || !q.To.IsZero() && !r.Start.Before(q.To) {
			continue
		}
		k := key{r.Store, r.Camera, r.Line, r.Start.UTC().Truncate(size)}
		if sums[k] == nil {
			sums[k] = &Total{Store: k.store, Camera: k.camera, Line: k.line, Start: k.start}
		}
		sums[k].In += int64(r.In)
		sums[k].Out += int64(r.Out)
	}
	var out []Total
	for _, t := range sums {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Store != b.Store {
			return a.Store < b.Store
		}
		if a.Camera != b.Camera {
			return a.Camera < b.Camera
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Start.Before(b.Start)
	})
	return out
}

func TestTotalsBadQuery(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "hq.db"))
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"no bucket", Query{}, "bucket"},
		{"week", Query{Bucket: "week"}, "bucket"},
		{"to before from", Query{Bucket: Hour, From: t0, To: t0.Add(-time.Hour)}, "not after"},
		{"to equals from", Query{Bucket: Day, From: t0, To: t0}, "not after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Totals(context.Background(), tc.q)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	// A path with characters that mean something in a URI.
	path := filepath.Join(t.TempDir(), "head office?#%20", "hq.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	reports := []egress.Report{report("a", 1, 1), report("a", 1, 2), report("b", 7, 1)}
	if _, err := s.Add(ctx, reports...); err != nil {
		t.Fatal(err)
	}
	before, err := s.Totals(ctx, Query{Bucket: Day})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !fileExists(path) {
		t.Fatalf("%s does not exist", path)
	}

	s = open(t, path)
	after, err := s.Totals(ctx, Query{Bucket: Day})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) || len(after) != 1 || after[0].In != 9 {
		t.Errorf("after reopen %+v, before %+v", after, before)
	}
	var mode string
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
	var timeout int
	if err := s.db.QueryRow("PRAGMA busy_timeout").Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout <= 0 {
		t.Errorf("busy_timeout %d, want > 0", timeout)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := OpenSQLite(ctx, ""); err == nil {
		t.Error("Open accepted an empty path")
	}
	if s, err := OpenSQLite(ctx, dir); err == nil {
		s.Close()
		t.Error("Open accepted a directory")
	}
	path := filepath.Join(dir, "hq.db")
	s := open(t, path)
	if _, err := s.db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := OpenSQLite(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open of a newer schema: error %v", err)
	}
}

func TestAddConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hq.db")
	// Two Stores on one file, as two processes would have, plus concurrent
	// calls on each: overlapping batches must all succeed and count once.
	stores := []*SQLite{open(t, path), open(t, path)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for b := 0; b < 10; b++ {
				var batch []egress.Report
				for i := 0; i < 50; i++ {
					// Goroutines g and g^1 send the same reports.
					batch = append(batch, report(fmt.Sprintf("d%d", g/2), 1, uint64(b*50+i+1)))
				}
				n, err := s.Add(ctx, batch...)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if want := 8 * 10 * 50; total != want || count(t, stores[0]) != want {
		t.Errorf("added %d, stored %d, want %d", total, count(t, stores[0]), want)
	}
}

func BenchmarkAdd(b *testing.B) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "hq.db"))
	const devices, batchSize = 1000, 100
	// One iteration is one round: every device sends one report, in batches
	// of 100.
	seq := uint64(0)
	reports := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq++
		for d := 0; d < devices; d += batchSize {
			batch := make([]egress.Report, 0, batchSize)
			for j := d; j < d+batchSize; j++ {
				r := report(fmt.Sprintf("box-%04d", j), 1, seq)
				r.Store = fmt.Sprintf("shop-%03d", j/4)
				batch = append(batch, r)
			}
			n, err := s.Add(ctx, batch...)
			if err != nil {
				b.Fatal(err)
			}
			reports += n
		}
	}
	b.ReportMetric(float64(reports)/b.Elapsed().Seconds(), "reports/s")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
