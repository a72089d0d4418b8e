package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/testkit/pgtest"
)

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// sig is a well-formed signature: the store does not verify signatures
// (head office's ingest does), it only notes which reports have none.
var sig = strings.Repeat("A", 86)

// report returns a valid signed report of device d with the given boot and
// seq.
func report(d string, boot, seq uint64) egress.Report {
	start := t0.Add(time.Duration(seq) * time.Minute)
	return egress.Report{
		Device: d, Store: "s1", Camera: "cam1", Line: "door",
		Start: start, End: start.Add(time.Minute),
		In: 3, Out: 2, Boot: boot, Seq: seq, Sig: sig,
	}
}

// unsigned is r without its signature.
func unsigned(r egress.Report) egress.Report {
	r.Sig = ""
	return r
}

// opener opens a Store on one database. Each call opens another Store on
// it, as another head-office process would; t.Cleanup closes it.
type opener func(t testing.TB) Store

// backends are the Store implementations the conformance suite runs
// against. newDB makes an empty database for t and returns its opener.
var backends = []struct {
	name  string
	newDB func(t testing.TB) opener
}{
	{"sqlite", func(t testing.TB) opener {
		path := filepath.Join(t.TempDir(), "hq.db")
		return func(t testing.TB) Store { return openSQLite(t, path) }
	}},
	{"postgres", func(t testing.TB) opener {
		dsn := pgtest.Start(t)
		return func(t testing.TB) Store { return openPostgres(t, dsn) }
	}},
}

// eachStore runs test once per implementation, as subtests sqlite and
// postgres.
func eachStore(t *testing.T, test func(t *testing.T, newDB func(t testing.TB) opener)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.newDB) })
	}
}

func openSQLite(t testing.TB, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t testing.TB, dsn string) *Postgres {
	t.Helper()
	s, err := OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// count returns the number of rows in s's windows table.
func count(t testing.TB, s Store) int {
	t.Helper()
	const q = "SELECT count(*) FROM windows"
	var n int
	var err error
	switch s := s.(type) {
	case *SQLite:
		err = s.db.QueryRow(q).Scan(&n)
	case *Postgres:
		err = s.pool.QueryRow(context.Background(), q).Scan(&n)
	default:
		t.Fatalf("count: unknown Store %T", s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// setClock makes s take now for the time a report is received.
func setClock(t testing.TB, s Store, now func() time.Time) {
	t.Helper()
	switch s := s.(type) {
	case *SQLite:
		s.now = now
	case *Postgres:
		s.now = now
	default:
		t.Fatalf("setClock: unknown Store %T", s)
	}
}

func TestAddDedupe(t *testing.T) {
	a1, a2, b1 := report("a", 1, 1), report("a", 1, 2), report("b", 1, 1)
	a21 := report("a", 2, 1) // same seq, next boot: a different report
	huge, big := report("a", math.MaxUint64, math.MaxUint64), report("a", math.MaxInt64, math.MaxInt64)
	type batch struct {
		reports []egress.Report
		reopen  bool // close the Store and open another before this batch
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
			eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
				ctx := context.Background()
				open := newDB(t)
				s := open(t)
				for i, b := range tc.batches {
					if b.reopen {
						if err := s.Close(); err != nil {
							t.Fatal(err)
						}
						s = open(t)
					}
					outcomes, err := s.Add(ctx, b.reports...)
					if err != nil {
						t.Fatalf("batch %d: %v", i, err)
					}
					if added := Count(outcomes, Added); added != b.added || Count(outcomes, Repeat) != len(b.reports)-b.added {
						t.Errorf("batch %d: outcomes %v, want %d added, the rest repeats", i, outcomes, b.added)
					}
				}
				if n := count(t, s); n != tc.rows {
					t.Errorf("%d rows stored, want %d", n, tc.rows)
				}
			})
		})
	}
}

// TestAddOutcomes: a report is added once; a later copy with its identity
// is a repeat if its content is the same (the signature is not content)
// and a conflict if it differs, and only the first copy counts, across
// calls and within one. Conflicts are counted on the device that sent
// them, repeats change nothing, and unsigned reports are counted.
func TestAddOutcomes(t *testing.T) {
	t1 := time.Date(2026, 3, 14, 10, 0, 0, 5, time.UTC)
	t2 := t1.Add(time.Hour)
	first := report("a", 1, 1)
	other := func(edit func(*egress.Report)) egress.Report { r := first; edit(&r); return r }
	var (
		moreIn    = other(func(r *egress.Report) { r.In = 100 })
		otherLine = other(func(r *egress.Report) { r.Line = "exit" })
		otherCam  = other(func(r *egress.Report) { r.Camera = "cam2" })
		laterEnd  = other(func(r *egress.Report) { r.End = r.End.Add(time.Nanosecond) })
		otherShop = other(func(r *egress.Report) { r.Store = "s2"; r.Out = 9 })
		noSig     = unsigned(first)
		a2        = report("a", 1, 2)
	)
	type batch struct {
		at       time.Time
		reports  []egress.Report
		outcomes []Outcome
	}
	for _, tc := range []struct {
		name    string
		batches []batch
		in      int64 // total in stored
		devices []Device
	}{
		{"repeat across calls", []batch{
			{t1, []egress.Report{first}, []Outcome{Added}},
			{t2, []egress.Report{first, noSig}, []Outcome{Repeat, Repeat}},
		}, 3, []Device{{Store: "s1", Device: "a", LastReport: t1, Reports: 1}}},
		{"conflicts across calls", []batch{
			{t1, []egress.Report{first}, []Outcome{Added}},
			{t2, []egress.Report{moreIn, otherLine, otherCam, laterEnd, first, a2}, []Outcome{Conflict, Conflict, Conflict, Conflict, Repeat, Added}},
		}, 6, []Device{{Store: "s1", Device: "a", LastReport: t2, Reports: 2, Conflicts: 4, LastConflict: t2}}},
		{"first copy in a call wins", []batch{
			{t1, []egress.Report{moreIn, first, a2, moreIn, first}, []Outcome{Added, Conflict, Added, Repeat, Conflict}},
		}, 103, []Device{{Store: "s1", Device: "a", LastReport: t1, Reports: 2, Conflicts: 2, LastConflict: t1}}},
		{"conflict from another store counts there", []batch{
			{t1, []egress.Report{first}, []Outcome{Added}},
			{t2, []egress.Report{otherShop}, []Outcome{Conflict}},
		}, 3, []Device{
			{Store: "s1", Device: "a", LastReport: t1, Reports: 1},
			{Store: "s2", Device: "a", Conflicts: 1, LastConflict: t2},
		}},
		{"unsigned counted when added", []batch{
			{t1, []egress.Report{noSig, unsigned(a2), unsigned(a2)}, []Outcome{Added, Added, Repeat}},
			{t2, []egress.Report{first, report("a", 1, 3)}, []Outcome{Repeat, Added}},
		}, 9, []Device{{Store: "s1", Device: "a", LastReport: t2, Reports: 3, Unsigned: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
				ctx := context.Background()
				s := newDB(t)(t)
				var now time.Time
				setClock(t, s, func() time.Time { return now })
				for i, b := range tc.batches {
					now = b.at
					got, err := s.Add(ctx, b.reports...)
					if err != nil {
						t.Fatalf("batch %d: %v", i, err)
					}
					if !slices.Equal(got, b.outcomes) {
						t.Errorf("batch %d: outcomes %v, want %v", i, got, b.outcomes)
					}
				}
				totals, err := s.Totals(ctx, Query{Bucket: Day})
				if err != nil {
					t.Fatal(err)
				}
				var in int64
				for _, x := range totals {
					in += x.In
				}
				if in != tc.in {
					t.Errorf("in %d stored, want %d (%+v)", in, tc.in, totals)
				}
				devs, err := s.Devices(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(devs, tc.devices) {
					t.Errorf("devices\n%+v\nwant\n%+v", devs, tc.devices)
				}
			})
		})
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
			eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
				ctx := context.Background()
				s := newDB(t)(t)
				bad := report("a", 1, 3)
				tc.mod(&bad)
				outcomes, err := s.Add(ctx, report("a", 1, 1), report("a", 1, 2), bad, report("a", 1, 4))
				if err == nil {
					t.Fatal("Add accepted an invalid report")
				}
				if !errors.Is(err, egress.ErrInvalid) {
					t.Errorf("error %q does not wrap egress.ErrInvalid", err)
				}
				if want := "report " + tc.field + ":"; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name the field (%q)", err, want)
				}
				if outcomes != nil {
					t.Errorf("outcomes %v, want none", outcomes)
				}
				if n := count(t, s); n != 0 {
					t.Errorf("%d rows stored from a refused batch, want 0", n)
				}
				if d, err := s.Devices(ctx); err != nil || len(d) != 0 {
					t.Errorf("devices %+v, %v after a refused batch; want none", d, err)
				}
			})
		})
	}
}

type key struct {
	store, camera, line string
	start               time.Time
}

func TestTotals(t *testing.T) {
	// Windows of 7 min 13.5 s over about three days, from 3 stores × 2
	// cameras × 2 lines, with counts that vary, so buckets hold varying
	// numbers of windows and windows cross bucket boundaries.
	base := time.Date(2026, 3, 13, 22, 17, 41, 500_000_000, time.UTC)
	const step = 7*time.Minute + 13500*time.Millisecond
	var all []egress.Report
	var seq uint64
	// "S0" sorts before "s1" in byte order but after it in most locales'.
	for _, st := range []string{"s1", "S0", "s2", "s3"} {
		for _, cam := range []string{"cam1", "cam2"} {
			dev := st + "-box"
			if cam == "cam2" {
				dev = st + "-box2"
			}
			for _, line := range []string{"door", "exit", "Door"} {
				n := 600
				if st == "S0" || line == "Door" {
					n = 20
				}
				for i := 0; i < n; i++ {
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
	from := time.Date(2026, 3, 14, 10, 30, 0, 0, time.UTC)
	to := time.Date(2026, 3, 15, 3, 0, 0, 0, time.UTC)
	queries := []struct {
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
		{"hour to, just before a window", Query{Store: "s1", To: all[5].Start, Bucket: Hour}},
		{"from exactly a window start", Query{Store: "s1", From: all[5].Start, To: all[8].Start, Bucket: Hour}},
		{"from a nanosecond after a window start", Query{Store: "s1", From: all[5].Start.Add(time.Nanosecond), To: all[8].Start, Bucket: Hour}},
		{"no match", Query{Store: "nowhere", Bucket: Day}},
		{"from in another zone", Query{From: from.In(time.FixedZone("X", 5*3600)), Bucket: Day}},
	}
	eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
		ctx := context.Background()
		s := newDB(t)(t)
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
		for _, tc := range queries {
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
	})
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
	eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
		s := newDB(t)(t)
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
	})
}

func TestDevices(t *testing.T) {
	t1 := time.Date(2026, 3, 14, 10, 0, 0, 123_456_789, time.UTC)
	t2, t3 := t1.Add(time.Minute+time.Nanosecond), t1.Add(time.Hour)
	a1, a2, a3 := report("a", 1, 1), report("a", 1, 2), report("a", 1, 3)
	b1 := report("b", 1, 1)
	other := report("a", 1, 9) // same device name in another store: another device
	other.Store = "s0"
	type step struct {
		at      time.Time // the store's clock
		reports []egress.Report
		status  *Device // SetStatus(Store, Device, Online, StatusAt)
	}
	status := func(store, device string, online bool, at time.Time) *Device {
		return &Device{Store: store, Device: device, Online: online, StatusAt: at}
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []Device
	}{
		{"none", nil, nil},
		{"add sets last report and counts reports", []step{
			{at: t1, reports: []egress.Report{a1, a2, b1, a1}},
		}, []Device{
			{Store: "s1", Device: "a", LastReport: t1, Reports: 2},
			{Store: "s1", Device: "b", LastReport: t1, Reports: 1},
		}},
		{"only new reports count and move last report", []step{
			{at: t1, reports: []egress.Report{a1, a2, b1}},
			{at: t2, reports: []egress.Report{a1, a3, b1}},
			{at: t3, reports: []egress.Report{a3, b1}}, // all duplicates
		}, []Device{
			{Store: "s1", Device: "a", LastReport: t2, Reports: 3},
			{Store: "s1", Device: "b", LastReport: t1, Reports: 1},
		}},
		{"online", []step{
			{status: status("s1", "a", true, t1)},
		}, []Device{{Store: "s1", Device: "a", Online: true, StatusAt: t1}}},
		{"online then offline", []step{
			{status: status("s1", "a", true, t1)},
			{status: status("s1", "a", false, t2)},
		}, []Device{{Store: "s1", Device: "a", Online: false, StatusAt: t2}}},
		{"older status ignored", []step{
			{status: status("s1", "a", false, t2)},
			{status: status("s1", "a", true, t1)},
		}, []Device{{Store: "s1", Device: "a", Online: false, StatusAt: t2}}},
		{"status and reports", []step{
			{status: status("s1", "a", true, t3)},
			{at: t2, reports: []egress.Report{a1, a2}},
			{status: status("s1", "a", false, t1)}, // older: ignored
		}, []Device{{Store: "s1", Device: "a", Online: true, StatusAt: t3, LastReport: t2, Reports: 2}}},
		{"sorted by store then device, status-only included", []step{
			{status: status("s2", "c", true, t1)},
			{at: t1, reports: []egress.Report{b1, a1, other}},
			{status: status("S9", "z", false, t2)}, // byte order: "S9" < "s0"
		}, []Device{
			{Store: "S9", Device: "z", StatusAt: t2},
			{Store: "s0", Device: "a", LastReport: t1, Reports: 1},
			{Store: "s1", Device: "a", LastReport: t1, Reports: 1},
			{Store: "s1", Device: "b", LastReport: t1, Reports: 1},
			{Store: "s2", Device: "c", Online: true, StatusAt: t1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
				ctx := context.Background()
				s := newDB(t)(t)
				var now time.Time
				setClock(t, s, func() time.Time { return now })
				for i, st := range tc.steps {
					if st.status != nil {
						d := st.status
						if err := s.SetStatus(ctx, d.Store, d.Device, d.Online, d.StatusAt); err != nil {
							t.Fatalf("step %d: %v", i, err)
						}
						continue
					}
					now = st.at
					if _, err := s.Add(ctx, st.reports...); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
				got, err := s.Devices(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("devices\n%+v\nwant\n%+v", got, tc.want)
				}
			})
		})
	}
}

func TestSetStatusBadNames(t *testing.T) {
	for _, tc := range []struct {
		name, store, device, field string
	}{
		{"empty store", "", "a", "store"},
		{"slash in store", "shop/1", "a", "store"},
		{"empty device", "s1", "", "device"},
		{"wildcard device", "s1", "box+", "device"},
		{"long device", "s1", strings.Repeat("d", 65), "device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
				ctx := context.Background()
				s := newDB(t)(t)
				err := s.SetStatus(ctx, tc.store, tc.device, true, t0)
				if err == nil {
					t.Fatal("SetStatus accepted a bad name")
				}
				if !errors.Is(err, egress.ErrInvalid) {
					t.Errorf("error %q does not wrap egress.ErrInvalid", err)
				}
				if want := "report " + tc.field + ":"; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name the field (%q)", err, want)
				}
				if d, err := s.Devices(ctx); err != nil || len(d) != 0 {
					t.Errorf("devices %+v, %v; want none", d, err)
				}
			})
		})
	}
}

func TestAddConcurrent(t *testing.T) {
	// Two Stores on one database, as two head-office processes would have,
	// with concurrent calls on each. Every goroutine sends every report of
	// four devices, in its own order and batches that span devices:
	// overlapping batches must all succeed and count once.
	const devices, seqs, goroutines, batchSize = 4, 250, 8, 100
	var universe []egress.Report
	for d := 0; d < devices; d++ {
		for q := 1; q <= seqs; q++ {
			universe = append(universe, report(fmt.Sprintf("d%d", d), 1, uint64(q)))
		}
	}
	eachStore(t, func(t *testing.T, newDB func(testing.TB) opener) {
		ctx := context.Background()
		open := newDB(t)
		stores := []Store{open(t), open(t)}
		var wg sync.WaitGroup
		var added atomic.Int64
		errs := make(chan error, goroutines)
		for g := 0; g < goroutines; g++ {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			order := slices.Clone(universe)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := stores[g%2]
				for i := 0; i < len(order); i += batchSize {
					outcomes, err := s.Add(ctx, order[i:min(i+batchSize, len(order))]...)
					if err != nil {
						errs <- err
						return
					}
					if c := Count(outcomes, Conflict); c != 0 {
						errs <- fmt.Errorf("%d conflicts among copies of one report", c)
						return
					}
					added.Add(int64(Count(outcomes, Added)))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want := len(universe)
		if n := count(t, stores[0]); added.Load() != int64(want) || n != want {
			t.Errorf("added %d, stored %d, want %d", added.Load(), n, want)
		}
		totals, err := stores[1].Totals(ctx, Query{Bucket: Day})
		if err != nil {
			t.Fatal(err)
		}
		var in int64
		for _, tot := range totals {
			in += tot.In
		}
		if in != int64(3*want) {
			t.Errorf("total in %d, want %d", in, 3*want)
		}
		devs, err := stores[0].Devices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) != devices {
			t.Fatalf("%d devices, want %d", len(devs), devices)
		}
		for _, d := range devs {
			if d.Reports != seqs {
				t.Errorf("device %s: %d reports, want %d", d.Device, d.Reports, seqs)
			}
		}
	})
}

// BenchmarkAdd adds rounds of reports from 1000 devices, in batches of 100,
// as head office's ingest does.
func BenchmarkAdd(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			s := be.newDB(b)(b)
			const devices, batchSize = 1000, 100
			// One iteration is one round: every device sends one report,
			// in batches of 100.
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
					outcomes, err := s.Add(ctx, batch...)
					if err != nil {
						b.Fatal(err)
					}
					reports += Count(outcomes, Added)
				}
			}
			b.ReportMetric(float64(reports)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}

// checkUpgraded: a store opened over an older schema, holding report r
// from before, takes a repeat of r and counts a conflicting one on its
// device (at the store's clock, t0 plus an hour).
func checkUpgraded(t *testing.T, ctx context.Context, s Store, r egress.Report) {
	t.Helper()
	conflicting := r
	conflicting.In++
	got, err := s.Add(ctx, r, conflicting)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Outcome{Repeat, Conflict}; !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	devs, err := s.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{{Store: "s1", Device: "a", LastReport: t0, Reports: 1, Conflicts: 1, LastConflict: t0.Add(time.Hour)}}
	if !reflect.DeepEqual(devs, want) {
		t.Errorf("devices %+v, want %+v", devs, want)
	}
}
