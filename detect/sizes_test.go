package detect

import (
	"image"
	"testing"
)

// TestFaceSizes: widths are learnt per height band, a band with too few
// falls back to the largest learnt elsewhere, nothing learnt is no answer.
func TestFaceSizes(t *testing.T) {
	var s faceSizes
	if _, ok := s.p90(0.5); ok {
		t.Fatal("an empty model gave a size")
	}
	for i := 0; i < 20; i++ {
		s.add(0.30, float32(10+i%5)) // far from the camera: 10-14 px
		s.add(0.85, float32(30+i%5)) // near: 30-34 px
	}
	cases := []struct {
		y    float32
		want float32
	}{{0.30, 14}, {0.85, 34}, {0.02, 34}} // 0.02: nobody seen there, the largest elsewhere
	for _, c := range cases {
		if got, ok := s.p90(c.y); !ok || got != c.want {
			t.Errorf("p90(%.2f) = %v, %v; want %v", c.y, got, ok, c.want)
		}
	}
}

// TestGiantBoxNeedsStrongEvidence: a box far wider than the faces seen at
// its height is kept only with LargeScore; before anything is learnt the
// bound is a third of the shorter side, or MaxFace when it is set.
func TestGiantBoxNeedsStrongEvidence(t *testing.T) {
	frame := &Frame{o: DefaultFrameOptions}
	frame.geo = geometry{frame: image.Pt(768, 576), scale: 1, canvas: image.Pt(768, 576)}
	box := func(x, y, w float32, score float32) Candidate {
		return Candidate{Box: Rect{x, y, x + w, y + w}, Score: score}
	}
	kept := func(c Candidate) bool { return len(frame.faces([]Candidate{c})) == 1 }
	// Nothing learnt: up to 192 px (576/3) on any score.
	if !kept(box(300, 100, 130, 0.3)) || kept(box(300, 100, 250, 0.3)) || !kept(box(300, 100, 250, 0.8)) {
		t.Error("before learning: want 130 px kept at 0.3, 250 px dropped at 0.3 and kept at 0.8")
	}
	// Sure faces of 14 px seen high in the frame: a weak 130 px box there
	// is scenery; a sure one is kept; a weak 30 px one is a face.
	for i := 0; i < 30; i++ {
		frame.faces([]Candidate{box(float32(20*i), 150, 14, 0.9)})
	}
	if kept(box(300, 100, 130, 0.4)) {
		t.Error("a weak 130 px box where faces are 14 px was kept")
	}
	if !kept(box(300, 100, 130, 0.8)) || !kept(box(300, 100, 30, 0.3)) {
		t.Error("a sure 130 px box or a weak 30 px one was dropped")
	}
	frame.o.MaxFace = 400 // set by the operator: no learning
	if !kept(box(300, 100, 130, 0.4)) {
		t.Error("with max_face 400 a 130 px box was dropped")
	}
}
