package detect

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/models/tfgraph"
)

// SSDLite's input size, class count and decoding constants, as in the
// models entry ssdlite-person (TensorFlow object detection API's
// SSDLite-MobileNetV2 COCO, converted by models' tfjs-ssdlite-person).
const (
	ssdSize    = 300
	ssdClasses = 91 // class 0 is background; COCO's person is 1
	ssdPerson  = 1
	ssdNMSIoU  = 0.5 // as the TFJS coco-ssd model's own postprocessing

	// The box coder's scale factors for the centre (y, x) and the log size
	// (h, w) encodings.
	ssdScaleXY = 10
	ssdScaleWH = 5
)

// ssdFeatureMaps are the six box predictors' grid sizes and anchors per
// cell at a 300x300 input, in anchor order (1917 anchors in all).
var ssdFeatureMaps = []struct{ size, anchors int }{{19, 3}, {10, 6}, {5, 6}, {3, 6}, {2, 6}, {1, 6}}

// ssdHeads are the box predictors' output layers: box encodings and class
// logits of each feature map, in ssdFeatureMaps order. The graph's outputs
// are the BiasAdd after each convolution; OpenCV's importer folds the bias
// into the convolution layer, which keeps the Conv2D node's name.
var ssdHeads = func() []string {
	var out []string
	for i := range ssdFeatureMaps {
		out = append(out,
			fmt.Sprintf("BoxPredictor_%d/BoxEncodingPredictor/Conv2D", i),
			fmt.Sprintf("BoxPredictor_%d/ClassPredictor/Conv2D", i))
	}
	return out
}()

// SSDNet is the SSDLite-MobileNetV2 person detector (models entry
// ssdlite-person). Its input is fixed at 300x300: a frame is stretched to
// it whatever its aspect (as the model was trained), RGB in 0..255, which
// the graph scales to -1..1. Each anchor's person logit goes through a
// sigmoid; anchors at or above the threshold are decoded against the
// anchor boxes and overlapping ones suppressed (NMS at IoU 0.5).
//
// An SSDNet is not safe for concurrent use.
type SSDNet struct {
	net       gocv.Net
	anchors   []float32 // ymin, xmin, ymax, xmax per anchor, input fractions
	threshold float32
}

var _ PersonDetector = (*SSDNet)(nil)

// NewSSDNet builds the network from the verified ssdlite-person graph.
// threshold is the minimum person score in (0, 1).
func NewSSDNet(graph []byte, threshold float32) (*SSDNet, error) {
	if threshold <= 0 || threshold >= 1 {
		return nil, fmt.Errorf("ssdlite person detector: threshold %.2f out of range (0, 1)", threshold)
	}
	g, err := tfgraph.Unmarshal(graph)
	if err != nil {
		return nil, fmt.Errorf("ssdlite person detector: %w", err)
	}
	anchors, err := takeAnchors(g)
	if err != nil {
		return nil, fmt.Errorf("ssdlite person detector: %w", err)
	}
	net, err := cpuNet(gocv.ReadNetFromTensorflowBytes(g.Marshal()))
	if err != nil {
		return nil, fmt.Errorf("ssdlite person detector: loading graph: %w", err)
	}
	return &SSDNet{net: net, anchors: anchors, threshold: threshold}, nil
}

// takeAnchors removes the anchor constant from g and returns its values.
func takeAnchors(g *tfgraph.Graph) ([]float32, error) {
	want := 0
	for _, f := range ssdFeatureMaps {
		want += f.size * f.size * f.anchors
	}
	i := slices.IndexFunc(g.Nodes, func(n *tfgraph.Node) bool { return n.Name == models.SSDAnchors })
	if i < 0 || g.Nodes[i].Op != "Const" || g.Nodes[i].Attrs["value"].Tensor == nil {
		return nil, errors.New("graph has no anchor constant")
	}
	a, err := g.Nodes[i].Attrs["value"].Tensor.Floats()
	if err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	if len(a) != 4*want {
		return nil, fmt.Errorf("%d anchor values, want %d", len(a), 4*want)
	}
	g.Nodes = slices.Delete(g.Nodes, i, i+1)
	return a, nil
}

// Size is the input's width and height in pixels: 300x300.
func (s *SSDNet) Size() (w, h int) { return ssdSize, ssdSize }

// Detect finds people in a BGR frame of any size; boxes are in the frame's
// pixels, clipped to it.
func (s *SSDNet) Detect(frame gocv.Mat) ([]Person, error) {
	return s.detectScaled(frame, image.Pt(frame.Cols(), frame.Rows()))
}

// detectScaled finds people in img (any size; stretched to the input) and
// returns boxes in the pixels of a frame of size frame that img shows.
func (s *SSDNet) detectScaled(img gocv.Mat, frame image.Point) (people []Person, err error) {
	if img.Empty() || img.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ssdlite person detector: inference panicked: %v", r)
		}
	}()
	blob := gocv.BlobFromImage(img, 1, image.Pt(ssdSize, ssdSize), gocv.NewScalar(0, 0, 0, 0), true, false)
	defer blob.Close()
	s.net.SetInput(blob, "")
	outs := s.net.ForwardLayers(ssdHeads)
	defer func() {
		for _, o := range outs {
			o.Close()
		}
	}()
	if len(outs) != len(ssdHeads) {
		return nil, fmt.Errorf("ssdlite person detector: %d outputs, want %d", len(outs), len(ssdHeads))
	}
	heads := make([]ssdHead, len(ssdFeatureMaps))
	for i, f := range ssdFeatureMaps {
		box, cls := outs[2*i], outs[2*i+1]
		bs, cs := box.Size(), cls.Size()
		if !slices.Equal(bs, []int{1, 4 * f.anchors, f.size, f.size}) || !slices.Equal(cs, []int{1, ssdClasses * f.anchors, f.size, f.size}) {
			return nil, fmt.Errorf("ssdlite person detector: head %d outputs %v and %v, want 1x%dx%dx%d and 1x%dx%[4]dx%[4]d",
				i, bs, cs, 4*f.anchors, f.size, f.size, ssdClasses*f.anchors)
		}
		if heads[i].boxes, err = box.DataPtrFloat32(); err != nil {
			return nil, err
		}
		if heads[i].classes, err = cls.DataPtrFloat32(); err != nil {
			return nil, err
		}
		heads[i].size, heads[i].anchors = f.size, f.anchors
	}
	return decodeSSD(heads, s.anchors, s.threshold, frame), nil
}

// ssdHead is one box predictor's output, channel-first as OpenCV gives
// it: boxes[(a*4+k)*size*size + y*size + x] is encoding k (ty, tx, th, tw)
// of anchor a at cell (x, y), classes[(a*ssdClasses+c)*size*size + ...]
// the logit of class c.
type ssdHead struct {
	boxes, classes []float32
	size, anchors  int
}

// decodeSSD decodes the person anchors scoring at least threshold into
// boxes in a frame of the given size (the input shows the whole frame,
// stretched), clipped to it, and suppresses overlaps: best first. The
// anchors are numbered as the graph flattens its heads: head by head,
// then row, column and anchor.
func decodeSSD(heads []ssdHead, anchors []float32, threshold float32, frame image.Point) []Person {
	// sigmoid(logit) >= threshold  <=>  logit >= logit(threshold)
	minLogit := float32(math.Log(float64(threshold) / (1 - float64(threshold))))
	fw, fh := float64(frame.X), float64(frame.Y)
	var found []Person
	idx := 0
	for _, h := range heads {
		plane := h.size * h.size
		for cell := range plane {
			for a := range h.anchors {
				i := idx
				idx++
				logit := h.classes[(a*ssdClasses+ssdPerson)*plane+cell]
				if logit < minLogit {
					continue
				}
				enc := func(k int) float64 { return float64(h.boxes[(a*4+k)*plane+cell]) }
				y0, x0, y1, x1 := float64(anchors[4*i]), float64(anchors[4*i+1]), float64(anchors[4*i+2]), float64(anchors[4*i+3])
				ah, aw := y1-y0, x1-x0
				cy := y0 + ah/2 + enc(0)/ssdScaleXY*ah
				cx := x0 + aw/2 + enc(1)/ssdScaleXY*aw
				bh := ah * math.Exp(enc(2)/ssdScaleWH)
				bw := aw * math.Exp(enc(3)/ssdScaleWH)
				box := image.Rect(int((cx-bw/2)*fw+0.5), int((cy-bh/2)*fh+0.5), int((cx+bw/2)*fw+0.5), int((cy+bh/2)*fh+0.5)).
					Intersect(image.Rectangle{Max: frame})
				if box.Empty() {
					continue
				}
				found = append(found, Person{Box: box, Score: float32(1 / (1 + math.Exp(-float64(logit))))})
			}
		}
	}
	return suppress(found, ssdNMSIoU)
}

// suppress keeps the best-scoring people and drops every one whose IoU
// with a kept one exceeds iouMax (greedy NMS); the result is sorted by
// score, best first.
func suppress(people []Person, iouMax float64) []Person {
	slices.SortStableFunc(people, func(a, b Person) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	var out []Person
	for _, p := range people {
		keep := true
		for _, k := range out {
			if float64(iou(rectOf(p.Box), rectOf(k.Box))) > iouMax {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, p)
		}
	}
	return out
}

// Close releases the network.
func (s *SSDNet) Close() error { return s.net.Close() }
