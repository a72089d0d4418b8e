package consent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// sampleDownlink is a grant with fixed ids; its token is sampleToken signed
// by the box key of seed 7.
func sampleDownlink(t testing.TB) Downlink {
	return Downlink{V: 1, ID: "AAECAwQFBgcICQoLDA0ODw", Kind: KindGrant, Box: "box-1", ConsentID: "EBESExQVFhcYGRobHB0eHw",
		Token: sampleToken.Sign(testKey(t, 7)), Lang: "zh-CN", Issued: 1795420800}
}

func TestDownlinkRoundTrip(t *testing.T) {
	hq := testKey(t, 9)
	pub := hq.Public().(ed25519.PublicKey)
	withdraw := sampleDownlink(t)
	withdraw.Kind, withdraw.Token, withdraw.Lang = KindWithdraw, "", ""
	for _, d := range []Downlink{sampleDownlink(t), withdraw} {
		t.Run(d.Kind, func(t *testing.T) {
			msg, err := d.Sign(hq)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseDownlink(msg, pub)
			if err != nil {
				t.Fatal(err)
			}
			got.Sig = ""
			if got != d {
				t.Fatalf("parsed %+v, want %+v", got, d)
			}
			if d.Kind == KindWithdraw && (bytes.Contains(msg, []byte(`"token"`)) || bytes.Contains(msg, []byte(`"lang"`))) {
				t.Errorf("a withdrawal carries token or lang: %s", msg)
			}
		})
	}
}

// TestDownlinkGolden pins the wire format: the golden message (Ed25519 is
// deterministic) parses with head office's key, and Sign writes it byte
// for byte.
func TestDownlinkGolden(t *testing.T) {
	hq := testKey(t, 9)
	msg, err := sampleDownlink(t).Sign(hq)
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/downlink.golden.json"
	if *update {
		if err := os.WriteFile(path, append(msg, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(msg, '\n'), want) {
		t.Fatalf("Sign wrote\n%s\nwant (%s)\n%s", msg, path, want)
	}
	if _, err := ParseDownlink(bytes.TrimSpace(want), hq.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("golden message does not parse: %v", err)
	}
}

// TestDownlinkRefused: every malformed field is named; a changed field or
// another key fails the signature.
func TestDownlinkRefused(t *testing.T) {
	hq := testKey(t, 9)
	pub := hq.Public().(ed25519.PublicKey)
	good, err := sampleDownlink(t).Sign(hq)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	other, _ := sampleDownlink(t).Sign(testKey(t, 10))
	tests := []struct {
		name  string
		msg   []byte
		field string // "" : ErrDownlinkSignature
	}{
		{"too big", append(good, bytes.Repeat([]byte(" "), MaxDownlinkSize)...), "message"},
		{"not JSON", []byte("grant please"), "message"},
		{"trailing data", append(append([]byte{}, good...), []byte(` {}`)...), "message"},
		{"unknown field", edit(func(m map[string]any) { m["ip"] = "10.0.0.7" }), "ip"},
		{"wrong type", edit(func(m map[string]any) { m["issued"] = "yesterday" }), "issued"},
		{"version", edit(func(m map[string]any) { m["v"] = 2 }), "v"},
		{"short id", edit(func(m map[string]any) { m["id"] = "AAEC" }), "id"},
		{"kind", edit(func(m map[string]any) { m["kind"] = "bind" }), "kind"},
		{"box", edit(func(m map[string]any) { m["box"] = "shop/#" }), "box"},
		{"missing consent id", edit(func(m map[string]any) { delete(m, "consent_id") }), "consent_id"},
		{"token", edit(func(m map[string]any) { m["token"] = "not-a-token" }), "token"},
		{"grant without lang", edit(func(m map[string]any) { delete(m, "lang") }), "lang"},
		{"withdrawal with token", edit(func(m map[string]any) { m["kind"] = KindWithdraw; delete(m, "lang") }), "token"},
		{"issued", edit(func(m map[string]any) { m["issued"] = -5 }), "issued"},
		{"signature form", edit(func(m map[string]any) { m["sig"] = "AAAA" }), "sig"},
		{"field changed after signing", edit(func(m map[string]any) { m["consent_id"] = "ICEiIyQlJicoKSorLC0uLw" }), ""},
		{"other box after signing", edit(func(m map[string]any) { m["box"] = "box-2" }), ""},
		{"signed by another key", other, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDownlink(tc.msg, pub)
			var de *DownlinkError
			switch {
			case tc.field == "" && !errors.Is(err, ErrDownlinkSignature):
				t.Fatalf("err %v, want ErrDownlinkSignature", err)
			case tc.field != "" && (!errors.As(err, &de) || de.Field != tc.field):
				t.Fatalf("err %v, want a DownlinkError on %q", err, tc.field)
			}
		})
	}
}

// FuzzParseDownlink: the parser never panics, and what it accepts is
// well-formed and signs to a message that parses to the same.
func FuzzParseDownlink(f *testing.F) {
	hq := testKey(f, 9)
	pub := hq.Public().(ed25519.PublicKey)
	good, _ := sampleDownlink(f).Sign(hq)
	f.Add(good)
	golden, _ := os.ReadFile("testdata/downlink.golden.json")
	f.Add(golden)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(strings.Replace(string(good), `"grant"`, `"withdraw"`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDownlink(data, pub)
		if err != nil {
			var de *DownlinkError
			if !errors.As(err, &de) && !errors.Is(err, ErrDownlinkSignature) {
				t.Fatalf("error of unknown kind: %v", err)
			}
			return
		}
		if err := d.check(); err != nil {
			t.Fatalf("accepted a message that does not check: %v", err)
		}
		again, err := d.Sign(hq)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDownlink(again, pub)
		if err != nil || d2 != d {
			t.Fatalf("re-signed %+v parses to %+v, %v", d, d2, err)
		}
	})
}
