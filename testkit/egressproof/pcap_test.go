package egressproof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// A classic libpcap file reader and writer
// (https://www.tcpdump.org/manpages/pcap-savefile.5.txt) and a decoder for
// what can appear on an Ethernet link between two namespaces.

// linkTypeEthernet is LINKTYPE_ETHERNET, what tcpdump -i <veth> writes.
const linkTypeEthernet = 1

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	pcapHeaderLen  = 24
	pcapRecordLen  = 16
)

// errPcap is wrapped by every error about a malformed capture file.
var errPcap = errors.New("malformed pcap")

// record is one captured frame.
type record struct {
	TS      time.Time
	Data    []byte // the captured bytes
	OrigLen int    // the frame's length on the wire
}

// readPcap parses a whole classic pcap file of Ethernet frames. A record
// cut short (by a truncated file) is an error; so is a frame captured only
// in part (caplen < origlen), since the proof must see every byte.
func readPcap(b []byte) ([]record, error) {
	if len(b) < pcapHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte file header", errPcap, len(b), pcapHeaderLen)
	}
	var bo binary.ByteOrder
	var nano bool
	switch m := binary.LittleEndian.Uint32(b); m {
	case pcapMagicMicro:
		bo = binary.LittleEndian
	case pcapMagicNano:
		bo, nano = binary.LittleEndian, true
	default:
		switch binary.BigEndian.Uint32(b) {
		case pcapMagicMicro:
			bo = binary.BigEndian
		case pcapMagicNano:
			bo, nano = binary.BigEndian, true
		default:
			return nil, fmt.Errorf("%w: magic %#08x is not a classic pcap file (pcapng is not read)", errPcap, m)
		}
	}
	if major, minor := bo.Uint16(b[4:]), bo.Uint16(b[6:]); major != 2 || minor != 4 {
		return nil, fmt.Errorf("%w: version %d.%d, want 2.4", errPcap, major, minor)
	}
	snap := bo.Uint32(b[16:])
	if lt := bo.Uint32(b[20:]); lt != linkTypeEthernet {
		return nil, fmt.Errorf("%w: link type %d, want Ethernet (%d)", errPcap, lt, linkTypeEthernet)
	}
	var recs []record
	for off := pcapHeaderLen; off < len(b); {
		if len(b)-off < pcapRecordLen {
			return recs, fmt.Errorf("%w: record %d at offset %d: header cut short (%d bytes)", errPcap, len(recs), off, len(b)-off)
		}
		h := b[off : off+pcapRecordLen]
		sec, frac := bo.Uint32(h), bo.Uint32(h[4:])
		capLen, origLen := bo.Uint32(h[8:]), bo.Uint32(h[12:])
		off += pcapRecordLen
		if capLen > snap || capLen > uint32(len(b)-off) {
			return recs, fmt.Errorf("%w: record %d at offset %d: %d captured bytes, snaplen %d, %d left in the file", errPcap, len(recs), off-pcapRecordLen, capLen, snap, len(b)-off)
		}
		if capLen != origLen {
			return recs, fmt.Errorf("%w: record %d: captured %d of %d bytes; the proof needs whole frames", errPcap, len(recs), capLen, origLen)
		}
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		if ns >= 1e9 {
			return recs, fmt.Errorf("%w: record %d: sub-second part %d out of range", errPcap, len(recs), frac)
		}
		recs = append(recs, record{TS: time.Unix(int64(sec), ns).UTC(), Data: b[off : off+int(capLen)], OrigLen: int(origLen)})
		off += int(capLen)
	}
	return recs, nil
}

// writePcap writes frames as a little-endian microsecond pcap file of
// Ethernet frames (for tests of readPcap and of the policy).
func writePcap(w io.Writer, recs []record) error {
	h := make([]byte, pcapHeaderLen)
	binary.LittleEndian.PutUint32(h, pcapMagicMicro)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144)
	binary.LittleEndian.PutUint32(h[20:], linkTypeEthernet)
	if _, err := w.Write(h); err != nil {
		return err
	}
	for _, r := range recs {
		rh := make([]byte, pcapRecordLen)
		binary.LittleEndian.PutUint32(rh, uint32(r.TS.Unix()))
		binary.LittleEndian.PutUint32(rh[4:], uint32(r.TS.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(r.Data)))
		orig := r.OrigLen
		if orig == 0 {
			orig = len(r.Data)
		}
		binary.LittleEndian.PutUint32(rh[12:], uint32(orig))
		if _, err := w.Write(rh); err != nil {
			return err
		}
		if _, err := w.Write(r.Data); err != nil {
			return err
		}
	}
	return nil
}

// EtherTypes the decoder knows.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
)

// IP protocol numbers the decoder knows.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

type mac [6]byte

func (m mac) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// frame is one decoded Ethernet frame. Exactly one of ARP and IP is set
// when EtherType is ARP or IPv4/IPv6 and the frame decoded.
type frame struct {
	TS        time.Time
	Len       int // bytes on the wire
	Src, Dst  mac
	EtherType uint16
	Trailer   []byte // bytes after the IP packet (Ethernet padding)
	ARP       *arpPacket
	IP        *ipPacket
}

type arpPacket struct {
	Op                   uint16 // 1 request, 2 reply
	SenderMAC, TargetMAC mac
	SenderIP, TargetIP   netip.Addr
}

type ipPacket struct {
	Version  int
	Src, Dst netip.Addr
	Proto    uint8 // IPv4 protocol or the IPv6 next header
	Fragment bool  // an IPv4 fragment (MF set or offset ≠ 0)
	Payload  []byte
	TCP      *tcpSegment // when Proto is TCP and not a fragment
	UDP      *udpDatagram
}

type tcpSegment struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Payload          []byte
}

type udpDatagram struct {
	SrcPort, DstPort uint16
	Payload          []byte
}

// errDecode is wrapped by every error about a frame that does not decode.
var errDecode = errors.New("undecodable frame")

// decodeFrame decodes an Ethernet frame down to TCP or UDP. Unknown
// EtherTypes and IP protocols decode as far as they go without error (the
// policy rejects them); malformed headers are errors.
func decodeFrame(r record) (frame, error) {
	b := r.Data
	f := frame{TS: r.TS, Len: r.OrigLen}
	if len(b) < 14 {
		return f, fmt.Errorf("%w: %d bytes, shorter than an Ethernet header", errDecode, len(b))
	}
	copy(f.Dst[:], b[0:6])
	copy(f.Src[:], b[6:12])
	f.EtherType = binary.BigEndian.Uint16(b[12:])
	b = b[14:]
	switch f.EtherType {
	case etherARP:
		a, err := decodeARP(b)
		if err != nil {
			return f, err
		}
		f.ARP = &a
		f.Trailer = b[28:]
	case etherIPv4:
		p, n, err := decodeIPv4(b)
		if err != nil {
			return f, err
		}
		f.IP = &p
		f.Trailer = b[n:]
	case etherIPv6:
		p, n, err := decodeIPv6(b)
		if err != nil {
			return f, err
		}
		f.IP = &p
		f.Trailer = b[n:]
	}
	return f, nil
}

func decodeARP(b []byte) (arpPacket, error) {
	var a arpPacket
	if len(b) < 28 {
		return a, fmt.Errorf("%w: ARP: %d bytes, want 28", errDecode, len(b))
	}
	htype, ptype := binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	if htype != 1 || ptype != etherIPv4 || b[4] != 6 || b[5] != 4 {
		return a, fmt.Errorf("%w: ARP for hardware %d protocol %#04x (%d/%d-byte addresses), want Ethernet/IPv4", errDecode, htype, ptype, b[4], b[5])
	}
	a.Op = binary.BigEndian.Uint16(b[6:])
	copy(a.SenderMAC[:], b[8:14])
	a.SenderIP = netip.AddrFrom4([4]byte(b[14:18]))
	copy(a.TargetMAC[:], b[18:24])
	a.TargetIP = netip.AddrFrom4([4]byte(b[24:28]))
	return a, nil
}

// decodeIPv4 returns the packet and its total length.
func decodeIPv4(b []byte) (ipPacket, int, error) {
	p := ipPacket{Version: 4}
	if len(b) < 20 {
		return p, 0, fmt.Errorf("%w: IPv4: %d bytes, shorter than a header", errDecode, len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return p, 0, fmt.Errorf("%w: IPv4 EtherType with IP version %d", errDecode, v)
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total < ihl || total > len(b) {
		return p, 0, fmt.Errorf("%w: IPv4: header length %d, total length %d, %d bytes captured", errDecode, ihl, total, len(b))
	}
	fl := binary.BigEndian.Uint16(b[6:])
	p.Fragment = fl&0x2000 != 0 || fl&0x1fff != 0
	p.Proto = b[9]
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.Payload = b[ihl:total]
	if !p.Fragment {
		if err := p.decodeTransport(); err != nil {
			return p, 0, err
		}
	}
	return p, total, nil
}

// decodeIPv6 returns the packet and its total length. Extension headers
// are not walked: Proto is the first next header.
func decodeIPv6(b []byte) (ipPacket, int, error) {
	p := ipPacket{Version: 6}
	if len(b) < 40 {
		return p, 0, fmt.Errorf("%w: IPv6: %d bytes, shorter than a header", errDecode, len(b))
	}
	if v := b[0] >> 4; v != 6 {
		return p, 0, fmt.Errorf("%w: IPv6 EtherType with IP version %d", errDecode, v)
	}
	total := 40 + int(binary.BigEndian.Uint16(b[4:]))
	if total > len(b) {
		return p, 0, fmt.Errorf("%w: IPv6: payload length %d, %d bytes captured", errDecode, total-40, len(b)-40)
	}
	p.Proto = b[6]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	p.Payload = b[40:total]
	if err := p.decodeTransport(); err != nil {
		return p, 0, err
	}
	return p, total, nil
}

func (p *ipPacket) decodeTransport() error {
	b := p.Payload
	switch p.Proto {
	case protoTCP:
		if len(b) < 20 {
			return fmt.Errorf("%w: TCP: %d bytes, shorter than a header", errDecode, len(b))
		}
		off := int(b[12]>>4) * 4
		if off < 20 || off > len(b) {
			return fmt.Errorf("%w: TCP: data offset %d in a %d-byte segment", errDecode, off, len(b))
		}
		p.TCP = &tcpSegment{
			SrcPort: binary.BigEndian.Uint16(b), DstPort: binary.BigEndian.Uint16(b[2:]),
			Seq: binary.BigEndian.Uint32(b[4:]), Ack: binary.BigEndian.Uint32(b[8:]),
			Flags: b[13], Payload: b[off:],
		}
	case protoUDP:
		if len(b) < 8 {
			return fmt.Errorf("%w: UDP: %d bytes, shorter than a header", errDecode, len(b))
		}
		n := int(binary.BigEndian.Uint16(b[4:]))
		if n < 8 || n > len(b) {
			return fmt.Errorf("%w: UDP: length %d in a %d-byte payload", errDecode, n, len(b))
		}
		p.UDP = &udpDatagram{SrcPort: binary.BigEndian.Uint16(b), DstPort: binary.BigEndian.Uint16(b[2:]), Payload: b[8:n]}
	}
	return nil
}

// Frame builders for tests: they write what decodeFrame reads, with
// checksums left zero (the decoder does not check them: veth offloads them).

func ethernet(src, dst mac, etherType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b, dst[:])
	copy(b[6:], src[:])
	binary.BigEndian.PutUint16(b[12:], etherType)
	return append(b, payload...)
}

func arpBytes(op uint16, sm mac, sip netip.Addr, tm mac, tip netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b, 1)
	binary.BigEndian.PutUint16(b[2:], etherIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:], sm[:])
	s4, t4 := sip.As4(), tip.As4()
	copy(b[14:], s4[:])
	copy(b[18:], tm[:])
	copy(b[24:], t4[:])
	return b
}

func ipv4Bytes(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, payload...)
}

func ipv6Bytes(src, dst netip.Addr, next uint8, payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 255
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, payload...)
}

func tcpBytes(sport, dport uint16, seq, ack uint32, flags uint8, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240)
	return append(b, payload...)
}

func udpBytes(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}
