package footfall

import (
	"fmt"
	"image"
	"math"
	"sort"
	"time"
)

// TrackOptions tunes how people are linked from frame to frame. MaxGap,
// Gate and MinHits tune the blob tracker (for a detector that FindsBlobs),
// People the people tracker (FindsPeople); Band and Overhead apply to both.
type TrackOptions struct {
	// MaxGap is how long a track lives on without a detection.
	MaxGap time.Duration
	// Gate is the furthest a foot point may move from its predicted place
	// between two matched detections, as a fraction of the person's height.
	Gate float64
	// MinHits is how many detections a track needs before its crossings
	// count; crossings seen earlier are held and counted once it has them.
	MinHits int
	// Band is the half-width of the band around a line, as a fraction of the
	// person's height, inside which a foot point is on neither side.
	Band float64
	// Overhead is for a camera looking straight down: no feet are visible,
	// so a person's place is the centre of their blob, and a person is
	// about as wide as long. Otherwise (an angled camera) a person's place
	// is their foot point, the bottom-centre of their blob.
	Overhead bool
	// People tunes the people tracker.
	People PeopleOptions
}

// DefaultTrackOptions suit people walking at shop-camera frame rates.
var DefaultTrackOptions = TrackOptions{MaxGap: 700 * time.Millisecond, Gate: 0.6, MinHits: 4, Band: 0.1, People: DefaultPeopleOptions}

// Validate reports the first option out of its allowed range for tracking
// what a detector finds: the blob tracker's options for FindsBlobs, People
// for FindsPeople, and Band for both.
func (o TrackOptions) Validate(f Finding) error {
	if !(o.Band >= 0 && o.Band <= 1) {
		return fmt.Errorf("tracker: Band %g out of range [0, 1] person heights", o.Band)
	}
	switch f {
	case FindsBlobs:
		switch {
		case o.MaxGap <= 0:
			return fmt.Errorf("blob tracker: MaxGap %v out of range: must be > 0", o.MaxGap)
		case !(o.Gate > 0):
			return fmt.Errorf("blob tracker: Gate %g out of range: must be > 0 person heights", o.Gate)
		case o.MinHits < 1:
			return fmt.Errorf("blob tracker: MinHits %d out of range: must be >= 1", o.MinHits)
		}
		return nil
	case FindsPeople:
		return o.People.Validate()
	}
	return fmt.Errorf("tracker: detector finds %v: want blobs or people", f)
}

type person struct {
	id       int
	x, y     float64         // foot point
	vx, vy   float64         // pixels per second
	h        float64         // box height, smoothed
	box      image.Rectangle // last matched box
	last     time.Duration
	hits     int
	lines    []crossing
	held     []event // crossings before MinHits
	counting bool
}

type event struct {
	line int
	dir  Direction
	at   time.Duration
}

// tracker links detections into people by their foot points.
type tracker struct {
	o      TrackOptions
	people []*person
	nextID int
}

// update matches boxes seen at time at to tracks and returns the line
// crossings that now count.
func (t *tracker) update(at time.Duration, boxes []image.Rectangle, guessed []bool, lines []geom) []event {
	type pair struct {
		p, b int
		d    float64
	}
	var pairs []pair
	for i, p := range t.people {
		dt := (at - p.last).Seconds()
		px, py := p.x+p.vx*dt, p.y+p.vy*dt
		for j, b := range boxes {
			fx, fy := t.place(b)
			h := math.Max(p.h, float64(b.Dy()))
			d := math.Hypot(fx-px, fy-py) / h
			if d <= t.o.Gate {
				pairs = append(pairs, pair{i, j, d})
			}
		}
	}
	sort.Slice(pairs, func(a, b int) bool { return pairs[a].d < pairs[b].d })
	usedP := make([]bool, len(t.people))
	usedB := make([]bool, len(boxes))
	var out []event
	for _, pr := range pairs {
		if usedP[pr.p] || usedB[pr.b] {
			continue
		}
		usedP[pr.p], usedB[pr.b] = true, true
		out = append(out, t.observe(t.people[pr.p], at, boxes[pr.b], guessed[pr.b], lines)...)
	}
	for j, b := range boxes {
		if usedB[j] {
			continue
		}
		fx, fy := t.place(b)
		p := &person{id: t.nextID, x: fx, y: fy, h: float64(b.Dy()), box: b, last: at, hits: 1, lines: make([]crossing, len(lines))}
		t.nextID++
		for k, g := range lines {
			p.lines[k].step(g, t.o.Band*p.h, fx, fy, guessed[j])
		}
		t.people = append(t.people, p)
	}
	kept := t.people[:0]
	for _, p := range t.people {
		if at-p.last <= t.o.MaxGap {
			kept = append(kept, p)
		}
	}
	clear(t.people[len(kept):])
	t.people = kept
	return out
}

func (t *tracker) observe(p *person, at time.Duration, b image.Rectangle, guessed bool, lines []geom) []event {
	fx, fy := t.place(b)
	if dt := (at - p.last).Seconds(); dt > 0 {
		const a = 0.5 // velocity smoothing
		p.vx = a*(fx-p.x)/dt + (1-a)*p.vx
		p.vy = a*(fy-p.y)/dt + (1-a)*p.vy
	}
	p.x, p.y, p.h, p.last, p.box = fx, fy, 0.7*p.h+0.3*float64(b.Dy()), at, b
	p.hits++
	for k, g := range lines {
		if dir, ok := p.lines[k].step(g, t.o.Band*p.h, fx, fy, guessed); ok {
			p.held = append(p.held, event{line: k, dir: dir, at: at})
		}
	}
	if p.hits >= t.o.MinHits {
		p.counting = true
	}
	if !p.counting {
		return nil
	}
	out := p.held
	p.held = nil
	return out
}

// place is where a person stands: the foot point for an angled camera, the
// blob's centre for an overhead one.
func (t *tracker) place(b image.Rectangle) (float64, float64) {
	if t.o.Overhead {
		return float64(b.Min.X+b.Max.X) / 2, float64(b.Min.Y+b.Max.Y) / 2
	}
	return foot(b)
}

// foot is the bottom-centre of a person's box.
func foot(b image.Rectangle) (float64, float64) {
	return float64(b.Min.X+b.Max.X) / 2, float64(b.Max.Y)
}
