//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package egress

import (
	"os"
	"syscall"
)

// lockFileExclusive takes an exclusive, non-blocking flock on f. The kernel
// drops it when the process exits, however it exits.
func lockFileExclusive(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
