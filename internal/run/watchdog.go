package run

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// watchdog tells systemd veil is ready and, when the unit has WatchdogSec,
// keeps telling it veil is alive at half that interval, as long as alive
// says so. Without systemd (no NOTIFY_SOCKET) it does nothing.
func (s *Service) watchdog(ctx context.Context) {
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
		if err := s.alive(time.Now()); err != nil {
			if !warned {
				s.log.Error("veil looks hung; no longer feeding the systemd watchdog, which will restart it", "err", err)
				warned = true
			}
			continue
		}
		warned = false
		_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
	}
}

// alive reports whether every camera made progress lately: a redacted frame
// out, or a failure its supervisor is handling. A camera with neither for
// HungAfter is stuck somewhere no retry reaches (a read that never returns),
// which only a restart of the process can clear.
func (s *Service) alive(now time.Time) error {
	hung := s.o.HungAfter
	if hung <= 0 {
		hung = 90 * time.Second
	}
	for _, c := range s.cams {
		c.mu.Lock()
		last := s.started
		for _, t := range []time.Time{c.lastOut, c.lastFail} {
			if t.After(last) {
				last = t
			}
		}
		c.mu.Unlock()
		if d := now.Sub(last); d > hung {
			return fmt.Errorf("camera %s: no frame and no failure for %s", c.cfg.Name, d.Round(time.Second))
		}
	}
	return nil
}
