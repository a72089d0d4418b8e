package detect

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// BlazeFace runs one MediaPipe BlazeFace ONNX model (front 128x128 or back
// 256x256), unchanged, on square windows of its own size: the model as
// published, against which the full-frame BlazeNet is checked. Frames are
// searched with Frame.
//
// The model takes an NHWC blob (1 x S x S x 3, RGB, scaled to [-1, 1]) and
// returns 896 anchors: 512 from a 16x16 grid with 2 anchors per cell and 384
// from an 8x8 grid with 6 anchors per cell. Each anchor has one logit and 16
// regressors (box centre offset x, y, width, height, then six key points), all
// in input pixels relative to the anchor centre.
//
// A BlazeFace is not safe for concurrent use.
type BlazeFace struct{ net *BlazeNet }

// blazeOutputs are the ONNX output names: scores and regressors of the
// finer grid, then of the coarser one.
var blazeOutputs = []string{"Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"}

// NewBlazeFace loads a BlazeFace model from ONNX bytes (already verified by
// package models) for an input of size x size pixels. threshold is the minimum
// face score in [0, 1].
func NewBlazeFace(onnx []byte, size int, threshold float32) (*BlazeFace, error) {
	if size != 128 && size != 256 {
		return nil, fmt.Errorf("blazeface: input size %d not supported; allowed 128, 256", size)
	}
	grids := [2]grid{{16, 16, 2, size / 16}, {8, 8, 6, size / 8}}
	net, err := loadBlazeNet(onnx, size, size, grids, threshold)
	if err != nil {
		return nil, err
	}
	b := &BlazeFace{net: net}
	// One dry run before the detector is used. The input size must come from
	// the verified model manifest: OpenCV 4.6 aborts the process (it does not
	// throw into Go) when a blob does not fit the graph, so a mismatch cannot
	// be caught here, only prevented by pinning models by hash.
	probe := gocv.NewMatWithSize(size, size, gocv.MatTypeCV8UC3)
	defer probe.Close()
	if _, err := b.DetectWindow(probe); err != nil {
		b.Close()
		return nil, fmt.Errorf("blazeface: model does not run at %dx%d: %w", size, size, err)
	}
	return b, nil
}

// InputSize is the model's square input side in pixels.
func (b *BlazeFace) InputSize() int { return b.net.w }

// Close releases the network and scratch buffers.
func (b *BlazeFace) Close() error { return b.net.Close() }

// DetectWindow runs the model on a square BGR window of exactly InputSize
// pixels and returns candidate faces (before NMS) with boxes in window pixels.
func (b *BlazeFace) DetectWindow(win gocv.Mat) ([]Candidate, error) { return b.net.Run(win) }

// runBlaze converts a BGR image into the model's NHWC blob (RGB, [-1, 1]),
// runs the network and decodes its anchors. rgb and f32 are scratch; blob
// must be 1 x rows x cols x 3 float32.
func runBlaze(net gocv.Net, img gocv.Mat, rgb, f32 *gocv.Mat, blob gocv.Mat, grids [2]grid, threshold float32) ([]Candidate, error) {
	gocv.CvtColor(img, rgb, gocv.ColorBGRToRGB)
	rgb.ConvertToWithParams(f32, gocv.MatTypeCV32FC3, 1.0/127.5, -1)
	src, err := f32.DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("blazeface: input buffer: %w", err)
	}
	dst, err := blob.DataPtrFloat32()
	if err != nil || len(dst) != len(src) {
		return nil, fmt.Errorf("blazeface: blob buffer: %v (%d vs %d floats)", err, len(dst), len(src))
	}
	copy(dst, src)
	net.SetInput(blob, "")
	outs := net.ForwardLayers(blazeOutputs)
	defer func() {
		for i := range outs {
			outs[i].Close()
		}
	}()
	return decodeOutputs(outs, grids, threshold)
}

// decodeOutputs reads the four output blobs (scores and regressors of each
// grid) and decodes the anchors above threshold.
func decodeOutputs(outs []gocv.Mat, grids [2]grid, threshold float32) ([]Candidate, error) {
	if len(outs) != 4 {
		return nil, fmt.Errorf("blazeface: model returned %d outputs, want 4", len(outs))
	}
	var scores, boxes [2][]float32
	var err error
	for l, g := range grids {
		n := g.anchors()
		if scores[l], err = floats(outs[l], n); err != nil {
			return nil, fmt.Errorf("blazeface: scores of layer %d: %w", l, err)
		}
		if boxes[l], err = floats(outs[2+l], n*16); err != nil {
			return nil, fmt.Errorf("blazeface: boxes of layer %d: %w", l, err)
		}
	}
	return decodeAnchors(scores, boxes, grids, threshold), nil
}

// floats returns a Go copy of a float Mat's n values.
func floats(m gocv.Mat, n int) ([]float32, error) {
	if m.Empty() {
		return nil, fmt.Errorf("empty output")
	}
	p, err := m.DataPtrFloat32()
	if err != nil {
		return nil, err
	}
	if len(p) < n {
		return nil, fmt.Errorf("output has %d values, want %d", len(p), n)
	}
	out := make([]float32, n)
	copy(out, p[:n])
	return out, nil
}

// Candidate is a face proposal in the coordinates of the window it came from.
type Candidate struct {
	Box   Rect // window pixels
	Score float32
	// Roll is the face's in-plane rotation in radians, from the eye key
	// points: 0 upright, positive turned clockwise on screen.
	Roll float32
}

// Rect is a float rectangle: Min inclusive, Max exclusive.
type Rect struct{ X0, Y0, X1, Y1 float32 }

// W and H are the rectangle's width and height.
func (r Rect) W() float32 { return r.X1 - r.X0 }
func (r Rect) H() float32 { return r.Y1 - r.Y0 }

// Int rounds outward to an image.Rectangle.
func (r Rect) Int() image.Rectangle {
	return image.Rect(int(math.Floor(float64(r.X0))), int(math.Floor(float64(r.Y0))),
		int(math.Ceil(float64(r.X1))), int(math.Ceil(float64(r.Y1))))
}

// grid is one anchor layer of BlazeFace's output: rows x cols cells,
// perCell anchors each, centred at ((x+0.5)*stride, (y+0.5)*stride).
type grid struct{ rows, cols, perCell, stride int }

func (g grid) anchors() int { return g.rows * g.cols * g.perCell }

// blazeGrids are back-256's two anchor layers for an input of w x h
// pixels: the stride-16 grid with 2 anchors per cell, then the stride-32
// grid with 6. (front-128 has the same grids at strides 8 and 16.)
func blazeGrids(w, h int) [2]grid {
	return [2]grid{{h / 16, w / 16, 2, 16}, {h / 32, w / 32, 6, 32}}
}

// decodeAnchors turns raw outputs into candidates above threshold. Anchors
// are in row order within each grid; regressors are in input pixels
// relative to the anchor centre.
func decodeAnchors(scores, boxes [2][]float32, grids [2]grid, threshold float32) []Candidate {
	var out []Candidate
	for l, g := range grids {
		idx := 0
		for cy := 0; cy < g.rows; cy++ {
			for cx := 0; cx < g.cols; cx++ {
				ax := (float32(cx) + 0.5) * float32(g.stride)
				ay := (float32(cy) + 0.5) * float32(g.stride)
				for a := 0; a < g.perCell; a++ {
					if s := sigmoid(scores[l][idx]); s >= threshold {
						if c, ok := anchorCandidate(ax, ay, boxes[l][idx*16:idx*16+8], s); ok {
							out = append(out, c)
						}
					}
					idx++
				}
			}
		}
	}
	return out
}

// anchorCandidate decodes one anchor's box and roll: r holds the box
// centre offset, width, height and the two eyes' key points.
func anchorCandidate(ax, ay float32, r []float32, score float32) (Candidate, bool) {
	x, y := ax+r[0], ay+r[1]
	w, h := r[2], r[3]
	if w <= 0 || h <= 0 {
		return Candidate{}, false
	}
	// Key points 0 and 1 are the subject's right and left eye (screen
	// left and right).
	ex, ey := r[6]-r[4], r[7]-r[5]
	return Candidate{
		Box:   Rect{x - w/2, y - h/2, x + w/2, y + h/2},
		Score: score,
		Roll:  float32(math.Atan2(float64(ey), float64(ex))),
	}, true
}

func sigmoid(x float32) float32 {
	if x < -80 {
		return 0
	}
	if x > 80 {
		return 1
	}
	return float32(1 / (1 + math.Exp(-float64(x))))
}
