package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/veil-edge/veil/egress"
)

// pgSchemaVersion is stored in the schema_version table; OpenPostgres
// refuses a database written by a newer schema. It counts separately from
// SQLite's schemaVersion.
// Version 2 added the devices columns unsigned_reports, conflicts and
// conflict_ns.
const pgSchemaVersion = 2

// pgInitLock is the transaction-level advisory lock that serializes schema
// creation between processes opening one database at once (CREATE TABLE IF
// NOT EXISTS is not safe against a concurrent one).
const pgInitLock = 0x7665696c_68710001 // "veilhq" 1

// The text columns collate "C" (byte order, like SQLite's BINARY), so that
// Totals and Devices sort the same on any database locale.
const pgSchema = `
CREATE TABLE IF NOT EXISTS windows (
	device    text    COLLATE "C" NOT NULL,
	boot      bigint  NOT NULL, -- uint64 stored bit for bit as int64
	seq       bigint  NOT NULL, -- likewise
	store     text    COLLATE "C" NOT NULL,
	camera    text    COLLATE "C" NOT NULL,
	line      text    COLLATE "C" NOT NULL,
	start_s   bigint  NOT NULL, -- window start, Unix seconds (UTC)
	start_ns  integer NOT NULL, -- and nanoseconds within that second
	end_s     bigint  NOT NULL, -- window end, likewise
	end_ns    integer NOT NULL,
	in_count  bigint  NOT NULL,
	out_count bigint  NOT NULL,
	PRIMARY KEY (device, boot, seq)
);
CREATE INDEX IF NOT EXISTS windows_store_camera_start ON windows (store, camera, start_s, start_ns);
CREATE INDEX IF NOT EXISTS windows_start ON windows (start_s, start_ns);
CREATE TABLE IF NOT EXISTS devices (
	store     text    COLLATE "C" NOT NULL,
	device    text    COLLATE "C" NOT NULL,
	online    boolean NOT NULL DEFAULT false, -- offline or unknown
	status_ns bigint  NOT NULL DEFAULT 0,     -- when the status was received, Unix ns; 0 none
	last_ns   bigint  NOT NULL DEFAULT 0,     -- when the last new report was received, Unix ns; 0 none
	reports   bigint  NOT NULL DEFAULT 0,     -- reports stored
	PRIMARY KEY (store, device)
);
-- Version 2: an older database gets them here.
ALTER TABLE devices ADD COLUMN IF NOT EXISTS unsigned_reports bigint NOT NULL DEFAULT 0; -- of reports, stored without a signature
ALTER TABLE devices ADD COLUMN IF NOT EXISTS conflicts bigint NOT NULL DEFAULT 0;        -- reports refused: same identity as a stored one, different content
ALTER TABLE devices ADD COLUMN IF NOT EXISTS conflict_ns bigint NOT NULL DEFAULT 0;      -- when the last conflict was received, Unix ns; 0 none
`

// pgAdd inserts the reports (arrays, one per column, unnested into rows),
// skipping keys already stored, counts the new rows (and the unsigned ones,
// $13) per device, adds those counts to devices with last_ns $14, and
// returns the keys it inserted: one statement, so one round trip and its
// own transaction.
//
// Rows go in key order, and devices in (store, device) order, so that two
// calls inserting overlapping keys (two head-office processes) wait for each
// other in one order instead of deadlocking: the second waits until the
// first commits, then skips the keys the first stored. The caller removes
// duplicate keys first, keeping the first copy.
const pgAdd = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
		$7::bigint[], $8::integer[], $9::bigint[], $10::integer[], $11::bigint[], $12::bigint[], $13::boolean[])
		AS r (device, boot, seq, store, camera, line, start_s, start_ns, end_s, end_ns, in_count, out_count, unsigned)
), added AS (
	INSERT INTO windows (device, boot, seq, store, camera, line, start_s, start_ns, end_s, end_ns, in_count, out_count)
	SELECT device, boot, seq, store, camera, line, start_s, start_ns, end_s, end_ns, in_count, out_count FROM input
	ORDER BY device COLLATE "C", boot, seq
	ON CONFLICT (device, boot, seq) DO NOTHING
	RETURNING device, boot, seq
), news AS (
	SELECT i.store, i.device, count(*) AS n, count(*) FILTER (WHERE i.unsigned) AS u
	FROM added a JOIN input i ON i.device = a.device AND i.boot = a.boot AND i.seq = a.seq
	GROUP BY i.store, i.device
), noted AS (
	INSERT INTO devices AS d (store, device, last_ns, reports, unsigned_reports)
	SELECT store, device, $14::bigint, n, u FROM news ORDER BY store, device
	ON CONFLICT (store, device) DO UPDATE SET last_ns = excluded.last_ns, reports = d.reports + excluded.reports,
		unsigned_reports = d.unsigned_reports + excluded.unsigned_reports
)
SELECT device, boot, seq FROM added`

// pgStored reads the stored rows of the keys given as three arrays.
const pgStored = `
SELECT w.device, w.boot, w.seq, w.store, w.camera, w.line, w.start_s, w.start_ns, w.end_s, w.end_ns, w.in_count, w.out_count
FROM windows w JOIN unnest($1::text[], $2::bigint[], $3::bigint[]) AS k (device, boot, seq)
	ON w.device = k.device AND w.boot = k.boot AND w.seq = k.seq`

// pgConflicts adds conflicts to devices, in (store, device) order.
const pgConflicts = `
INSERT INTO devices AS d (store, device, conflicts, conflict_ns)
SELECT store, device, n, $4::bigint FROM unnest($1::text[], $2::text[], $3::bigint[]) AS c (store, device, n)
ORDER BY store, device
ON CONFLICT (store, device) DO UPDATE SET conflicts = d.conflicts + excluded.conflicts, conflict_ns = excluded.conflict_ns`

// pgRetries is how often Add and SetStatus try a statement that failed with
// a deadlock or a serialization failure. Adds do not deadlock each other
// (key order) and sessions run READ COMMITTED, so only another writer on the
// tables could cause one; each try is a whole transaction, so trying again
// is safe.
const pgRetries = 5

// Postgres is a Store in a PostgreSQL database, for a head office that runs
// several processes (or machines) on one database. It is safe for
// concurrent use, also by several processes on one database.
//
// It uses pgx's own interface through a pgxpool.Pool rather than
// database/sql: Add binds each column of a batch as one array parameter
// (unnest), which the native interface encodes directly, and each pooled
// connection caches its prepared statements; database/sql would add a layer
// and nothing Store needs.
type Postgres struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// OpenPostgres connects to the PostgreSQL database of dsn (a postgres:// URL
// or key=value pairs, as libpq takes; PG* environment variables fill in what
// it leaves out), creates the schema if missing, and checks its version.
// Errors never show the password. Close the Store when done.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	p, err := connectPostgres(ctx, dsn)
	if err != nil {
		return nil, redactError(err, dsn)
	}
	return p, nil
}

func connectPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("store: empty postgres DSN")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, with the password masked on a
		// best-effort basis; redactError makes sure.
		return nil, fmt.Errorf("store: postgres DSN: %w", err)
	}
	// Add relies on READ COMMITTED: a conflicting insert waits for the
	// other transaction and then skips the key, where SERIALIZABLE would
	// fail. Sent at connection start-up, it overrides the database's and
	// the role's defaults.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	where := fmt.Sprintf("postgres database %q on %s as %q", cfg.ConnConfig.Database, pgHost(cfg.ConnConfig), cfg.ConnConfig.User)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", where, err)
	}
	p := &Postgres{pool: pool, now: time.Now}
	if err := p.init(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: opening %s: %w", where, err)
	}
	return p, nil
}

// pgHost describes where cfg connects: host:port, or the unix socket's
// directory.
func pgHost(cfg *pgx.ConnConfig) string {
	if strings.HasPrefix(cfg.Host, "/") {
		return fmt.Sprintf("unix socket %s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

// pgPasswords finds the password values in a DSN: in a URL's user info and
// in password= or sslpassword= (URL query or key=value), raw and decoded.
var pgPasswords = []*regexp.Regexp{
	// user:password@ of a URL, up to the first '@' and, for a malformed
	// one, up to the last
	regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/?#]*:([^@/?#]*)@`),
	regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/?#]*:(.*)@`),
	regexp.MustCompile(`(?:^|[\s?&])(?:ssl)?password\s*=\s*'((?:[^'\\]|\\.)*)'`),
	regexp.MustCompile(`(?:^|[\s?&])(?:ssl)?password\s*=\s*([^\s&']+)`),
}

// redactError returns err, or, if its message contains a password of dsn,
// an error that says as much as it can without it.
func redactError(err error, dsn string) error {
	msg := err.Error()
	var secrets []string
	for _, re := range pgPasswords {
		for _, m := range re.FindAllStringSubmatch(dsn, -1) {
			secrets = append(secrets, m[1])
			if u, uerr := url.QueryUnescape(m[1]); uerr == nil {
				secrets = append(secrets, u)
			}
			if u, uerr := url.PathUnescape(m[1]); uerr == nil {
				secrets = append(secrets, u)
			}
			secrets = append(secrets, strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[1]))
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			return errors.New("store: postgres DSN: cannot be parsed or used (details withheld: they would show its password)")
		}
	}
	return err
}

// init checks the schema version and creates the schema if missing, under
// an advisory lock so that processes opening one database at once take
// turns.
func (p *Postgres) init(ctx context.Context) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(pgInitLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
		var v int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&v); err != nil {
			return err
		}
		if v > pgSchemaVersion {
			return fmt.Errorf("schema version %d is newer than this program's %d", v, pgSchemaVersion)
		}
		if v == pgSchemaVersion {
			return nil
		}
		if _, err := tx.Exec(ctx, pgSchema); err != nil {
			return fmt.Errorf("creating schema: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM schema_version"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO schema_version (version) VALUES ($1)", pgSchemaVersion)
		return err
	})
}

// Close closes the pool's connections, waiting for those in use.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// retry runs f until it succeeds, fails other than with a serialization
// failure or deadlock, ctx ends, or pgRetries tries have failed.
func retry(ctx context.Context, f func() error) error {
	var err error
	for try := 0; try < pgRetries; try++ {
		if err = f(); !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// Add implements Store: one statement (one round trip, one transaction)
// however many reports, when all are new. Reports not inserted are then
// compared with the stored rows, which a second statement reads (under READ
// COMMITTED it sees what other processes committed meanwhile), and
// conflicts are counted by a third. If Add fails after the first, its
// caller retries the batch, which is safe: what was stored is then a
// repeat.
func (p *Postgres) Add(ctx context.Context, reports ...egress.Report) (outcomes []Outcome, err error) {
	if err := validate(reports); err != nil {
		return nil, err
	}
	if len(reports) == 0 {
		return nil, nil
	}
	first := make(map[reportKey]int, len(reports)) // key → index of its first copy
	n := len(reports)
	var (
		device, store, camera, line = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		boot, seq, startS, endS     = make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
		in, out                     = make([]int64, 0, n), make([]int64, 0, n)
		startNS, endNS              = make([]int32, 0, n), make([]int32, 0, n)
		unsigned                    = make([]bool, 0, n)
	)
	for i, r := range reports {
		k := keyOf(r)
		if _, seen := first[k]; seen {
			continue // the first copy in the call is the one inserted
		}
		first[k] = i
		device, store, camera, line = append(device, r.Device), append(store, r.Store), append(camera, r.Camera), append(line, r.Line)
		boot, seq = append(boot, int64(r.Boot)), append(seq, int64(r.Seq))
		startS, startNS = append(startS, r.Start.Unix()), append(startNS, int32(r.Start.Nanosecond()))
		endS, endNS = append(endS, r.End.Unix()), append(endNS, int32(r.End.Nanosecond()))
		in, out = append(in, int64(r.In)), append(out, int64(r.Out))
		unsigned = append(unsigned, r.Sig == "")
	}
	now := p.now().UnixNano()
	var inserted map[reportKey]bool
	err = retry(ctx, func() error {
		inserted = make(map[reportKey]bool, len(first))
		rows, err := p.pool.Query(ctx, pgAdd, device, boot, seq, store, camera, line,
			startS, startNS, endS, endNS, in, out, unsigned, now)
		if err != nil {
			return err
		}
		var k reportKey
		var b, q int64
		_, err = pgx.ForEachRow(rows, []any{&k.device, &b, &q}, func() error {
			k.boot, k.seq = uint64(b), uint64(q)
			inserted[k] = true
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: adding %d reports: %w", len(reports), err)
	}
	outcomes = make([]Outcome, len(reports))
	var rest []int // reports not inserted: compared with the stored rows
	for i, r := range reports {
		if k := keyOf(r); inserted[k] && first[k] == i {
			outcomes[i] = Added
		} else {
			rest = append(rest, i)
		}
	}
	if len(rest) == 0 {
		return outcomes, nil
	}
	stored, err := p.stored(ctx, reports, rest)
	if err != nil {
		return nil, err
	}
	conflicts := map[deviceKey]*deviceCounts{}
	for _, i := range rest {
		r := reports[i]
		c, ok := stored[keyOf(r)]
		if !ok {
			return nil, fmt.Errorf("store: report (device %q boot %d seq %d) neither inserted nor stored", r.Device, r.Boot, r.Seq)
		}
		outcomes[i] = Repeat
		if c != contentOf(r) {
			outcomes[i] = Conflict
			tally(conflicts, r, Conflict)
		}
	}
	if len(conflicts) > 0 {
		var cs, cd []string
		var cn []int64
		for _, d := range sortedDevices(conflicts) {
			cs, cd, cn = append(cs, d.store), append(cd, d.device), append(cn, conflicts[d].conflicts)
		}
		err := retry(ctx, func() error {
			_, err := p.pool.Exec(ctx, pgConflicts, cs, cd, cn, now)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("store: noting conflicting reports: %w", err)
		}
	}
	return outcomes, nil
}

// stored reads the stored content of the keys of reports[i] for i in idx.
func (p *Postgres) stored(ctx context.Context, reports []egress.Report, idx []int) (map[reportKey]content, error) {
	var device []string
	var boot, seq []int64
	for _, i := range idx {
		r := reports[i]
		device, boot, seq = append(device, r.Device), append(boot, int64(r.Boot)), append(seq, int64(r.Seq))
	}
	rows, err := p.pool.Query(ctx, pgStored, device, boot, seq)
	if err != nil {
		return nil, fmt.Errorf("store: reading stored reports: %w", err)
	}
	out := make(map[reportKey]content, len(idx))
	var (
		k              reportKey
		b, q           int64
		c              content
		startNS, endNS int32
	)
	_, err = pgx.ForEachRow(rows, []any{&k.device, &b, &q, &c.store, &c.camera, &c.line, &c.startS, &startNS, &c.endS, &endNS, &c.in, &c.out}, func() error {
		k.boot, k.seq = uint64(b), uint64(q)
		c.startNS, c.endNS = int64(startNS), int64(endNS)
		out[k] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading stored reports: %w", err)
	}
	return out, nil
}

// Totals implements Store.
func (p *Postgres) Totals(ctx context.Context, q Query) ([]Total, error) {
	size, err := q.bucketSeconds()
	if err != nil {
		return nil, err
	}
	var where []string
	args := []any{size}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Store != "" {
		where = append(where, "store = "+arg(q.Store))
	}
	if q.Camera != "" {
		where = append(where, "camera = "+arg(q.Camera))
	}
	if !q.From.IsZero() {
		where = append(where, fmt.Sprintf("(start_s, start_ns) >= (%s::bigint, %s::integer)",
			arg(q.From.Unix()), arg(int32(q.From.Nanosecond()))))
	}
	if !q.To.IsZero() {
		where = append(where, fmt.Sprintf("(start_s, start_ns) < (%s::bigint, %s::integer)",
			arg(q.To.Unix()), arg(int32(q.To.Nanosecond()))))
	}
	// start_s is never negative (egress.Report allows years 1970..9999), so
	// start_s % size is the offset into the bucket.
	query := `SELECT store, camera, line,
		start_s - start_s % $1::bigint AS bucket,
		sum(in_count)::bigint, sum(out_count)::bigint
		FROM windows`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " GROUP BY store, camera, line, bucket ORDER BY store, camera, line, bucket"

	rows, err := p.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: totals: %w", err)
	}
	defer rows.Close()
	var out []Total
	for rows.Next() {
		var t Total
		var bucket int64
		if err := rows.Scan(&t.Store, &t.Camera, &t.Line, &bucket, &t.In, &t.Out); err != nil {
			return nil, fmt.Errorf("store: totals: %w", err)
		}
		t.Start = time.Unix(bucket, 0).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: totals: %w", err)
	}
	return out, nil
}

// SetStatus implements Store.
func (p *Postgres) SetStatus(ctx context.Context, store, device string, online bool, at time.Time) error {
	if err := checkDevice(store, device); err != nil {
		return err
	}
	err := retry(ctx, func() error {
		_, err := p.pool.Exec(ctx, `INSERT INTO devices AS d (store, device, online, status_ns) VALUES ($1, $2, $3, $4)
			ON CONFLICT (store, device) DO UPDATE SET online = excluded.online, status_ns = excluded.status_ns
			WHERE excluded.status_ns >= d.status_ns`,
			store, device, online, at.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: status of %s/%s: %w", store, device, err)
	}
	return nil
}

// Devices implements Store.
func (p *Postgres) Devices(ctx context.Context) ([]Device, error) {
	rows, err := p.pool.Query(ctx, `SELECT store, device, online, status_ns, last_ns, reports,
		unsigned_reports, conflicts, conflict_ns
		FROM devices ORDER BY store, device`)
	if err != nil {
		return nil, fmt.Errorf("store: devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var statusNS, lastNS, conflictNS int64
		if err := rows.Scan(&d.Store, &d.Device, &d.Online, &statusNS, &lastNS, &d.Reports,
			&d.Unsigned, &d.Conflicts, &conflictNS); err != nil {
			return nil, fmt.Errorf("store: devices: %w", err)
		}
		d.StatusAt, d.LastReport, d.LastConflict = unixNano(statusNS), unixNano(lastNS), unixNano(conflictNS)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: devices: %w", err)
	}
	return out, nil
}
