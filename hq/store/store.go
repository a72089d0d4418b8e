// Package store is head office's storage of footfall windows: the counting
// reports (egress.Report) that shop boxes publish, de-duplicated on their
// identity and summed for queries, and what head office knows of each device
// (status, last report). Store is the interface; SQLite (embedded, pure Go,
// the default) and Postgres implement it.
//
// # Storage
//
// One table, windows, holds one row per report, keyed by (device, boot, seq),
// the identity a report keeps forever. Because delivery is at least once, Add
// ignores a report whose key is already stored, even when its content differs:
// the first copy stored wins. A second table, devices, keyed by (store,
// device), holds each device's last status and last report time.
//
// Times are stored as UTC Unix time, whole seconds and nanoseconds in separate
// integer columns (start_s, start_ns, end_s, end_ns), so they round-trip
// exactly and bucket by arithmetic. Boot and Seq are uint64 on the wire but
// SQL integers are signed 64-bit: they are stored bit for bit as int64, so
// values above math.MaxInt64 read back negative in SQL yet stay distinct.
//
// SQLite runs in WAL mode with a busy timeout, and write transactions begin
// IMMEDIATE, so several writers (or several processes) wait for each other
// instead of failing with SQLITE_BUSY.
//
// Postgres has the same tables and columns (bigint, text collated "C" so
// that sorting is byte order as in SQLite, boolean online) and a
// schema_version table in place of SQLite's user_version. Its Add is one
// statement whatever the batch size: the batch's columns travel as arrays,
// unnested into an INSERT ... ON CONFLICT DO NOTHING RETURNING whose rows
// update devices in the same statement. Rows are inserted in key order, and
// sessions run READ COMMITTED, so processes adding overlapping batches wait
// for each other and then skip what the other stored, without deadlock.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/veil-edge/veil/egress"
)

// Store is head office's database of footfall windows and of the devices
// that sent them. SQLite (embedded, the default) and Postgres implement it;
// both are safe for concurrent use and behave the same (conformance_test.go
// runs one suite against both).
type Store interface {
	// Add stores reports in one transaction and returns how many were new.
	// It validates every report first and stores nothing if any is invalid;
	// the error then names the report and its bad field, and wraps
	// egress.ErrInvalid. A report whose (Device, Boot, Seq) is already
	// stored, or appears earlier in the same call, is skipped without error,
	// even if its content differs: the first copy stays. Every device with a
	// new report in the call gets LastReport set to now and Reports
	// increased by its new reports; repeats change neither.
	Add(ctx context.Context, reports ...egress.Report) (added int, err error)
	// Totals sums In and Out of the stored windows q selects, grouped by
	// store, camera, line and the UTC hour or day in which each window starts
	// (a window counts wholly in the bucket of its Start). The result is
	// sorted by store, camera, line, then Start.
	Totals(ctx context.Context, q Query) ([]Total, error)
	// SetStatus records a device's status as published on its status topic
	// (egress.StatusOnline or egress.StatusOffline) at time at. A status
	// older than the one stored is ignored.
	SetStatus(ctx context.Context, store, device string, online bool, at time.Time) error
	// Devices lists every device that sent a report or a status, sorted by
	// store then device.
	Devices(ctx context.Context) ([]Device, error)
	// Close closes the database.
	Close() error
}

// Bucket sizes for Query.Bucket.
const (
	Hour = "hour"
	Day  = "day"
)

// Query selects and groups windows for Totals.
type Query struct {
	Store  string    // only this store; "" for all
	Camera string    // only this camera; "" for all
	From   time.Time // only windows starting at or after From; zero for no bound
	To     time.Time // only windows starting before To; zero for no bound
	Bucket string    // Hour or Day: UTC hours or UTC days
}

// Total is the sum of the windows of one counting line whose Start falls in
// one bucket.
type Total struct {
	Store, Camera, Line string
	Start               time.Time // the bucket's start, in UTC
	In, Out             int64
}

// Device is one shop box as head office knows it.
type Device struct {
	Store, Device string
	// Online is the last status the device published (its retained status
	// or, when the connection was lost, its last will); false if none yet.
	Online   bool
	StatusAt time.Time // when that status was received; zero if none yet
	// LastReport is when head office last received a new report from it;
	// zero if none yet.
	LastReport time.Time
	Reports    int64 // reports stored, duplicates not counted
}

// bucketSeconds checks q and returns its bucket size in seconds.
func (q Query) bucketSeconds() (int64, error) {
	var size int64
	switch q.Bucket {
	case Hour:
		size = 3600
	case Day:
		size = 86400 // Unix time has no leap seconds: days are exact
	default:
		return 0, fmt.Errorf("store: query bucket %q; allowed %q or %q", q.Bucket, Hour, Day)
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return 0, fmt.Errorf("store: query to %s is not after from %s",
			q.To.UTC().Format(time.RFC3339Nano), q.From.UTC().Format(time.RFC3339Nano))
	}
	return size, nil
}

// validate checks every report of a call to Add.
func validate(reports []egress.Report) error {
	for i, r := range reports {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("store: report %d of %d (device %q boot %d seq %d): %w",
				i+1, len(reports), r.Device, r.Boot, r.Seq, err)
		}
	}
	return nil
}

// checkDevice checks the names of SetStatus by the rule of a report's.
func checkDevice(store, device string) error {
	for _, f := range [...]struct{ name, v string }{{"store", store}, {"device", device}} {
		if p := egress.NameProblem(f.v); p != "" {
			return fmt.Errorf("store: status of %q/%q: report %s: %s: %w", store, device, f.name, p, egress.ErrInvalid)
		}
	}
	return nil
}

type deviceKey struct{ store, device string }

// unixNano is the time of ns Unix nanoseconds in UTC, or zero for 0.
func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
