package media

import (
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/blur"
	"github.com/veil-edge/veil/pipeline"
)

// ErrNotVideo is returned for a file OpenCV cannot open as video.
var ErrNotVideo = errors.New("not a video file OpenCV can read")

// FileSource reads frames from a video file.
type FileSource struct {
	path string
	cap  *gocv.VideoCapture
	info pipeline.SourceInfo
}

var _ pipeline.Source = (*FileSource)(nil)

// OpenFile opens a video file for reading.
func OpenFile(path string) (*FileSource, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("input %s: is a directory", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", path, err)
	}
	f.Close()
	c, err := gocv.VideoCaptureFile(path)
	if err != nil || !c.IsOpened() {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("input %s: %w", path, ErrNotVideo)
	}
	info := pipeline.SourceInfo{
		Size:   image.Pt(int(c.Get(gocv.VideoCaptureFrameWidth)), int(c.Get(gocv.VideoCaptureFrameHeight))),
		FPS:    c.Get(gocv.VideoCaptureFPS),
		Frames: int(c.Get(gocv.VideoCaptureFrameCount)),
	}
	if info.Size.X <= 0 || info.Size.Y <= 0 {
		c.Close()
		return nil, fmt.Errorf("input %s: %w (no frame size)", path, ErrNotVideo)
	}
	if info.Frames <= 0 {
		info.Frames = -1
	}
	return &FileSource{path: path, cap: c, info: info}, nil
}

// Info describes the file's frames as its container declares them.
func (s *FileSource) Info() pipeline.SourceInfo { return s.info }

// Read decodes the next frame into dst; io.EOF after the last.
func (s *FileSource) Read(dst *gocv.Mat) error {
	if !s.cap.Read(dst) || dst.Empty() {
		return io.EOF
	}
	return nil
}

// Close releases the decoder.
func (s *FileSource) Close() error { return s.cap.Close() }

// FileSink writes redacted frames to a video file, atomically.
type FileSink struct {
	final, tmp string
	w          *gocv.VideoWriter
	size       image.Point
	frames     int
}

var _ pipeline.Sink = (*FileSink)(nil)

// Codecs maps codec names to FourCC codes; "auto" picks by file extension.
var Codecs = map[string]string{"mjpg": "MJPG", "mp4v": "mp4v", "xvid": "XVID"}

// CodecFor returns the FourCC for a codec name and output path.
func CodecFor(codec, path string) (string, error) {
	if codec == "" || codec == "auto" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".avi":
			return "MJPG", nil
		case ".mp4", ".m4v", ".mov", ".mkv":
			return "mp4v", nil
		default:
			return "", fmt.Errorf("output %s: cannot choose a codec for extension %q; use .mp4, .avi, .mkv or .mov", path, filepath.Ext(path))
		}
	}
	fcc, ok := Codecs[codec]
	if !ok {
		return "", fmt.Errorf("output codec %q not supported; allowed auto, mjpg, mp4v, xvid", codec)
	}
	return fcc, nil
}

// CreateFile opens a sink writing frames of size at fps to path. Nothing
// appears at path until Commit.
func CreateFile(path, codec string, fps float64, size image.Point) (*FileSink, error) {
	fcc, err := CodecFor(codec, path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	switch st, err := os.Stat(dir); {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("output %s: directory %s does not exist", path, dir)
	case err != nil:
		return nil, fmt.Errorf("output %s: %w", path, err)
	case !st.IsDir():
		return nil, fmt.Errorf("output %s: %s is not a directory", path, dir)
	}
	tf, err := os.CreateTemp(dir, "."+filepath.Base(path)+".partial-*"+filepath.Ext(path))
	if err != nil {
		return nil, fmt.Errorf("output %s: not writable: %w", path, err)
	}
	tmp := tf.Name()
	tf.Close()
	w, err := gocv.VideoWriterFile(tmp, fcc, fps, size.X, size.Y, true)
	if err != nil || !w.IsOpened() {
		if w != nil {
			w.Close()
		}
		os.Remove(tmp)
		return nil, fmt.Errorf("output %s: cannot open a %s video writer: %v", path, fcc, err)
	}
	return &FileSink{final: path, tmp: tmp, w: w, size: size}, nil
}

// Write appends one redacted frame.
func (s *FileSink) Write(f *blur.Redacted) error {
	if f.Size() != s.size {
		return fmt.Errorf("frame size %v does not match output size %v", f.Size(), s.size)
	}
	if err := f.WriteTo(s.w); err != nil {
		return err
	}
	s.frames++
	return nil
}

// Frames is the number of frames written.
func (s *FileSink) Frames() int { return s.frames }

// Commit finishes the file and moves it into place.
func (s *FileSink) Commit() error {
	if err := s.w.Close(); err != nil {
		os.Remove(s.tmp)
		return fmt.Errorf("output %s: finishing: %w", s.final, err)
	}
	// CreateTemp made the file 0600; a finished video is an ordinary file.
	if err := os.Chmod(s.tmp, 0o644); err != nil {
		os.Remove(s.tmp)
		return fmt.Errorf("output %s: %w", s.final, err)
	}
	if err := os.Rename(s.tmp, s.final); err != nil {
		os.Remove(s.tmp)
		return fmt.Errorf("output %s: %w", s.final, err)
	}
	return nil
}

// Abort discards the partial file.
func (s *FileSink) Abort() {
	s.w.Close()
	os.Remove(s.tmp)
}
