package testenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// BuildVeil builds cmd/veil into a temporary directory of t and returns its
// path, for tests that run the real binary as a process.
func BuildVeil(t testing.TB) string {
	t.Helper()
	return BuildVeilTags(t)
}

// BuildVeilTags is BuildVeil with build tags (e.g. crashpoints).
func BuildVeilTags(t testing.TB, tags ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat("/usr/local/go/bin/go"); serr != nil {
			Missing(t, "the go command is not on PATH: "+err.Error())
		}
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "veil")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, goBin, append(args, "./cmd/veil")...)
	cmd.Dir = Root()
	cmd.Env = os.Environ()
	if os.Getenv("GOFLAGS") == "" {
		cmd.Env = append(cmd.Env, "GOFLAGS=-mod=mod")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/veil: %v\n%s", err, out)
	}
	return bin
}

// Buffer is a bytes.Buffer safe for concurrent use: a process's output or a
// logger's, read while it is being written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
