package blur

import (
	"image"
	"testing"

	"gocv.io/x/gocv"
)

// BenchmarkRedact redacts a 768x576 frame with faces 24, 64 and 160 pixels
// wide, for each style and shape. Copying the input frame is not timed.
func BenchmarkRedact(b *testing.B) {
	src := loadImage(b, astronautPath)
	defer src.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	gocv.Resize(src, &frame, image.Pt(768, 576), 0, 0, gocv.InterpolationLinear)
	faces := []image.Rectangle{
		image.Rect(40, 40, 64, 71),     // 24 px
		image.Rect(300, 60, 364, 143),  // 64 px
		image.Rect(500, 200, 660, 408), // 160 px
	}
	plan := FacesPlan(faces)
	for _, style := range []Style{Gaussian, Mosaic, Fill} {
		for _, shape := range []Shape{Ellipse, Box} {
			b.Run(string(style)+"/"+string(shape), func(b *testing.B) {
				o := DefaultOptions
				o.Style, o.Shape = style, shape
				r, err := NewRedactor(o)
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					in := frame.Clone()
					b.StartTimer()
					out, err := r.Redact(in, plan)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					_ = out.Close()
					b.StartTimer()
				}
			})
		}
	}
	b.Run("whole", func(b *testing.B) {
		r, err := NewRedactor(DefaultOptions)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		b.ReportAllocs()
		for range b.N {
			b.StopTimer()
			in := frame.Clone()
			b.StartTimer()
			out, err := r.Redact(in, WholePlan("deadline missed"))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = out.Close()
			b.StartTimer()
		}
	})
}
