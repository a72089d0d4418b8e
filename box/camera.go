package box

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/footfall"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/internal/crashpoint"
	"github.com/veil-edge/veil/live"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/pipeline"
)

// camera is one configured camera: its supervisor state, its count windows
// and its health.
type camera struct {
	cfg   config.Camera
	full  config.Config
	lines []footfall.Line
	log   *slog.Logger

	storeMu sync.Mutex // one store at a time
	jmu     sync.Mutex // one journal save at a time, in snapshot order

	mu       sync.Mutex
	wins     *footfall.Windows // open count windows; nil while the camera is not counting
	unsent   []unsentWindow    // closed windows not yet in the outbox (being stored, or refused when full: retried)
	healthy  bool
	lastErr  string
	restarts int
	frames   int64 // redacted frames out
	whole    int64 // frames redacted whole (fail-closed)
	fps      float64
	lastOut  time.Time
	lastFail time.Time // when the source last failed (the supervisor is retrying it)
	rateFrom time.Time // start of the current frame-rate window
	rateN    int       // frames in it
	totals   []footfall.Tally
	jr       journal
	hub      *live.Hub            // live view; nil when it is off
	newDet   pipeline.NewDetector // nil: no detector, every frame redacted whole
	// newPeople makes the camera's person detector; nil when the person
	// model could not be loaded (peopleErr says why).
	newPeople  func() (footfall.PersonDetector, error)
	peopleErr  error
	countKind  app.CounterKind  // what the running counter counts with
	peopleLate int64            // person passes answered late (the tracker coasted)
	consent    pipeline.Consent // nil: no opt-in on this camera

	src              *media.LiveSource // the running source, nil between runs
	inBase, dropBase int64             // frames in and dropped by earlier runs
	inRate           float64           // frames per second from the camera
	inFrom           int64             // frames in at rateFrom
	detect, redact   timing
	minute           wholeMinute // frames redacted whole over the last full minute
}

// wholeMinute counts a camera's frames and those redacted whole per minute,
// so /healthz shows the recent share and the log says when detection cannot
// keep up (the box is short of CPU for its cameras' face search).
type wholeMinute struct {
	from          time.Time
	frames, whole int
	lastShare     float64
}

// wholeWarnShare is the share of a minute's frames redacted whole above
// which the camera logs a warning.
const wholeWarnShare = 0.05

func (w *wholeMinute) add(now time.Time, whole bool, log *slog.Logger, detectMS float64) {
	if w.from.IsZero() {
		w.from = now
	}
	w.frames++
	if whole {
		w.whole++
	}
	if now.Sub(w.from) < time.Minute {
		return
	}
	w.lastShare = float64(w.whole) / float64(w.frames)
	if w.lastShare > wholeWarnShare {
		log.Warn("frames redacted whole: face detection is not keeping up with this camera (fail-closed); "+
			"give cameras whose faces are never small a larger min_face (18 searches the frame at its own size, "+
			"about half the work of 12), or run fewer cameras on this box",
			"share_last_minute", fmt.Sprintf("%.0f%%", 100*w.lastShare), "detect_ms", fmt.Sprintf("%.0f", detectMS))
	}
	w.from, w.frames, w.whole = now, 0, 0
}

// timing sums a stage's durations and keeps a moving average for /healthz.
type timing struct {
	sum   time.Duration
	n     int64
	avgMS float64
}

func (t *timing) add(ms float64) {
	t.sum += time.Duration(ms * float64(time.Millisecond))
	t.n++
	if t.n == 1 {
		t.avgMS = ms
	} else {
		t.avgMS += (ms - t.avgMS) / 20 // about the last 20
	}
}

// framesIn is every frame received from the camera and every one dropped
// because veil was busy, over all runs. c.mu must be held.
func (c *camera) framesIn() (in, dropped int64) {
	in, dropped = c.inBase, c.dropBase
	if c.src != nil {
		r, d := c.src.Counts()
		in, dropped = in+r, dropped+d
	}
	return in, dropped
}

// observe records a written frame's detection and redaction times.
func (c *camera) observe(r pipeline.FrameRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Keyframe && r.DetectMS > 0 {
		c.detect.add(r.DetectMS)
	}
	c.redact.add(r.RedactMS)
}

func newCamera(c config.Camera, full config.Config, log *slog.Logger) (*camera, error) {
	cam := &camera{cfg: c, full: full, lines: app.CameraLines(c), log: log, jr: journal{dir: full.Footfall.JournalDir}}
	if len(cam.lines) > 0 {
		if _, err := footfall.NewWindows(full.Footfall.Window, len(cam.lines), time.Now()); err != nil {
			return nil, fmt.Errorf("camera %s: %w", c.Name, err)
		}
		cam.totals = make([]footfall.Tally, len(cam.lines))
	}
	return cam, nil
}

// startCounting opens count windows from now: the camera delivers frames.
func (c *camera) startCounting(now time.Time) {
	if len(c.lines) == 0 {
		return
	}
	w, _ := footfall.NewWindows(c.full.Footfall.Window, len(c.lines), now) // checked by newCamera
	c.mu.Lock()
	c.wins = w
	c.mu.Unlock()
}

// stopCounting closes the open window as a partial one ending at now and
// counts nothing until startCounting: while a camera is down no window is
// reported, so head office cannot mistake "not counting" for "nobody came".
func (c *camera) stopCounting(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wins == nil {
		return
	}
	ws := c.wins.Flush(now)
	end := now.Truncate(time.Millisecond)
	for i := range ws {
		if ws[i].End.After(end) {
			ws[i].End = end
		}
	}
	c.unsent = appendUnsent(c.unsent, ws)
	c.wins = nil
}

// supervise runs the camera's pipeline, reopening the source with capped
// exponential back-off whenever it fails, until ctx is cancelled.
func (c *camera) supervise(ctx context.Context, s *Service) {
	backoff := s.o.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := c.runOnce(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			// Only a file without loop ends cleanly; a camera stream that
			// ends is an error and is retried.
			c.mu.Lock()
			c.healthy, c.lastErr = false, "source ended (a file without loop: true)"
			c.mu.Unlock()
			c.log.Info("camera source ended; not restarting it")
			return
		}
		if time.Since(start) > 2*s.o.MaxBackoff {
			backoff = s.o.MinBackoff // it ran well for a while: start over
		}
		c.mu.Lock()
		c.healthy, c.lastErr, c.lastFail = false, err.Error(), time.Now()
		c.restarts++
		c.mu.Unlock()
		c.log.Error("camera failed; retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, s.o.MaxBackoff)
	}
}

// runOnce opens the source and runs one pipeline until the source fails or
// ctx ends.
func (c *camera) runOnce(ctx context.Context, s *Service) error {
	src, err := media.OpenLive(ctx, c.cfg.Source, c.cfg.Loop)
	if err != nil {
		return err
	}
	defer src.Close()
	c.mu.Lock()
	c.src = src
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		r, d := src.Counts()
		c.inBase, c.dropBase, c.src = c.inBase+r, c.dropBase+d, nil
		c.mu.Unlock()
	}()
	info := src.Info()
	var an pipeline.Analyzer
	var people pipeline.People
	target := pipeline.Target(c.full.Redact.Target)
	if len(c.lines) > 0 || target != pipeline.TargetFaces {
		for _, l := range c.lines {
			if err := l.Valid(info.Size); err != nil {
				return fmt.Errorf("counting line: %w", err)
			}
		}
		// Without lines it only tracks people, to redact them.
		counter, kind, err := app.PeopleCounter(c.full.Footfall, c.lines, c.cfg.Overhead(), c.newPeople, c.peopleErr, c.log)
		if err != nil {
			return err
		}
		defer counter.Close()
		if len(c.lines) > 0 {
			c.mu.Lock()
			c.countKind = kind
			c.mu.Unlock()
		}
		an, people = &countAnalyzer{cam: c, counter: counter}, counter
	}
	red, err := app.CameraRedactor(c.full.Redact, c.cfg)
	if err != nil {
		return err
	}
	defer red.Close()
	c.startCounting(time.Now())
	defer func() { c.stopCounting(time.Now()) }()
	c.log.Info("camera started", "source", media.Display(c.cfg.Source), "size", fmt.Sprintf("%dx%d", info.Size.X, info.Size.Y), "fps", info.FPS)
	p := &pipeline.Pipeline{
		Source: src, Detector: c.newDet, Redactor: red, Sink: c.sink(), Log: c.log,
		Options: app.LiveOptions(c.full), Analyzer: an, Observer: c.observe, Consent: c.consent,
		Target: target, People: people,
	}
	_, err = p.Run(ctx)
	return err
}

// countAnalyzer feeds raw frames to the people counter and the crossings,
// stamped with the wall clock, into the camera's windows.
type countAnalyzer struct {
	cam     *camera
	counter *footfall.Counter
}

func (a *countAnalyzer) Analyze(frame gocv.Mat, at time.Duration) error {
	cr, err := a.counter.Frame(frame, at)
	if errors.Is(err, detect.ErrLate) {
		// The detection service was busy with faces: the tracker coasts
		// over this frame. Counted, not logged per frame.
		a.cam.mu.Lock()
		a.cam.peopleLate++
		a.cam.mu.Unlock()
		err = nil
	}
	if len(cr) == 0 {
		return err
	}
	now := time.Now()
	a.cam.mu.Lock()
	for _, x := range cr {
		if a.cam.wins != nil {
			a.cam.wins.Add(x.Line, x.Dir, now)
		}
		if x.Dir == footfall.In {
			a.cam.totals[x.Line].In++
		} else {
			a.cam.totals[x.Line].Out++
		}
	}
	a.cam.mu.Unlock()
	a.cam.saveJournal(now)
	for _, x := range cr { // logged once journaled: a crash from here on loses none of them
		a.cam.log.Debug("crossing", "line", a.cam.lines[x.Line].Name, "dir", x.Dir.String())
	}
	return err
}

// sink is where the camera's redacted frames go: the health statistics and,
// when the live view is on, its WebRTC hub.
func (c *camera) sink() pipeline.Sink {
	st := &statsSink{cam: c}
	if c.hub == nil {
		return st
	}
	return teeSink{st, c.hub}
}

// teeSink hands each redacted frame to several sinks in turn.
type teeSink []pipeline.Sink

func (t teeSink) Write(f *blur.Redacted) error {
	var errs []error
	for _, s := range t {
		errs = append(errs, s.Write(f))
	}
	return errors.Join(errs...)
}

// statsSink is where redacted frames go until a viewer wants them: it
// measures the camera's output rate and fail-closed frames.
type statsSink struct{ cam *camera }

func (k *statsSink) Write(f *blur.Redacted) error {
	c := k.cam
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.healthy, c.lastErr = true, ""
	c.frames++
	if f.Whole() {
		c.whole++
	}
	c.minute.add(now, f.Whole(), c.log, c.detect.avgMS)
	// Frames leave the pipeline in bursts (those waiting for a keyframe's
	// detection at once), so rates are counted over windows of two seconds.
	c.lastOut = now
	in, _ := c.framesIn()
	if c.rateFrom.IsZero() {
		c.rateFrom, c.inFrom = now, in
	}
	c.rateN++
	if dt := now.Sub(c.rateFrom); dt >= 2*time.Second {
		c.fps = float64(c.rateN) / dt.Seconds()
		c.inRate = float64(in-c.inFrom) / dt.Seconds()
		c.rateFrom, c.rateN, c.inFrom = now, 0, in
	}
	return nil
}

// closeWindows closes count windows on the wall clock and writes them to the
// outbox, retrying those the outbox refused.
func (c *camera) closeWindows(ctx context.Context, box *egress.Outbox) {
	if len(c.lines) == 0 {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			if c.wins != nil {
				c.unsent = appendUnsent(c.unsent, c.wins.Close(now))
			}
			c.mu.Unlock()
			c.store(box)
		}
	}
}

// flush writes what is left at shutdown: the open window as a partial one
// ending at now, and windows the outbox refused before.
func (c *camera) flush(now time.Time, box *egress.Outbox) {
	if len(c.lines) == 0 {
		return
	}
	c.stopCounting(now)
	c.store(box)
	if n := len(c.unsent); n > 0 {
		c.log.Error("count windows could not be written to the outbox and are lost", "windows", n)
	}
}

// unsentWindow is a closed window on its way to the outbox, with the
// identity the outbox reserved for it (zero until reserved).
type unsentWindow struct {
	footfall.Window
	boot, seq uint64
}

func appendUnsent(u []unsentWindow, ws []footfall.Window) []unsentWindow {
	for _, w := range ws {
		u = append(u, unsentWindow{Window: w})
	}
	return u
}

// saveJournal writes the crossings not yet in the outbox to the journal:
// the closed windows on their way there, with their reserved identities,
// and the open windows. Saves are serialised so that an older snapshot
// never overwrites a newer one.
func (c *camera) saveJournal(now time.Time) error {
	c.jmu.Lock()
	defer c.jmu.Unlock()
	c.mu.Lock()
	var ws []journalWindow
	add := func(w footfall.Window, boot, seq uint64) {
		// A closed window with an identity is kept even when empty: it is
		// a report on its way.
		if w.Tally != (footfall.Tally{}) || seq != 0 {
			ws = append(ws, journalWindow{Line: c.lines[w.Line].Name, Start: w.Start, End: w.End, In: w.In, Out: w.Out, Boot: boot, Seq: seq})
		}
	}
	for _, w := range c.unsent {
		add(w.Window, w.boot, w.seq)
	}
	if c.wins != nil {
		for _, w := range c.wins.Snapshot(now) {
			add(w, 0, 0)
		}
	}
	c.mu.Unlock()
	if err := c.jr.save(c.cfg.Name, ws); err != nil {
		c.log.Error("cannot write the crossings journal; a crash now would lose this window's counts", "err", err)
		return err
	}
	return nil
}

// store moves the closed windows into the outbox, oldest first, each in
// three durable steps: its identity is reserved and written to the journal,
// the outbox stores it under that identity, the journal drops it. A crash
// between any two steps leaves it in the journal with its identity, and
// the next start adds it under the same identity, which the outbox and head
// office take once.
func (c *camera) store(box *egress.Outbox) {
	c.storeMu.Lock()
	defer c.storeMu.Unlock()
	for {
		c.mu.Lock()
		for len(c.unsent) > 0 && !c.unsent[0].End.After(c.unsent[0].Start) {
			c.unsent = c.unsent[1:] // empty span: nothing counted
		}
		if len(c.unsent) == 0 {
			c.mu.Unlock()
			return
		}
		w := c.unsent[0]
		reserve := w.seq == 0
		if reserve {
			w.boot, w.seq = box.Reserve()
			c.unsent[0] = w
		}
		c.mu.Unlock()
		if reserve {
			if err := c.saveJournal(time.Now()); err != nil {
				return // retried at the next tick, under the identity reserved now
			}
			if w.In+w.Out > 0 {
				crashpoint.Hit("window-reserved") // its identity journaled, not yet stored
			}
		}
		r, err := box.AddAs(egress.Counts{Camera: c.cfg.Name, Line: c.lines[w.Line].Name, Start: w.Start, End: w.End, In: w.In, Out: w.Out}, w.boot, w.seq)
		if err != nil {
			c.log.Error("outbox refused a count window; will retry", "err", err)
			return
		}
		if w.In+w.Out > 0 {
			crashpoint.Hit("window-stored") // a window with crossings, stored, not yet out of the journal
		}
		c.mu.Lock()
		c.unsent = c.unsent[1:]
		c.mu.Unlock()
		c.saveJournal(time.Now())
		c.log.Info("count window closed", "line", r.Line, "start", r.Start.Format(time.RFC3339), "end", r.End.Format(time.RFC3339), "in", r.In, "out", r.Out, "boot", r.Boot, "seq", r.Seq)
	}
}
