package detect_test

import (
	"fmt"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/internal/cvthreads"
	"github.com/veil-edge/veil/testkit/testenv"
)

// BenchmarkBlazeFaceWindow times one inference of each BlazeFace model with
// OpenCV single-threaded (as veil runs it) and with its default threads.
func BenchmarkBlazeFaceWindow(b *testing.B) {
	for _, m := range []struct {
		name string
		size int
	}{{"blazeface-front-128", 128}, {"blazeface-back-256", 256}} {
		for _, threads := range []int{1, -1} {
			b.Run(fmt.Sprintf("%s/threads=%d", m.name, threads), func(b *testing.B) {
				cvthreads.Set(threads)
				defer cvthreads.Set(-1)
				bf, err := detect.NewBlazeFace(loadModel(b, m.name), m.size, 0.5)
				if err != nil {
					b.Fatal(err)
				}
				defer bf.Close()
				win := background(b, m.size, m.size)
				defer win.Close()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := bf.DetectWindow(win); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFrame times a full search (fine and coarse passes, no change
// gate) of a vtest.avi frame on a service of one and two networks.
func BenchmarkFrame(b *testing.B) {
	testenv.Need(b, testenv.VTest)
	onnx := loadModel(b, "blazeface-back-256")
	vc, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		b.Fatal(err)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	vc.Read(&frame)
	vc.Close()
	cvthreads.Set(1)
	defer cvthreads.Set(-1)
	for _, size := range []image.Point{{768, 576}, {1280, 720}} {
		for _, nets := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%d/nets=%d", size.X, size.Y, nets), func(b *testing.B) {
				s := newFrame(b, detect.NewService(onnx, 0.2, nets), fullOptions())
				defer s.Close()
				f := gocv.NewMat()
				defer f.Close()
				gocv.Resize(frame, &f, size, 0, 0, gocv.InterpolationLinear)
				if _, err := s.Detect(f); err != nil { // networks built, not timed
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := s.Detect(f); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
