#!/usr/bin/env bash
# Throughput against measured ceilings, all in one run on this machine (`make ceilings`):
#   1. broker ceiling   - a bare shared-subscription QoS 1 subscriber under the load RATE
#   2. pipeline         - bridge + decoder under the same load: the bridge's forwarding rate and
#                         the decoder's insert rate (sampled from their /metrics every second),
#                         peak RSS of both (VmHWM), the loadtest RESULT
#   3. database ceiling - bulk RowBinary inserts of reading rows straight into ClickHouse
#   4. sweep            - end-to-end runs at SWEEP_RATES; "sustained" = 0 missing and the last
#                         reading stored within 10 s of the end of publishing
# Settings (env): RATE (5000 msg/s), DURATION (20s), DEVICES (500), CONNECTIONS (4),
# SWEEP_RATES ("100 200 400 800 1600"), SWEEP_DURATION (20s). Output: target/loadtest/ceilings/.
# It empties the local Kafka and Mosquitto data first (ClickHouse is kept).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RATE=${RATE:-5000}
DURATION=${DURATION:-20s}
DEVICES=${DEVICES:-500}
CONNECTIONS=${CONNECTIONS:-4}
SWEEP_RATES=${SWEEP_RATES:-"100 200 400 800 1600"}
SWEEP_DURATION=${SWEEP_DURATION:-20s}
OUT=target/loadtest/ceilings
mkdir -p "$OUT"
LT=target/release/sck-loadtest

started_stack=0
if ! scripts/stack.sh is-up 2>/dev/null; then started_stack=1; fi
# Measurements start from an empty broker and Kafka: a session or backlog left by an earlier,
# aborted run would be drained by this run's bridge and decoder and distort every rate.
scripts/pipeline.sh stop
scripts/stack.sh stop kafka
scripts/stack.sh stop mosquitto
rm -rf .stack/kafka .stack/mosquitto/data
scripts/stack.sh up
cleanup() {
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null || true
  scripts/pipeline.sh stop || true
  if [ "$started_stack" = 1 ]; then scripts/stack.sh down || true; fi
}
trap cleanup EXIT
cargo build --release -p sck-bridge -p sck-decoder -p sck-loadtest
# shellcheck disable=SC1091
. .stack/env
export MQTT_HOST MQTT_PORT CLICKHOUSE_URL
target/release/sck-decoder migrate >/dev/null 2>&1 || target/release/sck-decoder migrate
scripts/pipeline.sh stop

metric() { # port name labels -> value summed
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" -v l="$3" '
    $1 ~ "^"n"($|\\{)" && index($1, l) { s += $2 } END { printf "%.0f\n", s }'
}

# Rate over the window where a cumulative counter moved: (last - first) / (t_last - t_first).
window_rate() { # file column
  awk -v c="$2" 'NR==1 {v0=$c} { if ($c != prev) { if (!seen && $c > v0) { t0=tp; n0=prev; seen=1 } t1=$1; n1=$c } prev=$c; tp=$1 }
    END { if (seen && t1 > t0) printf "%.1f\n", (n1-n0)/(t1-t0); else print 0 }' "$1"
}

echo "== 1. broker ceiling: bare subscriber, $RATE msg/s for $DURATION, $DEVICES devices"
$LT --rate "$RATE" --duration "$DURATION" --devices "$DEVICES" --connections "$CONNECTIONS" \
  subscribe-ceiling | tee "$OUT/broker.txt"

echo "== 2. pipeline under the same load"
scripts/pipeline.sh start release
( while true; do
    printf '%s %s %s\n' "$(date +%s.%N)" \
      "$(metric 9101 sck_bridge_messages_forwarded_total '')" \
      "$(metric 9102 sck_decoder_rows_inserted_total 'table="readings"')"
    sleep 1
  done ) > "$OUT/samples.txt" &
sampler=$!
set +e
$LT --rate "$RATE" --duration "$DURATION" --devices "$DEVICES" --connections "$CONNECTIONS" \
  --verify-timeout 600s --report "$OUT/pipeline.json" | tee "$OUT/pipeline.txt"
set -e
kill "$sampler"; sampler=
scripts/pipeline.sh rss | tee "$OUT/rss.txt"
scripts/pipeline.sh stop
bridge_rate=$(window_rate "$OUT/samples.txt" 2)
decoder_rate=$(window_rate "$OUT/samples.txt" 3)

echo "== 3. database ceiling: bulk RowBinary inserts, 50,000-row batches"
$LT --devices "$DEVICES" insert-ceiling --rows 2000000 --batch 50000 | tee "$OUT/database.txt"

echo "== 4. end-to-end sweep: $SWEEP_RATES msg/s, $SWEEP_DURATION each"
: > "$OUT/sweep.txt"
for r in $SWEEP_RATES; do
  scripts/pipeline.sh start release
  set +e
  line=$($LT --rate "$r" --duration "$SWEEP_DURATION" --devices "$DEVICES" --connections "$CONNECTIONS" \
    --verify-timeout 600s --report "$OUT/sweep-$r.json" | tail -n 1)
  set -e
  catch_up=$(python3 -c "import json;print(round(json.load(open('$OUT/sweep-$r.json'))['catch_up_s'],1))")
  echo "rate=$r catch_up_s=$catch_up $line" | tee -a "$OUT/sweep.txt"
  scripts/pipeline.sh stop
done

sub=$(grep -o 'subscriber_msgs_per_s=[0-9.]*' "$OUT/broker.txt" | cut -d= -f2)
ins=$(grep -o 'insert_rows_per_s=[0-9.]*' "$OUT/database.txt" | cut -d= -f2)
{
  echo "SUMMARY load=${RATE}msg/s devices=$DEVICES"
  echo "broker ceiling (bare subscriber): $sub msg/s; bridge forwarding: $bridge_rate msg/s; ratio $(python3 -c "print(round($bridge_rate/$sub,3) if $sub else 0)")"
  echo "database ceiling (bulk insert): $ins rows/s; decoder inserts: $decoder_rate rows/s; ratio $(python3 -c "print(round($decoder_rate/$ins,3) if $ins else 0)")"
  echo "peak RSS (KiB): $(tr '\n' ' ' < "$OUT/rss.txt")"
  echo "pipeline run: $(tail -n 1 "$OUT/pipeline.txt")"
  echo "sweep:"; cat "$OUT/sweep.txt"
} | tee "$OUT/summary.txt"
