//go:build matprofile

package testenv

import (
	"strings"

	"gocv.io/x/gocv"
)

// MatProfileOn reports whether Mat leak tracking is compiled in.
const MatProfileOn = true

func matLeaks() (int, string) {
	var b strings.Builder
	gocv.MatProfile.WriteTo(&b, 1)
	return gocv.MatProfile.Count(), b.String()
}
