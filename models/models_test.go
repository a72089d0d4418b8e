package models

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestManifestWellFormed(t *testing.T) {
	es := Manifest()
	if len(es) != 7 {
		t.Fatalf("manifest has %d entries, want 7", len(es))
	}
	names, files := map[string]bool{}, map[string]bool{}
	for _, e := range es {
		if err := e.validate(); err != nil {
			t.Errorf("%s: %v", e.Name, err)
		}
		if names[e.Name] || files[e.File] {
			t.Errorf("duplicate name or file: %s %s", e.Name, e.File)
		}
		names[e.Name], files[e.File] = true, true
		got, err := Lookup(e.Name)
		if err != nil || got.SHA256 != e.SHA256 {
			t.Errorf("Lookup(%q) = %v, %v", e.Name, got.Name, err)
		}
	}
	for _, n := range []string{"blazeface-front-128", "blazeface-back-256", "haar-frontalface-alt2", "haar-profileface", "lbp-frontalface-improved", "centernet-person", "ssdlite-person"} {
		if !names[n] {
			t.Errorf("manifest lacks %s", n)
		}
	}
	front, _ := Lookup("blazeface-front-128")
	if front.Input.Width != 128 || front.Input.Height != 128 || front.Input.Layout != "NHWC" ||
		front.Input.Channels != "RGB" || front.Input.Range != [2]float64{-1, 1} || front.Licence != "Apache-2.0" {
		t.Errorf("blazeface-front-128 input/licence: %+v %s", front.Input, front.Licence)
	}
	back, _ := Lookup("blazeface-back-256")
	if back.Input.Width != 256 || back.Input.Height != 256 || back.Input.Layout != "NHWC" {
		t.Errorf("blazeface-back-256 input: %+v", back.Input)
	}
	if front.Source.TarballSHA256 != "de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73" {
		t.Errorf("tarball pin: %s", front.Source.TarballSHA256)
	}

	person, _ := Lookup("centernet-person")
	if person.Format != "tf" || person.Source.Convert != "tfjs-centernet-person" || len(person.Source.Files) != 2 ||
		person.Licence != "MIT" || !strings.Contains(person.LicenceNote, "no licence file") || person.Input.Range != [2]float64{0, 255} {
		t.Errorf("centernet-person: %+v", person)
	}
	ssd, _ := Lookup("ssdlite-person")
	if ssd.Format != "tf" || ssd.Source.Convert != "tfjs-ssdlite-person" || len(ssd.Source.Files) != 6 || ssd.Licence != "Apache-2.0" ||
		ssd.Input.Width != 300 || ssd.Input.Height != 300 || ssd.Input.Range != [2]float64{0, 255} {
		t.Errorf("ssdlite-person: %+v", ssd)
	}

	// Manifest returns a copy.
	es[0].SHA256 = "changed"
	if Manifest()[0].SHA256 == "changed" {
		t.Error("Manifest() exposes the package's slice")
	}
}

func TestParseManifestRejects(t *testing.T) {
	good := string(manifestJSON)
	for name, bad := range map[string]string{
		"unknown field":      strings.Replace(good, `"format": "onnx"`, `"format": "onnx", "colour": "red"`, 1),
		"upper-case hex":     strings.Replace(good, "d388b1cf", "D388B1CF", 1),
		"short hash":         strings.Replace(good, "d388b1cf8a5f", "d388", 1),
		"duplicate name":     strings.Replace(good, `"blazeface-back-256"`, `"blazeface-front-128"`, 1),
		"empty licence":      strings.Replace(good, `"licence": "Apache-2.0"`, `"licence": ""`, 1),
		"npm traversal":      strings.Replace(good, `"package/ONNX/face_detection_front`, `"package/../../face_detection_front`, 1),
		"file with dir":      strings.Replace(good, `"file": "haarcascade_profileface.xml"`, `"file": "../haarcascade_profileface.xml"`, 1),
		"bad kind":           strings.Replace(good, `"kind": "deb"`, `"kind": "pip"`, 1),
		"two tarballs":       strings.Replace(good, "de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73", strings.Repeat("0", 64), 1),
		"unknown converter":  strings.Replace(good, `"convert": "tfjs-centernet-person"`, `"convert": "onnx2tf"`, 1),
		"converter on a deb": strings.Replace(good, `"path": "/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt2.xml"`, `"path": "/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt2.xml", "convert": "tfjs-centernet-person", "files": [{"path": "a", "size": 1, "sha256": "`+strings.Repeat("0", 64)+`"}]`, 1),
		"source file hash":   strings.Replace(good, `"sha256": "bfb942eaacc5`, `"sha256": "BFB942EAACC5`, 1),
		"source file path":   strings.Replace(good, `"path": "package/models/centernet.bin"`, `"path": "/etc/passwd"`, 1),
		"bad format":         strings.Replace(good, `"format": "tf"`, `"format": "pb"`, 1),
	} {
		if bad == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := parseManifest([]byte(bad)); err == nil {
			t.Errorf("%s: parseManifest accepted it", name)
		}
	}
	if _, err := parseManifest(manifestJSON); err != nil {
		t.Fatalf("embedded manifest: %v", err)
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("yolo-face")
	if !errors.Is(err, ErrUnknownModel) || !strings.Contains(err.Error(), "blazeface-front-128") {
		t.Fatalf("Lookup unknown: %v", err)
	}
	b, _, err := Load(t.TempDir(), "yolo-face")
	if !errors.Is(err, ErrUnknownModel) || b != nil {
		t.Fatalf("Load unknown: %v", err)
	}
}

// fakeEntry returns an entry pinned to content, for tests that must not depend
// on the real model files.
func fakeEntry(name string, content []byte) Entry {
	return Entry{
		Name: name, Description: "test", File: name + ".bin", Format: "onnx",
		Size: int64(len(content)), SHA256: sha256Hex(content),
		Licence: "MIT", LicenceNote: "test",
		Source: Source{Kind: SourceDeb, Package: "veil-test", Version: "1", Path: "/nonexistent/" + name},
		Input:  Input{Width: 1, Height: 1, Layout: "HW", Channels: "GRAY", Range: [2]float64{0, 255}},
	}
}

func TestLoadEntry(t *testing.T) {
	content := bytes.Repeat([]byte("veil model bytes "), 1000)
	e := fakeEntry("m", content)
	dir := t.TempDir()

	t.Run("missing", func(t *testing.T) {
		b, err := loadEntry(dir, e)
		if !errors.Is(err, ErrMissing) || b != nil {
			t.Fatalf("got %d bytes, %v; want ErrMissing", len(b), err)
		}
		if !strings.Contains(err.Error(), e.Path(dir)) || !strings.Contains(err.Error(), "veil models fetch") {
			t.Errorf("error lacks path or hint: %v", err)
		}
	})

	if err := os.WriteFile(e.Path(dir), content, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("good", func(t *testing.T) {
		b, err := loadEntry(dir, e)
		if err != nil || !bytes.Equal(b, content) {
			t.Fatalf("got %d bytes, %v", len(b), err)
		}
	})

	t.Run("one flipped byte", func(t *testing.T) {
		bad := bytes.Clone(content)
		bad[len(bad)/2] ^= 0x01
		if err := os.WriteFile(e.Path(dir), bad, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := loadEntry(dir, e)
		if !errors.Is(err, ErrHashMismatch) || b != nil {
			t.Fatalf("got %d bytes, %v; want nil, ErrHashMismatch", len(b), err)
		}
		if !strings.Contains(err.Error(), e.SHA256) || !strings.Contains(err.Error(), sha256Hex(bad)) {
			t.Errorf("error lacks both hashes: %v", err)
		}
	})

	t.Run("directory", func(t *testing.T) {
		d := t.TempDir()
		if err := os.Mkdir(e.Path(d), 0o755); err != nil {
			t.Fatal(err)
		}
		if b, err := loadEntry(d, e); err == nil || b != nil {
			t.Fatalf("loading a directory: %d bytes, %v", len(b), err)
		}
	})
}

// TestLoadRealModels uses the files from the packages when they are here:
// copies the opencv-data cascades into a directory (no network) and loads them.
func TestLoadRealModels(t *testing.T) {
	dir := t.TempDir()
	var loaded int
	for _, e := range Manifest() {
		if e.Source.Kind != SourceDeb {
			continue
		}
		b, err := os.ReadFile(e.Source.Path)
		if err != nil {
			requireInCI(t, "opencv-data is not installed: %v", err)
			continue
		}
		if err := os.WriteFile(e.Path(dir), b, 0o644); err != nil {
			t.Fatal(err)
		}
		got, ge, err := Load(dir, e.Name)
		if err != nil {
			t.Fatalf("Load(%s): %v", e.Name, err)
		}
		if ge.Name != e.Name || !bytes.Equal(got, b) || !bytes.Contains(got[:512], []byte("<?xml")) {
			t.Fatalf("Load(%s) returned the wrong thing", e.Name)
		}
		loaded++
	}
	t.Logf("loaded %d cascades", loaded)
}

func TestVerify(t *testing.T) {
	a, b, c := []byte("model a"), []byte("model b"), []byte("model c")
	entries := []Entry{fakeEntry("a", a), fakeEntry("b", b), fakeEntry("c", c)}
	dir := t.TempDir()

	sts, err := verifyEntries(dir, entries)
	if !errors.Is(err, ErrMissing) || len(sts) != 3 {
		t.Fatalf("empty dir: %d statuses, %v", len(sts), err)
	}
	for _, st := range sts {
		if st.State != StateMissing || st.OK() {
			t.Errorf("%s: %s, want missing", st.Entry.Name, st.State)
		}
	}

	os.WriteFile(filepath.Join(dir, "a.bin"), a, 0o644)
	os.WriteFile(filepath.Join(dir, "b.bin"), []byte("model B"), 0o644) // tampered
	os.WriteFile(filepath.Join(dir, "c.bin"), c, 0o644)
	sts, err = verifyEntries(dir, entries)
	if !errors.Is(err, ErrHashMismatch) || errors.Is(err, ErrMissing) {
		t.Fatalf("tampered: %v", err)
	}
	want := []State{StateOK, StateMismatch, StateOK}
	for i, st := range sts {
		if st.State != want[i] {
			t.Errorf("%s: %s, want %s", st.Entry.Name, st.State, want[i])
		}
	}
	if sts[1].Got != sha256Hex([]byte("model B")) || sts[1].Entry.SHA256 != sha256Hex(b) {
		t.Errorf("mismatch hashes: got %s want %s", sts[1].Got, sts[1].Entry.SHA256)
	}
	if !strings.Contains(sts[1].Err.Error(), sts[1].Got) || !strings.Contains(sts[1].Err.Error(), sts[1].Entry.SHA256) {
		t.Errorf("mismatch error lacks both hashes: %v", sts[1].Err)
	}

	os.WriteFile(filepath.Join(dir, "b.bin"), b, 0o644)
	if sts, err = verifyEntries(dir, entries); err != nil {
		t.Fatalf("all good: %v", err)
	}
	for _, st := range sts {
		if !st.OK() || st.Err != nil {
			t.Errorf("%s: %s %v", st.Entry.Name, st.State, st.Err)
		}
	}
}

// TestVerifyManifest runs the exported Verify on an empty directory: one
// status per manifest entry, all missing.
func TestVerifyManifest(t *testing.T) {
	sts, err := Verify(t.TempDir())
	if !errors.Is(err, ErrMissing) || len(sts) != len(Manifest()) {
		t.Fatalf("%d statuses, %v", len(sts), err)
	}
}

// requireInCI skips the test, or fails it when CI=true: CI must have every
// tool the project's setup installs.
func requireInCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but "+format, args...)
	}
	t.Skipf(format+" (run scripts/setup.sh; under CI=true this fails)", args...)
}
