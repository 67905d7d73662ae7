#!/usr/bin/env bash
# Runs the official Python SDKs (stripe, flexprice from PyPI) against a freshly started emulator.
# Usage: bash sdk/run.sh            (creates .venv-sdk on first use)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-sdk
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r sdk/python/requirements.txt

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
echo "sdk: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
