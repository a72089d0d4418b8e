// Package vp8 encodes BGR frames to VP8 for the live view, and decodes them
// back, through libvpx (cgo, pkg-config vpx).
//
// Parts:
//   - Options: frame size, rate, bitrate, keyframe interval and threads,
//     checked by Validate, which names the bad field and its allowed range.
//   - Encoder: BGR gocv.Mat in, one compressed Frame out per call, with
//     real-time settings (CBR, no look-ahead, error resilient, fast speed).
//   - Decoder: VP8 frames back to BGR, for tests and tools.
//
// Neither the Encoder nor the Decoder is safe for concurrent use; each has
// one owner, who must call Close to free its C memory.
package vp8
