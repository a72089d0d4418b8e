package egress

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/veil-edge/veil/internal/durable"
)

// DefaultMaxEntries is the outbox bound when OutboxOptions.MaxEntries is 0:
// at one window per line per 15 minutes, four cameras with one line each
// fill it in about 26 days without head office.
const DefaultMaxEntries = 10000

// ErrFull is wrapped by the error Add returns when the outbox holds
// MaxEntries windows and no two of them can be merged. The window was not
// stored; the caller still owns its counts (fold them into its next window).
var ErrFull = errors.New("outbox full")

// ErrClosed is returned by Outbox methods called after Close.
var ErrClosed = errors.New("outbox closed")

// Names of the files an outbox directory holds.
const (
	bootFile      = "boot"       // the boot counter, decimal
	sentFile      = "sent"       // "boot seq": every entry up to it may have been handed to the network
	lockFile      = "lock"       // flock'ed while an Outbox has the directory open
	quarantineDir = "quarantine" // entries that cannot be sent, kept for a person to look at
	entryPrefix   = "e-"         // e-<boot>-<seq>.json: one report
	intentPrefix  = "merge-"     // merge-<boot>-<seq>.json: a merge in progress (see merge)
	tmpPrefix     = ".tmp-"      // a file being written; never committed if still there at open
)

// OutboxOptions configures OpenOutbox.
type OutboxOptions struct {
	Device, Store string       // written into every report; 1..64 of A-Z a-z 0-9 . _ -
	MaxEntries    int          // bound on stored windows; 0 means DefaultMaxEntries; at least 2
	Log           *slog.Logger // quarantine warnings and merges; nil means slog.Default()
}

// Outbox is the on-disk queue of closed counting windows waiting for head
// office. It owns its directory: one file per report, a boot counter, a
// hand-out watermark and a lock file, and a quarantine/ folder for entries
// it cannot send. Only one Outbox may have a directory open at a time
// (another process gets an error from OpenOutbox).
//
// It is safe for concurrent use. The counter calls Add; the Publisher (the
// only component that sends entries to the network) takes entries in
// (boot, seq) order and calls Remove after head office's broker has
// acknowledged them.
type Outbox struct {
	dir  string
	o    OutboxOptions
	log  *slog.Logger
	lock *os.File

	// notify gets a value, without blocking, whenever Add stores a window.
	// The Publisher is its only reader.
	notify chan struct{}

	mu      sync.Mutex
	closed  bool
	boot    uint64   // this process's boot number
	seq     uint64   // the last seq Add assigned in this boot
	entries []Report // on disk, sorted by (boot, seq)
	// sent is the hand-out watermark: every entry with an identity up to it
	// may have reached head office (handed to the network now or in an
	// earlier boot), so it is never merged. It is persisted before the
	// entries are handed out.
	sent ident
}

// ident is a report's identity within one device.
type ident struct{ boot, seq uint64 }

func identOf(r Report) ident { return ident{r.Boot, r.Seq} }

func (a ident) compare(b ident) int {
	if c := cmp.Compare(a.boot, b.boot); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

func (a ident) String() string { return fmt.Sprintf("boot %d seq %d", a.boot, a.seq) }

func entryName(id ident) string {
	return fmt.Sprintf("%s%020d-%020d.json", entryPrefix, id.boot, id.seq)
}
func intentName(id ident) string {
	return fmt.Sprintf("%s%020d-%020d.json", intentPrefix, id.boot, id.seq)
}

// parseName returns the identity in an entry or intent file name.
func parseName(name, prefix string) (ident, bool) {
	s, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return ident{}, false
	}
	s, ok = strings.CutSuffix(s, ".json")
	if !ok {
		return ident{}, false
	}
	b, q, ok := strings.Cut(s, "-")
	if !ok {
		return ident{}, false
	}
	boot, err1 := strconv.ParseUint(b, 10, 64)
	seq, err2 := strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil || boot == 0 || seq == 0 {
		return ident{}, false
	}
	return ident{boot, seq}, true
}

// OpenOutbox opens (creating it if needed) the outbox in dir and starts a
// new boot: it increments the persisted boot counter, so reports added by
// this process are numbered (boot, 1), (boot, 2), … and (Device, Boot, Seq)
// never repeats, across restarts and crashes, as long as dir is kept.
//
// Opening also recovers from a crash: it deletes half-written files (a
// window whose Add had not returned), finishes an interrupted merge, and
// moves entries it cannot send (unparsable, invalid, zero bytes, misnamed,
// or written for another store or device) to dir/quarantine with a warning
// naming the file. Every other entry, from any earlier boot, is pending
// again and will be replayed in (boot, seq) order.
func OpenOutbox(dir string, o OutboxOptions) (*Outbox, error) {
	if err := checkName(o.Device); err != nil {
		return nil, fmt.Errorf("outbox device: %w", err)
	}
	if err := checkName(o.Store); err != nil {
		return nil, fmt.Errorf("outbox store: %w", err)
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxEntries < 2 {
		return nil, fmt.Errorf("outbox max entries: %d; allowed 2 and up (0 for %d): %w", o.MaxEntries, DefaultMaxEntries, ErrInvalid)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating outbox: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening outbox lock: %w", err)
	}
	if err := lockFileExclusive(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("outbox %s is in use by another process: %w", dir, err)
	}
	b := &Outbox{dir: dir, o: o, log: o.Log, lock: lock, notify: make(chan struct{}, 1)}
	if err := b.recover(); err != nil {
		lock.Close() // releases the flock
		return nil, fmt.Errorf("opening outbox %s: %w", dir, err)
	}
	b.log.Debug("egress: outbox open", "dir", dir, "boot", b.boot, "pending", len(b.entries))
	return b, nil
}

// recover brings the directory to a consistent state and loads it.
func (b *Outbox) recover() error {
	names, err := b.list()
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, tmpPrefix) {
			if err := os.Remove(b.path(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing half-written file: %w", err)
			}
		}
	}
	for _, n := range names {
		if id, ok := parseName(n, intentPrefix); ok {
			if err := b.finishMerge(n, id); err != nil {
				return err
			}
		}
	}
	if names, err = b.list(); err != nil {
		return err
	}
	var maxID ident
	for _, n := range names {
		if !strings.HasPrefix(n, entryPrefix) {
			continue
		}
		r, err := b.load(n)
		if err != nil {
			var bad badEntryError
			if !errors.As(err, &bad) {
				return err
			}
			if err := b.quarantine(n, bad.err); err != nil {
				return err
			}
			continue
		}
		b.entries = append(b.entries, r)
		maxID = maxIdent(maxID, identOf(r))
	}
	slices.SortFunc(b.entries, func(x, y Report) int { return identOf(x).compare(identOf(y)) })

	// The watermark. Without a readable one, assume everything on disk may
	// have been sent: that only stops those entries from being merged.
	// It is written when the directory is created, so it is missing only
	// if someone deleted it.
	sent, err := readSent(b.path(sentFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) || len(b.entries) > 0 {
			b.log.Warn("egress: outbox hand-out watermark unreadable; no window stored now will be merged",
				"file", b.path(sentFile), "err", err)
		}
		sent = maxID
		if err := b.writeSent(sent); err != nil {
			return err
		}
	}
	b.sent = sent

	// The boot counter. A corrupt one is an error rather than a reset:
	// reusing (boot, seq) would make head office drop new windows as
	// duplicates of old ones.
	boot, err := readBoot(b.path(bootFile))
	if err != nil {
		return err
	}
	boot = max(boot, maxID.boot, b.sent.boot) + 1
	if boot == 0 {
		return fmt.Errorf("boot counter %s: overflow: %w", b.path(bootFile), ErrInvalid)
	}
	if err := durable.WriteFile(b.dir, bootFile, tmpPrefix, []byte(strconv.FormatUint(boot, 10)+"\n")); err != nil {
		return fmt.Errorf("writing boot counter: %w", err)
	}
	b.boot = boot
	return nil
}

// maxIdent returns the larger identity.
func maxIdent(a, b ident) ident {
	if a.compare(b) >= 0 {
		return a
	}
	return b
}

// badEntryError is an entry that can never be sent as it is.
type badEntryError struct{ err error }

func (e badEntryError) Error() string { return e.err.Error() }

// load reads one entry file. It returns a badEntryError for contents that
// can never be sent, and a plain error for I/O trouble.
func (b *Outbox) load(name string) (Report, error) {
	id, ok := parseName(name, entryPrefix)
	if !ok {
		return Report{}, badEntryError{fmt.Errorf("not an outbox entry name (want %s<boot>-<seq>.json)", entryPrefix)}
	}
	data, err := os.ReadFile(b.path(name))
	if err != nil {
		return Report{}, fmt.Errorf("reading outbox entry: %w", err)
	}
	if len(data) == 0 {
		return Report{}, badEntryError{errors.New("empty file")}
	}
	r, err := ParseReport(data)
	if err != nil {
		return Report{}, badEntryError{err}
	}
	if identOf(r) != id {
		return Report{}, badEntryError{fmt.Errorf("file is named for %s but holds %s", id, identOf(r))}
	}
	if r.Store != b.o.Store || r.Device != b.o.Device {
		return Report{}, badEntryError{fmt.Errorf("written for store %s device %s; this outbox is store %s device %s",
			r.Store, r.Device, b.o.Store, b.o.Device)}
	}
	return r, nil
}

// quarantine moves an entry (or intent) file that cannot be sent to the
// quarantine folder, where a person can look at it, and logs why.
func (b *Outbox) quarantine(name string, why error) error {
	qdir := b.path(quarantineDir)
	if err := os.MkdirAll(qdir, 0o750); err != nil {
		return fmt.Errorf("creating quarantine: %w", err)
	}
	dst := filepath.Join(qdir, name)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = filepath.Join(qdir, fmt.Sprintf("%s.%d", name, i))
	}
	if err := os.Rename(b.path(name), dst); err != nil {
		return fmt.Errorf("quarantining outbox entry: %w", err)
	}
	if err := durable.SyncDir(qdir); err != nil {
		return err
	}
	if err := durable.SyncDir(b.dir); err != nil {
		return err
	}
	b.log.Warn("egress: outbox entry cannot be sent; moved to quarantine",
		"file", b.path(name), "moved_to", dst, "err", why)
	return nil
}

// Boot returns this process's boot number, the Boot of every report Add
// returns.
func (b *Outbox) Boot() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.boot
}

// Add stores one closed counting window as the next report of this boot
// and returns it. The report is on disk (file and directory entry synced)
// before Add returns nil: only then does the window count as closed. On
// error nothing was stored and the caller still owns the counts.
//
// When the outbox already holds MaxEntries windows, Add first merges the
// two oldest mergeable stored windows (see merge). If no two can be merged,
// it folds the new window into the newest stored window of the same camera
// and line, under the same rules, and returns that report (with its old
// boot and seq and the summed counts). If that is not possible either, it
// returns an error wrapping ErrFull: the window was not stored and the
// caller still owns its counts.
func (b *Outbox) Add(c Counts) (Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Report{}, ErrClosed
	}
	r := Report{
		Device: b.o.Device, Store: b.o.Store, Camera: c.Camera, Line: c.Line,
		Start: c.Start.UTC(), End: c.End.UTC(), In: c.In, Out: c.Out,
		Boot: b.boot, Seq: b.seq + 1,
	}
	data, err := r.Marshal()
	if err != nil {
		return Report{}, fmt.Errorf("adding counting window: %w", err)
	}
	for len(b.entries) >= b.o.MaxEntries {
		if ia, ib := b.oldestPair(); ia >= 0 {
			if err := b.merge(ia, ib); err != nil {
				return Report{}, fmt.Errorf("adding counting window: %w", err)
			}
			continue
		}
		if i := b.foldTarget(r); i >= 0 {
			m, err := b.fold(i, r)
			if err != nil {
				return Report{}, fmt.Errorf("adding counting window: %w", err)
			}
			return m, nil
		}
		return Report{}, fmt.Errorf("adding counting window: outbox %s holds %d windows, its limit (max entries %d), and none can be merged: each waiting window is the only one of its camera and line, or was already handed to the network: %w",
			b.dir, len(b.entries), b.o.MaxEntries, ErrFull)
	}
	name := entryName(identOf(r))
	if err := durable.WriteFile(b.dir, name, tmpPrefix, data); err != nil {
		// The seq is reused by the next Add; make sure no file of this
		// attempt survives to be mistaken for it.
		_ = os.Remove(b.path(name))
		return Report{}, fmt.Errorf("adding counting window: %w", err)
	}
	b.seq++
	b.entries = append(b.entries, r) // newest boot and seq: stays sorted
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return r, nil
}

// Reserve gives the next identity of this boot to a window before it is
// stored, so that its owner can record it durably first (the crossings
// journal): a window added with AddAs under a reserved identity is stored
// once whatever crashes in between, because adding it again under the same
// identity is a no-op, and if it was already delivered and removed, head
// office takes the repeat as the duplicate it is. A reserved identity never
// used is a gap in seq, which head office tolerates (merges leave them too).
func (b *Outbox) Reserve() (boot, seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	return b.boot, b.seq
}

// AddAs stores window c under the identity (boot, seq) that Reserve gave,
// in this boot or an earlier one. If the outbox already holds that
// identity with the same window, it returns it and writes nothing; with a
// different window it is an error. Like Add it first merges the two oldest
// mergeable windows when full, but it never folds c into another window
// (its identity would then be lost, and a repeat after a crash would count
// it twice): with no room it returns an error wrapping ErrFull and the
// caller keeps the window and its identity.
func (b *Outbox) AddAs(c Counts, boot, seq uint64) (Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Report{}, ErrClosed
	}
	if boot < 1 || seq < 1 || boot > b.boot || boot == b.boot && seq > b.seq {
		return Report{}, fmt.Errorf("adding counting window as boot %d seq %d: not an identity this outbox reserved: %w", boot, seq, ErrInvalid)
	}
	r := Report{
		Device: b.o.Device, Store: b.o.Store, Camera: c.Camera, Line: c.Line,
		Start: c.Start.UTC(), End: c.End.UTC(), In: c.In, Out: c.Out,
		Boot: boot, Seq: seq,
	}
	data, err := r.Marshal()
	if err != nil {
		return Report{}, fmt.Errorf("adding counting window: %w", err)
	}
	id := identOf(r)
	find := func() (int, bool) {
		return slices.BinarySearchFunc(b.entries, id, func(e Report, id ident) int { return identOf(e).compare(id) })
	}
	if i, ok := find(); ok {
		if !sameReport(b.entries[i], r) {
			return Report{}, fmt.Errorf("adding counting window as %s: the outbox holds another window under it: %w", id, ErrInvalid)
		}
		return b.entries[i], nil
	}
	for len(b.entries) >= b.o.MaxEntries {
		ia, ib := b.oldestPair()
		if ia < 0 {
			return Report{}, fmt.Errorf("adding counting window: outbox %s holds %d windows, its limit (max entries %d), and none can be merged: %w",
				b.dir, len(b.entries), b.o.MaxEntries, ErrFull)
		}
		if err := b.merge(ia, ib); err != nil {
			return Report{}, fmt.Errorf("adding counting window: %w", err)
		}
	}
	if err := durable.WriteFile(b.dir, entryName(id), tmpPrefix, data); err != nil {
		_ = os.Remove(b.path(entryName(id)))
		return Report{}, fmt.Errorf("adding counting window: %w", err)
	}
	i, _ := find()
	b.entries = slices.Insert(b.entries, i, r)
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return r, nil
}

// merge makes room by merging stored windows ia and ib, which oldestPair
// chose: the oldest pair of windows of the same camera and line that
//
//   - are both above the hand-out watermark, i.e. were never handed to the
//     network by this or any earlier process, so head office cannot have
//     either of them;
//   - follow each other (no window of that line between them) and do not
//     overlap (the older ends no later than the newer starts).
//
// The merged window spans from the older's start to the newer's end, with
// the counts summed, and keeps the older's (boot, seq); the newer's seq is
// retired and never sent, so head office sees a gap there. No count is lost
// or counted twice.
//
// Why the watermark and not just "not in flight": head office de-duplicates
// on (device, boot, seq). A window that was published but whose PUBACK never
// arrived (the connection dropped, the box crashed) is still on disk and may
// already be counted. Merging it under its own identity would make head
// office drop the merged report as a duplicate and lose the other window's
// counts; merging it under a new identity would count it twice. Since the
// Publisher hands entries out in (boot, seq) order and the watermark is
// synced to disk before it does, every entry above the watermark has
// certainly never left the box. Residual cost: none for counts, but the
// windows at or below the watermark are never merged. They are the ones in
// flight (at most 16) when a connection or the process died, plus removed
// ones a crash brought back (removal is not synced), until they are
// delivered; if a box somehow filled up with them, Add would return ErrFull
// rather than drop anything.
//
// On disk the merge is made crash-safe by an intent file: the merged report
// is first written as merge-<newer's boot>-<newer's seq>.json (synced);
// then the newer entry is deleted and the intent renamed over the older
// one. OpenOutbox finishes any merge it finds half done.
func (b *Outbox) merge(ia, ib int) error {
	older, newer := b.entries[ia], b.entries[ib]
	m := older
	m.End = newer.End
	m.In += newer.In
	m.Out += newer.Out
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("merging %s and %s: %w", identOf(older), identOf(newer), err)
	}
	intent := intentName(identOf(newer))
	if err := durable.WriteFile(b.dir, intent, tmpPrefix, data); err != nil {
		_ = os.Remove(b.path(intent))
		return fmt.Errorf("merging %s and %s: %w", identOf(older), identOf(newer), err)
	}
	// The intent is durable: the merge has happened, whatever fails below
	// is finished by the next OpenOutbox.
	b.entries[ia] = m
	b.entries = slices.Delete(b.entries, ib, ib+1)
	b.log.Info("egress: outbox full; merged two waiting windows",
		"limit", b.o.MaxEntries, "camera", m.Camera, "line", m.Line,
		"kept", identOf(older).String(), "retired", identOf(newer).String())
	if err := b.finishMerge(intent, identOf(newer)); err != nil {
		return fmt.Errorf("merging %s and %s: %w", identOf(older), identOf(newer), err)
	}
	return nil
}

// oldestPair returns the indexes of the two entries merge should merge, or
// -1, -1 if there are none.
func (b *Outbox) oldestPair() (int, int) {
	type key struct{ camera, line string }
	last := make(map[key]int)
	ia, ib := -1, -1
	for j, e := range b.entries {
		if identOf(e).compare(b.sent) <= 0 {
			continue
		}
		k := key{e.Camera, e.Line}
		if i, ok := last[k]; ok && (ia < 0 || i < ia) && b.mergeable(b.entries[i], e) {
			ia, ib = i, j
		}
		last[k] = j
	}
	return ia, ib
}

// mergeable reports whether newer can be merged into older: same camera
// and line, older above the watermark, no overlap, no overflow.
func (b *Outbox) mergeable(older, newer Report) bool {
	return older.Camera == newer.Camera && older.Line == newer.Line &&
		identOf(older).compare(b.sent) > 0 && !older.End.After(newer.Start) &&
		newer.End.Sub(older.Start) <= MaxWindow &&
		older.In <= math.MaxInt-newer.In && older.Out <= math.MaxInt-newer.Out
}

// foldTarget returns the index of the newest stored window of r's camera
// and line if r can be merged into it, else -1.
func (b *Outbox) foldTarget(r Report) int {
	for i := len(b.entries) - 1; i >= 0; i-- {
		if e := b.entries[i]; e.Camera == r.Camera && e.Line == r.Line {
			if b.mergeable(e, r) {
				return i
			}
			return -1
		}
	}
	return -1
}

// fold merges new window r into stored entry i (see merge for the rules)
// by rewriting that entry's file, and returns the merged report.
func (b *Outbox) fold(i int, r Report) (Report, error) {
	m := b.entries[i]
	m.End = r.End
	m.In += r.In
	m.Out += r.Out
	data, err := m.Marshal()
	if err != nil {
		return Report{}, fmt.Errorf("merging into %s: %w", identOf(m), err)
	}
	if err := durable.WriteFile(b.dir, entryName(identOf(m)), tmpPrefix, data); err != nil {
		return Report{}, fmt.Errorf("merging into %s: %w", identOf(m), err)
	}
	b.entries[i] = m
	b.log.Info("egress: outbox full; merged the new window into the last waiting one of its line",
		"limit", b.o.MaxEntries, "camera", m.Camera, "line", m.Line, "into", identOf(m).String())
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return m, nil
}

// finishMerge completes the merge recorded in intent file name, where newer
// is the retired entry: it deletes the newer entry and renames the intent
// over the older one (whose identity the intent holds). It is idempotent.
func (b *Outbox) finishMerge(name string, newer ident) error {
	data, err := os.ReadFile(b.path(name))
	if err != nil {
		return fmt.Errorf("reading merge record: %w", err)
	}
	m, err := ParseReport(data)
	if err == nil && identOf(m).compare(newer) >= 0 {
		err = fmt.Errorf("merged report %s is not older than the retired %s", identOf(m), newer)
	}
	if err != nil {
		// Written and synced before being renamed into place, so this is
		// damage, not a crash: leave both windows as they are.
		return b.quarantine(name, err)
	}
	if err := os.Remove(b.path(entryName(newer))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("finishing merge: %w", err)
	}
	if err := durable.SyncDir(b.dir); err != nil {
		return fmt.Errorf("finishing merge: %w", err)
	}
	if err := os.Rename(b.path(name), b.path(entryName(identOf(m)))); err != nil {
		return fmt.Errorf("finishing merge: %w", err)
	}
	if err := durable.SyncDir(b.dir); err != nil {
		return fmt.Errorf("finishing merge: %w", err)
	}
	return nil
}

// Pending returns a snapshot of the stored reports in (boot, seq) order,
// from earlier boots too. It is for inspection and tests: reports must
// reach the network only through a Publisher, which records the hand-out
// that keeps merging safe.
func (b *Outbox) Pending() ([]Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	return slices.Clone(b.entries), nil
}

// Len returns the number of stored reports.
func (b *Outbox) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// take returns up to n stored reports in (boot, seq) order, leaving out
// those skip rejects, after durably moving the hand-out watermark past the
// last of them. It is the only way reports leave the outbox for the
// network.
func (b *Outbox) take(n int, skip func(ident) bool) ([]Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	var out []Report
	for _, e := range b.entries {
		if len(out) == n {
			break
		}
		if !skip(identOf(e)) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	if last := identOf(out[len(out)-1]); last.compare(b.sent) > 0 {
		if err := b.writeSent(last); err != nil {
			return nil, err
		}
		b.sent = last
	}
	return out, nil
}

// Remove deletes r from the outbox. Call it only once head office's broker
// has acknowledged r (PUBACK). Removing a report that is no longer stored
// is not an error; removing one whose stored version differs (it was merged
// since it was read) is, and leaves it stored.
//
// The deletion is not synced: after a crash a removed report may come back
// and be sent again, which head office's de-duplication absorbs.
func (b *Outbox) Remove(r Report) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	id := identOf(r)
	i, ok := slices.BinarySearchFunc(b.entries, id, func(e Report, id ident) int { return identOf(e).compare(id) })
	if !ok {
		return nil
	}
	if !sameReport(b.entries[i], r) {
		return fmt.Errorf("removing %s from outbox: the stored report differs (merged since it was read); kept: %w", id, ErrInvalid)
	}
	if err := os.Remove(b.path(entryName(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s from outbox: %w", id, err)
	}
	b.entries = slices.Delete(b.entries, i, i+1)
	return nil
}

// acknowledge deletes the reports head office's Ack names (it must be for
// this outbox's device and store) and returns them. Like Remove, the
// deletions are not synced.
func (b *Outbox) acknowledge(a Ack) ([]Report, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if a.Device != b.o.Device || a.Store != b.o.Store {
		return nil, fmt.Errorf("acknowledgement for %s/%s in the outbox of %s/%s: %w", a.Store, a.Device, b.o.Store, b.o.Device, ErrInvalid)
	}
	var removed []Report
	var errs []error
	b.entries = slices.DeleteFunc(b.entries, func(e Report) bool {
		if e.Boot != a.Boot || !a.Covers(e.Seq) {
			return false
		}
		if err := os.Remove(b.path(entryName(identOf(e)))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s from outbox: %w", identOf(e), err))
			return false
		}
		removed = append(removed, e)
		return true
	})
	return removed, errors.Join(errs...)
}

// OldestEnd is the end of the oldest window stored (the one that has
// waited longest for head office), zero if none.
func (b *Outbox) OldestEnd() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var t time.Time
	for _, e := range b.entries {
		if t.IsZero() || e.End.Before(t) {
			t = e.End
		}
	}
	return t
}

func sameReport(a, b Report) bool {
	return a.Device == b.Device && a.Store == b.Store && a.Camera == b.Camera && a.Line == b.Line &&
		a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.In == b.In && a.Out == b.Out &&
		a.Boot == b.Boot && a.Seq == b.Seq
}

// Close releases the directory. Stored reports stay on disk for the next
// OpenOutbox.
func (b *Outbox) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.lock.Close(); err != nil {
		return fmt.Errorf("closing outbox: %w", err)
	}
	return nil
}

func (b *Outbox) path(name string) string { return filepath.Join(b.dir, name) }

func (b *Outbox) list() ([]string, error) {
	des, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, fmt.Errorf("listing outbox: %w", err)
	}
	names := make([]string, 0, len(des))
	for _, de := range des {
		if de.Type().IsRegular() {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// readBoot returns the stored boot counter, 0 if there is none.
func readBoot(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading boot counter: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("boot counter %s holds %q, not a number; refusing to guess, since reusing a boot number makes head office drop new windows as duplicates (write a number above the last boot head office has seen): %w",
			path, truncate(data, 32), ErrInvalid)
	}
	return n, nil
}

func (b *Outbox) writeSent(id ident) error {
	if err := durable.WriteFile(b.dir, sentFile, tmpPrefix, fmt.Appendf(nil, "%d %d\n", id.boot, id.seq)); err != nil {
		return fmt.Errorf("recording hand-out: %w", err)
	}
	return nil
}

func readSent(path string) (ident, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ident{}, err
	}
	var id ident
	if _, err := fmt.Sscanf(string(data), "%d %d\n", &id.boot, &id.seq); err != nil {
		return ident{}, fmt.Errorf("%q: %w", truncate(data, 48), err)
	}
	return id, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
