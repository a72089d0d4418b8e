package release

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testFiles is a small release: the binary, a model and the models manifest.
var testFiles = map[string]string{
	"veil":                 "#!/bin/sh\necho veil 1.1.0\n",
	"models/face.onnx":     "not really onnx, but bytes all the same",
	"models/manifest.json": `{"schema":1}`,
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// buildTestBundle writes testFiles to disk and builds a bundle of them,
// returning its bytes.
func buildTestBundle(t testing.TB) ([]byte, Manifest) {
	t.Helper()
	src := t.TempDir()
	onDisk := map[string]string{}
	for p, body := range testFiles {
		name := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		onDisk[p] = name
	}
	var buf bytes.Buffer
	m, err := Build(&buf, "1.1.0", "1.0.0", onDisk)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildExtractRoundTrip(t *testing.T) {
	b, m := buildTestBundle(t)
	for p, body := range testFiles {
		if m.Files[p] != sum(body) {
			t.Errorf("manifest pins %s as %s, want %s", p, m.Files[p], sum(body))
		}
	}
	if m.Version != "1.1.0" || m.MinFrom != "1.0.0" || len(m.Files) != len(testFiles) {
		t.Fatalf("manifest %+v", m)
	}

	// Deterministic: the same inputs give the same bytes.
	again, _ := buildTestBundle(t)
	if !bytes.Equal(b, again) {
		t.Error("two builds of the same files differ")
	}

	// Layout: manifest first, then the files sorted, fixed owner, time, modes.
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, hdr.Name)
		wantMode := int64(0o644)
		if hdr.Name == "veil" {
			wantMode = 0o755
		}
		if hdr.Mode != wantMode || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || !hdr.ModTime.Equal(bundleTime) {
			t.Errorf("%s: mode %o uid %d gid %d uname %q mtime %v", hdr.Name, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Uname, hdr.ModTime)
		}
	}
	if got := strings.Join(names, " "); got != "manifest.json models/face.onnx models/manifest.json veil" {
		t.Errorf("entries %s", got)
	}

	dir := t.TempDir()
	bundle := writeFile(t, dir, "bundle.tar", b)
	vm, err := Verify(bundle)
	if err != nil || !vm.Equal(m) {
		t.Fatalf("Verify = %+v, %v", vm, err)
	}
	dest := filepath.Join(dir, "new", "release")
	em, err := Extract(bundle, dest)
	if err != nil {
		t.Fatal(err)
	}
	if !em.Equal(m) {
		t.Errorf("Extract manifest %+v, want %+v", em, m)
	}
	for p, body := range testFiles {
		name := filepath.Join(dest, filepath.FromSlash(p))
		got, err := os.ReadFile(name)
		if err != nil || string(got) != body {
			t.Errorf("%s = %q, %v; want %q", p, got, err, body)
		}
		st, _ := os.Stat(name)
		want := fs.FileMode(0o644)
		if p == "veil" {
			want = 0o755
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	for _, d := range []string{dest, filepath.Join(dest, "models")} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("directory %s: %v, %v; want mode 0755", d, st.Mode().Perm(), err)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, ManifestName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the bundle's manifest.json was extracted: %v", err)
	}

	// An existing empty directory is fine too.
	empty := t.TempDir()
	if _, err := Extract(bundle, empty); err != nil {
		t.Fatal(err)
	}
}

func TestBuildRefuses(t *testing.T) {
	dir := t.TempDir()
	veil := writeFile(t, dir, "veil", []byte("binary"))
	for _, tc := range []struct {
		name             string
		version, minFrom string
		files            map[string]string
		want             string
	}{
		{"bad version", "1.1", "1.0.0", map[string]string{"veil": veil}, "manifest version"},
		{"min_from later", "1.0.0", "1.1.0", map[string]string{"veil": veil}, "later than version"},
		{"no files", "1.0.0", "1.0.0", map[string]string{}, "manifest files: empty"},
		{"traversal", "1.0.0", "1.0.0", map[string]string{"../veil": veil}, `has ".."`},
		{"reserved name", "1.0.0", "1.0.0", map[string]string{"manifest.json": veil}, "reserved"},
		{"missing on disk", "1.0.0", "1.0.0", map[string]string{"veil": filepath.Join(dir, "nope")}, "no such file"},
		{"directory on disk", "1.0.0", "1.0.0", map[string]string{"veil": dir}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := Build(&buf, tc.version, tc.minFrom, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// entry is one tar entry for hand-made bundles; headerOnly writes the header
// and nothing after it (for sizes too large to write).
type entry struct {
	hdr        tar.Header
	body       string
	headerOnly bool
}

func reg(name, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o644}, body: body}
}

func manifestEntry(t testing.TB, files map[string]string) entry {
	t.Helper()
	m := Manifest{Version: "1.1.0", MinFrom: "1.0.0", Files: map[string]string{}}
	for p, body := range files {
		m.Files[p] = sum(body)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return reg(ManifestName, string(b))
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if e.headerOnly {
			return buf.Bytes()
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// badBundles are hand-made bundles Extract must refuse, with the sentinel
// and the text its error must carry.
func badBundles(t testing.TB) []struct {
	name   string
	tar    []byte
	target error
	want   string
} {
	one := map[string]string{"veil": "binary", "models/face.onnx": "model"}
	m := manifestEntry(t, one)
	big := reg("veil", "")
	big.hdr.Size = MaxFileSize + 1
	big.headerOnly = true
	tampered := strings.Replace(m.body, sum("binary"), sum("other binary"), 1)
	return []struct {
		name   string
		tar    []byte
		target error
		want   string
	}{
		{"tampered file content", makeTar(t, m, reg("models/face.onnx", "model"), reg("veil", "binarY")),
			ErrHashMismatch, `"veil" has SHA-256`},
		{"tampered manifest hash", makeTar(t, reg(ManifestName, tampered), reg("models/face.onnx", "model"), reg("veil", "binary")),
			ErrHashMismatch, `"veil" has SHA-256`},
		{"tampered manifest syntax", makeTar(t, reg(ManifestName, m.body[:len(m.body)-3]), reg("veil", "binary")),
			ErrInvalidManifest, "manifest"},
		{"manifest lists traversal", makeTar(t, rawManifest(`{"version":"1.1.0","min_from":"1.0.0","files":{"../x":"`+sum("x")+`"}}`), reg("../x", "x")),
			ErrInvalidManifest, `has ".."`},
		{"extra file", makeTar(t, m, reg("models/face.onnx", "model"), reg("veil", "binary"), reg("extra", "x")),
			ErrUnsafeEntry, `"extra" is not listed`},
		{"traversal entry", makeTar(t, m, reg("../x", "x")),
			ErrUnsafeEntry, `"../x" is not listed`},
		{"absolute entry", makeTar(t, m, reg("/tmp/x", "x")),
			ErrUnsafeEntry, `"/tmp/x" is not listed`},
		{"dot-slash entry", makeTar(t, m, reg("./veil", "binary")),
			ErrUnsafeEntry, `"./veil" is not listed`},
		{"duplicate", makeTar(t, m, reg("veil", "binary"), reg("veil", "binary")),
			ErrUnsafeEntry, `"veil" appears twice`},
		{"symlink entry", makeTar(t, m, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "veil", Linkname: "/bin/sh"}}),
			ErrUnsafeEntry, `"veil" is a symbolic link`},
		{"symlink directory", makeTar(t, m, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "models", Linkname: "/etc"}}, reg("models/face.onnx", "model")),
			ErrUnsafeEntry, `"models" is not listed`},
		{"hardlink entry", makeTar(t, m, entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "veil", Linkname: "models/face.onnx"}}),
			ErrUnsafeEntry, `"veil" is a hard link`},
		{"device entry", makeTar(t, m, entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "veil", Devmajor: 1, Devminor: 3}}),
			ErrUnsafeEntry, `"veil" is a device`},
		{"directory entry", makeTar(t, m, entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "veil", Mode: 0o755}}),
			ErrUnsafeEntry, `"veil" is a directory`},
		{"oversized file", makeTar(t, m, big),
			ErrUnsafeEntry, `"veil" is 1073741825 bytes, more than 1073741824`},
		{"missing file", makeTar(t, m, reg("veil", "binary")),
			ErrMissingFile, `"models/face.onnx" is listed in the manifest but not in the bundle`},
		{"manifest not first", makeTar(t, reg("veil", "binary"), m),
			ErrNoManifest, `first entry is "veil"`},
		{"no entries", makeTar(t),
			ErrNoManifest, "empty"},
		{"manifest is a symlink", makeTar(t, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: ManifestName, Linkname: "/etc/passwd"}}),
			ErrUnsafeEntry, "symbolic link"},
	}
}

// rawManifest is a manifest entry with exactly the given bytes.
func rawManifest(raw string) entry { return reg(ManifestName, raw) }

func TestExtractRefuses(t *testing.T) {
	for _, tc := range badBundles(t) {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bundle := writeFile(t, dir, "bundle.tar", tc.tar)
			if _, err := Verify(bundle); !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v; want %v containing %q", err, tc.target, tc.want)
			}

			// Into a directory Extract creates: it is gone afterwards.
			dest := filepath.Join(dir, "dest")
			m, err := Extract(bundle, dest)
			if err == nil {
				t.Fatalf("Extract accepted it: %+v", m)
			}
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Extract = %v; want %v containing %q", err, tc.target, tc.want)
			}
			if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("destination left behind: %v", err)
			}
			assertOnly(t, dir, "bundle.tar")

			// Into an existing empty directory: it is left empty.
			if err := os.Mkdir(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := Extract(bundle, dest); !errors.Is(err, tc.target) {
				t.Fatalf("Extract into existing directory = %v; want %v", err, tc.target)
			}
			assertOnly(t, dir, "bundle.tar", "dest")
		})
	}
}

// assertOnly fails unless dir holds exactly the given paths (slash-separated,
// relative; directories must be listed too).
func assertOnly(t testing.TB, dir string, want ...string) {
	t.Helper()
	allowed := map[string]bool{}
	for _, w := range want {
		allowed[w] = true
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !allowed[filepath.ToSlash(rel)] {
			t.Errorf("unexpected %s", rel)
		}
		return nil
	})
}

func TestExtractRefusesNonEmptyDest(t *testing.T) {
	b, _ := buildTestBundle(t)
	dir := t.TempDir()
	bundle := writeFile(t, dir, "bundle.tar", b)
	dest := filepath.Join(dir, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := writeFile(t, dest, "veil", []byte("the running binary"))
	if _, err := Extract(bundle, dest); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Extract into a non-empty directory = %v", err)
	}
	if got, _ := os.ReadFile(keep); string(got) != "the running binary" {
		t.Fatalf("existing file changed to %q", got)
	}
	if _, err := Extract(bundle, keep); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Extract onto a file = %v", err)
	}
}

// FuzzExtract feeds arbitrary bytes to Extract as a bundle file. It must not
// panic, must never write outside its destination, must leave nothing behind
// when it fails, and must only ever produce the listed files with their
// pinned hashes.
func FuzzExtract(f *testing.F) {
	good, _ := buildTestBundle(f)
	f.Add(good)
	for _, tc := range badBundles(f) {
		f.Add(tc.tar)
	}
	f.Add([]byte{})
	f.Add(good[:700])
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		bundle := writeFile(t, dir, "bundle.tar", data)
		if err := os.Mkdir(filepath.Join(dir, "out"), 0o755); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(dir, "out", "dest")
		m, err := Extract(bundle, dest)
		if err != nil {
			assertOnly(t, dir, "bundle.tar", "out")
			return
		}
		want := []string{"bundle.tar", "out", "out/dest"}
		for p := range m.Files {
			want = append(want, "out/dest/"+p)
			for d := filepath.ToSlash(filepath.Dir(p)); d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
				want = append(want, "out/dest/"+d)
			}
			got, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(p)))
			if err != nil || sum(string(got)) != m.Files[p] {
				t.Fatalf("%s: hash %s, %v; manifest pins %s", p, sum(string(got)), err, m.Files[p])
			}
		}
		assertOnly(t, dir, want...)
	})
}
