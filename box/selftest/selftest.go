// Package selftest proves, on the box itself, that the installed face
// detector and redactor work together: a known face (the canary, a crop of
// the public-domain NASA portrait astronaut.png shipped with scikit-image)
// must be found and its detail removed. The update agent runs it before it
// commits a new release; `veil selftest` runs it on demand. The canary is
// compiled in, so a damaged or missing model cannot pass.
package selftest

import (
	_ "embed"
	"errors"
	"fmt"
	"image"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/pipeline"
)

//go:embed canary.jpg
var canaryJPEG []byte

// CanaryFace is the hand-labelled face in the canary image.
var CanaryFace = image.Rect(112, 69, 208, 161)

// minIoU is how well a detection must match CanaryFace to count.
const minIoU = 0.3

// Result is what Check found.
type Result struct {
	Faces       int     // faces the detector reported
	IoU         float64 // best overlap of a detection with CanaryFace
	Correlation float64 // detail left in the face after redaction (leak.Correlate); below leak.DefaultThreshold passes
}

// Canary decodes the canary image; the caller closes it. On error there is
// nothing to close.
func Canary() (gocv.Mat, error) {
	m, err := gocv.IMDecode(canaryJPEG, gocv.IMReadColor)
	if err != nil { // IMDecode made no Mat
		return gocv.Mat{}, fmt.Errorf("selftest: decoding the canary: %w", err)
	}
	if m.Empty() {
		m.Close()
		return gocv.Mat{}, errors.New("selftest: decoding the canary gave an empty image")
	}
	return m, nil
}

// Check loads a detector with newDet, finds the canary's face and redacts
// it with opts. It fails, saying which step did, when there is no
// detector, the face is not found, or detail survives redaction.
func Check(newDet pipeline.NewDetector, opts blur.Options) (Result, error) {
	var res Result
	if newDet == nil {
		return res, errors.New("selftest: no face detector is loaded (model missing or refused; see the log at start)")
	}
	img, err := Canary()
	if err != nil {
		return res, err
	}
	defer img.Close()
	det, err := newDet()
	if err != nil {
		return res, fmt.Errorf("selftest: loading the face detector: %w", err)
	}
	defer det.Close()
	faces, err := det.Detect(img)
	if err != nil {
		return res, fmt.Errorf("selftest: detecting the canary face: %w", err)
	}
	res.Faces = len(faces)
	boxes := make([]image.Rectangle, 0, len(faces))
	for _, f := range faces {
		boxes = append(boxes, f.Box)
		res.IoU = max(res.IoU, iou(f.Box, CanaryFace))
	}
	if res.IoU < minIoU {
		return res, fmt.Errorf("selftest: the face detector did not find the canary face (%d faces found, best overlap %.2f, need %.2f)", res.Faces, res.IoU, minIoU)
	}
	red, err := blur.NewRedactor(opts)
	if err != nil {
		return res, fmt.Errorf("selftest: %w", err)
	}
	defer red.Close()
	out, err := red.Redact(img.Clone(), blur.FacesPlan(boxes)) // Redact takes its frame over
	if err != nil {
		return res, fmt.Errorf("selftest: redacting the canary: %w", err)
	}
	defer out.Close()
	err = out.Read(func(m gocv.Mat) error {
		res.Correlation, _ = leak.Correlate(img, m, CanaryFace, float64(CanaryFace.Dx()))
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("selftest: %w", err)
	}
	if res.Correlation >= leak.DefaultThreshold {
		return res, fmt.Errorf("selftest: the canary face keeps its detail after redaction (band-pass correlation %.2f, must be below %.2f)", res.Correlation, leak.DefaultThreshold)
	}
	return res, nil
}

func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	i := float64(in.Dx() * in.Dy())
	u := float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - i
	return i / u
}
