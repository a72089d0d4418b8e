//go:build !matprofile

package blur

// matProfileOn says whether gocv counts live Mats (built with -tags matprofile).
const matProfileOn = false

// matCount returns 0: live Mats are only counted with -tags matprofile.
func matCount() int { return 0 }

// matProfile returns "": live Mats are only counted with -tags matprofile.
func matProfile() string { return "" }
