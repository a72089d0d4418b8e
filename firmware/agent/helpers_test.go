package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// veilBody is what a test release's veil file holds.
func veilBody(v string) string { return "#!/bin/sh\n# veil " + v + "\n" }

// modelBody is what a test release's model file holds.
func modelBody(v string) string { return "model weights for " + v }

// writeRelease lays out a realistic release in dir.
func writeRelease(dir, v string) error {
	if err := os.MkdirAll(filepath.Join(dir, "models"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "veil"), []byte(veilBody(v)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "models", "face.onnx"), []byte(modelBody(v)), 0o644)
}

// newRoot makes an install root with the given releases; current points at
// the last one and previous at the one before it.
func newRoot(t *testing.T, versions ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "veil")
	for _, v := range versions {
		if err := writeRelease(filepath.Join(root, "releases", v), v); err != nil {
			t.Fatal(err)
		}
	}
	link := func(name, v string) {
		if err := os.Symlink(filepath.Join("releases", v), filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(versions); n > 0 {
		link("current", versions[n-1])
		if n > 1 {
			link("previous", versions[n-2])
		}
	}
	return root
}

// fetchStub writes a bundle naming v, the way a real fetch leaves a
// verified bundle.
func fetchStub(v string) func(context.Context, string) error {
	return func(_ context.Context, dst string) error {
		return os.WriteFile(dst, []byte("bundle "+v), 0o644)
	}
}

// installStub checks the bundle and unpacks a release into dest.
func installStub(v string) func(string, string) error {
	return func(bundle, dest string) error {
		b, err := os.ReadFile(bundle)
		if err != nil {
			return err
		}
		if string(b) != "bundle "+v {
			return fmt.Errorf("bundle holds %q", b)
		}
		return writeRelease(dest, v)
	}
}

// counter counts calls of a stub.
type counter struct{ n atomic.Int32 }

func (c *counter) restart(context.Context) error { c.n.Add(1); return nil }

func healthy(context.Context, string) error { return nil }

// open opens an agent on root, as a tool (running no release), with a
// counting Restart.
func open(t *testing.T, root string) (*Agent, *counter) {
	t.Helper()
	return openAs(t, root, "")
}

// openAs opens an agent on root as the process running release running.
func openAs(t *testing.T, root, running string) (*Agent, *counter) {
	t.Helper()
	c := &counter{}
	a, err := Open(Options{Root: root, Running: running, Restart: c.restart})
	if err != nil {
		t.Fatal(err)
	}
	return a, c
}

// update applies v with a and then, as the restarted process running v,
// confirms it with health: the whole update across a restart.
func update(t *testing.T, a *Agent, v string, health func(context.Context, string) error) error {
	t.Helper()
	if err := a.Apply(context.Background(), v, fetchStub(v), installStub(v)); err != nil {
		return err
	}
	b, err := Open(Options{Root: a.root, Running: v, Restart: a.restart, HealthTimeout: a.healthTimeout})
	if err != nil {
		return err
	}
	b.afterState = a.afterState
	confirmed, err := b.Confirm(context.Background(), health)
	if err == nil && !confirmed {
		return errors.New("nothing to confirm after Apply")
	}
	a.mu.Lock()
	a.state = b.Status()
	a.mu.Unlock()
	return err
}

// linkTarget returns the version root/name points at, "" if missing.
func linkTarget(t *testing.T, root, name string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(root, name))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(target, "releases/")
}

// assertCurrent checks that current resolves to a complete, intact release v.
func assertCurrent(t *testing.T, root, v string) {
	t.Helper()
	if got := linkTarget(t, root, "current"); got != v {
		t.Fatalf("current -> %q, want %q", got, v)
	}
	for name, want := range map[string]string{"veil": veilBody(v), "models/face.onnx": modelBody(v)} {
		got, err := os.ReadFile(filepath.Join(root, "current", name))
		if err != nil {
			t.Fatalf("current release %s: %v", v, err)
		}
		if string(got) != want {
			t.Fatalf("current/%s = %q, want %q", name, got, want)
		}
	}
}

// assertClean checks that no staging or switch leftovers remain.
func assertClean(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Errorf("staging not empty: %v", entries)
	}
	top, _ := os.ReadDir(root)
	for _, e := range top {
		if strings.HasSuffix(e.Name(), ".new") || strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("leftover in root: %s", e.Name())
		}
	}
}

// releases lists releases/ sorted.
func releases(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// journal reads state.json from disk.
func journal(t *testing.T, root string) State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("state.json: %v\n%s", err, data)
	}
	return st
}

// writeJournal puts a journal in place before Open.
func writeJournal(t *testing.T, root string, st State) {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "state.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
