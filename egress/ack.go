package egress

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// An Ack is head office's word to one box about the reports of one of its
// boots: which it has stored (committed to its database, or already held
// with the same content) and which it refuses for good (the box's signature
// verified, but the report is implausible or conflicts with one stored
// under the same identity). It travels on the box's down-link topic
// AckTopic, QoS 1, as JSON with exactly these fields
// (testdata/ack.golden.json):
//
//	{"v":1,"device":"box-7","store":"shop_042","boot":3,
//	 "stored":[[1,5],[7,7]],"refused":[{"seq":6,"reason":"implausible"}],
//	 "issued":1767225600,"sig":"<base64url Ed25519 signature>"}
//
// stored holds inclusive seq ranges, ascending and disjoint; refused holds
// seqs ascending, none inside a stored range. sig is head office's Ed25519
// signature (the key boxes trust for the consent relay) over SigningBytes:
// the domain string "veil-footfall-ack-v1\n" and the JSON with sig empty.
//
// A box removes a window from its outbox only on an Ack that names it, so
// a window leaves the box once head office has it, not when the broker has
// it. Acks are idempotent: a repeated or replayed Ack names windows the box
// no longer holds, and boots never repeat, so it cannot name a newer one.
type Ack struct {
	V       int        `json:"v"`
	Device  string     `json:"device"`
	Store   string     `json:"store"`
	Boot    uint64     `json:"boot"`
	Stored  []SeqRange `json:"stored"`
	Refused []Refusal  `json:"refused"`
	Issued  int64      `json:"issued"`
	Sig     string     `json:"sig"`
}

// SeqRange is an inclusive range of seqs, [from, to].
type SeqRange [2]uint64

// Refusal is a report head office will never store, and why.
type Refusal struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"` // 1..64 of a-z 0-9 - (e.g. implausible, conflict)
}

// AckVersion is the v of the acknowledgements this package writes and reads.
const AckVersion = 1

// Limits of one Ack; head office splits larger answers.
const (
	MaxAckSize     = 64 << 10
	MaxAckRanges   = 1000
	MaxAckRefusals = 1000
)

const ackDomain = "veil-footfall-ack-v1\n"

// ErrAckSignature: the acknowledgement's signature does not verify with
// head office's key.
var ErrAckSignature = errors.New("acknowledgement: signature does not verify with head office's key")

// AckTopic is the MQTT topic of a box's acknowledgements:
// <prefix>/<store>/<device>/ack, beside the footfall topic it publishes on.
func AckTopic(prefix, store, device string) string {
	return prefix + "/" + store + "/" + device + "/ack"
}

// Covers reports whether a names seq as stored or refused.
func (a Ack) Covers(seq uint64) bool {
	for _, r := range a.Stored {
		if r[0] <= seq && seq <= r[1] {
			return true
		}
	}
	for _, r := range a.Refused {
		if r.Seq == seq {
			return true
		}
	}
	return false
}

// IssuedAt is when head office signed a.
func (a Ack) IssuedAt() time.Time { return time.Unix(a.Issued, 0).UTC() }

// SigningBytes are the bytes head office signs.
func (a Ack) SigningBytes() []byte {
	a.Sig = ""
	b, err := json.Marshal(a)
	if err != nil {
		panic("egress: ack does not marshal: " + err.Error()) // plain fields: cannot happen
	}
	return append([]byte(ackDomain), b...)
}

// Sign checks a as ParseAck would and returns its JSON signed with head
// office's key.
func (a Ack) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing acknowledgement: not an Ed25519 private key: %w", ErrInvalid)
	}
	if a.Stored == nil {
		a.Stored = []SeqRange{}
	}
	if a.Refused == nil {
		a.Refused = []Refusal{}
	}
	a.Sig = strings.Repeat("A", 86) // a well-formed placeholder for check
	if err := a.check(); err != nil {
		return nil, err
	}
	a.Sig = base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, a.SigningBytes()))
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encoding acknowledgement: %w", err)
	}
	if len(b) > MaxAckSize {
		return nil, fmt.Errorf("acknowledgement: %d bytes, more than %d: %w", len(b), MaxAckSize, ErrInvalid)
	}
	return b, nil
}

// ParseAck decodes and checks an acknowledgement strictly (size, JSON with
// no unknown or missing field and nothing after it, every field's form) and
// its signature with head office's public key hq. Form errors wrap
// ErrInvalid and name the field; a bad signature is ErrAckSignature. It
// does not check the device: the receiver compares it with its own.
func ParseAck(data []byte, hq ed25519.PublicKey) (Ack, error) {
	if len(data) > MaxAckSize {
		return Ack{}, fmt.Errorf("acknowledgement: %d bytes, more than %d: %w", len(data), MaxAckSize, ErrInvalid)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Ack{}, fmt.Errorf("acknowledgement: %v: %w", err, ErrInvalid)
	}
	for _, k := range [...]string{"v", "device", "store", "boot", "stored", "refused", "issued", "sig"} {
		v, ok := raw[k]
		if !ok {
			return Ack{}, fmt.Errorf("acknowledgement: missing field %q: %w", k, ErrInvalid)
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return Ack{}, fmt.Errorf("acknowledgement %s: null: %w", k, ErrInvalid)
		}
	}
	var a Ack
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Ack{}, fmt.Errorf("acknowledgement: %v: %w", err, ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Ack{}, fmt.Errorf("acknowledgement: data after the object: %w", ErrInvalid)
	}
	if err := a.check(); err != nil {
		return Ack{}, err
	}
	sig, _ := base64.RawURLEncoding.Strict().DecodeString(a.Sig) // checked by check
	if len(hq) != ed25519.PublicKeySize || !ed25519.Verify(hq, a.SigningBytes(), sig) {
		return Ack{}, ErrAckSignature
	}
	return a, nil
}

// check checks every field's form.
func (a Ack) check() error {
	bad := func(field, format string, v ...any) error {
		return fmt.Errorf("acknowledgement %s: %s: %w", field, fmt.Sprintf(format, v...), ErrInvalid)
	}
	if a.V != AckVersion {
		return bad("v", "version %d; allowed %d", a.V, AckVersion)
	}
	if p := NameProblem(a.Device); p != "" {
		return bad("device", "%s", p)
	}
	if p := NameProblem(a.Store); p != "" {
		return bad("store", "%s", p)
	}
	if a.Boot < 1 {
		return bad("boot", "0; allowed 1 and up")
	}
	if len(a.Stored) > MaxAckRanges {
		return bad("stored", "%d ranges; allowed at most %d", len(a.Stored), MaxAckRanges)
	}
	if len(a.Refused) > MaxAckRefusals {
		return bad("refused", "%d seqs; allowed at most %d", len(a.Refused), MaxAckRefusals)
	}
	var last uint64
	for i, r := range a.Stored {
		if r[0] < 1 || r[0] > r[1] {
			return bad("stored", "range %d is [%d,%d]; allowed [from,to] with 1 <= from <= to", i, r[0], r[1])
		}
		if i > 0 && r[0] <= last {
			return bad("stored", "range %d starts at %d, not after %d: ranges must ascend and not overlap", i, r[0], last)
		}
		last = r[1]
	}
	last = 0
	for i, r := range a.Refused {
		if r.Seq < 1 || r.Seq <= last {
			return bad("refused", "seq %d at %d: allowed 1 and up, ascending, once", r.Seq, i)
		}
		last = r.Seq
		if !validReason(r.Reason) {
			return bad("refused", "reason %q at %d; allowed 1..64 of a-z 0-9 -", truncate([]byte(r.Reason), 40), i)
		}
		for _, s := range a.Stored {
			if s[0] <= r.Seq && r.Seq <= s[1] {
				return bad("refused", "seq %d is also stored", r.Seq)
			}
		}
	}
	if a.Issued <= 0 || a.Issued > 253402300799 { // up to 9999-12-31
		return bad("issued", "%d is not a time in Unix seconds", a.Issued)
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(a.Sig); err != nil || len(b) != ed25519.SignatureSize {
		return bad("sig", "not a %d-byte Ed25519 signature in base64url", ed25519.SignatureSize)
	}
	return nil
}

func validReason(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// AckRanges folds seqs (any order, repeats allowed) into ascending disjoint
// ranges for Ack.Stored.
func AckRanges(seqs []uint64) []SeqRange {
	s := append([]uint64(nil), seqs...)
	slices.Sort(s)
	var out []SeqRange
	for _, q := range s {
		if n := len(out); n > 0 && q <= out[n-1][1]+1 {
			if q > out[n-1][1] {
				out[n-1][1] = q
			}
			continue
		}
		out = append(out, SeqRange{q, q})
	}
	return out
}
