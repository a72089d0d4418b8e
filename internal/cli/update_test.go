package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/firmware/agent"
	"github.com/veil-edge/veil/testkit/testenv"
)

// supervisor runs root/current/veil run like systemd's veil.service
// (ExecStart=/opt/veil/current/veil, Restart=always): whenever veil exits
// it is started again, on whatever current points at then.
type supervisor struct {
	t     *testing.T
	root  string
	cfg   string
	logs  testenv.Buffer
	mu    sync.Mutex
	cmd   *exec.Cmd
	runs  []string // the release each start ran
	stop  chan struct{}
	done  chan struct{}
	start time.Time
}

func supervise(t *testing.T, root, cfg string) *supervisor {
	s := &supervisor{t: t, root: root, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	go s.loop()
	t.Cleanup(func() {
		s.shutdown()
		if t.Failed() {
			t.Logf("veil output:\n%s", s.logs.String())
		}
	})
	return s
}

func (s *supervisor) loop() {
	defer close(s.done)
	for {
		target, _ := os.Readlink(filepath.Join(s.root, "current"))
		cmd := exec.Command(filepath.Join(s.root, "current", "veil"), "run", "-c", s.cfg)
		cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
		s.mu.Lock()
		s.runs = append(s.runs, strings.TrimPrefix(target, "releases/"))
		s.cmd = cmd
		s.mu.Unlock()
		fmt.Fprintf(&s.logs, "--- supervisor: starting %s\n", target)
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(&s.logs, "--- supervisor: %v\n", err)
		} else {
			err := cmd.Wait()
			fmt.Fprintf(&s.logs, "--- supervisor: veil exited: %v\n", err)
		}
		select {
		case <-s.stop:
			return
		case <-time.After(200 * time.Millisecond): // RestartSec
		}
	}
}

func (s *supervisor) shutdown() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.mu.Lock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.mu.Lock()
		_ = s.cmd.Process.Kill()
		s.mu.Unlock()
		<-s.done
	}
}

func (s *supervisor) started() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.runs...)
}

// waitJournal polls the install journal until ok accepts it.
func waitJournal(t *testing.T, s *supervisor, within time.Duration, what string, ok func(agent.State) bool) agent.State {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, _, err := agent.ReadStatus(s.root)
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: journal %+v (err %v); veil started on %v", what, st, err, s.started())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func healthz(t *testing.T, addr string, within time.Duration, ok func(box.Health) bool) box.Health {
	t.Helper()
	deadline := time.Now().Add(within)
	var h box.Health
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h = box.Health{}
			if json.Unmarshal(b, &h) == nil && ok(h) {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never as wanted; last %+v (err %v)", h, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// updateRepo is head office's update repository, made with veil release
// (one key per role, threshold 1) and served over loopback HTTP.
type updateRepo struct {
	t      *testing.T
	dir    string
	online []string // the online role key flags
	srv    *httptest.Server
}

func newUpdateRepo(t *testing.T, dir string) *updateRepo {
	t.Helper()
	key := func(n string) string { return filepath.Join(dir, "keys", n+".pem") }
	if _, err := veil(t, "release", "keygen", key("root"), key("targets"), key("snapshot"), key("timestamp")); err != nil {
		t.Fatal(err)
	}
	r := &updateRepo{t: t, dir: filepath.Join(dir, "repo"),
		online: []string{"--targets-key", key("targets"), "--snapshot-key", key("snapshot"), "--timestamp-key", key("timestamp")}}
	if _, err := veil(t, append([]string{"release", "init", "--repo", r.dir, "--threshold", "1", "--root-key", key("root")}, r.online...)...); err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(http.FileServer(http.Dir(r.dir)))
	t.Cleanup(r.srv.Close)
	return r
}

// publish adds release version (from 1.0.0 or later) of bin and modelsDir.
func (r *updateRepo) publish(version, bin, modelsDir string) {
	r.t.Helper()
	args := append([]string{"release", "add", "--repo", r.dir, "--version", version, "--min-from", "1.0.0", "--binary", bin, "--models", modelsDir}, r.online...)
	if out, err := veil(r.t, args...); err != nil {
		r.t.Fatalf("release add %s: %v\n%s", version, err, out)
	}
}

// TestOverTheAirUpdate is the whole path with the real binary: head office
// publishes 1.1.0 with veil release; veil run on the box's factory release
// 1.0.0 finds it, installs it, switches and restarts; 1.1.0 passes its
// health check and commits. Then 1.2.0 is published without the face model:
// it is installed and switched in, fails its health check (the canary face
// is not found), rolls itself back to 1.1.0, and the rollback is reported in
// the journal, /healthz, the log and veil update status; it is not tried
// again.
func TestOverTheAirUpdate(t *testing.T) {
	needModels(t)
	if _, err := os.Stat(testenv.VTest); err != nil {
		testenv.Missing(t, "opencv-doc's vtest.avi: "+err.Error())
	}
	bin := testenv.BuildVeil(t)
	dir := t.TempDir()
	hq := newUpdateRepo(t, dir)
	repo, srv := hq.dir, hq.srv

	// The box: factory release 1.0.0 (this veil and the verified models).
	root := filepath.Join(dir, "opt-veil")
	factory := filepath.Join(root, "releases", "1.0.0")
	copyFile(t, bin, filepath.Join(factory, "veil"), 0o755)
	entries, _ := os.ReadDir(testenv.ModelsDir())
	for _, e := range entries {
		copyFile(t, filepath.Join(testenv.ModelsDir(), e.Name()), filepath.Join(factory, "models", e.Name()), 0o644)
	}
	if err := os.Symlink("releases/1.0.0", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	q := strconv.Quote
	cfg := filepath.Join(dir, "veil.yaml")
	yaml := strings.Join([]string{
		`site: {store: s1, device: d1}`,
		`footfall: {journal_dir: ` + q(filepath.Join(dir, "open-windows")) + `}`,
		`outbox: {dir: ` + q(filepath.Join(dir, "outbox")) + `}`,
		`http: {listen: ` + q(addr) + `}`,
		`log: {format: text, level: info}`,
		`models: {dir: ` + q(filepath.Join(root, "current", "models")) + `}`,
		`detect: {threads: 1}`,
		`update:`,
		`  root: ` + q(root),
		`  metadata_url: ` + q(srv.URL+"/metadata"),
		`  targets_url: ` + q(srv.URL+"/targets"),
		`  trusted_root: ` + q(filepath.Join(repo, "metadata", "1.root.json")),
		`  interval: 1s`,
		`  health_timeout: 90s`,
		`cameras:`,
		`  - name: aisle`,
		`    source: ` + q(testenv.VTest),
		`    loop: true`,
	}, "\n") + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	hq.publish("1.1.0", bin, testenv.ModelsDir())
	s := supervise(t, root, cfg)

	st := waitJournal(t, s, 3*time.Minute, "1.1.0 committed", func(st agent.State) bool {
		return st.Phase == agent.Committed && st.Version == "1.1.0"
	})
	if st.Highest != "1.1.0" || st.From != "1.0.0" {
		t.Errorf("journal after the update %+v", st)
	}
	h := healthz(t, addr, time.Minute, func(h box.Health) bool { return h.Update != nil && h.Update.Running == "1.1.0" })
	if h.Update.State != "committed" {
		t.Errorf("/healthz update %+v", h.Update)
	}
	if !strings.Contains(s.logs.String(), "this release passed its health check and is committed") {
		t.Error("the commit is not logged")
	}

	// 1.2.0 ships without the BlazeFace model veil is configured to use.
	broken := filepath.Join(dir, "models-broken")
	for _, e := range entries {
		if !strings.Contains(e.Name(), "barracuda") {
			copyFile(t, filepath.Join(testenv.ModelsDir(), e.Name()), filepath.Join(broken, e.Name()), 0o644)
		}
	}
	hq.publish("1.2.0", bin, broken)
	st = waitJournal(t, s, 3*time.Minute, "1.2.0 rolled back", func(st agent.State) bool {
		return st.Phase == agent.RolledBack && st.Version == "1.2.0"
	})
	if st.From != "1.1.0" || st.Highest != "1.1.0" || !strings.Contains(st.LastError, "health check of 1.2.0 failed") || !strings.Contains(st.LastError, "no face detector") {
		t.Errorf("journal after the rollback %+v", st)
	}
	if got, _ := os.Readlink(filepath.Join(root, "current")); got != "releases/1.1.0" {
		t.Errorf("current -> %s, want releases/1.1.0", got)
	}
	if _, err := os.Stat(filepath.Join(root, "releases", "1.2.0")); err == nil {
		t.Error("the rolled-back release is still installed")
	}
	// Reported: /healthz of the restarted 1.1.0, the log, veil update status.
	h = healthz(t, addr, time.Minute, func(h box.Health) bool {
		return h.Update != nil && h.Update.Running == "1.1.0" && h.Update.State == "rolled-back" && strings.Contains(h.Update.Offer, "1.2.0 was rolled back")
	})
	if !strings.Contains(h.Update.LastError, "no face detector") {
		t.Errorf("/healthz update %+v", h.Update)
	}
	logs := s.logs.String()
	for _, want := range []string{"this release failed its health check and was rolled back", "agent: rolling back"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	out, err := veil(t, "update", "status", "-c", cfg)
	if err != nil || !strings.Contains(out, "state:    rolled-back (1.2.0)") || !strings.Contains(out, "current:  1.1.0") || !strings.Contains(out, "no face detector") {
		t.Errorf("update status: %v\n%s", err, out)
	}
	runs := s.started()
	want := []string{"1.0.0", "1.1.0", "1.2.0", "1.1.0"}
	if len(runs) != len(want) || strings.Join(runs, " ") != strings.Join(want, " ") {
		t.Errorf("veil ran %v, want %v (one start per switch)", runs, want)
	}
	// Frames kept flowing on 1.1.0 after the rollback.
	healthz(t, addr, time.Minute, func(h box.Health) bool { return len(h.Cameras) == 1 && h.Cameras[0].Frames > 0 })
}

// TestUpdateCommands: veil update check, apply, status and recover --failed
// by hand on a box whose veil is not running (--restart-cmd "").
func TestUpdateCommands(t *testing.T) {
	dir := t.TempDir()
	hq := newUpdateRepo(t, dir)
	repo, srv := hq.dir, hq.srv
	bin := filepath.Join(dir, "veil-1.1.0")
	os.WriteFile(bin, []byte("#!/bin/sh\nexit 1\n"), 0o755) // a release that cannot start
	modelsDir := filepath.Join(dir, "models")
	os.MkdirAll(modelsDir, 0o755)
	os.WriteFile(filepath.Join(modelsDir, "extra.bin"), []byte("x"), 0o644)
	hq.publish("1.1.0", bin, modelsDir)

	root := filepath.Join(dir, "opt-veil")
	copyFile(t, bin, filepath.Join(root, "releases", "1.0.0", "veil"), 0o755)
	os.Symlink("releases/1.0.0", filepath.Join(root, "current"))
	q := strconv.Quote
	cfg := filepath.Join(dir, "veil.yaml")
	os.WriteFile(cfg, []byte(strings.Join([]string{
		`update:`,
		`  root: ` + q(root),
		`  metadata_url: ` + q(srv.URL+"/metadata"),
		`  targets_url: ` + q(srv.URL+"/targets"),
		`  trusted_root: ` + q(filepath.Join(repo, "metadata", "1.root.json")),
	}, "\n")+"\n"), 0o600)

	steps := []struct {
		args    []string
		want    []string
		wantErr string
	}{
		{[]string{"update", "status"}, []string{"current:  1.0.0", "no journal yet"}, ""},
		{[]string{"update", "check"}, []string{"current: 1.0.0", "latest:  1.1.0", "next:    1.1.0"}, ""},
		{[]string{"update", "apply", "--restart-cmd", "", "--wait=false"}, []string{"switched to 1.1.0"}, ""},
		{[]string{"update", "status"}, []string{"current:  1.1.0", "previous: 1.0.0", "state:    switched (1.1.0)", "deadline:"}, ""},
		{[]string{"update", "apply", "--restart-cmd", "", "--wait=false"}, []string{"nothing to install: the update to 1.1.0 awaits its health check (state switched"}, ""},
		// systemd gave up starting 1.1.0: veil-recover.service.
		{[]string{"update", "recover", "--failed"}, []string{"rolled back to 1.0.0"}, ""},
		{[]string{"update", "status"}, []string{"current:  1.0.0", "state:    rolled-back (1.1.0)", "veil could not be started on the new release"}, ""},
		{[]string{"update", "recover", "--failed"}, nil, "no unconfirmed update to roll back"},
		{[]string{"update", "check"}, []string{"next:    none: 1.1.0 was rolled back"}, ""},
	}
	for _, st := range steps {
		out, err := veil(t, append(st.args, "-c", cfg)...)
		if st.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), st.wantErr) {
				t.Fatalf("veil %v: err %v, want %q", st.args, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("veil %v: %v\n%s", st.args, err, out)
		}
		for _, w := range st.want {
			if !strings.Contains(out, w) {
				t.Errorf("veil %v printed:\n%s\nwant %q", st.args, out, w)
			}
		}
	}
}

// TestModelsVerifyReleaseHint: a damaged release's models directory is not
// something `veil models fetch` can mend; verify says so.
func TestModelsVerifyReleaseHint(t *testing.T) {
	cases := []struct {
		name, pins, want string
	}{
		{"no pins", "", "run `veil models fetch"},
		{"unusable pins", "{", "the release is damaged"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.pins != "" {
				os.WriteFile(filepath.Join(dir, "release-pins.json"), []byte(tc.pins), 0o644)
			}
			_, err := veil(t, "models", "verify", "--dir", dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
