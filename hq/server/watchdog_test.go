package server

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-edge/veil/testkit/mqtttest"
)

// TestSystemdWatchdog runs veil-hq as systemd would with Type=notify and
// WatchdogSec (NOTIFY_SOCKET, WATCHDOG_USEC): READY=1 once it serves,
// WATCHDOG=1 while the store answers, none once the store is closed (a
// store that cannot answer).
func TestSystemdWatchdog(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	srv, _ := startHQ(t, b, slog.New(slog.DiscardHandler))
	read := func(d time.Duration) string {
		var msgs []string
		buf := make([]byte, 256)
		until := time.Now().Add(d)
		for {
			_ = conn.SetReadDeadline(until)
			n, err := conn.Read(buf)
			if err != nil {
				return strings.Join(msgs, "\n")
			}
			msgs = append(msgs, string(buf[:n]))
		}
	}
	got := read(time.Second)
	if !strings.Contains(got, "READY=1") || strings.Count(got, "WATCHDOG=1") < 2 {
		t.Fatalf("while healthy systemd got %q; want READY=1 and regular WATCHDOG=1", got)
	}
	srv.Store().Close() // the store stops answering
	read(300 * time.Millisecond)
	if got := read(time.Second); strings.Contains(got, "WATCHDOG=1") {
		t.Errorf("pinged the watchdog while the store fails: %q", got)
	}
}
