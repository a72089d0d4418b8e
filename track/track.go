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
	// Hold keeps a track alive (and covered) this long after its last detection.
	Hold time.Duration
	// Growth widens a box by this fraction of its size per second since the
	// nearest observation, on each side.
	Growth float64
	// MatchIoU is the minimum IoU between a track's predicted box and a
	// detection for them to be the same face; a detection whose centre lies
	// within one box size of the prediction also matches.
	MatchIoU float64
}

// DefaultOptions suit 10-30 fps CCTV.
var DefaultOptions = Options{Hold: time.Second, Growth: 0.5, MatchIoU: 0.2}

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

// Track is one face's recent positions.
type Track struct {
	ID   uint64
	prev *obs // the observation before last, if any
	last obs
}

// LastSeen is the stream time of the track's latest detection.
func (tr *Track) LastSeen() time.Duration { return tr.last.t }

// Box is the track's latest detected box.
func (tr *Track) Box() Box { return tr.last.box }

// velocity in px/s of the box centre, from the last two observations.
func (tr *Track) velocity() (vx, vy float64) {
	if tr.prev == nil || tr.last.t <= tr.prev.t {
		return 0, 0
	}
	dt := (tr.last.t - tr.prev.t).Seconds()
	return (tr.last.box.cx() - tr.prev.box.cx()) / dt, (tr.last.box.cy() - tr.prev.box.cy()) / dt
}

// predict extrapolates the track to time t.
func (tr *Track) predict(t time.Duration) Box {
	vx, vy := tr.velocity()
	dt := (t - tr.last.t).Seconds()
	return tr.last.box.shift(vx*dt, vy*dt)
}

// Tracker holds the live tracks. It is not safe for concurrent use.
type Tracker struct {
	opts     Options
	tracks   []*Track
	nextID   uint64
	lastKey  time.Duration
	prevKey  time.Duration
	keyCount int
}

// New returns an empty tracker.
func New(o Options) *Tracker { return &Tracker{opts: o} }

// Tracks returns the live tracks (shared; do not modify).
func (t *Tracker) Tracks() []*Track { return t.tracks }

// Update records the detections of the keyframe at stream time at (which must
// not go backwards), matching them to tracks, starting new tracks for
// unmatched detections and dropping tracks unseen for longer than Hold.
func (t *Tracker) Update(at time.Duration, dets []image.Rectangle) {
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
			db := BoxOf(d)
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
		tr := t.tracks[p.ti]
		last := tr.last
		tr.prev = &last
		tr.last = obs{at, BoxOf(dets[p.di])}
	}
	for di, d := range dets {
		if !usedD[di] {
			t.nextID++
			t.tracks = append(t.tracks, &Track{ID: t.nextID, last: obs{at, BoxOf(d)}})
		}
	}
	live := t.tracks[:0]
	for _, tr := range t.tracks {
		if at-tr.last.t <= t.opts.Hold {
			live = append(live, tr)
		}
	}
	for i := len(live); i < len(t.tracks); i++ {
		t.tracks[i] = nil
	}
	t.tracks = live
}

// Cover returns the boxes to redact at stream time at, which must lie between
// the last two keyframes (inclusive) or after the last one. A track seen on
// both sides of at is interpolated; one first seen after at is covered
// backward from its first box; one last seen before at is extrapolated while
// within Hold. Every box grows with the time to its nearest observation.
func (t *Tracker) Cover(at time.Duration) []image.Rectangle {
	out := make([]image.Rectangle, 0, len(t.tracks))
	for _, tr := range t.tracks {
		b, ok := t.boxAt(tr, at)
		if ok {
			out = append(out, b.Rect())
		}
	}
	return out
}

func (t *Tracker) boxAt(tr *Track, at time.Duration) (Box, bool) {
	last := tr.last
	switch {
	case at >= last.t: // after the latest observation: hold and extrapolate
		dt := at - last.t
		if dt > t.opts.Hold {
			return Box{}, false
		}
		return tr.predict(at).grow(t.opts.Growth * dt.Seconds()), true
	case tr.prev != nil && at >= tr.prev.t: // between two observations
		span := (last.t - tr.prev.t).Seconds()
		f := 0.0
		if span > 0 {
			f = (at - tr.prev.t).Seconds() / span
		}
		near := math.Min(at.Seconds()-tr.prev.t.Seconds(), last.t.Seconds()-at.Seconds())
		return lerp(tr.prev.box, last.box, f).grow(t.opts.Growth * near), true
	default: // before the first observation we hold: cover backward
		dt := last.t - at
		if tr.prev != nil || dt > t.opts.Hold {
			// prev exists but is later than at only if times went backwards;
			// a track born more than Hold after at did not exist then.
			if tr.prev != nil {
				return tr.prev.box.grow(t.opts.Growth * (tr.prev.t - at).Seconds()), at >= tr.prev.t-t.opts.Hold
			}
			return Box{}, false
		}
		vx, vy := tr.velocity()
		return last.box.shift(-vx*dt.Seconds(), -vy*dt.Seconds()).grow(t.opts.Growth * dt.Seconds()), true
	}
}
