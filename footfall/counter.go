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

// Counter counts people crossing lines in one camera's frames.
type Counter struct {
	det    PersonDetector
	lines  []Line
	geoms  []geom
	tr     tracker
	persp  *perspective
	totals []Tally
	size   image.Point // frame size the lines were last checked against
}

// personAspect is a walking person's typical width / height.
const personAspect = 0.42

// NewCounter counts crossings of lines using det; it takes ownership of det.
func NewCounter(det PersonDetector, lines []Line, o TrackOptions) (*Counter, error) {
	if len(lines) == 0 {
		return nil, fmt.Errorf("footfall: no counting lines")
	}
	c := &Counter{det: det, lines: lines, tr: tracker{o: o}, persp: newPerspective(personAspect, o.Overhead), totals: make([]Tally, len(lines))}
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
	boxes, err := c.det.Detect(frame)
	if err != nil {
		return nil, fmt.Errorf("footfall: detect people: %w", err)
	}
	people, guessed := c.persp.people(boxes, frame.Rows())
	evs := c.tr.update(at, people, guessed, c.geoms)
	for _, p := range c.tr.people {
		if p.hits >= c.tr.o.MinHits && p.last == at {
			c.persp.learn(p.box)
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

// Close releases the detector.
func (c *Counter) Close() error { return c.det.Close() }
