package blur

import (
	"fmt"
	"image"
	"math"
	"testing"

	"gocv.io/x/gocv"
)

// band is a difference-of-Gaussians band pass.
type band struct {
	name   string
	lo, hi float64
}

// Detail at two scales: fine (eyelids, teeth, skin texture) and coarse (eyes,
// nostrils, mouth corners).
var bands = [2]band{{"fine", 1, 2}, {"coarse", 2, 6}}

// limit bounds the band-pass energy left inside the face box (as a fraction
// of the original's) and the correlation of band-pass input and output there.
type limit struct{ energy, corr float64 }

// TestRedactFacesStrength redacts the astronaut's face with every style and
// shape, at the default options and at the weakest ones Validate accepts.
func TestRedactFacesStrength(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, astronautPath)
	defer in.Close()
	orig := pixelsOf(t, in)
	face := astronautFace
	var before [2][]float64
	for i, b := range bands {
		before[i] = bandPass(t, in, b.lo, b.hi)
	}

	none := math.Inf(1)
	styles := []struct {
		style  Style
		limits [2]limit
	}{
		// A blur keeps the phase of what it leaves, so its test is how
		// little it leaves.
		{Gaussian, [2]limit{{0.1, none}, {0.1, none}}},
		// Block edges are strong band-pass features of their own, so a
		// mosaic's energy is not limited; its edges follow the grid, not
		// the face, which correlation shows. Its blocks are a downscaled
		// face, though, so it keeps the coarse layout: the coarse band
		// gets a looser limit (measured ~0.28 at 5 and 6 blocks).
		{Mosaic, [2]limit{{none, 0.2}, {none, 0.4}}},
		{Fill, [2]limit{{0.1, 0.2}, {0.1, 0.2}}},
	}
	// The weakest options Validate accepts.
	floor := DefaultOptions
	floor.Padding, floor.SigmaDivisor, floor.MosaicBlocks = minPadding, maxSigmaDivisor, maxMosaicBlocks
	levels := []struct {
		name string
		opts Options
	}{{"default", DefaultOptions}, {"floor", floor}}

	for _, lv := range levels {
		for _, st := range styles {
			for _, shape := range []Shape{Box, Ellipse} {
				t.Run(fmt.Sprintf("%s/%s/%s", lv.name, st.style, shape), func(t *testing.T) {
					o := lv.opts
					o.Style, o.Shape = st.style, shape
					testFaceRedaction(t, mustRedactor(t, o), in, orig, face, before, st.limits)
				})
			}
		}
	}
}

// testFaceRedaction redacts face in a clone of in with r and checks the band
// energy and correlation limits inside the face box, that nothing outside the
// padded box changed and, for ellipses, that the padded box's corners outside
// the ellipse did not change either; for boxes, that they mostly did.
func testFaceRedaction(t *testing.T, r *Redactor, in gocv.Mat, orig pixels, face image.Rectangle,
	before [2][]float64, limits [2]limit) {
	o := r.Options()
	out := mustRedact(t, r, in, FacesPlan([]image.Rectangle{face}))
	got := redactedPixels(t, out)

	padded := paddedBox(face, o.Padding)
	if regions := out.Regions(); len(regions) != 1 || regions[0] != padded {
		t.Fatalf("Regions() = %v, want [%v]", regions, padded)
	}
	if out.Whole() || out.Reason() != "" {
		t.Errorf("Whole() = %v, Reason() = %q; want false, \"\"", out.Whole(), out.Reason())
	}

	outMat := out.CloneMat()
	defer outMat.Close()
	for i, b := range bands {
		after := bandPass(t, outMat, b.lo, b.hi)
		e := energy(after, orig.w, face) / energy(before[i], orig.w, face)
		c := correlation(before[i], after, orig.w, face)
		t.Logf("%s band: energy ratio %.4f, correlation %.4f", b.name, e, c)
		if lim := limits[i]; e > lim.energy || c > lim.corr {
			t.Errorf("%s band: energy left in face box %.3f of original, correlation %.3f; want <= %.3f, <= %.3f",
				b.name, e, c, lim.energy, lim.corr)
		}
	}

	changedOutside, cornerChanged, cornerTotal := 0, 0, 0
	for y := 0; y < orig.h; y++ {
		for x := 0; x < orig.w; x++ {
			same := got.at(x, y) == orig.at(x, y)
			in := image.Pt(x, y).In(padded)
			if !in && !same {
				changedOutside++
			}
			// Pixels of the padded box clearly outside its ellipse.
			if in && !insideEllipse(padded, x, y, 1.05) {
				cornerTotal++
				if !same {
					cornerChanged++
				}
			}
		}
	}
	if changedOutside != 0 {
		t.Errorf("%d pixels outside the padded region %v changed", changedOutside, padded)
	}
	switch o.Shape {
	case Ellipse:
		if cornerChanged != 0 {
			t.Errorf("%d of %d corner pixels outside the ellipse changed", cornerChanged, cornerTotal)
		}
	case Box:
		if cornerChanged < cornerTotal/2 {
			t.Errorf("only %d of %d corner pixels changed with shape box", cornerChanged, cornerTotal)
		}
	}
}
