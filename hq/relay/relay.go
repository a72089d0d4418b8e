// Package relay is head office's consent relay (veil-hq). Shoppers on
// mobile data cannot reach a shop's box, so the sign's QR code may point at
// head office instead (the box's consent.public_url). The relay serves the
// same phone pages as the box (consent.PhoneHandler), checks the QR code's
// box-signed token with that box's registered key, and sends the grant or
// withdrawal down to the box over MQTT as a consent.Downlink signed with
// head office's key, on <prefix>/<store>/<device>/consent (QoS 1). The box
// checks that signature, the time and replays, and the token again (single
// use is the box's to enforce), and binds the grant itself to the one
// person on the sign's marked spot within consent.RelayBindWindow.
//
// The grant is sent when the shopper taps Yes (with the notice agreed): the
// sign's code is then fresh and the shopper is at the sign. The box sends
// nothing back (only counts leave a box), so head office cannot know
// whether the grant was bound or has ended on the box, and its page says
// so. If the broker cannot be reached, or does not acknowledge the message
// within the ack timeout, the shopper gets an error page and nothing is
// recorded.
//
// Head office keeps its own copy of the consent records in a consent.Ledger
// (grant, withdraw, expire; consent id, box, camera, zone, notice version
// and hash, language, purposes, times): no IP address, cookie, user agent or
// other identifier of the phone, and no image. The grants themselves, with
// a hash of each phone's secret, are kept in a file beside it (grants.go),
// written durably before the phone is answered, so a phone page withdraws
// its consent after veil-hq restarts, or crashes, as before. A grant the
// file does not have (it was lost or moved away) but the ledger shows
// running is recorded as ended when the relay starts: no phone can
// withdraw it here any more, and the box still ends it when its track
// leaves, or at its expiry.
package relay

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
)

// Defaults for zero Options fields.
const (
	DefaultClientID    = "veil-hq-relay"
	DefaultAckTimeout  = 10 * time.Second
	DefaultMaxDuration = 2 * time.Hour
	DefaultRateLimit   = 30
)

// Options configure a Relay. KeyFile, Ledger and MQTT.Broker are required.
type Options struct {
	// KeyFile holds head office's relay key, an Ed25519 seed (32 bytes),
	// created (mode 0600) if missing, like the box's consent key. Its
	// public half (PublicKey) goes into every box's consent.relay_key.
	KeyFile string
	// Boxes are the registered boxes (LoadBoxes). A code from a box not
	// listed is refused.
	Boxes []Box
	// NoticeFile is the notice JSON shown on the phone pages (the form of
	// consent/notice.json); empty: consent.DefaultNotice(). It must be the
	// version the boxes have in force: a code shown with another version
	// is refused (here, and by the box).
	NoticeFile string
	// Ledger is head office's consent ledger file (consent.OpenLedger:
	// created 0600 if missing, verified when opened).
	Ledger string
	// GrantsFile keeps the grants across restarts (see grants.go); empty:
	// GrantsFile(Ledger), beside the ledger.
	GrantsFile string
	// MQTT is the publishing connection to the broker the boxes use:
	// Broker, Username, Password, CAFile, CertFile, KeyFile as for a box.
	// ClientID: empty means DefaultClientID (give each relay process its
	// own). TopicPrefix: empty means egress.DefaultTopicPrefix (must be the
	// boxes' mqtt.topic_prefix). ConnectTimeout bounds connecting;
	// RetryInterval is the pause between reconnection attempts (zero: 5
	// s); AckTimeout is how long a send waits for the broker's PUBACK
	// before the shopper is told it failed (zero: DefaultAckTimeout).
	MQTT egress.MQTTOptions
	// MaxDuration is the longest a consent lasts in head office's records
	// and receipts; set it to the boxes' consent.max_duration (each box
	// applies its own). Zero: DefaultMaxDuration.
	MaxDuration time.Duration
	// RateLimit is the most requests a minute from one client to the phone
	// pages; zero: DefaultRateLimit.
	RateLimit int
	// ClientIP names a request's client for the rate limit (behind a
	// trusted proxy, the forwarded address); nil: the connection's
	// address. It is never recorded.
	ClientIP func(*http.Request) string
	Log      *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now
}

// Relay is head office's consent relay. Its methods are safe for
// concurrent use.
type Relay struct {
	o      Options
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	notice consent.Notice
	ledger *consent.Ledger
	boxes  map[string]Box
	client mqtt.Client
	log    *slog.Logger

	grantsPath string

	mu     sync.Mutex
	used   map[string]time.Time // token nonces sent or declined (or being sent) -> token expiry
	grants map[string]*grant
}

// grant is a consent given here. Its Grant.Secret is empty: only the
// phone has the secret; the relay keeps its hash.
type grant struct {
	consent.Grant
	box        Box
	secretHash string
	endedAt    time.Time
}

// New checks o, loads (or creates) the key, opens the ledger and starts
// connecting to the broker; it does not wait for the connection.
func New(o Options) (*Relay, error) {
	if o.KeyFile == "" || o.Ledger == "" || o.MQTT.Broker == "" {
		return nil, errors.New("relay: key file, ledger and MQTT broker are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if o.RateLimit <= 0 {
		o.RateLimit = DefaultRateLimit
	}
	m := &o.MQTT
	if m.ClientID == "" {
		m.ClientID = DefaultClientID
	}
	if m.TopicPrefix == "" {
		m.TopicPrefix = egress.DefaultTopicPrefix
	}
	if m.AckTimeout <= 0 {
		m.AckTimeout = DefaultAckTimeout
	}
	if m.RetryInterval <= 0 {
		m.RetryInterval = egress.DefaultRetryInterval
	}
	if o.GrantsFile == "" {
		o.GrantsFile = GrantsFile(o.Ledger)
	}
	r := &Relay{o: o, log: o.Log, boxes: map[string]Box{}, used: map[string]time.Time{}, grants: map[string]*grant{}, grantsPath: o.GrantsFile}
	for _, b := range o.Boxes {
		if _, dup := r.boxes[b.Device]; dup {
			return nil, fmt.Errorf("relay: box %s registered twice", b.Device)
		}
		if len(b.Key) != ed25519.PublicKeySize || egress.NameProblem(b.Device) != "" || egress.NameProblem(b.Store) != "" {
			return nil, fmt.Errorf("relay: box %q: needs a device, a store and an Ed25519 public key", b.Device)
		}
		r.boxes[b.Device] = b
	}
	r.notice = consent.DefaultNotice()
	if o.NoticeFile != "" {
		data, err := os.ReadFile(o.NoticeFile)
		if err != nil {
			return nil, fmt.Errorf("relay notice: %w", err)
		}
		if r.notice, err = consent.ParseNotice(data); err != nil {
			return nil, fmt.Errorf("relay notice %s: %w", o.NoticeFile, err)
		}
	}
	var err error
	if r.key, err = consent.LoadKey(o.KeyFile); err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	r.pub = r.key.Public().(ed25519.PublicKey)
	co, err := m.ClientOptions()
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if r.ledger, err = consent.OpenLedger(o.Ledger); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if err := r.reopen(); err != nil {
		r.ledger.Close()
		return nil, err
	}
	// A clean session: a message the broker did not acknowledge in time was
	// reported to the shopper as not sent, and is not sent again on a
	// reconnection (the box would refuse a late one after
	// consent.DownlinkMaxAge anyway).
	co.SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(m.RetryInterval).SetMaxReconnectInterval(m.RetryInterval).
		SetOnConnectHandler(func(mqtt.Client) { r.log.Info("relay: connected to broker", "broker", m.Broker) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			r.log.Warn("relay: connection to broker lost; reconnecting", "broker", m.Broker, "err", err)
		})
	r.client = mqtt.NewClient(co)
	r.client.Connect()
	r.log.Info("relay: consent relay ready", "boxes", len(r.boxes), "notice", r.notice.Version, "ledger", o.Ledger,
		"public_key", base64.StdEncoding.EncodeToString(r.pub))
	return r, nil
}

// reopen takes up the grants kept in the grants file, matched against the
// ledger: a grant the file shows running but the ledger ended (the relay
// stopped between the two writes) is ended in the file too; one the
// ledger shows running but the file lacks is ended in the ledger, since
// no phone can withdraw it here.
func (r *Relay) reopen() error {
	stored, err := loadGrants(r.grantsPath)
	if err != nil {
		return err
	}
	active, err := r.ledger.Active()
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	running := map[string]bool{}
	for _, id := range active {
		running[id] = true
	}
	now := r.o.Now().UTC()
	for _, s := range stored {
		g := r.restore(s)
		if g.Ended == "" && !running[g.ID] {
			g.Ended, g.endedAt = "ended", now // the ledger has how
		}
		r.grants[g.ID] = g
	}
	kept := 0
	for _, id := range active {
		g, ok := r.grants[id]
		switch {
		case ok && g.Ended == "":
			kept++
			continue
		case ok: // ended in the file, the ledger's entry lost
			_, err = r.ledger.Append(consent.Entry{Time: now, Type: consent.EventExpire, ConsentID: id, Camera: g.Camera, Zone: g.Zone,
				Box: g.box.Device, Relayed: true, Reason: g.Ended})
		default:
			_, err = r.ledger.Append(consent.Entry{Time: now, Type: consent.EventExpire, ConsentID: id,
				Reason: "veil-hq restarted without it in its grants file: no longer withdrawable here"})
			r.log.Warn("relay: a running consent is not in the grants file; recorded as ended (its phone cannot withdraw it here)", "consent", id, "grants_file", r.grantsPath)
		}
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	r.expire()
	if err := r.saveGrants(); err != nil {
		return err
	}
	if len(stored) > 0 {
		r.log.Info("relay: grants taken up from the grants file", "running", kept, "kept", len(r.grants), "grants_file", r.grantsPath)
	}
	return nil
}

// PublicKey is head office's relay public key; every box's
// consent.relay_key is base64.StdEncoding of it. It also verifies the
// receipts the relay signs (consent.VerifyReceipt).
func (r *Relay) PublicKey() ed25519.PublicKey { return r.pub }

// Handler serves the phone pages (GET/POST /c/{token}, /c/consent,
// /c/consent/withdraw, /c/consent/receipt; see package consent) without a
// login: they hold no operator data. Mount it at /c/ on head office's
// public address, the one the boxes' consent.public_url names.
func (r *Relay) Handler() http.Handler {
	return consent.PhoneHandler(r, consent.WebOptions{RateLimit: r.o.RateLimit, ClientIP: r.o.ClientIP, Log: r.log})
}

// Purge removes ledger entries older than before, for retention (see
// consent.Ledger.Purge), and the grants that ended before it from the
// grants file. It returns the number of ledger entries removed.
func (r *Relay) Purge(before time.Time) (int, error) {
	r.mu.Lock()
	r.expire()
	changed := false
	for id, g := range r.grants {
		if g.Ended != "" && g.endedAt.Before(before) {
			delete(r.grants, id)
			changed = true
		}
	}
	var err error
	if changed {
		err = r.saveGrants()
	}
	r.mu.Unlock()
	n, lerr := r.ledger.Purge(before)
	return n, errors.Join(lerr, err)
}

// Close disconnects from the broker and closes the ledger.
func (r *Relay) Close() error {
	r.client.Disconnect(250)
	return r.ledger.Close()
}

// Notice is the notice shown (consent.Backend).
func (r *Relay) Notice() consent.Notice { return r.notice }

// MaxDuration is the longest a consent lasts (consent.Backend).
func (r *Relay) MaxDuration() time.Duration { return r.o.MaxDuration }

// Check verifies a QR code's token (consent.Backend): a registered box's
// signature, not expired, the notice version shown here, not sent or
// declined here before. Single use across the box's own pages is the
// box's to enforce.
func (r *Relay) Check(tok string) (consent.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, _, err := r.check(tok)
	return t, err
}

func (r *Relay) check(tok string) (consent.Token, Box, error) {
	box, ok := r.boxes[tokenBox(tok)]
	if !ok {
		return consent.Token{}, Box{}, consent.ErrTokenSignature
	}
	t, err := consent.ParseToken(tok, box.Key)
	if err != nil {
		return consent.Token{}, Box{}, err
	}
	now := r.o.Now()
	for n, exp := range r.used {
		if now.After(exp) {
			delete(r.used, n)
		}
	}
	switch {
	case t.Box != box.Device:
		return consent.Token{}, Box{}, consent.ErrTokenOtherBox
	case !now.Before(t.ExpiresAt()):
		return consent.Token{}, Box{}, consent.ErrTokenExpired
	case t.Notice != r.notice.Version:
		return consent.Token{}, Box{}, consent.ErrNoticeChanged
	}
	if _, used := r.used[t.Nonce]; used {
		return consent.Token{}, Box{}, consent.ErrTokenUsed
	}
	return t, box, nil
}

// tokenBox reads the box a token names, unverified: to pick the key that
// verifies it.
func tokenBox(tok string) string {
	if len(tok) > consent.MaxTokenLen {
		return ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var t consent.Token
	if json.Unmarshal(payload, &t) != nil {
		return ""
	}
	return t.Box
}

// Decide (consent.Backend): no records and sends nothing. Yes sends the
// grant to the box (QoS 1, waiting for the broker's acknowledgement) and
// then records it in head office's ledger; if it cannot be sent, it
// returns consent.ErrUnavailable and records nothing (the code can be used
// again).
func (r *Relay) Decide(tok, lang string, yes bool) (*consent.Grant, error) {
	r.mu.Lock()
	t, box, err := r.check(tok)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.used[t.Nonce] = t.ExpiresAt() // reserved while sending
	r.mu.Unlock()
	if !yes {
		return nil, nil
	}
	if _, ok := r.notice.Texts[lang]; !ok {
		lang = "en"
	}
	now := r.o.Now().UTC()
	secret := consent.NewNonce() + consent.NewNonce()
	g := &grant{Grant: consent.Grant{ID: consent.NewNonce(), Camera: t.Camera, Zone: t.Zone,
		Lang: lang, Notice: r.notice.Version, Granted: now, Expires: now.Add(r.o.MaxDuration), Relayed: true}, box: box, secretHash: hashSecret(secret)}
	if err := r.send(box, consent.Downlink{Kind: consent.KindGrant, ConsentID: g.ID, Token: tok, Lang: lang}); err != nil {
		r.mu.Lock()
		delete(r.used, t.Nonce)
		r.mu.Unlock()
		if errors.Is(err, errUncertain) {
			// The grant may still reach the box (the MQTT client sends it
			// again after a reconnect) while the shopper is told nothing
			// was recorded and gets no way to withdraw: withdraw it now,
			// queued behind it, without waiting.
			r.log.Warn("relay: grant possibly delivered late; withdrawing it", "consent", g.ID, "box", box.Device)
			r.publish(box, consent.Downlink{Kind: consent.KindWithdraw, ConsentID: g.ID})
		}
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Kept (on disk) before the phone gets its cookie, so that whatever
	// happens next the phone can withdraw; recorded in the ledger then.
	r.grants[g.ID] = g
	err = r.saveGrants()
	if err == nil {
		if _, lerr := r.ledger.Append(g.GrantEntry(r.notice, box.Device)); lerr != nil {
			err = fmt.Errorf("consent ledger: %w", lerr)
		}
	}
	if err != nil {
		// The box has the grant but the phone will not get a way to
		// withdraw it: withdraw it at once.
		delete(r.grants, g.ID)
		if serr := r.saveGrants(); serr != nil {
			r.log.Error("relay: grants file", "err", serr)
		}
		r.log.Error("relay: grant sent to the box but not kept at head office; withdrawing it", "consent", g.ID, "box", box.Device, "err", err)
		if werr := r.send(box, consent.Downlink{Kind: consent.KindWithdraw, ConsentID: g.ID}); werr != nil {
			r.log.Error("relay: withdrawing the grant not kept failed; the box ends it when the person leaves or at its expiry", "consent", g.ID, "box", box.Device, "err", werr)
		}
		return nil, err
	}
	r.log.Info("relay: consent granted and sent to the box", "consent", g.ID, "box", box.Device, "camera", g.Camera, "lang", lang)
	cp := g.Grant
	cp.Secret = secret
	return &cp, nil
}

// errUncertain wraps consent.ErrUnavailable when a message was handed to
// the MQTT client but not acknowledged in time: it may still be delivered.
var errUncertain = fmt.Errorf("%w (not acknowledged in time)", consent.ErrUnavailable)

// send signs d for box and publishes it, waiting for the broker's PUBACK.
func (r *Relay) send(box Box, d consent.Downlink) error {
	if !r.client.IsConnectionOpen() {
		r.log.Warn("relay: not sent: not connected to the broker", "kind", d.Kind, "consent", d.ConsentID, "box", box.Device)
		return consent.ErrUnavailable
	}
	tok, err := r.publish(box, d)
	if err != nil {
		return err
	}
	if !tok.WaitTimeout(r.o.MQTT.AckTimeout) {
		r.log.Warn("relay: not acknowledged by the broker in time", "kind", d.Kind, "consent", d.ConsentID, "box", box.Device, "waited", r.o.MQTT.AckTimeout)
		return errUncertain
	}
	if err := tok.Error(); err != nil {
		r.log.Warn("relay: not sent", "kind", d.Kind, "consent", d.ConsentID, "box", box.Device, "err", err)
		return consent.ErrUnavailable
	}
	return nil
}

// publish signs d for box and hands it to the MQTT client (QoS 1).
func (r *Relay) publish(box Box, d consent.Downlink) (mqtt.Token, error) {
	d.V, d.ID, d.Box, d.Issued = consent.DownlinkVersion, consent.NewNonce(), box.Device, r.o.Now().Unix()
	msg, err := d.Sign(r.key)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	topic := consent.DownlinkTopic(r.o.MQTT.TopicPrefix, box.Store, box.Device)
	return r.client.Publish(topic, 1, false, msg), nil
}

// find returns the grant of id and secret after ending expired grants.
// r.mu is held.
func (r *Relay) find(id, secret string) (*grant, error) {
	r.expire()
	g, ok := r.grants[id]
	if !ok || !secretMatches(g.secretHash, secret) {
		return nil, consent.ErrNoSuchConsent
	}
	return g, nil
}

// expire ends grants past their expiry and forgets ended ones a maximum
// duration after their expiry, keeping the grants file in step. r.mu is
// held.
func (r *Relay) expire() {
	now := r.o.Now()
	changed := false
	for gid, g := range r.grants {
		if g.Ended == "" && !now.Before(g.Expires) {
			r.end(g, consent.EventExpire, "expired")
			changed = true
		}
		if g.Ended != "" && now.After(g.Expires.Add(r.o.MaxDuration)) {
			delete(r.grants, gid)
			changed = true
		}
	}
	if changed {
		if err := r.saveGrants(); err != nil {
			r.log.Error("relay: grants file", "err", err)
		}
	}
}

// end records the end of g at head office. r.mu is held; the caller saves
// the grants file.
func (r *Relay) end(g *grant, ev consent.EventType, reason string) {
	g.Ended, g.endedAt = reason, r.o.Now().UTC()
	if _, err := r.ledger.Append(consent.Entry{Time: g.endedAt, Type: ev, ConsentID: g.ID, Camera: g.Camera, Zone: g.Zone,
		Box: g.box.Device, Reason: reason, Relayed: true}); err != nil {
		r.log.Error("relay: consent ledger", "err", err)
	}
	r.log.Info("relay: consent ended", "consent", g.ID, "box", g.box.Device, "reason", reason)
}

// Status returns the grant (consent.Backend).
func (r *Relay) Status(id, secret string) (consent.Grant, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, err := r.find(id, secret)
	if err != nil {
		return consent.Grant{}, err
	}
	return g.Grant, nil
}

// Confirm is Status (consent.Backend): the box binds a relayed grant on
// its own.
func (r *Relay) Confirm(id, secret string) (consent.Grant, error) { return r.Status(id, secret) }

// Withdraw sends the withdrawal to the box and records it (consent.Backend).
// If it cannot be sent, it returns consent.ErrUnavailable and the consent
// stays on.
func (r *Relay) Withdraw(id, secret string) (consent.Grant, error) {
	r.mu.Lock()
	g, err := r.find(id, secret)
	if err != nil || g.Ended != "" {
		r.mu.Unlock()
		if err != nil {
			return consent.Grant{}, err
		}
		return g.Grant, nil
	}
	box := g.box
	r.mu.Unlock()
	if err := r.send(box, consent.Downlink{Kind: consent.KindWithdraw, ConsentID: id}); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return g.Grant, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if g.Ended == "" {
		r.end(g, consent.EventWithdraw, "withdrawn")
		if err := r.saveGrants(); err != nil {
			r.log.Error("relay: withdrawn and sent to the box, but the grants file was not updated", "consent", id, "err", err)
		}
	}
	return g.Grant, nil
}

// Receipt is the shopper's receipt signed with head office's key
// (consent.Backend); consent.VerifyReceipt checks it with PublicKey.
func (r *Relay) Receipt(id, secret string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, err := r.find(id, secret)
	if err != nil {
		return nil, err
	}
	return g.SignReceipt(g.box.Device, r.notice, r.key)
}

var _ consent.Backend = (*Relay)(nil)
