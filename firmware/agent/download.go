package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// ErrCorrupt says a download did not match its expected length and SHA-256.
// The file has been deleted by the time this is returned.
var ErrCorrupt = errors.New("download does not match its expected length and SHA-256")

// Download fetches url into dst, which ends up exactly length bytes long
// with the given SHA-256 (64 hex digits), or returns an error.
//
// It resumes: if dst already holds a partial download it asks for the rest
// with "Range: bytes=<size>-". A 206 answer is appended; a 200 answer (a
// server that ignores Range) starts the file over; any other status is an
// error and the partial file is kept. It never writes beyond length. An
// interrupted transfer keeps what arrived so that the next call resumes.
//
// Once length bytes are there the whole file is hashed; on a mismatch (for
// example a partial that was altered on disk) the file is deleted and the
// error wraps ErrCorrupt, so the next call starts from scratch. The file is
// fsynced before Download returns.
//
// client nil means http.DefaultClient. progress, if not nil, is called from
// Download's goroutine after every write with the bytes present so far.
func Download(ctx context.Context, url, dst string, length int64, sha256hex string, client *http.Client, progress func(done, total int64)) error {
	want, err := hex.DecodeString(sha256hex)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("agent: download %s: expected SHA-256 %q is not 64 hex digits", url, sha256hex)
	}
	if length < 0 {
		return fmt.Errorf("agent: download %s: negative expected length %d", url, length)
	}
	if client == nil {
		client = http.DefaultClient
	}
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("agent: download %s: %w", url, err)
	}
	defer f.Close() // a second Close after the explicit ones is harmless

	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("agent: download %s: %w", url, err)
	}
	if have > length {
		// Longer than the real thing: it cannot be a prefix of it.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("agent: download %s: discarding oversized partial %s: %w", url, dst, err)
		}
		have = 0
	}
	if have < length {
		have, err = transfer(ctx, f, url, dst, have, length, client, progress)
		if serr := f.Sync(); err == nil && serr != nil {
			err = fmt.Errorf("agent: download %s: syncing %s: %w", url, dst, serr)
		}
		if err != nil {
			return err
		}
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("agent: download %s: %w", url, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("agent: download %s: reading back %s: %w", url, dst, err)
	}
	if got := h.Sum(nil); n != length || !bytes.Equal(got, want) {
		f.Close()
		rmErr := os.Remove(dst)
		err := fmt.Errorf("agent: download %s to %s: %w: got %d bytes with SHA-256 %x, want %d bytes with %s; the partial/corrupt download was discarded and the next attempt starts over",
			url, dst, ErrCorrupt, n, got, length, strings.ToLower(sha256hex))
		if rmErr != nil {
			err = fmt.Errorf("%w (but deleting it failed: %v; delete it by hand)", err, rmErr)
		}
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("agent: download %s: syncing %s: %w", url, dst, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("agent: download %s: closing %s: %w", url, dst, err)
	}
	return nil
}

// transfer makes one request for bytes [have, length) and writes what it
// gets into f. It returns how many bytes f holds afterwards.
func transfer(ctx context.Context, f *os.File, url, dst string, have, length int64, client *http.Client, progress func(done, total int64)) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return have, fmt.Errorf("agent: download %s: %w", url, err)
	}
	// Ranges count bytes of the file itself, so no transparent gzip.
	req.Header.Set("Accept-Encoding", "identity")
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := client.Do(req)
	if err != nil {
		return have, fmt.Errorf("agent: download %s: %w (%d of %d bytes kept for resuming)", url, err, have, length)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != have {
			return have, fmt.Errorf("agent: download %s: asked for bytes %d- and the server answered 206 with Content-Range %q; %d of %d bytes kept",
				url, have, resp.Header.Get("Content-Range"), have, length)
		}
		if total >= 0 && total != length {
			return discardPartial(f, have, fmt.Errorf("agent: download %s: the server's file is %d bytes, expected %d; the partial download was discarded",
				url, total, length))
		}
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != length {
			return have, fmt.Errorf("agent: download %s: the server offers %d bytes, expected %d; refusing it (wrong file or wrong metadata)",
				url, resp.ContentLength, length)
		}
		if have > 0 {
			// The server ignored Range and sends the whole file: start over.
			if err := f.Truncate(0); err != nil {
				return have, fmt.Errorf("agent: download %s: restarting %s: %w", url, dst, err)
			}
			have = 0
		}
	case http.StatusRequestedRangeNotSatisfiable:
		return discardPartial(f, have, fmt.Errorf("agent: download %s: the server refused to resume at byte %d (%s), so its file is shorter than the expected %d bytes; the partial download was discarded",
			url, have, resp.Status, length))
	default:
		return have, fmt.Errorf("agent: download %s: the server answered %s, want 200 or 206; %d of %d bytes kept for resuming",
			url, resp.Status, have, length)
	}

	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return have, fmt.Errorf("agent: download %s: %w", url, err)
	}
	w := &progressWriter{f: f, done: have, total: length, progress: progress}
	_, err = io.Copy(w, io.LimitReader(resp.Body, length-have))
	have = w.done
	if err != nil {
		return have, fmt.Errorf("agent: download %s interrupted at %d of %d bytes (kept in %s for resuming): %w", url, have, length, dst, err)
	}
	if have < length {
		return have, fmt.Errorf("agent: download %s: the server ended the transfer at %d of %d bytes (kept in %s for resuming)", url, have, length, dst)
	}
	return have, nil
}

// discardPartial empties f and returns why.
func discardPartial(f *os.File, have int64, why error) (int64, error) {
	if err := f.Truncate(0); err != nil {
		return have, fmt.Errorf("%w (but emptying it failed: %v)", why, err)
	}
	return 0, why
}

// parseContentRange reads "bytes START-END/TOTAL"; total is -1 for "*".
func parseContentRange(s string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q: not bytes", s)
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q: no total", s)
	}
	first, _, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, fmt.Errorf("content-range %q: no range", s)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("content-range %q: %w", s, err)
	}
	total = -1
	if size != "*" {
		if total, err = strconv.ParseInt(size, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("content-range %q: %w", s, err)
		}
	}
	return start, total, nil
}

// progressWriter counts bytes written to f and reports them.
type progressWriter struct {
	f           *os.File
	done, total int64
	progress    func(done, total int64)
}

func (w *progressWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.done += int64(n)
	if w.progress != nil && n > 0 {
		w.progress(w.done, w.total)
	}
	return n, err
}
