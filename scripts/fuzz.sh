#!/usr/bin/env bash
# Fuzzing (cargo-fuzz / libFuzzer): builds every target in fuzz/ and runs each on its committed
# corpus (fuzz/corpus/<target>), which it grows. A crash stops the run with the reproducer in
# fuzz/artifacts/<target>/ and exit status 1.
#   scripts/fuzz.sh [--seconds N] [target ...]   (default: 20 s each, all targets)
# CI runs the short default (scripts/test.sh); the long runs the issue asks for are
# `scripts/fuzz.sh --seconds 600`. Per target it prints libFuzzer's executions and coverage.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PFD_CACHE="${PFD_CACHE:-$HOME/.cache/pfd-edge}"
TOOLS="$PFD_CACHE/tools"

seconds=20
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

# cargo-fuzz, pinned, installed once beside the other test tools.
CARGO_FUZZ_VERSION=0.13.1
if [ "$(cat "$TOOLS/cargo-fuzz.installed" 2>/dev/null)" != "$CARGO_FUZZ_VERSION" ]; then
  echo "fuzz: cargo install cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS" >&2
  cargo install --locked --quiet --force --root "$TOOLS" --version "=$CARGO_FUZZ_VERSION" cargo-fuzz
  echo "$CARGO_FUZZ_VERSION" > "$TOOLS/cargo-fuzz.installed"
fi
export PATH="$TOOLS/bin:$PATH"
# libFuzzer's coverage flags are nightly-only options of a stable rustc; RUSTC_BOOTSTRAP lets
# this toolchain take them. No sanitizer: the fuzzed crates have no unsafe code, and ASan would
# need an instrumented std (-Zbuild-std) for little gain here.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PFD_CACHE/fuzz-target"
FUZZ=(cargo fuzz)
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <("${FUZZ[@]}" list)

"${FUZZ[@]}" build --sanitizer none
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="$(mktemp)"
  # -max_len: bodies up to 64 KiB (the grammar's corners, not its size); -timeout: one input
  # taking 10 s is a hang worth a report.
  if "${FUZZ[@]}" run --sanitizer none "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 \
      -max_len=65536 -timeout=10 -rss_limit_mb=4096 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -ho 'cov: [0-9]*' "$log" | tail -1 || true)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  echo "fuzz: $t: $result — $execs executions in ${seconds}s, $cov, corpus $corpus files"
  [ "$result" = ok ] || tail -40 "$log"
  rm -f "$log"
done
exit $status
