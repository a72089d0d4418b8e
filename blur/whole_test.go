package blur

import (
	"fmt"
	"image"
	"image/color"
	"testing"
)

// TestRedactWhole: a plan without known faces fills the whole frame and
// labels it with the reason.
func TestRedactWhole(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, astronautPath)
	defer in.Close()
	bounds := image.Rect(0, 0, in.Cols(), in.Rows())
	light := color.RGBA{R: 230, G: 230, B: 200, A: 255}
	for _, tc := range []struct {
		name   string
		plan   Plan
		fill   color.RGBA
		reason string
	}{
		{"zero plan", Plan{}, DefaultOptions.FillColor, "faces unknown"},
		{"deadline missed", WholePlan("deadline missed"), DefaultOptions.FillColor, "deadline missed"},
		{"detector error on light fill", WholePlan("detector error"), light, "detector error"},
		{"black fill", WholePlan("warming up"), color.RGBA{A: 255}, "warming up"},
		{"non-ASCII reason", WholePlan("détecteur\nen panne"), DefaultOptions.FillColor, "détecteur\nen panne"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions
			o.FillColor = tc.fill
			r := mustRedactor(t, o)
			out := mustRedact(t, r, in, tc.plan)
			if !out.Whole() || out.Reason() != tc.reason {
				t.Errorf("Whole() = %v, Reason() = %q; want true, %q", out.Whole(), out.Reason(), tc.reason)
			}
			if got := out.Regions(); len(got) != 1 || got[0] != bounds {
				t.Errorf("Regions() = %v, want [%v]", got, bounds)
			}
			if got := out.Size(); got != bounds.Max {
				t.Errorf("Size() = %v, want %v", got, bounds.Max)
			}

			l := layoutLabel(bounds.Max, tc.reason)
			if !l.bounds.In(bounds) {
				t.Errorf("label bounds %v leave the frame %v", l.bounds, bounds)
			}
			fill, ink := bgrOf(tc.fill), bgrOf(contrast(tc.fill))
			got := redactedPixels(t, out)
			notFill, inked := 0, 0
			for y := 0; y < got.h; y++ {
				for x := 0; x < got.w; x++ {
					p := got.at(x, y)
					switch {
					case !image.Pt(x, y).In(l.bounds) && p != fill:
						notFill++
					case dist(p, ink) < dist(p, fill):
						inked++
					}
				}
			}
			if notFill != 0 {
				t.Errorf("%d pixels outside the label are not the fill colour", notFill)
			}
			if inked < 200 {
				t.Errorf("only %d pixels of the label %q are drawn in %v", inked, l.text, ink)
			}
		})
	}
}

func TestLabelText(t *testing.T) {
	long := ""
	for range 60 {
		long += "x"
	}
	for _, tc := range []struct{ reason, want string }{
		{"deadline missed", "REDACTED: deadline missed"},
		{"  warming up\n", "REDACTED: warming up"},
		{"caméra\tbusy", "REDACTED: cam?ra?busy"},
		{long, "REDACTED: " + long[:labelMaxReason] + "..."},
	} {
		if got := labelText(tc.reason); got != tc.want {
			t.Errorf("labelText(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
}

// TestRedactWholeSizes: the label fits frames from tiny to large and never
// panics.
func TestRedactWholeSizes(t *testing.T) {
	checkNoMatLeak(t)
	r := mustRedactor(t, DefaultOptions)
	for _, size := range []image.Point{{1, 1}, {3, 200}, {200, 3}, {64, 48}, {320, 240}, {768, 576}, {1920, 1080}} {
		t.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(t *testing.T) {
			frame := newFrame(size, color.RGBA{R: 200, A: 255})
			out, err := r.Redact(frame, WholePlan("deadline missed"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			got := redactedPixels(t, &out)
			fill := bgrOf(DefaultOptions.FillColor)
			l := layoutLabel(size, "deadline missed")
			for y := 0; y < got.h; y++ {
				for x := 0; x < got.w; x++ {
					if !image.Pt(x, y).In(l.bounds) && got.at(x, y) != fill {
						t.Fatalf("pixel (%d,%d) = %v outside the label, want fill %v", x, y, got.at(x, y), fill)
					}
				}
			}
			if size.X >= 320 && !l.bounds.In(image.Rectangle{Max: size}) {
				t.Errorf("label bounds %v leave the frame", l.bounds)
			}
		})
	}
}

// dist is the L1 distance of two BGR pixels.
func dist(a, b [3]byte) int {
	d := 0
	for i := range a {
		d += max(int(a[i])-int(b[i]), int(b[i])-int(a[i]))
	}
	return d
}
