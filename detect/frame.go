package detect

import (
	"context"
	"errors"
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
	// MinFace is the smallest face width, in frame pixels, to find. The
	// fine pass runs on the frame scaled by ModelMinFace/MinFace: shrunk
	// (cheaper) when MinFace is larger than the smallest face the model
	// finds, enlarged when it is smaller.
	MinFace int
	// ModelMinFace is the smallest face, in pixels of its input, the fully
	// convolutional model finds reliably.
	ModelMinFace int
	// NMSIoU merges candidates overlapping more than this.
	NMSIoU float32
	// MaxAspect rejects boxes whose width/height ratio is outside
	// [1/MaxAspect, MaxAspect]; 0 disables the check.
	MaxAspect float32
	// EdgePad mirrors at least this fraction of the frame's shorter side
	// past each edge, inside the rounding of the fine pass's input up to a
	// multiple of 32, so a face cut by the frame edge is seen whole.
	EdgePad float64
	// Gate finds the pixels that changed. A zero Scale disables it: every
	// keyframe is a full pass.
	Gate GateOptions
	// FullEvery bounds how long any part of the frame goes without a fine
	// pass, on the frame's own clock.
	FullEvery time.Duration
	// MaxFace is the widest face, in frame pixels, the camera can see;
	// wider boxes are redacted only with a score of at least LargeScore.
	// 0 learns it by height in the frame from sure detections (faces far
	// from the camera are small), and until it has seen enough uses a third
	// of the frame's shorter side.
	MaxFace    int
	LargeScore float32
	// Deadline bounds a keyframe's passes when the caller's context has no
	// deadline of its own.
	Deadline time.Duration
}

// fineMinFace is the smallest face, in pixels of its input, the fully
// convolutional BlazeFace back-256 finds reliably enough to be trusted
// with privacy: the fine pass runs on the frame enlarged by fineMinFace /
// MinFace. Measured on the labelled video (seed 1, faces moving, turned,
// blurred; score 0.2): of 68 faces of 12-24 px on keyframes, 34 found at
// 12 (the frame as it is), 48 at 16, 56 at 18; the 45-window pyramid this
// replaced found 60. Its leak rate on 12-24 px faces at 18 is 4.8 % and
// 1.6 % (seeds 1 and 2), against 12.6 % and 11.0 % at 16 and 5.9 % and
// 3.8 % for the pyramid.
const fineMinFace = 18

// fineMaxFace is the largest face the fine pass is responsible for, in
// pixels of its input: a region is scanned this far beyond the pixels that
// changed, so every face of up to this size that touches them is inside it.
// The first coarse pass (a third of the size) finds faces from 3x16 = 48 px,
// so the two overlap.
const fineMaxFace = 64

// passMaxFace is the widest box, in pixels of its input, a pass answers
// for (BlazeFace's boxes of larger faces are poor, and weighted NMS would
// blend them into the good box of the coarser pass); the coarsest pass
// answers for every size. With coarseStep 3 the passes overlap from 48 px
// (16 px in the coarse pass) up to this.
const passMaxFace = 128

// coarseStep is the factor between the fine pass and each coarser one.
const coarseStep = 3

// coarseSmallest stops the coarse passes once the frame is this small.
const coarseSmallest = 128

// DefaultFrameOptions suit BlazeFace back-256 on CCTV-like frames.
var DefaultFrameOptions = FrameOptions{
	MinFace: 12, ModelMinFace: fineMinFace, NMSIoU: 0.3, MaxAspect: 2.5, EdgePad: 0.05,
	Gate:      GateOptions{Scale: 0.25, Threshold: 10, MinPixels: 2},
	FullEvery: 2 * time.Second, LargeScore: 0.75, Deadline: 2 * time.Second,
}

// Frame finds faces in whole frames in one pass of the fully convolutional
// BlazeFace over the frame scaled for MinFace (the fine pass), and
// passes over copies shrunk by 3, 9, ... for faces too large for it, all
// merged by weighted NMS. The fine pass covers only the regions whose
// pixels changed since they were last scanned, or where a face was found,
// and the whole frame at least every FullEvery: a face cannot appear in
// pixels that did not change.
//
// The passes run on a Service shared by every camera of the box. A Frame
// keeps one camera's state (the change reference and the faces of the
// regions not rescanned); it is not safe for concurrent use.
type Frame struct {
	svc *Service
	o   FrameOptions

	geo    geometry
	small  gocv.Mat   // the frame scaled for the fine pass (MinFace other than ModelMinFace)
	canvas gocv.Mat   // the fine pass's input: frame plus mirrored margin
	coarse []gocv.Mat // coarse passes' inputs

	// The change gate, on the canvas at Gate.Scale.
	gray, low, diff, bin, cells gocv.Mat
	ref                         gocv.Mat // low-res grey of each cell as last scanned
	fine                        []Candidate
	coarseCands                 []Candidate
	lastFull                    time.Duration
	haveRef                     bool

	sizes faceSizes // widths of sure detections by height in the frame
	stats FrameStats
}

// FrameStats describes the last Detect.
type FrameStats struct {
	Full      bool // the fine pass covered the whole frame
	FineArea  int  // pixels the fine pass scanned (overlaps counted)
	TotalArea int  // pixels of a full fine pass
	Passes    int  // network runs
}

// geometry lays out one frame size's passes.
type geometry struct {
	frame         image.Point // input frame size
	scale         float64     // fine pass scale
	scaled        image.Point // frame size at that scale
	canvas        image.Point // fine pass input, multiples of 32
	left, top     int         // the scaled frame's offset in the canvas
	right, bottom int
	coarse        []image.Point // each coarse input's size (multiples of 32)
	coarseImg     []image.Point // the canvas shrunk, top-left in each input
	low           image.Point   // canvas at Gate.Scale
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
	if o.ModelMinFace <= 0 {
		o.ModelMinFace = DefaultFrameOptions.ModelMinFace
	}
	svc.acquire()
	return &Frame{
		svc: svc, o: o,
		small: gocv.NewMat(), canvas: gocv.NewMat(),
		gray: gocv.NewMat(), low: gocv.NewMat(), diff: gocv.NewMat(), bin: gocv.NewMat(), cells: gocv.NewMat(),
		ref: gocv.NewMat(),
	}, nil
}

// Close releases the scratch memory and the detector's hold on the service.
func (f *Frame) Close() error {
	for _, m := range []*gocv.Mat{&f.small, &f.canvas, &f.gray, &f.low, &f.diff, &f.bin, &f.cells, &f.ref} {
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

// cut reports whether a box reaches an edge of the scan that is not an
// edge of the canvas: the face may go on beyond it, and a box of part of a
// face must not be blended into the box of the whole one.
func (f *Frame) cut(b Rect, scan image.Rectangle) bool {
	c := f.geo.canvas
	return (scan.Min.X > 0 && b.X0 <= float32(scan.Min.X)) || (scan.Min.Y > 0 && b.Y0 <= float32(scan.Min.Y)) ||
		(scan.Max.X < c.X && b.X1 >= float32(scan.Max.X)) || (scan.Max.Y < c.Y && b.Y1 >= float32(scan.Max.Y))
}

// Layout gives, for a frame size, the input sizes of the fine pass (the
// frame scaled and its mirrored margin, rounded up to multiples of 32) and
// of the coarse passes.
func (o FrameOptions) Layout(frame image.Point) (fine image.Point, coarse []image.Point) {
	if o.ModelMinFace <= 0 {
		o.ModelMinFace = DefaultFrameOptions.ModelMinFace
	}
	g := (&Frame{o: o}).layout(frame)
	return g.canvas, g.coarse
}

func align32(n int) int { return (n + 31) / 32 * 32 }

// layout computes the passes' geometry for a frame size.
func (f *Frame) layout(size image.Point) geometry {
	g := geometry{frame: size, scale: float64(f.o.ModelMinFace) / float64(f.o.MinFace)}
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
	}
	return g
}

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
			// Black beyond the shrunken canvas, which fills its top left.
			f.coarse[i] = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), c.Y, c.X, gocv.MatTypeCV8UC3)
		}
	}
	g := f.geo
	src := frame
	if g.scale != 1 {
		interp := gocv.InterpolationArea
		if g.scale > 1 {
			interp = gocv.InterpolationLinear
		}
		gocv.Resize(frame, &f.small, g.scaled, 0, 0, interp)
		src = f.small
	}
	border := gocv.BorderReflect101
	if f.o.EdgePad == 0 {
		border = gocv.BorderConstant
	}
	gocv.CopyMakeBorder(src, &f.canvas, g.top, g.bottom, g.left, g.right, border, color.RGBA{})

	if f.o.Gate.Scale > 0 {
		gocv.CvtColor(f.canvas, &f.gray, gocv.ColorBGRToGray)
		gocv.Resize(f.gray, &f.low, g.low, 0, 0, gocv.InterpolationArea)
	}
	full := !f.haveRef || f.o.Gate.Scale <= 0 || at-f.lastFull >= f.o.FullEvery || at < f.lastFull
	var cores []image.Rectangle
	if full {
		cores = []image.Rectangle{{Max: g.canvas}}
	} else {
		cores = f.changed()
	}
	regions := f.plan(cores)
	runCoarse := full || len(regions) > 0

	// Inputs: one Region of the canvas per fine region, then the coarse copies.
	var imgs []gocv.Mat
	for _, r := range regions {
		imgs = append(imgs, f.canvas.Region(r.scan))
	}
	if runCoarse {
		for i := range f.coarse {
			// Shrunk straight into the input's top left: the Region is
			// already of the size asked, so OpenCV writes into it.
			dst := f.coarse[i].Region(image.Rectangle{Max: g.coarseImg[i]})
			gocv.Resize(f.canvas, &dst, g.coarseImg[i], 0, 0, gocv.InterpolationArea)
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
		for i := range regions {
			imgs[i].Close()
		}
		if err != nil {
			if !errors.Is(err, ErrLate) {
				// A failing network: nothing cached may outlive it.
				f.haveRef = false
				f.fine, f.coarseCands = nil, nil
			}
			// A late keyframe changed nothing: the reference and the
			// faces cached with it still belong together, so the next
			// keyframe rescans what changed since, not the whole frame
			// (which would make an overloaded box later still).
			return nil, err
		}
	}
	f.stats = FrameStats{Full: full, TotalArea: g.canvas.X * g.canvas.Y, Passes: len(imgs)}

	// Fine candidates: keep the cached ones clear of every rescanned core,
	// add the new ones touching their region's cores.
	var fine []Candidate
	for _, c := range f.fine {
		if !touchesAny(c.Box, regions) {
			fine = append(fine, c)
		}
	}
	for i, r := range regions {
		f.stats.FineArea += r.scan.Dx() * r.scan.Dy()
		for _, c := range results[i] {
			c.Box = Rect{c.Box.X0 + float32(r.scan.Min.X), c.Box.Y0 + float32(r.scan.Min.Y), c.Box.X1 + float32(r.scan.Min.X), c.Box.Y1 + float32(r.scan.Min.Y)}
			if r.touches(c.Box) && c.Box.W() <= passMaxFace && !f.cut(c.Box, r.scan) {
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
			last := i == len(f.coarse)-1
			for _, c := range results[len(regions)+i] {
				if !last && c.Box.W() > passMaxFace {
					continue // the next, coarser pass answers for it
				}
				c.Box = Rect{c.Box.X0 * sx, c.Box.Y0 * sy, c.Box.X1 * sx, c.Box.Y1 * sy}
				f.coarseCands = append(f.coarseCands, c)
			}
		}
	}
	if full {
		f.lastFull = at
	}
	f.commit(regions)
	all := make([]Candidate, 0, len(f.fine)+len(f.coarseCands))
	all = append(append(all, f.fine...), f.coarseCands...)
	return f.faces(all), nil
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
	out := make([]Face, 0, len(merged))
	for _, c := range merged {
		if f.o.MaxAspect > 0 {
			ar := c.Box.W() / c.Box.H()
			if ar > f.o.MaxAspect || ar < 1/f.o.MaxAspect {
				continue
			}
		}
		w := c.Box.W() * inv
		cy := ((c.Box.Y0+c.Box.Y1)/2 - float32(g.top)) * inv
		if w > f.maxFaceAt(cy) && c.Score < f.o.LargeScore {
			continue // larger than a face can be here, on weak evidence
		}
		r := rollExtent(c.Box, c.Roll)
		r = Rect{(r.X0 - float32(g.left)) * inv, (r.Y0 - float32(g.top)) * inv, (r.X1 - float32(g.left)) * inv, (r.Y1 - float32(g.top)) * inv}
		b := r.Int()
		in := b.Intersect(frame)
		if in.Empty() || in.Dx()*in.Dy()*4 < b.Dx()*b.Dy() {
			continue
		}
		if c.Score >= learnScore {
			f.sizes.add(cy/float32(g.frame.Y), w)
		}
		out = append(out, Face{Box: in, Score: c.Score, Roll: c.Roll})
	}
	return out
}

// maxFaceAt is the widest face expected with its centre at frame row y:
// MaxFace when set; else, once enough sure detections were seen near that
// height, learntMargin times the 90th percentile of their widths; else a
// third of the frame's shorter side.
func (f *Frame) maxFaceAt(y float32) float32 {
	if f.o.MaxFace > 0 {
		return float32(f.o.MaxFace)
	}
	if w, ok := f.sizes.p90(y / float32(f.geo.frame.Y)); ok {
		return max(w*learntMargin, float32(f.o.MinFace)*learntMargin)
	}
	return float32(min(f.geo.frame.X, f.geo.frame.Y)) / 3
}

// rollExtent widens a face box to the axis-aligned extent of the same box
// turned by roll radians about its centre. BlazeFace reports a turned face
// with roughly its upright size, so without this the corners of a face at
// 30-45 degrees stick out of the box.
func rollExtent(r Rect, roll float32) Rect {
	c, s := math.Abs(math.Cos(float64(roll))), math.Abs(math.Sin(float64(roll)))
	w, h := float64(r.W()), float64(r.H())
	nw, nh := float32(w*c+h*s), float32(w*s+h*c)
	cx, cy := (r.X0+r.X1)/2, (r.Y0+r.Y1)/2
	return Rect{cx - nw/2, cy - nh/2, cx + nw/2, cy + nh/2}
}
