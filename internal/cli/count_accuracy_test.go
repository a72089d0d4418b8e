package cli_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veil-edge/veil/testkit/testenv"
)

// countTruth is one hand-counted line of vtest.avi (testdata/footfall).
type countTruth struct {
	Name string `json:"name"`
	Line [4]int `json:"line"`
	In   int    `json:"in"`
	Out  int    `json:"out"`
}

// heldOut are the lines counted by hand and kept aside before the person
// detector and its tracker were tuned; the others (L1, L2, L3, V6, D1, H3)
// were looked at while tuning. See testdata/footfall/README.md.
var heldOut = []string{"V4", "V5", "D2", "V7"}

// maxLineErrors bounds each line's error (|in - true in| + |out - true
// out|) at what the defaults gave when they were chosen (2026-12-07: held
// out 6 of 114 crossings, 5.3 %; tuning 7 of 112, 6.2 %). A line not
// listed here is a new line: give it its bound once it is measured.
var maxLineErrors = map[string]int{
	"L1": 0, "L2": 1, "L3": 0, "D1": 3, "H3": 3, "V6": 0, // tuning
	"V4": 1, "V5": 2, "D2": 3, "V7": 0, // held out
}

// loadCountTruth reads every hand-counted line of vtest.avi.
func loadCountTruth(t *testing.T) []countTruth {
	t.Helper()
	var all []countTruth
	var first struct{ Lines []countTruth }
	b, err := os.ReadFile("../../testdata/footfall/vtest_truth.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &first); err != nil {
		t.Fatal(err)
	}
	all = append(all, first.Lines...)
	files, _ := filepath.Glob("../../testdata/footfall/labels/*.json")
	for _, f := range files {
		var l countTruth
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all = append(all, l)
	}
	return all
}

// TestCountAccuracy runs veil count --json with its default settings, as a
// user would, on every hand-counted line of vtest.avi at once and compares
// each line's in and out with the hand count, reporting every line.
//
// The targets are at most 3 % absolute error over the held-out
// lines' true crossings and no line off by more than 10 %. They are not met
// yet (docs/RESULTS.md): the test reports how far they are and fails only
// when counting gets worse than when the defaults were chosen (the
// regression bounds below), so a change that costs accuracy cannot land.
func TestCountAccuracy(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	needModels(t)
	truth := loadCountTruth(t)
	args := []string{"count", "--input", testenv.VTest, "--json", "--models-dir", testenv.ModelsDir()}
	for _, l := range truth {
		args = append(args, "--line", fmt.Sprintf("%d,%d,%d,%d", l.Line[0], l.Line[1], l.Line[2], l.Line[3]))
	}
	out, err := veil(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Lines []struct {
			In, Out int
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Lines) != len(truth) {
		t.Fatalf("veil count --json: %v\n%s", err, out)
	}
	type sum struct{ errs, crossings int }
	sets := map[bool]*sum{true: {}, false: {}}
	var report strings.Builder
	fmt.Fprintf(&report, "%-4s %-9s %-20s %8s %8s %6s\n", "line", "set", "A -> B", "in", "out", "error")
	for i, l := range truth {
		got := res.Lines[i]
		e := abs(got.In-l.In) + abs(got.Out-l.Out)
		n := l.In + l.Out
		held := slices.Contains(heldOut, l.Name)
		sets[held].errs += e
		sets[held].crossings += n
		set := "tuning"
		if held {
			set = "held-out"
		}
		rel := float64(e) / math.Max(1, float64(n))
		fmt.Fprintf(&report, "%-4s %-9s %-20s %3d/%-4d %3d/%-4d %5.1f%%\n", l.Name, set, fmt.Sprint(l.Line), got.In, l.In, got.Out, l.Out, 100*rel)
		if rel > 0.10 {
			fmt.Fprintf(&report, "     target missed: more than 10 %% off\n")
		}
		if bound, ok := maxLineErrors[l.Name]; !ok || e > bound {
			t.Errorf("%s (%s): off by %d crossings; the regression bound is %d", l.Name, set, e, bound)
		}
	}
	for _, held := range []bool{true, false} {
		s := sets[held]
		if s.crossings == 0 {
			continue
		}
		rel := float64(s.errs) / float64(s.crossings)
		name := map[bool]string{true: "held-out", false: "tuning"}[held]
		fmt.Fprintf(&report, "%s lines: %d of %d crossings wrong (%.1f %%)\n", name, s.errs, s.crossings, 100*rel)
		if rel > 0.03 {
			fmt.Fprintf(&report, "     target missed: more than 3 %%\n")
		}
	}
	if sets[true].crossings == 0 {
		t.Error("no held-out line found in testdata/footfall/labels")
	}
	t.Logf("veil count on vtest.avi, default settings:\n%s", report.String())
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
