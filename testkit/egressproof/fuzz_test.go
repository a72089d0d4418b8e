package egressproof

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz tests of the parsers of outside input: the MQTT stream the box
// sends (and the broker's), and the capture file. `go test` runs the seeds;
// `go test -fuzz FuzzSplitMQTT ./testkit/egressproof/` explores.

func mqttSeeds() [][]byte {
	user := "u"
	s := newSession(testPolicy)
	return [][]byte{
		nil,
		connectPacket{KeepAlive: 30, ClientID: "veil-dev1", Will: &will{Topic: s.status(), Message: []byte("offline"), QoS: 1, Retain: true}}.encode(),
		connectPacket{CleanSession: true, ClientID: "c", Username: &user, Password: []byte("p")}.encode(),
		cat(publishPacket{QoS: 1, Retain: true, Topic: s.status(), PacketID: 1, Payload: []byte("online")}.encode(),
			publishPacket{QoS: 1, Topic: s.footfall(), PacketID: 2, Payload: s.report("cam", "door", 1)}.encode(),
			mqttPacket{Type: mqttPINGREQ}.encode(), mqttPacket{Type: mqttDISCONNECT}.encode()),
		publishPacket{Topic: "t", Payload: bytes.Repeat([]byte{'x'}, 200)}.encode(),
		cat(idPacket(mqttPUBACK, 1), idPacket(mqttPUBREL, 2), mqttPacket{Type: mqttCONNACK, Body: []byte{0, 0}}.encode()),
		mqttPacket{Type: mqttSUBSCRIBE, Flags: 2, Body: []byte{0, 1, 0, 1, '#', 0}}.encode(),
		{0x30, 0xff, 0xff, 0xff, 0x7f},
		{0xc0, 0x80, 0x00},
		{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x04, 0, 0, 0, 0},
	}
}

// FuzzSplitMQTT checks that splitMQTT never panics, that the packets it
// returns are exactly the bytes it says they span (re-encoding them gives
// those bytes back), that it consumes everything or says why not, and that
// CONNECT and PUBLISH bodies that parse encode back to the same bytes.
func FuzzSplitMQTT(f *testing.F) {
	for _, s := range mqttSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, n, err := splitMQTT(b)
		if n < 0 || n > len(b) {
			t.Fatalf("spans %d of %d bytes", n, len(b))
		}
		if (err == nil) != (n == len(b)) {
			t.Fatalf("spans %d of %d bytes with err %v", n, len(b), err)
		}
		if err != nil && !errors.Is(err, errMQTT) && !errors.Is(err, errMQTTShort) {
			t.Fatalf("err %v is neither errMQTT nor errMQTTShort", err)
		}
		var again []byte
		size := 0
		for _, p := range pkts {
			enc := p.encode()
			if len(enc) != p.Size {
				t.Fatalf("%s of size %d encodes to %d bytes", p, p.Size, len(enc))
			}
			again = append(again, enc...)
			size += p.Size
			switch p.Type {
			case mqttCONNECT:
				if c, err := parseConnect(p.Body); err == nil && !bytes.Equal(c.encode(), enc) {
					t.Fatalf("CONNECT % x parses to %+v, which encodes to % x", enc, c, c.encode())
				}
			case mqttPUBLISH:
				if pub, err := parsePublish(p.Flags, p.Body); err == nil && !bytes.Equal(pub.encode(), enc) {
					t.Fatalf("PUBLISH % x parses to %+v, which encodes to % x", enc, pub, pub.encode())
				}
			}
		}
		if size != n || !bytes.Equal(again, b[:n]) {
			t.Fatalf("packets re-encode to % x, input % x", again, b[:n])
		}
	})
}

// FuzzPolicyStream puts arbitrary bytes into the box's MQTT session after
// a valid CONNECT and checks that the policy never panics and passes only
// streams that are allowed MQTT packets end to end.
func FuzzPolicyStream(f *testing.F) {
	for _, s := range mqttSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 60000 {
			return // one segment, one IPv4 packet
		}
		s := newSession(testPolicy)
		s.arp()
		s.open()
		s.connect(s.veilConnect())
		if len(b) > 0 {
			s.out(b)
		}
		v := testPolicy.check(s.capture(t))
		if len(v.Violations) > 0 {
			return
		}
		pkts, _, err := splitMQTT(b)
		if err != nil || v.StreamBytes != v.MQTTBytes {
			t.Fatalf("passed % x: split %v, %d stream bytes, %d MQTT bytes", b, err, v.StreamBytes, v.MQTTBytes)
		}
		for _, p := range pkts {
			switch p.Type {
			case mqttPUBLISH, mqttPINGREQ, mqttDISCONNECT:
			default:
				t.Fatalf("passed a %s from the box", p)
			}
		}
	})
}

// FuzzReadPcap checks that reading and decoding any file never panics and
// that decoded payloads lie inside their frames.
func FuzzReadPcap(f *testing.F) {
	s := newSession(testPolicy)
	s.arp()
	s.open()
	s.connect(s.veilConnect())
	s.frame(ethernet(macA, macB, etherIPv6, ipv6Bytes(ip6A, ip6B, protoUDP, udpBytes(5353, 5353, []byte("mdns")))))
	var buf bytes.Buffer
	if err := writePcap(&buf, s.recs); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:pcapHeaderLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _ := readPcap(b)
		for _, r := range recs {
			fr, err := decodeFrame(r)
			if err != nil || fr.IP == nil {
				continue
			}
			if len(fr.IP.Payload) > len(r.Data) {
				t.Fatalf("IP payload of %d bytes in a %d-byte frame", len(fr.IP.Payload), len(r.Data))
			}
			if fr.IP.TCP != nil && len(fr.IP.TCP.Payload) > len(fr.IP.Payload) {
				t.Fatalf("TCP payload of %d bytes in a %d-byte IP payload", len(fr.IP.TCP.Payload), len(fr.IP.Payload))
			}
		}
	})
}
