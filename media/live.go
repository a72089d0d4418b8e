package media

import (
	"context"
	"fmt"
	"image"
	"io"
	"strconv"
	"strings"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/pipeline"
)

// LiveSource reads a camera as `veil run` does: an rtsp:// (or http://)
// stream, a V4L2 device (/dev/videoN), or a video file played at its own
// frame rate, optionally looping, as if it were a camera.
type LiveSource struct {
	url   string
	cap   *gocv.VideoCapture
	info  pipeline.SourceInfo
	file  bool
	loop  bool
	next  time.Time // when the next file frame is due
	ctx   context.Context
	reads int
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
	return s, nil
}

// Info describes the source's frames.
func (s *LiveSource) Info() pipeline.SourceInfo { return s.info }

// Read returns the next frame. A file is paced to its frame rate and, with
// loop, starts again at its end; a stream that ends or breaks returns an
// error (the camera supervisor reopens it with back-off).
func (s *LiveSource) Read(dst *gocv.Mat) error {
	if s.file {
		s.pace()
	}
	if s.cap.Read(dst) && !dst.Empty() {
		s.reads++
		return nil
	}
	if !s.file {
		return fmt.Errorf("source %s: stream ended or broke after %d frames", s.url, s.reads)
	}
	if !s.loop || s.reads == 0 {
		return io.EOF
	}
	s.cap.Set(gocv.VideoCapturePosFrames, 0)
	s.reads = 0
	if s.cap.Read(dst) && !dst.Empty() {
		s.reads++
		return nil
	}
	return fmt.Errorf("source %s: cannot restart the file", s.url)
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

// Close releases the capture.
func (s *LiveSource) Close() error { return s.cap.Close() }
