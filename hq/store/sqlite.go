package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/veil-edge/veil/egress"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// schemaVersion is stored in PRAGMA user_version; Open refuses a database
// written by a newer schema.
// Version 3 added the devices columns unsigned_reports, conflicts and
// conflict_ns.
const schemaVersion = 3

// busyTimeout is how long a statement waits for another connection's lock.
const busyTimeout = 10 * time.Second

const schema = `
CREATE TABLE IF NOT EXISTS windows (
	device    TEXT    NOT NULL,
	boot      INTEGER NOT NULL, -- uint64 stored bit for bit as int64
	seq       INTEGER NOT NULL, -- likewise
	store     TEXT    NOT NULL,
	camera    TEXT    NOT NULL,
	line      TEXT    NOT NULL,
	start_s   INTEGER NOT NULL, -- window start, Unix seconds (UTC)
	start_ns  INTEGER NOT NULL, -- and nanoseconds within that second
	end_s     INTEGER NOT NULL, -- window end, likewise
	end_ns    INTEGER NOT NULL,
	in_count  INTEGER NOT NULL,
	out_count INTEGER NOT NULL,
	PRIMARY KEY (device, boot, seq)
) STRICT;
CREATE INDEX IF NOT EXISTS windows_store_camera_start ON windows (store, camera, start_s);
CREATE INDEX IF NOT EXISTS windows_start ON windows (start_s);
CREATE TABLE IF NOT EXISTS devices (
	store       TEXT    NOT NULL,
	device      TEXT    NOT NULL,
	online      INTEGER NOT NULL DEFAULT 0, -- 1 online, 0 offline or unknown
	status_ns   INTEGER NOT NULL DEFAULT 0, -- when the status was received, Unix ns; 0 none
	last_ns     INTEGER NOT NULL DEFAULT 0, -- when the last new report was received, Unix ns; 0 none
	reports     INTEGER NOT NULL DEFAULT 0, -- reports stored
	unsigned_reports INTEGER NOT NULL DEFAULT 0, -- of which stored without a signature
	conflicts   INTEGER NOT NULL DEFAULT 0, -- reports refused: same identity as a stored one, different content
	conflict_ns INTEGER NOT NULL DEFAULT 0, -- when the last conflict was received, Unix ns; 0 none
	PRIMARY KEY (store, device)
) STRICT;
`

// addedColumns are the devices columns added since schema version 2, which
// an older database gets with ALTER TABLE.
var addedColumns = []struct{ name, def string }{
	{"unsigned_reports", "INTEGER NOT NULL DEFAULT 0"},
	{"conflicts", "INTEGER NOT NULL DEFAULT 0"},
	{"conflict_ns", "INTEGER NOT NULL DEFAULT 0"},
}

// SQLite is a Store in an embedded SQLite database file. It is safe for
// concurrent use, also by several processes on one file.
type SQLite struct {
	db  *sql.DB
	now func() time.Time
}

// OpenSQLite opens the SQLite database at path, creating the file and its schema if
// missing, and sets WAL mode and a busy timeout. Close the Store when done.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	// A file: URI with the path escaped, so that '?', '#' or '%' in it are
	// not taken for the query.
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	s := &SQLite{db: db, now: time.Now}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	return s, nil
}

// init checks the schema version and creates the schema if missing.
func (s *SQLite) init(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this program's %d", v, schemaVersion)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("creating schema: %w", err)
	}
	if v < schemaVersion {
		if err := addColumns(ctx, tx); err != nil {
			return fmt.Errorf("upgrading schema from version %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// addColumns adds the addedColumns that devices lacks.
func addColumns(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info('devices')")
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		have[name] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range addedColumns {
		if !have[c.name] {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE devices ADD COLUMN "+c.name+" "+c.def); err != nil {
				return fmt.Errorf("adding column devices.%s: %w", c.name, err)
			}
		}
	}
	return nil
}

// Close closes the database.
func (s *SQLite) Close() error {
	return s.db.Close()
}

// Add implements Store in one transaction.
func (s *SQLite) Add(ctx context.Context, reports ...egress.Report) (outcomes []Outcome, err error) {
	if err := validate(reports); err != nil {
		return nil, err
	}
	if len(reports) == 0 {
		return nil, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: adding reports: %w", err)
	}
	defer tx.Rollback()
	insert, err := tx.PrepareContext(ctx, `INSERT INTO windows
		(device, boot, seq, store, camera, line, start_s, start_ns, end_s, end_ns, in_count, out_count)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device, boot, seq) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("store: adding reports: %w", err)
	}
	defer insert.Close()
	stored, err := tx.PrepareContext(ctx, `SELECT store, camera, line, start_s, start_ns, end_s, end_ns, in_count, out_count
		FROM windows WHERE device = ? AND boot = ? AND seq = ?`)
	if err != nil {
		return nil, fmt.Errorf("store: adding reports: %w", err)
	}
	defer stored.Close()
	outcomes = make([]Outcome, len(reports))
	counts := map[deviceKey]*deviceCounts{}
	for i, r := range reports {
		res, err := insert.ExecContext(ctx,
			r.Device, int64(r.Boot), int64(r.Seq), r.Store, r.Camera, r.Line,
			r.Start.Unix(), r.Start.Nanosecond(), r.End.Unix(), r.End.Nanosecond(),
			r.In, r.Out)
		if err != nil {
			return nil, fmt.Errorf("store: adding report (device %q boot %d seq %d): %w", r.Device, r.Boot, r.Seq, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("store: adding reports: %w", err)
		}
		outcomes[i] = Added
		if n == 0 {
			var c content
			if err := stored.QueryRowContext(ctx, r.Device, int64(r.Boot), int64(r.Seq)).Scan(
				&c.store, &c.camera, &c.line, &c.startS, &c.startNS, &c.endS, &c.endNS, &c.in, &c.out); err != nil {
				return nil, fmt.Errorf("store: reading stored report (device %q boot %d seq %d): %w", r.Device, r.Boot, r.Seq, err)
			}
			outcomes[i] = Repeat
			if c != contentOf(r) {
				outcomes[i] = Conflict
			}
		}
		tally(counts, r, outcomes[i])
	}
	now := s.now().UnixNano()
	for _, d := range sortedDevices(counts) {
		c := counts[d]
		if c.added > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO devices (store, device, last_ns, reports, unsigned_reports) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (store, device) DO UPDATE SET last_ns = excluded.last_ns, reports = reports + excluded.reports,
				unsigned_reports = unsigned_reports + excluded.unsigned_reports`,
				d.store, d.device, now, c.added, c.unsigned); err != nil {
				return nil, fmt.Errorf("store: noting device %s/%s: %w", d.store, d.device, err)
			}
		}
		if c.conflicts > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO devices (store, device, conflicts, conflict_ns) VALUES (?, ?, ?, ?)
				ON CONFLICT (store, device) DO UPDATE SET conflicts = conflicts + excluded.conflicts, conflict_ns = excluded.conflict_ns`,
				d.store, d.device, c.conflicts, now); err != nil {
				return nil, fmt.Errorf("store: noting conflicts of device %s/%s: %w", d.store, d.device, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: adding reports: %w", err)
	}
	return outcomes, nil
}

// Totals sums In and Out of the stored windows q selects, grouped by store,
// camera, line and the UTC hour or day in which each window starts (a window
// counts wholly in the bucket of its Start). The result is sorted by store,
// camera, line, then Start.
func (s *SQLite) Totals(ctx context.Context, q Query) ([]Total, error) {
	size, err := q.bucketSeconds()
	if err != nil {
		return nil, err
	}
	var where []string
	args := []any{size}
	if q.Store != "" {
		where = append(where, "store = ?")
		args = append(args, q.Store)
	}
	if q.Camera != "" {
		where = append(where, "camera = ?")
		args = append(args, q.Camera)
	}
	if !q.From.IsZero() {
		where = append(where, "(start_s > ? OR start_s = ? AND start_ns >= ?)")
		args = append(args, q.From.Unix(), q.From.Unix(), q.From.Nanosecond())
	}
	if !q.To.IsZero() {
		where = append(where, "(start_s < ? OR start_s = ? AND start_ns < ?)")
		args = append(args, q.To.Unix(), q.To.Unix(), q.To.Nanosecond())
	}
	query := `SELECT store, camera, line,
		start_s - start_s % ? AS bucket,
		SUM(in_count), SUM(out_count)
		FROM windows`
	// start_s is never negative (egress.Report allows years 1970..9999), so
	// start_s % size is the offset into the bucket.
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " GROUP BY store, camera, line, bucket ORDER BY store, camera, line, bucket"

	rows, err := s.db.QueryContext(ctx, query, args...)
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
func (s *SQLite) SetStatus(ctx context.Context, store, device string, online bool, at time.Time) error {
	if err := checkDevice(store, device); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO devices (store, device, online, status_ns) VALUES (?, ?, ?, ?)
		ON CONFLICT (store, device) DO UPDATE SET online = excluded.online, status_ns = excluded.status_ns
		WHERE excluded.status_ns >= devices.status_ns`,
		store, device, online, at.UnixNano())
	if err != nil {
		return fmt.Errorf("store: status of %s/%s: %w", store, device, err)
	}
	return nil
}

// Devices implements Store.
func (s *SQLite) Devices(ctx context.Context) ([]Device, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT store, device, online, status_ns, last_ns, reports,
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
