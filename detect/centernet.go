package detect

import (
	"errors"
	"fmt"
	"image"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/models/tfgraph"
)

// CenterNet's output layers as OpenCV names them: the person heat map (a
// sigmoid) and the box distances (scaled to input pixels by a constant
// multiply). The graph's Identity outputs, tower_0/keypoints and
// tower_0/wh, are folded away by OpenCV's importer.
const (
	personHeatmap = "tower_0/Sigmoid"
	personBoxes   = "tower_0/mul"
	personStride  = 4
)

// Person is one person found in a frame, in frame pixels.
type Person struct {
	Box   image.Rectangle
	Score float32
}

// PersonNet is the CenterNet person detector (models entry
// centernet-person) built for one input size. It reads a whole frame at
// once: the frame is scaled to the input (RGB, 0..255, no mean), the heat
// map's 3x3 local maxima at or above the threshold are people, and each
// peak's left/top/right/bottom distances give the box.
//
// A PersonNet is not safe for concurrent use.
type PersonNet struct {
	net       gocv.Net
	w, h      int
	threshold float32
}

// PersonInput is the network input for frames of the given size at the
// given input width: the width rounded to a multiple of 32 (at least 64),
// and the height that keeps the frame's aspect, rounded to a multiple of
// 32.
func PersonInput(frame image.Point, width int) image.Point {
	w := max(64, (width+16)/32*32)
	if frame.X <= 0 || frame.Y <= 0 {
		return image.Pt(w, w)
	}
	h := max(64, int(float64(w)*float64(frame.Y)/float64(frame.X)/32+0.5)*32)
	return image.Pt(w, h)
}

// NewPersonNet builds the network for a w x h input (multiples of 32) from
// the verified centernet-person graph. threshold is the minimum score in
// (0, 1).
func NewPersonNet(graph []byte, w, h int, threshold float32) (*PersonNet, error) {
	if w < 32 || h < 32 || w%32 != 0 || h%32 != 0 {
		return nil, fmt.Errorf("person detector: input %dx%d: width and height must be positive multiples of 32", w, h)
	}
	if threshold <= 0 || threshold >= 1 {
		return nil, fmt.Errorf("person detector: threshold %.2f out of range (0, 1)", threshold)
	}
	g, err := tfgraph.Unmarshal(graph)
	if err != nil {
		return nil, fmt.Errorf("person detector: %w", err)
	}
	if err := g.Resize(h, w); err != nil {
		return nil, fmt.Errorf("person detector %dx%d: %w", w, h, err)
	}
	net, err := cpuNet(gocv.ReadNetFromTensorflowBytes(g.Marshal()))
	if err != nil {
		return nil, fmt.Errorf("person detector %dx%d: loading graph: %w", w, h, err)
	}
	return &PersonNet{net: net, w: w, h: h, threshold: threshold}, nil
}

// Size is the input's width and height in pixels.
func (p *PersonNet) Size() (w, h int) { return p.w, p.h }

// Detect finds people in a BGR frame of any size; boxes are in the frame's
// pixels, clipped to it.
func (p *PersonNet) Detect(frame gocv.Mat) ([]Person, error) {
	return p.detectScaled(frame, image.Pt(frame.Cols(), frame.Rows()))
}

// detectScaled finds people in img (any size; scaled to the input) and
// returns boxes in the pixels of a frame of size frame that img shows.
func (p *PersonNet) detectScaled(img gocv.Mat, frame image.Point) (people []Person, err error) {
	if img.Empty() || img.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("person detector %dx%d: inference panicked: %v", p.w, p.h, r)
		}
	}()
	blob := gocv.BlobFromImage(img, 1, image.Pt(p.w, p.h), gocv.NewScalar(0, 0, 0, 0), true, false)
	defer blob.Close()
	p.net.SetInput(blob, "")
	outs := p.net.ForwardLayers([]string{personHeatmap, personBoxes})
	defer func() {
		for _, o := range outs {
			o.Close()
		}
	}()
	if len(outs) != 2 {
		return nil, fmt.Errorf("person detector: %d outputs, want 2", len(outs))
	}
	return p.decode(outs[0], outs[1], frame)
}

// decode turns the heat map (1x1xHxW) and box distances (1x4xHxW) into
// people in a frame of the given size.
func (p *PersonNet) decode(heat, wh gocv.Mat, frame image.Point) ([]Person, error) {
	hs, ws := heat.Size(), wh.Size()
	if len(hs) != 4 || len(ws) != 4 || hs[1] != 1 || ws[1] != 4 || hs[2] != ws[2] || hs[3] != ws[3] {
		return nil, fmt.Errorf("person detector: outputs %v and %v, want 1x1xHxW and 1x4xHxW", hs, ws)
	}
	H, W := hs[2], hs[3]
	hv, err := heat.DataPtrFloat32()
	if err != nil {
		return nil, err
	}
	bv, err := wh.DataPtrFloat32()
	if err != nil {
		return nil, err
	}
	return decodePeople(hv, bv, W, H, p.threshold,
		float64(frame.X)/float64(p.w), float64(frame.Y)/float64(p.h), frame), nil
}

// decodePeople finds the heat map's 3x3 local maxima at or above
// threshold; a plateau counts once, at its first cell in raster order.
// Boxes are scaled by sx, sy from input to frame pixels and clipped to frame.
func decodePeople(heat, wh []float32, W, H int, threshold float32, sx, sy float64, frame image.Point) []Person {
	var out []Person
	plane := W * H
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			v := heat[y*W+x]
			if v < threshold || !isPeak(heat, W, H, x, y) {
				continue
			}
			i := y*W + x
			cx, cy := float64(x*personStride), float64(y*personStride)
			l, t, r, b := float64(wh[i]), float64(wh[plane+i]), float64(wh[2*plane+i]), float64(wh[3*plane+i])
			box := image.Rect(int((cx-l)*sx+0.5), int((cy-t)*sy+0.5), int((cx+r)*sx+0.5), int((cy+b)*sy+0.5)).
				Intersect(image.Rectangle{Max: frame})
			if box.Empty() {
				continue
			}
			out = append(out, Person{Box: box, Score: v})
		}
	}
	return out
}

// isPeak: no 3x3 neighbour is higher, and none earlier in raster order is
// equal.
func isPeak(heat []float32, W, H, x, y int) bool {
	v := heat[y*W+x]
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			xx, yy := x+dx, y+dy
			if (dx == 0 && dy == 0) || xx < 0 || yy < 0 || xx >= W || yy >= H {
				continue
			}
			n := heat[yy*W+xx]
			if n > v || (n == v && (dy < 0 || (dy == 0 && dx < 0))) {
				return false
			}
		}
	}
	return true
}

// Close releases the network.
func (p *PersonNet) Close() error { return p.net.Close() }

// People is one camera's person detection on the box's detection service:
// each frame is scaled to the person network's input on the caller's
// goroutine and run as a person pass, which waits while face passes wait
// unless counting is below its floor of the networks' time (see
// Service.next). It holds the service open until Close.
//
// People is not safe for concurrent use.
type People struct {
	svc     *Service
	width   int
	timeout time.Duration
	scaled  gocv.Mat // owned here; read by the pass in flight while busy
	closed  bool
	busy    bool // a pass started by Start has not been collected
	results chan peopleResult
}

type peopleResult struct {
	people []Person
	err    error
}

// NewPeople makes a person detector on svc, which must have a person model
// (SetPeople). width is the network input width (PeopleInput); a pass not
// started within timeout of being asked for is answered with ErrLate.
func NewPeople(svc *Service, width int, timeout time.Duration) (*People, error) {
	if !svc.HasPeople() {
		return nil, errors.New("person detector: the detection service has no person model")
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("person detector: timeout %v must be positive", timeout)
	}
	svc.acquire()
	return &People{svc: svc, width: width, timeout: timeout, scaled: gocv.NewMat(), results: make(chan peopleResult, 1)}, nil
}

// Detect finds people in a BGR frame and waits for them; boxes are in the
// frame's pixels. A pass started by Start is collected (and dropped) first.
func (p *People) Detect(frame gocv.Mat) ([]Person, error) {
	p.wait()
	size, err := p.scale(frame)
	if err != nil {
		return nil, err
	}
	return p.svc.DetectPeople(p.scaled, size, time.Now().Add(p.timeout))
}

// scale copies frame, scaled to the network input, into p.scaled.
func (p *People) scale(frame gocv.Mat) (image.Point, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return image.Point{}, ErrBadFrame
	}
	size := image.Pt(frame.Cols(), frame.Rows())
	gocv.Resize(frame, &p.scaled, p.svc.PeopleInput(size, p.width), 0, 0, gocv.InterpolationArea)
	return size, nil
}

// Start begins finding people in a BGR frame and returns at once: the
// frame is scaled to the network input during the call (a copy the pass
// owns; frame is not kept) and the pass waits its turn on the service in
// the background. Poll collects it. Only one pass may be in flight.
func (p *People) Start(frame gocv.Mat) error {
	if p.busy {
		return errors.New("person detector: the last pass was not collected")
	}
	size, err := p.scale(frame)
	if err != nil {
		return err
	}
	p.busy = true
	deadline := time.Now().Add(p.timeout)
	go func() {
		people, err := p.svc.DetectPeople(p.scaled, size, deadline)
		p.results <- peopleResult{people, err}
	}()
	return nil
}

// Poll collects the pass Start began: done is false while it runs (or when
// none was started).
func (p *People) Poll() (people []Person, done bool, err error) {
	if !p.busy {
		return nil, false, nil
	}
	select {
	case r := <-p.results:
		p.busy = false
		return r.people, true, r.err
	default:
		return nil, false, nil
	}
}

// wait collects the pass in flight, if any.
func (p *People) wait() {
	if p.busy {
		<-p.results
		p.busy = false
	}
}

// Close waits for the pass in flight and releases the service.
func (p *People) Close() error {
	if p.closed {
		return nil
	}
	p.wait()
	p.closed = true
	p.scaled.Close()
	p.svc.release()
	return nil
}
