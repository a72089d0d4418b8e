package detect

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"

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
	// MaxRel is the largest face the model finds reliably, as a fraction of
	// its window side. It sets how far apart pyramid levels may be.
	MaxRel float64
	// NMSIoU merges candidates overlapping more than this.
	NMSIoU float32
	// MaxAspect rejects boxes whose width/height ratio is outside
	// [1/MaxAspect, MaxAspect]; 0 disables the check.
	MaxAspect float32
	// Gate skips windows whose pixels did not change; zero disables it.
	Gate GateOptions
	// EdgePad mirrors this fraction of the frame's shorter side past each
	// edge before searching, so a face cut by the frame edge is seen with
	// its mirror image as a whole face. 0 disables it.
	EdgePad float64
}

// DefaultSearchOptions suit BlazeFace back-256 on CCTV-like frames.
var DefaultSearchOptions = SearchOptions{MinFace: 16, MinRel: 0.0625, MaxRel: 0.3, NMSIoU: 0.3, MaxAspect: 2.5, Gate: DefaultGateOptions}

// Search detects faces in whole frames by running Window models over a
// pyramid of square tiles: one window covering the whole frame, then finer
// levels whose tiles overlap by more than the largest face each level is
// responsible for, down to the tile size at which MinFace is still found.
//
// Windows of one frame run in parallel, one goroutine per Window model given
// to NewSearch. With a change gate (SearchOptions.Gate), a window whose pixels
// have not changed since it was last scanned reuses that scan's faces: a face
// cannot appear in pixels that did not change. Every window is rescanned at
// least every Gate.MaxAge calls.
//
// Search implements Detector. It owns its Windows and is not safe for
// concurrent use.
type Search struct {
	wins     []Window
	canvases []gocv.Mat
	opts     SearchOptions
	plan     plan
	gate     *gate
	scanned  int
	padded   gocv.Mat // EdgePad scratch
}

type plan struct {
	size    image.Point
	windows []image.Rectangle
}

var _ Detector = (*Search)(nil)

// NewSearch wraps one or more Window models of the same input size; the
// Search takes ownership of them.
func NewSearch(ws []Window, o SearchOptions) (*Search, error) {
	if len(ws) == 0 {
		return nil, fmt.Errorf("search: no window model")
	}
	if o.MinFace < 4 {
		return nil, fmt.Errorf("search: min face %d px too small; allowed >= 4", o.MinFace)
	}
	if o.MinRel <= 0 || o.MinRel >= 1 {
		return nil, fmt.Errorf("search: min relative face %.3f out of range (0, 1)", o.MinRel)
	}
	s := &Search{wins: ws, opts: o, padded: gocv.NewMat()}
	for _, w := range ws {
		if w.InputSize() != ws[0].InputSize() {
			return nil, fmt.Errorf("search: window models differ in input size")
		}
		n := w.InputSize()
		s.canvases = append(s.canvases, gocv.NewMatWithSize(n, n, gocv.MatTypeCV8UC3))
	}
	if o.Gate.MaxAge > 0 {
		s.gate = newGate(o.Gate)
	}
	return s, nil
}

// Close releases the window models and scratch memory.
func (s *Search) Close() error {
	s.padded.Close()
	for i := range s.canvases {
		s.canvases[i].Close()
	}
	if s.gate != nil {
		s.gate.close()
	}
	var first error
	for _, w := range s.wins {
		if err := w.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// LastScanned is how many windows the last Detect actually ran.
func (s *Search) LastScanned() int { return s.scanned }

// Windows returns the square windows (in frame pixels, possibly reaching
// past the frame's edges) that one full search of a frame of this size runs.
// With EdgePad the search runs on the padded frame, so pass its size.
func (s *Search) Windows(size image.Point) []image.Rectangle {
	if s.plan.size != size {
		s.plan = plan{size: size, windows: planWindows(size, s.opts)}
	}
	return s.plan.windows
}

// planWindows lays out the tile pyramid for a frame size. Level i with tile
// side t finds faces from MinRel*t to MaxRel*t. The next level's tile is as
// large as it can be while still reaching the faces this level is too coarse
// for (with 20 % to spare), and never smaller than the tile at which MinFace
// is MinRel of it. Tiles overlap by the largest face their level is
// responsible for (the smallest face of the level above), with 25 % margin.
func planWindows(size image.Point, o SearchOptions) []image.Rectangle {
	side := float64(max(size.X, size.Y))
	smallest := float64(o.MinFace) / o.MinRel
	maxRel := o.MaxRel
	if maxRel <= o.MinRel*1.5 {
		maxRel = o.MinRel * 2
	}
	var out []image.Rectangle
	largest := side // largest face this level must find
	for t := side; ; {
		if t < smallest {
			t = smallest
		}
		overlap := min(largest*1.25, maxRel*t)
		out = append(out, tile(size, int(math.Round(t)), int(math.Ceil(overlap)))...)
		if t <= smallest {
			break
		}
		largest = o.MinRel * t
		t = largest * 1.2 / maxRel
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

// Detect runs the planned windows over frame (those the change gate lets
// through, and cached results for the rest) and merges the results.
func (s *Search) Detect(frame gocv.Mat) ([]Face, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	m := int(math.Round(s.opts.EdgePad * float64(min(frame.Cols(), frame.Rows()))))
	if m <= 0 {
		return s.detect(frame)
	}
	gocv.CopyMakeBorder(frame, &s.padded, m, m, m, m, gocv.BorderReflect101, color.RGBA{})
	faces, err := s.detect(s.padded)
	if err != nil {
		return nil, err
	}
	bounds := image.Rect(0, 0, frame.Cols(), frame.Rows())
	out := faces[:0]
	for _, f := range faces {
		b := f.Box.Sub(image.Pt(m, m))
		in := b.Intersect(bounds)
		// A face found wholly in the mirrored margin is the mirror of one
		// inside; keep boxes with a real share of their area in the frame.
		if in.Empty() || in.Dx()*in.Dy()*4 < b.Dx()*b.Dy() {
			continue
		}
		f.Box = in
		out = append(out, f)
	}
	return out, nil
}

func (s *Search) detect(frame gocv.Mat) ([]Face, error) {
	size := image.Pt(frame.Cols(), frame.Rows())
	windows := s.Windows(size)
	if s.gate == nil || len(windows) == 0 {
		return s.DetectWindows(frame, windows)
	}
	dirty := s.gate.dirty(frame, windows)
	var todo []image.Rectangle
	for i, d := range dirty {
		if d {
			todo = append(todo, windows[i])
		}
	}
	per, err := s.scan(frame, todo)
	if err != nil {
		s.gate.reset() // nothing cached may outlive a failed scan
		return nil, err
	}
	k := 0
	for i, d := range dirty {
		if d {
			s.gate.store(i, per[k])
			k++
		}
	}
	s.gate.commit()
	return s.merge(s.gate.all(), size), nil
}

// DetectWindows runs the window model on the given square windows of frame
// (no gate) and merges the results into faces.
func (s *Search) DetectWindows(frame gocv.Mat, windows []image.Rectangle) ([]Face, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	per, err := s.scan(frame, windows)
	if err != nil {
		return nil, err
	}
	var all []Candidate
	for _, c := range per {
		all = append(all, c...)
	}
	return s.merge(all, image.Pt(frame.Cols(), frame.Rows())), nil
}

// scan runs windows in parallel over the window models and returns each
// window's candidates in frame pixels, in the order given.
func (s *Search) scan(frame gocv.Mat, windows []image.Rectangle) ([][]Candidate, error) {
	s.scanned = len(windows)
	per := make([][]Candidate, len(windows))
	errs := make([]error, len(s.wins))
	bounds := image.Rect(0, 0, frame.Cols(), frame.Rows())
	var wg sync.WaitGroup
	for k := range s.wins {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for i := k; i < len(windows); i += len(s.wins) {
				c, err := s.runWindow(k, frame, bounds, windows[i])
				if err != nil {
					errs[k] = fmt.Errorf("window %v: %w", windows[i], err)
					return
				}
				per[i] = c
			}
		}(k)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return per, nil
}

// merge blends candidates by weighted NMS and keeps plausible face boxes.
func (s *Search) merge(all []Candidate, size image.Point) []Face {
	bounds := image.Rectangle{Max: size}
	merged := WeightedNMS(all, s.opts.NMSIoU)
	faces := make([]Face, 0, len(merged))
	for _, c := range merged {
		if s.opts.MaxAspect > 0 {
			ar := c.Box.W() / c.Box.H()
			if ar > s.opts.MaxAspect || ar < 1/s.opts.MaxAspect {
				continue
			}
		}
		b := rollExtent(c.Box, c.Roll).Int().Intersect(bounds)
		if b.Empty() {
			continue
		}
		faces = append(faces, Face{Box: b, Score: c.Score, Roll: c.Roll})
	}
	return faces
}

// rollExtent widens a face box to the axis-aligned extent of the same box
// turned by roll radians about its centre. BlazeFace reports a turned face
// with roughly its upright size, so without this the corners of a face at
// 30-45 degrees stick out of the box.
func rollExtent(r Rect, roll float32) Rect {
	c, s := math.Abs(math.Cos(float64(roll))), math.Abs(math.Sin(float64(roll)))
	w, h := float64(r.W()), float64(r.H())
	nw, nh := float32(w*c+h*s), float32(w*s+h*c)
	cx, cy := (r.X0+r.X1)/2, (r.Y0+r.Y1)/2
	return Rect{cx - nw/2, cy - nh/2, cx + nw/2, cy + nh/2}
}

var errWindow = errors.New("window outside frame")

// runWindow resamples window w of frame into model k's input and maps the
// candidates back to frame pixels. Parts of w outside the frame are black.
func (s *Search) runWindow(k int, frame gocv.Mat, bounds, w image.Rectangle) (cands []Candidate, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("window panicked: %v", r)
		}
	}()
	in := w.Intersect(bounds)
	if in.Empty() || w.Dx() <= 0 {
		return nil, errWindow
	}
	size := s.wins[k].InputSize()
	canvas := &s.canvases[k]
	scale := float64(size) / float64(w.Dx())
	dst := image.Rect(
		int(math.Round(float64(in.Min.X-w.Min.X)*scale)), int(math.Round(float64(in.Min.Y-w.Min.Y)*scale)),
		int(math.Round(float64(in.Max.X-w.Min.X)*scale)), int(math.Round(float64(in.Max.Y-w.Min.Y)*scale)),
	).Intersect(image.Rect(0, 0, size, size))
	if dst.Empty() {
		return nil, errWindow
	}
	if dst != image.Rect(0, 0, size, size) {
		canvas.SetTo(gocv.NewScalar(0, 0, 0, 0))
	}
	src := frame.Region(in)
	part := canvas.Region(dst)
	interp := gocv.InterpolationArea
	if scale > 1 {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(src, &part, dst.Size(), 0, 0, interp)
	part.Close()
	src.Close()
	cands, err = s.wins[k].DetectWindow(*canvas)
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
