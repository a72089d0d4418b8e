// Package eval measures how well veil redacts: it generates a labelled
// video (package synth), runs the real pipeline on it and scores every
// output frame against the same decoded input frame (package leak): leak
// rate per face size, and the share of non-face pixels changed.
package eval

import (
	"context"
	"fmt"
	"image"
	"path/filepath"

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
	// regions redacted in that frame.
	OnBox func(frame int, f synth.Face, r leak.BoxResult, redacted []image.Rectangle, whole bool)
}

// Result is one evaluation.
type Result struct {
	Video string         `json:"video"`
	Leak  leak.Report    `json:"leak"`
	Stats pipeline.Stats `json:"-"`
	FPS   float64        `json:"pipeline_fps"`
}

// scoreSink compares each redacted frame with the input frame it came from,
// read from a second decoder of the same file.
type scoreSink struct {
	ref    *media.FileSource
	refMat gocv.Mat
	labels synth.Labels
	acc    *leak.Accumulator
	pad    float64
	i      int
	onBox  func(int, synth.Face, leak.BoxResult, []image.Rectangle, bool)
}

func (s *scoreSink) Write(f *blur.Redacted) error {
	if err := s.ref.Read(&s.refMat); err != nil {
		return fmt.Errorf("reference frame %d: %w", s.i, err)
	}
	out := f.CloneMat()
	defer out.Close()
	faces := s.labels.Frame(s.i)
	res := leak.Compare(s.refMat, out, faces, s.pad)
	s.acc.Add(res)
	if s.onBox != nil {
		for k, b := range res.Boxes {
			s.onBox(s.i, faces[k], b, f.Regions(), f.Whole())
		}
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
	src, err := media.OpenFile(video)
	if err != nil {
		return Result{}, err
	}
	defer src.Close()
	ref, err := media.OpenFile(video)
	if err != nil {
		return Result{}, err
	}
	defer ref.Close()
	red, err := blur.NewRedactor(o.Redact)
	if err != nil {
		return Result{}, err
	}
	defer red.Close()
	sink := &scoreSink{ref: ref, refMat: gocv.NewMat(), labels: labels, acc: &leak.Accumulator{}, pad: o.NonFacePad, onBox: o.OnBox}
	defer sink.refMat.Close()
	p := &pipeline.Pipeline{Source: src, Detector: o.Detector, Redactor: red, Sink: sink, Options: o.Pipeline}
	st, err := p.Run(ctx)
	if err != nil {
		return Result{}, err
	}
	return Result{Video: video, Leak: sink.acc.Report(), Stats: st, FPS: st.FPS()}, nil
}
