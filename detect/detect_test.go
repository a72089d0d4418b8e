package detect_test

import (
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/testenv"
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

// TestBlazeFaceWindowModels: both published models, each on its own
// window size, find the astronaut's face where it is (front-128's anchors
// lie on strides 8 and 16, back-256's on 16 and 32).
func TestBlazeFaceWindowModels(t *testing.T) {
	testenv.Need(t, testenv.Astronaut)
	img := gocv.IMRead(testenv.Astronaut, gocv.IMReadColor)
	defer img.Close()
	f := testenv.AstronautFace
	for _, m := range []struct {
		name string
		size int
	}{{"blazeface-front-128", 128}, {"blazeface-back-256", 256}} {
		t.Run(m.name, func(t *testing.T) {
			bf, err := detect.NewBlazeFace(loadModel(t, m.name), m.size, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			defer bf.Close()
			win := gocv.NewMat()
			defer win.Close()
			gocv.Resize(img, &win, image.Pt(m.size, m.size), 0, 0, gocv.InterpolationArea)
			sc := float64(m.size) / float64(img.Cols())
			want := image.Rect(int(float64(f[0])*sc), int(float64(f[1])*sc), int(float64(f[2])*sc), int(float64(f[3])*sc))
			cands, err := bf.DetectWindow(win)
			if err != nil {
				t.Fatal(err)
			}
			best := 0.0
			for _, c := range detect.WeightedNMS(cands, 0.3) {
				best = math.Max(best, boxIoU(c.Box.Int(), want))
			}
			if best < 0.4 {
				t.Errorf("face %v: best IoU %.2f among %d candidates", want, best, len(cands))
			}
		})
	}
}
