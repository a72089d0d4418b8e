package blur

import (
	"image"
	"math"
)

// target is one face box turned into the area to redact in one frame.
type target struct {
	// faceW is the raw face width in pixels; it sets the strength (Gaussian
	// sigma, mosaic block size).
	faceW float64
	// region is the padded face box clipped to the frame; never empty.
	region image.Rectangle
	// ellipse says whether center2 and axes2 describe the redaction ellipse.
	// It is false when the padded box reaches so far outside the frame that
	// the ellipse is not drawn; the whole region is then redacted.
	ellipse bool
	// center2 and axes2 are the ellipse centre, relative to region.Min, and
	// its semi-axes, all in half pixels (drawn with shift 1).
	center2, axes2 image.Point
}

// ellipseReach is how far, in frame sizes, a padded box may reach outside the
// frame and still be drawn as an ellipse; beyond it the region is redacted
// whole, which keeps every coordinate small.
const ellipseReach = 4

// newTarget pads face by padding of its width and height on each side, rounds
// outward and clips to a frame of the given size. A box with Min and Max
// swapped is taken as its canonical form. ok is false when the box has no area
// or its padded box misses the frame.
//
// The ellipse is the one inscribed in the padded box, widened where needed so
// that it always contains the raw face box: for padding below 1/√2-1/2
// (≈0.207) the inscribed ellipse would cut the face box's corners.
func newTarget(face image.Rectangle, padding float64, frame image.Point) (t target, ok bool) {
	face = face.Canon()
	if face.Min.X == face.Max.X || face.Min.Y == face.Max.Y || frame.X <= 0 || frame.Y <= 0 {
		return target{}, false
	}
	// Floats, so that no subtraction of huge coordinates can overflow.
	x0, y0 := float64(face.Min.X), float64(face.Min.Y)
	x1, y1 := float64(face.Max.X), float64(face.Max.Y)
	w, h := x1-x0, y1-y0
	px, py := padding*w, padding*h
	p0x, p0y := math.Floor(x0-px), math.Floor(y0-py)
	p1x, p1y := math.Ceil(x1+px), math.Ceil(y1+py)

	fw, fh := float64(frame.X), float64(frame.Y)
	r0x, r0y := math.Max(p0x, 0), math.Max(p0y, 0)
	r1x, r1y := math.Min(p1x, fw), math.Min(p1y, fh)
	if r0x >= r1x || r0y >= r1y {
		return target{}, false
	}
	t = target{
		faceW:  w,
		region: image.Rect(int(r0x), int(r0y), int(r1x), int(r1y)),
	}

	reach := ellipseReach * math.Max(fw, fh)
	if p0x < -reach || p0y < -reach || p1x > fw+reach || p1y > fh+reach {
		return t, true
	}
	// Doubled centre and axes: exact for odd sizes.
	t.ellipse = true
	t.center2 = image.Pt(int(p0x+p1x-2*r0x), int(p0y+p1y-2*r0y))
	t.axes2 = image.Pt(
		int(math.Max(p1x-p0x, math.Ceil(w*math.Sqrt2)+2)),
		int(math.Max(p1y-p0y, math.Ceil(h*math.Sqrt2)+2)),
	)
	return t, true
}
