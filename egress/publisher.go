package egress

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Defaults for zero MQTTOptions fields.
const (
	DefaultTopicPrefix    = "veil/v1"
	DefaultConnectTimeout = 10 * time.Second
	DefaultRetryInterval  = 5 * time.Second
	DefaultAckTimeout     = 30 * time.Second
	DefaultStoredWait     = time.Minute
	DefaultStoredWaitMax  = 30 * time.Minute
)

// Delivery modes, as Status reports them.
const (
	// DeliveryHeadOffice: a report leaves the outbox when head office's
	// signed Ack says it is stored (or refused for good).
	DeliveryHeadOffice = "head-office"
	// DeliveryBroker: a report leaves the outbox at the broker's PUBACK
	// (no head-office key configured).
	DeliveryBroker = "broker"
)

// ackQueue bounds the verified acknowledgements waiting for Run.
const ackQueue = 256

// The payloads of the status topic, published retained: StatusOnline on
// every connection, StatusOffline on a clean shutdown and, as the last will,
// by the broker when the connection is lost.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// maxInFlight bounds the reports published and not yet acknowledged.
const maxInFlight = 16

// shutdownWait bounds how long Run waits, once its context is cancelled, for
// the retained offline status to be acknowledged; disconnectQuiesce is what
// it then gives paho to send DISCONNECT.
const (
	shutdownWait      = time.Second
	disconnectQuiesce = 250 // milliseconds
)

// MQTTOptions configures the connection to head office's broker.
type MQTTOptions struct {
	// Broker is tcp://host:port or mqtt://host:port (plain), or
	// ssl://host:port or mqtts://host:port (TLS).
	Broker string
	// ClientID is the fixed MQTT client id that keeps the persistent session;
	// empty means "veil-" + the outbox's device.
	ClientID string
	// Username and Password authenticate to the broker when set.
	Username, Password string
	// CAFile is a PEM bundle of CAs to trust for a TLS broker instead of
	// the system roots. CertFile and KeyFile (PEM, both or neither) are the
	// client certificate for brokers that require one.
	CAFile, CertFile, KeyFile string
	// TopicPrefix is the first levels of every topic,
	// <prefix>/<store>/<device>/footfall and …/status; empty means
	// DefaultTopicPrefix.
	TopicPrefix string
	// ConnectTimeout bounds one connection attempt and one network write;
	// zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// RetryInterval is the pause between connection attempts (and the cap
	// of paho's reconnect back-off) and how often Run re-checks the outbox;
	// zero means DefaultRetryInterval.
	RetryInterval time.Duration
	// AckTimeout is how long a published report may wait for its PUBACK,
	// while connected, before it is published again (head office drops the
	// duplicate); zero means DefaultAckTimeout.
	AckTimeout time.Duration

	// SignKey is the box's Ed25519 key; every report is sent signed with it
	// (Report.Sign). Nil sends reports unsigned, which head office refuses
	// unless it lists the device as allowed to be unsigned.
	SignKey ed25519.PrivateKey
	// HeadOfficeKey is head office's Ed25519 public key. With it, the
	// Publisher subscribes to AckTopic and a report leaves the outbox only
	// when an Ack signed with this key names it; a report the broker has
	// acknowledged but head office has not is published again after
	// StoredWait, doubling up to StoredWaitMax. Without it, delivery ends
	// at the broker's PUBACK (DeliveryBroker).
	HeadOfficeKey ed25519.PublicKey
	// StoredWait and StoredWaitMax: see HeadOfficeKey; zero means
	// DefaultStoredWait and DefaultStoredWaitMax.
	StoredWait, StoredWaitMax time.Duration
	// MaxAwaiting bounds the reports handed to the network that head office
	// has not acknowledged; while that many wait, newer reports stay
	// unpublished, so the outbox can still merge them when it is full (a
	// published report may be stored at head office and is never merged).
	// Zero means DefaultMaxAwaiting.
	MaxAwaiting int
}

// DefaultMaxAwaiting is MaxAwaiting's default: a tenth of the outbox's
// default bound.
const DefaultMaxAwaiting = DefaultMaxEntries / 10

// Status is a Publisher's health, for a health endpoint.
type Status struct {
	Connected   bool      `json:"connected"`     // an MQTT session is up now
	Pending     int       `json:"pending"`       // reports in the outbox, in flight included
	InFlight    int       `json:"in_flight"`     // published, PUBACK not yet received
	LastPublish time.Time `json:"last_publish"`  // when the last PUBACK arrived; zero if none yet
	LastError   string    `json:"last_error"`    // the most recent connection or publish error
	LastErrorAt time.Time `json:"last_error_at"` // when it happened

	Delivery       string    `json:"delivery"`        // DeliveryHeadOffice or DeliveryBroker
	AwaitingStored int       `json:"awaiting_stored"` // acknowledged by the broker, not yet by head office
	OldestPending  time.Time `json:"oldest_pending"`  // end of the oldest window still in the outbox; zero if none
	LastStored     time.Time `json:"last_stored"`     // when head office's last Ack arrived; zero if none yet
	Refused        int       `json:"refused"`         // reports head office refused for good since start (dropped)
	BadAcks        int       `json:"bad_acks"`        // messages on the ack topic that were not a valid Ack for this box
}

// Publisher sends an Outbox's reports to head office's MQTT broker. It is
// the only part of veil that sends anything off the box, and what it sends
// is fixed by its type: Report.Marshal output on the footfall topic, and
// the strings StatusOnline and StatusOffline on the status topic. It has no
// method that publishes other bytes or to other topics.
type Publisher struct {
	o        MQTTOptions
	box      *Outbox
	log      *slog.Logger
	broker   string      // normalised Broker
	tls      *tls.Config // nil for a plain broker
	footfall string      // <prefix>/<store>/<device>/footfall
	status   string      // <prefix>/<store>/<device>/status
	ackTopic string      // <prefix>/<store>/<device>/ack; empty without HeadOfficeKey
	acks     chan Ack    // verified acknowledgements for this box, to Run

	ran  atomic.Bool
	lost chan struct{} // the current client lost its connection (capacity 1)

	mu     sync.Mutex
	client mqtt.Client
	st     Status
	failed bool // the last connection attempt failed; log the next failure quietly
}

// NewPublisher checks o and loads the TLS files it names; errors name the
// option and the file. The Publisher sends box's reports; give an Outbox
// one Publisher only. The caller keeps owning box and closes it after Run
// returns. log gets connection changes and errors; nil means
// slog.Default().
func NewPublisher(o MQTTOptions, box *Outbox, log *slog.Logger) (*Publisher, error) {
	if box == nil {
		return nil, fmt.Errorf("publisher: no outbox: %w", ErrInvalid)
	}
	if log == nil {
		log = slog.Default()
	}
	if o.ClientID == "" {
		o.ClientID = "veil-" + box.o.Device
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.StoredWait == 0 {
		o.StoredWait = DefaultStoredWait
	}
	if o.MaxAwaiting <= 0 {
		o.MaxAwaiting = DefaultMaxAwaiting
	}
	if o.StoredWaitMax == 0 {
		o.StoredWaitMax = max(DefaultStoredWaitMax, o.StoredWait)
	}
	if o.SignKey != nil && len(o.SignKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("publisher: signing key is not an Ed25519 private key: %w", ErrInvalid)
	}
	if o.HeadOfficeKey != nil && len(o.HeadOfficeKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("mqtt head_office_key: not an Ed25519 public key: %w", ErrInvalid)
	}
	for _, d := range [...]struct {
		name string
		v    time.Duration
	}{{"connect timeout", o.ConnectTimeout}, {"retry interval", o.RetryInterval}, {"ack timeout", o.AckTimeout},
		{"stored wait", o.StoredWait}, {"stored wait max", o.StoredWaitMax - o.StoredWait}} {
		if d.v < 0 {
			return nil, fmt.Errorf("mqtt %s: %s is negative: %w", d.name, d.v, ErrInvalid)
		}
	}
	if err := checkTopicPrefix(o.TopicPrefix); err != nil {
		return nil, err
	}
	broker, tlsConf, err := o.Client()
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		o:        o,
		box:      box,
		log:      log,
		broker:   broker,
		footfall: o.TopicPrefix + "/" + box.o.Store + "/" + box.o.Device + "/footfall",
		status:   o.TopicPrefix + "/" + box.o.Store + "/" + box.o.Device + "/status",
		tls:      tlsConf,
		lost:     make(chan struct{}, 1),
		acks:     make(chan Ack, ackQueue),
	}
	p.st.Delivery = DeliveryBroker
	if o.HeadOfficeKey != nil {
		p.ackTopic = AckTopic(o.TopicPrefix, box.o.Store, box.o.Device)
		p.st.Delivery = DeliveryHeadOffice
	}
	return p, nil
}

// Client checks o's broker URL and loads the TLS files it names, for any MQTT
// client of veil (the publisher, head office's subscribers). It returns the
// broker URL in the form paho takes and the TLS configuration, nil for a
// plain broker. Errors name the option or file and wrap ErrInvalid when a
// value is malformed.
func (o MQTTOptions) Client() (broker string, tlsConf *tls.Config, err error) {
	broker, useTLS, err := parseBroker(o.Broker)
	if err != nil {
		return "", nil, err
	}
	if useTLS {
		if tlsConf, err = loadTLS(o); err != nil {
			return "", nil, err
		}
	} else if o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" {
		return "", nil, fmt.Errorf("mqtt broker %s is not TLS but CA, certificate or key files are set; use ssl:// or mqtts://: %w", o.Broker, ErrInvalid)
	}
	return broker, tlsConf, nil
}

// CheckTopicPrefix accepts 1..128 characters of names joined by "/": no
// wildcards, empty levels or leading or trailing "/".
func CheckTopicPrefix(s string) error { return checkTopicPrefix(s) }

// parseBroker checks a broker URL and returns it with the scheme paho
// knows and whether it is TLS.
func parseBroker(s string) (string, bool, error) {
	const allowed = "allowed tcp://, mqtt://, ssl:// or mqtts://host:port"
	u, err := url.Parse(s)
	if err != nil {
		return "", false, fmt.Errorf("mqtt broker %q: %v; %s: %w", s, err, allowed, ErrInvalid)
	}
	var useTLS bool
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "mqtts":
		useTLS = true
	default:
		return "", false, fmt.Errorf("mqtt broker %q: scheme %q; %s: %w", s, u.Scheme, allowed, ErrInvalid)
	}
	if u.User != nil {
		return "", false, fmt.Errorf("mqtt broker: credentials in the URL; set username and password instead: %w", ErrInvalid)
	}
	port, err := strconv.Atoi(u.Port())
	if u.Hostname() == "" || err != nil || port < 1 || port > 65535 || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("mqtt broker %q is not a broker URL; %s: %w", s, allowed, ErrInvalid)
	}
	return u.Scheme + "://" + u.Host, useTLS, nil
}

// checkTopicPrefix accepts 1..128 characters of names joined by "/", so no
// wildcards, empty levels or leading or trailing "/".
func checkTopicPrefix(s string) error {
	if len(s) > 128 {
		return fmt.Errorf("mqtt topic prefix: %d characters; allowed up to 128: %w", len(s), ErrInvalid)
	}
	for level := range strings.SplitSeq(s, "/") {
		if err := checkName(level); err != nil {
			return fmt.Errorf("mqtt topic prefix %q: level %w", s, err)
		}
	}
	return nil
}

// loadTLS builds the client's TLS configuration from the files o names.
func loadTLS(o MQTTOptions) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt CA file %s: no PEM certificate in it: %w", o.CAFile, ErrInvalid)
		}
		c.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		for _, f := range [...]struct{ what, path string }{{"certificate", o.CertFile}, {"key", o.KeyFile}} {
			if _, err := os.Stat(f.path); err != nil {
				return nil, fmt.Errorf("mqtt client %s file: %w", f.what, err)
			}
		}
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt client certificate %s with key %s: %w", o.CertFile, o.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case o.CertFile != "":
		return nil, fmt.Errorf("mqtt client certificate %s is set without a key file; set both or neither: %w", o.CertFile, ErrInvalid)
	case o.KeyFile != "":
		return nil, fmt.Errorf("mqtt client key %s is set without a certificate file; set both or neither: %w", o.KeyFile, ErrInvalid)
	}
	return c, nil
}

// ClientOptions are paho options for another MQTT client connecting to the
// broker o names with o's credentials and TLS files: the broker URL is
// checked and the files are loaded as NewPublisher does (errors name the
// option and the file), and o.ConnectTimeout (or DefaultConnectTimeout)
// bounds connecting and writing. o.ClientID is required: each client needs
// its own. The caller sets the session, reconnection and handlers. It is
// for the box's subscriber of head office's consent down-link and for head
// office's own clients; on the box, Publisher stays the only client that
// publishes.
func (o MQTTOptions) ClientOptions() (*mqtt.ClientOptions, error) {
	if o.ClientID == "" {
		return nil, fmt.Errorf("mqtt client id: empty: %w", ErrInvalid)
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.ConnectTimeout < 0 {
		return nil, fmt.Errorf("mqtt connect timeout: %s is negative: %w", o.ConnectTimeout, ErrInvalid)
	}
	broker, tlsConf, err := o.Client()
	if err != nil {
		return nil, err
	}
	co := mqtt.NewClientOptions().AddBroker(broker).SetClientID(o.ClientID).
		SetConnectTimeout(o.ConnectTimeout).SetWriteTimeout(o.ConnectTimeout)
	if o.Username != "" {
		co.SetUsername(o.Username)
	}
	if o.Password != "" {
		co.SetPassword(o.Password)
	}
	if tlsConf != nil {
		co.SetTLSConfig(tlsConf)
	}
	return co, nil
}

// Topics returns the footfall and status topics this Publisher uses.
func (p *Publisher) Topics() (footfall, status string) { return p.footfall, p.status }

// AckTopic returns the topic the Publisher takes head office's
// acknowledgements from, "" when delivery ends at the broker.
func (p *Publisher) AckTopic() string { return p.ackTopic }

// Status returns the Publisher's health now.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	st := p.st
	c := p.client
	p.mu.Unlock()
	st.Connected = c != nil && c.IsConnectionOpen()
	st.Pending = p.box.Len()
	st.OldestPending = p.box.OldestEnd()
	return st
}

// Run connects to the broker and sends the outbox until ctx is cancelled;
// then it publishes the retained offline status (if connected), disconnects
// and returns nil, within about a second and a half even when the broker
// is unreachable. It may be called once.
//
// The session is MQTT 3.1.1 with a fixed client id, CleanSession false and
// QoS 1. On every connection Run publishes the retained StatusOnline on the
// status topic (StatusOffline is the retained last will); then it publishes
// the outbox's reports on the footfall topic in (boot, seq) order, up to 16
// unacknowledged at a time, and removes each from the outbox only when its
// PUBACK arrives. Reports added while it runs are sent at once. While the
// broker is unreachable everything stays in the outbox and Run retries
// every RetryInterval; after reconnecting it sends every unacknowledged
// report again. Delivery is therefore at least once: head office
// de-duplicates on (device, boot, seq).
//
// Reconnecting is done here rather than by paho's auto-reconnect: paho's
// resume re-sends its in-memory copies of unacknowledged publishes
// concurrently with new ones (a data race, paho.mqtt.golang issue 703), and
// the outbox, not paho's memory, is the copy that survives a crash. So each
// connection gets a fresh paho client (with ConnectRetry for its first
// connection) and the outbox is what gets re-sent.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("egress: Publisher.Run called twice")
	}
	p.log.Info("egress: connecting to broker", "broker", p.broker, "client_id", p.o.ClientID, "footfall_topic", p.footfall)
	tick := time.NewTicker(p.o.RetryInterval)
	defer tick.Stop()
	var (
		c          mqtt.Client // the current client; nil between connections
		connecting mqtt.Token  // c's connect token until it completes
		online     bool        // c is connected and has published StatusOnline
		next       time.Time   // no new client before then
		f          = make(flights)
		waiting    = make(awaitings)
	)
	for {
		if c == nil && !time.Now().Before(next) {
			c = mqtt.NewClient(p.clientOptions())
			p.mu.Lock()
			p.client = c
			p.mu.Unlock()
			connecting, online, next = c.Connect(), false, time.Now().Add(p.o.RetryInterval)
		}
		if connecting != nil {
			select {
			case <-connecting.Done():
				// With ConnectRetry the token completes only once connected
				// (and paho's resume is over) or on Disconnect.
				if err := connecting.Error(); err != nil {
					p.log.Warn("egress: connection attempt abandoned; starting over", "broker", p.broker, "err", err)
					p.setError(fmt.Errorf("connecting to %s: %w", p.broker, err))
					c.Disconnect(0)
					c = nil
				} else {
					p.log.Info("egress: connected to broker", "broker", p.broker, "pending", p.box.Len())
					p.mu.Lock()
					p.failed = false
					p.mu.Unlock()
					c.Publish(p.status, 1, true, StatusOnline)
					if p.ackTopic != "" {
						// The session is persistent: the broker keeps this
						// subscription and queues acknowledgements while the
						// box is away (they arrive on the default handler
						// before this SUBSCRIBE is answered).
						c.Subscribe(p.ackTopic, 1, p.onAck)
					}
					online = true
				}
				connecting = nil
			default:
			}
		}
		open := online && c.IsConnectionOpen()
		p.settle(f, open, waiting)
		if open {
			p.send(c, f, waiting)
		}
		var connected <-chan struct{}
		if connecting != nil {
			connected = connecting.Done()
		}
		select {
		case <-ctx.Done():
			p.stop(c, online, f, waiting)
			return nil
		case <-connected:
		case <-p.lost:
			// This client is done. Its unacknowledged publishes will never
			// complete; the next client sends them again from the outbox.
			clear(f)
			if c != nil {
				c.Disconnect(0)
			}
			c, connecting, online = nil, nil, false
		case a := <-p.acks:
			p.applyAck(a, f, waiting)
		case <-p.box.notify:
		case <-f.oldestDone():
		case <-tick.C:
		}
	}
}

// clientOptions are the paho options for one connection of p.
func (p *Publisher) clientOptions() *mqtt.ClientOptions {
	co := mqtt.NewClientOptions().
		AddBroker(p.broker).
		SetClientID(p.o.ClientID).
		SetCleanSession(false).
		SetAutoReconnect(false). // Run reconnects; see there
		SetConnectRetry(true).
		SetConnectRetryInterval(p.o.RetryInterval).
		SetConnectTimeout(p.o.ConnectTimeout).
		SetWriteTimeout(p.o.ConnectTimeout).
		SetOrderMatters(false).
		SetResumeSubs(false).
		SetWill(p.status, StatusOffline, 1, true).
		SetDefaultPublishHandler(p.onAck).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.log.Warn("egress: connection to broker lost; reports stay in the outbox", "broker", p.broker, "err", err)
			p.setError(fmt.Errorf("connection lost: %w", err))
			signal(p.lost)
		}).
		SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
			if n, ok := n.(mqtt.ConnectionNotificationFailed); ok {
				p.mu.Lock()
				quiet := p.failed
				p.failed = true
				p.mu.Unlock()
				lvl := slog.LevelWarn
				if quiet {
					lvl = slog.LevelDebug
				}
				p.log.Log(context.Background(), lvl, "egress: cannot connect to broker; will retry",
					"broker", p.broker, "retry_in", p.o.RetryInterval, "err", n.Reason)
				p.setError(fmt.Errorf("connecting to %s: %w", p.broker, n.Reason))
			}
		})
	if p.o.Username != "" {
		co.SetUsername(p.o.Username)
	}
	if p.o.Password != "" {
		co.SetPassword(p.o.Password)
	}
	if p.tls != nil {
		co.SetTLSConfig(p.tls)
	}
	return co
}

// signal sends on a capacity-1 channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (p *Publisher) setError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.LastError = err.Error()
	p.st.LastErrorAt = time.Now()
}

// flight is one published report waiting for its PUBACK.
type flight struct {
	r    Report
	tok  mqtt.Token
	sent time.Time
}

type flights map[ident]*flight

// oldestDone returns the completion channel of the oldest report in
// flight, nil if none. QoS 1 acknowledgements arrive in order, so waiting
// on the oldest wakes Run for nearly every one; the ticker catches the rest.
func (f flights) oldestDone() <-chan struct{} {
	var oldest *flight
	for id, fl := range f {
		if oldest == nil || id.compare(identOf(oldest.r)) < 0 {
			oldest = fl
		}
	}
	if oldest == nil {
		return nil
	}
	return oldest.tok.Done()
}

// settle handles the reports in flight whose publication completed: an
// acknowledged one is removed from the outbox, a failed one is forgotten so
// that send publishes it again. While connected, one that has waited longer
// than AckTimeout is forgotten too.
func (p *Publisher) settle(f flights, open bool, waiting awaitings) {
	for id, fl := range f {
		select {
		case <-fl.tok.Done():
		default:
			if open && time.Since(fl.sent) > p.o.AckTimeout {
				p.log.Warn("egress: no PUBACK in time; publishing the report again", "boot", id.boot, "seq", id.seq, "waited", time.Since(fl.sent).Round(time.Millisecond))
				delete(f, id)
			}
			continue
		}
		delete(f, id)
		if err := fl.tok.Error(); err != nil {
			p.log.Debug("egress: publish failed; report stays in the outbox", "boot", id.boot, "seq", id.seq, "err", err)
			p.setError(fmt.Errorf("publishing boot %d seq %d: %w", id.boot, id.seq, err))
			continue
		}
		if p.ackTopic != "" {
			// The broker has it; head office has not said it stored it.
			waiting.published(id, p.o.StoredWait, p.o.StoredWaitMax)
			p.mu.Lock()
			p.st.LastPublish = time.Now()
			p.mu.Unlock()
			continue
		}
		if err := p.box.Remove(fl.r); err != nil {
			p.log.Error("egress: report acknowledged but not removed from the outbox; it will be sent again", "boot", id.boot, "seq", id.seq, "err", err)
			p.setError(err)
			continue
		}
		p.mu.Lock()
		p.st.LastPublish = time.Now()
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.st.InFlight = len(f)
	p.st.AwaitingStored = len(waiting)
	p.mu.Unlock()
}

// send publishes the next reports from the outbox, up to maxInFlight
// unacknowledged by the broker, leaving out those waiting for head
// office's Ack whose time to be published again has not come.
func (p *Publisher) send(c mqtt.Client, f flights, waiting awaitings) {
	n := maxInFlight - len(f)
	if n <= 0 {
		return
	}
	now := time.Now()
	fresh := 0 // reports taken now that were never published in this run
	rs, err := p.box.take(n, func(id ident) bool {
		w := waiting[id]
		if f[id] != nil || w != nil && now.Before(w.next) {
			return true
		}
		if w == nil && p.ackTopic != "" {
			if len(waiting)+len(f)+fresh >= p.o.MaxAwaiting {
				return true // head office is behind: keep it mergeable
			}
			fresh++
		}
		return false
	})
	if err != nil {
		p.log.Error("egress: cannot take reports from the outbox", "err", err)
		p.setError(err)
		return
	}
	for _, r := range rs {
		var payload []byte
		if p.o.SignKey != nil {
			payload, err = r.Sign(p.o.SignKey)
		} else {
			payload, err = r.Marshal()
		}
		if err != nil { // cannot happen: the outbox holds only valid reports
			p.log.Error("egress: invalid report in the outbox", "boot", r.Boot, "seq", r.Seq, "err", err)
			continue
		}
		if w := waiting[identOf(r)]; w != nil {
			p.log.Info("egress: head office has not confirmed storing the report; publishing it again",
				"boot", r.Boot, "seq", r.Seq, "published", w.tries, "waited", now.Sub(w.since).Round(time.Second))
		}
		f[identOf(r)] = &flight{r: r, tok: c.Publish(p.footfall, 1, false, payload), sent: time.Now()}
	}
	p.mu.Lock()
	p.st.InFlight = len(f)
	p.mu.Unlock()
}

// stop publishes the retained offline status if connected, collects the
// acknowledgements that arrived meanwhile, and disconnects.
func (p *Publisher) stop(c mqtt.Client, online bool, f flights, waiting awaitings) {
	if c == nil {
		return
	}
	if online && c.IsConnectionOpen() {
		t := c.Publish(p.status, 1, true, StatusOffline)
		if !t.WaitTimeout(shutdownWait) {
			p.log.Warn("egress: offline status not acknowledged before shutdown; the broker will publish the last will instead")
		} else if err := t.Error(); err != nil {
			p.log.Warn("egress: offline status not sent; the broker will publish the last will instead", "err", err)
		}
	}
	p.settle(f, false, waiting)
	c.Disconnect(disconnectQuiesce)
	p.log.Info("egress: disconnected from broker", "broker", p.broker, "pending", p.box.Len())
}

// awaiting is a report the broker has acknowledged and head office has not.
type awaiting struct {
	since time.Time // first PUBACK
	next  time.Time // publish it again then
	tries int       // PUBACKs so far
}

type awaitings map[ident]*awaiting

// published records a PUBACK of id: it is published again after wait,
// doubled for every earlier PUBACK, at most maxWait.
func (w awaitings) published(id ident, wait, maxWait time.Duration) {
	a := w[id]
	now := time.Now()
	if a == nil {
		a = &awaiting{since: now}
		w[id] = a
	}
	d := wait
	for i := 0; i < a.tries && d < maxWait; i++ {
		d *= 2
	}
	a.tries++
	a.next = now.Add(min(d, maxWait))
}

// onAck is paho's handler for the ack topic (and the default handler, for
// messages the persistent session delivers before the subscription is
// answered): it verifies the message and hands it to Run. Anything else is
// counted and logged, and changes nothing.
func (p *Publisher) onAck(_ mqtt.Client, m mqtt.Message) {
	if p.ackTopic == "" || m.Topic() != p.ackTopic {
		p.badAck(fmt.Errorf("message on %q, not the ack topic", m.Topic()))
		return
	}
	a, err := ParseAck(m.Payload(), p.o.HeadOfficeKey)
	if err == nil && (a.Device != p.box.o.Device || a.Store != p.box.o.Store) {
		err = fmt.Errorf("acknowledgement for %s/%s, this box is %s/%s", a.Store, a.Device, p.box.o.Store, p.box.o.Device)
	}
	if err != nil {
		p.badAck(err)
		return
	}
	select {
	case p.acks <- a:
	default: // Run is behind; the reports are published again and acknowledged again
		p.log.Warn("egress: acknowledgement dropped, too many waiting; its reports will be published again", "boot", a.Boot)
	}
}

func (p *Publisher) badAck(err error) {
	p.log.Warn("egress: refused a message on the acknowledgement topic", "err", err)
	p.mu.Lock()
	p.st.BadAcks++
	p.mu.Unlock()
}

// applyAck removes from the outbox the reports a names.
func (p *Publisher) applyAck(a Ack, f flights, waiting awaitings) {
	removed, err := p.box.acknowledge(a)
	if err != nil {
		p.log.Error("egress: head office acknowledged reports that could not be removed from the outbox; they will be sent again", "boot", a.Boot, "err", err)
		p.setError(err)
	}
	refused := 0
	for _, r := range removed {
		id := identOf(r)
		delete(waiting, id)
		delete(f, id)
		for _, x := range a.Refused {
			if x.Seq == r.Seq {
				refused++
				p.log.Warn("egress: head office refused a report for good; dropped", "boot", r.Boot, "seq", r.Seq,
					"camera", r.Camera, "line", r.Line, "start", r.Start, "end", r.End, "in", r.In, "out", r.Out, "reason", x.Reason)
			}
		}
	}
	p.log.Debug("egress: head office acknowledged reports", "boot", a.Boot, "removed", len(removed), "refused", refused)
	p.mu.Lock()
	p.st.LastStored = time.Now()
	p.st.Refused += refused
	p.st.InFlight = len(f)
	p.st.AwaitingStored = len(waiting)
	p.mu.Unlock()
}
