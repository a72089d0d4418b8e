package cli_test

import (
	"bytes"
	"context"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"
	"golang.org/x/crypto/bcrypt"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/cli"
	"github.com/veil-edge/veil/internal/leak"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/testkit/camtest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// veilIn runs the veil command tree in-process with stdin and returns what
// it printed on stdout and its error.
func veilIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := cli.NewRoot()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	t.Logf("veil %s:\n%s", strings.Join(args, " "), out.String())
	if errOut.Len() > 0 {
		t.Logf("stderr:\n%s", errOut.String())
	}
	return out.String(), err
}

// astronautCamera serves skimage's astronaut (a labelled face) as an HTTP
// MJPEG camera, and returns it and the raw picture.
func astronautCamera(t *testing.T) (*camtest.Camera, gocv.Mat) {
	t.Helper()
	testenv.Need(t, testenv.Astronaut)
	img := gocv.IMRead(testenv.Astronaut, gocv.IMReadColor)
	if img.Empty() {
		img.Close()
		t.Fatalf("cannot read %s", testenv.Astronaut)
	}
	t.Cleanup(func() { img.Close() })
	frames, err := camtest.Still(img)
	if err != nil {
		t.Fatal(err)
	}
	return camtest.Start(t, 10, frames, false), img
}

// astronautFace is the labelled face of astronaut.png.
func astronautFace() []synth.Face {
	f := testenv.AstronautFace
	return []synth.Face{{ID: 1, Box: image.Rect(f[0], f[1], f[2], f[3])}}
}

// faceLegible reports whether the labelled face of raw is legible in the
// JPEG picture at path (internal/leak's band-pass correlation).
func faceLegible(t *testing.T, raw gocv.Mat, path string) (bool, float64) {
	t.Helper()
	m := gocv.IMRead(path, gocv.IMReadColor)
	defer m.Close()
	if m.Empty() || m.Cols() != raw.Cols() || m.Rows() != raw.Rows() {
		t.Fatalf("snapshot %s: %dx%d, want the camera's %dx%d", path, m.Cols(), m.Rows(), raw.Cols(), raw.Rows())
	}
	r := leak.Compare(raw, m, astronautFace(), 0.25)
	return r.Boxes[0].Leak, r.Boxes[0].Corr
}

// writePassword writes a password file and returns its path.
func writePassword(t *testing.T, dir, pw string) string {
	t.Helper()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkWritten loads the written config as veil does and checks it is
// valid and mode 0640.
func checkWritten(t *testing.T, path string) (config.Config, []config.Camera) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("%s: mode %v, want 0640", path, st.Mode().Perm())
	}
	cfg, err := config.Load(path, nil, nil)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	cams, err := config.LoadCameras(path)
	if err != nil {
		t.Fatalf("LoadCameras: %v", err)
	}
	return cfg, cams
}

func TestInitFlags(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	face, raw := astronautCamera(t)
	tests := []struct {
		name      string
		detector  bool // the models are there
		args      []string
		camera    config.Camera
		face      bool   // the camera is astronautCamera: its face must not be legible
		output    string // in what veil init prints
		broker    string
		noLiveSet bool
	}{
		{
			name: "file camera", detector: true,
			args: []string{"--store", "shop-042", "--device", "box-1", "--camera", "door=" + testenv.VTest,
				"--line", "door:entrance:350,150,350,450", "--line", "door:side:0,300,200,300",
				"--broker", "ssl://hq.example.com:8883"},
			camera: config.Camera{Name: "door", Source: testenv.VTest, Loop: true, Lines: []config.CountLine{
				{Name: "entrance", Line: [4]int{350, 150, 350, 450}}, {Name: "side", Line: [4]int{0, 300, 200, 300}}}},
			output: "camera door: 768x576 @ 10.00 fps, video file",
			broker: "ssl://hq.example.com:8883",
		},
		{
			name: "network camera with a face", detector: true,
			args: []string{"--store", "shop-042", "--device", "box-2", "--camera", "sign=" + face.URL(),
				"--optin-zone", "sign:100,50,400,500"},
			camera: config.Camera{Name: "sign", Source: face.URL(), OptinZone: []int{100, 50, 400, 500}},
			face:   true,
			output: "camera sign: 512x512",
		},
		{
			name:   "no detector: the snapshot is redacted whole",
			args:   []string{"--store", "shop-042", "--device", "box-3", "--camera", "sign=" + face.URL()},
			camera: config.Camera{Name: "sign", Source: face.URL()},
			face:   true,
			output: "is redacted WHOLE: no face detector",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			models := filepath.Join(dir, "no-models")
			if tc.detector {
				needModels(t)
				models = testenv.ModelsDir()
			} else if err := os.Mkdir(models, 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "etc", "veil.yaml")
			args := append([]string{"init", "--yes", "--out", out, "--models-dir", models,
				"--password-file", writePassword(t, dir, "correct horse")}, tc.args...)
			stdout, err := veilIn(t, "", args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{tc.output, out + ": ok", "systemctl start veil"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			cfg, cams := checkWritten(t, out)
			if cfg.Site.Store != "shop-042" || cfg.MQTT.Broker != tc.broker || cfg.HTTP.User != "operator" {
				t.Errorf("site %+v, broker %q, user %q", cfg.Site, cfg.MQTT.Broker, cfg.HTTP.User)
			}
			if len(cams) != 1 || !sameCamera(cams[0], tc.camera) {
				t.Errorf("cameras %+v, want [%+v]", cams, tc.camera)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(cfg.HTTP.PasswordHash), []byte("correct horse")); err != nil {
				t.Errorf("http.password_hash does not verify the password: %v", err)
			}
			if raw, _ := os.ReadFile(out); bytes.Contains(raw, []byte("correct horse")) {
				t.Error("the password itself is in the file")
			}
			snap := filepath.Join(dir, "etc", "veil-snapshot-"+tc.camera.Name+".jpg")
			if !strings.Contains(stdout, snap) {
				t.Errorf("output does not say where the snapshot is (%s)", snap)
			}
			if _, err := os.Stat(snap); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			if tc.face {
				legible, corr := faceLegible(t, raw, snap)
				t.Logf("face band-pass correlation %.3f (legible above %.2f)", corr, leak.DefaultThreshold)
				if legible {
					t.Errorf("the face is legible in the snapshot (band-pass correlation %.3f)", corr)
				}
			}
		})
	}
}

// TestInitLeakCheckBites shows faceLegible finds a face left unredacted:
// the raw frame as a JPEG snapshot would be one.
func TestInitLeakCheckBites(t *testing.T) {
	_, raw := astronautCamera(t)
	path := filepath.Join(t.TempDir(), "raw.jpg")
	if !gocv.IMWrite(path, raw) {
		t.Fatal("cannot write", path)
	}
	if legible, corr := faceLegible(t, raw, path); !legible {
		t.Fatalf("an unredacted face is not found legible (correlation %.3f)", corr)
	}
}

func sameCamera(a, b config.Camera) bool {
	if a.Name != b.Name || a.Source != b.Source || a.Loop != b.Loop || len(a.Lines) != len(b.Lines) || len(a.OptinZone) != len(b.OptinZone) {
		return false
	}
	for i := range a.Lines {
		if a.Lines[i] != b.Lines[i] {
			return false
		}
	}
	for i := range a.OptinZone {
		if a.OptinZone[i] != b.OptinZone[i] {
			return false
		}
	}
	return true
}

func TestInitErrors(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	gone, _ := astronautCamera(t)
	gone.Stop() // nothing answers on its address now
	cam := "door=" + testenv.VTest
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"bad store", []string{"--store", "shop 42", "--camera", cam},
			[]string{`--store: site.store: "shop 42" has ' '; allowed 1..64 of A-Z a-z 0-9 . _ -`}},
		{"no store", []string{"--camera", cam}, []string{"--store: site.store: empty; allowed 1..64"}},
		{"line outside the frame", []string{"--store", "s", "--camera", cam, "--line", "door:entrance:350,150,350,900"},
			[]string{"--line door:entrance:350,150,350,900: cameras[0].lines[0].line:", "reaches outside the 768x576 frame", "allowed x1,y1,x2,y2: two distinct points with x in 0..768 and y in 0..576"}},
		{"unreachable camera", []string{"--store", "s", "--camera", "door=" + gone.URL()},
			[]string{"--camera door=" + gone.URL() + ": cameras[0].source:", "cannot open stream", "allowed an rtsp:// or rtsps:// URL"}},
		{"not a source", []string{"--store", "s", "--camera", "door=ftp://10.0.0.5/x"},
			[]string{`cameras[0].source: "ftp://10.0.0.5/x" is not a camera URL; allowed an rtsp://`}},
		{"line of no camera", []string{"--store", "s", "--camera", cam, "--line", "till:entrance:1,2,3,4"},
			[]string{`--line till:entrance:1,2,3,4: camera "till" is not a --camera; allowed door`}},
		{"bad broker", []string{"--store", "s", "--broker", "hq.example.com"},
			[]string{`--broker: mqtt.broker: "hq.example.com" is not a broker URL; allowed`}},
		{"zone outside the frame", []string{"--store", "s", "--camera", cam, "--optin-zone", "door:700,500,800,600"},
			[]string{`cameras[0].optin_zone: "700,500,800,600" is not an area of the 768x576 frame; allowed x0,y0,x1,y1 with 0 <= x0 < x1 <= 768`}},
		{"short password", []string{"--store", "s", "--password-stdin"},
			[]string{"operator password: http.password_hash: a password of 3 bytes; allowed a password of 8..72 bytes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "veil.yaml")
			args := append([]string{"init", "--yes", "--device", "box", "--out", out, "--models-dir", filepath.Join(dir), "--probe-timeout", "10s"}, tc.args...)
			_, err := veilIn(t, "abc\n", args...)
			if err == nil {
				t.Fatal("veil init succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a config was written")
			}
		})
	}
}

func TestInitRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "veil.yaml")
	old := []byte("site: {store: old, device: old}\n")
	if err := os.WriteFile(out, old, 0o640); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--yes", "--store", "new", "--device", "box", "--out", out}
	_, err := veilIn(t, "", args...)
	if err == nil || !strings.Contains(err.Error(), "--out "+out+": exists; veil init does not overwrite a config without --force") {
		t.Fatalf("err = %v, want a refusal naming --force", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
		t.Fatalf("the file changed:\n%s", got)
	}
	// Interactive: the question, answered no, is a refusal too.
	if _, err := veilIn(t, "n\n", append(args[:1:1], "--interactive", "--out", out)...); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("interactive, answered n: err = %v", err)
	}
	if _, err := veilIn(t, "", append(args, "--force")...); err != nil {
		t.Fatal(err)
	}
	cfg, _ := checkWritten(t, out)
	if cfg.Site.Store != "new" {
		t.Fatalf("site.store %q after --force, want new", cfg.Site.Store)
	}
}

func TestInitInteractive(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	needModels(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "veil.yaml")
	answers := []string{
		"shop 42", // store: invalid, asked again
		"shop-42", // store
		"",        // device: the --device default
		"door",    // camera 1 name
		"ftp://x", // camera door source: not a source, asked again
		testenv.VTest,
		"entrance",            // line 1 name
		"350,150,350,900",     // outside the frame: asked again
		"350,150,350,450",     // line entrance
		"",                    // line 2 name: no more lines
		"",                    // opt-in zone: none
		"",                    // camera 2 name: no more cameras
		"tcp://10.0.0.9:1883", // broker
		"",                    // head office's key: none
		"",                    // listen: default
		"",                    // user: the default
		"short",               // password: too short, asked again
		"correct horse",
	}
	stdout, err := veilIn(t, strings.Join(answers, "\n")+"\n",
		"init", "--interactive", "--device", "box-7", "--out", out, "--models-dir", testenv.ModelsDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"store name (site.store: the shop, e.g. shop-042): ",
		`  site.store: "shop 42" has ' '; allowed 1..64 of A-Z a-z 0-9 . _ -`,
		"device name (site.device: this box, unique across all stores) [box-7]: ",
		`  cameras[0].source: "ftp://x" is not a camera URL; allowed`,
		"camera door: 768x576 @ 10.00 fps",
		"  cameras[0].lines[0].line: line \"entrance\": (350,150)-(350,900) reaches outside the 768x576 frame; allowed",
		"login name (http.user) [operator]: ",
		"allowed a password of 8..72 bytes",
		out + ": ok",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(stdout, "store name (site.store"); n != 2 {
		t.Errorf("asked for the store %d times, want 2 (once more after the invalid answer)", n)
	}
	cfg, cams := checkWritten(t, out)
	if cfg.Site.Store != "shop-42" || cfg.Site.Device != "box-7" || cfg.MQTT.Broker != "tcp://10.0.0.9:1883" {
		t.Errorf("site %+v, broker %q", cfg.Site, cfg.MQTT.Broker)
	}
	want := config.Camera{Name: "door", Source: testenv.VTest, Loop: true, Lines: []config.CountLine{{Name: "entrance", Line: [4]int{350, 150, 350, 450}}}}
	if len(cams) != 1 || !sameCamera(cams[0], want) {
		t.Errorf("cameras %+v, want [%+v]", cams, want)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(cfg.HTTP.PasswordHash), []byte("correct horse")); err != nil {
		t.Errorf("http.password_hash does not verify the password: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "veil-snapshot-door.jpg")); err != nil {
		t.Errorf("snapshot: %v", err)
	}
}
