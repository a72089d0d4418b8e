// Package agent installs veil updates over the air so that the box is never
// left without a working installation: a release is downloaded and unpacked
// beside the running one, switched in with one atomic symlink rename, health
// checked, and either committed or rolled back. A kill or power cut at any
// point is repaired by Recover at the next start.
//
// Layout under the root directory (for example /opt/veil):
//
//	releases/<version>/  an installed release: at least the file veil, plus models/...
//	current              symlink to releases/<version>, the release that runs
//	previous             symlink to the release that was current before the last switch
//	staging/             downloads and unpacking in progress
//	state.json           the journal, replaced durably (internal/durable)
//
// A symlink is switched by creating <name>.new, renaming it over <name> and
// syncing the root directory, so it is always either the old or the new
// target. Versions are MAJOR.MINOR.PATCH.
//
// An update spans a restart: the process that applies it (veil run's
// agent, or `veil update apply`) switches the release in and restarts veil;
// the new release, starting, checks its own health and commits or rolls
// back (Confirm). The journal's "state" moves like this:
//
//	idle|committed|rolled-back
//	  -> downloading      fetch writes staging/<version>.bundle
//	  -> verified         install unpacks it into staging/<version>.dir, which is synced and renamed to releases/<version>
//	  -> staged           previous := the old release, then current := the new one
//	  -> switched         with a deadline (now + HealthTimeout); Restart
//	  -> health-checking  Confirm, in the process running the new release, until the deadline
//	  -> committed        highest := version; releases other than current and previous pruned
//
// A failure before the switch discards the new release and goes back to
// idle (with last_error); current was never touched. A failure after it
// (switch, restart, health check, or writing the journal) rolls back:
// current := the old release, synced, Restart again, state rolled-back with
// last_error. In veil run, Restart ends the process and systemd starts
// whatever current points at.
//
// Every operation holds the root's lock file (flock) and rereads the
// journal first, so veil run and a `veil update` command never change the
// install at the same time; Confirm holds it through the health check.
//
// Recover (run by Open) trusts only committed releases:
//
//   - downloading, verified, staged: current is pointed back at "from" if it
//     is not already, staging and the new release directory are discarded,
//     state idle.
//   - switched: left alone if this process runs the new release (Confirm
//     follows) or the deadline has not passed (it may still be starting);
//     otherwise rolled back as below, last_error "the new release did not
//     confirm its health before its deadline". RollBackUnconfirmed rolls it
//     back at once (veil-recover.service, after systemd gave up starting it).
//   - health-checking: the check was interrupted (a crash, a kill, a hang
//     the watchdog ended): rolled back (current := from, or previous), the
//     new release discarded, Restart, state rolled-back with last_error
//     "interrupted before health check passed".
//   - idle, committed, rolled-back: nothing but clearing staging.
//
// In every case current.new, previous.new and temporary journal files are
// removed, and a current that is missing, dangling or incomplete (no veil)
// is re-pointed at the release the journal says should run, else previous,
// else from, else the newest complete release not above "highest".
//
// Rollback protection: "highest" is the highest version ever committed and
// never decreases; Apply refuses a version not above it (or not above the
// current one) before it writes anything.
package agent
