package box_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/internal/app"
	"github.com/veil-edge/veil/testkit/testenv"
)

// runFor runs the box's cameras for d and returns its last health.
func runFor(t *testing.T, cfg config.Config, cams []config.Camera, d time.Duration) box.Health {
	t.Helper()
	svc, err := box.New(box.Options{Config: cfg, Cameras: cams, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var h box.Health
	for ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		h = svc.Health()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return h
}

// TestCountsPeople: a box camera playing vtest.avi counts with the person
// detector on the box's detection service (shared with the face search)
// and says so in its health; without the person model it counts moving
// blobs instead, and its health says why and is degraded, not silent.
// With redact.target bodies a camera without lines tracks people too, and
// its frames are redacted around them, not whole.
func TestCountsPeople(t *testing.T) {
	testenv.Need(t, testenv.VTest)
	door := config.Camera{Name: "door", Source: testenv.VTest, Loop: true,
		Lines: []config.CountLine{{Name: "entrance", Line: [4]int{350, 150, 350, 450}}}}

	t.Run("people", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Footfall.Detector = config.DetectPeople
		h := runFor(t, cfg, []config.Camera{door}, 12*time.Second)
		c := h.Cameras[0]
		if c.Counting != config.DetectPeople || c.CountingFallback != "" {
			t.Errorf("camera counts with %q (fallback %q), want people", c.Counting, c.CountingFallback)
		}
		if h.Detect == nil || h.Detect.PeoplePasses == 0 || h.Detect.Passes == 0 {
			t.Errorf("detection service %+v: want face and person passes", h.Detect)
		}
		// Frames 13 and 63 of vtest.avi cross this line (hand count).
		if n := c.Lines[0].In + c.Lines[0].Out; n == 0 {
			t.Errorf("no crossing counted in 12 s of vtest.avi: %+v", c)
		}
		t.Logf("health: %+v; detect %+v", c, *h.Detect)
	})

	t.Run("fallback", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Footfall.Detector = config.DetectPeople
		cfg.Models.Dir = testenv.ModelsCopy(t, app.PersonModel, false, true)
		h := runFor(t, cfg, []config.Camera{door}, 4*time.Second)
		c := h.Cameras[0]
		if c.Counting != config.DetectMotion || !strings.Contains(c.CountingFallback, "veil models fetch") {
			t.Errorf("camera counts with %q (fallback %q), want motion and the reason", c.Counting, c.CountingFallback)
		}
		if h.Status != "degraded" {
			t.Errorf("status %q, want degraded while counting falls back", h.Status)
		}
	})

	t.Run("bodies", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Redact.Target = config.TargetBodies
		view := config.Camera{Name: "view", Source: testenv.VTest, Loop: true}
		h := runFor(t, cfg, []config.Camera{view}, 8*time.Second)
		c := h.Cameras[0]
		if c.Frames == 0 || c.Whole > c.Frames/2 {
			t.Errorf("%d of %d frames redacted whole with redact.target bodies: people not tracked?", c.Whole, c.Frames)
		}
		if h.Detect == nil || h.Detect.PeoplePasses == 0 {
			t.Errorf("no person passes with redact.target bodies: %+v", h.Detect)
		}
	})
}
