#!/usr/bin/env bash
# Checks a freshly started emulator against the APIs' published OpenAPI descriptions (Stripe's
# billing-credits subset, Flexprice's credit-grant subset), read from SHARED (default ../shared).
# Usage: bash conformance/run.sh [SHARED]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${1:-../shared}"
[ -f "$SHARED/stripe/openapi-billing-credits.json" ] || { echo "no OpenAPI documents under $SHARED"; exit 1; }

source scripts/start-emulator.sh
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT

status=0
python3 conformance/test_schema.py || status=1
python3 conformance/stripe.py "$URL" "$SHARED" || status=1
python3 conformance/flexprice.py "$URL" "$SHARED" || status=1
exit $status
