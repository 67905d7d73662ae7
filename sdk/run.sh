#!/usr/bin/env bash
# Runs the official SDKs against one freshly started emulator: Python (stripe, flexprice from PyPI,
# one count per script) and Node (stripe from npm, one count per test of `node --test`).
# Usage: bash sdk/run.sh            (creates .venv-sdk on first use; `npm ci` in sdk/node each run)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-sdk
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r sdk/python/requirements.txt

source scripts/start-emulator.sh
TAP=$(mktemp)
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG" "$TAP"' EXIT

passed=0
failed=0
for script in sdk/python/test_*.py; do
  echo "== $script"
  if "$VENV/bin/python" "$script" "$URL"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done

echo "== sdk/node (stripe-node, node $(node --version))"
if (cd sdk/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
  # The spec reporter for people, TAP into a file for the counts.
  node_status=0
  (cd sdk/node && EMULATOR_URL="$URL" node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$TAP" lifecycle.test.mjs usage-billing.test.mjs webhooks.test.mjs) || node_status=$?
  node_passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$TAP" | tail -n 1)
  node_failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$TAP" | tail -n 1)
  passed=$((passed + ${node_passed:-0}))
  failed=$((failed + ${node_failed:-0}))
  # A run that failed without reporting a failed test (a crash, a file that did not load) counts once.
  if [ "$node_status" -ne 0 ] && [ "${node_failed:-0}" -eq 0 ]; then
    failed=$((failed + 1))
  fi
else
  echo "npm ci failed in sdk/node"
  failed=$((failed + 1))
fi

echo "sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
