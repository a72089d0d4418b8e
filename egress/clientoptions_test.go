package egress

import (
	"errors"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/testkit/mqtttest"
)

// TestClientOptionsConnect: the options another client of the box gets
// from MQTTOptions.ClientOptions connect to a real broker of every kind
// (plain, password, TLS, mutual TLS).
func TestClientOptionsConnect(t *testing.T) {
	for _, bo := range []mqtttest.Options{{}, {Password: true}, {TLS: true}, {TLS: true, RequireCert: true}} {
		t.Run(brokerName(bo), func(t *testing.T) {
			b := mqtttest.Start(t, bo)
			o := publisherOptions(b)
			o.ClientID = "veil-d1-consent"
			co, err := o.ClientOptions()
			if err != nil {
				t.Fatal(err)
			}
			c := mqtt.NewClient(co)
			defer c.Disconnect(0)
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connecting: %v", tok.Error())
			}
		})
	}
}

func brokerName(o mqtttest.Options) string {
	switch {
	case o.RequireCert:
		return "mutual-tls"
	case o.TLS:
		return "tls"
	case o.Password:
		return "password"
	}
	return "plain"
}

func TestClientOptionsRefused(t *testing.T) {
	tests := []struct {
		name string
		o    MQTTOptions
		want string
	}{
		{"no client id", MQTTOptions{Broker: "tcp://127.0.0.1:1883"}, "mqtt client id: empty"},
		{"bad broker", MQTTOptions{Broker: "http://hq:80", ClientID: "c"}, `mqtt broker "http://hq:80": scheme "http"`},
		{"CA for a plain broker", MQTTOptions{Broker: "tcp://127.0.0.1:1883", ClientID: "c", CAFile: "ca.pem"}, "is not TLS"},
		{"missing CA file", MQTTOptions{Broker: "ssl://127.0.0.1:8883", ClientID: "c", CAFile: "/nonexistent/ca.pem"}, "mqtt CA file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.o.ClientOptions()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(tc.want, "mqtt broker") || strings.Contains(tc.want, "client id") {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("%v is not ErrInvalid", err)
				}
			}
		})
	}
}
