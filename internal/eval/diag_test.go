package eval_test

import (
	"context"
	"fmt"
	"image"
	"math"
	"os"
	"sort"
	"testing"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/eval"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/internal/testenv"
	"github.com/veil-edge/veil/pipeline"
)

// TestDiagnoseLeaks breaks leaks down by face source, angle and blur. It is a
// tuning aid, run with VEIL_DIAG=1.
func TestDiagnoseLeaks(t *testing.T) {
	if os.Getenv("VEIL_DIAG") == "" {
		t.Skip("tuning aid; set VEIL_DIAG=1")
	}
	c := app.DefaultDetect()
	if v := os.Getenv("VEIL_DIAG_THRESHOLD"); v != "" {
		fmt.Sscan(v, &c.ScoreThreshold)
	}
	if v := os.Getenv("VEIL_DIAG_EVERY"); v != "" {
		fmt.Sscan(v, &c.Every)
	}
	det, err := app.DetectorFactory(c, testenv.ModelsDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	type agg struct{ n, leaks int }
	by := map[string]*agg{}
	add := func(k string, leak bool) {
		a := by[k]
		if a == nil {
			a = &agg{}
			by[k] = a
		}
		a.n++
		if leak {
			a.leaks++
		}
	}
	po := pipeline.DefaultOptions
	po.Every = c.Every
	res, err := eval.Run(context.Background(), eval.Options{
		Synth: synth.Params{Seed: 1, Frames: 150}, Pipeline: po, Detector: det,
		Redact: blur.DefaultOptions, NonFacePad: 0.3, Dir: t.TempDir(),
		OnBox: func(i int, f synth.Face, r leak.BoxResult, reg []image.Rectangle, whole bool) {
			if r.Skipped {
				return
			}
			cover := 0.0
			for _, g := range reg {
				in := g.Intersect(f.Box)
				cover = math.Max(cover, float64(in.Dx()*in.Dy())/float64(f.Box.Dx()*f.Box.Dy()))
			}
			add(fmt.Sprintf("cover=%.1f", math.Floor(cover*5)/5), r.Leak)
			add("src="+f.Source, r.Leak)
			add(fmt.Sprintf("angle=%02.0f", math.Floor(math.Abs(f.Angle)/15)*15), r.Leak)
			add(fmt.Sprintf("blur=%v", f.Blur > 0 || f.MotionBlur > 0), r.Leak)
			add(fmt.Sprintf("visible<1=%v", f.Visible < 1), r.Leak)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("threshold %.2f every %d\n%s", c.ScoreThreshold, c.Every, res.Leak)
	var keys []string
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-28s %4d boxes %4d leaks %5.1f%%", k, by[k].n, by[k].leaks, 100*float64(by[k].leaks)/float64(by[k].n))
	}
}
