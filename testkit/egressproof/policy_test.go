package egressproof

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/veil-edge/veil/egress"
)

// policy is the egress rule: what the box may put on its one link.
//
//   - Ethernet frames from the box carry ARP or IPv4, nothing else (no IPv6,
//     no other EtherType), and any padding after the packet is zeros.
//   - ARP only between the box's and the broker's addresses.
//   - IPv4 only from the box's address to the broker's, TCP only (no UDP:
//     no DNS, NTP, mDNS; no ICMP), only to the broker's port, unfragmented.
//   - Every TCP connection is captured from its SYN, and the box's byte
//     stream, rebuilt by sequence number, is MQTT 3.1.1 packets end to end
//     with no byte left over: one CONNECT first (client id as configured,
//     no credentials when none are configured, the will offline on the
//     status topic), then only PUBLISH at QoS 0 or 1, PINGREQ, and a final
//     DISCONNECT; a PUBACK, PUBREC or PUBCOMP only answering a PUBLISH or
//     PUBREL the broker sent on that connection. SUBSCRIBE only to the
//     box's acknowledgement topic <prefix>/<store>/<device>/ack, exactly
//     that one filter (no wildcard) at QoS 0 or 1, when head office's key
//     is configured (AckTopic); it carries nothing but that topic. Never
//     UNSUBSCRIBE.
//   - A PUBLISH goes to <prefix>/<store>/<device>/status with payload
//     exactly online or offline, or to …/footfall with a payload shorter
//     than MaxReport that egress.ParseReport accepts, naming the
//     configured store, device and camera and one of its lines.
type policy struct {
	BoxMAC, HQMAC mac
	Box, HQ       netip.Addr
	BrokerPort    uint16
	ClientID      string
	Prefix        string
	Store, Device string
	Camera        string
	Lines         []string
	MaxReport     int // a footfall payload must be shorter than this
	// AckTopic is the one topic the box may subscribe to (head office's
	// acknowledgements); empty: no SUBSCRIBE at all.
	AckTopic string
	// BoxKey, when set, is the box's public key: every report must carry a
	// signature that verifies with it (and nothing else new).
	BoxKey ed25519.PublicKey
}

func (p policy) statusTopic() string {
	return p.Prefix + "/" + p.Store + "/" + p.Device + "/status"
}

func (p policy) footfallTopic() string {
	return p.Prefix + "/" + p.Store + "/" + p.Device + "/footfall"
}

// verdict is what policy.check found in a capture.
type verdict struct {
	Frames, BoxFrames, HQFrames int
	BoxWireBytes                int            // Ethernet bytes the box sent
	ARP                         int            // ARP frames the box sent
	Conns                       int            // TCP connections the box opened
	SegmentBytes                int            // TCP payload box→broker, retransmissions included
	StreamBytes                 int            // TCP payload box→broker, each byte once
	MQTTBytes                   int            // bytes of the box's MQTT packets
	Packets                     map[string]int // box→broker MQTT packets by type
	HQPackets                   map[string]int // broker→box MQTT packets by type
	Publishes                   map[string]int // box PUBLISH packets by topic
	PublishFlags                map[string]int // box PUBLISH packets by topic kind, QoS and flags
	Connects                    []string       // each CONNECT, described
	Statuses                    []string       // status payloads in order
	Subscribes                  []string       // topic filters the box subscribed to
	Reports                     []egress.Report
	MaxReportLen                int
	Violations                  []string
}

func (v *verdict) fail(format string, args ...any) {
	v.Violations = append(v.Violations, fmt.Sprintf(format, args...))
}

// summary is a few lines for the test log.
func (v *verdict) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "frames: %d (box sent %d, %d bytes on the wire, %d ARP; broker side sent %d)\n",
		v.Frames, v.BoxFrames, v.BoxWireBytes, v.ARP, v.HQFrames)
	fmt.Fprintf(&b, "tcp: %d connection(s) box→broker, %d payload bytes (%d with retransmissions), %d bytes in MQTT packets\n",
		v.Conns, v.StreamBytes, v.SegmentBytes, v.MQTTBytes)
	fmt.Fprintf(&b, "mqtt box→broker: %s\n", counts(v.Packets))
	fmt.Fprintf(&b, "mqtt broker→box: %s\n", counts(v.HQPackets))
	fmt.Fprintf(&b, "publishes by topic: %s\n", counts(v.Publishes))
	fmt.Fprintf(&b, "publish flags: %s\n", counts(v.PublishFlags))
	for _, c := range v.Connects {
		fmt.Fprintf(&b, "connect: %s\n", c)
	}
	fmt.Fprintf(&b, "status payloads: %s; footfall reports: %d (largest %d bytes)", strings.Join(v.Statuses, ", "), len(v.Reports), v.MaxReportLen)
	return b.String()
}

func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, " ")
}

var broadcast = mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// check applies p to a capture of the box's link, in capture order.
func (p policy) check(frames []frame) *verdict {
	v := &verdict{Packets: map[string]int{}, HQPackets: map[string]int{}, Publishes: map[string]int{}, PublishFlags: map[string]int{}}
	var cs conns
	for i, f := range frames {
		v.Frames++
		switch f.Src {
		case p.BoxMAC:
			v.BoxFrames++
			v.BoxWireBytes += f.Len
			p.checkOutgoing(i, f, &cs, v)
		case p.HQMAC:
			v.HQFrames++
			if ip := f.IP; ip != nil && ip.TCP != nil && ip.Src == p.HQ && ip.Dst == p.Box {
				if err := cs.add(netip.AddrPortFrom(ip.Src, ip.TCP.SrcPort), netip.AddrPortFrom(ip.Dst, ip.TCP.DstPort), ip.TCP); err != nil {
					v.fail("frame %d (broker→box): %v", i, err)
				}
			}
		default:
			// Only the two namespaces are on this link, so a frame from any
			// other address was sent by the box under another MAC.
			v.fail("frame %d: from unknown MAC %s to %s, EtherType %#04x, %d bytes", i, f.Src, f.Dst, f.EtherType, f.Len)
		}
	}
	for _, c := range cs.all {
		if c.Out.Src.Addr() != p.Box {
			continue // opened by the broker side; anything the box sent on it broke the port rule above
		}
		v.Conns++
		p.checkConn(c, v)
	}
	return v
}

func (p policy) checkOutgoing(i int, f frame, cs *conns, v *verdict) {
	if len(bytes.Trim(f.Trailer, "\x00")) != 0 {
		v.fail("frame %d: %d non-zero bytes after the packet", i, len(f.Trailer))
	}
	switch {
	case f.ARP != nil:
		v.ARP++
		a := f.ARP
		ok := a.SenderMAC == p.BoxMAC && a.SenderIP == p.Box && a.TargetIP == p.HQ
		switch a.Op {
		case 1: // request: broadcast, or unicast to confirm the broker's address
			ok = ok && (f.Dst == broadcast || f.Dst == p.HQMAC) && (a.TargetMAC == mac{} || a.TargetMAC == p.HQMAC)
		case 2:
			ok = ok && f.Dst == p.HQMAC && a.TargetMAC == p.HQMAC
		default:
			ok = false
		}
		if !ok {
			v.fail("frame %d: ARP op %d %s/%s → %s/%s (Ethernet to %s); allowed only between %s and %s",
				i, a.Op, a.SenderMAC, a.SenderIP, a.TargetMAC, a.TargetIP, f.Dst, p.Box, p.HQ)
		}
	case f.IP != nil:
		ip := f.IP
		desc := fmt.Sprintf("IPv%d %s → %s protocol %d (%d bytes)", ip.Version, ip.Src, ip.Dst, ip.Proto, len(ip.Payload))
		switch {
		case ip.TCP != nil:
			desc = fmt.Sprintf("IPv%d TCP %s → %s (%d bytes of payload)", ip.Version,
				netip.AddrPortFrom(ip.Src, ip.TCP.SrcPort), netip.AddrPortFrom(ip.Dst, ip.TCP.DstPort), len(ip.TCP.Payload))
		case ip.UDP != nil:
			desc = fmt.Sprintf("IPv%d UDP %s → %s (%d bytes of payload)", ip.Version,
				netip.AddrPortFrom(ip.Src, ip.UDP.SrcPort), netip.AddrPortFrom(ip.Dst, ip.UDP.DstPort), len(ip.UDP.Payload))
		}
		switch {
		case ip.Version != 4:
			v.fail("frame %d: %s; only IPv4 to the broker may leave", i, desc)
		case ip.Src != p.Box || ip.Dst != p.HQ:
			v.fail("frame %d: %s; only %s → %s may leave", i, desc, p.Box, p.HQ)
		case ip.Fragment:
			v.fail("frame %d: %s is a fragment", i, desc)
		case ip.TCP == nil:
			v.fail("frame %d: %s; only TCP to the broker may leave", i, desc)
		case ip.TCP.DstPort != p.BrokerPort:
			v.fail("frame %d: %s; only TCP port %d may be reached", i, desc, p.BrokerPort)
		case f.Dst != p.HQMAC:
			v.fail("frame %d: %s sent to Ethernet %s, not the broker's %s", i, desc, f.Dst, p.HQMAC)
		default:
			v.SegmentBytes += len(ip.TCP.Payload)
			if err := cs.add(netip.AddrPortFrom(ip.Src, ip.TCP.SrcPort), netip.AddrPortFrom(ip.Dst, ip.TCP.DstPort), ip.TCP); err != nil {
				v.fail("frame %d: %v", i, err)
			}
		}
	default:
		v.fail("frame %d: EtherType %#04x from the box (%d bytes); only ARP and IPv4 may leave", i, f.EtherType, f.Len)
	}
}

// checkConn checks the MQTT session on one connection the box opened.
func (p policy) checkConn(c *conn, v *verdict) {
	name := c.Out.Src.String() + "→" + c.Out.Dst.String()
	// What the broker sent decides which acknowledgements the box may send.
	hqPublish := map[byte]map[uint16]bool{1: {}, 2: {}} // by QoS
	hqPubrel := map[uint16]bool{}
	if in, err := c.In.bytes(); err != nil {
		v.fail("%s: broker side: %v", name, err)
	} else {
		pkts, _, err := splitMQTT(in)
		if err != nil {
			v.fail("%s: broker side: %v", name, err)
		}
		for _, pk := range pkts {
			v.HQPackets[pk.String()]++
			switch pk.Type {
			case mqttPUBLISH:
				if pub, err := parsePublish(pk.Flags, pk.Body); err == nil && pub.QoS > 0 {
					hqPublish[pub.QoS][pub.PacketID] = true
				}
			case mqttPUBREL:
				hqPubrel[pk.packetID()] = true
			}
		}
	}
	out, err := c.Out.bytes()
	v.StreamBytes += len(out)
	if err != nil {
		v.fail("%s: %v", name, err)
		return
	}
	pkts, n, err := splitMQTT(out)
	v.MQTTBytes += n
	if err != nil {
		v.fail("%s: %d of %d bytes are MQTT packets, then: %v", name, n, len(out), err)
	}
	for j, pk := range pkts {
		v.Packets[pk.String()]++
		where := fmt.Sprintf("%s: packet %d (%s)", name, j, pk)
		if j == 0 && pk.Type != mqttCONNECT {
			v.fail("%s: the first packet is not CONNECT", where)
		}
		switch pk.Type {
		case mqttCONNECT:
			if j != 0 {
				v.fail("%s: CONNECT again on one connection", where)
			}
			p.checkConnect(where, pk, v)
		case mqttPUBLISH:
			p.checkPublish(where, pk, v)
		case mqttSUBSCRIBE:
			p.checkSubscribe(where, pk, v)
		case mqttPINGREQ:
		case mqttDISCONNECT:
			if j != len(pkts)-1 {
				v.fail("%s: %d packets after DISCONNECT", where, len(pkts)-1-j)
			}
		case mqttPUBACK, mqttPUBREC:
			qos := byte(1)
			if pk.Type == mqttPUBREC {
				qos = 2
			}
			if !hqPublish[qos][pk.packetID()] {
				v.fail("%s: id %d answers no QoS %d PUBLISH from the broker", where, pk.packetID(), qos)
			}
		case mqttPUBCOMP:
			if !hqPubrel[pk.packetID()] {
				v.fail("%s: id %d answers no PUBREL from the broker", where, pk.packetID())
			}
		default: // UNSUBSCRIBE, PUBREL (veil never publishes at QoS 2) and broker-only types
			v.fail("%s: the box may not send %s", where, pk)
		}
	}
}

func (p policy) checkConnect(where string, pk mqttPacket, v *verdict) {
	c, err := parseConnect(pk.Body)
	if err != nil {
		v.fail("%s: %v", where, err)
		return
	}
	desc := fmt.Sprintf("client id %q, clean session %t, keep alive %ds", c.ClientID, c.CleanSession, c.KeepAlive)
	if w := c.Will; w != nil {
		desc += fmt.Sprintf(", will %q on %s (QoS %d, retain %t)", w.Message, w.Topic, w.QoS, w.Retain)
	}
	v.Connects = append(v.Connects, desc)
	if c.ClientID != p.ClientID {
		v.fail("%s: client id %q, configured %q", where, c.ClientID, p.ClientID)
	}
	if c.Username != nil || c.Password != nil {
		v.fail("%s: sends a user name or password, none is configured", where)
	}
	switch w := c.Will; {
	case w == nil:
		v.fail("%s: no last will", where)
	case w.Topic != p.statusTopic() || string(w.Message) != egress.StatusOffline:
		v.fail("%s: will %q on %q, want %q on %q", where, w.Message, w.Topic, egress.StatusOffline, p.statusTopic())
	}
}

// checkSubscribe allows one form of SUBSCRIBE: a packet id and exactly
// the filter AckTopic at QoS 0 or 1.
func (p policy) checkSubscribe(where string, pk mqttPacket, v *verdict) {
	if p.AckTopic == "" {
		v.fail("%s: the box may not send %s (no acknowledgement topic configured)", where, pk)
		return
	}
	if len(pk.Body) < 2 {
		v.fail("%s: SUBSCRIBE without a packet id", where)
		return
	}
	filter, rest, err := readString(pk.Body[2:], "topic filter")
	switch {
	case err != nil:
		v.fail("%s: %v", where, err)
	case filter != p.AckTopic:
		v.fail("%s: SUBSCRIBE to %q; allowed only %q", where, filter, p.AckTopic)
	case len(rest) != 1 || rest[0] > 1:
		v.fail("%s: SUBSCRIBE to %q followed by %d bytes; allowed exactly one filter at QoS 0 or 1", where, filter, len(rest))
	default:
		v.Subscribes = append(v.Subscribes, filter)
	}
}

func (p policy) checkPublish(where string, pk mqttPacket, v *verdict) {
	pub, err := parsePublish(pk.Flags, pk.Body)
	if err != nil {
		v.fail("%s: %v", where, err)
		return
	}
	v.Publishes[pub.Topic]++
	kind := "other"
	if i := strings.LastIndexByte(pub.Topic, '/'); i >= 0 {
		kind = pub.Topic[i+1:]
	}
	v.PublishFlags[fmt.Sprintf("%s(qos%d,retain=%t,dup=%t)", kind, pub.QoS, pub.Retain, pub.Dup)]++
	if pub.QoS > 1 {
		v.fail("%s: QoS %d; veil publishes at QoS 1", where, pub.QoS)
	}
	switch pub.Topic {
	case p.statusTopic():
		s := string(pub.Payload)
		if s != egress.StatusOnline && s != egress.StatusOffline {
			v.fail("%s: status payload %q (%d bytes), want %q or %q", where, truncate(pub.Payload), len(pub.Payload), egress.StatusOnline, egress.StatusOffline)
			return
		}
		v.Statuses = append(v.Statuses, s)
	case p.footfallTopic():
		v.MaxReportLen = max(v.MaxReportLen, len(pub.Payload))
		if len(pub.Payload) >= p.MaxReport {
			v.fail("%s: footfall payload of %d bytes; a report is under %d", where, len(pub.Payload), p.MaxReport)
		}
		r, err := egress.ParseReport(pub.Payload)
		if err != nil {
			v.fail("%s: footfall payload %q: %v", where, truncate(pub.Payload), err)
			return
		}
		if p.BoxKey != nil {
			if err := r.Verify(p.BoxKey); err != nil {
				v.fail("%s: report boot %d seq %d: %v", where, r.Boot, r.Seq, err)
			}
		}
		if r.Store != p.Store || r.Device != p.Device || r.Camera != p.Camera || !slices.Contains(p.Lines, r.Line) {
			v.fail("%s: report for store %q device %q camera %q line %q; configured %q %q %q %q",
				where, r.Store, r.Device, r.Camera, r.Line, p.Store, p.Device, p.Camera, p.Lines)
		}
		v.Reports = append(v.Reports, r)
	default:
		v.fail("%s: topic %q; allowed %q and %q", where, pub.Topic, p.statusTopic(), p.footfallTopic())
	}
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
