package server

import (
	"context"
	"time"

	"github.com/veil-edge/veil/internal/sdwatchdog"
)

// storeAnswerTimeout bounds the store query that proves veil-hq alive.
const storeAnswerTimeout = 10 * time.Second

// watchdog tells systemd veil-hq is ready (veil-hq.service is Type=notify)
// and, when the unit has WatchdogSec, keeps telling it veil-hq is alive
// while the store answers. A lost broker is not a hang (the ingest
// reconnects by itself) and does not stop the pings.
func (s *Server) watchdog(ctx context.Context) {
	sdwatchdog.Run(ctx, s.log, "veil-hq: the store does not answer; no longer feeding the systemd watchdog, which will restart veil-hq",
		func(ctx context.Context) error {
			qctx, cancel := context.WithTimeout(ctx, storeAnswerTimeout)
			defer cancel()
			_, err := s.store.Devices(qctx)
			return err
		})
}
