package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-edge/veil/hq/relay"
)

const keyB64 = "ERERERERERERERERERERERERERERERERERERERERERE="

func TestParseBoxes(t *testing.T) {
	good := "# head office's boxes\n" +
		`{"device":"d1","store":"s1","key":"` + keyB64 + `"}` + "\n\n" +
		`  {"store":"s2","device":"d2","key":"` + keyB64 + `"}  ` + "\n"
	boxes, err := relay.ParseBoxes([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 2 || boxes[0].Device != "d1" || boxes[1].Store != "s2" || !bytes.Equal(boxes[0].Key, bytes.Repeat([]byte{0x11}, ed25519.PublicKeySize)) {
		t.Fatalf("parsed %+v", boxes)
	}
	line := func(device, store, key string) string {
		return `{"device":"` + device + `","store":"` + store + `","key":"` + key + `"}`
	}
	tests := []struct{ name, data, want string }{
		{"not JSON", "d1 s1 key", "line 1: not a JSON object"},
		{"unknown field", `{"device":"d1","store":"s1","key":"` + keyB64 + `","ip":"10.0.0.1"}`, "line 1: ip: unknown field"},
		{"wrong type", `{"device":7,"store":"s1","key":"` + keyB64 + `"}`, "line 1: device: not a string"},
		{"two values", line("d1", "s1", keyB64) + ` {}`, "line 1: more than one JSON value"},
		{"bad device", "\n" + line("d 1", "s1", keyB64), `line 2: device: "d 1" is not a name`},
		{"missing store", `{"device":"d1","key":"` + keyB64 + `"}`, `line 1: store: "" is not a name`},
		{"short key", line("d1", "s1", "AAAA"), `line 1: key: "AAAA" is not an Ed25519 public key`},
		{"unpadded key", line("d1", "s1", strings.TrimSuffix(keyB64, "=")), "line 1: key:"},
		{"duplicate device", line("d1", "s1", keyB64) + "\n" + line("d1", "s2", keyB64), `line 2: device: "d1" is already registered on line 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := relay.ParseBoxes([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadBoxesNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "boxes.jsonl")
	if err := os.WriteFile(path, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.LoadBoxes(path); err == nil || !strings.HasPrefix(err.Error(), "box registry "+path+": line 1: device:") {
		t.Fatalf("err %v", err)
	}
	if _, err := relay.LoadBoxes(path + ".missing"); err == nil || !strings.Contains(err.Error(), "box registry") {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzParseBoxes: the parser never panics; what it accepts has valid,
// unique devices and 32-byte keys.
func FuzzParseBoxes(f *testing.F) {
	f.Add([]byte(`{"device":"d1","store":"s1","key":"` + keyB64 + `"}`))
	f.Add([]byte("# c\n\n{\"device\":\"d1\"}\n"))
	f.Add([]byte(`{"device":"d1","store":"s1","key":"` + keyB64 + `"}` + "\n" + `{"device":"d1","store":"s1","key":"` + keyB64 + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		boxes, err := relay.ParseBoxes(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.HasPrefix(err.Error(), "more than") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, b := range boxes {
			if b.Device == "" || b.Store == "" || len(b.Key) != ed25519.PublicKeySize || seen[b.Device] {
				t.Fatalf("accepted %+v", b)
			}
			seen[b.Device] = true
		}
	})
}
