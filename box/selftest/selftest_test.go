package selftest_test

import (
	"errors"
	"image"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/box/selftest"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/testkit/testenv"
)

// fixed reports the same faces (or error) on every frame.
type fixed struct {
	faces []detect.Face
	err   error
}

func (d fixed) Detect(gocv.Mat) ([]detect.Face, error) { return d.faces, d.err }
func (d fixed) Close() error                           { return nil }

func constant(d fixed) pipeline.NewDetector {
	return func() (detect.Detector, error) { return d, nil }
}

func TestCheck(t *testing.T) {
	cfg := config.Default
	real := func(detector string) pipeline.NewDetector {
		c := cfg.Detect
		c.Detector = detector
		nd, err := app.DetectorFactory(c, testenv.ModelsDir(), nil)
		if err != nil {
			testenv.Missing(t, err.Error())
		}
		return nd
	}
	cases := []struct {
		name    string
		newDet  func() pipeline.NewDetector
		wantErr string // "" passes
	}{
		{"blazeface", func() pipeline.NewDetector { return real("blazeface") }, ""},
		{"haar", func() pipeline.NewDetector { return real("haar") }, ""},
		{"no detector loaded", func() pipeline.NewDetector { return nil }, "no face detector is loaded"},
		{"detector fails to load", func() pipeline.NewDetector {
			return func() (detect.Detector, error) { return nil, errors.New("model refused") }
		}, "model refused"},
		{"detector errors", func() pipeline.NewDetector { return constant(fixed{err: errors.New("inference failed")}) }, "inference failed"},
		{"finds nothing", func() pipeline.NewDetector { return constant(fixed{}) }, "did not find the canary face (0 faces"},
		{"finds something else", func() pipeline.NewDetector {
			return constant(fixed{faces: []detect.Face{{Box: image.Rect(0, 0, 60, 60), Score: 0.9}}})
		}, "did not find the canary face (1 faces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := selftest.Check(tc.newDet(), blur.DefaultOptions)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%+v", res)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestCheckMeasuresDetailLeft: with the face found but a box covering only
// its edge, the detail survives and Check fails on the correlation.
func TestCheckMeasuresDetailLeft(t *testing.T) {
	f := selftest.CanaryFace
	edge := image.Rect(f.Min.X, f.Min.Y, f.Max.X, f.Min.Y+f.Dy()/2)
	// IoU 0.5 with the canary face: found, but half the face stays.
	_, err := selftest.Check(constant(fixed{faces: []detect.Face{{Box: edge, Score: 0.9}}}), blur.DefaultOptions)
	if err == nil || !strings.Contains(err.Error(), "keeps its detail") {
		t.Fatalf("err = %v", err)
	}
}
