package ingest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/testkit/mqtttest"
)

// ackLog is a subscriber on every box's ack topic, as a box would be on
// its own: it keeps the Acks that verify with head office's public key and
// the errors of anything else.
type ackLog struct {
	mu   sync.Mutex
	acks []egress.Ack
	bad  []string
}

func watchAcks(t testing.TB, b *mqtttest.Broker) *ackLog {
	t.Helper()
	l := &ackLog{}
	c := client(t, b, "ack-watcher")
	pub := hqKey.Public().(ed25519.PublicKey)
	tok := c.Subscribe(egress.AckTopic(egress.DefaultTopicPrefix, "+", "+"), 1, func(_ mqtt.Client, m mqtt.Message) {
		a, err := egress.ParseAck(m.Payload(), pub)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err == nil && m.Topic() != egress.AckTopic(egress.DefaultTopicPrefix, a.Store, a.Device) {
			err = fmt.Errorf("ack for %s/%s on %s", a.Store, a.Device, m.Topic())
		}
		if err != nil {
			l.bad = append(l.bad, fmt.Sprintf("%s: %v: %s", m.Topic(), err, m.Payload()))
			return
		}
		l.acks = append(l.acks, a)
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing to acks: %v", tok.Error())
	}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, b := range l.bad {
			t.Errorf("not a valid Ack: %s", b)
		}
	})
	return l
}

// of returns the Acks received for a device's boot.
func (l *ackLog) of(st, device string, boot uint64) []egress.Ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []egress.Ack
	for _, a := range l.acks {
		if a.Store == st && a.Device == device && a.Boot == boot {
			out = append(out, a)
		}
	}
	return out
}

// covers reports whether the Acks received for r's boot name r's seq.
func (l *ackLog) covers(r egress.Report) bool {
	for _, a := range l.of(r.Store, r.Device, r.Boot) {
		if a.Covers(r.Seq) {
			return true
		}
	}
	return false
}

func (l *ackLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks = nil
}

// union folds a boot's Acks into the seqs stored and the reason of each
// refused one.
func union(acks []egress.Ack) (stored []uint64, refused map[uint64]string) {
	refused = map[uint64]string{}
	for _, a := range acks {
		for _, r := range a.Stored {
			for q := r[0]; q <= r[1]; q++ {
				stored = append(stored, q)
			}
		}
		for _, x := range a.Refused {
			refused[x.Seq] = x.Reason
		}
	}
	slices.Sort(stored)
	return slices.Compact(stored), refused
}

func device(t testing.TB, st store.Store, shop, dev string) store.Device {
	t.Helper()
	ds, err := st.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Store == shop && d.Device == dev {
			return d
		}
	}
	return store.Device{}
}

// TestReportsRefusedOrStored: one message per case, on a real mosquitto,
// after the reports of before. A report that is not its box's (unsigned,
// forged, unregistered, misplaced, replayed on another box's topic) is
// refused: counted by reason, logged, nothing stored, and no Ack names it.
// A genuine report that head office will never store (absurd, too long,
// from the future, conflicting with a stored one) is refused the same way
// and its box gets an Ack refusing it. Anything else is stored and
// acknowledged as stored, unsigned ones from an allowed device marked so.
func TestReportsRefusedOrStored(t *testing.T) {
	good := report("shop-a", "box-1", 1, 5, 3)
	with := func(r egress.Report, edit func(*egress.Report)) egress.Report { edit(&r); return r }
	forger := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), 7))
	signedWith := func(key ed25519.PrivateKey) func(testing.TB, egress.Report) []byte {
		return func(t testing.TB, r egress.Report) []byte {
			b, err := r.Sign(key)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	const noAck, ackStored = "", "stored"
	for _, tc := range []struct {
		name     string
		allowed  []string // Options.Unsigned
		before   []egress.Report
		r        egress.Report
		topic    string                                 // default: r's own footfall topic
		payload  func(testing.TB, egress.Report) []byte // default: signed with r's device's key
		reason   string                                 // refused for this reason; "" stored
		unsigned bool                                   // stored as unsigned
		ack      string                                 // noAck, ackStored or the Refusal's reason
	}{
		{name: "signed by its box", r: good, ack: ackStored},
		{name: "forged: signed with another key", r: good, payload: signedWith(forger), reason: reasonBadSignature},
		{name: "forged: counts changed after signing", r: good, reason: reasonBadSignature,
			payload: func(t testing.TB, r egress.Report) []byte {
				return []byte(strings.Replace(string(signed(t, r)), `"in":3`, `"in":300`, 1))
			}},
		{name: "unsigned", r: good, payload: marshal, reason: reasonUnsigned},
		{name: "unsigned and absurd", r: with(good, func(r *egress.Report) { r.In = 4_000_000_000 }), payload: marshal, reason: reasonUnsigned},
		{name: "unknown device", r: with(good, func(r *egress.Report) { r.Device = "box-7" }), reason: reasonUnknown},
		{name: "registered in another store", r: with(good, func(r *egress.Report) { r.Device = "box-2" }), reason: reasonWrongStore},
		{name: "replayed from another device", r: good, topic: egress.DefaultTopicPrefix + "/shop-b/box-2/footfall", reason: reasonReplayed},
		{name: "replayed into another store", r: good, topic: egress.DefaultTopicPrefix + "/shop-z/box-1/footfall", reason: reasonReplayed},
		{name: "4,000,000,000 people in 15 minutes", reason: reasonImplausible, ack: reasonImplausible,
			r: with(good, func(r *egress.Report) {
				r.End = r.Start.Add(15 * time.Minute)
				r.In, r.Out = 2_000_000_000, 2_000_000_000
			})},
		{name: "9001 people in 15 minutes", reason: reasonImplausible, ack: reasonImplausible,
			r: with(good, func(r *egress.Report) { r.End = r.Start.Add(15 * time.Minute); r.In, r.Out = 4501, 4500 })},
		{name: "9000 people in 15 minutes", ack: ackStored,
			r: with(good, func(r *egress.Report) { r.End = r.Start.Add(15 * time.Minute); r.In, r.Out = 4500, 4500 })},
		{name: "a 2-day window", reason: reasonImplausible, ack: reasonImplausible,
			r: with(good, func(r *egress.Report) { r.End = r.Start.Add(48 * time.Hour) })},
		{name: "a window ending in the future", reason: reasonFuture,
			r: with(good, func(r *egress.Report) { r.Start, r.End = now, now.Add(time.Hour) })},
		{name: "a window ending within the clock skew allowance", ack: ackStored,
			r: with(good, func(r *egress.Report) { r.Start, r.End = now.Add(-time.Minute), now.Add(2*time.Minute) })},
		{name: "a one-second partial window", ack: ackStored,
			r: with(good, func(r *egress.Report) { r.End = r.Start.Add(time.Second); r.In, r.Out = 9, 6 })},
		{name: "identical repeat", before: []egress.Report{good}, r: good, ack: ackStored},
		{name: "conflicting repeat", before: []egress.Report{good}, r: with(good, func(r *egress.Report) { r.In++ }),
			reason: reasonConflict, ack: reasonConflict},
		{name: "allowed unsigned device", allowed: []string{"shop-c/box-9"}, r: with(good, func(r *egress.Report) { r.Store, r.Device = "shop-c", "box-9" }),
			payload: marshal, unsigned: true, ack: ackStored},
		{name: "allowed unsigned device, signed but unregistered", allowed: []string{"shop-c/box-9"},
			r: with(good, func(r *egress.Report) { r.Store, r.Device = "shop-c", "box-9" }), unsigned: true, ack: ackStored},
		{name: "registered device allowed unsigned, unsigned", allowed: []string{"shop-a/box-1"}, r: good, payload: marshal, unsigned: true, ack: ackStored},
		{name: "registered device allowed unsigned, signed", allowed: []string{"shop-a/box-1"}, r: good, ack: ackStored},
		{name: "registered device allowed unsigned, forged", allowed: []string{"shop-a/box-1"}, r: good, payload: signedWith(forger), reason: reasonBadSignature},
		{name: "allowed unsigned device of another store", allowed: []string{"shop-z/box-1"}, r: good, payload: marshal, reason: reasonUnsigned},
		{name: "allowed unsigned implausible", allowed: []string{"shop-c/box-9"}, payload: marshal, reason: reasonImplausible, ack: reasonImplausible,
			r: with(good, func(r *egress.Report) { r.Store, r.Device, r.In = "shop-c", "box-9", 1_000_000 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{})
			st := openStore(t)
			in := start(t, b, st, "hq-1", func(o *Options) { o.Unsigned = tc.allowed })
			acks := watchAcks(t, b)
			c := client(t, b, "box")
			for _, r := range tc.before {
				publish(t, c, footfallTopic(r), signed(t, r), false)
				waitFor(t, 10*time.Second, "the earlier report acknowledged", func() bool { return acks.covers(r) })
			}
			acks.reset()
			before := in.Status()
			already := reportsOf(t, st)
			topic, payload := footfallTopic(tc.r), signed
			if tc.topic != "" {
				topic = tc.topic
			}
			if tc.payload != nil {
				payload = tc.payload
			}
			publish(t, c, topic, payload(t, tc.r), false)
			waitFor(t, 10*time.Second, "the report handled", func() bool {
				s := in.Status()
				return s.Refused+s.Stored+s.Duplicates > before.Refused+before.Stored+before.Duplicates
			})
			// The sentinel's Ack comes after any Ack of the case's batch.
			sentinel := report("shop-b", "box-2", 9, 1, 0)
			publish(t, c, footfallTopic(sentinel), signed(t, sentinel), false)
			waitFor(t, 10*time.Second, "the sentinel acknowledged", func() bool { return acks.covers(sentinel) })

			s := in.Status()
			if tc.reason != "" {
				if n := s.Refused - before.Refused; n != 1 {
					t.Errorf("%d refused, want 1", n)
				}
				if n := counter(in.m.refused.WithLabelValues(tc.reason)); n != 1 {
					t.Errorf("veil_hq_messages_refused_total{reason=%q} = %g, want 1", tc.reason, n)
				}
				if want := "reason=" + tc.reason; !strings.Contains(in.log.String(), want) {
					t.Errorf("log does not say %q:\n%s", want, in.log.String())
				}
				if n := reportsOf(t, st) - 1; n != already { // the sentinel is stored
					t.Errorf("%d reports stored, want %d", n, already)
				}
			} else {
				if s.Refused != before.Refused {
					t.Errorf("refused %d, want none: %s", s.Refused-before.Refused, in.log.String())
				}
				if d := device(t, st, tc.r.Store, tc.r.Device); d.Reports != 1 {
					t.Errorf("device %+v: want 1 report", d)
				}
				if d, wantU := device(t, st, tc.r.Store, tc.r.Device), map[bool]int64{true: 1}[tc.unsigned]; d.Unsigned != wantU {
					t.Errorf("device %+v: want %d unsigned", d, wantU)
				}
			}
			if tc.reason == reasonConflict {
				if d := device(t, st, tc.r.Store, tc.r.Device); d.Conflicts != 1 || d.LastConflict.IsZero() {
					t.Errorf("device %+v: want one conflict with its time", d)
				}
				if in, _ := stored(t, st); in != int64(good.In+sentinel.In) {
					t.Errorf("in %d stored: the conflicting copy replaced the first?", in)
				}
			}
			got := acks.of(tc.r.Store, tc.r.Device, tc.r.Boot)
			gotStored, gotRefused := union(got)
			switch tc.ack {
			case noAck:
				if len(got) > 0 {
					t.Errorf("acks %+v, want none", got)
				}
			case ackStored:
				if !slices.Equal(gotStored, []uint64{tc.r.Seq}) || len(gotRefused) != 0 {
					t.Errorf("acks %+v, want seq %d stored", got, tc.r.Seq)
				}
			default:
				if len(gotStored) != 0 || len(gotRefused) != 1 || gotRefused[tc.r.Seq] != tc.ack {
					t.Errorf("acks %+v, want seq %d refused: %s", got, tc.r.Seq, tc.ack)
				}
			}
		})
	}
}

// TestAcksCoverExactlyTheStored: a box's reports over two boots, sent with
// repeats, an absurd one and a conflicting copy: the Acks on its topic
// verify with head office's key and name as stored exactly the seqs in
// the store, and as refused the absurd and the conflicting ones.
func TestAcksCoverExactlyTheStored(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	st := openStore(t)
	in := start(t, b, st, "hq-1", nil)
	acks := watchAcks(t, b)
	c := client(t, b, "box")
	var all []egress.Report
	for q := uint64(1); q <= 30; q++ {
		all = append(all, report("shop-a", "box-1", 1, q, int(q)))
	}
	for q := uint64(1); q <= 4; q++ {
		all = append(all, report("shop-a", "box-1", 2, q, 40+int(q)))
	}
	absurd := report("shop-a", "box-1", 2, 5, 50)
	absurd.In = 1_000_000
	for _, r := range append(append(all, all[:8]...), absurd) { // some twice
		c.Publish(footfallTopic(r), 1, false, signed(t, r))
	}
	waitFor(t, 20*time.Second, "every report acknowledged", func() bool {
		for _, r := range append(all, absurd) {
			if !acks.covers(r) {
				return false
			}
		}
		return true
	})
	conflicting := all[3]
	conflicting.Out += 2
	publish(t, c, footfallTopic(conflicting), signed(t, conflicting), false)
	waitFor(t, 10*time.Second, "the conflict counted", func() bool { return device(t, st, "shop-a", "box-1").Conflicts == 1 })
	waitFor(t, 10*time.Second, "the conflict acknowledged", func() bool {
		_, refused := union(acks.of("shop-a", "box-1", 1))
		return refused[conflicting.Seq] != ""
	})

	for _, tc := range []struct {
		boot    uint64
		stored  []uint64
		refused map[uint64]string
	}{
		{1, seqs(1, 30), map[uint64]string{4: reasonConflict}},
		{2, seqs(1, 4), map[uint64]string{5: reasonImplausible}},
	} {
		gotStored, gotRefused := union(acks.of("shop-a", "box-1", tc.boot))
		if !slices.Equal(gotStored, tc.stored) {
			t.Errorf("boot %d: acks name %v stored, want %v", tc.boot, gotStored, tc.stored)
		}
		if fmt.Sprint(gotRefused) != fmt.Sprint(tc.refused) {
			t.Errorf("boot %d: acks refuse %v, want %v", tc.boot, gotRefused, tc.refused)
		}
	}
	if n := reportsOf(t, st); n != int64(len(all)) {
		t.Errorf("%d reports in the store, want %d", n, len(all))
	}
	if s := in.Status(); s.Acks == 0 || s.AckErrors != 0 {
		t.Errorf("status %+v: want acks published, none failed", s)
	}
}

// counter is c's value now.
func counter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for q := from; q <= to; q++ {
		out = append(out, q)
	}
	return out
}

// TestBoxKeepsWindowsUntilHeadOfficeAnswers: veil's real publisher, with
// head office's key, signs its reports and removes each from its outbox
// only when head office's Ack names it: stored, or refused for good (the
// absurd one, which the box then drops).
func TestBoxKeepsWindowsUntilHeadOfficeAnswers(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	st := openStore(t)
	start(t, b, st, "hq-1", nil)
	box, err := egress.OpenOutbox(t.TempDir(), egress.OutboxOptions{Store: "shop-a", Device: "box-1"})
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for i := range 12 {
		c := egress.Counts{Camera: "door", Line: "entrance", Start: t0.Add(time.Duration(i) * time.Minute), End: t0.Add(time.Duration(i+1) * time.Minute), In: i, Out: 1}
		if i == 5 {
			c.In = 3_000_000_000
		} else {
			want += int64(c.In)
		}
		if _, err := box.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	log, _ := testLog(t)
	p, err := egress.NewPublisher(egress.MQTTOptions{Broker: b.URL(), ConnectTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond,
		SignKey: boxKey("box-1"), HeadOfficeKey: hqKey.Public().(ed25519.PublicKey)}, box, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; box.Close() })
	waitFor(t, 20*time.Second, "the outbox emptied by head office's Acks", func() bool { return box.Len() == 0 })
	if s := p.Status(); s.Refused != 1 || s.BadAcks != 0 || s.Delivery != egress.DeliveryHeadOffice {
		t.Errorf("publisher status %+v: want one refused, no bad acks, delivery to head office", s)
	}
	if in, _ := stored(t, st); in != want || reportsOf(t, st) != 11 {
		t.Errorf("stored %d reports, in %d; want 11, %d", reportsOf(t, st), in, want)
	}
}

// TestAckSplit: a boot's answer becomes Acks of at most ackItems ranges
// and refusals together, each valid and signable, that together name
// exactly what was stored and refused; a seq both stored and refused (two
// copies in one batch) is named stored only.
func TestAckSplit(t *testing.T) {
	r := func(seq uint64) egress.Report { return report("shop-a", "box-1", 1, seq, 0) }
	for _, tc := range []struct {
		name            string
		stored, refused []uint64
		acks            int
	}{
		{"one seq", []uint64{7}, nil, 1},
		{"only refusals", nil, []uint64{3, 1, 2}, 1},
		{"contiguous", seqs(1, 5000), nil, 1},
		{"1200 gaps", odd(1, 2400), nil, 3},
		{"ranges and refusals", odd(1, 800), seqs(2000, 2700), 3},
		{"stored wins over refused", []uint64{1, 2, 3}, []uint64{2, 4}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := answers{}
			for _, q := range tc.stored {
				a.stored(r(q))
			}
			for _, q := range tc.refused {
				a.refused(r(q), reasonConflict)
			}
			acks := a.acks(t0)
			if len(acks) != tc.acks {
				t.Errorf("%d acks, want %d", len(acks), tc.acks)
			}
			for i, ack := range acks {
				if n := len(ack.Stored) + len(ack.Refused); n > ackItems || n == 0 {
					t.Errorf("ack %d: %d items", i, n)
				}
				b, err := ack.Sign(hqKey)
				if err != nil {
					t.Fatalf("ack %d: %v", i, err)
				}
				if _, err := egress.ParseAck(b, hqKey.Public().(ed25519.PublicKey)); err != nil {
					t.Fatalf("ack %d: %v", i, err)
				}
			}
			gotStored, gotRefused := union(acks)
			wantStored := slices.Compact(slices.Sorted(slices.Values(tc.stored)))
			if !slices.Equal(gotStored, wantStored) {
				t.Errorf("stored %d seqs, want %d", len(gotStored), len(wantStored))
			}
			for _, q := range tc.refused {
				if _, ok := slices.BinarySearch(wantStored, q); ok == (gotRefused[q] != "") {
					t.Errorf("seq %d: refused %q, stored %v", q, gotRefused[q], ok)
				}
			}
		})
	}
}

func odd(from, to uint64) []uint64 {
	var out []uint64
	for q := from; q <= to; q += 2 {
		out = append(out, q)
	}
	return out
}

// TestAckPublishFailureCounted: an Ack that cannot be published (here the
// client has no connection) is counted and logged, and the batch goes on.
func TestAckPublishFailureCounted(t *testing.T) {
	log, buf := testLog(t)
	in, err := New(Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1"}, Store: openStore(t), Key: hqKey, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	in.client = mqtt.NewClient(in.clientOpts) // never connected
	a := answers{}
	a.stored(report("shop-a", "box-1", 1, 1, 0))
	a.refused(report("shop-b", "box-2", 4, 2, 0), reasonImplausible)
	if !in.publishAcks(context.Background(), a.acks(t0)) {
		t.Fatal("publishAcks gave up")
	}
	if s := in.Status(); s.AckErrors != 2 || s.Acks != 0 {
		t.Errorf("status %+v: want 2 ack errors", s)
	}
	if n := counter(in.m.ackErrors); n != 2 {
		t.Errorf("veil_hq_ack_errors_total %g, want 2", n)
	}
	if got := strings.Count(buf.String(), "cannot publish an acknowledgement"); got != 1 {
		t.Errorf("logged %d times, want once (a minute apart at most):\n%s", got, buf.String())
	}
}
