package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-edge/veil/testkit/pgtest"
)

func TestPostgresNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	s := openPostgres(t, dsn)
	if _, err := s.Add(ctx, report("a", 1, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openPostgres(t, dsn) // the same version: opens
	if _, err := s.pool.Exec(ctx, "UPDATE schema_version SET version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := OpenPostgres(ctx, dsn); err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open of a newer schema: error %v", err)
	}
}

func TestPostgresConcurrentOpen(t *testing.T) {
	// Processes starting at once on a new database must not trip over each
	// other creating the schema.
	dsn := pgtest.Start(t)
	const n = 4
	stores := make([]*Postgres, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = OpenPostgres(context.Background(), dsn) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Error(errs[i])
			continue
		}
		stores[i].Close()
	}
}

func TestPostgresReadCommitted(t *testing.T) {
	// Add relies on READ COMMITTED (waiting for a concurrent insert of the
	// same key, then skipping it), whatever the database's default.
	ctx := context.Background()
	dsn := pgtest.Start(t)
	s := openPostgres(t, dsn)
	var db string
	if err := s.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ALTER DATABASE "+db+" SET default_transaction_isolation = 'serializable'"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openPostgres(t, dsn)
	var level string
	if err := s.pool.QueryRow(ctx, "SHOW transaction_isolation").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "read committed" {
		t.Errorf("transaction_isolation %q, want read committed", level)
	}
}

func TestPostgresOpenErrors(t *testing.T) {
	dsn := pgtest.Start(t)
	host := strings.Fields(dsn)[0] // host='/tmp/pgtest-…'
	const pw = "Sup3rSecretPw"
	for _, tc := range []struct {
		name, dsn string
		want      string // in the error
	}{
		{"empty", "", "empty postgres DSN"},
		{"not a DSN", "this is not a DSN", "postgres DSN"},
		{"bad URL port", "postgres://hq:" + pw + "@localhost:notaport/hq", "postgres DSN"},
		{"bad URL escape", "postgres://hq:" + pw + "%zz@localhost/hq", "postgres DSN"},
		{"escaped password", "postgres://hq:" + pw + "%40x@localhost:99999/hq", "postgres DSN"},
		{"bad port", "host=/nowhere password=" + pw + " port=notaport", "postgres DSN"},
		// pgx's own masking misses this one: OpenPostgres withholds the details.
		{"spaced password", "host=/nowhere password = " + pw + " port=notaport", "details withheld"},
		{"quoted password unterminated", "host=/nowhere password='" + pw + " x", "postgres DSN"},
		{"no server", "host=/nonexistent-dir port=5432 dbname=hq user=hq password=" + pw + " connect_timeout=5",
			`postgres database "hq" on unix socket /nonexistent-dir/.s.PGSQL.5432 as "hq"`},
		{"no such database", host + " port=5432 user=postgres dbname=nosuchdb password='" + pw + "' connect_timeout=5",
			`"nosuchdb" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenPostgres(context.Background(), tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("OpenPostgres succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "store: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want one starting store: and mentioning %q", msg, tc.want)
			}
			if strings.Contains(msg, pw) || strings.Contains(msg, "Sup3r") {
				t.Errorf("error shows the password: %q", msg)
			}
		})
	}
}

func TestRedactError(t *testing.T) {
	const pw = "Sup3rSecretPw"
	for _, tc := range []struct {
		name, dsn, msg string
		redacted       bool
	}{
		{"no password", "host=/x dbname=hq", "cannot parse `host=/x dbname=hq`", false},
		{"masked by pgx", "postgres://hq:" + pw + "@h/hq", "cannot parse `postgres://hq:xxxxx@h/hq`", false},
		{"URL password", "postgres://hq:" + pw + "@h/hq", "cannot parse `postgres://hq:" + pw + "@h/hq`", true},
		{"URL password decoded", "postgres://hq:" + pw + "%21@h/hq", "password " + pw + "! is wrong", true},
		{"URL password with @", "postgres://hq:a@" + pw + "@h:x/hq", "near " + "a@" + pw, true},
		{"URL query password", "postgres://h/hq?sslmode=disable&password=" + pw, "bad `" + pw + "`", true},
		{"keyword", "host=/x password=" + pw + " port=x", "`host=/x password=" + pw + " port=x`", true},
		{"keyword spaced", "host=/x password = " + pw, "`password = " + pw + "`", true},
		{"keyword quoted", `host=/x password='` + pw + ` x\'y'`, "`" + pw + ` x'y` + "`", true},
		{"sslpassword", "host=/x sslpassword=" + pw, "key " + pw, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := redactError(errors.New(tc.msg), tc.dsn)
			if strings.Contains(err.Error(), pw) {
				t.Errorf("%q shows the password", err)
			}
			if got := err.Error() != tc.msg; got != tc.redacted {
				t.Errorf("redacted %v, want %v: %q", got, tc.redacted, err)
			}
		})
	}
}

// TestPostgresUpgrade: a database of schema version 1 (no unsigned or
// conflict columns) opens, keeps its rows and counts conflicts.
func TestPostgresUpgrade(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t)
	old := openPostgres(t, dsn)
	old.now = func() time.Time { return t0 }
	r := report("a", 1, 1)
	if _, err := old.Add(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"ALTER TABLE devices DROP COLUMN unsigned_reports, DROP COLUMN conflicts, DROP COLUMN conflict_ns",
		"UPDATE schema_version SET version = 1",
	} {
		if _, err := old.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s := openPostgres(t, dsn)
	s.now = func() time.Time { return t0.Add(time.Hour) }
	var v int
	if err := s.pool.QueryRow(ctx, "SELECT version FROM schema_version").Scan(&v); err != nil || v != pgSchemaVersion {
		t.Fatalf("schema version %d, %v; want %d", v, err, pgSchemaVersion)
	}
	checkUpgraded(t, ctx, s, r)
}
