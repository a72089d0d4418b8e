//go:build !crashpoints

package crashpoint

// Enabled reports whether this build honours VEIL_CRASHPOINT.
const Enabled = false

// Hit does nothing: this build has no crash points.
func Hit(string) {}
