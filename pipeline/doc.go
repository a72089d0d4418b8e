// Package pipeline turns raw camera frames into redacted frames.
//
// It is the only package that holds raw frames. A Source fills frames; every
// frame goes through detection scheduling, tracking and blur.Redactor before
// a Sink sees it, and a Sink accepts only *blur.Redacted, so no code path can
// hand a raw frame to a sink.
//
// Scheduling: detection runs on keyframes (every Options.Every frames, and the
// last frame) on worker goroutines, each with its own Detector. Frames wait in
// order until the keyframes on both sides of them are done, so the tracker
// can cover a face on the frames before it was first detected as well as after
// it was last seen.
//
// Fail closed: a frame is redacted around known faces only when the keyframes
// that bracket it were detected successfully and on time. A detector error, a
// missing model (no detector at all), a keyframe that misses its deadline, or
// a frame whose keyframes never completed is redacted whole.
//
// Targets: besides faces, Pipeline.Target may ask for every tracked person's
// head or whole body to be redacted, from the boxes a People source (the
// footfall tracker) gives for each frame's time. These regions fail closed
// too: a frame whose people are not known, or any frame when there is no
// People source, is redacted whole. Consent exempts faces only, never a head
// or body region.
package pipeline
