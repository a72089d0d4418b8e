// Package tufrepo is both ends of veil's update channel, built on The Update
// Framework (go-tuf v2): head office's repository, a directory of static
// files it signs and serves over HTTPS, and the box's Client, which trusts a
// release only through that repository's signed metadata.
//
// # Repository layout
//
//	<dir>/metadata/1.root.json        every root version, kept forever: a box
//	<dir>/metadata/2.root.json …      walks the chain from the root it ships with
//	<dir>/metadata/root.json          the newest root (copy)
//	<dir>/metadata/timestamp.json     the only file fetched without a version
//	<dir>/metadata/N.snapshot.json    snapshot version N (consistent snapshots)
//	<dir>/metadata/snapshot.json      the newest snapshot (copy, for head office)
//	<dir>/metadata/N.targets.json     targets version N
//	<dir>/metadata/targets.json       the newest targets (copy, for head office)
//	<dir>/targets/releases/<version>/<sha256>.bundle.tar
//
// Serve <dir>/metadata at the client's metadata URL and <dir>/targets at its
// targets URL. Root has consistent_snapshot set, so clients fetch
// N.snapshot.json and N.targets.json by the versions the timestamp and
// snapshot name, and a target by its hash-prefixed name (go-tuf's
// PrefixTargetsWithHash): a release's TUF target path is
// releases/<version>/bundle.tar and its file is
// releases/<version>/<sha256>.bundle.tar. Versioned files and bundles never
// change once written, so caches and mirrors may keep them; timestamp.json
// and the unversioned copies do change. Clients never fetch snapshot.json or
// targets.json: head office's tools read them as the current state.
//
// Any static file server will do, as long as it answers 404 for a missing
// file: a box looks for the next root version by asking for
// <N+1>.root.json, and any other answer (403, say) is an error.
//
// Files are written in the order that keeps the repository consistent for a
// client reading it at any moment: the bundle, then targets, snapshot and
// timestamp last. Only one process may change a repository at a time.
//
// # Head office's operations
//
//	Init        new repository: root v1, empty targets
//	AddRelease  publish a bundle: new targets, snapshot and timestamp
//	Refresh     new timestamp only; run it every few hours (freeze protection)
//	Resign      new targets, snapshot and timestamp with the same contents;
//	            run it before they expire when there is no release
//	RotateRoot  next root version with new keys, signed by old and new
//
// Each checks its keys against root and refuses expiry times already past
// before it writes anything.
//
// # Keys
//
// Each key is an ed25519 key in its own PEM file ("PRIVATE KEY", PKCS #8, the
// format `openssl genpkey -algorithm ed25519` writes), mode 0600. Keys never
// go in <dir>: it is published. Root keys stay offline (Init, RotateRoot);
// the targets and snapshot keys sign releases and the timestamp key signs
// every Refresh. A root key may not double as one of the others.
package tufrepo
