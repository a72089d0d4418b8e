package camtest

import (
	"fmt"
	"image"
	"image/color"
	"sync"

	"gocv.io/x/gocv"
)

// A stamp is a frame number drawn as a row of black and white squares in the
// bottom-left corner, away from where faces are: a white and a black guard
// square, then StampBits bits, most significant first. It survives JPEG and
// VP8 and is read back by sampling each square's centre.
const (
	StampCell = 16 // square size, px
	StampBits = 16
	StampX    = 8  // left edge of the first square
	StampUp   = 24 // its top is this far above the frame's bottom edge
)

// DrawStamp draws n (mod 2^StampBits) onto m.
func DrawStamp(m *gocv.Mat, n int) {
	y := m.Rows() - StampUp
	band := image.Rect(0, y-4, StampX+(StampBits+2)*StampCell+4, y+StampCell+4)
	gocv.Rectangle(m, band, color.RGBA{A: 255}, -1)
	cells := append([]bool{true, false}, make([]bool, StampBits)...)
	for j := range StampBits {
		cells[2+j] = n>>(StampBits-1-j)&1 == 1
	}
	for j, on := range cells {
		if !on {
			continue
		}
		x := StampX + j*StampCell
		gocv.Rectangle(m, image.Rect(x, y, x+StampCell, y+StampCell), color.RGBA{R: 255, G: 255, B: 255, A: 255}, -1)
	}
}

// ReadStamp reads a stamp drawn by DrawStamp; ok is false if the guard
// squares are not there (the corner was redacted or never stamped).
func ReadStamp(m gocv.Mat) (n int, ok bool) {
	y := m.Rows() - StampUp + StampCell/2
	on := func(j int) bool {
		return m.GetVecbAt(y, StampX+j*StampCell+StampCell/2)[1] > 128
	}
	if !on(0) || on(1) {
		return 0, false
	}
	for j := range StampBits {
		n <<= 1
		if on(2 + j) {
			n |= 1
		}
	}
	return n, true
}

// StampReaderJS is a JavaScript function expression (v, c) => number|null
// that reads the stamp from a <video> v, drawing it on the canvas c.
var StampReaderJS = fmt.Sprintf(`((v, c) => {
  if (c.width !== v.videoWidth || c.height !== v.videoHeight) { c.width = v.videoWidth; c.height = v.videoHeight; }
  const g = c.getContext('2d', {willReadFrequently: true});
  g.drawImage(v, 0, 0);
  const y = c.height - %[1]d + %[2]d/2;
  const d = g.getImageData(0, y, %[3]d + (%[4]d + 2) * %[2]d, 1).data;
  const on = (j) => d[(%[3]d + j * %[2]d + %[2]d/2) * 4 + 1] > 128;
  if (!on(0) || on(1)) return null;
  let n = 0;
  for (let j = 0; j < %[4]d; j++) n = n * 2 + (on(2 + j) ? 1 : 0);
  return n;
})`, StampUp, StampCell, StampX, StampBits)

// Looping serves a video file's frames in a loop, each stamped with its
// number on the stream (DrawStamp). Close the returned closer when done.
func Looping(path string) (Frames, func(), error) {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("camtest: opening %s: %w", path, err)
	}
	var mu sync.Mutex
	m := gocv.NewMat()
	frames := func(i int) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if !vc.Read(&m) || m.Empty() {
			vc.Set(gocv.VideoCapturePosFrames, 0)
			if !vc.Read(&m) || m.Empty() {
				return nil, fmt.Errorf("camtest: %s has no frames", path)
			}
		}
		DrawStamp(&m, i)
		b, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 90})
		if err != nil {
			return nil, err
		}
		defer b.Close()
		return append([]byte(nil), b.GetBytes()...), nil
	}
	closer := func() {
		mu.Lock()
		defer mu.Unlock()
		m.Close()
		vc.Close()
	}
	return frames, closer, nil
}
