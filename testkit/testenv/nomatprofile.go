//go:build !matprofile

package testenv

// MatProfileOn reports whether Mat leak tracking is compiled in; build tests
// with -tags matprofile (scripts/test.sh does) to turn it on.
const MatProfileOn = false

func matLeaks() (int, string) { return 0, "" }
