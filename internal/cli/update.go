package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/firmware/agent"
	"github.com/veil-edge/veil/firmware/updater"
)

// defaultRestartCmd restarts veil after the update commands changed current.
const defaultRestartCmd = "systemctl restart veil.service"

func newUpdateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Check, apply, inspect or roll back over-the-air updates on this box",
		Long: `veil run updates the box by itself when update.metadata_url is set: every
update.interval it asks head office's signed (TUF) repository for a newer
release, downloads it resumably, checks it against the signed metadata before
anything is staged, installs it into update.root/releases/<version>/,
switches update.root/current to it atomically and restarts. The new release
must then prove itself within update.health_timeout (the outbox takes a
durable write, a built-in canary face is found and redacted, a camera
delivers frames decided by the face detector) or it is rolled back by itself.

These commands do the same by hand. Run them as the user that owns
update.root (veil on a box: sudo -u veil veil update status). status only
reads; the others take the install's lock, so they never race veil run.`,
		Example: `  veil update status -c /etc/veil/veil.yaml
  veil update check -c /etc/veil/veil.yaml
  veil update apply -c /etc/veil/veil.yaml          # waits for the new release to commit or roll back
  veil update rollback -c /etc/veil/veil.yaml       # back to the previous release`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newUpdateStatusCmd(), newUpdateCheckCmd(), newUpdateApplyCmd(), newUpdateRollbackCmd(), newUpdateRecoverCmd())
	return cmd
}

func newUpdateStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the install journal: the release in use, an update under way, the last failure or rollback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := loadConfig(cmd, nil)
			if err != nil {
				return err
			}
			st, ok, err := agent.ReadStatus(cfg.Update.Root)
			if err != nil {
				return err
			}
			cur, prev := agent.ReadLinks(cfg.Update.Root)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
					agent.State
					Current  string `json:"current"`
					Previous string `json:"previous"`
				}{st, cur, prev})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "root:     %s\ncurrent:  %s\nprevious: %s\n", cfg.Update.Root, orNone(cur), orNone(prev))
			if !ok {
				fmt.Fprintln(w, "state:    no journal yet (veil run or an update command creates it)")
				return nil
			}
			fmt.Fprintf(w, "state:    %s (%s)\nhighest:  %s\nupdated:  %s\n", st.Phase, orNone(st.Version), orNone(st.Highest), st.Updated.Format(time.RFC3339))
			if !st.Deadline.IsZero() {
				fmt.Fprintf(w, "deadline: %s (the new release must confirm its health by then)\n", st.Deadline.Format(time.RFC3339))
			}
			if st.LastError != "" {
				fmt.Fprintf(w, "last error: %s\n", st.LastError)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the journal as JSON")
	return cmd
}

func newUpdateCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Ask the update repository for a newer release (verifying its signed metadata); installs nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, _, _, err := openUpdater(cmd, nil)
			if err != nil {
				return err
			}
			off, err := u.Check(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "current: %s\nlatest:  %s\n", orNone(off.Current), off.Latest)
			if off.Available() {
				fmt.Fprintf(w, "next:    %s (%d bytes): %s\n", off.Next.Version, off.Next.Length, off.Reason)
			} else {
				fmt.Fprintf(w, "next:    none: %s\n", off.Reason)
			}
			return nil
		},
	}
}

func newUpdateApplyCmd() *cobra.Command {
	var restartCmd string
	var wait bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Install the next release now, restart veil on it and wait until it commits or rolls back",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, cfg, log, err := openUpdater(cmd, restarter(restartCmd, cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			off, err := u.ApplyLatest(cmd.Context())
			if err != nil {
				return err
			}
			if !off.Available() {
				fmt.Fprintf(w, "nothing to install: %s\n", off.Reason)
				return nil
			}
			v := off.Next.Version.String()
			fmt.Fprintf(w, "switched to %s; veil restarted; the new release checks its health by %s\n", v, u.Agent().Status().Deadline.Format(time.RFC3339))
			if !wait {
				return nil
			}
			return waitSettled(cmd.Context(), cfg, log, v, w)
		},
	}
	cmd.Flags().StringVar(&restartCmd, "restart-cmd", defaultRestartCmd, `command that restarts veil after the switch ("" for none: veil is not running)`)
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the new release to commit or roll back")
	return cmd
}

// waitSettled follows the journal until the update to v is committed or
// rolled back; past the deadline (and a minute's grace) it rolls back an
// update that never confirmed.
func waitSettled(ctx context.Context, cfg config.Config, log *slog.Logger, v string, w io.Writer) error {
	var last agent.Phase
	for {
		st, _, err := agent.ReadStatus(cfg.Update.Root)
		if err != nil {
			return err
		}
		if st.Phase != last {
			fmt.Fprintf(w, "  %s\n", st.Phase)
			last = st.Phase
		}
		switch {
		case st.Phase == agent.Committed && st.Version == v:
			fmt.Fprintf(w, "%s is committed\n", v)
			return nil
		case st.Phase == agent.RolledBack && st.Version == v:
			return fmt.Errorf("%s was rolled back to %s: %s", v, orNone(st.From), st.LastError)
		case st.Phase != agent.Switched && st.Phase != agent.HealthChecking:
			return fmt.Errorf("the update to %s ended in state %s (%s)", v, st.Phase, st.LastError)
		case st.Phase == agent.Switched && !st.Deadline.IsZero() && time.Now().After(st.Deadline.Add(time.Minute)):
			a, err := agent.Open(agent.Options{Root: cfg.Update.Root, Log: log})
			if err != nil {
				return err
			}
			if _, err := a.RollBackUnconfirmed(ctx, "the new release did not start checking its health before its deadline"); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting; the update continues (veil update status): %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func newUpdateRollbackCmd() *cobra.Command {
	var restartCmd string
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Switch back to the previous release and restart veil (the highest version stays: no downgrade by update)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openAgent(cmd, restarter(restartCmd, cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			before := a.Current()
			if err := a.Rollback(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back from %s to %s\n", orNone(before), a.Current())
			return nil
		},
	}
	cmd.Flags().StringVar(&restartCmd, "restart-cmd", defaultRestartCmd, `command that restarts veil after the switch ("" for none)`)
	return cmd
}

func newUpdateRecoverCmd() *cobra.Command {
	var failed bool
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Repair the install after a crash; with --failed, roll back a release that could not start",
		Long: `recover brings update.root to a consistent state (as veil run does at start):
an update interrupted before its switch is discarded, one interrupted during
its health check, or past its deadline, is rolled back, and a broken current
link is repaired.

--failed is for veil-recover.service, which systemd runs with the previous
release's binary when veil.service hits its start limit: an update that was
switched in and has not confirmed its health is rolled back at once. It
exits non-zero when there was nothing to roll back, so that veil is not
restarted into the same failure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openAgent(cmd, nil)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !failed {
				st := a.Status()
				fmt.Fprintf(w, "current %s, state %s\n", orNone(a.Current()), st.Phase)
				return nil
			}
			ok, err := a.RollBackUnconfirmed(cmd.Context(), "veil could not be started on the new release (systemd start limit)")
			if !ok {
				return fmt.Errorf("no unconfirmed update to roll back (state %s): veil fails for another reason; see journalctl -u veil", a.Status().Phase)
			}
			if err != nil && !errors.Is(err, agent.ErrRolledBack) {
				return err
			}
			fmt.Fprintf(w, "rolled back to %s\n", orNone(a.Current()))
			return nil
		},
	}
	cmd.Flags().BoolVar(&failed, "failed", false, "roll back an unconfirmed update now (veil-recover.service)")
	return cmd
}

// openAgent loads the config and opens the install agent on update.root
// as a tool, after checking that this user owns it.
func openAgent(cmd *cobra.Command, restart func(context.Context) error) (*agent.Agent, error) {
	cfg, log, err := loadConfig(cmd, nil)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(cfg.Update.Root); err != nil {
		return nil, err
	}
	return agent.Open(agent.Options{Root: cfg.Update.Root, Log: log, HealthTimeout: cfg.Update.HealthTimeout, Restart: restart})
}

// openUpdater loads the config and opens the updater on update.root as a
// tool (this process is not the release being confirmed).
func openUpdater(cmd *cobra.Command, restart func(context.Context) error) (*updater.Updater, config.Config, *slog.Logger, error) {
	cfg, log, err := loadConfig(cmd, nil)
	if err != nil {
		return nil, cfg, nil, err
	}
	c := cfg.Update
	if c.MetadataURL == "" {
		return nil, cfg, nil, errors.New("update.metadata_url is not set: there is no update repository to ask (see docs/veil.example.yaml)")
	}
	if err := checkOwner(c.Root); err != nil {
		return nil, cfg, nil, err
	}
	trusted, err := os.ReadFile(c.TrustedRoot)
	if err != nil {
		return nil, cfg, nil, fmt.Errorf("update.trusted_root: %w", err)
	}
	u, err := updater.Open(updater.Options{
		Root: c.Root, TrustedRoot: trusted, MetadataURL: c.MetadataURL, TargetsURL: c.TargetsURL,
		HealthTimeout: c.HealthTimeout, Restart: restart, Log: log,
		Progress: downloadProgress(log),
	})
	return u, cfg, log, err
}

// downloadProgress logs a download's progress every tenth.
func downloadProgress(log *slog.Logger) func(done, total int64) {
	next := int64(0)
	return func(done, total int64) {
		if total <= 0 || done < next {
			return
		}
		log.Info("downloading", "done_bytes", done, "total_bytes", total, "percent", done*100/total)
		next = done + total/10
	}
}

// restarter runs command (split on spaces) to restart veil; "" does nothing.
func restarter(command string, stderr io.Writer) func(context.Context) error {
	args := strings.Fields(command)
	if len(args) == 0 {
		return nil
	}
	return func(ctx context.Context) error {
		c := exec.CommandContext(ctx, args[0], args[1:]...)
		c.Stdout, c.Stderr = stderr, stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("restarting veil with %q: %w", command, err)
		}
		return nil
	}
}

// checkOwner refuses to change an install owned by another user: files a
// root shell creates there would be unwritable for veil run.
func checkOwner(root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // created by us
		}
		return fmt.Errorf("update.root: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() {
		return nil
	}
	return fmt.Errorf("update.root %s belongs to uid %d and this is uid %d: run the command as its owner (sudo -u veil veil update ...), or veil run could not write what it creates", root, st.Uid, os.Geteuid())
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
