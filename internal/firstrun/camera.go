package firstrun

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/media"
	"github.com/veil-edge/veil/pipeline"
)

// Warmup is how long Open reads a stream before the snapshot: the first
// frames of a stream can be grey or torn until its first keyframe, and the
// frames read measure its frame rate.
const Warmup = time.Second

// Camera is a camera opened for veil init: its source as `veil run` opens
// it (media.OpenLive), and what the probe saw.
type Camera struct {
	Source string
	Size   image.Point
	// FPS is the frame rate the source declares (0 when it does not say);
	// Measured is the rate frames arrived at during Warmup (streams only).
	FPS, Measured float64
	File          bool // a video file, not a stream or device

	src    *media.LiveSource
	cancel context.CancelFunc // ends the source's reads
}

// Open opens source as veil run does and reads it for Warmup (a file: its
// first frame). It gives up after timeout: a camera that does not answer
// is an error, as is one that opens but sends no frame.
func Open(ctx context.Context, source string, timeout time.Duration) (*Camera, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type opened struct {
		s   *media.LiveSource
		err error
	}
	// The source lives on after Open: its reads are bounded by the
	// context of each read (Camera.read), not by the probe's timeout.
	srcCtx, srcCancel := context.WithCancel(context.WithoutCancel(ctx))
	ch := make(chan opened, 1)
	go func() {
		s, err := media.OpenLive(srcCtx, source, false)
		ch <- opened{s, err}
	}()
	var o opened
	select {
	case o = <-ch:
	case <-ctx.Done():
		go func() { // OpenCV cannot be interrupted: close it when it returns
			if o := <-ch; o.s != nil {
				o.s.Close()
			}
			srcCancel()
		}()
		return nil, fmt.Errorf("no answer within %s", timeout)
	}
	if o.err != nil {
		srcCancel()
		return nil, o.err
	}
	info := o.s.Info()
	c := &Camera{Source: source, Size: info.Size, FPS: info.FPS, File: info.Frames >= 0, src: o.s, cancel: srcCancel}
	if err := c.warm(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if c.Size.X <= 0 || c.Size.Y <= 0 {
		c.Close()
		return nil, fmt.Errorf("source %s: opens but says its frames are %dx%d", media.Display(source), c.Size.X, c.Size.Y)
	}
	if c.FPS <= 0 || c.FPS > 1000 {
		c.FPS = 0
	}
	return c, nil
}

// warm reads frames for Warmup (a file: none) and measures their rate. The
// frames read are discarded: they never leave this function.
func (c *Camera) warm(ctx context.Context) error {
	if c.File {
		return nil
	}
	m := gocv.NewMat()
	defer m.Close()
	var first, last time.Time
	n := 0
	for n == 0 || time.Since(first) < Warmup {
		err := c.read(ctx, &m)
		if err != nil {
			if n == 0 {
				return fmt.Errorf("source %s: opens but sends no frame: %w", media.Display(c.Source), err)
			}
			return err
		}
		if n == 0 {
			first = time.Now()
			c.Size = image.Pt(m.Cols(), m.Rows()) // what it sends, whatever it declared
		}
		last = time.Now()
		n++
	}
	if d := last.Sub(first).Seconds(); n >= 3 && d > 0 {
		c.Measured = float64(n-1) / d
	}
	return nil
}

// read reads one frame, giving up when ctx ends (which ends the source's
// own context: the camera reads nothing more).
func (c *Camera) read(ctx context.Context, m *gocv.Mat) error {
	stop := context.AfterFunc(ctx, c.cancel)
	err := c.src.Read(m)
	if !stop() && err != nil {
		return fmt.Errorf("no frame in time: %w", ctx.Err())
	}
	return err
}

// Close releases the camera.
func (c *Camera) Close() {
	if c.src != nil {
		c.cancel()
		c.src.Close()
		c.src = nil
	}
}

// Rate is the frame rate to show: the declared one, or the measured one
// when the source does not say.
func (c *Camera) Rate() float64 {
	if c.FPS > 0 {
		return c.FPS
	}
	return c.Measured
}

// Snapshot is one frame of a camera after redaction.
type Snapshot struct {
	JPEG   []byte // the redacted frame
	Whole  bool   // redacted whole: faces unknown (no detector, detection failed)
	Reason string // why whole
	Faces  int    // face regions redacted
}

// SnapshotOptions are the pipeline options of a snapshot: the file
// schedule of cfg with one keyframe on the one frame, a deadline for a slow
// box, and every detection covered at once, as in the live view (there is
// no later frame to confirm a weak one on): a snapshot may cover more than
// faces, never less.
func SnapshotOptions(cfg config.Config) pipeline.Options {
	o := app.PipelineOptions(cfg)
	o.Every, o.Workers, o.Lookahead = 1, 1, 0
	o.Deadline = max(o.Deadline, SnapshotDeadline)
	o.Track.ConfirmScore = 0
	return o
}

// SnapshotDeadline is the least time a snapshot's detection gets: a whole
// search of a large frame on a busy 2-core box, not a live deadline.
const SnapshotDeadline = 20 * time.Second

// SnapshotRead is how long a snapshot waits for the camera's next frame.
const SnapshotRead = 10 * time.Second

// Snapshot takes the camera's next frame through the pipeline: detector
// (nil: none could be loaded, the frame is redacted whole), tracker and
// redactor. The raw frame never leaves the pipeline.
func (c *Camera) Snapshot(ctx context.Context, newDet pipeline.NewDetector, red *blur.Redactor, opts pipeline.Options) (Snapshot, error) {
	if c.src == nil {
		return Snapshot{}, errors.New("camera closed")
	}
	readCtx, cancel := context.WithTimeout(ctx, SnapshotRead)
	defer cancel()
	sink := &snapSink{}
	p := &pipeline.Pipeline{Source: &oneFrame{cam: c, ctx: readCtx}, Detector: newDet, Redactor: red, Sink: sink, Options: opts}
	if _, err := p.Run(ctx); err != nil {
		return Snapshot{}, fmt.Errorf("source %s: snapshot: %w", media.Display(c.Source), err)
	}
	if sink.err != nil {
		return Snapshot{}, sink.err
	}
	return sink.snap, nil
}

// oneFrame is the camera as a pipeline source of one frame.
type oneFrame struct {
	cam  *Camera
	ctx  context.Context
	done bool
}

func (o *oneFrame) Read(dst *gocv.Mat) error {
	if o.done {
		return io.EOF
	}
	o.done = true
	return o.cam.read(o.ctx, dst)
}

func (o *oneFrame) Info() pipeline.SourceInfo {
	return pipeline.SourceInfo{Size: o.cam.Size, FPS: o.cam.Rate(), Frames: 1}
}

func (o *oneFrame) Close() error { return nil }

// snapSink keeps the redacted frame as JPEG.
type snapSink struct {
	snap Snapshot
	err  error
}

func (s *snapSink) Write(f *blur.Redacted) error {
	b, err := f.EncodeJPEG(90)
	if err != nil {
		s.err = err
		return err
	}
	s.snap = Snapshot{JPEG: b, Whole: f.Whole(), Reason: f.Reason()}
	if !f.Whole() {
		s.snap.Faces = len(f.Regions())
	}
	return nil
}

// Overlay draws a redacted snapshot's counting lines, opt-in zone and a
// pixel scale on its edges, to check the coordinates against the view. It
// draws on the JPEG of a redacted frame only.
func Overlay(snapshot []byte, lines []config.CountLine, zone []int) ([]byte, error) {
	m, err := gocv.IMDecode(snapshot, gocv.IMReadColor)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if m.Empty() {
		return nil, errors.New("snapshot: not a JPEG image")
	}
	w, h := m.Cols(), m.Rows()
	white, yellow, cyan := color.RGBA{255, 255, 255, 0}, color.RGBA{255, 230, 0, 0}, color.RGBA{0, 220, 255, 0}
	step := scaleStep(max(w, h))
	for x := 0; x <= w; x += step {
		gocv.Line(&m, image.Pt(x, 0), image.Pt(x, 8), white, 1)
		gocv.PutText(&m, fmt.Sprint(x), image.Pt(x+2, 20), gocv.FontHersheyPlain, 0.9, white, 1)
	}
	for y := step; y <= h; y += step {
		gocv.Line(&m, image.Pt(0, y), image.Pt(8, y), white, 1)
		gocv.PutText(&m, fmt.Sprint(y), image.Pt(10, y+4), gocv.FontHersheyPlain, 0.9, white, 1)
	}
	if len(zone) == 4 {
		gocv.Rectangle(&m, image.Rect(zone[0], zone[1], zone[2], zone[3]), cyan, 2)
		gocv.PutText(&m, "opt-in zone", image.Pt(zone[0]+4, zone[1]+16), gocv.FontHersheyPlain, 1.1, cyan, 1)
	}
	for _, l := range lines {
		a, b := image.Pt(l.Line[0], l.Line[1]), image.Pt(l.Line[2], l.Line[3])
		gocv.Line(&m, a, b, yellow, 2)
		gocv.PutText(&m, l.Name, a.Add(image.Pt(6, -6)), gocv.FontHersheyPlain, 1.2, yellow, 1)
		// "in" is a crossing from the line's left to its right, as seen
		// looking from A to B: the arrow points to the right side.
		dx, dy := float64(b.X-a.X), float64(b.Y-a.Y)
		n := math.Hypot(dx, dy)
		mid := image.Pt((a.X+b.X)/2, (a.Y+b.Y)/2)
		tip := mid.Add(image.Pt(int(math.Round(-dy/n*40)), int(math.Round(dx/n*40))))
		gocv.ArrowedLine(&m, mid, tip, yellow, 2)
		gocv.PutText(&m, "in", tip.Add(image.Pt(4, 4)), gocv.FontHersheyPlain, 1.1, yellow, 1)
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 90})
	if err != nil {
		return nil, err
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

// scaleStep is a round pixel step giving about 8 ticks along size.
func scaleStep(size int) int {
	for _, s := range []int{25, 50, 100, 200, 250, 500} {
		if size/s <= 10 {
			return s
		}
	}
	return 1000
}

// Describe is the probe's one-line result: size and frame rate.
func (c *Camera) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%dx%d", c.Size.X, c.Size.Y)
	switch {
	case c.FPS > 0 && c.Measured > 0:
		fmt.Fprintf(&b, " @ %.2f fps (%.1f measured)", c.FPS, c.Measured)
	case c.FPS > 0:
		fmt.Fprintf(&b, " @ %.2f fps", c.FPS)
	case c.Measured > 0:
		fmt.Fprintf(&b, " @ %.1f fps (measured)", c.Measured)
	default:
		b.WriteString(", frame rate unknown")
	}
	if c.File {
		b.WriteString(", video file")
	}
	return b.String()
}
