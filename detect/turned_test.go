package detect_test

import (
	"fmt"
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestTurnedFaceExtent: a face turned in-plane up to 45 degrees is reported
// with a box that, padded by the redaction floor (20 % a side), covers the
// turned face's whole bounding box. BlazeFace alone reports roughly the
// upright size; the eye key points give the roll to widen it by.
func TestTurnedFaceExtent(t *testing.T) {
	testenv.Need(t, testenv.Astronaut)
	s := newFrame(t, detect.NewService(loadModel(t, "blazeface-back-256"), 0.5, 1), fullOptions())
	defer s.Close()
	img := gocv.IMRead(testenv.Astronaut, gocv.IMReadColor)
	defer img.Close()
	f := testenv.AstronautFace
	cx, cy := float64(f[0]+f[2])/2, float64(f[1]+f[3])/2
	w, h := float64(f[2]-f[0]), float64(f[3]-f[1])
	for _, deg := range []float64{0, 15, -15, 30, -30, 45, -45} {
		t.Run(fmt.Sprintf("%+.0f", deg), func(t *testing.T) {
			m := gocv.GetRotationMatrix2D(image.Pt(int(cx), int(cy)), deg, 1)
			defer m.Close()
			rot := gocv.NewMat()
			defer rot.Close()
			gocv.WarpAffine(img, &rot, m, image.Pt(img.Cols(), img.Rows()))
			th := deg * math.Pi / 180
			c, sn := math.Abs(math.Cos(th)), math.Abs(math.Sin(th))
			bw, bh := w*c+h*sn, w*sn+h*c
			want := image.Rect(int(cx-bw/2), int(cy-bh/2), int(cx+bw/2), int(cy+bh/2))
			faces, err := s.Detect(rot)
			if err != nil {
				t.Fatal(err)
			}
			best := 0.0
			var got detect.Face
			for _, fc := range faces {
				b := fc.Box
				p := int(0.2 * float64(b.Dx()))
				padded := image.Rect(b.Min.X-p, b.Min.Y-p, b.Max.X+p, b.Max.Y+p)
				in := padded.Intersect(want)
				if cov := float64(in.Dx()*in.Dy()) / float64(want.Dx()*want.Dy()); cov > best {
					best, got = cov, fc
				}
			}
			if best < 0.97 {
				t.Errorf("turned face box %v: best detection %v (roll %.0f deg) padded covers %.0f%%, want >= 97%%",
					want, got.Box, got.Roll*180/math.Pi, 100*best)
			}
			// The roll estimate follows the turn (gocv turns counter-clockwise).
			if d := float64(got.Roll)*180/math.Pi + deg; math.Abs(d) > 15 {
				t.Errorf("roll %.0f deg for a face turned %.0f deg", got.Roll*180/math.Pi, deg)
			}
		})
	}
}
