package consent

import (
	"image"

	"github.com/veil-edge/veil/track"
)

// A consent is bound to a track: a box over time, never a face. When two
// people come close, a tracker can swap their tracks (a keyframe's
// detections matched the wrong way round), and the consenting shopper's
// exemption would jump to a bystander. The gate therefore follows each
// bound track with these rules, on every frame, from the positions and
// times the tracker reports (track.Covered), never from what faces look
// like. A face here is a track the tracker could confuse with the bound
// one (a size within track.ContestRatio of it); it is established once
// detected on two keyframes; a one-off has been detected on one.
//
//  1. Suspended when close. While a face is near the bound one or over it
//     (closer than the larger one's size), or a one-off that contested it
//     or came near it is still tracked, the bound face is redacted: the
//     exemption is suspended from that frame on. A box of a size no
//     matching confuses with the bound face (a detection on its hair, a
//     far face behind it) cannot take its track, and is redacted anyway.
//  2. Ended when the paths met. The tracker names, for every keyframe, the
//     tracks each track was contested by (track.Covered's Rivals: another
//     detection its matching gate would have taken, or its detection
//     within another's gate, unless both overlap their own detections and
//     reach each other's by distance only, as faces side by side do; or
//     paths between two keyframes touching where one of the two moved).
//     A rival that was established then ends the binding at once: which
//     face is which cannot be told by position and time. A one-off rival
//     is watched (rule 1); if it is ever detected again, it ends the
//     binding.
//  3. Ended when a face was not seen while close. While an established
//     face is close, the bound track and that face must be detected on
//     every keyframe and stay tracked until they have been seen apart: a
//     face hidden behind the other, or lost, could come back under the
//     other's track. Otherwise the binding ends.
//  4. One-offs forgotten. A one-off that disappears without being
//     detected again is forgotten, as the tracker itself treats it
//     (track.Options.TentativeHold: most single detections are false;
//     the detector finds a face's own shifted or rescaled copies at low
//     scores). Without this, those copies would end nearly every binding.
//  5. Resumed when apart. Once nothing of rules 1-3 holds the bound face,
//     and it has been detected on resumeAfter keyframes since, the
//     exemption resumes.
//
// Why a swap cannot exempt the bystander: the tracker gives a detection to
// a track only within the track's matching gate (about one box size of
// where it predicted the face). If the bound track takes the bystander's
// detection, then that detection was also within the bystander track's
// gate (its rival: rule 2), or the bound face's own detection was within
// the bound track's gate (the track it went to is a rival: rule 2, ended
// once that face is detected again), or neither: the bystander's face was
// outside its own track's gate (off its predicted path by more than a box
// size, or never tracked) and the bound face was not detected (hidden or
// lost while the bystander was close: rule 3) or was outside its own
// track's gate. The side-by-side exception hides a swap only if the
// bystander's face overlaps where the bound face was predicted while the
// bound face overlaps where the bystander's was and not its own: both
// moved into each other's places. The path rule adds margin for crossings between two
// keyframes that the predictions carried past each other. The tracker's
// counts are updated on the keyframe itself, before any frame covered
// from it is asked about, so no frame is shown from a keyframe that broke
// continuity.
//
// What positions cannot tell: both faces leaving their tracks' gates
// between two keyframes, into each other's places; and a bystander who
// was not tracked before (never detected: facing away, or hidden)
// stepping into the bound face's place, in front of it, at a keyframe on
// which the bound face is detected that once more and then no longer
// (rule 4 forgets it as a one-off).
//
// A binding that ends this way is recorded as unbind with the reason; the
// shopper's own grant stays active and can be confirmed again on the spot
// (a relayed grant, which has no phone to confirm on the box, ends).

// resumeAfter is how many keyframes the bound face must be detected on
// with nothing holding it (rules 1-3) before its exemption resumes.
const resumeAfter = 2

// Reasons a binding ends under the rules above, as the ledger records them.
const (
	reasonPathsMet    = "another face came within reach: which is which cannot be told by position"
	reasonHiddenClose = "a face was not detected while another was close: which is which cannot be told by position"
	reasonLostClose   = "a face that came close was lost: which is which cannot be told by position"
)

// follow is the state of one binding.
type follow struct {
	track     uint64
	contested int // the track's Contested when last looked at
	missed    int // the track's Missed on the previous frame
	suspended bool
	apart     int // its Seen on the last frame something held it
	watch     map[uint64]*watched
}

// watched is a face the bound one must be told apart from.
type watched struct {
	rival  bool // it contested the bound track (a one-off then)
	missed int  // its Missed when first watched
	seen   int  // its Seen on the last frame it was close
	gone   bool // a one-off that disappeared (rule 4), unless it comes back
}

// newFollow starts following the bound track f.
func newFollow(f track.Covered) *follow {
	return &follow{track: f.ID, contested: f.Contested, missed: f.Missed, watch: map[uint64]*watched{}}
}

// step applies the rules to one frame's faces, where f is the bound
// track's. It returns whether the frame may show f, or, when continuity
// is lost, why the binding ends.
func (fl *follow) step(f track.Covered, faces []track.Covered) (exempt bool, ended string) {
	defer func() { fl.missed = f.Missed }()
	// Rule 2: new rivals.
	rivalled := false
	for _, r := range f.Rivals {
		if r.N <= fl.contested {
			continue
		}
		o, ok := find(faces, r.ID)
		switch {
		case r.Seen >= 2 || ok && o.Seen >= 2:
			return false, reasonPathsMet
		case !ok: // a one-off the tracker no longer covers (rule 4)
			fl.watch[r.ID], rivalled = &watched{rival: true, gone: true}, true
		case fl.watch[r.ID] != nil:
			fl.watch[r.ID].rival = true
		default:
			fl.watch[r.ID] = &watched{rival: true, missed: o.Missed, seen: o.Seen}
		}
	}
	fl.contested = f.Contested
	// Rule 1: what is close now.
	close := map[uint64]bool{}
	for _, o := range faces {
		if o.ID != f.ID && near(f.Box, o.Box) && track.Confusable(f.Box, o.Box) {
			close[o.ID] = true
			if w, ok := fl.watch[o.ID]; !ok {
				fl.watch[o.ID] = &watched{missed: o.Missed, seen: o.Seen}
			} else {
				w.seen = o.Seen
			}
		}
	}
	// Rules 3 and 4: the faces watched.
	held, established := rivalled || len(close) > 0, false
	for id, w := range fl.watch {
		o, ok := find(faces, id)
		switch {
		case !ok && w.gone:
		case !ok && w.established():
			return false, reasonLostClose
		case !ok:
			w.gone = true // rule 4
		case (w.gone || o.Seen >= 2 && w.rival) && track.Confusable(f.Box, o.Box):
			return false, reasonPathsMet // a one-off came back: a face after all
		case w.gone || o.Seen >= 2 && w.rival:
			delete(fl.watch, id) // back, but at a size no matching confuses with f
		case o.Seen >= 2 && (o.Held || o.Missed > w.missed):
			return false, reasonHiddenClose
		case o.Seen >= 2 && !close[id] && o.Seen > w.seen:
			delete(fl.watch, id) // seen apart on a keyframe: told apart
		case o.Seen >= 2:
			established, held = true, true
		default:
			held = true // a one-off still tracked
		}
	}
	if established && (f.Held || f.Missed > fl.missed) {
		return false, reasonHiddenClose
	}
	// Rule 5.
	if held {
		fl.suspended, fl.apart = true, f.Seen
		return false, ""
	}
	if fl.suspended && f.Seen-fl.apart < resumeAfter {
		return false, ""
	}
	fl.suspended = false
	for id, w := range fl.watch {
		if w.gone {
			delete(fl.watch, id)
		}
	}
	return true, ""
}

// established reports whether the watched face was detected on two
// keyframes by the last frame it was close.
func (w *watched) established() bool { return w.seen >= 2 }

// near reports whether two face boxes are closer than the larger one's
// size (width or height): close enough that the two people may pass in
// front of each other before the next keyframe.
func near(a, b image.Rectangle) bool {
	m := max(a.Dx(), a.Dy(), b.Dx(), b.Dy())
	return a.Inset(-m / 2).Overlaps(b.Inset(-(m - m/2)))
}

// find returns the face of track id.
func find(faces []track.Covered, id uint64) (track.Covered, bool) {
	for _, f := range faces {
		if f.ID == id {
			return f, true
		}
	}
	return track.Covered{}, false
}
