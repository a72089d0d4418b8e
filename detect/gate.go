package detect

import (
	"image"
	"math"

	"gocv.io/x/gocv"
)

// GateOptions tunes the change gate of a Search.
type GateOptions struct {
	// Scale is the factor a frame is shrunk by (grey, area-averaged) before
	// comparing; 0.25 turns a 16 px face into 4x4 samples.
	Scale float64
	// Threshold is the grey-level difference that counts as a change.
	Threshold float32
	// MinPixels changed samples make a window dirty.
	MinPixels int
	// MaxAge forces a rescan of every window at least every MaxAge calls;
	// 0 disables the gate (every window is scanned every time).
	MaxAge int
}

// DefaultGateOptions rescan a window when 2 samples at quarter size moved
// by more than 10 grey levels, and every window at least every 4th keyframe.
var DefaultGateOptions = GateOptions{Scale: 0.25, Threshold: 10, MinPixels: 2, MaxAge: 4}

// gate remembers, per window, the shrunken grey pixels of its last scan and
// that scan's candidates.
type gate struct {
	o     GateOptions
	size  image.Point
	gray  gocv.Mat
	low   gocv.Mat
	diff  gocv.Mat
	bin   gocv.Mat
	refs  []gocv.Mat
	age   []int
	cache [][]Candidate
	rects []image.Rectangle // window rects in low-res pixels
	dirt  []bool
}

func newGate(o GateOptions) *gate {
	return &gate{o: o, gray: gocv.NewMat(), low: gocv.NewMat(), diff: gocv.NewMat(), bin: gocv.NewMat()}
}

// dirty reports which windows must be scanned on this frame.
func (g *gate) dirty(frame gocv.Mat, windows []image.Rectangle) []bool {
	size := image.Pt(frame.Cols(), frame.Rows())
	if size != g.size || len(windows) != len(g.refs) {
		g.reset()
		g.size = size
		g.refs = make([]gocv.Mat, len(windows))
		for i := range g.refs {
			g.refs[i] = gocv.NewMat()
		}
		g.age = make([]int, len(windows))
		g.cache = make([][]Candidate, len(windows))
		g.dirt = make([]bool, len(windows))
		ls := image.Pt(max(1, int(math.Round(float64(size.X)*g.o.Scale))), max(1, int(math.Round(float64(size.Y)*g.o.Scale))))
		g.rects = make([]image.Rectangle, len(windows))
		for i, w := range windows {
			g.rects[i] = image.Rect(
				int(math.Floor(float64(w.Min.X)*g.o.Scale)), int(math.Floor(float64(w.Min.Y)*g.o.Scale)),
				int(math.Ceil(float64(w.Max.X)*g.o.Scale)), int(math.Ceil(float64(w.Max.Y)*g.o.Scale)),
			).Intersect(image.Rectangle{Max: ls})
		}
	}
	gocv.CvtColor(frame, &g.gray, gocv.ColorBGRToGray)
	ls := image.Pt(max(1, int(math.Round(float64(size.X)*g.o.Scale))), max(1, int(math.Round(float64(size.Y)*g.o.Scale))))
	gocv.Resize(g.gray, &g.low, ls, 0, 0, gocv.InterpolationArea)
	for i, r := range g.rects {
		g.dirt[i] = g.refs[i].Empty() || g.age[i] >= g.o.MaxAge-1 || r.Empty() || g.changed(r, g.refs[i])
	}
	return g.dirt
}

func (g *gate) changed(r image.Rectangle, ref gocv.Mat) bool {
	cur := g.low.Region(r)
	defer cur.Close()
	gocv.AbsDiff(cur, ref, &g.diff)
	gocv.Threshold(g.diff, &g.bin, g.o.Threshold, 255, gocv.ThresholdBinary)
	return gocv.CountNonZero(g.bin) >= g.o.MinPixels
}

// store records a fresh scan's candidates for window i.
func (g *gate) store(i int, c []Candidate) { g.cache[i] = c }

// commit makes this frame the reference of the windows just scanned.
func (g *gate) commit() {
	for i, d := range g.dirt {
		if !d {
			g.age[i]++
			continue
		}
		g.age[i] = 0
		g.refs[i].Close()
		cur := g.low.Region(g.rects[i])
		g.refs[i] = cur.Clone()
		cur.Close()
	}
}

// all returns every window's latest candidates.
func (g *gate) all() []Candidate {
	var out []Candidate
	for _, c := range g.cache {
		out = append(out, c...)
	}
	return out
}

// reset forgets every reference so that the next call scans everything.
func (g *gate) reset() {
	for i := range g.refs {
		g.refs[i].Close()
	}
	g.refs, g.age, g.cache, g.dirt, g.rects = nil, nil, nil, nil, nil
	g.size = image.Point{}
}

func (g *gate) close() {
	g.reset()
	g.gray.Close()
	g.low.Close()
	g.diff.Close()
	g.bin.Close()
}
