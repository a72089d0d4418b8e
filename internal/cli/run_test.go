package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunAndCheckReportEveryProblem: veil run and veil config check report
// the scalar keys' problems and the cameras list's problems together, each
// naming its key and what is allowed.
func TestRunAndCheckReportEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "veil.yaml")
	bad := "mqtt:\n  broker: \"http://hq:80\"\ncameras:\n  - {name: door, source: x.avi, view: fisheye, lines: [{name: a, line: [1, 1, 1, 1]}]}\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`mqtt.broker: "http://hq:80" is not a broker URL; allowed`,
		`cameras[0].view: "fisheye" is not supported; allowed angled, overhead`,
		`cameras[0].lines[0].line: [1 1 1 1] has both ends at one point`,
	}
	for _, args := range [][]string{{"config", "check", path}, {"run", "-c", path}} {
		_, err := veil(t, args...)
		if err == nil {
			t.Fatalf("veil %v accepted a bad file", args)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("veil %v: error %q lacks %q", args, err, w)
			}
		}
	}
	if _, err := veil(t, "run"); err == nil || !strings.Contains(err.Error(), "needs a config file with a cameras: list") {
		t.Errorf("veil run without -c: %v", err)
	}
}

// TestConfigCheckRun: veil config check --run also requires a camera, as
// veil run does (the package starts veil.service only then); a valid file
// without one passes the plain check.
func TestConfigCheckRun(t *testing.T) {
	dir := t.TempDir()
	noCams := filepath.Join(dir, "empty.yaml")
	withCam := filepath.Join(dir, "door.yaml")
	for path, body := range map[string]string{
		noCams:  "site: {store: s1, device: d1}\n",
		withCam: "site: {store: s1, device: d1}\ncameras:\n  - {name: door, source: \"rtsp://admin:s3cret@10.0.0.5/stream1\"}\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{[]string{"config", "check", noCams}, ""},
		{[]string{"config", "check", "--run", noCams}, "cameras: none; veil run needs at least one"},
		{[]string{"config", "check", "--run", withCam}, ""},
	} {
		out, err := veil(t, tc.args...)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("veil %v: %v, want %q", tc.args, err, tc.want)
		}
		// A camera URL's password is never printed.
		if strings.Contains(out, "s3cret") || err == nil && strings.Contains(strings.Join(tc.args, " "), withCam) && !strings.Contains(out, "rtsp://admin:***@10.0.0.5/stream1") {
			t.Errorf("veil %v printed:\n%s", tc.args, out)
		}
	}
}
