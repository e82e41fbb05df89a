#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time: run-fuzzers.sh BUILD_DIR
# SECONDS TARGET... Each target's corpus lives in BUILD_DIR/corpus/TARGET,
# seeded from fuzz/corpus/TARGET; a crash leaves its input in
# BUILD_DIR/crashes and fails the run.
set -euo pipefail
build="$1"; seconds="$2"; shift 2
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$build/crashes"
status=0
for target in "$@"; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  if [ -d "$root/fuzz/corpus/$target" ]; then
    cp -n "$root/fuzz/corpus/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  echo "== $target: ${seconds}s" >&2
  if ! "$build/fuzz/$target" -max_total_time="$seconds" -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$build/crashes/$target-" \
      "$corpus" 2>"$build/$target.log"; then
    echo "$target FAILED: see $build/$target.log and $build/crashes" >&2
    tail -40 "$build/$target.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$build/$target.log" | tail -2 >&2
  fi
done
exit $status
