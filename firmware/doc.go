// Package firmware is how the shop box updates itself without ever being
// left without a working veil, and how it runs under systemd.
//
//   - release: the release bundle (one tar: manifest.json first, then the veil
//     binary and model files, each pinned by SHA-256 in the manifest) with
//     Build, Verify and Extract (hash-checked, nothing outside the target).
//   - tufrepo: head office's TUF repository (The Update Framework, go-tuf v2:
//     signed, expiring, versioned metadata, thresholds, root key rotation)
//     and the box's client, which verifies metadata and the downloaded
//     bundle against it.
//   - agent: the box's update state machine under one install root:
//     releases/<version>, an atomically switched current (and previous)
//     link, a durable journal, resumable downloads, a health check with
//     automatic rollback, and recovery after a kill in any state.
//   - systemd/: hardened units for veil and veil-hq (dedicated user,
//     read-only system, no new privileges, watchdog).
//
// `veil release` (internal/cli) drives release and tufrepo for head office.
// Not wired yet (issue 6 continues): `veil update` on the box and the
// schedule inside veil run that join tufrepo, release and agent.
package firmware
