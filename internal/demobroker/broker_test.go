package demobroker_test

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/internal/demobroker"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type msg struct {
	topic, payload string
}

// TestSharedSubscription: the embedded broker delivers to an MQTT 3.1.1
// client subscribed as veil-hq's ingest does (a shared subscription, QoS 1,
// persistent session) and to the demo's own callback, so `veil demo` can
// run veil-hq with its hq.group as configured.
func TestSharedSubscription(t *testing.T) {
	seen := make(chan msg, 10)
	b, err := demobroker.Start("127.0.0.1:0", "veil/#", nil, func(topic string, payload []byte, _ bool) {
		seen <- msg{topic, string(payload)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	got := make(chan msg, 10)
	sub := connect(t, b.URL(), "hq", false)
	defer sub.Disconnect(100)
	tok := sub.Subscribe("$share/veil-hq/veil/v1/+/+/footfall", 1, func(_ mqtt.Client, m mqtt.Message) {
		got <- msg{m.Topic(), string(m.Payload())}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	for f, qos := range tok.(*mqtt.SubscribeToken).Result() {
		if qos != 1 {
			t.Fatalf("SUBACK for %s: %#x, want QoS 1 granted", f, qos)
		}
	}

	pub := connect(t, b.URL(), "box", true)
	defer pub.Disconnect(100)
	want := msg{"veil/v1/s/d/footfall", "report"}
	if tok := pub.Publish(want.topic, 1, false, want.payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	for name, ch := range map[string]chan msg{"shared subscriber": got, "callback": seen} {
		select {
		case m := <-ch:
			if m != want {
				t.Errorf("%s got %+v, want %+v", name, m, want)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s got nothing", name)
		}
	}
}

// connect connects an MQTT 3.1.1 client (paho's default protocol, as
// veil-hq's ingest and the box use).
func connect(t *testing.T, broker, id string, clean bool) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(clean).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}
