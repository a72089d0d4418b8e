package release

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Version is a release version, MAJOR.MINOR.PATCH as in Semantic Versioning
// without pre-release or build parts.
type Version struct {
	Major, Minor, Patch uint64
}

// ParseVersion parses "MAJOR.MINOR.PATCH": three decimal numbers without
// signs, spaces or leading zeros (so every version has exactly one spelling).
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH, e.g. 1.4.2", s)
	}
	var n [3]uint64
	for i, p := range parts {
		if p == "" {
			return Version{}, fmt.Errorf("version %q: empty number; want MAJOR.MINOR.PATCH, e.g. 1.4.2", s)
		}
		if len(p) > 1 && p[0] == '0' {
			return Version{}, fmt.Errorf("version %q: %q has a leading zero", s, p)
		}
		for _, c := range []byte(p) {
			if c < '0' || c > '9' {
				return Version{}, fmt.Errorf("version %q: %q is not a decimal number", s, p)
			}
		}
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Version{}, fmt.Errorf("version %q: %q is too large", s, p)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

// String is the canonical form, e.g. "1.4.2".
func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer than w.
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, w.Minor); c != 0 {
		return c
	}
	return cmp.Compare(v.Patch, w.Patch)
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool { return v.Compare(w) < 0 }
