package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReleaseOf(t *testing.T) {
	root := newRoot(t, "1.0.0", "1.1.0")
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "veil"), []byte("x"), 0o755)
	cases := []struct {
		name, exe, want string
	}{
		{"through current", filepath.Join(root, "current", "veil"), "1.1.0"},
		{"through previous", filepath.Join(root, "previous", "veil"), "1.0.0"},
		{"release directory", filepath.Join(root, "releases", "1.0.0", "veil"), "1.0.0"},
		{"outside the root", filepath.Join(other, "veil"), ""},
		{"not named veil", filepath.Join(root, "releases", "1.0.0", "models", "face.onnx"), ""},
		{"missing", filepath.Join(root, "releases", "9.9.9", "veil"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := releaseOf(root, tc.exe); got != tc.want {
				t.Errorf("releaseOf(%s) = %q, want %q", tc.exe, got, tc.want)
			}
		})
	}
	if v := RunningVersion(root); v != "" {
		t.Errorf("the test binary is not a release, got %q", v)
	}
}

// TestConfirmOnlyByTheNewRelease: Confirm does nothing in a process that
// runs another release, or when nothing was switched.
func TestConfirmOnlyByTheNewRelease(t *testing.T) {
	root := newRoot(t, "1.0.0")
	a, _ := open(t, root)
	called := false
	health := func(context.Context, string) error { called = true; return nil }
	if ok, err := a.Confirm(context.Background(), health); ok || err != nil {
		t.Fatalf("Confirm with nothing switched: %v %v", ok, err)
	}
	if err := a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0")); err != nil {
		t.Fatal(err)
	}
	for _, running := range []string{"", "1.0.0", "2.0.1"} {
		b, _ := openAs(t, root, running)
		if ok, err := b.Confirm(context.Background(), health); ok || err != nil || called {
			t.Errorf("Confirm running %q: %v %v, health called %v", running, ok, err, called)
		}
	}
	if st := journal(t, root); st.Phase != Switched {
		t.Errorf("journal %+v, want switched", st)
	}
}

func TestRollBackUnconfirmed(t *testing.T) {
	root := newRoot(t, "1.0.0")
	a, restarts := open(t, root)
	if ok, err := a.RollBackUnconfirmed(context.Background(), "start limit hit"); ok || err != nil {
		t.Fatalf("with nothing switched: %v %v", ok, err)
	}
	if err := a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0")); err != nil {
		t.Fatal(err)
	}
	ok, err := a.RollBackUnconfirmed(context.Background(), "start limit hit")
	if !ok || !errors.Is(err, ErrRolledBack) {
		t.Fatalf("RollBackUnconfirmed: %v %v", ok, err)
	}
	assertCurrent(t, root, "1.0.0")
	assertClean(t, root)
	st := journal(t, root)
	if st.Phase != RolledBack || st.Version != "2.0.0" || st.Highest != "1.0.0" || !strings.HasPrefix(st.LastError, "start limit hit") {
		t.Errorf("journal %+v", st)
	}
	if restarts.n.Load() != 2 { // the switch, then the rollback
		t.Errorf("%d restarts, want 2", restarts.n.Load())
	}
}

// TestLockSerializesProcesses: while one agent holds the root (a health
// check in progress), another agent's operation waits for it, and gives up
// with a clear error when its context ends.
func TestLockSerializesProcesses(t *testing.T) {
	root := newRoot(t, "1.0.0")
	a, _ := open(t, root)
	if err := a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0")); err != nil {
		t.Fatal(err)
	}
	b, _ := openAs(t, root, "2.0.0")
	checking, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := b.Confirm(context.Background(), func(context.Context, string) error {
			close(checking)
			<-release
			return nil
		})
		done <- err
	}()
	<-checking
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := a.Rollback(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "held by another veil process") {
		t.Fatalf("Rollback during the health check: %v", err)
	}
	rolled := make(chan error, 1)
	go func() { rolled <- a.Rollback(context.Background()) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The waiting Rollback ran after the commit, on the committed journal.
	if err := <-rolled; err != nil {
		t.Fatal(err)
	}
	assertCurrent(t, root, "1.0.0")
	if st := journal(t, root); st.Phase != RolledBack || st.Highest != "2.0.0" {
		t.Errorf("journal %+v", st)
	}
}
