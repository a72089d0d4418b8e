// Package app wires veil's parts together from a Config: it is the
// application layer that reads config, loads verified models and logs.
package app

import (
	"fmt"
	"image"
	"log/slog"

	"github.com/veil-edge/veil/internal/cvthreads"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/track"
)

// Model names in the manifest used by each detector.
const (
	BlazeFaceModel = "blazeface-back-256"
	HaarModel      = "haar-frontalface-alt2"
)

// blazeMinRel is the smallest face BlazeFace back-256 finds reliably, as a
// fraction of its window side: measured at 16 px in a 256 px window.
const blazeMinRel = 0.0625

// blazeMaxRel is the largest face it finds reliably relative to its window
// (it finds 96 px in 256; 0.3 leaves margin).
const blazeMaxRel = 0.3

// DetectorFactory loads and verifies the configured model once and returns a
// constructor that makes one detector per pipeline worker. A model that is
// missing or fails its hash check is never loaded: the error is returned and
// the caller runs the pipeline without a detector, which redacts every frame
// whole.
func DetectorFactory(c config.Detect, modelsDir string, log *slog.Logger) (pipeline.NewDetector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Parallelism comes from one network per thread of the budget, each
	// scanning its share of a frame's windows; OpenCV itself runs
	// single-threaded inside each so they do not fight over cores.
	cvthreads.Set(1)
	switch c.Detector {
	case "haar":
		xml, _, err := models.Load(modelsDir, HaarModel)
		if err != nil {
			return nil, err
		}
		log.Info("face detector ready", "detector", "haar", "model", HaarModel)
		return func() (detect.Detector, error) { return detect.NewHaar(xml, c.MinFace) }, nil
	case "blazeface", "":
		onnx, e, err := models.Load(modelsDir, BlazeFaceModel)
		if err != nil {
			return nil, err
		}
		size := e.Input.Width
		if size == 0 {
			size = 256
		}
		opts := detect.SearchOptions{
			MinFace:   c.MinFace,
			MinRel:    blazeMinRel,
			MaxRel:    blazeMaxRel,
			NMSIoU:    float32(c.NMSIoU),
			MaxAspect: detect.DefaultSearchOptions.MaxAspect,
			Gate:      detect.DefaultGateOptions,
			EdgePad:   c.EdgePad,
		}
		threads := max(1, c.Threads)
		log.Info("face detector ready", "detector", "blazeface", "model", BlazeFaceModel, "sha256", e.SHA256, "min_face", c.MinFace)
		// One network per thread: a frame's windows run in parallel.
		return func() (detect.Detector, error) {
			ws := make([]detect.Window, 0, threads)
			for i := 0; i < threads; i++ {
				bf, err := detect.NewBlazeFace(onnx, size, float32(c.ScoreThreshold))
				if err != nil {
					for _, w := range ws {
						w.Close()
					}
					return nil, err
				}
				ws = append(ws, bf)
			}
			return detect.NewSearch(ws, opts)
		}, nil
	default:
		return nil, fmt.Errorf("detect.detector: %q is not supported; allowed blazeface, haar", c.Detector)
	}
}

// DefaultDetect is the default detection config (config.Default.Detect), for
// tests and benchmarks that run without a config file.
func DefaultDetect() config.Detect { return config.Default.Detect }

// PipelineOptions turns a config into pipeline scheduling options.
func PipelineOptions(c config.Config) pipeline.Options {
	return pipeline.Options{
		Every:     c.Detect.Every,
		Deadline:  c.Detect.Deadline,
		Workers:   1, // keyframes in order for the search's change gate; threads go to windows
		Lookahead: c.Track.Lookahead,
		Track: track.Options{
			Hold: c.Track.Hold, TentativeHold: c.Track.TentativeHold,
			Growth: c.Track.Growth, MatchIoU: c.Track.MatchIoU,
			ConfirmScore: c.Track.ConfirmScore, ConfirmObs: c.Track.ConfirmObs,
		},
	}
}

// LiveOptions are PipelineOptions for a camera watched live (veil run):
// detection scheduled for latency (live.detect_every, live.detect_deadline),
// no look-ahead, and every detection covers its face at once, since without
// look-ahead a weak detection confirmed later could not be covered back.
func LiveOptions(c config.Config) pipeline.Options {
	o := PipelineOptions(c)
	o.Live, o.Every, o.Deadline, o.Lookahead = true, c.Live.Every, c.Live.Deadline, 0
	o.Track.ConfirmScore = 0
	return o
}

// Redactor builds the redactor the config asks for; the strength floor is
// enforced by blur.Options.Validate.
func Redactor(c config.Redact) (*blur.Redactor, error) {
	o, err := c.BlurOptions()
	if err != nil {
		return nil, err
	}
	return blur.NewRedactor(o)
}

// CameraRedactor builds a camera's redactor: the config's redaction with the
// camera's own style, if it has one, and its masks.
func CameraRedactor(c config.Redact, cam config.Camera) (*blur.Redactor, error) {
	if cam.Style != "" {
		c.Style = cam.Style
	}
	o, err := c.BlurOptions()
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cam.Name, err)
	}
	for _, m := range cam.Masks {
		o.Masks = append(o.Masks, image.Rect(m[0], m[1], m[2], m[3]))
	}
	r, err := blur.NewRedactor(o)
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cam.Name, err)
	}
	return r, nil
}
