package synth

import (
	"encoding/binary"
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"gocv.io/x/gocv"
)

// prepared is a track's face image: the source face with its context,
// colour-adjusted and flipped once, plus its feathered alpha.
type prepared struct {
	patch    gocv.Mat // BGR 8-bit
	alpha    gocv.Mat // float32, 0..1
	faceW    float64  // face box width in patch pixels
	fcx, fcy float64  // face box centre in patch (continuous coordinates)
}

// renderer pastes prepared faces into frames. It owns every Mat it holds.
type renderer struct {
	lib    *Library
	fw, fh int
	rng    *rand.Rand
	prep   map[int]*prepared
	noise  gocv.Mat // unit Gaussian noise, float32 x3, frame-sized
	m      gocv.Mat // 2x3 affine
	pS, aS gocv.Mat // scaled patch and alpha
	fg, al gocv.Mat
	fgF    gocv.Mat
	bgF    gocv.Mat
	diff   gocv.Mat
	al3    gocv.Mat
	out8   gocv.Mat
	kern   gocv.Mat
}

func newRenderer(lib *Library, fw, fh int, rng *rand.Rand) *renderer {
	r := &renderer{lib: lib, fw: fw, fh: fh, rng: rng, prep: map[int]*prepared{},
		m: gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F), pS: gocv.NewMat(), aS: gocv.NewMat(),
		fg: gocv.NewMat(), al: gocv.NewMat(), fgF: gocv.NewMat(), bgF: gocv.NewMat(), diff: gocv.NewMat(),
		al3: gocv.NewMat(), out8: gocv.NewMat(), kern: gocv.NewMat()}
	// Noise drawn from the seeded generator (OpenCV's RNG is per thread).
	buf := make([]byte, fw*fh*3*4)
	for i := 0; i < fw*fh*3; i++ {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(rng.NormFloat64())))
	}
	r.noise, _ = gocv.NewMatFromBytes(fh, fw, gocv.MatTypeCV32FC3, buf)
	return r
}

func (r *renderer) close() {
	for _, p := range r.prep {
		p.patch.Close()
		p.alpha.Close()
	}
	r.prep = nil
	for _, m := range []*gocv.Mat{&r.noise, &r.m, &r.pS, &r.aS, &r.fg, &r.al, &r.fgF, &r.bgF, &r.diff, &r.al3, &r.out8, &r.kern} {
		m.Close()
	}
}

// prepare cuts track k's source face with its context ellipse, fills what
// lies outside the source (or its allowed context) with a blurred
// reflection, scales it down to what the track needs, applies the track's
// colour changes and flip, and builds the feathered alpha.
func (r *renderer) prepare(k *track) {
	src := &r.lib.Sources[k.src]
	W, H := float64(src.Box.Dx()), float64(src.Box.Dy())
	bcx := float64(src.Box.Min.X+src.Box.Max.X) / 2
	bcy := float64(src.Box.Min.Y+src.Box.Max.Y) / 2
	ex, ey := ellipseAxes(W, H, k.margin)
	need := image.Rect(int(math.Floor(bcx-ex))-1, int(math.Floor(bcy-ey))-1,
		int(math.Ceil(bcx+ex))+1, int(math.Ceil(bcy+ey))+1)
	have := need.Intersect(src.Ctx)
	crop := src.Image.Region(have)
	padded := gocv.NewMat()
	gocv.CopyMakeBorder(crop, &padded, have.Min.Y-need.Min.Y, need.Max.Y-have.Max.Y,
		have.Min.X-need.Min.X, need.Max.X-have.Max.X, gocv.BorderReflect101, color.RGBA{})
	if have != need {
		// Blur the reflected border so no mirrored features show, then
		// put the real pixels back.
		blurred := gocv.NewMat()
		gocv.GaussianBlur(padded, &blurred, image.Point{}, 0.06*W+1, 0.06*W+1, gocv.BorderReflect101)
		inner := blurred.Region(have.Sub(need.Min))
		crop.CopyTo(&inner)
		inner.Close()
		padded.Close()
		padded = blurred
	}
	crop.Close()

	// Scale down once to 1.3x the largest size the track shows.
	wmax := 0.0
	for _, g := range k.g {
		wmax = math.Max(wmax, g.w)
	}
	sx, sy := 1.0, 1.0
	if s0 := wmax * 1.3 / W; s0 < 1 {
		small := gocv.NewMat()
		sz := image.Pt(max(2, int(math.Round(float64(padded.Cols())*s0))), max(2, int(math.Round(float64(padded.Rows())*s0))))
		sx, sy = float64(sz.X)/float64(padded.Cols()), float64(sz.Y)/float64(padded.Rows())
		gocv.Resize(padded, &small, sz, 0, 0, gocv.InterpolationArea)
		padded.Close()
		padded = small
	}
	p := &prepared{faceW: W * sx, fcx: (bcx - float64(need.Min.X)) * sx, fcy: (bcy - float64(need.Min.Y)) * sy}

	// Colour: saturation, contrast about the mean grey, brightness, gains.
	mean := padded.Mean()
	mu := 0.114*mean.Val1 + 0.587*mean.Val2 + 0.299*mean.Val3
	lum := [3]float64{0.114, 0.587, 0.299} // BGR
	cm := gocv.NewMatWithSize(3, 4, gocv.MatTypeCV32F)
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			v := (1 - k.sat) * lum[j]
			if i == j {
				v += k.sat
			}
			cm.SetFloatAt(i, j, float32(k.gains[i]*k.contrast*v))
		}
		cm.SetFloatAt(i, 3, float32(k.gains[i]*((1-k.contrast)*mu+k.bright)))
	}
	p.patch = gocv.NewMat()
	gocv.Transform(padded, &p.patch, cm)
	cm.Close()
	padded.Close()
	if k.flip {
		gocv.Flip(p.patch, &p.patch, 1)
		p.fcx = float64(p.patch.Cols()) - p.fcx
	}

	// Alpha: 1 inside the ellipse, smooth fall to 0 over its outer quarter.
	pw, ph := p.patch.Cols(), p.patch.Rows()
	ax, ay := ex*sx, ey*sy
	const feather = 0.25
	buf := make([]byte, pw*ph*4)
	for y := 0; y < ph; y++ {
		dy := (float64(y) + 0.5 - p.fcy) / ay
		for x := 0; x < pw; x++ {
			dx := (float64(x) + 0.5 - p.fcx) / ax
			a := smoothstep((1 - math.Sqrt(dx*dx+dy*dy)) / feather)
			binary.LittleEndian.PutUint32(buf[4*(y*pw+x):], math.Float32bits(float32(a)))
		}
	}
	p.alpha, _ = gocv.NewMatFromBytes(ph, pw, gocv.MatTypeCV32F, buf)
	r.prep[k.id] = p
}

// draw pastes track k's face into frame at its frame-t geometry and returns
// the Gaussian sigma and motion-blur length it used.
func (r *renderer) draw(frame *gocv.Mat, k *track, t int) (sigma, mlen float64) {
	g := k.g[t-k.start]
	p := r.prep[k.id]
	patch, alpha := p.patch, p.alpha
	s := g.w / p.faceW // destination px per patch px
	rx, ry := s, s
	fcx, fcy := p.fcx, p.fcy
	if s < 0.8 {
		// Shrink with area averaging first; the warp then only rotates.
		sz := image.Pt(max(2, int(math.Round(float64(patch.Cols())*s))), max(2, int(math.Round(float64(patch.Rows())*s))))
		qx, qy := float64(sz.X)/float64(patch.Cols()), float64(sz.Y)/float64(patch.Rows())
		gocv.Resize(patch, &r.pS, sz, 0, 0, gocv.InterpolationArea)
		gocv.Resize(alpha, &r.aS, sz, 0, 0, gocv.InterpolationArea)
		patch, alpha = r.pS, r.aS
		fcx, fcy = fcx*qx, fcy*qy
		rx, ry = s/qx, s/qy
	}
	th := g.angle * math.Pi / 180
	c, sn := math.Cos(th), math.Sin(th)
	// dest = centre + R(angle) * diag(rx, ry) * (p - fc), continuous coords.
	a00, a01, a10, a11 := c*rx, sn*ry, -sn*rx, c*ry
	b0 := g.cx - (a00*fcx + a01*fcy)
	b1 := g.cy - (a10*fcx + a11*fcy)
	pw, ph := float64(patch.Cols()), float64(patch.Rows())
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, q := range [4][2]float64{{0, 0}, {pw, 0}, {pw, ph}, {0, ph}} {
		x, y := a00*q[0]+a01*q[1]+b0, a10*q[0]+a11*q[1]+b1
		minX, maxX = math.Min(minX, x), math.Max(maxX, x)
		minY, maxY = math.Min(minY, y), math.Max(maxY, y)
	}
	roi := image.Rect(int(math.Floor(minX)), int(math.Floor(minY)), int(math.Ceil(maxX)), int(math.Ceil(maxY))).
		Intersect(image.Rect(0, 0, r.fw, r.fh))
	if roi.Dx() < 1 || roi.Dy() < 1 {
		return 0, 0
	}
	// OpenCV maps pixel centres: shift by half a pixel each side, and by the ROI.
	r.m.SetDoubleAt(0, 0, a00)
	r.m.SetDoubleAt(0, 1, a01)
	r.m.SetDoubleAt(0, 2, b0+0.5*(a00+a01)-0.5-float64(roi.Min.X))
	r.m.SetDoubleAt(1, 0, a10)
	r.m.SetDoubleAt(1, 1, a11)
	r.m.SetDoubleAt(1, 2, b1+0.5*(a10+a11)-0.5-float64(roi.Min.Y))
	size := image.Pt(roi.Dx(), roi.Dy())
	gocv.WarpAffineWithParams(patch, &r.fg, r.m, size, gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
	gocv.WarpAffineWithParams(alpha, &r.al, r.m, size, gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})

	sigma = k.blurAbs + k.blurRel*g.w
	if sigma >= 0.3 {
		gocv.GaussianBlur(r.fg, &r.fg, image.Point{}, sigma, sigma, gocv.BorderReplicate)
	} else {
		sigma = 0
	}
	if k.motion > 0 {
		mlen = k.motion * math.Hypot(k.vx, k.vy)
		if mlen >= 1.5 {
			r.motionKernel(mlen, math.Atan2(k.vy, k.vx))
			gocv.Filter2D(r.fg, &r.fg, -1, r.kern, image.Pt(-1, -1), 0, gocv.BorderReplicate)
		} else {
			mlen = 0
		}
	}

	r.fg.ConvertTo(&r.fgF, gocv.MatTypeCV32FC3)
	if k.noise > 0.2 {
		ox, oy := r.rng.IntN(r.fw-size.X+1), r.rng.IntN(r.fh-size.Y+1)
		nr := r.noise.Region(image.Rect(ox, oy, ox+size.X, oy+size.Y))
		gocv.AddWeighted(r.fgF, 1, nr, k.noise, 0, &r.fgF)
		nr.Close()
	}
	dst := frame.Region(roi)
	dst.ConvertTo(&r.bgF, gocv.MatTypeCV32FC3)
	gocv.Subtract(r.fgF, r.bgF, &r.diff)
	gocv.Merge([]gocv.Mat{r.al, r.al, r.al}, &r.al3)
	gocv.Multiply(r.diff, r.al3, &r.diff)
	gocv.Add(r.bgF, r.diff, &r.bgF)
	r.bgF.ConvertTo(&r.out8, gocv.MatTypeCV8UC3)
	r.out8.CopyTo(&dst)
	dst.Close()
	return sigma, mlen
}

// motionKernel sets r.kern to a normalised line of length n px at angle th.
func (r *renderer) motionKernel(n, th float64) {
	size := int(math.Ceil(n))
	if size%2 == 0 {
		size++
	}
	c := float64(size-1) / 2
	w := make([]float32, size*size)
	steps := 4 * size
	for i := 0; i <= steps; i++ {
		u := (float64(i)/float64(steps) - 0.5) * (n - 1)
		x := int(math.Round(c + u*math.Cos(th)))
		y := int(math.Round(c + u*math.Sin(th)))
		w[y*size+x]++
	}
	sum := float32(0)
	for _, v := range w {
		sum += v
	}
	buf := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v/sum))
	}
	r.kern.Close()
	r.kern, _ = gocv.NewMatFromBytes(size, size, gocv.MatTypeCV32F, buf)
}
