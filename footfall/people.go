package footfall

import (
	"fmt"
	"image"
	"math"
	"time"
)

// PeopleOptions tunes the people tracker, which follows the boxes of a
// detector that finds one box per person (FindsPeople), each with a score.
//
// Each run of the detector, every track is predicted to the frame's stream
// time by its Kalman filter, then detections are matched in two passes
// (as ByteTrack does): first those scoring at least HighScore against every
// live track, then those scoring at least LowScore against the confirmed
// tracks still unmatched, so a person half hidden (a low score) keeps their
// track. Each pass is an optimal assignment on a cost that mixes the overlap
// (IoU) of the track's predicted box with the detection's and the distance
// of their places in person heights; pairs beyond Gate or HeightRatio are
// never made.
//
// A high-score detection nobody matched starts a tentative track. It is
// confirmed by MinHits matches in a row within BirthWindow; one run of the
// detector without a match, or the window running out, ends it. A confirmed
// track without a match coasts on its prediction and ends MaxAge after its
// last match. Only matched detections move a track across a line, so a
// person hidden while crossing is counted when seen again on the other side
// and a prediction alone never counts. Crossings seen while a track is
// tentative are held and counted when it is confirmed, or dropped with it.
type PeopleOptions struct {
	// HighScore is the score from which a detection is matched in the
	// first pass and may start a track. Allowed (0, 1]; default 0.4.
	HighScore float32
	// LowScore is the score from which a detection is used at all; those
	// below HighScore only keep confirmed tracks alive. Allowed
	// [0, HighScore]; default 0.25.
	LowScore float32
	// MinHits is how many matches in a row confirm a new track. Allowed
	// 1..100; default 3 (a false detection must last three runs).
	MinHits int
	// TentativeMisses is how many runs of the detector in a row a new
	// track may go unmatched before it ends: a person the detector loses
	// now and then (in a group, half hidden) still gets confirmed. Allowed
	// 0..10; default 0.
	TentativeMisses int
	// BirthWindow is how long a new track has to reach MinHits. Allowed
	// above 0; default 1 s.
	BirthWindow time.Duration
	// MaxAge is how long a confirmed track lives on its prediction without
	// a match: the longest a person may be hidden and still keep their
	// track. Allowed 0 to 1 minute; default 2 s.
	MaxAge time.Duration
	// Gate is the furthest a detection's place may be from a track's
	// predicted place, in person heights, beyond twice the prediction's
	// own uncertainty (which grows while a track coasts). Allowed (0, 5];
	// default 0.7.
	Gate float64
	// HeightRatio is how many times taller or shorter than a track's
	// predicted box a detection may be and still match it. Allowed
	// (1, 10]; default 1.6.
	HeightRatio float64
	// IoUWeight is the share of the match cost given to 1 - IoU of the
	// predicted and detected boxes; the rest is the place distance as a
	// fraction of the gate. Allowed [0, 1]; default 0.8.
	IoUWeight float64
}

// DefaultPeopleOptions suit a person detector run at 5 to 25 Hz.
//
// Tuned on six hand-counted lines of vtest.avi (L1, L2, L3, V6, D1, H3;
// docs/RESULTS.md) with the CenterNet person detector at 320 px wide: its
// people score 0.3 to 0.7, so a track starts at 0.4 and lives on down to
// 0.25; a coasting track may be found again up to 2 s later, within 0.7
// person heights beyond its uncertainty, by overlap more than distance.
var DefaultPeopleOptions = PeopleOptions{
	HighScore: 0.4, LowScore: 0.25, MinHits: 3, BirthWindow: time.Second,
	MaxAge: 2 * time.Second, Gate: 0.7, HeightRatio: 1.6, IoUWeight: 0.8,
}

// Validate reports the first option out of its allowed range.
func (o PeopleOptions) Validate() error {
	switch {
	case !(o.HighScore > 0 && o.HighScore <= 1):
		return fmt.Errorf("people tracker: HighScore %g out of range (0, 1]", o.HighScore)
	case !(o.LowScore >= 0 && o.LowScore <= o.HighScore):
		return fmt.Errorf("people tracker: LowScore %g out of range [0, HighScore=%g]", o.LowScore, o.HighScore)
	case o.MinHits < 1 || o.MinHits > 100:
		return fmt.Errorf("people tracker: MinHits %d out of range 1..100", o.MinHits)
	case o.TentativeMisses < 0 || o.TentativeMisses > 10:
		return fmt.Errorf("people tracker: TentativeMisses %d out of range 0..10", o.TentativeMisses)
	case o.BirthWindow <= 0:
		return fmt.Errorf("people tracker: BirthWindow %v out of range: must be > 0", o.BirthWindow)
	case o.MaxAge < 0 || o.MaxAge > time.Minute:
		return fmt.Errorf("people tracker: MaxAge %v out of range [0, 1m]", o.MaxAge)
	case !(o.Gate > 0 && o.Gate <= 5):
		return fmt.Errorf("people tracker: Gate %g out of range (0, 5] person heights", o.Gate)
	case !(o.HeightRatio > 1 && o.HeightRatio <= 10):
		return fmt.Errorf("people tracker: HeightRatio %g out of range (1, 10]", o.HeightRatio)
	case !(o.IoUWeight >= 0 && o.IoUWeight <= 1):
		return fmt.Errorf("people tracker: IoUWeight %g out of range [0, 1]", o.IoUWeight)
	}
	return nil
}

// ptrack is one person followed by the people tracker.
type ptrack struct {
	id        int
	kf        *kalman
	hits      int           // matches so far
	born      time.Duration // stream time of the first match
	seen      time.Duration // stream time of the last match
	confirmed bool
	misses    int // runs of the detector in a row without a match (tentative tracks)
	lines     []crossing
	held      []event // crossings seen while tentative
}

// peopleTracker follows one box per person (see PeopleOptions).
type peopleTracker struct {
	o        PeopleOptions
	band     float64 // TrackOptions.Band
	overhead bool
	tracks   []*ptrack
	nextID   int
}

func newPeopleTracker(o TrackOptions) *peopleTracker {
	return &peopleTracker{o: o.People, band: o.Band, overhead: o.Overhead}
}

// boxes returns every live track's box predicted to at, grown on each side
// by twice the uncertainty of its place.
func (t *peopleTracker) boxes(at time.Duration) []image.Rectangle {
	out := make([]image.Rectangle, 0, len(t.tracks))
	for _, p := range t.tracks {
		k := *p.kf // a copy: the track's own filter is not moved
		k.predict(at)
		g := int(math.Ceil(2 * k.spread()))
		out = append(out, k.box(t.overhead).Inset(-g))
	}
	return out
}

// live reports whether any track, tentative or confirmed, is alive.
func (t *peopleTracker) live() bool { return len(t.tracks) > 0 }

// coast moves time on to at on a frame the detector did not run on: no
// track misses a detection, but tracks whose time is up end.
func (t *peopleTracker) coast(at time.Duration) {
	t.expire(at, nil)
}

// update matches the detections of a frame taken at stream time at to the
// tracks and returns the crossings that now count.
func (t *peopleTracker) update(at time.Duration, dets []Detection, lines []geom) []event {
	var high, low []Detection
	for _, d := range dets {
		switch {
		case d.Box.Dx() <= 0 || d.Box.Dy() <= 0 || !(d.Score >= t.o.LowScore):
		case d.Score >= t.o.HighScore:
			high = append(high, d)
		default:
			low = append(low, d)
		}
	}
	for _, p := range t.tracks {
		p.kf.predict(at)
	}
	matched := make([]bool, len(t.tracks))
	var out []event
	// First pass: confident detections against every track.
	all := make([]int, len(t.tracks))
	for i := range all {
		all[i] = i
	}
	usedHigh := t.match(all, high, func(ti, di int) {
		matched[ti] = true
		out = append(out, t.observe(t.tracks[ti], at, high[di].Box, lines)...)
	})
	// Second pass: doubtful detections keep confirmed tracks alive.
	var rest []int
	for i, p := range t.tracks {
		if !matched[i] && p.confirmed {
			rest = append(rest, i)
		}
	}
	t.match(rest, low, func(ti, di int) {
		matched[ti] = true
		out = append(out, t.observe(t.tracks[ti], at, low[di].Box, lines)...)
	})
	t.expire(at, matched)
	// Births: confident detections nobody took.
	for j, d := range high {
		if usedHigh[j] {
			continue
		}
		p := &ptrack{id: t.nextID, kf: newKalman(measure(d.Box, t.overhead), at), born: at, lines: make([]crossing, len(lines))}
		t.nextID++
		t.tracks = append(t.tracks, p)
		out = append(out, t.observe(p, at, d.Box, lines)...)
	}
	return out
}

// match assigns dets to the tracks numbered in idx, calls pair for each
// pair made and reports which detections were taken.
func (t *peopleTracker) match(idx []int, dets []Detection, pair func(track, det int)) []bool {
	used := make([]bool, len(dets))
	if len(idx) == 0 || len(dets) == 0 {
		return used
	}
	cost := make([][]float64, len(idx))
	for r, ti := range idx {
		cost[r] = make([]float64, len(dets))
		for c, d := range dets {
			cost[r][c] = t.cost(t.tracks[ti], d.Box)
		}
	}
	for r, c := range assign(cost, 1) {
		if c >= 0 {
			used[c] = true
			pair(idx[r], c)
		}
	}
	return used
}

// cost of matching box b to track p, predicted to b's time: in [0, 1], or
// +Inf outside the gates.
func (t *peopleTracker) cost(p *ptrack, b image.Rectangle) float64 {
	z := measure(b, t.overhead)
	px, py := p.kf.place()
	h := p.kf.height()
	if r := z[2] / h; r > t.o.HeightRatio || r < 1/t.o.HeightRatio {
		return math.Inf(1)
	}
	radius := t.o.Gate*h + 2*p.kf.spread()
	d := math.Hypot(z[0]-px, z[1]-py) / radius
	if d > 1 {
		return math.Inf(1)
	}
	return t.o.IoUWeight*(1-iou(p.kf.box(t.overhead), b)) + (1-t.o.IoUWeight)*d
}

// observe corrects p with a box matched at stream time at (a new track's
// first box included), steps its line crossings with the filtered place and
// returns the crossings that now count.
func (t *peopleTracker) observe(p *ptrack, at time.Duration, b image.Rectangle, lines []geom) []event {
	if p.hits > 0 {
		p.kf.update(measure(b, t.overhead))
	}
	p.hits++
	p.misses = 0
	p.seen = at
	x, y := p.kf.place()
	band := t.band * p.kf.height()
	for k, g := range lines {
		if dir, ok := p.lines[k].step(g, band, x, y, false); ok {
			p.held = append(p.held, event{line: k, dir: dir, at: at})
		}
	}
	if !p.confirmed && p.hits >= t.o.MinHits {
		p.confirmed = true
	}
	if !p.confirmed {
		return nil
	}
	out := p.held
	p.held = nil
	return out
}

// expire ends tracks whose time is up at stream time at. matched, if not
// nil, marks the tracks matched on this run of the detector: a tentative
// track not among them ends.
func (t *peopleTracker) expire(at time.Duration, matched []bool) {
	kept := t.tracks[:0]
	for i, p := range t.tracks {
		var end bool
		if p.confirmed {
			end = at-p.seen > t.o.MaxAge
		} else {
			if matched != nil && !matched[i] {
				p.misses++
			}
			end = p.misses > t.o.TentativeMisses || at-p.born > t.o.BirthWindow
		}
		if !end {
			kept = append(kept, p)
		}
	}
	clear(t.tracks[len(kept):])
	t.tracks = kept
}

// iou is the overlap of two boxes: intersection over union, 0 if disjoint.
func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	i := float64(in.Dx() * in.Dy())
	return i / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - i)
}
