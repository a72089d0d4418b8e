package ingest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/egress"
)

// boot identifies one boot of one box: an Ack answers for one.
type boot struct {
	store, device string
	boot          uint64
}

// answers collects a batch's acknowledgements: per boot, the seqs head
// office holds and those it refuses for good.
type answers map[boot]*answer

type answer struct {
	stored  []uint64
	refused map[uint64]string // seq → reason
}

func (a answers) get(r egress.Report) *answer {
	k := boot{r.Store, r.Device, r.Boot}
	x := a[k]
	if x == nil {
		x = &answer{refused: map[uint64]string{}}
		a[k] = x
	}
	return x
}

// stored notes that head office holds r.
func (a answers) stored(r egress.Report) { x := a.get(r); x.stored = append(x.stored, r.Seq) }

// refused notes that head office will never store r.
func (a answers) refused(r egress.Report, reason string) { a.get(r).refused[r.Seq] = reason }

// acks turns a into Acks issued at now, ordered by store, device and boot,
// none with more than ackItems ranges and refusals together. A seq both
// stored and refused (two copies in one batch) is stored: head office
// holds a report under its identity.
func (a answers) acks(now time.Time) []egress.Ack {
	keys := make([]boot, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y boot) int {
		return cmp.Or(cmp.Compare(x.store, y.store), cmp.Compare(x.device, y.device), cmp.Compare(x.boot, y.boot))
	})
	var out []egress.Ack
	for _, k := range keys {
		x := a[k]
		ranges := egress.AckRanges(x.stored)
		var refused []egress.Refusal
		for seq, reason := range x.refused {
			if !covered(ranges, seq) {
				refused = append(refused, egress.Refusal{Seq: seq, Reason: reason})
			}
		}
		slices.SortFunc(refused, func(p, q egress.Refusal) int { return cmp.Compare(p.Seq, q.Seq) })
		for len(ranges) > 0 || len(refused) > 0 {
			nr := min(len(ranges), ackItems)
			nf := min(len(refused), ackItems-nr)
			out = append(out, egress.Ack{V: egress.AckVersion, Device: k.device, Store: k.store, Boot: k.boot,
				Stored: ranges[:nr:nr], Refused: refused[:nf:nf], Issued: now.Unix()})
			ranges, refused = ranges[nr:], refused[nf:]
		}
	}
	return out
}

func covered(ranges []egress.SeqRange, seq uint64) bool {
	i, _ := slices.BinarySearchFunc(ranges, seq, func(r egress.SeqRange, s uint64) int { return cmp.Compare(r[1], s) })
	return i < len(ranges) && ranges[i][0] <= seq
}

// publishAcks signs and publishes acks (QoS 1) and waits, at most ackWait,
// for the broker to acknowledge them. Failures are counted and logged (at
// most once a minute): the box publishes its reports again and gets them
// acknowledged as repeats. It returns false if ctx ended first.
func (in *Ingest) publishAcks(ctx context.Context, acks []egress.Ack) bool {
	type sent struct {
		a   egress.Ack
		tok mqtt.Token
	}
	var pending []sent
	for _, a := range acks {
		b, err := a.Sign(in.o.Key)
		if err != nil { // cannot happen: acks builds valid ones
			in.ackFailed(a, fmt.Errorf("signing: %w", err))
			continue
		}
		topic := egress.AckTopic(in.o.MQTT.TopicPrefix, a.Store, a.Device)
		pending = append(pending, sent{a, in.client.Publish(topic, 1, false, b)})
	}
	wait, cancel := context.WithTimeout(ctx, ackWait)
	defer cancel()
	for _, p := range pending {
		var err error
		select {
		case <-p.tok.Done():
			err = p.tok.Error()
		case <-wait.Done():
			if ctx.Err() != nil {
				return false
			}
			err = fmt.Errorf("not acknowledged by the broker within %s", ackWait)
		}
		if err != nil {
			in.ackFailed(p.a, err)
			continue
		}
		in.m.acks.Inc()
		in.mu.Lock()
		in.st.Acks++
		in.mu.Unlock()
	}
	return true
}

func (in *Ingest) ackFailed(a egress.Ack, err error) {
	in.m.ackErrors.Inc()
	now := in.o.Now()
	in.mu.Lock()
	in.st.AckErrors++
	log := now.Sub(in.ackLogged) >= refuseLogEvery
	if log {
		in.ackLogged = now
	}
	in.mu.Unlock()
	if log {
		in.log.Warn("hq ingest: cannot publish an acknowledgement; the box will publish its reports again (further failures are not logged for a minute)",
			"store", a.Store, "device", a.Device, "boot", a.Boot, "err", err)
	}
}
