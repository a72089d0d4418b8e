package synth

import (
	"image"
	"math"
	"math/rand/v2"
)

// Size bins the generator balances, in face width pixels: [12,24), [24,48),
// [48,96), [96,160]. They match the bins the leak report uses.
var SizeBins = [...]float64{12, 24, 48, 96, 160}

// SizeBin returns the bin index (0..3) of a face width, clamping outside
// widths into the first or last bin.
func SizeBin(width float64) int {
	for b := len(SizeBins) - 2; b > 0; b-- {
		if width >= SizeBins[b] {
			return b
		}
	}
	return 0
}

type rectF struct{ x0, y0, x1, y1 float64 }

func (r rectF) area() float64 { return math.Max(0, r.x1-r.x0) * math.Max(0, r.y1-r.y0) }
func (r rectF) inter(o rectF) rectF {
	return rectF{math.Max(r.x0, o.x0), math.Max(r.y0, o.y0), math.Min(r.x1, o.x1), math.Min(r.y1, o.y1)}
}
func (r rectF) rect() image.Rectangle {
	return image.Rect(int(math.Round(r.x0)), int(math.Round(r.y0)), int(math.Round(r.x1)), int(math.Round(r.y1)))
}

func iou(a, b rectF) float64 {
	i := a.inter(b).area()
	if i == 0 {
		return 0
	}
	return i / (a.area() + b.area() - i)
}

// geom is a track's geometry in one frame, in continuous pixel coordinates
// (pixel i covers [i, i+1)).
type geom struct {
	cx, cy, w, h, angle float64 // face box centre and size, angle in degrees (ccw)
	quad                [4][2]float64
	face                rectF // bounding box of quad (unclipped)
	patch               rectF // bounding box of the context ellipse (unclipped)
	visible             float64
}

// track is one face's whole appearance, planned before rendering.
type track struct {
	id         int
	src        int // index in Library.Sources
	start, end int // frames [start, end)
	aspect     float64

	w0, w1, wa, wp, wph float64 // width: log-lerp w0->w1, times 1+wa*sin
	x0, y0, vx, vy      float64 // centre path: linear ...
	pa, pp, pph         float64 // ... plus a sideways sinusoid
	a0, aa, ap, aph     float64 // angle: a0 + aa*sin
	maxAngle            float64

	margin   float64 // context margin, fraction of face width
	flip     bool
	blurAbs  float64 // Gaussian sigma px = blurAbs + blurRel*width
	blurRel  float64
	motion   float64 // motion blur length = motion * speed (px/frame); 0 none
	contrast float64
	bright   float64
	gains    [3]float64
	sat      float64 // saturation factor
	noise    float64 // sensor noise sigma, grey levels

	g []geom // per frame, g[t-start]
}

func smoothstep(x float64) float64 {
	x = math.Max(0, math.Min(1, x))
	return x * x * (3 - 2*x)
}

// ellipseAxes returns the context ellipse's semi-axes for a face box of
// w x h and margin m (fraction of w). The ellipse passes margin*w outside the
// box's corners, so the whole face box is inside it.
func ellipseAxes(w, h, m float64) (float64, float64) {
	return w/2*math.Sqrt2 + m*w, h/2*math.Sqrt2 + m*w
}

// at computes the geometry at frame t (start <= t < end).
func (k *track) at(t int, fw, fh float64) geom {
	life := float64(k.end - k.start - 1)
	u := 0.0
	if life > 0 {
		u = float64(t-k.start) / life
	}
	tt := float64(t - k.start)
	w := math.Exp(math.Log(k.w0) + (math.Log(k.w1)-math.Log(k.w0))*smoothstep(u))
	w *= 1 + k.wa*math.Sin(2*math.Pi*tt/k.wp+k.wph)
	h := w * k.aspect
	sp := math.Hypot(k.vx, k.vy)
	side := k.pa * w * math.Sin(2*math.Pi*tt/k.pp+k.pph)
	cx, cy := k.x0+k.vx*tt, k.y0+k.vy*tt
	if sp > 0 {
		cx += -k.vy / sp * side
		cy += k.vx / sp * side
	}
	ang := k.a0 + k.aa*math.Sin(2*math.Pi*tt/k.ap+k.aph)
	ang = math.Max(-k.maxAngle, math.Min(k.maxAngle, ang))
	return makeGeom(cx, cy, w, h, ang, k.margin, fw, fh)
}

// makeGeom is the geometry of a face box of w x h centred at (cx, cy),
// turned by ang degrees, with context margin m, in a frame of fw x fh.
func makeGeom(cx, cy, w, h, ang, m, fw, fh float64) geom {
	g := geom{cx: cx, cy: cy, w: w, h: h, angle: ang}
	th := ang * math.Pi / 180
	c, s := math.Cos(th), math.Sin(th)
	corners := [4][2]float64{{-w / 2, -h / 2}, {w / 2, -h / 2}, {w / 2, h / 2}, {-w / 2, h / 2}}
	g.face = rectF{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for i, p := range corners {
		x := cx + p[0]*c + p[1]*s
		y := cy - p[0]*s + p[1]*c
		g.quad[i] = [2]float64{x, y}
		g.face.x0, g.face.x1 = math.Min(g.face.x0, x), math.Max(g.face.x1, x)
		g.face.y0, g.face.y1 = math.Min(g.face.y0, y), math.Max(g.face.y1, y)
	}
	ex, ey := ellipseAxes(w, h, m)
	// Bounding box of a rotated ellipse.
	hx := math.Sqrt(ex*ex*c*c + ey*ey*s*s)
	hy := math.Sqrt(ex*ex*s*s + ey*ey*c*c)
	g.patch = rectF{cx - hx, cy - hy, cx + hx, cy + hy}
	g.visible = g.face.inter(rectF{0, 0, fw, fh}).area() / g.face.area()
	return g
}

func (k *track) active(t int) bool { return t >= k.start && t < k.end }

// coverage returns the share of face box a covered by patch box p.
func coverage(a, p rectF) float64 { return a.inter(p).area() / a.area() }

// planner lays out the face tracks of a video.
type planner struct {
	p      Params
	lib    *Library
	rng    *rand.Rand
	fw, fh float64
	fps    float64
	tracks []*track
	bins   [4]float64 // box-frames per size bin so far
}

func (pl *planner) uniform(a, b float64) float64 { return a + (b-a)*pl.rng.Float64() }
func (pl *planner) logUniform(a, b float64) float64 {
	return math.Exp(pl.uniform(math.Log(a), math.Log(b)))
}

// plan creates tracks so that about p.Faces faces are on screen at once.
func (pl *planner) plan() {
	n := pl.p.Frames
	for t := 0; t < n; t++ {
		active := 0
		for _, k := range pl.tracks {
			if k.active(t) {
				active++
			}
		}
		for tries := 0; active < pl.p.Faces && tries < 25; tries++ {
			if t > 0 && pl.rng.Float64() > 0.35 {
				break // stagger arrivals
			}
			if k := pl.candidate(t); k != nil && pl.fits(k) {
				pl.accept(k)
				active++
			}
		}
	}
}

func (pl *planner) pickBin() int {
	var w [4]float64
	sum := 0.0
	for b := range w {
		if SizeBins[b] >= pl.p.MaxWidth || SizeBins[b+1] <= pl.p.MinWidth {
			continue
		}
		w[b] = 1 / math.Pow(pl.bins[b]+30, 3)
		sum += w[b]
	}
	x := pl.rng.Float64() * sum
	for b := range w {
		if x < w[b] {
			return b
		}
		x -= w[b]
	}
	return 0
}

func (pl *planner) candidate(t int) *track {
	p := pl.p
	k := &track{id: len(pl.tracks), start: t, maxAngle: p.MaxAngle}
	minW, maxW := p.MinWidth, p.MaxWidth
	b := pl.pickBin()
	lo, hi := math.Max(minW, SizeBins[b]), math.Min(maxW, SizeBins[b+1])
	k.w0 = pl.logUniform(lo, hi)
	switch r := pl.rng.Float64(); {
	case r < 0.6: // about the same distance all along
		k.w1 = k.w0 * math.Exp(pl.uniform(-0.25, 0.25))
	case r < 0.8: // walking towards the camera
		k.w1 = k.w0 * pl.uniform(1.8, 3.5)
	default: // walking away
		k.w1 = k.w0 / pl.uniform(1.8, 3.5)
	}
	k.wa = pl.uniform(0, 0.06)
	k.wp = pl.uniform(3, 12) * pl.fps
	k.wph = pl.uniform(0, 2*math.Pi)
	// Keep the whole trajectory inside [minW, maxW].
	peak := 1 + k.wa
	k.w0 = math.Max(minW*peak, math.Min(maxW/peak, k.w0))
	k.w1 = math.Max(minW*peak, math.Min(maxW/peak, k.w1))
	wmax := math.Max(k.w0, k.w1) * peak

	// Source: any whose face is large enough, fewer repeats of one on screen.
	var ws []float64
	total := 0.0
	for _, s := range pl.lib.Sources {
		x := 0.0
		if float64(s.Box.Dx())*p.MaxUpscale >= wmax {
			same := 0
			for _, o := range pl.tracks {
				if o.end > t && pl.lib.Sources[o.src].Group == s.Group {
					same++
				}
			}
			x = s.Weight / float64(1+3*same)
		}
		ws = append(ws, x)
		total += x
	}
	if total == 0 {
		return nil
	}
	x := pl.rng.Float64() * total
	for i, v := range ws {
		if x < v {
			k.src = i
			break
		}
		x -= v
	}
	sb := pl.lib.Sources[k.src].Box
	k.aspect = float64(sb.Dy()) / float64(sb.Dx())

	// Lifetime and motion.
	life := int(pl.uniform(2, 12) * pl.fps)
	k.end = min(p.Frames, t+max(life, 8))
	speed := k.w0 * pl.uniform(0.05, 1.0) / pl.fps // px per frame
	if pl.rng.Float64() < 0.15 {
		speed *= 0.1 // standing still
	}
	k.pa = pl.uniform(0, 0.4)
	k.pp = pl.uniform(4, 15) * pl.fps
	k.pph = pl.uniform(0, 2*math.Pi)
	w0, h0 := k.w0, k.w0*k.aspect
	if t > 0 && pl.rng.Float64() < 0.5 {
		// Enter through an edge, partly visible at first.
		in := pl.uniform(0.1, 0.45)
		dir := pl.uniform(-math.Pi/4, math.Pi/4)
		switch e := pl.rng.Float64(); {
		case e < 0.35: // left
			k.x0, k.y0 = -w0/2+in*w0, pl.uniform(0.1, 0.9)*pl.fh
		case e < 0.7: // right
			k.x0, k.y0 = pl.fw+w0/2-in*w0, pl.uniform(0.1, 0.9)*pl.fh
			dir += math.Pi
		case e < 0.9: // bottom
			k.x0, k.y0 = pl.uniform(0.1, 0.9)*pl.fw, pl.fh+h0/2-in*h0
			dir -= math.Pi / 2
		default: // top
			k.x0, k.y0 = pl.uniform(0.1, 0.9)*pl.fw, -h0/2+in*h0
			dir += math.Pi / 2
		}
		speed = math.Max(speed, 0.3)
		k.vx, k.vy = speed*math.Cos(dir), speed*math.Sin(dir)
	} else {
		// Already there (first frame) or appearing in the open.
		k.x0 = pl.uniform(0.05, 0.95) * pl.fw
		k.y0 = pl.uniform(0.05, 0.95) * pl.fh
		dir := pl.uniform(0, 2*math.Pi)
		k.vx, k.vy = speed*math.Cos(dir), speed*math.Sin(dir)
	}

	// In-plane rotation.
	if pl.rng.Float64() < 0.55 {
		k.a0 = pl.rng.NormFloat64() * 8
	} else {
		k.a0 = pl.uniform(-p.MaxAngle, p.MaxAngle)
	}
	k.aa = pl.uniform(0, 12)
	k.ap = pl.uniform(4, 15) * pl.fps
	k.aph = pl.uniform(0, 2*math.Pi)

	// Appearance.
	k.margin = pl.uniform(0.15, 0.45)
	k.flip = pl.rng.Float64() < 0.5
	switch r := pl.rng.Float64(); {
	case r < 0.45:
	case r < 0.8: // defocus / soft CCTV optics
		k.blurAbs = pl.uniform(0.3, 1.2)
		k.blurRel = pl.uniform(0, 0.035)
	default: // motion blur along the path
		k.motion = pl.uniform(0.8, 2.5)
		k.blurAbs = pl.uniform(0, 0.6)
	}
	k.contrast = pl.logUniform(0.55, 1.3)
	k.bright = pl.uniform(-45, 35)
	for c := range k.gains {
		k.gains[c] = pl.uniform(0.9, 1.1)
	}
	k.sat = pl.uniform(0.3, 1)
	k.noise = pl.uniform(0, 4)

	// Geometry per frame; the face leaves when it is out of the frame.
	for tt := t; tt < k.end; tt++ {
		g := k.at(tt, pl.fw, pl.fh)
		if g.visible <= 0 {
			if tt == t {
				return nil
			}
			k.end = tt
			break
		}
		k.g = append(k.g, g)
	}
	if k.end-k.start < 5 {
		return nil
	}
	return k
}

// fits reports whether k keeps clear of every accepted track: face boxes
// IoU below MaxIoU and no face box more than maxCover covered by the
// context patch of a face drawn over it (the larger one is drawn later).
func (pl *planner) fits(k *track) bool {
	const maxCover = 0.2
	for _, o := range pl.tracks {
		from, to := max(k.start, o.start), min(k.end, o.end)
		for t := from; t < to; t++ {
			a, b := k.g[t-k.start], o.g[t-o.start]
			if iou(a.face, b.face) >= pl.p.MaxIoU {
				return false
			}
			under, over := a, b
			if a.w > b.w {
				under, over = b, a
			}
			if coverage(under.face, over.patch) > maxCover {
				return false
			}
		}
	}
	return true
}

func (pl *planner) accept(k *track) {
	pl.tracks = append(pl.tracks, k)
	for _, g := range k.g {
		pl.bins[SizeBin(g.w)]++
	}
}
