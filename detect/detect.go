// Package detect finds faces in frames.
//
// Parts:
//   - Detector: the interface every face detector implements.
//   - BlazeFace: MediaPipe BlazeFace (ONNX, OpenCV DNN) with anchor decoding and NMS.
//   - Haar: OpenCV cascade classifier, a fallback for machines without the ONNX models.
//   - BlazeNet: BlazeFace back-256 rewritten (ReshapeBlazeFace) to run over a whole frame in one pass.
//   - Service: the box's one detection service, a pool of networks shared by every camera.
//   - Frame: a camera's face search on the service: a fine pass over what changed, coarse passes
//     for large faces, merged by NMS.
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
