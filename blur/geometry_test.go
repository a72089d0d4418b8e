package blur

import (
	"image"
	"testing"
)

func TestNewTarget(t *testing.T) {
	frame := image.Pt(640, 480)
	for _, tc := range []struct {
		name    string
		face    image.Rectangle
		padding float64
		ok      bool
		want    target
	}{
		{"inside", image.Rect(100, 100, 140, 160), 0.25, true, target{
			faceW: 40, region: image.Rect(90, 85, 150, 175), ellipse: true,
			center2: image.Pt(60, 90), axes2: image.Pt(60, 90)}},
		{"fractional padding rounds outward", image.Rect(100, 100, 141, 161), 0.25, true, target{
			faceW: 41, region: image.Rect(89, 84, 152, 177), ellipse: true,
			center2: image.Pt(63, 93), axes2: image.Pt(63, 93)}},
		{"floor padding widens the ellipse to the face box corners", image.Rect(100, 100, 200, 200), 0.2, true, target{
			faceW: 100, region: image.Rect(80, 80, 220, 220), ellipse: true,
			center2: image.Pt(140, 140), axes2: image.Pt(144, 144)}},
		{"clipped keeps the ellipse of the whole padded box", image.Rect(-20, 100, 20, 140), 0.25, true, target{
			faceW: 40, region: image.Rect(0, 90, 30, 150), ellipse: true,
			center2: image.Pt(0, 60), axes2: image.Pt(60, 60)}},
		{"far larger than the frame is a box", image.Rect(-5000, -5000, 5000, 5000), 0.25, true, target{
			faceW: 10000, region: image.Rect(0, 0, 640, 480)}},
		{"swapped", image.Rectangle{Min: image.Pt(140, 160), Max: image.Pt(100, 100)}, 0.25, true, target{
			faceW: 40, region: image.Rect(90, 85, 150, 175), ellipse: true,
			center2: image.Pt(60, 90), axes2: image.Pt(60, 90)}},
		{"empty", image.Rect(10, 10, 10, 50), 0.25, false, target{}},
		{"outside", image.Rect(700, 10, 740, 50), 0.25, false, target{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := newTarget(tc.face, tc.padding, frame)
			if ok != tc.ok || got != tc.want {
				t.Errorf("newTarget(%v, %g) = %+v, %v; want %+v, %v", tc.face, tc.padding, got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, ok := newTarget(image.Rect(0, 0, 10, 10), 0.25, image.Point{}); ok {
		t.Error("newTarget accepted an empty frame")
	}
}
