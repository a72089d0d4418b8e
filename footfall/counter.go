package footfall

import (
	"fmt"
	"image"
	"time"

	"gocv.io/x/gocv"
)

// Tally is a line's crossings.
type Tally struct{ In, Out int }

// Crossing is one counted crossing.
type Crossing struct {
	Line int // index into the counter's lines
	Dir  Direction
	At   time.Duration // stream time of the frame it was counted on
}

// Counter counts people crossing lines in one camera's frames. It tracks
// what its detector finds: blobs (Motion) with the blob tracker, which
// splits and filters them by learnt perspective first; people (a person
// detector, maybe Gated) with the people tracker (see PeopleOptions).
type Counter struct {
	det    PersonDetector
	finds  Finding
	lines  []Line
	geoms  []geom
	tr     tracker        // FindsBlobs
	persp  *perspective   // FindsBlobs
	people *peopleTracker // FindsPeople
	totals []Tally
	size   image.Point // frame size the lines were last checked against
	rects  []image.Rectangle
	// history is what the people tracker knew at each of the last
	// historyFrames frames (FindsPeople), a ring: the newest at
	// history[(next-1) mod historyFrames].
	history []peopleFrame
	next    int
	// okAt is the stream time up to which the people are known: that of
	// the frame of the last successful detection, or of the last frame
	// with nothing to detect (ok once either happened). A frame more than
	// staleAfter later is not known (PeopleAt).
	okAt       time.Duration
	ok         bool
	staleAfter time.Duration
}

// personAspect is a walking person's typical width / height.
const personAspect = 0.42

// NewCounter counts crossings of lines using det, with the tracker for what
// det finds (det.Finds); with no lines it only tracks (PeopleAt). It takes
// ownership of det once it returns no error; the caller closes det on an
// error.
func NewCounter(det PersonDetector, lines []Line, o TrackOptions) (*Counter, error) {
	finds := det.Finds()
	if err := o.Validate(finds); err != nil {
		return nil, fmt.Errorf("footfall: %w", err)
	}
	c := &Counter{det: det, finds: finds, lines: lines, totals: make([]Tally, len(lines))}
	if finds == FindsPeople {
		c.people = newPeopleTracker(o)
		c.staleAfter = peopleStale
		if g, ok := det.(*Gated); ok {
			c.staleAfter += 2 * g.o.Every
		}
	} else {
		c.tr, c.persp = tracker{o: o}, newPerspective(personAspect, o.Overhead)
	}
	for _, l := range lines {
		if err := l.Valid(image.Point{}); err != nil {
			return nil, err
		}
		c.geoms = append(c.geoms, newGeom(l))
	}
	return c, nil
}

// Lines returns the counter's lines.
func (c *Counter) Lines() []Line { return c.lines }

// Totals returns each line's crossings so far.
func (c *Counter) Totals() []Tally { return append([]Tally(nil), c.totals...) }

// Frame reads one frame taken at stream time at and returns the crossings
// it completed. frame is only read during the call.
func (c *Counter) Frame(frame gocv.Mat, at time.Duration) ([]Crossing, error) {
	if size := image.Pt(frame.Cols(), frame.Rows()); size != c.size {
		for _, l := range c.lines { // once per frame size, not per frame
			if err := l.Valid(size); err != nil {
				return nil, err
			}
		}
		c.size = size
	}
	var evs []event
	if c.finds == FindsPeople {
		var err error
		if evs, err = c.trackPeople(frame, at); err != nil {
			return nil, err
		}
	} else {
		dets, err := c.det.Detect(frame)
		if err != nil {
			return nil, fmt.Errorf("footfall: detect people: %w", err)
		}
		c.rects = c.rects[:0]
		for _, d := range dets {
			c.rects = append(c.rects, d.Box)
		}
		people, guessed := c.persp.people(c.rects, frame.Rows())
		evs = c.tr.update(at, people, guessed, c.geoms)
		for _, p := range c.tr.people {
			if p.hits >= c.tr.o.MinHits && p.last == at {
				c.persp.learn(p.box)
			}
		}
	}
	out := make([]Crossing, 0, len(evs))
	for _, e := range evs {
		if e.dir == In {
			c.totals[e.line].In++
		} else {
			c.totals[e.line].Out++
		}
		out = append(out, Crossing{Line: e.line, Dir: e.dir, At: e.at})
	}
	return out, nil
}

// scheduled is a detector that decides for itself on which frames to run,
// from the frame's stream time and whether any track is alive.
type scheduled interface {
	detectAt(frame gocv.Mat, at time.Duration, tracking bool) (gateResult, error)
}

// trackPeople runs a people detector on frame (or collects a background
// run's detections), unless it is scheduled and skips it, and moves the
// people tracker on to at.
func (c *Counter) trackPeople(frame gocv.Mat, at time.Duration) ([]event, error) {
	var (
		r   gateResult
		err error
	)
	if s, ok := c.det.(scheduled); ok {
		r, err = s.detectAt(frame, at, c.people.live())
	} else {
		r.dets, err = c.det.Detect(frame)
		r.at, r.got = at, err == nil
	}
	var evs []event
	if r.got {
		evs = c.people.update(r.at, r.dets, c.geoms)
		c.okAt, c.ok = max(c.okAt, r.at), true
	}
	if r.idle {
		c.okAt, c.ok = at, true
	}
	c.people.coast(at)
	c.remember(at, c.ok && at-c.okAt <= c.staleAfter)
	if err != nil {
		return evs, fmt.Errorf("footfall: detect people: %w", err)
	}
	return evs, nil
}

// peopleStale is how long after the last successful person detection a
// frame's people still count as known (predicted by the tracker), beyond
// twice the gate's detection period: a late or failed detection or two do
// not hide a whole frame, a longer outage does.
const peopleStale = 500 * time.Millisecond

// historyFrames is how many frames' people a Counter remembers for
// PeopleAt: frames are redacted some frames after the counter saw them
// (the pipeline's look-ahead), never more than this many.
const historyFrames = 256

// peopleFrame is what the people tracker knew at one frame.
type peopleFrame struct {
	at    time.Duration
	boxes []image.Rectangle
	known bool
}

// remember records the people tracked at frame time at, and whether they
// are known then (see PeopleAt).
func (c *Counter) remember(at time.Duration, known bool) {
	f := peopleFrame{at: at, known: known}
	if known {
		f.boxes = c.people.boxes(at)
	}
	if len(c.history) < historyFrames {
		c.history = append(c.history, f)
	} else {
		c.history[c.next] = f
	}
	c.next = (c.next + 1) % historyFrames
}

// PeopleAt returns the boxes (frame pixels) of the people tracked at the
// frame taken at stream time at: every live track, tentative or confirmed,
// predicted to that time and grown by twice its place's uncertainty. known
// is false when the counter cannot say who was there: no person detection
// has succeeded yet, or none for longer than half a second and two
// detection periods before the frame (failed or late runs: one or two
// are bridged by the tracker's predictions), the frame is not among the
// last frames it saw, or the counter counts blobs, not people. A caller
// that must hide people then hides the whole frame.
func (c *Counter) PeopleAt(at time.Duration) (boxes []image.Rectangle, known bool) {
	n := len(c.history)
	for k := 1; k <= n; k++ { // newest first: the frame asked about is usually recent
		if f := c.history[(c.next-k+historyFrames)%historyFrames]; f.at == at {
			return append([]image.Rectangle(nil), f.boxes...), f.known
		}
	}
	return nil, false
}

// Close releases the detector.
func (c *Counter) Close() error { return c.det.Close() }
