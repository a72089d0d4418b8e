package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-edge/veil/testkit/testenv"
)

// liveReport is the part of a --schedule live report the tests check.
type liveReport struct {
	Frames int `json:"frames"`
	Whole  int `json:"frames_redacted_whole"`
	Live   *struct {
		FramesIn int `json:"frames_in"`
		Shown    int `json:"frames_shown"`
		Dropped  int `json:"frames_dropped"`
		Whole    int `json:"frames_redacted_whole"`
	} `json:"live"`
	PerFrame []struct {
		Frame  int    `json:"frame"`
		Source *int   `json:"source_frame"`
		Whole  bool   `json:"whole"`
		Reason string `json:"reason"`
	} `json:"per_frame"`
}

// TestRedactSeveralInputs redacts two clips of vtest.avi at once, sharing
// one detector, in each schedule. Live: the clips play as two cameras into
// the live schedule; each output holds exactly the frames shown, the report
// maps them to rising input frames and adds up (frames in = shown +
// dropped), and the summary says so per input. File: every frame of each
// input is written, as with one input.
func TestRedactSeveralInputs(t *testing.T) {
	needModels(t)
	const n = 40 // 4 s at 10 fps
	for _, schedule := range []string{"live", "file"} {
		t.Run(schedule, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"redact", "--schedule", schedule, "--models-dir", testenv.ModelsDir()}
			var ins, outs, reps []string
			for i := range 2 {
				in := filepath.Join(dir, fmt.Sprintf("cam%d.avi", i))
				vtestClip(t, in, n)
				out, rep := filepath.Join(dir, fmt.Sprintf("shown%d.avi", i)), filepath.Join(dir, fmt.Sprintf("shown%d.json", i))
				ins, outs, reps = append(ins, in), append(outs, out), append(reps, rep)
				args = append(args, "-i", in, "-o", out, "--report", rep)
			}
			stdout, err := veil(t, args...)
			if err != nil {
				t.Fatalf("redact: %v", err)
			}
			t.Logf("stdout:\n%s", stdout)
			for i, in := range ins {
				var r liveReport
				readJSON(t, reps[i], &r)
				if schedule == "file" {
					if r.Live != nil {
						t.Errorf("file schedule report has live counts")
					}
					for _, w := range []string{"input " + in + ":\nredacted 40 frames (768x576 @ 10.00 fps)", "output: " + outs[i] + "\n"} {
						if !strings.Contains(stdout, w) {
							t.Errorf("stdout does not contain %q", w)
						}
					}
					if got := probeVideo(t, outs[i]).frames; got != n || r.Frames != n || len(r.PerFrame) != n {
						t.Errorf("output %d frames, report %d, %d per_frame; want %d", got, r.Frames, len(r.PerFrame), n)
					}
					for k, f := range r.PerFrame {
						if f.Frame != k || f.Source != nil {
							t.Errorf("per_frame[%d]: frame %d, source_frame %v; want %d and none", k, f.Frame, f.Source, k)
						}
					}
					continue
				}
				if r.Live == nil {
					t.Fatalf("report %s has no live counts", reps[i])
				}
				lc := r.Live
				summary := fmt.Sprintf("input %s (live schedule, 768x576 @ 10.00 fps): frames in %d, shown %d, dropped %d, redacted whole %d",
					in, lc.FramesIn, lc.Shown, lc.Dropped, lc.Whole)
				for _, w := range []string{summary, fmt.Sprintf("output: %s (%d frames", outs[i], lc.Shown), "report: " + reps[i]} {
					if !strings.Contains(stdout, w) {
						t.Errorf("stdout does not contain %q", w)
					}
				}
				if lc.FramesIn != n || lc.Shown+lc.Dropped != n || lc.Shown == 0 {
					t.Errorf("%s: frames in %d, shown %d, dropped %d; want %d in = shown + dropped", in, lc.FramesIn, lc.Shown, lc.Dropped, n)
				}
				if got := probeVideo(t, outs[i]); got.frames != lc.Shown || got.w != 768 || got.h != 576 {
					t.Errorf("output %s: %d frames %dx%d; want the %d frames shown at 768x576", outs[i], got.frames, got.w, got.h, lc.Shown)
				}
				if r.Frames != lc.Shown || len(r.PerFrame) != lc.Shown || r.Whole != lc.Whole {
					t.Errorf("report: frames %d, %d per_frame, whole %d; live says shown %d, whole %d", r.Frames, len(r.PerFrame), r.Whole, lc.Shown, lc.Whole)
				}
				prev, whole := -1, 0
				for k, f := range r.PerFrame {
					switch {
					case f.Frame != k:
						t.Errorf("per_frame[%d].frame = %d", k, f.Frame)
					case f.Source == nil:
						t.Errorf("per_frame[%d] has no source_frame", k)
					case *f.Source <= prev || *f.Source >= n:
						t.Errorf("per_frame[%d].source_frame = %d after %d; want rising, below %d", k, *f.Source, prev, n)
					default:
						prev = *f.Source
					}
					if f.Whole {
						whole++
						if f.Reason == "" {
							t.Errorf("per_frame[%d] redacted whole with no reason", k)
						}
					}
				}
				if whole != lc.Whole {
					t.Errorf("%d per_frame records say whole, the counts %d", whole, lc.Whole)
				}
			}
		})
	}
}

// TestRedactFlagErrors: flag combinations veil redact cannot run fail
// before anything is opened, with an error naming the flag and what it
// allows, and leave no file behind.
func TestRedactFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string // IN1, IN2, OUT1, OUT2, REP1 stand for paths
		want []string
	}{
		{"unknown schedule", []string{"--schedule", "later", "-i", "IN1", "-o", "OUT1"}, []string{`--schedule "later"`, "allowed file, live"}},
		{"every with live", []string{"--schedule", "live", "--every", "2", "-i", "IN1", "-o", "OUT1"}, []string{"--every", "--schedule file", "live.detect_every"}},
		{"fewer outputs", []string{"-i", "IN1", "-i", "IN2", "-o", "OUT1"}, []string{"--output given once for 2 --input", "one --output per --input"}},
		{"more outputs", []string{"--schedule", "live", "-i", "IN1", "-o", "OUT1", "-o", "OUT2"}, []string{"--output given twice for 1 --input"}},
		{"reports not one per input", []string{"-i", "IN1", "-i", "IN2", "-o", "OUT1", "-o", "OUT2", "--report", "REP1"}, []string{"--report given once for 2 --input", "or none"}},
		{"one output twice", []string{"-i", "IN1", "-i", "IN2", "-o", "OUT1", "-o", "OUT1"}, []string{"--output OUT1: given already as --output"}},
		{"report over an output", []string{"-i", "IN1", "-o", "OUT1", "--report", "OUT1"}, []string{"--report OUT1: given already as --output"}},
		{"output over another input", []string{"-i", "IN1", "-i", "IN2", "-o", "OUT1", "-o", "IN1"}, []string{"output IN1: is an input file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := map[string]string{}
			for _, k := range []string{"IN1", "IN2"} {
				paths[k] = filepath.Join(dir, strings.ToLower(k)+".avi")
				tinyVideo(t, paths[k])
			}
			for _, k := range []string{"OUT1", "OUT2"} {
				paths[k] = filepath.Join(dir, strings.ToLower(k)+".avi")
			}
			paths["REP1"] = filepath.Join(dir, "rep1.json")
			var r []string
			for k, v := range paths {
				r = append(r, k, v)
			}
			sub := strings.NewReplacer(r...)
			args := []string{"redact", "--models-dir", testenv.ModelsDir()}
			for _, a := range tc.args {
				args = append(args, sub.Replace(a))
			}
			before := listDir(dir)
			_, err := veil(t, args...)
			if err == nil {
				t.Fatal("redact succeeded")
			}
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if w = sub.Replace(w); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if after := listDir(dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("files changed: before %q, after %q", before, after)
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
}
