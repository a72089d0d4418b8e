package box_test

import (
	"context"
	"encoding/json"
	"image"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/egress"
	"github.com/veil-edge/veil/internal/synth"
	"github.com/veil-edge/veil/testkit/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// scene writes a 6-second walkers video in which one person crosses the
// vertical line x=320 leftwards ("in") about 2 s in.
func scene(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "door.avi")
	ws := []synth.Walker{{From: image.Pt(600, 250), To: image.Pt(60, 250), Start: 5, End: 40, Height: 100}}
	if err := synth.WriteWalkersAVI(path, image.Pt(640, 360), 10, 60, ws, 5); err != nil {
		t.Fatal(err)
	}
	return path
}

func testConfig(t testing.TB) config.Config {
	cfg := config.Default
	cfg.Models.Dir = testenv.ModelsDir()
	cfg.Outbox.Dir = filepath.Join(t.TempDir(), "outbox")
	cfg.Footfall.JournalDir = filepath.Join(t.TempDir(), "open-windows")
	cfg.Footfall.Window = time.Second
	cfg.Site = config.Site{Store: "s1", Device: "d1"}
	cfg.Detect.Threads = 1
	// The scenes' walkers are painted blocks, which the person detector
	// rightly does not take for people: they are counted as moving blobs.
	// TestCountsPeople counts real people (vtest.avi) with the detector.
	cfg.Footfall.Detector = config.DetectMotion
	return cfg
}

// TestBrokenCameraDoesNotStopOthers runs a working camera beside one whose
// source does not exist: the broken one is retried with back-off and
// reported unhealthy, the working one delivers frames and counts, and its
// closed windows (with the one known crossing) land in the outbox.
func TestBrokenCameraDoesNotStopOthers(t *testing.T) {
	video := scene(t)
	cfg := testConfig(t)
	cams := []config.Camera{
		{Name: "door", Source: video, Lines: []config.CountLine{{Name: "entrance", Line: [4]int{320, 40, 320, 340}}}},
		{Name: "broken", Source: filepath.Join(t.TempDir(), "unplugged.avi"), Loop: true},
	}
	svc, err := box.New(box.Options{Config: cfg, Cameras: cams, Log: slog.New(slog.DiscardHandler), MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx, l) }()
	go func() { done <- svc.Run(ctx) }()

	// Mid-run: the door camera is healthy with frames, the broken one is
	// unhealthy, has been retried and says why; /healthz says 503.
	var h box.Health
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(300 * time.Millisecond)
		resp, err := http.Get("http://" + l.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("healthz: %v: %s", err, body)
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("healthz status %d with a broken camera, want 503: %s", resp.StatusCode, body)
		}
		if h.Cameras[0].Frames > 20 && h.Cameras[1].Restarts >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if !h.Cameras[0].Healthy || h.Cameras[0].Frames == 0 {
		t.Errorf("door camera not delivering frames: %+v", h.Cameras[0])
	}
	if b := h.Cameras[1]; b.Healthy || b.Restarts < 2 || b.LastError == "" {
		t.Errorf("broken camera: %+v, want unhealthy, retried, with its error", b)
	}
	// Let the video play out (6 s at its own rate), then stop.
	time.Sleep(time.Until(deadline.Add(-3 * time.Second)))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}

	reports := pendingReports(t, cfg)
	in, out := 0, 0
	for _, r := range reports {
		if r.Camera != "door" || r.Line != "entrance" || r.Store != "s1" || r.Device != "d1" || r.Boot != 1 {
			t.Errorf("unexpected report %+v", r)
		}
		in += r.In
		out += r.Out
	}
	if len(reports) < 3 || in != 1 || out != 0 {
		t.Errorf("%d windows with in=%d out=%d, want >= 3 windows holding the scene's one crossing (in=1, out=0)", len(reports), in, out)
	}
}

func TestNoCameras(t *testing.T) {
	if _, err := box.New(box.Options{Config: testConfig(t)}); err == nil {
		t.Fatal("no cameras accepted")
	}
}

// TestDownCameraReportsNoWindows: a camera with counting lines whose source
// never opens reports no count windows at all (an empty window would read as
// "nobody came"), while a working one reports its windows.
func TestDownCameraReportsNoWindows(t *testing.T) {
	cfg := testConfig(t)
	cams := []config.Camera{
		{Name: "door", Source: scene(t), Loop: true, Lines: []config.CountLine{{Name: "entrance", Line: [4]int{320, 40, 320, 340}}}},
		{Name: "unplugged", Source: filepath.Join(t.TempDir(), "gone.avi"), Lines: []config.CountLine{{Name: "till", Line: [4]int{10, 10, 100, 10}}}},
	}
	svc, err := box.New(box.Options{Config: cfg, Cameras: cams, Log: slog.New(slog.DiscardHandler), MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	if err := svc.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// No broker: the windows wait, and /healthz says for how long.
	if h := svc.Health(); h.Outbox.Pending < 3 || h.Outbox.OldestAge <= 0 || h.Outbox.OldestAge > 10 {
		t.Errorf("/healthz outbox %+v; want >= 3 pending, the oldest ended 0..10 s ago", h.Outbox)
	}
	reports := pendingReports(t, cfg)
	door := 0
	for _, r := range reports {
		if r.Camera == "unplugged" {
			t.Errorf("a camera that never delivered a frame reported a window: %+v", r)
		}
		if r.Camera == "door" {
			door++
		}
	}
	if door < 3 {
		t.Errorf("working camera reported %d windows in 3.5 s of 1 s windows, want >= 3", door)
	}
}

// pendingReports returns what a stopped service left in its outbox.
func pendingReports(t *testing.T, cfg config.Config) []egress.Report {
	t.Helper()
	box, err := egress.OpenOutbox(cfg.Outbox.Dir, egress.OutboxOptions{Store: cfg.Site.Store, Device: cfg.Site.Device, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	reports, err := box.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return reports
}
