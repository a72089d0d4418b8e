package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/track"
)

type keyState struct {
	ok     bool
	reason string
	faces  []detect.Face
	took   time.Duration
}

// assembler keeps frames in order until the keyframes around and ahead of
// them are decided, then plans, redacts and writes them. It runs on the Run
// goroutine.
type assembler struct {
	p           *Pipeline
	o           Options
	target      Target // never ""
	log         *slog.Logger
	tracker     *track.Tracker
	hasDetector bool
	jobs        chan<- job

	queue    []frameItem // frames read, not yet written; raw Mats owned here
	toSubmit []job       // keyframe jobs not yet accepted by a worker
	keyState map[int]keyState
	eof      bool

	// applied is the index of the last keyframe fed to the tracker; every
	// keyframe before it was decided and applied in order. -1 before any.
	applied int
	// prevOK and prevReason describe the last keyframe written.
	prevOK     bool
	prevReason string

	// decidedUpTo is shared with workers so they skip keyframes that were
	// decided (late) before their detection started.
	decidedUpTo *atomic.Int64
	// headKey is the oldest undecided keyframe and headAt when it became so.
	headKey int
	headAt  time.Time

	// Live scheduling: busy counts detection jobs accepted by a worker and
	// not yet answered; lastKey is the newest keyframe read.
	busy    int
	lastKey int

	stats Stats
}

func (a *assembler) run(ctx context.Context, frames <-chan frameItem, results <-chan result) error {
	defer func() {
		for _, it := range a.queue {
			it.mat.Close()
		}
		a.queue = nil
		for _, j := range a.toSubmit {
			j.mat.Close()
		}
		a.toSubmit = nil
	}()
	a.prevReason = "warming up"
	maxQueue := a.o.Lookahead + a.o.Every*(a.o.Workers+1) + 2
	for {
		a.applyDecided()
		if err := a.emitReady(); err != nil {
			return err
		}
		if a.eof && len(a.queue) == 0 {
			return nil
		}
		if a.eof && !a.o.Live && !a.queue[len(a.queue)-1].key {
			// The stream ended between keyframes: the last frame becomes one,
			// so the trailing frames are covered looking forward too.
			last := &a.queue[len(a.queue)-1]
			last.key = true
			a.submit(*last)
			continue
		}
		head := a.headUndecided()
		var in <-chan frameItem
		if !a.eof && len(a.queue) < maxQueue {
			in = frames
		}
		var out chan<- job
		var next job
		if len(a.toSubmit) > 0 {
			out, next = a.jobs, a.toSubmit[0]
		}
		var timeout <-chan time.Time
		var timer *time.Timer
		if head >= 0 {
			if head != a.headKey {
				// The keyframe is now the oldest undecided one: its
				// detection has Deadline from here.
				a.headKey, a.headAt = head, time.Now()
			}
			d := time.Until(a.headAt.Add(a.o.Deadline))
			if d <= 0 {
				a.decide(head, result{err: errDeadline})
				continue
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		err := a.wait(ctx, in, out, next, results, timeout, head)
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return err
		}
	}
}

// wait handles one event: a frame read, a job accepted, a result, a deadline.
func (a *assembler) wait(ctx context.Context, in <-chan frameItem, out chan<- job, next job, results <-chan result, timeout <-chan time.Time, head int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case it, ok := <-in:
		if !ok {
			a.eof = true
			return nil
		}
		if a.o.Live && a.busy == 0 && len(a.toSubmit) == 0 && (a.lastKey < 0 || it.idx-a.lastKey >= a.o.Every) {
			it.key = true // the detector is free: detect the newest frame
		}
		if it.key {
			a.lastKey = it.idx
		}
		it.ref = a.lastKey
		a.queue = append(a.queue, it)
		if it.key {
			a.submit(it)
		}
	case out <- next:
		a.toSubmit = a.toSubmit[1:]
		a.busy++
	case r := <-results:
		a.busy--
		a.decide(r.idx, r)
	case <-timeout:
		a.decide(head, result{err: errDeadline})
	}
	return nil
}

// headUndecided is the index of the oldest queued keyframe not yet decided,
// or -1.
func (a *assembler) headUndecided() int {
	for _, it := range a.queue {
		if it.key && it.idx > a.applied {
			if _, ok := a.keyState[it.idx]; !ok {
				return it.idx
			}
		}
	}
	return -1
}

// applyDecided feeds decided keyframes to the tracker, in order.
func (a *assembler) applyDecided() {
	for _, it := range a.queue {
		if !it.key || it.idx <= a.applied {
			continue
		}
		st, ok := a.keyState[it.idx]
		if !ok {
			return
		}
		if st.ok {
			dets := make([]track.Detection, len(st.faces))
			for i, f := range st.faces {
				dets[i] = track.Detection{Box: f.Box, Score: float64(f.Score)}
			}
			a.tracker.Update(it.t, dets)
			a.stats.Detections += len(dets)
		}
		a.applied = it.idx
	}
}

// emitReady writes the frames at the head of the queue whose next keyframe
// has been applied and whose look-ahead is complete.
func (a *assembler) emitReady() error {
	for len(a.queue) > 0 {
		it := a.queue[0]
		key, ready := a.decidingKey(it)
		if !ready {
			return nil
		}
		st := a.keyState[key]
		var plan blur.Plan // zero: faces unknown, whole frame
		switch {
		case (it.key || !a.o.Live) && !st.ok:
			// Live, a frame's own keyframe; look-ahead, the next one. (A
			// live keyframe before it was written already: prevOK.)
			plan = blur.WholePlan(st.reason)
		case !it.key && !a.prevOK:
			plan = blur.WholePlan(a.prevReason)
		default:
			plan = blur.FacesPlan(a.cover(it.t))
		}
		plan = a.withPeople(plan, it.t)
		rec := FrameRecord{Index: it.idx, Time: it.t, Keyframe: it.key}
		if it.key && st.ok {
			for _, f := range st.faces {
				rec.Faces = append(rec.Faces, f.Box)
			}
			rec.DetectMS = float64(st.took.Microseconds()) / 1000
		}
		a.queue = a.queue[1:]
		if it.key {
			a.stats.Keyframes++
			a.prevOK = st.ok
			a.prevReason = "previous keyframe not detected"
			delete(a.keyState, it.idx)
		}
		if err := a.write(it.mat, plan, &rec); err != nil {
			return err
		}
	}
	return nil
}

// decidingKey is the keyframe whose detection decides how it is redacted,
// and whether it may be written now. Live: the keyframe at or before it, once
// decided. Look-ahead: the first keyframe at or after it, once the keyframes
// up to Lookahead frames after it are decided too.
func (a *assembler) decidingKey(it frameItem) (int, bool) {
	if a.o.Live {
		return it.ref, it.ref >= 0 && it.ref <= a.applied
	}
	next := -1
	for _, q := range a.queue {
		if q.key {
			next = q.idx
			break
		}
	}
	switch {
	case next < 0 || next > a.applied:
		return next, false
	case !a.eof && a.applied < it.idx+a.o.Lookahead:
		return next, false // wait until the keyframes ahead of it are known
	case a.eof && a.headUndecided() >= 0:
		return next, false
	}
	return next, true
}

// cover is the face boxes to redact at t: every tracked face but those the
// consent gate exempts. Head and body regions are added after it and are
// never exempted.
func (a *assembler) cover(t time.Duration) []image.Rectangle {
	faces := a.tracker.CoverTracks(t)
	var exempt []uint64
	if a.p.Consent != nil {
		exempt = a.p.Consent.Exempt(faces)
	}
	out := make([]image.Rectangle, 0, len(faces))
	for _, f := range faces {
		if !slices.Contains(exempt, f.ID) {
			out = append(out, f.Box)
		}
	}
	return out
}

// submit queues a detection job on a copy of the keyframe. Without a
// detector the keyframe fails at once.
func (a *assembler) submit(it frameItem) {
	if !a.hasDetector {
		a.decide(it.idx, result{err: fmt.Errorf("no face detector loaded")})
		return
	}
	a.toSubmit = append(a.toSubmit, job{idx: it.idx, t: it.t, mat: it.mat.Clone()})
}

// decide records a keyframe's outcome once; later results for it are ignored.
func (a *assembler) decide(idx int, r result) {
	if _, done := a.keyState[idx]; done || idx <= a.applied {
		return // decided already; a late result changes nothing
	}
	st := keyState{ok: r.err == nil, faces: r.faces, took: r.took}
	if r.err != nil {
		st.reason = reasonFor(r.err)
		a.stats.DetectFails++
		a.log.Warn("keyframe not detected; redacting its frames whole", "frame", idx, "err", r.err)
	}
	a.keyState[idx] = st
	if idx == a.headKey && int64(idx) > a.decidedUpTo.Load() {
		a.decidedUpTo.Store(int64(idx))
	}
}

func reasonFor(err error) string {
	if errors.Is(err, errDeadline) {
		return "detection late"
	}
	return "detector error"
}

// write redacts one raw frame (taking ownership) and hands it to the sink.
func (a *assembler) write(raw gocv.Mat, plan blur.Plan, rec *FrameRecord) error {
	t0 := time.Now()
	red, err := a.p.Redactor.Redact(raw, plan)
	rec.RedactMS = float64(time.Since(t0).Microseconds()) / 1000
	if err != nil {
		return fmt.Errorf("frame %d: redacting: %w", rec.Index, err)
	}
	defer red.Close()
	rec.Whole, rec.Reason, rec.Redacted = red.Whole(), red.Reason(), red.Regions()
	if !rec.Whole {
		rec.People = clipAreas(plan.Areas(), red.Size())
	}
	if rec.Whole {
		a.stats.Whole++
	}
	if err := a.p.Sink.Write(&red); err != nil {
		return fmt.Errorf("frame %d: writing: %w", rec.Index, err)
	}
	a.stats.Frames++
	if a.p.Observer != nil {
		a.p.Observer(*rec)
	}
	if a.p.Progress != nil {
		a.p.Progress(a.stats.Frames)
	}
	return nil
}
