package consent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/veil-edge/veil/internal/durable"
)

// EventType says what happened to a consent.
type EventType string

// The events a ledger records.
const (
	EventGrant    EventType = "grant"    // the shopper opted in
	EventWithdraw EventType = "withdraw" // the shopper opted out again
	EventExpire   EventType = "expire"   // the consent ran out
	EventBind     EventType = "bind"     // the consent was bound to a track
	EventUnbind   EventType = "unbind"   // the binding ended (see Reason)
	EventAnchor   EventType = "anchor"   // first line after a retention purge
)

// genesisPrev is the prev of the first entry of a fresh ledger.
var genesisPrev = strings.Repeat("0", 64)

// Entry is one line of the consent ledger.
//
// It records what was consented to and when, and nothing about the person:
// there is deliberately no field for an IP address, a user agent, a phone
// number or any image data, and a line with such a field does not verify
// (unknown fields are refused). ConsentID is the only link between entries
// of one consent.
//
// Box and Relayed were added with head office's consent relay; being
// omitted when empty, lines written before them stay canonical and verify.
//
// Hash rule: Hash is the lowercase hex SHA-256 of the entry's canonical JSON
// with Hash set to "". The canonical JSON is what encoding/json's Marshal
// makes of an Entry: keys in the order of the fields below, empty omitempty
// fields left out, "hash":"" kept, no spaces, times in RFC 3339 with
// nanoseconds (trailing zeros dropped) in UTC, and <, > and & escaped as
// \u003c, \u003e and \u0026. Every line of the file is exactly the canonical
// JSON of its entry, hash included, followed by "\n".
//
// Chain rule: Prev is the Hash of the entry on the line before; the first
// entry of a fresh ledger has Seq 1 and a Prev of 64 zeros. Seq goes up by
// one from line to line.
//
// Anchor rule: after a purge the file starts with an anchor entry that
// stands in for the last purged entry. It has that entry's Seq and a copy of
// its Hash (not recomputed), an empty Prev and ConsentID, the purge time and
// a Reason saying what was purged. The next line follows it as it followed
// the purged entry: Seq one more, Prev equal to the anchor's Hash. An anchor
// may only be the first line and is trusted: the purged history is gone by
// design, so nothing can show that the anchor is true. Everything after it
// is checked as usual, so edits, removals and reordering of kept entries are
// still found. (Like any hash chain without an outside witness, the ledger
// shows accidental damage and careless edits; someone who can rewrite the
// whole file can also recompute every hash.)
type Entry struct {
	Seq           uint64     `json:"seq"`
	Time          time.Time  `json:"time"`
	Type          EventType  `json:"type"`
	ConsentID     string     `json:"consent_id"`
	NoticeVersion string     `json:"notice_version,omitempty"`
	NoticeHash    string     `json:"notice_hash,omitempty"` // hex SHA-256 of the notice shown
	Lang          string     `json:"lang,omitempty"`
	Purposes      []string   `json:"purposes,omitempty"`
	Camera        string     `json:"camera,omitempty"`
	Zone          string     `json:"zone,omitempty"`
	Expires       *time.Time `json:"expires,omitempty"`
	Reason        string     `json:"reason,omitempty"`  // e.g. why unbound: "track ended", "withdrawn", "expired"
	Box           string     `json:"box,omitempty"`     // head office's copy: the box (site.device) the consent was for
	Relayed       bool       `json:"relayed,omitempty"` // given on head office's pages and relayed to the box
	Prev          string     `json:"prev"`
	Hash          string     `json:"hash"`
}

// computeHash returns the hash of e by the rule on Entry.
func (e Entry) computeHash() (string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func (t EventType) known() bool {
	switch t {
	case EventGrant, EventWithdraw, EventExpire, EventBind, EventUnbind, EventAnchor:
		return true
	}
	return false
}

// LedgerError reports a line of a ledger file that breaks the rules on
// Entry: the file has been damaged or edited.
type LedgerError struct {
	Path    string
	Line    int // 1-based
	Problem string
}

func (e *LedgerError) Error() string {
	return fmt.Sprintf("ledger %s line %d: %s", e.Path, e.Line, e.Problem)
}

// Ledger is an append-only, hash-chained log of consent events, one JSON
// object per line in a single file. It is safe for concurrent use; only one
// Ledger (in one process) may have a file open at a time.
type Ledger struct {
	path string
	now  func() time.Time // the clock for entries without a time

	mu       sync.Mutex
	f        *os.File // nil once closed
	err      error    // a failed write leaves the file unusable
	lastSeq  uint64
	lastHash string
}

// OpenLedger opens the ledger at path for appending, creating the file
// (mode 0600) and its directory (0700) if they are missing. An existing file
// is verified first, and a damaged or edited one is refused with an error
// naming the line and what is wrong with it.
func OpenLedger(path string) (*Ledger, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("consent ledger: %w", err)
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("consent ledger: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := durable.SyncDir(dir); err != nil {
			f.Close()
			return nil, fmt.Errorf("consent ledger: %w", err)
		}
	}
	l := &Ledger{path: path, now: time.Now, f: f, lastHash: genesisPrev}
	_, last, err := readLedger(path, f, nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	if last != nil {
		l.lastSeq, l.lastHash = last.Seq, last.Hash
	}
	return l, nil
}

// Append adds e to the ledger and returns it as stored. It fills in Seq,
// Prev and Hash, and Time if it is zero; times are stored in UTC. The line
// is on disk (fsynced) when Append returns. Anchor entries are written only
// by Purge.
func (l *Ledger) Append(e Entry) (Entry, error) {
	if !e.Type.known() || e.Type == EventAnchor {
		return Entry{}, fmt.Errorf("consent ledger: cannot append an entry of type %q", e.Type)
	}
	if e.ConsentID == "" {
		return Entry{}, fmt.Errorf("consent ledger: %s entry without a consent_id", e.Type)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return Entry{}, err
	}
	if l.lastSeq == math.MaxUint64 {
		return Entry{}, fmt.Errorf("consent ledger %s: seq is at its maximum", l.path)
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	if e.Expires != nil {
		x := e.Expires.UTC()
		e.Expires = &x
	}
	e.Seq, e.Prev = l.lastSeq+1, l.lastHash
	var err error
	if e.Hash, err = e.computeHash(); err != nil {
		return Entry{}, fmt.Errorf("consent ledger: %w", err)
	}
	line, err := json.Marshal(e)
	if err != nil {
		return Entry{}, fmt.Errorf("consent ledger: %w", err)
	}
	_, err = l.f.Write(append(line, '\n'))
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		// A part of the line may be in the file; refuse to add to it.
		l.err = fmt.Errorf("consent ledger %s: write failed, the ledger is closed for writing: %w", l.path, err)
		return Entry{}, l.err
	}
	l.lastSeq, l.lastHash = e.Seq, e.Hash
	return e, nil
}

func (l *Ledger) usable() error {
	if l.err != nil {
		return l.err
	}
	if l.f == nil {
		return fmt.Errorf("consent ledger %s: %w", l.path, os.ErrClosed)
	}
	return nil
}

// Purge removes old entries for retention and returns how many it removed.
//
// It removes only a prefix of the ledger: the longest run of entries from
// the start that are all older than before and none of which belongs to a
// consent that is still active. A consent is active if its last grant,
// withdraw or expire entry is a grant. So an old, still-active consent holds
// back the purge of everything after it until it is withdrawn or expires.
//
// The new file starts with an anchor standing in for the last removed entry
// (see Entry) and goes on with the kept lines unchanged. It replaces the old
// file atomically.
func (l *Ledger) Purge(before time.Time) (removed int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return 0, err
	}
	f, err := os.Open(l.path)
	if err != nil {
		return 0, fmt.Errorf("consent ledger: %w", err)
	}
	var entries []Entry
	var lines [][]byte
	_, _, err = readLedger(l.path, f, func(e Entry, line []byte) {
		entries = append(entries, e)
		lines = append(lines, bytes.Clone(line))
	})
	f.Close()
	if err != nil {
		return 0, err
	}

	active := map[string]bool{}
	for _, e := range entries {
		switch e.Type {
		case EventGrant:
			active[e.ConsentID] = true
		case EventWithdraw, EventExpire:
			active[e.ConsentID] = false
		}
	}
	start := 0
	if len(entries) > 0 && entries[0].Type == EventAnchor {
		start = 1 // an old anchor goes with the entries it is followed by
	}
	end := start
	for end < len(entries) && entries[end].Time.Before(before) && !active[entries[end].ConsentID] {
		end++
	}
	if end == start {
		return 0, nil
	}

	last := entries[end-1]
	anchor := Entry{
		Seq:    last.Seq,
		Time:   l.now().UTC(),
		Type:   EventAnchor,
		Reason: fmt.Sprintf("purged %d entries older than %s, up to seq %d", end-start, before.UTC().Format(time.RFC3339), last.Seq),
		Hash:   last.Hash,
	}
	head, err := json.Marshal(anchor)
	if err != nil {
		return 0, fmt.Errorf("consent ledger: %w", err)
	}
	var buf bytes.Buffer
	buf.Write(head)
	buf.WriteByte('\n')
	for _, line := range lines[end:] {
		buf.Write(line)
		buf.WriteByte('\n')
	}
	dir, name := filepath.Split(l.path)
	if dir == "" {
		dir = "."
	}
	if err := durable.WriteFile(dir, name, ".tmp-", buf.Bytes()); err != nil {
		return 0, fmt.Errorf("consent ledger: purge: %w", err)
	}
	// The open file is the old one now; append to the new one.
	l.f.Close()
	if l.f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		l.f = nil
		l.err = fmt.Errorf("consent ledger %s: reopening after purge: %w", l.path, err)
		return end - start, l.err
	}
	return end - start, nil
}

// Close closes the ledger's file. Append and Purge fail after Close.
// Active lists the consents whose last grant, withdraw or expire entry is
// a grant: consents the ledger still shows as running.
func (l *Ledger) Active() ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("consent ledger: %w", err)
	}
	defer f.Close()
	active := map[string]bool{}
	var order []string
	if _, _, err := readLedger(l.path, f, func(e Entry, _ []byte) {
		switch e.Type {
		case EventGrant:
			if _, seen := active[e.ConsentID]; !seen {
				order = append(order, e.ConsentID)
			}
			active[e.ConsentID] = true
		case EventWithdraw, EventExpire:
			active[e.ConsentID] = false
		}
	}); err != nil {
		return nil, err
	}
	var out []string
	for _, id := range order {
		if active[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// VerifyLedger checks the whole ledger at path and returns how many entries
// (lines) it holds. Every line must be an entry in canonical JSON with no
// unknown fields, seqs must follow one another, each prev must be the hash
// of the line before, and each hash must match its entry; the rules are on
// Entry. The error for a damaged or edited file is a *LedgerError naming the
// first bad line.
func VerifyLedger(path string) (n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, _, err = readLedger(path, f, nil)
	return n, err
}

// readLedger reads and checks a ledger from r, calling each (if not nil)
// with every good entry and its line (without the newline; only valid
// during the call). It returns the number of entries and the last one.
func readLedger(path string, r io.Reader, each func(Entry, []byte)) (int, *Entry, error) {
	br := bufio.NewReader(r)
	var prev *Entry
	for n := 0; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) == 0 {
				return n, prev, nil
			}
			return n, prev, &LedgerError{path, n + 1, "cut off: the file does not end with a newline (a crash while writing?)"}
		}
		if err != nil {
			return n, prev, fmt.Errorf("ledger %s: %w", path, err)
		}
		line = line[:len(line)-1]
		e, problem := checkLine(line, prev, n)
		if problem != "" {
			return n, prev, &LedgerError{path, n + 1, problem}
		}
		if each != nil {
			each(e, line)
		}
		prev = &e
	}
}

// checkLine checks one line against the entry on the line before (nil for
// the first line, which is line number prevLine+1) and returns its entry or
// what is wrong with it.
func checkLine(line []byte, prev *Entry, prevLine int) (Entry, string) {
	var e Entry
	if len(line) == 0 {
		return e, "empty line"
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, "not a ledger entry: " + err.Error()
	}
	if canon, err := json.Marshal(e); err != nil || !bytes.Equal(canon, line) {
		return e, "not written the way the ledger writes entries (edited by hand?)"
	}
	if !e.Type.known() {
		return e, fmt.Sprintf("unknown type %q", e.Type)
	}
	if e.Type == EventAnchor {
		switch {
		case prev != nil:
			return e, "an anchor entry may only be the first line"
		case e.Prev != "":
			return e, "an anchor entry must have an empty prev"
		case !isHash(e.Hash):
			return e, "an anchor entry's hash is not 64 lowercase hex digits"
		case e.Seq == 0:
			return e, "an anchor entry's seq is 0"
		}
		return e, "" // trusted: see Entry
	}
	switch {
	case prev == nil && e.Seq != 1:
		return e, fmt.Sprintf("the first entry has seq %d, want 1 (entries removed from the start?)", e.Seq)
	case prev == nil && e.Prev != genesisPrev:
		return e, "the first entry's prev is not 64 zeros (entries removed from the start?)"
	case prev != nil && e.Seq > prev.Seq+1:
		return e, fmt.Sprintf("seq %d follows %d (an entry was removed or moved?)", e.Seq, prev.Seq)
	case prev != nil && e.Seq != prev.Seq+1:
		return e, fmt.Sprintf("seq %d follows %d (entries moved or repeated?)", e.Seq, prev.Seq)
	case prev != nil && e.Prev != prev.Hash:
		return e, fmt.Sprintf("prev does not match line %d's hash", prevLine)
	}
	if h, err := e.computeHash(); err != nil || h != e.Hash {
		return e, "hash does not match its content (edited?)"
	}
	return e, ""
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
