package detect

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// Scheduled is a Detector that can be told when its frame was taken (the
// video's clock offline, the wall clock live) and, through ctx's deadline,
// by when the answer is needed. The pipeline uses it when a detector has it.
type Scheduled interface {
	DetectAt(ctx context.Context, frame gocv.Mat, at time.Duration) ([]Face, error)
}

// FrameOptions tunes a Frame detector.
type FrameOptions struct {
	// MinFace is the smallest face width, in frame pixels, to find. Above
	// the model's own smallest face (fineMinFace) the fine pass runs on a
	// frame shrunk by fineMinFace/MinFace, which is that much cheaper.
	MinFace int
	// NMSIoU merges candidates overlapping more than this.
	NMSIoU float32
	// MaxAspect rejects boxes whose width/height ratio is outside
	// [1/MaxAspect, MaxAspect]; 0 disables the check.
	MaxAspect float32
	// EdgePad mirrors at least this fraction of the frame's shorter side
	// past each edge, inside the rounding of the fine pass's input up to a
	// multiple of 32, so a face cut by the frame edge is seen whole.
	EdgePad float64
	// Gate finds the rows whose pixels changed; MaxAge is not used (see
	// FullEvery). A zero Scale disables banding: every keyframe is a full
	// pass.
	Gate GateOptions
	// FullEvery bounds how long any part of the frame goes without a fine
	// pass, on the frame's own clock.
	FullEvery time.Duration
	// MaxFace is the widest face, in frame pixels, the camera can see;
	// wider boxes are redacted only with a score of at least LargeScore.
	// 0 means a third of the frame's shorter side.
	MaxFace    int
	LargeScore float32
	// Deadline bounds a keyframe's passes when the caller's context has no
	// deadline of its own.
	Deadline time.Duration
}

// fineMinFace is the smallest face, in pixels of its input, BlazeFace
// back-256 finds reliably when run fully convolutionally (measured: 34 of
// 35 faces of 12-16 px).
const fineMinFace = 12

// fineMaxFace is the largest face the fine pass is responsible for, in
// pixels of its input: bands extend this far beyond the rows that changed,
// so every face of up to this size that touches them is inside the band.
// The first coarse pass (a third of the size) finds faces from 3x16 = 48 px,
// so the two overlap.
const fineMaxFace = 64

// coarseStep is the factor between the fine pass and each coarser one.
const coarseStep = 3

// coarseSmallest stops the coarse passes once the frame is this small.
const coarseSmallest = 128

// DefaultFrameOptions suit BlazeFace back-256 on CCTV-like frames.
var DefaultFrameOptions = FrameOptions{
	MinFace: 12, NMSIoU: 0.3, MaxAspect: 2.5, EdgePad: 0.05,
	Gate:      GateOptions{Scale: 0.25, Threshold: 10, MinPixels: 2},
	FullEvery: 2 * time.Second, LargeScore: 0.75, Deadline: 2 * time.Second,
}

// Frame finds faces in whole frames in one pass of the fully convolutional
// BlazeFace over the frame (the fine pass, faces from about 12 px), and
// passes over copies shrunk by 3, 9, ... for faces too large for it, all
// merged by weighted NMS. The fine pass covers only the horizontal bands
// whose pixels changed since they were last scanned, or where a face was
// found, and the whole frame at least every FullEvery: a face cannot appear
// in pixels that did not change.
//
// The passes run on a Service shared by every camera of the box. A Frame
// keeps one camera's state (the change reference and the faces of the
// bands not rescanned); it is not safe for concurrent use.
type Frame struct {
	svc *Service
	o   FrameOptions

	geo    geometry
	small  gocv.Mat   // the frame shrunk for the fine pass (MinFace above fineMinFace)
	canvas gocv.Mat   // the fine pass's input: frame plus mirrored margin
	coarse []gocv.Mat // coarse passes' inputs
	work   gocv.Mat   // scratch for a coarse resize

	// The change gate, in rows of the canvas at Gate.Scale.
	gray, low, diff, bin, rows gocv.Mat
	ref                        gocv.Mat // low-res grey of each row as last scanned
	fine                       []Candidate
	coarseCands                []Candidate
	lastFull                   time.Duration
	haveRef                    bool

	stats FrameStats
}

// FrameStats describes the last Detect.
type FrameStats struct {
	Full      bool // the fine pass covered the whole frame
	FineRows  int  // canvas rows the fine pass scanned (overlaps counted)
	TotalRows int  // canvas rows of a full pass
	Passes    int  // network runs
}

// geometry lays out one frame size's passes.
type geometry struct {
	frame          image.Point // input frame size
	scale          float64     // fine pass scale (<= 1)
	scaled         image.Point // frame size at that scale
	canvas         image.Point // fine pass input, multiples of 32
	left, top      int         // the scaled frame's offset in the canvas
	right, bottom  int
	coarse         []image.Point // each coarse input's size (multiples of 32)
	coarseImg      []image.Point // the canvas shrunk, top-left in each input
	low            image.Point   // canvas at Gate.Scale
	lowPerCanvasPx float64
}

var _ Detector = (*Frame)(nil)
var _ Scheduled = (*Frame)(nil)

// NewFrame makes a detector that runs its passes on svc. It holds the
// service open until Close.
func NewFrame(svc *Service, o FrameOptions) (*Frame, error) {
	if o.MinFace < 4 {
		return nil, fmt.Errorf("frame detector: min face %d px too small; allowed >= 4", o.MinFace)
	}
	if o.EdgePad < 0 || o.EdgePad > 0.25 {
		return nil, fmt.Errorf("frame detector: edge pad %.2f out of range [0, 0.25]", o.EdgePad)
	}
	if o.Deadline <= 0 {
		o.Deadline = DefaultFrameOptions.Deadline
	}
	svc.acquire()
	return &Frame{
		svc: svc, o: o,
		small: gocv.NewMat(), canvas: gocv.NewMat(), work: gocv.NewMat(),
		gray: gocv.NewMat(), low: gocv.NewMat(), diff: gocv.NewMat(), bin: gocv.NewMat(), rows: gocv.NewMat(),
		ref: gocv.NewMat(),
	}, nil
}

// Close releases the scratch memory and the detector's hold on the service.
func (f *Frame) Close() error {
	for _, m := range []*gocv.Mat{&f.small, &f.canvas, &f.work, &f.gray, &f.low, &f.diff, &f.bin, &f.rows, &f.ref} {
		m.Close()
	}
	for i := range f.coarse {
		f.coarse[i].Close()
	}
	f.coarse = nil
	f.svc.release()
	return nil
}

// LastStats describes the last Detect.
func (f *Frame) LastStats() FrameStats { return f.stats }

// Detect finds faces in frame, on the wall clock.
func (f *Frame) Detect(frame gocv.Mat) ([]Face, error) {
	return f.DetectAt(context.Background(), frame, -1)
}

func align32(n int) int { return (n + 31) / 32 * 32 }

// layout computes the passes' geometry for a frame size.
func (f *Frame) layout(size image.Point) geometry {
	g := geometry{frame: size, scale: 1}
	if f.o.MinFace > fineMinFace {
		g.scale = float64(fineMinFace) / float64(f.o.MinFace)
	}
	g.scaled = image.Pt(max(1, int(math.Round(float64(size.X)*g.scale))), max(1, int(math.Round(float64(size.Y)*g.scale))))
	m := int(math.Ceil(f.o.EdgePad * float64(min(g.scaled.X, g.scaled.Y))))
	g.canvas = image.Pt(align32(g.scaled.X+2*m), align32(g.scaled.Y+2*m))
	g.left, g.top = (g.canvas.X-g.scaled.X)/2, (g.canvas.Y-g.scaled.Y)/2
	g.right, g.bottom = g.canvas.X-g.scaled.X-g.left, g.canvas.Y-g.scaled.Y-g.top
	if f.o.EdgePad == 0 {
		// No mirror: the frame at the top left, black beyond.
		g.left, g.top, g.right, g.bottom = 0, 0, g.canvas.X-g.scaled.X, g.canvas.Y-g.scaled.Y
	}
	for k := 1; ; k++ {
		s := math.Pow(coarseStep, -float64(k))
		img := image.Pt(max(1, int(math.Round(float64(g.canvas.X)*s))), max(1, int(math.Round(float64(g.canvas.Y)*s))))
		g.coarseImg = append(g.coarseImg, img)
		g.coarse = append(g.coarse, image.Pt(align32(img.X), align32(img.Y)))
		if max(img.X, img.Y) <= coarseSmallest {
			break
		}
	}
	if f.o.Gate.Scale > 0 {
		g.low = image.Pt(max(1, int(math.Round(float64(g.canvas.X)*f.o.Gate.Scale))), max(1, int(math.Round(float64(g.canvas.Y)*f.o.Gate.Scale))))
		g.lowPerCanvasPx = float64(g.low.Y) / float64(g.canvas.Y)
	}
	return g
}

// band is one fine-pass run: the canvas rows it scans and the rows (its
// core) whose faces it is responsible for.
type band struct{ scan, core [2]int }

// DetectAt finds faces in frame; at is the frame's time (negative: use the
// wall clock) and ctx's deadline, if any, bounds the wait for the service.
func (f *Frame) DetectAt(ctx context.Context, frame gocv.Mat, at time.Duration) ([]Face, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, ErrBadFrame
	}
	if at < 0 {
		at = time.Duration(time.Now().UnixNano())
	}
	size := image.Pt(frame.Cols(), frame.Rows())
	if f.geo.frame != size {
		f.geo = f.layout(size)
		f.haveRef = false
		for i := range f.coarse {
			f.coarse[i].Close()
		}
		f.coarse = make([]gocv.Mat, len(f.geo.coarse))
		for i, c := range f.geo.coarse {
			f.coarse[i] = gocv.NewMatWithSize(c.Y, c.X, gocv.MatTypeCV8UC3)
		}
	}
	g := f.geo
	src := frame
	if g.scale < 1 {
		gocv.Resize(frame, &f.small, g.scaled, 0, 0, gocv.InterpolationArea)
		src = f.small
	}
	border := gocv.BorderReflect101
	if f.o.EdgePad == 0 {
		border = gocv.BorderConstant
	}
	gocv.CopyMakeBorder(src, &f.canvas, g.top, g.bottom, g.left, g.right, border, color.RGBA{})

	full := !f.haveRef || f.o.Gate.Scale <= 0 || at-f.lastFull >= f.o.FullEvery || at < f.lastFull
	var dirty []bool
	if !full {
		dirty = f.dirtyRows()
	}
	bands := f.plan(full, dirty)
	runCoarse := full || len(bands) > 0

	// Inputs: one Region of the canvas per fine band, then the coarse copies.
	var imgs []gocv.Mat
	for _, b := range bands {
		imgs = append(imgs, f.canvas.Region(image.Rect(0, b.scan[0], g.canvas.X, b.scan[1])))
	}
	if runCoarse {
		for i := range f.coarse {
			gocv.Resize(f.canvas, &f.work, g.coarseImg[i], 0, 0, gocv.InterpolationArea)
			dst := f.coarse[i].Region(image.Rectangle{Max: g.coarseImg[i]})
			f.work.CopyTo(&dst)
			dst.Close()
			imgs = append(imgs, f.coarse[i])
		}
	}
	var results [][]Candidate
	if len(imgs) > 0 {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(f.o.Deadline)
		}
		var cancel atomic.Bool
		stop := context.AfterFunc(ctx, func() { cancel.Store(true) })
		var err error
		results, err = f.svc.run(imgs, deadline, &cancel)
		stop()
		for i := range bands {
			imgs[i].Close()
		}
		if err != nil {
			f.haveRef = false // nothing cached may outlive a failed scan
			f.fine, f.coarseCands = nil, nil
			return nil, err
		}
	}
	f.stats = FrameStats{Full: full, TotalRows: g.canvas.Y, Passes: len(imgs)}

	// Fine candidates: keep the cached ones clear of every rescanned core,
	// add the new ones touching their band's core.
	var fine []Candidate
	for _, c := range f.fine {
		if !touchesAny(c.Box, bands) {
			fine = append(fine, c)
		}
	}
	for i, b := range bands {
		f.stats.FineRows += b.scan[1] - b.scan[0]
		for _, c := range results[i] {
			c.Box.Y0 += float32(b.scan[0])
			c.Box.Y1 += float32(b.scan[0])
			if c.Box.Y1 > float32(b.core[0]) && c.Box.Y0 < float32(b.core[1]) {
				fine = append(fine, c)
			}
		}
	}
	f.fine = fine
	if runCoarse {
		f.coarseCands = f.coarseCands[:0]
		for i := range f.coarse {
			sx := float32(g.canvas.X) / float32(g.coarseImg[i].X)
			sy := float32(g.canvas.Y) / float32(g.coarseImg[i].Y)
			for _, c := range results[len(bands)+i] {
				c.Box = Rect{c.Box.X0 * sx, c.Box.Y0 * sy, c.Box.X1 * sx, c.Box.Y1 * sy}
				f.coarseCands = append(f.coarseCands, c)
			}
		}
	}
	if full {
		f.lastFull = at
	}
	f.commitRows(bands)
	all := make([]Candidate, 0, len(f.fine)+len(f.coarseCands))
	all = append(append(all, f.fine...), f.coarseCands...)
	return f.faces(all), nil
}

// touchesAny reports whether a canvas box reaches into any band's core.
func touchesAny(r Rect, bands []band) bool {
	for _, b := range bands {
		if r.Y1 > float32(b.core[0]) && r.Y0 < float32(b.core[1]) {
			return true
		}
	}
	return false
}

// dirtyRows marks the canvas rows, at Gate.Scale, whose pixels changed
// since they were last scanned, and the rows of the faces found there.
func (f *Frame) dirtyRows() []bool {
	g := f.geo
	gocv.CvtColor(f.canvas, &f.gray, gocv.ColorBGRToGray)
	gocv.Resize(f.gray, &f.low, g.low, 0, 0, gocv.InterpolationArea)
	gocv.AbsDiff(f.low, f.ref, &f.diff)
	gocv.Threshold(f.diff, &f.bin, f.o.Gate.Threshold, 1, gocv.ThresholdBinary)
	gocv.Reduce(f.bin, &f.rows, 1, gocv.ReduceSum, gocv.MatTypeCV32S)
	n := g.low.Y
	counts := make([]int32, n)
	for y := 0; y < n; y++ {
		counts[y] = f.rows.GetIntAt(y, 0)
	}
	dirty := make([]bool, n)
	minPx := int32(max(1, f.o.Gate.MinPixels))
	for y := 0; y < n; y++ {
		sum := counts[y]
		if y > 0 {
			sum += counts[y-1]
		}
		if y+1 < n {
			sum += counts[y+1]
		}
		dirty[y] = counts[y] > 0 && sum >= minPx
	}
	// Where a face is, look again: it is what must not be lost.
	for _, c := range f.fine {
		y0 := max(0, int(math.Floor(float64(c.Box.Y0)*g.lowPerCanvasPx)))
		y1 := min(n, int(math.Ceil(float64(c.Box.Y1)*g.lowPerCanvasPx)))
		for y := y0; y < y1; y++ {
			dirty[y] = true
		}
	}
	return dirty
}

// plan turns dirty low-res rows into fine-pass bands: each run of dirty
// rows is a core, scanned with fineMaxFace rows above and below (so every
// face up to that size touching the core is whole in the band), aligned to
// 32; overlapping bands are joined. A full pass is one core of the whole
// canvas. A long band is split into parts for idle workers, each part's
// scan reaching fineMaxFace past its own share of the core.
func (f *Frame) plan(full bool, dirty []bool) []band {
	g := f.geo
	var cores [][2]int
	if full {
		cores = [][2]int{{0, g.canvas.Y}}
	} else {
		for y := 0; y < len(dirty); {
			if !dirty[y] {
				y++
				continue
			}
			y0 := y
			for y < len(dirty) && dirty[y] {
				y++
			}
			c0 := int(math.Floor(float64(y0) / g.lowPerCanvasPx))
			c1 := min(g.canvas.Y, int(math.Ceil(float64(y)/g.lowPerCanvasPx)))
			cores = append(cores, [2]int{c0, c1})
		}
	}
	var bands []band
	for _, c := range cores {
		b := band{core: c, scan: f.scanRows(c)}
		if n := len(bands); n > 0 && b.scan[0] <= bands[n-1].scan[1] {
			last := &bands[n-1]
			last.core[1] = c[1]
			last.scan[1] = b.scan[1]
			continue
		}
		bands = append(bands, b)
	}
	// Split long bands so that idle workers share them.
	idle := f.svc.Workers() - f.svc.queued()
	if idle < 2 {
		return bands
	}
	var out []band
	for _, b := range bands {
		h := b.core[1] - b.core[0]
		k := min(idle, h/(4*fineMaxFace))
		if k < 2 {
			out = append(out, b)
			continue
		}
		for i := 0; i < k; i++ {
			c0 := b.core[0] + h*i/k/32*32
			c1 := b.core[0] + h*(i+1)/k/32*32
			if i == k-1 {
				c1 = b.core[1]
			}
			if i == 0 {
				c0 = b.core[0]
			}
			s := f.scanRows([2]int{c0, c1})
			s[0], s[1] = max(s[0], b.scan[0]), min(s[1], b.scan[1])
			out = append(out, band{core: [2]int{c0, c1}, scan: s})
		}
	}
	return out
}

// scanRows is a core's scan: fineMaxFace rows either side, aligned to 32,
// within the canvas.
func (f *Frame) scanRows(core [2]int) [2]int {
	s0 := max(0, (core[0]-fineMaxFace)/32*32)
	s1 := min(f.geo.canvas.Y, align32(core[1]+fineMaxFace))
	if s1-s0 < 32 {
		s1 = min(f.geo.canvas.Y, s0+32)
	}
	return [2]int{s0, s1}
}

// commitRows makes this frame the change reference of the rows just
// scanned (their cores: rows scanned only as margin keep their older
// reference, so a slow change there still adds up).
func (f *Frame) commitRows(bands []band) {
	g := f.geo
	if f.o.Gate.Scale <= 0 {
		return
	}
	if !f.haveRef {
		gocv.CvtColor(f.canvas, &f.gray, gocv.ColorBGRToGray)
		gocv.Resize(f.gray, &f.low, g.low, 0, 0, gocv.InterpolationArea)
		f.low.CopyTo(&f.ref)
		f.haveRef = true
		return
	}
	for _, b := range bands {
		y0 := int(math.Floor(float64(b.core[0]) * g.lowPerCanvasPx))
		y1 := min(g.low.Y, int(math.Ceil(float64(b.core[1])*g.lowPerCanvasPx)))
		if y1 <= y0 {
			continue
		}
		r := image.Rect(0, y0, g.low.X, y1)
		src := f.low.Region(r)
		dst := f.ref.Region(r)
		src.CopyTo(&dst)
		dst.Close()
		src.Close()
	}
}

// faces merges canvas candidates into frame faces: weighted NMS, the shape
// and size checks, the roll's extent, then back to frame pixels, dropping
// boxes that lie mostly in the mirrored margin (mirror images of faces
// inside).
func (f *Frame) faces(all []Candidate) []Face {
	g := f.geo
	merged := WeightedNMS(all, f.o.NMSIoU)
	inv := float32(1 / g.scale)
	frame := image.Rectangle{Max: g.frame}
	maxFace := float32(f.o.MaxFace)
	if maxFace <= 0 {
		maxFace = float32(min(g.frame.X, g.frame.Y)) / 3
	}
	out := make([]Face, 0, len(merged))
	for _, c := range merged {
		if f.o.MaxAspect > 0 {
			ar := c.Box.W() / c.Box.H()
			if ar > f.o.MaxAspect || ar < 1/f.o.MaxAspect {
				continue
			}
		}
		if c.Box.W()*inv > maxFace && c.Score < f.o.LargeScore {
			continue // larger than a face can be here, on weak evidence
		}
		r := rollExtent(c.Box, c.Roll)
		r = Rect{(r.X0 - float32(g.left)) * inv, (r.Y0 - float32(g.top)) * inv, (r.X1 - float32(g.left)) * inv, (r.Y1 - float32(g.top)) * inv}
		b := r.Int()
		in := b.Intersect(frame)
		if in.Empty() || in.Dx()*in.Dy()*4 < b.Dx()*b.Dy() {
			continue
		}
		out = append(out, Face{Box: in, Score: c.Score, Roll: c.Roll})
	}
	return out
}
