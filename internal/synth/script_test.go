package synth

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// TestWalks: a scripted scene has exactly its walks' faces, each labelled
// centred on its path at every frame it is in (standing and moving), at
// its width, and bad walks are refused saying what is wrong.
func TestWalks(t *testing.T) {
	needMedia(t)
	walks := []Walk{
		{Source: "astronaut", Width: 64, Path: []Waypoint{{0, 100, 300}, {4, 100, 300}, {12, 300, 300}}},
		{Source: "cameraman", Width: 48, Path: []Waypoint{{2, 600, 100}, {12, 600, 400}}},
	}
	out := filepath.Join(t.TempDir(), "walks.avi")
	labels, err := Generate(context.Background(), Params{Frames: 13, Walks: walks}, out)
	if err != nil {
		t.Fatal(err)
	}
	for i, faces := range labels.Frames {
		want := 0
		for id, w := range walks {
			x, y, ok := w.At(i)
			if !ok {
				continue
			}
			want++
			var got *Face
			for k := range faces {
				if faces[k].ID == id {
					got = &faces[k]
				}
			}
			if got == nil {
				t.Errorf("frame %d: walk %d missing", i, id)
				continue
			}
			cx, cy := float64(got.Box.Min.X+got.Box.Max.X)/2, float64(got.Box.Min.Y+got.Box.Max.Y)/2
			if math.Abs(cx-x) > 1 || math.Abs(cy-y) > 1 || got.Width != w.Width || got.Source != w.Source {
				t.Errorf("frame %d: walk %d labelled %+v; want centred at (%.0f, %.0f), width %v, source %s", i, id, got, x, y, w.Width, w.Source)
			}
		}
		if len(faces) != want {
			t.Errorf("frame %d: %d faces labelled, want %d", i, len(faces), want)
		}
	}

	for _, tc := range []struct {
		walk Walk
		want string
	}{
		{Walk{Source: "nobody", Width: 64, Path: []Waypoint{{0, 10, 10}}}, `no face "nobody"`},
		{Walk{Source: "astronaut", Width: 2, Path: []Waypoint{{0, 10, 10}}}, "width"},
		{Walk{Source: "astronaut", Width: 64}, "no waypoints"},
		{Walk{Source: "astronaut", Width: 64, Path: []Waypoint{{5, 10, 10}, {3, 20, 20}}}, "comes before"},
		{Walk{Source: "astronaut", Width: 64, Path: []Waypoint{{50, 10, 10}}}, "outside frames"},
	} {
		_, err := Generate(context.Background(), Params{Frames: 5, Walks: []Walk{tc.walk}}, filepath.Join(t.TempDir(), "x.avi"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one saying %q", tc.walk, err, tc.want)
		}
	}
}
