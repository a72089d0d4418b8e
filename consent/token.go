package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A signage token is what the QR code on the sign carries: short-lived,
// single-use, signed by the box, and bound to the box, the signage camera,
// its opt-in zone and the notice version in force. Its text form is
//
//	v1.<base64url(payload JSON)>.<base64url(Ed25519 signature of the payload bytes)>
//
// so it fits in a URL path and a QR code.
type Token struct {
	Box     string `json:"b"` // site.device of the box that issued it
	Camera  string `json:"c"` // the signage camera
	Zone    string `json:"z"` // the opt-in zone's name
	Notice  string `json:"n"` // notice version shown with it
	Nonce   string `json:"i"` // random, base64url; makes it single-use
	Expires int64  `json:"e"` // Unix seconds
}

// MaxTokenLen bounds a token's text; longer input is refused before decoding.
const MaxTokenLen = 512

// Token errors, each worded for the shopper's page.
var (
	ErrTokenMalformed = errors.New("this code is not a valid consent code")
	ErrTokenSignature = errors.New("this code was not issued by this shop's camera box")
	ErrTokenExpired   = errors.New("this code has expired")
	ErrTokenUsed      = errors.New("this code was already used")
	ErrTokenOtherBox  = errors.New("this code belongs to another camera box")
	ErrNoticeChanged  = errors.New("the notice has changed since this code was shown")
)

// NewNonce returns 16 random bytes, base64url.
func NewNonce() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("consent: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Sign returns the token's text form.
func (t Token) Sign(key ed25519.PrivateKey) string {
	payload, err := json.Marshal(t)
	if err != nil {
		panic("consent: token does not marshal: " + err.Error()) // plain fields: cannot happen
	}
	sig := ed25519.Sign(key, payload)
	return "v1." + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// ParseToken checks a token's form and signature and decodes it. It does not
// check expiry, box, notice or use: the service does, against its state.
// Errors wrap ErrTokenMalformed or ErrTokenSignature.
func ParseToken(s string, pub ed25519.PublicKey) (Token, error) {
	if len(s) > MaxTokenLen {
		return Token{}, fmt.Errorf("%w (too long)", ErrTokenMalformed)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return Token{}, fmt.Errorf("%w (not v1.payload.signature)", ErrTokenMalformed)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Token{}, fmt.Errorf("%w (payload: %v)", ErrTokenMalformed, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Token{}, fmt.Errorf("%w (signature encoding)", ErrTokenMalformed)
	}
	if !ed25519.Verify(pub, payload, sig) {
		return Token{}, ErrTokenSignature
	}
	var t Token
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil || dec.More() {
		return Token{}, fmt.Errorf("%w (payload JSON)", ErrTokenMalformed)
	}
	if t.Box == "" || t.Camera == "" || t.Zone == "" || t.Notice == "" || len(t.Nonce) < 16 || t.Expires <= 0 {
		return Token{}, fmt.Errorf("%w (missing field)", ErrTokenMalformed)
	}
	return t, nil
}

// ExpiresAt is the token's expiry as a time.
func (t Token) ExpiresAt() time.Time { return time.Unix(t.Expires, 0) }
