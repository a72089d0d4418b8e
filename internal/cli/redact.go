package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/pipeline"
)

func newRedactCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "redact --input IN --output OUT",
		Short: "Redact every face in a video file",
		Long: `Redact every face in a video file.

Reads any video OpenCV can open and writes one with the same resolution,
frame count and frame rate in which every face is blurred (or pixelated or
filled: see redact.style). Frames where veil cannot tell where the faces are
(detector error, missing model, late detection) are redacted whole.

The output appears only when the run succeeds; a failed run leaves nothing.
The codec follows the output's extension (.mp4/.mkv/.mov: MPEG-4 part 2,
.avi: MJPEG) unless output.codec says otherwise.`,
		Example: `  veil redact --input /usr/share/doc/opencv-doc/examples/data/vtest.avi --output out/vtest.mp4
  veil redact -i in.mp4 -o out.mp4 --report out.json --every 1 -c veil.yaml`,
		Args: cobra.NoArgs,
		RunE: runRedact,
	}
	f := cmd.Flags()
	f.StringP("input", "i", "", "input video file (required)")
	f.StringP("output", "o", "", "output video file (required); its directory must exist")
	f.String("report", "", "write a JSON report with per-frame face boxes and what was redacted")
	f.Int("every", 0, "run full face detection every N frames (overrides detect.every)")
	f.String("models-dir", "", "directory of verified model files (overrides models.dir)")
	_ = cmd.MarkFlagRequired("input")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

// redactReport is the --report file.
type redactReport struct {
	Input      string                 `json:"input"`
	Output     string                 `json:"output"`
	Width      int                    `json:"width"`
	Height     int                    `json:"height"`
	FPS        float64                `json:"fps"`
	Frames     int                    `json:"frames"`
	Keyframes  int                    `json:"keyframes"`
	Detections int                    `json:"detections"`
	Tracks     int                    `json:"tracks"`
	Whole      int                    `json:"frames_redacted_whole"`
	ElapsedS   float64                `json:"elapsed_s"`
	RunFPS     float64                `json:"run_fps"`
	PerFrame   []pipeline.FrameRecord `json:"per_frame"`
}

func runRedact(cmd *cobra.Command, _ []string) error {
	cfg, log, err := loadConfig(cmd, map[string]string{"every": "detect.every", "models-dir": "models.dir"})
	if err != nil {
		return err
	}
	in, _ := cmd.Flags().GetString("input")
	out, _ := cmd.Flags().GetString("output")
	reportPath, _ := cmd.Flags().GetString("report")
	if abs, _ := filepath.Abs(in); abs != "" {
		if absOut, _ := filepath.Abs(out); absOut == abs {
			return fmt.Errorf("output %s: is the input file; choose another path", out)
		}
	}

	red, err := app.Redactor(cfg.Redact)
	if err != nil {
		return err
	}
	defer red.Close()
	src, err := media.OpenFile(in)
	if err != nil {
		return err
	}
	defer src.Close()
	info := src.Info()
	sink, err := media.CreateFile(out, cfg.Output.Codec, info.FPS, info.Size)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			sink.Abort()
		}
	}()

	newDet, err := app.DetectorFactory(cfg.Detect, cfg.Models.Dir, log)
	if err != nil {
		log.Error("no face detector: every frame will be redacted whole", "err", err)
		newDet = nil
	}
	log.Info("redacting", "input", in, "output", out, "size", fmt.Sprintf("%dx%d", info.Size.X, info.Size.Y),
		"fps", info.FPS, "frames", info.Frames, "every", cfg.Detect.Every)

	bar := newProgress(log, "redact", info.Frames)
	var perFrame []pipeline.FrameRecord
	p := &pipeline.Pipeline{
		Source: src, Detector: newDet, Redactor: red, Sink: sink, Log: log,
		Options:  app.PipelineOptions(cfg),
		Progress: bar.update,
	}
	if reportPath != "" {
		p.Observer = func(r pipeline.FrameRecord) { perFrame = append(perFrame, r) }
	}
	st, err := p.Run(cmd.Context())
	bar.finish()
	if err != nil {
		if errors.Is(err, pipeline.ErrNoFrames) {
			return fmt.Errorf("input %s: %w", in, err)
		}
		return err
	}
	if err := sink.Commit(); err != nil {
		return err
	}
	committed = true

	fmt.Fprintf(cmd.OutOrStdout(), "redacted %d frames (%dx%d @ %.2f fps) in %s: %.1f fps\n",
		st.Frames, info.Size.X, info.Size.Y, info.FPS, st.Elapsed.Round(time.Millisecond), st.FPS())
	fmt.Fprintf(cmd.OutOrStdout(), "faces: %d detections on %d keyframes, %d tracks; frames redacted whole: %d\n",
		st.Detections, st.Keyframes, st.Tracks, st.Whole)
	fmt.Fprintf(cmd.OutOrStdout(), "output: %s\n", out)
	if st.Whole > 0 {
		log.Warn("some frames were redacted whole (fail-closed)", "frames", st.Whole, "detect_failures", st.DetectFails)
	}
	if reportPath != "" {
		rep := redactReport{
			Input: in, Output: out, Width: info.Size.X, Height: info.Size.Y, FPS: info.FPS,
			Frames: st.Frames, Keyframes: st.Keyframes, Detections: st.Detections, Tracks: st.Tracks,
			Whole: st.Whole, ElapsedS: st.Elapsed.Seconds(), RunFPS: st.FPS(), PerFrame: perFrame,
		}
		b, err := json.MarshalIndent(rep, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(reportPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("report %s: %w", reportPath, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", reportPath)
	}
	return nil
}
