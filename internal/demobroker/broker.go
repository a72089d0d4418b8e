// Package demobroker is the MQTT broker `veil demo` starts when no broker is
// configured: mochi-mqtt on a loopback port, accepting anyone on loopback,
// with an in-process subscriber that hands every footfall report to a
// callback so the demo can print what head office would receive.
//
// mochi-mqtt serves shared subscriptions ($share/<group>/...) to MQTT 3.1.1
// clients too (Capabilities.SharedSubAvailable is on by default), so the
// veil-hq the demo runs subscribes with its hq.group as configured.
package demobroker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a running embedded MQTT broker.
type Broker struct {
	srv  *mqtt.Server
	addr string
}

// Start listens on addr (use "127.0.0.1:0" for any free port) and calls
// onMessage for every message published on a topic matching filter.
func Start(addr, filter string, log *slog.Logger, onMessage func(topic string, payload []byte, retained bool)) (*Broker, error) {
	// Find the port first so the caller learns the real address.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo broker: listen %s: %w", addr, err)
	}
	real := l.Addr().String()
	l.Close()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "demo", Address: real})); err != nil {
		return nil, fmt.Errorf("demo broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("demo broker: %w", err)
	}
	if onMessage != nil {
		err := srv.Subscribe(filter, 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			onMessage(pk.TopicName, append([]byte(nil), pk.Payload...), pk.FixedHeader.Retain)
		})
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("demo broker: subscribe: %w", err)
		}
	}
	return &Broker{srv: srv, addr: real}, nil
}

// URL is the broker's address for veil's mqtt.broker key.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close stops the broker.
func (b *Broker) Close() error {
	if b == nil || b.srv == nil {
		return errors.New("demo broker: not running")
	}
	return b.srv.Close()
}
