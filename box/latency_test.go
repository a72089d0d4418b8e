package box_test

import (
	"cmp"
	"fmt"
	"image"
	"io"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/veil-edge/veil/config"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/camtest"
	"github.com/veil-edge/veil/testkit/testenv"
)

// BenchmarkLiveLatency measures glass-to-glass latency of the live view on
// loopback: a network camera (HTTP MJPEG) plays vtest.avi (768x576) with
// each frame's number stamped in its bottom-left corner and notes when it
// sent each frame; veil run's service redacts it (default detection
// settings) and streams it over WebRTC to headless Chromium, whose page
// reads the stamp of every frame it presents. Latency is the browser's
// clock at presentation minus the camera's at sending (one machine, one
// clock). Reported: median and p95 in ms, and the share of presented frames
// whose stamp could be read (frames redacted whole hide it).
//
//	go test -run XXX -bench LiveLatency -benchtime 1x ./box/
func BenchmarkLiveLatency(b *testing.B) {
	for _, tc := range []struct {
		fps     float64
		minFace int // the camera's min_face; 0 keeps detect.min_face (12)
	}{{10, 0}, {10, 24}, {25, 24}} {
		b.Run(fmt.Sprintf("768x576@%gfps/min_face=%d", tc.fps, cmp.Or(tc.minFace, config.Default.Detect.MinFace)), func(b *testing.B) {
			for range b.N {
				liveLatency(b, tc.fps, tc.minFace, 20*time.Second)
			}
		})
	}
}

func liveLatency(b *testing.B, fps float64, minFace int, measure time.Duration) {
	bin := chromiumPath(b)
	testenv.Need(b, testenv.VTest)
	cfg := testConfig(b)
	cfg.Detect.Threads = 2
	if _, err := models.Verify(cfg.Models.Dir); err != nil {
		testenv.Missing(b, fmt.Sprintf("face models: %v (run scripts/setup.sh)", err))
	}
	frames, closeFrames, err := camtest.Looping(testenv.VTest)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFrames()
	cam := camtest.Start(b, fps, frames, true)
	defer cam.Stop()

	svc, base, stop := startLiveService(b, cfg, []config.Camera{{Name: "door", Source: cam.URL(), MinFace: minFace}}, io.Discard)
	defer stop()
	bctx, closeBrowser := openBrowser(b, bin, measure+60*time.Second)
	defer closeBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/login")); err != nil {
		b.Fatalf("opening the login page: %v", err)
	}
	browserLogin(b, bctx, "correct horse", `#video-door`)
	waitPlaying(b, bctx, "video-door", image.Pt(768, 576), time.Now().Add(30*time.Second))

	startStampReaders(b, bctx, "video-door")
	b.ResetTimer()
	time.Sleep(measure)
	b.StopTimer()
	stamps, _ := readStamps(b, bctx)
	seen := stamps["video-door"]
	lat := latencies(cam, seen)
	if len(lat) < 20 {
		b.Fatalf("only %d of %d presented frames had a readable stamp in %s", len(lat), len(seen), measure)
	}
	q := func(p float64) float64 { return quantile(lat, p) }
	h := svc.Health().Cameras[0]
	b.ReportMetric(q(0.5), "ms-median")
	b.ReportMetric(q(0.95), "ms-p95")
	b.ReportMetric(float64(len(lat))/float64(len(seen)), "readable")
	b.Logf("%d frames presented in %s, %d with a readable stamp: latency min %.0f, median %.0f, p95 %.0f, max %.0f ms; camera: %.1f fps in, %.1f out, %d dropped, detect %.1f ms, %d redacted whole",
		len(seen), measure, len(lat), lat[0], q(0.5), q(0.95), lat[len(lat)-1], h.FPSIn, h.FPS, h.Dropped, h.DetectMS, h.Whole)
}
