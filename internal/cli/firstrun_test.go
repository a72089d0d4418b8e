package cli_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-edge/veil/testkit/testenv"
)

// TestNewcomerMessages runs the real binary as a newcomer would and reads
// its terminal: a file that is not a video gets veil's one clear message
// and none of OpenCV's, FFmpeg's or GStreamer's own lines (they come back
// with --log-level debug); a truncated video is redacted as far as it goes
// and veil says that it ended early, with the frames read against the
// frames the container promised.
func TestNewcomerMessages(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	bin := testenv.BuildVeil(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(text, []byte("shopping list\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(testenv.VTest)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.avi")
	if err := os.WriteFile(truncated, whole[:300<<10], 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"redact", "--models-dir", testenv.ModelsDir()}, args...)...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "VEIL_") && !strings.HasPrefix(kv, "OPENCV_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Stdin = io.NopCloser(strings.NewReader(""))
		err := cmd.Run()
		return out.String(), err
	}
	foreign := regexp.MustCompile(`\[ ?(WARN|ERROR|INFO)|moov atom|Assertion failed|GStreamer|\[mov,|\[msmpeg4`)

	out, err := run("-i", text, "-o", filepath.Join(dir, "out.mp4"))
	if err == nil || !strings.Contains(out, "not a video file OpenCV can read") {
		t.Errorf("not a video: err %v, output:\n%s", err, out)
	}
	if m := foreign.FindString(out); m != "" {
		t.Errorf("not a video: the terminal shows OpenCV's own lines (%q):\n%s", m, out)
	}
	out, _ = run("-i", text, "-o", filepath.Join(dir, "out.mp4"), "--log-level", "debug")
	if foreign.FindString(out) == "" {
		t.Errorf("--log-level debug: OpenCV's own lines are not shown:\n%s", out)
	}

	out, err = run("-i", truncated, "-o", filepath.Join(dir, "cut-out.avi"))
	if err != nil {
		t.Fatalf("truncated video: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`input ended early: read (\d+) of the 795 frames the file promised`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("truncated video: no word that the input ended early:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 || n >= 795 {
		t.Errorf("truncated video: %d frames read", n)
	}
	if f := foreign.FindString(out); f != "" {
		t.Errorf("truncated video: the terminal shows FFmpeg's own lines (%q):\n%s", f, out)
	}
	complete := filepath.Join(dir, "complete.avi")
	tinyVideo(t, complete)
	out, err = run("-i", complete, "-o", filepath.Join(dir, "complete-out.avi"))
	if err != nil || strings.Contains(out, "ended early") {
		t.Errorf("complete video: err %v, output:\n%s", err, out)
	}
}
