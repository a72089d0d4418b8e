package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/config"
)

// loadConfig loads --config, VEIL_* and the command's flags (bound to config
// keys by flagKeys) into one validated Config and builds the logger.
func loadConfig(cmd *cobra.Command, flagKeys map[string]string) (config.Config, *slog.Logger, error) {
	path, _ := cmd.Flags().GetString("config")
	keys := map[string]string{"log-level": "log.level"}
	for f, k := range flagKeys {
		keys[f] = k
	}
	cfg, err := config.Load(path, cmd.Flags(), keys)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, newLogger(cfg.Log.Level, cfg.Log.Format), nil
}
