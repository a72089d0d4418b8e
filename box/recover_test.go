package box_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/testkit/camtest"
)

// TestCameraFailureIsolated: a network camera goes away mid-run and comes
// back. While it is gone it is reported unhealthy and retried with
// back-off; the other camera keeps delivering at its rate; when it returns
// it recovers by itself.
func TestCameraFailureIsolated(t *testing.T) {
	frames, err := camtest.Solid(320, 240)
	if err != nil {
		t.Fatal(err)
	}
	cam := camtest.Start(t, 10, frames, false)
	cfg := testConfig(t)
	cams := []config.Camera{
		{Name: "street", Source: cam.URL()},
		{Name: "door", Source: scene(t), Loop: true},
	}
	svc, err := box.New(box.Options{Config: cfg, Cameras: cams, Log: slog.New(slog.DiscardHandler), MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second})
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
	waitFor := func(what string, d time.Duration, ok func(box.Health) bool) box.Health {
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
	waitFor("both cameras delivering", 15*time.Second, func(h box.Health) bool {
		return h.Cameras[0].Frames > 10 && h.Cameras[1].Frames > 10
	})
	before := rate(2 * time.Second)

	cam.Stop()
	h := waitFor("street reported down and retried", 10*time.Second, func(h box.Health) bool {
		return !h.Cameras[0].Healthy && h.Cameras[0].FPS == 0 && h.Cameras[0].Restarts >= 2 && h.Cameras[0].LastError != ""
	})
	t.Logf("street while down: %+v", h.Cameras[0])
	during := rate(2 * time.Second)
	if !svc.Health().Cameras[1].Healthy {
		t.Error("door camera unhealthy while street was down")
	}

	cam.Restart()
	h = waitFor("street recovered", 15*time.Second, func(h box.Health) bool {
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
