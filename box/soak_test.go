package box_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/models"
	"github.com/veil-edge/veil/testkit/camtest"
	"github.com/veil-edge/veil/testkit/testenv"
	"github.com/veil-edge/veil/web"
)

var (
	soakFor   = flag.Duration("soak.for", 10*time.Minute, "BenchmarkSoak: how long veil runs")
	soakEvery = flag.Duration("soak.every", 10*time.Second, "BenchmarkSoak: RSS sampling interval")
	soakOut   = flag.String("soak.out", "", "BenchmarkSoak: write the RSS samples to this CSV file")
)

// BenchmarkSoak runs the real veil binary (`veil run`) with two cameras for
// -soak.for (10 minutes by default): a looping file with a counting line,
// and a network camera (HTTP MJPEG) playing vtest.avi, each watched by a
// WebRTC viewer the whole time. It samples veil's resident memory every
// -soak.every and reports the RSS after a one-minute warm-up, at the end,
// the peak, and the growth after warm-up (least-squares slope, MB per
// hour); -soak.out writes every sample as CSV.
//
//	go test -run XXX -bench Soak -benchtime 1x -timeout 30m ./box/ -soak.out /tmp/soak.csv
func BenchmarkSoak(b *testing.B) {
	for range b.N {
		soak(b, *soakFor, *soakEvery)
	}
}

type rssSample struct {
	at                time.Duration
	rssMB, goHeapMB   float64
	framesA, framesB  int64
	viewers, restarts int
}

func soak(b *testing.B, d, every time.Duration) {
	testenv.Need(b, testenv.VTest)
	if _, err := models.Verify(testenv.ModelsDir()); err != nil {
		testenv.Missing(b, fmt.Sprintf("face models: %v (run scripts/setup.sh)", err))
	}
	bin := testenv.BuildVeil(b)
	frames, closeFrames, err := camtest.Looping(testenv.VTest)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFrames()
	cam := camtest.Start(b, 10, frames, false)
	defer cam.Stop()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	hash, err := web.HashPassword("correct horse")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	models, _ := filepath.Abs(testenv.ModelsDir())
	cfg := filepath.Join(dir, "veil.yaml")
	yaml := strings.Join([]string{
		"log: {format: json}",
		"models: {dir: " + models + "}",
		"site: {store: soak, device: box}",
		"footfall: {window: 1m, journal_dir: " + filepath.Join(dir, "open") + "}",
		"outbox: {dir: " + filepath.Join(dir, "outbox") + "}",
		fmt.Sprintf("http: {listen: %q, password_hash: %q}", addr, hash),
		"cameras:",
		"  - name: door",
		"    source: " + testenv.VTest,
		"    loop: true",
		"    lines: [{name: entrance, line: [350, 150, 350, 450]}]",
		"  - name: street",
		"    source: " + cam.URL(),
	}, "\n") + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	v := startVeil(b, bin, cfg)
	base := "http://" + addr
	health := func() (box.Health, bool) {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return box.Health{}, false
		}
		defer resp.Body.Close()
		var h box.Health
		return h, json.NewDecoder(resp.Body).Decode(&h) == nil && len(h.Cameras) == 2
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if h, ok := health(); ok && h.Cameras[0].Frames > 0 && h.Cameras[1].Frames > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("veil's cameras not running after 60 s:\n%s", v.stderr.String())
		}
	}
	for _, name := range []string{"door", "street"} {
		_, closeViewer := goViewer(b, operatorClient(b, base, name))
		defer closeViewer()
	}

	b.ResetTimer()
	start := time.Now()
	var samples []rssSample
	for {
		h, ok := health()
		if !ok {
			b.Fatalf("veil stopped answering /healthz after %s:\n%s", time.Since(start).Round(time.Second), v.stderr.String())
		}
		s := rssSample{at: time.Since(start), rssMB: rssMB(b, v.cmd.Process.Pid), goHeapMB: scrape(b, base+"/metrics")["go_memstats_heap_inuse_bytes"] / (1 << 20),
			framesA: h.Cameras[0].Frames, framesB: h.Cameras[1].Frames,
			viewers: h.Cameras[0].Viewers + h.Cameras[1].Viewers, restarts: h.Cameras[0].Restarts + h.Cameras[1].Restarts}
		samples = append(samples, s)
		if len(samples)%6 == 1 {
			b.Logf("%6s  RSS %6.1f MB (Go heap %5.1f MB)  frames door %d street %d  viewers %d  restarts %d", s.at.Round(time.Second), s.rssMB, s.goHeapMB, s.framesA, s.framesB, s.viewers, s.restarts)
		}
		if s.at >= d {
			break
		}
		time.Sleep(every)
	}
	b.StopTimer()
	// A clean stop, within a few seconds, after the whole run.
	if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	select {
	case <-v.exited:
		if v.err != nil {
			b.Errorf("veil did not exit cleanly after SIGTERM: %v", v.err)
		}
	case <-time.After(10 * time.Second):
		b.Errorf("veil still running 10 s after SIGTERM")
	}

	warm := 0
	for warm < len(samples)-2 && samples[warm].at < time.Minute {
		warm++
	}
	var peak float64
	for _, s := range samples {
		peak = max(peak, s.rssMB)
	}
	tail := samples[warm:]
	slope := slopeMBPerHour(tail)
	last := samples[len(samples)-1]
	b.ReportMetric(tail[0].rssMB, "MB-rss-warm")
	b.ReportMetric(last.rssMB, "MB-rss-end")
	b.ReportMetric(peak, "MB-rss-peak")
	b.ReportMetric(slope, "MB/h-growth")
	b.Logf("RSS after warm-up %.1f MB, at the end %.1f MB, peak %.1f MB, growth %.1f MB/h over %s; frames door %d, street %d; viewers at the end %d",
		tail[0].rssMB, last.rssMB, peak, slope, (last.at - tail[0].at).Round(time.Second), last.framesA, last.framesB, last.viewers)
	if last.viewers != 2 {
		b.Errorf("%d viewers at the end, want 2", last.viewers)
	}
	if *soakOut != "" {
		var sb strings.Builder
		sb.WriteString("seconds,rss_mb,go_heap_mb,frames_door,frames_street,viewers,restarts\n")
		for _, s := range samples {
			fmt.Fprintf(&sb, "%.0f,%.1f,%.1f,%d,%d,%d,%d\n", s.at.Seconds(), s.rssMB, s.goHeapMB, s.framesA, s.framesB, s.viewers, s.restarts)
		}
		if err := os.WriteFile(*soakOut, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// rssMB is a process's resident set size from /proc.
func rssMB(tb testing.TB, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb / 1024
		}
	}
	tb.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// slopeMBPerHour fits RSS = a + b*t by least squares.
func slopeMBPerHour(s []rssSample) float64 {
	if len(s) < 2 {
		return 0
	}
	var st, sr, stt, str float64
	for _, x := range s {
		t := x.at.Hours()
		st += t
		sr += x.rssMB
		stt += t * t
		str += t * x.rssMB
	}
	n := float64(len(s))
	den := n*stt - st*st
	if den == 0 {
		return 0
	}
	return (n*str - st*sr) / den
}
