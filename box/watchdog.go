package box

import (
	"context"
	"fmt"
	"time"

	"github.com/veil-edge/veil/internal/sdwatchdog"
)

// watchdog tells systemd veil is ready and, when the unit has WatchdogSec,
// keeps telling it veil is alive while every camera makes progress.
func (s *Service) watchdog(ctx context.Context) {
	sdwatchdog.Run(ctx, s.log, "veil looks hung; no longer feeding the systemd watchdog, which will restart it",
		func(context.Context) error { return s.alive(time.Now()) })
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
