# Sourced by sdk/run.sh and conformance/run.sh: builds the emulator (debug), starts it on a free
# port and waits until it listens. Sets PID, LOG (its output) and URL (http://127.0.0.1:PORT); the
# caller stops it (kill "$PID") and removes "$LOG" when done, usually from its EXIT trap.
# EMULATOR_BIN names a binary to start instead (CI runs the SDKs against the profile-guided build).
if [ -n "${EMULATOR_BIN:-}" ]; then
  BIN=$EMULATOR_BIN
else
  cargo build --quiet --bin credit-emulator
  BIN="${CARGO_TARGET_DIR:-target}/debug/credit-emulator"
fi
LOG=$(mktemp)
"$BIN" --port 0 >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$LOG" && break
  sleep 0.05
done
URL=$(sed -n 's/^listening on //p' "$LOG" | head -n 1)
if [ -z "$URL" ]; then
  echo "emulator did not start"
  cat "$LOG"
  kill "$PID" 2>/dev/null || true
  exit 1
fi
