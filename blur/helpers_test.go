package blur

import (
	"image"
	"image/color"
	"math"
	"testing"

	"gocv.io/x/gocv"
)

const (
	astronautPath = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png"
	messiPath     = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
)

// astronautFace is the face box in astronaut.png (512x512), checked by eye.
var astronautFace = image.Rect(165, 60, 250, 180)

// loadImage reads a colour test image; the test owns the Mat.
func loadImage(t testing.TB, path string) gocv.Mat {
	t.Helper()
	m := gocv.IMRead(path, gocv.IMReadColor)
	if m.Empty() {
		m.Close()
		t.Fatalf("test image %s is missing or unreadable", path)
	}
	return m
}

// pixels is a Go copy of an 8UC3 Mat.
type pixels struct {
	w, h int
	b    []byte
}

// pixelsOf copies m's pixels out of OpenCV memory.
func pixelsOf(t testing.TB, m gocv.Mat) pixels {
	t.Helper()
	if m.Type() != gocv.MatTypeCV8UC3 {
		t.Fatalf("pixelsOf: type %v, want CV8UC3", m.Type())
	}
	c := m.Clone() // continuous
	defer c.Close()
	return pixels{w: c.Cols(), h: c.Rows(), b: c.ToBytes()}
}

// at returns the BGR pixel at (x, y).
func (p pixels) at(x, y int) [3]byte {
	i := 3 * (y*p.w + x)
	return [3]byte{p.b[i], p.b[i+1], p.b[i+2]}
}

// redactedPixels copies f's pixels through CloneMat.
func redactedPixels(t testing.TB, f *Redacted) pixels {
	t.Helper()
	m := f.CloneMat()
	defer m.Close()
	return pixelsOf(t, m)
}

// bandPass returns the difference of Gaussians (sigmas lo and hi) of m's
// grey levels, row-major, as float64.
func bandPass(t testing.TB, m gocv.Mat, lo, hi float64) []float64 {
	t.Helper()
	gray, f, a, b, d := gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer func() {
		for _, x := range []*gocv.Mat{&gray, &f, &a, &b, &d} {
			x.Close()
		}
	}()
	gocv.CvtColor(m, &gray, gocv.ColorBGRToGray)
	gray.ConvertTo(&f, gocv.MatTypeCV32F)
	gocv.GaussianBlur(f, &a, image.Point{}, lo, lo, gocv.BorderReflect101)
	gocv.GaussianBlur(f, &b, image.Point{}, hi, hi, gocv.BorderReflect101)
	gocv.Subtract(a, b, &d)
	data, err := d.DataPtrFloat32()
	if err != nil {
		t.Fatalf("band pass: %v", err)
	}
	out := make([]float64, len(data))
	for i, v := range data {
		out[i] = float64(v)
	}
	return out
}

// laplacian returns the 3x3 Laplacian of m's grey levels, row-major.
func laplacian(t testing.TB, m gocv.Mat) []float64 {
	t.Helper()
	gray, d := gocv.NewMat(), gocv.NewMat()
	defer gray.Close()
	defer d.Close()
	gocv.CvtColor(m, &gray, gocv.ColorBGRToGray)
	gocv.Laplacian(gray, &d, gocv.MatTypeCV32F, 1, 1, 0, gocv.BorderReflect101)
	data, err := d.DataPtrFloat32()
	if err != nil {
		t.Fatalf("laplacian: %v", err)
	}
	out := make([]float64, len(data))
	for i, v := range data {
		out[i] = float64(v)
	}
	return out
}

// energy returns the mean square of v (row-major, width w) inside r.
func energy(v []float64, w int, r image.Rectangle) float64 {
	var s float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			s += v[y*w+x] * v[y*w+x]
		}
	}
	return s / float64(r.Dx()*r.Dy())
}

// correlation returns the Pearson correlation of a and b (row-major, width w)
// inside r, or 0 if either is constant there.
func correlation(a, b []float64, w int, r image.Rectangle) float64 {
	var sa, sb, saa, sbb, sab, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			p, q := a[y*w+x], b[y*w+x]
			sa, sb, saa, sbb, sab, n = sa+p, sb+q, saa+p*p, sbb+q*q, sab+p*q, n+1
		}
	}
	va, vb := saa-sa*sa/n, sbb-sb*sb/n
	if va <= 0 || vb <= 0 {
		return 0
	}
	return (sab - sa*sb/n) / math.Sqrt(va*vb)
}

// mustRedactor returns a Redactor for o that is closed when t ends.
func mustRedactor(t testing.TB, o Options) *Redactor {
	t.Helper()
	r, err := NewRedactor(o)
	if err != nil {
		t.Fatalf("NewRedactor: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// mustRedact redacts a clone of in with p and returns the result, closed when
// t ends.
func mustRedact(t testing.TB, r *Redactor, in gocv.Mat, p Plan) *Redacted {
	t.Helper()
	out, err := r.Redact(in.Clone(), p)
	if err != nil {
		t.Fatalf("Redact: %v", err)
	}
	t.Cleanup(func() { _ = out.Close() })
	return &out
}

// bgrOf returns c as the BGR bytes the frame holds.
func bgrOf(c color.RGBA) [3]byte { return [3]byte{c.B, c.G, c.R} }

// insideEllipse reports whether the centre of pixel (x, y) lies within the
// ellipse inscribed in r, scaled by k (k > 1 grows it).
func insideEllipse(r image.Rectangle, x, y int, k float64) bool {
	cx, cy := float64(r.Min.X+r.Max.X)/2, float64(r.Min.Y+r.Max.Y)/2
	ax, ay := k*float64(r.Dx())/2, k*float64(r.Dy())/2
	dx, dy := (float64(x)+0.5-cx)/ax, (float64(y)+0.5-cy)/ay
	return dx*dx+dy*dy <= 1
}

// paddedBox pads face by p on each side, rounding outward, without clipping:
// an independent restatement of the padding rule for the tests.
func paddedBox(face image.Rectangle, p float64) image.Rectangle {
	px, py := p*float64(face.Dx()), p*float64(face.Dy())
	return image.Rect(
		int(math.Floor(float64(face.Min.X)-px)), int(math.Floor(float64(face.Min.Y)-py)),
		int(math.Ceil(float64(face.Max.X)+px)), int(math.Ceil(float64(face.Max.Y)+py)),
	)
}

// newFrame returns a size.X×size.Y 8UC3 frame of colour c; the caller owns it.
func newFrame(size image.Point, c color.RGBA) gocv.Mat {
	return gocv.NewMatWithSizeFromScalar(bgr(c), size.Y, size.X, gocv.MatTypeCV8UC3)
}
