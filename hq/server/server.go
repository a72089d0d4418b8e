// Package server is veil-hq, head office's process: it opens the store the
// config names, runs the MQTT ingest of every box's reports and statuses
// (with the box registry, hq.boxes, and head office's key,
// hq.relay_key_file, which signs the boxes' acknowledgements), and serves
// the dashboard with /healthz and /metrics, and the consent relay when
// hq.relay_boxes is set. cmd/veil-hq and `veil demo` run it.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/dashboard"
	"github.com/veil-edge/veil/hq/ingest"
	"github.com/veil-edge/veil/hq/relay"
	"github.com/veil-edge/veil/hq/store"
	"github.com/veil-edge/veil/web"
)

// Options configure a Server.
type Options struct {
	Config config.Config // the hq, mqtt and log sections are read
	Log    *slog.Logger  // nil: slog.Default()
}

// Server is one veil-hq process. Make it with New, then Run it once.
type Server struct {
	o       Options
	log     *slog.Logger
	store   store.Store
	ingest  *ingest.Ingest
	dash    *dashboard.Dashboard
	relay   *relay.Relay // nil without hq.relay_boxes
	metrics *prometheus.Registry

	mu      sync.Mutex
	started time.Time
}

// New opens the store and prepares the ingest and the dashboard. Errors
// name the config key at fault. Close the Server if Run is not called.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	cfg := o.Config
	boxes, err := check(cfg)
	if err != nil {
		return nil, err
	}
	// Head office's key signs the boxes' Acks, relay or not.
	key, err := consent.LoadKey(cfg.HQ.RelayKeyFile)
	if err != nil {
		return nil, fmt.Errorf("hq.relay_key_file %s: %w", cfg.HQ.RelayKeyFile, err)
	}
	st, err := Open(ctx, cfg.HQ)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, log: o.Log, store: st, metrics: prometheus.NewRegistry()}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := cfg.MQTT
	s.ingest, err = ingest.New(ingest.Options{
		MQTT: egress.MQTTOptions{Broker: m.Broker, ClientID: cfg.HQ.ClientID, Username: m.Username, Password: m.Password,
			CAFile: m.CAFile, CertFile: m.CertFile, KeyFile: m.KeyFile, TopicPrefix: m.TopicPrefix},
		Group:    cfg.HQ.Group,
		Store:    st,
		Batch:    cfg.HQ.Batch,
		Boxes:    boxes,
		Unsigned: cfg.HQ.Unsigned(),
		Key:      key,
		MaxRate:  cfg.HQ.MaxRate,
		MaxSkew:  cfg.HQ.MaxSkew,
		Metrics:  s.metrics,
		Log:      o.Log,
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	s.dash, err = dashboard.New(dashboard.Options{
		Store:        st,
		Users:        []web.User{{Name: cfg.HQ.User, PasswordHash: cfg.HQ.PasswordHash}},
		Log:          o.Log,
		Secure:       cfg.HQ.TLSCert != "" || cfg.HQ.TrustedProxy != "",
		TrustedProxy: net.ParseIP(cfg.HQ.TrustedProxy),
		Metrics:      s.metrics,
		Health:       http.HandlerFunc(s.health),
		StaleAfter:   cfg.HQ.StaleAfter,
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("hq dashboard: %w", err)
	}
	if cfg.HQ.RelayBoxes != "" {
		if s.relay, err = openRelay(cfg, s.dash.ClientIP, o.Log); err != nil {
			st.Close()
			return nil, err
		}
		s.dash.HandlePublic("/c/", s.relay.Handler())
	}
	return s, nil
}

// Check says what a valid config lacks for veil-hq to start (veil-hq check,
// and the package's postinst before it starts the service): the broker, the
// dashboard's password hash, and a box registry that loads (or devices
// allowed unsigned). It returns the number of registered boxes.
func Check(cfg config.Config) (boxes int, err error) {
	b, err := check(cfg)
	return len(b), err
}

func check(cfg config.Config) ([]ingest.Box, error) {
	if cfg.MQTT.Broker == "" {
		return nil, errors.New("mqtt.broker is empty: veil-hq needs head office's broker (e.g. tcp://broker.example:1883 or ssl://broker.example:8883)")
	}
	if cfg.HQ.PasswordHash == "" {
		return nil, errors.New("hq.password_hash is empty: nobody could log in to the dashboard; make one with `veil passwd` and set hq.password_hash (or VEIL_HQ_PASSWORD_HASH)")
	}
	return loadBoxes(cfg.HQ)
}

// loadBoxes reads the box registry h names (hq.boxes, else
// hq.relay_boxes). A head office with no box and no hq.unsigned_devices
// would refuse every report: that is an error.
func loadBoxes(h config.HQ) ([]ingest.Box, error) {
	path, key := h.BoxRegistry()
	if path == "" {
		if len(h.Unsigned()) == 0 {
			return nil, errors.New("hq.boxes is empty (and so is hq.relay_boxes): veil-hq would refuse every report; " +
				`set hq.boxes to the box registry, one JSON line {"device","store","key"} per box (veil consent key --registry on a box prints its line)`)
		}
		return nil, nil
	}
	reg, err := relay.LoadBoxes(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if len(reg) == 0 && len(h.Unsigned()) == 0 {
		return nil, fmt.Errorf("%s: box registry %s lists no box: veil-hq would refuse every report; "+
			`add one JSON line {"device","store","key"} per box (veil consent key --registry on a box prints its line)`, key, path)
	}
	boxes := make([]ingest.Box, len(reg))
	for i, b := range reg {
		boxes[i] = ingest.Box{Device: b.Device, Store: b.Store, Key: b.Key}
	}
	return boxes, nil
}

// openRelay starts the consent relay cfg's hq.relay_* keys describe.
func openRelay(cfg config.Config, clientIP func(*http.Request) string, log *slog.Logger) (*relay.Relay, error) {
	boxes, err := relay.LoadBoxes(cfg.HQ.RelayBoxes)
	if err != nil {
		return nil, fmt.Errorf("hq.relay_boxes: %w", err)
	}
	m := cfg.MQTT
	r, err := relay.New(relay.Options{
		KeyFile:    cfg.HQ.RelayKeyFile,
		Boxes:      boxes,
		NoticeFile: cfg.Consent.NoticeFile,
		Ledger:     cfg.HQ.RelayLedger,
		MQTT: egress.MQTTOptions{Broker: m.Broker, ClientID: cfg.HQ.ClientID + "-relay", Username: m.Username, Password: m.Password,
			CAFile: m.CAFile, CertFile: m.CertFile, KeyFile: m.KeyFile, TopicPrefix: m.TopicPrefix},
		MaxDuration: cfg.Consent.MaxDuration,
		ClientIP:    clientIP,
		Log:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("consent relay (hq.relay_*): %w", err)
	}
	log.Info("veil-hq: consent relay on", "boxes", len(boxes), "pages", "/c/")
	return r, nil
}

// Open opens the store h names: SQLite at h.SQLitePath or PostgreSQL at
// h.PostgresDSN.
func Open(ctx context.Context, h config.HQ) (store.Store, error) {
	switch h.Store {
	case "sqlite":
		st, err := store.OpenSQLite(ctx, h.SQLitePath)
		if err != nil {
			return nil, fmt.Errorf("hq.sqlite_path: %w", err)
		}
		return st, nil
	case "postgres":
		st, err := store.OpenPostgres(ctx, h.PostgresDSN)
		if err != nil {
			return nil, fmt.Errorf("hq.postgres_dsn: %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("hq.store: %q is not supported; allowed sqlite, postgres", h.Store)
	}
}

// Store is the server's store (for tests and tools).
func (s *Server) Store() store.Store { return s.store }

// Ingest is the server's MQTT ingest.
func (s *Server) Ingest() *ingest.Ingest { return s.ingest }

// Handler is the dashboard with /healthz and /metrics.
func (s *Server) Handler() http.Handler { return s.dash.Handler() }

// Close closes the relay and the store. Run closes them itself when it
// returns.
func (s *Server) Close() error {
	var err error
	if s.relay != nil {
		err = s.relay.Close()
	}
	return errors.Join(err, s.store.Close())
}

// Relay is the consent relay, nil when hq.relay_boxes is empty.
func (s *Server) Relay() *relay.Relay { return s.relay }

// Run serves the dashboard on l (HTTPS with hq.tls_cert) and runs the
// ingest until ctx is cancelled, then closes the store. ready, if not nil,
// is called with the dashboard's URL once it listens.
func (s *Server) Run(ctx context.Context, l net.Listener, ready func(url string)) error {
	defer s.Close()
	s.mu.Lock()
	s.started = time.Now()
	s.mu.Unlock()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	scheme := "http"
	if cert, key := s.o.Config.HQ.TLSCert, s.o.Config.HQ.TLSKey; cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("hq.tls_cert/hq.tls_key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
		l = tls.NewListener(l, srv.TLSConfig)
		scheme = "https"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.ingest.Run(ctx); err != nil {
			errs <- fmt.Errorf("ingest: %w", err)
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("dashboard: %w", err)
			cancel()
		}
	}()
	if s.relay != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.purgeConsent(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.watchdog(ctx) }()
	url := scheme + "://" + l.Addr().String() + "/"
	s.log.Info("veil-hq: dashboard listening", "url", url, "store", s.o.Config.HQ.Store)
	if ready != nil {
		ready(url)
	}
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = srv.Shutdown(sctx)
	scancel()
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}

// Health is what /healthz reports.
type Health struct {
	Status  string        `json:"status"` // ok, or degraded (not subscribed, or the store fails)
	Ingest  ingest.Status `json:"ingest"`
	Store   string        `json:"store"` // ok, or the store's error
	Devices int           `json:"devices"`
	Online  int           `json:"online"`
	Uptime  string        `json:"uptime"`
}

// health serves /healthz: 200 when subscribed and the store answers, 503
// otherwise.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Ingest: s.ingest.Status(), Store: "ok"}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	ds, err := s.store.Devices(ctx)
	if err != nil {
		h.Store = err.Error()
	}
	h.Devices = len(ds)
	for _, d := range ds {
		if d.Online {
			h.Online++
		}
	}
	s.mu.Lock()
	if !s.started.IsZero() {
		h.Uptime = time.Since(s.started).Round(time.Second).String()
	}
	s.mu.Unlock()
	code := http.StatusOK
	if err != nil || !h.Ingest.Connected {
		h.Status, code = "degraded", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(h)
}

// purgeConsent applies consent.retention to head office's consent ledger
// now and then every hour.
func (s *Server) purgeConsent(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := s.relay.Purge(time.Now().Add(-s.o.Config.Consent.Retention))
		switch {
		case err != nil:
			s.log.Error("veil-hq: purging the consent ledger", "err", err)
		case n > 0:
			s.log.Info("veil-hq: consent ledger purged", "entries", n, "retention", s.o.Config.Consent.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
