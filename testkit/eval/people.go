package eval

import (
	"encoding/json"
	"fmt"
	"image"
	"os"
	"slices"

	"github.com/veil-edge/veil/pipeline"
)

// PeopleLabels are hand-drawn person boxes (feet to head, frame pixels) in
// some frames of a video, as stored in testdata/people/vtest_people.json
// (see its README.md).
type PeopleLabels struct {
	Video string `json:"video"`
	Size  [2]int `json:"size"` // width, height
	// Frames maps a frame index (from 0, in decode order) to the boxes of
	// the people in it, each [x0, y0, x1, y1] with x1 and y1 exclusive.
	Frames map[int][][4]int `json:"frames"`
}

// LoadPeopleLabels reads and checks a people label file.
func LoadPeopleLabels(path string) (PeopleLabels, error) {
	var l PeopleLabels
	b, err := os.ReadFile(path)
	if err != nil {
		return l, fmt.Errorf("reading people labels: %w", err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("%s: %w", path, err)
	}
	bounds := image.Rect(0, 0, l.Size[0], l.Size[1])
	if bounds.Empty() {
		return l, fmt.Errorf("%s: size %v has no area", path, l.Size)
	}
	for f, boxes := range l.Frames {
		if f < 0 {
			return l, fmt.Errorf("%s: frame %d: negative index", path, f)
		}
		for i, b := range boxes {
			if r := rect(b); r.Empty() || !r.In(bounds) || r != r.Canon() {
				return l, fmt.Errorf("%s: frame %d box %d: %v is empty, reversed or outside the %dx%d frame", path, f, i, b, l.Size[0], l.Size[1])
			}
		}
	}
	return l, nil
}

// Boxes returns the labelled boxes per frame as rectangles.
func (l PeopleLabels) Boxes() map[int][]image.Rectangle {
	out := make(map[int][]image.Rectangle, len(l.Frames))
	for f, boxes := range l.Frames {
		for _, b := range boxes {
			out[f] = append(out[f], rect(b))
		}
	}
	return out
}

func rect(b [4]int) image.Rectangle {
	return image.Rectangle{Min: image.Pt(b[0], b[1]), Max: image.Pt(b[2], b[3])}
}

// Redaction is what was redacted in one frame.
type Redaction struct {
	Whole   bool              // the whole frame
	Regions []image.Rectangle // otherwise these rectangles (frame pixels)
}

// PeopleRegions returns, per frame index, what the pipeline redacted for
// people: the whole frame, or the frame's person regions (FrameRecord.People).
// Face regions are left out: they are drawn as ellipses inside the
// rectangles recorded (with the default shape), so counting them would
// overstate what is hidden; person regions are redacted as the rectangles
// recorded.
func PeopleRegions(recs []pipeline.FrameRecord) map[int]Redaction {
	out := make(map[int]Redaction, len(recs))
	for _, r := range recs {
		out[r.Index] = Redaction{Whole: r.Whole, Regions: slices.Clone(r.People)}
	}
	return out
}

// CoverFull is the share of a box, in per cent, that must be redacted for
// it to count as covered.
const CoverFull = 90

// PeopleCoverage is how much of the labelled people the redacted regions
// hid, over the labelled frames.
type PeopleCoverage struct {
	Frames int `json:"frames"` // labelled frames scored
	People int `json:"people"` // labelled boxes in them
	// Whole is how many of the labelled frames were redacted whole: their
	// people count as covered, so read the shares below with it.
	Whole int `json:"whole_frames"`
	// Missing lists labelled frames with no regions given (no record):
	// scored as nothing redacted.
	Missing []int `json:"missing,omitempty"`

	// Bodies: AreaShare is the labelled person area (summed over boxes)
	// inside a redacted region; BodiesFull the share of boxes at least
	// CoverFull covered.
	AreaShare  float64 `json:"area_share"`
	BodiesFull float64 `json:"bodies_full"`
	// HeadsFull is the share of heads (HeadOfLabel of each box) at least
	// CoverFull covered.
	HeadsFull float64 `json:"heads_full"`
}

// HeadOfLabel is the head of a labelled person box for scoring: its top
// sixth (height rounded up), full width.
func HeadOfLabel(b image.Rectangle) image.Rectangle {
	return image.Rect(b.Min.X, b.Min.Y, b.Max.X, b.Min.Y+(b.Dy()+5)/6)
}

// ScorePeople scores what was redacted per frame (by frame index, e.g. from
// PeopleRegions) against labelled person boxes. Overlapping regions are
// counted once; a frame redacted whole covers everyone in it.
func ScorePeople(labels map[int][]image.Rectangle, redacted map[int]Redaction) PeopleCoverage {
	var c PeopleCoverage
	var area, covered float64
	var bodies, heads int
	frames := make([]int, 0, len(labels))
	for f := range labels {
		frames = append(frames, f)
	}
	slices.Sort(frames)
	for _, f := range frames {
		red, ok := redacted[f]
		if !ok {
			c.Missing = append(c.Missing, f)
		}
		if red.Whole {
			c.Whole++
		}
		c.Frames++
		for _, b := range labels[f] {
			c.People++
			regions := red.Regions
			if red.Whole {
				regions = []image.Rectangle{b}
			}
			n := coveredPixels(b, regions)
			area += float64(b.Dx() * b.Dy())
			covered += float64(n)
			if full(n, b) {
				bodies++
			}
			h := HeadOfLabel(b)
			if full(coveredPixels(h, regions), h) {
				heads++
			}
		}
	}
	if area > 0 {
		c.AreaShare = covered / area
	}
	if c.People > 0 {
		c.BodiesFull = float64(bodies) / float64(c.People)
		c.HeadsFull = float64(heads) / float64(c.People)
	}
	return c
}

// full reports whether n covered pixels are at least CoverFull % of b.
func full(n int, b image.Rectangle) bool { return 100*n >= CoverFull*b.Dx()*b.Dy() }

// coveredPixels counts the pixels of b inside at least one of regions.
func coveredPixels(b image.Rectangle, regions []image.Rectangle) int {
	if b.Empty() {
		return 0
	}
	in := make([]bool, b.Dx()*b.Dy())
	n := 0
	for _, r := range regions {
		r = r.Intersect(b)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				i := (y-b.Min.Y)*b.Dx() + x - b.Min.X
				if !in[i] {
					in[i] = true
					n++
				}
			}
		}
	}
	return n
}
