// Command veil-hq is head office's server: it aggregates every shop box's
// footfall counts and serves the dashboard. See `veil-hq --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/veil-edge/veil/internal/hqcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := hqcli.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
