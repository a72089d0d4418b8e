package cli_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/hq/relay"
)

// TestConsentVerify: veil consent verify passes an intact ledger and names
// the line of an edited or a removed entry.
func TestConsentVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "consent", "ledger.jsonl")
	l, err := consent.OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range []consent.Entry{
		{Type: consent.EventGrant, ConsentID: "c1", Camera: "door"},
		{Type: consent.EventBind, ConsentID: "c1", Camera: "door"},
		{Type: consent.EventUnbind, ConsentID: "c1", Camera: "door", Reason: "track ended"},
		{Type: consent.EventWithdraw, ConsentID: "c1"},
	} {
		if _, err := l.Append(e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	out, err := veil(t, "consent", "verify", "--ledger", path)
	if want := fmt.Sprintf("ledger %s: 4 entries, chain intact\n", path); err != nil || out != want {
		t.Fatalf("veil consent verify = %q, %v; want %q", out, err, want)
	}
	// The path can also come from the config.
	t.Setenv("VEIL_CONSENT_LEDGER", path)
	if out, err := veil(t, "consent", "verify"); err != nil || !strings.Contains(out, "chain intact") {
		t.Errorf("with VEIL_CONSENT_LEDGER: %q, %v", out, err)
	}

	lines := strings.SplitAfter(string(good), "\n")
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"edited entry", []string{lines[0], strings.Replace(lines[1], `"door"`, `"till"`, 1), lines[2], lines[3]},
			"line 2: hash does not match its content"},
		{"removed entry", slices.Concat(lines[:2], lines[3:]), "line 3: seq 4 follows 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(strings.Join(tc.lines, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := veil(t, "consent", "verify", "--ledger", path)
			if want := "consent verify: ledger " + path + " " + tc.want; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("veil consent verify = %q, %v; want an error with %q", out, err, want)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "none.jsonl")
	if _, err := veil(t, "consent", "verify", "--ledger", missing); err == nil || !strings.Contains(err.Error(), "no ledger at "+missing) {
		t.Errorf("missing ledger: %v", err)
	}
}

// TestConsentKey: veil consent key prints the box's consent public key,
// the one that verifies its tokens, and --registry its line for head
// office's box registry; a missing key file is an error, not created.
func TestConsentKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "consent", "box.key")
	key, err := consent.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	out, err := veil(t, "consent", "key", "--key-file", path)
	if want := base64.StdEncoding.EncodeToString(pub) + "\n"; err != nil || out != want {
		t.Fatalf("veil consent key = %q, %v; want %q", out, err, want)
	}
	t.Setenv("VEIL_SITE_STORE", "s1")
	t.Setenv("VEIL_SITE_DEVICE", "d1")
	t.Setenv("VEIL_CONSENT_KEY_FILE", path)
	out, err = veil(t, "consent", "key", "--registry")
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := relay.ParseBoxes([]byte(out))
	if err != nil || len(boxes) != 1 || boxes[0].Device != "d1" || boxes[0].Store != "s1" || !boxes[0].Key.Equal(pub) {
		t.Fatalf("registry line %q parses to %+v, %v", out, boxes, err)
	}
	missing := filepath.Join(t.TempDir(), "none.key")
	if _, err := veil(t, "consent", "key", "--key-file", missing); err == nil || !strings.Contains(err.Error(), "no key at "+missing) {
		t.Errorf("missing key: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("veil consent key created a key")
	}
}
