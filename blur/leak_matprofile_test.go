//go:build matprofile

package blur

import (
	"strings"

	"gocv.io/x/gocv"
)

// matProfileOn says whether gocv counts live Mats (built with -tags matprofile).
const matProfileOn = true

// matCount returns the number of live Mats.
func matCount() int { return gocv.MatProfile.Count() }

// matProfile returns the creation stacks of the live Mats.
func matProfile() string {
	var b strings.Builder
	_ = gocv.MatProfile.WriteTo(&b, 1)
	return b.String()
}
