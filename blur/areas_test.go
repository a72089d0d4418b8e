package blur

import (
	"image"
	"image/color"
	"testing"
)

func TestPlanWithAreas(t *testing.T) {
	face := []image.Rectangle{image.Rect(1, 2, 3, 4)}
	areas := []image.Rectangle{image.Rect(10, 10, 20, 40), image.Rect(30, 10, 40, 40)}
	for _, tc := range []struct {
		name         string
		plan         Plan
		whole        bool
		boxes, areas int
	}{
		{"faces plan with areas", FacesPlan(face).WithAreas(areas), false, 1, 2},
		{"areas added twice", FacesPlan(nil).WithAreas(areas[:1]).WithAreas(areas[1:]), false, 0, 2},
		{"no areas", FacesPlan(face).WithAreas(nil), false, 1, 0},
		{"whole plan ignores areas", WholePlan("people not known").WithAreas(areas), true, 0, 0},
		{"zero plan stays whole", Plan{}.WithAreas(areas), true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.plan.Whole(); got != tc.whole {
				t.Errorf("Whole() = %v, want %v", got, tc.whole)
			}
			if got := len(tc.plan.Boxes()); got != tc.boxes {
				t.Errorf("len(Boxes()) = %d, want %d", got, tc.boxes)
			}
			if got := len(tc.plan.Areas()); got != tc.areas {
				t.Errorf("len(Areas()) = %d, want %d", got, tc.areas)
			}
		})
	}
	// WithAreas copies: neither the caller's slice nor an earlier plan
	// changes the plan.
	in := []image.Rectangle{image.Rect(10, 10, 20, 40)}
	base := FacesPlan(nil).WithAreas(in)
	p := base.WithAreas([]image.Rectangle{image.Rect(50, 50, 60, 60)})
	in[0] = image.Rectangle{}
	if got := base.Areas(); len(got) != 1 || got[0] != image.Rect(10, 10, 20, 40) {
		t.Errorf("base plan's areas = %v, want [(10,10)-(20,40)]", got)
	}
	if got := p.Areas(); len(got) != 2 {
		t.Errorf("extended plan's areas = %v, want two", got)
	}
}

// TestRedactAreas: areas are redacted as whole rectangles (corners too, even
// with the Ellipse shape), clipped, unpadded, reported after the face
// regions, and nothing outside the reported regions changes.
func TestRedactAreas(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, messiPath)
	defer in.Close()
	size := image.Pt(in.Cols(), in.Rows())
	face := image.Rect(100, 100, 140, 160)
	facePadded := image.Rect(90, 85, 150, 175)
	for _, tc := range []struct {
		name  string
		faces []image.Rectangle
		areas []image.Rectangle
		want  []image.Rectangle
	}{
		{"one area", nil, []image.Rectangle{image.Rect(200, 50, 260, 210)}, []image.Rectangle{image.Rect(200, 50, 260, 210)}},
		{"face then area", []image.Rectangle{face}, []image.Rectangle{image.Rect(300, 40, 330, 200)},
			[]image.Rectangle{facePadded, image.Rect(300, 40, 330, 200)}},
		{"area over the face", []image.Rectangle{face}, []image.Rectangle{image.Rect(95, 90, 145, 300)},
			[]image.Rectangle{facePadded, image.Rect(95, 90, 145, 300)}},
		{"clipped at the bottom right", nil, []image.Rectangle{image.Rect(size.X-20, size.Y-30, size.X+20, size.Y+30)},
			[]image.Rectangle{image.Rect(size.X-20, size.Y-30, size.X, size.Y)}},
		{"swapped corners", nil, []image.Rectangle{{Min: image.Pt(60, 80), Max: image.Pt(20, 10)}}, []image.Rectangle{image.Rect(20, 10, 60, 80)}},
		{"outside, empty and huge", nil, []image.Rectangle{image.Rect(-50, 10, -1, 40), image.Rect(5, 5, 5, 50), image.Rect(-1<<62, -1<<62, 1<<62, 1<<62)},
			[]image.Rectangle{{Max: size}}},
	} {
		for _, style := range []Style{Gaussian, Mosaic, Fill} {
			for _, shape := range []Shape{Box, Ellipse} {
				t.Run(tc.name+"/"+string(style)+"/"+string(shape), func(t *testing.T) {
					o := DefaultOptions
					o.Style, o.Shape = style, shape
					o.FillColor = color.RGBA{R: 255, B: 255, A: 255}
					r := mustRedactor(t, o)
					out := mustRedact(t, r, in, FacesPlan(tc.faces).WithAreas(tc.areas))
					got := out.Regions()
					if out.Whole() || !equalRects(got, tc.want) {
						t.Fatalf("Whole() %v, Regions() = %v; want false, %v", out.Whole(), got, tc.want)
					}
					before, after := pixelsOf(t, in), redactedPixels(t, out)
					assertUnchangedOutside(t, before, after, got)
					// The area's corner pixels are redacted: with Fill they
					// are the fill colour; otherwise the area changed.
					for _, a := range got[len(tc.faces):] {
						corners := []image.Point{a.Min, {a.Max.X - 1, a.Min.Y}, {a.Min.X, a.Max.Y - 1}, a.Max.Sub(image.Pt(1, 1))}
						for _, c := range corners {
							if style == Fill && after.at(c.X, c.Y) != bgrOf(o.FillColor) {
								t.Errorf("area %v: corner %v not filled", a, c)
							}
						}
						if d := meanAbsDiff(before, after, a); d < 5 {
							t.Errorf("area %v barely changed (mean diff %.1f)", a, d)
						}
					}
				})
			}
		}
	}
}

// meanAbsDiff is the mean absolute difference of a and b over r, per channel.
func meanAbsDiff(a, b pixels, r image.Rectangle) float64 {
	var s, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			p, q := a.at(x, y), b.at(x, y)
			for c := range 3 {
				s += max(float64(p[c])-float64(q[c]), float64(q[c])-float64(p[c]))
			}
			n += 3
		}
	}
	return s / n
}
