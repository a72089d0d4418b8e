package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultHealthTimeout is how long a switched-in release has to confirm its
// health when Options.HealthTimeout is zero.
const DefaultHealthTimeout = 3 * time.Minute

// rollbackRestartTimeout bounds Restart during a rollback, which runs even
// when the caller's context has been cancelled.
const rollbackRestartTimeout = 2 * time.Minute

// ErrRolledBack is wrapped by Apply's error when the new release was
// switched in and then rolled back.
var ErrRolledBack = errors.New("was rolled back")

// ErrNotNewer is wrapped by Apply's error when the version offered is not
// above the current one and the highest one ever committed.
var ErrNotNewer = errors.New("not newer than the installed release")

// Options configure an Agent.
type Options struct {
	// Root is the install directory, for example /opt/veil.
	Root string
	// Log receives progress and problems; nil discards.
	Log *slog.Logger
	// Running is the version of the release this process runs (see
	// RunningVersion), "" for a tool that is not itself a release. Only
	// the process running a switched-in release may confirm it.
	Running string
	// HealthTimeout is how long a switched-in release has, from the
	// switch, to start and confirm its health; zero means
	// DefaultHealthTimeout. After it, any process rolls the release back.
	HealthTimeout time.Duration
	// Restart makes the release current points at run, after current has
	// changed: in veil run it ends the process so that systemd starts
	// current again; a command-line tool runs systemctl restart veil.
	// Optional.
	Restart func(ctx context.Context) error
}

// Agent installs, switches and rolls back releases under one root. Its
// methods are safe for concurrent use, and several processes may each have
// an Agent on the same root: Apply, Confirm, Rollback and Recover hold the
// root's lock file and reread the journal, so they run one at a time.
type Agent struct {
	root          string
	log           *slog.Logger
	running       string
	healthTimeout time.Duration
	restart       func(ctx context.Context) error

	op sync.Mutex // held with the root's lock by Apply, Confirm, Rollback and Recover

	mu    sync.Mutex // guards state
	state State

	// afterState, if set (by tests), is called with the state's name
	// right after each state is durably written, and with
	// hookCurrentNew or hookPreviousNew between creating that symlink
	// and renaming it into place.
	afterState func(string)
}

// Test hook points besides the phases.
const (
	hookCurrentNew  = "current.new"
	hookPreviousNew = "previous.new"
)

// Names in the root.
const (
	releasesDir = "releases"
	stagingDir  = "staging"
	currentLink = "current"
	prevLink    = "previous"
	bundleExt   = ".bundle"
	unpackExt   = ".dir"
	executable  = "veil"
)

// Open creates the layout under o.Root if it is missing, reads the journal
// and runs Recover, so that current points at a complete, committed release
// whenever there is one.
func Open(o Options) (*Agent, error) {
	if o.Root == "" {
		return nil, errors.New("agent: Options.Root is empty")
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("agent: root %s: %w", o.Root, err)
	}
	a := &Agent{
		root:          root,
		log:           o.Log,
		running:       o.Running,
		healthTimeout: o.HealthTimeout,
		restart:       o.Restart,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.healthTimeout <= 0 {
		a.healthTimeout = DefaultHealthTimeout
	}
	for _, d := range []string{root, a.path(releasesDir), a.path(stagingDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("agent: creating the install layout: %w", err)
		}
	}
	st, ok, err := loadState(root)
	if err != nil {
		return nil, err
	}
	if !ok {
		st = State{Phase: Idle}
	}
	a.state = st
	if err := a.Recover(context.Background()); err != nil {
		return nil, err
	}
	if !ok {
		// First start on this root: whatever runs now was installed by
		// someone we trust (the factory image), so it counts as committed.
		cur := a.currentRelease()
		if err := a.setState(State{Phase: Idle, Version: cur, Highest: cur}); err != nil {
			return nil, err
		}
		a.log.Info("agent: new journal", "root", root, "current", cur)
	}
	return a, nil
}

// Current is the version of the complete release current points at, ""
// if there is none.
func (a *Agent) Current() string { return a.currentRelease() }

// Root is the install root, as an absolute path.
func (a *Agent) Root() string { return a.root }

// Status returns the journal as last written.
func (a *Agent) Status() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Apply installs version and switches to it: fetch must leave the verified
// bundle at dst (downloading and checking it against signed metadata is
// the caller's job), install must unpack bundlePath into destDir checking
// every file's hash. Then the release is switched in, with a deadline of
// HealthTimeout, and Restart makes it run. Apply returns nil with the
// journal in state switched: the new release itself checks its health and
// commits or rolls back (Confirm); if it never does, the first Recover
// after the deadline rolls it back. A failure before the switch leaves
// everything as it was; a failed switch or restart is rolled back and the
// error wraps ErrRolledBack. A version that is not above the current one
// and the highest one ever committed is refused (ErrNotNewer) before
// anything is written.
func (a *Agent) Apply(ctx context.Context, version string,
	fetch func(ctx context.Context, dst string) error,
	install func(bundlePath, destDir string) error,
) error {
	if fetch == nil || install == nil {
		return errors.New("agent: Apply needs both fetch and install")
	}
	release, err := a.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	st := a.Status()
	if !st.Phase.settled() {
		return fmt.Errorf("agent: refusing update to %s: the journal says an update of %s is unfinished (state %s); restart the agent so that it recovers first",
			version, st.Version, st.Phase)
	}
	from := a.currentRelease()
	if err := a.admit(version, from, st.Highest); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("agent: update to %s not started: %w", version, err)
	}

	// Leftovers of an earlier attempt go, except a partial bundle of this
	// very version, which fetch may resume.
	if err := a.clearStaging(version + bundleExt); err != nil {
		return fmt.Errorf("agent: update to %s not started: %w", version, err)
	}
	bundle := filepath.Join(a.path(stagingDir), version+bundleExt)
	unpacked := filepath.Join(a.path(stagingDir), version+unpackExt)

	next := State{Phase: Downloading, Version: version, From: from, Highest: st.Highest}
	if err := a.setState(next); err != nil {
		return fmt.Errorf("agent: update to %s not started: %w", version, err)
	}
	if err := fetch(ctx, bundle); err != nil {
		return a.abandon(next, true, fmt.Errorf("fetching the bundle: %w", err))
	}

	next.Phase = Verified
	if err := a.setState(next); err != nil {
		return a.abandon(next, false, err)
	}
	if err := install(bundle, unpacked); err != nil {
		return a.abandon(next, false, fmt.Errorf("installing the bundle: %w", err))
	}
	if !isComplete(unpacked) {
		return a.abandon(next, false, fmt.Errorf("the unpacked bundle %s has no %s executable at its top", unpacked, executable))
	}
	if err := a.moveIntoReleases(unpacked, version); err != nil {
		return a.abandon(next, false, err)
	}

	next.Phase = Staged
	if err := a.setState(next); err != nil {
		return a.abandon(next, false, err)
	}
	if from != "" {
		if err := a.setLink(prevLink, from); err != nil {
			return a.abandon(next, false, err)
		}
	}
	if err := a.setLink(currentLink, version); err != nil {
		return a.rollBack(ctx, next, "switching current failed", err)
	}

	next.Phase = Switched
	next.Deadline = time.Now().Add(a.healthTimeout).UTC()
	if err := a.setState(next); err != nil {
		return a.rollBack(ctx, next, "recording the switch failed", err)
	}
	// The bundle is no longer needed; staging is cleared at the commit.
	if err := os.Remove(bundle); err != nil && !os.IsNotExist(err) {
		a.log.Warn("agent: removing the bundle", "path", bundle, "err", err)
	}
	a.log.Info("agent: switched to the new release; it must confirm its health", "version", version, "from", from, "deadline", next.Deadline)
	if a.restart != nil {
		if err := a.restart(ctx); err != nil {
			return a.rollBack(ctx, next, "restarting veil on the new release failed", err)
		}
	}
	return nil
}

// admit refuses versions that are malformed or not newer.
func (a *Agent) admit(v, current, highest string) error {
	if _, err := parseVersion(v); err != nil {
		return fmt.Errorf("agent: refusing update: %w", err)
	}
	for _, floor := range []string{current, highest} {
		if floor == "" {
			continue
		}
		c, err := compareVersions(v, floor)
		if err != nil {
			return fmt.Errorf("agent: refusing update to %s: %w", v, err)
		}
		if c <= 0 {
			return fmt.Errorf("agent: refusing update to %s: %w (current %s, highest ever committed %s; downgrades and re-installs are refused as rollback protection)",
				v, ErrNotNewer, orNone(current), orNone(highest))
		}
	}
	return nil
}

// moveIntoReleases syncs the unpacked tree and renames it to
// releases/<version>.
func (a *Agent) moveIntoReleases(unpacked, version string) error {
	dest := a.releasePath(version)
	if version == a.linkVersion(currentLink) || version == a.linkVersion(prevLink) {
		return fmt.Errorf("%s is in use (current or previous); not replacing it", dest)
	}
	if err := syncTree(unpacked); err != nil {
		return fmt.Errorf("syncing the unpacked release: %w", err)
	}
	// A leftover of an attempt that was never committed.
	if err := os.RemoveAll(dest); err != nil {
		return fmt.Errorf("removing the stale %s: %w", dest, err)
	}
	if err := os.Rename(unpacked, dest); err != nil {
		return fmt.Errorf("moving the release into place: %w", err)
	}
	if err := syncDirs(a.path(releasesDir), a.path(stagingDir)); err != nil {
		return fmt.Errorf("moving the release into place: %w", err)
	}
	return nil
}

// abandon undoes an update that failed before current was switched:
// staging and the new release directory are discarded (a partial bundle is
// kept if keepBundle, for fetch to resume) and the state goes back to idle.
func (a *Agent) abandon(st State, keepBundle bool, cause error) error {
	keep := ""
	if keepBundle {
		keep = st.Version + bundleExt
	}
	err := fmt.Errorf("agent: update to %s failed while %s; nothing was switched, %s is still current: %w",
		st.Version, st.Phase, orNone(st.From), cause)
	if derr := a.discard(st.Version, keep); derr != nil {
		err = fmt.Errorf("%w; cleaning up also failed: %v", err, derr)
	}
	idle := State{Phase: Idle, Version: st.From, Highest: st.Highest,
		LastError: fmt.Sprintf("update to %s failed while %s: %v", st.Version, st.Phase, cause)}
	if serr := a.setState(idle); serr != nil {
		err = fmt.Errorf("%w; %v (the next start will clean up)", err, serr)
	}
	return err
}

// rollBack undoes an update that may have switched current: current goes
// back to the old release, veil is restarted and the state becomes
// rolled-back. The returned error wraps ErrRolledBack and cause.
func (a *Agent) rollBack(ctx context.Context, st State, why string, cause error) error {
	a.log.Error("agent: rolling back", "version", st.Version, "to", st.From, "why", why, "err", cause)
	back, err := a.revert(st)
	if err != nil {
		return fmt.Errorf("agent: update to %s failed (%s: %w) and rolling back failed too: %v; the journal still says %s, so the next start retries the rollback",
			st.Version, why, cause, err, st.Phase)
	}
	var restartErr error
	if a.restart != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackRestartTimeout)
		restartErr = a.restart(rctx)
		cancel()
	}
	rb := State{Phase: RolledBack, Version: st.Version, From: back, Highest: st.Highest,
		LastError: fmt.Sprintf("%s: %v", why, cause)}
	serr := a.setState(rb)

	err = fmt.Errorf("agent: update to %s %w to %s: %s: %w", st.Version, ErrRolledBack, orNone(back), why, cause)
	if restartErr != nil {
		err = fmt.Errorf("%w; restarting veil on %s afterwards failed too: %v (check the service by hand)", err, orNone(back), restartErr)
	}
	if serr != nil {
		err = fmt.Errorf("%w; %v (the next start rolls back again)", err, serr)
	}
	return err
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
