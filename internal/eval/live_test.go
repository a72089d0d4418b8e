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
// few points above the worst camera measured with the default detector (the
// full-frame search on the box's one detection service) on the 2-core box,
// seeds 1 and 2. The live schedule has no look-ahead, so a face is bare
// until its first detection.
//
// One camera: leak 8.5, 1.3, 1.5-6.3, 6.4 % (the live schedule follows the
// clock, so runs differ); non-face 18.7 %; no frame whole.
// Four cameras: leak 7.7, 2.7, 1.2, 11.5 % on the frames not redacted
// whole; 51-59 % of frames redacted whole after the first second, which
// also puts the non-face share near 60 %: a search of four busy 768x576
// scenes at 12 px faces is about twice what two cores can do at 10 fps, and
// a keyframe past live.detect_deadline is redacted whole (fail-closed). With
// min_face 18 (the frame searched at its own size) the four cameras show no
// frame whole, but 33-40 % of 12-24 px faces leak: grey frames are not
// traded for leaks by default.
var (
	maxLiveLeakRate = map[int]map[string]float64{
		1: {"12-24": 0.15, "24-48": 0.06, "48-96": 0.10, "96+": 0.12},
		4: {"12-24": 0.15, "24-48": 0.08, "48-96": 0.08, "96+": 0.18},
	}
	maxLiveNonFace = map[int]float64{1: 0.25, 4: 0.95}
	// The whole share depends on how much CPU the test gets (CI runs
	// packages side by side), so it is only guarded against a schedule
	// that shows nothing; docs/RESULTS.md has the measured shares.
	maxWholeAfter1s = map[int]float64{1: 0.5, 4: 0.95}
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
