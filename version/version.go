// Package version is the release version a veil or veil-hq binary was built
// as. A release build stamps it with the linker:
//
//	go build -trimpath -ldflags "-X github.com/veil-edge/veil/version.Version=1.4.0" ./cmd/veil
//
// (scripts/package.sh does). It is the version of the Debian packages and
// of the OTA release bundle made from the same build, MAJOR.MINOR.PATCH as
// in firmware/release.
package version

import "runtime/debug"

// Version is set at link time (see the package comment); empty in a
// development build.
var Version string

// String is Version, or for an unstamped build "dev" followed by the VCS
// revision Go recorded, if any (e.g. "dev (8ab0873, modified)").
func String() string {
	if Version != "" {
		return Version
	}
	s := "dev"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return s
	}
	var rev, dirty string
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if rev != "" {
		s += " (" + rev + dirty + ")"
	}
	return s
}
