package tufrepo

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/veil-edge/veil/firmware/release"
	"github.com/veil-edge/veil/internal/durable"
)

// Directory and file names inside a repository.
const (
	metadataDir = "metadata"
	targetsDir  = "targets"
	bundleName  = "bundle.tar"
	tmpPrefix   = ".tmp-"
)

// clock is head office's idea of now, for expiry checks; tests move it.
var clock = time.Now

// ErrExists: AddRelease was asked to publish a version the repository
// already holds. A published release never changes; publish a new version.
var ErrExists = errors.New("release already published")

// Expiries are the times newly signed metadata expires, per role. A box
// refuses metadata past its expiry, so head office must re-sign before then:
// Refresh for the timestamp, AddRelease or Resign for targets and snapshot,
// RotateRoot for root.
type Expiries struct {
	Root, Targets, Snapshot, Timestamp time.Time
}

// DefaultExpiries are the usual lifetimes from now: root a year, targets
// three months, snapshot a week (both renewed by each release), timestamp a
// day (renewed by Refresh, which head office runs every few hours).
func DefaultExpiries(now time.Time) Expiries {
	return Expiries{
		Root:      now.AddDate(1, 0, 0),
		Targets:   now.AddDate(0, 3, 0),
		Snapshot:  now.AddDate(0, 0, 7),
		Timestamp: now.AddDate(0, 0, 1),
	}
}

// TargetPath is the TUF target path of a release version.
func TargetPath(v release.Version) string {
	return "releases/" + v.String() + "/" + bundleName
}

// custom is the target's custom metadata: what the box needs to choose a
// release without downloading it.
type custom struct {
	Version string `json:"version"`
	MinFrom string `json:"min_from"`
}

// Init creates a new repository in dir: root version 1 listing keys (root
// keys with threshold, one key for each other role), empty targets, and
// snapshot and timestamp version 1, all signed. dir may exist but must not
// already hold a repository.
//
// Ship <dir>/metadata/1.root.json in the box's image: it is the box's trust
// anchor (NewClient's trustedRootJSON).
func Init(dir string, keys Keys, threshold int, exp Expiries) error {
	if err := checkExpiries(exp, true, true); err != nil {
		return fmt.Errorf("creating repository %s: %w", dir, err)
	}
	mdir := filepath.Join(dir, metadataDir)
	if _, err := os.Stat(filepath.Join(mdir, "1.root.json")); err == nil {
		return fmt.Errorf("creating repository %s: it already holds one (%s exists)", dir, filepath.Join(mdir, "1.root.json"))
	}
	root, err := newRoot(keys, threshold, 1, exp.Root)
	if err != nil {
		return fmt.Errorf("creating repository %s: %w", dir, err)
	}
	if err := signRoot(root, nil, keys.Root); err != nil {
		return fmt.Errorf("creating repository %s: %w", dir, err)
	}
	for _, d := range []string{mdir, filepath.Join(dir, targetsDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating repository %s: %w", dir, err)
		}
	}
	r := &repo{
		dir:       dir,
		root:      root,
		targets:   metadata.Targets(exp.Targets),
		snapshot:  metadata.Snapshot(exp.Snapshot),
		timestamp: metadata.Timestamp(exp.Timestamp),
	}
	if err := r.writeRoot(); err != nil {
		return fmt.Errorf("creating repository %s: %w", dir, err)
	}
	// Version 1 of each: publish bumps versions, so start from 0.
	r.targets.Signed.Version, r.snapshot.Signed.Version, r.timestamp.Signed.Version = 0, 0, 0
	if err := r.publish(keys, exp); err != nil {
		return fmt.Errorf("creating repository %s: %w", dir, err)
	}
	return nil
}

// AddRelease publishes the bundle at bundlePath as release m.Version: it
// checks the bundle (release.Verify: every file against its pin) and that
// its manifest is m, copies it to targets/releases/<version>/<sha256>.bundle.tar,
// adds the target with its length, SHA-256 and custom
// {"version", "min_from"}, and signs new targets, snapshot and timestamp
// versions with keys, expiring at exp (Root is not used). Signatures are
// checked against the repository's root before anything is published.
func AddRelease(dir, bundlePath string, m release.Manifest, keys Keys, exp Expiries) (Release, error) {
	rel, err := addRelease(dir, bundlePath, m, keys, exp)
	if err != nil {
		return Release{}, fmt.Errorf("publishing release %s in %s: %w", m.Version, dir, err)
	}
	return rel, nil
}

func addRelease(dir, bundlePath string, m release.Manifest, keys Keys, exp Expiries) (Release, error) {
	if err := m.Validate(); err != nil {
		return Release{}, err
	}
	if err := checkExpiries(exp, false, true); err != nil {
		return Release{}, err
	}
	v, _ := release.ParseVersion(m.Version)
	from, _ := release.ParseVersion(m.MinFrom)
	r, err := openRepo(dir)
	if err != nil {
		return Release{}, err
	}
	tpath := TargetPath(v)
	if _, ok := r.targets.Signed.Targets[tpath]; ok {
		return Release{}, fmt.Errorf("%w: %s is in targets.json", ErrExists, tpath)
	}
	// Check the signing keys before copying a possibly large bundle.
	if err := r.checkOnlineKeys(keys); err != nil {
		return Release{}, err
	}

	relDir := filepath.Join(dir, targetsDir, filepath.FromSlash(path.Dir(tpath)))
	if err := os.MkdirAll(relDir, 0o755); err != nil {
		return Release{}, err
	}
	tmp, sum, length, err := copyHashed(bundlePath, relDir)
	if err != nil {
		return Release{}, err
	}
	defer os.Remove(tmp) // a no-op once renamed
	// Verify the copy, not the original, so what is published is what was checked.
	bm, err := release.Verify(tmp)
	if err != nil {
		return Release{}, err
	}
	if !bm.Equal(m) {
		return Release{}, fmt.Errorf("the bundle's manifest (version %s, min_from %s, %d files) is not the one given (version %s, min_from %s, %d files)",
			bm.Version, bm.MinFrom, len(bm.Files), m.Version, m.MinFrom, len(m.Files))
	}
	final := filepath.Join(relDir, hex.EncodeToString(sum)+"."+bundleName)
	if err := os.Rename(tmp, final); err != nil {
		return Release{}, err
	}
	if err := durable.SyncDir(relDir); err != nil {
		return Release{}, err
	}

	cj, err := json.Marshal(custom{Version: v.String(), MinFrom: from.String()})
	if err != nil {
		return Release{}, err
	}
	raw := json.RawMessage(cj)
	r.targets.Signed.Targets[tpath] = &metadata.TargetFiles{
		Length: length,
		Hashes: metadata.Hashes{"sha256": sum},
		Custom: &raw,
		Path:   tpath,
	}
	// On failure the bundle stays: targets.json may already name it, and a
	// file no metadata names is harmless.
	if err := r.publish(keys, exp); err != nil {
		return Release{}, err
	}
	return Release{Version: v, MinFrom: from, TargetPath: tpath, Length: length, SHA256: hex.EncodeToString(sum)}, nil
}

// copyHashed copies src into a temporary file in dir, fsynced, and returns
// its name, SHA-256 and length.
func copyHashed(src, dir string) (string, []byte, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", nil, 0, err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, tmpPrefix+bundleName+"-*")
	if err != nil {
		return "", nil, 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Chmod(0o644)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out.Name())
		return "", nil, 0, fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Name(), h.Sum(nil), n, nil
}

// Refresh signs a new timestamp version expiring at expires, with the same
// snapshot. Head office runs it well within the timestamp's lifetime: a box
// refuses an expired timestamp, so a replayed old one (a freeze attack)
// stops working when it expires.
//
// Refresh refuses to run when the snapshot or targets metadata has expired
// (boxes would refuse them whatever the timestamp): run Resign instead.
func Refresh(dir string, keys Keys, expires time.Time) error {
	if err := checkExpiry("timestamp", expires); err != nil {
		return fmt.Errorf("refreshing timestamp in %s: %w", dir, err)
	}
	r, err := openRepo(dir)
	if err != nil {
		return fmt.Errorf("refreshing timestamp in %s: %w", dir, err)
	}
	now := clock()
	for _, e := range []struct {
		role    string
		expired bool
		at      time.Time
	}{
		{metadata.SNAPSHOT, r.snapshot.Signed.IsExpired(now), r.snapshot.Signed.Expires},
		{metadata.TARGETS, r.targets.Signed.IsExpired(now), r.targets.Signed.Expires},
	} {
		if e.expired {
			return fmt.Errorf("refreshing timestamp in %s: %s expired at %s; a new timestamp cannot help, run Resign", dir, e.role, e.at.Format(time.RFC3339))
		}
	}
	ts := r.timestamp
	ts.Signed.Version++
	ts.Signed.Expires = expires.UTC().Truncate(time.Second)
	if err := signRole(r.root, metadata.TIMESTAMP, ts, keys.Timestamp); err != nil {
		return fmt.Errorf("refreshing timestamp in %s: %w", dir, err)
	}
	if err := writeMetadata(r.dir, metadata.TIMESTAMP, 0, ts); err != nil {
		return fmt.Errorf("refreshing timestamp in %s: %w", dir, err)
	}
	return nil
}

// Resign signs new versions of targets, snapshot and timestamp with the
// same contents, expiring at exp (Root is not used): what head office runs
// before targets or snapshot expire when there is no release to publish.
func Resign(dir string, keys Keys, exp Expiries) error {
	if err := checkExpiries(exp, false, true); err != nil {
		return fmt.Errorf("re-signing %s: %w", dir, err)
	}
	r, err := openRepo(dir)
	if err != nil {
		return fmt.Errorf("re-signing %s: %w", dir, err)
	}
	if err := r.publish(keys, exp); err != nil {
		return fmt.Errorf("re-signing %s: %w", dir, err)
	}
	return nil
}

// RotateRoot replaces the repository's keys: it writes the next root
// version listing newKeys (newKeys.Root with threshold, and the three online
// keys), expiring at exp.Root, signed by every key in oldKeys.Root and every
// key in newKeys.Root. TUF requires both: a box trusting the current root
// accepts the new one only if the current root's threshold of its keys
// signed it, and only if the new root's threshold of its own keys did.
// RotateRoot checks both before writing anything.
//
// Targets, snapshot and timestamp are then re-signed with newKeys' online
// keys as new versions expiring at exp, so they are valid under the new root
// whether or not the online keys changed.
func RotateRoot(dir string, oldKeys, newKeys Keys, threshold int, exp Expiries) error {
	if err := rotateRoot(dir, oldKeys, newKeys, threshold, exp); err != nil {
		return fmt.Errorf("rotating root keys in %s: %w", dir, err)
	}
	return nil
}

func rotateRoot(dir string, oldKeys, newKeys Keys, threshold int, exp Expiries) error {
	if err := checkExpiries(exp, true, true); err != nil {
		return err
	}
	r, err := openRepo(dir)
	if err != nil {
		return err
	}
	next, err := newRoot(newKeys, threshold, r.root.Signed.Version+1, exp.Root)
	if err != nil {
		return err
	}
	if err := signRoot(next, r.root, append(append([]ed25519.PrivateKey{}, oldKeys.Root...), newKeys.Root...)); err != nil {
		return err
	}
	r.root = next
	if err := r.writeRoot(); err != nil {
		return err
	}
	if err := r.publish(newKeys, exp); err != nil {
		return fmt.Errorf("root version %d is published but the other metadata is not re-signed (run Resign with the new keys): %w", next.Signed.Version, err)
	}
	return nil
}

// newRoot builds (unsigned) root metadata of the given version listing keys.
func newRoot(keys Keys, threshold int, version int64, expires time.Time) (*metadata.Metadata[metadata.RootType], error) {
	if len(keys.Root) == 0 {
		return nil, errors.New("no root keys")
	}
	if threshold < 1 || threshold > len(keys.Root) {
		return nil, fmt.Errorf("root threshold %d: want 1 to %d (the number of root keys)", threshold, len(keys.Root))
	}
	root := metadata.Root(expires.UTC().Truncate(time.Second))
	root.Signed.Version = version
	root.Signed.ConsistentSnapshot = true
	rootIDs := map[string]bool{}
	for i, k := range keys.Root {
		tk, err := tufKey(k)
		if err != nil {
			return nil, fmt.Errorf("root key %d: %w", i+1, err)
		}
		id, err := tk.ID()
		if err != nil {
			return nil, err
		}
		if rootIDs[id] {
			return nil, fmt.Errorf("root key %d (%s) is given twice", i+1, id)
		}
		rootIDs[id] = true
		if err := root.Signed.AddKey(tk, metadata.ROOT); err != nil {
			return nil, err
		}
	}
	root.Signed.Roles[metadata.ROOT].Threshold = threshold
	for _, rk := range []struct {
		role string
		key  ed25519.PrivateKey
	}{{metadata.TARGETS, keys.Targets}, {metadata.SNAPSHOT, keys.Snapshot}, {metadata.TIMESTAMP, keys.Timestamp}} {
		tk, err := tufKey(rk.key)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", rk.role, err)
		}
		id, err := tk.ID()
		if err != nil {
			return nil, err
		}
		if rootIDs[id] {
			return nil, fmt.Errorf("the %s key (%s) is also a root key; root keys must stay offline", rk.role, id)
		}
		if err := root.Signed.AddKey(tk, rk.role); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// signRoot signs root with keys (each distinct key once) and checks that it
// carries the threshold of its own keys and, if prev is set, of prev's.
func signRoot(root, prev *metadata.Metadata[metadata.RootType], keys []ed25519.PrivateKey) error {
	if err := sign(root, dedupe(keys)...); err != nil {
		return err
	}
	if prev != nil {
		if err := prev.VerifyDelegate(metadata.ROOT, root); err != nil {
			return fmt.Errorf("root version %d is not signed by %d of the keys root version %d trusts (the old root keys given fall short): %w",
				root.Signed.Version, prev.Signed.Roles[metadata.ROOT].Threshold, prev.Signed.Version, err)
		}
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return fmt.Errorf("root version %d is not signed by its own threshold of keys: %w", root.Signed.Version, err)
	}
	return nil
}

// dedupe drops repeated keys, so that a key in both the old and the new set
// signs once (go-tuf refuses metadata with two signatures by one key).
func dedupe(keys []ed25519.PrivateKey) []ed25519.PrivateKey {
	var out []ed25519.PrivateKey
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		out = append(out, k)
	}
	return out
}

// sign replaces md's signatures with one by each key.
func sign[T metadata.Roles](md *metadata.Metadata[T], keys ...ed25519.PrivateKey) error {
	md.ClearSignatures()
	for _, k := range keys {
		if len(k) != ed25519.PrivateKeySize {
			return fmt.Errorf("ed25519 private key of %d bytes, want %d (missing key?)", len(k), ed25519.PrivateKeySize)
		}
		s, err := signature.LoadED25519Signer(k)
		if err != nil {
			return err
		}
		if _, err := md.Sign(s); err != nil {
			return err
		}
	}
	return nil
}

// signRole signs md for role with key and checks the signature against what
// root lists for the role, so a wrong key is caught before publishing.
func signRole[T metadata.Roles](root *metadata.Metadata[metadata.RootType], role string, md *metadata.Metadata[T], key ed25519.PrivateKey) error {
	if err := sign(md, key); err != nil {
		return fmt.Errorf("signing %s: %w", role, err)
	}
	if err := root.VerifyDelegate(role, md); err != nil {
		return fmt.Errorf("the %s key given is not the one root version %d lists for %s: %w", role, root.Signed.Version, role, err)
	}
	return nil
}

// checkExpiries refuses expiry times already past for the roles an
// operation signs.
func checkExpiries(exp Expiries, root, online bool) error {
	if root {
		if err := checkExpiry(metadata.ROOT, exp.Root); err != nil {
			return err
		}
	}
	if online {
		for _, e := range []struct {
			role string
			t    time.Time
		}{{metadata.TARGETS, exp.Targets}, {metadata.SNAPSHOT, exp.Snapshot}, {metadata.TIMESTAMP, exp.Timestamp}} {
			if err := checkExpiry(e.role, e.t); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkExpiry(role string, t time.Time) error {
	if !t.After(clock()) {
		return fmt.Errorf("%s expiry %s is not in the future", role, t.UTC().Format(time.RFC3339))
	}
	return nil
}

// repo is a repository's current metadata, as read from its unversioned
// copies.
type repo struct {
	dir       string
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
}

func openRepo(dir string) (*repo, error) {
	mdir := filepath.Join(dir, metadataDir)
	if _, err := os.Stat(filepath.Join(mdir, "root.json")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a repository (no metadata/root.json); create it with Init", dir)
	}
	r := &repo{dir: dir}
	var err error
	if r.root, err = metadata.Root().FromFile(filepath.Join(mdir, "root.json")); err != nil {
		return nil, fmt.Errorf("reading root.json: %w", err)
	}
	if r.targets, err = metadata.Targets().FromFile(filepath.Join(mdir, "targets.json")); err != nil {
		return nil, fmt.Errorf("reading targets.json: %w", err)
	}
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(mdir, "snapshot.json")); err != nil {
		return nil, fmt.Errorf("reading snapshot.json: %w", err)
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(mdir, "timestamp.json")); err != nil {
		return nil, fmt.Errorf("reading timestamp.json: %w", err)
	}
	return r, nil
}

// checkOnlineKeys signs a throw-away copy of targets, snapshot and timestamp
// with keys to find out early whether they are the ones root lists.
func (r *repo) checkOnlineKeys(keys Keys) error {
	t := *r.targets
	s := *r.snapshot
	ts := *r.timestamp
	if err := signRole(r.root, metadata.TARGETS, &t, keys.Targets); err != nil {
		return err
	}
	if err := signRole(r.root, metadata.SNAPSHOT, &s, keys.Snapshot); err != nil {
		return err
	}
	return signRole(r.root, metadata.TIMESTAMP, &ts, keys.Timestamp)
}

// publish signs new versions of targets, snapshot and timestamp (in that
// order, each naming the version of the one before) and writes them in the
// same order, so the timestamp never names a snapshot not yet there.
func (r *repo) publish(keys Keys, exp Expiries) error {
	t := r.targets
	t.Signed.Version++
	t.Signed.Expires = exp.Targets.UTC().Truncate(time.Second)
	if err := signRole(r.root, metadata.TARGETS, t, keys.Targets); err != nil {
		return err
	}
	s := r.snapshot
	s.Signed.Version++
	s.Signed.Expires = exp.Snapshot.UTC().Truncate(time.Second)
	s.Signed.Meta = map[string]*metadata.MetaFiles{metadata.TARGETS + ".json": metadata.MetaFile(t.Signed.Version)}
	if err := signRole(r.root, metadata.SNAPSHOT, s, keys.Snapshot); err != nil {
		return err
	}
	ts := r.timestamp
	ts.Signed.Version++
	ts.Signed.Expires = exp.Timestamp.UTC().Truncate(time.Second)
	ts.Signed.Meta = map[string]*metadata.MetaFiles{metadata.SNAPSHOT + ".json": metadata.MetaFile(s.Signed.Version)}
	if err := signRole(r.root, metadata.TIMESTAMP, ts, keys.Timestamp); err != nil {
		return err
	}
	if err := writeMetadata(r.dir, metadata.TARGETS, t.Signed.Version, t); err != nil {
		return err
	}
	if err := writeMetadata(r.dir, metadata.SNAPSHOT, s.Signed.Version, s); err != nil {
		return err
	}
	return writeMetadata(r.dir, metadata.TIMESTAMP, 0, ts)
}

// writeRoot writes a new root version. Unlike other roles, an existing
// N.root.json is never replaced: clients look for the next root by version
// alone, so a box may already trust one left by a rotation that stopped half
// way.
func (r *repo) writeRoot() error {
	name := fmt.Sprintf("%d.root.json", r.root.Signed.Version)
	if _, err := os.Lstat(filepath.Join(r.dir, metadataDir, name)); err == nil {
		return fmt.Errorf("metadata/%s already exists though root.json is an older version (an earlier rotation stopped half way?); boxes may trust it already: copy it to root.json instead of rotating again", name)
	}
	return writeMetadata(r.dir, metadata.ROOT, r.root.Signed.Version, r.root)
}

// writeMetadata writes md durably as metadata/<version>.<role>.json (when
// version > 0) and then as metadata/<role>.json. A versioned targets or
// snapshot file is only ever replaced when an earlier run stopped between
// the two writes; then the unversioned copy still names the version before,
// no signed metadata names the orphan and it is safe to overwrite.
func writeMetadata[T metadata.Roles](dir, role string, version int64, md *metadata.Metadata[T]) error {
	data, err := md.ToBytes(true)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", role, err)
	}
	mdir := filepath.Join(dir, metadataDir)
	if version > 0 {
		name := fmt.Sprintf("%d.%s.json", version, role)
		if err := durable.WriteFile(mdir, name, tmpPrefix, data); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	if err := durable.WriteFile(mdir, role+".json", tmpPrefix, data); err != nil {
		return fmt.Errorf("writing %s.json: %w", role, err)
	}
	return nil
}
