// Package media reads and writes video files: FileSource implements
// pipeline.Source and FileSink implements pipeline.Sink.
//
// FileSink writes to a hidden temporary file next to the output and renames it
// into place only on Commit, so a failed run never leaves a half-written
// output behind.
package media
