#!/usr/bin/env bash
# Runs veil's whole test suite on a Debian bookworm machine, installing what it
# needs first (scripts/setup.sh). Extra arguments go to `go test`, e.g.
#   scripts/test.sh -run TestFetch -v
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VEIL_ROOT"

"$VEIL_ROOT/scripts/setup.sh"
veil_go_env

say "go vet ./..."
go vet ./...

say "go test -tags matprofile -count=1 -timeout 10m ./... $*"
go test -tags matprofile -count=1 -timeout 10m ./... "$@"
