package detect_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"math"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/detect"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/testenv"
)

// TestReshapeBlazeFace: the rewrite is deterministic (golden hashes of the
// graph for two sizes), refuses sizes that are not multiples of 32 and a
// model that is not back-256.
func TestReshapeBlazeFace(t *testing.T) {
	onnx := loadModel(t, "blazeface-back-256")
	golden := map[image.Point]string{
		{768, 576}: "34cdf9a1ad43a88c004240de841c3c2508d8c7ea5a379d75de8c1220f6129a59",
		{256, 192}: "bb23f53f14c29adbc05b9386f08f20c597528cee6ebede56d4e26f534416f045",
	}
	for size, want := range golden {
		g, err := detect.ReshapeBlazeFace(onnx, size.Y, size.X)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(g)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%v: rewritten graph sha256 %s, want %s", size, got, want)
		}
		again, _ := detect.ReshapeBlazeFace(onnx, size.Y, size.X)
		if sha256.Sum256(again) != sum {
			t.Errorf("%v: two rewrites differ", size)
		}
	}
	for _, bad := range []image.Point{{0, 576}, {770, 576}, {768, 20}} {
		if _, err := detect.ReshapeBlazeFace(onnx, bad.Y, bad.X); err == nil {
			t.Errorf("size %v accepted", bad)
		}
	}
	if _, err := detect.ReshapeBlazeFace(loadModel(t, "blazeface-front-128"), 576, 768); err == nil {
		t.Error("the front-128 model was rewritten as if it were back-256")
	}
	if _, err := detect.ReshapeBlazeFace([]byte{0x0a, 0xff}, 576, 768); err == nil {
		t.Error("a malformed protobuf was accepted")
	}
}

// TestBlazeNetMatchesWindow: the rewritten graph run over a 256x256 image
// gives the same candidates as the original model on the same window, so
// the anchor layout of the full-frame decoding is the model's own.
func TestBlazeNetMatchesWindow(t *testing.T) {
	testenv.Need(t, testenv.Astronaut)
	onnx := loadModel(t, "blazeface-back-256")
	img := gocv.IMRead(testenv.Astronaut, gocv.IMReadColor)
	defer img.Close()
	win := gocv.NewMat()
	defer win.Close()
	gocv.Resize(img, &win, image.Pt(256, 256), 0, 0, gocv.InterpolationArea)
	bf, err := detect.NewBlazeFace(onnx, 256, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	bn, err := detect.NewBlazeNet(onnx, 256, 256, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	defer bn.Close()
	want, err := bf.DetectWindow(win)
	if err != nil {
		t.Fatal(err)
	}
	got, err := bn.Run(win)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("full-frame net gave %d candidates, window model %d", len(got), len(want))
	}
	for i := range want {
		if !nearTol(got[i].Box, want[i].Box, 0.01) || math.Abs(float64(got[i].Score-want[i].Score)) > 1e-4 {
			t.Errorf("candidate %d: %v vs %v", i, got[i], want[i])
		}
	}
}

func nearTol(a, b detect.Rect, tol float64) bool {
	return math.Abs(float64(a.X0-b.X0)) < tol && math.Abs(float64(a.Y0-b.Y0)) < tol &&
		math.Abs(float64(a.X1-b.X1)) < tol && math.Abs(float64(a.Y1-b.Y1)) < tol
}

// fullOptions are the default options with every call a full search.
func fullOptions() detect.FrameOptions {
	o := detect.DefaultFrameOptions
	o.Gate.Scale = 0
	return o
}

func newFrame(t testing.TB, svc *detect.Service, o detect.FrameOptions) *detect.Frame {
	t.Helper()
	f, err := detect.NewFrame(svc, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFrameSizes: the fine and coarse passes find a real face from 12 px to
// frame-filling at 768x576 and 1280x720, near the edges and inside, and
// nothing confident on a face-free background.
func TestFrameSizes(t *testing.T) {
	svc := detect.NewService(loadModel(t, "blazeface-back-256"), 0.5, 2)
	o := detect.DefaultFrameOptions
	o.Gate.Scale = 0 // every call a full pass
	o.MaxFace = 1000
	for _, size := range []image.Point{{768, 576}, {1280, 720}} {
		t.Run(fmt.Sprintf("%dx%d", size.X, size.Y), func(t *testing.T) {
			d := newFrame(t, svc, o)
			defer d.Close()
			empty := background(t, size.X, size.Y)
			faces, err := d.Detect(empty)
			empty.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range faces {
				if f.Score >= 0.6 {
					t.Errorf("confident false positive on a face-free image: %v", f)
				}
			}
			for _, fw := range []int{14, 16, 20, 24, 32, 48, 64, 96, 128, 200, 280} {
				for _, pos := range []image.Point{{3, 29}, {301, 211}, {size.X, size.Y}} {
					bg := background(t, size.X, size.Y)
					cw, ch := fw*2+2, fw*11/4+2
					x, y := max(0, min(pos.X, size.X-cw)), max(0, min(pos.Y, size.Y-ch))
					want := paste(t, bg, fw, x, y)
					got, err := d.Detect(bg)
					bg.Close()
					if err != nil {
						t.Fatal(err)
					}
					best := 0.0
					for _, f := range got {
						best = math.Max(best, boxIoU(f.Box, want))
					}
					if best < 0.3 {
						t.Errorf("face width %d at %v: not found (best IoU %.2f, %d detections)", fw, pos, best, len(got))
					}
				}
			}
		})
	}
}

// TestFrameRegions: on a static frame only the region of the face found
// is scanned again; a face pasted into it is found on the next call by a
// region covering only part of the frame, the face found before is kept; the whole frame is scanned again once
// FullEvery has passed on the frame's clock.
func TestFrameRegions(t *testing.T) {
	svc := detect.NewService(loadModel(t, "blazeface-back-256"), 0.5, 2)
	o := detect.DefaultFrameOptions
	o.FullEvery = 2 * time.Second
	d := newFrame(t, svc, o)
	defer d.Close()
	frame := background(t, 768, 576)
	defer frame.Close()
	first := paste(t, frame, 40, 60, 60)
	ctx := context.Background()
	at := func(ms int) []detect.Face {
		f, err := d.DetectAt(ctx, frame, time.Duration(ms)*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	found := func(fs []detect.Face, want image.Rectangle) bool {
		for _, f := range fs {
			if boxIoU(f.Box, want) > 0.3 {
				return true
			}
		}
		return false
	}
	if f := at(0); !found(f, first) || !d.LastStats().Full {
		t.Fatalf("first call: full=%v, found=%v", d.LastStats().Full, found(f, first))
	}
	f := at(400)
	st := d.LastStats()
	if !found(f, first) || st.Full || st.FineArea >= st.TotalArea {
		t.Fatalf("static frame: %+v, cached face found=%v; want only the face's region rescanned", st, found(f, first))
	}
	second := paste(t, frame, 24, 500, 420)
	f = at(800)
	st = d.LastStats()
	if !found(f, second) {
		t.Fatalf("a face that appeared in a static scene was not found (%+v)", st)
	}
	if !found(f, first) {
		t.Fatal("the face found before was lost when a band was rescanned")
	}
	if st.Full || st.FineArea >= st.TotalArea {
		t.Errorf("after a local change %d of %d pixels were scanned; want a region", st.FineArea, st.TotalArea)
	}
	if at(2100); !d.LastStats().Full {
		t.Errorf("2.1 s after the last full pass: %+v, want a full pass", d.LastStats())
	}
}

// TestServiceDeadline: a pass whose deadline has passed is answered with
// ErrLate without running; the detector's state is kept, so a late
// keyframe does not force the next one to scan the whole frame.
func TestServiceDeadline(t *testing.T) {
	svc := detect.NewService(loadModel(t, "blazeface-back-256"), 0.5, 1)
	d := newFrame(t, svc, detect.DefaultFrameOptions)
	defer d.Close()
	frame := background(t, 768, 576)
	defer frame.Close()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	if _, err := d.DetectAt(ctx, frame, 0); !errors.Is(err, detect.ErrLate) {
		t.Fatalf("past deadline: err %v, want ErrLate", err)
	}
	if svc.Stats().Ran != 0 {
		t.Errorf("%d passes ran after their deadline", svc.Stats().Ran)
	}
	if _, err := d.DetectAt(context.Background(), frame, time.Second); err != nil || !d.LastStats().Full {
		t.Fatalf("first pass after a late one: err %v, stats %+v; want a full pass", err, d.LastStats())
	}
	// Late after a good keyframe: the next one rescans only what changed
	// since the good one (nothing here), not the whole frame.
	if _, err := d.DetectAt(ctx, frame, 1200*time.Millisecond); !errors.Is(err, detect.ErrLate) {
		t.Fatalf("past deadline: err %v, want ErrLate", err)
	}
	if _, err := d.DetectAt(context.Background(), frame, 1400*time.Millisecond); err != nil || d.LastStats().Full {
		t.Fatalf("after a late keyframe: err %v, stats %+v; want no full pass", err, d.LastStats())
	}
}

// TestServiceSharedFairly: four cameras on a two-worker service each get
// their keyframes detected, none starved, and the workers stop (closing
// every network and buffer, which MatProfile checks) when the last
// detector closes.
func TestServiceSharedFairly(t *testing.T) {
	svc := detect.NewService(loadModel(t, "blazeface-back-256"), 0.5, 2)
	frame := background(t, 768, 576)
	defer frame.Close()
	want := paste(t, frame, 32, 300, 200)
	const cams, calls = 4, 6
	var wg sync.WaitGroup
	found := make([]int, cams)
	errs := make([]error, cams)
	for c := 0; c < cams; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			d, err := detect.NewFrame(svc, detect.DefaultFrameOptions)
			if err != nil {
				errs[c] = err
				return
			}
			defer d.Close()
			img := frame.Clone()
			defer img.Close()
			for i := 0; i < calls; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				fs, err := d.DetectAt(ctx, img, time.Duration(i)*3*time.Second) // a full pass each
				cancel()
				if err != nil {
					errs[c] = err
					return
				}
				for _, f := range fs {
					if boxIoU(f.Box, want) > 0.3 {
						found[c]++
						break
					}
				}
			}
		}(c)
	}
	wg.Wait()
	for c := 0; c < cams; c++ {
		if errs[c] != nil || found[c] != calls {
			t.Errorf("camera %d: found the face on %d of %d keyframes, err %v", c, found[c], calls, errs[c])
		}
	}
	if st := svc.Stats(); st.Late != 0 {
		t.Errorf("%d passes late with a one-minute deadline", st.Late)
	}
	// A new client after the last one left starts the workers again.
	d := newFrame(t, svc, detect.DefaultFrameOptions)
	if _, err := d.Detect(frame); err != nil {
		t.Errorf("service restarted after its clients left: %v", err)
	}
	d.Close()
}

// FuzzReshapeBlazeFace: the graph rewrite never panics on malformed bytes
// and refuses anything that is not the back-256 graph (the bytes reach it
// only after their pinned hash is checked, but a parser must not crash).
func FuzzReshapeBlazeFace(f *testing.F) {
	onnx, _, err := models.Load(testenv.ModelsDir(), "blazeface-back-256")
	if err == nil {
		f.Add(onnx[:min(len(onnx), 4096)])
	}
	f.Add([]byte{0x3a, 0x05, 0x2a, 0x03, 0x0a, 0x01, 0x41})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if out, err := detect.ReshapeBlazeFace(b, 576, 768); err == nil {
			t.Fatalf("%d bytes that are not the model rewritten into %d", len(b), len(out))
		}
	})
}
