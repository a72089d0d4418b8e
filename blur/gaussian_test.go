package blur

import (
	"fmt"
	"image"
	"math"
	"math/rand"
	"testing"

	"gocv.io/x/gocv"
)

// invisible is the band energy, in squared 8-bit grey levels, below which a
// difference cannot survive rounding to 8 bits: an RMS of a tenth of a level.
const invisible = 0.01

// TestGaussianDownscaleIsStronger checks the blur of the Gaussian style, which
// downscales large sigmas, against a plain full-resolution Gaussian blur with
// exactly sigma = face width / SigmaDivisor over the same padded region. Both
// run on float images so that 8-bit rounding cannot hide a difference. In
// every band, from the Laplacian to detail twice sigma in size, the style's
// blur must leave no more energy inside the face box than the plain blur, up
// to a difference too small to survive rounding to 8 bits. White noise has
// energy at every frequency; the astronaut is a real face.
func TestGaussianDownscaleIsStronger(t *testing.T) {
	checkNoMatLeak(t)
	astro := loadImage(t, astronautPath)
	defer astro.Close()
	noise := noiseImage(t, 512, 512, 1)
	defer noise.Close()

	r := mustRedactor(t, DefaultOptions)
	downscaled := 0
	for _, img := range []struct {
		name string
		m    gocv.Mat
	}{{"astronaut", astro}, {"noise", noise}} {
		src := gocv.NewMat()
		defer src.Close()
		img.m.ConvertTo(&src, gocv.MatTypeCV32FC3)
		for _, width := range []int{24, 40, 64, 85, 160, 300} {
			for _, div := range []float64{1, 2.5, 4, 6} {
				sigma := float64(width) / div
				if sigma > r.maxDirectSigma {
					downscaled++
				}
				t.Run(fmt.Sprintf("%s/w%d/div%g", img.name, width, div), func(t *testing.T) {
					compareWithReference(t, r, src, width, sigma)
				})
			}
		}
	}
	if downscaled < 10 {
		t.Errorf("only %d cases took the downscaled path", downscaled)
	}
}

// compareWithReference blurs the padded box of a face of the given width,
// centred in src, both ways and compares band energies inside the face box.
func compareWithReference(t *testing.T, r *Redactor, src gocv.Mat, width int, sigma float64) {
	h := width * 7 / 5
	bounds := image.Rect(0, 0, src.Cols(), src.Rows())
	c := bounds.Max.Div(2)
	face := image.Rect(c.X-width/2, c.Y-h/2, c.X-width/2+width, c.Y-h/2+h)
	region := paddedBox(face, DefaultOptions.Padding).Intersect(bounds)
	measured := face.Intersect(bounds).Sub(region.Min)

	roi := src.Region(region)
	defer roi.Close()
	got := gocv.NewMat()
	defer got.Close()
	r.gaussian(roi, &got, sigma)
	want := referenceBlur(roi, sigma)
	defer want.Close()

	measures := []struct {
		name string
		f    func(gocv.Mat) []float64
	}{
		{"laplacian", func(m gocv.Mat) []float64 { return laplacian(t, m) }},
		{"dog(1,2)", func(m gocv.Mat) []float64 { return bandPass(t, m, 1, 2) }},
		{"dog(2,4)", func(m gocv.Mat) []float64 { return bandPass(t, m, 2, 4) }},
		{"dog(σ/4,σ/2)", func(m gocv.Mat) []float64 { return bandPass(t, m, sigma/4, sigma/2) }},
		{"dog(σ/2,σ)", func(m gocv.Mat) []float64 { return bandPass(t, m, sigma/2, sigma) }},
		{"dog(σ,2σ)", func(m gocv.Mat) []float64 { return bandPass(t, m, sigma, 2*sigma) }},
	}
	for _, m := range measures {
		g := energy(m.f(got), region.Dx(), measured)
		e := energy(m.f(want), region.Dx(), measured)
		t.Logf("sigma %.1f %s: style blur %.3g, plain blur %.3g", sigma, m.name, g, e)
		if g > e+invisible {
			t.Errorf("sigma %.1f %s: energy left %.4g, more than the plain blur's %.4g", sigma, m.name, g, e)
		}
	}
}

// referenceBlur returns src blurred on its own (border mirrored,
// BORDER_REFLECT) at full resolution with the given sigma: the plain
// definition of the Gaussian style.
func referenceBlur(src gocv.Mat, sigma float64) gocv.Mat {
	isolated := src.Clone()
	defer isolated.Close()
	dst := gocv.NewMat()
	k := 2*int(math.Ceil(3*sigma)) + 1
	gocv.GaussianBlur(isolated, &dst, image.Pt(k, k), sigma, sigma, gocv.BorderReflect)
	return dst
}

// noiseImage returns a w×h 8UC3 image of seeded uniform white noise.
func noiseImage(t testing.TB, w, h int, seed int64) gocv.Mat {
	t.Helper()
	b := make([]byte, 3*w*h)
	rand.New(rand.NewSource(seed)).Read(b)
	m, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, b)
	if err != nil {
		t.Fatalf("noise image: %v", err)
	}
	return m
}
