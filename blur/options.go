package blur

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
)

// Style is how a face region is redacted.
type Style string

// Supported styles.
const (
	Gaussian Style = "gaussian" // Gaussian blur, sigma = face width / SigmaDivisor
	Mosaic   Style = "mosaic"   // pixelation, MosaicBlocks blocks across the face
	Fill     Style = "fill"     // solid FillColor
)

// Shape is the outline of a redacted region.
type Shape string

// Supported shapes.
const (
	Box     Shape = "box"     // the whole padded rectangle
	Ellipse Shape = "ellipse" // the ellipse inscribed in the padded rectangle
)

// Limits of the tunable fields. The weak ends (minPadding, maxSigmaDivisor,
// maxMosaicBlocks) are the strength floor and must never be relaxed.
const (
	minPadding      = 0.2
	maxPadding      = 1.0
	minSigmaDivisor = 1.0
	maxSigmaDivisor = 6.0
	minMosaicBlocks = 2
	maxMosaicBlocks = 6
)

// Options configures a Redactor.
type Options struct {
	Style Style
	Shape Shape
	// Padding is added on each side of a face box as a fraction of its width
	// (x) and height (y); allowed 0.2..1.
	Padding float64
	// SigmaDivisor sets the Gaussian sigma to face width / SigmaDivisor;
	// allowed 1..6, where 6 is the weakest blur allowed.
	SigmaDivisor float64
	// MosaicBlocks is the number of mosaic blocks across the face width;
	// allowed 2..6, where 6 is the weakest mosaic allowed.
	MosaicBlocks int
	// FillColor is used by the Fill style and for whole-frame redaction. Its
	// alpha is ignored: fills are opaque.
	FillColor color.RGBA
	// Masks are areas of the frame (in frame pixels) filled with FillColor in
	// every frame, faces or not: a till's PIN pad, a screen. Parts outside
	// the frame are ignored.
	Masks []image.Rectangle
}

// DefaultOptions are the options used when nothing is configured.
var DefaultOptions = Options{
	Style:        Gaussian,
	Shape:        Ellipse,
	Padding:      0.25,
	SigmaDivisor: 4,
	MosaicBlocks: 5,
	FillColor:    color.RGBA{R: 64, G: 64, B: 64, A: 255},
}

// Validate reports every invalid field of o, joined with errors.Join. Each
// message names the field as it is spelled in config, the bad value and what
// is allowed. Values weaker than the strength floor are always rejected.
func (o Options) Validate() error {
	var errs []error
	switch o.Style {
	case Gaussian, Mosaic, Fill:
	default:
		errs = append(errs, fmt.Errorf("style: %q is not supported; allowed %s, %s, %s", o.Style, Gaussian, Mosaic, Fill))
	}
	switch o.Shape {
	case Box, Ellipse:
	default:
		errs = append(errs, fmt.Errorf("shape: %q is not supported; allowed %s, %s", o.Shape, Box, Ellipse))
	}
	if err := checkRange("padding", o.Padding, minPadding, maxPadding, true); err != nil {
		errs = append(errs, err)
	}
	if err := checkRange("sigma_divisor", o.SigmaDivisor, minSigmaDivisor, maxSigmaDivisor, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkRange("mosaic_blocks", float64(o.MosaicBlocks), minMosaicBlocks, maxMosaicBlocks, false); err != nil {
		errs = append(errs, err)
	}
	for i, m := range o.Masks {
		if m.Empty() || m.Min.X < 0 || m.Min.Y < 0 {
			errs = append(errs, fmt.Errorf("masks[%d]: %v is empty or starts left of or above the frame; allowed [x0, y0, x1, y1] with 0 <= x0 < x1, 0 <= y0 < y1", i, m))
		}
	}
	return errors.Join(errs...)
}

// checkRange checks that v is within lo..hi. floorAtLow says which end is the
// strength floor: true when values below lo are too weak (padding), false when
// values above hi are (sigma_divisor, mosaic_blocks).
func checkRange(field string, v, lo, hi float64, floorAtLow bool) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("%s: %g is not a finite number; allowed %g..%g", field, v, lo, hi)
	case v < lo && floorAtLow, v > hi && !floorAtLow:
		return fmt.Errorf("%s: %g is weaker than the floor; allowed %g..%g", field, v, lo, hi)
	case v < lo || v > hi:
		return fmt.Errorf("%s: %g is out of range; allowed %g..%g", field, v, lo, hi)
	}
	return nil
}
