package vp8

import (
	"errors"
	"fmt"
	"math"
)

// ErrOptions is wrapped by every error about invalid Options.
var ErrOptions = errors.New("vp8: invalid options")

// Limits of Options, inclusive.
const (
	MinSize        = 16
	MaxSize        = 4096
	MinFPS         = 1
	MaxFPS         = 240
	MinBitrateKbps = 50
	MaxBitrateKbps = 50000
	MaxKeyframe    = 10000
	MaxThreads     = 16
)

// Options configure an Encoder. Zero KeyframeInterval and Threads take
// their defaults (see WithDefaults).
type Options struct {
	// Width and Height of every frame in pixels: even, 16..4096.
	Width, Height int
	// FPS is the frame rate frames are encoded for, 1..240. It sets the
	// time base: Frame.PTS counts frames of 1/FPS seconds.
	FPS float64
	// BitrateKbps is the target bitrate (constant bitrate), 50..50000.
	BitrateKbps int
	// KeyframeInterval is the largest gap between keyframes, in frames,
	// 1..10000; 0 means 2*FPS (two seconds).
	KeyframeInterval int
	// Threads is how many threads the encoder uses, 1..16; 0 means 1.
	Threads int
}

// WithDefaults returns o with zero KeyframeInterval and Threads replaced by
// their defaults.
func (o Options) WithDefaults() Options {
	if o.KeyframeInterval == 0 && o.FPS > 0 {
		o.KeyframeInterval = int(math.Round(2 * o.FPS))
		if o.KeyframeInterval < 1 {
			o.KeyframeInterval = 1
		}
	}
	if o.Threads == 0 {
		o.Threads = 1
	}
	return o
}

// Validate reports the first invalid field of o (after defaults), naming it,
// its value and what is allowed. The error wraps ErrOptions.
func (o Options) Validate() error {
	o = o.WithDefaults()
	bad := func(field string, v any, allowed string) error {
		return fmt.Errorf("%w: %s = %v; must be %s", ErrOptions, field, v, allowed)
	}
	sizeRange := fmt.Sprintf("an even number in %d..%d", MinSize, MaxSize)
	switch {
	case o.Width < MinSize || o.Width > MaxSize || o.Width%2 != 0:
		return bad("Width", o.Width, sizeRange)
	case o.Height < MinSize || o.Height > MaxSize || o.Height%2 != 0:
		return bad("Height", o.Height, sizeRange)
	case math.IsNaN(o.FPS) || o.FPS < MinFPS || o.FPS > MaxFPS:
		return bad("FPS", o.FPS, fmt.Sprintf("in %d..%d", MinFPS, MaxFPS))
	case o.BitrateKbps < MinBitrateKbps || o.BitrateKbps > MaxBitrateKbps:
		return bad("BitrateKbps", o.BitrateKbps, fmt.Sprintf("in %d..%d", MinBitrateKbps, MaxBitrateKbps))
	case o.KeyframeInterval < 1 || o.KeyframeInterval > MaxKeyframe:
		return bad("KeyframeInterval", o.KeyframeInterval, fmt.Sprintf("in 1..%d, or 0 for 2*FPS", MaxKeyframe))
	case o.Threads < 1 || o.Threads > MaxThreads:
		return bad("Threads", o.Threads, fmt.Sprintf("in 1..%d, or 0 for 1", MaxThreads))
	}
	return nil
}
