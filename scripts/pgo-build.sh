#!/usr/bin/env bash
# Builds the emulator with profile-guided optimization: an instrumented build serves the
# benchmark's loads (`bench --train`: its request loads and a year of billing), and the release
# build is then laid out by what those loads ran. The result, target/pgo/credit-emulator, behaves
# exactly as `cargo build --release` builds it and spends less CPU per request (BENCHMARKS.md,
# *Profile-guided optimization*).
#
# Usage: bash scripts/pgo-build.sh [--secs S]   (S seconds per training load, default 2)
#
# Needs the toolchain's llvm-profdata (`rustup component add llvm-tools`; the script asks rustup
# for it when it is missing). The profile is made here, with this toolchain, for this source:
# nothing of it is kept in the repository, so it cannot go stale or mismatch a compiler. Takes
# two release builds of the emulator and one of the benchmark (about ten minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=2
if [ "${1:-}" = "--secs" ] && [ -n "${2:-}" ]; then
  SECS=$2
fi

HOST=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA="$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
  echo "== llvm-profdata is missing; asking rustup for llvm-tools"
  rustup component add llvm-tools >/dev/null 2>&1 || rustup component add llvm-tools-preview || true
fi
# Exit status 3 means only this: the tool is not there (CI tells it apart from a failed build).
if [ ! -x "$PROFDATA" ]; then
  echo "no llvm-profdata at $PROFDATA (rustup component add llvm-tools)" >&2
  exit 3
fi

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# The flags name files by absolute path: cargo does not run rustc in this directory for every crate.
case "$TARGET_DIR" in
  /*) ;;
  *) TARGET_DIR="$(pwd)/$TARGET_DIR" ;;
esac
WORK="$TARGET_DIR/pgo-work"
OUT="$TARGET_DIR/pgo"
PROFILES="$WORK/profiles"
rm -rf "$PROFILES"
mkdir -p "$PROFILES" "$OUT"

# `--target` keeps the flags off build scripts and procedural macros, which run on the host while
# compiling and would otherwise be instrumented (and write profiles of the build itself).
echo "== instrumented build"
RUSTFLAGS="-Cprofile-generate=$PROFILES" cargo build --release --locked --quiet \
  --target "$HOST" --target-dir "$WORK/instrumented" --bin credit-emulator

echo "== the benchmark, to serve the training loads"
cargo build --release --locked --quiet -p credit-emulator-bench

echo "== training ($SECS s per load)"
LLVM_PROFILE_FILE="$PROFILES/emulator-%p-%m.profraw" \
  "$TARGET_DIR/release/bench" --train --secs "$SECS" \
  --emulator "$WORK/instrumented/$HOST/release/credit-emulator"
if ! ls "$PROFILES"/*.profraw >/dev/null 2>&1; then
  echo "training wrote no profile" >&2
  exit 1
fi
"$PROFDATA" merge -o "$WORK/merged.profdata" "$PROFILES"/*.profraw

# Cargo tracks the flags, not the profile they name: a build left from an earlier profile would be
# taken as current, so the optimized build starts afresh.
echo "== optimized build"
rm -rf "$WORK/optimized"
RUSTFLAGS="-Cprofile-use=$WORK/merged.profdata" cargo build --release --locked --quiet \
  --target "$HOST" --target-dir "$WORK/optimized" --bin credit-emulator
cp "$WORK/optimized/$HOST/release/credit-emulator" "$OUT/credit-emulator"
echo "built $OUT/credit-emulator"
