package cli_test

import (
	"bytes"
	"flag"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-edge/veil/internal/synth"
)

var update = flag.Bool("update", false, "rewrite golden files")

// walkersVideo renders a scene with known crossings of a vertical line at
// x=320 (from (320,40) down to (320,340)): two people walk leftwards across
// it ("in"), one rightwards ("out") in the third 4-second window, and one
// walks past the end of the line (not counted). Sizes follow a camera's
// perspective: people lower in the picture are taller.
func walkersVideo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "walkers.avi")
	ws := []synth.Walker{
		{From: image.Pt(600, 250), To: image.Pt(60, 250), Start: 5, End: 45, Height: 100},
		{From: image.Pt(600, 170), To: image.Pt(60, 170), Start: 12, End: 47, Height: 80},
		{From: image.Pt(40, 300), To: image.Pt(600, 300), Start: 62, End: 110, Height: 110},
		{From: image.Pt(600, 356), To: image.Pt(60, 356), Start: 10, End: 60, Height: 120},
	}
	if err := synth.WriteWalkersAVI(path, image.Pt(640, 360), 10, 120, ws, 3); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCountJSONGolden checks veil count --json's exact output against a
// golden file (-update rewrites it) on a scene whose crossings are known.
// The scene's figures are blocks a person detector does not take for
// people, so it counts with the motion detector.
func TestCountJSONGolden(t *testing.T) {
	in := walkersVideo(t)
	out, err := veil(t, "count", "--input", in, "--line", "320,40,320,340", "--line", "0,100,10,100", "--window", "4s", "--json", "--detector", "motion")
	if err != nil {
		t.Fatal(err)
	}
	golden := "../../testdata/count/walkers.golden.json"
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), want) {
		t.Errorf("veil count --json =\n%s\nwant (%s)\n%s", out, golden, want)
	}
	// The golden file itself must hold the scene's truth: 2 in, 1 out.
	if !strings.Contains(string(want), `{"line":[320,40,320,340],"in":2,"out":1,`) {
		t.Errorf("golden file does not hold the scene's known counts (2 in, 1 out): %s", want)
	}
}

func TestCountErrors(t *testing.T) {
	in := walkersVideo(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no line", []string{"count", "--input", in}, `required flag(s) "line" not set`},
		{"short line", []string{"count", "--input", in, "--line", "1,2,3"}, "want four whole numbers x1,y1,x2,y2"},
		{"point line", []string{"count", "--input", in, "--line", "5,5,5,5"}, "A and B are the same point"},
		{"outside frame", []string{"count", "--input", in, "--line", "0,0,900,10"}, "reaches outside the 640x360 frame"},
		{"missing input", []string{"count", "--input", "/nonexistent.avi", "--line", "1,2,3,4"}, "/nonexistent.avi"},
		{"bad view", []string{"count", "--input", in, "--line", "1,2,3,4", "--view", "fisheye"}, `--view "fisheye" is not supported; allowed angled, overhead`},
		{"bad window", []string{"count", "--input", in, "--line", "1,2,3,4", "--window", "10ms"}, "footfall.window: 10ms is out of range; allowed 1s..24h (set by --window)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := veil(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
