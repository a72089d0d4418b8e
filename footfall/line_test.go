package footfall

import (
	"image"
	"testing"
)

func TestCrossingStep(t *testing.T) {
	// A horizontal line from (0,100) to (100,100): left (as seen on screen)
	// is above it, so walking down across it is "in".
	horiz := newGeom(Line{A: image.Pt(0, 100), B: image.Pt(100, 100)})
	// A vertical line pointing down the screen: left is x > 50.
	vert := newGeom(Line{A: image.Pt(50, 0), B: image.Pt(50, 100)})
	type pt struct{ x, y float64 }
	tests := []struct {
		name    string
		g       geom
		path    []pt
		in, out int
	}{
		{"down across horizontal is in", horiz, []pt{{50, 80}, {50, 82}, {50, 95}, {50, 110}, {50, 120}}, 1, 0},
		{"up across horizontal is out", horiz, []pt{{50, 120}, {50, 118}, {50, 80}, {50, 78}}, 0, 1},
		{"leftward across downward line is in", vert, []pt{{70, 50}, {68, 50}, {30, 50}, {28, 50}}, 1, 0},
		{"rightward across downward line is out", vert, []pt{{30, 50}, {32, 50}, {70, 50}, {72, 50}}, 0, 1},
		{"there and back counts both", horiz, []pt{{50, 80}, {50, 81}, {50, 120}, {50, 121}, {50, 80}, {50, 79}}, 1, 1},
		{"jitter inside the band counts nothing", horiz, []pt{{50, 80}, {50, 95}, {50, 104}, {50, 96}, {50, 105}, {50, 94}, {50, 80}}, 0, 0},
		{"loitering on the line then going on counts once", horiz, []pt{{50, 80}, {50, 85}, {50, 99}, {50, 101}, {50, 99}, {50, 102}, {50, 130}, {50, 135}}, 1, 0},
		{"passing beyond the end does not count", horiz, []pt{{150, 80}, {150, 81}, {150, 120}, {150, 121}}, 0, 0},
		{"passing beyond the start does not count", horiz, []pt{{-10, 80}, {-10, 81}, {-10, 120}, {-10, 121}}, 0, 0},
		{"diagonal crossing inside the extent counts", horiz, []pt{{90, 80}, {91, 82}, {99, 118}, {100, 120}}, 1, 0},
		{"one stray point on the other side flips nothing", horiz, []pt{{50, 80}, {50, 81}, {50, 130}, {50, 82}, {50, 80}}, 0, 0},
		{"first point inside the band has no side yet", horiz, []pt{{50, 100}, {50, 120}, {50, 121}}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c crossing
			in, out := 0, 0
			for _, p := range tc.path {
				if d, ok := c.step(tc.g, 8, p.x, p.y, false); ok {
					if d == In {
						in++
					} else {
						out++
					}
				}
			}
			if in != tc.in || out != tc.out {
				t.Errorf("in/out = %d/%d, want %d/%d", in, out, tc.in, tc.out)
			}
		})
	}
}

func TestLineValid(t *testing.T) {
	size := image.Pt(640, 480)
	tests := []struct {
		l  Line
		ok bool
	}{
		{Line{Name: "a", A: image.Pt(0, 0), B: image.Pt(640, 480)}, true},
		{Line{Name: "b", A: image.Pt(10, 10), B: image.Pt(10, 10)}, false},
		{Line{Name: "c", A: image.Pt(-1, 10), B: image.Pt(10, 10)}, false},
		{Line{Name: "d", A: image.Pt(10, 10), B: image.Pt(10, 481)}, false},
	}
	for _, tc := range tests {
		if err := tc.l.Valid(size); (err == nil) != tc.ok {
			t.Errorf("%s: Valid = %v, want ok=%v", tc.l.Name, err, tc.ok)
		}
	}
}

// TestCrossingEstimatedFootPoints: estimated foot points (a person hidden
// behind another) cannot move a person across a line on their own unless
// there are guessedSide of them in a row.
func TestCrossingEstimatedFootPoints(t *testing.T) {
	horiz := newGeom(Line{A: image.Pt(0, 100), B: image.Pt(100, 100)}) // walking down is "in"
	type pt struct {
		y     float64
		guess bool
	}
	m := func(y float64) pt { return pt{y, false} }
	e := func(y float64) pt { return pt{y, true} }
	tests := []struct {
		name    string
		path    []pt
		in, out int
	}{
		{"measured crossing", []pt{m(80), m(82), m(120), m(121)}, 1, 0},
		{"a short merge puts nobody below", []pt{m(98), m(99), e(120), e(121), e(122), m(80), m(78)}, 0, 0},
		{"a short merge does not move a person across", []pt{m(80), m(81), e(120), e(121), e(122), m(80)}, 0, 0},
		{"hidden while crossing, seen after", []pt{m(80), m(81), e(110), e(115), m(120), m(121)}, 1, 0},
		{"hidden on both sides long enough", []pt{e(80), e(81), e(82), e(83), e(84), e(120), e(121), e(122), e(123), e(124)}, 1, 0},
		{"hidden on the near side too briefly", []pt{e(80), e(81), e(82), m(120), m(121)}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c crossing
			in, out := 0, 0
			for _, p := range tc.path {
				if d, ok := c.step(horiz, 8, 50, p.y, p.guess); ok {
					if d == In {
						in++
					} else {
						out++
					}
				}
			}
			if in != tc.in || out != tc.out {
				t.Errorf("in/out = %d/%d, want %d/%d", in, out, tc.in, tc.out)
			}
		})
	}
}
