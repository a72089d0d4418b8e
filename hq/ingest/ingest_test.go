package ingest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// t0 is the start of the first counting window of every test.
var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func openStore(t testing.TB) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "hq.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// mqttOptions are the ingest's connection options for broker b, with short
// intervals so tests are quick.
func mqttOptions(b *mqtttest.Broker, clientID string) egress.MQTTOptions {
	return egress.MQTTOptions{Broker: b.URL(), ClientID: clientID, ConnectTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond}
}

// running is an Ingest running in the background of a test.
type running struct {
	*Ingest
	stop func()
	log  *testenv.Buffer
}

// hqKey is head office's key in every test: it signs the Acks.
var hqKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// boxKey is the key of a test box, derived from its device name.
func boxKey(device string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("test box " + device))
	return ed25519.NewKeyFromSeed(seed[:])
}

// testBoxes is the box registry of every test: box-1 in shop-a, box-2 in
// shop-b, and the benchmark's bench-0..bench-49 in bench-shop-0..9.
func testBoxes() []Box {
	var boxes []Box
	add := func(st, dev string) {
		boxes = append(boxes, Box{Device: dev, Store: st, Key: boxKey(dev).Public().(ed25519.PublicKey)})
	}
	add("shop-a", "box-1")
	add("shop-b", "box-2")
	for d := range benchDevices {
		add("bench-shop-"+strconv.Itoa(d/5), "bench-"+strconv.Itoa(d))
	}
	return boxes[:len(boxes):len(boxes)]
}

// start runs an Ingest on b into st until stop or the end of the test,
// with the test registry and head office's test key.
func start(t testing.TB, b *mqtttest.Broker, st store.Store, clientID string, edit func(*Options)) running {
	t.Helper()
	log, buf := testLog(t)
	o := Options{MQTT: mqttOptions(b, clientID), Store: st, Log: log, Key: hqKey, Boxes: testBoxes()}
	if edit != nil {
		edit(&o)
	}
	in, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, 10*time.Second, "ingest subscribed", func() bool { return in.Status().Connected })
	return running{in, stop, buf}
}

func testLog(t testing.TB) (*slog.Logger, *testenv.Buffer) {
	var buf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ingest log:\n%s", buf.String())
		}
	})
	return log, &buf
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is a plain MQTT client of b, standing in for a box (or an
// attacker) publishing raw payloads.
func client(t testing.TB, b *mqtttest.Broker, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(b.ClientOptions(id))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("client %s cannot connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t testing.TB, c mqtt.Client, topic string, payload []byte, retained bool) {
	t.Helper()
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}

// report is window i of a store's device, with counts derived from i.
func report(st, device string, boot, seq uint64, i int) egress.Report {
	start := t0.Add(time.Duration(i) * time.Minute)
	return egress.Report{Device: device, Store: st, Camera: "door", Line: "entrance",
		Start: start, End: start.Add(time.Minute), In: i % 7, Out: i % 5, Boot: boot, Seq: seq}
}

func footfallTopic(r egress.Report) string {
	return egress.DefaultTopicPrefix + "/" + r.Store + "/" + r.Device + "/footfall"
}

// signed is r's wire form signed with its device's test key.
func signed(t testing.TB, r egress.Report) []byte {
	t.Helper()
	b, err := r.Sign(boxKey(r.Device))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// marshal is r's wire form unsigned.
func marshal(t testing.TB, r egress.Report) []byte {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sums are the in and out of reports, once per identity.
func sums(reports []egress.Report) (in, out int64) {
	seen := map[[3]string]bool{}
	for _, r := range reports {
		k := [3]string{r.Device, fmt.Sprint(r.Boot), fmt.Sprint(r.Seq)}
		if !seen[k] {
			seen[k] = true
			in, out = in+int64(r.In), out+int64(r.Out)
		}
	}
	return in, out
}

// stored sums every window in st.
func stored(t testing.TB, st store.Store) (in, out int64) {
	t.Helper()
	totals, err := st.Totals(context.Background(), store.Query{Bucket: store.Day})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range totals {
		in, out = in+x.In, out+x.Out
	}
	return in, out
}

func reportsOf(t testing.TB, st store.Store) int64 {
	t.Helper()
	ds, err := st.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, d := range ds {
		n += d.Reports
	}
	return n
}

// TestStoresEachReportOnce: two boxes' real publishers send their outboxes,
// a third client sends some of the same reports again (as at-least-once
// delivery does); every report is stored once and the totals are the sums.
func TestStoresEachReportOnce(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	st := openStore(t)
	in := start(t, b, st, "hq-1", nil)

	var sent []egress.Report
	for _, dev := range []struct{ store, device string }{{"shop-a", "box-1"}, {"shop-b", "box-2"}} {
		box, err := egress.OpenOutbox(t.TempDir(), egress.OutboxOptions{Store: dev.store, Device: dev.device})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			r, err := box.Add(egress.Counts{Camera: "door", Line: "entrance",
				Start: t0.Add(time.Duration(i) * time.Minute), End: t0.Add(time.Duration(i+1) * time.Minute), In: i % 7, Out: i % 3})
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, r)
		}
		runBox(t, b, box, dev.device)
	}
	again := client(t, b, "replayer")
	for _, r := range sent[:10] {
		publish(t, again, footfallTopic(r), signed(t, r), false)
	}
	// The store commits before the ingest counts: wait for both.
	waitFor(t, 20*time.Second, "80 reports stored and 10 duplicates seen", func() bool {
		s := in.Status()
		return reportsOf(t, st) == 80 && s.Stored == 80 && s.Duplicates >= 10
	})
	wantIn, wantOut := sums(sent)
	if gotIn, gotOut := stored(t, st); gotIn != wantIn || gotOut != wantOut {
		t.Errorf("stored in/out %d/%d, sent %d/%d", gotIn, gotOut, wantIn, wantOut)
	}
	if s := in.Status(); s.Stored != 80 || s.Refused != 0 {
		t.Errorf("status %+v: want 80 stored, none refused", s)
	}
}

// runBox runs a real egress.Publisher for box on b, signing with device's
// key, until the test ends.
func runBox(t testing.TB, b *mqtttest.Broker, box *egress.Outbox, device string) {
	t.Helper()
	log, _ := testLog(t)
	p, err := egress.NewPublisher(egress.MQTTOptions{Broker: b.URL(), ConnectTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond,
		SignKey: boxKey(device)}, box, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; box.Close() })
}

// TestRefusesWhatIsNotAReport: each bad message is refused (counted,
// acknowledged, logged), nothing of it is stored, and ingest goes on.
func TestRefusesWhatIsNotAReport(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	st := openStore(t)
	in := start(t, b, st, "hq-1", nil)
	c := client(t, b, "box")
	good := report("shop-a", "box-1", 1, 1, 3)
	prefix := egress.DefaultTopicPrefix + "/shop-a/box-1/"
	tests := []struct {
		name, topic, payload string
	}{
		{"not JSON", prefix + "footfall", "hello"},
		{"an extra field", prefix + "footfall", strings.Replace(string(signed(t, good)), `"seq":1`, `"seq":1,"face":"x"`, 1)},
		{"a field missing", prefix + "footfall", strings.Replace(string(signed(t, good)), `"in":3,`, ``, 1)},
		{"another device's report", egress.DefaultTopicPrefix + "/shop-a/box-9/footfall", string(signed(t, good))},
		{"another store's report", egress.DefaultTopicPrefix + "/shop-z/box-1/footfall", string(signed(t, good))},
		{"a status that is neither", prefix + "status", "rebooting"},
		{"an unregistered device's status", egress.DefaultTopicPrefix + "/shop-a/box-9/status", "online"},
		{"a status in another store", egress.DefaultTopicPrefix + "/shop-z/box-1/status", "online"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			publish(t, c, tc.topic, []byte(tc.payload), false)
			waitFor(t, 10*time.Second, "the message refused", func() bool { return in.Status().Refused == int64(i+1) })
			if n := reportsOf(t, st); n != 0 {
				t.Errorf("%d reports stored", n)
			}
			if ds, err := st.Devices(context.Background()); err != nil || len(ds) != 0 {
				t.Errorf("devices %+v, %v; want none", ds, err)
			}
		})
	}
	publish(t, c, footfallTopic(good), signed(t, good), false)
	waitFor(t, 10*time.Second, "the good report stored after the bad ones", func() bool { return reportsOf(t, st) == 1 })
}

// TestDeviceStatus: a box's retained status reaches the store, online while
// its publisher runs, offline after it stops.
func TestDeviceStatus(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	st := openStore(t)
	start(t, b, st, "hq-1", nil)
	box, err := egress.OpenOutbox(t.TempDir(), egress.OutboxOptions{Store: "shop-a", Device: "box-1"})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLog(t)
	p, err := egress.NewPublisher(egress.MQTTOptions{Broker: b.URL(), ConnectTimeout: 2 * time.Second, RetryInterval: 100 * time.Millisecond,
		SignKey: boxKey("box-1")}, box, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer box.Close()
	device := func() store.Device {
		ds, err := st.Devices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Store == "shop-a" && d.Device == "box-1" {
				return d
			}
		}
		return store.Device{}
	}
	waitFor(t, 10*time.Second, "box online", func() bool { return device().Online })
	cancel()
	<-done
	waitFor(t, 10*time.Second, "box offline", func() bool { d := device(); return !d.Online && !d.StatusAt.IsZero() })
}

// TestRedeliveredAfterRestart: reports published while head office is down
// are stored when it is back, because its session is persistent and it
// acknowledges only what it stored. With a plain subscription this holds
// across a broker restart too; mosquitto 2.0 does not restore shared
// subscriptions from its persistence file, so with a shared subscription
// the reports queued before the restart survive but those published after
// it, before head office subscribes again, are not queued for it
// (docs/ARCHITECTURE.md, "Head office").
func TestRedeliveredAfterRestart(t *testing.T) {
	for _, tc := range []struct {
		name          string
		group         string
		brokerRestart bool
	}{
		{"shared, head office restarts", "", false},
		{"plain, head office and broker restart", "-", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mqtttest.Start(t, mqtttest.Options{})
			st := openStore(t)
			group := func(o *Options) { o.Group = tc.group }
			first := start(t, b, st, "hq-1", group)
			c := client(t, b, "box")
			var sent []egress.Report
			send := func(from, to int) {
				for i := from; i < to; i++ {
					r := report("shop-a", "box-1", 1, uint64(i+1), i)
					publish(t, c, footfallTopic(r), signed(t, r), false)
					sent = append(sent, r)
				}
			}
			send(0, 10)
			waitFor(t, 10*time.Second, "10 reports stored", func() bool { return reportsOf(t, st) == 10 })
			first.stop()
			send(10, 30) // head office is down: the broker keeps them for its session
			if tc.brokerRestart {
				b.Stop() // and saves them
				b.Start()
				c = client(t, b, "box-again")
				send(30, 40)
			}
			start(t, b, st, "hq-1", group)
			want := int64(len(sent))
			waitFor(t, 20*time.Second, fmt.Sprintf("%d reports stored", want), func() bool { return reportsOf(t, st) == want })
			wantIn, wantOut := sums(sent)
			if gotIn, gotOut := stored(t, st); gotIn != wantIn || gotOut != wantOut {
				t.Errorf("stored in/out %d/%d, sent %d/%d", gotIn, gotOut, wantIn, wantOut)
			}
		})
	}
}

// failing is a real store whose first Adds fail, like a database that is
// briefly down.
type failing struct {
	store.Store
	fails atomic.Int32
}

func (f *failing) Add(ctx context.Context, reports ...egress.Report) ([]store.Outcome, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("database is down")
	}
	return f.Store.Add(ctx, reports...)
}

// TestStoreFailureRetried: while the database fails nothing is acknowledged
// or lost; once it works every report is stored once.
func TestStoreFailureRetried(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	st := &failing{Store: openStore(t)}
	st.fails.Store(3)
	in := start(t, b, st, "hq-1", nil)
	c := client(t, b, "box")
	var sent []egress.Report
	for i := range 20 {
		r := report("shop-a", "box-1", 1, uint64(i+1), i)
		publish(t, c, footfallTopic(r), signed(t, r), false)
		sent = append(sent, r)
	}
	waitFor(t, 30*time.Second, "20 reports stored", func() bool { return reportsOf(t, st) == 20 })
	if s := in.Status(); !strings.Contains(s.LastError, "database is down") {
		t.Errorf("status does not show the store error: %+v", s)
	}
	wantIn, wantOut := sums(sent)
	if gotIn, gotOut := stored(t, st); gotIn != wantIn || gotOut != wantOut {
		t.Errorf("stored in/out %d/%d, sent %d/%d", gotIn, gotOut, wantIn, wantOut)
	}
}

// TestSharedSubscription: two head-office processes in one group on one
// database split the reports (each gets some) and store each once.
func TestSharedSubscription(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	path := filepath.Join(t.TempDir(), "hq.db")
	var ins []running
	var sts []store.Store
	for _, id := range []string{"hq-a", "hq-b"} {
		st, err := store.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		sts = append(sts, st)
		ins = append(ins, start(t, b, st, id, nil))
	}
	c := client(t, b, "box")
	const n = 200
	for i := range n {
		r := report("shop-a", "box-1", 1, uint64(i+1), i)
		c.Publish(footfallTopic(r), 1, false, signed(t, r))
	}
	waitFor(t, 30*time.Second, "200 reports stored", func() bool { return reportsOf(t, sts[0]) == n })
	// A report is stored before the ingest that took it counts it as
	// received: wait for the counters too (this read them too early once).
	waitFor(t, 30*time.Second, "200 reports counted", func() bool {
		return ins[0].Status().Received+ins[1].Status().Received >= n
	})
	a, bb := ins[0].Status(), ins[1].Status()
	if a.Received == 0 || bb.Received == 0 {
		t.Errorf("the load was not shared: received %d and %d", a.Received, bb.Received)
	}
	if a.Received+bb.Received != n || a.Duplicates+bb.Duplicates != 0 {
		t.Errorf("received %d+%d with %d+%d duplicates; want %d in all, none twice", a.Received, bb.Received, a.Duplicates, bb.Duplicates, n)
	}
}

// TestOptions: bad options are refused naming what is wrong.
func TestOptions(t *testing.T) {
	st := openStore(t)
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no store", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}}, "no store"},
		{"bad broker", Options{MQTT: egress.MQTTOptions{Broker: "http://x:1"}}, "scheme"},
		{"bad group", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, Group: "a/b"}, "group"},
		{"bad prefix", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883", TopicPrefix: "a/#"}}, "prefix"},
		{"no key", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, Key: ed25519.PrivateKey{}}, "no Ed25519 key"},
		{"negative rate", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, MaxRate: -1}, "max rate -1"},
		{"box twice", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, Boxes: append(testBoxes(), testBoxes()[0])}, `device "box-1" is registered twice`},
		{"box without key", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, Boxes: []Box{{Device: "d", Store: "s"}}}, "box 1"},
		{"unsigned not store/device", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, Unsigned: []string{"box-1"}}, `unsigned device "box-1" is not store/device`},
		{"unsigned bad name", Options{MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, Unsigned: []string{"shop a/box-1"}}, `"shop a/box-1" is not store/device`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.o.Key == nil {
				tc.o.Key = hqKey
			}
			if tc.name != "no store" {
				tc.o.Store = st
			}
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error about %q", err, tc.want)
			}
		})
	}
	in, err := New(Options{Store: st, MQTT: egress.MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, Key: hqKey})
	if err != nil {
		t.Fatal(err)
	}
	if r, s := in.Topics(); r != "$share/veil-hq/veil/v1/+/+/footfall" || s != "veil/v1/+/+/status" {
		t.Errorf("topics %q %q", r, s)
	}
}
