package footfall

// Direction of a crossing.
type Direction int8

const (
	In  Direction = 1  // from the left of A→B (as seen on screen) to its right
	Out Direction = -1 // from the right to the left
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// crossing is one track's state against one line: the side it was last
// clearly on and where it was then.
type crossing struct {
	side   int8 // -1 left, +1 right, 0 not yet clearly on either side
	lx, ly float64
	// A new side is taken only after two clear observations in a row on
	// it, so a single misplaced detection cannot flip a person across.
	pend   int8
	px, py float64
}

// step moves the track's foot point to (x, y) and reports a crossing. A point
// within band pixels of the line changes nothing, so a person standing on the
// line or swaying across it is not counted; a crossing counts only when the
// path from the last clear side to the new one passes between A and B.
func (c *crossing) step(g geom, band, x, y float64) (Direction, bool) {
	d := g.dist(x, y)
	if d > -band && d < band {
		return 0, false
	}
	s := int8(1)
	if d < 0 {
		s = -1
	}
	if s == c.side {
		c.lx, c.ly, c.pend = x, y, 0
		return 0, false
	}
	if c.pend != s {
		c.pend, c.px, c.py = s, x, y
		return 0, false
	}
	prev, lx, ly := c.side, c.lx, c.ly
	c.side, c.lx, c.ly, c.pend = s, c.px, c.py, 0
	if prev == 0 {
		return 0, false
	}
	if t := g.crossAt(lx, ly, c.lx, c.ly); t < 0 || t > 1 {
		return 0, false // walked round the end of the line
	}
	if prev < 0 {
		return In, true
	}
	return Out, true
}
