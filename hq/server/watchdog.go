package server

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// storeAnswerTimeout bounds the store query that proves veil-hq alive.
const storeAnswerTimeout = 10 * time.Second

// watchdog tells systemd veil-hq is ready (veil-hq.service is Type=notify)
// and, when the unit has WatchdogSec, keeps telling it veil-hq is alive at
// half that interval while the store answers. A lost broker is not a hang
// (the ingest reconnects by itself) and does not stop the pings. Without
// systemd (no NOTIFY_SOCKET) it does nothing.
func (s *Server) watchdog(ctx context.Context) {
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		s.log.Warn("systemd notify", "err", err)
	}
	defer func() { _, _ = daemon.SdNotify(false, daemon.SdNotifyStopping) }()
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	var warned bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, storeAnswerTimeout)
		_, err := s.store.Devices(qctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !warned {
				s.log.Error("veil-hq: the store does not answer; no longer feeding the systemd watchdog, which will restart veil-hq", "err", err)
				warned = true
			}
			continue
		}
		warned = false
		_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
	}
}
