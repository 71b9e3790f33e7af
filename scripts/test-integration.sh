#!/usr/bin/env bash
# Runs the integration tests against the real local stack. If the stack was not running, it is
# started here and stopped again at the end (a stack you started yourself is left alone).
set -euo pipefail
cd "$(dirname "$0")/.."
started=0
if ! scripts/stack.sh is-up; then
  # Each test makes its own uniquely named topics and none deletes any (tansu's DeleteTopics
  # deletes every topic), so a stack started here starts from an empty Kafka database and the
  # database does not grow from run to run.
  scripts/stack.sh down
  STACK_FRESH_KAFKA=1 scripts/stack.sh up
  started=1
fi
cleanup() {
  if [ "$started" = 1 ]; then scripts/stack.sh down; fi
}
trap cleanup EXIT
# The tests stop and start Kafka and kill bridges; they serialise themselves.
cargo test --workspace --features sck-bridge/integration,sck-decoder/integration,sck-forwarder/integration,sck-loadtest/integration \
  --test '*' -- --test-threads=1
# Every fault drill in its short form (docs/drills.md); make drills runs them in full.
scripts/drills.sh short
scripts/stack.sh check-drops
# The metric names dashboards, alerts and the autoscaler rely on: a fresh bridge, decoder and forwarder must
# serve exactly the names of the sample the chart checks use (deploy/charts/sck-ingest/tests/metrics).
scripts/capture-metrics.sh target/metrics debug
deploy/checks/run.sh live-metrics target/metrics
