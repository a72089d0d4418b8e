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
	"testing"
	"time"
)

// Environment of the helper process that the kill tests start.
const (
	envRoot   = "VEIL_AGENT_TEST_ROOT"   // install root
	envBlock  = "VEIL_AGENT_TEST_BLOCK"  // hook point at which to stop
	envNth    = "VEIL_AGENT_TEST_NTH"    // stop at its nth occurrence (default 1)
	envMarker = "VEIL_AGENT_TEST_MARKER" // file written once stopped
	envHealth = "VEIL_AGENT_TEST_HEALTH" // "fail" makes the health check fail
)

// TestHelperProcess is not a test: the kill tests run the test binary
// again with this test selected. It applies 2.0.0 and stops forever at the
// requested hook point, where the parent kills it with SIGKILL.
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
	a, err := Open(Options{Root: root, Health: health, Restart: func(context.Context) error { return nil }})
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
	err = a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0"))
	fmt.Fprintf(os.Stderr, "helper: Apply returned without reaching %s #%d: %v\n", block, nth, err)
	os.Exit(4)
}

func TestKillMatrix(t *testing.T) {
	cases := []struct {
		name        string
		block       string
		nth         int
		healthFails bool
		atKill      Phase // the journal's state when the process is killed
		wantPhase   Phase // after Recover
		wantCurrent string
		wantRestart int32 // restarts done by Recover
	}{
		{"downloading", "downloading", 1, false, Downloading, Idle, "1.0.0", 0},
		{"verified", "verified", 1, false, Verified, Idle, "1.0.0", 0},
		{"staged", "staged", 1, false, Staged, Idle, "1.0.0", 0},
		{"between previous.new and its rename", hookPreviousNew, 1, false, Staged, Idle, "1.0.0", 0},
		{"between current.new and its rename", hookCurrentNew, 1, false, Staged, Idle, "1.0.0", 0},
		{"switched", "switched", 1, false, Switched, RolledBack, "1.0.0", 1},
		{"health-checking", "health-checking", 1, false, HealthChecking, RolledBack, "1.0.0", 1},
		{"during the automatic rollback's switch", hookCurrentNew, 2, true, HealthChecking, RolledBack, "1.0.0", 1},
		{"committed", "committed", 1, false, Committed, Committed, "2.0.0", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := newRoot(t, "0.9.0", "1.0.0")
			// Leftovers of an older attempt, which must not survive either.
			os.MkdirAll(filepath.Join(root, "staging", "1.5.0.dir", "models"), 0o755)
			marker := filepath.Join(t.TempDir(), "stopped")

			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			health := "ok"
			if tc.healthFails {
				health = "fail"
			}
			cmd.Env = append(os.Environ(), envRoot+"="+root, envBlock+"="+tc.block,
				envNth+"="+strconv.Itoa(tc.nth), envMarker+"="+marker, envHealth+"="+health)
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

			a, restarts := open(t, root, healthy)
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
				t.Errorf("%d restarts by Recover, want %d", got, tc.wantRestart)
			}
			switch tc.wantCurrent {
			case "1.0.0":
				if st.Highest != "1.0.0" {
					t.Errorf("highest %s, want 1.0.0", st.Highest)
				}
				if _, err := os.Stat(filepath.Join(root, "releases", "2.0.0")); err == nil {
					t.Error("the uncommitted release 2.0.0 was kept")
				}
				if tc.wantPhase == RolledBack && (st.LastError != interruptedError || st.From != "1.0.0") {
					t.Errorf("rolled-back journal %+v", st)
				}
				// The box can still be updated afterwards.
				if err := a.Apply(context.Background(), "2.0.0", fetchStub("2.0.0"), installStub("2.0.0")); err != nil {
					t.Fatalf("Apply after recovery: %v", err)
				}
				assertCurrent(t, root, "2.0.0")
			case "2.0.0":
				if st.Highest != "2.0.0" {
					t.Errorf("highest %s, want 2.0.0", st.Highest)
				}
				if got := linkTarget(t, root, "previous"); got != "1.0.0" {
					t.Errorf("previous -> %s, want 1.0.0", got)
				}
			}
		})
	}
}
