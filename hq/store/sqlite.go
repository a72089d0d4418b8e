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
const schemaVersion = 2

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
	PRIMARY KEY (store, device)
) STRICT;
`

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
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Close closes the database.
func (s *SQLite) Close() error {
	return s.db.Close()
}

// Add stores reports in one transaction and returns how many were new. It
// validates every report first and stores nothing if any is invalid; the
// error then names the report and its bad field, and wraps egress.ErrInvalid.
// A report whose (Device, Boot, Seq) is already stored, or appears earlier in
// the same call, is skipped without error, even if its content differs: the
// first copy stays.
func (s *SQLite) Add(ctx context.Context, reports ...egress.Report) (added int, err error) {
	if err := validate(reports); err != nil {
		return 0, err
	}
	if len(reports) == 0 {
		return 0, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: adding reports: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO windows
		(device, boot, seq, store, camera, line, start_s, start_ns, end_s, end_ns, in_count, out_count)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device, boot, seq) DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("store: adding reports: %w", err)
	}
	defer stmt.Close()
	news := map[deviceKey]int64{}
	for _, r := range reports {
		res, err := stmt.ExecContext(ctx,
			r.Device, int64(r.Boot), int64(r.Seq), r.Store, r.Camera, r.Line,
			r.Start.Unix(), r.Start.Nanosecond(), r.End.Unix(), r.End.Nanosecond(),
			r.In, r.Out)
		if err != nil {
			return 0, fmt.Errorf("store: adding report (device %q boot %d seq %d): %w", r.Device, r.Boot, r.Seq, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("store: adding reports: %w", err)
		}
		added += int(n)
		if n > 0 {
			news[deviceKey{r.Store, r.Device}]++
		}
	}
	now := s.now().UnixNano()
	for d, n := range news {
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (store, device, last_ns, reports) VALUES (?, ?, ?, ?)
			ON CONFLICT (store, device) DO UPDATE SET last_ns = excluded.last_ns, reports = reports + excluded.reports`,
			d.store, d.device, now, n); err != nil {
			return 0, fmt.Errorf("store: noting device %s/%s: %w", d.store, d.device, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: adding reports: %w", err)
	}
	return added, nil
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
	rows, err := s.db.QueryContext(ctx, `SELECT store, device, online, status_ns, last_ns, reports
		FROM devices ORDER BY store, device`)
	if err != nil {
		return nil, fmt.Errorf("store: devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var statusNS, lastNS int64
		if err := rows.Scan(&d.Store, &d.Device, &d.Online, &statusNS, &lastNS, &d.Reports); err != nil {
			return nil, fmt.Errorf("store: devices: %w", err)
		}
		d.StatusAt, d.LastReport = unixNano(statusNS), unixNano(lastNS)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: devices: %w", err)
	}
	return out, nil
}
