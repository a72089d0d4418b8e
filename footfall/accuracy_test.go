package footfall_test

import (
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/testkit/testenv"
)

// truth is testdata/footfall/vtest_truth.json: crossings of two lines in
// vtest.avi counted by hand, frame by frame.
type truth struct {
	Lines []struct {
		Name      string `json:"name"`
		Line      [4]int `json:"line"`
		In        int    `json:"in"`
		Out       int    `json:"out"`
		Crossings []struct {
			Frame int    `json:"frame"`
			Dir   string `json:"dir"`
		} `json:"crossings"`
	} `json:"lines"`
}

// maxMiscount bounds |counted - hand count| per line and direction, in
// crossings. The counter is exact on all three lines (47 crossings), so any
// miscount fails. The product target is ±3 % (docs/RESULTS.md).
const maxMiscount = 0

// TestVTestAccuracy counts people crossing the hand-counted lines of
// vtest.avi with the default settings and compares per line and direction.
func TestVTestAccuracy(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	data, err := os.ReadFile("../testdata/footfall/vtest_truth.json")
	if err != nil {
		testenv.Missing(t, "hand count: "+err.Error())
	}
	var tr truth
	if err := json.Unmarshal(data, &tr); err != nil {
		t.Fatal(err)
	}
	var lines []footfall.Line
	for _, l := range tr.Lines {
		lines = append(lines, footfall.Line{Name: l.Name, A: image.Pt(l.Line[0], l.Line[1]), B: image.Pt(l.Line[2], l.Line[3])})
	}
	det, err := footfall.NewMotion(footfall.DefaultMotionOptions)
	if err != nil {
		t.Fatal(err)
	}
	c, err := footfall.NewCounter(det, lines, footfall.DefaultTrackOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vc, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	fps := vc.Get(gocv.VideoCaptureFPS)
	frame := gocv.NewMat()
	defer frame.Close()
	var got []footfall.Crossing
	frames := map[footfall.Crossing]int{}
	for i := 0; vc.Read(&frame) && !frame.Empty(); i++ {
		cr, err := c.Frame(frame, time.Duration(float64(i)/fps*float64(time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range cr {
			got = append(got, x)
			frames[x] = i
		}
	}
	totals := c.Totals()
	worst, worstN := 0.0, 0
	for i, l := range tr.Lines {
		for _, d := range []struct {
			dir       string
			want, got int
		}{{"in", l.In, totals[i].In}, {"out", l.Out, totals[i].Out}} {
			e := relErr(d.got, d.want)
			worst = math.Max(worst, e)
			worstN = max(worstN, int(math.Abs(float64(d.got-d.want))))
			t.Logf("%s %-3s: counted %2d, hand count %2d, error %5.1f %%", l.Name, d.dir, d.got, d.want, 100*e)
		}
		var seen []string
		for _, x := range got {
			if x.Line == i {
				seen = append(seen, fmt.Sprintf("%d:%s", frames[x], x.Dir))
			}
		}
		t.Logf("%s counted crossings (frame:dir): %v", l.Name, seen)
	}
	if worst > 0.03 {
		t.Errorf("target not met: worst error %.1f %% > 3 %%", 100*worst)
	}
	if worstN > maxMiscount {
		t.Errorf("a line and direction is off by %d crossings; the regression bound is %d", worstN, maxMiscount)
	}
}

func relErr(got, want int) float64 {
	if want == 0 {
		return float64(got)
	}
	return math.Abs(float64(got-want)) / float64(want)
}
