package detect

// GateOptions tunes the change gate of a Frame detector: what counts as
// pixels that changed since they were last scanned.
type GateOptions struct {
	// Scale is the factor a frame is shrunk by (grey, area-averaged) before
	// comparing; 0.25 turns a 16 px face into 4x4 samples.
	Scale float64
	// Threshold is the grey-level difference that counts as a change.
	Threshold float32
	// MinPixels changed samples make a 32-pixel cell dirty.
	MinPixels int
}
