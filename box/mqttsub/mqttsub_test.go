package mqttsub_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/box/mqttsub"
	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type inbox struct {
	mu   sync.Mutex
	msgs []string
}

func (in *inbox) handle(p []byte) { in.mu.Lock(); in.msgs = append(in.msgs, string(p)); in.mu.Unlock() }

func (in *inbox) wait(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		in.mu.Lock()
		ok := slices.Contains(in.msgs, want)
		in.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not received within 15 s", want)
		}
	}
}

// run starts a subscriber with the fixed client id and returns its stop.
func run(t *testing.T, b *mqtttest.Broker, in *inbox) (*mqttsub.Subscriber, func()) {
	s, err := mqttsub.New(mqttsub.Options{Client: b.ClientOptions("veil-d1-consent"), Topic: "veil/v1/s1/d1/consent",
		Handle: in.handle, RetryInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return s, func() { cancel(); <-done }
}

func publish(t *testing.T, b *mqtttest.Broker, payload string) {
	t.Helper()
	c := mqtt.NewClient(b.ClientOptions("hq-test"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish("veil/v1/s1/d1/consent", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// TestPersistentSession: a message arrives live; one published while the
// subscriber is offline arrives when it is back, and one published while
// the broker was restarted (its session saved) arrives too.
func TestPersistentSession(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	in := &inbox{}
	s, stop := run(t, b, in)
	for deadline := time.Now().Add(10 * time.Second); !s.Connected(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not connected within 10 s")
		}
	}
	// The subscription is made just after connecting: publish until one arrives.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		publish(t, b, "live")
		in.mu.Lock()
		n := len(in.msgs)
		in.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no live message within 10 s")
		}
	}
	stop()
	publish(t, b, "while offline")
	_, stop = run(t, b, in)
	in.wait(t, "while offline")
	b.Stop()
	b.Start()
	publish(t, b, "after a broker restart")
	in.wait(t, "after a broker restart")
	stop()
}
