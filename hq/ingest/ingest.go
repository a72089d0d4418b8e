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
// # Which reports are stored
//
// Every report must come from a registered box (Options.Boxes, head
// office's box registry) and be signed with that box's key; the registry's
// store must be the report's and its topic's. Devices listed in
// Options.Unsigned may send unsigned reports while their boxes are
// upgraded: those are stored and counted as unsigned on the device. A
// report that passes is then checked for plausibility: a window of at most
// MaxWindow, ending no later than Options.MaxSkew after head office's
// clock, with in+out at most Options.MaxRate per second of the window (a
// window shorter than RateFloor is allowed RateFloor's worth).
//
// Everything else is refused: counted (veil_hq_messages_refused_total by
// reason), logged (once a minute per topic), never stored, and
// acknowledged to the broker so that it is not delivered again and again.
// The reasons: malformed (egress.ParseReport's strict parse fails), topic
// (the report names another store or device than its topic), replayed (a
// genuine report of one box published on another's topic), unknown-device,
// wrong-store, unsigned, bad-signature, implausible, conflict (its identity
// is stored with other content: store.Conflict, also counted on the
// device), status (a status message that is neither online nor offline).
// Statuses (unsigned strings) are stored only for registered devices in
// their registered store and for devices allowed unsigned.
//
// # Acknowledgements to the boxes
//
// After a batch commits, ingest publishes on each box's
// egress.AckTopic (QoS 1) one egress.Ack per (device, boot) of the batch,
// signed with head office's key (Options.Key): Stored names every report
// of the batch that head office now holds (new, or a repeat of a stored
// one), Refused those it will never store (implausible, conflict), so the
// box can drop them from its outbox. Only reports whose signature verified
// (or from a device allowed unsigned) are acknowledged at all: an unsigned,
// forged or unregistered report gets no answer, so a forger cannot make a
// box drop its real windows. Then the batch's messages are acknowledged to
// the broker. An acknowledgement that cannot be published is logged and
// counted; the box publishes the report again and it is acknowledged as a
// repeat.
package ingest

import (
	"crypto/ed25519"
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
	DefaultMaxRate  = 10.0            // people per second per line
	DefaultMaxSkew  = 5 * time.Minute // how far in the future a window may end
)

// Plausibility limits that are not options.
const (
	// MaxWindow is the longest window head office stores (footfall.window
	// is at most 24h, and a box's outbox never merges windows beyond it).
	MaxWindow = egress.MaxWindow
	// RateFloor is the shortest window length the rate limit is applied
	// to: a shorter window (a box closes a partial one when it stops, often
	// about a second long) may hold MaxRate × RateFloor people, 600 at the
	// default rate.
	RateFloor = time.Minute
)

// ackItems bounds the ranges and refusals of one Ack together, within
// egress.MaxAckRanges and egress.MaxAckRefusals and well within
// egress.MaxAckSize (a range or a refusal is at most about 60 bytes).
const ackItems = 500

// ackWait bounds the wait for the broker to acknowledge a batch's Acks.
const ackWait = 10 * time.Second

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
	// Boxes is the box registry (hq.boxes): the only devices whose reports
	// are stored, each with its store and the public key its reports must
	// be signed with. A device may be listed once.
	Boxes []Box
	// Unsigned lists devices, "store/device", whose unsigned reports are
	// stored (counted as unsigned on the device) while they are upgraded
	// to firmware that signs; they need not be registered. A signed report
	// of a registered device must still verify.
	Unsigned []string
	// Key is head office's Ed25519 key, which signs the Acks; required.
	Key ed25519.PrivateKey
	// MaxRate is the most people (in+out) a window may count per second of
	// its length on one line; 0 means DefaultMaxRate.
	MaxRate float64
	// MaxSkew is how far after head office's clock a window may end; 0
	// means DefaultMaxSkew.
	MaxSkew time.Duration
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
	Refused     int64     `json:"refused"`    // messages refused, for any reason (see the package doc)
	Acks        int64     `json:"acks"`       // acknowledgements published to boxes and acknowledged by the broker
	AckErrors   int64     `json:"ack_errors"` // acknowledgements that could not be published
	LastReport  time.Time `json:"last_report"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Box is a registered box.
type Box struct {
	Device string            // its site.device, unique across all stores
	Store  string            // its site.store
	Key    ed25519.PublicKey // its consent.key_file key, which signs its reports
}

// Ingest subscribes to the boxes' topics and stores what arrives. Make one
// with New and call Run once.
type Ingest struct {
	o             Options
	log           *slog.Logger
	boxes         map[string]Box  // by device
	unsigned      map[string]bool // "store/device"
	client        mqtt.Client     // set by Run
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
	ackLogged     time.Time // when a failed Ack was last logged
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
	if o.MaxRate == 0 {
		o.MaxRate = DefaultMaxRate
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	if len(o.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("ingest: no Ed25519 key to sign acknowledgements with")
	}
	if !(o.MaxRate > 0) || o.MaxSkew < 0 {
		return nil, fmt.Errorf("ingest: max rate %g, max skew %s; allowed a positive rate and a skew of 0 or more: %w", o.MaxRate, o.MaxSkew, egress.ErrInvalid)
	}
	boxes := make(map[string]Box, len(o.Boxes))
	for i, b := range o.Boxes {
		if p := egress.NameProblem(b.Device) + egress.NameProblem(b.Store); p != "" || len(b.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ingest: box %d (%q/%q): not a valid name or Ed25519 public key: %w", i+1, b.Store, b.Device, egress.ErrInvalid)
		}
		if _, dup := boxes[b.Device]; dup {
			return nil, fmt.Errorf("ingest: box %d: device %q is registered twice: %w", i+1, b.Device, egress.ErrInvalid)
		}
		boxes[b.Device] = b
	}
	unsigned := make(map[string]bool, len(o.Unsigned))
	for _, u := range o.Unsigned {
		if err := CheckDeviceName(u); err != nil {
			return nil, fmt.Errorf("ingest: unsigned device %w", err)
		}
		unsigned[u] = true
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
		boxes:         boxes,
		unsigned:      unsigned,
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

// CheckDeviceName checks s as a "store/device" entry of Options.Unsigned
// (and hq.unsigned_devices).
func CheckDeviceName(s string) error {
	st, dev, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("%q is not store/device: %w", s, egress.ErrInvalid)
	}
	for _, p := range [...]string{egress.NameProblem(st), egress.NameProblem(dev)} {
		if p != "" {
			return fmt.Errorf("%q is not store/device: %s: %w", s, p, egress.ErrInvalid)
		}
	}
	return nil
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
