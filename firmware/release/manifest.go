package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// ManifestName is the bundle's first entry. No listed file may use the name.
const ManifestName = "manifest.json"

// Limits on what a manifest may hold.
const (
	// MaxFiles is the most files one bundle may list.
	MaxFiles = 1000
	// MaxPathLen is the longest path inside a bundle, in bytes.
	MaxPathLen = 255
	// maxManifestSize bounds the manifest entry: MaxFiles entries of a
	// MaxPathLen path and a 64-character hash fit in well under 1 MiB.
	maxManifestSize = 1 << 20
)

// ErrInvalidManifest is wrapped by every error that rejects a manifest.
var ErrInvalidManifest = errors.New("invalid release manifest")

// Manifest says what a release is and what it holds.
type Manifest struct {
	// Version is the release's version, MAJOR.MINOR.PATCH.
	Version string `json:"version"`
	// MinFrom is the oldest running version allowed to update straight to
	// this release; older boxes must take an intermediate release first.
	MinFrom string `json:"min_from"`
	// Files maps each path inside the bundle (e.g. "veil",
	// "models/face.onnx") to the lowercase hex SHA-256 of its contents.
	Files map[string]string `json:"files"`
}

// manifestFields are the JSON field names, all required.
var manifestFields = [...]string{"version", "min_from", "files"}

// ParseManifest decodes a manifest strictly: one JSON object with exactly the
// fields version, min_from and files, each once, nothing after it, and the
// result must pass Validate.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if len(b) > maxManifestSize {
		return m, fmt.Errorf("manifest: %d bytes, more than %d: %w", len(b), maxManifestSize, ErrInvalidManifest)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(dec, '{'); err != nil {
		return m, fmt.Errorf("manifest: %v: %w", err, ErrInvalidManifest)
	}
	var seen [len(manifestFields)]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return m, fmt.Errorf("manifest: %v: %w", err, ErrInvalidManifest)
		}
		key, _ := tok.(string) // inside an object Token returns keys as strings
		i := fieldIndex(key)
		if i < 0 {
			return m, fmt.Errorf("manifest: unknown field %q: %w", key, ErrInvalidManifest)
		}
		if seen[i] {
			return m, fmt.Errorf("manifest: field %q given twice: %w", key, ErrInvalidManifest)
		}
		seen[i] = true
		switch key {
		case "version":
			err = decodeString(dec, &m.Version)
		case "min_from":
			err = decodeString(dec, &m.MinFrom)
		case "files":
			m.Files, err = decodeFiles(dec)
		}
		if err != nil {
			return m, fmt.Errorf("manifest %s: %v: %w", key, err, ErrInvalidManifest)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return m, fmt.Errorf("manifest: %v: %w", err, ErrInvalidManifest)
	}
	if _, err := dec.Token(); err != io.EOF {
		return m, fmt.Errorf("manifest: data after the object: %w", ErrInvalidManifest)
	}
	for i, ok := range seen {
		if !ok {
			return m, fmt.Errorf("manifest: missing field %q: %w", manifestFields[i], ErrInvalidManifest)
		}
	}
	return m, m.Validate()
}

// Validate reports the first thing wrong with m, naming the field: version
// and min_from must be MAJOR.MINOR.PATCH with min_from not after version;
// files must list 1 to MaxFiles paths, each relative, clean, slash-separated,
// without "..", backslashes or control characters, at most MaxPathLen bytes,
// not manifest.json and not a directory of another listed path; every hash
// must be 64 lowercase hex digits.
func (m Manifest) Validate() error {
	v, err := ParseVersion(m.Version)
	if err != nil {
		return fmt.Errorf("manifest version: %v: %w", err, ErrInvalidManifest)
	}
	from, err := ParseVersion(m.MinFrom)
	if err != nil {
		return fmt.Errorf("manifest min_from: %v: %w", err, ErrInvalidManifest)
	}
	if v.Less(from) {
		return fmt.Errorf("manifest min_from: %s is later than version %s: %w", from, v, ErrInvalidManifest)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("manifest files: empty; a release lists at least one file: %w", ErrInvalidManifest)
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("manifest files: %d files, more than %d: %w", len(m.Files), MaxFiles, ErrInvalidManifest)
	}
	for _, p := range sortedPaths(m.Files) {
		if err := checkPath(p); err != nil {
			return fmt.Errorf("manifest files: %w", err)
		}
		if err := checkHash(m.Files[p]); err != nil {
			return fmt.Errorf("manifest files %q: %w", p, err)
		}
		// A path that is a directory of another listed path could not be
		// extracted as a file. Every ancestor of p is checked, so the
		// quadratic worst case is bounded by MaxFiles × path depth.
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if _, ok := m.Files[dir]; ok {
				return fmt.Errorf("manifest files: %q is both a file and the directory of %q: %w", dir, p, ErrInvalidManifest)
			}
		}
	}
	return nil
}

// checkPath accepts a path that extracts to a file inside the destination
// directory whatever the operating system: relative, clean, slash-separated,
// no "..", no backslash, no control character, no Windows drive.
func checkPath(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("path %q: %s: %w", p, why, ErrInvalidManifest)
	}
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLen:
		return bad(fmt.Sprintf("%d bytes, more than %d", len(p), MaxPathLen))
	case strings.HasPrefix(p, "/"):
		return bad("absolute; paths are relative to the bundle")
	case strings.Contains(p, `\`):
		return bad("has a backslash; use /")
	case len(p) >= 2 && p[1] == ':':
		return bad("looks like a Windows drive")
	case p == ManifestName:
		return bad("the name is reserved for the manifest itself")
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f {
			return bad("has a control character")
		}
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return bad(`has ".."`)
		}
	}
	if path.Clean(p) != p || p == "." {
		return bad(fmt.Sprintf("not clean (clean form %q)", path.Clean(p)))
	}
	return nil
}

// checkHash accepts exactly 64 lowercase hex digits.
func checkHash(h string) error {
	if len(h) != 64 {
		return fmt.Errorf("sha256 %q: %d characters, want 64 lowercase hex digits: %w", h, len(h), ErrInvalidManifest)
	}
	for _, c := range []byte(h) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("sha256 %q: %q is not a lowercase hex digit: %w", h, c, ErrInvalidManifest)
		}
	}
	return nil
}

// Marshal validates m and returns it as indented JSON, the bytes Build
// writes as the bundle's manifest.json. encoding/json sorts the file map, so
// the same manifest always gives the same bytes.
func (m Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Equal reports whether m and o say the same thing.
func (m Manifest) Equal(o Manifest) bool {
	if m.Version != o.Version || m.MinFrom != o.MinFrom || len(m.Files) != len(o.Files) {
		return false
	}
	for p, h := range m.Files {
		if oh, ok := o.Files[p]; !ok || oh != h {
			return false
		}
	}
	return true
}

func fieldIndex(key string) int {
	for i, f := range manifestFields {
		if f == key {
			return i
		}
	}
	return -1
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != want {
		if want == '{' {
			return errors.New("not a JSON object")
		}
		return fmt.Errorf("want %q", want)
	}
	return nil
}

// decodeString reads one JSON string (not null, not another type).
func decodeString(dec *json.Decoder, s *string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	v, ok := tok.(string)
	if !ok {
		return fmt.Errorf("want a string, got %v", tok)
	}
	*s = v
	return nil
}

// decodeFiles reads the files object, refusing a path given twice (which
// encoding/json would silently resolve to the last value) and values that are
// not strings.
func decodeFiles(dec *json.Decoder) (map[string]string, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	files := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		p, _ := tok.(string)
		if _, dup := files[p]; dup {
			return nil, fmt.Errorf("path %q given twice", p)
		}
		if len(files) == MaxFiles {
			return nil, fmt.Errorf("more than %d files", MaxFiles)
		}
		var h string
		if err := decodeString(dec, &h); err != nil {
			return nil, fmt.Errorf("path %q: %v", p, err)
		}
		files[p] = h
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	return files, nil
}

func sortedPaths(files map[string]string) []string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}
