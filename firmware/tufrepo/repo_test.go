package tufrepo

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/veil-edge/veil/firmware/release"
)

// TestLayout checks the files Init and AddRelease publish, where the package
// documentation says they are.
func TestLayout(t *testing.T) {
	f := defaultFixture(t)
	r := f.publish("1.1.0", "1.0.0")
	for _, name := range []string{
		"metadata/1.root.json", "metadata/root.json", "metadata/timestamp.json",
		"metadata/1.snapshot.json", "metadata/2.snapshot.json", "metadata/snapshot.json",
		"metadata/1.targets.json", "metadata/2.targets.json", "metadata/targets.json",
		"targets/releases/1.1.0/" + r.SHA256 + ".bundle.tar",
	} {
		if _, err := os.Stat(filepath.Join(f.dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if r.TargetPath != "releases/1.1.0/bundle.tar" || r.Version.String() != "1.1.0" || r.MinFrom.String() != "1.0.0" {
		t.Errorf("AddRelease = %+v", r)
	}
	root, err := metadata.Root().FromFile(f.metaPath("root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !root.Signed.ConsistentSnapshot {
		t.Error("root does not use consistent snapshots")
	}
	targets, err := metadata.Targets().FromFile(f.metaPath("targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	tf := targets.Signed.Targets[r.TargetPath]
	if tf == nil || tf.Custom == nil {
		t.Fatalf("target %+v", tf)
	}
	var cm map[string]any
	if err := json.Unmarshal(*tf.Custom, &cm); err != nil || len(cm) != 2 || cm["version"] != "1.1.0" || cm["min_from"] != "1.0.0" {
		t.Errorf("target custom %s, %v", *tf.Custom, err)
	}
	// No temporary files left behind.
	_ = filepath.WalkDir(f.dir, func(p string, d os.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("temporary file left: %s", p)
		}
		return err
	})
}

// TestPublisherRefuses checks head office's own guards: mistakes are caught
// before anything is published, and leave the repository as it was.
func TestPublisherRefuses(t *testing.T) {
	f := defaultFixture(t)
	f.publish("1.0.0", "1.0.0")
	before := readFile(t, f.metaPath("timestamp.json"))
	name, m := bundle(t, "1.1.0", "1.0.0")
	other, _ := bundle(t, "1.2.0", "1.0.0")
	past := f.exp
	past.Targets = time.Now().Add(-time.Hour)
	wrongTargets := f.keys
	wrongTargets.Targets = newKey(t)
	wrongTimestamp := f.keys
	wrongTimestamp.Timestamp = newKey(t)

	for _, tc := range []struct {
		name string
		run  func() error
		want string
		as   error // if set, the error must wrap this go-tuf error type
	}{
		{"targets key not in root", func() error {
			_, err := AddRelease(f.dir, name, m, wrongTargets, f.exp)
			return err
		}, "the targets key given is not the one root version 1 lists", &metadata.ErrUnsignedMetadata{}},
		{"timestamp key not in root", func() error { return Refresh(f.dir, wrongTimestamp, f.exp.Timestamp) },
			"the timestamp key given is not the one root version 1 lists", &metadata.ErrUnsignedMetadata{}},
		{"version already published", func() error {
			n, m := bundle(t, "1.0.0", "1.0.0")
			_, err := AddRelease(f.dir, n, m, f.keys, f.exp)
			if !errors.Is(err, ErrExists) {
				t.Errorf("not ErrExists: %v", err)
			}
			return err
		}, "release already published", nil},
		{"bundle is another release", func() error {
			_, err := AddRelease(f.dir, other, m, f.keys, f.exp)
			return err
		}, "the bundle's manifest (version 1.2.0", nil},
		{"bundle is not a bundle", func() error {
			_, err := AddRelease(f.dir, f.metaPath("root.json"), m, f.keys, f.exp)
			return err
		}, "verifying bundle", nil},
		{"invalid manifest", func() error {
			bad := m
			bad.Version = "1.1"
			_, err := AddRelease(f.dir, name, bad, f.keys, f.exp)
			return err
		}, "manifest version", nil},
		{"expiry in the past", func() error {
			_, err := AddRelease(f.dir, name, m, f.keys, past)
			return err
		}, "targets expiry", nil},
		{"refresh expiry in the past", func() error { return Refresh(f.dir, f.keys, time.Now().Add(-time.Second)) },
			"timestamp expiry", nil},
		{"init over a repository", func() error { return Init(f.dir, f.keys, 1, f.exp) }, "already holds one", nil},
		{"not a repository", func() error { return Refresh(t.TempDir(), f.keys, f.exp.Timestamp) }, "not a repository", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.as != nil && !errors.Is(err, tc.as) {
				t.Fatalf("error %v does not wrap %T", err, tc.as)
			}
			if got := readFile(t, f.metaPath("timestamp.json")); string(got) != string(before) {
				t.Fatal("the refused operation changed timestamp.json")
			}
			if _, err := os.Stat(filepath.Join(f.dir, "targets", "releases", "1.1.0")); err == nil {
				entries, _ := os.ReadDir(filepath.Join(f.dir, "targets", "releases", "1.1.0"))
				if len(entries) > 0 {
					t.Fatalf("the refused operation left %v", entries)
				}
			}
		})
	}
}

func TestInitRefuses(t *testing.T) {
	keys := newKeys(t, 2)
	exp := DefaultExpiries(time.Now())
	shared := keys
	shared.Targets = keys.Root[0]
	twice := keys
	twice.Root = []ed25519.PrivateKey{keys.Root[0], keys.Root[0]}
	noTimestamp := keys
	noTimestamp.Timestamp = nil
	for _, tc := range []struct {
		name      string
		keys      Keys
		threshold int
		want      string
	}{
		{"threshold above keys", keys, 3, "root threshold 3: want 1 to 2"},
		{"threshold zero", keys, 0, "root threshold 0"},
		{"no root keys", Keys{Targets: keys.Targets, Snapshot: keys.Snapshot, Timestamp: keys.Timestamp}, 1, "no root keys"},
		{"root key online", shared, 1, "the targets key"},
		{"root key twice", twice, 1, "given twice"},
		{"missing key", noTimestamp, 1, "timestamp key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := Init(dir, tc.keys, tc.threshold, exp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Init = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "metadata", "1.root.json")); err == nil {
				t.Fatal("refused Init wrote 1.root.json")
			}
		})
	}
}

// TestRotateRootRefuses checks that head office cannot write a root its
// boxes would refuse.
func TestRotateRootRefuses(t *testing.T) {
	old := newKeys(t, 3)
	f := newFixture(t, old, 2, DefaultExpiries(time.Now()))
	next := newKeys(t, 3)
	for _, tc := range []struct {
		name      string
		oldKeys   Keys
		threshold int
		want      string
	}{
		{"one of two old keys", Keys{Root: old.Root[:1]}, 2, "not signed by 2 of the keys root version 1 trusts"},
		{"no old keys", Keys{}, 2, "not signed by 2 of the keys root version 1 trusts"},
		{"threshold above new keys", old, 4, "root threshold 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RotateRoot(f.dir, tc.oldKeys, next, tc.threshold, f.exp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RotateRoot = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(f.metaPath("2.root.json")); err == nil {
				t.Fatal("refused rotation wrote 2.root.json")
			}
		})
	}
}

// TestBundleHashMatchesRelease checks that what AddRelease publishes is the
// bundle it was given, byte for byte.
func TestBundleHashMatchesRelease(t *testing.T) {
	f := defaultFixture(t)
	name, m := bundle(t, "2.0.0", "1.5.0")
	r, err := AddRelease(f.dir, name, m, f.keys, f.exp)
	if err != nil {
		t.Fatal(err)
	}
	published := readFile(t, filepath.Join(f.dir, "targets", "releases", "2.0.0", r.SHA256+".bundle.tar"))
	if string(published) != string(readFile(t, name)) || int64(len(published)) != r.Length {
		t.Fatal("published bundle differs from the one given")
	}
	if v, _ := release.ParseVersion("1.5.0"); r.MinFrom != v {
		t.Fatalf("MinFrom %v", r.MinFrom)
	}
}

// TestResign: with no release for longer than the snapshot lasts, Refresh
// cannot help (and says so); Resign renews targets and snapshot and boxes
// update again.
func TestResign(t *testing.T) {
	start := time.Now()
	f := newFixture(t, newKeys(t, 1), 1, DefaultExpiries(start)) // snapshot lasts 7 days
	f.publish("1.0.0", "1.0.0")
	later := start.Add(8 * 24 * time.Hour)
	clock = func() time.Time { return later }
	t.Cleanup(func() { clock = time.Now })

	c := f.client()
	c.now = func() time.Time { return later }
	_, err := c.Latest(context.Background())
	// The day-long timestamp has expired too and is checked first.
	requireErr[*metadata.ErrExpiredMetadata](t, err, "timestamp.json is expired")

	if err := Refresh(f.dir, f.keys, later.Add(24*time.Hour)); err == nil || !strings.Contains(err.Error(), "snapshot expired") || !strings.Contains(err.Error(), "run Resign") {
		t.Fatalf("Refresh with an expired snapshot = %v", err)
	}
	if err := Resign(f.dir, f.keys, DefaultExpiries(later)); err != nil {
		t.Fatal(err)
	}
	if r := latest(t, c); r.Version.String() != "1.0.0" {
		t.Fatalf("Latest after Resign = %+v", r)
	}
	if err := Refresh(f.dir, f.keys, later.Add(24*time.Hour)); err != nil {
		t.Fatalf("Refresh after Resign: %v", err)
	}
}
