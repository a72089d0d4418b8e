// Package hqcli builds veil-hq's command line. cmd/veil-hq only calls
// Execute.
package hqcli

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/version"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/consent"
	"github.com/veil-edge/veil/hq/server"
)

// Execute runs the veil-hq command line and returns the process exit code.
func Execute(ctx context.Context, args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "veil-hq: %v\n", err)
		return 1
	}
	return 0
}

// NewRoot returns the veil-hq root command.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "veil-hq -c hq.yaml",
		Short: "Head office: aggregate every shop's footfall counts and serve the dashboard",
		Long: `veil-hq is head office's server for a fleet of veil boxes.

It subscribes to every box's footfall reports and status on head office's MQTT
broker (the mqtt section: broker, credentials, TLS files, topic_prefix) with
a persistent session and a shared subscription (hq.group), so several veil-hq
processes split the load. A report is acknowledged to the broker only once it
is stored; repeats (delivery is at least once) are recognised by the box's
(device, boot, seq) and counted once.

Only reports of the boxes in the box registry (hq.boxes, else
hq.relay_boxes: JSON lines device, store, key), signed with their keys, are
stored; hq.unsigned_devices (store/device, comma-separated) lets named boxes
send unsigned reports while they are upgraded, marked unsigned on the
dashboard. Windows that count more than hq.max_rate people per second on a
line (10; windows under a minute count as a minute) or last over 24h are
refused (windows that end more than hq.max_skew, 5m, after head office's
clock are not stored yet: their box sends them again), and so is a report
that conflicts with a stored one of the same (device, boot, seq)
(counted on the dashboard's devices). Refusals are counted in /metrics by
reason and logged. After storing, veil-hq publishes on each box's
<prefix>/<store>/<device>/ack an acknowledgement signed with head office's
key (hq.relay_key_file, created if missing; veil-hq relay-key prints it for
the boxes' mqtt.head_office_key) naming what it stored and what genuine
reports it refuses for good; the box drops a window only then.

Windows are stored in SQLite (hq.store: sqlite, hq.sqlite_path; the default)
or PostgreSQL (hq.store: postgres, hq.postgres_dsn).

hq.listen serves the dashboard (login: hq.user and hq.password_hash, made with
veil passwd): footfall per store and camera by hour or day, comparisons with
the previous period, devices online or offline with their last report, CSV
export (/export.csv) and a JSON API (/api/totals, /api/devices). /healthz
(JSON, 200 when subscribed and the store answers, else 503) and /metrics
(Prometheus) need no login.

Configuration comes from a YAML file (--config), VEIL_* environment variables
and flags, in rising order of precedence. See the hq section of
docs/veil.example.yaml.`,
		Example: `  veil-hq -c /etc/veil-hq/hq.yaml
  VEIL_MQTT_BROKER=ssl://broker.example:8883 VEIL_HQ_PASSWORD_HASH='$2a$...' veil-hq
  veil-hq -c hq.yaml --listen :8443 --log-level debug`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          run,
	}
	root.Version = version.String()
	root.SetVersionTemplate("veil-hq {{.Version}}\n")
	root.Flags().StringP("config", "c", "", "YAML config file (see the hq section of docs/veil.example.yaml)")
	root.Flags().String("log-level", "", "log level: debug | info | warn | error (overrides log.level)")
	root.Flags().String("listen", "", "dashboard address host:port (overrides hq.listen)")
	root.AddCommand(newRelayKeyCmd(), newCheckCmd())
	return root
}

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check -c hq.yaml",
		Short: "Check that veil-hq can start with a config: print FILE: ok, or what is missing",
		Long: `Check loads the config as veil-hq would (the file over the defaults, then
VEIL_* environment variables) and checks what veil-hq needs to start: a
valid file, hq.listen, mqtt.broker, hq.password_hash and a box registry
that loads (hq.boxes, else hq.relay_boxes) or devices allowed unsigned. It
connects to nothing. The Debian package starts veil-hq.service only when
this passes.`,
		Example: `  veil-hq check -c /etc/veil-hq/hq.yaml && sudo systemctl start veil-hq`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, err := config.Load(path, nil, nil)
			if err != nil {
				return err
			}
			if cfg.HQ.Listen == "" {
				return errors.New(emptyListen)
			}
			boxes, err := server.Check(cfg)
			if err != nil {
				return err
			}
			name := path
			if name == "" {
				name = "defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\nstore %s, dashboard on %s, broker %s, %d registered box(es), %d device(s) allowed unsigned\n",
				name, cfg.HQ.Store, cfg.HQ.Listen, cfg.MQTT.Broker, boxes, len(cfg.HQ.Unsigned()))
			return nil
		},
	}
	cmd.Flags().StringP("config", "c", "", "YAML config file (see the hq section of docs/veil.example.yaml)")
	return cmd
}

// emptyListen is the error for an empty hq.listen.
const emptyListen = "hq.listen is empty: veil-hq serves its dashboard and /healthz there; allowed host:port, e.g. 127.0.0.1:8090"

func newRelayKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "relay-key -c hq.yaml",
		Short: "Print head office's key, for the boxes' mqtt.head_office_key and consent.relay_key",
		Long: `Print the public half of head office's key (hq.relay_key_file, created if
missing) in standard base64.

Boxes take head office's acknowledgements of their reports, and act on a
grant or withdrawal sent down by its consent relay, only when they are
signed by this key: set it as mqtt.head_office_key (and consent.relay_key
for the relay) in every box's config.`,
		Example: `  veil-hq relay-key -c /etc/veil-hq/hq.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, err := config.Load(path, nil, nil)
			if err != nil {
				return err
			}
			key, err := consent.LoadKey(cfg.HQ.RelayKeyFile)
			if err != nil {
				return fmt.Errorf("hq.relay_key_file %s: %w", cfg.HQ.RelayKeyFile, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringP("config", "c", "", "YAML config file (see the hq section of docs/veil.example.yaml)")
	return cmd
}

func run(cmd *cobra.Command, _ []string) error {
	path, _ := cmd.Flags().GetString("config")
	cfg, err := config.Load(path, cmd.Flags(), map[string]string{"log-level": "log.level", "listen": "hq.listen"})
	if err != nil {
		return err
	}
	log := cfg.Log.Logger(os.Stderr)
	if cfg.HQ.Listen == "" {
		return errors.New(emptyListen)
	}
	srv, err := server.New(cmd.Context(), server.Options{Config: cfg, Log: log})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.HQ.Listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("hq.listen %s: %w", cfg.HQ.Listen, err)
	}
	return srv.Run(cmd.Context(), l, func(url string) {
		fmt.Fprintf(cmd.OutOrStdout(), "dashboard: %s (health: %shealthz)\n", url, url)
	})
}
