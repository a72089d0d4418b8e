package store

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/egress"
)

func TestSQLiteReopen(t *testing.T) {
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
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}

	s = openSQLite(t, path)
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

func TestSQLiteOpenErrors(t *testing.T) {
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
	s := openSQLite(t, path)
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

// TestSQLiteUpgrade: a database of schema version 2 (no unsigned or
// conflict columns) opens, keeps its rows and counts conflicts.
func TestSQLiteUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hq.db")
	old := openSQLite(t, path)
	for _, q := range []string{
		"DROP TABLE devices",
		`CREATE TABLE devices (store TEXT NOT NULL, device TEXT NOT NULL, online INTEGER NOT NULL DEFAULT 0,
			status_ns INTEGER NOT NULL DEFAULT 0, last_ns INTEGER NOT NULL DEFAULT 0, reports INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (store, device)) STRICT`,
		"PRAGMA user_version = 2",
	} {
		if _, err := old.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.now = func() time.Time { return t0 }
	r := report("a", 1, 1)
	if _, err := old.db.Exec(`INSERT INTO windows VALUES (?, 1, 1, ?, ?, ?, ?, 0, ?, 0, ?, ?)`,
		r.Device, r.Store, r.Camera, r.Line, r.Start.Unix(), r.End.Unix(), r.In, r.Out); err != nil {
		t.Fatal(err)
	}
	if _, err := old.db.Exec(`INSERT INTO devices (store, device, last_ns, reports) VALUES (?, ?, ?, 1)`, r.Store, r.Device, t0.UnixNano()); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openSQLite(t, path)
	s.now = func() time.Time { return t0.Add(time.Hour) }
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("user_version %d, %v; want %d", v, err, schemaVersion)
	}
	checkUpgraded(t, ctx, s, r)
}
