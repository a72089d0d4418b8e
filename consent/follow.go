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
// like:
//
//  1. Suspended when close. While another face's box is near the bound one
//     (closer than the larger box's size, see near), the bound face is
//     redacted: the exemption is suspended from that frame on.
//  2. Ended when the paths met. If the tracker reports the bound track
//     contested on any keyframe since it was bound (another detection
//     within its reach, its detection within another track's reach, or
//     its path between two keyframes touching another's: track.Covered),
//     which face is which cannot be told by position and time, and the
//     binding ends.
//  3. Ended when someone was not seen while close. While suspended, the
//     bound track and every track that came near it must be detected on
//     every keyframe and stay tracked: a face hidden behind the other, or
//     lost, could come back under the other's track. Otherwise the
//     binding ends.
//  4. Resumed when apart. Once nothing has been near the bound face for
//     resumeAfter keyframes on which it was detected, with rules 2 and 3
//     holding throughout, the exemption resumes.
//
// Why a swap cannot exempt the bystander: the tracker gives a detection to
// a track only within one box size of the track's prediction. If the bound
// track takes the bystander's detection, then that detection was also
// within the bystander track's reach (contested: rule 2), or the bound
// face's own detection was within the bound track's reach (contested: rule
// 2), or neither: the bystander's face was more than track.ContestReach box
// sizes off where its track predicted it (or its track was lost) and the
// bound face was not detected (hidden or lost while another face was
// close: rule 3) or was more than ContestReach box sizes off its own
// prediction. The path rule (2) adds margin for crossings between two
// keyframes that the predictions carried past each other. The counts the
// rules read are updated on the keyframe itself, before any frame covered
// from it is asked about, so no frame is shown from a keyframe that broke
// continuity. What positions cannot tell: both faces jumping more than
// ContestReach box sizes off their predicted paths between two keyframes,
// into each other's places; or a bystander the detector never found (who
// is shown whatever the gate does) stepping into the bound face's place as
// it vanishes.
//
// A binding that ends this way is recorded as unbind with the reason; the
// shopper's own grant stays active and can be confirmed again on the spot
// (a relayed grant, which has no phone to confirm on the box, ends).

// resumeAfter is how many keyframes the bound face must be detected on
// with no other face near before its exemption resumes.
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
	contested int            // the track's Contested when bound
	suspended bool           // rule 1 (or waiting for rule 4)
	missed    int            // the bound track's Missed when suspended
	apart     int            // its Seen on the last frame something was near
	watch     map[uint64]int // tracks near it during the suspension -> their Missed when first near
}

// newFollow starts following the bound track f.
func newFollow(f track.Covered) *follow {
	return &follow{track: f.ID, contested: f.Contested}
}

// step applies the rules to one frame's faces, where f is the bound
// track's. It returns whether the frame may show f, or, when continuity
// is lost, why the binding ends.
func (fl *follow) step(f track.Covered, faces []track.Covered) (exempt bool, ended string) {
	if f.Contested > fl.contested {
		return false, reasonPathsMet
	}
	var close []track.Covered
	for _, o := range faces {
		if o.ID != f.ID && near(f.Box, o.Box) {
			close = append(close, o)
		}
	}
	if len(close) > 0 && !fl.suspended {
		fl.suspended, fl.missed, fl.watch = true, f.Missed, map[uint64]int{}
	}
	if !fl.suspended {
		return true, ""
	}
	if f.Held || f.Missed > fl.missed {
		return false, reasonHiddenClose
	}
	for _, o := range close {
		if o.Held {
			return false, reasonHiddenClose
		}
		if _, ok := fl.watch[o.ID]; !ok {
			fl.watch[o.ID] = o.Missed
		}
	}
	for id, missed := range fl.watch {
		o, ok := find(faces, id)
		switch {
		case !ok:
			return false, reasonLostClose
		case o.Held || o.Missed > missed:
			return false, reasonHiddenClose
		}
	}
	if len(close) > 0 {
		fl.apart = f.Seen
		return false, ""
	}
	if f.Seen-fl.apart >= resumeAfter {
		fl.suspended, fl.watch = false, nil
		return true, ""
	}
	return false, ""
}

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
