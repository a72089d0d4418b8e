package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/veil-edge/veil/egress"
)

// Reasons a report is refused: the label of veil_hq_messages_refused_total
// and, for the last two, the Refusal reason of an Ack.
const (
	reasonMalformed    = "malformed"
	reasonTopic        = "topic"
	reasonReplayed     = "replayed"
	reasonUnknown      = "unknown-device"
	reasonWrongStore   = "wrong-store"
	reasonUnsigned     = "unsigned"
	reasonBadSignature = "bad-signature"
	reasonStatus       = "status"
	reasonImplausible  = "implausible"
	reasonConflict     = "conflict"
	// reasonFuture: the window ends further ahead of head office's clock
	// than hq.max_skew. It is not refused for good (the box would drop its
	// counts for a wrong clock): it goes unanswered, the box publishes it
	// again with back-off, and it is stored once head office's clock has
	// caught up with it.
	reasonFuture = "future"
)

var reasons = [...]string{reasonMalformed, reasonTopic, reasonReplayed, reasonUnknown, reasonWrongStore,
	reasonUnsigned, reasonBadSignature, reasonStatus, reasonImplausible, reasonConflict, reasonFuture}

// admit decides whether r, which arrived on the footfall topic of store st
// and device dev, is from the box it names: a registered box whose key
// verifies its signature, or a device allowed to send unsigned reports.
// It returns r to store (without its signature if it was not verified) or
// the reason and error of its refusal. A refused report is never
// acknowledged to its box.
func (in *Ingest) admit(r egress.Report, st, dev string) (egress.Report, string, error) {
	box, registered := in.boxes[r.Device]
	if r.Store != st || r.Device != dev {
		err := fmt.Errorf("report of %s/%s on the topic of %s/%s", r.Store, r.Device, st, dev)
		if registered && box.Store == r.Store && r.Verify(box.Key) == nil {
			return r, reasonReplayed, fmt.Errorf("genuine %w", err)
		}
		return r, reasonTopic, err
	}
	allowed := in.unsigned[r.Store+"/"+r.Device]
	switch {
	case registered && box.Store != r.Store:
		return r, reasonWrongStore, fmt.Errorf("device %q is registered in store %q, not %q", r.Device, box.Store, r.Store)
	case !registered && allowed:
		r.Sig = "" // nothing to verify it with: stored as unsigned
		return r, "", nil
	case !registered:
		return r, reasonUnknown, fmt.Errorf("device %q of store %q is not in the box registry (hq.boxes)", r.Device, r.Store)
	}
	err := r.Verify(box.Key)
	switch {
	case err == nil:
		return r, "", nil
	case errors.Is(err, egress.ErrUnsigned) && allowed:
		return r, "", nil
	case errors.Is(err, egress.ErrUnsigned):
		return r, reasonUnsigned, fmt.Errorf("%w, and %s/%s is not in hq.unsigned_devices", err, r.Store, r.Device)
	default:
		return r, reasonBadSignature, fmt.Errorf("device %q boot %d seq %d: %w", r.Device, r.Boot, r.Seq, err)
	}
}

// implausible says why r cannot be stored now, with the reason, or nil:
// longer than MaxWindow or more people than MaxRate per second of its
// length (at least RateFloor), which no box counts (reasonImplausible), or
// ending more than MaxSkew after now (reasonFuture: not yet).
func (in *Ingest) implausible(r egress.Report, now time.Time) (string, error) {
	d := r.End.Sub(r.Start)
	if d > MaxWindow {
		return reasonImplausible, fmt.Errorf("window of %s (%s..%s); allowed at most %s", d, r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339), MaxWindow)
	}
	if ahead := r.End.Sub(now); ahead > in.o.MaxSkew {
		return reasonFuture, fmt.Errorf("window ends at %s, %s after head office's clock; allowed at most %s (hq.max_skew); not stored yet, the box will send it again",
			r.End.Format(time.RFC3339), ahead.Round(time.Second), in.o.MaxSkew)
	}
	people := float64(r.In) + float64(r.Out) // no overflow, unlike int
	if limit := in.o.MaxRate * max(d, RateFloor).Seconds(); people > limit {
		return reasonImplausible, fmt.Errorf("%d in and %d out in %s on line %s/%s; allowed at most %.0f (hq.max_rate %g per second, windows under %s counted as %s)",
			r.In, r.Out, d, r.Camera, r.Line, limit, in.o.MaxRate, RateFloor, RateFloor)
	}
	return "", nil
}
