package cli

import (
	"encoding/json"
	"fmt"
	"image"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/bench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time decode, each stage and the whole redaction at 768x576 and 1280x720",
		Long: `Time veil on real video on this machine.

For each frame size, in one run: decode only; face detection in parts (one
fine pass over the whole frame and the coarse passes, each on one network;
a full search on the detection service's networks; the search as the
pipeline runs it, on keyframes, scanning only what changed and the whole
frame every detect.full_every); redaction; footfall counting (moving
blobs, and the person detector as on a 10 fps camera, with its CPU time);
encoding; then the whole pipeline (decode, keyframe detection, tracking, redaction)
without and with encoding. Reports ms/frame and fps per stage and the
process's peak memory.

The product targets are >= 100 fps at 768x576 and >= 30 fps at 1280x720 on a
2-core box; the report says what this machine reaches.`,
		Example: `  veil bench
  veil bench --frames 300 --every 4 --json bench.json`,
		Args: cobra.NoArgs,
		RunE: runBench,
	}
	f := cmd.Flags()
	f.String("input", sampleVideo, "source video")
	f.String("sizes", "768x576,1280x720", "comma-separated frame sizes")
	f.Int("frames", 200, "frames per measurement")
	f.Int("every", 0, "detect every N frames (overrides detect.every)")
	f.String("models-dir", "", "directory of verified model files (overrides models.dir)")
	f.String("json", "", "also write the report as JSON to this file")
	return cmd
}

func parseSizes(s string) ([]image.Point, error) {
	var out []image.Point
	for _, part := range strings.Split(s, ",") {
		w, h, ok := strings.Cut(strings.TrimSpace(part), "x")
		x, err1 := strconv.Atoi(w)
		y, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || x < 16 || y < 16 || x > 7680 || y > 4320 {
			return nil, fmt.Errorf("--sizes: %q is not WIDTHxHEIGHT between 16x16 and 7680x4320", part)
		}
		out = append(out, image.Pt(x, y))
	}
	return out, nil
}

func runBench(cmd *cobra.Command, _ []string) error {
	cfg, log, err := loadConfig(cmd, map[string]string{"every": "detect.every", "models-dir": "models.dir"})
	if err != nil {
		return err
	}
	fl := cmd.Flags()
	in, _ := fl.GetString("input")
	sizesFlag, _ := fl.GetString("sizes")
	frames, _ := fl.GetInt("frames")
	jsonPath, _ := fl.GetString("json")
	sizes, err := parseSizes(sizesFlag)
	if err != nil {
		return err
	}
	if cfg.Detect.Detector != "blazeface" {
		return fmt.Errorf("detect.detector: bench times the blazeface search; %q is not supported here", cfg.Detect.Detector)
	}
	svc, err := app.FaceService(cfg.Detect, cfg.Models.Dir)
	if err != nil {
		return fmt.Errorf("bench needs the face models: %w", err)
	}
	fo := app.FrameOptions(cfg.Detect)
	det := func() (detect.Detector, error) { return detect.NewFrame(svc, fo) }
	ropts, err := cfg.Redact.BlurOptions()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "veil-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rep, err := bench.Run(cmd.Context(), bench.Options{
		Input: in, Sizes: sizes, Frames: frames, Detector: det, Service: svc, Frame: fo, Redact: ropts, TempDir: tmp,
		Pipeline: app.PipelineOptions(cfg),
		Progress: func(s string) { log.Info("bench", "measuring", s) },
		PeopleCounter: func(lines []footfall.Line) (*footfall.Counter, error) {
			newPeople, modelErr := app.LocalPeople(cfg.Footfall, cfg.Models.Dir)
			if modelErr != nil {
				return nil, modelErr
			}
			c, _, err := app.PeopleCounter(cfg.Footfall, lines, false, newPeople, nil, log)
			return c, err
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprint(cmd.OutOrStdout(), rep.String())
	if jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json %s: %w", jsonPath, err)
		}
	}
	return nil
}
