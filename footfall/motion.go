package footfall

import (
	"errors"
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// Detection is one box a PersonDetector found in a frame, in frame pixels.
type Detection struct {
	Box image.Rectangle
	// Score is the detector's confidence in [0, 1]; detectors without one
	// (Motion) report 1.
	Score float32
}

// Finding says what a PersonDetector's boxes are, and so how the Counter
// tracks them.
type Finding int8

const (
	// FindsBlobs: boxes are moving blobs (Motion). A blob may be a fragment
	// of a person or several people merged; the Counter splits and filters
	// them by learnt perspective and follows them with the blob tracker.
	FindsBlobs Finding = iota
	// FindsPeople: one box per person (a person detector network), with a
	// score. The Counter follows them with the people tracker (Kalman
	// filter, two-pass assignment by score).
	FindsPeople
)

func (f Finding) String() string {
	switch f {
	case FindsBlobs:
		return "blobs"
	case FindsPeople:
		return "people"
	}
	return fmt.Sprintf("Finding(%d)", int8(f))
}

// PersonDetector finds people in BGR frames of one camera. Detect must not
// retain frame. A PersonDetector may keep state between frames (a background
// model) and is not safe for concurrent use. Finds reports what its boxes
// are; it must not change over the detector's life.
type PersonDetector interface {
	Detect(frame gocv.Mat) ([]Detection, error)
	Finds() Finding
	Close() error
}

// MotionOptions tunes Motion.
type MotionOptions struct {
	// Scale is the fraction of the frame size the background model runs at.
	Scale float64
	// History is how many frames the background model remembers; a person
	// standing still fades into the background after about this many.
	History int
	// VarThreshold is MOG2's squared Mahalanobis distance for foreground.
	VarThreshold float64
	// MinHeight is the smallest person, as a fraction of the frame height.
	MinHeight float64
	// Warmup frames teach the background model before anything is reported.
	Warmup int
}

// DefaultMotionOptions suit fixed shop and street cameras at 25 fps.
var DefaultMotionOptions = MotionOptions{Scale: 0.5, History: 500, VarThreshold: 16, MinHeight: 0.06, Warmup: 5}

// Motion detects moving blobs: MOG2 background subtraction with shadows
// removed, cleaned by morphology, one box per blob at least MinHeight tall.
// The Counter turns blobs into people (see perspective).
// It suits fixed cameras; people who stand still for longer than the
// history fade out (their track then ends without a crossing).
type Motion struct {
	o                  MotionOptions
	mog                gocv.BackgroundSubtractorMOG2
	small, mask, clean gocv.Mat
	open, close        gocv.Mat
	frames             int
}

var _ PersonDetector = (*Motion)(nil)

// NewMotion makes a motion detector for one camera.
func NewMotion(o MotionOptions) (*Motion, error) {
	switch {
	case o.Scale <= 0 || o.Scale > 1:
		return nil, fmt.Errorf("motion: scale %.2f out of range (0, 1]", o.Scale)
	case o.History < 10:
		return nil, fmt.Errorf("motion: history %d frames too short; allowed >= 10", o.History)
	case o.MinHeight <= 0 || o.MinHeight >= 1:
		return nil, fmt.Errorf("motion: min height %.3f out of range (0, 1)", o.MinHeight)
	}
	return &Motion{
		o:     o,
		mog:   gocv.NewBackgroundSubtractorMOG2WithParams(o.History, o.VarThreshold, true),
		small: gocv.NewMat(), mask: gocv.NewMat(), clean: gocv.NewMat(),
		open:  gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(3, 3)),
		close: gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(5, 11)),
	}, nil
}

// Close releases the background model.
func (m *Motion) Close() error {
	for _, x := range []*gocv.Mat{&m.small, &m.mask, &m.clean, &m.open, &m.close} {
		x.Close()
	}
	return m.mog.Close()
}

// warming reports whether the background model is still learning the
// scene (Warmup frames), when it reports nothing.
func (m *Motion) warming() bool { return m.frames <= m.o.Warmup }

var errFrame = errors.New("footfall: frame is empty or not 8-bit BGR")

// Finds reports FindsBlobs: Motion's boxes are moving blobs.
func (m *Motion) Finds() Finding { return FindsBlobs }

// Detect updates the background model with frame and returns the blobs
// that moved in it, in frame pixels, each with Score 1.
func (m *Motion) Detect(frame gocv.Mat) ([]Detection, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, errFrame
	}
	sz := image.Pt(int(math.Round(float64(frame.Cols())*m.o.Scale)), int(math.Round(float64(frame.Rows())*m.o.Scale)))
	gocv.Resize(frame, &m.small, sz, 0, 0, gocv.InterpolationArea)
	m.mog.Apply(m.small, &m.mask)
	m.frames++
	if m.frames <= m.o.Warmup {
		return nil, nil
	}
	// 255 is foreground, 127 shadow: keep the foreground only.
	gocv.Threshold(m.mask, &m.clean, 200, 255, gocv.ThresholdBinary)
	gocv.MorphologyEx(m.clean, &m.clean, gocv.MorphOpen, m.open)
	gocv.MorphologyEx(m.clean, &m.clean, gocv.MorphClose, m.close)
	contours := gocv.FindContours(m.clean, gocv.RetrievalExternal, gocv.ChainApproxSimple)
	defer contours.Close()
	minH := m.o.MinHeight * float64(frame.Rows())
	inv := 1 / m.o.Scale
	var out []Detection
	for i := 0; i < contours.Size(); i++ {
		r := gocv.BoundingRect(contours.At(i))
		b := image.Rect(int(float64(r.Min.X)*inv), int(float64(r.Min.Y)*inv), int(math.Ceil(float64(r.Max.X)*inv)), int(math.Ceil(float64(r.Max.Y)*inv)))
		if float64(b.Dy()) < minH {
			continue
		}
		out = append(out, Detection{Box: b, Score: 1})
	}
	return out, nil
}
