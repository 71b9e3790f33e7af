#!/usr/bin/env bash
# `make demo`: on a fresh machine, bring up the stack, build, start one bridge and one decoder,
# run a ~20 s load, print the RESULT line and a sample of the stored readings, then stop what
# this script started (the services always; the stack only if it was not already running).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

started_stack=0
if ! scripts/stack.sh is-up 2>/dev/null; then
  scripts/stack.sh up
  started_stack=1
fi
cleanup() {
  scripts/pipeline.sh stop || true
  if [ "$started_stack" = 1 ]; then scripts/stack.sh down || true; fi
}
trap cleanup EXIT

echo "== building (release)"
cargo build --release -p sck-bridge -p sck-decoder -p sck-loadtest
scripts/pipeline.sh start release
# shellcheck disable=SC1091
. .stack/env
# The load test registers its devices in the platform's PostgreSQL when the decoder has the
# registry (DECODER_REGISTRY, on by default); without it their readings carry device_id 0.
[ "${DECODER_REGISTRY:-on}" = on ] || unset PLATFORM_POSTGRES_URL
mkdir -p target/loadtest
run_id="demo$(date +%s)"
echo "== publishing for 20 s: 50 devices, 200 msg/s, 12 sensors, half raw / half JSON"
set +e
target/release/sck-loadtest --devices 50 --rate 200 --duration 20s --run-id "$run_id" \
  --report target/loadtest/demo.json | tee target/loadtest/demo.out
status=${PIPESTATUS[0]}
set -e
echo "== a sample of what is in ClickHouse (sck.readings FINAL, device ${run_id}d0):"
curl -sS "$CLICKHOUSE_URL/" --data-binary "SELECT device_token, sensor_id, recorded_at, value, format, received_at FROM sck.readings FINAL WHERE device_token = '${run_id}d0' ORDER BY recorded_at, sensor_id LIMIT 12 FORMAT PrettyCompactNoEscapes"
echo "== report: target/loadtest/demo.json, chart: target/loadtest/demo.svg"
tail -n 1 target/loadtest/demo.out
exit "$status"
