package detect

import (
	"fmt"
	"image"
	"os"

	"gocv.io/x/gocv"
)

// Haar detects faces with an OpenCV cascade classifier (Haar or LBP). It is
// slower and less accurate than BlazeFace and serves as a fallback. It is not
// safe for concurrent use.
type Haar struct {
	cc      gocv.CascadeClassifier
	gray    gocv.Mat
	minFace int
}

var _ Detector = (*Haar)(nil)

// NewHaar loads a cascade from its XML bytes (already verified by package
// models). OpenCV reads cascades only from files, so the verified bytes are
// written to a private temporary file, loaded and removed: the bytes loaded
// are the bytes that were hashed.
func NewHaar(xml []byte, minFace int) (*Haar, error) {
	f, err := os.CreateTemp("", "veil-cascade-*.xml")
	if err != nil {
		return nil, fmt.Errorf("haar: staging cascade: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(xml); err != nil {
		f.Close()
		return nil, fmt.Errorf("haar: staging cascade: %w", err)
	}
	f.Close()
	cc := gocv.NewCascadeClassifier()
	if !cc.Load(f.Name()) {
		cc.Close()
		return nil, fmt.Errorf("haar: cascade did not load")
	}
	if minFace < 8 {
		minFace = 8
	}
	return &Haar{cc: cc, gray: gocv.NewMat(), minFace: minFace}, nil
}

// Detect finds faces in a BGR frame.
func (h *Haar) Detect(frame gocv.Mat) ([]Face, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	gocv.CvtColor(frame, &h.gray, gocv.ColorBGRToGray)
	gocv.EqualizeHist(h.gray, &h.gray)
	rects := h.cc.DetectMultiScaleWithParams(h.gray, 1.1, 3, 0, image.Pt(h.minFace, h.minFace), image.Point{})
	out := make([]Face, len(rects))
	for i, r := range rects {
		out[i] = Face{Box: r, Score: 1}
	}
	return out, nil
}

// Close releases the classifier.
func (h *Haar) Close() error {
	h.gray.Close()
	return h.cc.Close()
}
