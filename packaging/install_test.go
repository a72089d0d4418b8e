package packaging_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/firmware/agent"
	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/packaging"
	"github.com/veil-edge/veil/testkit/testenv"
)

// The clean root the packages are installed in.
const (
	suite   = "bookworm"
	mirror  = "http://deb.debian.org/debian"
	variant = "minbase"
)

// baseExtra are installed in the clean root beside the packages' runtime
// dependencies: what a bookworm server has (systemd and polkit, which the
// packages' units and rule are for; adduser and init-system-helpers, which
// they depend on and apt would fetch anyway).
var baseExtra = []string{"systemd", "polkitd", "adduser", "init-system-helpers"}

// TestInstall builds the veil and veil-hq packages with scripts/package.sh
// (twice: 1.0.0 and 1.2.0), lints them, and installs them with apt on a clean
// Debian bookworm root made by debootstrap (no Go, no compiler, no -dev
// package): the installed veil redacts a video with the shipped models,
// checks its config, and the units verify. Then it plays the interplay with
// the over-the-air update agent: an OTA update over the package install
// (firmware/agent, as veil run applies one), a reinstall of the older package
// that must leave the newer OTA release current, a package upgrade that
// must take over, each leaving a journal the agent finds consistent; then
// remove keeps the box's state and purge deletes it.
//
// It needs root, debootstrap, lintian, dpkg-dev and network access to
// deb.debian.org the first time; the base root is cached (see cacheDir).
func TestInstall(t *testing.T) {
	start := time.Now()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "TestInstall needs root (debootstrap, chroot, mount)")
	}
	for _, tool := range []string{"debootstrap", "lintian", "dpkg-deb", "dpkg-shlibdeps", "chroot", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool+" is not installed (scripts/setup.sh installs debootstrap, lintian, dpkg-dev, systemd)")
		}
	}
	testenv.Need(t, testenv.VTest)
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()

	dist := t.TempDir()
	v1 := buildPackages(ctx, t, "1.0.0", filepath.Join(dist, "1.0.0"))
	// 1.2.0 is also signed, from the same build, into an update repository.
	repo := newUpdateRepo(ctx, t, filepath.Join(dist, "1.0.0", "veil"))
	v2 := buildPackages(ctx, t, "1.2.0", filepath.Join(dist, "1.2.0"), "VEIL_RELEASE_REPO="+repo.dir, "VEIL_RELEASE_KEYS="+repo.keys)
	repo.checkRelease(t, "1.2.0", filepath.Join(dist, "1.2.0", "veil"))
	t.Logf("%s: packages built", time.Since(start).Round(time.Second))

	t.Run("lintian", func(t *testing.T) {
		out, err := exec.CommandContext(ctx, "lintian", "--fail-on", "error", v1.Veil, v1.VeilHQ).CombinedOutput()
		t.Logf("lintian:\n%s", out)
		if err != nil {
			t.Errorf("lintian reports errors: %v", err)
		}
	})

	r := newRoot(ctx, t, v1.Veil, v1.VeilHQ)
	t.Logf("%s: clean root ready", time.Since(start).Round(time.Second))
	r.copyIn(v1.Veil, v1.VeilHQ, v2.Veil, v2.VeilHQ)

	// A fresh install.
	out := r.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/"+filepath.Base(v1.Veil), "/tmp/"+filepath.Base(v1.VeilHQ))
	for _, want := range []string{
		"veil: release 1.0.0 installed in /opt/veil/releases/1.0.0 and now current",
		"veil: veil.service is enabled but not started",
		"veil: Run 'veil init --force'",
		"veil-hq: veil-hq.service is enabled but not started",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("installing: output lacks %q:\n%s", want, out)
		}
	}
	for _, banned := range []string{"golang-go", "gcc", "libopencv-dev", "nodejs", "npm", "chromium"} {
		if r.installed(banned) {
			t.Errorf("the clean root has %s installed", banned)
		}
	}
	for _, p := range strings.Fields(r.run("dpkg-query", "-W", "-f", "${binary:Package}\n")) {
		if strings.HasSuffix(strings.TrimSuffix(p, ":amd64"), "-dev") {
			t.Errorf("the clean root has a -dev package: %s", p)
		}
	}
	if got := strings.TrimSpace(r.run("veil", "--version")); got != "veil 1.0.0" {
		t.Errorf("veil --version: %q, want veil 1.0.0", got)
	}
	if got := strings.TrimSpace(r.run("veil-hq", "--version")); got != "veil-hq 1.0.0" {
		t.Errorf("veil-hq --version: %q, want veil-hq 1.0.0", got)
	}
	if out := r.run("veil-hq", "--help"); !strings.Contains(out, "head office") {
		t.Errorf("veil-hq --help:\n%s", out)
	}
	r.checkLayout("1.0.0", "", "1.0.0")
	r.checkOwner("/etc/veil/veil.yaml", "root", "veil", 0o640)
	r.checkOwner("/etc/veil-hq/hq.yaml", "root", "veil-hq", 0o640)
	r.checkOwner("/var/lib/veil", "veil", "veil", 0o700)
	r.checkOwner("/var/lib/veil-hq", "veil-hq", "veil-hq", 0o700)
	r.checkOwner("/opt/veil", "veil", "veil", 0o755)
	r.checkOwner("/opt/veil/releases/1.0.0/veil", "veil", "veil", 0o755)
	r.checkOwner("/opt/veil/lock", "veil", "veil", 0o644)
	if !r.enabled("veil.service") || !r.enabled("veil-hq.service") {
		t.Error("veil.service and veil-hq.service are not enabled")
	}

	clip := filepath.Join(r.dir, "tmp", "vtest-short.avi")
	shortClip(t, testenv.VTest, clip, 30)
	if err := os.Chown(clip, r.uid("veil"), r.gid("veil")); err != nil {
		t.Fatal(err)
	}

	t.Run("config", func(t *testing.T) {
		// The installed default is valid but names no camera, which veil
		// run needs: the postinst does not start veil.
		out := r.run("veil", "config", "check", "/etc/veil/veil.yaml")
		if !strings.Contains(out, "/etc/veil/veil.yaml: ok") || strings.Contains(out, "\ncamera ") {
			t.Errorf("config check of the default:\n%s", out)
		}
		r.runAs("veil-hq", "veil-hq", "relay-key", "-c", "/etc/veil-hq/hq.yaml") // readable by its user
		// With a camera it passes and names it.
		conf := r.read("/etc/veil/veil.yaml") + cameraConfig
		r.write("/tmp/with-camera.yaml", conf, 0o644)
		out = r.run("veil", "config", "check", "/tmp/with-camera.yaml")
		if !strings.Contains(out, "camera door: /tmp/vtest-short.avi") {
			t.Errorf("config check with a camera:\n%s", out)
		}
	})

	t.Run("redact", func(t *testing.T) {
		out := r.runAs("veil", "veil", "redact", "-c", "/etc/veil/veil.yaml",
			"-i", "/tmp/vtest-short.avi", "-o", "/tmp/vtest-redacted.avi", "--report", "/tmp/vtest-redacted.json")
		if !strings.Contains(out, "redacted 30 frames") {
			t.Errorf("veil redact:\n%s", out)
		}
		var rep struct {
			Frames, Detections int
			Whole              int `json:"frames_redacted_whole"`
		}
		if err := json.Unmarshal([]byte(r.read("/tmp/vtest-redacted.json")), &rep); err != nil {
			t.Fatal(err)
		}
		// Faces found by the shipped models, frames not all redacted whole.
		if rep.Frames != 30 || rep.Detections == 0 || rep.Whole == 30 {
			t.Errorf("report: %+v", rep)
		}
	})

	t.Run("init", func(t *testing.T) {
		// veil init (README: the packages' way in) writes the installed
		// config; with its camera the postinst would start veil.
		r.run("veil", "init", "--yes", "--force", "--store", "shop-1", "--device", "box-1",
			"--camera", "door=/tmp/vtest-short.avi", "--line", "door:entrance:350,150,350,450",
			"--out", "/etc/veil/veil.yaml")
		r.checkOwner("/etc/veil/veil.yaml", "root", "veil", 0o640)
		if out := r.run("veil", "config", "check", "/etc/veil/veil.yaml"); !strings.Contains(out, "models /opt/veil/current/models;") {
			t.Errorf("veil init's config does not load the release's models:\n%s", out)
		}
		if out := r.run("dpkg-reconfigure", "veil"); strings.Contains(out, "not started") {
			t.Errorf("with veil init's config, the postinst still does not start veil:\n%s", out)
		}
	})

	t.Run("veil-hq check", func(t *testing.T) {
		// With a broker, a dashboard password and devices to take reports
		// from, veil-hq check passes and the postinst would start veil-hq.
		r.run("sh", "-c", `sed -i 's|^  broker: ""|  broker: tcp://127.0.0.1:1883|; s|^  password_hash: ""|  password_hash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"|; s|^  boxes: ""|  boxes: ""\n  unsigned_devices: shop-1/box-1|' /etc/veil-hq/hq.yaml`)
		if out := r.run("veil-hq", "check", "-c", "/etc/veil-hq/hq.yaml"); !strings.Contains(out, ": ok") {
			t.Errorf("veil-hq check of a complete config:\n%s", out)
		}
		if out := r.run("dpkg-reconfigure", "veil-hq"); strings.Contains(out, "not started") {
			t.Errorf("with a complete config, the postinst still does not start veil-hq:\n%s", out)
		}
	})

	// Over the air over the package install: 1.1.0, applied and confirmed
	// by the update agent as veil run does.
	ota(ctx, t, r, "1.1.0", v2)
	r.checkLayout("1.1.0", "1.0.0", "1.1.0")

	t.Run("systemd-analyze", func(t *testing.T) {
		// Now that previous exists, veil-recover's ExecStart does too.
		units := []string{"/lib/systemd/system/veil.service", "/lib/systemd/system/veil-recover.service", "/lib/systemd/system/veil-hq.service"}
		args := append([]string{"verify", "--man=no", "--root=" + r.dir}, units...)
		out, err := exec.CommandContext(ctx, "systemd-analyze", args...).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	// Reinstalling the older package leaves the newer OTA release current.
	r.write("/etc/veil/veil.yaml", r.read("/etc/veil/veil.yaml")+"# changed by the admin\n", 0o640)
	out = r.run("apt-get", "install", "-y", "-q", "--reinstall", "/tmp/"+filepath.Base(v1.Veil))
	if !strings.Contains(out, "/opt/veil/current is release 1.1.0 (installed over the air), newer than this package's 1.0.0: leaving it") {
		t.Errorf("reinstalling 1.0.0 over OTA 1.1.0:\n%s", out)
	}
	r.checkLayout("1.1.0", "1.0.0", "1.1.0")
	if !strings.Contains(r.read("/etc/veil/veil.yaml"), "# changed by the admin") {
		t.Error("reinstalling replaced the admin's /etc/veil/veil.yaml")
	}
	r.checkOwner("/etc/veil/veil.yaml", "root", "veil", 0o640)

	// A newer package takes over from the OTA release.
	out = r.run("apt-get", "install", "-y", "-q", "/tmp/"+filepath.Base(v2.Veil), "/tmp/"+filepath.Base(v2.VeilHQ))
	if !strings.Contains(out, "release 1.2.0 installed in /opt/veil/releases/1.2.0 and now current (previous: 1.1.0)") {
		t.Errorf("upgrading to 1.2.0:\n%s", out)
	}
	r.checkLayout("1.2.0", "1.1.0", "1.2.0")
	if got := strings.TrimSpace(r.run("veil", "--version")); got != "veil 1.2.0" {
		t.Errorf("veil --version after the upgrade: %q", got)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "opt/veil/releases/1.0.0")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("release 1.0.0 (neither current nor previous) not pruned: %v", err)
	}
	// The agent, as veil sees the install, agrees (as the veil user).
	if out := r.runAs("veil", "veil", "update", "status", "-c", "/etc/veil/veil.yaml"); !strings.Contains(out, "1.2.0") {
		t.Errorf("veil update status:\n%s", out)
	}

	// remove keeps the state; purge deletes it.
	state := []string{"/opt/veil/current/veil", "/opt/veil/state.json", "/var/lib/veil", "/etc/veil/veil.yaml", "/var/lib/veil-hq", "/etc/veil-hq/hq.yaml"}
	r.write("/var/lib/veil/outbox-marker", "kept\n", 0o600)
	r.run("apt-get", "remove", "-y", "-q", "veil", "veil-hq")
	for _, p := range []string{"veil", "veil-hq"} {
		if st := r.status(p); st != "config-files" {
			t.Errorf("after remove, %s is %q, want config-files", p, st)
		}
	}
	for _, p := range state {
		if !r.exists(p) {
			t.Errorf("remove deleted %s", p)
		}
	}
	for _, p := range []string{"/usr/bin/veil", "/usr/bin/veil-hq", "/usr/lib/veil", "/lib/systemd/system/veil.service"} {
		if r.exists(p) {
			t.Errorf("remove left %s", p)
		}
	}
	r.run("apt-get", "purge", "-y", "-q", "veil", "veil-hq")
	for _, p := range []string{"/opt/veil", "/var/lib/veil", "/etc/veil", "/var/lib/veil-hq", "/etc/veil-hq"} {
		if r.exists(p) {
			t.Errorf("purge left %s", p)
		}
	}
	for _, p := range []string{"veil", "veil-hq"} {
		if st := r.status(p); st != "" && st != "not-installed" {
			t.Errorf("after purge, %s is %q", p, st)
		}
	}
	t.Logf("TestInstall took %s", time.Since(start).Round(time.Second))
}

// cameraConfig appends a camera to the installed config.
const cameraConfig = `
cameras:
  - name: door
    source: /tmp/vtest-short.avi
    lines:
      - {name: entrance, line: [350, 150, 350, 450]}
`

// buildPackages runs scripts/package.sh with env added.
func buildPackages(ctx context.Context, t *testing.T, version, out string, env ...string) packaging.Packages {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.Root(), "scripts", "package.sh"), version, out)
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package.sh %s: %v\n%s", version, err, b)
	}
	if len(env) == 0 && !strings.Contains(string(b), "veil release add --repo REPO --version "+version) {
		t.Errorf("scripts/package.sh does not print the OTA release command:\n%s", b)
	}
	return packaging.Packages{
		Veil:   filepath.Join(out, "veil_"+version+"_amd64.deb"),
		VeilHQ: filepath.Join(out, "veil-hq_"+version+"_amd64.deb"),
	}
}

// ota installs version over the air in r, from the binary of the package
// build p and the repository's models, with the update agent's own Apply
// and Confirm (as veil run applies and the new release confirms), then
// hands the files to veil as veil run would have made them.
func ota(ctx context.Context, t *testing.T, r *root, version string, p packaging.Packages) {
	t.Helper()
	bin := filepath.Join(filepath.Dir(p.Veil), "veil")
	files := map[string]string{release.BinaryName: bin}
	for _, e := range models.Manifest() {
		files["models/"+e.File] = filepath.Join(testenv.ModelsDir(), e.File)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	f, err := os.Create(bundle)
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Build(f, version, "1.0.0", files)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(r.dir, "opt/veil")
	a, err := agent.Open(agent.Options{Root: root})
	if err != nil {
		t.Fatalf("the agent opens the package install: %v", err)
	}
	if st := a.Status(); st.Phase != agent.Committed || st.Version != "1.0.0" {
		t.Errorf("the package install's journal: %+v", st)
	}
	fetch := func(_ context.Context, dst string) error {
		data, err := os.ReadFile(bundle)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	}
	install := func(bundle, dest string) error {
		if _, err := release.Extract(bundle, dest); err != nil {
			return err
		}
		data, err := m.Marshal()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dest, "release.json"), data, 0o644)
	}
	if err := a.Apply(ctx, version, fetch, install); err != nil {
		t.Fatalf("OTA %s over the package install: %v", version, err)
	}
	b, err := agent.Open(agent.Options{Root: root, Running: version})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Confirm(ctx, func(context.Context, string) error { return nil }); !ok || err != nil {
		t.Fatalf("confirming OTA %s: %v, %v", version, ok, err)
	}
	r.run("chown", "-R", "veil:veil", "/opt/veil")
}

// root is a clean bookworm root with the packages' dependencies.
type root struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// newRoot unpacks the cached base root for the packages' dependencies
// (making it first if needed) into a temporary directory, mounts /proc in
// it and keeps services from starting (policy-rc.d).
func newRoot(ctx context.Context, t *testing.T, debs ...string) *root {
	t.Helper()
	pkgs := slices.Clone(baseExtra)
	for _, deb := range debs {
		out, err := exec.Command("dpkg-deb", "-f", deb, "Depends").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range strings.Split(string(out), ",") {
			pkgs = append(pkgs, strings.Fields(d)[0])
		}
	}
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	tarball := baseTarball(ctx, t, pkgs)

	r := &root{t: t, ctx: ctx, dir: t.TempDir()}
	if out, err := exec.CommandContext(ctx, "tar", "--numeric-owner", "-xpf", tarball, "-C", r.dir).CombinedOutput(); err != nil {
		t.Fatalf("unpacking %s: %v\n%s", tarball, err, out)
	}
	r.mountProc()
	return r
}

// mountProc mounts /proc in the root until the test ends (before its
// directory is removed).
func (r *root) mountProc() {
	proc := filepath.Join(r.dir, "proc")
	if err := syscall.Mount("proc", proc, "proc", 0, ""); err != nil {
		r.t.Fatalf("mounting %s: %v", proc, err)
	}
	r.t.Cleanup(func() {
		if err := syscall.Unmount(proc, syscall.MNT_DETACH); err != nil {
			r.t.Errorf("unmounting %s: %v", proc, err)
		}
	})
}

// cacheDir holds the base roots: $VEIL_TEST_CACHE, else
// $XDG_CACHE_HOME/veil-test, else /var/cache/veil-test.
func cacheDir() string {
	if d := os.Getenv("VEIL_TEST_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "veil-test")
	}
	return "/var/cache/veil-test"
}

// baseTarball returns the cached tarball of a debootstrap'd bookworm root
// with pkgs installed, keyed by the suite, mirror, variant and pkgs; it
// makes it first if there is none.
func baseTarball(ctx context.Context, t *testing.T, pkgs []string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(strings.Join(append([]string{suite, mirror, variant}, pkgs...), "\n")))
	key := hex.EncodeToString(sum[:8])
	dir := cacheDir()
	tarball := filepath.Join(dir, suite+"-"+key+".tar")
	if _, err := os.Stat(tarball); err == nil {
		t.Logf("base root: %s (cached)", tarball)
		return tarball
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	work, err := os.MkdirTemp(dir, "make-"+key+"-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	rootDir := filepath.Join(work, "root")
	if out, err := exec.CommandContext(ctx, "debootstrap", "--variant="+variant, suite, rootDir, mirror).CombinedOutput(); err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, tail(out))
	}
	r := &root{t: t, ctx: ctx, dir: rootDir}
	proc := filepath.Join(rootDir, "proc")
	if err := syscall.Mount("proc", proc, "proc", 0, ""); err != nil {
		t.Fatal(err)
	}
	r.prepare()
	r.run("apt-get", "update", "-q")
	r.run(append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)...)
	r.run("apt-get", "clean")
	if err := syscall.Unmount(proc, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(work, "root.tar")
	if out, err := exec.CommandContext(ctx, "tar", "--numeric-owner", "-cf", tmp, "-C", rootDir, ".").CombinedOutput(); err != nil {
		t.Fatalf("packing the base root: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("base root: %s made in %s (debootstrap %s, %d packages)", tarball, time.Since(start).Round(time.Second), suite, len(pkgs))
	return tarball
}

// prepare keeps services from starting in the root and lets apt resolve
// names.
func (r *root) prepare() {
	r.write("/usr/sbin/policy-rc.d", "#!/bin/sh\n# no services start in this test root\nexit 101\n", 0o755)
	if data, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		r.write("/etc/resolv.conf", string(data), 0o644)
	}
}

// run runs a command in the root as root and returns its output (stdout
// and stderr); it fails the test on an error.
func (r *root) run(args ...string) string {
	r.t.Helper()
	return r.runAs("", args...)
}

// runAs runs a command in the root as user ("": root).
func (r *root) runAs(user string, args ...string) string {
	r.t.Helper()
	cargs := []string{}
	if user != "" {
		cargs = append(cargs, "--userspec="+user+":"+user)
	}
	cargs = append(append(cargs, r.dir), args...)
	cmd := exec.CommandContext(r.ctx, "chroot", cargs...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive", "HOME=/tmp", "TMPDIR=/tmp"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("in the root: %s: %v\n%s", strings.Join(args, " "), err, tail(out))
	}
	return string(out)
}

// status is dpkg's status of a package in the root ("installed",
// "config-files", ...; "" for a package dpkg does not know).
func (r *root) status(pkg string) string {
	out, _ := exec.Command("chroot", r.dir, "dpkg-query", "-W", "-f", "${db:Status-Status}", pkg).Output()
	return string(out)
}

// installed reports whether a package is installed in the root.
func (r *root) installed(pkg string) bool { return r.status(pkg) == "installed" }

// enabled reports whether a unit is enabled for multi-user.target.
func (r *root) enabled(unit string) bool {
	return r.exists("/etc/systemd/system/multi-user.target.wants/" + unit)
}

func (r *root) path(p string) string { return filepath.Join(r.dir, p) }

func (r *root) exists(p string) bool {
	_, err := os.Lstat(r.path(p))
	return err == nil
}

func (r *root) read(p string) string {
	r.t.Helper()
	data, err := os.ReadFile(r.path(p))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

// write replaces a file in the root, keeping its owner if it exists.
func (r *root) write(p, data string, mode fs.FileMode) {
	r.t.Helper()
	uid, gid := 0, 0
	if fi, err := os.Stat(r.path(p)); err == nil {
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid = int(st.Uid), int(st.Gid)
	}
	if err := os.WriteFile(r.path(p), []byte(data), mode); err != nil {
		r.t.Fatal(err)
	}
	if err := errors.Join(os.Chmod(r.path(p), mode), os.Chown(r.path(p), uid, gid)); err != nil {
		r.t.Fatal(err)
	}
}

// copyIn copies files into the root's /tmp.
func (r *root) copyIn(files ...string) {
	r.t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			r.t.Fatal(err)
		}
		r.write("/tmp/"+filepath.Base(f), string(data), 0o644)
	}
}

// uid and gid look a user and a group up in the root.
func (r *root) uid(name string) int { return r.id("passwd", name) }
func (r *root) gid(name string) int { return r.id("group", name) }

func (r *root) id(db, name string) int {
	r.t.Helper()
	for _, line := range strings.Split(r.read("/etc/"+db), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[0] == name {
			n, err := strconv.Atoi(f[2])
			if err != nil {
				r.t.Fatal(err)
			}
			return n
		}
	}
	r.t.Fatalf("no %s %q in the root", db, name)
	return -1
}

// checkOwner checks a path's owner, group and permission bits.
func (r *root) checkOwner(p, user, group string, mode fs.FileMode) {
	r.t.Helper()
	fi, err := os.Stat(r.path(p))
	if err != nil {
		r.t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != r.uid(user) || int(st.Gid) != r.gid(group) || fi.Mode().Perm() != mode {
		r.t.Errorf("%s: uid %d gid %d mode %v, want %s:%s %v", p, st.Uid, st.Gid, fi.Mode().Perm(), user, group, mode)
	}
}

// checkLayout checks /opt/veil: current and previous, the journal, and that
// the update agent opening it (running its recovery) changes nothing.
func (r *root) checkLayout(current, previous, highest string) {
	r.t.Helper()
	root := r.path("/opt/veil")
	cur, prev := agent.ReadLinks(root)
	if cur != current || prev != previous {
		r.t.Errorf("/opt/veil: current %q previous %q, want %q %q", cur, prev, current, previous)
	}
	st, ok, err := agent.ReadStatus(root)
	if err != nil || !ok {
		r.t.Fatalf("/opt/veil/state.json: %v (present: %v)", err, ok)
	}
	if st.Phase != agent.Committed || st.Version != current || st.Highest != highest || st.LastError != "" {
		r.t.Errorf("/opt/veil/state.json: %+v, want committed %s highest %s", st, current, highest)
	}
	m, err := release.ParseManifest([]byte(r.read("/opt/veil/current/release.json")))
	if err != nil || m.Version != current {
		r.t.Errorf("/opt/veil/current/release.json: version %q, %v", m.Version, err)
	}
	a, err := agent.Open(agent.Options{Root: root})
	if err != nil {
		r.t.Fatalf("the agent opens /opt/veil: %v", err)
	}
	after := a.Status()
	if a.Current() != current || after.Phase != st.Phase || after.Version != st.Version || after.Highest != st.Highest {
		r.t.Errorf("the agent changed the install on opening it: current %s, %+v", a.Current(), after)
	}
}

// shortClip writes the first n frames of src to dst (MJPG).
func shortClip(t *testing.T, src, dst string, n int) {
	t.Helper()
	in, err := gocv.VideoCaptureFile(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	img := gocv.NewMat()
	defer img.Close()
	var out *gocv.VideoWriter
	for i := 0; i < n && in.Read(&img); i++ {
		if out == nil {
			out, err = gocv.VideoWriterFile(dst, "MJPG", in.Get(gocv.VideoCaptureFPS), img.Cols(), img.Rows(), true)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
		}
		if err := out.Write(img); err != nil {
			t.Fatal(err)
		}
	}
}

// tail is the end of long command output.
func tail(out []byte) string {
	const n = 4000
	if len(out) > n {
		return "…" + string(out[len(out)-n:])
	}
	return string(out)
}

// updateRepo is head office's update repository for the test, made with
// the veil binary as head office would.
type updateRepo struct{ dir, keys string }

func newUpdateRepo(ctx context.Context, t *testing.T, veil string) updateRepo {
	t.Helper()
	base := t.TempDir()
	r := updateRepo{dir: filepath.Join(base, "repo"), keys: filepath.Join(base, "keys")}
	k := func(role string) string { return filepath.Join(r.keys, role+".pem") }
	for _, args := range [][]string{
		{"release", "keygen", k("root"), k("targets"), k("snapshot"), k("timestamp")},
		{"release", "init", "--repo", r.dir, "--root-key", k("root"), "--targets-key", k("targets"), "--snapshot-key", k("snapshot"), "--timestamp-key", k("timestamp")},
	} {
		if out, err := exec.CommandContext(ctx, veil, args...).CombinedOutput(); err != nil {
			t.Fatalf("veil %v: %v\n%s", args, err, out)
		}
	}
	return r
}

// checkRelease: the repository holds a signed bundle of version whose
// binary is, byte for byte, the one the packages were built from.
func (r updateRepo) checkRelease(t *testing.T, version, veil string) {
	t.Helper()
	var bundles []string
	filepath.WalkDir(filepath.Join(r.dir, "targets"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "/releases/"+version+"/") {
			bundles = append(bundles, p)
		}
		return nil
	})
	if len(bundles) == 0 {
		t.Fatalf("no release %s in the update repository %s", version, r.dir)
	}
	b, err := os.ReadFile(veil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	for _, p := range bundles {
		m, err := release.Verify(p)
		if err != nil {
			t.Fatalf("release bundle %s: %v", p, err)
		}
		if m.Version != version || m.Files["veil"] != hex.EncodeToString(sum[:]) {
			t.Errorf("release bundle %s: version %s, veil %s; want %s and the package's binary %x", p, m.Version, m.Files["veil"], version, sum)
		}
	}
}
