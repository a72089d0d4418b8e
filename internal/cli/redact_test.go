package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/internal/cli"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// veil runs the veil command tree in-process and returns what it printed on
// stdout and its error.
func veil(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := cli.NewRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if errOut.Len() > 0 {
		t.Logf("veil %s: stderr:\n%s", strings.Join(args, " "), errOut.String())
	}
	return out.String(), err
}

// needModels skips (or fails under CI) unless every verified model is present.
func needModels(t *testing.T) {
	t.Helper()
	if _, err := models.Verify(testenv.ModelsDir()); err != nil {
		testenv.Missing(t, "models not fetched: "+err.Error())
	}
}

// writeVideo writes frames as an MJPEG .avi; with no frames it leaves a
// file with only a container header.
func writeVideo(t *testing.T, path string, fps float64, size image.Point, frames []gocv.Mat) {
	t.Helper()
	w, err := gocv.VideoWriterFile(path, "MJPG", fps, size.X, size.Y, true)
	if err != nil || !w.IsOpened() {
		if w != nil {
			w.Close()
		}
		t.Fatalf("cannot write %s: %v", path, err)
	}
	for _, f := range frames {
		if err := w.Write(f); err != nil {
			w.Close()
			t.Fatalf("writing %s: %v", path, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing %s: %v", path, err)
	}
}

// tinyVideo writes a valid 3-frame 64x48 .avi of flat colours.
func tinyVideo(t *testing.T, path string) {
	t.Helper()
	var frames []gocv.Mat
	for i := range 3 {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(40*i), 128, 200, 0), 48, 64, gocv.MatTypeCV8UC3)
		defer m.Close()
		frames = append(frames, m)
	}
	writeVideo(t, path, 10, image.Pt(64, 48), frames)
}

// listDir returns the names in dir, or nil if it cannot be read.
func listDir(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestRedactBadInput: every way the input or output can be wrong fails with
// an error naming the file and the problem, and leaves nothing behind: no
// file at the output path and no partial file in the output directory; in
// both schedules.
func TestRedactBadInput(t *testing.T) {
	root := os.Geteuid() == 0
	cases := []struct {
		name string
		// setup prepares inDir and outDir and returns --input and --output.
		setup func(t *testing.T, inDir, outDir string) (in, out string)
		skip  bool     // cannot be set up here (chmod means nothing to root)
		want  []string // substrings of the error; "IN" and "OUT" stand for the paths
	}{
		{
			name: "missing input",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				return filepath.Join(inDir, "missing.mp4"), filepath.Join(outDir, "out.mp4")
			},
			want: []string{"input IN", "no such file or directory"},
		},
		{
			name: "input is a directory",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				return inDir, filepath.Join(outDir, "out.mp4")
			},
			want: []string{"input IN", "is a directory"},
		},
		{
			name: "unreadable input",
			skip: root,
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				if err := os.Chmod(in, 0); err != nil {
					t.Fatal(err)
				}
				return in, filepath.Join(outDir, "out.mp4")
			},
			want: []string{"input IN", "permission denied"},
		},
		{
			name: "text, not video",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.mp4")
				if err := os.WriteFile(in, []byte("this is a shopping list, not a video\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return in, filepath.Join(outDir, "out.mp4")
			},
			want: []string{"input IN", "not a video file"},
		},
		{
			// OpenCV opens a header-only .avi (size known, no frames), so
			// this gets past CreateFile: the partial output must be removed.
			name: "zero-frame video",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "empty.avi")
				writeVideo(t, in, 10, image.Pt(64, 48), nil)
				return in, filepath.Join(outDir, "out.mp4")
			},
			want: []string{"input IN", "no frames"},
		},
		{
			name: "output directory missing",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				return in, filepath.Join(outDir, "nodir", "out.mp4")
			},
			want: []string{"output OUT", "nodir does not exist"},
		},
		{
			name: "output directory is a file",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				notDir := filepath.Join(outDir, "file")
				if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				return in, filepath.Join(notDir, "out.mp4")
			},
			want: []string{"output OUT", "file is not a directory"},
		},
		{
			name: "output directory read-only",
			skip: root,
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				if err := os.Chmod(outDir, 0o555); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(outDir, 0o755) })
				return in, filepath.Join(outDir, "out.mp4")
			},
			want: []string{"output OUT", "not writable", "permission denied"},
		},
		{
			name: "output directory not searchable",
			skip: root,
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				if err := os.Mkdir(filepath.Join(outDir, "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(outDir, 0); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(outDir, 0o755) })
				return in, filepath.Join(outDir, "sub", "out.mp4")
			},
			want: []string{"output OUT", "permission denied"},
		},
		{
			name: "output extension without a codec",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				return in, filepath.Join(outDir, "out.txt")
			},
			want: []string{"output OUT", `extension ".txt"`},
		},
		{
			name: "output is the input",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				return in, in
			},
			want: []string{"output OUT", "is the input file"},
		},
		{
			name: "output is the input spelled differently",
			setup: func(t *testing.T, inDir, outDir string) (string, string) {
				in := filepath.Join(inDir, "in.avi")
				tinyVideo(t, in)
				return in, inDir + "/./../" + filepath.Base(inDir) + "/in.avi"
			},
			want: []string{"output OUT", "is the input file"},
		},
	}
	for _, tc := range cases {
		for _, schedule := range []string{"file", "live"} {
			t.Run(tc.name+"/"+schedule, func(t *testing.T) {
				if tc.skip {
					t.Skip("running as root: file permissions do not apply")
				}
				base := t.TempDir()
				inDir, outDir := filepath.Join(base, "in"), filepath.Join(base, "out")
				for _, d := range []string{inDir, outDir} {
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				in, out := tc.setup(t, inDir, outDir)
				outParent := filepath.Dir(out)
				before := listDir(outParent)
				inBefore, _ := os.ReadFile(in)

				_, err := veil(t, "redact", "--schedule", schedule, "--input", in, "--output", out, "--models-dir", testenv.ModelsDir())
				if err == nil {
					t.Fatal("redact succeeded")
				}
				t.Logf("error: %v", err)
				// Let the checks below see into directories a case locked.
				if err := os.Chmod(outDir, 0o755); err != nil {
					t.Fatal(err)
				}
				paths := strings.NewReplacer("IN", in, "OUT", out)
				for _, w := range tc.want {
					w = paths.Replace(w)
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}

				if filepath.Clean(out) == filepath.Clean(in) {
					if after, err := os.ReadFile(in); err != nil || !bytes.Equal(after, inBefore) {
						t.Errorf("input changed or gone (%v)", err)
					}
				} else if _, err := os.Lstat(out); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
					t.Errorf("output %s exists after a failed run (lstat: %v)", out, err)
				}
				if after := listDir(outParent); !slices.Equal(before, after) {
					t.Errorf("output directory %s changed: before %q, after %q", outParent, before, after)
				}
				for _, name := range listDir(outDir) {
					if strings.Contains(name, ".partial-") {
						t.Errorf("partial file %s left in %s", name, outDir)
					}
				}
			})
		}
	}
}

// probe opens a video and returns its declared size and fps and the number
// of frames that actually decode.
type probe struct {
	w, h, frames int
	fps          float64
}

func probeVideo(t *testing.T, path string) probe {
	t.Helper()
	c, err := gocv.VideoCaptureFile(path)
	if err != nil || !c.IsOpened() {
		if c != nil {
			c.Close()
		}
		t.Fatalf("cannot open %s: %v", path, err)
	}
	defer c.Close()
	p := probe{
		w:   int(c.Get(gocv.VideoCaptureFrameWidth)),
		h:   int(c.Get(gocv.VideoCaptureFrameHeight)),
		fps: c.Get(gocv.VideoCaptureFPS),
	}
	m := gocv.NewMat()
	defer m.Close()
	for c.Read(&m) && !m.Empty() {
		if m.Cols() != p.w || m.Rows() != p.h {
			t.Errorf("%s frame %d is %dx%d, container says %dx%d", path, p.frames, m.Cols(), m.Rows(), p.w, p.h)
		}
		p.frames++
	}
	return p
}

// frameAt decodes frame i of a video; the caller closes it.
func frameAt(t *testing.T, path string, i int) gocv.Mat {
	t.Helper()
	c, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatalf("cannot open %s: %v", path, err)
	}
	defer c.Close()
	m := gocv.NewMat()
	for k := 0; k <= i; k++ {
		if !c.Read(&m) || m.Empty() {
			m.Close()
			t.Fatalf("%s has no frame %d", path, i)
		}
	}
	return m
}

// vtestClip writes the first n frames of vtest.avi to an MJPEG .avi with the
// same size and frame rate.
func vtestClip(t *testing.T, path string, n int) {
	t.Helper()
	testenv.Need(t, testenv.VTest)
	c, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	size := image.Pt(int(c.Get(gocv.VideoCaptureFrameWidth)), int(c.Get(gocv.VideoCaptureFrameHeight)))
	fps := c.Get(gocv.VideoCaptureFPS)
	if size != image.Pt(768, 576) || math.Abs(fps-10) > 0.01 {
		t.Fatalf("vtest.avi is %v @ %.2f fps; want 768x576 @ 10", size, fps)
	}
	frames := make([]gocv.Mat, 0, n)
	defer func() {
		for _, f := range frames {
			f.Close()
		}
	}()
	for range n {
		m := gocv.NewMat()
		if !c.Read(&m) || m.Empty() {
			m.Close()
			t.Fatalf("vtest.avi has fewer than %d frames", n)
		}
		frames = append(frames, m)
	}
	writeVideo(t, path, fps, size, frames)
}

// report is the part of veil's --report JSON the tests check.
type report struct {
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	FPS      float64 `json:"fps"`
	Frames   int     `json:"frames"`
	Whole    int     `json:"frames_redacted_whole"`
	PerFrame []struct {
		Frame int  `json:"frame"`
		Whole bool `json:"whole"`
	} `json:"per_frame"`
}

func readReport(t *testing.T, path string) report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %s does not parse: %v", path, err)
	}
	return r
}

// sharpness is the variance of the Laplacian of the central half of a
// frame, in grey: high for a scene with edges, low once it is blurred.
func sharpness(t *testing.T, frame gocv.Mat) float64 {
	t.Helper()
	w, h := frame.Cols(), frame.Rows()
	roi := frame.Region(image.Rect(w/4, h/4, 3*w/4, 3*h/4))
	defer roi.Close()
	grey, lap, mean, std := gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer grey.Close()
	defer lap.Close()
	defer mean.Close()
	defer std.Close()
	gocv.CvtColor(roi, &grey, gocv.ColorBGRToGray)
	gocv.Laplacian(grey, &lap, gocv.MatTypeCV64F, 3, 1, 0, gocv.BorderDefault)
	gocv.MeanStdDev(lap, &mean, &std)
	s := std.GetDoubleAt(0, 0)
	return s * s
}

// meanAbsDiff is the mean absolute difference per channel value between the
// central halves of two frames.
func meanAbsDiff(t *testing.T, a, b gocv.Mat) float64 {
	t.Helper()
	w, h := a.Cols(), a.Rows()
	r := image.Rect(w/4, h/4, 3*w/4, 3*h/4)
	ra, rb := a.Region(r), b.Region(r)
	defer ra.Close()
	defer rb.Close()
	d := gocv.NewMat()
	defer d.Close()
	gocv.AbsDiff(ra, rb, &d)
	s := d.Mean()
	return (s.Val1 + s.Val2 + s.Val3) / 3
}

// TestRedactVTest redacts the first 40 frames of vtest.avi and checks the
// output keeps size, frame count and rate, the report and the summary; then
// redacts them with no models at all, which must succeed with every frame
// redacted whole (fail-closed).
func TestRedactVTest(t *testing.T) {
	const n = 40
	dir := t.TempDir()
	in := filepath.Join(dir, "vtest40.avi")
	vtestClip(t, in, n)
	inP := probeVideo(t, in)
	if inP.frames != n {
		t.Fatalf("test input has %d frames, want %d", inP.frames, n)
	}

	checkRun := func(t *testing.T, out, rep string, modelsDir string) report {
		t.Helper()
		stdout, err := veil(t, "redact", "--input", in, "--output", out, "--report", rep, "--models-dir", modelsDir)
		if err != nil {
			t.Fatalf("redact: %v", err)
		}
		t.Logf("stdout:\n%s", stdout)
		for _, w := range []string{"redacted 40 frames (768x576 @ 10.00 fps)", "frames redacted whole", "output: " + out, "report: " + rep} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout does not contain %q", w)
			}
		}
		outP := probeVideo(t, out)
		if outP.w != inP.w || outP.h != inP.h || outP.frames != inP.frames || math.Abs(outP.fps-inP.fps) > 0.01 {
			t.Errorf("output %dx%d, %d frames @ %.3f fps; input %dx%d, %d frames @ %.3f fps",
				outP.w, outP.h, outP.frames, outP.fps, inP.w, inP.h, inP.frames, inP.fps)
		}
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("output mode: %v, %v; want 0644", st.Mode(), err)
		}
		r := readReport(t, rep)
		if r.Frames != n || len(r.PerFrame) != n {
			t.Fatalf("report: frames %d, %d per_frame records; want %d", r.Frames, len(r.PerFrame), n)
		}
		if r.Width != 768 || r.Height != 576 || math.Abs(r.FPS-10) > 0.01 {
			t.Errorf("report: %dx%d @ %.3f; want 768x576 @ 10", r.Width, r.Height, r.FPS)
		}
		whole := 0
		for i, f := range r.PerFrame {
			if f.Frame != i {
				t.Errorf("per_frame[%d].frame = %d", i, f.Frame)
			}
			if f.Whole {
				whole++
			}
		}
		if whole != r.Whole {
			t.Errorf("report: frames_redacted_whole %d, but %d per_frame records say whole", r.Whole, whole)
		}
		for _, name := range listDir(filepath.Dir(out)) {
			if strings.Contains(name, ".partial-") {
				t.Errorf("partial file %s left behind", name)
			}
		}
		return r
	}

	// Frame 20: mid-clip, well past any start-up.
	const probeFrame = 20
	inFrame := frameAt(t, in, probeFrame)
	defer inFrame.Close()
	inSharp := sharpness(t, inFrame)

	t.Run("models", func(t *testing.T) {
		needModels(t)
		out := filepath.Join(dir, "out.avi")
		r := checkRun(t, out, filepath.Join(dir, "rep.json"), testenv.ModelsDir())
		if r.Whole == n {
			t.Errorf("with the verified models every frame was redacted whole: the detector did not run")
		}
		f := frameAt(t, out, probeFrame)
		defer f.Close()
		s, d := sharpness(t, f), meanAbsDiff(t, inFrame, f)
		t.Logf("frame %d: sharpness in %.1f out %.1f (ratio %.2f), mean abs diff %.2f; %d frames whole",
			probeFrame, inSharp, s, s/inSharp, d, r.Whole)
		// The control for the fail-closed check below: with faces found and
		// only they redacted, the centre of the street scene survives the
		// MJPEG round trip nearly unchanged (measured: ratio 0.97, diff 1.3).
		if s/inSharp < 0.5 || d > 10 {
			t.Errorf("frame %d centre changed too much for face-only redaction: sharpness ratio %.2f (want >= 0.5), mean abs diff %.2f (want <= 10)",
				probeFrame, s/inSharp, d)
		}
	})

	t.Run("no models: fail closed", func(t *testing.T) {
		out := filepath.Join(dir, "closed.avi")
		r := checkRun(t, out, filepath.Join(dir, "closed.json"), t.TempDir())
		if r.Whole != n {
			t.Errorf("frames_redacted_whole = %d, want all %d", r.Whole, n)
		}
		f := frameAt(t, out, probeFrame)
		defer f.Close()
		s, d := sharpness(t, f), meanAbsDiff(t, inFrame, f)
		t.Logf("frame %d: sharpness in %.1f out %.1f (ratio %.3f), mean abs diff %.2f", probeFrame, inSharp, s, s/inSharp, d)
		// A whole-frame redaction fills the frame (blur.Redactor: FillColor
		// plus a label at the edge), so the centre has no edges left and
		// is far from the scene: measured ratio 0.000, diff 84. Any blur
		// strong enough to hide a face would still lose over 90% of the
		// Laplacian variance; the MJPEG round trip alone loses 3%.
		if s/inSharp > 0.1 || d < 30 {
			t.Errorf("frame %d is not redacted whole: sharpness ratio %.3f (want <= 0.1), mean abs diff %.2f (want >= 30)",
				probeFrame, s/inSharp, d)
		}
	})
}
