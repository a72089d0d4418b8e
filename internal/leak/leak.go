// Package leak measures whether a redacted video still carries the faces of
// its input: for every labelled face box it correlates the fine detail
// (eyes, nose, mouth scale) of the input and output, and it measures how
// much of the picture away from faces the redactor changed.
package leak

import (
	"fmt"
	"image"
	"math"
	"strings"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/internal/synth"
)

// DefaultThreshold: a box leaks when its band-pass correlation (Correlate's
// corr) is above this.
//
// CALIBRATION, measured by TestCalibration (go test -v -run Calibration):
// 102 faces, 12..150 px wide, from all 10 labelled sources (62 photo, 40
// cartoon) pasted on a vtest.avi frame, compared in memory. corr, min..max
// (mean):
//
//	untouched                          1.000 (exactly)
//	untouched, JPEG q95 / q75          0.986..1 (0.998) / 0.920..1 (0.989)
//	blur sigma w/6, box padded 20 %    0.044..0.149 (0.086), same after JPEG q95
//	  same, box not padded             0.066..0.236 (0.139)
//	  same, padded box shifted by w/4  0.030..0.293 (0.149)
//	pixelated, 4 blocks per face width 0.062..0.378 (0.226)
//	blur sigma w/12 (too weak)         0.308..0.461 (0.377)
//	half of the padded box blurred     photo 0.362..0.739, cartoon 0.322..0.807
//	  (left, right, top or bottom)     (means 0.45..0.64 per side and kind)
//
// The plain normalised cross-correlation (BoxResult.NCC) of the same
// band-pass images is 0.45 on average for the w/6 blur, 0.61 unpadded,
// which is why it does not decide.
//
// 0.30 puts every half-covered face (min 0.322) and every too-weak blur
// (min 0.308) above the line and every properly blurred face, padded or not
// (max 0.236; 0.293 with the box a quarter width off), below it. 0.35
// would pass 34 of the 160 half-covered cartoon cases (0.322..0.349) and
// leave photo faces only 0.012 of margin (min 0.362).
const DefaultThreshold = 0.30

// DefaultChangeLevel: a pixel counts as changed when some channel differs
// by more than this many grey levels.
const DefaultChangeLevel = 12

// MinBoxSide: boxes (after clipping to the frame) narrower or shorter than
// this are not scored; they are counted as skipped.
const MinBoxSide = 4

// Bins are the face width bins of the report: [12,24), [24,48), [48,96),
// [96,inf). Faces under 12 px count in the first bin.
var Bins = []struct {
	Name     string
	Min, Max float64
}{{"12-24", 12, 24}, {"24-48", 24, 48}, {"48-96", 48, 96}, {"96+", 96, math.Inf(1)}}

// Bin returns the index in Bins of a face width.
func Bin(width float64) int {
	for i := len(Bins) - 1; i > 0; i-- {
		if width >= Bins[i].Min {
			return i
		}
	}
	return 0
}

// BoxResult is one face box of one frame.
type BoxResult struct {
	ID    int             `json:"id"`
	Box   image.Rectangle `json:"box"`
	Width float64         `json:"width"`
	Bin   int             `json:"bin"`
	// Corr is the band-pass correlation that decides Leak (see Correlate).
	Corr float64 `json:"corr"`
	// NCC is the plain zero-mean normalised cross-correlation of the same
	// band-pass images, for reference: it ignores how much detail is left.
	NCC     float64 `json:"ncc"`
	Leak    bool    `json:"leak"`
	Skipped bool    `json:"skipped,omitempty"` // box too small to score
}

// FrameResult is Compare's verdict on one frame.
type FrameResult struct {
	Boxes          []BoxResult `json:"boxes"`
	NonFacePixels  int         `json:"non_face_pixels"`
	NonFaceChanged int         `json:"non_face_changed"`
}

// Options tune Compare; zero values take the defaults.
type Options struct {
	Threshold   float64 // DefaultThreshold
	ChangeLevel int     // DefaultChangeLevel
}

// Compare scores every face box of one frame with the default options.
// Only a face's ID, Box and Width are used (Width 0: the box's width).
// in and out are the input and redacted BGR frames (same size and type, or
// Compare panics); nonFacePad
// grows each face box by that fraction of its width/height on each side
// before counting the pixels outside all boxes as non-face.
func Compare(in, out gocv.Mat, faces []synth.Face, nonFacePad float64) FrameResult {
	return Options{}.Compare(in, out, faces, nonFacePad)
}

// Compare is the package Compare with these options.
func (o Options) Compare(in, out gocv.Mat, faces []synth.Face, nonFacePad float64) FrameResult {
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.ChangeLevel == 0 {
		o.ChangeLevel = DefaultChangeLevel
	}
	if in.Cols() != out.Cols() || in.Rows() != out.Rows() || in.Type() != out.Type() {
		panic(fmt.Sprintf("leak: input %dx%d type %v, output %dx%d type %v",
			in.Cols(), in.Rows(), in.Type(), out.Cols(), out.Rows(), out.Type()))
	}
	var res FrameResult
	frame := image.Rect(0, 0, in.Cols(), in.Rows())
	for _, f := range faces {
		width := f.Width
		if width <= 0 {
			width = float64(f.Box.Dx()) // plain boxes: the box's own width
		}
		b := BoxResult{ID: f.ID, Box: f.Box.Intersect(frame), Width: width, Bin: Bin(width)}
		if b.Box.Dx() < MinBoxSide || b.Box.Dy() < MinBoxSide {
			b.Skipped = true
		} else {
			b.Corr, b.NCC = Correlate(in, out, b.Box, width)
			b.Leak = b.Corr > o.Threshold
		}
		res.Boxes = append(res.Boxes, b)
	}
	res.NonFacePixels, res.NonFaceChanged = nonFaceChange(in, out, faces, nonFacePad, o.ChangeLevel)
	return res
}

// BandSigmas returns the two Gaussian sigmas of the difference of
// Gaussians used for a face of the given width: detail between about
// width/32 and width/8, i.e. eyelids, pupils, nostrils, lips (an eye is
// about width/5 wide). The finer sigma is at least 0.5 px.
func BandSigmas(width float64) (fine, coarse float64) {
	fine = math.Max(0.5, width/32)
	coarse = math.Max(2*fine, width/8)
	return fine, coarse
}

// Correlate compares the fine detail of box in the two frames. Both
// crops are made grey and band-passed with a difference of Gaussians
// (BandSigmas of width, filtered with context around the box so the box
// edge is not an artefact), and their means removed, giving a (input) and b
// (output). It returns
//
//	corr = sum(a*b) / max(sum(a*a), sum(b*b))
//	ncc  = sum(a*b) / sqrt(sum(a*a) * sum(b*b))
//
// ncc is the zero-mean normalised cross-correlation. It is blind to how
// much detail is left: a Gaussian blur keeps the coarsest part of the band,
// which still correlates with the input (ncc ~0.45 on faces blurred with
// sigma width/6, see DefaultThreshold). corr is the same correlation normalised by the larger of
// the two energies, i.e. ncc times the ratio of the smaller to the larger
// band-pass standard deviation: 1 for an untouched face, the share of
// detail energy that survived for a face partly covered or blurred, ~0 when
// the detail is gone or replaced by something unrelated. Boxes with no
// detail in either frame score 0.
func Correlate(in, out gocv.Mat, box image.Rectangle, width float64) (corr, ncc float64) {
	a := bandPass(in, box, width)
	b := bandPass(out, box, width)
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	n := float64(len(a))
	ma /= n
	mb /= n
	var sab, saa, sbb float64
	for i := range a {
		x, y := a[i]-ma, b[i]-mb
		sab += x * y
		saa += x * x
		sbb += y * y
	}
	const eps = 1e-6
	if saa < eps*n && sbb < eps*n {
		return 0, 0
	}
	corr = sab / math.Max(saa, sbb)
	if saa > 0 && sbb > 0 {
		ncc = sab / math.Sqrt(saa*sbb)
	}
	return corr, ncc
}

// bandPass returns the DoG-filtered grey values of box, row by row.
func bandPass(frame gocv.Mat, box image.Rectangle, width float64) []float64 {
	s1, s2 := BandSigmas(width)
	pad := int(math.Ceil(3 * s2))
	ctx := box.Inset(-pad).Intersect(image.Rect(0, 0, frame.Cols(), frame.Rows()))
	roi := frame.Region(ctx)
	defer roi.Close()
	gray := gocv.NewMat()
	defer gray.Close()
	if roi.Channels() == 3 {
		gocv.CvtColor(roi, &gray, gocv.ColorBGRToGray)
	} else {
		roi.CopyTo(&gray)
	}
	g := gocv.NewMat()
	defer g.Close()
	gray.ConvertTo(&g, gocv.MatTypeCV32F)
	fine, coarse := gocv.NewMat(), gocv.NewMat()
	defer fine.Close()
	defer coarse.Close()
	gocv.GaussianBlur(g, &fine, image.Point{}, s1, s1, gocv.BorderReflect101)
	gocv.GaussianBlur(g, &coarse, image.Point{}, s2, s2, gocv.BorderReflect101)
	gocv.Subtract(fine, coarse, &fine)
	inner := fine.Region(box.Sub(ctx.Min))
	defer inner.Close()
	dense := inner.Clone()
	defer dense.Close()
	px, _ := dense.DataPtrFloat32()
	v := make([]float64, len(px))
	for i, p := range px {
		v[i] = float64(p)
	}
	return v
}

// nonFaceChange counts pixels outside every face box grown by pad (a
// fraction of the box's width and height on each side), and how many of
// them have some channel differing by more than level.
func nonFaceChange(in, out gocv.Mat, faces []synth.Face, pad float64, level int) (total, changed int) {
	w, h := in.Cols(), in.Rows()
	mask := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(255, 0, 0, 0), h, w, gocv.MatTypeCV8U)
	defer mask.Close()
	frame := image.Rect(0, 0, w, h)
	for _, f := range faces {
		dx := int(math.Round(pad * float64(f.Box.Dx())))
		dy := int(math.Round(pad * float64(f.Box.Dy())))
		r := image.Rect(f.Box.Min.X-dx, f.Box.Min.Y-dy, f.Box.Max.X+dx, f.Box.Max.Y+dy).Intersect(frame)
		if r.Empty() {
			continue
		}
		reg := mask.Region(r)
		reg.SetTo(gocv.NewScalar(0, 0, 0, 0))
		reg.Close()
	}
	total = gocv.CountNonZero(mask)

	diff := gocv.NewMat()
	defer diff.Close()
	gocv.AbsDiff(in, out, &diff)
	maxc := gocv.NewMat()
	defer maxc.Close()
	if diff.Channels() > 1 {
		ch := gocv.Split(diff)
		ch[0].CopyTo(&maxc)
		for _, c := range ch[1:] {
			gocv.Max(maxc, c, &maxc)
		}
		for _, c := range ch {
			c.Close()
		}
	} else {
		diff.CopyTo(&maxc)
	}
	over := gocv.NewMat()
	defer over.Close()
	gocv.Threshold(maxc, &over, float32(level), 255, gocv.ThresholdBinary) // > level
	gocv.BitwiseAnd(over, mask, &over)
	return total, gocv.CountNonZero(over)
}

// Accumulator sums FrameResults over a video.
type Accumulator struct {
	Threshold float64 // reported only; Compare decides
	frames    int
	bins      []binSum
	skipped   int
	nonFace   int64
	changed   int64
}

type binSum struct {
	boxes, leaks int
	corr         float64
}

// Add adds one frame's result.
func (a *Accumulator) Add(r FrameResult) {
	if a.bins == nil {
		a.bins = make([]binSum, len(Bins))
	}
	a.frames++
	for _, b := range r.Boxes {
		if b.Skipped {
			a.skipped++
			continue
		}
		s := &a.bins[b.Bin]
		s.boxes++
		s.corr += b.Corr
		if b.Leak {
			s.leaks++
		}
	}
	a.nonFace += int64(r.NonFacePixels)
	a.changed += int64(r.NonFaceChanged)
}

// BinReport is the leak count of one face width bin.
type BinReport struct {
	Bin      string  `json:"bin"`
	MinWidth float64 `json:"min_width"`
	MaxWidth float64 `json:"max_width"` // 0: no upper bound
	Boxes    int     `json:"boxes"`
	Leaks    int     `json:"leaks"`
	Rate     float64 `json:"leak_rate"`
	MeanCorr float64 `json:"mean_corr"`
}

// Report is the summary over all frames added.
type Report struct {
	Frames              int         `json:"frames"`
	Boxes               int         `json:"boxes"`
	Leaks               int         `json:"leaks"`
	LeakRate            float64     `json:"leak_rate"`
	Skipped             int         `json:"skipped"`
	Threshold           float64     `json:"threshold"`
	Bins                []BinReport `json:"bins"`
	NonFacePixels       int64       `json:"non_face_pixels"`
	NonFaceChanged      int64       `json:"non_face_changed"`
	NonFaceChangedShare float64     `json:"non_face_changed_share"`
}

// Report summarises what was added. Rates of empty bins are 0.
func (a *Accumulator) Report() Report {
	r := Report{Frames: a.frames, Skipped: a.skipped, Threshold: a.Threshold,
		NonFacePixels: a.nonFace, NonFaceChanged: a.changed}
	if r.Threshold == 0 {
		r.Threshold = DefaultThreshold
	}
	for i, bd := range Bins {
		var s binSum
		if a.bins != nil {
			s = a.bins[i]
		}
		br := BinReport{Bin: bd.Name, MinWidth: bd.Min, Boxes: s.boxes, Leaks: s.leaks}
		if !math.IsInf(bd.Max, 1) {
			br.MaxWidth = bd.Max
		}
		if s.boxes > 0 {
			br.Rate = float64(s.leaks) / float64(s.boxes)
			br.MeanCorr = s.corr / float64(s.boxes)
		}
		r.Bins = append(r.Bins, br)
		r.Boxes += s.boxes
		r.Leaks += s.leaks
	}
	if r.Boxes > 0 {
		r.LeakRate = float64(r.Leaks) / float64(r.Boxes)
	}
	if r.NonFacePixels > 0 {
		r.NonFaceChangedShare = float64(r.NonFaceChanged) / float64(r.NonFacePixels)
	}
	return r
}

// String renders the report as a table.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "face leaks over %d frames (leak: band-pass corr > %.2f)\n", r.Frames, r.Threshold)
	fmt.Fprintf(&b, "%-8s %8s %8s %9s %9s\n", "width", "boxes", "leaks", "rate", "corr")
	for _, bin := range r.Bins {
		fmt.Fprintf(&b, "%-8s %8d %8d %8.1f%% %9.3f\n", bin.Bin, bin.Boxes, bin.Leaks, 100*bin.Rate, bin.MeanCorr)
	}
	fmt.Fprintf(&b, "%-8s %8d %8d %8.1f%%\n", "all", r.Boxes, r.Leaks, 100*r.LeakRate)
	if r.Skipped > 0 {
		fmt.Fprintf(&b, "skipped %d boxes under %d px\n", r.Skipped, MinBoxSide)
	}
	fmt.Fprintf(&b, "non-face pixels changed: %d of %d (%.3f%%)\n", r.NonFaceChanged, r.NonFacePixels, 100*r.NonFaceChangedShare)
	return b.String()
}
