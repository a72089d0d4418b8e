package consent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzVerifyLedger: VerifyLedger never panics, blames a line that exists,
// and a file it accepts can be opened and appended to and still verifies.
func FuzzVerifyLedger(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.jsonl")
	l, err := OpenLedger(path)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range sampleLedgerEntries() {
		e.Time = ledgerT0
		if _, err := l.Append(e); err != nil {
			f.Fatal(err)
		}
	}
	good, _ := os.ReadFile(path)
	f.Add(good)
	if _, err := l.Purge(ledgerAt(1)); err != nil {
		f.Fatal(err)
	}
	purged, _ := os.ReadFile(path)
	f.Add(purged)
	l.Close()
	f.Add(good[:len(good)-7])
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte("null\n"))
	f.Add([]byte(`{"seq":1,"seq":1}` + "\n"))
	f.Add(bytes.ReplaceAll(good, []byte(`"c1"`), []byte(`"c9"`)))

	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "ledger.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(data, []byte("\n"))
		n, err := VerifyLedger(path)
		if err != nil {
			var le *LedgerError
			if !errors.As(err, &le) {
				t.Fatalf("VerifyLedger: %v is not a *LedgerError", err)
			}
			if le.Line < 1 || le.Line > lines+1 || n != le.Line-1 {
				t.Fatalf("VerifyLedger = %d, %v for a file of %d full lines", n, err, lines)
			}
			return
		}
		if n != lines {
			t.Fatalf("VerifyLedger = %d for %d lines", n, lines)
		}
		l, err := OpenLedger(path)
		if err != nil {
			t.Fatalf("OpenLedger of a file that verifies: %v", err)
		}
		_, aerr := l.Append(Entry{Type: EventGrant, ConsentID: "x"})
		l.Close()
		if aerr != nil {
			// Only a seq at its maximum can stop the chain.
			t.Logf("Append: %v", aerr)
			return
		}
		if m, err := VerifyLedger(path); m != n+1 || err != nil {
			t.Fatalf("after Append: VerifyLedger = %d, %v; want %d", m, err, n+1)
		}
	})
}
