package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/hq/server"
	"github.com/veil-edge/veil/internal/demobroker"
	"github.com/veil-edge/veil/web"
)

// sampleVideo is Debian opencv-doc's pedestrian video.
const sampleVideo = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run veil on Debian's sample video as if it were a shop camera",
		Long: `Run veil on Debian's sample video (opencv-doc's vtest.avi, looping at its own
frame rate) as a shop camera with two counting lines, as veil run would.

With no mqtt.broker configured, the demo starts an embedded MQTT broker on
loopback and prints every count report head office would receive as it
arrives. It also starts head office's server, veil-hq, in the same process
on that broker: its dashboard, on hq.listen (127.0.0.1:8090, or a free
loopback port if that one is taken), shows the demo store's counts and the
box's status; its SQLite database is --dir/hq.db unless hq.sqlite_path is
set, and the demo box is its one registered box (--dir/boxes.jsonl, with
the box's consent.key_file key) unless hq.boxes is set. Count windows are short (10s unless footfall.window is set) so
reports show up quickly. State (the outbox, the box's key) goes under --dir.

The demo also serves the operator page with the camera's redacted live
video (WebRTC). It prints the addresses of both pages and a password made
for this run, the same for the operator page's login (http.user, operator)
and the dashboard's (hq.user, admin) unless http.password_hash or
hq.password_hash is set. veil-hq stops with the demo, just after the box.`,
		Example: `  veil demo                  # until Ctrl-C
  veil demo --duration 60s   # stop by itself after a minute`,
		Args: cobra.NoArgs,
		RunE: runDemo,
	}
	f := cmd.Flags()
	f.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	f.String("dir", "out/demo", "directory for the demo's state (outbox, veil-hq's database)")
	f.String("video", sampleVideo, "video to play as the camera")
	return cmd
}

func runDemo(cmd *cobra.Command, _ []string) error {
	cfg, log, err := loadConfig(cmd, nil)
	if err != nil {
		return err
	}
	dur, _ := cmd.Flags().GetDuration("duration")
	dir, _ := cmd.Flags().GetString("dir")
	video, _ := cmd.Flags().GetString("video")
	if cfg.Footfall.Window == config.Default.Footfall.Window {
		cfg.Footfall.Window = 10 * time.Second
	}
	if cfg.Site == config.Default.Site {
		cfg.Site = config.Site{Store: "demo-store", Device: "demo-box"}
	}
	if cfg.Outbox.Dir == config.Default.Outbox.Dir {
		cfg.Outbox.Dir = filepath.Join(dir, "outbox")
	}
	if cfg.Footfall.JournalDir == config.Default.Footfall.JournalDir {
		cfg.Footfall.JournalDir = filepath.Join(dir, "open-windows")
	}
	if cfg.HQ.SQLitePath == config.Default.HQ.SQLitePath {
		cfg.HQ.SQLitePath = filepath.Join(dir, "hq.db")
	}
	if cfg.Consent.KeyFile == config.Default.Consent.KeyFile {
		cfg.Consent.KeyFile = filepath.Join(dir, "box.key")
	}
	if cfg.HQ.RelayKeyFile == config.Default.HQ.RelayKeyFile {
		cfg.HQ.RelayKeyFile = filepath.Join(dir, "hq.key")
	}
	if err := os.MkdirAll(cfg.Outbox.Dir, 0o755); err != nil {
		return fmt.Errorf("demo state %s: %w", dir, err)
	}
	cams := []config.Camera{{
		Name: "plaza", Source: video, Loop: true,
		Lines: []config.CountLine{{Name: "crossing", Line: [4]int{350, 150, 350, 450}}, {Name: "road", Line: [4]int{520, 260, 768, 260}}},
	}}
	out := cmd.OutOrStdout()
	var printMu sync.Mutex
	embedded := cfg.MQTT.Broker == ""
	if embedded {
		b, err := demobroker.Start("127.0.0.1:0", "veil/#", nil, func(topic string, payload []byte, retained bool) {
			printMu.Lock()
			defer printMu.Unlock()
			if strings.HasSuffix(topic, "/ack") {
				fmt.Fprintf(out, "ack     %s  %s\n", topic, payload)
				return
			}
			if r, err := egress.ParseReport(payload); err == nil {
				fmt.Fprintf(out, "report  %s  camera=%s line=%s %s..%s in=%d out=%d (boot %d, seq %d)\n",
					topic, r.Camera, r.Line, r.Start.Local().Format("15:04:05"), r.End.Local().Format("15:04:05"), r.In, r.Out, r.Boot, r.Seq)
				return
			}
			fmt.Fprintf(out, "status  %s  %s\n", topic, payload)
		})
		if err != nil {
			return err
		}
		defer b.Close()
		cfg.MQTT.Broker = b.URL()
		fmt.Fprintf(out, "embedded MQTT broker: %s (reports are printed below as head office would receive them)\n", b.URL())
	}
	// A fresh demo login each run: the password is printed, only its hash
	// is kept. The operator page and head office's dashboard share it.
	demoPassword := ""
	opLogin := cfg.HTTP.PasswordHash == "" && cfg.HTTP.Listen != ""
	hqLogin := embedded && cfg.HQ.PasswordHash == ""
	if opLogin || hqLogin {
		var b [9]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		demoPassword = base64.RawURLEncoding.EncodeToString(b[:])
		hash, err := web.HashPassword(demoPassword)
		if err != nil {
			return err
		}
		if opLogin {
			cfg.HTTP.PasswordHash = hash
		}
		if hqLogin {
			cfg.HQ.PasswordHash = hash
		}
	}
	ctx, stop := context.WithCancel(cmd.Context())
	defer stop()
	var hq *demoHQ
	if embedded {
		if err := registerDemoBox(&cfg, dir); err != nil {
			return err
		}
		// The demo box trusts the demo head office: a window leaves its
		// outbox when veil-hq says it stored it (the "ack" lines).
		if cfg.MQTT.HeadOfficeKey == "" && cfg.Consent.RelayKey == "" {
			k, err := consent.LoadKey(cfg.HQ.RelayKeyFile)
			if err != nil {
				return fmt.Errorf("hq.relay_key_file %s (the demo head office's key): %w", cfg.HQ.RelayKeyFile, err)
			}
			cfg.MQTT.HeadOfficeKey = base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
		}
		// veil-hq outlives the box by a moment (it is stopped once the box
		// has stopped) so that it takes in the box's last reports and
		// status; if it fails, it stops the box and the demo returns its
		// error.
		if hq, err = startDemoHQ(cmd.Context(), cfg, log, stop); err != nil {
			return err
		}
		login := fmt.Sprintf("login %s / %s", cfg.HQ.User, demoPassword)
		if !hqLogin {
			login = fmt.Sprintf("login %s with hq.password_hash's password", cfg.HQ.User)
		}
		kept := cfg.HQ.SQLitePath
		if cfg.HQ.Store != "sqlite" {
			kept = "hq.postgres_dsn's database"
		}
		fmt.Fprintf(out, "head office dashboard (veil-hq): %s  (%s; counts kept in %s)\n", hq.url, login, kept)
	}
	svc, err := box.New(box.Options{Config: cfg, Cameras: cams, Log: log, MQTTRetry: time.Second})
	if err != nil {
		if hq != nil {
			err = errors.Join(err, hq.close())
		}
		return err
	}
	if dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dur)
		defer cancel()
	}
	fmt.Fprintf(out, "camera %q plays %s in a loop; counting lines %v and %v; %s windows\n",
		cams[0].Name, video, cams[0].Lines[0].Line, cams[0].Lines[1].Line, cfg.Footfall.Window)
	err = serveAndRun(ctx, svc, cfg.HTTP.Listen, func(addr string) {
		fmt.Fprintf(out, "health: http://%s/healthz\n", addr)
		if opLogin {
			fmt.Fprintf(out, "live view: http://%s/  (login %s / %s)\n", addr, cfg.HTTP.User, demoPassword)
		}
	})
	if hq != nil {
		err = errors.Join(err, hq.close())
	}
	return err
}

// registerDemoBox makes the demo box head office's one registered box,
// unless cfg names a box registry or unsigned devices: it writes
// dir/boxes.jsonl with the box's key (consent.key_file, which signs its
// reports) and sets hq.boxes to it.
func registerDemoBox(cfg *config.Config, dir string) error {
	if path, _ := cfg.HQ.BoxRegistry(); path != "" || len(cfg.HQ.Unsigned()) > 0 {
		return nil
	}
	key, err := consent.LoadKey(cfg.Consent.KeyFile)
	if err != nil {
		return fmt.Errorf("consent.key_file %s (the demo box's key, registered at head office): %w", cfg.Consent.KeyFile, err)
	}
	line, err := json.Marshal(map[string]string{"device": cfg.Site.Device, "store": cfg.Site.Store,
		"key": base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))})
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "boxes.jsonl")
	if err := os.WriteFile(path, append(line, '\n'), 0o600); err != nil {
		return fmt.Errorf("demo box registry: %w", err)
	}
	cfg.HQ.Boxes = path
	return nil
}

// demoHQ is veil-hq (hq/server) running inside veil demo on the embedded
// broker.
type demoHQ struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's error, set when done is closed
}

// startDemoHQ starts veil-hq with cfg's hq section on cfg.MQTT.Broker (the
// embedded one), with its dashboard on hq.listen: when that is the default
// 127.0.0.1:8090 and taken, or empty, on a free loopback port. It runs until
// close, not until ctx ends, so that it can outlive the box; failed is
// called if it stops by itself, with an error.
func startDemoHQ(ctx context.Context, cfg config.Config, log *slog.Logger, failed func()) (*demoHQ, error) {
	if cfg.HQ.Store == "sqlite" {
		if err := os.MkdirAll(filepath.Dir(cfg.HQ.SQLitePath), 0o755); err != nil {
			return nil, fmt.Errorf("veil-hq: hq.sqlite_path: %w", err)
		}
	}
	// mochi-mqtt, the embedded broker, serves shared subscriptions to MQTT
	// 3.1.1 clients (internal/demobroker's test), so hq.group stays as
	// configured: veil-hq subscribes in the demo as it does at head office.
	srv, err := server.New(ctx, server.Options{Config: cfg, Log: log})
	if err != nil {
		return nil, fmt.Errorf("veil-hq: %w", err)
	}
	listen := cfg.HQ.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", listen)
	if err != nil && listen == config.Default.HQ.Listen {
		log.Info("veil demo: hq.listen is taken; the dashboard gets a free port", "hq.listen", listen, "err", err)
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("veil-hq: hq.listen %s: %w", listen, err)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &demoHQ{cancel: cancel, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		defer close(h.done)
		if h.err = srv.Run(hctx, l, func(url string) { urls <- url }); h.err != nil {
			h.err = fmt.Errorf("veil-hq: %w", h.err)
			failed()
		}
	}()
	select {
	case h.url = <-urls:
	case <-h.done:
		cancel()
		return nil, h.err
	}
	// The box's first reports would be lost to veil-hq if they reached the
	// new broker before veil-hq's subscription did: wait for it (it takes
	// milliseconds on loopback).
	for deadline := time.Now().Add(10 * time.Second); !srv.Ingest().Status().Connected; {
		if time.Now().After(deadline) {
			log.Warn("veil demo: veil-hq is not subscribed yet; starting the camera anyway", "err", srv.Ingest().Status().LastError)
			break
		}
		select {
		case <-h.done:
			cancel()
			return nil, h.err
		case <-time.After(10 * time.Millisecond):
		}
	}
	return h, nil
}

// close stops veil-hq and returns its error.
func (h *demoHQ) close() error {
	h.cancel()
	<-h.done
	return h.err
}
