package run

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/internal/durable"
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
	key, err := loadKey(c.KeyFile)
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

// loadKey reads the box's Ed25519 seed, creating it on first use.
func loadKey(path string) (ed25519.PrivateKey, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := durable.WriteFile(filepath.Dir(path), filepath.Base(path), ".key-", seed); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s is not a %d-byte Ed25519 seed", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
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
