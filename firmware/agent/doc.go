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
// The journal's "state" moves like this during Apply:
//
//	idle|committed|rolled-back
//	  -> downloading      fetch writes staging/<version>.bundle
//	  -> verified         install unpacks it into staging/<version>.dir, which is synced and renamed to releases/<version>
//	  -> staged           previous := the old release, then current := the new one
//	  -> switched         Restart
//	  -> health-checking  Health, bounded by HealthTimeout
//	  -> committed        highest := version; bundle removed; releases other than current and previous pruned
//
// A failure before the switch discards the new release and goes back to
// idle (with last_error); current was never touched. A failure after it
// (switch, restart, health check, or writing the journal) rolls back:
// current := the old release, synced, Restart again, state rolled-back with
// last_error.
//
// Recover (run by Open) trusts only committed releases:
//
//   - downloading, verified, staged: current is pointed back at "from" if it
//     is not already, staging and the new release directory are discarded,
//     state idle.
//   - switched, health-checking: rolled back as above (current := from, or
//     previous), the new release discarded, Restart, state rolled-back with
//     last_error "interrupted before health check passed".
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
