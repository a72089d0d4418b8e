package footfall

import (
	"image"
	"math"
)

// perspective learns how tall a person is at each height in the picture from
// the people the tracker follows, and uses it to turn motion blobs into
// people: fragments of a person (a moving arm, a torso) are dropped, a blob
// as wide as several people is split side by side, and a blob as tall as two
// people (one walking behind the other) is split into two. A fixed camera
// looking at a floor sees people smaller the further away they stand, so
// the expected height depends on where the feet are.
type perspective struct {
	bins     []heightBin
	rows     float64 // frame height
	aspect   float64
	overhead bool // camera looking down: place is the blob centre, people are not stacked front to back
}

type heightBin struct {
	h float64 // running estimate of a person's height with feet in this bin
	n int
}

const (
	perspectiveBins = 12
	binReady        = 8 // samples before a bin is trusted
	// splitRatio: a blob this many times taller, or wider, than one person
	// at its place is more than one person. A lone walker's blob varies by
	// about ±15 % around the learnt size; two people overlapping by half
	// are 1.5 times one. Chosen on the vtest.avi hand count: 1.25-1.35 give
	// the same L1 counts (docs/RESULTS.md).
	splitRatio = 1.3
)

func newPerspective(aspect float64, overhead bool) *perspective {
	if overhead {
		aspect = 1 // from above, a person's shoulders are about as wide as long
	}
	return &perspective{bins: make([]heightBin, perspectiveBins), aspect: aspect, overhead: overhead}
}

// placeY is the image row a box is filed under: its feet, or its centre
// seen from above.
func (p *perspective) placeY(b image.Rectangle) float64 {
	if p.overhead {
		return float64(b.Min.Y+b.Max.Y) / 2
	}
	_, fy := foot(b)
	return fy
}

func (p *perspective) bin(y float64) int {
	if p.rows <= 0 {
		return 0
	}
	return min(perspectiveBins-1, max(0, int(y/p.rows*perspectiveBins)))
}

// learn records a confirmed person's box.
func (p *perspective) learn(b image.Rectangle) {
	hb := &p.bins[p.bin(p.placeY(b))]
	h := float64(b.Dy())
	if hb.n >= binReady && (h < 0.6*hb.h || h > 1.5*hb.h) {
		return // a fragment or a merge: not a clean sample
	}
	hb.n++
	a := 1 / float64(min(hb.n, 30))
	hb.h += a * (h - hb.h)
}

// expect returns the learnt height of a person whose feet are at y.
func (p *perspective) expect(y float64) (float64, bool) {
	i := p.bin(y)
	if p.bins[i].n >= binReady {
		return p.bins[i].h, true
	}
	// The nearest trusted bins on both sides, interpolated.
	lo, hi := -1, -1
	for j := i - 1; j >= 0; j-- {
		if p.bins[j].n >= binReady {
			lo = j
			break
		}
	}
	for j := i + 1; j < len(p.bins); j++ {
		if p.bins[j].n >= binReady {
			hi = j
			break
		}
	}
	switch {
	case lo >= 0 && hi >= 0:
		f := float64(i-lo) / float64(hi-lo)
		return p.bins[lo].h + f*(p.bins[hi].h-p.bins[lo].h), true
	case lo >= 0 && i-lo <= 3:
		return p.bins[lo].h, true
	case hi >= 0 && hi-i <= 3:
		return p.bins[hi].h, true
	}
	return 0, false
}

// people turns blobs into person boxes.
func (p *perspective) people(blobs []image.Rectangle, rows int) (out []image.Rectangle, guessed []bool) {
	p.rows = float64(rows)
	for _, b := range blobs {
		want, ok := p.expect(p.placeY(b))
		if !ok {
			out = append(out, splitWide(b, p.aspect*float64(b.Dy()))...)
			guessed = append(guessed, make([]bool, len(out)-len(guessed))...)
			continue
		}
		h := float64(b.Dy())
		switch {
		case h < 0.5*want:
			continue // a fragment: part of a person, counted by its whole
		case h > splitRatio*want && p.overhead:
			// People one after another in the picture, seen from above.
			for _, r := range splitTall(b, want) {
				out = append(out, splitWide(r, p.aspect*want)...)
			}
			guessed = append(guessed, make([]bool, len(out)-len(guessed))...)
		case h > splitRatio*want:
			// One person behind another: the front one stands at the
			// blob's bottom; the one behind has its feet higher up.
			front := image.Rect(b.Min.X, b.Max.Y-int(want), b.Max.X, b.Max.Y)
			back := image.Rect(b.Min.X, b.Min.Y, b.Max.X, b.Max.Y-int(0.4*want))
			out = append(out, splitWide(front, p.aspect*want)...)
			guessed = append(guessed, make([]bool, len(out)-len(guessed))...)
			for _, r := range splitWide(back, p.aspect*float64(back.Dy())) {
				out = append(out, r)
				guessed = append(guessed, true) // its feet are hidden: estimated
			}
		default:
			out = append(out, splitWide(b, p.aspect*math.Max(h, want))...)
			guessed = append(guessed, make([]bool, len(out)-len(guessed))...)
		}
	}
	return out, guessed
}

// splitTall splits a blob much longer than one person (want pixels) into
// people one above another of equal length.
func splitTall(b image.Rectangle, want float64) []image.Rectangle {
	n := max(2, int(math.Round(float64(b.Dy())/want)))
	out := make([]image.Rectangle, n)
	for i := range out {
		out[i] = image.Rect(b.Min.X, b.Min.Y+i*b.Dy()/n, b.Max.X, b.Min.Y+(i+1)*b.Dy()/n)
	}
	return out
}

// splitWide splits a blob much wider than one person (want pixels wide) into
// side-by-side people of equal width.
func splitWide(b image.Rectangle, want float64) []image.Rectangle {
	n := int(math.Round(float64(b.Dx()) / want))
	if n < 2 || float64(b.Dx()) < splitRatio*want {
		return []image.Rectangle{b}
	}
	out := make([]image.Rectangle, n)
	for i := range out {
		x0 := b.Min.X + i*b.Dx()/n
		x1 := b.Min.X + (i+1)*b.Dx()/n
		out[i] = image.Rect(x0, b.Min.Y, x1, b.Max.Y)
	}
	return out
}
