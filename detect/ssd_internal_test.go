package detect

import (
	"image"
	"math"
	"testing"
)

// TestDecodeSSD decodes hand-made heads: two feature maps (2x2 with one
// anchor per cell, 1x1 with two), anchors in input fractions, logits for
// the person class (1) and one for another class that must not count.
func TestDecodeSSD(t *testing.T) {
	logit := func(p float64) float32 { return float32(math.Log(p / (1 - p))) }
	heads := []ssdHead{
		{boxes: make([]float32, 4*1*4), classes: make([]float32, ssdClasses*1*4), size: 2, anchors: 1},
		{boxes: make([]float32, 4*2*1), classes: make([]float32, ssdClasses*2*1), size: 1, anchors: 2},
	}
	for _, h := range heads {
		for i := range h.classes {
			h.classes[i] = -5 // every class unlikely
		}
	}
	anchors := []float32{
		0, 0, 0.5, 0.5, // head 0, cell (0,0)
		0, 0.5, 0.5, 1, // cell (1,0)
		0.5, 0, 1, 0.5, // cell (0,1)
		0.5, 0.5, 1, 1, // cell (1,1)
		0.2, 0.2, 0.8, 0.8, // head 1, anchor 0
		0.1, 0.3, 0.9, 0.7, // head 1, anchor 1
	}
	// Head 0, cell (1,0) (index 1): a person at the anchor exactly.
	heads[0].classes[1*4+1] = logit(0.9)
	// Head 0, cell (0,1) (index 2): a car (class 3), not a person.
	heads[0].classes[3*4+2] = logit(0.99)
	// Head 1, anchor 1: a person moved down by a tenth of the anchor's
	// height (ty = 1 at scale 10), twice as wide (tw = 5 ln 2).
	h1 := heads[1]
	h1.classes[(1*ssdClasses+1)*1] = logit(0.7)
	h1.boxes[(1*4+0)*1] = 1
	h1.boxes[(1*4+3)*1] = float32(5 * math.Ln2)
	// Head 1, anchor 0: a weaker person overlapping anchor 1's box a lot.
	h1.classes[(0*ssdClasses+1)*1] = logit(0.6)

	frame := image.Pt(200, 100)
	got := decodeSSD(heads, anchors, 0.5, frame)
	want := []Person{
		{Box: image.Rect(100, 0, 200, 50), Score: 0.9},
		// centre y 0.5+0.08 = 0.58, h 0.8: 0.18..0.98; centre x 0.5, w 0.8: 0.1..0.9
		{Box: image.Rect(20, 18, 180, 98), Score: 0.7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v (anchor 0 of head 1 suppressed)", got, want)
	}
	for i := range want {
		if got[i].Box != want[i].Box || math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
			t.Errorf("person %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if got := decodeSSD(heads, anchors, 0.95, frame); len(got) != 0 {
		t.Errorf("threshold 0.95: %v", got)
	}
	// Boxes are clipped to the frame.
	h1.boxes[(1*4+2)*1] = float32(5 * math.Ln2) // twice as tall: 1.6 high
	if got := decodeSSD(heads, anchors, 0.65, frame); len(got) != 2 || got[1].Box != image.Rect(20, 0, 180, 100) {
		t.Errorf("clipped: %v", got)
	}
}

func TestSuppress(t *testing.T) {
	a := Person{Box: image.Rect(0, 0, 10, 10), Score: 0.6}
	b := Person{Box: image.Rect(1, 0, 11, 10), Score: 0.8} // IoU with a 0.82
	c := Person{Box: image.Rect(3, 0, 13, 10), Score: 0.7} // IoU with b 0.67
	d := Person{Box: image.Rect(20, 0, 30, 10), Score: 0.1}
	e := Person{Box: image.Rect(7, 0, 17, 10), Score: 0.5} // IoU with b 0.25, with d 0
	got := suppress([]Person{a, b, c, d, e}, 0.5)
	if len(got) != 3 || got[0] != b || got[1] != e || got[2] != d {
		t.Errorf("got %v, want %v, %v, %v", got, b, e, d)
	}
	if got := suppress(nil, 0.5); len(got) != 0 {
		t.Errorf("nothing: %v", got)
	}
}
