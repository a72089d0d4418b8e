package mqtttest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// RecorderID is the client id of the Recorder's persistent session.
const RecorderID = "mqtttest-recorder"

// Message is one MQTT message as a subscriber received it.
type Message struct {
	Topic    string
	Payload  string
	Retained bool // sent because of the subscription, not published live
}

// Recorder is a real MQTT subscriber on "#" (every topic but $SYS ones)
// with a persistent session: fixed client id RecorderID, CleanSession
// false, QoS 1, reconnecting on its own. Messages published while it is
// disconnected but the broker runs, or that the broker saved across a Stop,
// are delivered when it is back. It subscribes again on every connection,
// so after a reconnection the broker sends it the retained messages again
// (Retained set). It keeps every message in arrival order.
type Recorder struct {
	t    testing.TB
	c    mqtt.Client
	mu   sync.Mutex
	msgs []Message
}

// Record connects a Recorder to b and waits until it has subscribed; it
// disconnects in t.Cleanup. One Recorder per broker: a second would take
// over the first's session.
func Record(t testing.TB, b *Broker) *Recorder {
	t.Helper()
	rec := &Recorder{t: t}
	subscribed := make(chan error, 1)
	co := b.ClientOptions(RecorderID).SetCleanSession(false).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetOnConnectHandler(func(c mqtt.Client) {
			// Subscribing again on every connection is harmless with a
			// persistent session, and covers a broker that lost it.
			tok := c.Subscribe("#", 1, rec.handle)
			tok.WaitTimeout(2 * time.Second)
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	rec.c = mqtt.NewClient(co)
	rec.c.Connect()
	t.Cleanup(func() { rec.c.Disconnect(100) })
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("recorder cannot subscribe: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("recorder not subscribed within 5 s")
	}
	return rec
}

func (rec *Recorder) handle(_ mqtt.Client, m mqtt.Message) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.msgs = append(rec.msgs, Message{m.Topic(), string(m.Payload()), m.Retained()})
}

// Messages returns a copy of every message received so far, in arrival
// order. QoS 1 is at least once: a message may be there twice.
func (rec *Recorder) Messages() []Message {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.msgs)
}

// Wait polls the messages received so far until cond holds for them, and
// returns them; after timeout it fails the test, saying it was waiting for
// what. cond may report errors with t.Errorf but must not call t.Fatal.
func (rec *Recorder) Wait(timeout time.Duration, what string, cond func([]Message) bool) []Message {
	rec.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := rec.Messages()
		if cond(msgs) {
			return msgs
		}
		if time.Now().After(deadline) {
			rec.t.Fatalf("after %s (%d messages received), still waiting for %s", timeout, len(msgs), what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Retained returns the message the broker now keeps retained on topic, as
// a new subscriber (clean session) gets it; ok is false if none arrives
// within wait.
func (b *Broker) Retained(topic string, wait time.Duration) (payload string, ok bool) {
	b.t.Helper()
	b.nclients++
	got := make(chan string, 1)
	c := mqtt.NewClient(b.ClientOptions(fmt.Sprintf("mqtttest-retained-%d", b.nclients)).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		b.t.Fatalf("client cannot connect to ask for the retained message: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if !m.Retained() {
			return // published live, while we were subscribed
		}
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
		b.t.Fatalf("cannot subscribe to %s: %v", topic, tok.Error())
	}
	select {
	case p := <-got:
		return p, true
	case <-time.After(wait):
		return "", false
	}
}

// WaitRetained waits up to 5 s for the message retained on topic to be
// want, asking as a new subscriber each time, and fails the test if it is
// not.
func (b *Broker) WaitRetained(topic, want string) {
	b.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := b.Retained(topic, time.Second)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			if !ok {
				got = "(no retained message)"
			} else {
				got = fmt.Sprintf("%q", got)
			}
			b.t.Fatalf("retained message on %s is %s, want %q", topic, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
