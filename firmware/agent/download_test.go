package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fileServer serves data, honouring "Range: bytes=N-" unless ignoreRange,
// and records the Range header of every request.
type fileServer struct {
	data        []byte
	ignoreRange bool

	mu     sync.Mutex
	cutAt  int // if > 0, the next response dies after this file offset
	ranges []string
}

func (s *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rg := r.Header.Get("Range")
	s.ranges = append(s.ranges, rg)
	cut := s.cutAt
	s.cutAt = 0
	s.mu.Unlock()

	start := 0
	if rg != "" && !s.ignoreRange {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		if err != nil {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if n >= len(s.data) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(s.data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = n
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(s.data)-1, len(s.data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
	}
	body := s.data[start:]
	if cut > start {
		w.Write(body[:cut-start])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection half way
	}
	w.Write(body)
}

func (s *fileServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ranges)
}

func testData(n int) ([]byte, string) {
	data := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

func TestDownload(t *testing.T) {
	const size = 256 << 10
	data, sum := testData(size)
	half := size / 2
	corruptHalf := slices.Clone(data[:half])
	corruptHalf[1000] ^= 0xff

	type call struct {
		length  int64  // 0 means size
		sum     string // "" means the right one
		wantErr string // "" means success
		corrupt bool   // the error must wrap ErrCorrupt
	}
	cases := []struct {
		name        string
		partial     []byte // dst before the first call; nil means absent
		cutAt       int
		ignoreRange bool
		status      int // if set, the server answers only this
		calls       []call
		wantRanges  []string
		wantGone    bool // dst must not exist after the last call
	}{
		{
			name:       "full download",
			calls:      []call{{}},
			wantRanges: []string{""},
		},
		{
			name:       "resume after the connection dropped half way",
			cutAt:      half,
			calls:      []call{{wantErr: "kept in"}, {}},
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", half)},
		},
		{
			name:       "resume an existing good partial",
			partial:    data[:half],
			calls:      []call{{}},
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half)},
		},
		{
			name:       "corrupt partial is discarded and the next call starts afresh",
			partial:    corruptHalf,
			calls:      []call{{wantErr: "partial/corrupt download was discarded", corrupt: true}, {}},
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half), ""},
		},
		{
			name:        "server ignoring Range starts over cleanly",
			partial:     corruptHalf,
			ignoreRange: true,
			calls:       []call{{}},
			wantRanges:  []string{fmt.Sprintf("bytes=%d-", half)},
		},
		{
			name:       "already complete needs no request",
			partial:    data,
			calls:      []call{{}},
			wantRanges: nil,
		},
		{
			name:       "oversized partial starts over",
			partial:    append(slices.Clone(data), 'x'),
			calls:      []call{{}},
			wantRanges: []string{""},
		},
		{
			name:       "expected length too short is refused",
			calls:      []call{{length: size - 1, wantErr: "offers 262144 bytes, expected 262143"}},
			wantRanges: []string{""},
		},
		{
			name:       "expected length too long is refused",
			calls:      []call{{length: size + 1, wantErr: "offers 262144 bytes, expected 262145"}},
			wantRanges: []string{""},
		},
		{
			name:       "server file shorter than a partial plus rest: 416 discards",
			partial:    append(slices.Clone(data), 'x'),
			calls:      []call{{length: size + 10, wantErr: "416"}},
			wantRanges: []string{fmt.Sprintf("bytes=%d-", size+1)},
		},
		{
			name:       "wrong hash is refused and the file deleted",
			calls:      []call{{sum: strings.Repeat("ab", 32), wantErr: "partial/corrupt download was discarded", corrupt: true}},
			wantRanges: []string{""},
			wantGone:   true,
		},
		{
			name:       "malformed hash is refused before any request",
			calls:      []call{{sum: "abc", wantErr: "not 64 hex digits"}},
			wantRanges: nil,
			wantGone:   true,
		},
		{
			name:       "unexpected status keeps the partial",
			partial:    data[:half],
			status:     http.StatusNotFound,
			calls:      []call{{wantErr: "404 Not Found, want 200 or 206"}},
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := &fileServer{data: data, ignoreRange: tc.ignoreRange, cutAt: tc.cutAt}
			var h http.Handler = fs
			if tc.status != 0 {
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fs.mu.Lock()
					fs.ranges = append(fs.ranges, r.Header.Get("Range"))
					fs.mu.Unlock()
					w.WriteHeader(tc.status)
				})
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			dst := filepath.Join(t.TempDir(), "x.bundle")
			if tc.partial != nil {
				if err := os.WriteFile(dst, tc.partial, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var last [2]int64
			progress := func(done, total int64) {
				if done < 0 || done > total {
					t.Errorf("progress %d of %d", done, total)
				}
				last = [2]int64{done, total}
			}
			for i, c := range tc.calls {
				length, want := int64(size), sum
				if c.length != 0 {
					length = c.length
				}
				if c.sum != "" {
					want = c.sum
				}
				err := Download(context.Background(), srv.URL+"/b", dst, length, want, srv.Client(), progress)
				if c.wantErr == "" {
					if err != nil {
						t.Fatalf("call %d: %v", i, err)
					}
					got, err := os.ReadFile(dst)
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("call %d: file is %d bytes (%v), not the served data", i, len(got), err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("call %d: err = %v, want it to contain %q", i, err, c.wantErr)
				}
				if errors.Is(err, ErrCorrupt) != c.corrupt {
					t.Fatalf("call %d: errors.Is(err, ErrCorrupt) = %v, want %v", i, !c.corrupt, c.corrupt)
				}
				if c.corrupt {
					if _, serr := os.Stat(dst); !os.IsNotExist(serr) {
						t.Fatalf("call %d: corrupt download not deleted: %v", i, serr)
					}
				}
				if c.wantErr == "kept in" {
					fi, err := os.Stat(dst)
					if err != nil || fi.Size() != int64(half) {
						t.Fatalf("call %d: interrupted download should keep %d bytes: %v %v", i, half, fi, err)
					}
				}
			}
			if got := fs.seen(); !slices.Equal(got, tc.wantRanges) {
				t.Errorf("Range headers seen %q, want %q", got, tc.wantRanges)
			}
			if tc.wantGone {
				if _, err := os.Stat(dst); err == nil {
					t.Errorf("%s still exists", dst)
				}
			}
			if tc.calls[len(tc.calls)-1].wantErr == "" && len(tc.wantRanges) > 0 && last != [2]int64{size, size} {
				t.Errorf("last progress %v, want [%d %d]", last, size, size)
			}
		})
	}
}

func TestDownloadCancelled(t *testing.T) {
	data, sum := testData(64 << 10)
	srv := httptest.NewServer(&fileServer{data: data})
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dst := filepath.Join(t.TempDir(), "x")
	err := Download(ctx, srv.URL, dst, int64(len(data)), sum, nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
