// Package packaging builds veil's Debian packages from a release build:
//
//   - veil_<version>_amd64.deb, the shop box: the release (the veil binary and
//     the verified models, laid out and hash-checked exactly as an
//     over-the-air bundle of the same build unpacks, with its release.json
//     and models/release-pins.json) in /usr/lib/veil/release, which the
//     postinst copies into the update agent's install root
//     /opt/veil/releases/<version> and switches current to when it is
//     newer; /usr/bin/veil; the systemd units veil.service and
//     veil-recover.service; /etc/veil/veil.yaml (a conffile derived from
//     docs/veil.example.yaml); the polkit rule letting the veil user restart
//     veil.service.
//   - veil-hq_<version>_amd64.deb, head office: /usr/bin/veil-hq,
//     veil-hq.service and /etc/veil-hq/hq.yaml.
//
// Build lays out both trees and calls dpkg-deb; the runtime dependencies
// come from dpkg-shlibdeps (the OpenCV 4.6 and libvpx libraries the binaries
// link). The maintainer scripts and configs are in firmware/debian, the units
// in firmware/systemd. scripts/package.sh builds the binaries and runs
// scripts/mkdeb, which calls Build. docs/PACKAGING.md describes the result.
package packaging

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/models"
)

// Options are what Build packages and where it writes.
type Options struct {
	// Version is the release version the binaries were stamped with,
	// MAJOR.MINOR.PATCH; it is also the packages' version.
	Version string
	// MinFrom is the release manifest's min_from (release.json); empty:
	// Version.
	MinFrom string
	// Veil and VeilHQ are the built binaries.
	Veil, VeilHQ string
	// Models is the directory of verified model files (veil models fetch).
	Models string
	// Repo is the repository root: firmware/debian, firmware/systemd and
	// docs/veil.example.yaml are read from it.
	Repo string
	// Out is the directory the .deb files are written to.
	Out string
	// Maintainer is the packages' Maintainer field.
	Maintainer string
	// Revision names the source (e.g. a git commit) in the changelog.
	Revision string
	// Time is the changelog's date; zero: now.
	Time time.Time
}

// DefaultMaintainer is Options.Maintainer when none is given.
const DefaultMaintainer = "veil-edge <packages@veil-edge.example>"

// Packages are the files Build wrote.
type Packages struct {
	Veil, VeilHQ string
}

// Box paths, shared with the maintainer scripts in firmware/debian/veil.
const (
	// PayloadDir is where the veil package ships its release.
	PayloadDir = "/usr/lib/veil/release"
	// InstallRoot is the update agent's root (update.root).
	InstallRoot = "/opt/veil"
	// BoxConfig and HQConfig are the conffiles.
	BoxConfig = "/etc/veil/veil.yaml"
	HQConfig  = "/etc/veil-hq/hq.yaml"
	// unitDir is where packages install systemd units on bookworm.
	unitDir = "/lib/systemd/system"
)

// Build writes veil_<version>_amd64.deb and veil-hq_<version>_amd64.deb
// into o.Out.
func Build(o Options) (Packages, error) {
	if _, err := release.ParseVersion(o.Version); err != nil {
		return Packages{}, fmt.Errorf("packaging: %w", err)
	}
	if o.MinFrom == "" {
		o.MinFrom = o.Version
	}
	if o.Maintainer == "" {
		o.Maintainer = DefaultMaintainer
	}
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	for _, tool := range []string{"dpkg-deb", "dpkg-shlibdeps"} {
		if _, err := exec.LookPath(tool); err != nil {
			return Packages{}, fmt.Errorf("packaging: %s not found (apt-get install dpkg-dev): %w", tool, err)
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return Packages{}, fmt.Errorf("packaging: %w", err)
	}
	work, err := os.MkdirTemp("", "veil-packaging-")
	if err != nil {
		return Packages{}, fmt.Errorf("packaging: %w", err)
	}
	defer os.RemoveAll(work)

	var p Packages
	if p.Veil, err = buildBox(o, filepath.Join(work, "veil")); err != nil {
		return Packages{}, fmt.Errorf("packaging veil: %w", err)
	}
	if p.VeilHQ, err = buildHQ(o, filepath.Join(work, "veil-hq")); err != nil {
		return Packages{}, fmt.Errorf("packaging veil-hq: %w", err)
	}
	return p, nil
}

// pkg is one package being laid out in a tree.
type pkg struct {
	o         Options
	name      string
	tree      string
	conffiles []string
}

// buildBox lays out and builds the veil package.
func buildBox(o Options, tree string) (string, error) {
	p := &pkg{o: o, name: "veil", tree: tree}
	payload := p.path(PayloadDir)
	if err := os.MkdirAll(filepath.Dir(payload), 0o755); err != nil {
		return "", err
	}
	if err := stageRelease(o, payload, filepath.Join(tree, "..")); err != nil {
		return "", err
	}
	conf, err := os.ReadFile(filepath.Join(o.Repo, "docs", "veil.example.yaml"))
	if err != nil {
		return "", err
	}
	boxConf, err := BoxConfigFrom(conf)
	if err != nil {
		return "", err
	}
	if err := p.conffile(BoxConfig, boxConf); err != nil {
		return "", err
	}
	steps := []error{
		p.symlink("/usr/bin/veil", InstallRoot+"/current/veil"),
		p.copy(unitDir+"/veil.service", filepath.Join(o.Repo, "firmware/systemd/veil.service"), 0o644),
		p.copy(unitDir+"/veil-recover.service", filepath.Join(o.Repo, "firmware/systemd/veil-recover.service"), 0o644),
		p.copy("/usr/share/polkit-1/rules.d/50-veil.rules", filepath.Join(o.Repo, "firmware/debian/veil/veil.rules"), 0o644),
		p.docs(conf),
	}
	if err := errors.Join(steps...); err != nil {
		return "", err
	}
	deps, err := shlibDepends(o.Veil)
	if err != nil {
		return "", err
	}
	return p.build(control{
		Depends:    append(deps, "adduser", "init-system-helpers (>= 1.54~)"),
		Recommends: []string{"polkitd"},
		Section:    "video",
		Synopsis:   "edge-camera privacy filter redacting every face on the shop's box",
		Description: `veil runs on a shop's own box and redacts every face in every frame of its
cameras before any pixel is shown, stored or streamed; when it cannot tell
where the faces are it redacts the whole frame. Only footfall counts leave
the box, over MQTT to head office (veil-hq).
.
The package installs its release into /opt/veil/releases/<version>, the
install root of veil's over-the-air update agent, and veil.service, which
starts once /etc/veil/veil.yaml names a camera (veil init).`,
	})
}

// buildHQ lays out and builds the veil-hq package.
func buildHQ(o Options, tree string) (string, error) {
	p := &pkg{o: o, name: "veil-hq", tree: tree}
	conf, err := os.ReadFile(filepath.Join(o.Repo, "docs", "veil.example.yaml"))
	if err != nil {
		return "", err
	}
	hqConf, err := os.ReadFile(filepath.Join(o.Repo, "firmware/debian/veil-hq/hq.yaml"))
	if err != nil {
		return "", err
	}
	steps := []error{
		p.conffile(HQConfig, hqConf),
		p.copy("/usr/bin/veil-hq", o.VeilHQ, 0o755),
		p.copy(unitDir+"/veil-hq.service", filepath.Join(o.Repo, "firmware/systemd/veil-hq.service"), 0o644),
		p.docs(conf),
	}
	if err := errors.Join(steps...); err != nil {
		return "", err
	}
	deps, err := shlibDepends(o.VeilHQ)
	if err != nil {
		return "", err
	}
	return p.build(control{
		Depends:  append(deps, "adduser", "init-system-helpers (>= 1.54~)"),
		Suggests: []string{"postgresql", "mosquitto"},
		Section:  "net",
		Synopsis: "head office server for veil boxes: footfall counts and dashboard",
		Description: `veil-hq subscribes to every veil box's signed footfall reports on head
office's MQTT broker, stores each once in SQLite (the default) or
PostgreSQL, acknowledges them to the boxes, and serves a dashboard with
charts, CSV export and a JSON API. It can also relay shoppers' consent to
the boxes.`,
	})
}

// stageRelease builds the release bundle of o's binary and models with
// firmware/release, exactly as `veil release add` does, and extracts it
// (every file checked against the manifest) into dest, then writes the
// install records the updater writes beside an over-the-air release:
// release.json and models/release-pins.json.
func stageRelease(o Options, dest, tmpDir string) error {
	files := map[string]string{release.BinaryName: o.Veil}
	entries, err := os.ReadDir(o.Models)
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			files["models/"+e.Name()] = filepath.Join(o.Models, e.Name())
		}
	}
	bundle := filepath.Join(tmpDir, "release.tar")
	f, err := os.Create(bundle)
	if err != nil {
		return err
	}
	m, err := release.Build(f, o.Version, o.MinFrom, files)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("building the release bundle: %w", err)
	}
	if _, err := release.Extract(bundle, dest); err != nil {
		return fmt.Errorf("extracting the release bundle: %w", err)
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dest, "release.json"), data, 0o644); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, e := range models.Manifest() {
		known[e.File] = true
	}
	pins := map[string]string{}
	for p, sum := range m.Files {
		if base, ok := strings.CutPrefix(p, "models/"); ok && known[base] {
			pins[base] = sum
		}
	}
	if len(pins) < len(models.Manifest()) {
		return fmt.Errorf("models: %s holds %d of the %d models of models/manifest.json: run veil models fetch", o.Models, len(pins), len(models.Manifest()))
	}
	return models.WritePins(filepath.Join(dest, "models"), pins)
}

// boxPaths are the relative paths of docs/veil.example.yaml that the
// package's config makes absolute: state under /var/lib/veil, models from the
// release current points at.
var boxPaths = []struct{ key, from, to string }{
	{"dir", "models/files", InstallRoot + "/current/models"},
	{"journal_dir", "var/open-windows", "/var/lib/veil/open-windows"},
	{"dir", "var/outbox", "/var/lib/veil/outbox"},
	{"ledger", "var/consent/ledger.jsonl", "/var/lib/veil/consent/ledger.jsonl"},
	{"key_file", "var/consent/box.key", "/var/lib/veil/consent/box.key"},
}

// boxConfigHeader opens /etc/veil/veil.yaml.
const boxConfigHeader = `# /etc/veil/veil.yaml: the box's configuration (Debian package veil).
#
# veil.service runs "veil run --config /etc/veil/veil.yaml" as user veil in
# /var/lib/veil. It needs at least one camera: run
#   veil init --force
# (it writes this file anew), or add a cameras: list like this one, then
#   veil config check --run /etc/veil/veil.yaml && systemctl start veil
#
# cameras:
#   - name: door
#     source: rtsp://10.0.0.5/stream1      # or /dev/video0
#     lines:
#       - {name: entrance, line: [350, 150, 350, 450]}
#
# State lives in /var/lib/veil (outbox, open windows, consent ledger and
# key); the models come from the release in use, /opt/veil/current/models.
# Below: every other key at its default, as in docs/veil.example.yaml
# (/usr/share/doc/veil/veil.example.yaml.gz). The hq section is veil-hq's
# and is left out.

`

// BoxConfigFrom derives the box package's /etc/veil/veil.yaml from
// docs/veil.example.yaml: its relative state paths made absolute under
// /var/lib/veil, models.dir the current release's models, the hq section
// dropped, and a header on what to set.
func BoxConfigFrom(example []byte) ([]byte, error) {
	s := string(example)
	// Skip the example's own header: up to the first section.
	i := regexp.MustCompile(`(?m)^[a-z_]+:\s*$`).FindStringIndex(s)
	if i == nil {
		return nil, errors.New("docs/veil.example.yaml: no section")
	}
	s = s[i[0]:]
	if j := strings.Index(s, "\nhq:\n"); j >= 0 {
		s = s[:j+1]
	}
	for _, r := range boxPaths {
		re := regexp.MustCompile(`(?m)^(\s+` + regexp.QuoteMeta(r.key) + `: )"?` + regexp.QuoteMeta(r.from) + `"?\s*$`)
		if n := len(re.FindAllStringIndex(s, -1)); n != 1 {
			return nil, fmt.Errorf("docs/veil.example.yaml: %d lines %q: %s, want 1", n, r.key, r.from)
		}
		s = re.ReplaceAllString(s, "${1}"+r.to)
	}
	return []byte(boxConfigHeader + s), nil
}

// path is the tree path of an installed path.
func (p *pkg) path(installed string) string {
	return filepath.Join(p.tree, filepath.FromSlash(installed))
}

// write writes a file into the tree.
func (p *pkg) write(installed string, data []byte, mode fs.FileMode) error {
	dst := p.path(installed)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // whatever the umask
}

// copy copies src into the tree.
func (p *pkg) copy(installed, src string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return p.write(installed, data, mode)
}

// conffile writes a config file, mode 0640 (the postinst gives it the
// package user's group), and lists it in conffiles.
func (p *pkg) conffile(installed string, data []byte) error {
	p.conffiles = append(p.conffiles, installed)
	return p.write(installed, data, 0o640)
}

// symlink makes a symbolic link in the tree.
func (p *pkg) symlink(installed, target string) error {
	dst := p.path(installed)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// docs writes /usr/share/doc/<name>: copyright, changelog.gz and the
// config reference veil.example.yaml.gz.
func (p *pkg) docs(example []byte) error {
	doc := "/usr/share/doc/" + p.name
	changelog := fmt.Sprintf("%s (%s) bookworm; urgency=medium\n\n  * Release %s%s.\n\n -- %s  %s\n",
		p.name, p.o.Version, p.o.Version, revisionNote(p.o.Revision), p.o.Maintainer, p.o.Time.UTC().Format(time.RFC1123Z))
	return errors.Join(
		p.write(doc+"/copyright", []byte(copyright), 0o644),
		p.write(doc+"/changelog.gz", gzipped([]byte(changelog)), 0o644),
		p.write(doc+"/veil.example.yaml.gz", gzipped(example), 0o644),
	)
}

func revisionNote(rev string) string {
	if rev == "" {
		return ""
	}
	return " (built from " + rev + ")"
}

// gzipped is data compressed as Debian wants documentation: best
// compression, no name or time stamp.
func gzipped(data []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

// control is a package's control fields beyond the common ones.
type control struct {
	Depends, Recommends, Suggests  []string
	Section, Synopsis, Description string
}

// build writes DEBIAN/ (control, conffiles, md5sums, maintainer scripts)
// and runs dpkg-deb.
func (p *pkg) build(c control) (string, error) {
	size, sums, err := p.walk()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: %s\nInstalled-Size: %d\n",
		p.name, p.o.Version, p.o.Maintainer, (size+1023)/1024)
	for _, f := range []struct {
		k string
		v []string
	}{{"Depends", c.Depends}, {"Recommends", c.Recommends}, {"Suggests", c.Suggests}} {
		if len(f.v) > 0 {
			fmt.Fprintf(&b, "%s: %s\n", f.k, strings.Join(f.v, ", "))
		}
	}
	fmt.Fprintf(&b, "Section: %s\nPriority: optional\nDescription: %s\n", c.Section, c.Synopsis)
	for _, line := range strings.Split(c.Description, "\n") {
		fmt.Fprintf(&b, " %s\n", line)
	}
	steps := []error{
		p.write("/DEBIAN/control", []byte(b.String()), 0o644),
		p.write("/DEBIAN/md5sums", []byte(sums), 0o644),
	}
	if len(p.conffiles) > 0 {
		steps = append(steps, p.write("/DEBIAN/conffiles", []byte(strings.Join(p.conffiles, "\n")+"\n"), 0o644))
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		data, err := os.ReadFile(filepath.Join(p.o.Repo, "firmware/debian", p.name, script))
		if err != nil {
			return "", err
		}
		data = bytes.ReplaceAll(data, []byte("@VERSION@"), []byte(p.o.Version))
		steps = append(steps, p.write("/DEBIAN/"+script, data, 0o755))
	}
	if err := errors.Join(steps...); err != nil {
		return "", err
	}
	out := filepath.Join(p.o.Out, fmt.Sprintf("%s_%s_amd64.deb", p.name, p.o.Version))
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zxz", "-z6", "--build", p.tree, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb: %w\n%s", err, msg)
	}
	return out, nil
}

// walk returns the tree's size in bytes (files and symlinks, as dpkg
// counts Installed-Size roughly) and its md5sums file.
func (p *pkg) walk() (int64, string, error) {
	var size int64
	var lines []string
	err := filepath.WalkDir(p.tree, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.tree, path)
		if rel == "DEBIAN" && d.IsDir() {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			size += 1024 // a directory or symlink: dpkg counts one block
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size += fi.Size()
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := md5.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		lines = append(lines, hex.EncodeToString(h.Sum(nil))+"  "+filepath.ToSlash(rel))
		return nil
	})
	slices.Sort(lines)
	return size, strings.Join(lines, "\n") + "\n", err
}

// shlibDepends returns the packages (with version floors) providing the
// shared libraries bin links, as dpkg-shlibdeps finds them from the build
// machine's installed libraries: OpenCV 4.6's, libvpx's, libc's.
func shlibDepends(bin string) ([]string, error) {
	dir, err := os.MkdirTemp("", "veil-shlibdeps-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "debian"), 0o755); err != nil {
		return nil, err
	}
	// dpkg-shlibdeps reads the source package's control file.
	if err := os.WriteFile(filepath.Join(dir, "debian", "control"), []byte("Source: veil\n\nPackage: veil\nArchitecture: any\n"), 0o644); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("dpkg-shlibdeps", "-O", "-e"+abs)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-shlibdeps %s: %w\n%s", bin, err, stderr.Bytes())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "shlibs:Depends="); ok {
			var deps []string
			for _, d := range strings.Split(v, ",") {
				deps = append(deps, strings.TrimSpace(d))
			}
			return deps, nil
		}
	}
	return nil, fmt.Errorf("dpkg-shlibdeps %s: no shlibs:Depends in %q", bin, out)
}
