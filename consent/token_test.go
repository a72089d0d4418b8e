package consent

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return ed25519.NewKeyFromSeed(s)
}

var sampleToken = Token{Box: "box-1", Camera: "sign", Zone: "spot", Notice: "2026-11", Nonce: "AAAAAAAAAAAAAAAAAAAAAA", Expires: 1900000000}

func TestTokenRoundTrip(t *testing.T) {
	key := testKey(t, 1)
	s := sampleToken.Sign(key)
	got, err := ParseToken(s, key.Public().(ed25519.PublicKey))
	if err != nil || got != sampleToken {
		t.Fatalf("ParseToken(%q) = %+v, %v", s, got, err)
	}
}

func TestTokenRefused(t *testing.T) {
	key := testKey(t, 1)
	pub := key.Public().(ed25519.PublicKey)
	good := sampleToken.Sign(key)
	parts := strings.Split(good, ".")
	flip := func(s string) string { // change one character of the payload
		b := []byte(s)
		if b[5] == 'A' {
			b[5] = 'B'
		} else {
			b[5] = 'A'
		}
		return string(b)
	}
	missing := sampleToken
	missing.Nonce = ""
	tests := []struct {
		name, tok string
		want      error
	}{
		{"empty", "", ErrTokenMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrTokenMalformed},
		{"other version", "v2." + parts[1] + "." + parts[2], ErrTokenMalformed},
		{"bad base64", "v1.!!!." + parts[2], ErrTokenMalformed},
		{"short signature", parts[0] + "." + parts[1] + ".AAAA", ErrTokenMalformed},
		{"tampered payload", parts[0] + "." + flip(parts[1]) + "." + parts[2], ErrTokenSignature},
		{"signed by another key", sampleToken.Sign(testKey(t, 2)), ErrTokenSignature},
		{"too long", "v1." + strings.Repeat("A", MaxTokenLen) + "." + parts[2], ErrTokenMalformed},
		{"missing field", missing.Sign(key), ErrTokenMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseToken(tc.tok, pub); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzParseToken: any input is either refused or round-trips through Sign
// with the same key; nothing panics.
func FuzzParseToken(f *testing.F) {
	key := testKey(f, 1)
	pub := key.Public().(ed25519.PublicKey)
	f.Add(sampleToken.Sign(key))
	f.Add("v1..")
	f.Add("v1.e30.AAAA")
	f.Add(strings.Repeat(".", 100))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s, pub)
		if err != nil {
			return
		}
		if _, err := ParseToken(tok.Sign(key), pub); err != nil {
			t.Fatalf("accepted %q but its re-signed form fails: %v", s, err)
		}
	})
}
