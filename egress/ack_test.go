package egress

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ackKey is a fixed head-office key, so the golden file is stable.
var ackKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var goldenAck = Ack{V: AckVersion, Device: "box-7", Store: "shop_042", Boot: 3,
	Stored: []SeqRange{{1, 5}, {7, 7}}, Refused: []Refusal{{Seq: 6, Reason: "implausible"}}, Issued: 1767225600}

func TestAckGolden(t *testing.T) {
	got, err := goldenAck.Sign(ackKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "ack.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("signed ack\n got %s\nwant %s", got, want)
	}
	back, err := ParseAck(want, ackKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("ParseAck(golden): %v", err)
	}
	back.Sig = ""
	if !reflect.DeepEqual(back, goldenAck) {
		t.Errorf("ParseAck(golden) = %+v, want %+v", back, goldenAck)
	}
	for seq, want := range map[uint64]bool{1: true, 5: true, 6: true, 7: true, 8: false, 0: false} {
		if back.Covers(seq) != want {
			t.Errorf("Covers(%d) = %v, want %v", seq, !want, want)
		}
	}
}

func TestParseAckRefuses(t *testing.T) {
	pub := ackKey.Public().(ed25519.PublicKey)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	good, err := goldenAck.Sign(ackKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := goldenAck.Sign(other)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, data, want string
	}{
		{"not json", "hello", "acknowledgement"},
		{"array", "[]", "acknowledgement"},
		{"missing field", strings.Replace(string(good), `"issued":1767225600,`, "", 1), `missing field "issued"`},
		{"null", strings.Replace(string(good), `"refused":[{"seq":6,"reason":"implausible"}]`, `"refused":null`, 1), "refused: null"},
		{"unknown field", strings.Replace(string(good), `{"v":1,`, `{"v":1,"x":2,`, 1), "unknown field"},
		{"trailing data", string(good) + "{}", "after top-level value"},
		{"too big", strings.Repeat(" ", MaxAckSize+1), "more than"},
		{"tampered", strings.Replace(string(good), `[7,7]`, `[7,9]`, 1), "signature does not verify"},
		{"other key", string(forged), "signature does not verify"},
		{"overlapping", strings.Replace(string(good), `[7,7]`, `[5,7]`, 1), "ascend"},
		{"refused inside stored", strings.Replace(string(good), `"seq":6`, `"seq":7`, 1), "also stored"},
		{"bad reason", strings.Replace(string(good), `implausible`, `Implausible!`, 1), "reason"},
		{"version", strings.Replace(string(good), `"v":1`, `"v":2`, 1), "version 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseAck([]byte(c.data), pub)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseAck = %v, want an error containing %q", err, c.want)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrAckSignature) {
				t.Errorf("error %v wraps neither ErrInvalid nor ErrAckSignature", err)
			}
		})
	}
}

func TestAckRanges(t *testing.T) {
	for _, c := range []struct {
		in   []uint64
		want []SeqRange
	}{
		{nil, nil},
		{[]uint64{3}, []SeqRange{{3, 3}}},
		{[]uint64{5, 1, 2, 3, 3, 9, 8}, []SeqRange{{1, 3}, {5, 5}, {8, 9}}},
	} {
		if got := AckRanges(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("AckRanges(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// FuzzParseAck: no input panics, and whatever parses signs back to the
// same message.
func FuzzParseAck(f *testing.F) {
	good, _ := goldenAck.Sign(ackKey)
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"device":"d","store":"s","boot":1,"stored":[],"refused":[],"issued":1,"sig":""}`))
	pub := ackKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAck(data, pub)
		if err != nil {
			return
		}
		again, err := a.Sign(ackKey)
		if err != nil {
			t.Fatalf("parsed ack does not sign again: %v", err)
		}
		if _, err := ParseAck(again, pub); err != nil {
			t.Fatalf("re-signed ack does not parse: %v", err)
		}
	})
}
