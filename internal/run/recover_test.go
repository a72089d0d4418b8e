package run_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/run"
)

// mjpegServer is a network camera: an HTTP MJPEG stream that a test can
// take away and bring back on the same address.
type mjpegServer struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
}

func startMJPEG(t *testing.T) *mjpegServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mjpegServer{t: t, addr: l.Addr().String()}
	s.serve(l)
	t.Cleanup(s.stop)
	return s
}

func (s *mjpegServer) url() string { return "http://" + s.addr + "/camera.mjpg" }

func (s *mjpegServer) serve(l net.Listener) {
	frame := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC3)
	frame.SetTo(gocv.NewScalar(60, 110, 90, 0))
	b, err := gocv.IMEncode(gocv.JPEGFileExt, frame)
	frame.Close()
	if err != nil {
		s.t.Fatal(err)
	}
	jpeg := append([]byte(nil), b.GetBytes()...)
	b.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(jpeg))
			_, _ = w.Write(jpeg)
			_, _ = fmt.Fprint(w, "\r\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	})}
	done := make(chan struct{})
	go func() { _ = srv.Serve(l); close(done) }()
	s.mu.Lock()
	s.srv, s.done = srv, done
	s.mu.Unlock()
}

// stop takes the camera off the network: the listener and every stream.
func (s *mjpegServer) stop() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		<-done
	}
}

// start brings it back on the same address.
func (s *mjpegServer) start() {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(l)
}

// TestCameraFailureIsolated: a network camera goes away mid-run and comes
// back. While it is gone it is reported unhealthy and retried with
// back-off; the other camera keeps delivering at its rate; when it returns
// it recovers by itself.
func TestCameraFailureIsolated(t *testing.T) {
	cam := startMJPEG(t)
	cfg := testConfig(t)
	cams := []config.Camera{
		{Name: "street", Source: cam.url()},
		{Name: "door", Source: scene(t), Loop: true},
	}
	svc, err := run.New(run.Options{Config: cfg, Cameras: cams, Log: slog.New(slog.DiscardHandler), MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor := func(what string, d time.Duration, ok func(run.Health) bool) run.Health {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			h := svc.Health()
			if ok(h) {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s: %+v", what, d, h.Cameras)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// rate measures the door camera's frames per second over d.
	rate := func(d time.Duration) float64 {
		f0 := svc.Health().Cameras[1].Frames
		time.Sleep(d)
		return float64(svc.Health().Cameras[1].Frames-f0) / d.Seconds()
	}
	waitFor("both cameras delivering", 15*time.Second, func(h run.Health) bool {
		return h.Cameras[0].Frames > 10 && h.Cameras[1].Frames > 10
	})
	before := rate(2 * time.Second)

	cam.stop()
	h := waitFor("street reported down and retried", 10*time.Second, func(h run.Health) bool {
		return !h.Cameras[0].Healthy && h.Cameras[0].FPS == 0 && h.Cameras[0].Restarts >= 2 && h.Cameras[0].LastError != ""
	})
	t.Logf("street while down: %+v", h.Cameras[0])
	during := rate(2 * time.Second)
	if !svc.Health().Cameras[1].Healthy {
		t.Error("door camera unhealthy while street was down")
	}

	cam.start()
	h = waitFor("street recovered", 15*time.Second, func(h run.Health) bool {
		return h.Cameras[0].Healthy && h.Cameras[0].FPS > 0
	})
	t.Logf("door: %.1f fps before, %.1f fps while street was down; street after recovery: %+v", before, during, h.Cameras[0])
	// The door camera plays a 10 fps file at its own pace; a neighbour's
	// failure must not slow it. The bound is loose so a busy machine does
	// not fail the test; a camera stalled by its neighbour would be near 0.
	if during < 0.6*before {
		t.Errorf("door camera slowed from %.1f to %.1f fps while street was down", before, during)
	}
}
