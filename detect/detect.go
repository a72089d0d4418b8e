// Package detect finds faces in frames.
//
// Parts:
//   - Detector: the interface every face detector implements.
//   - BlazeFace: MediaPipe BlazeFace (ONNX, OpenCV DNN) with anchor decoding and NMS.
//   - Haar: OpenCV cascade classifier, a fallback for machines without the ONNX models.
//   - Search: a strategy that runs a window detector over a frame at several scales and tiles
//     so that faces from about 16 px to frame-filling ones are found.
package detect

import (
	"errors"
	"image"

	"gocv.io/x/gocv"
)

// Face is one detected face in frame pixel coordinates.
type Face struct {
	Box   image.Rectangle
	Score float32
	// Roll is the in-plane rotation in radians when the detector knows it
	// (BlazeFace key points), else 0.
	Roll float32
}

// Detector finds faces in a BGR (CV_8UC3) frame.
//
// Detect must not modify or retain frame: the caller owns it and may redact or
// close it as soon as Detect returns. A Detector is not safe for concurrent use;
// give each goroutine its own. Close releases native resources.
type Detector interface {
	Detect(frame gocv.Mat) ([]Face, error)
	Close() error
}

// ErrBadFrame is returned for an empty frame or one that is not 8-bit BGR.
var ErrBadFrame = errors.New("detect: frame is empty or not 8-bit BGR")
