package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/cvlog"
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
	quietOpenCV(cfg.Log.Level)
	return cfg, newLogger(cfg.Log.Level, cfg.Log.Format), nil
}

// quietOpenCV keeps OpenCV's own log lines (GStreamer's warnings and
// assertions among them) and FFmpeg's out of the user's terminal: veil says
// what went wrong in its own words. At log level debug they are shown at
// OpenCV's and FFmpeg's own default levels (warnings and errors; OpenCV's
// debug level would log every network layer of every pass). A level the
// user set in OPENCV_LOG_LEVEL or OPENCV_FFMPEG_LOGLEVEL is kept. OpenCV
// takes FFmpeg's level from the environment when it first opens a video,
// which is after the config is loaded; its own level is set directly.
func quietOpenCV(level string) {
	if level == "debug" {
		return
	}
	if _, set := os.LookupEnv("OPENCV_LOG_LEVEL"); !set {
		cvlog.Set(cvlog.Silent)
	}
	if _, set := os.LookupEnv("OPENCV_FFMPEG_LOGLEVEL"); !set {
		os.Setenv("OPENCV_FFMPEG_LOGLEVEL", "-8") // AV_LOG_QUIET
	}
}
