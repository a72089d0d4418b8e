package relay

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/veil-edge/veil/egress"
)

// Box is one registered shop box: where head office sends its consent
// down-link, and the key that checks its QR codes' tokens.
type Box struct {
	Device string            // its site.device; unique across all stores (tokens name the device only)
	Store  string            // its site.store
	Key    ed25519.PublicKey // its consent public key (`veil consent key`)
}

// MaxBoxesSize bounds a box registry file.
const MaxBoxesSize = 16 << 20

// boxLine is one line of the registry.
type boxLine struct {
	Device string `json:"device"`
	Store  string `json:"store"`
	Key    string `json:"key"`
}

// LoadBoxes reads head office's box registry from path (see ParseBoxes).
// Errors name the file and the line.
func LoadBoxes(path string) ([]Box, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("box registry: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBoxesSize+1))
	if err != nil {
		return nil, fmt.Errorf("box registry %s: %w", path, err)
	}
	boxes, err := ParseBoxes(data)
	if err != nil {
		return nil, fmt.Errorf("box registry %s: %w", path, err)
	}
	return boxes, nil
}

// ParseBoxes parses a box registry: JSON lines, one box per line,
//
//	{"device":"d1","store":"s1","key":"<its consent public key, standard base64>"}
//
// exactly these three fields (`veil consent key --registry` on the box
// prints its line). Blank lines and lines starting with # are skipped.
// device and store are 1..64 of A-Z a-z 0-9 . _ -; a device may be listed
// once. Errors name the line and the field: "line 3: key: ...".
func ParseBoxes(data []byte) ([]Box, error) {
	if len(data) > MaxBoxesSize {
		return nil, fmt.Errorf("more than %d bytes", MaxBoxesSize)
	}
	var boxes []Box
	first := map[string]int{}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line := bytes.TrimSpace(raw)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		b, err := parseBoxLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if at, dup := first[b.Device]; dup {
			return nil, fmt.Errorf("line %d: device: %q is already registered on line %d", n, b.Device, at)
		}
		first[b.Device] = n
		boxes = append(boxes, b)
	}
	return boxes, nil
}

func parseBoxLine(line []byte) (Box, error) {
	var l boxLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Box{}, fmt.Errorf("%s: not a string", te.Field)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return Box{}, fmt.Errorf("%s: unknown field; allowed device, store, key", strings.Trim(f, `"`))
		}
		return Box{}, fmt.Errorf(`not a JSON object {"device","store","key"}: %v`, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Box{}, errors.New("more than one JSON value on the line")
	}
	for _, f := range [...]struct{ name, v string }{{"device", l.Device}, {"store", l.Store}} {
		if egress.NameProblem(f.v) != "" {
			return Box{}, fmt.Errorf("%s: %q is not a name; allowed 1..64 of A-Z a-z 0-9 . _ -", f.name, clip(f.v))
		}
	}
	key, err := base64.StdEncoding.Strict().DecodeString(l.Key)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return Box{}, fmt.Errorf("key: %q is not an Ed25519 public key in standard base64 (44 characters)", clip(l.Key))
	}
	return Box{Device: l.Device, Store: l.Store, Key: key}, nil
}

func clip(s string) string {
	if len(s) > 48 {
		return s[:48] + "…"
	}
	return s
}
