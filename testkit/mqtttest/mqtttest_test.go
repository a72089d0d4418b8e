package mqtttest_test

import (
	"crypto/tls"
	"errors"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/testkit/mqtttest"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// connect connects a clean-session client with co, or returns the error.
func connect(co *mqtt.ClientOptions) (mqtt.Client, error) {
	c := mqtt.NewClient(co.SetCleanSession(true))
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		c.Disconnect(0)
		return nil, errTimeout
	}
	if err := tok.Error(); err != nil {
		c.Disconnect(0)
		return nil, err
	}
	return c, nil
}

var errTimeout = errors.New("connect timed out")

// publish publishes payload on topic with QoS 1 and waits for the PUBACK.
func publish(t *testing.T, c mqtt.Client, topic, payload string, retained bool) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing %q on %s: %v", payload, topic, tok.Error())
	}
}

func has(want ...mqtttest.Message) func([]mqtttest.Message) bool {
	return func(got []mqtttest.Message) bool {
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	}
}

// TestSecurity starts a broker with each kind of security: a client with
// ClientOptions publishes and the Recorder receives it, and a client
// without what the broker requires is refused.
func TestSecurity(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    mqtttest.Options
		// refused strips from good options what the broker requires; nil
		// for a broker that requires nothing.
		refused func(b *mqtttest.Broker, co *mqtt.ClientOptions)
	}{
		{"plain", mqtttest.Options{}, nil},
		{"password", mqtttest.Options{Password: true}, func(_ *mqtttest.Broker, co *mqtt.ClientOptions) {
			co.SetPassword("wrong")
		}},
		{"tls", mqtttest.Options{TLS: true}, func(_ *mqtttest.Broker, co *mqtt.ClientOptions) {
			co.SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}) // system roots: the test CA is unknown
		}},
		{"mutual tls", mqtttest.Options{TLS: true, RequireCert: true}, func(_ *mqtttest.Broker, co *mqtt.ClientOptions) {
			tc := co.TLSConfig.Clone()
			tc.Certificates = nil
			co.SetTLSConfig(tc)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mqtttest.Start(t, tc.o)
			if got, want := b.PKI() != nil, tc.o.TLS; got != want {
				t.Errorf("PKI() set = %v, want %v", got, want)
			}
			rec := mqtttest.Record(t, b)
			c, err := connect(b.ClientOptions("good"))
			if err != nil {
				t.Fatalf("client with ClientOptions cannot connect to %s: %v", b.URL(), err)
			}
			defer c.Disconnect(100)
			publish(t, c, "a/b", "hello", false)
			rec.Wait(5*time.Second, "hello on a/b", has(mqtttest.Message{Topic: "a/b", Payload: "hello"}))
			if tc.refused == nil {
				return
			}
			co := b.ClientOptions("bad")
			tc.refused(b, co)
			if c, err := connect(co); err == nil {
				c.Disconnect(0)
				t.Errorf("client without what %s requires connected", tc.name)
			}
		})
	}
}

// TestRestart checks what Stop, Kill and Start keep: after Stop and Start
// on the same URL, retained messages are back and the Recorder receives new
// messages; after Kill, what was retained since the last Stop is lost.
func TestRestart(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	url := b.URL()
	rec := mqtttest.Record(t, b)
	c, err := connect(b.ClientOptions("pub"))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, "keep/r", "saved", true)
	c.Disconnect(100)
	if _, ok := b.Retained("keep/none", 200*time.Millisecond); ok {
		t.Error("a topic nobody published on has a retained message")
	}

	b.Stop()
	if b.Running() {
		t.Error("Running after Stop")
	}
	b.Stop() // a no-op
	b.Start()
	if !b.Running() || b.URL() != url {
		t.Errorf("after Start: Running %v, URL %s, want true, %s", b.Running(), b.URL(), url)
	}
	b.WaitRetained("keep/r", "saved")
	c, err = connect(b.ClientOptions("pub"))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, "keep/r", "unsaved", true)
	publish(t, c, "live", "after restart", false)
	c.Disconnect(100)
	rec.Wait(10*time.Second, "messages from before and after the restart", has(
		mqtttest.Message{Topic: "keep/r", Payload: "saved"},
		mqtttest.Message{Topic: "keep/r", Payload: "unsaved"},
		mqtttest.Message{Topic: "live", Payload: "after restart"},
	))

	b.Kill()
	b.Start()
	b.WaitRetained("keep/r", "saved")
}
