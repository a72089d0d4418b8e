// Package track follows faces across frames so that a face stays covered
// between detections and for a hold time after the detector loses it.
//
// Tracks are positions over time, never identities: a track is a box, its
// recent observations and a counter-based id, nothing about the face itself.
//
// The tracker is updated on keyframes (frames on which detection ran) and
// answers Cover for any time between the last two keyframes, looking both
// backward and forward: a face first seen on keyframe k1 is also covered on
// the frames just before k1, and a face lost on k1 stays covered for the hold
// time. Boxes grow with the time since the nearest observation.
package track

import (
	"image"
	"math"
	"time"
)

// Options tunes the tracker.
type Options struct {
	// Hold keeps a track alive (and covered) this long after its last
	// detection, and covers it this long before its first.
	Hold time.Duration
	// TentativeHold replaces Hold for a track detected on one keyframe only:
	// most of those are false positives, and holding them as long as real
	// faces would blur much of the scene for nothing.
	TentativeHold time.Duration
	// Growth widens a box by this fraction of its size per second since the
	// nearest observation, on each side.
	Growth float64
	// MatchIoU is the minimum IoU between a track's predicted box and a
	// detection for them to be the same face; a detection whose centre lies
	// within one box size of the prediction also matches.
	MatchIoU float64
	// ConfirmScore and ConfirmObs decide when a track is covered at all. A
	// track is confirmed once one of its detections scored at least
	// ConfirmScore, or once it has ConfirmObs detections (0: never by
	// count; at most 64, the history a track keeps). Unconfirmed tracks are followed but not covered; once
	// confirmed, a track covers its whole history, so the look-ahead still
	// hides the frames before confirmation. ConfirmScore 0 confirms every
	// track at once.
	ConfirmScore float64
	ConfirmObs   int
}

// Detection is one face box found on a keyframe with the detector's score.
type Detection struct {
	Box   image.Rectangle
	Score float64
}

// DefaultOptions suit 10-30 fps CCTV.
var DefaultOptions = Options{Hold: time.Second, TentativeHold: 300 * time.Millisecond, Growth: 0.1, MatchIoU: 0.2, ConfirmScore: 0.4, ConfirmObs: 3}

// Box is a float rectangle in frame pixels.
type Box struct{ X0, Y0, X1, Y1 float64 }

// BoxOf converts an image.Rectangle.
func BoxOf(r image.Rectangle) Box {
	return Box{float64(r.Min.X), float64(r.Min.Y), float64(r.Max.X), float64(r.Max.Y)}
}

// Rect rounds outward.
func (b Box) Rect() image.Rectangle {
	return image.Rect(int(math.Floor(b.X0)), int(math.Floor(b.Y0)), int(math.Ceil(b.X1)), int(math.Ceil(b.Y1)))
}

func (b Box) w() float64  { return b.X1 - b.X0 }
func (b Box) h() float64  { return b.Y1 - b.Y0 }
func (b Box) cx() float64 { return (b.X0 + b.X1) / 2 }
func (b Box) cy() float64 { return (b.Y0 + b.Y1) / 2 }

// grow widens b by f of its size on each side.
func (b Box) grow(f float64) Box {
	dx, dy := b.w()*f, b.h()*f
	return Box{b.X0 - dx, b.Y0 - dy, b.X1 + dx, b.Y1 + dy}
}

func (b Box) shift(dx, dy float64) Box { return Box{b.X0 + dx, b.Y0 + dy, b.X1 + dx, b.Y1 + dy} }

func lerp(a, b Box, f float64) Box {
	return Box{a.X0 + (b.X0-a.X0)*f, a.Y0 + (b.Y0-a.Y0)*f, a.X1 + (b.X1-a.X1)*f, a.Y1 + (b.Y1-a.Y1)*f}
}

func iou(a, b Box) float64 {
	ix := math.Min(a.X1, b.X1) - math.Max(a.X0, b.X0)
	iy := math.Min(a.Y1, b.Y1) - math.Max(a.Y0, b.Y0)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	in := ix * iy
	return in / (a.w()*a.h() + b.w()*b.h() - in)
}

type obs struct {
	t   time.Duration
	box Box
}

// maxObs bounds a track's history: enough to interpolate across any
// look-ahead a pipeline buffers.
const maxObs = 64

// Track is one face's recent positions.
type Track struct {
	ID        uint64
	obs       []obs // oldest first; never empty
	confirmed bool
}

// Confirmed reports whether the track is covered (see Options.ConfirmScore).
func (tr *Track) Confirmed() bool { return tr.confirmed }

// observe appends a detection and reports whether it confirmed the track.
// Once confirmed a track stays so, so counting the capped history is enough
// for any ConfirmObs up to maxObs.
func (tr *Track) observe(o Options, at time.Duration, d Detection) (confirmed bool) {
	tr.obs = append(tr.obs, obs{at, BoxOf(d.Box)})
	if len(tr.obs) > maxObs {
		tr.obs = append(tr.obs[:0], tr.obs[len(tr.obs)-maxObs:]...)
	}
	if !tr.confirmed && (d.Score >= o.ConfirmScore || o.ConfirmObs > 0 && len(tr.obs) >= o.ConfirmObs) {
		tr.confirmed = true
		return true
	}
	return false
}

// LastSeen is the stream time of the track's latest detection.
func (tr *Track) LastSeen() time.Duration { return tr.last().t }

// Box is the track's latest detected box.
func (tr *Track) Box() Box { return tr.last().box }

func (tr *Track) last() obs { return tr.obs[len(tr.obs)-1] }

// velocityAt is the box centre's velocity in px/s between observations i
// and i+1 (0 when there is only one).
func (tr *Track) velocityAt(i int) (vx, vy float64) {
	if len(tr.obs) < 2 {
		return 0, 0
	}
	i = max(0, min(i, len(tr.obs)-2))
	a, b := tr.obs[i], tr.obs[i+1]
	dt := (b.t - a.t).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return (b.box.cx() - a.box.cx()) / dt, (b.box.cy() - a.box.cy()) / dt
}

// predict extrapolates the track forward to time t.
func (tr *Track) predict(t time.Duration) Box {
	vx, vy := tr.velocityAt(len(tr.obs) - 2)
	l := tr.last()
	dt := (t - l.t).Seconds()
	return l.box.shift(vx*dt, vy*dt)
}

// Tracker holds the live tracks. It is not safe for concurrent use.
type Tracker struct {
	opts     Options
	tracks   []*Track
	nextID   uint64
	lastKey  time.Duration
	prevKey  time.Duration
	keyCount int
	faces    int // tracks ever confirmed
}

// Faces is how many tracks have been confirmed (covered) so far: the faces
// seen, as positions over time.
func (t *Tracker) Faces() int { return t.faces }

// New returns an empty tracker.
func New(o Options) *Tracker { return &Tracker{opts: o} }

// Tracks returns the live tracks, confirmed or not (shared; do not modify).
func (t *Tracker) Tracks() []*Track { return t.tracks }

// Update records the detections of the keyframe at stream time at (which must
// not go backwards), matching them to tracks, starting new tracks for
// unmatched detections and dropping tracks unseen for longer than Hold.
func (t *Tracker) Update(at time.Duration, dets []Detection) {
	t.prevKey, t.lastKey = t.lastKey, at
	if t.keyCount == 0 {
		t.prevKey = at
	}
	t.keyCount++

	// Greedy matching by score: IoU with the prediction, or centre distance.
	type pair struct {
		ti, di int
		score  float64
	}
	var pairs []pair
	for ti, tr := range t.tracks {
		p := tr.predict(at)
		size := math.Max(p.w(), p.h())
		for di, d := range dets {
			db := BoxOf(d.Box)
			s := iou(p, db)
			if s < t.opts.MatchIoU {
				dist := math.Hypot(p.cx()-db.cx(), p.cy()-db.cy())
				ratio := db.w() / math.Max(p.w(), 1)
				if dist > size || ratio < 0.5 || ratio > 2 {
					continue
				}
				s = t.opts.MatchIoU * (1 - dist/size) // below any IoU match
			}
			pairs = append(pairs, pair{ti, di, s})
		}
	}
	// Sort pairs by score, best first (insertion sort; counts are small).
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && pairs[j].score > pairs[j-1].score; j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	usedT := make([]bool, len(t.tracks))
	usedD := make([]bool, len(dets))
	for _, p := range pairs {
		if usedT[p.ti] || usedD[p.di] {
			continue
		}
		usedT[p.ti], usedD[p.di] = true, true
		if t.tracks[p.ti].observe(t.opts, at, dets[p.di]) {
			t.faces++
		}
	}
	for di, d := range dets {
		if !usedD[di] {
			t.nextID++
			tr := &Track{ID: t.nextID}
			if tr.observe(t.opts, at, d) {
				t.faces++
			}
			t.tracks = append(t.tracks, tr)
		}
	}
	live := t.tracks[:0]
	for _, tr := range t.tracks {
		// Kept for twice the hold: frames still buffered behind the
		// newest keyframe may be within the hold of this track.
		if at-tr.last().t <= 2*t.opts.Hold {
			live = append(live, tr)
		}
	}
	for i := len(live); i < len(t.tracks); i++ {
		t.tracks[i] = nil
	}
	t.tracks = live
}

// Cover returns the boxes to redact at stream time at, which may lie
// anywhere in the span of frames the caller still buffers. A track observed
// on both sides of at is interpolated; one first seen after at is covered
// backward along its first velocity for up to Hold; one last seen before at
// is extrapolated forward for up to Hold. Every box grows with the time to
// its nearest observation.
func (t *Tracker) Cover(at time.Duration) []image.Rectangle {
	cs := t.CoverTracks(at)
	out := make([]image.Rectangle, len(cs))
	for i, c := range cs {
		out[i] = c.Box
	}
	return out
}

// Covered is a track's box to redact at one moment, with the track's ID.
type Covered struct {
	ID  uint64
	Box image.Rectangle
}

// CoverTracks is Cover with the ID of the track behind each box.
func (t *Tracker) CoverTracks(at time.Duration) []Covered {
	out := make([]Covered, 0, len(t.tracks))
	for _, tr := range t.tracks {
		if !tr.confirmed {
			continue
		}
		if b, ok := t.boxAt(tr, at); ok {
			out = append(out, Covered{ID: tr.ID, Box: b.Rect()})
		}
	}
	return out
}

func (t *Tracker) boxAt(tr *Track, at time.Duration) (Box, bool) {
	first, last := tr.obs[0], tr.last()
	hold := t.opts.Hold
	if len(tr.obs) == 1 && t.opts.TentativeHold > 0 && t.opts.TentativeHold < hold {
		hold = t.opts.TentativeHold
	}
	switch {
	case at >= last.t: // after the latest observation: hold and extrapolate
		dt := at - last.t
		if dt > hold {
			return Box{}, false
		}
		return tr.predict(at).grow(t.opts.Growth * dt.Seconds()), true
	case at < first.t: // before the first: cover backward
		dt := first.t - at
		if dt > hold {
			return Box{}, false
		}
		vx, vy := tr.velocityAt(0)
		return first.box.shift(-vx*dt.Seconds(), -vy*dt.Seconds()).grow(t.opts.Growth * dt.Seconds()), true
	}
	// Between two observations (binary search: obs are in time order).
	lo, hi := 0, len(tr.obs)-1
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if tr.obs[mid].t <= at {
			lo = mid
		} else {
			hi = mid
		}
	}
	a, b := tr.obs[lo], tr.obs[hi]
	f := 0.0
	if span := (b.t - a.t).Seconds(); span > 0 {
		f = (at - a.t).Seconds() / span
	}
	near := math.Min((at - a.t).Seconds(), (b.t - at).Seconds())
	return lerp(a.box, b.box, f).grow(t.opts.Growth * near), true
}
