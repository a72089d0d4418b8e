package detect

import (
	"errors"
	"fmt"

	"gocv.io/x/gocv"
)

// BlazeNet is BlazeFace back-256 rewritten (ReshapeBlazeFace) to run fully
// convolutionally over an input of one fixed size, any multiple of 32 wide
// and high: a whole frame, a band of it or a shrunken copy in one pass.
// Anchors lie on the stride-16 grid (2 per cell) and the stride-32 grid
// (6 per cell) of that input.
//
// A BlazeNet is not safe for concurrent use.
type BlazeNet struct {
	net       gocv.Net
	w, h      int
	grids     [2]grid
	rgb, f32  gocv.Mat // scratch, owned here
	blob      gocv.Mat
	threshold float32
}

// NewBlazeNet builds the network for a w x h input from the verified
// back-256 ONNX bytes. threshold is the minimum face score in [0, 1].
func NewBlazeNet(onnx []byte, w, h int, threshold float32) (*BlazeNet, error) {
	g, err := ReshapeBlazeFace(onnx, h, w)
	if err != nil {
		return nil, err
	}
	return loadBlazeNet(g, w, h, blazeGrids(w, h), threshold)
}

// loadBlazeNet loads an ONNX graph whose input is w x h and whose outputs
// are the anchors of grids.
func loadBlazeNet(onnx []byte, w, h int, grids [2]grid, threshold float32) (*BlazeNet, error) {
	net, err := cpuNet(gocv.ReadNetFromONNXBytes(onnx))
	if err != nil {
		return nil, fmt.Errorf("blazeface %dx%d: loading onnx: %w", w, h, err)
	}
	return &BlazeNet{
		net: net, w: w, h: h, grids: grids, threshold: threshold,
		rgb: gocv.NewMat(), f32: gocv.NewMat(),
		blob: gocv.NewMatWithSizes([]int{1, h, w, 3}, gocv.MatTypeCV32F),
	}, nil
}

// Size is the input's width and height in pixels.
func (b *BlazeNet) Size() (w, h int) { return b.w, b.h }

// Run finds candidate faces (before NMS) in a BGR image of exactly the
// net's size; boxes are in the image's pixels.
func (b *BlazeNet) Run(img gocv.Mat) (cands []Candidate, err error) {
	if img.Empty() || img.Type() != gocv.MatTypeCV8UC3 || img.Cols() != b.w || img.Rows() != b.h {
		return nil, fmt.Errorf("%w: want %dx%d 8UC3", ErrBadFrame, b.w, b.h)
	}
	defer func() {
		// gocv turns some OpenCV failures into Go panics; a detector
		// failure must surface as an error so the frame fails closed.
		if r := recover(); r != nil {
			err = fmt.Errorf("blazeface %dx%d: inference panicked: %v", b.w, b.h, r)
		}
	}()
	return runBlaze(b.net, img, &b.rgb, &b.f32, b.blob, b.grids, b.threshold)
}

// Close releases the network and its scratch buffers.
func (b *BlazeNet) Close() error {
	b.rgb.Close()
	b.f32.Close()
	b.blob.Close()
	return b.net.Close()
}

// cpuNet checks a network just read and sets it to run on OpenCV's own CPU
// backend. An empty network is closed and refused.
func cpuNet(net gocv.Net, err error) (gocv.Net, error) {
	if err != nil {
		return net, err
	}
	if net.Empty() {
		net.Close()
		return net, errors.New("the model is empty")
	}
	_ = net.SetPreferableBackend(gocv.NetBackendOpenCV)
	_ = net.SetPreferableTarget(gocv.NetTargetCPU)
	return net, nil
}
