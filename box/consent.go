package box

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-edge/veil/box/mqttsub"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
)

// openConsent starts the opt-in service when a camera has an opt-in zone;
// nil, nil when none has.
func openConsent(cfg config.Config, cams []config.Camera, log *slog.Logger) (*consent.Service, *consent.Ledger, error) {
	var zones []consent.Zone
	for _, c := range cams {
		if r, ok := c.Zone(); ok {
			zones = append(zones, consent.Zone{Camera: c.Name, Name: c.Name + "-spot", Rect: r})
		}
	}
	if len(zones) == 0 {
		return nil, nil, nil
	}
	c := cfg.Consent
	notice := consent.DefaultNotice()
	if c.NoticeFile != "" {
		data, err := os.ReadFile(c.NoticeFile)
		if err != nil {
			return nil, nil, fmt.Errorf("consent.notice_file: %w", err)
		}
		if notice, err = consent.ParseNotice(data); err != nil {
			return nil, nil, fmt.Errorf("consent.notice_file %s: %w", c.NoticeFile, err)
		}
	}
	key, err := consent.LoadKey(c.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("consent.key_file: %w", err)
	}
	ledger, err := consent.OpenLedger(c.Ledger)
	if err != nil {
		return nil, nil, fmt.Errorf("consent.ledger: %w", err)
	}
	svc, err := consent.NewService(consent.Options{
		Box: cfg.Site.Device, Key: key, Ledger: ledger, Notice: notice, Zones: zones,
		TokenTTL: c.TokenTTL, MaxDuration: c.MaxDuration, Log: log,
	})
	if err != nil {
		ledger.Close()
		return nil, nil, err
	}
	log.Info("shopper opt-in on", "signage_cameras", len(zones), "notice", notice.Version, "ledger", c.Ledger)
	return svc, ledger, nil
}

// purgeConsent applies consent.retention now and then every hour.
func (s *Service) purgeConsent(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := s.ledger.Purge(time.Now().Add(-s.o.Config.Consent.Retention))
		if err != nil {
			s.log.Error("consent ledger purge", "err", err)
		} else if n > 0 {
			s.log.Info("consent ledger purged", "entries", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// consentPages is the handler for /signage/ and /c/, or nil without opt-in.
func (s *Service) consentPages(clientIP func(*http.Request) string) http.Handler {
	if s.consent == nil {
		return nil
	}
	return s.consent.Handler(consent.WebOptions{PublicURL: s.o.Config.Consent.PublicURL, ClientIP: clientIP, Log: s.log})
}

// relaySeenFile is where the box keeps the ids of the down-link messages
// it accepted: beside the consent ledger.
func relaySeenFile(cfg config.Config) string {
	return filepath.Join(filepath.Dir(cfg.Consent.Ledger), "relay-seen.json")
}

// openRelay prepares the receiver of head office's consent down-link when
// consent.relay_key and mqtt.broker are set and a camera has an opt-in
// zone; nil, nil, nil otherwise. The subscriber is the box's own MQTT
// client ("<mqtt.client_id or veil-<device>>-consent"); it publishes
// nothing.
func openRelay(cfg config.Config, svc *consent.Service, log *slog.Logger, retry time.Duration) (*consent.Receiver, *mqttsub.Subscriber, error) {
	c, m := cfg.Consent, cfg.MQTT
	switch {
	case c.RelayKey == "":
		return nil, nil, nil
	case svc == nil:
		log.Warn("consent.relay_key is set but no camera has an optin_zone: head office's consent relay is not used")
		return nil, nil, nil
	case m.Broker == "":
		log.Warn("consent.relay_key is set but mqtt.broker is empty: head office's consent relay cannot reach this box")
		return nil, nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(c.RelayKey)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("consent.relay_key: not an Ed25519 public key in base64")
	}
	rx, err := consent.NewReceiver(consent.ReceiverOptions{Service: svc, HQKey: key, SeenFile: relaySeenFile(cfg), Log: log})
	if err != nil {
		return nil, nil, err
	}
	id := m.ClientID
	if id == "" {
		id = "veil-" + cfg.Site.Device
	}
	co, err := egress.MQTTOptions{Broker: m.Broker, ClientID: id + "-consent", Username: m.Username, Password: m.Password,
		CAFile: m.CAFile, CertFile: m.CertFile, KeyFile: m.KeyFile}.ClientOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt: %w", err)
	}
	prefix := m.TopicPrefix
	if prefix == "" {
		prefix = egress.DefaultTopicPrefix
	}
	topic := consent.DownlinkTopic(prefix, cfg.Site.Store, cfg.Site.Device)
	sub, err := mqttsub.New(mqttsub.Options{Client: co, Topic: topic, RetryInterval: retry, Log: log,
		Handle: func(p []byte) { _, _ = rx.Handle(p) }})
	if err != nil {
		return nil, nil, err
	}
	log.Info("head office's consent relay on", "topic", topic, "client_id", id+"-consent")
	return rx, sub, nil
}
