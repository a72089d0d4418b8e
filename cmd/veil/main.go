// Command veil is the edge-camera privacy filter. See `veil --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/veil-edge/veil/internal/cli"
	"github.com/veil-edge/veil/internal/malloc"
)

func main() {
	malloc.FixMmapThreshold() // frame buffers: see package malloc
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
