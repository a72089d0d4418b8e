package egressproof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// A strict MQTT 3.1.1 control packet parser
// (https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html):
// splitMQTT frames a byte stream into packets and checks each fixed header
// and its length against the packet type; parseConnect and parsePublish
// decode the two packets that carry data. Encoders are here for tests.

// MQTT control packet types (section 2.2.1).
const (
	mqttCONNECT     = 1
	mqttCONNACK     = 2
	mqttPUBLISH     = 3
	mqttPUBACK      = 4
	mqttPUBREC      = 5
	mqttPUBREL      = 6
	mqttPUBCOMP     = 7
	mqttSUBSCRIBE   = 8
	mqttSUBACK      = 9
	mqttUNSUBSCRIBE = 10
	mqttUNSUBACK    = 11
	mqttPINGREQ     = 12
	mqttPINGRESP    = 13
	mqttDISCONNECT  = 14
)

var mqttNames = [16]string{"reserved(0)", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved(15)"}

// maxRemainingLength is the largest Remaining Length four bytes encode.
const maxRemainingLength = 268_435_455

var (
	// errMQTT is wrapped by every error about a malformed MQTT packet.
	errMQTT = errors.New("malformed MQTT")
	// errMQTTShort means the stream ends inside a packet.
	errMQTTShort = errors.New("MQTT stream ends inside a packet")
)

// mqttPacket is one control packet: its fixed header's type and flags and
// the bytes after the fixed header (variable header and payload).
type mqttPacket struct {
	Type  byte
	Flags byte
	Body  []byte
	Size  int // bytes in the stream: fixed header + body
}

func (p mqttPacket) String() string { return mqttNames[p.Type&0x0f] }

// splitMQTT frames b into control packets. It returns the packets read and
// how many bytes they span; err is errMQTTShort (wrapped) when b ends
// inside a packet, another errMQTT error at the first malformed fixed
// header, and nil when the packets span all of b.
func splitMQTT(b []byte) ([]mqttPacket, int, error) {
	var pkts []mqttPacket
	n := 0
	for n < len(b) {
		p, err := readPacket(b[n:])
		if err != nil {
			return pkts, n, fmt.Errorf("packet %d at byte %d: %w", len(pkts), n, err)
		}
		pkts = append(pkts, p)
		n += p.Size
	}
	return pkts, n, nil
}

// readPacket reads the packet at the start of b.
func readPacket(b []byte) (mqttPacket, error) {
	var p mqttPacket
	if len(b) < 2 {
		return p, errMQTTShort
	}
	p.Type, p.Flags = b[0]>>4, b[0]&0x0f
	if p.Type == 0 || p.Type == 15 {
		return p, fmt.Errorf("%w: reserved packet type %d", errMQTT, p.Type)
	}
	rem, mult, i := 0, 1, 1
	for {
		if i > 4 {
			return p, fmt.Errorf("%w: %s: remaining length longer than 4 bytes", errMQTT, p)
		}
		if i == len(b) {
			return p, errMQTTShort
		}
		c := b[i]
		rem += int(c&0x7f) * mult
		mult *= 128
		i++
		if c&0x80 == 0 {
			if c == 0 && i > 2 {
				return p, fmt.Errorf("%w: %s: remaining length %d not in its shortest encoding", errMQTT, p, rem)
			}
			break
		}
	}
	if err := checkFixedHeader(p.Type, p.Flags, rem); err != nil {
		return p, err
	}
	if len(b)-i < rem {
		return p, errMQTTShort
	}
	p.Body = b[i : i+rem]
	p.Size = i + rem
	return p, nil
}

// checkFixedHeader checks the flags (section 2.2.2) and the remaining
// length each packet type allows.
func checkFixedHeader(typ, flags byte, rem int) error {
	name := mqttNames[typ]
	wantFlags := byte(0)
	switch typ {
	case mqttPUBLISH:
		if flags>>1&3 == 3 {
			return fmt.Errorf("%w: PUBLISH with QoS 3", errMQTT)
		}
		wantFlags = flags
	case mqttPUBREL, mqttSUBSCRIBE, mqttUNSUBSCRIBE:
		wantFlags = 0b0010
	}
	if flags != wantFlags {
		return fmt.Errorf("%w: %s with fixed header flags %04b, want %04b", errMQTT, name, flags, wantFlags)
	}
	var lo, hi int // allowed remaining length
	switch typ {
	case mqttCONNACK, mqttPUBACK, mqttPUBREC, mqttPUBREL, mqttPUBCOMP, mqttUNSUBACK:
		lo, hi = 2, 2
	case mqttPINGREQ, mqttPINGRESP, mqttDISCONNECT:
		lo, hi = 0, 0
	case mqttCONNECT:
		lo, hi = 12, maxRemainingLength // "MQTT", level, flags, keep alive, client id length
	case mqttPUBLISH:
		lo, hi = 3, maxRemainingLength // a one-byte topic
		if flags>>1&3 != 0 {
			lo += 2 // packet identifier
		}
	case mqttSUBSCRIBE:
		lo, hi = 6, maxRemainingLength // id, one one-byte filter, its QoS
	case mqttSUBACK:
		lo, hi = 3, maxRemainingLength
	case mqttUNSUBSCRIBE:
		lo, hi = 5, maxRemainingLength
	}
	if rem < lo || rem > hi {
		return fmt.Errorf("%w: %s with remaining length %d; allowed %d..%d", errMQTT, name, rem, lo, hi)
	}
	return nil
}

// packetID returns the identifier of a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (p mqttPacket) packetID() uint16 {
	if len(p.Body) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(p.Body)
}

// readString reads a length-prefixed UTF-8 string (section 1.5.3): valid
// UTF-8 with no U+0000.
func readString(b []byte, what string) (string, []byte, error) {
	raw, rest, err := readBinary(b, what)
	if err != nil {
		return "", b, err
	}
	s := string(raw)
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", b, fmt.Errorf("%w: %s %q is not valid MQTT UTF-8", errMQTT, what, s)
	}
	return s, rest, nil
}

// readBinary reads length-prefixed bytes.
func readBinary(b []byte, what string) ([]byte, []byte, error) {
	if len(b) < 2 {
		return nil, b, fmt.Errorf("%w: %s: no room for its length", errMQTT, what)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, b, fmt.Errorf("%w: %s: length %d, %d bytes left", errMQTT, what, n, len(b)-2)
	}
	return b[2 : 2+n], b[2+n:], nil
}

// will is a CONNECT's last will.
type will struct {
	Topic   string
	Message []byte
	QoS     byte
	Retain  bool
}

// connectPacket is a decoded CONNECT (section 3.1).
type connectPacket struct {
	CleanSession bool
	KeepAlive    uint16
	ClientID     string
	Will         *will
	Username     *string
	Password     []byte // nil: no password flag
}

// parseConnect decodes a CONNECT body strictly: protocol "MQTT" level 4,
// reserved flag clear, will QoS and retain only with a will, a password
// only with a user name, every byte of the body used.
func parseConnect(body []byte) (connectPacket, error) {
	var c connectPacket
	name, b, err := readString(body, "CONNECT protocol name")
	if err != nil {
		return c, err
	}
	if len(b) < 4 {
		return c, fmt.Errorf("%w: CONNECT cut short after the protocol name", errMQTT)
	}
	if level := b[0]; name != "MQTT" || level != 4 {
		return c, fmt.Errorf("%w: CONNECT protocol %q level %d, want \"MQTT\" level 4 (3.1.1)", errMQTT, name, level)
	}
	flags := b[1]
	c.KeepAlive = binary.BigEndian.Uint16(b[2:])
	b = b[4:]
	if flags&1 != 0 {
		return c, fmt.Errorf("%w: CONNECT reserved flag set", errMQTT)
	}
	c.CleanSession = flags&0x02 != 0
	hasWill, willQoS, willRetain := flags&0x04 != 0, flags>>3&3, flags&0x20 != 0
	hasPassword, hasUser := flags&0x40 != 0, flags&0x80 != 0
	switch {
	case willQoS == 3:
		return c, fmt.Errorf("%w: CONNECT will QoS 3", errMQTT)
	case !hasWill && (willQoS != 0 || willRetain):
		return c, fmt.Errorf("%w: CONNECT will QoS or retain without a will", errMQTT)
	case hasPassword && !hasUser:
		return c, fmt.Errorf("%w: CONNECT password without a user name", errMQTT)
	}
	if c.ClientID, b, err = readString(b, "CONNECT client id"); err != nil {
		return c, err
	}
	if hasWill {
		w := &will{QoS: willQoS, Retain: willRetain}
		if w.Topic, b, err = readString(b, "CONNECT will topic"); err != nil {
			return c, err
		}
		if w.Message, b, err = readBinary(b, "CONNECT will message"); err != nil {
			return c, err
		}
		c.Will = w
	}
	if hasUser {
		var u string
		if u, b, err = readString(b, "CONNECT user name"); err != nil {
			return c, err
		}
		c.Username = &u
	}
	if hasPassword {
		if c.Password, b, err = readBinary(b, "CONNECT password"); err != nil {
			return c, err
		}
	}
	if len(b) != 0 {
		return c, fmt.Errorf("%w: CONNECT has %d bytes after its last field", errMQTT, len(b))
	}
	return c, nil
}

// publishPacket is a decoded PUBLISH (section 3.3).
type publishPacket struct {
	Dup, Retain bool
	QoS         byte
	Topic       string
	PacketID    uint16 // QoS 1 and 2 only
	Payload     []byte
}

// parsePublish decodes a PUBLISH from its fixed header flags and body: a
// non-empty topic without wildcards, DUP only at QoS > 0, a non-zero
// packet identifier at QoS > 0.
func parsePublish(flags byte, body []byte) (publishPacket, error) {
	p := publishPacket{Dup: flags&0x08 != 0, QoS: flags >> 1 & 3, Retain: flags&1 != 0}
	if p.QoS == 3 {
		return p, fmt.Errorf("%w: PUBLISH with QoS 3", errMQTT)
	}
	if p.Dup && p.QoS == 0 {
		return p, fmt.Errorf("%w: PUBLISH with DUP at QoS 0", errMQTT)
	}
	var err error
	b := body
	if p.Topic, b, err = readString(b, "PUBLISH topic"); err != nil {
		return p, err
	}
	if p.Topic == "" || strings.ContainsAny(p.Topic, "+#") {
		return p, fmt.Errorf("%w: PUBLISH topic %q is empty or has a wildcard", errMQTT, p.Topic)
	}
	if p.QoS > 0 {
		if len(b) < 2 {
			return p, fmt.Errorf("%w: PUBLISH at QoS %d without a packet identifier", errMQTT, p.QoS)
		}
		p.PacketID = binary.BigEndian.Uint16(b)
		if p.PacketID == 0 {
			return p, fmt.Errorf("%w: PUBLISH at QoS %d with packet identifier 0", errMQTT, p.QoS)
		}
		b = b[2:]
	}
	p.Payload = b
	return p, nil
}

// Encoders, for tests.

func encodeRemainingLength(n int) []byte {
	var b []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func (p mqttPacket) encode() []byte {
	b := append([]byte{p.Type<<4 | p.Flags}, encodeRemainingLength(len(p.Body))...)
	return append(b, p.Body...)
}

func putString(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (c connectPacket) encode() []byte {
	b := putString(nil, []byte("MQTT"))
	var flags byte
	if c.CleanSession {
		flags |= 0x02
	}
	if c.Will != nil {
		flags |= 0x04 | c.Will.QoS<<3
		if c.Will.Retain {
			flags |= 0x20
		}
	}
	if c.Password != nil {
		flags |= 0x40
	}
	if c.Username != nil {
		flags |= 0x80
	}
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, c.KeepAlive)
	b = putString(b, []byte(c.ClientID))
	if c.Will != nil {
		b = putString(b, []byte(c.Will.Topic))
		b = putString(b, c.Will.Message)
	}
	if c.Username != nil {
		b = putString(b, []byte(*c.Username))
	}
	if c.Password != nil {
		b = putString(b, c.Password)
	}
	return mqttPacket{Type: mqttCONNECT, Body: b}.encode()
}

func (p publishPacket) encode() []byte {
	flags := p.QoS << 1
	if p.Dup {
		flags |= 0x08
	}
	if p.Retain {
		flags |= 1
	}
	b := putString(nil, []byte(p.Topic))
	if p.QoS > 0 {
		b = binary.BigEndian.AppendUint16(b, p.PacketID)
	}
	b = append(b, p.Payload...)
	return mqttPacket{Type: mqttPUBLISH, Flags: flags, Body: b}.encode()
}

// idPacket encodes a PUBACK, PUBREC, PUBREL or PUBCOMP.
func idPacket(typ byte, id uint16) []byte {
	flags := byte(0)
	if typ == mqttPUBREL {
		flags = 0b0010
	}
	return mqttPacket{Type: typ, Flags: flags, Body: binary.BigEndian.AppendUint16(nil, id)}.encode()
}
