package app

import (
	"fmt"
	"image"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/footfall"
)

// Counter builds a people counter for lines from the footfall config, for a
// camera looking straight down (overhead) or at an angle.
func Counter(c config.Footfall, lines []footfall.Line, overhead bool) (*footfall.Counter, error) {
	mo := footfall.DefaultMotionOptions
	mo.MinHeight = c.MinHeight
	det, err := footfall.NewMotion(mo)
	if err != nil {
		return nil, err
	}
	to := footfall.DefaultTrackOptions
	to.Band = c.Band
	to.Overhead = overhead
	cnt, err := footfall.NewCounter(det, lines, to)
	if err != nil {
		det.Close()
		return nil, err
	}
	return cnt, nil
}

// CameraLines turns a camera's configured lines into counting lines.
func CameraLines(c config.Camera) []footfall.Line {
	out := make([]footfall.Line, len(c.Lines))
	for i, l := range c.Lines {
		out[i] = footfall.Line{Name: l.Name, A: image.Pt(l.Line[0], l.Line[1]), B: image.Pt(l.Line[2], l.Line[3])}
	}
	return out
}

// ParseLine reads "x1,y1,x2,y2" (the --line flag).
func ParseLine(name, s string) (footfall.Line, error) {
	var x1, y1, x2, y2 int
	var extra string
	n, _ := fmt.Sscanf(s, "%d,%d,%d,%d%s", &x1, &y1, &x2, &y2, &extra)
	if n != 4 {
		return footfall.Line{}, fmt.Errorf("line %q: want four whole numbers x1,y1,x2,y2 in frame pixels (e.g. 350,150,350,450)", s)
	}
	if x1 < 0 || y1 < 0 || x2 < 0 || y2 < 0 {
		return footfall.Line{}, fmt.Errorf("line %q: coordinates must be >= 0", s)
	}
	l := footfall.Line{Name: name, A: image.Pt(x1, y1), B: image.Pt(x2, y2)}
	if err := l.Valid(image.Point{}); err != nil {
		return footfall.Line{}, err
	}
	return l, nil
}
