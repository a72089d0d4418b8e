//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package egress

import "os"

// lockFileExclusive does nothing where flock is not available: there,
// keeping two processes off one outbox directory is the caller's job.
func lockFileExclusive(*os.File) error { return nil }
