package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// PinsFile is the name of the pin override a release carries in its models
// directory: {"schema":1,"files":{"<Entry.File>":"<lower-case hex SHA-256>"}}.
const PinsFile = "release-pins.json"

// maxPinsSize caps how many bytes of PinsFile are read.
const maxPinsSize = 64 << 10

// ErrBadPins: PinsFile exists but cannot be read or is not valid. Nothing in
// that directory is loaded or verified until it is fixed.
var ErrBadPins = errors.New("release pins unusable")

// releaseHint is appended to errors about a release-pinned file or PinsFile:
// `veil models fetch` cannot cure them, it would fetch the compiled-in files.
const releaseHint = "the release is damaged: reinstall it or roll back to the previous release"

// WritePins validates pins (Entry.File -> lower-case hex SHA-256, every file
// one of the manifest's) and writes them to dir/PinsFile, replacing any
// previous one atomically and durably (temporary file, fsync, rename, fsync
// of dir). The file is mode 0644: veil reads it as a different user than the
// installer that writes it.
func WritePins(dir string, pins map[string]string) error {
	if err := validatePins(pins); err != nil {
		return fmt.Errorf("models: writing %s: %w", filepath.Join(dir, PinsFile), err)
	}
	// durable.WriteFile would leave the file 0600, unreadable by veil;
	// writeAtomic does the same temp+fsync+rename+fsync and chmods 0644.
	if err := writeAtomic(dir, PinsFile, marshalPins(pins)); err != nil {
		return fmt.Errorf("models: writing %s: %w", filepath.Join(dir, PinsFile), err)
	}
	return nil
}

// marshalPins encodes valid pins in PinsFile's format (keys sorted).
func marshalPins(pins map[string]string) []byte {
	b, err := json.Marshal(struct {
		Schema int               `json:"schema"`
		Files  map[string]string `json:"files"`
	}{1, pins})
	if err != nil { // a map of strings always encodes
		panic(err)
	}
	return append(b, '\n')
}

// withPins returns entries with SHA256 replaced by dir's PinsFile wherever it
// lists the entry's File (and ReleasePinned set). Without a PinsFile entries
// are returned unchanged; a PinsFile that cannot be read or parsed is an
// error wrapping ErrBadPins, never a fall-back to the compiled-in pins.
func withPins(dir string, entries []Entry) ([]Entry, error) {
	pins, err := readPins(dir)
	if err != nil || pins == nil {
		return entries, err
	}
	out := slices.Clone(entries)
	for i := range out {
		if h, ok := pins[out[i].File]; ok {
			out[i].SHA256, out[i].ReleasePinned = h, true
		}
	}
	return out, nil
}

// readPins reads dir/PinsFile: nil, nil if there is none.
func readPins(dir string) (map[string]string, error) {
	p := filepath.Join(dir, PinsFile)
	pins, err := func() (map[string]string, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil {
			return nil, err
		} else if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
		}
		b, err := readCapped(f, maxPinsSize)
		if err != nil {
			return nil, err
		}
		return parsePins(b)
	}()
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(p); lerr != nil {
			return nil, nil // absent: the compiled-in pins apply
		}
		err = fmt.Errorf("dangling symbolic link (%v)", err) // present, unreadable
	}
	if err != nil {
		return nil, fmt.Errorf("models: %s: %w: %w; %s", p, ErrBadPins, err, releaseHint)
	}
	return pins, nil
}

// parsePins decodes PinsFile strictly: an unknown or duplicate key, a schema
// other than 1, a missing or empty "files", a file that is not a manifest
// entry's File, a hash that is not 64 lower-case hex digits, and anything
// after the object are all errors.
func parsePins(b []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := wantDelim(dec, '{', "the document"); err != nil {
		return nil, err
	}
	var files map[string]string
	seen := map[string]bool{}
	for dec.More() {
		key, err := stringToken(dec, "a key")
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		switch key {
		case "schema":
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if n, ok := tok.(json.Number); !ok {
				return nil, fmt.Errorf("schema is not a number (%v), want 1", tok)
			} else if n != "1" {
				return nil, fmt.Errorf("schema %s, want 1", n)
			}
		case "files":
			if files, err = parsePinFiles(dec); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown field %q", key)
		}
	}
	if err := wantDelim(dec, '}', "the end of the document"); err != nil {
		return nil, err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("trailing data %v after the document", tok)
		}
		return nil, err
	}
	if !seen["schema"] {
		return nil, errors.New("missing schema")
	}
	if err := validatePins(files); err != nil {
		return nil, err
	}
	return files, nil
}

func parsePinFiles(dec *json.Decoder) (map[string]string, error) {
	if err := wantDelim(dec, '{', "files"); err != nil {
		return nil, err
	}
	files := map[string]string{}
	for dec.More() {
		name, err := stringToken(dec, "a file name")
		if err != nil {
			return nil, err
		}
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("files: duplicate file %q", name)
		}
		h, err := stringToken(dec, fmt.Sprintf("files[%q]", name))
		if err != nil {
			return nil, err
		}
		files[name] = h
	}
	return files, wantDelim(dec, '}', "the end of files")
}

// validatePins checks that pins is not empty, names only manifest files and
// holds only lower-case hex SHA-256s.
func validatePins(pins map[string]string) error {
	if len(pins) == 0 {
		return errors.New("no files pinned")
	}
	for _, name := range slices.Sorted(maps.Keys(pins)) {
		if !slices.ContainsFunc(manifest, func(e Entry) bool { return e.File == name }) {
			return fmt.Errorf("files: %q is not a model file in the manifest", name)
		}
		if !isSHA256Hex(pins[name]) {
			return fmt.Errorf("files[%q]: sha256 %q is not 64 lower-case hex digits", name, pins[name])
		}
	}
	return nil
}

func wantDelim(dec *json.Decoder, d json.Delim, what string) error {
	tok, err := dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tok != d {
		return fmt.Errorf("%s: got %v, want %v", what, tok, d)
	}
	return nil
}

func stringToken(dec *json.Decoder, what string) (string, error) {
	tok, err := dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%s: got %v, want a string", what, tok)
	}
	return s, nil
}
