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
	ran     int
	skipped int
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

func (g *Gated) detectAt(frame gocv.Mat, at time.Duration, tracking bool) ([]Detection, bool, error) {
	if g.motion != nil {
		blobs, err := g.motion.Detect(frame)
		if err != nil {
			return nil, false, fmt.Errorf("motion check: %w", err)
		}
		g.moved = g.moved || len(blobs) > 0 || g.motion.warming()
	}
	if g.started && at < g.last {
		g.next = at // the stream started again
	}
	due := !g.started || at >= g.next
	need := g.motion == nil || g.moved || tracking || !g.started ||
		(g.o.Recheck > 0 && at-g.last >= g.o.Recheck)
	if !due || !need {
		g.skipped++
		return nil, false, nil
	}
	dets, err := g.people.Detect(frame)
	if err != nil {
		return nil, false, err
	}
	g.ran++
	g.started, g.last, g.moved = true, at, false
	// Keep to the rate on average (10 Hz at 25 fps runs on 2 or 3 frames
	// apart), but never catch up on time nothing ran in.
	if g.next += g.o.Every; g.next <= at {
		g.next = at + g.o.Every
	}
	return dets, true, nil
}

// Runs reports on how many frames the people detector ran and on how many
// it was skipped.
func (g *Gated) Runs() (ran, skipped int) { return g.ran, g.skipped }

// Close releases both detectors.
func (g *Gated) Close() error {
	err := g.people.Close()
	if g.motion != nil {
		err = errors.Join(err, g.motion.Close())
	}
	return err
}
