package app

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/models"
)

// PersonModel is the default person detector's model entry
// (footfall.person_model centernet).
const PersonModel = "centernet-person"

// SSDLitePersonModel is the model entry of footfall.person_model ssdlite.
const SSDLitePersonModel = "ssdlite-person"

// PersonModelEntry is the models entry footfall.person_model names.
func PersonModelEntry(c config.Footfall) string {
	if c.PersonModel == config.PersonSSDLite {
		return SSDLitePersonModel
	}
	return PersonModel
}

// PersonKind is the detect person model footfall.person_model names.
func PersonKind(c config.Footfall) string {
	if c.PersonModel == config.PersonSSDLite {
		return detect.PersonSSDLite
	}
	return detect.PersonCenterNet
}

// peopleFinder is a person detector of package detect: a PersonNet of its
// own (veil count) or a client of the box's detection service.
type peopleFinder interface {
	Detect(frame gocv.Mat) ([]detect.Person, error)
	Close() error
}

// personDetector adapts a detect person detector to footfall.
type personDetector struct{ d peopleFinder }

func (p personDetector) Detect(frame gocv.Mat) ([]footfall.Detection, error) {
	people, err := p.d.Detect(frame)
	if err != nil {
		return nil, err
	}
	return detections(people), nil
}

// detections turns detect's people into footfall's detections.
func detections(people []detect.Person) []footfall.Detection {
	out := make([]footfall.Detection, len(people))
	for i, q := range people {
		out[i] = footfall.Detection{Box: q.Box, Score: q.Score}
	}
	return out
}

func (personDetector) Finds() footfall.Finding { return footfall.FindsPeople }
func (p personDetector) Close() error          { return p.d.Close() }

// CounterKind says what a counter counts with, for logs and /healthz.
type CounterKind struct {
	// Detector is config.DetectPeople or config.DetectMotion.
	Detector string
	// Fallback is why the person detector was asked for and motion is
	// used instead; empty when the configured detector runs.
	Fallback string
}

// LocalPeople loads the verified person model for a person detector that
// runs its own network on the calling goroutine (veil count). It returns
// an error wrapping models.ErrMissing or models.ErrHashMismatch when the
// model is not there as pinned.
func LocalPeople(c config.Footfall, modelsDir string) (func() (footfall.PersonDetector, error), error) {
	graph, _, err := models.Load(modelsDir, PersonModelEntry(c))
	if err != nil {
		return nil, err
	}
	return func() (footfall.PersonDetector, error) {
		return &lazyPersonNet{kind: PersonKind(c), graph: graph, width: c.DetectWidth, threshold: float32(c.PersonScore)}, nil
	}, nil
}

// lazyPersonNet builds its network for the first frame's size.
type lazyPersonNet struct {
	kind      string
	graph     []byte
	width     int
	threshold float32
	net       detect.PersonDetector
}

func (l *lazyPersonNet) Detect(frame gocv.Mat) ([]footfall.Detection, error) {
	if l.net == nil {
		in := detect.PersonModelInput(l.kind, image.Pt(frame.Cols(), frame.Rows()), l.width)
		n, err := detect.NewPersonDetector(l.kind, l.graph, in, l.threshold)
		if err != nil {
			return nil, err
		}
		l.net = n
	}
	return personDetector{l.net}.Detect(frame)
}

func (l *lazyPersonNet) Finds() footfall.Finding { return footfall.FindsPeople }

func (l *lazyPersonNet) Close() error {
	if l.net != nil {
		return l.net.Close()
	}
	return nil
}

// ServicePeople returns person detectors that run on the box's detection
// service svc (which must have the person model footfall.person_model
// names, SetPersonModel). A person pass
// not started within timeout is answered late and the tracker coasts.
//
// They run in the background (footfall.AsyncPersonDetector): a camera's
// frames go on while its person pass waits for a network.
func ServicePeople(c config.Footfall, svc *detect.Service, timeout time.Duration) func() (footfall.PersonDetector, error) {
	return func() (footfall.PersonDetector, error) {
		p, err := detect.NewPeople(svc, c.DetectWidth, timeout)
		if err != nil {
			return nil, err
		}
		return asyncPeople{personDetector{p}, p}, nil
	}
}

// asyncPeople adapts the service's background person passes to footfall.
type asyncPeople struct {
	personDetector
	p *detect.People
}

var _ footfall.AsyncPersonDetector = asyncPeople{}

func (a asyncPeople) Start(frame gocv.Mat) error { return a.p.Start(frame) }

func (a asyncPeople) Poll() ([]footfall.Detection, bool, error) {
	people, done, err := a.p.Poll()
	if !done || err != nil {
		return nil, done, err
	}
	return detections(people), true, nil
}

// PeopleCounter builds a camera's counter as footfall.detector says:
// "people" runs newPeople's detector behind a motion gate (at most one
// detection per footfall.detect_every of stream time, none while nothing
// moves and nobody is tracked) with the people tracker; "motion" counts
// moving blobs. When people are asked for but newPeople is nil (the
// person model is missing or broken: modelErr says why), it falls back to
// motion, logs a warning and reports the fallback in the CounterKind.
//
// With no lines the counter only tracks people, for redact.target heads
// and bodies (Counter.PeopleAt): it uses the person detector whatever
// footfall.detector says. Without a person model it is then a blob
// counter, whose PeopleAt never knows the people, so every frame is
// redacted whole (fail closed).
func PeopleCounter(c config.Footfall, lines []footfall.Line, overhead bool, newPeople func() (footfall.PersonDetector, error), modelErr error, log *slog.Logger) (*footfall.Counter, CounterKind, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(lines) == 0 {
		c.Detector = config.DetectPeople
	}
	kind := CounterKind{Detector: c.Detector}
	if c.Detector == config.DetectPeople && newPeople == nil {
		if modelErr == nil {
			modelErr = errors.New("no person detector")
		}
		kind = CounterKind{Detector: config.DetectMotion, Fallback: modelErr.Error()}
		log.Warn("footfall: person model unusable, counting moving blobs instead (less accurate where people walk together); run `veil models fetch`",
			"model", PersonModelEntry(c), "err", modelErr)
	}
	switch kind.Detector {
	case config.DetectMotion:
		cnt, err := Counter(c, lines, overhead)
		return cnt, kind, err
	case config.DetectPeople:
	default:
		return nil, kind, fmt.Errorf("footfall.detector: %q is not supported; allowed %s, %s", c.Detector, config.DetectPeople, config.DetectMotion)
	}
	people, err := newPeople()
	if err != nil {
		return nil, kind, err
	}
	motion, err := footfall.NewMotion(footfall.DefaultGateMotionOptions)
	if err != nil {
		people.Close()
		return nil, kind, err
	}
	gate := footfall.DefaultGateOptions
	gate.Every = c.DetectEvery
	gated, err := footfall.NewGated(people, motion, gate)
	if err != nil {
		people.Close()
		motion.Close()
		return nil, kind, err
	}
	to := footfall.DefaultTrackOptions
	to.Band, to.Overhead = c.Band, overhead
	cnt, err := footfall.NewCounter(gated, lines, to)
	if err != nil {
		gated.Close()
		return nil, kind, err
	}
	return cnt, kind, nil
}

// CounterAnalyzer feeds a pipeline's raw frames to a counter (a
// pipeline.Analyzer), so its tracks are known to the pipeline's People
// (redact.target heads and bodies).
type CounterAnalyzer struct{ Counter *footfall.Counter }

// Analyze tracks one frame.
func (a CounterAnalyzer) Analyze(frame gocv.Mat, at time.Duration) error {
	_, err := a.Counter.Frame(frame, at)
	return err
}
