package relay

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/internal/durable"
)

// The grants file keeps, across restarts, what lets a shopper's phone
// page withdraw a consent given here: each grant's id, a SHA-256 of the
// phone's secret (the phone keeps the secret itself in its cookie; the
// file alone cannot withdraw anything), the box it went to, and what the
// ledger records about it. Nothing else about the phone: no address,
// cookie, user agent or other identifier. It is rewritten whole (temporary
// file, fsync, rename, directory fsync) on every change, before the phone
// is answered, so a crash at any moment leaves the state as of the last
// answer. Ended grants are removed once the phone no longer needs them
// (one maximum duration after their expiry) or when retention purges the
// ledger (Relay.Purge), whichever is first.

// grantsVersion is the file's format version.
const grantsVersion = 1

// grantsFile is the file's JSON.
type grantsFile struct {
	V      int           `json:"v"`
	Grants []storedGrant `json:"grants"`
}

// storedGrant is one grant as the file keeps it.
type storedGrant struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"secret_sha256"` // hex SHA-256 of the phone's secret
	Device     string    `json:"device"`
	Store      string    `json:"store"`
	Camera     string    `json:"camera"`
	Zone       string    `json:"zone"`
	Lang       string    `json:"lang"`
	Notice     string    `json:"notice"`
	Granted    time.Time `json:"granted"`
	Expires    time.Time `json:"expires"`
	Ended      string    `json:"ended,omitempty"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
}

// GrantsFile is where a relay with ledger at path keeps its grants when
// Options.GrantsFile is empty: beside the ledger, named after it.
func GrantsFile(ledger string) string {
	ext := filepath.Ext(ledger)
	return strings.TrimSuffix(ledger, ext) + "-grants.json"
}

// hashSecret is the hex SHA-256 of a phone's secret. The secret is 256
// random bits, so a plain hash is enough to keep it from the file.
func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// secretMatches reports whether secret is the one whose hash is hash, in
// constant time.
func secretMatches(hash, secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(hashSecret(secret))) == 1
}

// loadGrants reads the grants file at path; a missing file is no grants.
// A file that does not parse is an error naming it: the phones of running
// consents could no longer withdraw them, which veil-hq must not start
// into without being told.
func loadGrants(path string) ([]storedGrant, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("relay grants %s: %w", path, err)
	}
	var f grantsFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("relay grants %s: damaged (%v); move it away to start without it: the phones of consents still running can then no longer withdraw them here", path, err)
	}
	if f.V != grantsVersion {
		return nil, fmt.Errorf("relay grants %s: version %d, this veil-hq reads %d", path, f.V, grantsVersion)
	}
	for i, g := range f.Grants {
		if g.ID == "" || len(g.SecretHash) != 2*sha256.Size || g.Device == "" || g.Store == "" {
			return nil, fmt.Errorf("relay grants %s: grant %d lacks an id, a secret hash, a device or a store; move the file away to start without it", path, i+1)
		}
	}
	return f.Grants, nil
}

// saveGrants writes the relay's grants to its file durably. r.mu is held.
func (r *Relay) saveGrants() error {
	f := grantsFile{V: grantsVersion, Grants: []storedGrant{}}
	for _, g := range r.grants {
		f.Grants = append(f.Grants, storedGrant{ID: g.ID, SecretHash: g.secretHash, Device: g.box.Device, Store: g.box.Store,
			Camera: g.Camera, Zone: g.Zone, Lang: g.Lang, Notice: g.Notice, Granted: g.Granted.UTC(), Expires: g.Expires.UTC(),
			Ended: g.Ended, EndedAt: g.endedAt.UTC()})
	}
	sort.Slice(f.Grants, func(i, j int) bool { return f.Grants[i].Granted.Before(f.Grants[j].Granted) })
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("relay grants: %w", err)
	}
	dir, name := filepath.Split(r.grantsPath)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("relay grants %s: %w", r.grantsPath, err)
	}
	if err := durable.WriteFile(dir, name, ".tmp-", append(data, '\n')); err != nil {
		return fmt.Errorf("relay grants %s: %w", r.grantsPath, err)
	}
	return nil
}

// restore turns a stored grant back into one the relay serves: the box as
// registered now, or as it was recorded if it is no longer registered (a
// withdrawal may always be sent).
func (r *Relay) restore(s storedGrant) *grant {
	box, ok := r.boxes[s.Device]
	if !ok {
		box = Box{Device: s.Device, Store: s.Store}
	}
	return &grant{Grant: consent.Grant{ID: s.ID, Camera: s.Camera, Zone: s.Zone, Lang: s.Lang, Notice: s.Notice,
		Granted: s.Granted, Expires: s.Expires, Ended: s.Ended, Relayed: true},
		box: box, secretHash: s.SecretHash, endedAt: s.EndedAt}
}
