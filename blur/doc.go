// Package blur redacts faces in frames and owns the Redacted frame type.
//
// Redacted is the only frame type that sinks (files, live view, snapshots)
// accept, and the only way to make one is Redactor.Redact. A Plan says what to
// redact; its zero value means "faces unknown" and redacts the whole frame, so
// forgetting to fill a plan fails closed.
package blur
