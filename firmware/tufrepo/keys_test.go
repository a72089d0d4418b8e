package tufrepo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateLoadKey(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "root-1.pem")
	key, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(name)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	got, err := LoadKey(name)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) {
		t.Fatal("LoadKey returned another key")
	}
	if _, err := GenerateKey(name); err == nil {
		t.Fatal("GenerateKey overwrote an existing key file")
	}
	if again, _ := LoadKey(name); !again.Equal(key) {
		t.Fatal("the key file changed")
	}
	id, err := KeyID(key)
	if err != nil || len(id) != 64 {
		t.Fatalf("KeyID = %q, %v", id, err)
	}
}

func TestLoadKeyRefuses(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	good, err := GenerateKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	goodDER, _ := x509.MarshalPKCS8PrivateKey(good)
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: goodDER})
	for _, tc := range []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"readable by others", goodPEM, 0o644, "chmod 600"},
		{"not PEM", []byte("hello"), 0o600, "no PEM block"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), 0o600, `PEM block "EC PRIVATE KEY"`},
		{"not ed25519", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600, "not an ed25519 key"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600, "PKCS #8"},
		{"two keys", append(append([]byte{}, goodPEM...), goodPEM...), 0o600, "more than one PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(name, tc.data, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(name, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadKey(name); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadKey = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("LoadKey of a missing file succeeded")
	}
}
