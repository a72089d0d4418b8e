package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, Stop) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStartGivesFreshDatabases(t *testing.T) {
	ctx := t.Context()
	a, b := connect(t, Start(t)), connect(t, Start(t))
	if _, err := a.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var x int
	if err := a.QueryRow(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 42 {
		t.Errorf("read back %d, %v; want 42", x, err)
	}
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 't'").Scan(&n); err != nil || n != 0 {
		t.Errorf("second database has %d tables t (%v); want a fresh one", n, err)
	}
	for _, tc := range []struct{ setting, want string }{
		{"listen_addresses", ""}, // unix socket only
		{"server_encoding", "UTF8"},
		{"lc_collate", "C"},
	} {
		var got string
		if err := a.QueryRow(ctx, "SELECT current_setting($1)", tc.setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s = %q, want %q", tc.setting, got, tc.want)
		}
	}
}

func TestNewServerStops(t *testing.T) {
	s := NewServer(t)
	dsn := s.CreateDB(t)
	conn := connect(t, dsn)
	var pid int
	if err := conn.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// As root, the server runs as the postgres user.
	fi, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; os.Geteuid() == 0 && uid == 0 {
		t.Errorf("backend %d runs as root", pid)
	}
	conn.Close(context.Background())

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(s.SocketDir()); !os.IsNotExist(err) {
		t.Errorf("server directory left behind: %v", err)
	}
	if c, err := pgx.Connect(t.Context(), dsn); err == nil {
		c.Close(context.Background())
		t.Error("connected after Stop")
	}
}

func TestNewestBinDir(t *testing.T) {
	root := t.TempDir()
	mk := func(version string, bins ...string) {
		dir := filepath.Join(root, version, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range bins {
			if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name, add string
		bins      []string
		want      string // version; "" for an error
	}{
		{"none", "", nil, ""},
		{"client only", "16", []string{"psql"}, ""},
		{"old", "9.6", []string{"initdb", "postgres"}, "9.6"},
		{"newer", "15", []string{"initdb", "postgres"}, "15"},
		{"not a version", "latest", []string{"initdb", "postgres"}, "15"},
		{"newest without postgres", "17", []string{"initdb"}, "15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.add != "" {
				mk(tc.add, tc.bins...)
			}
			got, err := newestBinDir(root)
			if tc.want == "" {
				if err == nil {
					t.Errorf("got %s, want an error", got)
				}
				return
			}
			if want := filepath.Join(root, tc.want, "bin"); got != want || err != nil {
				t.Errorf("got %q, %v; want %q", got, err, want)
			}
		})
	}
}
