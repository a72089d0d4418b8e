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

// vtestFrame returns frame i of vtest.avi.
func vtestFrame(t testing.TB, i int) gocv.Mat {
	t.Helper()
	testenv.Need(t, testenv.VTest)
	vc, err := gocv.VideoCaptureFile(testenv.VTest)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	for k := 0; k <= i; k++ {
		if !vc.Read(&m) || m.Empty() {
			m.Close()
			t.Fatalf("vtest.avi has no frame %d", k)
		}
	}
	return m
}

func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	ia := float64(in.Dx() * in.Dy())
	return ia / float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()-in.Dx()*in.Dy())
}

// TestPersonNetKnownFrame finds the six people of vtest.avi's frame 300,
// boxed by hand from the frame (feet to head), and nothing else at the
// default input width. At a larger width it finds them too, and also the
// blue sign at the top left (a known false positive, left to the tracker).
func TestPersonNetKnownFrame(t *testing.T) {
	frame := vtestFrame(t, 300)
	defer frame.Close()
	want := frame300People
	graph := loadModel(t, "centernet-person")
	for _, width := range []int{320, 416} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			in := detect.PersonInput(image.Pt(frame.Cols(), frame.Rows()), width)
			net, err := detect.NewPersonNet(graph, in.X, in.Y, 0.3)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			got, err := net.Detect(frame)
			if err != nil {
				t.Fatal(err)
			}
			matched := make([]bool, len(got))
			for _, w := range want {
				best, bi := 0.0, -1
				for i, g := range got {
					if v := iou(w, g.Box); v > best && !matched[i] {
						best, bi = v, i
					}
				}
				if best < 0.5 {
					t.Errorf("person at %v not found (best IoU %.2f) in %v", w, best, got)
					continue
				}
				matched[bi] = true
			}
			for i, ok := range matched {
				if !ok && width == 320 {
					t.Errorf("extra detection %v (score %.2f)", got[i].Box, got[i].Score)
				}
			}
		})
	}
}

func TestPersonNetRejects(t *testing.T) {
	graph := loadModel(t, "centernet-person")
	for _, c := range []struct {
		w, h int
		th   float32
	}{{300, 224, 0.3}, {320, 0, 0.3}, {320, 224, 0}, {320, 224, 1}} {
		if n, err := detect.NewPersonNet(graph, c.w, c.h, c.th); err == nil {
			n.Close()
			t.Errorf("NewPersonNet(%d, %d, %.1f) accepted", c.w, c.h, c.th)
		}
	}
	if _, err := detect.NewPersonNet([]byte("not a graph"), 320, 224, 0.3); err == nil {
		t.Error("a broken graph was accepted")
	}
	net, err := detect.NewPersonNet(graph, 320, 224, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	gray := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC1)
	defer gray.Close()
	if _, err := net.Detect(gray); err == nil {
		t.Error("a grey frame was accepted")
	}
}

func TestPersonInput(t *testing.T) {
	for _, c := range []struct {
		frame image.Point
		width int
		want  image.Point
	}{
		{image.Pt(768, 576), 320, image.Pt(320, 256)},
		{image.Pt(768, 576), 416, image.Pt(416, 320)},
		{image.Pt(1280, 720), 320, image.Pt(320, 192)},
		{image.Pt(720, 1280), 320, image.Pt(320, 576)},
		{image.Pt(768, 576), 10, image.Pt(64, 64)},
		{image.Pt(768, 576), 330, image.Pt(320, 256)},
	} {
		if got := detect.PersonInput(c.frame, c.width); got != c.want {
			t.Errorf("PersonInput(%v, %d) = %v, want %v", c.frame, c.width, got, c.want)
		}
	}
}

// BenchmarkPersonNet times one person detection on a vtest.avi frame at
// a few input widths, on one OpenCV thread and on the default threads.
func BenchmarkPersonNet(b *testing.B) {
	frame := vtestFrame(b, 300)
	defer frame.Close()
	graph := loadModel(b, "centernet-person")
	for _, width := range []int{256, 320, 416} {
		for _, threads := range []int{1, -1} {
			in := detect.PersonInput(image.Pt(frame.Cols(), frame.Rows()), width)
			b.Run(fmt.Sprintf("%dx%d/threads=%d", in.X, in.Y, threads), func(b *testing.B) {
				cvthreads.Set(threads)
				defer cvthreads.Set(-1)
				net, err := detect.NewPersonNet(graph, in.X, in.Y, 0.3)
				if err != nil {
					b.Fatal(err)
				}
				defer net.Close()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := net.Detect(frame); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
