package models

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pinsDoc builds a release-pins.json body with one entry; raw JSON, so tests
// can break it on purpose.
func pinsDoc(file, sha string) string {
	return `{"schema":1,"files":{"` + file + `":"` + sha + `"}}`
}

// TestReleasePins loads and verifies a real manifest entry whose file a
// release replaced, with and without that release's pins.
func TestReleasePins(t *testing.T) {
	e, err := Lookup("lbp-frontalface-improved")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Lookup("haar-profileface")
	replacement := []byte("<?xml version=\"1.0\"?><opencv_storage>a release's cascade</opencv_storage>")
	tampered := bytes.Replace(replacement, []byte("release"), []byte("rElease"), 1)
	pin := sha256Hex(replacement)

	for _, tc := range []struct {
		name     string
		file     []byte            // written as e.File; nil: none
		pins     map[string]string // written with WritePins; nil: no PinsFile
		wantErr  error             // from Load; nil: it returns file
		state    State             // Verify's state for e
		released bool              // Entry.ReleasePinned
		mention  []string          // in Load's error
		absent   []string          // not in Load's error
	}{
		{
			name: "no pins file: compiled-in pin, as before", file: replacement,
			wantErr: ErrHashMismatch, state: StateMismatch,
			mention: []string{"compiled-in pin", e.SHA256, pin, "veil models fetch"},
		},
		{
			name: "pins for another file: compiled-in pin", file: replacement,
			pins:    map[string]string{other.File: pin},
			wantErr: ErrHashMismatch, state: StateMismatch,
			mention: []string{"compiled-in pin", e.SHA256},
		},
		{
			name: "replacement with its pin", file: replacement,
			pins:  map[string]string{e.File: pin},
			state: StateOK, released: true,
		},
		{
			name: "tampered replacement", file: tampered,
			pins:    map[string]string{e.File: pin},
			wantErr: ErrHashMismatch, state: StateMismatch, released: true,
			mention: []string{PinsFile, pin, sha256Hex(tampered), "reinstall", "roll back"},
			absent:  []string{"veil models fetch", "compiled-in"},
		},
		{
			name:    "replacement missing",
			pins:    map[string]string{e.File: pin},
			wantErr: ErrMissing, state: StateMissing, released: true,
			mention: []string{"reinstall"}, absent: []string{"veil models fetch"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != nil {
				if err := os.WriteFile(e.Path(dir), tc.file, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.pins != nil {
				if err := WritePins(dir, tc.pins); err != nil {
					t.Fatal(err)
				}
			}

			b, ge, err := Load(dir, e.Name)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr != nil) == (err == nil) {
				t.Fatalf("Load: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !bytes.Equal(b, tc.file) || tc.wantErr != nil && b != nil {
				t.Errorf("Load returned %d bytes", len(b))
			}
			if ge.ReleasePinned != tc.released || tc.released && ge.SHA256 != pin || !tc.released && ge.SHA256 != e.SHA256 {
				t.Errorf("Load entry: ReleasePinned %v SHA256 %s", ge.ReleasePinned, ge.SHA256)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load error lacks %q: %v", s, err)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(err.Error(), s) {
					t.Errorf("Load error has %q: %v", s, err)
				}
			}

			sts, verr := Verify(dir)
			if verr == nil { // the other entries are missing
				t.Fatal("Verify: no error")
			}
			for _, st := range sts {
				if st.Entry.Name != e.Name {
					if st.State != StateMissing || st.Entry.ReleasePinned != (tc.pins[st.Entry.File] != "") {
						t.Errorf("Verify %s: %s, release-pinned %v", st.Entry.Name, st.State, st.Entry.ReleasePinned)
					}
					continue
				}
				if st.State != tc.state || st.Entry.ReleasePinned != tc.released || st.Entry.SHA256 != ge.SHA256 {
					t.Errorf("Verify %s: %s (want %s), release-pinned %v, sha256 %s", e.Name, st.State, tc.state, st.Entry.ReleasePinned, st.Entry.SHA256)
				}
			}
			if tc.state == StateMismatch && !errors.Is(verr, ErrHashMismatch) {
				t.Errorf("Verify: %v, want ErrHashMismatch", verr)
			}
		})
	}
}

// TestBadPinsFailClosed: a PinsFile that cannot be used refuses Load and
// Verify even for a file that matches the release's pin. A dangling symlink is
// a PinsFile that cannot be read, not an absent one.
func TestBadPinsFailClosed(t *testing.T) {
	e, _ := Lookup("lbp-frontalface-improved")
	content := []byte("a release's cascade")
	good := pinsDoc(e.File, sha256Hex(content))
	for name, setup := range map[string]func(p string) error{
		"not json":      func(p string) error { return os.WriteFile(p, []byte("schema=1"), 0o644) },
		"empty":         func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"trailing data": func(p string) error { return os.WriteFile(p, []byte(good+"{}"), 0o644) },
		"upper-case hex": func(p string) error {
			return os.WriteFile(p, []byte(pinsDoc(e.File, strings.ToUpper(sha256Hex(content)))), 0o644)
		},
		"unknown file name": func(p string) error { return os.WriteFile(p, []byte(pinsDoc("yolo.onnx", sha256Hex(content))), 0o644) },
		"too large": func(p string) error {
			return os.WriteFile(p, append([]byte(good), bytes.Repeat([]byte(" "), maxPinsSize)...), 0o644)
		},
		"a directory":      func(p string) error { return os.Mkdir(p, 0o755) },
		"dangling symlink": func(p string) error { return os.Symlink("nowhere", p) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(e.Path(dir), content, 0o644); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, PinsFile)
			if err := setup(p); err != nil {
				t.Fatal(err)
			}
			b, _, err := Load(dir, e.Name)
			if !errors.Is(err, ErrBadPins) || b != nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("Load: %d bytes, %v; want ErrBadPins naming %s", len(b), err, p)
			}
			t.Log(err)
			sts, err := Verify(dir)
			if !errors.Is(err, ErrBadPins) || !strings.Contains(err.Error(), p) || len(sts) != len(Manifest()) {
				t.Fatalf("Verify: %d statuses, %v; want ErrBadPins naming %s", len(sts), err, p)
			}
			for _, st := range sts {
				if st.State != StateError || !errors.Is(st.Err, ErrBadPins) {
					t.Errorf("Verify %s: %s %v", st.Entry.Name, st.State, st.Err)
				}
			}
		})
	}
}

func TestParsePinsRejects(t *testing.T) {
	e := Manifest()[0]
	h := e.SHA256
	good := pinsDoc(e.File, h)
	for name, doc := range map[string]string{
		"unknown field":      `{"schema":1,"files":{"` + e.File + `":"` + h + `"},"signed":true}`,
		"duplicate key":      `{"schema":1,"schema":1,"files":{"` + e.File + `":"` + h + `"}}`,
		"duplicate file":     `{"schema":1,"files":{"` + e.File + `":"` + h + `","` + e.File + `":"` + h + `"}}`,
		"short hash":         pinsDoc(e.File, h[:63]),
		"non-hex hash":       pinsDoc(e.File, "g"+h[1:]),
		"upper-case hash":    pinsDoc(e.File, strings.ToUpper(h)),
		"hash not a string":  `{"schema":1,"files":{"` + e.File + `":1}}`,
		"path, not a name":   pinsDoc("../"+e.File, h),
		"model name":         pinsDoc(e.Name, h),
		"empty files":        `{"schema":1,"files":{}}`,
		"null files":         `{"schema":1,"files":null}`,
		"files an array":     `{"schema":1,"files":["` + e.File + `"]}`,
		"missing files":      `{"schema":1}`,
		"missing schema":     `{"files":{"` + e.File + `":"` + h + `"}}`,
		"schema 2":           strings.Replace(good, `"schema":1`, `"schema":2`, 1),
		"schema 1.0":         strings.Replace(good, `"schema":1`, `"schema":1.0`, 1),
		"schema string":      strings.Replace(good, `"schema":1`, `"schema":"1"`, 1),
		"trailing object":    good + `{}`,
		"trailing garbage":   good + ` x`,
		"truncated":          good[:len(good)-1],
		"array":              `[` + good + `]`,
		"empty":              ``,
		"null":               `null`,
		"second pin unknown": `{"schema":1,"files":{"` + e.File + `":"` + h + `","x.onnx":"` + h + `"}}`,
	} {
		if _, err := parsePins([]byte(doc)); err == nil {
			t.Errorf("%s: parsePins accepted %s", name, doc)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	for _, doc := range []string{good, " \n" + good + "\n\t", `{"files":{"` + e.File + `":"` + h + `"},"schema":1}`} {
		pins, err := parsePins([]byte(doc))
		if err != nil || len(pins) != 1 || pins[e.File] != h {
			t.Errorf("parsePins(%s) = %v, %v", doc, pins, err)
		}
	}
}

func TestWritePins(t *testing.T) {
	es := Manifest()
	all := map[string]string{}
	for _, e := range es {
		all[e.File] = sha256Hex([]byte(e.Name))
	}
	for _, tc := range []struct {
		name string
		pins map[string]string
		ok   bool
	}{
		{"every file", all, true},
		{"one file", map[string]string{es[2].File: es[2].SHA256}, true},
		{"unknown file name", map[string]string{es[0].File: es[0].SHA256, "yolo-face.onnx": es[0].SHA256}, false},
		{"model name, not file", map[string]string{es[0].Name: es[0].SHA256}, false},
		{"upper-case hash", map[string]string{es[0].File: strings.ToUpper(es[0].SHA256)}, false},
		{"empty", map[string]string{}, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := WritePins(dir, tc.pins)
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), PinsFile) {
					t.Fatalf("WritePins accepted it or the error does not name %s: %v", PinsFile, err)
				}
				if names := dirNames(t, dir); len(names) != 0 {
					t.Fatalf("rejected pins left files: %v", names)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := readPins(dir)
			if err != nil || !maps.Equal(got, tc.pins) {
				t.Fatalf("read back %v, %v; want %v", got, err, tc.pins)
			}
			fi, err := os.Stat(filepath.Join(dir, PinsFile))
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("mode %v, %v; want 0644 (veil reads it as another user)", fi.Mode(), err)
			}
			if names := dirNames(t, dir); len(names) != 1 {
				t.Fatalf("temporary files left: %v", names)
			}
		})
	}
	if err := WritePins(filepath.Join(t.TempDir(), "no", "such"), all); err == nil {
		t.Fatal("WritePins into a missing directory succeeded")
	}
}

// TestFetchLeavesReleasePinned: Fetch neither replaces nor "repairs" a file
// the release pinned, and refuses to run on an unusable PinsFile.
func TestFetchLeavesReleasePinned(t *testing.T) {
	e, _ := Lookup("lbp-frontalface-improved")
	entries := []Entry{e}
	replacement := []byte("a release's cascade")
	ctx := context.Background()

	dir := t.TempDir()
	if err := os.WriteFile(e.Path(dir), replacement, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePins(dir, map[string]string{e.File: sha256Hex(replacement)}); err != nil {
		t.Fatal(err)
	}
	if err := fetchEntries(ctx, dir, testLogger(t), entries, "no-npm-here"); err != nil {
		t.Fatalf("fetch with the release's file in place: %v", err)
	}

	tampered := []byte("a release's cascadE")
	os.WriteFile(e.Path(dir), tampered, 0o644)
	err := fetchEntries(ctx, dir, testLogger(t), entries, "no-npm-here")
	if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), PinsFile) {
		t.Fatalf("fetch over a tampered release file: %v", err)
	}
	if b, _ := os.ReadFile(e.Path(dir)); !bytes.Equal(b, tampered) {
		t.Fatal("fetch replaced a release-pinned file")
	}

	os.WriteFile(filepath.Join(dir, PinsFile), []byte("{"), 0o644)
	os.Remove(e.Path(dir))
	if err := fetchEntries(ctx, dir, testLogger(t), entries, "no-npm-here"); !errors.Is(err, ErrBadPins) {
		t.Fatalf("fetch with a bad %s: %v", PinsFile, err)
	}
	if _, err := os.Stat(e.Path(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("fetch wrote %s despite a bad %s: %v", e.File, PinsFile, err)
	}
}

// FuzzParsePins: parsePins never panics, and whatever it accepts is valid and
// survives marshalPins and parsePins unchanged.
func FuzzParsePins(f *testing.F) {
	es := Manifest()
	f.Add([]byte(pinsDoc(es[0].File, es[0].SHA256)))
	f.Add([]byte(`{"schema":1,"files":{"` + es[1].File + `":"` + es[1].SHA256 + `","` + es[3].File + `":"` + es[3].SHA256 + `"}}`))
	f.Add([]byte(`{"schema":1,"files":{}}`))
	f.Add([]byte(`{"schema":1,"schema":1}`))
	f.Add([]byte(`{"files":{"\u0066":"x"}} {}`))
	f.Add([]byte(`[1,2,{"a":null}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pins, err := parsePins(b)
		if err != nil {
			return
		}
		if err := validatePins(pins); err != nil {
			t.Fatalf("accepted invalid pins %v: %v", pins, err)
		}
		out := marshalPins(pins)
		again, err := parsePins(out)
		if err != nil || !maps.Equal(again, pins) {
			t.Fatalf("round trip of %q: %v, %v; want %v", out, again, err, pins)
		}
	})
}
