// Package run is `veil run`: one supervised pipeline per configured camera
// (redaction and footfall counting), the outbox of closed count windows, the
// MQTT publisher that sends them to head office, and the health endpoint.
//
// A camera that fails (stream drops, device unplugged, garbage data) is
// reopened with capped exponential back-off and reported unhealthy; the
// other cameras are not touched. Count windows close on the wall clock and
// go into the outbox (fsynced) before they count as closed.
package box

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/veil-edge/veil/box/mqttsub"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/live"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/pipeline"
)

// Options configures a Service.
type Options struct {
	Config  config.Config
	Cameras []config.Camera
	Log     *slog.Logger
	// Backoff bounds the wait before a failed camera is reopened.
	MinBackoff, MaxBackoff time.Duration
	// MQTTRetry overrides the publisher's retry interval (tests); 0 keeps the default.
	MQTTRetry time.Duration
	// HungAfter is how long a camera may go with neither a frame nor a
	// failure before veil counts itself hung and stops feeding systemd's
	// watchdog; 0 means 90 s.
	HungAfter time.Duration
}

// Service runs every camera of a box.
type Service struct {
	o      Options
	log    *slog.Logger
	box    *egress.Outbox
	pub    *egress.Publisher
	cams   []*camera
	newDet pipeline.NewDetector
	detect *detect.Service // the box's detection service; nil without one
	// people makes a camera's person detector on the detection service;
	// nil when the person model is not loaded (peopleErr says why).
	people    func() (footfall.PersonDetector, error)
	peopleErr error
	started   time.Time
	consent   *consent.Service // nil without a signage camera
	ledger    *consent.Ledger
	relay     *consent.Receiver   // nil without consent.relay_key
	relayIn   *mqttsub.Subscriber // its MQTT subscription
	upd       *updates            // nil when veil neither runs from update.root nor checks for updates

	restartMu     sync.Mutex
	restartWanted bool                    // an update asked for a restart
	stopRun       context.CancelCauseFunc // ends Run; nil until it starts
}

// New checks the cameras, opens the outbox and prepares the publisher.
// Nothing runs until Run.
func New(o Options) (*Service, error) {
	if len(o.Cameras) == 0 {
		return nil, errors.New("no cameras configured: add a cameras: list to the config file (see docs/veil.example.yaml)")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	cfg := o.Config
	box, err := egress.OpenOutbox(cfg.Outbox.Dir, egress.OutboxOptions{
		Device: cfg.Site.Device, Store: cfg.Site.Store, MaxEntries: cfg.Outbox.MaxEntries, Log: o.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w", cfg.Outbox.Dir, err)
	}
	s := &Service{o: o, log: o.Log, box: box}
	if m := cfg.MQTT; m.Broker != "" {
		mo, err := publisherKeys(cfg, o.Log)
		if err != nil {
			box.Close()
			return nil, err
		}
		mo.Broker, mo.ClientID, mo.Username, mo.Password = m.Broker, m.ClientID, m.Username, m.Password
		mo.CAFile, mo.CertFile, mo.KeyFile, mo.TopicPrefix = m.CAFile, m.CertFile, m.KeyFile, m.TopicPrefix
		mo.RetryInterval, mo.StoredWait = o.MQTTRetry, m.ResendAfter
		s.pub, err = egress.NewPublisher(mo, box, o.Log)
		if err != nil {
			box.Close()
			return nil, fmt.Errorf("mqtt: %w", err)
		}
	} else {
		o.Log.Warn("mqtt.broker is empty: count windows wait in the outbox until a broker is configured", "outbox", cfg.Outbox.Dir)
	}
	if s.consent, s.ledger, err = openConsent(cfg, o.Cameras, o.Log); err != nil {
		box.Close()
		return nil, err
	}
	if s.relay, s.relayIn, err = openRelay(cfg, s.consent, o.Log, o.MQTTRetry); err != nil {
		if s.ledger != nil {
			s.ledger.Close()
		}
		box.Close()
		return nil, fmt.Errorf("consent relay: %w", err)
	}
	if s.upd, err = s.openUpdates(); err != nil {
		box.Close()
		return nil, err
	}
	// One detection service for the whole box: every camera's detectors,
	// whatever their min_face, share its networks.
	faces, detSvc, err := app.FaceDetectors(cfg.Detect, cfg.Models.Dir, o.Log)
	if err != nil {
		o.Log.Error("no face detector: every frame will be redacted whole", "err", err)
	} else {
		s.newDet = faces(cfg.Detect.MinFace)
		s.detect = detSvc
	}
	if needPeople(cfg, o.Cameras) {
		s.people, s.peopleErr = servicePeople(cfg, s.detect, o.Log)
	}
	if err := os.MkdirAll(cfg.Footfall.JournalDir, 0o700); err != nil {
		box.Close()
		return nil, fmt.Errorf("footfall.journal_dir %s: %w", cfg.Footfall.JournalDir, err)
	}
	for _, c := range o.Cameras {
		cam, err := newCamera(c, cfg, o.Log.With("camera", c.Name))
		if err != nil {
			box.Close()
			return nil, err
		}
		if s.consent != nil {
			if g := s.consent.Gate(c.Name); g != nil {
				cam.consent = g // a typed nil would not be a nil interface
			}
		}
		cam.newDet = s.newDet
		cam.newPeople, cam.peopleErr = s.people, s.peopleErr
		if c.MinFace != 0 && faces != nil {
			cam.newDet = faces(c.MinFace)
		}
		if cfg.HTTP.Listen != "" && cfg.HTTP.PasswordHash != "" {
			if cam.hub, err = live.NewHub(c.Name, live.Options{Log: o.Log}); err != nil {
				box.Close()
				return nil, err
			}
		}
		// Crossings a crashed run counted but had not yet queued.
		if n, err := cam.jr.recover(c.Name, box); err != nil {
			o.Log.Error("crossings journal", "camera", c.Name, "err", err)
		} else if n > 0 {
			o.Log.Warn("recovered crossings of windows open when veil last stopped without closing them", "camera", c.Name, "crossings", n)
		}
		s.cams = append(s.cams, cam)
	}
	return s, nil
}

// Run runs every camera, the window closer and the publisher until ctx is
// cancelled, then flushes open count windows into the outbox and returns.
//
// It returns ErrRestart when an update needs veil to start again on
// another release.
func (s *Service) Run(ctx context.Context) error {
	s.started = time.Now()
	defer s.box.Close()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	s.restartMu.Lock()
	s.stopRun = stop
	if s.restartWanted {
		stop(ErrRestart)
	}
	s.restartMu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.watchdog(ctx) }()
	if s.ledger != nil {
		defer s.ledger.Close()
		wg.Add(1)
		go func() { defer wg.Done(); s.purgeConsent(ctx) }()
	}
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	pubDone := make(chan error, 1)
	if s.pub != nil {
		go func() { pubDone <- s.pub.Run(pubCtx) }()
	} else {
		pubDone <- nil
	}
	if s.upd != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.runUpdates(ctx) }()
	}
	if s.relayIn != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.relayIn.Run(ctx) }()
	}
	for _, c := range s.cams {
		wg.Add(2)
		go func() { defer wg.Done(); c.supervise(ctx, s) }()
		go func() { defer wg.Done(); c.closeWindows(ctx, s.box) }()
	}
	s.log.Info("veil running", "cameras", len(s.cams), "store", s.o.Config.Site.Store, "device", s.o.Config.Site.Device, "boot", s.box.Boot())
	<-ctx.Done()
	wg.Wait()
	// Open windows go to the outbox as partial windows ending now; a later
	// boot's report for the same window holds other crossings, so head
	// office adds them up.
	now := time.Now()
	for _, c := range s.cams {
		c.flush(now, s.box)
	}
	// Give the publisher a moment to send what was just flushed.
	if s.pub != nil {
		deadline := time.Now().Add(2 * time.Second)
		for s.box.Len() > 0 && s.pub.Status().Connected && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	stopPub()
	for _, c := range s.cams {
		if c.hub != nil {
			c.hub.Close()
		}
	}
	err := <-pubDone
	s.log.Info("veil stopped", "pending_windows", s.box.Len())
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(context.Cause(ctx), ErrRestart) {
		return ErrRestart
	}
	return nil
}

// Serve serves the web server (the operator's page, /healthz, /metrics) on l
// until ctx is cancelled: over HTTPS when http.tls_cert is set.
func (s *Service) Serve(ctx context.Context, l net.Listener) error {
	h, err := s.webHandler()
	if err != nil {
		return err
	}
	if s.o.Config.HTTP.PasswordHash == "" {
		s.log.Warn("live view off: set http.password_hash (veil passwd makes one) to log in and watch the cameras")
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	cert, key := s.o.Config.HTTP.TLSCert, s.o.Config.HTTP.TLSKey
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("http.tls_cert/http.tls_key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
		l = tls.NewListener(l, srv.TLSConfig)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// publisherKeys returns the publisher's keys: the box's own (consent.key_file,
// created if missing), which signs every report, and head office's public
// key (mqtt.head_office_key, else consent.relay_key), which makes delivery
// end at head office's acknowledgement.
func publisherKeys(cfg config.Config, log *slog.Logger) (egress.MQTTOptions, error) {
	var mo egress.MQTTOptions
	key, err := consent.LoadKey(cfg.Consent.KeyFile)
	if err != nil {
		return mo, fmt.Errorf("consent.key_file %s (the box's key, which signs its reports): %w", cfg.Consent.KeyFile, err)
	}
	mo.SignKey = key
	hq, field := cfg.MQTT.HeadOfficeKey, "mqtt.head_office_key"
	if hq == "" {
		hq, field = cfg.Consent.RelayKey, "consent.relay_key"
	}
	if hq == "" {
		log.Warn("mqtt.head_office_key is empty: a count window leaves the outbox when the broker acknowledges it, not when head office has stored it; a broker that denies or loses it loses the count",
			"fix", "set mqtt.head_office_key to what `veil-hq relay-key` prints")
		return mo, nil
	}
	pub, err := base64.StdEncoding.DecodeString(hq)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return mo, fmt.Errorf("%s: not an Ed25519 public key in base64", field)
	}
	mo.HeadOfficeKey = pub
	return mo, nil
}

// needPeople: the person detector runs when a camera counts with it or
// when redaction hides people (redact.target heads or bodies).
func needPeople(cfg config.Config, cams []config.Camera) bool {
	if cfg.Redact.Target != config.TargetFaces {
		return true
	}
	if cfg.Footfall.Detector != config.DetectPeople {
		return false
	}
	for _, c := range cams {
		if len(c.Lines) > 0 {
			return true
		}
	}
	return false
}

// servicePeople loads the verified person model into the box's detection
// service, so counting and redaction share its networks (and its two
// cores) fairly, and checks that it runs.
func servicePeople(cfg config.Config, svc *detect.Service, log *slog.Logger) (func() (footfall.PersonDetector, error), error) {
	if svc == nil {
		return nil, errors.New("the detection service did not start (see the face detector error)")
	}
	model := app.PersonModelEntry(cfg.Footfall)
	graph, _, err := models.Load(cfg.Models.Dir, model)
	if err != nil {
		return nil, err
	}
	svc.SetPersonModel(app.PersonKind(cfg.Footfall), graph, float32(cfg.Footfall.PersonScore), cfg.Footfall.DetectShare)
	in := svc.PeopleInput(image.Pt(640, 480), cfg.Footfall.DetectWidth)
	if err := svc.ProbePeople(in); err != nil {
		return nil, fmt.Errorf("%s: %w", model, err)
	}
	log.Info("person detector ready", "model", model, "detect_every", cfg.Footfall.DetectEvery, "detect_width", cfg.Footfall.DetectWidth)
	return app.ServicePeople(cfg.Footfall, svc, peopleTimeout(cfg.Footfall)), nil
}

// peopleTimeout is how long a camera waits for its person pass to start
// before the tracker coasts over that frame: two detection periods, at
// least 250 ms.
func peopleTimeout(c config.Footfall) time.Duration {
	return max(250*time.Millisecond, 2*c.DetectEvery)
}
