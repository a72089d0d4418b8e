package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/veil-edge/veil/internal/durable"
)

// path names something in the root.
func (a *Agent) path(name string) string { return filepath.Join(a.root, name) }

// releasePath is releases/<version>.
func (a *Agent) releasePath(v string) string { return filepath.Join(a.root, releasesDir, v) }

// isComplete reports whether dir is a release: it holds a regular file
// named veil.
func isComplete(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, executable))
	return err == nil && fi.Mode().IsRegular()
}

// complete reports whether releases/<v> is a complete release.
func (a *Agent) complete(v string) bool {
	return v != "" && isComplete(a.releasePath(v))
}

// linkVersion returns the version the symlink root/name points at, or ""
// if it is missing or does not point at releases/<version>.
func (a *Agent) linkVersion(name string) string {
	t, err := os.Readlink(a.path(name))
	if err != nil {
		return ""
	}
	if filepath.IsAbs(t) {
		if t, err = filepath.Rel(a.root, t); err != nil {
			return ""
		}
	}
	dir, v := filepath.Split(filepath.Clean(t))
	if dir != releasesDir+string(filepath.Separator) {
		return ""
	}
	if _, err := parseVersion(v); err != nil {
		return ""
	}
	return v
}

// currentRelease is the version current points at if that is a complete
// release, else "".
func (a *Agent) currentRelease() string {
	if v := a.linkVersion(currentLink); a.complete(v) {
		return v
	}
	return ""
}

// setLink points root/name at releases/<version> atomically: a symlink
// name.new is created, renamed over name, and the root directory synced.
func (a *Agent) setLink(name, version string) error {
	tmp := a.path(name + ".new")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pointing %s at %s: %w", name, version, err)
	}
	if err := os.Symlink(filepath.Join(releasesDir, version), tmp); err != nil {
		return fmt.Errorf("pointing %s at %s: %w", name, version, err)
	}
	a.hook(name + ".new")
	if err := os.Rename(tmp, a.path(name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pointing %s at %s: %w", name, version, err)
	}
	if err := durable.SyncDir(a.root); err != nil {
		return fmt.Errorf("pointing %s at %s: %w", name, version, err)
	}
	a.log.Info("agent: switched link", "link", name, "version", version)
	return nil
}

// removeLink deletes root/name and syncs the root.
func (a *Agent) removeLink(name string) error {
	if err := os.Remove(a.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", name, err)
	}
	return durable.SyncDir(a.root)
}

// clearStaging removes everything in staging except the entry named keep.
func (a *Agent) clearStaging(keep string) error {
	dir := a.path(stagingDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clearing staging: %w", err)
	}
	removed := false
	for _, e := range entries {
		if e.Name() == keep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clearing staging: %w", err)
		}
		removed = true
	}
	if !removed {
		return nil
	}
	return durable.SyncDir(dir)
}

// discard removes what an uncommitted update of version left behind:
// staging (except keep) and releases/<version> unless current or previous
// point there.
func (a *Agent) discard(version, keep string) error {
	if err := a.clearStaging(keep); err != nil {
		return err
	}
	if version == "" || version == a.linkVersion(currentLink) || version == a.linkVersion(prevLink) {
		return nil
	}
	dir := a.releasePath(version)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("discarding the uncommitted release %s: %w", dir, err)
	}
	a.log.Info("agent: discarded uncommitted release", "version", version)
	return durable.SyncDir(a.path(releasesDir))
}

// prune removes every release but current and previous.
func (a *Agent) prune() error {
	keep := map[string]bool{a.linkVersion(currentLink): true, a.linkVersion(prevLink): true}
	dir := a.path(releasesDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if _, err := parseVersion(e.Name()); err != nil || keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		a.log.Info("agent: pruned old release", "version", e.Name())
	}
	errs = append(errs, durable.SyncDir(dir))
	return errors.Join(errs...)
}

// removeLeftovers deletes half-made symlinks and temporary journal files.
func (a *Agent) removeLeftovers() error {
	var errs []error
	for _, n := range []string{currentLink + ".new", prevLink + ".new"} {
		if err := os.Remove(a.path(n)); err == nil {
			a.log.Warn("agent: removed a half-made symlink left by an interrupted switch", "path", a.path(n))
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	entries, err := os.ReadDir(a.root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix+stateFile+"-") {
			if err := os.Remove(a.path(e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing leftovers: %w", err)
	}
	return durable.SyncDir(a.root)
}

// syncTree fsyncs every regular file and directory under dir, so that a
// power cut after the switch cannot leave a release with empty files.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			return nil
		}
		return durable.SyncPath(p)
	})
}

// syncDirs syncs each directory.
func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}
