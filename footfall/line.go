package footfall

import (
	"fmt"
	"image"
	"math"
)

// Line is a directed counting line from A to B in frame pixels.
type Line struct {
	Name string
	A, B image.Point
}

// Valid reports why a line cannot count in a frame of the given size (zero
// size skips the bounds check), or nil.
func (l Line) Valid(size image.Point) error {
	if l.A == l.B {
		return fmt.Errorf("line %q: A and B are the same point %v", l.Name, l.A)
	}
	in := func(p image.Point) bool { return p.X >= 0 && p.Y >= 0 && p.X <= size.X && p.Y <= size.Y }
	if size != (image.Point{}) && (!in(l.A) || !in(l.B)) {
		return fmt.Errorf("line %q: %v-%v reaches outside the %dx%d frame", l.Name, l.A, l.B, size.X, size.Y)
	}
	return nil
}

// Coords returns the line as [x1, y1, x2, y2].
func (l Line) Coords() [4]int { return [4]int{l.A.X, l.A.Y, l.B.X, l.B.Y} }

// geom is a line prepared for fast side and extent tests.
type geom struct {
	ax, ay, dx, dy, len float64
}

func newGeom(l Line) geom {
	dx, dy := float64(l.B.X-l.A.X), float64(l.B.Y-l.A.Y)
	return geom{ax: float64(l.A.X), ay: float64(l.A.Y), dx: dx, dy: dy, len: math.Hypot(dx, dy)}
}

// dist is the signed distance of p from the line in pixels: negative on the
// left of A→B as seen on screen, positive on the right.
func (g geom) dist(x, y float64) float64 {
	return (g.dx*(y-g.ay) - g.dy*(x-g.ax)) / g.len
}

// along is where the projection of p falls along A→B: 0 at A, 1 at B.
func (g geom) along(x, y float64) float64 {
	return ((x-g.ax)*g.dx + (y-g.ay)*g.dy) / (g.len * g.len)
}

// crossAt returns the fraction along A→B where the step from p to q crosses
// the line's infinite extension; p and q must be on opposite sides.
func (g geom) crossAt(px, py, qx, qy float64) float64 {
	dp, dq := g.dist(px, py), g.dist(qx, qy)
	f := dp / (dp - dq)
	return g.along(px+f*(qx-px), py+f*(qy-py))
}
