package pipeline_test

import (
	"context"
	"fmt"
	"image"
	"slices"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/testkit/testenv"
	"github.com/veil-edge/veil/track"
)

// peopleTable is a People source with a fixed answer per frame (frame i is
// at i/25 s, the rate of imageSource); it records the frames it was asked
// about.
type peopleTable struct {
	frames []peopleAt
	asked  []int
}

type peopleAt struct {
	boxes []image.Rectangle
	known bool
}

func (p *peopleTable) PeopleAt(at time.Duration) ([]image.Rectangle, bool) {
	i := int(at.Seconds()*25 + 0.5)
	p.asked = append(p.asked, i)
	if i >= len(p.frames) {
		return nil, false
	}
	return p.frames[i].boxes, p.frames[i].known
}

// fixedFaces finds the same faces on every frame.
type fixedFaces []image.Rectangle

func (f fixedFaces) Detect(gocv.Mat) ([]detect.Face, error) {
	out := make([]detect.Face, len(f))
	for i, b := range f {
		out[i] = detect.Face{Box: b, Score: 0.9}
	}
	return out, nil
}
func (fixedFaces) Close() error { return nil }

// exemptAll is a consent gate every tracked face opted in to.
type exemptAll struct{ asked int }

func (e *exemptAll) Exempt(faces []track.Covered) []uint64 {
	e.asked++
	ids := make([]uint64, len(faces))
	for i, f := range faces {
		ids[i] = f.ID
	}
	return ids
}

// pixelSink keeps a Go copy of every frame it receives.
type pixelSink struct {
	frames  [][]byte
	whole   []bool
	reasons []string
}

func (s *pixelSink) Write(f *blur.Redacted) error {
	m := f.CloneMat()
	defer m.Close()
	s.frames = append(s.frames, m.ToBytes())
	s.whole = append(s.whole, f.Whole())
	s.reasons = append(s.reasons, f.Reason())
	return nil
}

// img is a Go copy of an 8UC3 image.
type img struct {
	w int
	b []byte
}

func (m img) at(x, y, c int) int { return int(m.b[3*(y*m.w+x)+c]) }

// meanDiff is the mean absolute difference of a and b inside r, per channel.
func meanDiff(a, b img, r image.Rectangle) float64 {
	var s, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			for c := range 3 {
				d := a.at(x, y, c) - b.at(x, y, c)
				s += float64(max(d, -d))
				n++
			}
		}
	}
	return s / n
}

// changedOutside counts the pixels that differ between a and b outside all
// of rs, the top-left pixel (imageSource's stamp) aside.
func changedOutside(a, b img, size image.Point, rs []image.Rectangle) int {
	n := 0
	for y := range size.Y {
	pixel:
		for x := range size.X {
			if x == 0 && y == 0 {
				continue
			}
			for _, r := range rs {
				if image.Pt(x, y).In(r) {
					continue pixel
				}
			}
			for c := range 3 {
				if a.at(x, y, c) != b.at(x, y, c) {
					n++
					continue pixel
				}
			}
		}
	}
	return n
}

// grow pads r by p of its width and height on each side (rounding outward)
// and clips it to size: a restatement of the padding for the checks.
func grow(r image.Rectangle, p float64, size image.Point) image.Rectangle {
	px, py := int(p*float64(r.Dx())+1), int(p*float64(r.Dy())+1)
	return image.Rect(r.Min.X-px, r.Min.Y-py, r.Max.X+px, r.Max.Y+py).Intersect(image.Rectangle{Max: size})
}

// TestPeopleTargets: under TargetHeads and TargetBodies the people's heads or
// bodies are redacted besides faces, and nothing outside their padded
// regions changes; under TargetFaces People is not asked. Whenever the people
// are not known, or there is no People source, the frame is redacted whole;
// consent never exempts a head or body.
func TestPeopleTargets(t *testing.T) {
	const n = 6
	// astronaut.png is 512x512; the astronaut and a second, smaller person
	// on the right.
	size := image.Pt(512, 512)
	tall := image.Rect(130, 40, 330, 512)
	small := image.Rect(400, 250, 460, 400)
	face := astronautFace()
	everyFrame := func(boxes ...image.Rectangle) []peopleAt {
		fs := make([]peopleAt, n)
		for i := range fs {
			fs[i] = peopleAt{boxes: boxes, known: true}
		}
		return fs
	}
	gaps := everyFrame(tall, small)
	gaps[2].known, gaps[5].known = false, false
	pad := blur.DefaultOptions.Padding

	type check struct {
		changed []image.Rectangle // each must change (mean diff >= 4)
		allowed []image.Rectangle // nothing outside these may change
	}
	for _, tc := range []struct {
		name    string
		target  pipeline.Target
		people  []peopleAt // nil: no People source
		faces   fixedFaces
		consent bool
		whole   map[int]string // frames redacted whole, and why
		// people is the person regions every other frame records.
		people2 []image.Rectangle
		check   check
	}{
		{name: "faces: people not asked, nothing else redacted", target: pipeline.TargetFaces, people: everyFrame(tall, small),
			check: check{}},
		{name: "zero target is faces", target: "", people: everyFrame(tall, small), faces: fixedFaces{face},
			check: check{changed: []image.Rectangle{face}, allowed: []image.Rectangle{grow(face, pad, size)}}},
		{name: "heads", target: pipeline.TargetHeads, people: everyFrame(tall, small),
			people2: []image.Rectangle{image.Rect(125, 10, 335, 188), image.Rect(398, 240, 462, 298)},
			check: check{
				changed: []image.Rectangle{pipeline.HeadOf(tall), pipeline.HeadOf(small)},
				allowed: []image.Rectangle{grow(pipeline.HeadOf(tall), pad, size), grow(pipeline.HeadOf(small), pad, size)},
			}},
		{name: "heads and a face", target: pipeline.TargetHeads, people: everyFrame(small), faces: fixedFaces{face},
			people2: []image.Rectangle{image.Rect(398, 240, 462, 298)},
			check: check{
				changed: []image.Rectangle{face, pipeline.HeadOf(small)},
				allowed: []image.Rectangle{grow(face, pad, size), grow(pipeline.HeadOf(small), pad, size)},
			}},
		{name: "bodies", target: pipeline.TargetBodies, people: everyFrame(tall, small),
			people2: []image.Rectangle{image.Rect(110, 0, 350, 512), image.Rect(394, 235, 466, 415)},
			check: check{
				changed: []image.Rectangle{tall, small},
				allowed: []image.Rectangle{grow(tall, pipeline.BodyPadding, size), grow(small, pipeline.BodyPadding, size)},
			}},
		{name: "bodies, nobody", target: pipeline.TargetBodies, people: everyFrame(), check: check{}},
		{name: "bodies: consent cannot exempt a body", target: pipeline.TargetBodies, people: everyFrame(tall), faces: fixedFaces{face}, consent: true,
			people2: []image.Rectangle{image.Rect(110, 0, 350, 512)},
			check:   check{changed: []image.Rectangle{face, tall}, allowed: []image.Rectangle{grow(tall, pipeline.BodyPadding, size)}}},
		{name: "heads: consent cannot exempt a head", target: pipeline.TargetHeads, people: everyFrame(tall), faces: fixedFaces{face}, consent: true,
			people2: []image.Rectangle{image.Rect(125, 10, 335, 188)},
			check:   check{changed: []image.Rectangle{face}, allowed: []image.Rectangle{grow(pipeline.HeadOf(tall), pad, size)}}},
		{name: "faces: consent exempts a face", target: pipeline.TargetFaces, faces: fixedFaces{face}, consent: true, check: check{}},
		{name: "heads: people not known on some frames", target: pipeline.TargetHeads, people: gaps,
			whole:   map[int]string{2: "people not known", 5: "people not known"},
			people2: []image.Rectangle{image.Rect(125, 10, 335, 188), image.Rect(398, 240, 462, 298)},
			check: check{
				changed: []image.Rectangle{pipeline.HeadOf(tall)},
				allowed: []image.Rectangle{grow(pipeline.HeadOf(tall), pad, size), grow(pipeline.HeadOf(small), pad, size)},
			}},
		{name: "bodies: people never known", target: pipeline.TargetBodies, people: make([]peopleAt, n),
			whole: map[int]string{0: "people not known", 1: "people not known", 2: "people not known", 3: "people not known", 4: "people not known", 5: "people not known"}},
		{name: "heads: no People source", target: pipeline.TargetHeads,
			whole: map[int]string{0: "no people detector", 1: "no people detector", 2: "no people detector", 3: "no people detector", 4: "no people detector", 5: "no people detector"}},
		{name: "bodies: no People source", target: pipeline.TargetBodies, faces: fixedFaces{face},
			whole: map[int]string{0: "no people detector", 1: "no people detector", 2: "no people detector", 3: "no people detector", 4: "no people detector", 5: "no people detector"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newImageSource(t, testenv.Astronaut, n)
			defer src.Close()
			ref := img{w: size.X, b: src.img.ToBytes()}
			red, err := blur.NewRedactor(blur.DefaultOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer red.Close()
			sink := &pixelSink{}
			var recs []pipeline.FrameRecord
			p := &pipeline.Pipeline{
				Source: src, Redactor: red, Sink: sink, Target: tc.target,
				Detector: func() (detect.Detector, error) { return tc.faces, nil },
				Options:  pipeline.Options{Every: 1, Workers: 1, Deadline: 10 * time.Second, Track: track.DefaultOptions},
				Observer: func(r pipeline.FrameRecord) { recs = append(recs, r) },
			}
			var table *peopleTable
			if tc.people != nil {
				table = &peopleTable{frames: tc.people}
				p.People = table
			}
			gate := &exemptAll{}
			if tc.consent {
				p.Consent = gate
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			st, err := p.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Frames != n || len(recs) != n || len(sink.frames) != n {
				t.Fatalf("frames %d, records %d, sink %d; want %d", st.Frames, len(recs), len(sink.frames), n)
			}
			if tc.consent && gate.asked == 0 {
				t.Error("the consent gate was never asked")
			}
			if table != nil {
				want := []int{0, 1, 2, 3, 4, 5}
				if tc.target == pipeline.TargetFaces || tc.target == "" {
					want = nil
				}
				if !slices.Equal(table.asked, want) {
					t.Errorf("PeopleAt asked about frames %v, want %v", table.asked, want)
				}
			}
			for i, r := range recs {
				out := img{w: size.X, b: sink.frames[i]}
				if why, ok := tc.whole[i]; ok {
					if !r.Whole || r.Reason != why || !sink.whole[i] || sink.reasons[i] != why {
						t.Errorf("frame %d: whole %v (%q), want whole (%q)", i, r.Whole, r.Reason, why)
					}
					if d := meanDiff(ref, out, face); d < 20 {
						t.Errorf("frame %d redacted whole, but the face barely changed (mean diff %.1f)", i, d)
					}
					if len(r.People) != 0 {
						t.Errorf("frame %d redacted whole records people %v", i, r.People)
					}
					continue
				}
				if r.Whole {
					t.Errorf("frame %d redacted whole (%s)", i, r.Reason)
					continue
				}
				if !slices.Equal(r.People, tc.people2) {
					t.Errorf("frame %d: people regions %v, want %v", i, r.People, tc.people2)
				}
				for _, p := range r.People {
					if !slices.Contains(r.Redacted, p) {
						t.Errorf("frame %d: people region %v missing from Redacted %v", i, p, r.Redacted)
					}
				}
				for _, c := range tc.check.changed {
					if d := meanDiff(ref, out, c); d < 4 {
						t.Errorf("frame %d: %v not redacted (mean diff %.1f)", i, c, d)
					}
				}
				if k := changedOutside(ref, out, size, tc.check.allowed); k != 0 {
					t.Errorf("frame %d: %d pixels changed outside %v", i, k, tc.check.allowed)
				}
			}
		})
	}
}

// TestTargetValidate: an unknown target is refused, naming what is allowed,
// by Validate and by Run before any frame is read.
func TestTargetValidate(t *testing.T) {
	for _, tc := range []struct {
		target pipeline.Target
		ok     bool
	}{
		{"", true}, {pipeline.TargetFaces, true}, {pipeline.TargetHeads, true}, {pipeline.TargetBodies, true},
		{"Faces", false}, {"body", false}, {"people", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.target), func(t *testing.T) {
			err := tc.target.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if tc.ok {
				return
			}
			for _, s := range []string{"target", string(tc.target), "faces, heads, bodies"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			src := newImageSource(t, testenv.Astronaut, 2)
			defer src.Close()
			p := &pipeline.Pipeline{Source: src, Sink: &pixelSink{}, Target: tc.target}
			if _, err := p.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "not supported") {
				t.Errorf("Run error = %v, want the target refused", err)
			}
			if src.i != 0 {
				t.Errorf("Run read %d frames with an invalid target", src.i)
			}
		})
	}
}

// TestHeadOf pins the head box's proportions: the top HeadHeight of the
// person box, its middle HeadWidth, for boxes given either way round.
func TestHeadOf(t *testing.T) {
	for _, tc := range []struct {
		person, want image.Rectangle
	}{
		{image.Rect(100, 200, 140, 300), image.Rect(106, 200, 134, 225)},
		{image.Rect(186, 160, 214, 232), image.Rect(190, 160, 210, 178)},
		{image.Rectangle{Min: image.Pt(140, 300), Max: image.Pt(100, 200)}, image.Rect(106, 200, 134, 225)},
		{image.Rect(0, 0, 1, 1), image.Rect(0, 0, 1, 1)},
		{image.Rect(-1<<50, 0, 1<<50, 1<<50), image.Rect(-1<<40, 0, 1<<40, 1<<40)},
	} {
		if got := pipeline.HeadOf(tc.person); got != tc.want {
			t.Errorf("HeadOf(%v) = %v, want %v", tc.person, got, tc.want)
		}
	}
}
