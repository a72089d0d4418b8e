package app_test

import (
	"context"
	"errors"
	"image"
	"io"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type countSink struct{ frames, whole int }

func (s *countSink) Write(f *blur.Redacted) error {
	s.frames++
	if f.Whole() {
		s.whole++
	}
	return nil
}

// TestBadModelFailsClosed: a model file with one flipped byte, or none at
// all, is refused before OpenCV sees it, and a run without a detector
// redacts every frame of vtest.avi whole.
func TestBadModelFailsClosed(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	cases := []struct {
		name             string
		corrupt, missing bool
		want             error
	}{
		{"corrupt blazeface", true, false, models.ErrHashMismatch},
		{"missing blazeface", false, true, models.ErrMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.ModelsCopy(t, app.BlazeFaceModel, tc.corrupt, tc.missing)
			det, err := app.DetectorFactory(app.DefaultDetect(), dir, nil)
			if !errors.Is(err, tc.want) || det != nil {
				t.Fatalf("DetectorFactory = %v, %v; want nil, %v", det != nil, err, tc.want)
			}
			src, err := media.OpenFile(testenv.VTest)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			red, _ := blur.NewRedactor(blur.DefaultOptions)
			defer red.Close()
			sink := &countSink{}
			p := &pipeline.Pipeline{Source: &limit{src, 20}, Detector: nil, Redactor: red, Sink: sink, Options: pipeline.DefaultOptions}
			st, err := p.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sink.frames != 20 || sink.whole != 20 || st.Whole != 20 {
				t.Fatalf("frames %d, whole %d (stats %d); want all 20 whole", sink.frames, sink.whole, st.Whole)
			}
		})
	}
}

// limit stops a source after n frames.
type limit struct {
	pipeline.Source
	n int
}

func (l *limit) Read(dst *gocv.Mat) error {
	if l.n == 0 {
		return io.EOF
	}
	l.n--
	return l.Source.Read(dst)
}

func TestUnknownDetector(t *testing.T) {
	c := app.DefaultDetect()
	c.Detector = "yolo"
	if _, err := app.DetectorFactory(c, testenv.ModelsDir(), nil); err == nil {
		t.Fatal("unknown detector accepted")
	}
}

func TestCameraRedactor(t *testing.T) {
	cam := config.Camera{Name: "till", Style: "fill", Masks: [][4]int{{0, 400, 120, 480}}}
	r, err := app.CameraRedactor(config.Default.Redact, cam)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	o := r.Options()
	if o.Style != "fill" || len(o.Masks) != 1 || o.Masks[0] != image.Rect(0, 400, 120, 480) {
		t.Errorf("options = %+v, want the camera's fill style and mask", o)
	}
	plain, err := app.CameraRedactor(config.Default.Redact, config.Camera{Name: "door"})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if o := plain.Options(); string(o.Style) != config.Default.Redact.Style || len(o.Masks) != 0 {
		t.Errorf("a camera without its own settings got %+v", o)
	}
}
