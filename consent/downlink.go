package consent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/veil-edge/veil/egress"
)

// A Downlink is one message head office's consent relay sends down to a
// box over MQTT, on <prefix>/<store>/<device>/consent: a grant the shopper
// gave on head office's phone pages, or its withdrawal. It is JSON with
// exactly these fields (testdata/downlink.golden.json):
//
//	{"v":1,"id":"<message id>","kind":"grant","box":"<device>",
//	 "consent_id":"<id>","token":"v1.….…","lang":"en","issued":1767225600,
//	 "sig":"<base64url Ed25519 signature>"}
//
// v is DownlinkVersion. id is a random nonce (16 bytes, base64url without
// padding) naming the message, so that a box accepts it once. kind is
// "grant" or "withdraw". box is the site.device of the box it is for.
// consent_id is chosen by head office (16..32 random bytes, base64url). A
// grant carries the box-signed token of the sign's QR code the shopper
// scanned and the language the notice was read in; a withdrawal carries
// neither (both fields absent). issued is when head office signed it, Unix
// seconds. sig is head office's Ed25519 signature over SigningBytes
// of the message: the domain string "veil-consent-downlink-v1\n" followed
// by the message's JSON as encoding/json writes this struct with sig empty
// (keys in the order above, omitted token and lang for a withdrawal).
//
// ParseDownlink is the strict parser; Receiver decides whether a box
// accepts a parsed message (signature, box, time window, replay, token).
type Downlink struct {
	V         int    `json:"v"`
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Box       string `json:"box"`
	ConsentID string `json:"consent_id"`
	Token     string `json:"token,omitempty"`
	Lang      string `json:"lang,omitempty"`
	Issued    int64  `json:"issued"`
	Sig       string `json:"sig"`
}

// DownlinkVersion is the v of the messages this package writes and reads.
const DownlinkVersion = 1

// The kinds of Downlink.
const (
	KindGrant    = "grant"
	KindWithdraw = "withdraw"
)

// MaxDownlinkSize bounds a down-link message; larger payloads are refused
// before decoding.
const MaxDownlinkSize = 2048

// downlinkDomain separates down-link signatures from any other use of head
// office's key.
const downlinkDomain = "veil-consent-downlink-v1\n"

// DownlinkError names the field of a down-link message that is malformed.
type DownlinkError struct {
	Field   string // JSON key, or "message" for the whole
	Problem string
}

func (e *DownlinkError) Error() string { return "consent down-link " + e.Field + ": " + e.Problem }

// ErrDownlinkSignature: the message's signature does not verify with head
// office's key.
var ErrDownlinkSignature = errors.New("consent down-link: signature does not verify with head office's key")

// SigningBytes are the bytes head office signs: the domain string
// and the message's JSON without its signature.
func (d Downlink) SigningBytes() []byte {
	d.Sig = ""
	b, err := json.Marshal(d)
	if err != nil {
		panic("consent: downlink does not marshal: " + err.Error()) // plain fields: cannot happen
	}
	return append([]byte(downlinkDomain), b...)
}

// Sign sets d's signature with head office's key and returns the message's
// JSON. It checks d's fields first, as ParseDownlink would.
func (d Downlink) Sign(key ed25519.PrivateKey) ([]byte, error) {
	d.Sig = strings.Repeat("A", 86) // a well-formed placeholder for check
	if err := d.check(); err != nil {
		return nil, err
	}
	d.Sig = base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, d.SigningBytes()))
	return json.Marshal(d)
}

// ParseDownlink decodes and checks a down-link message: size, JSON with no
// unknown or missing fields and nothing after it, every field's form, and
// the signature with head office's public key hq. Form errors are
// *DownlinkError naming the field; a bad signature is ErrDownlinkSignature.
// It does not check the box, the time or replays: Receiver does.
func ParseDownlink(data []byte, hq ed25519.PublicKey) (Downlink, error) {
	if len(data) > MaxDownlinkSize {
		return Downlink{}, &DownlinkError{"message", fmt.Sprintf("%d bytes; allowed at most %d", len(data), MaxDownlinkSize)}
	}
	var d Downlink
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		field := "message"
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			field = te.Field
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			field, msg = clip(strings.Trim(f, `"`)), "unknown field"
		}
		return Downlink{}, &DownlinkError{field, "not a down-link message: " + msg}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Downlink{}, &DownlinkError{"message", "data after the JSON object"}
	}
	if err := d.check(); err != nil {
		return Downlink{}, err
	}
	sig, _ := base64.RawURLEncoding.DecodeString(d.Sig) // checked by check
	if len(hq) != ed25519.PublicKeySize || !ed25519.Verify(hq, d.SigningBytes(), sig) {
		return Downlink{}, ErrDownlinkSignature
	}
	return d, nil
}

// check checks every field's form.
func (d Downlink) check() error {
	bad := func(field, format string, a ...any) error {
		return &DownlinkError{field, fmt.Sprintf(format, a...)}
	}
	if d.V != DownlinkVersion {
		return bad("v", "version %d; allowed %d", d.V, DownlinkVersion)
	}
	if n, ok := b64Len(d.ID); !ok || n != 16 {
		return bad("id", "%q is not 16 random bytes in base64url", clip(d.ID))
	}
	if d.Kind != KindGrant && d.Kind != KindWithdraw {
		return bad("kind", "%q; allowed grant, withdraw", clip(d.Kind))
	}
	if egress.NameProblem(d.Box) != "" {
		return bad("box", "%q is not a device name; allowed 1..64 of A-Z a-z 0-9 . _ -", clip(d.Box))
	}
	if n, ok := b64Len(d.ConsentID); !ok || n < 16 || n > 32 {
		return bad("consent_id", "%q is not 16..32 random bytes in base64url", clip(d.ConsentID))
	}
	switch d.Kind {
	case KindGrant:
		if d.Token == "" || len(d.Token) > MaxTokenLen || !strings.HasPrefix(d.Token, "v1.") || strings.Count(d.Token, ".") != 2 {
			return bad("token", "not a consent token (v1.payload.signature, at most %d characters)", MaxTokenLen)
		}
		if !validLang(d.Lang) {
			return bad("lang", "%q is not a language tag; allowed e.g. en, zh-CN", clip(d.Lang))
		}
	case KindWithdraw:
		if d.Token != "" {
			return bad("token", "a withdrawal carries no token")
		}
		if d.Lang != "" {
			return bad("lang", "a withdrawal carries no language")
		}
	}
	if d.Issued <= 0 || d.Issued > 253402300799 { // up to 9999-12-31
		return bad("issued", "%d is not a time in Unix seconds", d.Issued)
	}
	if n, ok := b64Len(d.Sig); !ok || n != ed25519.SignatureSize {
		return bad("sig", "not a %d-byte Ed25519 signature in base64url", ed25519.SignatureSize)
	}
	return nil
}

// IssuedAt is when head office signed the message.
func (d Downlink) IssuedAt() time.Time { return time.Unix(d.Issued, 0) }

// b64Len decodes s as unpadded base64url and returns its length.
func b64Len(s string) (int, bool) {
	if s == "" || len(s) > 128 {
		return 0, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return len(b), err == nil
}

func validLang(s string) bool {
	if len(s) < 2 || len(s) > 35 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// clip shortens a bad value for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// DownlinkTopic is the MQTT topic of a box's down-link messages:
// <prefix>/<store>/<device>/consent, beside the footfall and status topics
// the box publishes on.
func DownlinkTopic(prefix, store, device string) string {
	return prefix + "/" + store + "/" + device + "/consent"
}
