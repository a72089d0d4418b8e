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

// guessedSide is how many estimated foot points in a row (a person hidden
// behind another) it takes to put a person on a side without a measured one.
const guessedSide = 5

// crossing is one track's state against one line: the side it was last
// clearly on and where it was then.
type crossing struct {
	side   int8 // -1 left, +1 right, 0 not yet clearly on either side
	lx, ly float64
	// solid: the side rests on a measured foot point, or on guessedSide
	// estimated ones. Only a crossing from a solid side counts.
	solid bool
	obs   int // estimated observations on the current side
	// A new side is taken only after two clear observations in a row on
	// it (one of them measured), or guessedSide estimated ones, so a single
	// misplaced detection cannot flip a person across.
	pend          int8
	npend, nsolid int
	px, py        float64
}

// step moves the track's foot point to (x, y) and reports a crossing.
// guessed marks an estimated foot point (the person behind another in one
// blob). A point within band pixels of the line changes nothing, so a person
// standing on the line or swaying across it is not counted; a crossing
// counts only when the path from the last clear side to the new one passes
// between A and B.
func (c *crossing) step(g geom, band, x, y float64, guessed bool) (Direction, bool) {
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
		if guessed {
			c.obs++
		}
		c.solid = c.solid || !guessed || c.obs >= guessedSide
		return 0, false
	}
	if c.pend != s {
		c.pend, c.px, c.py, c.npend, c.nsolid = s, x, y, 0, 0
	}
	c.npend++
	if !guessed {
		c.nsolid++
	}
	if !(c.npend >= 2 && c.nsolid >= 1) && c.npend < guessedSide {
		return 0, false
	}
	prev, wasSolid, lx, ly := c.side, c.solid, c.lx, c.ly
	c.side, c.lx, c.ly, c.pend = s, c.px, c.py, 0
	c.solid, c.obs = c.nsolid > 0 || c.npend >= guessedSide, c.npend-c.nsolid
	if prev == 0 || !wasSolid {
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
