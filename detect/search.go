package detect

import (
	"errors"
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// Window is a face detector for square windows of one fixed input size, such
// as BlazeFace. DetectWindow must not retain win.
type Window interface {
	InputSize() int
	DetectWindow(win gocv.Mat) ([]Candidate, error)
	Close() error
}

// SearchOptions tunes how a Search covers a frame.
type SearchOptions struct {
	// MinFace is the smallest face width, in frame pixels, the search must find.
	MinFace int
	// MinRel is the smallest face the window model finds reliably, as a
	// fraction of its window side. It sets how finely the frame is tiled.
	MinRel float64
	// NMSIoU merges candidates overlapping more than this.
	NMSIoU float32
	// MaxAspect rejects boxes whose width/height ratio is outside
	// [1/MaxAspect, MaxAspect]; 0 disables the check.
	MaxAspect float32
}

// DefaultSearchOptions suit BlazeFace back-256 on CCTV-like frames.
var DefaultSearchOptions = SearchOptions{MinFace: 16, MinRel: 0.08, NMSIoU: 0.3, MaxAspect: 2.5}

// Search detects faces in whole frames by running a Window over a pyramid of
// square tiles: one window covering the whole frame, then finer levels whose
// tiles overlap by more than the largest face each level is responsible for,
// down to the tile size at which MinFace is still found. It implements
// Detector. A Search owns its Window and is not safe for concurrent use.
type Search struct {
	win    Window
	opts   SearchOptions
	canvas gocv.Mat
	plan   plan
}

type plan struct {
	size    image.Point
	windows []image.Rectangle
}

var _ Detector = (*Search)(nil)

// NewSearch wraps w; the Search takes ownership of w.
func NewSearch(w Window, o SearchOptions) (*Search, error) {
	if o.MinFace < 4 {
		return nil, fmt.Errorf("search: min face %d px too small; allowed >= 4", o.MinFace)
	}
	if o.MinRel <= 0 || o.MinRel >= 1 {
		return nil, fmt.Errorf("search: min relative face %.3f out of range (0, 1)", o.MinRel)
	}
	s := w.InputSize()
	return &Search{win: w, opts: o, canvas: gocv.NewMatWithSize(s, s, gocv.MatTypeCV8UC3)}, nil
}

// Close releases the window detector and scratch memory.
func (s *Search) Close() error {
	s.canvas.Close()
	return s.win.Close()
}

// Windows returns the square windows (in frame pixels, possibly reaching
// past the frame's edges) that one full search of a frame of this size runs.
func (s *Search) Windows(size image.Point) []image.Rectangle {
	if s.plan.size != size {
		s.plan = plan{size: size, windows: planWindows(size, s.opts)}
	}
	return s.plan.windows
}

// planWindows lays out the tile pyramid for a frame size.
func planWindows(size image.Point, o SearchOptions) []image.Rectangle {
	side := float64(max(size.X, size.Y))
	smallest := float64(o.MinFace) / o.MinRel // finest tile side that still finds MinFace
	var out []image.Rectangle
	for t := side; ; t /= 2 {
		if t < smallest*1.05 {
			t = smallest
		}
		// Faces bigger than twice this level's minimum are found one level up,
		// so tiles overlap by the largest face this level handles, plus margin.
		overlap := 2.5 * o.MinRel * t
		out = append(out, tile(size, int(math.Round(t)), int(math.Ceil(overlap)))...)
		if t <= smallest {
			break
		}
	}
	return out
}

// tile covers a frame with square tiles of side t overlapping by at least ov.
func tile(size image.Point, t, ov int) []image.Rectangle {
	xs := positions(size.X, t, ov)
	ys := positions(size.Y, t, ov)
	out := make([]image.Rectangle, 0, len(xs)*len(ys))
	for _, y := range ys {
		for _, x := range xs {
			out = append(out, image.Rect(x, y, x+t, y+t))
		}
	}
	return out
}

// positions spreads tiles of side t evenly over [0, n) so that neighbours
// overlap by at least ov; a tile wider than n is centred on it.
func positions(n, t, ov int) []int {
	if t >= n {
		return []int{(n - t) / 2}
	}
	k := int(math.Ceil(float64(n-ov) / float64(t-ov))) // number of tiles
	if k < 2 {
		k = 2
	}
	out := make([]int, k)
	for i := range out {
		out[i] = int(math.Round(float64(i) * float64(n-t) / float64(k-1)))
	}
	return out
}

// Detect runs every planned window over frame and merges the results.
func (s *Search) Detect(frame gocv.Mat) ([]Face, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	return s.DetectWindows(frame, s.Windows(image.Pt(frame.Cols(), frame.Rows())))
}

// DetectWindows runs the window model on the given square windows of frame
// (e.g. around known tracks) and merges the results into faces.
func (s *Search) DetectWindows(frame gocv.Mat, windows []image.Rectangle) ([]Face, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	bounds := image.Rect(0, 0, frame.Cols(), frame.Rows())
	var all []Candidate
	for _, w := range windows {
		c, err := s.runWindow(frame, bounds, w)
		if err != nil {
			return nil, fmt.Errorf("window %v: %w", w, err)
		}
		all = append(all, c...)
	}
	merged := WeightedNMS(all, s.opts.NMSIoU)
	faces := make([]Face, 0, len(merged))
	for _, c := range merged {
		if s.opts.MaxAspect > 0 {
			ar := c.Box.W() / c.Box.H()
			if ar > s.opts.MaxAspect || ar < 1/s.opts.MaxAspect {
				continue
			}
		}
		b := c.Box.Int().Intersect(bounds)
		if b.Empty() {
			continue
		}
		faces = append(faces, Face{Box: b, Score: c.Score})
	}
	return faces, nil
}

var errWindow = errors.New("window outside frame")

// runWindow resamples window w of frame into the model's input and maps the
// candidates back to frame pixels. Parts of w outside the frame are black.
func (s *Search) runWindow(frame gocv.Mat, bounds, w image.Rectangle) ([]Candidate, error) {
	in := w.Intersect(bounds)
	if in.Empty() || w.Dx() <= 0 {
		return nil, errWindow
	}
	size := s.win.InputSize()
	scale := float64(size) / float64(w.Dx())
	dst := image.Rect(
		int(math.Round(float64(in.Min.X-w.Min.X)*scale)), int(math.Round(float64(in.Min.Y-w.Min.Y)*scale)),
		int(math.Round(float64(in.Max.X-w.Min.X)*scale)), int(math.Round(float64(in.Max.Y-w.Min.Y)*scale)),
	).Intersect(image.Rect(0, 0, size, size))
	if dst.Empty() {
		return nil, errWindow
	}
	if dst != image.Rect(0, 0, size, size) {
		s.canvas.SetTo(gocv.NewScalar(0, 0, 0, 0))
	}
	src := frame.Region(in)
	part := s.canvas.Region(dst)
	interp := gocv.InterpolationArea
	if scale > 1 {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(src, &part, dst.Size(), 0, 0, interp)
	part.Close()
	src.Close()
	cands, err := s.win.DetectWindow(s.canvas)
	if err != nil {
		return nil, err
	}
	inv := float32(1 / scale)
	for i := range cands {
		b := &cands[i].Box
		b.X0 = float32(w.Min.X) + b.X0*inv
		b.Y0 = float32(w.Min.Y) + b.Y0*inv
		b.X1 = float32(w.Min.X) + b.X1*inv
		b.Y1 = float32(w.Min.Y) + b.Y1*inv
	}
	return cands, nil
}
