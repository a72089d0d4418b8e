package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

var ledgerT0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// ledgerAt returns ledgerT0 plus m minutes.
func ledgerAt(m int) time.Time { return ledgerT0.Add(time.Duration(m) * time.Minute) }

// openTestLedger opens a ledger whose clock ticks one second per call,
// starting at ledgerT0.
func openTestLedger(t *testing.T, path string) *Ledger {
	t.Helper()
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	tick := ledgerT0
	l.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	return l
}

func mustAppend(t *testing.T, l *Ledger, es ...Entry) []Entry {
	t.Helper()
	var out []Entry
	for _, e := range es {
		got, err := l.Append(e)
		if err != nil {
			t.Fatalf("Append(%+v): %v", e, err)
		}
		out = append(out, got)
	}
	return out
}

// ledgerLines reads a ledger file as lines without their newlines.
func ledgerLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// sampleLedgerEntries are six events of three consents.
func sampleLedgerEntries() []Entry {
	exp := ledgerAt(60 * 24 * 30)
	return []Entry{
		{Type: EventGrant, ConsentID: "c1", NoticeVersion: "2026-11", NoticeHash: strings.Repeat("ab", 32), Lang: "de", Purposes: []string{"unblur"}, Camera: "door", Zone: "spot", Expires: &exp},
		{Type: EventBind, ConsentID: "c1", Camera: "door", Zone: "spot"},
		{Type: EventGrant, ConsentID: "c2", NoticeVersion: "2026-11", Lang: "en", Purposes: []string{"unblur"}, Camera: "till"},
		{Type: EventUnbind, ConsentID: "c1", Camera: "door", Reason: "track ended"},
		{Type: EventWithdraw, ConsentID: "c1"},
		{Type: EventGrant, ConsentID: "c3", Camera: "door <&> \"quoted\"\n"},
	}
}

func writeSampleLedger(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l := openTestLedger(t, path)
	mustAppend(t, l, sampleLedgerEntries()...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLedgerAppendReopenContinues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "consent")
	path := filepath.Join(dir, "ledger.jsonl")
	l := openTestLedger(t, path)
	es := sampleLedgerEntries()
	first := mustAppend(t, l, es[:3]...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(es[3]); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Append after Close: %v, want os.ErrClosed", err)
	}

	l = openTestLedger(t, path)
	local := time.FixedZone("CET", 3600)
	second := mustAppend(t, l, es[3], Entry{Type: EventWithdraw, ConsentID: "c1", Time: ledgerAt(5).In(local)})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	stored := append(first, second...)
	for i, e := range stored {
		if e.Seq != uint64(i+1) {
			t.Errorf("entry %d: seq %d", i, e.Seq)
		}
		if e.Time.Location() != time.UTC {
			t.Errorf("entry %d: time %v not in UTC", i, e.Time)
		}
	}
	if stored[0].Prev != strings.Repeat("0", 64) {
		t.Errorf("first prev = %q, want 64 zeros", stored[0].Prev)
	}
	if stored[3].Prev != stored[2].Hash {
		t.Errorf("the chain did not continue across reopening: prev %s, want %s", stored[3].Prev, stored[2].Hash)
	}
	if !stored[0].Time.Equal(ledgerT0.Add(time.Second)) || !stored[4].Time.Equal(ledgerAt(5)) {
		t.Errorf("times %v, %v: want the clock's and the given one", stored[0].Time, stored[4].Time)
	}

	// What Append returned is exactly what is in the file.
	lines := ledgerLines(t, path)
	if len(lines) != len(stored) {
		t.Fatalf("%d lines, want %d", len(lines), len(stored))
	}
	for i, e := range stored {
		b, _ := json.Marshal(e)
		if string(b) != lines[i] {
			t.Errorf("line %d = %s\nAppend returned %s", i+1, lines[i], b)
		}
		// The documented hash rule, done by hand.
		blank := strings.Replace(lines[i], `"hash":"`+e.Hash+`"`, `"hash":""`, 1)
		sum := sha256.Sum256([]byte(blank))
		if hex.EncodeToString(sum[:]) != e.Hash {
			t.Errorf("line %d: hash is not sha256 of the line with an empty hash", i+1)
		}
	}
	if n, err := VerifyLedger(path); n != 5 || err != nil {
		t.Errorf("VerifyLedger = %d, %v; want 5, nil", n, err)
	}

	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
		}
	}
}

func TestLedgerAppendRefuses(t *testing.T) {
	l := openTestLedger(t, filepath.Join(t.TempDir(), "ledger.jsonl"))
	defer l.Close()
	for _, e := range []Entry{
		{Type: EventAnchor, ConsentID: "c1"},
		{Type: "peek", ConsentID: "c1"},
		{Type: EventGrant},
	} {
		if _, err := l.Append(e); err == nil {
			t.Errorf("Append(%+v) succeeded", e)
		}
	}
	mustAppend(t, l, Entry{Type: EventGrant, ConsentID: "c1"})
}

func TestVerifyLedgerFindsTampering(t *testing.T) {
	// rehash returns line with its hash recomputed after edit.
	rehash := func(t *testing.T, line string, edit func(*Entry)) string {
		var e Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		edit(&e)
		var err error
		if e.Hash, err = e.computeHash(); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(e)
		return string(b)
	}
	join := func(lines []string) string { return strings.Join(lines, "\n") + "\n" }
	tests := []struct {
		name   string
		tamper func(t *testing.T, lines []string) string
		line   int
		want   string
	}{
		{"edit a field", func(t *testing.T, ls []string) string {
			ls[2] = strings.Replace(ls[2], `"camera":"till"`, `"camera":"back"`, 1)
			return join(ls)
		}, 3, "hash does not match its content (edited?)"},
		{"edit a field and rehash", func(t *testing.T, ls []string) string {
			ls[2] = rehash(t, ls[2], func(e *Entry) { e.Camera = "back" })
			return join(ls)
		}, 4, "prev does not match line 3's hash"},
		{"change prev and hash together", func(t *testing.T, ls []string) string {
			ls[2] = rehash(t, ls[2], func(e *Entry) { e.Prev = strings.Repeat("1", 64) })
			return join(ls)
		}, 3, "prev does not match line 2's hash"},
		{"remove a line", func(t *testing.T, ls []string) string {
			return join(slices.Delete(ls, 2, 3))
		}, 3, "seq 4 follows 2 (an entry was removed or moved?)"},
		{"remove the first line", func(t *testing.T, ls []string) string {
			return join(ls[1:])
		}, 1, "the first entry has seq 2, want 1"},
		{"remove the first line and renumber", func(t *testing.T, ls []string) string {
			ls = ls[1:]
			ls[0] = rehash(t, ls[0], func(e *Entry) { e.Seq = 1 })
			return join(ls)
		}, 1, "the first entry's prev is not 64 zeros"},
		{"swap two lines", func(t *testing.T, ls []string) string {
			ls[2], ls[3] = ls[3], ls[2]
			return join(ls)
		}, 3, "seq 4 follows 2"},
		{"repeat a line", func(t *testing.T, ls []string) string {
			return join(slices.Insert(ls, 3, ls[2]))
		}, 4, "seq 3 follows 3 (entries moved or repeated?)"},
		{"truncate the last line", func(t *testing.T, ls []string) string {
			return join(ls[:5]) + ls[5][:len(ls[5])/2]
		}, 6, "cut off: the file does not end with a newline"},
		{"drop the last newline", func(t *testing.T, ls []string) string {
			return strings.Join(ls, "\n")
		}, 6, "cut off"},
		{"empty line", func(t *testing.T, ls []string) string {
			return join(slices.Insert(ls, 2, ""))
		}, 3, "empty line"},
		{"not JSON", func(t *testing.T, ls []string) string {
			ls[1] = ls[1][:20]
			return join(ls)
		}, 2, "not a ledger entry"},
		{"personal field added", func(t *testing.T, ls []string) string {
			ls[1] = strings.Replace(ls[1], `{"seq":2,`, `{"seq":2,"ip":"10.0.0.7",`, 1)
			return join(ls)
		}, 2, `unknown field "ip"`},
		{"reformatted", func(t *testing.T, ls []string) string {
			ls[3] = strings.ReplaceAll(ls[3], `,"`, `, "`)
			return join(ls)
		}, 4, "not written the way the ledger writes entries"},
		{"field name in other case", func(t *testing.T, ls []string) string {
			ls[3] = strings.Replace(ls[3], `"camera"`, `"Camera"`, 1)
			return join(ls)
		}, 4, "not written the way the ledger writes entries"},
		{"unknown type", func(t *testing.T, ls []string) string {
			ls[3] = rehash(t, ls[3], func(e *Entry) { e.Type = "peek" })
			return join(ls)
		}, 4, `unknown type "peek"`},
		{"anchor in the middle", func(t *testing.T, ls []string) string {
			ls[3] = rehash(t, ls[3], func(e *Entry) { e.Type = EventAnchor; e.Prev = "" })
			return join(ls)
		}, 4, "an anchor entry may only be the first line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeSampleLedger(t)
			if err := os.WriteFile(path, []byte(tc.tamper(t, ledgerLines(t, path))), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := VerifyLedger(path)
			prefix := fmt.Sprintf("ledger %s line %d: ", path, tc.line)
			var le *LedgerError
			if !errors.As(err, &le) || le.Line != tc.line || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyLedger: %v\nwant %s...%s", err, prefix, tc.want)
			}
			l, oerr := OpenLedger(path)
			if oerr == nil {
				l.Close()
				t.Fatal("OpenLedger opened a tampered ledger")
			}
			if oerr.Error() != err.Error() {
				t.Errorf("OpenLedger: %v\nwant the same error as VerifyLedger: %v", oerr, err)
			}
		})
	}
}

func TestVerifyLedgerEdgeCases(t *testing.T) {
	dir := t.TempDir()
	if _, err := VerifyLedger(filepath.Join(dir, "missing.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := VerifyLedger(empty); n != 0 || err != nil {
		t.Errorf("empty file: %d, %v", n, err)
	}
	l := openTestLedger(t, empty)
	mustAppend(t, l, Entry{Type: EventGrant, ConsentID: "c1"})
	l.Close()
	if n, err := VerifyLedger(empty); n != 1 || err != nil {
		t.Errorf("after one append: %d, %v", n, err)
	}
}

// TestLedgerPurge: a purge removes old entries of finished consents from the
// start, keeps those of active ones, and leaves a ledger that verifies,
// takes more entries, and still shows tampering with what was kept.
func TestLedgerPurge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l := openTestLedger(t, path)
	defer l.Close()
	stored := mustAppend(t, l,
		Entry{Type: EventGrant, ConsentID: "A", Time: ledgerAt(0)},
		Entry{Type: EventBind, ConsentID: "A", Time: ledgerAt(1), Camera: "door"},
		Entry{Type: EventUnbind, ConsentID: "A", Time: ledgerAt(2), Reason: "track ended"},
		Entry{Type: EventWithdraw, ConsentID: "A", Time: ledgerAt(3)},
		Entry{Type: EventGrant, ConsentID: "B", Time: ledgerAt(4)}, // still active
		Entry{Type: EventGrant, ConsentID: "C", Time: ledgerAt(5)},
		Entry{Type: EventExpire, ConsentID: "C", Time: ledgerAt(6)},
		Entry{Type: EventGrant, ConsentID: "D", Time: ledgerAt(20)}, // too new
	)

	n, err := l.Purge(ledgerAt(10))
	if n != 4 || err != nil {
		t.Fatalf("Purge = %d, %v; want 4 (A's entries; B is still active)", n, err)
	}
	lines := ledgerLines(t, path)
	var anchor Entry
	if err := json.Unmarshal([]byte(lines[0]), &anchor); err != nil {
		t.Fatal(err)
	}
	if anchor.Type != EventAnchor || anchor.Seq != 4 || anchor.Hash != stored[3].Hash || anchor.Prev != "" || anchor.ConsentID != "" {
		t.Errorf("anchor = %+v; want seq 4 and hash %s", anchor, stored[3].Hash)
	}
	if !strings.Contains(anchor.Reason, "purged 4 entries older than 2026-03-01T09:10:00Z") {
		t.Errorf("anchor reason %q", anchor.Reason)
	}
	if v, err := VerifyLedger(path); v != 5 || err != nil {
		t.Fatalf("VerifyLedger after purge = %d, %v; want 5, nil", v, err)
	}

	// Appending goes on, also to the new file after reopening.
	w := mustAppend(t, l, Entry{Type: EventWithdraw, ConsentID: "B"})
	if w[0].Seq != 9 || w[0].Prev != stored[7].Hash {
		t.Errorf("append after purge: seq %d prev %s", w[0].Seq, w[0].Prev)
	}
	l.Close()
	l = openTestLedger(t, path)
	defer l.Close()

	// B is withdrawn now: B's and C's entries go; D's is too new.
	if n, err := l.Purge(ledgerAt(10)); n != 3 || err != nil {
		t.Fatalf("second Purge = %d, %v; want 3", n, err)
	}
	before, _ := os.ReadFile(path)
	if n, err := l.Purge(ledgerAt(10)); n != 0 || err != nil {
		t.Fatalf("Purge with nothing to purge = %d, %v", n, err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("a purge that removed nothing changed the file")
	}
	mustAppend(t, l, Entry{Type: EventExpire, ConsentID: "D"})
	if v, err := VerifyLedger(path); v != 4 || err != nil {
		t.Fatalf("VerifyLedger = %d, %v; want anchor + 3 entries", v, err)
	}

	// Everything old and finished: only the anchor is left, and the chain
	// goes on from it.
	if n, err := l.Purge(ledgerAt(60 * 24 * 365)); n != 3 || err != nil {
		t.Fatalf("purge of everything = %d, %v", n, err)
	}
	if lines := ledgerLines(t, path); len(lines) != 1 {
		t.Fatalf("after purging everything: %q", lines)
	}
	mustAppend(t, l, Entry{Type: EventGrant, ConsentID: "E"}, Entry{Type: EventGrant, ConsentID: "F"}, Entry{Type: EventGrant, ConsentID: "G"})
	if v, err := VerifyLedger(path); v != 4 || err != nil {
		t.Fatalf("VerifyLedger = %d, %v; want 4, nil", v, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after purge: %v, %v", fi.Mode().Perm(), err)
	}
	if des, _ := os.ReadDir(filepath.Dir(path)); len(des) != 1 {
		t.Errorf("files left in the ledger directory: %v", des)
	}

	// Tampering with kept entries is still found.
	good := ledgerLines(t, path)
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{append([]string{good[0]}, good[2:]...), "line 2: seq 12 follows 10"},
		{[]string{good[0], strings.Replace(good[1], `"E"`, `"X"`, 1), good[2], good[3]}, "line 2: hash does not match"},
		{[]string{good[1], good[2], good[3]}, "line 1: the first entry has seq 11"},
	} {
		if err := os.WriteFile(path, []byte(strings.Join(tc.lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyLedger(path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("VerifyLedger: %v; want %q", err, tc.want)
		}
	}
}

// TestEntryHasNoPersonalFields: the ledger has no place for anything that
// identifies a shopper or shows them.
func TestEntryHasNoPersonalFields(t *testing.T) {
	x := ledgerT0
	e := Entry{Seq: 1, Time: x, Type: EventGrant, ConsentID: "c", NoticeVersion: "v", NoticeHash: "h", Lang: "en",
		Purposes: []string{"p"}, Camera: "cam", Zone: "z", Expires: &x, Reason: "r", Prev: "p", Hash: "h"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	want := []string{"camera", "consent_id", "expires", "hash", "lang", "notice_hash", "notice_version", "prev", "purposes", "reason", "seq", "time", "type", "zone"}
	if !slices.Equal(keys, want) {
		t.Errorf("entry keys %v, want exactly %v", keys, want)
	}
	for _, k := range keys {
		for _, bad := range []string{"ip", "addr", "user_agent", "agent", "phone", "image", "photo", "face", "pixel"} {
			if k == bad || strings.HasPrefix(k, bad+"_") || strings.HasSuffix(k, "_"+bad) || (len(bad) > 2 && strings.Contains(k, bad)) {
				t.Errorf("entry key %q looks like personal data (%s)", k, bad)
			}
		}
	}
}

func TestLedgerConcurrentAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				if _, err := l.Append(Entry{Type: EventGrant, ConsentID: fmt.Sprintf("g%d-%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := VerifyLedger(path); n != 80 || err != nil {
		t.Errorf("VerifyLedger = %d, %v; want 80, nil", n, err)
	}
}
