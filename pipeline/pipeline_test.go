package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/testkit/testenv"
	"github.com/veil-edge/veil/track"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// imageSource repeats one image n times, stamping the frame index into the
// top-left pixel's blue channel so order can be checked.
type imageSource struct {
	img gocv.Mat
	n   int
	i   int
}

func newImageSource(t *testing.T, path string, n int) *imageSource {
	testenv.Need(t, path)
	img := gocv.IMRead(path, gocv.IMReadColor)
	if img.Empty() {
		t.Fatalf("cannot read %s", path)
	}
	return &imageSource{img: img, n: n}
}

func (s *imageSource) Read(dst *gocv.Mat) error {
	if s.i >= s.n {
		return io.EOF
	}
	s.img.CopyTo(dst)
	dst.SetUCharAt(0, 0, uint8(s.i))
	s.i++
	return nil
}
func (s *imageSource) Info() pipeline.SourceInfo {
	return pipeline.SourceInfo{Size: image.Pt(s.img.Cols(), s.img.Rows()), FPS: 25, Frames: s.n}
}
func (s *imageSource) Close() error { return s.img.Close() }

// recordSink keeps what a test needs from every frame it receives.
type recordSink struct {
	whole   []bool
	reasons []string
	stamps  []uint8
	faceMax []float64 // mean abs diff inside the face box vs the source
	ref     gocv.Mat
	face    image.Rectangle
}

func (s *recordSink) Write(f *blur.Redacted) error {
	m := f.CloneMat()
	defer m.Close()
	s.whole = append(s.whole, f.Whole())
	s.reasons = append(s.reasons, f.Reason())
	s.stamps = append(s.stamps, m.GetUCharAt(0, 0))
	if !s.ref.Empty() {
		a := m.Region(s.face)
		b := s.ref.Region(s.face)
		d := gocv.NewMat()
		gocv.AbsDiff(a, b, &d)
		mean := d.Mean()
		s.faceMax = append(s.faceMax, (mean.Val1+mean.Val2+mean.Val3)/3)
		d.Close()
		a.Close()
		b.Close()
	}
	return nil
}

type errDetector struct{}

func (errDetector) Detect(gocv.Mat) ([]detect.Face, error) { return nil, errors.New("boom") }
func (errDetector) Close() error                           { return nil }

type slowDetector struct{ d time.Duration }

func (s slowDetector) Detect(gocv.Mat) ([]detect.Face, error) { time.Sleep(s.d); return nil, nil }
func (slowDetector) Close() error                             { return nil }

// lateDetector is a detector on the box's shared detection service whose
// passes waited past their deadline: it must be told the deadline, and says
// so with detect.ErrLate.
type lateDetector struct{}

func (lateDetector) Detect(gocv.Mat) ([]detect.Face, error) {
	return nil, errors.New("called without a deadline")
}
func (lateDetector) DetectAt(ctx context.Context, _ gocv.Mat, _ time.Duration) ([]detect.Face, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("no deadline given")
	}
	return nil, detect.ErrLate
}
func (lateDetector) Close() error { return nil }

type panicDetector struct{}

func (panicDetector) Detect(gocv.Mat) ([]detect.Face, error) { panic("cv::Exception") }
func (panicDetector) Close() error                           { return nil }

func astronautFace() image.Rectangle {
	f := testenv.AstronautFace
	return image.Rect(f[0], f[1], f[2], f[3])
}

func run(t *testing.T, src pipeline.Source, det pipeline.NewDetector, o pipeline.Options, sink *recordSink) pipeline.Stats {
	t.Helper()
	red, err := blur.NewRedactor(blur.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer red.Close()
	p := &pipeline.Pipeline{Source: src, Detector: det, Redactor: red, Sink: sink, Options: o}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := p.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return st
}

// TestFailClosed: whenever faces are not known, every frame is redacted whole.
func TestFailClosed(t *testing.T) {
	cases := []struct {
		name   string
		det    pipeline.NewDetector
		opts   pipeline.Options
		reason string
	}{
		{"detector error", func() (detect.Detector, error) { return errDetector{}, nil }, pipeline.Options{Every: 2, Workers: 2}, "detector error"},
		{"detector panics", func() (detect.Detector, error) { return panicDetector{}, nil }, pipeline.Options{Every: 1, Workers: 1}, "detector error"},
		{"detector too slow", func() (detect.Detector, error) { return slowDetector{300 * time.Millisecond}, nil },
			pipeline.Options{Every: 3, Workers: 2, Deadline: 50 * time.Millisecond}, "detection late"},
		{"detector fails to load", func() (detect.Detector, error) { return nil, errors.New("model hash mismatch") }, pipeline.Options{Every: 2, Workers: 2}, "detector error"},
		{"no detector (model missing)", nil, pipeline.Options{Every: 2, Workers: 2}, ""},
		{"live: detector error", func() (detect.Detector, error) { return errDetector{}, nil }, pipeline.Options{Every: 1, Workers: 1, Live: true}, "detector error"},
		{"live: detector too slow", func() (detect.Detector, error) { return slowDetector{300 * time.Millisecond}, nil },
			pipeline.Options{Every: 1, Workers: 1, Deadline: 50 * time.Millisecond, Live: true}, "detection late"},
		{"live: no detector", nil, pipeline.Options{Every: 1, Workers: 1, Live: true}, ""},
		{"shared service answers late", func() (detect.Detector, error) { return lateDetector{}, nil }, pipeline.Options{Every: 2, Workers: 2}, "detection late"},
		{"live: shared service answers late", func() (detect.Detector, error) { return lateDetector{}, nil }, pipeline.Options{Every: 1, Workers: 1, Live: true}, "detection late"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := newImageSource(t, testenv.Astronaut, 9)
			defer src.Close()
			sink := &recordSink{ref: src.img, face: astronautFace()}
			st := run(t, src, tc.det, tc.opts, sink)
			if st.Frames != 9 || len(sink.whole) != 9 {
				t.Fatalf("frames = %d (sink %d), want 9", st.Frames, len(sink.whole))
			}
			for i, w := range sink.whole {
				if !w {
					t.Errorf("frame %d emitted without whole-frame redaction", i)
				}
				if tc.reason != "" && sink.reasons[i] != tc.reason && sink.reasons[i] != "previous keyframe not detected" {
					t.Errorf("frame %d reason %q, want %q", i, sink.reasons[i], tc.reason)
				}
				if sink.faceMax[i] < 20 {
					t.Errorf("frame %d: face region barely changed (mean diff %.1f)", i, sink.faceMax[i])
				}
			}
			if st.Whole != 9 {
				t.Errorf("stats.Whole = %d, want 9", st.Whole)
			}
		})
	}
}

func blazeFactory(t *testing.T) pipeline.NewDetector {
	t.Helper()
	testenv.Need(t, testenv.ModelsDir())
	c := app.DefaultDetect()
	// The order check reads a stamp in the top-left pixel; mirrored edge
	// padding makes the corner of this static image a (confirmed) false
	// positive that blurs the stamp. Edge padding has its own tests.
	c.EdgePad = 0
	f, err := app.DetectorFactory(c, testenv.ModelsDir(), nil)
	if err != nil {
		testenv.Missing(t, "blazeface model: "+err.Error())
	}
	return f
}

// TestRealDetectorRedactsFaceKeepsOrder runs BlazeFace on astronaut.png: no
// frame is whole, the face is redacted on every frame, and frames arrive in
// order and all of them, for several keyframe spacings.
func TestRealDetectorRedactsFaceKeepsOrder(t *testing.T) {
	det := blazeFactory(t)
	for _, tc := range []struct {
		every int
		live  bool
	}{{1, false}, {2, false}, {3, false}, {7, false}, {1, true}, {3, true}} {
		t.Run(fmt.Sprintf("every=%d,live=%v", tc.every, tc.live), func(t *testing.T) {
			src := newImageSource(t, testenv.Astronaut, 10)
			defer src.Close()
			sink := &recordSink{ref: src.img, face: astronautFace()}
			st := run(t, src, det, pipeline.Options{Every: tc.every, Workers: 2, Deadline: 10 * time.Second, Track: track.DefaultOptions, Live: tc.live}, sink)
			if st.Frames != 10 {
				t.Fatalf("frames = %d, want 10", st.Frames)
			}
			for i := range sink.whole {
				if sink.whole[i] {
					t.Errorf("frame %d redacted whole (%s); the detector was healthy", i, sink.reasons[i])
				}
				if sink.stamps[i] != uint8(i) {
					t.Errorf("frame %d out of order: stamp %d", i, sink.stamps[i])
				}
				if sink.faceMax[i] < 8 {
					t.Errorf("frame %d: face not redacted (mean diff %.1f)", i, sink.faceMax[i])
				}
			}
		})
	}
}

// stampAnalyzer records the stamp of every raw frame it is shown.
type stampAnalyzer struct {
	stamps []uint8
	fail   bool
}

func (a *stampAnalyzer) Analyze(frame gocv.Mat, _ time.Duration) error {
	a.stamps = append(a.stamps, frame.GetUCharAt(0, 0))
	if a.fail {
		return errors.New("counter broke")
	}
	return nil
}

// TestAnalyzerSeesEveryRawFrameInOrder checks the analyzer hook: every raw
// frame once, in order, and an analyzer error does not stop redaction or let
// a frame through unredacted.
func TestAnalyzerSeesEveryRawFrameInOrder(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			src := newImageSource(t, testenv.Astronaut, 20)
			an := &stampAnalyzer{fail: fail}
			red, err := blur.NewRedactor(blur.DefaultOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer red.Close()
			sink := &recordSink{ref: gocv.NewMat()}
			defer sink.ref.Close()
			p := &pipeline.Pipeline{Source: src, Redactor: red, Sink: sink, Options: pipeline.DefaultOptions, Analyzer: an}
			st, err := p.Run(context.Background())
			src.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(an.stamps) != 20 {
				t.Fatalf("analyzer saw %d frames, want 20", len(an.stamps))
			}
			for i, s := range an.stamps {
				if int(s) != i {
					t.Fatalf("analyzer frame %d has stamp %d: out of order or not raw", i, s)
				}
			}
			// No detector: every frame is still redacted whole.
			if st.Frames != 20 || st.Whole != 20 {
				t.Fatalf("frames %d, whole %d; want 20 and 20", st.Frames, st.Whole)
			}
		})
	}
}

// heldDetector reports the astronaut's face on every frame it is given, but
// only when the test releases it; started receives each frame's stamp.
type heldDetector struct {
	started chan int
	release chan struct{}
}

func (d *heldDetector) Detect(m gocv.Mat) ([]detect.Face, error) {
	d.started <- int(m.GetUCharAt(0, 0))
	<-d.release
	return []detect.Face{{Box: astronautFace(), Score: 0.9}}, nil
}
func (d *heldDetector) Close() error { return nil }

// countingSource counts reads so a test knows frames are waiting.
type countingSource struct {
	*imageSource
	reads atomic.Int32
}

func (s *countingSource) Read(dst *gocv.Mat) error {
	err := s.imageSource.Read(dst)
	s.reads.Add(1)
	return err
}

// TestLiveWritesBeforeTheNextDetection: in live scheduling a frame waits only
// for the keyframe at or before it. When the detector starts on the next
// keyframe, every earlier frame has been written, redacted by the tracks of
// the last detection; offline scheduling would hold them for the next
// keyframe (and this test would time out waiting).
func TestLiveWritesBeforeTheNextDetection(t *testing.T) {
	src := &countingSource{imageSource: newImageSource(t, testenv.Astronaut, 12)}
	defer src.Close()
	det := &heldDetector{started: make(chan int), release: make(chan struct{})}
	red, err := blur.NewRedactor(blur.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer red.Close()
	var mu sync.Mutex
	var written []int
	sink := &recordSink{ref: src.img, face: astronautFace()}
	p := &pipeline.Pipeline{
		Source: src, Redactor: red, Sink: sink,
		Detector: func() (detect.Detector, error) { return det, nil },
		Options:  pipeline.Options{Every: 1, Workers: 1, Deadline: 30 * time.Second, Live: true, Track: track.DefaultOptions},
		Observer: func(r pipeline.FrameRecord) { mu.Lock(); written = append(written, r.Index); mu.Unlock() },
	}
	done := make(chan error, 1)
	go func() { _, err := p.Run(context.Background()); done <- err }()

	// Every detection that starts is released, the last one included, so
	// the run always ends whichever frame happens to be the last keyframe.
	keys := []int{<-det.started}
	var runErr error
	for finished := false; !finished; {
		k := keys[len(keys)-1]
		mu.Lock()
		got := append([]int(nil), written...)
		mu.Unlock()
		if len(got) != k {
			t.Fatalf("detection of frame %d started with frames %v written; want 0..%d", k, got, k-1)
		}
		// Let frames pile up behind the detection in progress.
		for int(src.reads.Load()) <= k+2 && src.reads.Load() < 13 {
			time.Sleep(time.Millisecond)
		}
		det.release <- struct{}{}
		select {
		case next := <-det.started:
			keys = append(keys, next)
		case runErr = <-done:
			finished = true
		case <-time.After(20 * time.Second):
			t.Fatalf("neither a detection started nor the run ended after keyframe %d; frames written: %v", k, got)
		}
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	if len(keys) < 2 || keys[1] < 2 {
		t.Fatalf("keyframes %v: frames read during a detection should not be keyframes", keys)
	}
	for i := range sink.whole {
		if sink.whole[i] {
			t.Errorf("frame %d redacted whole (%s)", i, sink.reasons[i])
		}
		if sink.faceMax[i] < 8 {
			t.Errorf("frame %d: face not redacted (mean diff %.1f)", i, sink.faceMax[i])
		}
	}
	if len(sink.whole) != 12 {
		t.Fatalf("%d frames written, want 12", len(sink.whole))
	}
}
