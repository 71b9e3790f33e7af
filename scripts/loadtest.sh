#!/usr/bin/env bash
# `make loadtest RATE=… DURATION=… DEVICES=…` (VERIFY_TIMEOUT, default 600s): like the demo,
# with a configurable load; the report goes to target/loadtest/loadtest.json (+ .svg).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
started_stack=0
if ! scripts/stack.sh is-up 2>/dev/null; then scripts/stack.sh up; started_stack=1; fi
cleanup() {
  scripts/pipeline.sh rss || true
  scripts/pipeline.sh stop || true
  if [ "$started_stack" = 1 ]; then scripts/stack.sh down || true; fi
}
trap cleanup EXIT
cargo build --release -p sck-bridge -p sck-decoder -p sck-loadtest
scripts/pipeline.sh start release
# shellcheck disable=SC1091
. .stack/env
# The load test registers its devices in the platform's PostgreSQL when the decoder has the
# registry (DECODER_REGISTRY, on by default); without it their readings carry device_id 0.
[ "${DECODER_REGISTRY:-on}" = on ] || unset PLATFORM_POSTGRES_URL
export MQTT_HOST MQTT_PORT CLICKHOUSE_URL
mkdir -p target/loadtest
target/release/sck-loadtest --rate "${RATE:-300}" --duration "${DURATION:-60s}" \
  --devices "${DEVICES:-300}" --verify-timeout "${VERIFY_TIMEOUT:-600s}" \
  --report target/loadtest/loadtest.json
