package detect

import (
	"image"
	"testing"
)

func TestDecodePeople(t *testing.T) {
	const W, H = 4, 3
	heat := []float32{
		0.1, 0.9, 0.9, 0.1, // a plateau: counted once, at its first cell
		0.1, 0.2, 0.1, 0.1,
		0.1, 0.1, 0.1, 0.35, // a weak peak at a corner
	}
	wh := make([]float32, 4*W*H)
	for i := 0; i < W*H; i++ {
		wh[i], wh[W*H+i], wh[2*W*H+i], wh[3*W*H+i] = 2, 4, 2, 4 // l, t, r, b in input pixels
	}
	got := decodePeople(heat, wh, W, H, 0.3, 2, 1, image.Pt(32, 12))
	want := []Person{
		{Box: image.Rect(4, 0, 12, 4), Score: 0.9},    // x=1,y=0: centre (4,0)*(2,1); top clipped
		{Box: image.Rect(20, 4, 28, 12), Score: 0.35}, // x=3,y=2: centre (12,8)*(2,1) = (24,8)
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("person %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if got := decodePeople(heat, wh, W, H, 0.95, 1, 1, image.Pt(16, 12)); len(got) != 0 {
		t.Errorf("threshold 0.95: %v", got)
	}
}
