package cli

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/config"
)

func newRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run -c veil.yaml",
		Short: "Run every configured camera: redact, count footfall, send counts to head office",
		Long: `Run every configured camera until SIGTERM or Ctrl-C.

Each camera in the config file's cameras: list gets its own pipeline: faces
redacted (failing closed), people counted across the camera's lines. A
camera whose source fails is reopened with capped back-off and reported
unhealthy; the others keep running.

Count windows (footfall.window, aligned to the clock) are written to the
outbox (outbox.dir, fsynced) when they end and sent to head office's MQTT
broker (mqtt.broker) as the only data that leaves the box; a window leaves the
outbox only once the broker has acknowledged it. On shutdown the open window
is written as a partial one.

http.listen serves /healthz: JSON health of every camera, the outbox and the
MQTT link (200 when all is well, 503 otherwise).

With update.metadata_url set and veil started as update.root/current/veil
(veil.service), veil checks head office's signed repository every
update.interval, installs a newer release and stops so that systemd starts
it; the new release checks its own health before update.health_timeout and
commits, or rolls back to the old one. See veil update --help.`,
		Example: `  veil run -c /etc/veil/veil.yaml
  VEIL_MQTT_PASSWORD=... veil run -c veil.yaml --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			if path == "" {
				return errors.New("veil run needs a config file with a cameras: list: veil run -c veil.yaml (see docs/veil.example.yaml)")
			}
			cfg, log, err := loadConfig(cmd, nil)
			cams, cerr := config.LoadCameras(path)
			if err := errors.Join(err, cerr); err != nil {
				return err // every problem of the file at once
			}
			svc, err := box.New(box.Options{Config: cfg, Cameras: cams, Log: log})
			if err != nil {
				return err
			}
			err = serveAndRun(cmd.Context(), svc, cfg.HTTP.Listen, func(addr string) {
				fmt.Fprintf(cmd.OutOrStdout(), "health: http://%s/healthz\n", addr)
			})
			if errors.Is(err, box.ErrRestart) {
				// Not a failure: systemd (Restart=always) starts veil again.
				fmt.Fprintln(cmd.ErrOrStderr(), "veil:", err)
				return nil
			}
			return err
		},
	}
}

// serveAndRun runs svc and, when listen is set, its health endpoint.
func serveAndRun(ctx context.Context, svc *box.Service, listen string, announce func(addr string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	if listen != "" {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("http.listen %s: %w", listen, err)
		}
		announce(l.Addr().String())
		go func() { served <- svc.Serve(ctx, l) }()
	} else {
		served <- nil
	}
	err := svc.Run(ctx)
	cancel()
	if serr := <-served; err == nil {
		err = serr
	}
	return err
}
