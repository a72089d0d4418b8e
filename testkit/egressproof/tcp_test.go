package egressproof

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// errStream is wrapped by every error about a TCP byte stream that cannot
// be rebuilt exactly.
var errStream = errors.New("tcp stream")

// stream is one direction of one TCP connection, rebuilt from captured
// segments by sequence number.
type stream struct {
	Src, Dst netip.AddrPort
	SYN      bool   // the SYN was seen; ISN is set
	ISN      uint32 // initial sequence number
	FIN, RST bool

	DataSegments int // segments that carried payload, retransmissions included
	WireBytes    int // payload bytes on the wire, retransmissions included

	segs []chunk
}

type chunk struct {
	off  int64 // from the first data byte (ISN+1)
	data []byte
}

// add records one segment of this direction.
func (s *stream) add(t *tcpSegment) error {
	if t.Flags&tcpSYN != 0 {
		if s.SYN && t.Seq != s.ISN {
			return fmt.Errorf("%w %s→%s: second SYN with ISN %d, first %d", errStream, s.Src, s.Dst, t.Seq, s.ISN)
		}
		s.SYN, s.ISN = true, t.Seq
	}
	if t.Flags&tcpFIN != 0 {
		s.FIN = true
	}
	if t.Flags&tcpRST != 0 {
		s.RST = true
	}
	if len(t.Payload) == 0 {
		return nil
	}
	s.DataSegments++
	s.WireBytes += len(t.Payload)
	if !s.SYN {
		return fmt.Errorf("%w %s→%s: %d bytes of data before any SYN (a connection that began before the capture?)", errStream, s.Src, s.Dst, len(t.Payload))
	}
	start := t.Seq
	if t.Flags&tcpSYN != 0 {
		start++ // data on a SYN starts after it
	}
	off := int64(int32(start - (s.ISN + 1)))
	if off < 0 {
		return fmt.Errorf("%w %s→%s: data at sequence %d, before the first data byte %d", errStream, s.Src, s.Dst, start, s.ISN+1)
	}
	s.segs = append(s.segs, chunk{off, t.Payload})
	return nil
}

// bytes returns the stream's payload from its first byte, each byte once.
// A gap (a byte never captured) is an error, and so is a retransmission
// whose bytes differ from what was sent first at that position.
func (s *stream) bytes() ([]byte, error) {
	segs := append([]chunk(nil), s.segs...)
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].off < segs[j].off })
	var buf []byte
	for _, c := range segs {
		n := int64(len(buf))
		if c.off > n {
			return buf, fmt.Errorf("%w %s→%s: gap: bytes %d..%d never captured", errStream, s.Src, s.Dst, n, c.off)
		}
		end := c.off + int64(len(c.data))
		overlap := min(end, n) - c.off
		if !bytes.Equal(buf[c.off:c.off+overlap], c.data[:overlap]) {
			return buf, fmt.Errorf("%w %s→%s: retransmission at byte %d differs from the first transmission", errStream, s.Src, s.Dst, c.off)
		}
		buf = append(buf, c.data[overlap:]...)
	}
	return buf, nil
}

// conn is one TCP connection: Out is from the side that sent the first SYN.
type conn struct {
	Out, In *stream
}

// conns tracks TCP connections by their 4-tuple; a new SYN on a 4-tuple
// whose connection ended (or with a new ISN) starts a new connection.
type conns struct {
	all    []*conn
	byFlow map[[2]netip.AddrPort]*conn
}

// add files seg (src→dst) under its connection. Segments of a connection
// whose opening SYN was not captured make a connection without SYN, which
// stream.add rejects as soon as they carry data.
func (cs *conns) add(src, dst netip.AddrPort, seg *tcpSegment) error {
	if cs.byFlow == nil {
		cs.byFlow = map[[2]netip.AddrPort]*conn{}
	}
	key, rkey := [2]netip.AddrPort{src, dst}, [2]netip.AddrPort{dst, src}
	c := cs.byFlow[key]
	if c == nil {
		c = cs.byFlow[rkey]
	}
	opening := seg.Flags&(tcpSYN|tcpACK) == tcpSYN
	if c != nil && opening && c.Out.Src == src && c.Out.SYN && (c.Out.ISN != seg.Seq || c.Out.FIN || c.Out.RST || c.In.RST) {
		c = nil // the 4-tuple is reused by a new connection
	}
	if c == nil {
		c = &conn{Out: &stream{Src: src, Dst: dst}, In: &stream{Src: dst, Dst: src}}
		cs.all = append(cs.all, c)
		cs.byFlow[key] = c
		delete(cs.byFlow, rkey)
	}
	if c.Out.Src == src {
		return c.Out.add(seg)
	}
	return c.In.add(seg)
}
