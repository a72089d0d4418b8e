// Package eval measures how well veil redacts: it generates a labelled
// video (package synth), runs the real pipeline on it and scores every
// output frame against the same decoded input frame (package leak): leak
// rate per face size, and the share of non-face pixels changed.
//
// With Options.Live it measures what an operator watching a camera sees
// instead: the video plays as a camera (media.OpenFileCamera: at its frame
// rate, dropping what the pipeline does not take in time) into the live
// schedule, once or as several cameras at once, and every frame shown is
// scored against the input frame it came from.
package eval

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"sync"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/pipeline"
)

// Options says what to generate and how to redact it.
type Options struct {
	Synth      synth.Params
	Pipeline   pipeline.Options
	Detector   pipeline.NewDetector
	Redact     blur.Options
	NonFacePad float64 // face boxes grow by this on each side before pixels count as non-face
	Dir        string  // where the labelled video is written
	// OnBox, if set, sees every scored face box with its label and the
	// regions redacted in that frame. frame is the input frame's index.
	OnBox func(frame int, f synth.Face, r leak.BoxResult, redacted []image.Rectangle, whole bool)

	// Live plays the video as a camera (media.OpenFileCamera) into the
	// pipeline, which should then use the live schedule (Pipeline from
	// app.LiveOptions), and scores each frame shown against the input
	// frame it came from. The frames shown are kept in memory until all
	// copies have ended (about 1.3 MB each at 768x576) so that scoring
	// does not slow the cameras down.
	Live bool
	// Copies is how many cameras play the video at once with Live, each
	// into its own pipeline and redactor, all making their detectors with
	// the one Detector factory; 0 means 1.
	Copies int
	// Consent, if set, is the pipeline's consent gate (a shopper's opt-in
	// may leave tracked faces unredacted); OnBox then shows which faces
	// were. It is one camera's: with Live, Copies must be 0 or 1.
	Consent pipeline.Consent
}

// Result is one evaluation.
type Result struct {
	Video string `json:"video"`
	// Leak is the file schedule's report; with Live, every copy's frames
	// shown, scored together.
	Leak  leak.Report    `json:"leak"`
	Stats pipeline.Stats `json:"-"` // the file schedule's run
	FPS   float64        `json:"pipeline_fps"`
	// Copies holds one result per camera with Live.
	Copies []LiveResult `json:"copies,omitempty"`
}

// LiveResult is what one camera's operator saw with Options.Live.
type LiveResult struct {
	Leak     leak.Report    `json:"leak"` // every frame shown against its input frame
	Stats    pipeline.Stats `json:"-"`
	FramesIn int            `json:"frames_in"` // frames the camera sent (the video's)
	Shown    int            `json:"frames_shown"`
	Dropped  int            `json:"frames_dropped"` // sent, but newer ones came before the pipeline took them
	Whole    int            `json:"frames_redacted_whole"`
	// WholeShare is Whole / Shown.
	WholeShare float64 `json:"whole_share"`
	// Frames is every frame shown, in order.
	Frames []ShownFrame `json:"frames"`
}

// ShownFrame is one frame a live pipeline showed.
type ShownFrame struct {
	Source int    `json:"source_frame"` // its input frame's index in the video
	Whole  bool   `json:"whole,omitempty"`
	Reason string `json:"reason,omitempty"` // why whole
}

// WholeShareFrom is the share of the frames shown from input frame from on
// that were redacted whole (0 when none was shown).
func (r LiveResult) WholeShareFrom(from int) float64 {
	n, whole := 0, 0
	for _, f := range r.Frames {
		if f.Source >= from {
			n++
			if f.Whole {
				whole++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float64(whole) / float64(n)
}

// scorer compares redacted frames with the input frames they came from,
// read in order from a second decoder of the same file.
type scorer struct {
	ref    *media.FileSource
	refMat gocv.Mat
	at     int // index of the input frame in refMat; -1 before the first
	labels synth.Labels
	acc    []*leak.Accumulator // every result is added to each
	pad    float64
	onBox  func(int, synth.Face, leak.BoxResult, []image.Rectangle, bool)
}

func newScorer(video string, o Options, labels synth.Labels, acc ...*leak.Accumulator) (*scorer, error) {
	ref, err := media.OpenFile(video)
	if err != nil {
		return nil, err
	}
	return &scorer{ref: ref, refMat: gocv.NewMat(), at: -1, labels: labels, acc: acc, pad: o.NonFacePad, onBox: o.OnBox}, nil
}

func (s *scorer) Close() {
	s.refMat.Close()
	s.ref.Close()
}

// score compares out, redacted from input frame src, with that input frame.
// Frames must come in rising order of src.
func (s *scorer) score(src int, out gocv.Mat, redacted []image.Rectangle, whole bool) error {
	if src <= s.at {
		return fmt.Errorf("input frame %d scored after %d: out of order", src, s.at)
	}
	for s.at < src {
		if err := s.ref.Read(&s.refMat); err != nil {
			return fmt.Errorf("reference frame %d: %w", s.at+1, err)
		}
		s.at++
	}
	faces := s.labels.Frame(src)
	res := leak.Compare(s.refMat, out, faces, s.pad)
	for _, a := range s.acc {
		a.Add(res)
	}
	if s.onBox != nil {
		for k, b := range res.Boxes {
			s.onBox(src, faces[k], b, redacted, whole)
		}
	}
	return nil
}

// scoreSink scores each frame as it is written: the file schedule writes
// every input frame, in order.
type scoreSink struct {
	*scorer
	i int
}

func (s *scoreSink) Write(f *blur.Redacted) error {
	out := f.CloneMat()
	defer out.Close()
	if err := s.score(s.i, out, f.Regions(), f.Whole()); err != nil {
		return err
	}
	s.i++
	return nil
}

// Run generates the video, redacts it and scores it.
func Run(ctx context.Context, o Options) (Result, error) {
	video := filepath.Join(o.Dir, "synth.avi")
	labels, err := synth.Generate(ctx, o.Synth, video)
	if err != nil {
		return Result{}, fmt.Errorf("generating labelled video: %w", err)
	}
	if o.Live {
		if o.Consent != nil && o.Copies > 1 {
			return Result{}, errors.New("eval: a consent gate is one camera's: Copies must be 0 or 1")
		}
		return runLive(ctx, o, video, labels)
	}
	src, err := media.OpenFile(video)
	if err != nil {
		return Result{}, err
	}
	defer src.Close()
	red, err := blur.NewRedactor(o.Redact)
	if err != nil {
		return Result{}, err
	}
	defer red.Close()
	acc := &leak.Accumulator{}
	sc, err := newScorer(video, o, labels, acc)
	if err != nil {
		return Result{}, err
	}
	defer sc.Close()
	p := &pipeline.Pipeline{Source: src, Detector: o.Detector, Redactor: red, Sink: &scoreSink{scorer: sc}, Options: o.Pipeline, Consent: o.Consent}
	st, err := p.Run(ctx)
	if err != nil {
		return Result{}, err
	}
	return Result{Video: video, Leak: acc.Report(), Stats: st, FPS: st.FPS()}, nil
}

// keptFrame is a frame a live pipeline showed, kept for scoring.
type keptFrame struct {
	mat      gocv.Mat // a copy of the redacted pixels; owned by keepSink
	redacted []image.Rectangle
	whole    bool
	reason   string
}

// keepSink keeps a copy of every frame shown.
type keepSink struct{ frames []keptFrame }

func (s *keepSink) Write(f *blur.Redacted) error {
	s.frames = append(s.frames, keptFrame{mat: f.CloneMat(), redacted: f.Regions(), whole: f.Whole(), reason: f.Reason()})
	return nil
}

func (s *keepSink) Close() {
	for _, f := range s.frames {
		f.mat.Close()
	}
	s.frames = nil
}

// liveCopy is one camera of a live evaluation.
type liveCopy struct {
	red  *blur.Redactor
	cam  *media.LiveSource
	sink keepSink
	st   pipeline.Stats
	err  error
}

// runLive plays the video as o.Copies cameras at once into live pipelines
// sharing o.Detector, then scores every frame each one showed.
func runLive(ctx context.Context, o Options, video string, labels synth.Labels) (Result, error) {
	copies := make([]*liveCopy, max(1, o.Copies))
	defer func() {
		for _, c := range copies {
			if c == nil {
				continue
			}
			c.sink.Close()
			if c.cam != nil {
				c.cam.Close()
			}
			c.red.Close()
		}
	}()
	for i := range copies {
		red, err := blur.NewRedactor(o.Redact)
		if err != nil {
			return Result{}, err
		}
		copies[i] = &liveCopy{red: red}
	}
	// A camera runs from the moment it opens: open them all, then start.
	for _, c := range copies {
		cam, err := media.OpenFileCamera(ctx, video)
		if err != nil {
			return Result{}, err
		}
		c.cam = cam
	}
	var wg sync.WaitGroup
	for _, c := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &pipeline.Pipeline{Source: c.cam, Detector: o.Detector, Redactor: c.red, Sink: &c.sink, Options: o.Pipeline, Consent: o.Consent}
			c.st, c.err = p.Run(ctx)
		}()
	}
	wg.Wait()
	var errs []error
	for i, c := range copies {
		if c.err != nil {
			errs = append(errs, fmt.Errorf("copy %d: %w", i, c.err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}

	all := &leak.Accumulator{}
	res := Result{Video: video}
	for i, c := range copies {
		lr, err := scoreCopy(video, o, labels, c, all)
		if err != nil {
			return Result{}, fmt.Errorf("copy %d: %w", i, err)
		}
		res.Copies = append(res.Copies, lr)
	}
	res.Leak = all.Report()
	return res, nil
}

// scoreCopy scores the frames one camera showed against their input frames.
func scoreCopy(video string, o Options, labels synth.Labels, c *liveCopy, all *leak.Accumulator) (LiveResult, error) {
	acc := &leak.Accumulator{}
	sc, err := newScorer(video, o, labels, acc, all)
	if err != nil {
		return LiveResult{}, err
	}
	defer sc.Close()
	in, dropped := c.cam.Counts()
	r := LiveResult{Stats: c.st, FramesIn: int(in), Shown: len(c.sink.frames), Dropped: int(dropped), Whole: c.st.Whole}
	for n, f := range c.sink.frames {
		src, ok := c.cam.Position(n)
		if !ok {
			return LiveResult{}, fmt.Errorf("frame shown %d: the camera does not know which input frame it was", n)
		}
		if err := sc.score(int(src), f.mat, f.redacted, f.whole); err != nil {
			return LiveResult{}, fmt.Errorf("frame shown %d: %w", n, err)
		}
		r.Frames = append(r.Frames, ShownFrame{Source: int(src), Whole: f.whole, Reason: f.reason})
	}
	r.Leak = acc.Report()
	if r.Shown > 0 {
		r.WholeShare = float64(r.Whole) / float64(r.Shown)
	}
	return r, nil
}
