package camtest_test

import (
	"fmt"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/testkit/camtest"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestStampSurvivesJPEG: stamps drawn on a real frame read back exactly
// after JPEG at the quality the camera uses, and a frame without one (or
// redacted over it) reads as no stamp.
func TestStampSurvivesJPEG(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	vc, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	if !vc.Read(&frame) {
		t.Fatal("cannot read vtest")
	}
	if _, ok := camtest.ReadStamp(frame); ok {
		t.Fatal("an unstamped frame reads as stamped")
	}
	for _, n := range []int{0, 1, 2, 255, 256, 4095, 12345, 65535} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := frame.Clone()
			defer m.Close()
			camtest.DrawStamp(&m, n)
			b, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 60})
			if err != nil {
				t.Fatal(err)
			}
			back, err := gocv.IMDecode(b.GetBytes(), gocv.IMReadColor)
			b.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer back.Close()
			if got, ok := camtest.ReadStamp(back); !ok || got != n {
				t.Fatalf("stamp %d read back as %d (ok %v)", n, got, ok)
			}
			gocv.GaussianBlur(back, &back, image.Pt(31, 31), 12, 12, gocv.BorderDefault)
			if got, ok := camtest.ReadStamp(back); ok && got == n {
				t.Errorf("stamp %d still reads after a strong blur", n)
			}
		})
	}
}
