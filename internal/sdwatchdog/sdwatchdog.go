// Package sdwatchdog tells systemd a Type=notify service is ready and feeds
// its watchdog (WatchdogSec) while the service says it is alive. veil run
// and veil-hq use it; without systemd (no NOTIFY_SOCKET) it does nothing.
package sdwatchdog

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Run sends READY=1, then, when the unit has a watchdog, WATCHDOG=1 at half
// its interval for as long as alive returns nil, until ctx ends; then it
// sends STOPPING=1. When alive fails, Run stops feeding the watchdog (so
// systemd restarts the service) and logs hung with the error once, until
// alive succeeds again.
func Run(ctx context.Context, log *slog.Logger, hung string, alive func(context.Context) error) {
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify", "err", err)
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
		if err := alive(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !warned {
				log.Error(hung, "err", err)
				warned = true
			}
			continue
		}
		warned = false
		_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
	}
}
