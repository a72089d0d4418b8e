package egress

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrInvalid is wrapped by every error that rejects a report, a counting
// window or an option value as malformed.
var ErrInvalid = errors.New("invalid")

// maxReportSize bounds the input ParseReport looks at. The largest valid
// report (four 64-character names, two timestamps with nanoseconds and four
// 20-digit numbers) is well under 1 KiB.
const maxReportSize = 4096

// MaxWindow is the longest window a report may span: head office refuses
// longer ones as implausible, so the outbox never merges windows beyond it.
const MaxWindow = 24 * time.Hour

// maxNameLen is the longest camera, line, store or device name.
const maxNameLen = 64

// Counts is one closed counting window, as the counter produces it.
type Counts struct {
	Camera, Line string    // names, [A-Za-z0-9._-], 1..64 characters
	Start, End   time.Time // the window [Start, End); End after Start
	In, Out      int       // people who crossed the line each way, ≥ 0
}

// Report is the wire message: exactly these fields and nothing else. It is
// the only payload the Publisher sends besides its fixed status strings.
//
// (Device, Boot, Seq) identifies a report forever: Boot is the outbox's boot
// counter, persisted and incremented on every OpenOutbox, and Seq counts from
// 1 within a boot. Head office de-duplicates on it, because delivery is at
// least once.
//
// Sig is the box's Ed25519 signature (base64url, no padding) over
// SigningBytes: the domain string "veil-footfall-report-v1\n" and the
// report's wire form without sig. The Publisher signs every report it
// sends with the box's key (consent.key_file); head office verifies it
// against its box registry. It carries nothing about people; the outbox
// stores reports unsigned and they are signed as they are sent, so a merged
// window is signed as merged.
type Report struct {
	Device string    `json:"device"` // the box that counted
	Store  string    `json:"store"`  // the shop it is in
	Camera string    `json:"camera"` // the camera …
	Line   string    `json:"line"`   // … and its counting line
	Start  time.Time `json:"start"`  // UTC, RFC 3339
	End    time.Time `json:"end"`    // UTC, RFC 3339, after Start
	In     int       `json:"in"`     // ≥ 0
	Out    int       `json:"out"`    // ≥ 0
	Boot   uint64    `json:"boot"`   // ≥ 1
	Seq    uint64    `json:"seq"`    // ≥ 1
	Sig    string    `json:"sig,omitempty"`
}

// reportFields are the wire field names in wire order; all but sig are
// required.
var reportFields = [...]string{"device", "store", "camera", "line", "start", "end", "in", "out", "boot", "seq", "sig"}

// reportDomain separates report signatures from any other use of the
// box's key (which also signs consent tokens and receipts).
const reportDomain = "veil-footfall-report-v1\n"

// ErrUnsigned is returned by Report.Verify for a report without a signature.
var ErrUnsigned = errors.New("report is not signed")

// ErrBadSignature is returned by Report.Verify for a signature that does not
// verify with the key it is checked against.
var ErrBadSignature = errors.New("report signature does not verify with the device's key")

// SigningBytes are the bytes a box signs: the domain string and the
// report's wire form without sig. r must be valid.
func (r Report) SigningBytes() ([]byte, error) {
	r.Sig = ""
	b, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return append([]byte(reportDomain), b...), nil
}

// Sign returns r's wire form signed with the box's key.
func (r Report) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing report: not an Ed25519 private key: %w", ErrInvalid)
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return nil, err
	}
	r.Sig = base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, msg))
	return r.Marshal()
}

// Verify checks r's signature with the device's public key: ErrUnsigned if
// it has none, ErrBadSignature if it does not verify.
func (r Report) Verify(pub ed25519.PublicKey) error {
	if r.Sig == "" {
		return ErrUnsigned
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(r.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return ErrBadSignature
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// Validate reports the first thing wrong with r, naming the field. Names
// must be 1..64 of A-Z a-z 0-9 . _ - (store and device are also MQTT topic
// levels), both times set and End after Start, the counts non-negative, and
// Boot and Seq at least 1.
func (r Report) Validate() error {
	for _, f := range [...]struct{ name, v string }{
		{"device", r.Device}, {"store", r.Store}, {"camera", r.Camera}, {"line", r.Line},
	} {
		if err := checkName(f.v); err != nil {
			return fmt.Errorf("report %s: %w", f.name, err)
		}
	}
	if err := checkTime(r.Start); err != nil {
		return fmt.Errorf("report start: %w", err)
	}
	if err := checkTime(r.End); err != nil {
		return fmt.Errorf("report end: %w", err)
	}
	if !r.End.After(r.Start) {
		return fmt.Errorf("report end: %s is not after start %s: %w",
			r.End.UTC().Format(time.RFC3339Nano), r.Start.UTC().Format(time.RFC3339Nano), ErrInvalid)
	}
	if r.In < 0 {
		return fmt.Errorf("report in: %d is negative: %w", r.In, ErrInvalid)
	}
	if r.Out < 0 {
		return fmt.Errorf("report out: %d is negative: %w", r.Out, ErrInvalid)
	}
	if r.Boot < 1 {
		return fmt.Errorf("report boot: 0; allowed 1 and up: %w", ErrInvalid)
	}
	if r.Seq < 1 {
		return fmt.Errorf("report seq: 0; allowed 1 and up: %w", ErrInvalid)
	}
	if r.Sig != "" {
		if b, err := base64.RawURLEncoding.Strict().DecodeString(r.Sig); err != nil || len(b) != ed25519.SignatureSize {
			return fmt.Errorf("report sig: not a %d-byte Ed25519 signature in base64url: %w", ed25519.SignatureSize, ErrInvalid)
		}
	}
	return nil
}

// Marshal validates r and returns its wire form: one JSON object with the
// fields in declaration order, times in UTC as RFC 3339 (with as many
// fractional digits as they need), no insignificant white space.
func (r Report) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	r.Start, r.End = r.Start.UTC(), r.End.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding report: %w", err)
	}
	return b, nil
}

// ParseReport decodes one wire report strictly: the input must be a single
// JSON object holding every field of Report exactly once (sig at most once)
// under its exact (case-sensitive) name and nothing else, no null, nothing after the object
// but white space, and the result must pass Validate. Times must be UTC and
// come back in time.UTC.
func ParseReport(b []byte) (Report, error) {
	var r Report
	if len(b) > maxReportSize {
		return r, fmt.Errorf("report: %d bytes, more than %d: %w", len(b), maxReportSize, ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil {
		return r, fmt.Errorf("report: %v: %w", err, ErrInvalid)
	} else if tok != json.Delim('{') {
		return r, fmt.Errorf("report: not a JSON object: %w", ErrInvalid)
	}
	var seen [len(reportFields)]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return r, fmt.Errorf("report: %v: %w", err, ErrInvalid)
		}
		key, _ := tok.(string) // inside an object, Token returns keys as strings
		i := fieldIndex(key)
		if i < 0 {
			return r, fmt.Errorf("report: unknown field %q: %w", key, ErrInvalid)
		}
		if seen[i] {
			return r, fmt.Errorf("report: field %q given twice: %w", key, ErrInvalid)
		}
		seen[i] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return r, fmt.Errorf("report %s: %v: %w", key, err, ErrInvalid)
		}
		if bytes.Equal(raw, []byte("null")) {
			return r, fmt.Errorf("report %s: null: %w", key, ErrInvalid)
		}
		if err := json.Unmarshal(raw, r.field(i)); err != nil {
			return r, fmt.Errorf("report %s: %v: %w", key, err, ErrInvalid)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return r, fmt.Errorf("report: %v: %w", err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, fmt.Errorf("report: data after the object: %w", ErrInvalid)
	}
	if seen[len(seen)-1] && r.Sig == "" {
		return r, fmt.Errorf("report sig: empty; leave it out of an unsigned report: %w", ErrInvalid)
	}
	for i, ok := range seen {
		if !ok && reportFields[i] != "sig" {
			return r, fmt.Errorf("report: missing field %q: %w", reportFields[i], ErrInvalid)
		}
	}
	for _, t := range [...]struct {
		name string
		t    *time.Time
	}{{"start", &r.Start}, {"end", &r.End}} {
		if _, off := t.t.Zone(); off != 0 {
			return r, fmt.Errorf("report %s: %s is not UTC: %w", t.name, t.t.Format(time.RFC3339Nano), ErrInvalid)
		}
		*t.t = t.t.UTC()
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}

func fieldIndex(key string) int {
	for i, f := range reportFields {
		if f == key {
			return i
		}
	}
	return -1
}

// field returns a pointer to r's field number i in reportFields order.
func (r *Report) field(i int) any {
	return [...]any{&r.Device, &r.Store, &r.Camera, &r.Line, &r.Start, &r.End, &r.In, &r.Out, &r.Boot, &r.Seq, &r.Sig}[i]
}

// NameProblem says what is wrong with s as a store, device, camera or line
// name, or "" if nothing: a name is 1..64 of A-Z a-z 0-9 . _ - (store and
// device are MQTT topic levels, so no wildcards or separators). Config,
// head office and the consent down-link use this one rule.
func NameProblem(s string) string {
	const allowed = "allowed 1..64 of A-Z a-z 0-9 . _ -"
	if s == "" {
		return "empty; " + allowed
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("%d characters; %s", len(s), allowed)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("%q has %q; %s", s, c, allowed)
		}
	}
	return ""
}

// checkName is NameProblem as an error wrapping ErrInvalid.
func checkName(s string) error {
	if p := NameProblem(s); p != "" {
		return fmt.Errorf("%s: %w", p, ErrInvalid)
	}
	return nil
}

// checkTime accepts times from 1970 to 9999, which RFC 3339 and
// time.Time's JSON encoding can both represent.
func checkTime(t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("not set: %w", ErrInvalid)
	}
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return fmt.Errorf("year %d; allowed 1970..9999: %w", y, ErrInvalid)
	}
	return nil
}
