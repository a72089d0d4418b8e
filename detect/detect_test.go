package detect_test

import (
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/internal/testenv"
	"github.com/veil-edge/veil/models"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestWeightedNMS(t *testing.T) {
	cases := []struct {
		name  string
		in    []detect.Candidate
		thr   float32
		want  int
		first detect.Rect
	}{
		{"empty", nil, 0.3, 0, detect.Rect{}},
		{"disjoint kept", []detect.Candidate{{Box: detect.Rect{0, 0, 10, 10}, Score: 0.9}, {Box: detect.Rect{20, 20, 30, 30}, Score: 0.8}}, 0.3, 2, detect.Rect{0, 0, 10, 10}},
		{"overlap blended by score", []detect.Candidate{{Box: detect.Rect{0, 0, 10, 10}, Score: 0.75}, {Box: detect.Rect{2, 0, 12, 10}, Score: 0.25}}, 0.3, 1, detect.Rect{0.5, 0, 10.5, 10}},
		{"below threshold kept apart", []detect.Candidate{{Box: detect.Rect{0, 0, 10, 10}, Score: 0.9}, {Box: detect.Rect{8, 0, 18, 10}, Score: 0.8}}, 0.3, 2, detect.Rect{0, 0, 10, 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := detect.WeightedNMS(tc.in, tc.thr)
			if len(got) != tc.want {
				t.Fatalf("got %d boxes, want %d: %v", len(got), tc.want, got)
			}
			if tc.want > 0 && !near(got[0].Box, tc.first) {
				t.Errorf("first box %v, want %v", got[0].Box, tc.first)
			}
		})
	}
}

func near(a, b detect.Rect) bool {
	return math.Abs(float64(a.X0-b.X0)) < 1e-3 && math.Abs(float64(a.Y0-b.Y0)) < 1e-3 &&
		math.Abs(float64(a.X1-b.X1)) < 1e-3 && math.Abs(float64(a.Y1-b.Y1)) < 1e-3
}

// TestSearchWindowsCoverFrame: every face of MinFace..frame size lies wholly
// inside some window at a level where it is at least MinRel of the window.
func TestSearchWindowsCoverFrame(t *testing.T) {
	for _, size := range []image.Point{{768, 576}, {1280, 720}, {640, 480}, {320, 240}} {
		o := detect.SearchOptions{MinFace: 16, MinRel: 0.0625, MaxRel: 0.3, NMSIoU: 0.3}
		s, err := detect.NewSearch([]detect.Window{stubWindow{256}}, o)
		if err != nil {
			t.Fatal(err)
		}
		wins := s.Windows(size)
		s.Close()
		for fw := 16; fw <= min(size.X, size.Y)/2; fw = fw * 5 / 4 {
			for y := 0; y+fw <= size.Y; y += 7 {
				for x := 0; x+fw <= size.X; x += 7 {
					face := image.Rect(x, y, x+fw, y+fw)
					if !covered(face, wins, o.MinRel, o.MaxRel) {
						t.Fatalf("%v: face %v (width %d) not inside any window big enough; %d windows", size, face, fw, len(wins))
					}
				}
			}
		}
		t.Logf("%v: %d windows", size, len(wins))
	}
}

func covered(face image.Rectangle, wins []image.Rectangle, minRel, maxRel float64) bool {
	top := 0 // the whole-frame window finds faces of any larger size
	for _, w := range wins {
		top = max(top, w.Dx())
	}
	for _, w := range wins {
		if face.In(w) && float64(face.Dx()) >= minRel*float64(w.Dx())*0.99 && (float64(face.Dx()) <= maxRel*float64(w.Dx()) || w.Dx() == top) {
			return true
		}
	}
	return false
}

type stubWindow struct{ size int }

func (s stubWindow) InputSize() int                                    { return s.size }
func (s stubWindow) DetectWindow(gocv.Mat) ([]detect.Candidate, error) { return nil, nil }
func (s stubWindow) Close() error                                      { return nil }

func loadModel(t testing.TB, name string) []byte {
	t.Helper()
	b, _, err := models.Load(testenv.ModelsDir(), name)
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	return b
}

// paste puts the astronaut's face, scaled to face width fw, on a textured
// background (fruits.jpg, no faces) at (x, y) and returns the face box.
func paste(t *testing.T, bg gocv.Mat, fw, x, y int) image.Rectangle {
	t.Helper()
	astro := gocv.IMRead(testenv.Astronaut, gocv.IMReadColor)
	defer astro.Close()
	f := testenv.AstronautFace
	face := image.Rect(f[0], f[1], f[2], f[3])
	margin := image.Rect(face.Min.X-face.Dx()/2, face.Min.Y-face.Dy()/2, face.Max.X+face.Dx()/2, face.Max.Y+face.Dy()/2).Intersect(image.Rect(0, 0, astro.Cols(), astro.Rows()))
	crop := astro.Region(margin)
	defer crop.Close()
	sc := float64(fw) / float64(face.Dx())
	cw, ch := int(float64(margin.Dx())*sc), int(float64(margin.Dy())*sc)
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(crop, &small, image.Pt(cw, ch), 0, 0, gocv.InterpolationArea)
	dst := bg.Region(image.Rect(x, y, x+cw, y+ch))
	small.CopyTo(&dst)
	dst.Close()
	ox, oy := int(float64(face.Min.X-margin.Min.X)*sc), int(float64(face.Min.Y-margin.Min.Y)*sc)
	return image.Rect(x+ox, y+oy, x+ox+fw, y+oy+int(float64(face.Dy())*sc))
}

func background(t testing.TB, w, h int) gocv.Mat {
	t.Helper()
	p := "/usr/share/doc/opencv-doc/examples/data/fruits.jpg"
	testenv.Need(t, p)
	src := gocv.IMRead(p, gocv.IMReadColor)
	defer src.Close()
	bg := gocv.NewMat()
	gocv.Resize(src, &bg, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
	return bg
}

func boxIoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	return ia / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia)
}

// TestBlazeFaceSearchSizes: the full search finds a real face from 16 px to
// frame-filling at 768x576, with a box that overlaps the labelled one, and
// nothing on a face-free background.
func TestBlazeFaceSearchSizes(t *testing.T) {
	onnx := loadModel(t, "blazeface-back-256")
	bf, err := detect.NewBlazeFace(onnx, 256, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	s, err := detect.NewSearch([]detect.Window{bf}, detect.SearchOptions{MinFace: 16, MinRel: 0.0625, MaxRel: 0.3, NMSIoU: 0.3, MaxAspect: 2.5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	empty := background(t, 768, 576)
	faces, err := s.Detect(empty)
	empty.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range faces {
		if f.Score >= 0.6 {
			t.Errorf("confident false positive on a face-free image: %v", f)
		}
	}
	for _, fw := range []int{16, 20, 24, 32, 48, 64, 96, 128, 200} {
		for _, pos := range []image.Point{{37, 29}, {301, 211}, {440, 150}} {
			bg := background(t, 768, 576)
			cw, ch := fw*2+2, fw*11/4+2 // the pasted crop keeps half a face of margin
			x, y := max(0, min(pos.X, 768-cw)), max(0, min(pos.Y, 576-ch))
			want := paste(t, bg, fw, x, y)
			got, err := s.Detect(bg)
			bg.Close()
			if err != nil {
				t.Fatal(err)
			}
			best := 0.0
			for _, f := range got {
				best = math.Max(best, boxIoU(f.Box, want))
			}
			if best < 0.3 {
				t.Errorf("face width %d at %v: not found (best IoU %.2f, %d detections)", fw, pos, best, len(got))
			}
		}
	}
}

func TestBlazeFaceRejectsBadInput(t *testing.T) {
	onnx := loadModel(t, "blazeface-front-128")
	bf, err := detect.NewBlazeFace(onnx, 128, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	wrong := gocv.NewMatWithSize(100, 128, gocv.MatTypeCV8UC3)
	defer wrong.Close()
	if _, err := bf.DetectWindow(wrong); err == nil {
		t.Error("a wrongly sized window was accepted")
	}
	if _, err := detect.NewBlazeFace(onnx, 192, 0.5); err == nil {
		t.Error("an unsupported input size was accepted")
	}
	// Garbage bytes are not tried here: OpenCV 4.6 aborts the process on an
	// unparsable ONNX buffer, which is why models.Load refuses any file whose
	// SHA-256 is not the pinned one before its bytes reach OpenCV.
}

func TestHaarFindsMessi(t *testing.T) {
	testenv.Need(t, testenv.Messi)
	xml := loadModel(t, "haar-frontalface-alt2")
	h, err := detect.NewHaar(xml, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	img := gocv.IMRead(testenv.Messi, gocv.IMReadColor)
	defer img.Close()
	faces, err := h.Detect(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(faces) == 0 {
		t.Fatal("no face found in messi5.jpg")
	}
}

// TestGateSkipsStaticWindowsButSeesNewFaces: on an unchanged frame the gated
// search rescans nothing and returns the same faces; a face pasted into the
// frame is found on the very next call; every window is rescanned after MaxAge.
func TestGateSkipsStaticWindowsButSeesNewFaces(t *testing.T) {
	onnx := loadModel(t, "blazeface-back-256")
	var ws []detect.Window
	for i := 0; i < 2; i++ {
		bf, err := detect.NewBlazeFace(onnx, 256, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, bf)
	}
	gate := detect.GateOptions{Scale: 0.25, Threshold: 10, MinPixels: 2, MaxAge: 3}
	s, err := detect.NewSearch(ws, detect.SearchOptions{MinFace: 16, MinRel: 0.0625, MaxRel: 0.3, NMSIoU: 0.3, MaxAspect: 2.5, Gate: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	frame := background(t, 768, 576)
	defer frame.Close()
	first := paste(t, frame, 40, 60, 60)
	total := len(s.Windows(image.Pt(768, 576)))

	detectAll := func() []detect.Face {
		f, err := s.Detect(frame)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	found := func(fs []detect.Face, want image.Rectangle) bool {
		for _, f := range fs {
			if boxIoU(f.Box, want) > 0.3 {
				return true
			}
		}
		return false
	}
	if f := detectAll(); !found(f, first) || s.LastScanned() != total {
		t.Fatalf("first call: scanned %d/%d, found=%v", s.LastScanned(), total, found(f, first))
	}
	if f := detectAll(); s.LastScanned() != 0 || !found(f, first) {
		t.Fatalf("static frame: scanned %d windows (want 0), cached face found=%v", s.LastScanned(), found(f, first))
	}
	second := paste(t, frame, 24, 500, 300)
	f := detectAll()
	if !found(f, second) {
		t.Fatalf("a face that appeared in a static scene was not found; %d windows rescanned", s.LastScanned())
	}
	if !found(f, first) {
		t.Fatal("the cached face was lost when another window was rescanned")
	}
	n3 := s.LastScanned()
	if n3 == 0 || n3 == total {
		t.Errorf("after a local change %d/%d windows rescanned; want only those covering it", n3, total)
	}
	// Windows last scanned on call 1 reach MaxAge (3 calls) on call 4.
	if detectAll(); s.LastScanned() != total-n3 {
		t.Errorf("on call 4, %d windows rescanned; want the %d not scanned since call 1", s.LastScanned(), total-n3)
	}
}
