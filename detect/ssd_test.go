package detect_test

import (
	"fmt"
	"image"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/internal/cvthreads"
)

// frame300People are the six people of vtest.avi's frame 300, boxed by
// hand from the frame (feet to head).
var frame300People = []image.Rectangle{
	image.Rect(186, 160, 214, 232), // man in black, left of the group on the road
	image.Rect(240, 152, 265, 222), // woman in black, walking
	image.Rect(297, 156, 324, 226), // man at the cone
	image.Rect(314, 216, 345, 294), // man in front, walking down
	image.Rect(580, 158, 611, 234), // man in red jacket, right
	image.Rect(616, 162, 647, 232), // blonde woman, right
}

// matchPeople pairs each labelled person with the unmatched detection of
// best IoU; it returns how many reached minIoU and the detections that
// overlap no labelled person by IoU 0.2 or more (boxes on the background).
func matchPeople(want []image.Rectangle, got []detect.Person, minIoU float64) (found int, background []detect.Person) {
	matched := make([]bool, len(got))
	for _, w := range want {
		best, bi := 0.0, -1
		for i, g := range got {
			if v := iou(w, g.Box); v > best && !matched[i] {
				best, bi = v, i
			}
		}
		if best >= minIoU {
			matched[bi] = true
			found++
		}
	}
	for _, g := range got {
		on := false
		for _, w := range want {
			on = on || iou(w, g.Box) >= 0.2
		}
		if !on {
			background = append(background, g)
		}
	}
	return found, background
}

// TestSSDNetKnownFrame: SSDLite at 300x300 on vtest.avi's frame 300.
// Measured at a score of 0.5: all six people boxed, five at IoU 0.60-0.89
// with the hand-drawn boxes and the woman in black at 0.38 (her box sits
// right and short), plus a second box (0.66) on the man at the left,
// shifted onto his legs; at 0.25 (footfall's default person_score) also one
// wide box (0.34) over the whole group, on people but not a person. The
// test holds it to that: 5 of 6 at IoU 0.4, all 6 at 0.3, nothing on the
// background at 0.5.
func TestSSDNetKnownFrame(t *testing.T) {
	frame := vtestFrame(t, 300)
	defer frame.Close()
	graph := loadModel(t, "ssdlite-person")
	for _, th := range []float32{0.5, 0.25} {
		t.Run(fmt.Sprint(th), func(t *testing.T) {
			net, err := detect.NewSSDNet(graph, th)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			if w, h := net.Size(); w != 300 || h != 300 {
				t.Errorf("size %dx%d", w, h)
			}
			got, err := net.Detect(frame)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range got {
				t.Logf("%v %.3f", p.Box, p.Score)
			}
			found, background := matchPeople(frame300People, got, 0.4)
			if found < 5 {
				t.Errorf("%d of 6 people found at IoU 0.4: %v", found, got)
			}
			if found, _ := matchPeople(frame300People, got, 0.3); found < 6 {
				t.Errorf("%d of 6 people found at IoU 0.3: %v", found, got)
			}
			if th >= 0.5 && len(background) > 0 {
				t.Errorf("boxes on the background: %v", background)
			}
		})
	}
}

func TestSSDNetRejects(t *testing.T) {
	graph := loadModel(t, "ssdlite-person")
	for _, th := range []float32{0, 1} {
		if n, err := detect.NewSSDNet(graph, th); err == nil {
			n.Close()
			t.Errorf("NewSSDNet(%.1f) accepted", th)
		}
	}
	if _, err := detect.NewSSDNet([]byte("not a graph"), 0.5); err == nil {
		t.Error("a broken graph was accepted")
	}
	if _, err := detect.NewSSDNet(loadModel(t, "centernet-person"), 0.5); err == nil {
		t.Error("a graph without anchors was accepted")
	}
	if _, err := detect.NewPersonDetector(detect.PersonSSDLite, graph, image.Pt(320, 256), 0.5); err == nil {
		t.Error("ssdlite at 320x256 was accepted")
	}
	if _, err := detect.NewPersonDetector("yolo", graph, image.Pt(300, 300), 0.5); err == nil {
		t.Error("an unknown model kind was accepted")
	}
	net, err := detect.NewSSDNet(graph, 0.5)
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

func TestPersonModelInput(t *testing.T) {
	f := image.Pt(768, 576)
	if got := detect.PersonModelInput(detect.PersonSSDLite, f, 416); got != image.Pt(300, 300) {
		t.Errorf("ssdlite: %v", got)
	}
	if got := detect.PersonModelInput(detect.PersonCenterNet, f, 416); got != detect.PersonInput(f, 416) {
		t.Errorf("centernet: %v", got)
	}
}

// TestServicePeopleSSDLite runs SSDLite person passes on the detection
// service: the frame is scaled to 300x300 for the pass, boxes come back in
// the frame's pixels.
func TestServicePeopleSSDLite(t *testing.T) {
	frame := vtestFrame(t, 300)
	defer frame.Close()
	svc := detect.NewService(loadModel(t, "blazeface-back-256"), 0.5, 1)
	svc.SetPersonModel(detect.PersonSSDLite, loadModel(t, "ssdlite-person"), 0.5, detect.DefaultPeopleShare)
	in := svc.PeopleInput(image.Pt(frame.Cols(), frame.Rows()), 320)
	if in != image.Pt(300, 300) {
		t.Fatalf("input %v", in)
	}
	if err := svc.ProbePeople(in); err != nil {
		t.Fatal(err)
	}
	people, err := detect.NewPeople(svc, 320, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer people.Close()
	got, err := people.Detect(frame)
	if err != nil {
		t.Fatal(err)
	}
	found, background := matchPeople(frame300People, got, 0.4)
	if found < 5 || len(background) > 0 {
		t.Errorf("%d of 6 found, %v on the background: %v", found, background, got)
	}
}

// BenchmarkSSDNet times one SSDLite person detection on a vtest.avi frame
// (768x576, stretched to 300x300), on one OpenCV thread and on the
// default threads.
func BenchmarkSSDNet(b *testing.B) {
	frame := vtestFrame(b, 300)
	defer frame.Close()
	graph := loadModel(b, "ssdlite-person")
	for _, threads := range []int{1, -1} {
		b.Run(fmt.Sprintf("300x300/threads=%d", threads), func(b *testing.B) {
			cvthreads.Set(threads)
			defer cvthreads.Set(-1)
			net, err := detect.NewSSDNet(graph, 0.5)
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
