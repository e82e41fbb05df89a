#!/usr/bin/env bash
# The demo: harvest examples/prompts.jsonl into out/dataset.jsonl with an
# embedded single-machine cluster (`distillery run`).
#   default                       against the built-in teacher simulator
#   DISTILLERY_TEACHER=openai     against the real OpenAI API (OPENAI_API_KEY)
set -euo pipefail
BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/bin
PROMPTS=${DISTILLERY_PROMPTS:-examples/prompts.jsonl}
TEACHER=${DISTILLERY_TEACHER:-sim}
mkdir -p out

if [ "$TEACHER" = "openai" ]; then
  if [ -z "${OPENAI_API_KEY:-}" ]; then
    echo "error: DISTILLERY_TEACHER=openai needs OPENAI_API_KEY in the environment" >&2
    exit 2
  fi
  MODEL=${DISTILLERY_MODEL:-gpt-4o-mini}
  echo "demo: harvesting $PROMPTS from OpenAI ($MODEL); you pay for these requests" >&2
  exec "$BIN/distillery" run "$PROMPTS" --teachers deploy/teachers.example.yaml \
    --teacher openai --model "$MODEL" --max-tokens 512 \
    --data-dir .distillery-demo/openai --out out/dataset.jsonl
fi

# The simulator on a free loopback port; the profile points at it. Like a
# self-hosted server (vLLM, Ollama, llama.cpp) it sends no rate-limit
# headers, and the profile states no limit: the harvest runs at the
# profile's concurrency from the first request.
SIM_LOG=$(mktemp)
"$BIN/teacher-sim" --listen 127.0.0.1:0 --latency-ms 20 --no-ratelimit-headers >"$SIM_LOG" &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true; rm -f "$SIM_LOG"' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$SIM_LOG" && break
  sleep 0.05
done
SIM_ADDR=$(sed -n 's/.*listening on //p' "$SIM_LOG" | head -1)
[ -n "$SIM_ADDR" ] || { echo "error: teacher-sim did not start" >&2; exit 1; }
TEACHERS=$(mktemp)
cat >"$TEACHERS" <<YAML
teachers:
  - name: sim
    api: openai
    base_url: http://$SIM_ADDR/v1
    max_tokens_field: max_tokens
    max_concurrency: 64
YAML
MODEL=${DISTILLERY_MODEL:-sim-reasoner}
echo "demo: harvesting $PROMPTS from teacher-sim at $SIM_ADDR (model $MODEL)" >&2
# A fresh data dir each run, so the demo shows a real harvest (a kept one
# would answer everything from its cache).
rm -rf .distillery-demo/sim
"$BIN/distillery" run "$PROMPTS" --teachers "$TEACHERS" --teacher sim \
  --model "$MODEL" --max-tokens 400 --workers 2 \
  --data-dir .distillery-demo/sim --out out/dataset.jsonl
rm -f "$TEACHERS"
echo "demo: $(wc -l < out/dataset.jsonl) records in out/dataset.jsonl" >&2
