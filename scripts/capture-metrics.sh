#!/usr/bin/env bash
# Captures the /metrics output of a freshly started sck-bridge and sck-decoder (the pipeline
# script's pair, against the running local stack) into DIR/bridge.prom and DIR/decoder.prom.
# The decoder's per-partition lag gauge appears once it has partitions, so this waits for it.
# The decoder runs with the device registry (its metrics exist only then).
#   scripts/capture-metrics.sh DIR [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: capture-metrics.sh DIR [debug|release]}
profile=${2:-debug}
mkdir -p "$dir"
scripts/stack.sh is-up || { echo "[capture-metrics] the stack is not up (make up)" >&2; exit 1; }
trap 'scripts/pipeline.sh stop' EXIT
# With the device registry, so its metrics are in the sample too.
DECODER_REGISTRY=on scripts/pipeline.sh start "$profile"
for _ in $(seq 1 600); do
  body=$(curl -fsS "http://127.0.0.1:${DECODER_METRICS_PORT:-9102}/metrics" || true)
  if grep -q '^sck_decoder_consumer_lag{' <<<"$body"; then
    curl -fsS "http://127.0.0.1:${BRIDGE_METRICS_PORT:-9101}/metrics" >"$dir/bridge.prom"
    curl -fsS "http://127.0.0.1:${DECODER_METRICS_PORT:-9102}/metrics" >"$dir/decoder.prom"
    echo "[capture-metrics] wrote $dir/bridge.prom and $dir/decoder.prom" >&2
    exit 0
  fi
  sleep 0.1
done
echo "[capture-metrics] the decoder got no partitions within 60 s" >&2
exit 1
