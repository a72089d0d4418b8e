package egress

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is the start of the first test window.
var t0 = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

// window returns the i-th 15-minute window of a line.
func window(camera, line string, i, in, out int) Counts {
	start := t0.Add(time.Duration(i) * 15 * time.Minute)
	return Counts{Camera: camera, Line: line, Start: start, End: start.Add(15 * time.Minute), In: in, Out: out}
}

func openBox(t *testing.T, dir string, max int) *Outbox {
	t.Helper()
	log, _ := testLog(t)
	b, err := OpenOutbox(dir, OutboxOptions{Device: "box-1", Store: "shop-1", MaxEntries: max, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func mustAdd(t *testing.T, b *Outbox, c Counts) Report {
	t.Helper()
	r, err := b.Add(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pending(t *testing.T, b *Outbox) []Report {
	t.Helper()
	rs, err := b.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func idents(rs []Report) []ident {
	out := make([]ident, len(rs))
	for i, r := range rs {
		out[i] = identOf(r)
	}
	return out
}

// TestOutboxOptions lists option mistakes OpenOutbox rejects.
func TestOutboxOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    OutboxOptions
		want string
	}{
		{"no device", OutboxOptions{Store: "s"}, "outbox device: empty"},
		{"no store", OutboxOptions{Device: "d"}, "outbox store: empty"},
		{"store with wildcard", OutboxOptions{Device: "d", Store: "s/+"}, `outbox store: "s/+" has '/'`},
		{"max entries 1", OutboxOptions{Device: "d", Store: "s", MaxEntries: 1}, "outbox max entries: 1; allowed 2 and up"},
		{"max entries negative", OutboxOptions{Device: "d", Store: "s", MaxEntries: -5}, "outbox max entries: -5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenOutbox(t.TempDir(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("OpenOutbox = %v, want an ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

// TestOutboxBoot checks that every open is a new boot, persisted, that seq
// restarts at 1, that earlier boots' entries are replayed in order, and
// that the directory cannot be opened twice.
func TestOutboxBoot(t *testing.T) {
	dir := t.TempDir()
	var all []ident
	for boot := uint64(1); boot <= 3; boot++ {
		b := openBox(t, dir, 0)
		if b.Boot() != boot {
			t.Fatalf("open %d: Boot() = %d", boot, b.Boot())
		}
		for seq := uint64(1); seq <= 2; seq++ {
			r := mustAdd(t, b, window("cam", "door", int(boot*10+seq), 1, 0))
			if r.Boot != boot || r.Seq != seq || r.Device != "box-1" || r.Store != "shop-1" {
				t.Fatalf("Add = %+v, want boot %d seq %d", r, boot, seq)
			}
			all = append(all, identOf(r))
		}
		if got := idents(pending(t, b)); !slices.Equal(got, all) {
			t.Fatalf("boot %d: Pending = %v, want %v", boot, got, all)
		}
		if boot == 2 {
			if _, err := OpenOutbox(dir, OutboxOptions{Device: "box-1", Store: "shop-1"}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
				t.Fatalf("second OpenOutbox of an open dir = %v, want in use", err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Add(window("cam", "door", 0, 0, 0)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Add after Close = %v, want ErrClosed", err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, bootFile))
	if err != nil || string(data) != "3\n" {
		t.Fatalf("boot file = %q, %v; want 3", data, err)
	}

	t.Run("boot file behind the entries", func(t *testing.T) {
		// E.g. restored from an old backup: the boot still goes past every
		// boot on disk, so no identity repeats.
		if err := os.WriteFile(filepath.Join(dir, bootFile), []byte("1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, sentFile)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		b := openBox(t, dir, 0)
		if b.Boot() != 4 {
			t.Fatalf("Boot() = %d, want 4", b.Boot())
		}
		b.Close()
	})
	t.Run("corrupt boot file", func(t *testing.T) {
		path := filepath.Join(dir, bootFile)
		if err := os.WriteFile(path, []byte("\x00\x00garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenOutbox(dir, OutboxOptions{Device: "box-1", Store: "shop-1"})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a number") {
			t.Fatalf("OpenOutbox with a corrupt boot file = %v, want an error naming %s", err, path)
		}
	})
}

// TestOutboxAddInvalid checks that an invalid window is refused, stores
// nothing and uses up no seq.
func TestOutboxAddInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Counts
		want string
	}{
		{"no camera", Counts{Line: "l", Start: t0, End: t0.Add(time.Minute)}, "report camera: empty"},
		{"line with space", Counts{Camera: "c", Line: "front door", Start: t0, End: t0.Add(time.Minute)}, "report line"},
		{"empty window", Counts{Camera: "c", Line: "l", Start: t0, End: t0}, "not after start"},
		{"negative", Counts{Camera: "c", Line: "l", Start: t0, End: t0.Add(time.Minute), Out: -1}, "report out: -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openBox(t, t.TempDir(), 0)
			if _, err := b.Add(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Add = %v, want an ErrInvalid containing %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Fatalf("Len = %d after a refused Add", b.Len())
			}
			if r := mustAdd(t, b, window("c", "l", 0, 1, 1)); r.Seq != 1 {
				t.Fatalf("next Add got seq %d, want 1", r.Seq)
			}
		})
	}
}

// TestOutboxRemove checks Remove: gone from Pending and from disk, no
// error for an already removed report, an error for a stale one.
func TestOutboxRemove(t *testing.T) {
	dir := t.TempDir()
	b := openBox(t, dir, 0)
	r1 := mustAdd(t, b, window("c", "l", 0, 1, 2))
	r2 := mustAdd(t, b, window("c", "l", 1, 3, 4))
	if err := b.Remove(r1); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(r1); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	stale := r2
	stale.In++
	if err := b.Remove(stale); err == nil {
		t.Fatal("Remove of a report that differs from the stored one succeeded")
	}
	if got := idents(pending(t, b)); !slices.Equal(got, []ident{identOf(r2)}) {
		t.Fatalf("Pending = %v, want only %v", got, identOf(r2))
	}
	if _, err := os.Stat(filepath.Join(dir, entryName(identOf(r1)))); !os.IsNotExist(err) {
		t.Fatalf("removed entry still on disk: %v", err)
	}
}

// TestOutboxQuarantine writes each kind of broken entry, reopens the
// outbox and checks that the entry is in quarantine/, that the warning
// names the file and the error, and that the good entries are pending.
func TestOutboxQuarantine(t *testing.T) {
	good := func(seq uint64) []byte {
		r := Report{Device: "box-1", Store: "shop-1", Camera: "c", Line: "l", Start: t0, End: t0.Add(time.Minute), Boot: 1, Seq: seq}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		file    string
		content []byte
		want    string // in the logged error
	}{
		{"truncated", entryName(ident{1, 2}), good(2)[:40], "unexpected EOF"},
		{"garbage", entryName(ident{1, 2}), []byte("\x7fELF\x02\x01garbage"), "invalid character"},
		{"zero bytes", entryName(ident{1, 2}), nil, "empty file"},
		{"unknown field", entryName(ident{1, 2}), []byte(strings.Replace(string(good(2)), "{", `{"face":1,`, 1)), "unknown field"},
		{"named for another seq", entryName(ident{1, 2}), good(3), "named for boot 1 seq 2 but holds boot 1 seq 3"},
		{"bad name", "e-two.json", good(2), "not an outbox entry name"},
		{"other device", entryName(ident{1, 2}), []byte(strings.Replace(string(good(2)), `"box-1"`, `"box-9"`, 1)), "written for store shop-1 device box-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, seq := range []uint64{1, 3} {
				if err := os.WriteFile(filepath.Join(dir, entryName(ident{1, seq})), good(seq), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, tc.file), tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			log, buf := testLog(t)
			b, err := OpenOutbox(dir, OutboxOptions{Device: "box-1", Store: "shop-1", Log: log})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := idents(pending(t, b)); !slices.Equal(got, []ident{{1, 1}, {1, 3}}) {
				t.Fatalf("Pending = %v, want the two good entries", got)
			}
			if _, err := os.Stat(filepath.Join(dir, quarantineDir, tc.file)); err != nil {
				t.Fatalf("not quarantined: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.file)); !os.IsNotExist(err) {
				t.Fatalf("still in the outbox: %v", err)
			}
			logs := buf.String()
			if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, filepath.Join(dir, tc.file)) || !strings.Contains(logs, tc.want) {
				t.Fatalf("warning does not name the file and %q:\n%s", tc.want, logs)
			}
		})
	}
}

// TestOutboxHalfWritten checks that a temporary file left by a crash in
// the middle of Add is deleted, not sent.
func TestOutboxHalfWritten(t *testing.T) {
	dir := t.TempDir()
	b := openBox(t, dir, 0)
	mustAdd(t, b, window("c", "l", 0, 1, 1))
	b.Close()
	tmp := filepath.Join(dir, tmpPrefix+entryName(ident{1, 2})+"-123")
	if err := os.WriteFile(tmp, []byte(`{"device":"box-1","sto`), 0o600); err != nil {
		t.Fatal(err)
	}
	b = openBox(t, dir, 0)
	if b.Len() != 1 {
		t.Fatalf("Len = %d, want 1", b.Len())
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("half-written file still there: %v", err)
	}
}

// sums adds up In and Out per camera/line.
func sums[T Counts | Report](xs []T) map[string][2]int {
	m := make(map[string][2]int)
	for _, x := range xs {
		var c Counts
		switch v := any(x).(type) {
		case Counts:
			c = v
		case Report:
			c = Counts{Camera: v.Camera, Line: v.Line, In: v.In, Out: v.Out}
		}
		s := m[c.Camera+"/"+c.Line]
		m[c.Camera+"/"+c.Line] = [2]int{s[0] + c.In, s[1] + c.Out}
	}
	return m
}

// checkCoverage checks that each line's stored windows follow each other
// without overlap, from the first added window's start to the last's end,
// and that the outbox is sorted.
func checkCoverage(t *testing.T, stored []Report, added []Counts) {
	t.Helper()
	if !slices.IsSortedFunc(stored, func(a, b Report) int { return identOf(a).compare(identOf(b)) }) {
		t.Errorf("Pending not in (boot, seq) order: %v", idents(stored))
	}
	first, last := map[string]time.Time{}, map[string]time.Time{}
	for _, c := range added {
		k := c.Camera + "/" + c.Line
		if _, ok := first[k]; !ok {
			first[k] = c.Start
		}
		last[k] = c.End
	}
	end := map[string]time.Time{}
	for _, r := range stored {
		k := r.Camera + "/" + r.Line
		if e, ok := end[k]; ok && r.Start.Before(e) {
			t.Errorf("%s: window %v starts before the previous one ends (%s)", k, identOf(r), e)
		} else if !ok && !r.Start.Equal(first[k]) {
			t.Errorf("%s: first stored window starts %s, want %s", k, r.Start, first[k])
		}
		end[k] = r.End
	}
	for k, e := range end {
		if !e.Equal(last[k]) {
			t.Errorf("%s: last stored window ends %s, want %s", k, e, last[k])
		}
	}
}

// TestOutboxMerge fills small outboxes and checks the bound, that counts
// are conserved exactly, that windows handed to the network are never
// merged (also after a restart), and that ErrFull names the limit when
// nothing can be merged.
func TestOutboxMerge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int
		handOut int      // entries handed to the network after the first handOut adds
		lines   []string // window i goes to lines[i%len]
		n       int
		wantErr string // from the last Add; "" for none
	}{
		{name: "one line", max: 3, lines: []string{"door"}, n: 40},
		{name: "two lines interleaved", max: 4, lines: []string{"door", "door", "gate"}, n: 50},
		{name: "handed out kept", max: 5, handOut: 3, lines: []string{"door", "gate"}, n: 30},
		{name: "limit 2 one line", max: 2, lines: []string{"door"}, n: 10},
		{name: "all lines distinct", max: 3, lines: []string{"a", "b", "c", "d"}, n: 4, wantErr: "holds 3 windows, its limit (max entries 3), and none can be merged"},
		{name: "distinct after hand-out", max: 3, handOut: 3, lines: []string{"a"}, n: 4, wantErr: "its limit (max entries 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := openBox(t, dir, tc.max)
			var added []Counts
			var handed []Report
			for i := range tc.n {
				c := window("cam", tc.lines[i%len(tc.lines)], i, i%5, i%3+1)
				_, err := b.Add(c)
				if i == tc.n-1 && tc.wantErr != "" {
					if err == nil || !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("last Add = %v, want ErrFull containing %q", err, tc.wantErr)
					}
					break
				}
				if err != nil {
					t.Fatalf("Add %d: %v", i, err)
				}
				added = append(added, c)
				if b.Len() > tc.max {
					t.Fatalf("after Add %d: %d entries, limit %d", i, b.Len(), tc.max)
				}
				if tc.handOut > 0 && i == tc.handOut-1 {
					var err error
					if handed, err = b.take(tc.handOut, func(ident) bool { return false }); err != nil {
						t.Fatal(err)
					}
				}
				if i == tc.n/2 { // a restart halfway: the watermark must survive it
					b.Close()
					b = openBox(t, dir, tc.max)
				}
			}
			stored := pending(t, b)
			if got, want := sums(stored), sums(added); !mapsEqual(got, want) {
				t.Errorf("counts not conserved: stored %v, added %v", got, want)
			}
			checkCoverage(t, stored, added)
			for _, h := range handed {
				i := slices.IndexFunc(stored, func(r Report) bool { return identOf(r) == identOf(h) })
				if i < 0 || !sameReport(stored[i], h) {
					t.Errorf("handed-out report %v was merged or lost", identOf(h))
				}
			}
		})
	}
}

func mapsEqual(a, b map[string][2]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOutboxMergeOverlap checks that overlapping windows (a clock step
// back) are never merged.
func TestOutboxMergeOverlap(t *testing.T) {
	b := openBox(t, t.TempDir(), 2)
	mustAdd(t, b, Counts{Camera: "c", Line: "l", Start: t0, End: t0.Add(time.Hour), In: 1})
	mustAdd(t, b, Counts{Camera: "c", Line: "l", Start: t0.Add(30 * time.Minute), End: t0.Add(2 * time.Hour), In: 2})
	_, err := b.Add(Counts{Camera: "c", Line: "l", Start: t0.Add(90 * time.Minute), End: t0.Add(3 * time.Hour), In: 4})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Add = %v, want ErrFull", err)
	}
}

// TestOutboxMergeSpan: merges never make a window longer than MaxWindow,
// which head office would refuse (and the box then drop); the counts are
// all kept.
func TestOutboxMergeSpan(t *testing.T) {
	b := openBox(t, t.TempDir(), 4) // 72 h of 6 h windows fit in three 24 h ones
	in := 0
	for i := range 12 {
		start := t0.Add(time.Duration(i) * 6 * time.Hour)
		if _, err := b.Add(Counts{Camera: "c", Line: "l", Start: start, End: start.Add(6 * time.Hour), In: i + 1}); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
		in += i + 1
	}
	got := 0
	for _, r := range pending(t, b) {
		if d := r.End.Sub(r.Start); d > MaxWindow {
			t.Errorf("merged window %v spans %s, more than %s", identOf(r), d, MaxWindow)
		}
		got += r.In
	}
	if got != in {
		t.Errorf("stored %d people, added %d", got, in)
	}
}

// TestOutboxMergeRecovery builds the states a crash can leave in the
// middle of a merge and checks that OpenOutbox finishes the merge: the
// counts of both windows, once, under the older identity.
func TestOutboxMergeRecovery(t *testing.T) {
	for _, tc := range []struct {
		name          string
		removeNewer   bool // crashed after deleting the newer entry
		corruptIntent bool
	}{
		{name: "intent written"},
		{name: "newer removed", removeNewer: true},
		{name: "intent corrupt", corruptIntent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := openBox(t, dir, 0)
			a := mustAdd(t, b, window("c", "l", 0, 3, 4))
			n := mustAdd(t, b, window("c", "l", 1, 5, 6))
			b.Close()
			m := a
			m.End, m.In, m.Out = n.End, a.In+n.In, a.Out+n.Out
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if tc.corruptIntent {
				data = data[:10]
			}
			if err := os.WriteFile(filepath.Join(dir, intentName(identOf(n))), data, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.removeNewer {
				if err := os.Remove(filepath.Join(dir, entryName(identOf(n)))); err != nil {
					t.Fatal(err)
				}
			}
			b = openBox(t, dir, 0)
			got := pending(t, b)
			want := []Report{m}
			if tc.corruptIntent {
				want = []Report{a, n}
			}
			if len(got) != len(want) || !sameReport(got[0], want[0]) || (len(got) > 1 && !sameReport(got[1], want[1])) {
				t.Fatalf("after recovery Pending = %+v, want %+v", got, want)
			}
			if _, err := os.Stat(filepath.Join(dir, intentName(identOf(n)))); !os.IsNotExist(err) {
				t.Fatalf("intent file still there: %v", err)
			}
		})
	}
}

// TestOutboxConcurrent runs an adder and a taker/remover at once (run it
// with -race) and checks that every added report is removed exactly once.
func TestOutboxConcurrent(t *testing.T) {
	b := openBox(t, t.TempDir(), 0)
	const n = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := b.Add(window("c", fmt.Sprint("l", i%3), i, 1, 1)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	removed := map[ident]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(removed) < n && time.Now().Before(deadline) {
		rs, err := b.take(8, func(ident) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if removed[identOf(r)] {
				t.Fatalf("%v handed out after its removal", identOf(r))
			}
			if err := b.Remove(r); err != nil {
				t.Fatal(err)
			}
			removed[identOf(r)] = true
		}
		if len(rs) == 0 {
			select {
			case <-b.notify:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	wg.Wait()
	if len(removed) != n || b.Len() != 0 {
		t.Fatalf("removed %d of %d, %d left", len(removed), n, b.Len())
	}
}
