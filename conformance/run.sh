#!/usr/bin/env bash
# Checks a freshly started emulator against the APIs' published OpenAPI descriptions (Stripe's
# billing-credits subset, Flexprice's credit-grant subset), read from SHARED (default ../shared).
# Usage: bash conformance/run.sh [SHARED]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${1:-../shared}"
[ -f "$SHARED/stripe/openapi-billing-credits.json" ] || { echo "no OpenAPI documents under $SHARED"; exit 1; }

cargo build --quiet --bin credit-emulator
BIN="${CARGO_TARGET_DIR:-target}/debug/credit-emulator"
LOG=$(mktemp)
"$BIN" --port 0 >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$LOG" && break
  sleep 0.05
done
URL=$(sed -n 's/^listening on //p' "$LOG" | head -n 1)
[ -n "$URL" ] || { echo "emulator did not start"; cat "$LOG"; exit 1; }

status=0
python3 conformance/test_schema.py || status=1
python3 conformance/stripe.py "$URL" "$SHARED" || status=1
python3 conformance/flexprice.py "$URL" "$SHARED" || status=1
exit $status
