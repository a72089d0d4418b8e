package synth

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"gocv.io/x/gocv"
)

// Walker is a person-shaped figure walking in a straight line at constant
// speed, for counting tests: its foot point (bottom-centre) moves from From
// at frame Start to To at frame End, and it is in the picture only then.
// Height is the figure's height in pixels; it is 0.4 as wide.
type Walker struct {
	From, To   image.Point
	Start, End int
	Height     int
	// Sway, if set, moves the foot point sideways by up to this many pixels
	// (a person shifting their weight while standing).
	Sway float64
	// TopDown draws the person as seen by an overhead camera: shoulders and
	// head around the point (then the centre, not the feet), Height across.
	TopDown bool
}

// Foot is the walker's foot point at frame i.
func (w Walker) Foot(i int) (float64, float64, bool) {
	if i < w.Start || i > w.End {
		return 0, 0, false
	}
	f := 0.0
	if w.End > w.Start {
		f = float64(i-w.Start) / float64(w.End-w.Start)
	}
	x := float64(w.From.X) + f*float64(w.To.X-w.From.X)
	y := float64(w.From.Y) + f*float64(w.To.Y-w.From.Y)
	if w.Sway > 0 {
		x += w.Sway * math.Sin(float64(i)*0.7)
		y += w.Sway * math.Cos(float64(i)*0.45)
	}
	return x, y, true
}

// Walkers renders frames of people-shaped figures over a fixed textured
// background.
type Walkers struct {
	size image.Point
	ws   []Walker
	bg   gocv.Mat
}

// NewWalkers prepares a scene of size with the given walkers; seed fixes the
// background texture. Close releases it.
func NewWalkers(size image.Point, ws []Walker, seed uint64) *Walkers {
	rng := rand.New(rand.NewPCG(seed, 7))
	small := gocv.NewMatWithSize(size.Y/8+1, size.X/8+1, gocv.MatTypeCV8UC3)
	for y := 0; y < small.Rows(); y++ {
		for x := 0; x < small.Cols(); x++ {
			g := 90 + rng.IntN(60)
			small.SetUCharAt(y, x*3, uint8(g-30))
			small.SetUCharAt(y, x*3+1, uint8(g))
			small.SetUCharAt(y, x*3+2, uint8(g-20))
		}
	}
	bg := gocv.NewMat()
	gocv.Resize(small, &bg, size, 0, 0, gocv.InterpolationCubic)
	small.Close()
	return &Walkers{size: size, ws: ws, bg: bg}
}

// Close releases the background.
func (s *Walkers) Close() error { return s.bg.Close() }

// Render draws frame i into dst.
func (s *Walkers) Render(i int, dst *gocv.Mat) {
	s.bg.CopyTo(dst)
	for k, w := range s.ws {
		x, y, ok := w.Foot(i)
		if !ok {
			continue
		}
		h := float64(w.Height)
		if w.TopDown {
			shade := uint8(30 + 40*(k%3))
			gocv.Ellipse(dst, image.Pt(int(x), int(y)), image.Pt(int(0.5*h), int(0.45*h)), 0, 0, 360, color.RGBA{shade, shade + 10, shade + 40, 0}, -1)
			// Clothes have texture: spots across the shoulders, so the
			// inside of a moving figure changes too, as with real people.
			step := max(3, int(0.12*h))
			for dy := -int(0.4 * h); dy <= int(0.4*h); dy += step {
				for dx := -int(0.45 * h); dx <= int(0.45*h); dx += step {
					if fx, fy := float64(dx)/(0.5*h), float64(dy)/(0.45*h); fx*fx+fy*fy > 0.8 {
						continue
					}
					c := uint8(110 + 60*((dx/step+dy/step)&1))
					gocv.Circle(dst, image.Pt(int(x)+dx, int(y)+dy), max(1, step/3), color.RGBA{c, c, c, 0}, -1)
				}
			}
			gocv.Circle(dst, image.Pt(int(x), int(y)), int(0.2*h), color.RGBA{40, 60, 90, 0}, -1)
			continue
		}
		bw := 0.4 * h
		body := image.Rect(int(x-bw/2), int(y-0.82*h), int(x+bw/2), int(y))
		shade := uint8(30 + 40*(k%3))
		gocv.Rectangle(dst, body, color.RGBA{shade, shade + 10, shade + 40, 0}, -1)
		legs := image.Rect(int(x-bw/2), int(y-0.4*h), int(x+bw/2), int(y))
		gocv.Rectangle(dst, legs, color.RGBA{70, 50, 40, 0}, -1)
		gocv.Circle(dst, image.Pt(int(x), int(y-0.9*h)), int(0.1*h)+1, color.RGBA{150, 170, 200, 0}, -1)
	}
}

// WriteWalkersAVI renders frames [0, n) of the scene into an MJPEG AVI.
func WriteWalkersAVI(path string, size image.Point, fps float64, n int, ws []Walker, seed uint64) error {
	a, err := newMJPEGAVI(path, size.X, size.Y, fps, 95)
	if err != nil {
		return err
	}
	s := NewWalkers(size, ws, seed)
	defer s.Close()
	m := gocv.NewMat()
	defer m.Close()
	for i := 0; i < n; i++ {
		s.Render(i, &m)
		if err := a.Write(m); err != nil {
			a.Close()
			return fmt.Errorf("walkers: frame %d: %w", i, err)
		}
	}
	return a.Close()
}
