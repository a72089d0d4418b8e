package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Reasons for a rollback at Recover, as last_error: a crash during the
// health check, or a switched-in release that never started checking.
const (
	interruptedError  = "interrupted before health check passed"
	notConfirmedError = "the new release did not confirm its health before its deadline"
)

// Recover brings the root back to a consistent state after a crash or kill
// at any point, trusting only committed releases; see the package comment
// for the rules. Open calls it; it is safe to call again.
func (a *Agent) Recover(ctx context.Context) error {
	release, err := a.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()

	if err := a.removeLeftovers(); err != nil {
		return fmt.Errorf("agent: recover: %w", err)
	}
	st := a.Status()
	restart := false
	switch st.Phase {
	case Downloading, Verified, Staged:
		before := a.linkVersion(currentLink)
		back, err := a.revert(st)
		if err != nil {
			return fmt.Errorf("agent: recover: discarding the interrupted update to %s: %w", st.Version, err)
		}
		restart = before != back
		a.log.Warn("agent: discarded an update interrupted before the switch", "version", st.Version, "state", st.Phase, "current", back)
		if err := a.setState(State{Phase: Idle, Version: back, Highest: st.Highest,
			LastError: fmt.Sprintf("update to %s was interrupted while %s and was discarded", st.Version, st.Phase)}); err != nil {
			return fmt.Errorf("agent: recover: %w", err)
		}
	case Switched, HealthChecking:
		if st.Phase == Switched && (st.Version == a.running || time.Now().Before(st.Deadline)) {
			if st.Version == a.running {
				a.log.Info("agent: this is the release just switched in; it confirms its health next", "version", st.Version, "deadline", st.Deadline)
			} else {
				a.log.Info("agent: an update is waiting for the new release to confirm its health", "version", st.Version, "deadline", st.Deadline)
			}
			// Only the bundle can be left in staging; it is not needed.
			if err := a.clearStaging(""); err != nil {
				return fmt.Errorf("agent: recover: %w", err)
			}
			break
		}
		why := interruptedError
		if st.Phase == Switched {
			why = notConfirmedError
		}
		back, err := a.revert(st)
		if err != nil {
			return fmt.Errorf("agent: recover: rolling back the uncommitted update to %s: %w", st.Version, err)
		}
		restart = true
		a.log.Error("agent: rolled back an update interrupted before its health check passed", "version", st.Version, "state", st.Phase, "current", orNone(back))
		if err := a.setState(State{Phase: RolledBack, Version: st.Version, From: back, Highest: st.Highest,
			LastError: why}); err != nil {
			return fmt.Errorf("agent: recover: %w", err)
		}
	default:
		if err := a.clearStaging(""); err != nil {
			return fmt.Errorf("agent: recover: %w", err)
		}
	}

	repaired, err := a.repairCurrent()
	if err != nil {
		return fmt.Errorf("agent: recover: %w", err)
	}
	if (restart || repaired) && a.restart != nil {
		// The layout is right either way; a failed restart is for the
		// operator (or the service manager) to deal with.
		if err := a.restart(ctx); err != nil {
			a.log.Error("agent: restarting veil after recovery failed; check the service by hand", "current", a.currentRelease(), "err", err)
		}
	}
	return nil
}

// revert points current back at the release the update st started from
// (or, failing that, previous) and discards the uncommitted release and
// staging. It returns the version now current, "" if there is none. It is
// idempotent.
func (a *Agent) revert(st State) (string, error) {
	back := ""
	if a.complete(st.From) {
		back = st.From
	} else if prev := a.linkVersion(prevLink); prev != st.Version && a.complete(prev) {
		back = prev
	}
	switch cur := a.linkVersion(currentLink); {
	case back != "" && cur != back:
		if err := a.setLink(currentLink, back); err != nil {
			return "", err
		}
	case back == "" && cur != "" && cur == st.Version:
		// A first install with nothing to go back to: better no
		// current than an untrusted one.
		a.log.Error("agent: no earlier release to go back to; removing current", "uncommitted", st.Version)
		if err := a.removeLink(currentLink); err != nil {
			return "", err
		}
	}
	if err := a.discard(st.Version, ""); err != nil {
		return "", err
	}
	return back, nil
}

// repairCurrent re-points a current that is missing, dangling or
// incomplete. It reports whether it changed current.
func (a *Agent) repairCurrent() (bool, error) {
	cur := a.linkVersion(currentLink)
	if a.complete(cur) {
		return false, nil
	}
	_, lerr := os.Lstat(a.path(currentLink))
	exists := lerr == nil
	st := a.Status()

	var candidates []string
	if st.Phase == Idle || st.Phase == Committed {
		candidates = append(candidates, st.Version)
	}
	candidates = append(candidates, a.linkVersion(prevLink), st.From)
	candidates = append(candidates, a.committedReleases(st)...)
	for _, c := range candidates {
		if !a.complete(c) {
			continue
		}
		a.log.Warn("agent: current was missing, dangling or incomplete; repaired", "was", cur, "now", c)
		if err := a.setLink(currentLink, c); err != nil {
			return false, fmt.Errorf("repairing current: %w", err)
		}
		return true, nil
	}
	if exists {
		a.log.Error("agent: current does not point at a complete release and there is none to repair it with; install one", "root", a.root)
	}
	return false, nil
}

// committedReleases lists complete releases under releases/, newest first,
// that may have been committed: not above highest (when known) and not the
// one a rolled-back update abandoned.
func (a *Agent) committedReleases(st State) []string {
	entries, err := os.ReadDir(a.path(releasesDir))
	if err != nil {
		return nil
	}
	var vs []string
	for _, e := range entries {
		v := e.Name()
		if _, err := parseVersion(v); err != nil || !a.complete(v) {
			continue
		}
		if st.Highest != "" {
			if c, err := compareVersions(v, st.Highest); err != nil || c > 0 {
				continue
			}
		}
		if v == st.Version && st.Phase != Idle && st.Phase != Committed {
			continue // being applied, or abandoned: never committed
		}
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(x, y string) int {
		c, _ := compareVersions(y, x)
		return c
	})
	return vs
}

// Rollback switches current back to previous on request, if previous is a
// complete release other than the current one, restarts veil and records
// the state rolled-back. It does not lower "highest".
func (a *Agent) Rollback(ctx context.Context) error {
	release, err := a.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()

	st := a.Status()
	if !st.Phase.settled() {
		return fmt.Errorf("agent: rollback: the journal says an update of %s is unfinished (state %s); restart the agent so that it recovers first", st.Version, st.Phase)
	}
	cur := a.linkVersion(currentLink)
	prev := a.linkVersion(prevLink)
	switch {
	case prev == "":
		return errors.New("agent: rollback: there is no previous release to go back to")
	case prev == cur:
		return fmt.Errorf("agent: rollback: previous is %s, which is already current; nothing to roll back to", prev)
	case !a.complete(prev):
		return fmt.Errorf("agent: rollback: the previous release %s is incomplete (no %s); refusing to switch to it", a.releasePath(prev), executable)
	}
	if err := a.setLink(currentLink, prev); err != nil {
		return fmt.Errorf("agent: rollback to %s: %w", prev, err)
	}
	var errs []error
	if a.restart != nil {
		if err := a.restart(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agent: rolled back to %s but restarting veil failed (check the service by hand): %w", prev, err))
		}
	}
	if err := a.setState(State{Phase: RolledBack, Version: cur, From: prev, Highest: st.Highest}); err != nil {
		errs = append(errs, fmt.Errorf("agent: rolled back to %s: %w", prev, err))
	}
	a.log.Warn("agent: rolled back on request", "from", orNone(cur), "to", prev)
	return errors.Join(errs...)
}
