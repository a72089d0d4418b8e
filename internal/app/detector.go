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

// DetectorFactory loads and verifies the configured model once and returns a
// constructor that makes one detector per pipeline worker; every detector it
// makes shares one detection service (detect.threads networks). A model that
// is missing or fails its hash check is never loaded: the error is returned
// and the caller runs the pipeline without a detector, which redacts every
// frame whole.
func DetectorFactory(c config.Detect, modelsDir string, log *slog.Logger) (pipeline.NewDetector, error) {
	faces, _, err := FaceDetectors(c, modelsDir, log)
	if err != nil {
		return nil, err
	}
	return faces(c.MinFace), nil
}

// FaceDetectors loads and verifies the configured model once and returns a
// maker of detector constructors, one per smallest face size (a camera may
// set its own min_face), all sharing the box's one detection service, which
// it returns too (nil for the haar detector, which has none).
func FaceDetectors(c config.Detect, modelsDir string, log *slog.Logger) (func(minFace int) pipeline.NewDetector, *detect.Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch c.Detector {
	case "haar":
		cvthreads.Set(1) // one detector per worker, as for the service's networks
		xml, _, err := models.Load(modelsDir, HaarModel)
		if err != nil {
			return nil, nil, err
		}
		log.Info("face detector ready", "detector", "haar", "model", HaarModel)
		return func(minFace int) pipeline.NewDetector {
			return func() (detect.Detector, error) { return detect.NewHaar(xml, minFace) }
		}, nil, nil
	case "blazeface", "":
		svc, err := FaceService(c, modelsDir)
		if err != nil {
			return nil, nil, err
		}
		log.Info("face detector ready", "detector", "blazeface", "model", BlazeFaceModel,
			"min_face", c.MinFace, "networks", svc.Workers(), "full_every", c.FullEvery)
		return func(minFace int) pipeline.NewDetector {
			o := FrameOptions(c)
			o.MinFace = minFace
			return func() (detect.Detector, error) { return detect.NewFrame(svc, o) }
		}, svc, nil
	default:
		return nil, nil, fmt.Errorf("detect.detector: %q is not supported; allowed blazeface, haar", c.Detector)
	}
}

// FaceService loads and verifies BlazeFace back-256 and makes the box's
// detection service with detect.threads networks, checked to run.
func FaceService(c config.Detect, modelsDir string) (*detect.Service, error) {
	// Parallelism comes from the service's networks, one pass each;
	// OpenCV runs single-threaded inside each so they do not fight over
	// cores.
	cvthreads.Set(1)
	onnx, _, err := models.Load(modelsDir, BlazeFaceModel)
	if err != nil {
		return nil, err
	}
	svc := detect.NewService(onnx, float32(c.ScoreThreshold), max(1, c.Threads))
	if err := svc.Probe(256, 256); err != nil {
		return nil, fmt.Errorf("%s: %w", BlazeFaceModel, err)
	}
	return svc, nil
}

// FrameOptions turns the detect config into the full-frame detector's options.
func FrameOptions(c config.Detect) detect.FrameOptions {
	o := detect.DefaultFrameOptions
	o.MinFace = c.MinFace
	o.NMSIoU = float32(c.NMSIoU)
	o.EdgePad = c.EdgePad
	o.FullEvery = c.FullEvery
	o.MaxFace = c.MaxFace
	o.LargeScore = float32(c.LargeScore)
	o.Deadline = c.Deadline
	if c.FullEvery <= 0 {
		o.Gate.Scale = 0 // every keyframe scans the whole frame
	}
	return o
}

// DefaultDetect is the default detection config (config.Default.Detect), for
// tests and benchmarks that run without a config file.
func DefaultDetect() config.Detect { return config.Default.Detect }

// PipelineOptions turns a config into pipeline scheduling options.
func PipelineOptions(c config.Config) pipeline.Options {
	return pipeline.Options{
		Every:    c.Detect.Every,
		Deadline: c.Detect.Deadline,
		// Two keyframes in flight keep the detection service busy while
		// the other is merged; each worker's detector keeps its own
		// change reference, so order between them does not matter.
		Workers:   2,
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
	o.Workers = 1 // live: a keyframe only when the detector is free
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
