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
//
// Each track also counts, keyframe by keyframe, what a consumer that must
// not confuse two people needs to know (the consent gate): the keyframes it
// was detected on, those it was missed on, and those on which it was
// contested: its identity could have been confused with another track's by
// position and time alone (see Covered).
package track

import (
	"image"
	"math"
	"slices"
	"time"
)

// Options tunes the tracker.
type Options struct {
	// Hold keeps a track alive (and covered) this long after its last
	// detection, and covers it this long before its first. A track seen on
	// the newest keyframe stays covered past Hold until a keyframe misses
	// it.
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
	// Keyframe counts since the track began, and the tracks it was
	// contested by (see Covered).
	seen, missed, contested int
	rivals                  []Rival // never modified in place: Covered shares it
}

// Confirmed reports whether the track is covered (see Options.ConfirmScore).
func (tr *Track) Confirmed() bool { return tr.confirmed }

// observe appends a detection and reports whether it confirmed the track.
// Once confirmed a track stays so, so counting the capped history is enough
// for any ConfirmObs up to maxObs.
func (tr *Track) observe(o Options, at time.Duration, d Detection) (confirmed bool) {
	tr.obs = append(tr.obs, obs{at, BoxOf(d.Box)})
	tr.seen++
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
	preds := make([]Box, len(t.tracks))
	var pairs []pair
	for ti, tr := range t.tracks {
		p := tr.predict(at)
		preds[ti] = p
		for di, d := range dets {
			if s, ok := t.matchable(p, BoxOf(d.Box)); ok {
				pairs = append(pairs, pair{ti, di, s})
			}
		}
	}
	// Sort pairs by score, best first (insertion sort; counts are small).
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && pairs[j].score > pairs[j-1].score; j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	match := make([]int, len(t.tracks)) // detection index per track, -1: missed
	for i := range match {
		match[i] = -1
	}
	usedD := make([]bool, len(dets))
	for _, p := range pairs {
		if match[p.ti] >= 0 || usedD[p.di] {
			continue
		}
		match[p.ti], usedD[p.di] = p.di, true
	}
	// Detections no track took start new tracks; their IDs are known
	// now so that contest can name them.
	owner := make([]uint64, len(dets)) // the track each detection goes to
	for ti, di := range match {
		if di >= 0 {
			owner[di] = t.tracks[ti].ID
		}
	}
	old := len(t.tracks)
	for di := range dets {
		if !usedD[di] {
			t.nextID++
			owner[di] = t.nextID
			t.tracks = append(t.tracks, &Track{ID: t.nextID})
		}
	}
	rivals := t.contest(t.tracks[:old], preds, match, dets, owner)
	for ti, di := range match {
		if di >= 0 && t.tracks[ti].observe(t.opts, at, dets[di]) {
			t.faces++
		}
		if di < 0 {
			t.tracks[ti].missed++
		}
	}
	next := old
	for di, d := range dets {
		if !usedD[di] {
			if t.tracks[next].observe(t.opts, at, d) {
				t.faces++
			}
			next++
		}
	}
	seen := make(map[uint64]int, len(t.tracks))
	for _, tr := range t.tracks {
		seen[tr.ID] = tr.seen
	}
	for _, tr := range t.tracks {
		if ids := rivals[tr.ID]; len(ids) > 0 {
			tr.contested++
			add := make([]Rival, len(ids))
			for i, id := range ids {
				add[i] = Rival{ID: id, N: tr.contested, Seen: seen[id]}
			}
			tr.rivals = addRivals(tr.rivals, add)
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

// matchable reports whether a track predicted at p may take detection d
// (the matching gate: IoU with the prediction of at least MatchIoU, or a
// centre within one box size of the prediction's and a width within a
// factor of 2 of it), and the match's score, best highest.
func (t *Tracker) matchable(p, d Box) (float64, bool) {
	s := iou(p, d)
	if s >= t.opts.MatchIoU {
		return s, true
	}
	size := math.Max(p.w(), p.h())
	dist := math.Hypot(p.cx()-d.cx(), p.cy()-d.cy())
	ratio := d.w() / math.Max(p.w(), 1)
	if dist > size || ratio < 0.5 || ratio > 2 {
		return 0, false
	}
	return t.opts.MatchIoU * (1 - dist/size), true // below any IoU match
}

// ContestRatio bounds the widths of two faces the tracker could confuse:
// within this factor of each other. Its matching gate takes a detection at
// a distance only when the widths are within a factor of 2, and one by
// IoU (at least MatchIoU) only when their areas are within a factor of
// 1/MatchIoU: widths within 2.24 for the default 0.2. A face that much
// larger or smaller than another is at another depth, and no matching
// swaps them. A tracker whose MatchIoU is below 0.2 widens the bound it
// contests by to 1/sqrt(MatchIoU).
const ContestRatio = 2.25

// Confusable reports whether two face boxes are of sizes the tracker could
// confuse (widths within ContestRatio of each other).
func Confusable(a, b image.Rectangle) bool { return sizesClose(BoxOf(a), BoxOf(b)) }

func sizesClose(a, b Box) bool { return sizesWithin(a, b, ContestRatio) }

func sizesWithin(a, b Box, ratio float64) bool {
	if a.w() <= 0 || b.w() <= 0 {
		return false
	}
	r := a.w() / b.w()
	return r <= ratio && r >= 1/ratio
}

// contestRatio is the size ratio this tracker contests by: ContestRatio,
// or wider for a MatchIoU below 0.2.
func (t *Tracker) contestRatio() float64 {
	if t.opts.MatchIoU > 0 {
		return max(ContestRatio, 1/math.Sqrt(t.opts.MatchIoU))
	}
	return math.Inf(1)
}

// sweptMargin grows each box of a track's path between two keyframes by
// this share of its size on each side.
const sweptMargin = 0.25

// movedShare: a track moved between two keyframes when its box's centre
// moved by more than this share of its size.
const movedShare = 0.25

// swept is the region a face may have crossed between two keyframes: the
// bounding box of its boxes at both, each grown by sweptMargin.
func swept(a, b Box) Box {
	a, b = a.grow(sweptMargin), b.grow(sweptMargin)
	return Box{math.Min(a.X0, b.X0), math.Min(a.Y0, b.Y0), math.Max(a.X1, b.X1), math.Max(a.Y1, b.Y1)}
}

// moved reports whether a face went from box a to box b (see movedShare).
func moved(a, b Box) bool {
	return math.Hypot(b.cx()-a.cx(), b.cy()-a.cy()) > movedShare*math.Max(a.w(), a.h())
}

// contest finds, for this keyframe, every track whose identity could have
// been confused with another's by position and time alone (Covered's
// Contested and Rivals): a detection other than its own that its matching
// gate would have taken, or its own detection within another track's gate
// (unless both tracks overlap their own detections and reach each other's
// by distance only: no choice then),
// or its path since the previous keyframe (swept) touching another track's
// path or the first box of a new track where one of the two moved (two
// faces standing side by side are told apart by the gate), between faces
// of sizes the tracker could confuse (ContestRatio). tracks are the tracks
// before this keyframe, preds their predicted boxes at it, match the
// detection each took (-1: none), owner the track (old or new) each
// detection goes to. It runs before the detections are recorded, and
// returns the rivals of each track (old or new) that has any, by track ID.
func (t *Tracker) contest(tracks []*Track, preds []Box, match []int, dets []Detection, owner []uint64) map[uint64][]uint64 {
	type path struct {
		id    uint64
		box   Box  // swept
		face  Box  // the face's box at this keyframe
		moved bool // since the previous keyframe
	}
	var paths []path
	taken := make([]bool, len(dets))
	for ti, tr := range tracks {
		to := preds[ti]
		if di := match[ti]; di >= 0 {
			to, taken[di] = BoxOf(dets[di].Box), true
		}
		from := tr.last().box
		paths = append(paths, path{tr.ID, swept(from, to), to, moved(from, to)})
	}
	for di, d := range dets {
		if !taken[di] {
			b := BoxOf(d.Box)
			paths = append(paths, path{owner[di], swept(b, b), b, false})
		}
	}
	ratio := t.contestRatio()
	rivals := map[uint64][]uint64{}
	rival := func(a, b uint64) {
		if a != b && !slices.Contains(rivals[a], b) {
			rivals[a] = append(rivals[a], b)
			rivals[b] = append(rivals[b], a)
		}
	}
	for j, p := range paths {
		for _, q := range paths[j+1:] {
			if (p.moved || q.moved) && iou(p.box, q.box) > 0 && sizesWithin(p.face, q.face, ratio) {
				rival(p.id, q.id) // paths met between the keyframes
			}
		}
	}
	// The score each detection was taken with by an old track.
	takenWith := make([]float64, len(dets))
	for ti, di := range match {
		if di >= 0 {
			takenWith[di], _ = t.matchable(preds[ti], BoxOf(dets[di].Box))
		}
	}
	for ti, tr := range tracks {
		own := -1.0 // the score of its own match
		if di := match[ti]; di >= 0 {
			own = takenWith[di]
		}
		for di, d := range dets {
			s, ok := t.matchable(preds[ti], BoxOf(d.Box))
			if !ok || di == match[ti] {
				continue
			}
			// No choice: both tracks overlap their own detections (by
			// MatchIoU) and reach each other's by distance only, as two
			// faces side by side do. Any other detection in its gate is
			// one it could have taken.
			if taken[di] && takenWith[di] >= t.opts.MatchIoU && own >= t.opts.MatchIoU && s < t.opts.MatchIoU {
				continue
			}
			rival(tr.ID, owner[di])
		}
	}
	return rivals
}

// maxRivals bounds the rivals a track remembers (the most recent).
const maxRivals = 16

// Rival is a track that contested another (see Covered.Rivals).
type Rival struct {
	ID uint64
	// N is the contested track's Contested count on the latest keyframe
	// this rival contested it.
	N int
	// Seen is the keyframes the rival had been detected on by then,
	// that one included if it was detected on it.
	Seen int
}

// addRivals returns rs with add recorded as rivals, most recent last, the
// oldest dropped beyond maxRivals, in a new slice: Covered values share the
// old one.
func addRivals(rs, add []Rival) []Rival {
	out := make([]Rival, 0, len(rs)+len(add))
	for _, r := range rs {
		if !slices.ContainsFunc(add, func(a Rival) bool { return a.ID == r.ID }) {
			out = append(out, r)
		}
	}
	out = append(out, add...)
	if len(out) > maxRivals {
		out = out[len(out)-maxRivals:]
	}
	return slices.Clip(out)
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

// Covered is a track's box to redact at one moment, with the track's ID
// and what its keyframes say about its continuity. The counts only grow
// over a track's life, so a consumer compares them with what it saw
// before; they reflect every keyframe applied so far, which in a
// look-ahead schedule includes keyframes after the covered moment.
type Covered struct {
	ID  uint64
	Box image.Rectangle
	// Seen is the number of keyframes the track was detected on, Missed
	// the number it was not detected on since its first.
	Seen, Missed int
	// Contested is the number of keyframes on which the track's identity
	// could have been confused with another track's by position and time
	// alone: another detection its matching gate would have taken, or its
	// own detection within another track's gate, unless both tracks
	// overlap their own detections (by MatchIoU) and reach each other's by
	// distance only; or its path since the
	// previous keyframe (boxes grown by a quarter) touching another
	// track's path or a new track's first box where one of them moved;
	// the paths only between faces of sizes the tracker could confuse
	// (ContestRatio). A track never contested has been the one face it
	// followed as far as positions can tell.
	Contested int
	// Rivals are the tracks it was contested by, each with the keyframe
	// (by Contested count) it last did, the most recent last (up to 16;
	// shared, do not modify). A detection that started a new track is
	// named by that track.
	Rivals []Rival
	// Held: the track was not detected on the latest keyframe; its box is
	// held and extrapolated.
	Held bool
}

// CoverTracks is Cover with the ID of the track behind each box.
func (t *Tracker) CoverTracks(at time.Duration) []Covered {
	out := make([]Covered, 0, len(t.tracks))
	for _, tr := range t.tracks {
		if !tr.confirmed {
			continue
		}
		if b, ok := t.boxAt(tr, at); ok {
			out = append(out, Covered{ID: tr.ID, Box: b.Rect(), Seen: tr.seen, Missed: tr.missed, Contested: tr.contested,
				Rivals: tr.rivals, Held: tr.last().t < t.lastKey})
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
		// The hold runs out only once a keyframe has missed the track: one
		// seen on the newest keyframe is covered until the next is applied,
		// however late (the live schedule shows frames past the newest
		// keyframe; a late one makes them whole anyway).
		if dt > hold && last.t < t.lastKey {
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
