package egressproof

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/egress"
)

// Tests of the policy on hand-built captures: a clean veil session passes,
// and each way of sending something else is caught. They show the proof
// cannot pass by not looking.

var testPolicy = policy{
	BoxMAC: mac{0x02, 'v', 'e', 'i', 'l', 1}, HQMAC: mac{0x02, 'v', 'e', 'i', 'l', 2},
	Box: netip.MustParseAddr("10.231.7.1"), HQ: netip.MustParseAddr("10.231.7.2"), BrokerPort: 1883,
	ClientID: "veil-dev1", Prefix: "veil/v1", Store: "shop", Device: "dev1", Camera: "cam", Lines: []string{"door", "road"},
	MaxReport: 512, AckTopic: "veil/v1/shop/dev1/ack",
}

// session builds the capture of one MQTT session between the box and the
// broker, frame by frame.
type session struct {
	p             policy
	recs          []record
	ts            time.Time
	sport         uint16
	seqOut, seqIn uint32 // next sequence numbers
	nextID        uint16
}

func newSession(p policy) *session {
	return &session{p: p, ts: epoch, sport: 45000, seqOut: 0xffff_ff00, seqIn: 77, nextID: 1}
}

func (s *session) frame(data []byte) {
	s.ts = s.ts.Add(time.Millisecond)
	s.recs = append(s.recs, record{TS: s.ts, Data: data, OrigLen: len(data)})
}

func (s *session) boxIP(proto uint8, dst netip.Addr, payload []byte) {
	s.frame(ethernet(s.p.BoxMAC, s.p.HQMAC, etherIPv4, ipv4Bytes(s.p.Box, dst, proto, payload)))
}

// segOut sends a TCP segment box→broker at the current sequence number.
func (s *session) segOut(flags uint8, data []byte) {
	s.boxIP(protoTCP, s.p.HQ, tcpBytes(s.sport, s.p.BrokerPort, s.seqOut, s.seqIn, flags, data))
	s.seqOut += uint32(len(data))
	if flags&(tcpSYN|tcpFIN) != 0 {
		s.seqOut++
	}
}

func (s *session) segIn(flags uint8, data []byte) {
	s.frame(ethernet(s.p.HQMAC, s.p.BoxMAC, etherIPv4, ipv4Bytes(s.p.HQ, s.p.Box, protoTCP,
		tcpBytes(s.p.BrokerPort, s.sport, s.seqIn, s.seqOut, flags, data))))
	s.seqIn += uint32(len(data))
	if flags&(tcpSYN|tcpFIN) != 0 {
		s.seqIn++
	}
}

func (s *session) out(data []byte) { s.segOut(tcpPSH|tcpACK, data) }
func (s *session) in(data []byte)  { s.segIn(tcpPSH|tcpACK, data) }

func (s *session) status() string   { return s.p.statusTopic() }
func (s *session) footfall() string { return s.p.footfallTopic() }

func (s *session) arp() {
	s.frame(ethernet(s.p.BoxMAC, broadcast, etherARP, arpBytes(1, s.p.BoxMAC, s.p.Box, mac{}, s.p.HQ)))
	s.frame(ethernet(s.p.HQMAC, s.p.BoxMAC, etherARP, arpBytes(2, s.p.HQMAC, s.p.HQ, s.p.BoxMAC, s.p.Box)))
}

func (s *session) open() {
	s.segOut(tcpSYN, nil)
	s.segIn(tcpSYN|tcpACK, nil)
	s.segOut(tcpACK, nil)
}

func (s *session) connect(c connectPacket) {
	s.out(c.encode())
	s.in(mqttPacket{Type: mqttCONNACK, Body: []byte{0, 0}}.encode())
}

func (s *session) veilConnect() connectPacket {
	return connectPacket{KeepAlive: 30, ClientID: s.p.ClientID, Will: &will{Topic: s.status(), Message: []byte("offline"), QoS: 1, Retain: true}}
}

// publish sends a QoS 1 PUBLISH and the broker's PUBACK.
func (s *session) publish(topic string, payload []byte, retain bool) {
	id := s.nextID
	s.nextID++
	s.out(publishPacket{QoS: 1, Retain: retain, Topic: topic, PacketID: id, Payload: payload}.encode())
	s.in(idPacket(mqttPUBACK, id))
}

func (s *session) report(camera, line string, seq uint64) []byte {
	start := epoch.Add(time.Duration(seq) * 2 * time.Second)
	b, err := egress.Report{Device: s.p.Device, Store: s.p.Store, Camera: camera, Line: line,
		Start: start, End: start.Add(2 * time.Second), In: 1, Out: 2, Boot: 1, Seq: seq}.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

func (s *session) disconnect() {
	s.out(mqttPacket{Type: mqttDISCONNECT}.encode())
	s.segOut(tcpFIN|tcpACK, nil)
	s.segIn(tcpFIN|tcpACK, nil)
	s.segOut(tcpACK, nil)
}

// capture returns the session's frames as the proof sees them: written to
// a pcap file, read back and decoded.
func (s *session) capture(t *testing.T) []frame {
	t.Helper()
	var buf bytes.Buffer
	if err := writePcap(&buf, s.recs); err != nil {
		t.Fatal(err)
	}
	recs, err := readPcap(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var frames []frame
	for i, r := range recs {
		f, err := decodeFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		frames = append(frames, f)
	}
	return frames
}

func TestPolicy(t *testing.T) {
	dns := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}
	tests := []struct {
		name string
		// mid runs between the session's online status and its reports;
		// nil for a clean session.
		mid func(s *session)
		// connect replaces the session's CONNECT when set.
		connect func(s *session) connectPacket
		want    string // a substring of a violation; "" for none
	}{
		{name: "clean session"},
		{name: "mqtt redelivery and PINGREQ", mid: func(s *session) {
			p := publishPacket{QoS: 1, Topic: s.footfall(), PacketID: 99, Payload: s.report("cam", "road", 50)}.encode()
			s.out(p)
			p[0] |= 0x08 // no PUBACK yet: the client publishes it again with DUP set
			s.out(p)
			s.in(idPacket(mqttPUBACK, 99))
			s.out(mqttPacket{Type: mqttPINGREQ}.encode())
			s.in(mqttPacket{Type: mqttPINGRESP}.encode())
		}},
		{name: "tcp retransmission of the same bytes", mid: func(s *session) {
			p := publishPacket{QoS: 1, Topic: s.footfall(), PacketID: 98, Payload: s.report("cam", "door", 51)}.encode()
			s.out(p)
			s.seqOut -= uint32(len(p))
			s.out(p)
			s.in(idPacket(mqttPUBACK, 98))
		}},
		{name: "dns query", want: "UDP 10.231.7.1:53000 → 10.255.255.53:53 (29 bytes of payload); only 10.231.7.1 → 10.231.7.2 may leave", mid: func(s *session) {
			s.boxIP(protoUDP, netip.MustParseAddr("10.255.255.53"), udpBytes(53000, 53, dns))
		}},
		{name: "udp to the broker", want: "only TCP to the broker may leave", mid: func(s *session) {
			s.boxIP(protoUDP, s.p.HQ, udpBytes(123, 123, make([]byte, 48)))
		}},
		{name: "icmp to the broker", want: "protocol 1 (8 bytes); only TCP to the broker may leave", mid: func(s *session) {
			s.boxIP(protoICMP, s.p.HQ, []byte{8, 0, 0, 0, 0, 1, 0, 1})
		}},
		{name: "tcp to another port of the broker", want: "only TCP port 1883 may be reached", mid: func(s *session) {
			s.boxIP(protoTCP, s.p.HQ, tcpBytes(45001, 80, 1, 0, tcpSYN, nil))
		}},
		{name: "tcp to another host", want: "10.231.7.1:45002 → 93.184.216.34:443", mid: func(s *session) {
			s.boxIP(protoTCP, netip.MustParseAddr("93.184.216.34"), tcpBytes(45002, 443, 1, 0, tcpSYN, nil))
		}},
		{name: "spoofed source address", want: "only 10.231.7.1 → 10.231.7.2 may leave", mid: func(s *session) {
			s.frame(ethernet(s.p.BoxMAC, s.p.HQMAC, etherIPv4, ipv4Bytes(netip.MustParseAddr("10.231.7.3"), s.p.HQ, protoTCP, tcpBytes(1, 1883, 1, 0, tcpSYN, nil))))
		}},
		{name: "fragment", want: "is a fragment", mid: func(s *session) {
			b := ipv4Bytes(s.p.Box, s.p.HQ, protoTCP, tcpBytes(s.sport, 1883, 1, 0, tcpACK, []byte("x")))
			binary.BigEndian.PutUint16(b[6:], 0x2000)
			s.frame(ethernet(s.p.BoxMAC, s.p.HQMAC, etherIPv4, b))
		}},
		{name: "ipv6 router solicitation", want: "IPv6 fe80::1 → ff02::2 protocol 58", mid: func(s *session) {
			s.frame(ethernet(s.p.BoxMAC, mac{0x33, 0x33, 0, 0, 0, 2}, etherIPv6, ipv6Bytes(ip6A, ip6B, protoICMPv6, []byte{133, 0, 0, 0, 0, 0, 0, 0})))
		}},
		{name: "lldp", want: "EtherType 0x88cc from the box", mid: func(s *session) {
			s.frame(ethernet(s.p.BoxMAC, mac{0x01, 0x80, 0xc2, 0, 0, 0x0e}, 0x88cc, make([]byte, 40)))
		}},
		{name: "unknown source mac", want: "from unknown MAC 02:00:00:00:00:0a", mid: func(s *session) {
			s.frame(ethernet(macA, s.p.HQMAC, etherIPv4, ipv4Bytes(s.p.Box, s.p.HQ, protoTCP, tcpBytes(1, 1883, 1, 0, tcpSYN, nil))))
		}},
		{name: "data in ethernet padding", want: "non-zero bytes after the packet", mid: func(s *session) {
			s.frame(ethernet(s.p.BoxMAC, broadcast, etherARP, append(arpBytes(1, s.p.BoxMAC, s.p.Box, mac{}, s.p.HQ), "secret"...)))
		}},
		{name: "arp for another address", want: "ARP op 1", mid: func(s *session) {
			s.frame(ethernet(s.p.BoxMAC, broadcast, etherARP, arpBytes(1, s.p.BoxMAC, s.p.Box, mac{}, netip.MustParseAddr("10.231.7.3"))))
		}},
		{name: "ip to the broker's address at another mac", want: "not the broker's", mid: func(s *session) {
			s.frame(ethernet(s.p.BoxMAC, broadcast, etherIPv4, ipv4Bytes(s.p.Box, s.p.HQ, protoTCP, tcpBytes(s.sport, 1883, s.seqOut, 0, tcpACK, nil))))
		}},
		{name: "subscribe", want: `SUBSCRIBE to "cmd/#"; allowed only "veil/v1/shop/dev1/ack"`, mid: func(s *session) {
			s.out(mqttPacket{Type: mqttSUBSCRIBE, Flags: 2, Body: cat([]byte{0, 5}, putString(nil, []byte("cmd/#")), []byte{1})}.encode())
			s.in(mqttPacket{Type: mqttSUBACK, Body: []byte{0, 5, 1}}.encode())
		}},
		{name: "subscribe to the ack topic", mid: func(s *session) {
			s.out(mqttPacket{Type: mqttSUBSCRIBE, Flags: 2, Body: cat([]byte{0, 5}, putString(nil, []byte("veil/v1/shop/dev1/ack")), []byte{1})}.encode())
			s.in(mqttPacket{Type: mqttSUBACK, Body: []byte{0, 5, 1}}.encode())
		}},
		{name: "subscribe to the ack topic and more", want: "allowed exactly one filter", mid: func(s *session) {
			s.out(mqttPacket{Type: mqttSUBSCRIBE, Flags: 2, Body: cat([]byte{0, 5}, putString(nil, []byte("veil/v1/shop/dev1/ack")), []byte{1}, putString(nil, []byte("#")), []byte{0})}.encode())
			s.in(mqttPacket{Type: mqttSUBACK, Body: []byte{0, 5, 1, 0}}.encode())
		}},
		{name: "subscribe to another box's ack topic", want: `SUBSCRIBE to "veil/v1/shop/dev2/ack"`, mid: func(s *session) {
			s.out(mqttPacket{Type: mqttSUBSCRIBE, Flags: 2, Body: cat([]byte{0, 5}, putString(nil, []byte("veil/v1/shop/dev2/ack")), []byte{1})}.encode())
			s.in(mqttPacket{Type: mqttSUBACK, Body: []byte{0, 5, 1}}.encode())
		}},
		{name: "unsolicited puback", want: "answers no QoS 1 PUBLISH from the broker", mid: func(s *session) {
			s.out(idPacket(mqttPUBACK, 4242))
		}},
		{name: "puback answering the broker", mid: func(s *session) {
			s.in(publishPacket{QoS: 1, Topic: "cmd", PacketID: 4242, Payload: []byte("x")}.encode())
			s.out(idPacket(mqttPUBACK, 4242))
		}},
		{name: "pubrel", want: "the box may not send PUBREL", mid: func(s *session) {
			s.out(idPacket(mqttPUBREL, 1))
		}},
		{name: "qos 2 publish", want: "QoS 2; veil publishes at QoS 1", mid: func(s *session) {
			s.out(publishPacket{QoS: 2, Topic: s.footfall(), PacketID: 77, Payload: s.report("cam", "door", 77)}.encode())
		}},
		{name: "other topic", want: `topic "veil/v1/shop/dev1/frames"`, mid: func(s *session) {
			s.publish("veil/v1/shop/dev1/frames", []byte{0xff, 0xd8, 0xff}, false)
		}},
		{name: "other status", want: `status payload "degraded"`, mid: func(s *session) {
			s.publish(s.status(), []byte("degraded"), true)
		}},
		{name: "report with an extra field", want: `unknown field "jpeg"`, mid: func(s *session) {
			r := s.report("cam", "door", 60)
			s.publish(s.footfall(), append(r[:len(r)-1], `,"jpeg":"/9j/4AAQ"}`...), false)
		}},
		{name: "report for another camera", want: `camera "cam2"`, mid: func(s *session) {
			s.publish(s.footfall(), s.report("cam2", "door", 61), false)
		}},
		{name: "report for another line", want: `line "window"`, mid: func(s *session) {
			s.publish(s.footfall(), s.report("cam", "window", 62), false)
		}},
		{name: "report padded past the size bound", want: "footfall payload of 600 bytes", mid: func(s *session) {
			r := s.report("cam", "door", 63)
			s.publish(s.footfall(), append(r, bytes.Repeat([]byte(" "), 600-len(r))...), false)
		}},
		{name: "garbage between packets", want: "malformed MQTT", mid: func(s *session) {
			s.out([]byte("\x47ET / HTTP/1.1\r\n\r\n"))
		}},
		{name: "segment never captured", want: "gap", mid: func(s *session) {
			s.seqOut += 10
		}},
		{name: "retransmission with other bytes", want: "differs from the first transmission", mid: func(s *session) {
			p := mqttPacket{Type: mqttPINGREQ}.encode()
			s.out(p)
			s.seqOut -= 2
			s.out([]byte{0xc0, 0x01})
		}},
		{name: "second connect", want: "CONNECT again", mid: func(s *session) {
			s.connect(s.veilConnect())
		}},
		{name: "connect with a password", want: "user name or password", connect: func(s *session) connectPacket {
			c := s.veilConnect()
			u := "x"
			c.Username, c.Password = &u, []byte("pw")
			return c
		}},
		{name: "connect without a will", want: "no last will", connect: func(s *session) connectPacket {
			c := s.veilConnect()
			c.Will = nil
			return c
		}},
		{name: "will carrying data", want: `will "offline; count=3"`, connect: func(s *session) connectPacket {
			c := s.veilConnect()
			c.Will.Message = []byte("offline; count=3")
			return c
		}},
		{name: "another client id", want: `client id "veil-dev1-abc"`, connect: func(s *session) connectPacket {
			c := s.veilConnect()
			c.ClientID = "veil-dev1-abc"
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(testPolicy)
			s.arp()
			s.open()
			c := s.veilConnect()
			if tt.connect != nil {
				c = tt.connect(s)
			}
			s.connect(c)
			s.publish(s.status(), []byte("online"), true)
			if tt.mid != nil {
				tt.mid(s)
			}
			for i := range 4 {
				s.publish(s.footfall(), s.report("cam", testPolicy.Lines[i%2], uint64(i+1)), false)
			}
			s.publish(s.status(), []byte("offline"), true)
			s.disconnect()
			v := testPolicy.check(s.capture(t))
			if tt.want == "" {
				if len(v.Violations) != 0 {
					t.Fatalf("violations in a clean session:\n%s", strings.Join(v.Violations, "\n"))
				}
				if len(v.Reports) < 4 || v.StreamBytes != v.MQTTBytes || v.Conns != 1 {
					t.Errorf("summary:\n%s", v.summary())
				}
				return
			}
			for _, s := range v.Violations {
				if strings.Contains(s, tt.want) {
					return
				}
			}
			t.Errorf("no violation contains %q; got:\n%s", tt.want, strings.Join(v.Violations, "\n"))
		})
	}
}

func TestPolicyTwoConnections(t *testing.T) {
	s := newSession(testPolicy)
	s.arp()
	for range 2 { // a reconnect: a new source port, the same rules
		s.open()
		s.connect(s.veilConnect())
		s.publish(s.status(), []byte("online"), true)
		s.publish(s.footfall(), s.report("cam", "door", uint64(s.sport)), false)
		s.disconnect()
		s.sport++
	}
	// A third connection whose first packet is not CONNECT.
	s.open()
	s.publish(s.status(), []byte("online"), true)
	v := testPolicy.check(s.capture(t))
	if v.Conns != 3 || len(v.Reports) != 2 {
		t.Errorf("summary:\n%s", v.summary())
	}
	if len(v.Violations) != 1 || !strings.Contains(v.Violations[0], "the first packet is not CONNECT") {
		t.Errorf("violations %q, want one about the first packet", v.Violations)
	}
}
