package footfall

import (
	"errors"
	"fmt"
	"time"

	"gocv.io/x/gocv"
)

// GateOptions tunes Gated.
type GateOptions struct {
	// Every is the least stream time from one run of the people detector
	// to the next: 100 ms runs it at most about 10 times a second whatever
	// the frame rate, and the tracker predicts in between. 0 runs it on
	// every frame it is needed. Allowed 0 to 10 s; default 100 ms.
	Every time.Duration
	// Recheck runs the people detector at least this often even when
	// nothing moves and nobody is tracked, for a person the motion check
	// has taken into its background (one who stood still for long before
	// their track was lost). 0 never does. Allowed 0 to 1 hour; default 5 s.
	Recheck time.Duration
}

// DefaultGateOptions run a people detector at most 10 times a second.
var DefaultGateOptions = GateOptions{Every: 100 * time.Millisecond, Recheck: 5 * time.Second}

// DefaultGateMotionOptions make Motion a cheap check for Gated: a background
// model at a quarter of the frame size that reports any blob at least 3 % of
// the frame tall.
var DefaultGateMotionOptions = MotionOptions{Scale: 0.25, History: 500, VarThreshold: 16, MinHeight: 0.03, Warmup: 5}

// Validate reports the first option out of its allowed range.
func (o GateOptions) Validate() error {
	switch {
	case o.Every < 0 || o.Every > 10*time.Second:
		return fmt.Errorf("gated detector: Every %v out of range [0, 10s]", o.Every)
	case o.Recheck < 0 || o.Recheck > time.Hour:
		return fmt.Errorf("gated detector: Recheck %v out of range [0, 1h]", o.Recheck)
	}
	return nil
}

// Gated runs an expensive people detector (FindsPeople) only on the frames
// that need it, keeping a cheap motion check (Motion, usually at a low
// scale) as the gate. On each frame the Counter gives it, the motion check
// reads the frame, and the people detector runs if
//
//   - Every has passed since its last run (stream time), and
//   - something moved since its last run, or any track is alive (a person
//     standing still is not moving but must not be lost), or Recheck has
//     passed since its last run, or the motion check is still warming up.
//
// An AsyncPersonDetector runs in the background: Gated starts it on the
// frame it is due on and collects its detections on a later frame, stamped
// with the time of the frame they were found on; meanwhile the frames go
// on, the tracker coasting, and no run starts before the last is
// collected. So a camera's frames are never held up by the detector (veil
// run), while veil count, with a detector that runs on the calling
// goroutine, gives the same counts on every run.
//
// On the other frames it reports that it did not run, and the Counter's
// tracker lets its tracks coast on their predictions: a skipped frame is not
// a missed detection. Without a motion check (nil) Gated only limits the
// rate.
//
// The schedule needs stream time, which only the Counter gives it; Detect on
// its own runs both detectors on every frame.
type Gated struct {
	people  PersonDetector
	motion  *Motion
	o       GateOptions
	started bool          // the people detector has run
	last    time.Duration // stream time of its last run
	next    time.Duration // stream time from which its next run is due
	moved   bool          // the motion check saw something since the last run
	// inflight: an AsyncPersonDetector's run started at last has not
	// been collected yet.
	inflight bool
	ran      int
	skipped  int
}

var _ PersonDetector = (*Gated)(nil)

var _ scheduled = (*Gated)(nil)

// NewGated gates people, a detector that FindsPeople, with motion (nil for
// none). It takes ownership of both.
func NewGated(people PersonDetector, motion *Motion, o GateOptions) (*Gated, error) {
	if people == nil {
		return nil, errors.New("gated detector: no people detector")
	}
	if f := people.Finds(); f != FindsPeople {
		return nil, fmt.Errorf("gated detector: the detector finds %v; only a detector that finds people can be gated", f)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Gated{people: people, motion: motion, o: o}, nil
}

// Finds reports FindsPeople.
func (g *Gated) Finds() Finding { return FindsPeople }

// Detect runs the motion check and the people detector on frame.
func (g *Gated) Detect(frame gocv.Mat) ([]Detection, error) {
	if g.motion != nil {
		if _, err := g.motion.Detect(frame); err != nil {
			return nil, fmt.Errorf("motion check: %w", err)
		}
	}
	g.ran++
	return g.people.Detect(frame)
}

func (g *Gated) detectAt(frame gocv.Mat, at time.Duration, tracking bool) (gateResult, error) {
	var r gateResult
	if g.motion != nil {
		blobs, err := g.motion.Detect(frame)
		if err != nil {
			return r, fmt.Errorf("motion check: %w", err)
		}
		g.moved = g.moved || len(blobs) > 0 || g.motion.warming()
	}
	async, isAsync := g.people.(AsyncPersonDetector)
	if isAsync && g.inflight {
		dets, done, err := async.Poll()
		if done {
			g.inflight = false
			if err != nil {
				return r, err
			}
			r = gateResult{dets: dets, at: g.last, got: true}
		}
	}
	if g.started && at < g.last {
		g.next = at // the stream started again
	}
	due := !g.started || at >= g.next
	need := g.motion == nil || g.moved || tracking || !g.started ||
		(g.o.Recheck > 0 && at-g.last >= g.o.Recheck)
	r.idle = !need && !g.inflight
	if !due || !need || g.inflight {
		g.skipped++
		return r, nil
	}
	if isAsync {
		if err := async.Start(frame); err != nil {
			return r, err
		}
		g.inflight = true
	} else {
		dets, err := g.people.Detect(frame)
		if err != nil {
			return r, err
		}
		r = gateResult{dets: dets, at: at, got: true}
	}
	g.ran++
	g.started, g.last, g.moved = true, at, false
	// Keep to the rate on average (10 Hz at 25 fps runs on 2 or 3 frames
	// apart), but never catch up on time nothing ran in.
	if g.next += g.o.Every; g.next <= at {
		g.next = at + g.o.Every
	}
	return r, nil
}

// Runs reports on how many frames the people detector ran and on how many
// it was skipped.
func (g *Gated) Runs() (ran, skipped int) { return g.ran, g.skipped }

// AsyncPersonDetector is a people detector that runs in the background.
// Start begins a run on frame, copying what it needs of it during the call,
// and returns at once; Poll reports the run's detections once it has
// finished (done), and nothing while it runs or when none was started. At
// most one run is in flight; Close waits for it.
type AsyncPersonDetector interface {
	PersonDetector
	Start(frame gocv.Mat) error
	Poll() (dets []Detection, done bool, err error)
}

// gateResult is what a scheduled detector did on one frame.
type gateResult struct {
	dets []Detection
	at   time.Duration // stream time of the frame dets were found on
	got  bool          // dets are a finished run's (maybe of an earlier frame)
	// idle: no run was needed (nothing moved, nobody tracked) and none is
	// in flight, so nobody is there to find.
	idle bool
}

// Close releases both detectors.
func (g *Gated) Close() error {
	err := g.people.Close()
	if g.motion != nil {
		err = errors.Join(err, g.motion.Close())
	}
	return err
}
