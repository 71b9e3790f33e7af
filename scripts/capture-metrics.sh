#!/usr/bin/env bash
# Captures the /metrics output of a freshly started sck-bridge, sck-decoder and sck-forwarder (the
# pipeline script's, against the running local stack) into DIR/bridge.prom, DIR/decoder.prom and
# DIR/forwarder.prom. The per-partition lag gauges appear once the consumers have partitions, so
# this waits for them. The decoder runs with the device registry (its metrics exist only then);
# the forwarder reads the same registry (the stack's REGISTRY_POSTGRES_URL).
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
scripts/pipeline.sh start-forwarder "$profile"
metrics() { curl -fsS "http://127.0.0.1:$1/metrics" || true; }
for _ in $(seq 1 600); do
  if grep -q '^sck_decoder_consumer_lag{' <<<"$(metrics "${DECODER_METRICS_PORT:-9102}")" &&
    grep -q '^sck_forwarder_consumer_lag{' <<<"$(metrics "${FORWARDER_METRICS_PORT:-9103}")"; then
    curl -fsS "http://127.0.0.1:${BRIDGE_METRICS_PORT:-9101}/metrics" >"$dir/bridge.prom"
    curl -fsS "http://127.0.0.1:${DECODER_METRICS_PORT:-9102}/metrics" >"$dir/decoder.prom"
    curl -fsS "http://127.0.0.1:${FORWARDER_METRICS_PORT:-9103}/metrics" >"$dir/forwarder.prom"
    echo "[capture-metrics] wrote $dir/bridge.prom, $dir/decoder.prom and $dir/forwarder.prom" >&2
    exit 0
  fi
  sleep 0.1
done
echo "[capture-metrics] the decoder or the forwarder got no partitions within 60 s" >&2
exit 1
