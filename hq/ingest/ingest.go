// Package ingest is head office's MQTT subscriber: it takes every shop box's
// footfall reports and status messages off the broker and into a store.Store.
//
// # Delivery
//
// Boxes publish reports at least once (QoS 1, sent again until the broker
// acknowledges), so the same report can arrive several times; the store
// de-duplicates on (device, boot, seq). Ingest keeps the chain at least once
// up to the database: it subscribes with QoS 1 on a persistent session
// (fixed client id, CleanSession false) and acknowledges a report to the
// broker only after the transaction that stored it has committed. If the
// database fails, the batch is retried with back-off and nothing is
// acknowledged; if head office stops, the broker redelivers what was not
// acknowledged when it is back.
//
// Reports arrive on <prefix>/<store>/<device>/footfall. Ingest subscribes as
// a shared subscription, $share/<group>/<prefix>/+/+/footfall, so several
// head-office processes with the same group split the reports between them
// (each report goes to one of them) on any broker that supports shared
// subscriptions (mosquitto, EMQX, HiveMQ, VerneMQ). Processes on different
// hosts must share one database (PostgreSQL). Status messages
// (<prefix>/<store>/<device>/status, retained "online" or "offline", the
// latter also the box's last will) are small and idempotent: every process
// subscribes to all of them, not shared.
//
// # Batching
//
// Messages are committed in batches: a batch takes every message already
// waiting, up to Options.Batch, and is committed as soon as nothing more is
// waiting. Under load the batches grow by themselves while the previous one
// commits; when quiet, a report is stored as soon as it arrives. The broker
// bounds how many unacknowledged messages it sends one client (mosquitto's
// max_inflight_messages, 20 by default), and so the batch size: raise it on
// head office's broker for high report rates (docs/ARCHITECTURE.md).
//
// # Refused messages
//
// A report that does not parse (egress.ParseReport: the one wire type, every
// field checked), or whose store or device differs from its topic's, is
// refused: counted, logged (once a minute per topic) and acknowledged, so
// that it is not delivered again and again.
package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/store"
)

// Defaults for zero Options fields.
const (
	DefaultGroup    = "veil-hq"
	DefaultClientID = "veil-hq"
	DefaultBatch    = 512
)

// retryMax caps the back-off between attempts to store a batch.
const retryMax = 30 * time.Second

// refuseLogEvery is how often a topic's refused messages are logged.
const refuseLogEvery = time.Minute

// Options configure an Ingest. Store and MQTT.Broker are required.
type Options struct {
	// MQTT is the broker connection: Broker, ClientID (empty:
	// DefaultClientID; several processes need distinct ids), Username,
	// Password, TLS files, TopicPrefix (empty: egress.DefaultTopicPrefix),
	// ConnectTimeout and RetryInterval (the cap of the reconnect back-off).
	MQTT egress.MQTTOptions
	// Group is the shared-subscription group of the report subscription;
	// empty means DefaultGroup. "-" subscribes without sharing (for a broker
	// without shared subscriptions; run one process only then).
	Group string
	// Store receives the reports and statuses.
	Store store.Store
	// Batch is the most reports stored in one transaction; 0 means
	// DefaultBatch.
	Batch int
	// Metrics, when set, gets the ingest's counters (veil_hq_*).
	Metrics *prometheus.Registry
	Log     *slog.Logger // nil: slog.Default()
	Now     func() time.Time
}

// Status is the ingest's health, for /healthz.
type Status struct {
	Connected   bool      `json:"connected"`
	Received    int64     `json:"received"`   // report messages received (duplicates included)
	Stored      int64     `json:"stored"`     // new reports stored
	Duplicates  int64     `json:"duplicates"` // reports already stored
	Refused     int64     `json:"refused"`    // messages refused (malformed or mismatched topic)
	LastReport  time.Time `json:"last_report"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Ingest subscribes to the boxes' topics and stores what arrives. Make one
// with New and call Run once.
type Ingest struct {
	o             Options
	log           *slog.Logger
	broker        string
	reports       string // the report subscription (shared unless Group is "-")
	statuses      string
	clientOpts    *mqtt.ClientOptions
	msgs          chan mqtt.Message
	done          chan struct{} // closed when Run returns
	ran           atomic.Bool
	m             metrics
	mu            sync.Mutex
	st            Status
	refusedLogged map[string]time.Time
}

// New checks o and returns an Ingest. Errors name the option at fault.
func New(o Options) (*Ingest, error) {
	if o.Store == nil {
		return nil, errors.New("ingest: no store")
	}
	if o.MQTT.ClientID == "" {
		o.MQTT.ClientID = DefaultClientID
	}
	if o.MQTT.TopicPrefix == "" {
		o.MQTT.TopicPrefix = egress.DefaultTopicPrefix
	}
	if o.MQTT.ConnectTimeout == 0 {
		o.MQTT.ConnectTimeout = egress.DefaultConnectTimeout
	}
	if o.MQTT.RetryInterval == 0 {
		o.MQTT.RetryInterval = egress.DefaultRetryInterval
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := egress.CheckTopicPrefix(o.MQTT.TopicPrefix); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if o.Group != "-" && (strings.ContainsAny(o.Group, "/+#") || o.Group == "") {
		return nil, fmt.Errorf("ingest: shared-subscription group %q: must not contain '/', '+' or '#': %w", o.Group, egress.ErrInvalid)
	}
	co, err := o.MQTT.ClientOptions()
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	in := &Ingest{
		o:             o,
		log:           o.Log,
		broker:        co.Servers[0].String(),
		reports:       o.MQTT.TopicPrefix + "/+/+/footfall",
		statuses:      o.MQTT.TopicPrefix + "/+/+/status",
		msgs:          make(chan mqtt.Message, 4*o.Batch),
		done:          make(chan struct{}),
		m:             newMetrics(o.Metrics),
		refusedLogged: map[string]time.Time{},
	}
	if o.Group != "-" {
		in.reports = "$share/" + o.Group + "/" + in.reports
	}
	in.clientOpts = in.clientOptions(co)
	return in, nil
}

// Topics are the report and status subscriptions.
func (in *Ingest) Topics() (reports, statuses string) { return in.reports, in.statuses }

// Status returns the ingest's health now.
func (in *Ingest) Status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.st
}

// clientOptions completes co, the connection of o.MQTT, with the ingest's
// session and handlers.
func (in *Ingest) clientOptions(co *mqtt.ClientOptions) *mqtt.ClientOptions {
	return co.
		SetCleanSession(false). // the broker keeps unacknowledged reports for us
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(in.o.MQTT.RetryInterval).
		SetMaxReconnectInterval(in.o.MQTT.RetryInterval).
		SetOrderMatters(false).
		SetAutoAckDisabled(true). // acknowledged once stored
		SetResumeSubs(false).
		// A persistent session's queued messages can arrive right after
		// CONNACK, before this process has subscribed (and so registered
		// its handler): they go the same way, never acknowledged unread.
		SetDefaultPublishHandler(in.handle).
		SetOnConnectHandler(in.subscribe).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			in.log.Warn("hq ingest: connection to broker lost; reconnecting", "broker", in.broker, "err", err)
			in.setError(fmt.Errorf("connection lost: %w", err))
			in.setConnected(false)
		})
}

// subscribe (re)subscribes on every connection: harmless with a persistent
// session, and needed with a broker that lost it.
func (in *Ingest) subscribe(c mqtt.Client) {
	tok := c.SubscribeMultiple(map[string]byte{in.reports: 1, in.statuses: 1}, in.handle)
	go func() {
		tok.Wait()
		if err := tok.Error(); err != nil {
			in.log.Error("hq ingest: cannot subscribe", "reports", in.reports, "statuses", in.statuses, "err", err)
			in.setError(fmt.Errorf("subscribing: %w", err))
			return
		}
		in.log.Info("hq ingest: subscribed", "broker", in.broker, "reports", in.reports, "statuses", in.statuses)
		in.setConnected(true)
	}()
}

// handle queues a message for the committer. With OrderMatters false paho
// calls it on its own goroutine, so blocking here only holds back that
// message, and the broker's in-flight window bounds how many wait.
func (in *Ingest) handle(_ mqtt.Client, m mqtt.Message) {
	select {
	case in.msgs <- m:
	case <-in.done: // not acknowledged: the broker sends it again
	}
}
