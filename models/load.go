package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Load reads the named model from dir into memory, hashes the bytes it read and
// returns them only if they match the pinned SHA-256: dir's PinsFile's if it
// lists the file, else the compiled-in one. The bytes handed out are the bytes
// that were hashed: the file is opened and read once, so replacing it between
// a check and a later open cannot slip anything past.
//
// Errors wrap ErrUnknownModel, ErrBadPins, ErrMissing or ErrHashMismatch
// together with the path and a hint; on any error the returned bytes are nil.
func Load(dir, name string) ([]byte, Entry, error) {
	e, err := Lookup(name)
	if err != nil {
		return nil, Entry{}, err
	}
	pinned, err := withPins(dir, []Entry{e})
	if err != nil {
		return nil, e, err
	}
	e = pinned[0]
	b, err := loadEntry(dir, e)
	if err != nil {
		return nil, e, err
	}
	return b, e, nil
}

// loadEntry reads and checks e's file in dir.
func loadEntry(dir string, e Entry) ([]byte, error) {
	p := e.Path(dir)
	f, err := os.Open(p)
	if err != nil {
		return nil, fileError(p, e, err)
	}
	defer f.Close()
	b, err := readCapped(f, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("models: %s: %w", p, err)
	}
	if got := sha256Hex(b); got != e.SHA256 {
		return nil, mismatchError(p, e, got)
	}
	return b, nil
}

// readCapped reads all of r, failing if it holds more than limit bytes.
func readCapped(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than the %d-byte cap", limit)
	}
	return b, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileError(p string, e Entry, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("models: %s (%s): %w; %s", p, e.Name, ErrMissing, hint(e))
	}
	return fmt.Errorf("models: %s (%s): %w", p, e.Name, err)
}

func mismatchError(p string, e Entry, got string) error {
	pin := "the compiled-in pin"
	if e.ReleasePinned {
		pin = "the pin in " + filepath.Join(filepath.Dir(p), PinsFile)
	}
	return fmt.Errorf("models: %s (%s): %w: want %s (%s), got %s; %s",
		p, e.Name, ErrHashMismatch, e.SHA256, pin, got, hint(e))
}

// hint says how to cure a missing or mismatched file: fetching cannot produce
// a release's replacement file.
func hint(e Entry) string {
	if e.ReleasePinned {
		return releaseHint
	}
	return fetchHint + " to replace it"
}

// State is the outcome of verifying one model file.
type State string

// States reported by Verify.
const (
	StateOK       State = "ok"
	StateMissing  State = "missing"
	StateMismatch State = "hash mismatch"
	StateError    State = "error" // could not be read for another reason (permissions, a directory, a bad PinsFile, ...)
)

// Status is what Verify found for one manifest entry.
type Status struct {
	Entry Entry
	Path  string // the file checked
	State State
	Got   string // SHA-256 found, for StateMismatch (Entry.SHA256 is the one wanted)
	Err   error  // nil for StateOK; otherwise wraps ErrMissing, ErrHashMismatch, ErrBadPins or the I/O error
}

// OK reports whether the file is present with the pinned hash.
func (s Status) OK() bool { return s.State == StateOK }

// Verify checks every manifest entry's file in dir, against dir's PinsFile
// where it lists the file, and returns one Status per entry, in manifest
// order. The error is nil only if every file is OK; otherwise it joins the
// per-entry errors, so errors.Is(err, ErrMissing) and errors.Is(err,
// ErrHashMismatch) tell what kind of problem there was. If PinsFile is present
// but unusable no file is checked: every Status is StateError and the error
// wraps ErrBadPins.
func Verify(dir string) ([]Status, error) {
	return verifyEntries(dir, manifest)
}

func verifyEntries(dir string, entries []Entry) ([]Status, error) {
	out := make([]Status, 0, len(entries))
	entries, err := withPins(dir, entries)
	if err != nil {
		for _, e := range entries {
			out = append(out, Status{Entry: e, Path: e.Path(dir), State: StateError, Err: err})
		}
		return out, err
	}
	var errs []error
	for _, e := range entries {
		st := verifyOne(dir, e)
		out = append(out, st)
		if st.Err != nil {
			errs = append(errs, st.Err)
		}
	}
	return out, errors.Join(errs...)
}

func verifyOne(dir string, e Entry) Status {
	p := e.Path(dir)
	st := Status{Entry: e, Path: p}
	got, err := hashFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.State, st.Err = StateMissing, fileError(p, e, err)
	case err != nil:
		st.State, st.Err = StateError, fmt.Errorf("models: %s (%s): %w", p, e.Name, err)
	case got != e.SHA256:
		st.State, st.Got, st.Err = StateMismatch, got, mismatchError(p, e, got)
	default:
		st.State = StateOK
	}
	return st
}

// hashFile streams a regular file through SHA-256, reading at most
// MaxFileSize+1 bytes (a larger file cannot match any pin anyway).
func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, MaxFileSize+1)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
