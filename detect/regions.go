package detect

import (
	"image"
	"math"

	"gocv.io/x/gocv"
)

// cell is the side, in canvas pixels, of the grid the change gate marks.
const cell = 32

// sizeStep rounds a region's scan up to multiples of this many pixels, so
// that few distinct network sizes are needed.
const sizeStep = 64

// region is one fine-pass run: the canvas rectangle it scans and the
// rectangles (its cores) whose faces it answers for. The scan reaches at
// least fineMaxFace past every core, so a face of up to that size touching
// a core is whole inside it.
type region struct {
	scan  image.Rectangle
	cores []image.Rectangle
}

// touches reports whether a canvas box reaches into one of the cores.
func (r region) touches(b Rect) bool {
	for _, c := range r.cores {
		if b.X1 > float32(c.Min.X) && b.X0 < float32(c.Max.X) && b.Y1 > float32(c.Min.Y) && b.Y0 < float32(c.Max.Y) {
			return true
		}
	}
	return false
}

// touchesAny reports whether a canvas box reaches into any region's cores.
func touchesAny(b Rect, rs []region) bool {
	for _, r := range rs {
		if r.touches(b) {
			return true
		}
	}
	return false
}

// changed returns the canvas rectangles to scan again: the bounding boxes
// of connected groups of grid cells whose pixels (f.low, the canvas at
// Gate.Scale, against their reference, the last scan of them) changed, or
// that hold a face found before.
func (f *Frame) changed() []image.Rectangle {
	g := f.geo
	gocv.AbsDiff(f.low, f.ref, &f.diff)
	gocv.Threshold(f.diff, &f.bin, f.o.Gate.Threshold, 255, gocv.ThresholdBinary)
	gx, gy := g.canvas.X/cell, g.canvas.Y/cell
	gocv.Resize(f.bin, &f.cells, image.Pt(gx, gy), 0, 0, gocv.InterpolationArea)
	// A cell's value is 255 times the share of its samples that changed.
	samples := float64(g.low.X*g.low.Y) / float64(gx*gy)
	need := float64(max(1, f.o.Gate.MinPixels))
	dirty := make([]bool, gx*gy)
	for y := 0; y < gy; y++ {
		for x := 0; x < gx; x++ {
			v := float64(f.cells.GetUCharAt(y, x))
			dirty[y*gx+x] = v > 0 && v/255*samples >= need-0.5
		}
	}
	// Where a face is, look again: it is what must not be lost.
	for _, c := range f.fine {
		x0, y0 := max(0, int(math.Floor(float64(c.Box.X0)/cell))), max(0, int(math.Floor(float64(c.Box.Y0)/cell)))
		x1, y1 := min(gx, int(math.Ceil(float64(c.Box.X1)/cell))), min(gy, int(math.Ceil(float64(c.Box.Y1)/cell)))
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				dirty[y*gx+x] = true
			}
		}
	}
	return components(dirty, gx, gy)
}

// components returns the bounding boxes, in canvas pixels, of the
// 8-connected groups of dirty cells of a gx x gy grid.
func components(dirty []bool, gx, gy int) []image.Rectangle {
	seen := make([]bool, len(dirty))
	var out []image.Rectangle
	var stack []int
	for start, d := range dirty {
		if !d || seen[start] {
			continue
		}
		box := image.Rect(start%gx, start/gx, start%gx+1, start/gx+1)
		seen[start] = true
		stack = append(stack[:0], start)
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := i%gx, i/gx
			box = box.Union(image.Rect(x, y, x+1, y+1))
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if nx < 0 || ny < 0 || nx >= gx || ny >= gy {
						continue
					}
					if j := ny*gx + nx; dirty[j] && !seen[j] {
						seen[j] = true
						stack = append(stack, j)
					}
				}
			}
		}
		out = append(out, image.Rect(box.Min.X*cell, box.Min.Y*cell, box.Max.X*cell, box.Max.Y*cell))
	}
	return out
}

// plan turns cores into fine-pass regions: each core scanned with
// fineMaxFace around it; two regions are joined while one scan of both
// costs no more than two. A tall region is split into horizontal parts
// when workers are idle, each part's scan reaching fineMaxFace past its
// share of the cores.
func (f *Frame) plan(cores []image.Rectangle) []region {
	rs := make([]region, 0, len(cores))
	for _, c := range cores {
		rs = append(rs, region{scan: f.fit(c.Inset(-fineMaxFace)), cores: []image.Rectangle{c}})
	}
	for joined := true; joined; {
		joined = false
		for i := 0; i < len(rs) && !joined; i++ {
			for j := i + 1; j < len(rs); j++ {
				u := f.fit(rs[i].scan.Union(rs[j].scan))
				if area(u) <= area(rs[i].scan)+area(rs[j].scan) {
					rs[i] = region{scan: u, cores: append(rs[i].cores, rs[j].cores...)}
					rs = append(rs[:j], rs[j+1:]...)
					joined = true
					break
				}
			}
		}
	}
	idle := f.svc.Workers() - f.svc.queued()
	if idle < 2 {
		return rs
	}
	var out []region
	for _, r := range rs {
		h := r.scan.Dy()
		k := min(idle, h/(4*fineMaxFace))
		if k < 2 {
			out = append(out, r)
			continue
		}
		for i := 0; i < k; i++ {
			y0 := r.scan.Min.Y + h*i/k/cell*cell
			y1 := r.scan.Min.Y + h*(i+1)/k/cell*cell
			if i == k-1 {
				y1 = r.scan.Max.Y
			}
			strip := image.Rect(r.scan.Min.X, y0, r.scan.Max.X, y1)
			var cs []image.Rectangle
			for _, c := range r.cores {
				if in := c.Intersect(strip); !in.Empty() {
					cs = append(cs, in)
				}
			}
			if len(cs) == 0 {
				continue
			}
			scan := f.fit(strip.Inset(-fineMaxFace).Intersect(r.scan))
			out = append(out, region{scan: scan, cores: cs})
		}
	}
	return out
}

// fit aligns a rectangle outward to the cell grid, rounds its size up to
// sizeStep (so few network sizes are needed) and keeps it in the canvas,
// shifting it back inside where it grew past an edge.
func (f *Frame) fit(r image.Rectangle) image.Rectangle {
	c := f.geo.canvas
	r = image.Rect(r.Min.X/cell*cell, r.Min.Y/cell*cell, align32(r.Max.X), align32(r.Max.Y)).Intersect(image.Rectangle{Max: c})
	w := min(c.X, (r.Dx()+sizeStep-1)/sizeStep*sizeStep)
	h := min(c.Y, (r.Dy()+sizeStep-1)/sizeStep*sizeStep)
	x0 := max(0, min(r.Min.X, c.X-w))
	y0 := max(0, min(r.Min.Y, c.Y-h))
	return image.Rect(x0, y0, x0+w, y0+h)
}

func area(r image.Rectangle) int { return r.Dx() * r.Dy() }

// commit makes this frame the change reference of the cores just scanned
// (parts scanned only as margin keep their older reference, so a slow
// change there still adds up).
func (f *Frame) commit(rs []region) {
	g := f.geo
	if f.o.Gate.Scale <= 0 {
		return
	}
	if !f.haveRef {
		f.low.CopyTo(&f.ref)
		f.haveRef = true
		return
	}
	sx := float64(g.low.X) / float64(g.canvas.X)
	sy := float64(g.low.Y) / float64(g.canvas.Y)
	lowRect := image.Rectangle{Max: g.low}
	for _, r := range rs {
		for _, c := range r.cores {
			lr := image.Rect(int(math.Floor(float64(c.Min.X)*sx)), int(math.Floor(float64(c.Min.Y)*sy)),
				int(math.Ceil(float64(c.Max.X)*sx)), int(math.Ceil(float64(c.Max.Y)*sy))).Intersect(lowRect)
			if lr.Empty() {
				continue
			}
			src := f.low.Region(lr)
			dst := f.ref.Region(lr)
			src.CopyTo(&dst)
			dst.Close()
			src.Close()
		}
	}
}
