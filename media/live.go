package media

import (
	"context"
	"fmt"
	"image"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/pipeline"
)

// LiveSource reads a camera as `veil run` does: an rtsp:// (or http://)
// stream, a V4L2 device (/dev/videoN), or a video file played at its own
// frame rate, optionally looping, as if it were a camera.
//
// A stream or device is read by its own goroutine as fast as the camera
// sends, keeping only the newest frame: when veil falls behind, older
// frames are dropped (and counted) instead of queueing up as latency in the
// decoder's buffers. OpenFileCamera plays a file the same way (a camera
// that runs whether or not veil keeps up); OpenLive's file sources are
// instead paced on read and drop nothing.
type LiveSource struct {
	url   string
	cap   *gocv.VideoCapture
	info  pipeline.SourceInfo
	file  bool
	loop  bool
	next  time.Time // when the next file frame is due
	ctx   context.Context
	reads int

	// Streams and file cameras: the grabber goroutine's mailbox.
	mu      sync.Mutex
	slot    gocv.Mat // newest frame not yet read; owned here
	slotPos int64    // slot's position in the source
	full    bool
	grabErr error
	ready   chan struct{} // signalled when slot fills or the grabber stops
	stop    chan struct{}
	stopped chan struct{}

	// File cameras: the grabber paces itself to the file's frame rate, ends
	// with io.EOF, and the position of every frame handed out is kept.
	camera    bool
	positions []int64 // positions[n]: the source position of the n-th frame Read returned

	received atomic.Int64 // frames from the camera
	dropped  atomic.Int64 // frames replaced by a newer one before veil read them
}

var _ pipeline.Source = (*LiveSource)(nil)

// OpenLive opens a camera source. ctx bounds the pacing sleeps of file sources.
func OpenLive(ctx context.Context, source string, loop bool) (*LiveSource, error) {
	s := &LiveSource{url: source, loop: loop, ctx: ctx}
	var err error
	switch {
	case strings.Contains(source, "://"):
		s.cap, err = gocv.OpenVideoCapture(source)
	case strings.HasPrefix(source, "/dev/video"):
		n, perr := strconv.Atoi(strings.TrimPrefix(source, "/dev/video"))
		if perr != nil {
			return nil, fmt.Errorf("source %s: not a V4L2 device name like /dev/video0", source)
		}
		s.cap, err = gocv.OpenVideoCaptureWithAPI(n, gocv.VideoCaptureV4L2)
	default:
		f, ferr := OpenFile(source)
		if ferr != nil {
			return nil, ferr
		}
		s.cap, s.info, s.file = f.cap, f.info, true
		if s.loop {
			s.info.Frames = -1
		}
		return s, nil
	}
	if err != nil || s.cap == nil || !s.cap.IsOpened() {
		if s.cap != nil {
			s.cap.Close()
		}
		return nil, fmt.Errorf("source %s: cannot open stream: %v", Display(source), err)
	}
	s.info = pipeline.SourceInfo{
		Size:   image.Pt(int(s.cap.Get(gocv.VideoCaptureFrameWidth)), int(s.cap.Get(gocv.VideoCaptureFrameHeight))),
		FPS:    s.cap.Get(gocv.VideoCaptureFPS),
		Frames: -1,
	}
	s.startGrab()
	return s, nil
}

// OpenFileCamera plays a video file as if it were a camera, for measuring
// what an operator watching a camera would see. Its own goroutine decodes
// the file from the moment it opens and makes frame n available at n/fps
// after that (the file's frame rate), whether or not anyone reads: Read
// returns the newest frame, and a frame replaced by a newer one before it
// was read is dropped and counted, as for a stream. After the last frame of
// the file was handed out or dropped, Read returns io.EOF.
//
// Position tells, for each frame Read returned, its 0-based position in the
// file, so a frame shown can be matched to the input frame it came from.
// ctx bounds Read's waits; Close stops the camera.
func OpenFileCamera(ctx context.Context, path string) (*LiveSource, error) {
	f, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	s := &LiveSource{url: path, ctx: ctx, cap: f.cap, info: f.info, camera: true}
	s.startGrab()
	return s, nil
}

func (s *LiveSource) startGrab() {
	s.ready, s.stop, s.stopped = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.grab()
}

// grab reads the stream until it breaks or Close, keeping the newest frame.
// A file camera's frame n is published at start + n/fps; when decoding
// falls behind, frames are published as soon as they are decoded.
func (s *LiveSource) grab() {
	defer close(s.stopped)
	start := time.Now()
	period := time.Duration(float64(time.Second) / frameRate(s.info.FPS))
	for n := int64(0); ; n++ {
		select {
		case <-s.stop:
			return
		default:
		}
		m := gocv.NewMat()
		if !s.cap.Read(&m) || m.Empty() {
			m.Close()
			s.mu.Lock()
			s.grabErr = fmt.Errorf("source %s: stream ended or broke after %d frames", Display(s.url), s.received.Load())
			if s.camera {
				s.grabErr = io.EOF
			}
			s.mu.Unlock()
			s.signal()
			return
		}
		if d := time.Until(start.Add(time.Duration(n) * period)); s.camera && d > 0 {
			due := time.NewTimer(d)
			select {
			case <-due.C:
			case <-s.stop:
				due.Stop()
				m.Close()
				return
			}
		}
		s.received.Add(1)
		s.mu.Lock()
		if s.full {
			s.slot.Close()
			s.dropped.Add(1)
		}
		s.slot, s.slotPos, s.full = m, n, true
		s.mu.Unlock()
		s.signal()
	}
}

// frameRate is fps, or 25 when the container does not say or says nonsense.
func frameRate(fps float64) float64 {
	if fps <= 0 || fps > 1000 {
		return 25
	}
	return fps
}

func (s *LiveSource) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Counts returns the frames received from the camera and those dropped
// because a newer one arrived before veil read them.
func (s *LiveSource) Counts() (received, dropped int64) {
	return s.received.Load(), s.dropped.Load()
}

// Position returns the 0-based position in the file of the n-th frame
// (counting from 0) that Read returned, and false if Read has not returned
// that many frames or the source is not a file camera (OpenFileCamera).
// Positions rise with n; the gaps between them are the frames dropped.
func (s *LiveSource) Position(n int) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 || n >= len(s.positions) {
		return 0, false
	}
	return s.positions[n], true
}

// Info describes the source's frames.
func (s *LiveSource) Info() pipeline.SourceInfo { return s.info }

// Read returns the next frame. A file is paced to its frame rate and, with
// loop, starts again at its end; a stream that ends or breaks returns an
// error (the camera supervisor reopens it with back-off); a file camera
// returns the newest frame, and io.EOF after its last.
func (s *LiveSource) Read(dst *gocv.Mat) error {
	if !s.file {
		return s.readNewest(dst)
	}
	s.pace()
	if s.cap.Read(dst) && !dst.Empty() {
		s.reads++
		s.received.Add(1)
		return nil
	}
	if !s.loop || s.reads == 0 {
		return io.EOF
	}
	s.cap.Set(gocv.VideoCapturePosFrames, 0)
	s.reads = 0
	if s.cap.Read(dst) && !dst.Empty() {
		s.reads++
		s.received.Add(1)
		return nil
	}
	return fmt.Errorf("source %s: cannot restart the file", s.url)
}

// readNewest hands over the newest frame of a stream, waiting for one.
func (s *LiveSource) readNewest(dst *gocv.Mat) error {
	for {
		s.mu.Lock()
		if s.full {
			dst.Close()
			*dst, s.full = s.slot, false
			s.slot = gocv.Mat{}
			if s.camera {
				s.positions = append(s.positions, s.slotPos)
			}
			s.mu.Unlock()
			return nil
		}
		err := s.grabErr
		s.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-s.ready:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// pace sleeps until the next frame of a file is due at its frame rate.
func (s *LiveSource) pace() {
	fps := frameRate(s.info.FPS)
	now := time.Now()
	if s.next.IsZero() || now.Sub(s.next) > time.Second {
		s.next = now // start, or fell far behind: do not burst to catch up
	}
	if d := s.next.Sub(now); d > 0 {
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
		}
	}
	s.next = s.next.Add(time.Duration(float64(time.Second) / fps))
}

// Close stops the grabber (waiting for a read in progress) and releases the
// capture.
func (s *LiveSource) Close() error {
	if s.stop != nil {
		close(s.stop)
		<-s.stopped
		s.mu.Lock()
		if s.full {
			s.slot.Close()
			s.full = false
		}
		s.mu.Unlock()
	}
	return s.cap.Close()
}
