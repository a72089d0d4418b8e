package footfall_test

import (
	"image"
	"math"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/synth"
)

// TestGated runs a scene through a gated people detector: first nobody,
// then a person walks across the line and stands still until the motion
// check has taken them into its background, then leaves. The people
// detector must not run while the scene is empty (but for rechecks), must
// run at its rate while anyone is there, moving or not, and the crossing
// is counted.
func TestGated(t *testing.T) {
	const fps = 25.0
	size := image.Pt(640, 360)
	line := footfall.Line{Name: "door", A: image.Pt(320, 40), B: image.Pt(320, 350)} // left is x > 320: walking left is in
	walkers := []synth.Walker{
		{From: image.Pt(560, 250), To: image.Pt(160, 250), Start: 75, End: 150, Height: 100},
		{From: image.Pt(160, 250), To: image.Pt(160, 250), Start: 151, End: 350, Height: 100}, // stands still for 8 s
	}
	const frames = 550 // 22 s; the scene is empty again from frame 351
	// A short motion history, so a person standing still fades out of the
	// motion check within seconds.
	mo := footfall.DefaultGateMotionOptions
	mo.History = 20
	tests := []struct {
		name  string
		o     footfall.GateOptions
		every float64 // expected runs per second while people are there
	}{
		{"at most 10 Hz, recheck every 2 s", footfall.GateOptions{Every: 100 * time.Millisecond, Recheck: 2 * time.Second}, 10},
		{"every frame, no rechecks", footfall.GateOptions{}, fps},
		{"at most 5 Hz", footfall.GateOptions{Every: 200 * time.Millisecond}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			people := &oracle{walkers: walkers}
			motion, err := footfall.NewMotion(mo)
			if err != nil {
				t.Fatal(err)
			}
			g, err := footfall.NewGated(people, motion, tc.o)
			if err != nil {
				motion.Close()
				t.Fatal(err)
			}
			c, err := footfall.NewCounter(g, []footfall.Line{line}, footfall.DefaultTrackOptions)
			if err != nil {
				g.Close()
				t.Fatal(err)
			}
			defer c.Close()
			// The same motion check beside it shows when nothing moves.
			still, err := footfall.NewMotion(mo)
			if err != nil {
				t.Fatal(err)
			}
			defer still.Close()
			moving := make([]bool, frames)
			scene := synth.NewWalkers(size, walkers, 5)
			defer scene.Close()
			frame := gocv.NewMat()
			defer frame.Close()
			for f := 0; f < frames; f++ {
				scene.Render(f, &frame)
				people.frame = f
				if _, err := c.Frame(frame, time.Duration(float64(f)/fps*float64(time.Second))); err != nil {
					t.Fatal(err)
				}
				blobs, err := still.Detect(frame)
				if err != nil {
					t.Fatal(err)
				}
				moving[f] = len(blobs) > 0
			}
			if got := c.Totals()[0]; got.In != 1 || got.Out != 0 {
				t.Errorf("in/out = %d/%d, want 1/0", got.In, got.Out)
			}
			ran, skipped := g.Runs()
			if ran != len(people.runs) || ran+skipped != frames {
				t.Errorf("Runs() = %d, %d; the detector ran %d times in %d frames", ran, skipped, len(people.runs), frames)
			}
			// Empty scene after warm-up: rechecks only.
			wantRechecks := 0
			if tc.o.Recheck > 0 {
				wantRechecks = int(60 / fps / tc.o.Recheck.Seconds()) // frames 10-70
			}
			if n := people.runsIn(10, 70); n > wantRechecks+1 {
				t.Errorf("ran %d times on the empty frames 10-70, want at most %d", n, wantRechecks+1)
			}
			// While the person walks (3 s) and stands (8 s), at the rate.
			for _, span := range [][2]int{{80, 150}, {160, 340}} {
				want := float64(span[1]-span[0]) / fps * tc.every
				if n := people.runsIn(span[0], span[1]); math.Abs(float64(n)-want) > 0.1*want+1 {
					t.Errorf("ran %d times on frames %d-%d, want about %.0f", n, span[0], span[1], want)
				}
			}
			// The test is only worth something if the motion check lost
			// the person standing still.
			stillFrames := 0
			for f := 160; f < 340; f++ {
				if !moving[f] {
					stillFrames++
				}
			}
			if stillFrames < 100 {
				t.Errorf("the motion check saw the standing person move on %d of 180 frames; the scene does not test standing still", 180-stillFrames)
			}
			// Once they have gone (and their track has ended), rechecks only.
			if n := people.runsIn(450, frames); n > int(100/fps/max(tc.o.Recheck.Seconds(), 1))+1 {
				t.Errorf("ran %d times on the empty frames 450-%d", n, frames)
			}
		})
	}
}

func TestNewGated(t *testing.T) {
	blobs, err := footfall.NewMotion(footfall.DefaultMotionOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	tests := []struct {
		name string
		det  footfall.PersonDetector
		o    footfall.GateOptions
		want string
	}{
		{"people detector", &oracle{}, footfall.DefaultGateOptions, ""},
		{"no detector", nil, footfall.DefaultGateOptions, "no people detector"},
		{"a blob detector", blobs, footfall.DefaultGateOptions, "finds blobs"},
		{"negative Every", &oracle{}, footfall.GateOptions{Every: -1}, "Every"},
		{"Every a minute", &oracle{}, footfall.GateOptions{Every: time.Minute}, "Every"},
		{"negative Recheck", &oracle{}, footfall.GateOptions{Recheck: -time.Second}, "Recheck"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := footfall.NewGated(tc.det, nil, tc.o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if g != nil {
				if g.Finds() != footfall.FindsPeople {
					t.Errorf("Finds() = %v", g.Finds())
				}
				g.Close()
				if o := tc.det.(*oracle); !o.closed {
					t.Error("Close did not close the people detector")
				}
			}
		})
	}
}
