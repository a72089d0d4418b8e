package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/internal/demobroker"
	"github.com/veil-edge/veil/internal/run"
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
arrives. Count windows are short (10s unless footfall.window is set) so
reports show up quickly. State (the outbox) goes under --dir.

It also serves the operator page with the camera's redacted live video
(WebRTC) and prints its address and a demo login made for this run.`,
		Example: `  veil demo                  # until Ctrl-C
  veil demo --duration 60s   # stop by itself after a minute`,
		Args: cobra.NoArgs,
		RunE: runDemo,
	}
	f := cmd.Flags()
	f.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	f.String("dir", "out/demo", "directory for the demo's state (outbox)")
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
	if err := os.MkdirAll(cfg.Outbox.Dir, 0o755); err != nil {
		return fmt.Errorf("demo state %s: %w", dir, err)
	}
	cams := []config.Camera{{
		Name: "plaza", Source: video, Loop: true,
		Lines: []config.CountLine{{Name: "crossing", Line: [4]int{350, 150, 350, 450}}, {Name: "road", Line: [4]int{520, 260, 768, 260}}},
	}}
	out := cmd.OutOrStdout()
	var printMu sync.Mutex
	if cfg.MQTT.Broker == "" {
		b, err := demobroker.Start("127.0.0.1:0", "veil/#", nil, func(topic string, payload []byte, retained bool) {
			printMu.Lock()
			defer printMu.Unlock()
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
	// is kept.
	demoPassword := ""
	if cfg.HTTP.PasswordHash == "" && cfg.HTTP.Listen != "" {
		var b [9]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		demoPassword = base64.RawURLEncoding.EncodeToString(b[:])
		if cfg.HTTP.PasswordHash, err = web.HashPassword(demoPassword); err != nil {
			return err
		}
	}
	svc, err := run.New(run.Options{Config: cfg, Cameras: cams, Log: log, MQTTRetry: time.Second})
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dur)
		defer cancel()
	}
	fmt.Fprintf(out, "camera %q plays %s in a loop; counting lines %v and %v; %s windows\n",
		cams[0].Name, video, cams[0].Lines[0].Line, cams[0].Lines[1].Line, cfg.Footfall.Window)
	return serveAndRun(ctx, svc, cfg.HTTP.Listen, func(addr string) {
		fmt.Fprintf(out, "health: http://%s/healthz\n", addr)
		if demoPassword != "" {
			fmt.Fprintf(out, "live view: http://%s/  (login %s / %s)\n", addr, cfg.HTTP.User, demoPassword)
		}
	})
}
