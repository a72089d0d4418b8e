package eval_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/pipeline"
	"github.com/veil-edge/veil/testkit/eval"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The product targets on the labelled video: no leaked face box of 24 px or
// wider, at most 2 % of 12-24 px boxes, under 10 % of non-face pixels
// changed. The default configuration does not reach all of them yet
// (docs/RESULTS.md has the numbers), so this test holds the line on what it
// does reach: a change that makes redaction worse fails here, and the gap to
// the targets is logged on every run.
var (
	// maxLeakRate is the highest acceptable leak rate per width bin, set a
	// few points above the worse of what the defaults (the full-frame
	// search) measure on seeds 1 and 2: 4.8, 0, 0.8, 8.3 %.
	maxLeakRate = map[string]float64{"12-24": 0.07, "24-48": 0.02, "48-96": 0.03, "96+": 0.11}
	// maxNonFace bounds the share of non-face pixels changed: the defaults
	// measure 11.7 % and 14.2 % (the search enlarges the frame 1.5x to find
	// 12 px faces, and at score 0.2 it also blurs the real faces of the
	// pedestrians in the footage, which carry no label), against a product
	// target under 10 %. The 45-window pyramid it replaced measured 11.9 %
	// and 8.6 %.
	maxNonFace    = 0.16
	targetNonFace = 0.10
	targets       = map[string]float64{"12-24": 0.02, "24-48": 0, "48-96": 0, "96+": 0}
)

// TestLeakRates redacts labelled videos with the default configuration and
// checks leak rates per face width and the share of non-face pixels changed.
func TestLeakRates(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	det, err := app.DetectorFactory(app.DefaultDetect(), testenv.ModelsDir(), nil)
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	// The deadline is far off so that a busy machine cannot turn frames
	// whole-redacted and change the numbers; deadlines have their own tests.
	po := pipeline.DefaultOptions
	po.Deadline = time.Minute
	for _, seed := range []int64{1, 2} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			res, err := eval.Run(context.Background(), eval.Options{
				Synth:      synth.Params{Seed: seed, Frames: 150},
				Pipeline:   po,
				Detector:   det,
				Redact:     blur.DefaultOptions,
				NonFacePad: blur.DefaultOptions.Padding + 0.05,
				Dir:        t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", res.Leak)
			if res.Stats.Whole > 0 {
				t.Errorf("%d frames redacted whole: the detector failed or missed a one-minute deadline", res.Stats.Whole)
			}
			check(t, res.Leak, maxLeakRate, maxNonFace)
		})
	}
}

// check fails the test when a bin's leak rate is above maxLeak's bound for
// it or the share of non-face pixels changed reaches maxNonFaceShare, and
// logs every product target not met.
func check(t *testing.T, r leak.Report, maxLeak map[string]float64, maxNonFaceShare float64) {
	t.Helper()
	for _, b := range r.Bins {
		if b.Boxes < 50 {
			t.Errorf("bin %s has %d boxes: the labelled video does not exercise it", b.Bin, b.Boxes)
			continue
		}
		if b.Rate > maxLeak[b.Bin] {
			t.Errorf("bin %s: leak rate %.1f%% (%d of %d) is worse than the %.0f%% this build must hold",
				b.Bin, 100*b.Rate, b.Leaks, b.Boxes, 100*maxLeak[b.Bin])
		}
		if b.Rate > targets[b.Bin] {
			t.Logf("target not met: bin %s leaks %.1f%%, target %.0f%%", b.Bin, 100*b.Rate, 100*targets[b.Bin])
		}
	}
	if r.NonFaceChangedShare >= maxNonFaceShare {
		t.Errorf("%.1f%% of non-face pixels changed; this build must hold < %.0f%%", 100*r.NonFaceChangedShare, 100*maxNonFaceShare)
	}
	if r.NonFaceChangedShare >= targetNonFace {
		t.Logf("target not met: %.1f%% of non-face pixels changed, target < %.0f%%", 100*r.NonFaceChangedShare, 100*targetNonFace)
	}
}
