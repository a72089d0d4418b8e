package eval_test

import (
	"image"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/testkit/eval"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestScorePeople checks the coverage arithmetic on small hand-worked cases.
func TestScorePeople(t *testing.T) {
	// A 10x12 person: 120 px, head (top sixth) 10x2.
	p := image.Rect(100, 100, 110, 112)
	q := image.Rect(200, 100, 210, 112)
	for _, tc := range []struct {
		name     string
		labels   map[int][]image.Rectangle
		redacted map[int]eval.Redaction
		want     eval.PeopleCoverage
	}{
		{"fully covered", map[int][]image.Rectangle{0: {p}}, map[int]eval.Redaction{0: {Regions: []image.Rectangle{p.Inset(-3)}}},
			eval.PeopleCoverage{Frames: 1, People: 1, AreaShare: 1, BodiesFull: 1, HeadsFull: 1}},
		{"nothing redacted", map[int][]image.Rectangle{0: {p}}, map[int]eval.Redaction{0: {}},
			eval.PeopleCoverage{Frames: 1, People: 1}},
		{"top half: head yes, body no", map[int][]image.Rectangle{0: {p}}, map[int]eval.Redaction{0: {Regions: []image.Rectangle{image.Rect(90, 90, 120, 106)}}},
			eval.PeopleCoverage{Frames: 1, People: 1, AreaShare: 0.5, HeadsFull: 1}},
		{"overlapping regions count once", map[int][]image.Rectangle{0: {p}},
			map[int]eval.Redaction{0: {Regions: []image.Rectangle{image.Rect(100, 100, 110, 106), image.Rect(100, 100, 110, 106), image.Rect(100, 103, 110, 109)}}},
			eval.PeopleCoverage{Frames: 1, People: 1, AreaShare: 0.75, HeadsFull: 1}},
		{"90 % is enough", map[int][]image.Rectangle{0: {image.Rect(0, 0, 10, 60)}}, map[int]eval.Redaction{0: {Regions: []image.Rectangle{image.Rect(1, 0, 10, 60)}}},
			eval.PeopleCoverage{Frames: 1, People: 1, AreaShare: 0.9, BodiesFull: 1, HeadsFull: 1}},
		{"89 % is not", map[int][]image.Rectangle{0: {image.Rect(0, 0, 100, 60)}}, map[int]eval.Redaction{0: {Regions: []image.Rectangle{image.Rect(11, 0, 100, 60)}}},
			eval.PeopleCoverage{Frames: 1, People: 1, AreaShare: 0.89}},
		{"head cut short", map[int][]image.Rectangle{0: {p}}, map[int]eval.Redaction{0: {Regions: []image.Rectangle{image.Rect(100, 101, 110, 112)}}},
			eval.PeopleCoverage{Frames: 1, People: 1, AreaShare: 110.0 / 120, BodiesFull: 1}},
		{"two people, two frames, one covered", map[int][]image.Rectangle{3: {p}, 7: {q}},
			map[int]eval.Redaction{3: {Regions: []image.Rectangle{p}}, 7: {Regions: []image.Rectangle{p}}, 9: {Regions: []image.Rectangle{q}}},
			eval.PeopleCoverage{Frames: 2, People: 2, AreaShare: 0.5, BodiesFull: 0.5, HeadsFull: 0.5}},
		{"whole frame covers everyone", map[int][]image.Rectangle{0: {p, q}, 1: {p}},
			map[int]eval.Redaction{0: {Whole: true}, 1: {Regions: []image.Rectangle{image.Rect(100, 100, 110, 106)}}},
			eval.PeopleCoverage{Frames: 2, People: 3, Whole: 1, AreaShare: 300.0 / 360, BodiesFull: 2.0 / 3, HeadsFull: 1}},
		{"a labelled frame without a record", map[int][]image.Rectangle{0: {p}, 5: {q}}, map[int]eval.Redaction{0: {Regions: []image.Rectangle{p}}},
			eval.PeopleCoverage{Frames: 2, People: 2, Missing: []int{5}, AreaShare: 0.5, BodiesFull: 0.5, HeadsFull: 0.5}},
		{"a frame without people", map[int][]image.Rectangle{0: nil}, map[int]eval.Redaction{0: {Regions: []image.Rectangle{p}}},
			eval.PeopleCoverage{Frames: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := eval.ScorePeople(tc.labels, tc.redacted)
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
			if got.Frames != tc.want.Frames || got.People != tc.want.People || got.Whole != tc.want.Whole ||
				!slices.Equal(got.Missing, tc.want.Missing) || !near(got.AreaShare, tc.want.AreaShare) ||
				!near(got.BodiesFull, tc.want.BodiesFull) || !near(got.HeadsFull, tc.want.HeadsFull) {
				t.Errorf("ScorePeople = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestHeadOfLabel(t *testing.T) {
	for _, tc := range []struct{ box, want image.Rectangle }{
		{image.Rect(0, 0, 10, 12), image.Rect(0, 0, 10, 2)},
		{image.Rect(5, 10, 35, 83), image.Rect(5, 10, 35, 23)}, // 73/6 = 12.2, rounded up
		{image.Rect(0, 0, 4, 1), image.Rect(0, 0, 4, 1)},
	} {
		if got := eval.HeadOfLabel(tc.box); got != tc.want {
			t.Errorf("HeadOfLabel(%v) = %v, want %v", tc.box, got, tc.want)
		}
	}
}

// TestPeopleRegions: whole frames stay whole, other frames give their person
// regions only (not the face regions).
func TestPeopleRegions(t *testing.T) {
	face, body := image.Rect(10, 10, 20, 20), image.Rect(5, 5, 30, 60)
	recs := []pipeline.FrameRecord{
		{Index: 4, Redacted: []image.Rectangle{face, body}, People: []image.Rectangle{body}},
		{Index: 5, Whole: true, Reason: "people not known", Redacted: []image.Rectangle{image.Rect(0, 0, 768, 576)}},
	}
	got := eval.PeopleRegions(recs)
	if r := got[4]; r.Whole || !slices.Equal(r.Regions, []image.Rectangle{body}) {
		t.Errorf("frame 4: %+v, want the body only", r)
	}
	if r := got[5]; !r.Whole {
		t.Errorf("frame 5: %+v, want whole", r)
	}
}

// TestPeopleLabelsFile: the hand-drawn vtest.avi labels load, are in the
// frame, and spread over the video.
func TestPeopleLabelsFile(t *testing.T) {
	l, err := eval.LoadPeopleLabels(filepath.Join(testenv.Root(), "testdata", "people", "vtest_people.json"))
	if err != nil {
		t.Fatal(err)
	}
	boxes := l.Boxes()
	n, last := 0, 0
	for f, bs := range boxes {
		n += len(bs)
		last = max(last, f)
	}
	if l.Size != [2]int{768, 576} || len(boxes) < 5 || last < 500 || n < 25 {
		t.Errorf("size %v, %d frames up to %d, %d boxes; want 768x576, at least 5 frames reaching past 500, 25 boxes", l.Size, len(boxes), last, n)
	}
}
