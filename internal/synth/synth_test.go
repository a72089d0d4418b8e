package synth

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func needMedia(t testing.TB) {
	t.Helper()
	testenv.Need(t, DefaultBackground)
	f, err := ReadSourceFile(DefaultFacesJSON())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range f.Faces {
		testenv.Need(t, e.Source)
	}
}

func TestLibraryLabels(t *testing.T) {
	needMedia(t)
	lib, err := LoadLibrary(DefaultFacesJSON())
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	groups := map[string]int{}
	for _, s := range lib.Sources {
		groups[s.Group]++
		if s.Box.Dx() < 10 || s.Box.Dy() < 10 {
			t.Errorf("%s: box %v too small", s.ID, s.Box)
		}
		if r := float64(s.Box.Dy()) / float64(s.Box.Dx()); r < 0.5 || r > 1.4 {
			t.Errorf("%s: box %v aspect %.2f is not a face's", s.ID, s.Box, r)
		}
		// The face box should carry detail: its grey-level spread is not flat.
		roi := s.Image.Region(s.Box)
		gray := gocv.NewMat()
		gocv.CvtColor(roi, &gray, gocv.ColorBGRToGray)
		mean, std := gocv.NewMat(), gocv.NewMat()
		gocv.MeanStdDev(gray, &mean, &std)
		if sd := std.GetDoubleAt(0, 0); sd < 8 {
			t.Errorf("%s: face box %v is nearly flat (sd %.1f)", s.ID, s.Box, sd)
		}
		roi.Close()
		gray.Close()
		mean.Close()
		std.Close()
	}
	if groups["lfw"] != 100 {
		t.Errorf("lfw faces = %d, want 100", groups["lfw"])
	}
	if len(groups) < 10 {
		t.Errorf("only %d face groups: %v", len(groups), groups)
	}

	if dir := os.Getenv("VEIL_SYNTH_DUMP"); dir != "" {
		dumpLibrary(t, lib, dir)
	}
}

// dumpLibrary writes each source's face with margin and its box drawn, for
// checking labels by eye (VEIL_SYNTH_DUMP=dir).
func dumpLibrary(t *testing.T, lib *Library, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range lib.Sources {
		if s.Group == "lfw" && i%10 != 0 {
			continue
		}
		still, box := lib.Still(i, 160, 0.4)
		gocv.Rectangle(&still, box, color.RGBA{0, 255, 0, 0}, 1)
		gocv.IMWrite(filepath.Join(dir, s.ID+".png"), still)
		still.Close()
	}
}

func TestSizeBin(t *testing.T) {
	for _, c := range []struct {
		w    float64
		want int
	}{{5, 0}, {12, 0}, {23.9, 0}, {24, 1}, {47, 1}, {48, 2}, {95.9, 2}, {96, 3}, {160, 3}, {500, 3}} {
		if got := SizeBin(c.w); got != c.want {
			t.Errorf("SizeBin(%v) = %d, want %d", c.w, got, c.want)
		}
	}
}

func TestRotatedBoxGeometry(t *testing.T) {
	k := &track{start: 0, end: 2, w0: 40, w1: 40, wp: 10, wa: 0, x0: 100, y0: 80, pp: 10, aspect: 1,
		a0: 30, ap: 10, maxAngle: 45, margin: 0.2}
	g := k.at(0, 200, 200)
	// A 40x40 square turned 30 degrees spans 40*(cos30+sin30) = 54.64.
	want := 40 * (math.Cos(math.Pi/6) + math.Sin(math.Pi/6))
	if d := g.face.x1 - g.face.x0; math.Abs(d-want) > 1e-9 {
		t.Errorf("rotated width %v, want %v", d, want)
	}
	if g.face.rect() != image.Rect(73, 53, 127, 107) {
		t.Errorf("box %v", g.face.rect())
	}
	// Counter-clockwise on screen: the top-left corner moves down-left.
	if tl := g.quad[0]; !(tl[0] < 80 && tl[1] > 60) {
		t.Errorf("top-left corner %v not turned counter-clockwise", tl)
	}
	if g.visible != 1 {
		t.Errorf("visible %v", g.visible)
	}
	if !(g.patch.x0 < g.face.x0 && g.patch.y1 > g.face.y1) {
		t.Errorf("patch %v does not contain face %v", g.patch, g.face)
	}
}

func shortParams(seed int64) Params {
	return Params{Seed: seed, Frames: 40}
}

func TestGenerateReadBack(t *testing.T) {
	needMedia(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "clip.avi")
	start := time.Now()
	labels, err := Generate(context.Background(), shortParams(7), out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("40 frames in %v, %d boxes", time.Since(start), labels.Count())

	vc, err := gocv.VideoCaptureFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if n := int(vc.Get(gocv.VideoCaptureFrameCount)); n != 40 {
		t.Errorf("frame count %d, want 40", n)
	}
	if fps := vc.Get(gocv.VideoCaptureFPS); math.Abs(fps-10) > 1e-6 {
		t.Errorf("fps %v, want 10", fps)
	}
	m := gocv.NewMat()
	defer m.Close()
	read := 0
	for vc.Read(&m) {
		if m.Cols() != 768 || m.Rows() != 576 {
			t.Fatalf("frame %d is %dx%d", read, m.Cols(), m.Rows())
		}
		read++
	}
	if read != 40 {
		t.Errorf("decoded %d frames, want 40", read)
	}

	if labels.Width != 768 || labels.Height != 576 || len(labels.Frames) != 40 {
		t.Fatalf("labels %dx%d with %d frames", labels.Width, labels.Height, len(labels.Frames))
	}
	frame := image.Rect(0, 0, 768, 576)
	for i := range labels.Frames {
		faces := labels.Frame(i)
		if len(faces) == 0 || len(faces) > 10 {
			t.Errorf("frame %d: %d faces", i, len(faces))
		}
		for _, f := range faces {
			if f.Box.Empty() || !f.Box.In(frame) {
				t.Errorf("frame %d face %d: box %v not inside the frame", i, f.ID, f.Box)
			}
			if f.Width < 12*0.999 || f.Width > 160*1.001 || math.Abs(f.Angle) > 45 {
				t.Errorf("frame %d face %d: width %v angle %v", i, f.ID, f.Width, f.Angle)
			}
		}
		for a := range faces {
			for b := a + 1; b < len(faces); b++ {
				if v := boxIoU(faces[a].Box, faces[b].Box); v >= 0.3+0.05 { // rounding
					t.Errorf("frame %d: faces %d and %d overlap, IoU %.2f", i, faces[a].ID, faces[b].ID, v)
				}
			}
		}
	}
	if labels.Frame(-1) != nil || labels.Frame(40) != nil {
		t.Error("Frame outside the video is not nil")
	}

	// labels.json next to the video round-trips.
	back, err := LoadLabels(LabelsPath(out))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, labels) {
		t.Error("labels.json does not round-trip")
	}
}

func boxIoU(a, b image.Rectangle) float64 {
	i := a.Intersect(b)
	if i.Empty() {
		return 0
	}
	ia := float64(i.Dx() * i.Dy())
	return ia / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia)
}

// TestPastedFaceMatchesLabel checks that the pixels inside a label box are
// the face: with no blur, noise or colour change, pasting the astronaut
// with a known geometry reproduces the source face at that box.
func TestPastedFaceMatchesLabel(t *testing.T) {
	needMedia(t)
	lib, err := LoadLibrary(DefaultFacesJSON(), "photo")
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	src := -1
	for i, s := range lib.Sources {
		if s.ID == "astronaut" {
			src = i
		}
	}
	if src < 0 {
		t.Fatal("no astronaut")
	}
	for _, angle := range []float64{0, 30} {
		aspect := float64(lib.Sources[src].Box.Dy()) / float64(lib.Sources[src].Box.Dx())
		k := &track{id: 0, src: src, start: 0, end: 1, w0: 80, w1: 80, wp: 10, pp: 10, x0: 200.3, y0: 150.6,
			aspect: aspect, a0: angle, ap: 10, maxAngle: 45, margin: 0.3, contrast: 1,
			gains: [3]float64{1, 1, 1}, sat: 1}
		k.g = []geom{k.at(0, 400, 300)}
		r := newRenderer(lib, 400, 300, rand.New(rand.NewPCG(1, 1)))
		r.prepare(k)
		frame := gocv.NewMatWithSize(300, 400, gocv.MatTypeCV8UC3)
		r.draw(&frame, k, 0)
		r.close()

		// Expected: the source face scaled by 80/96 and turned, drawn alone.
		s := lib.Sources[src]
		sc := 80 / float64(s.Box.Dx())
		cx := float64(s.Box.Min.X+s.Box.Max.X) / 2
		cy := float64(s.Box.Min.Y+s.Box.Max.Y) / 2
		rot := gocv.GetRotationMatrix2D(image.Pt(0, 0), angle, sc)
		// Move the face centre (continuous coords) to (200.3, 150.6).
		a00, a01, a10, a11 := rot.GetDoubleAt(0, 0), rot.GetDoubleAt(0, 1), rot.GetDoubleAt(1, 0), rot.GetDoubleAt(1, 1)
		b0 := 200.3 - (a00*cx + a01*cy)
		b1 := 150.6 - (a10*cx + a11*cy)
		rot.SetDoubleAt(0, 2, b0+0.5*(a00+a01)-0.5)
		rot.SetDoubleAt(1, 2, b1+0.5*(a10+a11)-0.5)
		want := gocv.NewMat()
		gocv.WarpAffine(s.Image, &want, rot, image.Pt(400, 300))
		rot.Close()

		box := k.g[0].face.rect()
		// The inner half of the box is fully opaque face.
		inner := image.Rect(box.Min.X+box.Dx()/4, box.Min.Y+box.Dy()/4, box.Max.X-box.Dx()/4, box.Max.Y-box.Dy()/4)
		a, b := frame.Region(inner), want.Region(inner)
		diff := gocv.NewMat()
		gocv.AbsDiff(a, b, &diff)
		mean := diff.Mean()
		if m := (mean.Val1 + mean.Val2 + mean.Val3) / 3; m > 4 {
			t.Errorf("angle %v: pasted face differs from the source by %.1f grey levels on average", angle, m)
		}
		for _, m := range []*gocv.Mat{&a, &b, &diff, &want, &frame} {
			m.Close()
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	needMedia(t)
	dir := t.TempDir()
	p := shortParams(3)
	p.Frames = 12
	l1, err := Generate(context.Background(), p, filepath.Join(dir, "a", "v.avi"))
	if err == nil {
		t.Fatal("writing into a missing directory should fail")
	}
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	os.MkdirAll(filepath.Join(dir, "b"), 0o755)
	if l1, err = Generate(context.Background(), p, filepath.Join(dir, "a", "v.avi")); err != nil {
		t.Fatal(err)
	}
	l2, err := Generate(context.Background(), p, filepath.Join(dir, "b", "v.avi"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l1, l2) {
		t.Error("same seed, different labels")
	}
	b1, _ := os.ReadFile(filepath.Join(dir, "a", "v.avi"))
	b2, _ := os.ReadFile(filepath.Join(dir, "b", "v.avi"))
	if string(b1) != string(b2) {
		t.Error("same seed, different video bytes")
	}
	p.Seed = 4
	l3, err := Generate(context.Background(), p, filepath.Join(dir, "b", "v.avi"))
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(l1.Frames, l3.Frames) {
		t.Error("different seeds, same labels")
	}
}

// TestGenerateFull checks the default 300-frame video: speed, size balance,
// and variety. Skipped with -short.
func TestGenerateFull(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	needMedia(t)
	out := filepath.Join(t.TempDir(), "full.avi")
	start := time.Now()
	labels, err := Generate(context.Background(), Params{Seed: 1}, out)
	if err != nil {
		t.Fatal(err)
	}
	// Speed is BenchmarkGenerate's business: a timed assertion here failed
	// on a busy machine.
	t.Logf("300 frames 768x576 in %v", time.Since(start))
	var bins [4]int
	ids := map[int]bool{}
	sources := map[string]bool{}
	var rotated, blurred, flipped, partial, mostlyOut, total int
	for _, fr := range labels.Frames {
		for _, f := range fr {
			total++
			bins[SizeBin(f.Width)]++
			ids[f.ID] = true
			sources[f.Source] = true
			if math.Abs(f.Angle) > 20 {
				rotated++
			}
			if f.Blur > 0 || f.MotionBlur > 0 {
				blurred++
			}
			if f.Flip {
				flipped++
			}
			if f.Visible < 1 {
				partial++
			}
			if f.Visible < 0.5 {
				mostlyOut++
			}
		}
	}
	t.Logf("%d boxes, %d tracks, %d sources; per bin %v; rotated>20deg %d, blurred %d, flipped %d, partly outside %d (under half visible %d)",
		total, len(ids), len(sources), bins, rotated, blurred, flipped, partial, mostlyOut)
	per := float64(total) / float64(len(labels.Frames))
	if per < 4 || per > 8 {
		t.Errorf("%.1f faces per frame, want about 6", per)
	}
	for b, n := range bins {
		if float64(n) < 0.12*float64(total) {
			t.Errorf("bin %d has %d of %d boxes", b, n, total)
		}
	}
	for name, n := range map[string]int{"rotated": rotated, "blurred": blurred, "flipped": flipped, "partial": partial} {
		if float64(n) < 0.05*float64(total) {
			t.Errorf("only %d of %d boxes %s", n, total, name)
		}
	}
	if len(ids) < 12 || len(sources) < 8 {
		t.Errorf("%d tracks from %d sources: not varied", len(ids), len(sources))
	}
	if dir := os.Getenv("VEIL_SYNTH_DUMP"); dir != "" {
		dumpFrames(t, out, labels, dir)
	}
}

func TestGenerate720p(t *testing.T) {
	needMedia(t)
	out := filepath.Join(t.TempDir(), "hd.avi")
	labels, err := Generate(context.Background(), Params{Seed: 2, Frames: 10, Width: 1280, Height: 720, Codec: CodecHFYU}, out)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	n := 0
	for vc.Read(&m) {
		if m.Cols() != 1280 || m.Rows() != 720 {
			t.Fatalf("frame %dx%d", m.Cols(), m.Rows())
		}
		n++
	}
	if n != 10 || labels.Width != 1280 || labels.Height != 720 {
		t.Errorf("%d frames, labels %dx%d", n, labels.Width, labels.Height)
	}
}

func TestGenerateCancel(t *testing.T) {
	needMedia(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "c.avi")
	if _, err := Generate(ctx, shortParams(1), out); err == nil {
		t.Fatal("cancelled Generate succeeded")
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("cancelled Generate left its video")
	}
}

func TestParamsErrors(t *testing.T) {
	for _, p := range []Params{{Frames: -1}, {MinWidth: 50, MaxWidth: 20}, {Codec: "h264"}, {Width: 100}, {MaxAngle: 120}} {
		if _, err := Generate(context.Background(), p, filepath.Join(t.TempDir(), "x.avi")); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

// dumpFrames writes a few frames with their label boxes drawn.
func dumpFrames(t *testing.T, video string, labels Labels, dir string) {
	os.MkdirAll(dir, 0o755)
	vc, err := gocv.VideoCaptureFile(video)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	for i := 0; vc.Read(&m); i++ {
		if i%50 != 0 {
			continue
		}
		raw := m.Clone()
		for _, f := range labels.Frame(i) {
			gocv.Rectangle(&m, f.Box, color.RGBA{0, 255, 0, 0}, 1)
			pts := gocv.NewPointsVector()
			var pv []image.Point
			for _, q := range f.Quad {
				pv = append(pv, image.Pt(int(q[0]), int(q[1])))
			}
			pt := gocv.NewPointVectorFromPoints(pv)
			pts.Append(pt)
			gocv.Polylines(&m, pts, true, color.RGBA{255, 0, 255, 0}, 1)
			pt.Close()
			pts.Close()
			gocv.PutText(&m, fmt.Sprintf("%d %.0f", f.ID, f.Width), f.Box.Min.Add(image.Pt(0, -2)),
				gocv.FontHersheyPlain, 0.8, color.RGBA{255, 255, 0, 0}, 1)
		}
		gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("frame%03d.png", i)), m)
		gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("raw%03d.png", i)), raw)
		raw.Close()
	}
}

// TestCodecFidelity renders the same clip as lossless HuffYUV and as MJPEG
// and checks that the MJPEG frames are within JPEG q95 error of the exact
// ones and that the labels do not depend on the codec.
func TestCodecFidelity(t *testing.T) {
	needMedia(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "h"), 0o755)
	os.MkdirAll(filepath.Join(dir, "m"), 0o755)
	p := Params{Seed: 9, Frames: 15, Codec: CodecHFYU}
	lh, err := Generate(context.Background(), p, filepath.Join(dir, "h", "v.avi"))
	if err != nil {
		t.Fatal(err)
	}
	p.Codec = CodecMJPEG
	lm, err := Generate(context.Background(), p, filepath.Join(dir, "m", "v.avi"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lh.Frames, lm.Frames) {
		t.Error("labels depend on the codec")
	}
	h, err := gocv.VideoCaptureFile(filepath.Join(dir, "h", "v.avi"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	m, err := gocv.VideoCaptureFile(filepath.Join(dir, "m", "v.avi"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, b := gocv.NewMat(), gocv.NewMat()
	defer a.Close()
	defer b.Close()
	n, worst := 0, math.Inf(1)
	for h.Read(&a) && m.Read(&b) {
		l2 := gocv.NormWithMats(a, b, gocv.NormL2)
		mse := l2 * l2 / float64(a.Total()*a.Channels())
		worst = math.Min(worst, 10*math.Log10(255*255/mse))
		n++
	}
	t.Logf("MJPEG q95 vs lossless: worst frame PSNR %.1f dB over %d frames", worst, n)
	if n != 15 || worst < 40 {
		t.Errorf("%d frames, worst PSNR %.1f dB, want 15 and >= 40", n, worst)
	}
}

// TestBackgroundLoops uses a 270-frame background for a longer clip.
func TestBackgroundLoops(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	needMedia(t)
	bg := "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
	testenv.Need(t, bg)
	out := filepath.Join(t.TempDir(), "loop.avi")
	labels, err := Generate(context.Background(), Params{Seed: 1, Frames: 280, Faces: 2, Background: bg}, out)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if n := int(vc.Get(gocv.VideoCaptureFrameCount)); n != 280 || labels.Width != 720 || labels.Height != 528 {
		t.Errorf("%d frames of %dx%d", n, labels.Width, labels.Height)
	}
	if math.Abs(labels.FPS-23.976) > 0.01 || math.Abs(vc.Get(gocv.VideoCaptureFPS)-labels.FPS) > 0.01 {
		t.Errorf("fps: labels %v, video %v", labels.FPS, vc.Get(gocv.VideoCaptureFPS))
	}
}

// BenchmarkGenerate times a full labelled video (300 frames, 768x576); the
// target is under 10 s per video on the 2-core box.
func BenchmarkGenerate(b *testing.B) {
	needMedia(b)
	for range b.N {
		if _, err := Generate(context.Background(), Params{Seed: 1}, filepath.Join(b.TempDir(), "full.avi")); err != nil {
			b.Fatal(err)
		}
	}
}
