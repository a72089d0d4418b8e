// Package media reads and writes video files: FileSource implements
// pipeline.Source and FileSink implements pipeline.Sink; LiveSource reads a
// camera (a stream, a device, a file paced as one) and OpenFileCamera plays
// a file as a camera that runs on its own, dropping the frames veil does not
// read in time and telling each frame's position in the file.
//
// FileSink writes to a hidden temporary file next to the output and renames it
// into place only on Commit, so a failed run never leaves a half-written
// output behind.
package media
