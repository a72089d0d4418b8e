package tufrepo

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/veil-edge/veil/internal/durable"
)

// pemType is the PEM block type of a key file: PKCS #8, as written by
// `openssl genpkey -algorithm ed25519`.
const pemType = "PRIVATE KEY"

// Keys are head office's signing keys, one set per TUF role. Root keys are
// kept offline and used only by Init and RotateRoot; the other three sign
// every release (targets, snapshot) and every refresh (timestamp).
type Keys struct {
	// Root holds the root keys. Init and RotateRoot list all of them in the
	// root metadata and sign with all of them; a root is trusted when
	// threshold of them have signed it.
	Root      []ed25519.PrivateKey
	Targets   ed25519.PrivateKey
	Snapshot  ed25519.PrivateKey
	Timestamp ed25519.PrivateKey
}

// GenerateKey creates a new ed25519 key and writes it to path as a PEM
// "PRIVATE KEY" block (PKCS #8), readable by the owner only (0600). It
// refuses to overwrite an existing file: losing a root key cannot be undone.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writing key: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: pemType, Bytes: der})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = durable.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("writing key %s: %w", path, err)
	}
	return key, nil
}

// LoadKey reads a key file written by GenerateKey (or by `openssl genpkey
// -algorithm ed25519`). The file must hold exactly one PEM "PRIVATE KEY"
// block with an ed25519 key and must not be readable by group or others.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("loading key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("loading key %s: mode %v lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading key: %w", err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("loading key %s: %w", path, err)
	}
	return key, nil
}

func parseKey(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block; want a PEM \"PRIVATE KEY\" (PKCS #8 ed25519)")
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("PEM block %q; want %q (PKCS #8 ed25519)", block.Type, pemType)
	}
	if len(rest) > 0 {
		if b, _ := pem.Decode(rest); b != nil {
			return nil, errors.New("more than one PEM block")
		}
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKCS #8: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an ed25519 key", k)
	}
	return key, nil
}

// KeyID is the TUF key ID of key's public half, as it appears in root.json.
func KeyID(key ed25519.PrivateKey) (string, error) {
	k, err := tufKey(key)
	if err != nil {
		return "", err
	}
	return k.ID()
}

// tufKey is key's public half as TUF metadata.
func tufKey(key ed25519.PrivateKey) (*metadata.Key, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ed25519 private key of %d bytes, want %d (missing key?)", len(key), ed25519.PrivateKeySize)
	}
	return metadata.KeyFromPublicKey(key.Public())
}
