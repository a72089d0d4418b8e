package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/pipeline"
)

// Redaction schedules of veil redact --schedule.
const (
	scheduleFile = "file" // look-ahead over the whole file, every frame written
	scheduleLive = "live" // veil run's live schedule, the file played as a camera
)

func newRedactCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "redact --input IN --output OUT [--input IN2 --output OUT2 ...]",
		Short: "Redact every face in a video file",
		Long: `Redact every face in a video file.

Reads any video OpenCV can open and writes one with the same resolution,
frame count and frame rate in which every face is blurred (or pixelated or
filled: see redact.style). Frames where veil cannot tell where the faces are
(detector error, missing model, late detection) are redacted whole.

The output appears only when the run succeeds; a failed run leaves nothing.
The codec follows the output's extension (.mp4/.mkv/.mov: MPEG-4 part 2,
.avi: MJPEG) unless output.codec says otherwise.

Several files: give --input and --output once per file, in pairs (and
--report once per file, or not at all). They are redacted at the same time
and share one face detector, as veil run's cameras do; each output is kept
only if its own run succeeds.

Schedules (--schedule):
  file  (default) the look-ahead schedule: every frame is read as fast as
        veil can and held until the detections after it are known, so a
        face is covered before it was first found. Output frame n is input
        frame n.
  live  what an operator watching veil run's live view would see, to
        measure it on recorded video: each input plays as a camera at its
        own frame rate (whether or not veil keeps up; frames veil is too
        busy to take are dropped) into veil run's live schedule
        (live.detect_every, live.detect_deadline, no look-ahead). The
        output holds every frame shown, once, in order, at the input's frame
        rate: it is shorter than the input by the frames dropped. The
        report gives each output frame's input frame (source_frame), whether
        it was redacted whole and why, and the regions redacted; the summary
        counts frames in, shown, dropped and redacted whole. Frames redacted
        whole are expected in this schedule when detection is late.
        --every does not apply (the live schedule uses live.detect_every).`,
		Example: `  veil redact --input /usr/share/doc/opencv-doc/examples/data/vtest.avi --output out/vtest.mp4
  veil redact -i in.mp4 -o out.mp4 --report out.json --every 1 -c veil.yaml

  # what the live view shows of one camera, and of four at once
  veil redact --schedule live -i shop.mp4 -o shown.avi --report shown.json
  veil redact --schedule live -i a.mp4 -o a.avi -i b.mp4 -o b.avi -i c.mp4 -o c.avi -i d.mp4 -o d.avi`,
		Args: cobra.NoArgs,
		RunE: runRedact,
	}
	f := cmd.Flags()
	f.StringArrayP("input", "i", nil, "input video file (required; repeat for several files)")
	f.StringArrayP("output", "o", nil, "output video file, one per --input in the same order (required); its directory must exist")
	f.StringArray("report", nil, "write a JSON report with per-frame face boxes and what was redacted (one per --input, or none)")
	f.String("schedule", scheduleFile, "redaction schedule: file (look-ahead, every frame) | live (veil run's live view, the input played as a camera)")
	f.Int("every", 0, "run full face detection every N frames (overrides detect.every; file schedule only)")
	f.String("models-dir", "", "directory of verified model files (overrides models.dir)")
	_ = cmd.MarkFlagRequired("input")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

// redactReport is the --report file.
type redactReport struct {
	Input      string  `json:"input"`
	Output     string  `json:"output"`
	Width      int     `json:"width"`
	Height     int     `json:"height"`
	FPS        float64 `json:"fps"`
	Frames     int     `json:"frames"` // written to the output
	Keyframes  int     `json:"keyframes"`
	Detections int     `json:"detections"`
	Tracks     int     `json:"tracks"`
	Whole      int     `json:"frames_redacted_whole"`
	// Promised is the frame count the input's container declares (-1 when
	// it declares none); EndedEarly is set when far fewer were read.
	Promised   int     `json:"frames_promised"`
	EndedEarly bool    `json:"ended_early"`
	ElapsedS   float64 `json:"elapsed_s"`
	RunFPS     float64 `json:"run_fps"`
	// Live is set by the live schedule only.
	Live     *liveCounts   `json:"live,omitempty"`
	PerFrame []frameRecord `json:"per_frame"`
}

// liveCounts is what a file played as a camera did (--schedule live).
type liveCounts struct {
	FramesIn int `json:"frames_in"`    // frames the camera sent: the input's
	Shown    int `json:"frames_shown"` // frames written to the output
	Dropped  int `json:"frames_dropped"`
	Whole    int `json:"frames_redacted_whole"`
}

// frameRecord is one output frame in the report. The live schedule adds
// the input frame it shows; in the file schedule it is the frame's own
// index.
type frameRecord struct {
	pipeline.FrameRecord
	Source *int64 `json:"source_frame,omitempty"`
}

// redactJob is one input of veil redact and what became of it.
type redactJob struct {
	in, out, report string
	info            pipeline.SourceInfo
	src             pipeline.Source
	cam             *media.LiveSource // live schedule: src as a camera
	sink            *media.FileSink
	red             *blur.Redactor
	perFrame        []frameRecord
	st              pipeline.Stats
	err             error
}

// close releases the job's source and redactor and discards an output not
// committed.
func (j *redactJob) close() {
	if j.src != nil {
		j.src.Close()
	}
	if j.sink != nil {
		j.sink.Abort()
	}
	if j.red != nil {
		j.red.Close()
	}
}

// redactFlags reads and checks veil redact's flags.
func redactFlags(cmd *cobra.Command) (jobs []*redactJob, schedule string, err error) {
	f := cmd.Flags()
	ins, _ := f.GetStringArray("input")
	outs, _ := f.GetStringArray("output")
	reports, _ := f.GetStringArray("report")
	schedule, _ = f.GetString("schedule")
	switch {
	case schedule != scheduleFile && schedule != scheduleLive:
		return nil, "", fmt.Errorf("--schedule %q: allowed %s, %s", schedule, scheduleFile, scheduleLive)
	case schedule == scheduleLive && f.Changed("every"):
		return nil, "", errors.New("--every sets detect.every, which only --schedule file uses; the live schedule detects the newest frame whenever the detector is free, at most every live.detect_every frames (set that in the config file or VEIL_LIVE_DETECT_EVERY)")
	case len(outs) != len(ins):
		return nil, "", fmt.Errorf("--output given %s for %d --input: give one --output per --input, in the same order", times(len(outs)), len(ins))
	case len(reports) != 0 && len(reports) != len(ins):
		return nil, "", fmt.Errorf("--report given %s for %d --input: give one --report per --input, in the same order, or none", times(len(reports)), len(ins))
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	isInput := map[string]bool{}
	for _, in := range ins {
		isInput[abs(in)] = true
	}
	written := map[string]string{} // absolute path: flag that writes it
	for i, in := range ins {
		j := &redactJob{in: in, out: outs[i]}
		if len(reports) > 0 {
			j.report = reports[i]
		}
		if isInput[abs(j.out)] {
			if len(ins) == 1 {
				return nil, "", fmt.Errorf("output %s: is the input file; choose another path", j.out)
			}
			return nil, "", fmt.Errorf("output %s: is an input file; choose another path", j.out)
		}
		for _, w := range []struct{ flag, path string }{{"--output", j.out}, {"--report", j.report}} {
			if w.path == "" {
				continue
			}
			if other, dup := written[abs(w.path)]; dup {
				return nil, "", fmt.Errorf("%s %s: given already as %s; every output and report needs its own path", w.flag, w.path, other)
			}
			written[abs(w.path)] = w.flag
		}
		jobs = append(jobs, j)
	}
	return jobs, schedule, nil
}

// times says how often a flag was given.
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

func runRedact(cmd *cobra.Command, _ []string) error {
	jobs, schedule, err := redactFlags(cmd)
	if err != nil {
		return err
	}
	cfg, log, err := loadConfig(cmd, map[string]string{"every": "detect.every", "models-dir": "models.dir"})
	if err != nil {
		return err
	}
	defer func() {
		for _, j := range jobs {
			j.close()
		}
	}()
	// Every input and output is checked before anything runs.
	for _, j := range jobs {
		if err := j.open(cfg); err != nil {
			return err
		}
	}
	live := schedule == scheduleLive
	opts := app.PipelineOptions(cfg)
	if live {
		opts = app.LiveOptions(cfg)
	}
	// One factory for every input: its detectors share one detection
	// service, as veil run's cameras do.
	newDet, err := app.DetectorFactory(cfg.Detect, cfg.Models.Dir, log)
	if err != nil {
		log.Error("no face detector: every frame will be redacted whole", "err", err)
		newDet = nil
	}
	var people peopleSource
	if cfg.Redact.Target != config.TargetFaces {
		// heads and bodies: every input also runs the person detector.
		people.target = pipeline.Target(cfg.Redact.Target)
		people.footfall = cfg.Footfall
		people.newPeople, people.modelErr = app.LocalPeople(cfg.Footfall, cfg.Models.Dir)
		if people.modelErr != nil {
			log.Error("no person detector for redact.target "+cfg.Redact.Target+": every frame will be redacted whole", "err", people.modelErr)
		}
	}
	if live {
		// A camera runs from the moment it opens: open them all last.
		for _, j := range jobs {
			if err := j.openCamera(cmd.Context()); err != nil {
				return err
			}
		}
	}

	total := 0
	for _, j := range jobs {
		if j.info.Frames < 0 || total < 0 {
			total = -1
		} else {
			total += j.info.Frames
		}
		log.Info("redacting", "input", j.in, "output", j.out, "size", fmt.Sprintf("%dx%d", j.info.Size.X, j.info.Size.Y),
			"fps", j.info.FPS, "frames", j.info.Frames, "schedule", schedule, "every", opts.Every)
	}
	bar := &progressSum{bar: newProgress(log, "redact", total), done: make([]int, len(jobs))}
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jlog := log
			if len(jobs) > 1 {
				jlog = log.With("input", j.in)
			}
			j.run(cmd.Context(), newDet, people, opts, jlog, func(n int) { bar.update(i, n) })
		}()
	}
	wg.Wait()
	bar.finish()

	var errs []error
	for _, j := range jobs {
		if j.err != nil {
			if len(jobs) > 1 && !errors.Is(j.err, pipeline.ErrNoFrames) { // that one names the input
				j.err = fmt.Errorf("input %s: %w", j.in, j.err)
			}
			errs = append(errs, j.err)
			continue
		}
		if err := j.summary(cmd.OutOrStdout(), len(jobs) > 1, log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// open opens the job's input (checking it is video) and its output.
func (j *redactJob) open(cfg config.Config) error {
	red, err := app.Redactor(cfg.Redact)
	if err != nil {
		return err
	}
	j.red = red
	src, err := media.OpenFile(j.in)
	if err != nil {
		return err
	}
	j.src, j.info = src, src.Info()
	j.sink, err = media.CreateFile(j.out, cfg.Output.Codec, j.info.FPS, j.info.Size)
	return err
}

// openCamera replaces the job's file source with the same file played as a
// camera, which starts running now.
func (j *redactJob) openCamera(ctx context.Context) error {
	cam, err := media.OpenFileCamera(ctx, j.in)
	if err != nil {
		return err
	}
	j.src.Close()
	j.src, j.cam = cam, cam
	return nil
}

// peopleSource is what redact.target heads and bodies need: the person
// detector for each input's tracker.
type peopleSource struct {
	target    pipeline.Target // empty or faces: no person detector
	footfall  config.Footfall
	newPeople func() (footfall.PersonDetector, error)
	modelErr  error
}

// run redacts the job's input into its output and commits it on success;
// progress sees the frames done (live: the input frames played).
func (j *redactJob) run(ctx context.Context, newDet pipeline.NewDetector, people peopleSource, opts pipeline.Options, log *slog.Logger, progress func(int)) {
	p := &pipeline.Pipeline{
		Source: j.src, Detector: newDet, Redactor: j.red, Sink: j.sink, Log: log,
		Options: opts, Progress: progress, Target: people.target,
	}
	if people.target != "" && people.target != pipeline.TargetFaces {
		tracker, _, err := app.PeopleCounter(people.footfall, nil, false, people.newPeople, people.modelErr, log)
		if err != nil {
			j.err = err
			return
		}
		defer tracker.Close()
		p.Analyzer, p.People = app.CounterAnalyzer{Counter: tracker}, tracker
	}
	if j.cam != nil {
		p.Progress = func(done int) {
			if pos, ok := j.cam.Position(done - 1); ok {
				progress(int(pos) + 1)
			}
		}
	}
	if j.report != "" {
		p.Observer = func(r pipeline.FrameRecord) {
			rec := frameRecord{FrameRecord: r}
			if j.cam != nil {
				if pos, ok := j.cam.Position(r.Index); ok {
					rec.Source = &pos
				}
			}
			j.perFrame = append(j.perFrame, rec)
		}
	}
	j.st, j.err = p.Run(ctx)
	if errors.Is(j.err, pipeline.ErrNoFrames) {
		j.err = fmt.Errorf("input %s: %w", j.in, j.err)
	}
	if j.err == nil {
		j.err = j.sink.Commit()
		j.sink = nil // committed, or removed by a failed Commit
	}
}

// summary prints what a finished job did and writes its report.
func (j *redactJob) summary(w io.Writer, several bool, log *slog.Logger) error {
	st, info := j.st, j.info
	rep := redactReport{
		Input: j.in, Output: j.out, Width: info.Size.X, Height: info.Size.Y, FPS: info.FPS,
		Frames: st.Frames, Keyframes: st.Keyframes, Detections: st.Detections, Tracks: st.Tracks,
		Whole: st.Whole, ElapsedS: st.Elapsed.Seconds(), RunFPS: st.FPS(), PerFrame: j.perFrame,
		Promised: info.Frames,
	}
	if j.cam != nil {
		in, dropped := j.cam.Counts()
		rep.Live = &liveCounts{FramesIn: int(in), Shown: st.Frames, Dropped: int(dropped), Whole: st.Whole}
		share := 0.0
		if st.Frames > 0 {
			share = 100 * float64(st.Whole) / float64(st.Frames)
		}
		fmt.Fprintf(w, "input %s (live schedule, %dx%d @ %.2f fps): frames in %d, shown %d, dropped %d, redacted whole %d (%.1f%% of shown)\n",
			j.in, info.Size.X, info.Size.Y, info.FPS, in, st.Frames, dropped, st.Whole, share)
		fmt.Fprintf(w, "faces: %d detections on %d keyframes, %d tracks\n", st.Detections, st.Keyframes, st.Tracks)
		fmt.Fprintf(w, "output: %s (%d frames: each frame shown, once)\n", j.out, st.Frames)
		if st.Whole > 0 {
			log.Info("frames redacted whole while detection was late or before the first (fail-closed)", "input", j.in, "frames", st.Whole, "detect_failures", st.DetectFails)
		}
	} else {
		if several {
			fmt.Fprintf(w, "input %s:\n", j.in)
		}
		fmt.Fprintf(w, "redacted %d frames (%dx%d @ %.2f fps) in %s: %.1f fps\n",
			st.Frames, info.Size.X, info.Size.Y, info.FPS, st.Elapsed.Round(time.Millisecond), st.FPS())
		fmt.Fprintf(w, "faces: %d detections on %d keyframes, %d tracks; frames redacted whole: %d\n",
			st.Detections, st.Keyframes, st.Tracks, st.Whole)
		fmt.Fprintf(w, "output: %s\n", j.out)
		if endedEarly(st.Frames, info.Frames) {
			rep.EndedEarly = true
			fmt.Fprintf(w, "warning: input ended early: read %d of the %d frames the file promised; it may be truncated or damaged (the output holds the %d read)\n",
				st.Frames, info.Frames, st.Frames)
			log.Warn("input ended early", "input", j.in, "frames_read", st.Frames, "frames_promised", info.Frames)
		}
		if st.Whole > 0 {
			log.Warn("some frames were redacted whole (fail-closed)", "input", j.in, "frames", st.Whole, "detect_failures", st.DetectFails)
		}
	}
	if j.report == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(j.report, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report %s: %w", j.report, err)
	}
	fmt.Fprintf(w, "report: %s\n", j.report)
	return nil
}

// progressSum is one progress bar over several inputs redacted at once.
type progressSum struct {
	mu   sync.Mutex
	bar  *progress
	done []int
}

func (p *progressSum) update(i, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[i] = n
	sum := 0
	for _, d := range p.done {
		sum += d
	}
	p.bar.update(sum)
}

func (p *progressSum) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.finish()
}

// endedEarly reports whether a file gave clearly fewer frames than its
// container promised: more than 2 % (at least 2 frames) short, since some
// containers only estimate their frame count from duration and rate.
func endedEarly(read, promised int) bool {
	return promised > 0 && promised-read > max(2, promised/50)
}
