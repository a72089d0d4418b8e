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
// stores a report only if its key is not stored yet: the first copy stored
// wins. A later copy with the same content is a Repeat and changes nothing; one
// with different content is a Conflict: not stored, and counted on its
// device. A second table, devices, keyed by (store, device), holds each
// device's last status and last report time, how many of its stored reports
// were unsigned, and its conflicts.
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
// statement whatever the batch size when every report is new: the batch's
// columns travel as arrays, unnested into an INSERT ... ON CONFLICT DO
// NOTHING RETURNING whose rows update devices in the same statement. Rows
// are inserted in key order, and sessions run READ COMMITTED, so processes
// adding overlapping batches wait for each other and then skip what the
// other stored, without deadlock. Reports not inserted are then compared
// with the stored rows (a second statement) and conflicts counted on their
// devices (a third, only if there are any).
package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/veil-edge/veil/egress"
)

// Store is head office's database of footfall windows and of the devices
// that sent them. SQLite (embedded, the default) and Postgres implement it;
// both are safe for concurrent use and behave the same (conformance_test.go
// runs one suite against both).
type Store interface {
	// Add stores reports and returns what it did with each: outcomes[i] is
	// reports[i]'s. It validates every report first and stores nothing if
	// any is invalid; the error then names the report and its bad field,
	// and wraps egress.ErrInvalid.
	//
	// A report whose (Device, Boot, Seq) is not stored yet is stored (Added);
	// within one call the first copy of a key is the one stored. A report
	// whose key is stored already, or stored by an earlier report of the
	// same call, is a Repeat if its content (store, camera, line, times and
	// counts) is the stored one's, else a Conflict; neither is stored. Sig
	// is not content: a report without one counts as unsigned.
	//
	// Every device with an Added report gets LastReport set to now, Reports
	// increased by its added reports and Unsigned by those without Sig; every
	// device with a Conflict gets Conflicts increased and LastConflict set to
	// now. Repeats change nothing. If Add fails, some of the reports may be
	// stored: calling it again with the same reports is safe (they are then
	// repeats, and conflicts are counted again).
	Add(ctx context.Context, reports ...egress.Report) (outcomes []Outcome, err error)
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

// Outcome is what Add did with one report.
type Outcome uint8

const (
	// Added: the report was new and is now stored.
	Added Outcome = iota + 1
	// Repeat: a report with its identity and the same content is stored;
	// nothing changed.
	Repeat
	// Conflict: a report with its identity but different content is
	// stored; this one was not stored, and was counted on its device.
	Conflict
)

func (o Outcome) String() string {
	switch o {
	case Added:
		return "added"
	case Repeat:
		return "repeat"
	case Conflict:
		return "conflict"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Count returns how many of outcomes are o.
func Count(outcomes []Outcome, o Outcome) int {
	n := 0
	for _, x := range outcomes {
		if x == o {
			n++
		}
	}
	return n
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
	// Unsigned is how many of Reports were stored without a signature
	// (head office accepted them from a device allowed to send unsigned).
	Unsigned int64
	// Conflicts counts reports not stored because a report with their
	// identity and different content was; LastConflict is when the last
	// arrived (zero if none).
	Conflicts    int64
	LastConflict time.Time
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

// reportKey is a report's identity.
type reportKey struct {
	device    string
	boot, seq uint64
}

func keyOf(r egress.Report) reportKey { return reportKey{r.Device, r.Boot, r.Seq} }

// content is what of a report is stored besides its identity: two reports
// with one identity are repeats when their contents are equal.
type content struct {
	store, camera, line string
	startS, endS        int64
	startNS, endNS      int64
	in, out             int64
}

func contentOf(r egress.Report) content {
	return content{r.Store, r.Camera, r.Line, r.Start.Unix(), r.End.Unix(),
		int64(r.Start.Nanosecond()), int64(r.End.Nanosecond()), int64(r.In), int64(r.Out)}
}

// deviceCounts are the changes one call to Add makes to a device.
type deviceCounts struct {
	added, unsigned, conflicts int64
}

// tally adds one report's outcome to counts.
func tally(counts map[deviceKey]*deviceCounts, r egress.Report, o Outcome) {
	k := deviceKey{r.Store, r.Device}
	c := counts[k]
	if c == nil {
		c = &deviceCounts{}
		counts[k] = c
	}
	switch o {
	case Added:
		c.added++
		if r.Sig == "" {
			c.unsigned++
		}
	case Conflict:
		c.conflicts++
	}
}

// sortedDevices returns counts' keys in (store, device) byte order, the
// order devices rows are written in.
func sortedDevices(counts map[deviceKey]*deviceCounts) []deviceKey {
	keys := make([]deviceKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b deviceKey) int {
		if c := strings.Compare(a.store, b.store); c != 0 {
			return c
		}
		return strings.Compare(a.device, b.device)
	})
	return keys
}

// unixNano is the time of ns Unix nanoseconds in UTC, or zero for 0.
func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
