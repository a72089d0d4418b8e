package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment of the helper process that the kill tests start.
const (
	envRoot    = "VEIL_AGENT_TEST_ROOT"    // install root
	envMode    = "VEIL_AGENT_TEST_MODE"    // "apply" 2.0.0 as a tool, or "confirm" it as the process running 2.0.0
	envBlock   = "VEIL_AGENT_TEST_BLOCK"   // hook point at which to stop
	envNth     = "VEIL_AGENT_TEST_NTH"     // stop at its nth occurrence (default 1)
	envMarker  = "VEIL_AGENT_TEST_MARKER"  // file written once stopped
	envHealth  = "VEIL_AGENT_TEST_HEALTH"  // "fail" makes the health check fail
	envTimeout = "VEIL_AGENT_TEST_TIMEOUT" // HealthTimeout, a Go duration
)

// TestHelperProcess is not a test: the kill tests run the test binary
// again with this test selected. It applies or confirms 2.0.0 and stops
// forever at the requested hook point, where the parent kills it with
// SIGKILL.
func TestHelperProcess(t *testing.T) {
	root := os.Getenv(envRoot)
	if root == "" {
		t.Skip("helper process for TestKillMatrix")
	}
	block, marker := os.Getenv(envBlock), os.Getenv(envMarker)
	nth, _ := strconv.Atoi(os.Getenv(envNth))
	nth = max(nth, 1)
	health := healthy
	if os.Getenv(envHealth) == "fail" {
		health = func(context.Context, string) error { return errors.New("camera pipeline did not start") }
	}
	timeout, _ := time.ParseDuration(os.Getenv(envTimeout))
	running := ""
	if os.Getenv(envMode) == "confirm" {
		running = "2.0.0"
	}
	a, err := Open(Options{Root: root, Running: running, HealthTimeout: timeout, Restart: func(context.Context) error { return nil }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: open:", err)
		os.Exit(2)
	}
	seen := 0
	a.afterState = func(point string) {
		if point != block {
			return
		}
		if seen++; seen < nth {
			return
		}
		if err := os.WriteFile(marker, []byte(point), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "helper: marker:", err)
			os.Exit(2)
		}
		time.Sleep(time.Minute) // the parent kills us long before this
		os.Exit(3)
	}
	if running != "" {
		_, err = a.Confirm(context.Background(), health)
	} else {
		err = a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0"))
	}
	fmt.Fprintf(os.Stderr, "helper: returned without reaching %s #%d: %v\n", block, nth, err)
	os.Exit(4)
}

// TestKillMatrix kills (SIGKILL) the process applying an update, and the
// new release's process confirming it, in every state, then opens the
// root again: the box always ends on the old release or the new one
// committed (or, within its deadline, switched and about to confirm),
// never without a working current.
func TestKillMatrix(t *testing.T) {
	cases := []struct {
		name          string
		mode          string // "apply" or "confirm" (after an Apply in the test)
		block         string
		nth           int
		healthFails   bool
		timeout       time.Duration // the helper's HealthTimeout; 0 = default
		atKill        Phase         // the journal's state when the process is killed
		reopenAs      string        // the version the reopening process runs
		confirm       bool          // the reopening process confirms
		wantPhase     Phase         // after Open (and Confirm)
		wantCurrent   string
		wantRestart   int32 // restarts done by the reopening agent
		wantLastError string
	}{
		{name: "downloading", mode: "apply", block: "downloading", atKill: Downloading, wantPhase: Idle, wantCurrent: "1.0.0"},
		{name: "verified", mode: "apply", block: "verified", atKill: Verified, wantPhase: Idle, wantCurrent: "1.0.0"},
		{name: "staged", mode: "apply", block: "staged", atKill: Staged, wantPhase: Idle, wantCurrent: "1.0.0"},
		{name: "between previous.new and its rename", mode: "apply", block: hookPreviousNew, atKill: Staged, wantPhase: Idle, wantCurrent: "1.0.0"},
		{name: "between current.new and its rename", mode: "apply", block: hookCurrentNew, atKill: Staged, wantPhase: Idle, wantCurrent: "1.0.0"},
		{name: "switched, then the new release starts and confirms", mode: "apply", block: "switched", atKill: Switched,
			reopenAs: "2.0.0", confirm: true, wantPhase: Committed, wantCurrent: "2.0.0"},
		{name: "switched, a tool opens before the deadline", mode: "apply", block: "switched", atKill: Switched,
			wantPhase: Switched, wantCurrent: "2.0.0"},
		{name: "switched, the new release never confirms", mode: "apply", block: "switched", timeout: time.Millisecond, atKill: Switched,
			wantPhase: RolledBack, wantCurrent: "1.0.0", wantRestart: 1, wantLastError: notConfirmedError},
		{name: "health-checking", mode: "confirm", block: "health-checking", atKill: HealthChecking,
			wantPhase: RolledBack, wantCurrent: "1.0.0", wantRestart: 1, wantLastError: interruptedError},
		{name: "health-checking, the new release restarts", mode: "confirm", block: "health-checking", atKill: HealthChecking,
			reopenAs: "2.0.0", wantPhase: RolledBack, wantCurrent: "1.0.0", wantRestart: 1, wantLastError: interruptedError},
		{name: "during the automatic rollback's switch", mode: "confirm", block: hookCurrentNew, healthFails: true, atKill: HealthChecking,
			wantPhase: RolledBack, wantCurrent: "1.0.0", wantRestart: 1, wantLastError: interruptedError},
		{name: "committed", mode: "confirm", block: "committed", atKill: Committed, wantPhase: Committed, wantCurrent: "2.0.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t, "0.9.0", "1.0.0")
			// Leftovers of an older attempt, which must not survive either.
			os.MkdirAll(filepath.Join(root, "staging", "1.5.0.dir", "models"), 0o755)
			marker := filepath.Join(t.TempDir(), "stopped")
			if tc.mode == "confirm" {
				a, _ := open(t, root)
				if err := a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0")); err != nil {
					t.Fatal(err)
				}
			}

			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			health := "ok"
			if tc.healthFails {
				health = "fail"
			}
			cmd.Env = append(os.Environ(), envRoot+"="+root, envMode+"="+tc.mode, envBlock+"="+tc.block,
				envNth+"="+strconv.Itoa(max(tc.nth, 1)), envMarker+"="+marker, envHealth+"="+health, envTimeout+"="+tc.timeout.String())
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			deadline := time.After(15 * time.Second)
		wait:
			for {
				select {
				case err := <-exited:
					t.Fatalf("helper exited before stopping at %s: %v\n%s", tc.block, err, out.String())
				case <-deadline:
					cmd.Process.Kill()
					<-exited
					t.Fatalf("helper did not stop at %s in time\n%s", tc.block, out.String())
				case <-time.After(5 * time.Millisecond):
					if _, err := os.Stat(marker); err == nil {
						break wait
					}
				}
			}
			if st := journal(t, root); st.Phase != tc.atKill || st.Version != "2.0.0" {
				t.Fatalf("journal at kill time %+v, want state %s of 2.0.0", st, tc.atKill)
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			<-exited
			time.Sleep(2 * time.Millisecond) // past a 1 ms deadline

			a, restarts := openAs(t, root, tc.reopenAs)
			if tc.confirm {
				if ok, err := a.Confirm(context.Background(), healthy); !ok || err != nil {
					t.Fatalf("Confirm after the restart: %v, %v", ok, err)
				}
			}
			assertCurrent(t, root, tc.wantCurrent)
			assertClean(t, root)
			st := a.Status()
			if st != journal(t, root) {
				t.Errorf("Status %+v differs from the journal", st)
			}
			if st.Phase != tc.wantPhase {
				t.Errorf("state %s after recovery, want %s (%+v)", st.Phase, tc.wantPhase, st)
			}
			if got := restarts.n.Load(); got != tc.wantRestart {
				t.Errorf("%d restarts by the reopening agent, want %d", got, tc.wantRestart)
			}
			if tc.wantLastError != "" && st.LastError != tc.wantLastError {
				t.Errorf("last_error %q, want %q", st.LastError, tc.wantLastError)
			}
			switch {
			case tc.wantCurrent == "1.0.0":
				if st.Highest != "1.0.0" {
					t.Errorf("highest %s, want 1.0.0", st.Highest)
				}
				if _, err := os.Stat(filepath.Join(root, "releases", "2.0.0")); err == nil {
					t.Error("the uncommitted release 2.0.0 was kept")
				}
				if tc.wantPhase == RolledBack && st.From != "1.0.0" {
					t.Errorf("rolled-back journal %+v", st)
				}
				// The box can still be updated afterwards.
				if err := update(t, a, "2.0.0", healthy); err != nil {
					t.Fatalf("update after recovery: %v", err)
				}
				assertCurrent(t, root, "2.0.0")
			case tc.wantPhase == Committed:
				if st.Highest != "2.0.0" {
					t.Errorf("highest %s, want 2.0.0", st.Highest)
				}
				if got := linkTarget(t, root, "previous"); got != "1.0.0" {
					t.Errorf("previous -> %s, want 1.0.0", got)
				}
			case tc.wantPhase == Switched:
				if st.Highest != "1.0.0" || st.Deadline.IsZero() {
					t.Errorf("switched journal %+v: highest must stay 1.0.0 until the commit, with a deadline", st)
				}
				if err := a.Apply(context.Background(), "3.0.0", fetchStub("3.0.0"), installStub("3.0.0")); err == nil || !strings.Contains(err.Error(), "unfinished") {
					t.Errorf("Apply while 2.0.0 awaits confirmation: %v", err)
				}
			}
		})
	}
}
