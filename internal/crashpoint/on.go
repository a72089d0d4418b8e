//go:build crashpoints

package crashpoint

import (
	"os"
	"syscall"
)

// Enabled reports whether this build honours VEIL_CRASHPOINT.
const Enabled = true

var point = os.Getenv(Env)

// Hit kills the process with SIGKILL (no deferred functions, no flushing:
// a power cut as far as the disk is concerned) when VEIL_CRASHPOINT is name.
func Hit(name string) {
	if point == name {
		os.Stderr.WriteString(`{"msg":"crashpoint","point":"` + name + `"}` + "\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
