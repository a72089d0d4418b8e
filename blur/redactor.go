package blur

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"sync"

	"gocv.io/x/gocv"
)

// Redactor redacts frames according to a Plan. Make one with NewRedactor and
// Close it when done.
//
// A Redactor keeps scratch Mats between calls, so it is meant to be used by
// one goroutine at a time; calls from several goroutines are serialized by an
// internal lock rather than run in parallel. Use one Redactor per goroutine
// for parallel work.
type Redactor struct {
	mu   sync.Mutex
	opts Options
	fill gocv.Scalar // opts.FillColor as BGR
	open bool        // set by NewRedactor, cleared by Close

	// maxDirectSigma is the largest sigma blurred at full resolution; larger
	// ones are blurred on a downscaled copy (see gaussian.go).
	maxDirectSigma float64

	// scratch (8UC3) and mask (8UC1) have the size of the last frame; the
	// redacted version of a region and its ellipse mask are built in the same
	// rectangle of them. The other Mats hold the stages of a downscaled blur;
	// OpenCV reallocates them only when a stage's size changes.
	size                         image.Point
	scratch, mask                gocv.Mat
	border, small, smallBlur, up gocv.Mat
}

// NewRedactor validates o and returns a Redactor that applies it.
func NewRedactor(o Options) (*Redactor, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("blur: invalid options: %w", err)
	}
	return &Redactor{
		opts:           o,
		fill:           bgr(o.FillColor),
		open:           true,
		maxDirectSigma: defaultMaxDirectSigma,
		border:         gocv.NewMat(),
		small:          gocv.NewMat(),
		smallBlur:      gocv.NewMat(),
		up:             gocv.NewMat(),
	}, nil
}

// Options returns the options r applies (zero for a nil r).
func (r *Redactor) Options() Options {
	if r == nil {
		return Options{}
	}
	return r.opts
}

// Close releases r's scratch memory. Redact fails after Close. Close is
// idempotent.
func (r *Redactor) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = false
	r.size = image.Point{}
	for _, m := range []*gocv.Mat{&r.scratch, &r.mask, &r.border, &r.small, &r.smallBlur, &r.up} {
		closeMat(m)
	}
	return nil
}

// Redact takes ownership of frame (8UC3 BGR), redacts it in place according
// to p and returns it wrapped as the only frame type sinks accept.
//
// A whole-frame plan (including the zero Plan) fills the frame with FillColor
// and draws "REDACTED: <reason>". A faces plan redacts each box, padded and
// clipped to the frame, with the configured Style and Shape; boxes without
// area or outside the frame are skipped. The plan's areas (Plan.WithAreas)
// are then redacted as whole rectangles, clipped but not padded.
//
// Redact always takes frame over: the caller must not use or Close it
// afterwards. On error frame is closed and the returned Redacted is empty.
func (r *Redactor) Redact(frame gocv.Mat, p Plan) (Redacted, error) {
	if frame.Ptr() == nil {
		return Redacted{}, errors.New("blur: redact: frame is a zero Mat")
	}
	if r == nil {
		closeMat(&frame)
		return Redacted{}, errors.New("blur: redact: nil redactor")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check(frame); err != nil {
		closeMat(&frame)
		return Redacted{}, fmt.Errorf("blur: redact: %w", err)
	}
	size := image.Pt(frame.Cols(), frame.Rows())
	if p.Whole() {
		reason := p.Reason()
		drawWhole(&frame, r.fill, r.opts.FillColor, reason)
		return newRedacted(frame, true, reason, []image.Rectangle{{Max: size}}), nil
	}
	regions := r.redactFaces(&frame, size, p.boxes)
	regions = append(regions, r.redactAreas(&frame, size, p.areas)...)
	for _, m := range r.opts.Masks {
		if m = m.Intersect(image.Rectangle{Max: size}); !m.Empty() {
			region := frame.Region(m)
			region.SetTo(r.fill)
			region.Close()
			regions = append(regions, m)
		}
	}
	return newRedacted(frame, false, "", regions), nil
}

// check reports why r cannot redact frame, if it cannot.
func (r *Redactor) check(frame gocv.Mat) error {
	switch {
	case !r.open:
		return errors.New("redactor is closed or was not made by NewRedactor")
	case frame.Empty():
		return errors.New("empty frame")
	case frame.Type() != gocv.MatTypeCV8UC3:
		return fmt.Errorf("frame type %v, want CV8UC3 (BGR)", frame.Type())
	case len(frame.Size()) != 2:
		return fmt.Errorf("frame has %d dimensions, want 2", len(frame.Size()))
	}
	return nil
}

// redactFaces redacts every usable box in frame and returns the regions it
// redacted.
func (r *Redactor) redactFaces(frame *gocv.Mat, size image.Point, boxes []image.Rectangle) []image.Rectangle {
	var regions []image.Rectangle
	for _, b := range boxes {
		t, ok := newTarget(b, r.opts.Padding, size)
		if !ok {
			continue
		}
		r.ensureScratch(size)
		r.redactTarget(frame, t)
		regions = append(regions, t.region)
	}
	return regions
}

// redactAreas redacts every usable area in frame as a rectangle, unpadded,
// and returns the regions it redacted.
func (r *Redactor) redactAreas(frame *gocv.Mat, size image.Point, areas []image.Rectangle) []image.Rectangle {
	var regions []image.Rectangle
	for _, a := range areas {
		t, ok := newTarget(a, 0, size)
		if !ok {
			continue
		}
		t.ellipse = false // a whole rectangle, whatever the Shape
		r.ensureScratch(size)
		r.redactTarget(frame, t)
		regions = append(regions, t.region)
	}
	return regions
}

// ensureScratch makes scratch and mask the given frame size.
func (r *Redactor) ensureScratch(size image.Point) {
	if r.size == size && r.scratch.Ptr() != nil && r.mask.Ptr() != nil {
		return
	}
	closeMat(&r.scratch)
	closeMat(&r.mask)
	r.scratch = gocv.NewMatWithSize(size.Y, size.X, gocv.MatTypeCV8UC3)
	r.mask = gocv.NewMatWithSize(size.Y, size.X, gocv.MatTypeCV8UC1)
	r.size = size
}

// redactTarget builds the redacted version of t.region in scratch and copies
// it into frame, through the ellipse mask when the shape is Ellipse.
func (r *Redactor) redactTarget(frame *gocv.Mat, t target) {
	src := frame.Region(t.region)
	defer src.Close()
	dst := r.scratch.Region(t.region)
	defer dst.Close()

	switch r.opts.Style {
	case Gaussian:
		r.gaussian(src, &dst, t.faceW/r.opts.SigmaDivisor)
	case Mosaic:
		mosaic(src, &dst, mosaicBlock(t.faceW, r.opts.MosaicBlocks))
	default: // Fill; Validate admits nothing else
		dst.SetTo(r.fill)
	}

	if r.opts.Shape != Ellipse || !t.ellipse {
		dst.CopyTo(&src)
		return
	}
	mask := r.mask.Region(t.region)
	defer mask.Close()
	mask.SetTo(gocv.NewScalar(0, 0, 0, 0))
	gocv.EllipseWithParams(&mask, t.center2, t.axes2, 0, 0, 360,
		color.RGBA{R: 255, G: 255, B: 255, A: 255}, -1, gocv.Line8, 1)
	dst.CopyToWithMask(&src, mask)
}

// bgr converts c to an OpenCV BGR scalar, ignoring alpha.
func bgr(c color.RGBA) gocv.Scalar {
	return gocv.NewScalar(float64(c.B), float64(c.G), float64(c.R), 0)
}

// closeMat closes m if it holds a Mat and leaves it zero.
func closeMat(m *gocv.Mat) {
	if m.Ptr() != nil {
		_ = m.Close()
	}
	*m = gocv.Mat{}
}
