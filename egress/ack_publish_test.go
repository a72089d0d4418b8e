package egress

import (
	"crypto/ed25519"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/testkit/mqtttest"
)

// headOffice is a stand-in for veil-hq in egress's tests: it takes the
// box's reports from the broker, checks their signatures, and, when told
// to, answers with signed acknowledgements.
type headOffice struct {
	t      *testing.T
	c      mqtt.Client
	key    ed25519.PrivateKey
	boxKey ed25519.PublicKey

	mu      sync.Mutex
	got     map[ident]int // receptions per report
	reports map[ident]Report
	badSigs int
	ack     bool              // answer with acknowledgements
	refuse  map[uint64]string // seq → reason
}

func startHeadOffice(t *testing.T, br *mqtttest.Broker, footfall string) *headOffice {
	h := &headOffice{t: t, key: testHQKey, boxKey: testBoxKey.Public().(ed25519.PublicKey), got: map[ident]int{}, refuse: map[uint64]string{}}
	h.c = mqtt.NewClient(br.ClientOptions("test-hq"))
	if tok := h.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("head office cannot connect: %v", tok.Error())
	}
	t.Cleanup(func() { h.c.Disconnect(100) })
	if tok := h.c.Subscribe(footfall, 1, h.onReport); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("head office cannot subscribe: %v", tok.Error())
	}
	return h
}

func (h *headOffice) onReport(c mqtt.Client, m mqtt.Message) {
	r, err := ParseReport(m.Payload())
	if err != nil {
		h.t.Errorf("head office got a message that is not a report: %q", m.Payload())
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := r.Verify(h.boxKey); err != nil {
		h.badSigs++
		return
	}
	h.got[identOf(r)]++
	if h.reports == nil {
		h.reports = map[ident]Report{}
	}
	h.reports[identOf(r)] = r
	if !h.ack {
		return
	}
	a := Ack{V: AckVersion, Device: r.Device, Store: r.Store, Boot: r.Boot, Issued: time.Now().Unix()}
	if why, ok := h.refuse[r.Seq]; ok {
		a.Refused = []Refusal{{Seq: r.Seq, Reason: why}}
	} else {
		a.Stored = []SeqRange{{r.Seq, r.Seq}}
	}
	h.publishAck(a, h.key)
}

func (h *headOffice) publishAck(a Ack, key ed25519.PrivateKey) {
	b, err := a.Sign(key)
	if err != nil {
		h.t.Errorf("signing ack: %v", err)
		return
	}
	h.c.Publish(AckTopic(DefaultTopicPrefix, a.Store, a.Device), 1, false, b)
}

// people is in + out over every report received, each identity once.
func (h *headOffice) people() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.reports {
		n += r.In + r.Out
	}
	return n
}

func (h *headOffice) receptions() map[ident]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[ident]int, len(h.got))
	for k, v := range h.got {
		out[k] = v
	}
	return out
}

// TestPublishUntilHeadOfficeStored: with head office's key set, a report
// the broker has acknowledged stays in the outbox and is published again,
// with back-off, until head office's signed acknowledgement names it;
// forged acknowledgements and acknowledgements for another box remove
// nothing; a refusal drops the report and is counted; every report is
// signed with the box's key.
func TestPublishUntilHeadOfficeStored(t *testing.T) {
	br := mqtttest.Start(t, mqtttest.Options{})
	rec := mqtttest.Record(t, br)
	box := openBox(t, t.TempDir(), 0)
	var added []Report
	for i := range 6 {
		added = append(added, mustAdd(t, box, window("cam-1", "door", i, i, 1)))
	}
	o := publisherOptions(br)
	o.SignKey, o.HeadOfficeKey = testBoxKey, testHQKey.Public().(ed25519.PublicKey)
	o.StoredWait, o.StoredWaitMax = 300*time.Millisecond, 600*time.Millisecond
	footfall := topicFor(added[0], "footfall")
	hq := startHeadOffice(t, br, footfall)
	log, logs := testLog(t)
	p, stop := runPublisher(t, o, box, log)
	if p.AckTopic() != "veil/v1/shop-1/box-1/ack" {
		t.Fatalf("AckTopic() = %q", p.AckTopic())
	}

	// Head office is silent: everything stays, and is published again.
	waitFor(t, 10*time.Second, "every report published three times", func() bool {
		got := hq.receptions()
		for _, a := range added {
			if got[identOf(a)] < 3 {
				return false
			}
		}
		return true
	})
	if st := p.Status(); st.Pending != 6 || st.Delivery != DeliveryHeadOffice || st.OldestPending.IsZero() {
		t.Errorf("Status() = %+v, want 6 pending, delivery %q, an oldest pending window", st, DeliveryHeadOffice)
	}
	if !strings.Contains(logs.String(), "head office has not confirmed storing the report; publishing it again") {
		t.Error("no log line for a report published again")
	}

	// Forged (another key) and misaddressed acknowledgements change nothing.
	forger := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	all := Ack{V: AckVersion, Device: "box-1", Store: "shop-1", Boot: added[0].Boot, Stored: []SeqRange{{1, 100}}, Issued: time.Now().Unix()}
	hq.publishAck(all, forger)
	other := all
	other.Device = "box-2"
	b, _ := other.Sign(testHQKey)
	hq.c.Publish(AckTopic(DefaultTopicPrefix, "shop-1", "box-1"), 1, false, b) // right topic, wrong device inside
	waitFor(t, 5*time.Second, "two bad acknowledgements counted", func() bool { return p.Status().BadAcks == 2 })
	if n := box.Len(); n != 6 {
		t.Fatalf("bad acknowledgements removed reports: %d left of 6", n)
	}

	// Head office stores all but seq 4, which it refuses.
	hq.mu.Lock()
	hq.ack = true
	hq.refuse[added[3].Seq] = "implausible"
	hq.mu.Unlock()
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool { return box.Len() == 0 })
	// The status follows the outbox once the acknowledgement is applied.
	waitFor(t, 5*time.Second, "the status to show the acknowledgements", func() bool {
		st := p.Status()
		return st.AwaitingStored == 0 && st.Refused == 1
	})
	st := p.Status()
	if st.Refused != 1 || st.AwaitingStored != 0 || st.LastStored.IsZero() || !st.OldestPending.IsZero() {
		t.Errorf("Status() = %+v, want 1 refused, none awaiting, a last stored time, no oldest pending", st)
	}
	if !strings.Contains(logs.String(), "head office refused a report for good") {
		t.Error("the refusal was not logged")
	}
	hq.mu.Lock()
	if hq.badSigs != 0 {
		t.Errorf("%d reports did not verify with the box's key", hq.badSigs)
	}
	hq.mu.Unlock()
	got := hq.receptions()
	for _, a := range added {
		if got[identOf(a)] == 0 {
			t.Errorf("report %s never reached head office", identOf(a))
		}
	}
	stop()
	reports(t, rec, footfall, topicFor(added[0], "status"))
}

// TestPublishAckWhileAway: acknowledgements head office sends while the
// box is disconnected are queued by the broker for its persistent session
// and applied when it comes back.
func TestPublishAckWhileAway(t *testing.T) {
	br := mqtttest.Start(t, mqtttest.Options{})
	box := openBox(t, t.TempDir(), 0)
	var added []Report
	for i := range 3 {
		added = append(added, mustAdd(t, box, window("cam-1", "door", i, i, 1)))
	}
	o := publisherOptions(br)
	o.SignKey, o.HeadOfficeKey = testBoxKey, testHQKey.Public().(ed25519.PublicKey)
	o.StoredWait = time.Hour // nothing is published twice in this test
	hq := startHeadOffice(t, br, topicFor(added[0], "footfall"))
	log, _ := testLog(t)
	p, stop := runPublisher(t, o, box, log)
	waitFor(t, 10*time.Second, "three reports acknowledged by the broker", func() bool { return p.Status().AwaitingStored == 3 })
	stop()
	var seqs []uint64
	for s := range hq.receptions() {
		seqs = append(seqs, s.seq)
	}
	slices.Sort(seqs)
	hq.publishAck(Ack{V: AckVersion, Device: "box-1", Store: "shop-1", Boot: added[0].Boot, Stored: AckRanges(seqs), Issued: time.Now().Unix()}, testHQKey)
	time.Sleep(200 * time.Millisecond) // the broker queues it for the away session
	if n := box.Len(); n != 3 {
		t.Fatalf("outbox changed while the publisher was stopped: %d", n)
	}
	p2, stop2 := runPublisher(t, o, box, log)
	defer stop2()
	waitFor(t, 10*time.Second, "the queued acknowledgement to empty the outbox", func() bool { return box.Len() == 0 })
	_ = p2
}

// TestPublishKeepsNewerMergeable: while head office acknowledges nothing,
// at most MaxAwaiting reports are handed to the network; newer windows
// stay unpublished, so a full outbox keeps merging them instead of
// refusing windows. Once head office answers, every count arrives once.
func TestPublishKeepsNewerMergeable(t *testing.T) {
	br := mqtttest.Start(t, mqtttest.Options{})
	box := openBox(t, t.TempDir(), 4)
	o := publisherOptions(br)
	o.SignKey, o.HeadOfficeKey = testBoxKey, testHQKey.Public().(ed25519.PublicKey)
	o.StoredWait, o.StoredWaitMax, o.MaxAwaiting = 300*time.Millisecond, 600*time.Millisecond, 2
	footfall := topicFor(Report{Store: "shop-1", Device: "box-1"}, "footfall")
	hq := startHeadOffice(t, br, footfall)
	log, _ := testLog(t)
	p, stop := runPublisher(t, o, box, log)
	defer stop()
	in := 0
	for i := range 12 {
		c := window("cam-1", "door", i, i+1, 0)
		if _, err := box.Add(c); err != nil {
			t.Fatalf("Add %d: %v (the outbox should merge unpublished windows)", i, err)
		}
		in += c.In
		if i == 1 {
			waitFor(t, 10*time.Second, "two reports awaiting head office", func() bool { return p.Status().AwaitingStored == 2 })
		}
		if n := box.Len(); n > 4 {
			t.Fatalf("outbox holds %d, bound 4", n)
		}
	}
	time.Sleep(time.Second) // long enough for more publishes, were they allowed
	if got := len(hq.receptions()); got != 2 {
		t.Errorf("head office received %d distinct reports while it acknowledged none; want MaxAwaiting = 2", got)
	}
	hq.mu.Lock()
	hq.ack = true
	hq.mu.Unlock()
	waitFor(t, 20*time.Second, "the outbox to empty", func() bool { return box.Len() == 0 })
	if got := hq.people(); got != in {
		t.Errorf("head office received %d people (once per report), the box counted %d", got, in)
	}
}
