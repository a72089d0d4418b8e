#!/usr/bin/env bash
# Runs the veil demo: sets the machine up (scripts/setup.sh), redacts every
# face in OpenCV's sample video (from opencv-doc) into out/, then runs the
# sample as a live shop camera (veil demo) with footfall counting and an
# embedded MQTT broker, printing the count reports head office would receive.
# VEIL_DEMO_DURATION sets how long the live part runs (default 45s; 0 runs
# until Ctrl-C).
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

echo "  redacted video: $VEIL_ROOT/$OUTPUT"
echo "  report:         $VEIL_ROOT/$REPORT"

say "live demo for ${VEIL_DEMO_DURATION:-45s}: counting people on $INPUT, reports over an embedded MQTT broker into veil-hq (dashboard address and login printed below)"
bin/veil demo --duration "${VEIL_DEMO_DURATION:-45s}" --dir out/demo

say "done"
echo "  redacted video: $VEIL_ROOT/$OUTPUT"
echo "  report:         $VEIL_ROOT/$REPORT"
echo "  demo outbox:    $VEIL_ROOT/out/demo/outbox"
echo "  head office:    $VEIL_ROOT/out/demo/hq.db (veil-hq's database of the demo's counts)"
