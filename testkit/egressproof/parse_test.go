package egressproof

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Tests of the parsers the proof relies on, on hand-built bytes.

var (
	macA  = mac{0x02, 0, 0, 0, 0, 0x0a}
	macB  = mac{0x02, 0, 0, 0, 0, 0x0b}
	ipA   = netip.MustParseAddr("10.0.0.1")
	ipB   = netip.MustParseAddr("10.0.0.2")
	ip6A  = netip.MustParseAddr("fe80::1")
	ip6B  = netip.MustParseAddr("ff02::2")
	epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
)

func pcapHeader(order binary.ByteOrder, magic uint32, major, minor uint16, snap, link uint32) []byte {
	b := make([]byte, pcapHeaderLen)
	order.PutUint32(b, magic)
	order.PutUint16(b[4:], major)
	order.PutUint16(b[6:], minor)
	order.PutUint32(b[16:], snap)
	order.PutUint32(b[20:], link)
	return b
}

func pcapRecord(order binary.ByteOrder, sec, frac uint32, data []byte, orig int) []byte {
	b := make([]byte, pcapRecordLen)
	order.PutUint32(b, sec)
	order.PutUint32(b[4:], frac)
	order.PutUint32(b[8:], uint32(len(data)))
	order.PutUint32(b[12:], uint32(orig))
	return append(b, data...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestReadPcap(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	f1 := []byte("0123456789abcdef")
	f2 := []byte("xyz")
	tests := []struct {
		name    string
		file    []byte
		want    []record
		wantErr string
	}{
		{"header only", pcapHeader(le, pcapMagicMicro, 2, 4, 65535, 1), nil, ""},
		{"little endian microseconds", cat(pcapHeader(le, pcapMagicMicro, 2, 4, 65535, 1),
			pcapRecord(le, 100, 250, f1, len(f1)), pcapRecord(le, 101, 0, f2, len(f2))),
			[]record{{time.Unix(100, 250_000).UTC(), f1, len(f1)}, {time.Unix(101, 0).UTC(), f2, len(f2)}}, ""},
		{"big endian nanoseconds", cat(pcapHeader(be, pcapMagicNano, 2, 4, 65535, 1), pcapRecord(be, 7, 999_999_999, f2, len(f2))),
			[]record{{time.Unix(7, 999_999_999).UTC(), f2, len(f2)}}, ""},
		{"too short", []byte{0xd4, 0xc3, 0xb2, 0xa1}, nil, "shorter than the 24-byte file header"},
		{"pcapng", cat([]byte{0x0a, 0x0d, 0x0d, 0x0a}, make([]byte, 20)), nil, "not a classic pcap file"},
		{"version", pcapHeader(le, pcapMagicMicro, 2, 3, 65535, 1), nil, "version 2.3"},
		{"linux cooked link type", pcapHeader(le, pcapMagicMicro, 2, 4, 65535, 113), nil, "link type 113"},
		{"record header cut", cat(pcapHeader(le, pcapMagicMicro, 2, 4, 65535, 1), make([]byte, 10)), nil, "header cut short"},
		{"record data cut", cat(pcapHeader(le, pcapMagicMicro, 2, 4, 65535, 1), pcapRecord(le, 1, 0, f1, len(f1))[:pcapRecordLen+5]), nil, "left in the file"},
		{"over snaplen", cat(pcapHeader(le, pcapMagicMicro, 2, 4, 8, 1), pcapRecord(le, 1, 0, f1, len(f1))), nil, "snaplen 8"},
		{"partial frame", cat(pcapHeader(le, pcapMagicMicro, 2, 4, 65535, 1), pcapRecord(le, 1, 0, f2, 60)), nil, "captured 3 of 60 bytes"},
		{"microseconds out of range", cat(pcapHeader(le, pcapMagicMicro, 2, 4, 65535, 1), pcapRecord(le, 1, 1_000_000, f2, len(f2))), nil, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readPcap(tt.file)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errPcap) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want errPcap containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d records, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].TS.Equal(tt.want[i].TS) || !bytes.Equal(got[i].Data, tt.want[i].Data) || got[i].OrigLen != tt.want[i].OrigLen {
					t.Errorf("record %d = %v %q %d, want %v %q %d", i, got[i].TS, got[i].Data, got[i].OrigLen, tt.want[i].TS, tt.want[i].Data, tt.want[i].OrigLen)
				}
			}
		})
	}
}

func TestWritePcapRoundTrip(t *testing.T) {
	in := []record{
		{TS: epoch, Data: ethernet(macA, macB, etherIPv4, ipv4Bytes(ipA, ipB, protoTCP, tcpBytes(1, 2, 3, 4, tcpACK, []byte("hi"))))},
		{TS: epoch.Add(1500 * time.Microsecond), Data: ethernet(macB, broadcast, etherARP, arpBytes(1, macB, ipB, mac{}, ipA))},
	}
	var buf bytes.Buffer
	if err := writePcap(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := readPcap(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d records, want %d", len(out), len(in))
	}
	for i := range in {
		if !out[i].TS.Equal(in[i].TS) || !bytes.Equal(out[i].Data, in[i].Data) || out[i].OrigLen != len(in[i].Data) {
			t.Errorf("record %d differs after a round trip", i)
		}
	}
}

func TestDecodeFrame(t *testing.T) {
	tcpSeg := tcpBytes(40000, 1883, 1000, 2000, tcpPSH|tcpACK, []byte("payload"))
	fragment := ipv4Bytes(ipA, ipB, protoUDP, udpBytes(1, 2, []byte("x")))
	binary.BigEndian.PutUint16(fragment[6:], 0x2000) // MF
	badIHL := ipv4Bytes(ipA, ipB, protoTCP, tcpSeg)
	badIHL[0] = 0x44
	badOffset := ipv4Bytes(ipA, ipB, protoTCP, tcpSeg)
	badOffset[20+12] = 15 << 4
	longTotal := ipv4Bytes(ipA, ipB, protoTCP, tcpSeg)
	binary.BigEndian.PutUint16(longTotal[2:], 2000)
	badUDPLen := ipv4Bytes(ipA, ipB, protoUDP, udpBytes(53, 53, []byte("q")))
	binary.BigEndian.PutUint16(badUDPLen[20+4:], 100)
	rarp := arpBytes(1, macA, ipA, mac{}, ipB)
	binary.BigEndian.PutUint16(rarp, 6) // IEEE 802 hardware

	tests := []struct {
		name    string
		data    []byte
		check   func(t *testing.T, f frame)
		wantErr string
	}{
		{"ipv4 tcp", ethernet(macA, macB, etherIPv4, ipv4Bytes(ipA, ipB, protoTCP, tcpSeg)), func(t *testing.T, f frame) {
			if f.Src != macA || f.Dst != macB || f.IP == nil || f.IP.TCP == nil {
				t.Fatalf("decoded %+v", f)
			}
			s := f.IP.TCP
			if f.IP.Src != ipA || f.IP.Dst != ipB || s.SrcPort != 40000 || s.DstPort != 1883 || s.Seq != 1000 || s.Ack != 2000 ||
				s.Flags != tcpPSH|tcpACK || string(s.Payload) != "payload" || len(f.Trailer) != 0 {
				t.Errorf("decoded %+v %+v", f.IP, s)
			}
		}, ""},
		{"ipv4 udp with ethernet padding", ethernet(macA, macB, etherIPv4, append(ipv4Bytes(ipA, ipB, protoUDP, udpBytes(5353, 5353, []byte("m"))), 0, 0, 0)), func(t *testing.T, f frame) {
			if f.IP == nil || f.IP.UDP == nil || f.IP.UDP.DstPort != 5353 || string(f.IP.UDP.Payload) != "m" || len(f.Trailer) != 3 {
				t.Errorf("decoded %+v", f)
			}
		}, ""},
		{"ipv6 icmpv6", ethernet(macA, macB, etherIPv6, ipv6Bytes(ip6A, ip6B, protoICMPv6, []byte{133, 0, 0, 0, 0, 0, 0, 0})), func(t *testing.T, f frame) {
			if f.IP == nil || f.IP.Version != 6 || f.IP.Src != ip6A || f.IP.Dst != ip6B || f.IP.Proto != protoICMPv6 || f.IP.TCP != nil || f.IP.UDP != nil {
				t.Errorf("decoded %+v", f.IP)
			}
		}, ""},
		{"ipv6 udp", ethernet(macA, macB, etherIPv6, ipv6Bytes(ip6A, ip6B, protoUDP, udpBytes(546, 547, []byte("dhcp")))), func(t *testing.T, f frame) {
			if f.IP == nil || f.IP.UDP == nil || f.IP.UDP.DstPort != 547 {
				t.Errorf("decoded %+v", f.IP)
			}
		}, ""},
		{"arp", ethernet(macA, broadcast, etherARP, arpBytes(1, macA, ipA, mac{}, ipB)), func(t *testing.T, f frame) {
			if a := f.ARP; a == nil || a.Op != 1 || a.SenderMAC != macA || a.SenderIP != ipA || a.TargetIP != ipB || a.TargetMAC != (mac{}) {
				t.Errorf("decoded %+v", f.ARP)
			}
		}, ""},
		{"ipv4 fragment not decoded further", ethernet(macA, macB, etherIPv4, fragment), func(t *testing.T, f frame) {
			if f.IP == nil || !f.IP.Fragment || f.IP.UDP != nil {
				t.Errorf("decoded %+v", f.IP)
			}
		}, ""},
		{"unknown ethertype", ethernet(macA, macB, 0x88cc, []byte("lldp")), func(t *testing.T, f frame) {
			if f.EtherType != 0x88cc || f.IP != nil || f.ARP != nil {
				t.Errorf("decoded %+v", f)
			}
		}, ""},
		{"short ethernet", []byte{1, 2, 3}, nil, "shorter than an Ethernet header"},
		{"short arp", ethernet(macA, macB, etherARP, make([]byte, 10)), nil, "ARP: 10 bytes"},
		{"arp not ethernet/ipv4", ethernet(macA, macB, etherARP, rarp), nil, "want Ethernet/IPv4"},
		{"short ipv4", ethernet(macA, macB, etherIPv4, make([]byte, 19)), nil, "shorter than a header"},
		{"ipv6 in ipv4 ethertype", ethernet(macA, macB, etherIPv4, ipv6Bytes(ip6A, ip6B, protoUDP, udpBytes(1, 2, nil))), nil, "IP version 6"},
		{"bad ihl", ethernet(macA, macB, etherIPv4, badIHL), nil, "header length 16"},
		{"total length past the frame", ethernet(macA, macB, etherIPv4, longTotal), nil, "total length 2000"},
		{"tcp data offset", ethernet(macA, macB, etherIPv4, badOffset), nil, "data offset 60"},
		{"short tcp", ethernet(macA, macB, etherIPv4, ipv4Bytes(ipA, ipB, protoTCP, make([]byte, 12))), nil, "TCP: 12 bytes"},
		{"udp length", ethernet(macA, macB, etherIPv4, badUDPLen), nil, "UDP: length 100"},
		{"ipv6 payload length", ethernet(macA, macB, etherIPv6, ipv6Bytes(ip6A, ip6B, protoUDP, udpBytes(1, 2, nil))[:44]), nil, "payload length 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := decodeFrame(record{TS: epoch, Data: tt.data, OrigLen: len(tt.data)})
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errDecode) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want errDecode containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f)
		})
	}
}

func TestStream(t *testing.T) {
	const isn = 0xfffffff0 // the stream's sequence numbers wrap
	seg := func(flags uint8, rel int, data string) *tcpSegment {
		return &tcpSegment{Seq: uint32(isn + 1 + rel), Flags: flags, Payload: []byte(data)}
	}
	syn := &tcpSegment{Seq: isn, Flags: tcpSYN}
	tests := []struct {
		name    string
		segs    []*tcpSegment
		want    string
		wantErr string // from add or bytes
	}{
		{"in order", []*tcpSegment{syn, seg(tcpACK, 0, "hello "), seg(tcpACK, 6, "world"), seg(tcpFIN|tcpACK, 11, "")}, "hello world", ""},
		{"out of order", []*tcpSegment{syn, seg(tcpACK, 6, "world"), seg(tcpACK, 0, "hello ")}, "hello world", ""},
		{"duplicate", []*tcpSegment{syn, seg(tcpACK, 0, "hello "), seg(tcpACK, 0, "hello "), seg(tcpACK, 6, "world")}, "hello world", ""},
		{"overlapping retransmission", []*tcpSegment{syn, seg(tcpACK, 0, "hel"), seg(tcpACK, 0, "hello wo"), seg(tcpACK, 6, "world")}, "hello world", ""},
		{"contained retransmission", []*tcpSegment{syn, seg(tcpACK, 0, "hello world"), seg(tcpACK, 3, "lo")}, "hello world", ""},
		{"syn retransmitted", []*tcpSegment{syn, syn, seg(tcpACK, 0, "x")}, "x", ""},
		{"data on the syn", []*tcpSegment{{Seq: isn, Flags: tcpSYN, Payload: []byte("fast ")}, seg(tcpACK, 5, "open")}, "fast open", ""},
		{"empty", []*tcpSegment{syn, seg(tcpACK, 0, "")}, "", ""},
		{"gap", []*tcpSegment{syn, seg(tcpACK, 0, "hello "), seg(tcpACK, 7, "orld")}, "", "gap: bytes 6..7 never captured"},
		{"retransmission differs", []*tcpSegment{syn, seg(tcpACK, 0, "hello "), seg(tcpACK, 0, "HELLO world")}, "", "differs"},
		{"data before syn", []*tcpSegment{seg(tcpACK, 0, "hi")}, "", "before any SYN"},
		{"data before the first byte", []*tcpSegment{syn, {Seq: isn - 5, Flags: tcpACK, Payload: []byte("old")}}, "", "before the first data byte"},
		{"second isn", []*tcpSegment{syn, {Seq: 7, Flags: tcpSYN}}, "", "second SYN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &stream{Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:1883")}
			var err error
			for _, sg := range tt.segs {
				if err = s.add(sg); err != nil {
					break
				}
			}
			var got []byte
			if err == nil {
				got, err = s.bytes()
			}
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errStream) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want errStream containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("stream = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConnsReuse(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:1883")
	var cs conns
	steps := []struct {
		src, dst netip.AddrPort
		seg      tcpSegment
	}{
		{a, b, tcpSegment{Seq: 100, Flags: tcpSYN}},
		{b, a, tcpSegment{Seq: 900, Ack: 101, Flags: tcpSYN | tcpACK}},
		{a, b, tcpSegment{Seq: 101, Flags: tcpACK, Payload: []byte("one")}},
		{b, a, tcpSegment{Seq: 901, Flags: tcpACK, Payload: []byte("ack")}},
		{a, b, tcpSegment{Seq: 100, Flags: tcpSYN}}, // SYN retransmitted: same connection
		{a, b, tcpSegment{Seq: 104, Flags: tcpFIN | tcpACK}},
		{a, b, tcpSegment{Seq: 5000, Flags: tcpSYN}}, // the 4-tuple reused
		{a, b, tcpSegment{Seq: 5001, Flags: tcpACK, Payload: []byte("two")}},
	}
	for i, s := range steps {
		if err := cs.add(s.src, s.dst, &s.seg); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if len(cs.all) != 2 {
		t.Fatalf("%d connections, want 2", len(cs.all))
	}
	for i, want := range []string{"one", "two"} {
		got, err := cs.all[i].Out.bytes()
		if err != nil || string(got) != want {
			t.Errorf("connection %d: %q, %v; want %q", i, got, err, want)
		}
	}
	if got, _ := cs.all[0].In.bytes(); string(got) != "ack" {
		t.Errorf("connection 0 reply %q, want %q", got, "ack")
	}
}

func TestRemainingLength(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}}, {127, []byte{0x7f}}, {128, []byte{0x80, 0x01}}, {16_383, []byte{0xff, 0x7f}},
		{16_384, []byte{0x80, 0x80, 0x01}}, {2_097_151, []byte{0xff, 0xff, 0x7f}},
		{2_097_152, []byte{0x80, 0x80, 0x80, 0x01}}, {maxRemainingLength, []byte{0xff, 0xff, 0xff, 0x7f}},
	} {
		if got := encodeRemainingLength(tt.n); !bytes.Equal(got, tt.want) {
			t.Errorf("encodeRemainingLength(%d) = % x, want % x", tt.n, got, tt.want)
		}
		// A PUBLISH header with that length parses up to the body.
		hdr := append([]byte{mqttPUBLISH << 4}, tt.want...)
		if _, err := readPacket(hdr); tt.n >= 3 && !errors.Is(err, errMQTTShort) {
			t.Errorf("PUBLISH header with remaining length %d: %v, want errMQTTShort", tt.n, err)
		}
	}
}

func TestSplitMQTT(t *testing.T) {
	user := "u"
	veilConnect := connectPacket{KeepAlive: 30, ClientID: "veil-box", Will: &will{Topic: "veil/v1/s/d/status", Message: []byte("offline"), QoS: 1, Retain: true}}.encode()
	pub := publishPacket{QoS: 1, Retain: true, Topic: "veil/v1/s/d/status", PacketID: 1, Payload: []byte("online")}.encode()
	big := publishPacket{Topic: "t", Payload: bytes.Repeat([]byte{'x'}, 20_000)}.encode()
	ping := mqttPacket{Type: mqttPINGREQ}.encode()
	disc := mqttPacket{Type: mqttDISCONNECT}.encode()
	tests := []struct {
		name      string
		in        []byte
		wantTypes []byte
		wantN     int    // bytes spanned; -1: len(in)
		wantErr   string // "short" for errMQTTShort
	}{
		{"empty", nil, nil, 0, ""},
		{"veil session", cat(veilConnect, pub, idPacket(mqttPUBACK, 3), ping, disc),
			[]byte{mqttCONNECT, mqttPUBLISH, mqttPUBACK, mqttPINGREQ, mqttDISCONNECT}, -1, ""},
		{"three-byte remaining length", cat(big, ping), []byte{mqttPUBLISH, mqttPINGREQ}, -1, ""},
		{"every fixed-size type", cat(mqttPacket{Type: mqttCONNACK, Body: []byte{0, 0}}.encode(), idPacket(mqttPUBREC, 1),
			idPacket(mqttPUBREL, 1), idPacket(mqttPUBCOMP, 1), mqttPacket{Type: mqttPINGRESP}.encode(),
			mqttPacket{Type: mqttUNSUBACK, Body: []byte{0, 9}}.encode()),
			[]byte{mqttCONNACK, mqttPUBREC, mqttPUBREL, mqttPUBCOMP, mqttPINGRESP, mqttUNSUBACK}, -1, ""},
		{"subscribe", mqttPacket{Type: mqttSUBSCRIBE, Flags: 2, Body: []byte{0, 1, 0, 1, '#', 0}}.encode(), []byte{mqttSUBSCRIBE}, -1, ""},
		{"connect with credentials", connectPacket{ClientID: "c", Username: &user, Password: []byte("p")}.encode(), []byte{mqttCONNECT}, -1, ""},
		{"trailing partial header", cat(ping, []byte{0x30}), []byte{mqttPINGREQ}, 2, "short"},
		{"trailing partial body", cat(ping, pub[:len(pub)-1]), []byte{mqttPINGREQ}, 2, "short"},
		{"trailing partial remaining length", cat(ping, []byte{0x30, 0x80}), []byte{mqttPINGREQ}, 2, "short"},
		{"garbage after packets", cat(disc, []byte("GET / HTTP/1.1\r\n")), []byte{mqttDISCONNECT}, 2, "fixed header flags"},
		{"reserved type 0", []byte{0x00, 0x00}, nil, 0, "reserved packet type 0"},
		{"reserved type 15", []byte{0xf0, 0x00}, nil, 0, "reserved packet type 15"},
		{"five-byte remaining length", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, nil, 0, "longer than 4 bytes"},
		{"five-byte remaining length cut", []byte{0x30, 0xff, 0xff, 0xff, 0xff}, nil, 0, "longer than 4 bytes"},
		{"non-minimal remaining length", []byte{0xc0, 0x80, 0x00}, nil, 0, "shortest encoding"},
		{"publish qos 3", []byte{0x36, 0x05, 0, 1, 't', 0, 1}, nil, 0, "QoS 3"},
		{"pubrel flags 0", []byte{0x60, 0x02, 0, 1}, nil, 0, "flags 0000, want 0010"},
		{"subscribe flags 0", []byte{0x80, 0x06, 0, 1, 0, 1, 't', 0}, nil, 0, "flags 0000, want 0010"},
		{"pingreq with flags", []byte{0xc1, 0x00}, nil, 0, "flags 0001"},
		{"pingreq with body", []byte{0xc0, 0x01, 0x00}, nil, 0, "remaining length 1; allowed 0..0"},
		{"puback too long", []byte{0x40, 0x03, 0, 1, 2}, nil, 0, "remaining length 3; allowed 2..2"},
		{"connect too short", []byte{0x10, 0x02, 0, 0}, nil, 0, "allowed 12.."},
		{"qos 1 publish without room for an id", []byte{0x32, 0x03, 0, 1, 't'}, nil, 0, "allowed 5.."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts, n, err := splitMQTT(tt.in)
			switch {
			case tt.wantErr == "short":
				if !errors.Is(err, errMQTTShort) {
					t.Errorf("err = %v, want errMQTTShort", err)
				}
			case tt.wantErr != "":
				if err == nil || !errors.Is(err, errMQTT) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want errMQTT containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			}
			want := tt.wantN
			if want < 0 {
				want = len(tt.in)
			}
			if n != want {
				t.Errorf("spans %d bytes, want %d", n, want)
			}
			var types []byte
			for _, p := range pkts {
				types = append(types, p.Type)
			}
			if !bytes.Equal(types, tt.wantTypes) {
				t.Errorf("types %v, want %v", types, tt.wantTypes)
			}
		})
	}
}

func TestParseConnect(t *testing.T) {
	user := "head-office"
	body := func(c connectPacket) []byte {
		p, err := readPacket(c.encode())
		if err != nil {
			t.Fatal(err)
		}
		return p.Body
	}
	// raw builds a body field by field.
	raw := func(name string, level, flags byte, fields ...string) []byte {
		b := putString(nil, []byte(name))
		b = append(b, level, flags, 0, 30)
		for _, f := range fields {
			b = putString(b, []byte(f))
		}
		return b
	}
	veil := connectPacket{KeepAlive: 30, ClientID: "veil-box", Will: &will{Topic: "veil/v1/s/d/status", Message: []byte("offline"), QoS: 1, Retain: true}}
	tests := []struct {
		name    string
		body    []byte
		want    *connectPacket
		wantErr string
	}{
		{"veil's connect", body(veil), &veil, ""},
		{"credentials and clean session", body(connectPacket{CleanSession: true, ClientID: "x", Username: &user, Password: []byte{0, 1, 2}}),
			&connectPacket{CleanSession: true, ClientID: "x", Username: &user, Password: []byte{0, 1, 2}}, ""},
		{"empty client id", raw("MQTT", 4, 0x02, ""), &connectPacket{CleanSession: true, KeepAlive: 30}, ""},
		{"mqtt 3.1", raw("MQIsdp", 3, 0, "c"), nil, `protocol "MQIsdp" level 3`},
		{"mqtt 5", raw("MQTT", 5, 0, "c"), nil, "level 5"},
		{"reserved flag", raw("MQTT", 4, 0x01, "c"), nil, "reserved flag"},
		{"will qos 3", raw("MQTT", 4, 0x1c, "c", "t", "m"), nil, "will QoS 3"},
		{"will retain without will", raw("MQTT", 4, 0x20, "c"), nil, "without a will"},
		{"will qos without will", raw("MQTT", 4, 0x08, "c"), nil, "without a will"},
		{"password without user", raw("MQTT", 4, 0x40, "c", "p"), nil, "password without a user name"},
		{"will missing", raw("MQTT", 4, 0x04, "c"), nil, "will topic: no room"},
		{"client id too long", append(raw("MQTT", 4, 0), 0, 9, 'a'), nil, "client id: length 9"},
		{"invalid utf-8", raw("MQTT", 4, 0, "\xff"), nil, "not valid MQTT UTF-8"},
		{"nul in client id", raw("MQTT", 4, 0, "a\x00b"), nil, "not valid MQTT UTF-8"},
		{"bytes after the fields", append(raw("MQTT", 4, 0, "c"), 'x'), nil, "1 bytes after its last field"},
		{"cut after protocol name", putString(nil, []byte("MQTT")), nil, "cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConnect(tt.body)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errMQTT) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want errMQTT containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.encode(), tt.want.encode()) {
				t.Errorf("parsed %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func TestParsePublish(t *testing.T) {
	tests := []struct {
		name    string
		pkt     []byte
		want    publishPacket
		wantErr string
	}{
		{"qos 1 retained", publishPacket{QoS: 1, Retain: true, Topic: "a/b", PacketID: 7, Payload: []byte("online")}.encode(),
			publishPacket{QoS: 1, Retain: true, Topic: "a/b", PacketID: 7, Payload: []byte("online")}, ""},
		{"qos 0 empty payload", publishPacket{Topic: "a"}.encode(), publishPacket{Topic: "a", Payload: []byte{}}, ""},
		{"dup qos 1", publishPacket{Dup: true, QoS: 1, Topic: "a", PacketID: 1, Payload: []byte("x")}.encode(),
			publishPacket{Dup: true, QoS: 1, Topic: "a", PacketID: 1, Payload: []byte("x")}, ""},
		{"dup at qos 0", []byte{0x38, 0x03, 0, 1, 'a'}, publishPacket{}, "DUP at QoS 0"},
		{"packet id 0", []byte{0x32, 0x05, 0, 1, 'a', 0, 0}, publishPacket{}, "packet identifier 0"},
		{"wildcard topic", publishPacket{Topic: "a/+/b"}.encode(), publishPacket{}, "wildcard"},
		{"empty topic", []byte{0x30, 0x03, 0, 0, 'x'}, publishPacket{}, "empty"},
		{"topic longer than the packet", []byte{0x30, 0x03, 0, 5, 'x'}, publishPacket{}, "length 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := readPacket(tt.pkt)
			if err == nil {
				var got publishPacket
				got, err = parsePublish(p.Flags, p.Body)
				if err == nil && tt.wantErr == "" {
					if !bytes.Equal(got.encode(), tt.want.encode()) || got.Topic != tt.want.Topic || !bytes.Equal(got.Payload, tt.want.Payload) {
						t.Errorf("parsed %+v, want %+v", got, tt.want)
					}
					return
				}
			}
			if tt.wantErr == "" {
				t.Fatal(err)
			}
			if err == nil || !errors.Is(err, errMQTT) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want errMQTT containing %q", err, tt.wantErr)
			}
		})
	}
}
