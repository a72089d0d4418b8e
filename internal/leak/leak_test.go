package leak

import (
	"context"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// scene is a frame with real faces pasted at known boxes.
type scene struct {
	frame gocv.Mat
	faces []synth.Face
}

// scenes pastes every labelled source (LFW: two of them) at widths from
// 12 to 160 px (never enlarged more than 2x) onto frames of vtest.avi,
// packed in rows without overlap. The caller closes the frames.
func scenes(t *testing.T) []scene {
	t.Helper()
	testenv.Need(t, synth.DefaultBackground)
	f, err := synth.ReadSourceFile(synth.DefaultFacesJSON())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range f.Faces {
		testenv.Need(t, e.Source)
	}
	lib, err := synth.LoadLibrary(synth.DefaultFacesJSON())
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	vc, err := gocv.VideoCaptureFile(synth.DefaultBackground)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	bg := gocv.NewMat()
	defer bg.Close()
	vc.Read(&bg)

	const W, H = 768, 576
	var out []scene
	newScene := func() *scene {
		out = append(out, scene{frame: bg.Clone()})
		return &out[len(out)-1]
	}
	cur := newScene()
	x, y, rowH := 0, 0, 0
	id := 0
	for i, s := range lib.Sources {
		if s.Group == "lfw" && s.ID != "lfw-000" && s.ID != "lfw-050" {
			continue
		}
		for _, w := range []int{12, 16, 20, 28, 36, 44, 60, 80, 110, 150} {
			if float64(w) > 2*float64(s.Box.Dx()) {
				continue
			}
			still, box := lib.Still(i, w, 0.3)
			if x+still.Cols() > W {
				x, y, rowH = 0, y+rowH, 0
			}
			if y+still.Rows() > H {
				cur = newScene()
				x, y, rowH = 0, 0, 0
			}
			at := image.Rect(x, y, x+still.Cols(), y+still.Rows())
			dst := cur.frame.Region(at)
			still.CopyTo(&dst)
			dst.Close()
			still.Close()
			cur.faces = append(cur.faces, synth.Face{ID: id, Box: box.Add(at.Min), Width: float64(box.Dx()),
				Height: float64(box.Dy()), Source: s.ID, Kind: s.Kind})
			id++
			x += at.Dx()
			rowH = max(rowH, at.Dy())
		}
	}
	return out
}

func closeScenes(ss []scene) {
	for _, s := range ss {
		s.frame.Close()
	}
}

// redact returns a copy of frame with fn applied to each face box.
func redact(frame gocv.Mat, faces []synth.Face, fn func(m *gocv.Mat, f synth.Face)) gocv.Mat {
	out := frame.Clone()
	for _, f := range faces {
		fn(&out, f)
	}
	return out
}

// blurRegion Gaussian-blurs r of m (clipped) in place with sigma.
func blurRegion(m *gocv.Mat, r image.Rectangle, sigma float64) {
	r = r.Intersect(image.Rect(0, 0, m.Cols(), m.Rows()))
	if r.Empty() {
		return
	}
	roi := m.Region(r)
	gocv.GaussianBlur(roi, &roi, image.Point{}, sigma, sigma, gocv.BorderReflect101)
	roi.Close()
}

// padded grows b by frac of its size on each side.
func padded(b image.Rectangle, frac float64) image.Rectangle {
	dx, dy := int(math.Round(frac*float64(b.Dx()))), int(math.Round(frac*float64(b.Dy())))
	return image.Rect(b.Min.X-dx, b.Min.Y-dy, b.Max.X+dx, b.Max.Y+dy)
}

// fullBlur is what the redactor does: sigma = width/6 over the box padded 20 %.
func fullBlur(m *gocv.Mat, f synth.Face) { blurRegion(m, padded(f.Box, 0.2), f.Width/6) }

// halfBlur blurs like fullBlur but only the padded box's part on one side
// of the face centre.
func halfBlur(side string) func(m *gocv.Mat, f synth.Face) {
	return func(m *gocv.Mat, f synth.Face) {
		p := padded(f.Box, 0.2)
		c := f.Box.Min.Add(f.Box.Max).Div(2)
		switch side {
		case "left":
			p.Max.X = c.X
		case "right":
			p.Min.X = c.X
		case "top":
			p.Max.Y = c.Y
		case "bottom":
			p.Min.Y = c.Y
		}
		blurRegion(m, p, f.Width/6)
	}
}

func pixelate(m *gocv.Mat, f synth.Face) {
	p := padded(f.Box, 0.2).Intersect(image.Rect(0, 0, m.Cols(), m.Rows()))
	roi := m.Region(p)
	small := gocv.NewMat()
	n := max(1, int(math.Round(float64(p.Dx())/(f.Width/4))))
	gocv.Resize(roi, &small, image.Pt(n, max(1, n*p.Dy()/p.Dx())), 0, 0, gocv.InterpolationArea)
	gocv.Resize(small, &roi, image.Pt(p.Dx(), p.Dy()), 0, 0, gocv.InterpolationNearestNeighbor)
	small.Close()
	roi.Close()
}

func jpeg(q int) func(frame gocv.Mat) gocv.Mat {
	return func(frame gocv.Mat) gocv.Mat {
		b, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, frame, []int{gocv.IMWriteJpegQuality, q})
		if err != nil {
			panic(err)
		}
		defer b.Close()
		m, err := gocv.IMDecode(b.GetBytes(), gocv.IMReadColor)
		if err != nil {
			panic(err)
		}
		return m
	}
}

// run compares every scene against its transformed copy.
func run(ss []scene, tr func(frame gocv.Mat, faces []synth.Face) gocv.Mat) (Report, []BoxResult) {
	var acc Accumulator
	var all []BoxResult
	for _, s := range ss {
		out := tr(s.frame, s.faces)
		r := Compare(s.frame, out, s.faces, 0.3)
		out.Close()
		acc.Add(r)
		all = append(all, r.Boxes...)
	}
	return acc.Report(), all
}

func perBox(fn func(m *gocv.Mat, f synth.Face)) func(gocv.Mat, []synth.Face) gocv.Mat {
	return func(frame gocv.Mat, faces []synth.Face) gocv.Mat { return redact(frame, faces, fn) }
}

func TestIdenticalLeaksEverything(t *testing.T) {
	ss := scenes(t)
	defer closeScenes(ss)
	rep, boxes := run(ss, func(f gocv.Mat, _ []synth.Face) gocv.Mat { return f.Clone() })
	if rep.Boxes < 40 || rep.LeakRate != 1 {
		t.Fatalf("identical frames: %d boxes, leak rate %v, want 1\n%v", rep.Boxes, rep.LeakRate, rep)
	}
	for _, b := range rep.Bins {
		if b.Boxes == 0 || b.Rate != 1 {
			t.Errorf("bin %s: %d boxes, rate %v", b.Bin, b.Boxes, b.Rate)
		}
	}
	for _, b := range boxes {
		if math.Abs(b.Corr-1) > 1e-9 || math.Abs(b.NCC-1) > 1e-9 {
			t.Errorf("box %d: corr %v ncc %v, want 1", b.ID, b.Corr, b.NCC)
		}
	}
	if rep.NonFaceChanged != 0 || rep.NonFaceChangedShare != 0 {
		t.Errorf("identical frames changed %d non-face pixels", rep.NonFaceChanged)
	}
}

func TestBlurredFacesDoNotLeak(t *testing.T) {
	ss := scenes(t)
	defer closeScenes(ss)
	rep, boxes := run(ss, perBox(fullBlur))
	if rep.Boxes < 40 || rep.Leaks != 0 {
		for _, b := range boxes {
			if b.Leak {
				t.Logf("leaking box %d width %.0f corr %.3f", b.ID, b.Width, b.Corr)
			}
		}
		t.Fatalf("blurred faces: %d boxes, leak rate %v, want 0\n%v", rep.Boxes, rep.LeakRate, rep)
	}
	if rep.NonFaceChanged != 0 {
		t.Errorf("blurring padded boxes changed %d non-face pixels (pad 0.3 > 0.2)", rep.NonFaceChanged)
	}
}

func TestHalfCoveredFacesLeak(t *testing.T) {
	ss := scenes(t)
	defer closeScenes(ss)
	src := map[int]string{}
	for _, s := range ss {
		for _, f := range s.faces {
			src[f.ID] = f.Source
		}
	}
	for _, side := range []string{"left", "right", "top", "bottom"} {
		rep, boxes := run(ss, perBox(halfBlur(side)))
		// A face with one half blurred still shows the other half: it
		// leaks (at the default threshold every one of these boxes does).
		if rep.Boxes < 40 || rep.LeakRate < 0.95 {
			t.Errorf("%s half blurred: leak rate %.2f, want >= 0.95\n%v", side, rep.LeakRate, rep)
		}
		for _, b := range boxes {
			if !b.Leak {
				t.Logf("%s half blurred: box %d (%s) width %.0f corr %.3f does not leak", side, b.ID, src[b.ID], b.Width, b.Corr)
			}
		}
	}
}

// TestCalibration logs the numbers behind DefaultThreshold (run with -v).
func TestCalibration(t *testing.T) {
	ss := scenes(t)
	defer closeScenes(ss)
	cases := []struct {
		name string
		tr   func(gocv.Mat, []synth.Face) gocv.Mat
	}{
		{"untouched", func(f gocv.Mat, _ []synth.Face) gocv.Mat { return f.Clone() }},
		{"jpeg q95", func(f gocv.Mat, _ []synth.Face) gocv.Mat { return jpeg(95)(f) }},
		{"jpeg q75", func(f gocv.Mat, _ []synth.Face) gocv.Mat { return jpeg(75)(f) }},
		{"blur w/6 pad 20%", perBox(fullBlur)},
		{"blur w/6 + jpeg95", func(f gocv.Mat, faces []synth.Face) gocv.Mat {
			m := redact(f, faces, fullBlur)
			defer m.Close()
			return jpeg(95)(m)
		}},
		{"blur w/6 no pad", perBox(func(m *gocv.Mat, f synth.Face) { blurRegion(m, f.Box, f.Width/6) })},
		{"blur w/6 off w/4", perBox(func(m *gocv.Mat, f synth.Face) {
			blurRegion(m, padded(f.Box, 0.2).Add(image.Pt(int(f.Width/4), 0)), f.Width/6)
		})},
		{"blur w/12", perBox(func(m *gocv.Mat, f synth.Face) { blurRegion(m, padded(f.Box, 0.2), f.Width/12) })},
		{"pixelate 4 blocks", perBox(pixelate)},
		{"half left", perBox(halfBlur("left"))},
		{"half right", perBox(halfBlur("right"))},
		{"half top", perBox(halfBlur("top"))},
		{"half bottom", perBox(halfBlur("bottom"))},
	}
	kind := map[int]string{}
	for _, s := range ss {
		for _, f := range s.faces {
			kind[f.ID] = f.Kind
		}
	}
	var lines, kinds []string
	lines = append(lines, fmt.Sprintf("%-18s %-6s %6s %6s %6s %6s %6s", "case", "bin", "n", "corr", "min", "max", "ncc"))
	for _, c := range cases {
		_, boxes := run(ss, c.tr)
		for _, k := range []string{"photo", "cartoon"} {
			var cs []float64
			for _, b := range boxes {
				if kind[b.ID] == k {
					cs = append(cs, b.Corr)
				}
			}
			sort.Float64s(cs)
			kinds = append(kinds, fmt.Sprintf("%-18s %-8s %4d boxes corr mean %.3f min %.3f max %.3f", c.name, k, len(cs), mean(cs), cs[0], cs[len(cs)-1]))
		}
		for bi, bd := range Bins {
			var cs, ns []float64
			for _, b := range boxes {
				if b.Bin == bi && !b.Skipped {
					cs = append(cs, b.Corr)
					ns = append(ns, b.NCC)
				}
			}
			sort.Float64s(cs)
			lines = append(lines, fmt.Sprintf("%-18s %-6s %6d %6.3f %6.3f %6.3f %6.3f", c.name, bd.Name, len(cs), mean(cs), cs[0], cs[len(cs)-1], mean(ns)))
		}
	}
	t.Log("\n" + strings.Join(lines, "\n") + "\n\n" + strings.Join(kinds, "\n"))
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// TestNonFaceShareExact checks the non-face change count on a built frame.
func TestNonFaceShareExact(t *testing.T) {
	in := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC3)
	defer in.Close()
	out := in.Clone()
	defer out.Close()
	set := func(r image.Rectangle, s gocv.Scalar) {
		roi := out.Region(r)
		roi.SetTo(s)
		roi.Close()
	}
	// Face box 20x20 at (40,40); pad 0.5 grows it by 10 px each side to
	// (30,30)-(70,70): 1600 face pixels, 8400 non-face.
	faces := []synth.Face{{ID: 1, Box: image.Rect(40, 40, 60, 60), Width: 20}}
	set(image.Rect(0, 0, 10, 10), gocv.NewScalar(0, 13, 0, 0))    // 100 px changed by 13: counted
	set(image.Rect(10, 0, 20, 10), gocv.NewScalar(12, 12, 12, 0)) // 100 px by 12: not over 12
	set(image.Rect(35, 35, 65, 65), gocv.NewScalar(200, 200, 200, 0))
	set(image.Rect(65, 90, 100, 100), gocv.NewScalar(0, 0, 255, 0)) // 350 px counted
	set(image.Rect(69, 50, 71, 52), gocv.NewScalar(0, 0, 99, 0))    // 4 px, 2 of them outside (x=70)
	r := Compare(in, out, faces, 0.5)
	if r.NonFacePixels != 8400 || r.NonFaceChanged != 100+350+2 {
		t.Fatalf("non-face %d changed %d, want 8400 and 452", r.NonFacePixels, r.NonFaceChanged)
	}
	var acc Accumulator
	acc.Add(r)
	acc.Add(r)
	rep := acc.Report()
	if rep.NonFacePixels != 16800 || rep.NonFaceChanged != 904 || math.Abs(rep.NonFaceChangedShare-452.0/8400) > 1e-12 {
		t.Errorf("report: %d of %d, share %v", rep.NonFaceChanged, rep.NonFacePixels, rep.NonFaceChangedShare)
	}
	// Changed in the other direction too (absolute difference).
	in2 := out.Clone()
	defer in2.Close()
	r2 := Compare(in2, in, faces, 0.5)
	if r2.NonFaceChanged != 452 {
		t.Errorf("swapped: changed %d, want 452", r2.NonFaceChanged)
	}
	// With no faces every pixel is non-face.
	r3 := Compare(in, out, nil, 0.3)
	if r3.NonFacePixels != 10000 || r3.NonFaceChanged != 100+350+4+900 {
		t.Errorf("no faces: %d of %d", r3.NonFaceChanged, r3.NonFacePixels)
	}
}

func TestReport(t *testing.T) {
	var acc Accumulator
	acc.Add(FrameResult{Boxes: []BoxResult{
		{Width: 12, Bin: Bin(12), Corr: 0.9, Leak: true},
		{Width: 20, Bin: Bin(20), Corr: 0.1},
		{Width: 30, Bin: Bin(30), Corr: 0.5, Leak: true},
		{Width: 200, Bin: Bin(200), Corr: 0.0},
		{Width: 3, Skipped: true},
	}, NonFacePixels: 1000, NonFaceChanged: 10})
	rep := acc.Report()
	if rep.Boxes != 4 || rep.Leaks != 2 || rep.LeakRate != 0.5 || rep.Skipped != 1 || rep.Frames != 1 {
		t.Errorf("%+v", rep)
	}
	want := []struct{ boxes, leaks int }{{2, 1}, {1, 1}, {0, 0}, {1, 0}}
	for i, w := range want {
		if rep.Bins[i].Boxes != w.boxes || rep.Bins[i].Leaks != w.leaks {
			t.Errorf("bin %s: %+v", rep.Bins[i].Bin, rep.Bins[i])
		}
	}
	s := rep.String()
	for _, part := range []string{"12-24", "96+", "50.0%", "non-face pixels changed: 10 of 1000 (1.000%)"} {
		if !strings.Contains(s, part) {
			t.Errorf("String() lacks %q:\n%s", part, s)
		}
	}
	if Bin(11) != 0 || Bin(24) != 1 || Bin(95.9) != 2 || Bin(96) != 3 {
		t.Error("Bin boundaries")
	}
}

func TestCorrelateFlatIsZero(t *testing.T) {
	a := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 90, 90, 0), 60, 60, gocv.MatTypeCV8UC3)
	defer a.Close()
	c, n := Correlate(a, a, image.Rect(10, 10, 40, 40), 30)
	if c != 0 || n != 0 {
		t.Errorf("flat: corr %v ncc %v", c, n)
	}
}

// TestGeneratedClip scores a generated clip against itself and against a
// copy whose labelled faces are blurred the way the redactor does it.
func TestGeneratedClip(t *testing.T) {
	ss := scenes(t) // checks the media are installed
	closeScenes(ss)
	video := filepath.Join(t.TempDir(), "clip.avi")
	labels, err := synth.Generate(context.Background(), synth.Params{Seed: 5, Frames: 30}, video)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(video)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	var same, blurred Accumulator
	var leaks []string
	for i := 0; vc.Read(&frame); i++ {
		faces := labels.Frame(i)
		same.Add(Compare(frame, frame, faces, 0.3))
		out := redact(frame, faces, fullBlur)
		r := Compare(frame, out, faces, 0.3)
		out.Close()
		blurred.Add(r)
		for _, b := range r.Boxes {
			if b.Leak {
				leaks = append(leaks, fmt.Sprintf("frame %d box %d width %.0f corr %.2f", i, b.ID, b.Width, b.Corr))
			}
		}
	}
	rs, rb := same.Report(), blurred.Report()
	t.Logf("untouched:\n%v\nblurred:\n%v", rs, rb)
	if rs.Frames != 30 || rs.Boxes < 100 || rs.LeakRate != 1 {
		t.Errorf("untouched: %d frames, %d boxes, leak rate %v", rs.Frames, rs.Boxes, rs.LeakRate)
	}
	if rb.LeakRate > 0.02 {
		t.Errorf("blurred: leak rate %v: %v", rb.LeakRate, leaks)
	}
}
