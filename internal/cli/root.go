// Package cli builds veil's command tree. cmd/veil only calls Execute.
package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/version"

	"github.com/veil-edge/veil/config"
)

// Execute runs the veil command line and returns the process exit code.
func Execute(ctx context.Context, args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "veil: %v\n", err)
		return 1
	}
	return 0
}

// NewRoot returns the veil root command with every subcommand attached.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "veil",
		Short: "Edge-camera privacy filter: every face redacted before any pixel leaves the pipeline",
		Long: `veil redacts every face in camera video on the shop's own box.

Faces are found with MediaPipe BlazeFace (models from packages, pinned by
SHA-256), followed across frames, and blurred, pixelated or filled before any
frame reaches a file, a screen or the network. When veil cannot tell where the
faces in a frame are (detector error, missing model, a late frame, start-up) the
whole frame is redacted: veil fails closed.

Configuration comes from a YAML file (--config), VEIL_* environment variables
and flags, in rising order of precedence. See docs/veil.example.yaml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = version.String()
	root.SetVersionTemplate("veil {{.Version}}\n")
	root.PersistentFlags().StringP("config", "c", "", "YAML config file (see docs/veil.example.yaml)")
	root.PersistentFlags().String("log-level", "", "log level: debug | info | warn | error (overrides log.level)")
	root.AddCommand(
		newInitCmd(),
		newRedactCmd(),
		newModelsCmd(),
		newConfigCmd(),
		newBenchCmd(),
		newCountCmd(),
		newRunCmd(),
		newDemoCmd(),
		newPasswdCmd(),
		newConsentCmd(),
		newReleaseCmd(),
		newUpdateCmd(),
	)
	return root
}

// newLogger builds the process logger for a level and format from config.
func newLogger(level, format string) *slog.Logger {
	return config.Log{Level: level, Format: format}.Logger(os.Stderr)
}
