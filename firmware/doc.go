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
//     link, a durable journal, resumable downloads, a lock between
//     processes, and recovery after a kill in any state. An update spans
//     veil's restart: the new release confirms its own health (Confirm) or
//     is rolled back, by itself, after its deadline, or by
//     veil-recover.service when it cannot start at all.
//   - updater: the box's update client joining the three: it picks the next
//     release from verified metadata, downloads and verifies the bundle
//     before staging, and installs it with its manifest and model pins.
//   - systemd/: hardened units for veil, veil-hq and veil-recover
//     (dedicated user, read-only system, no new privileges, watchdog,
//     OnFailure rollback).
//
// `veil release` (internal/cli) drives release and tufrepo for head office;
// `veil update` and the agent inside `veil run` (box) drive updater
// on the box.
package firmware
