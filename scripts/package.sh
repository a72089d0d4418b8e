#!/usr/bin/env bash
# Builds veil's Debian packages from a release build:
#   scripts/package.sh VERSION [OUT]      (OUT defaults to dist/VERSION)
# writes OUT/veil_VERSION_amd64.deb and OUT/veil-hq_VERSION_amd64.deb, and
# keeps the release binaries OUT/veil and OUT/veil-hq (go build -trimpath,
# stamped with VERSION: `veil --version` prints it), from which the same
# release is published over the air with `veil release add` (printed at the
# end). The face models are fetched and checked against
# models/manifest.json first (veil models fetch) and shipped in the veil
# package. Needs what scripts/setup.sh installs (Go, libopencv-dev, npm,
# dpkg-dev). See docs/PACKAGING.md.
#
# With VEIL_RELEASE_REPO set (an update repository made by `veil release
# init`), the same build is also signed into it as the over-the-air release:
# VEIL_RELEASE_KEYS is the directory holding targets.pem, snapshot.pem and
# timestamp.pem; VEIL_RELEASE_MIN_FROM the oldest version that may update
# straight to it (default 0.0.0: any).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VEIL_ROOT"

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/package.sh VERSION [OUT]"
VERSION=$1
OUT=${2:-dist/$VERSION}
[[ $VERSION =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] || die "version $VERSION: want MAJOR.MINOR.PATCH, e.g. 1.4.0"
command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null || die "dpkg-deb and dpkg-shlibdeps are needed: apt-get install dpkg-dev (scripts/setup.sh does)"

veil_go_env
mkdir -p "$OUT"
REV=$(git rev-parse --short HEAD 2>/dev/null || true)
if [ -n "$REV" ] && [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]; then
	REV="$REV, modified"
fi
LDFLAGS="-s -w -X github.com/veil-edge/veil/version.Version=$VERSION"
say "building $OUT/veil and $OUT/veil-hq $VERSION (release build)"
go build -trimpath -buildmode=pie -ldflags "$LDFLAGS" -o "$OUT/veil" ./cmd/veil
go build -trimpath -buildmode=pie -ldflags "$LDFLAGS" -o "$OUT/veil-hq" ./cmd/veil-hq
got=$("$OUT/veil" --version)
[ "$got" = "veil $VERSION" ] || die "$OUT/veil --version says \"$got\", want \"veil $VERSION\""

say "fetching and verifying the models into models/files"
"$OUT/veil" models fetch --dir models/files

say "building the packages"
go run ./scripts/mkdeb --version "$VERSION" --veil "$OUT/veil" --veil-hq "$OUT/veil-hq" \
	--models models/files --out "$OUT" ${REV:+--revision "$REV"}

if [ -n "${VEIL_RELEASE_REPO:-}" ]; then
	KEYS=${VEIL_RELEASE_KEYS:?VEIL_RELEASE_KEYS: the directory of targets.pem, snapshot.pem and timestamp.pem}
	say "signing the same build into $VEIL_RELEASE_REPO as the over-the-air release $VERSION"
	"$OUT/veil" release add --repo "$VEIL_RELEASE_REPO" --version "$VERSION" --min-from "${VEIL_RELEASE_MIN_FROM:-0.0.0}" \
		--binary "$OUT/veil" --models models/files \
		--targets-key "$KEYS/targets.pem" --snapshot-key "$KEYS/snapshot.pem" --timestamp-key "$KEYS/timestamp.pem"
	say "done: packages in $OUT, release $VERSION in $VEIL_RELEASE_REPO"
	exit 0
fi
say "done. The same build as an over-the-air release (head office, see veil release --help; or set VEIL_RELEASE_REPO):"
echo "  $OUT/veil release add --repo REPO --version $VERSION --min-from MIN_FROM --binary $OUT/veil --models models/files \\"
echo "      --targets-key keys/targets.pem --snapshot-key keys/snapshot.pem --timestamp-key keys/timestamp.pem"
