package box_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/box"
	"github.com/veil-edge/veil/config"
)

// TestSystemdWatchdog runs the service as systemd would with WatchdogSec
// (NOTIFY_SOCKET, WATCHDOG_USEC): it says READY=1, pings WATCHDOG=1 while
// its cameras make progress, stops pinging when a camera is stuck (neither
// frames nor failures), and says STOPPING=1 on shutdown.
func TestSystemdWatchdog(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cam      config.Camera
		hung     time.Duration
		wantPing bool
	}{
		{"working camera", config.Camera{Name: "door", Source: scene(t), Loop: true}, 0, true},
		{"stuck camera", config.Camera{Name: "door", Source: "/nonexistent/video.avi"}, 300 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "notify")
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			t.Setenv("NOTIFY_SOCKET", sock)
			t.Setenv("WATCHDOG_USEC", "200000")
			svc, err := box.New(box.Options{Config: testConfig(t), Cameras: []config.Camera{tc.cam}, Log: slog.New(slog.DiscardHandler),
				MinBackoff: time.Minute, MaxBackoff: time.Minute, HungAfter: tc.hung})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			var msgs []string
			read := func(until time.Time) {
				buf := make([]byte, 256)
				for {
					_ = conn.SetReadDeadline(until)
					n, err := conn.Read(buf)
					if err != nil {
						return
					}
					msgs = append(msgs, string(buf[:n]))
				}
			}
			read(time.Now().Add(2 * time.Second))
			pings := strings.Count(strings.Join(msgs, "\n"), "WATCHDOG=1")
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			read(time.Now().Add(500 * time.Millisecond))
			t.Logf("messages: %q", msgs)
			if len(msgs) == 0 || msgs[0] != "READY=1" {
				t.Fatalf("first message %q, want READY=1", msgs)
			}
			if tc.wantPing && pings < 5 {
				t.Errorf("%d watchdog pings in 2 s at a 200 ms watchdog, want about 10", pings)
			}
			if !tc.wantPing && pings > 3 {
				t.Errorf("%d watchdog pings while the camera is stuck, want at most the first few", pings)
			}
			if msgs[len(msgs)-1] != "STOPPING=1" {
				t.Errorf("last message %q, want STOPPING=1", msgs[len(msgs)-1])
			}
		})
	}
}
