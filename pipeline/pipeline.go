package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/track"
)

// Source yields raw BGR frames.
//
// Read fills dst with the next frame, reusing or replacing its memory, and
// returns io.EOF after the last frame. The caller owns dst. A Source is used
// by one goroutine at a time.
type Source interface {
	Read(dst *gocv.Mat) error
	Info() SourceInfo
	Close() error
}

// SourceInfo describes a source's frames.
type SourceInfo struct {
	Size   image.Point
	FPS    float64
	Frames int // total frames if known, else -1
}

// Sink receives redacted frames in order. Write must not retain f after it
// returns (copy with f.CloneMat if needed); the pipeline closes f.
type Sink interface {
	Write(f *blur.Redacted) error
}

// Analyzer reads raw frames for statistics that contain no pixels (the
// footfall counter). Analyze is called once per frame, in order, from the
// reading goroutine; it must not retain frame or write it anywhere, and
// should be fast (it delays reading): the only image it may derive is a
// scaled copy handed to the box's detection service in the same process
// (the person detector, in the background), freed when the pass is done.
// Its error is logged and does not stop redaction.
type Analyzer interface {
	Analyze(frame gocv.Mat, at time.Duration) error
}

// NewDetector makes one Detector for one worker goroutine.
type NewDetector func() (detect.Detector, error)

// Options tunes scheduling.
type Options struct {
	Every    int           // detect on every Nth frame (and the last); 1 = every frame
	Deadline time.Duration // a keyframe's detection must finish this long after all earlier frames were written
	Workers  int           // detector goroutines; use 1 for a stateful detector (a gated Search) so keyframes arrive in order
	// Lookahead holds each frame until the keyframes up to this many frames
	// after it are detected, so a face is covered on the frames before it
	// was first found (entering the picture, turning towards the camera).
	Lookahead int
	// Live schedules for latency instead of look-ahead, for a camera being
	// watched: a frame becomes a keyframe when the detector is free (and at
	// least Every frames after the last one), and every frame is written as
	// soon as the keyframe at or before it is decided, covered by the
	// tracks up to that keyframe. Lookahead is ignored. A face that enters
	// between two keyframes is covered from the next keyframe on.
	Live  bool
	Track track.Options
}

// DefaultOptions suit offline redaction on a 2-core box.
var DefaultOptions = Options{Every: 4, Deadline: 2 * time.Second, Workers: 1, Lookahead: 12, Track: track.DefaultOptions}

// FrameRecord is what happened to one frame; Observer receives one per frame.
type FrameRecord struct {
	Index    int               `json:"frame"`
	Time     time.Duration     `json:"-"`
	Keyframe bool              `json:"keyframe,omitempty"`
	Faces    []image.Rectangle `json:"faces,omitempty"`    // detections on a keyframe
	Redacted []image.Rectangle `json:"redacted,omitempty"` // regions redacted (padded, clipped), People's included
	// People is the person regions redacted (heads or bodies, padded,
	// clipped), also listed in Redacted; none under TargetFaces or when
	// the frame was redacted whole.
	People   []image.Rectangle `json:"people,omitempty"`
	Whole    bool              `json:"whole,omitempty"`  // whole frame redacted
	Reason   string            `json:"reason,omitempty"` // why whole
	DetectMS float64           `json:"detect_ms,omitempty"`
	RedactMS float64           `json:"-"` // time to redact the frame
}

// Stats sums a run.
type Stats struct {
	Frames      int
	Keyframes   int
	Detections  int // face detections summed over keyframes
	Tracks      int // distinct confirmed face tracks (faces seen)
	Whole       int // frames redacted whole (fail-closed)
	DetectFails int // keyframes whose detection failed or was late
	Elapsed     time.Duration
}

// FPS is frames per second of wall time.
func (s Stats) FPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Frames) / s.Elapsed.Seconds()
}

// Pipeline redacts one source into one sink.
type Pipeline struct {
	Source   Source
	Detector NewDetector // nil means no detector could be loaded: every frame is redacted whole
	Redactor *blur.Redactor
	Sink     Sink
	Options  Options
	Log      *slog.Logger
	// Observer, if set, is called once per frame after it was written.
	Observer func(FrameRecord)
	// Progress, if set, is called after each frame with the count written.
	Progress func(done int)
	// Analyzer, if set, sees every raw frame as it is read (counting).
	Analyzer Analyzer
	// Consent, if set, may exempt tracked faces from redaction (shoppers
	// who opted in). nil redacts every face. It is never asked about a
	// frame redacted whole. It exempts faces only: a head or body region
	// (TargetHeads, TargetBodies) is never exempted, since a shop that
	// chose them wants nobody recognisable and an opt-in cannot undo that.
	Consent Consent
	// Target is what is redacted: faces (also the zero value), heads or
	// bodies. Run fails on any other value.
	Target Target
	// People gives the tracked people's boxes for TargetHeads and
	// TargetBodies; it is not used for TargetFaces. Fail closed: with
	// either target, every frame is redacted whole while People is nil
	// (reason "no people detector") or says the people at the frame's
	// time are not known ("people not known").
	People People
}

// Consent decides, for each frame written, which of the faces the tracker
// covers the frame may show. It sees track IDs and boxes only, never pixels.
// Exempt is called from the Run goroutine, once per frame, in order; it
// returns the IDs to leave unredacted (nil: none).
type Consent interface {
	Exempt(faces []track.Covered) []uint64
}

// ErrNoFrames is returned when a source ends before its first frame.
var ErrNoFrames = errors.New("pipeline: source has no frames")

type frameItem struct {
	idx int
	t   time.Duration
	mat gocv.Mat // raw; owned by whoever holds the item
	key bool
	ref int // live: the keyframe at or before it (its own index if key)
}

type job struct {
	idx int
	t   time.Duration // the frame's time
	mat gocv.Mat      // a copy owned by the worker
}

type result struct {
	idx   int
	faces []detect.Face
	err   error
	took  time.Duration
}

// Run processes the source to its end or until ctx is cancelled. Every frame
// read is written to the sink, redacted. It returns the run's statistics.
func (p *Pipeline) Run(ctx context.Context) (Stats, error) {
	if err := p.Target.Validate(); err != nil {
		return Stats{}, fmt.Errorf("pipeline: %w", err)
	}
	target := p.Target
	if target == "" {
		target = TargetFaces
	}
	o := p.Options
	if o.Every < 1 {
		o.Every = 1
	}
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.Deadline <= 0 {
		o.Deadline = DefaultOptions.Deadline
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if target.people() && p.People == nil {
		log.Error("no people detector; every frame will be redacted whole", "target", target)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	info := p.Source.Info()
	fps := info.FPS
	if fps <= 0 || fps > 1000 {
		fps = 25
	}

	jobs := make(chan job, o.Workers)
	results := make(chan result, o.Workers*2+4)
	workersDone := make(chan struct{})
	nWorkers := 0
	if p.Detector != nil {
		nWorkers = o.Workers
	}
	decided := new(atomic.Int64)
	decided.Store(-1)
	for w := 0; w < nWorkers; w++ {
		go p.worker(ctx, w, o.Deadline, jobs, results, workersDone, decided, log)
	}

	frames := make(chan frameItem, o.Every+o.Workers+2)
	readErr := make(chan error, 1)
	go p.read(ctx, fps, o, frames, readErr, log)

	if o.Lookahead < 0 || o.Live {
		o.Lookahead = 0
	}
	a := assembler{
		p: p, o: o, target: target, log: log, tracker: track.New(o.Track), keyState: map[int]keyState{},
		hasDetector: p.Detector != nil, jobs: jobs, applied: -1, headKey: -1, decidedUpTo: decided, lastKey: -1,
	}
	err := a.run(ctx, frames, results)
	cancel()
	// Drain what is left so every raw Mat is closed.
	for it := range frames {
		it.mat.Close()
	}
	rerr := <-readErr
	close(jobs)
	for w := 0; w < nWorkers; w++ {
		<-workersDone
	}
	for len(results) > 0 {
		<-results
	}
	a.stats.Elapsed = time.Since(start)
	a.stats.Tracks = a.tracker.Faces()
	if err == nil && rerr != nil && !errors.Is(rerr, io.EOF) {
		err = rerr
	}
	if err == nil && a.stats.Frames == 0 {
		err = ErrNoFrames
	}
	return a.stats, err
}

// read decodes frames and marks keyframes. It closes frames when done
// and reports why it stopped on readErr (io.EOF at a clean end).
func (p *Pipeline) read(ctx context.Context, fps float64, o Options, frames chan<- frameItem, readErr chan<- error, log *slog.Logger) {
	defer close(frames)
	var lastAnalyzeErr time.Time
	t0 := time.Now()
	for i := 0; ; i++ {
		m := gocv.NewMat()
		if err := p.Source.Read(&m); err != nil {
			m.Close()
			readErr <- err
			return
		}
		if m.Empty() {
			m.Close()
			readErr <- fmt.Errorf("frame %d: source returned an empty frame", i)
			return
		}
		it := frameItem{idx: i, t: time.Duration(float64(i) / fps * float64(time.Second)), mat: m, key: !o.Live && i%o.Every == 0}
		if o.Live {
			// A camera may drop frames when veil falls behind: the
			// tracker's clock is the wall clock, not the frame count.
			it.t = time.Since(t0)
		}
		if p.Analyzer != nil {
			if err := p.Analyzer.Analyze(m, it.t); err != nil && time.Since(lastAnalyzeErr) > 10*time.Second {
				lastAnalyzeErr = time.Now()
				log.Warn("frame analysis failed; redaction goes on", "frame", i, "err", err)
			}
		}
		select {
		case frames <- it:
		case <-ctx.Done():
			m.Close()
			readErr <- ctx.Err()
			return
		}
	}
}

// worker runs detection jobs until jobs is closed.
func (p *Pipeline) worker(ctx context.Context, id int, deadline time.Duration, jobs <-chan job, results chan<- result, done chan<- struct{}, decided *atomic.Int64, log *slog.Logger) {
	defer func() { done <- struct{}{} }()
	det, err := p.Detector()
	if err != nil {
		log.Error("detector failed to load; its keyframes will be redacted whole", "worker", id, "err", err)
	}
	if det != nil {
		defer det.Close()
	}
	for j := range jobs {
		r := result{idx: j.idx}
		t0 := time.Now()
		switch {
		case det == nil:
			r.err = fmt.Errorf("no detector: %w", err)
		case int64(j.idx) <= decided.Load():
			r.err = errDeadline // decided late already; don't spend time on it
		default:
			r.faces, r.err = safeDetect(ctx, det, j, deadline)
		}
		r.took = time.Since(t0)
		j.mat.Close()
		select {
		case results <- r:
		case <-ctx.Done():
		}
	}
}

// errDeadline is a keyframe decided late: by the assembler's deadline, or
// by the detection service's (detect.ErrLate), one meaning for both.
var errDeadline = detect.ErrLate

// safeDetect runs a detection job, telling a scheduled detector (one on the
// box's shared detection service) the frame's time and that its answer is
// due within deadline, and turns a panic inside a detector into an error.
func safeDetect(ctx context.Context, d detect.Detector, j job, deadline time.Duration) (faces []detect.Face, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("detector panicked: %v", r)
		}
	}()
	if sd, ok := d.(detect.Scheduled); ok {
		ctx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		return sd.DetectAt(ctx, j.mat, j.t)
	}
	return d.Detect(j.mat)
}
