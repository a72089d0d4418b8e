package eval_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/eval"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/internal/testenv"
	"github.com/veil-edge/veil/media"
)

// Bounds of the live schedule, per number of cameras playing at once, set a
// few points above the worst camera of three runs of this test (seeds 1 and
// 2 each) on the 2-core box, measured 2026-12-07 on commit 1ae1206 plus the
// shared detection service then in progress (detect.Frame on one
// detect.Service per factory; not yet committed). At 1ae1206 itself, where
// each camera has its own detect.Search, four cameras miss every live
// deadline and show every frame whole, and one camera shows 8..25 % of its
// frames whole after the first second. The live schedule has no look-ahead,
// so a face is bare until its first detection: these bounds are far above
// the file schedule's, and the gap is the work to do.
//
// One camera (worst of 6): leak 45.6, 16.0, 13.7, 6.5 %; non-face 8.2 %;
// no frame whole. Four cameras (worst of 24; whole frames leak nothing but
// change every pixel): leak 49.6, 22.7, 18.0, 9.0 %; non-face 52.4 %;
// whole after the first second 5..51 % (the deadline, 500 ms, is close to
// a detection's time with four cameras on two cores).
var (
	maxLiveLeakRate = map[int]map[string]float64{
		1: {"12-24": 0.50, "24-48": 0.20, "48-96": 0.17, "96+": 0.10},
		4: {"12-24": 0.55, "24-48": 0.27, "48-96": 0.22, "96+": 0.12},
	}
	maxLiveNonFace  = map[int]float64{1: 0.12, 4: 0.60}
	maxWholeAfter1s = map[int]float64{1: 0.05, 4: 0.60}
)

// TestLiveLeakRates measures what an operator watching veil run's live
// view sees: labelled videos play as cameras (at their frame rate, frames
// the pipeline does not take in time dropped) into the live schedule with
// the default configuration, one camera alone and four at once sharing one
// detector factory, and every frame shown is scored against the input
// frame it came from. Frames redacted whole are expected before the first
// detection and when a detection is late; they are counted, and only their
// share after the first second is bounded. Each run plays its 15 s of video
// in real time: the test takes about 75 s.
func TestLiveLeakRates(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	cfg := config.Default
	redact, err := cfg.Redact.BlurOptions()
	if err != nil {
		t.Fatal(err)
	}
	for _, cams := range []int{1, 4} {
		for _, seed := range []int64{1, 2} {
			t.Run(fmt.Sprintf("cameras=%d/seed=%d", cams, seed), func(t *testing.T) {
				// One factory for all cameras, as veil run makes one.
				det, err := app.DetectorFactory(app.DefaultDetect(), testenv.ModelsDir(), nil)
				if err != nil {
					testenv.Missing(t, err.Error())
				}
				res, err := eval.Run(context.Background(), eval.Options{
					Synth:      synth.Params{Seed: seed, Frames: 150},
					Pipeline:   app.LiveOptions(cfg),
					Detector:   det,
					Redact:     redact,
					NonFacePad: redact.Padding + 0.05,
					Dir:        t.TempDir(),
					Live:       true,
					Copies:     cams,
				})
				if err != nil {
					t.Fatal(err)
				}
				firstSecond := firstSecondFrames(t, res.Video)
				for i, c := range res.Copies {
					after := c.WholeShareFrom(firstSecond)
					t.Logf("camera %d of %d: frames in %d, shown %d, dropped %d, redacted whole %d (%.1f%%; after the first second %.1f%%: %s)\n%s",
						i+1, cams, c.FramesIn, c.Shown, c.Dropped, c.Whole, 100*c.WholeShare, 100*after, reasons(c), c.Leak)
					if c.FramesIn != 150 || c.Shown+c.Dropped != c.FramesIn {
						t.Errorf("camera %d: frames in %d, shown %d, dropped %d: want 150 in = shown + dropped", i+1, c.FramesIn, c.Shown, c.Dropped)
					}
					check(t, c.Leak, maxLiveLeakRate[cams], maxLiveNonFace[cams])
					if after > maxWholeAfter1s[cams] {
						t.Errorf("camera %d: %.1f%% of the frames shown after the first second were redacted whole; this build must hold %.0f%%",
							i+1, 100*after, 100*maxWholeAfter1s[cams])
					}
				}
			})
		}
	}
}

// firstSecondFrames is the number of frames in a video's first second.
func firstSecondFrames(t *testing.T, video string) int {
	t.Helper()
	src, err := media.OpenFile(video)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	return int(src.Info().FPS + 0.5)
}

// reasons counts the frames shown whole by reason.
func reasons(c eval.LiveResult) string {
	n := map[string]int{}
	for _, f := range c.Frames {
		if f.Whole {
			n[f.Reason]++
		}
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", r, n[r]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
