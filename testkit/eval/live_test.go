package eval_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/testkit/eval"
	"github.com/veil-edge/veil/testkit/testenv"
)

// Bounds of the live schedule, per number of cameras playing at once, set a
// few points above the worst camera measured with the default detector (the
// full-frame search on the box's one detection service) on the 2-core box,
// seeds 1 and 2. The live schedule has no look-ahead, so a face is bare
// until its first detection.
//
// One camera: leak 8.5-8.9, 1.3, 1.5-6.3, 0.6-6.4 % (the live schedule
// follows the clock, so runs differ); non-face 13.5-18.7 %; no frame whole.
// Four cameras: leak 7.7-10.7, 1.7-5.0, 1.2-7.3, 1.3-11.5 %; 51-74 % of
// frames redacted whole after the first second, which
// also puts the non-face share near 60 %: a search of four busy 768x576
// scenes at 12 px faces is about twice what two cores can do at 10 fps, and
// a keyframe past live.detect_deadline is redacted whole (fail-closed). With
// min_face 18 (the frame searched at its own size) the four cameras show no
// frame whole, but 33-40 % of 12-24 px faces leak: grey frames are not
// traded for leaks by default.
var (
	maxLiveLeakRate = map[int]map[string]float64{
		1: {"12-24": 0.18, "24-48": 0.08, "48-96": 0.12, "96+": 0.14},
		4: {"12-24": 0.18, "24-48": 0.10, "48-96": 0.12, "96+": 0.18},
	}
)

// TestLiveLeakRates measures what an operator watching veil run's live
// view sees: labelled videos play as cameras (at their frame rate, frames
// the pipeline does not take in time dropped) into the live schedule with
// the default configuration, one camera alone and four at once sharing one
// detector factory, and every frame shown is scored against the input
// frame it came from. Leak rates are bounded; how many frames are shown
// whole depends on the CPU the test gets (CI runs packages side by side),
// so it is logged here and measured by BenchmarkLiveLeakRates. Each run
// plays its 15 s of video in real time: the test takes about 55 s.
func TestLiveLeakRates(t *testing.T) {
	for _, tc := range []struct {
		cams  int
		seeds []int64
	}{{1, []int64{1, 2}}, {4, []int64{1}}} { // four cameras fill both cores: one seed keeps the suite's other tests fed
		cams := tc.cams
		for _, seed := range tc.seeds {
			t.Run(fmt.Sprintf("cameras=%d/seed=%d", cams, seed), func(t *testing.T) {
				res, firstSecond := runLive(t, cams, seed)
				for i, c := range res.Copies {
					t.Logf("camera %d of %d: frames in %d, shown %d, dropped %d, redacted whole %d (%.1f%%; after the first second %.1f%%: %s)\n%s",
						i+1, cams, c.FramesIn, c.Shown, c.Dropped, c.Whole, 100*c.WholeShare, 100*c.WholeShareFrom(firstSecond), reasons(c), c.Leak)
					if c.FramesIn != 150 || c.Shown+c.Dropped != c.FramesIn {
						t.Errorf("camera %d: frames in %d, shown %d, dropped %d: want 150 in = shown + dropped", i+1, c.FramesIn, c.Shown, c.Dropped)
					}
					// Whole frames change every non-face pixel: the
					// share is in the benchmark, not bounded here.
					check(t, c.Leak, maxLiveLeakRate[cams], math.Inf(1))
				}
			})
		}
	}
}

// BenchmarkLiveLeakRates reports, for one camera and four at once (seed 1),
// the worst camera's share of frames shown whole after the first second,
// its leak rate per width bin and its share of non-face pixels changed.
//
//	go test -run XXX -bench LiveLeakRates -benchtime 1x ./testkit/eval/
func BenchmarkLiveLeakRates(b *testing.B) {
	for _, cams := range []int{1, 4} {
		b.Run(fmt.Sprintf("cameras=%d", cams), func(b *testing.B) {
			for range b.N {
				res, firstSecond := runLive(b, cams, 1)
				whole, nonFace := 0.0, 0.0
				worst := map[string]float64{}
				for i, c := range res.Copies {
					whole = max(whole, c.WholeShareFrom(firstSecond))
					nonFace = max(nonFace, c.Leak.NonFaceChangedShare)
					for _, bin := range c.Leak.Bins {
						worst[bin.Bin] = max(worst[bin.Bin], bin.Rate)
					}
					b.Logf("camera %d of %d: shown %d, dropped %d, whole after 1 s %.1f%% (%s)\n%s", i+1, cams, c.Shown, c.Dropped, 100*c.WholeShareFrom(firstSecond), reasons(c), c.Leak)
				}
				b.ReportMetric(100*whole, "whole-%-worst")
				b.ReportMetric(100*nonFace, "nonface-%-worst")
				for bin, r := range worst {
					b.ReportMetric(100*r, "leak-%-"+bin)
				}
			}
		})
	}
}

// runLive plays seed's labelled video as cams cameras into the live
// schedule on one detector factory and returns the result and the number
// of frames in the video's first second.
func runLive(tb testing.TB, cams int, seed int64) (eval.Result, int) {
	tb.Helper()
	testenv.Need(tb, testenv.VTest)
	cfg := config.Default
	redact, err := cfg.Redact.BlurOptions()
	if err != nil {
		tb.Fatal(err)
	}
	// One factory for all cameras, as veil run makes one.
	det, err := app.DetectorFactory(app.DefaultDetect(), testenv.ModelsDir(), nil)
	if err != nil {
		testenv.Missing(tb, err.Error())
	}
	res, err := eval.Run(context.Background(), eval.Options{
		Synth:      synth.Params{Seed: seed, Frames: 150},
		Pipeline:   app.LiveOptions(cfg),
		Detector:   det,
		Redact:     redact,
		NonFacePad: redact.Padding + 0.05,
		Dir:        tb.TempDir(),
		Live:       true,
		Copies:     cams,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return res, firstSecondFrames(tb, res.Video)
}

// firstSecondFrames is the number of frames in a video's first second.
func firstSecondFrames(tb testing.TB, video string) int {
	tb.Helper()
	src, err := media.OpenFile(video)
	if err != nil {
		tb.Fatal(err)
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
