package consent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/veil-edge/veil/internal/durable"
)

// The acceptance window of down-link messages: a box accepts a message
// whose issued time is at most DownlinkMaxAge before its own clock and at
// most DownlinkMaxAhead after it. Head office and the boxes must keep
// their clocks within that (NTP). The ids of accepted messages are kept
// until their message would be refused as stale anyway.
const (
	DownlinkMaxAge   = 2 * time.Minute
	DownlinkMaxAhead = 30 * time.Second
)

// Why a Receiver refused a down-link message: the reason label of
// RefusedError and of ReceiverStats.Refused.
const (
	RefusedMalformed = "malformed" // not a well-formed message (ParseDownlink)
	RefusedSignature = "signature" // not signed by head office's key
	RefusedOtherBox  = "other_box" // for another box
	RefusedStale     = "stale"     // issued before the acceptance window
	RefusedFuture    = "future"    // issued after it
	RefusedReplay    = "replay"    // its id was accepted before
	RefusedToken     = "token"     // a grant whose token this box refuses
	RefusedConsent   = "consent"   // a grant for a consent id already known, or a withdrawal of an unknown one
	RefusedFailed    = "error"     // the box could not record it (disk)
)

// RefusedError is a down-link message the Receiver refused.
type RefusedError struct {
	Reason string // one of the Refused... values
	Err    error
}

func (e *RefusedError) Error() string {
	return "consent down-link refused (" + e.Reason + "): " + e.Err.Error()
}

func (e *RefusedError) Unwrap() error { return e.Err }

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	Service *Service          // the box's consent service; its Box is the box name messages must carry
	HQKey   ed25519.PublicKey // head office's relay key (consent.relay_key)
	// SeenFile keeps the ids of accepted messages (JSON, replaced
	// durably on every accepted message) so that a replay is refused
	// after a restart too.
	SeenFile string
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now
}

// ReceiverStats counts the messages a Receiver handled.
type ReceiverStats struct {
	Accepted map[string]uint64 // by kind
	Refused  map[string]uint64 // by reason
}

// Receiver decides whether the box acts on a down-link message from head
// office's consent relay, and acts on it. A message is accepted only if it
// parses (ParseDownlink) with head office's signature, names this box,
// was issued within the acceptance window of the box's clock
// (DownlinkMaxAge back, DownlinkMaxAhead ahead), and its id was never
// accepted before (the ids are on disk until they would be stale). Its id
// is recorded before the box acts on it, so a message is acted on at most
// once even across a crash. A grant's token must then pass the box's own
// checks (Service.GrantRelayed); a withdrawal ends the consent at once
// (Service.WithdrawRelayed). Each refusal is logged with its reason (never
// the token) and counted. Safe for concurrent use.
type Receiver struct {
	o   ReceiverOptions
	log *slog.Logger

	mu      sync.Mutex
	seen    map[string]int64 // message id -> Unix second after which it may be forgotten
	stats   ReceiverStats
	boxName string
}

// NewReceiver checks o and loads the seen ids. A damaged seen file is an
// error naming it (remove it to start afresh: replays of messages from the
// last DownlinkMaxAge would then be accepted once more).
func NewReceiver(o ReceiverOptions) (*Receiver, error) {
	if o.Service == nil || len(o.HQKey) != ed25519.PublicKeySize || o.SeenFile == "" {
		return nil, errors.New("consent receiver: service, head office's Ed25519 public key and seen file are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{o: o, log: o.Log, boxName: o.Service.o.Box,
		stats: ReceiverStats{Accepted: map[string]uint64{}, Refused: map[string]uint64{}}}
	var err error
	if r.seen, err = readSeen(o.SeenFile); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(o.SeenFile), 0o700); err != nil {
		return nil, fmt.Errorf("consent receiver: %w", err)
	}
	return r, nil
}

// Stats returns copies of the counts so far.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReceiverStats{Accepted: map[string]uint64{}, Refused: map[string]uint64{}}
	for k, v := range r.stats.Accepted {
		st.Accepted[k] = v
	}
	for k, v := range r.stats.Refused {
		st.Refused[k] = v
	}
	return st
}

// Handle acts on one down-link message, or refuses it with a
// *RefusedError.
func (r *Receiver) Handle(payload []byte) (Downlink, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.handle(payload)
	if err != nil {
		var re *RefusedError
		if !errors.As(err, &re) {
			re = &RefusedError{RefusedFailed, err}
			err = re
		}
		r.stats.Refused[re.Reason]++
		r.log.Warn("consent down-link refused", "reason", re.Reason, "err", re.Err, "id", d.ID, "kind", d.Kind, "consent", d.ConsentID)
		return d, err
	}
	r.stats.Accepted[d.Kind]++
	return d, nil
}

func (r *Receiver) handle(payload []byte) (Downlink, error) {
	d, err := ParseDownlink(payload, r.o.HQKey)
	if errors.Is(err, ErrDownlinkSignature) {
		return Downlink{}, &RefusedError{RefusedSignature, err}
	}
	if err != nil {
		return Downlink{}, &RefusedError{RefusedMalformed, err}
	}
	now := r.o.Now()
	switch at := d.IssuedAt(); {
	case d.Box != r.boxName:
		return d, &RefusedError{RefusedOtherBox, fmt.Errorf("for box %q, this is %q", d.Box, r.boxName)}
	case at.Before(now.Add(-DownlinkMaxAge)):
		return d, &RefusedError{RefusedStale, fmt.Errorf("issued %s ago; accepted up to %s", now.Sub(at).Round(time.Second), DownlinkMaxAge)}
	case at.After(now.Add(DownlinkMaxAhead)):
		return d, &RefusedError{RefusedFuture, fmt.Errorf("issued %s ahead of this box's clock; accepted up to %s", at.Sub(now).Round(time.Second), DownlinkMaxAhead)}
	}
	for id, forget := range r.seen {
		if now.Unix() > forget {
			delete(r.seen, id)
		}
	}
	if _, dup := r.seen[d.ID]; dup {
		return d, &RefusedError{RefusedReplay, fmt.Errorf("message %s was accepted before", d.ID)}
	}
	r.seen[d.ID] = d.Issued + int64((DownlinkMaxAge+DownlinkMaxAhead)/time.Second)
	if err := writeSeen(r.o.SeenFile, r.seen); err != nil {
		delete(r.seen, d.ID)
		return d, fmt.Errorf("recording message %s: %w", d.ID, err)
	}
	switch d.Kind {
	case KindGrant:
		_, err = r.o.Service.GrantRelayed(d.ConsentID, d.Token, d.Lang)
	case KindWithdraw:
		_, err = r.o.Service.WithdrawRelayed(d.ConsentID)
	}
	switch {
	case err == nil:
		r.log.Info("consent down-link accepted", "id", d.ID, "kind", d.Kind, "consent", d.ConsentID)
		return d, nil
	case errors.Is(err, ErrConsentExists), errors.Is(err, ErrNoSuchConsent):
		return d, &RefusedError{RefusedConsent, err}
	case errors.Is(err, ErrTokenMalformed), errors.Is(err, ErrTokenSignature), errors.Is(err, ErrTokenExpired),
		errors.Is(err, ErrTokenUsed), errors.Is(err, ErrTokenOtherBox), errors.Is(err, ErrNoticeChanged), errors.Is(err, ErrNotSignage):
		return d, &RefusedError{RefusedToken, err}
	}
	return d, err
}

// seenFile is the form of ReceiverOptions.SeenFile.
type seenFile struct {
	V    int              `json:"v"`
	Seen map[string]int64 `json:"seen"` // message id -> forget after (Unix seconds)
}

func readSeen(path string) (map[string]int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consent receiver: %w", err)
	}
	var f seenFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || f.V != 1 || f.Seen == nil {
		return nil, fmt.Errorf("consent receiver: %s is not a seen-id file (v 1); remove it to start afresh", path)
	}
	for id, t := range f.Seen {
		if n, ok := b64Len(id); !ok || n != 16 || t <= 0 {
			return nil, fmt.Errorf("consent receiver: %s: bad entry %q: %d; remove the file to start afresh", path, clip(id), t)
		}
	}
	return f.Seen, nil
}

func writeSeen(path string, seen map[string]int64) error {
	data, err := json.Marshal(seenFile{V: 1, Seen: seen})
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Dir(path), filepath.Base(path), ".tmp-", data)
}
