package pipeline

import (
	"context"
	"fmt"
	"image"
	"log/slog"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/track"
)

type keyState struct {
	decided bool
	ok      bool
	reason  string
	faces   []detect.Face
	took    time.Duration
}

// assembler keeps frames in order until their keyframes are decided, then
// plans, redacts and writes them. It runs on the Run goroutine.
type assembler struct {
	p           *Pipeline
	o           Options
	log         *slog.Logger
	tracker     *track.Tracker
	fps         float64
	hasDetector bool
	jobs        chan<- job

	queue    []frameItem // frames read, not yet written; raw Mats owned here
	toSubmit []job       // keyframe jobs not yet accepted by a worker
	pending  map[int]result
	keyState map[int]keyState
	eof      bool
	prevOK   bool // the previous keyframe was detected on time
	started  bool
	// emittedKey is the index of the last keyframe written, -1 before any.
	emittedKey int
	// decidedUpTo is shared with workers so they skip keyframes that were
	// decided (late) before their detection started.
	decidedUpTo *atomic.Int64
	// headKey is the oldest undecided keyframe and headAt when it became so.
	headKey int
	headAt  time.Time

	stats      Stats
	maxTrackID uint64
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
	maxQueue := a.o.Every*(a.o.Workers+1) + 2
	for {
		k := a.nextKey()
		if k < 0 && a.eof {
			if len(a.queue) == 0 {
				return nil
			}
			// The stream ended between keyframes: the last frame becomes one,
			// so the trailing frames are covered looking forward too.
			last := &a.queue[len(a.queue)-1]
			last.key = true
			a.submit(*last)
			continue
		}
		if k >= 0 {
			if st := a.keyState[a.queue[k].idx]; st.decided {
				if err := a.emitThrough(k, st); err != nil {
					return err
				}
				continue
			}
		}
		// Wait for something to happen: a frame, a result, a deadline.
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
		if k >= 0 {
			if a.queue[k].idx != a.headKey {
				// The keyframe is now the oldest undecided one: its
				// detection has Deadline from here.
				a.headKey, a.headAt = a.queue[k].idx, time.Now()
			}
			d := time.Until(a.headAt.Add(a.o.Deadline))
			if d <= 0 {
				a.decide(a.queue[k].idx, result{err: errDeadline})
				continue
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		err := a.wait(ctx, in, out, next, results, timeout, k)
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return err
		}
	}
}

// wait handles one event: a frame read, a job accepted, a result, a deadline.
func (a *assembler) wait(ctx context.Context, in <-chan frameItem, out chan<- job, next job, results <-chan result, timeout <-chan time.Time, k int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case it, ok := <-in:
		if !ok {
			a.eof = true
			return nil
		}
		a.queue = append(a.queue, it)
		if it.key {
			a.submit(it)
		}
	case out <- next:
		a.toSubmit = a.toSubmit[1:]
	case r := <-results:
		a.decide(r.idx, r)
	case <-timeout:
		a.decide(a.queue[k].idx, result{err: errDeadline})
	}
	return nil
}

// nextKey is the queue index of the first keyframe, or -1.
func (a *assembler) nextKey() int {
	for i, it := range a.queue {
		if it.key {
			return i
		}
	}
	return -1
}

// submit queues a detection job on a copy of the keyframe. Without a
// detector the keyframe fails at once.
func (a *assembler) submit(it frameItem) {
	if !a.hasDetector {
		a.decide(it.idx, result{err: fmt.Errorf("no face detector loaded")})
		return
	}
	a.toSubmit = append(a.toSubmit, job{idx: it.idx, mat: it.mat.Clone()})
}

// decide records a keyframe's outcome once; later results for it are ignored.
func (a *assembler) decide(idx int, r result) {
	if _, done := a.keyState[idx]; done || idx <= a.emittedKey {
		return // decided already; a late result changes nothing
	}
	st := keyState{decided: true, ok: r.err == nil, faces: r.faces, took: r.took}
	if r.err != nil {
		st.reason = reasonFor(r.err)
		a.stats.DetectFails++
		a.log.Warn("keyframe not detected; redacting its frames whole", "frame", idx, "err", r.err)
	}
	a.keyState[idx] = st
	if a.decidedUpTo != nil && int64(idx) > a.decidedUpTo.Load() && idx == a.headKey {
		a.decidedUpTo.Store(int64(idx))
	}
}

func reasonFor(err error) string {
	if err == errDeadline {
		return "detection late"
	}
	return "detector error"
}

// emitThrough writes the frames up to and including the keyframe at queue
// index k, whose outcome is st.
func (a *assembler) emitThrough(k int, st keyState) error {
	key := a.queue[k]
	a.stats.Keyframes++
	if st.ok {
		boxes := make([]image.Rectangle, len(st.faces))
		for i, f := range st.faces {
			boxes[i] = f.Box
		}
		a.tracker.Update(key.t, boxes)
		a.stats.Detections += len(boxes)
		for _, tr := range a.tracker.Tracks() {
			a.maxTrackID = max(a.maxTrackID, tr.ID)
		}
	}
	for i := 0; i <= k; i++ {
		it := a.queue[i]
		a.queue[i] = frameItem{}
		var plan blur.Plan // zero: faces unknown, whole frame
		switch {
		case !st.ok:
			plan = blur.WholePlan(st.reason)
		case i < k && !a.prevOK:
			plan = blur.WholePlan(a.prevReason())
		default:
			plan = blur.FacesPlan(a.tracker.Cover(it.t))
		}
		rec := FrameRecord{Index: it.idx, Time: it.t, Keyframe: i == k}
		if i == k && st.ok {
			for _, f := range st.faces {
				rec.Faces = append(rec.Faces, f.Box)
			}
			rec.DetectMS = float64(st.took.Microseconds()) / 1000
		}
		if err := a.write(it.mat, plan, &rec); err != nil {
			for j := i + 1; j <= k; j++ {
				a.queue[j].mat.Close()
			}
			a.queue = a.queue[k+1:]
			return err
		}
	}
	a.queue = a.queue[k+1:]
	a.prevOK = st.ok
	a.started = true
	delete(a.keyState, key.idx)
	a.emittedKey = key.idx
	return nil
}

func (a *assembler) prevReason() string {
	if !a.started {
		return "warming up"
	}
	return "previous keyframe not detected"
}

// write redacts one raw frame (taking ownership) and hands it to the sink.
func (a *assembler) write(raw gocv.Mat, plan blur.Plan, rec *FrameRecord) error {
	red, err := a.p.Redactor.Redact(raw, plan)
	if err != nil {
		return fmt.Errorf("frame %d: redacting: %w", rec.Index, err)
	}
	defer red.Close()
	rec.Whole, rec.Reason, rec.Redacted = red.Whole(), red.Reason(), red.Regions()
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
