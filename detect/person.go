package detect

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// Person detection models, as footfall.person_model names them.
const (
	// PersonCenterNet is PersonNet (models entry centernet-person): any
	// input size, set by the input width.
	PersonCenterNet = "centernet"
	// PersonSSDLite is SSDNet (models entry ssdlite-person): 300x300.
	PersonSSDLite = "ssdlite"
)

// PersonDetector is a person network built for one input size: a
// PersonNet or an SSDNet. Detect takes a BGR frame of any size and returns
// boxes in its pixels. It is not safe for concurrent use.
type PersonDetector interface {
	Detect(frame gocv.Mat) ([]Person, error)
	// Size is the network input's width and height.
	Size() (w, h int)
	Close() error

	// detectScaled finds people in img, a frame of size frame already
	// scaled (to the input, ideally), in the frame's pixels.
	detectScaled(img gocv.Mat, frame image.Point) ([]Person, error)
}

var _ PersonDetector = (*PersonNet)(nil)

// PersonModelInput is the network input of the person model kind for
// frames of the given size: PersonInput at the given width for
// PersonCenterNet, 300x300 for PersonSSDLite.
func PersonModelInput(kind string, frame image.Point, width int) image.Point {
	if kind == PersonSSDLite {
		return image.Pt(ssdSize, ssdSize)
	}
	return PersonInput(frame, width)
}

// NewPersonDetector builds the person model kind's network from its
// verified graph for an input of size in (PersonModelInput); threshold is
// the minimum person score in (0, 1).
func NewPersonDetector(kind string, graph []byte, in image.Point, threshold float32) (PersonDetector, error) {
	switch kind {
	case PersonCenterNet:
		return NewPersonNet(graph, in.X, in.Y, threshold)
	case PersonSSDLite:
		if in != image.Pt(ssdSize, ssdSize) {
			return nil, fmt.Errorf("ssdlite person detector: input %dx%d, want %dx%[3]d", in.X, in.Y, ssdSize)
		}
		return NewSSDNet(graph, threshold)
	}
	return nil, fmt.Errorf("person detector: model %q unknown (%s, %s)", kind, PersonCenterNet, PersonSSDLite)
}
