#!/usr/bin/env bash
# Runs the veil demo: sets the machine up (scripts/setup.sh), then redacts every
# face in OpenCV's sample video (from opencv-doc) into out/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$VEIL_ROOT"

"$VEIL_ROOT/scripts/setup.sh"

INPUT=/usr/share/doc/opencv-doc/examples/data/vtest.avi
OUTPUT=out/vtest.redacted.mp4
REPORT=out/vtest.report.json
[ -f "$INPUT" ] || die "$INPUT not found: apt-get install opencv-doc"
mkdir -p out

say "redacting $INPUT"
bin/veil redact --input "$INPUT" --output "$OUTPUT" --report "$REPORT"

say "done"
echo "  redacted video: $VEIL_ROOT/$OUTPUT"
echo "  report:         $VEIL_ROOT/$REPORT"
