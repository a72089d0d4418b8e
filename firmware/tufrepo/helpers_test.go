package tufrepo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/veil-edge/veil/firmware/release"
)

// newKey returns a fresh ed25519 key (tests keep keys in memory; key files
// have their own test).
func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newKeys returns nRoot root keys and one key for each online role.
func newKeys(t testing.TB, nRoot int) Keys {
	t.Helper()
	k := Keys{Targets: newKey(t), Snapshot: newKey(t), Timestamp: newKey(t)}
	for range nRoot {
		k.Root = append(k.Root, newKey(t))
	}
	return k
}

// fixture is a repository served over loopback HTTP, as head office would
// serve it, and the keys that sign it.
type fixture struct {
	t    *testing.T
	dir  string
	keys Keys
	exp  Expiries
	srv  *httptest.Server
}

// newFixture creates a repository with keys (root threshold given) and
// serves it: <dir>/metadata at /metadata, <dir>/targets at /targets.
func newFixture(t *testing.T, keys Keys, threshold int, exp Expiries) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), keys: keys, exp: exp}
	if err := Init(f.dir, keys, threshold, exp); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(http.FileServer(http.Dir(f.dir)))
	t.Cleanup(f.srv.Close)
	return f
}

// defaultFixture is a repository with one root key and default expiries.
func defaultFixture(t *testing.T) *fixture {
	return newFixture(t, newKeys(t, 1), 1, DefaultExpiries(time.Now()))
}

// bundle builds a release bundle of the given version in a temporary file.
func bundle(t testing.TB, version, minFrom string) (string, release.Manifest) {
	t.Helper()
	dir := t.TempDir()
	veil := filepath.Join(dir, "veil")
	if err := os.WriteFile(veil, []byte("veil binary "+version), 0o600); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "face.onnx")
	if err := os.WriteFile(model, []byte("model for "+version), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m, err := release.Build(&buf, version, minFrom, map[string]string{"veil": veil, "models/face.onnx": model})
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "bundle.tar")
	if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return name, m
}

// publish builds and publishes a release with the fixture's keys.
func (f *fixture) publish(version, minFrom string) Release {
	f.t.Helper()
	name, m := bundle(f.t, version, minFrom)
	r, err := AddRelease(f.dir, name, m, f.keys, f.exp)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// client returns a new box client trusting version 1 of the root, with its
// own empty local store.
func (f *fixture) client() *Client {
	f.t.Helper()
	root, err := os.ReadFile(filepath.Join(f.dir, "metadata", "1.root.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := NewClient(filepath.Join(f.t.TempDir(), "tuf"), root, f.srv.URL+"/metadata", f.srv.URL+"/targets")
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// metaPath is a file in the repository's metadata directory.
func (f *fixture) metaPath(name string) string { return filepath.Join(f.dir, "metadata", name) }

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// download fetches url into a file the way the box's downloader would.
func download(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	name := filepath.Join(t.TempDir(), "bundle.tar")
	out, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

// localVersion is the version of role's metadata in the client's local
// store, the metadata it trusts.
func localVersion(t testing.TB, c *Client, role string) int64 {
	t.Helper()
	data := readFile(t, filepath.Join(c.dir, role+".json"))
	var v int64
	var err error
	switch role {
	case metadata.ROOT:
		var md *metadata.Metadata[metadata.RootType]
		if md, err = metadata.Root().FromBytes(data); err == nil {
			v = md.Signed.Version
		}
	case metadata.TIMESTAMP:
		var md *metadata.Metadata[metadata.TimestampType]
		if md, err = metadata.Timestamp().FromBytes(data); err == nil {
			v = md.Signed.Version
		}
	case metadata.SNAPSHOT:
		var md *metadata.Metadata[metadata.SnapshotType]
		if md, err = metadata.Snapshot().FromBytes(data); err == nil {
			v = md.Signed.Version
		}
	case metadata.TARGETS:
		var md *metadata.Metadata[metadata.TargetsType]
		if md, err = metadata.Targets().FromBytes(data); err == nil {
			v = md.Signed.Version
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// latest calls c.Latest and fails the test on error.
func latest(t testing.TB, c *Client) Release {
	t.Helper()
	r, err := c.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// requireErr fails unless err is (or wraps) an error of type *E whose text
// holds want, so a test cannot pass on an unrelated failure.
func requireErr[E error](t testing.TB, err error, want string) {
	t.Helper()
	var target E
	if err == nil {
		t.Fatalf("no error; want %T containing %q", target, want)
	}
	if !errors.As(err, &target) {
		t.Fatalf("error %q (%T) is not a %T", err, err, target)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	t.Logf("refused as expected: %v", err)
}

// forge signs md with keys, without checking them against root, and writes
// it into the repository as version version of role (0: unversioned only),
// as an attacker who controls the server, or holds some keys, would.
func forge[T metadata.Roles](t testing.TB, dir, role string, version int64, md *metadata.Metadata[T], keys ...ed25519.PrivateKey) {
	t.Helper()
	if err := sign(md, keys...); err != nil {
		t.Fatal(err)
	}
	if err := writeMetadata(dir, role, version, md); err != nil {
		t.Fatal(err)
	}
}

// forgePublish publishes the repository's targets with change applied, as
// publish would, but signing each role with the key signers gives for it
// and without checking those keys against root.
func forgePublish(t testing.TB, dir string, signers Keys, exp Expiries, change func(*metadata.TargetsType)) {
	t.Helper()
	r, err := openRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	change(&r.targets.Signed)
	r.targets.Signed.Version++
	r.targets.Signed.Expires = exp.Targets
	r.snapshot.Signed.Version++
	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(r.targets.Signed.Version)
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
	forge(t, dir, metadata.TARGETS, r.targets.Signed.Version, r.targets, signers.Targets)
	forge(t, dir, metadata.SNAPSHOT, r.snapshot.Signed.Version, r.snapshot, signers.Snapshot)
	forge(t, dir, metadata.TIMESTAMP, 0, r.timestamp, signers.Timestamp)
}

// addFakeTarget adds a release target that points at nothing, enough for
// metadata-level attacks.
func addFakeTarget(version string) func(*metadata.TargetsType) {
	return func(t *metadata.TargetsType) {
		tf, _ := metadata.TargetFile().FromBytes(fmt.Sprintf("releases/%s/bundle.tar", version), []byte("evil "+version))
		raw := json.RawMessage(fmt.Sprintf(`{"version":%q,"min_from":"0.0.0"}`, version))
		tf.Custom = &raw
		t.Targets[tf.Path] = tf
	}
}
