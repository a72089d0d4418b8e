package detect_test

import (
	"fmt"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestEdgePad: a face cut by the frame's left edge, with only 25-40 % of it
// in frame, is found when the search mirrors a margin past the edges, and
// its box stays inside the frame. Without the margin (pad 0, a control that
// is only logged) BlazeFace misses them.
func TestEdgePad(t *testing.T) {
	testenv.Need(t, testenv.Astronaut)
	img := gocv.IMRead(testenv.Astronaut, gocv.IMReadColor)
	defer img.Close()
	f := testenv.AstronautFace
	for _, visible := range []float64{0.4, 0.3, 0.25} {
		// Crop so that only the right `visible` share of the face is in frame.
		x0 := f[2] - int(visible*float64(f[2]-f[0]))
		crop := img.Region(image.Rect(x0, 0, img.Cols(), img.Rows()))
		frame := crop.Clone()
		crop.Close()
		face := image.Rect(0, f[1], f[2]-x0, f[3])
		for _, pad := range []float64{0, 0.05, 0.1} {
			t.Run(fmt.Sprintf("visible=%.2f/pad=%.2f", visible, pad), func(t *testing.T) {
				o := fullOptions()
				o.EdgePad = pad
				s := newFrame(t, detect.NewService(loadModel(t, "blazeface-back-256"), 0.3, 1), o)
				defer s.Close()
				faces, err := s.Detect(frame)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, fc := range faces {
					if !fc.Box.In(image.Rect(0, 0, frame.Cols(), frame.Rows())) {
						t.Errorf("box %v outside the frame", fc.Box)
					}
					in := fc.Box.Intersect(face)
					if in.Dx()*in.Dy()*2 >= face.Dx()*face.Dy() {
						found = true
						t.Logf("found %v score %.2f for visible face %v", fc.Box, fc.Score, face)
					}
				}
				switch {
				case pad == 0:
					t.Logf("control without edge padding: found=%v", found)
				case !found:
					t.Errorf("face %v (%.0f%% visible) not found with edge pad %.2f: %v", face, 100*visible, pad, faces)
				}
			})
		}
		frame.Close()
	}
}
