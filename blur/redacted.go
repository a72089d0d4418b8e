package blur

import (
	"bytes"
	"errors"
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// Redacted is a frame that has been through redaction. It is the only frame
// type sinks accept, and Redactor.Redact is the only way to make one that is
// not empty. The zero Redacted is empty.
//
// A Redacted owns its Mat and must be closed once. Copies of a Redacted share
// the one frame: closing any copy empties them all, so a second Close is a
// no-op rather than a double free. A Redacted is not safe for concurrent use.
type Redacted struct {
	f *redactedFrame
}

// redactedFrame is the state that copies of a Redacted share.
type redactedFrame struct {
	mat     gocv.Mat
	whole   bool
	reason  string
	regions []image.Rectangle
}

// newRedacted wraps mat, which the caller gives up.
func newRedacted(mat gocv.Mat, whole bool, reason string, regions []image.Rectangle) Redacted {
	return Redacted{f: &redactedFrame{mat: mat, whole: whole, reason: reason, regions: regions}}
}

// Close releases the frame. It is safe to call more than once, on any copy.
func (f *Redacted) Close() error {
	if f == nil || f.f == nil {
		return nil
	}
	closeMat(&f.f.mat)
	return nil
}

// Empty reports whether f holds no frame: it is the zero Redacted or closed.
func (f *Redacted) Empty() bool {
	return f == nil || f.f == nil || f.f.mat.Ptr() == nil || f.f.mat.Empty()
}

// Size returns the frame's width and height, or zero if f is empty.
func (f *Redacted) Size() image.Point {
	if f.Empty() {
		return image.Point{}
	}
	return image.Pt(f.f.mat.Cols(), f.f.mat.Rows())
}

// Whole reports whether the whole frame was redacted because its faces were
// unknown.
func (f *Redacted) Whole() bool {
	return f != nil && f.f != nil && f.f.whole
}

// Reason returns why the whole frame was redacted, or "" if it was not.
func (f *Redacted) Reason() string {
	if f == nil || f.f == nil {
		return ""
	}
	return f.f.reason
}

// Regions returns a copy of the padded, clipped regions that were redacted:
// the frame's bounds for a whole-frame redaction; otherwise one rectangle per
// usable face box, then one per usable area (Plan.WithAreas), then the masks
// that reach into the frame.
func (f *Redacted) Regions() []image.Rectangle {
	if f == nil || f.f == nil {
		return nil
	}
	return cloneRects(f.f.regions)
}

// WriteTo writes the frame to w, which must be open. w must not have been
// closed: gocv's VideoWriter crashes on any use after Close.
func (f *Redacted) WriteTo(w *gocv.VideoWriter) error {
	switch {
	case f.Empty():
		return errors.New("blur: write redacted frame: frame is empty")
	case w == nil:
		return errors.New("blur: write redacted frame: nil video writer")
	case !w.IsOpened():
		return errors.New("blur: write redacted frame: video writer is not open")
	}
	if err := w.Write(f.f.mat); err != nil {
		return fmt.Errorf("blur: write redacted frame: %w", err)
	}
	return nil
}

// EncodeJPEG encodes the frame as JPEG at quality 0..100. The bytes are
// copied out of OpenCV memory and belong to the caller.
func (f *Redacted) EncodeJPEG(quality int) ([]byte, error) {
	if f.Empty() {
		return nil, errors.New("blur: encode jpeg: frame is empty")
	}
	if quality < 0 || quality > 100 {
		return nil, fmt.Errorf("blur: encode jpeg: quality %d is out of range; allowed 0..100", quality)
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, f.f.mat, []int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return nil, fmt.Errorf("blur: encode jpeg: %w", err)
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return nil, errors.New("blur: encode jpeg: encoder returned no data")
	}
	return bytes.Clone(buf.GetBytes()), nil
}

// Read calls fn with the frame's pixels, without copying them, for
// encoders that only read (the live view's VP8 encoder). fn must not modify,
// retain or Close m; it is valid only during the call. It is an error on an
// empty frame.
func (f *Redacted) Read(fn func(m gocv.Mat) error) error {
	if f.Empty() {
		return errors.New("blur: read redacted frame: frame is empty")
	}
	return fn(f.f.mat)
}

// CloneMat returns a copy of the frame that the caller owns and must Close.
// For an empty f it returns a new empty Mat, which must be closed too.
func (f *Redacted) CloneMat() gocv.Mat {
	if f.Empty() {
		return gocv.NewMat()
	}
	return f.f.mat.Clone()
}
