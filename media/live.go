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
// decoder's buffers.
type LiveSource struct {
	url   string
	cap   *gocv.VideoCapture
	info  pipeline.SourceInfo
	file  bool
	loop  bool
	next  time.Time // when the next file frame is due
	ctx   context.Context
	reads int

	// Streams: the grabber goroutine's mailbox.
	mu      sync.Mutex
	slot    gocv.Mat // newest frame not yet read; owned here
	full    bool
	grabErr error
	ready   chan struct{} // signalled when slot fills or the grabber stops
	stop    chan struct{}
	stopped chan struct{}

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
		return nil, fmt.Errorf("source %s: cannot open stream: %v", source, err)
	}
	s.info = pipeline.SourceInfo{
		Size:   image.Pt(int(s.cap.Get(gocv.VideoCaptureFrameWidth)), int(s.cap.Get(gocv.VideoCaptureFrameHeight))),
		FPS:    s.cap.Get(gocv.VideoCaptureFPS),
		Frames: -1,
	}
	s.ready, s.stop, s.stopped = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.grab()
	return s, nil
}

// grab reads the stream until it breaks or Close, keeping the newest frame.
func (s *LiveSource) grab() {
	defer close(s.stopped)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		m := gocv.NewMat()
		if !s.cap.Read(&m) || m.Empty() {
			m.Close()
			s.mu.Lock()
			s.grabErr = fmt.Errorf("source %s: stream ended or broke after %d frames", s.url, s.received.Load())
			s.mu.Unlock()
			s.signal()
			return
		}
		s.received.Add(1)
		s.mu.Lock()
		if s.full {
			s.slot.Close()
			s.dropped.Add(1)
		}
		s.slot, s.full = m, true
		s.mu.Unlock()
		s.signal()
	}
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

// Info describes the source's frames.
func (s *LiveSource) Info() pipeline.SourceInfo { return s.info }

// Read returns the next frame. A file is paced to its frame rate and, with
// loop, starts again at its end; a stream that ends or breaks returns an
// error (the camera supervisor reopens it with back-off).
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
	fps := s.info.FPS
	if fps <= 0 || fps > 1000 {
		fps = 25
	}
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
