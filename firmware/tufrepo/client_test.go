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

// TestHappyPath: the box learns of release 1.1.0 through verified metadata,
// downloads the bundle from TargetURL, verifies it and extracts it.
func TestHappyPath(t *testing.T) {
	f := defaultFixture(t)
	f.publish("1.0.0", "1.0.0")
	published := f.publish("1.1.0", "1.0.0")
	c := f.client()

	r := latest(t, c)
	if r != published {
		t.Fatalf("Latest = %+v, want %+v", r, published)
	}
	if r.Version.String() != "1.1.0" || r.MinFrom.String() != "1.0.0" || r.TargetPath != "releases/1.1.0/bundle.tar" {
		t.Fatalf("Latest = %+v", r)
	}
	if got := c.Releases(); len(got) != 2 || got[0].Version.String() != "1.0.0" || got[1] != r {
		t.Fatalf("Releases = %+v", got)
	}
	url := c.TargetURL(r)
	if want := f.srv.URL + "/targets/releases/1.1.0/" + r.SHA256 + ".bundle.tar"; url != want {
		t.Fatalf("TargetURL = %s, want %s", url, want)
	}
	name := download(t, url)
	if err := c.VerifyTarget(r, name); err != nil {
		t.Fatal(err)
	}
	m, err := release.Extract(name, filepath.Join(t.TempDir(), "1.1.0"))
	if err != nil || m.Version != "1.1.0" {
		t.Fatalf("Extract = %+v, %v", m, err)
	}

	// The local store now holds what was verified; a second check with
	// nothing new succeeds from it.
	for role, want := range map[string]int64{"root": 1, "timestamp": 3, "snapshot": 3, "targets": 3} {
		if got := localVersion(t, c, role); got != want {
			t.Errorf("local %s version %d, want %d", role, got, want)
		}
	}
	if r2 := latest(t, c); r2 != r {
		t.Fatalf("second Latest = %+v", r2)
	}

	// A new release is picked up by the same client.
	newer := f.publish("1.2.0", "1.1.0")
	if r3 := latest(t, c); r3 != newer {
		t.Fatalf("Latest after publishing 1.2.0 = %+v", r3)
	}
}

func TestNoRelease(t *testing.T) {
	f := defaultFixture(t)
	_, err := f.client().Latest(context.Background())
	if !errors.Is(err, ErrNoRelease) {
		t.Fatalf("Latest on an empty repository = %v, want ErrNoRelease", err)
	}
}

func TestNewClientRefuses(t *testing.T) {
	f := defaultFixture(t)
	root := readFile(t, f.metaPath("1.root.json"))
	var doc map[string]any
	if err := json.Unmarshal(root, &doc); err != nil {
		t.Fatal(err)
	}
	doc["signed"].(map[string]any)["version"] = 7
	unsigned, _ := json.Marshal(doc)
	for _, tc := range []struct {
		name, metaURL, targetsURL string
		root                      []byte
		want                      string
	}{
		{"plain http to the internet", "http://updates.example.com/metadata", "https://updates.example.com/targets", root, "only allowed to a loopback address"},
		{"not http", "https://updates.example.com/metadata", "ftp://updates.example.com/targets", root, "want an https URL"},
		{"root not JSON", "https://h/metadata", "https://h/targets", []byte("nope"), "not a valid, self-signed TUF root"},
		{"root altered", "https://h/metadata", "https://h/targets", unsigned, "not a valid, self-signed TUF root"},
		{"targets metadata as root", "https://h/metadata", "https://h/targets", readFile(t, f.metaPath("1.targets.json")), "not a valid, self-signed TUF root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(t.TempDir(), tc.root, tc.metaURL, tc.targetsURL)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewClient = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestWrongKey: metadata signed by a key root does not list for the role is
// refused, and the local store keeps what it trusted before.
func TestWrongKey(t *testing.T) {
	for _, role := range []string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		t.Run(role, func(t *testing.T) {
			f := defaultFixture(t)
			good := f.publish("1.0.0", "1.0.0")
			c := f.client()
			latest(t, c)
			before := localVersion(t, c, role)

			signers := f.keys
			switch role {
			case metadata.TARGETS:
				signers.Targets = newKey(t)
			case metadata.SNAPSHOT:
				signers.Snapshot = newKey(t)
			case metadata.TIMESTAMP:
				signers.Timestamp = newKey(t)
			}
			forgePublish(t, f.dir, signers, f.exp, addFakeTarget("6.6.6"))

			_, err := c.Latest(context.Background())
			requireErr[*metadata.ErrUnsignedMetadata](t, err, "Verifying "+role+" failed, not enough signatures")
			if got := localVersion(t, c, role); got != before {
				t.Fatalf("local %s moved from version %d to %d after a refused refresh", role, before, got)
			}
			// The box still only knows the genuine release.
			if rs := c.Releases(); len(rs) != 1 || rs[0] != good {
				t.Fatalf("Releases after refusal = %+v", rs)
			}
		})
	}
}

// TestTamperedBundle: bytes changed on the server after publishing are
// caught by VerifyTarget against the signed length and SHA-256.
func TestTamperedBundle(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
		want   string
	}{
		{"byte flipped", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, "has SHA-256"},
		{"bytes appended", func(b []byte) []byte { return append(b, "evil"...) }, "bytes, the signed metadata says"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "bytes, the signed metadata says"},
		{"replaced by another release", nil, "has SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := defaultFixture(t)
			r := f.publish("1.1.0", "1.0.0")
			served := filepath.Join(f.dir, "targets", "releases", "1.1.0", r.SHA256+".bundle.tar")
			if tc.tamper != nil {
				writeFile(t, served, tc.tamper(readFile(t, served)))
			} else {
				// A different, well-formed bundle of the same size.
				other, _ := bundle(t, "1.1.0", "1.0.1")
				writeFile(t, served, readFile(t, other))
			}
			c := f.client()
			got := latest(t, c) // the metadata is intact
			name := download(t, c.TargetURL(got))
			err := c.VerifyTarget(got, name)
			requireErr[*metadata.ErrLengthOrHashMismatch](t, err, tc.want)
		})
	}

	t.Run("release not from the metadata", func(t *testing.T) {
		f := defaultFixture(t)
		r := f.publish("1.1.0", "1.0.0")
		c := f.client()
		name := download(t, c.TargetURL(r))
		if err := c.VerifyTarget(r, name); err == nil || !strings.Contains(err.Error(), "call Latest first") {
			t.Fatalf("VerifyTarget before Latest = %v", err)
		}
		latest(t, c)
		forged := r
		forged.SHA256 = strings.Repeat("0", 64)
		if err := c.VerifyTarget(forged, name); err == nil || !strings.Contains(err.Error(), "differs from the verified metadata") {
			t.Fatalf("VerifyTarget with a forged release = %v", err)
		}
	})
}

// editJSON changes a metadata file's signed part in place, keeping its
// signatures, as an attacker without keys would.
func editJSON(t testing.TB, name string, edit func(signed map[string]any)) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readFile(t, name), &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc["signed"].(map[string]any))
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, name, b)
}

// TestTamperedMetadata: any edit to signed metadata without re-signing is
// refused by the signature check.
func TestTamperedMetadata(t *testing.T) {
	target := func(s map[string]any) map[string]any {
		return s["targets"].(map[string]any)["releases/1.1.0/bundle.tar"].(map[string]any)
	}
	for _, tc := range []struct {
		name, file, role string
		edit             func(map[string]any)
	}{
		{"target hash", "3.targets.json", "targets", func(s map[string]any) {
			target(s)["hashes"] = map[string]any{"sha256": strings.Repeat("ab", 32)}
		}},
		{"target length", "3.targets.json", "targets", func(s map[string]any) { target(s)["length"] = 12345 }},
		{"target version", "3.targets.json", "targets", func(s map[string]any) {
			target(s)["custom"] = map[string]any{"version": "1.1.0", "min_from": "0.0.1"}
		}},
		{"extra target", "3.targets.json", "targets", func(s map[string]any) {
			s["targets"].(map[string]any)["releases/9.0.0/bundle.tar"] = target(s)
		}},
		{"targets expiry", "3.targets.json", "targets", func(s map[string]any) { s["expires"] = "2099-01-01T00:00:00Z" }},
		{"snapshot expiry", "3.snapshot.json", "snapshot", func(s map[string]any) { s["expires"] = "2099-01-01T00:00:00Z" }},
		{"timestamp expiry", "timestamp.json", "timestamp", func(s map[string]any) { s["expires"] = "2099-01-01T00:00:00Z" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := defaultFixture(t)
			f.publish("1.0.0", "1.0.0")
			c := f.client()
			latest(t, c)
			f.publish("1.1.0", "1.0.0")
			editJSON(t, f.metaPath(tc.file), tc.edit)

			_, err := c.Latest(context.Background())
			requireErr[*metadata.ErrUnsignedMetadata](t, err, "Verifying "+tc.role+" failed")
			if got := localVersion(t, c, tc.role); got != 2 {
				t.Fatalf("local %s is version %d after a refused refresh, want 2", tc.role, got)
			}
		})
	}
}

// TestExpired: the box refuses metadata past its expiry, role by role. The
// box's clock is moved forward, which is what happens when head office stops
// re-signing.
func TestExpired(t *testing.T) {
	now := time.Now()
	exp := Expiries{
		Targets:   now.Add(10 * 24 * time.Hour),
		Snapshot:  now.Add(20 * 24 * time.Hour),
		Timestamp: now.Add(30 * 24 * time.Hour),
		Root:      now.Add(40 * 24 * time.Hour),
	}
	f := newFixture(t, newKeys(t, 1), 1, exp)
	f.publish("1.0.0", "1.0.0")
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  string
	}{
		{"targets", 15 * 24 * time.Hour, "new targets is expired"},
		{"snapshot", 25 * 24 * time.Hour, "snapshot.json is expired"},
		{"timestamp", 35 * 24 * time.Hour, "timestamp.json is expired"},
		{"root", 45 * 24 * time.Hour, "final root.json is expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.client()
			c.now = func() time.Time { return now.Add(tc.after) }
			_, err := c.Latest(context.Background())
			requireErr[*metadata.ErrExpiredMetadata](t, err, tc.want)
		})
	}
	t.Run("not yet", func(t *testing.T) {
		c := f.client()
		c.now = func() time.Time { return now.Add(9 * 24 * time.Hour) }
		latest(t, c)
	})
}

// TestFreeze: an attacker who keeps serving the last timestamp (hiding new
// releases) is found out when it expires; head office's Refresh, which only
// re-signs the timestamp, ends it.
func TestFreeze(t *testing.T) {
	now := time.Now()
	exp := DefaultExpiries(now) // timestamp lasts a day
	f := newFixture(t, newKeys(t, 1), 1, exp)
	f.publish("1.0.0", "1.0.0")
	c := f.client()
	latest(t, c)
	frozen := localVersion(t, c, metadata.TIMESTAMP)

	c.now = func() time.Time { return now.Add(2 * 24 * time.Hour) }
	_, err := c.Latest(context.Background())
	requireErr[*metadata.ErrExpiredMetadata](t, err, "timestamp.json is expired")

	if err := Refresh(f.dir, f.keys, now.Add(3*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := latest(t, c); r.Version.String() != "1.0.0" {
		t.Fatalf("Latest after Refresh = %+v", r)
	}
	if got := localVersion(t, c, metadata.TIMESTAMP); got != frozen+1 {
		t.Fatalf("timestamp version %d after Refresh, want %d", got, frozen+1)
	}
	if got := localVersion(t, c, metadata.SNAPSHOT); got != 2 {
		t.Fatalf("Refresh changed the snapshot: version %d", got)
	}
}

// TestRollback: old metadata, served after the box has seen newer, is
// refused, however it is presented, and the local store keeps the newer.
func TestRollback(t *testing.T) {
	for _, tc := range []struct {
		name string
		// seenV3 says whether the box checked after release 1.1.0 (metadata
		// version 3) was published, or only after 1.0.0 (version 2).
		seenV3 bool
		attack func(t *testing.T, f *fixture, old map[string][]byte)
		want   string
		kept   string // the role whose local version must not change
		// recovers says whether putting the genuine files back is enough for
		// the box to update again. It is not when the attacker signed a new
		// timestamp with a stolen key: the box rightly keeps that version,
		// and head office must publish above it (after rotating keys).
		recovers bool
	}{
		{"old timestamp replayed", true, func(t *testing.T, f *fixture, old map[string][]byte) {
			writeFile(t, f.metaPath("timestamp.json"), old["timestamp.json"])
		}, "new timestamp version 2 must be >= 3", metadata.TIMESTAMP, true},
		{"new timestamp naming the old snapshot (timestamp key stolen)", true, func(t *testing.T, f *fixture, _ map[string][]byte) {
			r, _ := openRepo(f.dir)
			r.timestamp.Signed.Version++
			r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(2)
			forge(t, f.dir, metadata.TIMESTAMP, 0, r.timestamp, f.keys.Timestamp)
		}, "new snapshot version 2 must be >= 3", metadata.TIMESTAMP, true},
		{"new snapshot naming the old targets (timestamp and snapshot keys stolen)", true, func(t *testing.T, f *fixture, _ map[string][]byte) {
			r, _ := openRepo(f.dir)
			r.snapshot.Signed.Version++
			r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(2)
			forge(t, f.dir, metadata.SNAPSHOT, r.snapshot.Signed.Version, r.snapshot, f.keys.Snapshot)
			r.timestamp.Signed.Version++
			r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
			forge(t, f.dir, metadata.TIMESTAMP, 0, r.timestamp, f.keys.Timestamp)
		}, "targets.json version", metadata.SNAPSHOT, false},
		{"old snapshot under the new name", false, func(t *testing.T, f *fixture, old map[string][]byte) {
			writeFile(t, f.metaPath("3.snapshot.json"), old["2.snapshot.json"])
		}, "expected 3, got 2", metadata.SNAPSHOT, true},
		{"old targets under the new name", false, func(t *testing.T, f *fixture, old map[string][]byte) {
			writeFile(t, f.metaPath("3.targets.json"), old["2.targets.json"])
		}, "expected targets version 3, got 2", metadata.TARGETS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := defaultFixture(t)
			f.publish("1.0.0", "1.0.0")
			c := f.client()
			latest(t, c)
			old := map[string][]byte{}
			for _, n := range []string{"timestamp.json", "2.snapshot.json", "2.targets.json"} {
				old[n] = readFile(t, f.metaPath(n))
			}
			f.publish("1.1.0", "1.0.0")
			if tc.seenV3 {
				latest(t, c)
			}
			kept := localVersion(t, c, tc.kept)
			// Keep the genuine files to put back after the attack.
			genuine := map[string][]byte{}
			for _, n := range []string{"timestamp.json", "3.snapshot.json", "3.targets.json"} {
				genuine[n] = readFile(t, f.metaPath(n))
			}

			tc.attack(t, f, old)
			_, err := c.Latest(context.Background())
			requireErr[*metadata.ErrBadVersionNumber](t, err, tc.want)
			if got := localVersion(t, c, tc.kept); got != kept {
				t.Fatalf("local %s moved from version %d to %d", tc.kept, kept, got)
			}

			if !tc.recovers {
				return
			}
			for n, b := range genuine {
				writeFile(t, f.metaPath(n), b)
			}
			if r := latest(t, c); r.Version.String() != "1.1.0" {
				t.Fatalf("Latest after the attack = %+v", r)
			}
		})
	}
}

// TestRootRotation: head office moves from its first root (2 of 3 keys) to
// a new one (2 of 3 new keys, new online keys); boxes trusting only root
// version 1 follow. A next root signed by fewer keys than version 2 requires,
// or not by its own keys, is refused.
func TestRootRotation(t *testing.T) {
	oldKeys := newKeys(t, 3)
	f := newFixture(t, oldKeys, 2, DefaultExpiries(time.Now()))
	f.publish("1.0.0", "1.0.0")
	c := f.client()
	latest(t, c)

	newKeys2 := newKeys(t, 3)
	// Only two of the three old root keys are at hand: the threshold.
	if err := RotateRoot(f.dir, Keys{Root: oldKeys.Root[1:]}, newKeys2, 2, f.exp); err != nil {
		t.Fatal(err)
	}
	f.keys = newKeys2
	f.publish("1.1.0", "1.0.0")

	if r := latest(t, c); r.Version.String() != "1.1.0" {
		t.Fatalf("Latest after rotation = %+v", r)
	}
	if v := localVersion(t, c, metadata.ROOT); v != 2 {
		t.Fatalf("local root version %d, want 2", v)
	}
	fresh := f.client() // a box that never saw version 1 in use
	if r := latest(t, fresh); r.Version.String() != "1.1.0" {
		t.Fatalf("fresh client after rotation: %+v", r)
	}

	// The old online keys are no longer trusted.
	forgePublish(t, f.dir, oldKeys, f.exp, addFakeTarget("6.6.6"))
	_, err := c.Latest(context.Background())
	requireErr[*metadata.ErrUnsignedMetadata](t, err, "Verifying timestamp failed")

	newKeys3 := newKeys(t, 2)
	for _, tc := range []struct {
		name string
		old  []ed25519.PrivateKey // root version 2 keys (or others) that sign version 3
		own  bool                 // whether version 3's own keys sign it too
		want string
	}{
		{"1 of the 2 keys root v2 requires", newKeys2.Root[:1], true, "Verifying root failed, not enough signatures, got 1, want 2"},
		{"root v1 keys instead of v2's", oldKeys.Root, true, "Verifying root failed, not enough signatures, got 0, want 2"},
		{"not signed by its own keys", newKeys2.Root, false, "Verifying root failed, not enough signatures, got 0, want 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.own {
				// Head office's RotateRoot refuses to write it …
				err := RotateRoot(f.dir, Keys{Root: tc.old}, newKeys3, 1, f.exp)
				requireErr[*metadata.ErrUnsignedMetadata](t, err, "not signed by 2 of the keys root version 2 trusts")
			}
			// … and an attacker who writes it anyway gets nowhere.
			v3, err := newRoot(newKeys3, 1, 3, f.exp.Root)
			if err != nil {
				t.Fatal(err)
			}
			signers := append([]ed25519.PrivateKey{}, tc.old...)
			if tc.own {
				signers = append(signers, newKeys3.Root...)
			}
			forge(t, f.dir, metadata.ROOT, 3, v3, signers...)
			_, err = c.Latest(context.Background())
			requireErr[*metadata.ErrUnsignedMetadata](t, err, tc.want)
			if v := localVersion(t, c, metadata.ROOT); v != 2 {
				t.Fatalf("local root version %d after a refused root, want 2", v)
			}
			if err := os.Remove(f.metaPath("3.root.json")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, f.metaPath("root.json"), readFile(t, f.metaPath("2.root.json")))
		})
	}
}
