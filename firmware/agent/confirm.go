package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Confirm is called by veil run at start. If the journal says the release
// this process runs (Options.Running) was just switched in, Confirm checks
// its health with health, bounded by the switch's deadline, and commits
// it, or rolls it back: current goes back to the old release, Restart is
// called (in veil run, to end this process so that the old release starts)
// and the error wraps ErrRolledBack with the cause. It reports whether
// there was anything to confirm. The root's lock is held throughout, so
// no other process touches the install while the check runs.
func (a *Agent) Confirm(ctx context.Context, health func(ctx context.Context, releaseDir string) error) (bool, error) {
	release, err := a.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()

	st := a.Status()
	if st.Phase != Switched || a.running == "" || st.Version != a.running {
		return false, nil
	}
	deadline := st.Deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(a.healthTimeout)
	}
	next := st
	next.Phase = HealthChecking
	next.Deadline = deadline
	if err := a.setState(next); err != nil {
		return true, a.rollBack(ctx, next, "recording the health check failed", err)
	}
	a.log.Info("agent: checking the new release's health", "version", st.Version, "deadline", deadline)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	err = health(hctx, a.releasePath(st.Version))
	cancel()
	if err != nil {
		return true, a.rollBack(ctx, next, "health check of "+st.Version+" failed", err)
	}

	if err := a.setState(State{Phase: Committed, Version: st.Version, From: st.From, Highest: st.Version}); err != nil {
		// The journal still says health-checking, which a restart would
		// roll back; do it now so that disk and journal agree.
		return true, a.rollBack(ctx, next, "recording the commit failed", err)
	}
	a.log.Info("agent: update committed", "version", st.Version, "from", st.From)

	// Tidying up; a failure here leaves only disk space behind.
	if err := a.clearStaging(""); err != nil {
		a.log.Warn("agent: clearing staging", "err", err)
	}
	if err := a.prune(); err != nil {
		a.log.Warn("agent: pruning old releases", "err", err)
	}
	return true, nil
}

// RollBackUnconfirmed rolls back a switched-in release that has not
// confirmed its health, whatever its deadline: for when the service
// manager has given up starting it (veil-recover.service). why goes into
// last_error. It reports whether there was anything to roll back.
func (a *Agent) RollBackUnconfirmed(ctx context.Context, why string) (bool, error) {
	release, err := a.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	st := a.Status()
	if st.Phase != Switched && st.Phase != HealthChecking {
		return false, nil
	}
	return true, a.rollBack(ctx, st, why, fmt.Errorf("release %s did not confirm its health", st.Version))
}

// RunningVersion is the version of the release the executable of this
// process belongs to, if it is root/releases/<version>/veil (after
// resolving links, so /opt/veil/current/veil gives the version current
// pointed at when the process started); "" otherwise.
func RunningVersion(root string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return releaseOf(root, exe)
}

// releaseOf is RunningVersion for the executable exe.
func releaseOf(root, exe string) string {
	exe, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return ""
	}
	root, err = filepath.EvalSymlinks(root)
	if err != nil {
		return ""
	}
	dir, name := filepath.Split(exe)
	if name != executable {
		return ""
	}
	dir = filepath.Clean(dir)
	v := filepath.Base(dir)
	if filepath.Dir(dir) != filepath.Join(root, releasesDir) {
		return ""
	}
	if _, err := parseVersion(v); err != nil {
		return ""
	}
	return v
}
