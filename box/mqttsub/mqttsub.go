// Package mqttsub is an MQTT subscriber of one topic with a persistent
// session: a fixed client id, CleanSession false and QoS 1, so messages
// published while it is briefly offline are queued by the broker and
// delivered when it is back. It reconnects on its own and subscribes again
// on every connection. It publishes nothing. The box uses it for head
// office's consent down-link.
package mqttsub

import (
	"context"
	"errors"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// DefaultRetryInterval is the pause between connection attempts when
// Options.RetryInterval is zero.
const DefaultRetryInterval = 5 * time.Second

// Options configure a Subscriber.
type Options struct {
	// Client are the connection's paho options (broker, client id,
	// credentials, TLS: egress.MQTTOptions.ClientOptions); the Subscriber
	// sets the session, reconnection and handlers.
	Client *mqtt.ClientOptions
	Topic  string
	// Handle gets every message's payload, one at a time in arrival order;
	// the message is acknowledged when it returns.
	Handle        func(payload []byte)
	RetryInterval time.Duration
	Log           *slog.Logger
}

// Subscriber is one persistent-session subscription.
type Subscriber struct {
	o Options
	c mqtt.Client
}

// New checks o. Nothing connects until Run.
func New(o Options) (*Subscriber, error) {
	if o.Client == nil || o.Topic == "" || o.Handle == nil {
		return nil, errors.New("mqttsub: client options, topic and handler are required")
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Subscriber{o: o}
	handle := func(_ mqtt.Client, m mqtt.Message) { o.Handle(m.Payload()) }
	co := o.Client.
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(o.RetryInterval).
		SetMaxReconnectInterval(o.RetryInterval).
		SetOrderMatters(true).
		SetResumeSubs(false).
		// Messages queued in the session may arrive before the
		// subscription is made again: the default handler takes them.
		SetDefaultPublishHandler(handle).
		SetOnConnectHandler(func(c mqtt.Client) {
			tok := c.Subscribe(o.Topic, 1, handle)
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				o.Log.Warn("mqttsub: cannot subscribe; will try again on the next connection", "topic", o.Topic, "err", tok.Error())
				return
			}
			o.Log.Info("mqttsub: subscribed", "topic", o.Topic)
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			o.Log.Warn("mqttsub: connection lost; reconnecting", "topic", o.Topic, "err", err)
		})
	s.c = mqtt.NewClient(co)
	s.c.AddRoute(o.Topic, handle)
	return s, nil
}

// Run connects and keeps the subscription until ctx is cancelled, then
// disconnects and returns.
func (s *Subscriber) Run(ctx context.Context) {
	s.c.Connect()
	<-ctx.Done()
	s.c.Disconnect(250)
}

// Connected reports whether the connection is up now.
func (s *Subscriber) Connected() bool { return s.c.IsConnectionOpen() }
