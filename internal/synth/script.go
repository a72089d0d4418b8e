package synth

import (
	"fmt"
	"math"
)

// Walk is one face of a scripted scene (Params.Walks): a face image of the
// library, at a fixed width, moving in straight lines from waypoint to
// waypoint. It is in the picture from its first waypoint's frame to its
// last's, unchanged in colour, sharp and upright, so that what a test
// measures is where it goes, not how hard it is to see.
type Walk struct {
	Source string     `json:"source"` // the faces.json id of the face image
	Width  float64    `json:"width"`  // face width in pixels
	Margin float64    `json:"margin"` // context around the face, a share of its width; 0: 0.3
	Path   []Waypoint `json:"path"`   // frames in rising order
}

// Waypoint is where a walk's face centre is at a frame.
type Waypoint struct {
	Frame int     `json:"frame"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
}

// At is the walk's face centre at frame t, and whether it is in the scene
// then.
func (w Walk) At(t int) (x, y float64, ok bool) {
	if len(w.Path) == 0 || t < w.Path[0].Frame || t > w.Path[len(w.Path)-1].Frame {
		return 0, 0, false
	}
	for i := 1; i < len(w.Path); i++ {
		a, b := w.Path[i-1], w.Path[i]
		if t <= b.Frame {
			f := 0.0
			if b.Frame > a.Frame {
				f = float64(t-a.Frame) / float64(b.Frame-a.Frame)
			}
			return a.X + f*(b.X-a.X), a.Y + f*(b.Y-a.Y), true
		}
	}
	p := w.Path[0]
	return p.X, p.Y, true
}

// scripted lays out Params.Walks as the video's only faces; the label ID
// of each is its index.
func (pl *planner) scripted() error {
	for i, w := range pl.p.Walks {
		src := -1
		for j, s := range pl.lib.Sources {
			if s.ID == w.Source {
				src = j
				break
			}
		}
		switch {
		case src < 0:
			return fmt.Errorf("synth: walk %d: no face %q in the library", i, w.Source)
		case w.Width < 4 || math.IsNaN(w.Width):
			return fmt.Errorf("synth: walk %d: width %v < 4", i, w.Width)
		case len(w.Path) == 0:
			return fmt.Errorf("synth: walk %d: no waypoints", i)
		}
		for j := 1; j < len(w.Path); j++ {
			if w.Path[j].Frame < w.Path[j-1].Frame {
				return fmt.Errorf("synth: walk %d: waypoint %d at frame %d comes before frame %d", i, j, w.Path[j].Frame, w.Path[j-1].Frame)
			}
		}
		sb := pl.lib.Sources[src].Box
		margin := w.Margin
		if margin <= 0 {
			margin = 0.3
		}
		k := &track{id: i, src: src, aspect: float64(sb.Dy()) / float64(sb.Dx()), margin: margin,
			contrast: 1, sat: 1, gains: [3]float64{1, 1, 1},
			start: max(0, w.Path[0].Frame), end: min(pl.p.Frames, w.Path[len(w.Path)-1].Frame+1)}
		for t := k.start; t < k.end; t++ {
			x, y, _ := w.At(t)
			k.g = append(k.g, makeGeom(x, y, w.Width, w.Width*k.aspect, 0, k.margin, pl.fw, pl.fh))
		}
		if len(k.g) == 0 {
			return fmt.Errorf("synth: walk %d is outside frames 0..%d", i, pl.p.Frames-1)
		}
		pl.tracks = append(pl.tracks, k)
	}
	return nil
}
