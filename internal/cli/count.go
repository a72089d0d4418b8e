package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/media"
)

func newCountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "count --input FILE --line x1,y1,x2,y2 [--line ...]",
		Short: "Count people crossing lines in a video file",
		Long: `Count people crossing lines in a video file.

Each --line is a directed line from (x1,y1) to (x2,y2) in frame pixels (y
grows downward). "in" is a crossing from the left of the line, as seen on
screen when looking from its first point to its second, to its right; "out"
is the reverse. For a line from (0,100) to (100,100), walking down the screen
across it is "in". People are found by a person detector (CenterNet, the
centernet-person model from veil models fetch; footfall.person_model ssdlite
for SSDLite) once every footfall.detect_every of video time while something
moves, followed by a tracker that predicts where each person goes in
between, and counted by where their feet are (--view overhead: their
centre); a band around the line (footfall.band) keeps people who stand or
sway on it from being counted. Without the person model, or with --detector
motion, people are found as moving figures (background subtraction):
cheaper, but people walking together merge.

Counts are printed in total and per window of video time (--window, default
footfall.window). With --json, one JSON object goes to stdout:
  {"lines":[{"line":[x1,y1,x2,y2],"in":N,"out":M,
             "windows":[{"start_s":0,"end_s":60,"in":N,"out":M}, ...]}]}
lines in the order given. The same counter runs in veil run.`,
		Example: `  veil count --input /usr/share/doc/opencv-doc/examples/data/vtest.avi --line 350,150,350,450 --line 520,260,768,260
  veil count -i door.mp4 --line 0,300,640,300 --window 1m --json > counts.json`,
		Args: cobra.NoArgs,
		RunE: runCount,
	}
	f := cmd.Flags()
	f.StringP("input", "i", "", "input video file (required)")
	f.StringArray("line", nil, "counting line x1,y1,x2,y2 in frame pixels (repeat for more lines; at least one)")
	f.Duration("window", 0, "count window length in video time, e.g. 1m (overrides footfall.window)")
	f.Bool("json", false, "print one JSON object on stdout instead of text")
	f.String("models-dir", "", "directory of verified model files, for the person detector (overrides models.dir)")
	f.String("detector", "", "what finds people: people (the person detector and a tracker; default) or motion (moving blobs); overrides footfall.detector")
	f.String("view", "angled", "how the camera looks at people: angled (a person stands at the bottom of their figure) or overhead (straight down: a person is the centre of their box)")
	_ = cmd.MarkFlagRequired("input")
	_ = cmd.MarkFlagRequired("line")
	return cmd
}

// countJSON is veil count --json's output.
type countJSON struct {
	Lines []lineJSON `json:"lines"`
}

type lineJSON struct {
	Line    [4]int       `json:"line"`
	In      int          `json:"in"`
	Out     int          `json:"out"`
	Windows []windowJSON `json:"windows"`
}

type windowJSON struct {
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	In     int     `json:"in"`
	Out    int     `json:"out"`
}

func runCount(cmd *cobra.Command, _ []string) error {
	cfg, log, err := loadConfig(cmd, map[string]string{"window": "footfall.window", "detector": "footfall.detector", "models-dir": "models.dir"})
	if err != nil {
		return err
	}
	in, _ := cmd.Flags().GetString("input")
	specs, _ := cmd.Flags().GetStringArray("line")
	asJSON, _ := cmd.Flags().GetBool("json")
	view, _ := cmd.Flags().GetString("view")
	if view != "angled" && view != "overhead" {
		return fmt.Errorf("--view %q is not supported; allowed angled, overhead", view)
	}
	var lines []footfall.Line
	for i, s := range specs {
		l, err := app.ParseLine(fmt.Sprintf("line%d", i+1), s)
		if err != nil {
			return fmt.Errorf("--line: %w", err)
		}
		lines = append(lines, l)
	}
	src, err := media.OpenFile(in)
	if err != nil {
		return err
	}
	defer src.Close()
	info := src.Info()
	for _, l := range lines {
		if err := l.Valid(info.Size); err != nil {
			return fmt.Errorf("--line: %w", err)
		}
	}
	var newPeople func() (footfall.PersonDetector, error)
	var modelErr error
	if cfg.Footfall.Detector == config.DetectPeople {
		newPeople, modelErr = app.LocalPeople(cfg.Footfall, cfg.Models.Dir)
	}
	counter, kind, err := app.PeopleCounter(cfg.Footfall, lines, view == "overhead", newPeople, modelErr, log)
	if err != nil {
		return err
	}
	defer counter.Close()
	log.Info("counting with", "detector", kind.Detector, "detect_every", cfg.Footfall.DetectEvery, "detect_width", cfg.Footfall.DetectWidth)
	origin := time.Unix(0, 0).UTC()
	wins, err := footfall.NewWindows(cfg.Footfall.Window, len(lines), origin)
	if err != nil {
		return err
	}
	fps := info.FPS
	if fps <= 0 || fps > 1000 {
		fps = 25
	}
	log.Info("counting", "input", in, "lines", len(lines), "window", cfg.Footfall.Window, "frames", info.Frames, "fps", fps)

	res := countJSON{Lines: make([]lineJSON, len(lines))}
	for i, l := range lines {
		res.Lines[i] = lineJSON{Line: l.Coords(), Windows: []windowJSON{}}
	}
	collect := func(ws []footfall.Window) {
		for _, w := range ws {
			lj := &res.Lines[w.Line]
			lj.Windows = append(lj.Windows, windowJSON{
				StartS: w.Start.Sub(origin).Seconds(), EndS: w.End.Sub(origin).Seconds(), In: w.In, Out: w.Out,
			})
		}
	}
	bar := newProgress(log, "count", info.Frames)
	frame := gocv.NewMat()
	defer frame.Close()
	var at time.Duration
	n := 0
	for ; ; n++ {
		if err := src.Read(&frame); err != nil {
			if err == io.EOF {
				break
			}
			bar.finish()
			return fmt.Errorf("input %s: frame %d: %w", in, n, err)
		}
		at = time.Duration(float64(n) / fps * float64(time.Second))
		crossings, err := counter.Frame(frame, at)
		if err != nil {
			bar.finish()
			return fmt.Errorf("input %s: frame %d: %w", in, n, err)
		}
		for _, c := range crossings {
			wins.Add(c.Line, c.Dir, origin.Add(c.At))
		}
		collect(wins.Close(origin.Add(at)))
		bar.update(n + 1)
	}
	bar.finish()
	if n == 0 {
		return fmt.Errorf("input %s: no frames", in)
	}
	collect(wins.Flush(origin.Add(at)))
	for i, t := range counter.Totals() {
		res.Lines[i].In, res.Lines[i].Out = t.In, t.Out
	}
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "counted %d frames of %s (%dx%d @ %.2f fps)\n", n, in, info.Size.X, info.Size.Y, fps)
	for i, l := range res.Lines {
		fmt.Fprintf(out, "line %d %v: in %d, out %d\n", i+1, l.Line, l.In, l.Out)
		for _, w := range l.Windows {
			fmt.Fprintf(out, "  %8.1fs - %8.1fs  in %d  out %d\n", w.StartS, w.EndS, w.In, w.Out)
		}
	}
	return nil
}
