# shellcheck shell=bash
# Common helpers for veil's scripts. Source it; it does not run anything.

# The repository root, whatever the caller's working directory.
VEIL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VEIL_ROOT

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# veil_go_env puts Go on PATH (it lives in /usr/local/go on the project's
# machines) and sets the go flags veil builds with.
veil_go_env() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null 2>&1 ||
		die "go not found: install Go $(sed -n 's/^go //p' "$VEIL_ROOT/go.mod") or newer (https://go.dev/doc/install) and put it on PATH"
	# -mod=mod: let go add missing go.sum lines while the module graph settles.
	case " ${GOFLAGS:-} " in
	*" -mod="*) ;;
	*) export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" ;;
	esac
	# gocv is cgo: make sure it is on even if the environment turned it off.
	export CGO_ENABLED=1
}
