package blur

import (
	"fmt"
	"image"
	"image/color"
	"math/rand"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// TestRedactRejectsBadFrames: frames Redact cannot handle are refused and
// closed, and nothing leaks.
func TestRedactRejectsBadFrames(t *testing.T) {
	checkNoMatLeak(t)
	r := mustRedactor(t, DefaultOptions)
	for _, tc := range []struct {
		name  string
		frame func() gocv.Mat
		want  string
	}{
		{"zero Mat", func() gocv.Mat { return gocv.Mat{} }, "zero Mat"},
		{"empty Mat", gocv.NewMat, "empty frame"},
		{"grey", func() gocv.Mat { return gocv.NewMatWithSize(8, 8, gocv.MatTypeCV8UC1) }, "want CV8UC3"},
		{"BGRA", func() gocv.Mat { return gocv.NewMatWithSize(8, 8, gocv.MatTypeCV8UC4) }, "want CV8UC3"},
		{"float", func() gocv.Mat { return gocv.NewMatWithSize(8, 8, gocv.MatTypeCV32FC3) }, "want CV8UC3"},
		{"3-D", func() gocv.Mat { return gocv.NewMatWithSizes([]int{4, 4, 4}, gocv.MatTypeCV8UC3) }, "dimensions"},
	} {
		for _, plan := range []Plan{{}, FacesPlan([]image.Rectangle{image.Rect(0, 0, 4, 4)})} {
			t.Run(tc.name, func(t *testing.T) {
				checkNoMatLeak(t)
				out, err := r.Redact(tc.frame(), plan)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Redact error = %v, want one containing %q", err, tc.want)
				}
				if !out.Empty() {
					t.Error("Redact returned a frame with its error")
					_ = out.Close()
				}
			})
		}
	}
}

// TestRedactorUnusable: a closed, zero or nil Redactor refuses frames and
// still closes them.
func TestRedactorUnusable(t *testing.T) {
	checkNoMatLeak(t)
	closed, err := NewRedactor(DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, tc := range []struct {
		name string
		r    *Redactor
	}{{"closed", closed}, {"zero", &Redactor{}}, {"nil", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoMatLeak(t)
			out, err := tc.r.Redact(newFrame(image.Pt(16, 16), color.RGBA{}), Plan{})
			if err == nil {
				t.Error("Redact succeeded")
			}
			if !out.Empty() {
				t.Error("Redact returned a frame with its error")
				_ = out.Close()
			}
		})
	}
}

// TestRedactClipping: boxes partly or wholly outside the frame, without area
// or with Min and Max swapped are clipped or skipped, and nothing outside
// the reported regions changes.
func TestRedactClipping(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, messiPath)
	defer in.Close()
	size := image.Pt(in.Cols(), in.Rows())
	bounds := image.Rectangle{Max: size}
	for _, tc := range []struct {
		name string
		box  image.Rectangle
		want []image.Rectangle
	}{
		{"inside", image.Rect(100, 100, 140, 160), []image.Rectangle{image.Rect(90, 85, 150, 175)}},
		{"over the left edge", image.Rect(-20, 50, 20, 90), []image.Rectangle{image.Rect(0, 40, 30, 100)}},
		{"over the top left corner", image.Rect(-10, -10, 30, 30), []image.Rectangle{image.Rect(0, 0, 40, 40)}},
		{"over the bottom right corner", image.Rect(size.X-20, size.Y-20, size.X+20, size.Y+20),
			[]image.Rectangle{image.Rect(size.X-30, size.Y-30, size.X, size.Y)}},
		{"bigger than the frame", image.Rect(-100, -100, size.X+100, size.Y+100), []image.Rectangle{bounds}},
		{"outside, padding reaches in", image.Rect(-40, 10, -2, 50), []image.Rectangle{image.Rect(0, 0, 8, 60)}},
		{"outside", image.Rect(-100, 10, -60, 50), nil},
		{"far outside", image.Rect(1<<40, 1<<40, 1<<41, 1<<41), nil},
		{"just outside, padding reaches in", image.Rect(size.X, 0, size.X+40, 40), []image.Rectangle{image.Rect(size.X-10, 0, size.X, 50)}},
		{"outside by the padding", image.Rect(size.X+10, 0, size.X+50, 40), nil},
		{"zero width", image.Rect(100, 100, 100, 140), nil},
		{"zero height", image.Rect(100, 100, 140, 100), nil},
		{"zero", image.Rectangle{}, nil},
		{"one pixel", image.Rect(50, 50, 51, 51), []image.Rectangle{image.Rect(49, 49, 52, 52)}},
		{"swapped corners", image.Rectangle{Min: image.Pt(140, 160), Max: image.Pt(100, 100)}, []image.Rectangle{image.Rect(90, 85, 150, 175)}},
		{"huge", image.Rect(-1<<62, -1<<62, 1<<62, 1<<62), []image.Rectangle{bounds}},
	} {
		for _, style := range []Style{Gaussian, Mosaic, Fill} {
			for _, shape := range []Shape{Box, Ellipse} {
				t.Run(tc.name+"/"+string(style)+"/"+string(shape), func(t *testing.T) {
					o := DefaultOptions
					o.Style, o.Shape = style, shape
					r := mustRedactor(t, o)
					out := mustRedact(t, r, in, FacesPlan([]image.Rectangle{tc.box}))
					got := out.Regions()
					if !equalRects(got, tc.want) {
						t.Fatalf("Regions() = %v, want %v", got, tc.want)
					}
					assertUnchangedOutside(t, pixelsOf(t, in), redactedPixels(t, out), got)
				})
			}
		}
	}
}

// TestRedactManyBoxes redacts 100 random, overlapping, partly outside and
// degenerate boxes in one frame.
func TestRedactManyBoxes(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, messiPath)
	defer in.Close()
	size := image.Pt(in.Cols(), in.Rows())
	rng := rand.New(rand.NewSource(7))
	boxes := make([]image.Rectangle, 100)
	for i := range boxes {
		x, y := rng.Intn(size.X+100)-50, rng.Intn(size.Y+100)-50
		boxes[i] = image.Rect(x, y, x+rng.Intn(120)-10, y+rng.Intn(150)-10) // some empty, some swapped
	}
	want := 0
	for _, b := range boxes {
		if _, ok := newTarget(b, DefaultOptions.Padding, size); ok {
			want++
		}
	}
	for _, style := range []Style{Gaussian, Mosaic, Fill} {
		for _, shape := range []Shape{Box, Ellipse} {
			t.Run(string(style)+"/"+string(shape), func(t *testing.T) {
				o := DefaultOptions
				o.Style, o.Shape = style, shape
				r := mustRedactor(t, o)
				out := mustRedact(t, r, in, FacesPlan(boxes))
				got := out.Regions()
				if len(got) != want {
					t.Errorf("%d regions, want %d", len(got), want)
				}
				for _, g := range got {
					if g.Empty() || !g.In(image.Rectangle{Max: size}) {
						t.Errorf("region %v is empty or leaves the frame", g)
					}
				}
				assertUnchangedOutside(t, pixelsOf(t, in), redactedPixels(t, out), got)
			})
		}
	}
}

// TestEllipseCoversFaceBox: at every padding, the ellipse covers the whole
// raw face box, corners included; the inscribed ellipse alone would not for
// padding below about 0.207.
func TestEllipseCoversFaceBox(t *testing.T) {
	checkNoMatLeak(t)
	size := image.Pt(640, 480)
	ink := color.RGBA{R: 255, G: 0, B: 255, A: 255}
	for _, padding := range []float64{0.2, 0.205, 0.21, 0.25, 0.5, 1} {
		for _, box := range []image.Rectangle{
			image.Rect(100, 100, 101, 101), image.Rect(100, 100, 105, 108), image.Rect(100, 100, 124, 131),
			image.Rect(200, 150, 285, 270), image.Rect(150, 100, 311, 324), image.Rect(-30, -40, 90, 120),
		} {
			o := DefaultOptions
			o.Style, o.Shape, o.Padding, o.FillColor = Fill, Ellipse, padding, ink
			r := mustRedactor(t, o)
			frame := newFrame(size, color.RGBA{A: 255})
			out, err := r.Redact(frame, FacesPlan([]image.Rectangle{box}))
			if err != nil {
				t.Fatal(err)
			}
			got := redactedPixels(t, &out)
			_ = out.Close()
			missed := 0
			for _, p := range []image.Point{box.Min, {box.Max.X - 1, box.Min.Y}, {box.Min.X, box.Max.Y - 1}, box.Max.Sub(image.Pt(1, 1))} {
				if p.In(image.Rectangle{Max: size}) && got.at(p.X, p.Y) != bgrOf(ink) {
					missed++
				}
			}
			if missed != 0 {
				t.Errorf("padding %g, box %v: %d face box corners not redacted", padding, box, missed)
			}
		}
	}
}

// TestMosaicBlocks: the mosaic is a grid of square blocks of ceil(face
// width / MosaicBlocks) pixels (the last row and column wider), each the mean
// colour of its block of the input.
func TestMosaicBlocks(t *testing.T) {
	checkNoMatLeak(t)
	in := loadImage(t, astronautPath)
	defer in.Close()
	orig := pixelsOf(t, in)
	for _, blocks := range []int{2, 5, 6} {
		o := DefaultOptions
		o.Style, o.Shape, o.MosaicBlocks = Mosaic, Box, blocks
		r := mustRedactor(t, o)
		out := mustRedact(t, r, in, FacesPlan([]image.Rectangle{astronautFace}))
		got := redactedPixels(t, out)
		region := out.Regions()[0]
		side := (astronautFace.Dx() + blocks - 1) / blocks
		xs, ys := blockEdges(region.Dx(), side), blockEdges(region.Dy(), side)
		if len(xs)-1 < (region.Dx()/side) || xs[1]-xs[0] != side {
			t.Fatalf("blocks %d: grid %v does not use side %d", blocks, xs, side)
		}
		for j := 1; j < len(ys); j++ {
			for i := 1; i < len(xs); i++ {
				cell := image.Rect(xs[i-1], ys[j-1], xs[i], ys[j]).Add(region.Min)
				var sum [3]float64
				for y := cell.Min.Y; y < cell.Max.Y; y++ {
					for x := cell.Min.X; x < cell.Max.X; x++ {
						p := orig.at(x, y)
						for c := range sum {
							sum[c] += float64(p[c])
						}
						if got.at(x, y) != got.at(cell.Min.X, cell.Min.Y) {
							t.Fatalf("blocks %d: cell %v is not one colour", blocks, cell)
						}
					}
				}
				n := float64(cell.Dx() * cell.Dy())
				for c, v := range got.at(cell.Min.X, cell.Min.Y) {
					if d := float64(v) - sum[c]/n; d > 0.5 || d < -0.5 {
						t.Fatalf("blocks %d: cell %v channel %d = %d, mean %.2f", blocks, cell, c, v, sum[c]/n)
					}
				}
			}
		}
	}
}

func TestBlockEdges(t *testing.T) {
	for _, tc := range []struct {
		n, block int
		want     []int
	}{
		{10, 5, []int{0, 5, 10}},
		{14, 5, []int{0, 5, 14}},
		{4, 5, []int{0, 4}},
		{1, 1, []int{0, 1}},
		{128, 17, []int{0, 17, 34, 51, 68, 85, 102, 128}},
	} {
		got := blockEdges(tc.n, tc.block)
		if len(got) != len(tc.want) {
			t.Errorf("blockEdges(%d, %d) = %v, want %v", tc.n, tc.block, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("blockEdges(%d, %d) = %v, want %v", tc.n, tc.block, got, tc.want)
				break
			}
		}
	}
}

// TestRedactorReuse: one Redactor handles frames of changing sizes.
func TestRedactorReuse(t *testing.T) {
	checkNoMatLeak(t)
	r := mustRedactor(t, DefaultOptions)
	for _, size := range []image.Point{{640, 480}, {320, 240}, {640, 480}, {1280, 720}} {
		face := image.Rect(size.X/3, size.Y/4, size.X/3+size.X/5, size.Y/4+size.Y/3)
		frame := newFrame(size, color.RGBA{R: 10, G: 200, B: 30, A: 255})
		out, err := r.Redact(frame, FacesPlan([]image.Rectangle{face}))
		if err != nil {
			t.Fatal(err)
		}
		if out.Size() != size || len(out.Regions()) != 1 {
			t.Errorf("size %v: Size() %v, Regions() %v", size, out.Size(), out.Regions())
		}
		_ = out.Close()
	}
}

// assertUnchangedOutside fails t if a pixel outside every region differs.
func assertUnchangedOutside(t *testing.T, before, after pixels, regions []image.Rectangle) {
	t.Helper()
	changed := 0
	for y := 0; y < before.h; y++ {
	pixel:
		for x := 0; x < before.w; x++ {
			for _, r := range regions {
				if image.Pt(x, y).In(r) {
					continue pixel
				}
			}
			if before.at(x, y) != after.at(x, y) {
				changed++
			}
		}
	}
	if changed != 0 {
		t.Errorf("%d pixels outside the regions %v changed", changed, regions)
	}
}

// equalRects reports whether a and b hold the same rectangles in order.
func equalRects(a, b []image.Rectangle) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRedactorConcurrentUse: calls from several goroutines are serialized
// (run with -race to check the Go side).
func TestRedactorConcurrentUse(t *testing.T) {
	checkNoMatLeak(t)
	r := mustRedactor(t, DefaultOptions)
	face := []image.Rectangle{image.Rect(100, 80, 180, 190)}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 10 {
				size := image.Pt(320+32*g, 240+8*i)
				out, err := r.Redact(newFrame(size, color.RGBA{R: 90, A: 255}), FacesPlan(face))
				if err == nil && out.Size() != size {
					err = fmt.Errorf("size %v, want %v", out.Size(), size)
				}
				_ = out.Close()
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
