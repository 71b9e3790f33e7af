#!/usr/bin/env bash
# Throughput against measured ceilings, all in one run on this machine (`make ceilings`):
#   1. broker ceiling   - a bare shared-subscription QoS 1 subscriber, offered BROKER_RATE
#   2. Kafka ceilings   - a bare producer configured as the bridge's writes KAFKA_MESSAGES records
#                         exactly as the bridge builds them; a bare consumer group reads them back
#   3. decoder backlog  - a decoder alone drains those records (decode + insert + commit)
#   4. bridge backlog   - BACKLOG_MESSAGES queued in the broker while the bridge is down, then
#                         drained into Kafka by the bridge alone (PUBACK after Kafka's ack, as
#                         always); then a decoder stores them and every reading is verified
#   5. pipeline         - bridge + decoder under the load RATE: the bridge's forwarding rate and
#                         the decoder's insert rate (sampled from their /metrics every second),
#                         peak RSS of both (VmHWM), the loadtest RESULT
#   6. database ceiling - bulk RowBinary inserts of reading rows straight into ClickHouse
#   7. sweep            - end-to-end runs at SWEEP_RATES; "sustained" = 0 missing and the last
#                         reading stored within 10 s of the end of publishing
# Then each stage's rate over the ceilings it sits between (scripts/ceilings-report.py):
# bridge / min(broker, Kafka produce), decoder / min(Kafka consume, database), end to end /
# min(all); printed as a table and written as summary.json and summary.svg.
# Settings (env): RATE (5000 msg/s), DURATION (20s), DEVICES (500), CONNECTIONS (4),
# BROKER_RATE (25000), KAFKA_MESSAGES (200000), BACKLOG_MESSAGES (100000) published at
# BACKLOG_RATE (20000), SWEEP_RATES ("4000 8000 12000 14000"), SWEEP_DURATION (20s).
# Output: target/loadtest/ceilings/.
# It empties the local Kafka and Mosquitto data first (ClickHouse is kept).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RATE=${RATE:-5000}
DURATION=${DURATION:-20s}
DEVICES=${DEVICES:-500}
CONNECTIONS=${CONNECTIONS:-4}
SWEEP_RATES=${SWEEP_RATES:-"4000 8000 12000 14000"}
SWEEP_DURATION=${SWEEP_DURATION:-20s}
KAFKA_MESSAGES=${KAFKA_MESSAGES:-200000}
BROKER_RATE=${BROKER_RATE:-25000}
BACKLOG_MESSAGES=${BACKLOG_MESSAGES:-100000}
BACKLOG_RATE=${BACKLOG_RATE:-20000}
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
# Ceilings measure the pipeline as in issue 11: no device registry (the Kafka ceiling's backlog is
# written for devices no one registered). DECODER_REGISTRY=on measures with it.
export DECODER_REGISTRY=${DECODER_REGISTRY:-off}
[ "$DECODER_REGISTRY" = on ] || unset PLATFORM_POSTGRES_URL
export MQTT_HOST MQTT_PORT CLICKHOUSE_URL
target/release/sck-decoder migrate >/dev/null 2>&1 || target/release/sck-decoder migrate
scripts/pipeline.sh stop

metric() { # port name labels -> value summed
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" -v l="$3" '
    $1 ~ "^"n"($|\\{)" && index($1, l) { s += $2 } END { printf "%.0f\n", s }'
}

# CPU each process used over a stage: cpu_mark FILE before, cpu_report FILE LABEL after.
cpu_mark() {
  { date +%s.%N
    for n in sck-bridge sck-decoder kafka mosquitto clickhouse; do
      [ -f ".stack/$n.pid" ] && awk -v n="$n" '{print n, $14 + $15}' "/proc/$(cat ".stack/$n.pid")/stat" 2>/dev/null
    done; } > "$1" || true
}
cpu_report() {
  cpu_mark "$1.after"
  python3 - "$1" "$1.after" "$2" "$(getconf CLK_TCK)" <<'EOF' | tee -a "$OUT/cpu.txt"
import sys
def load(p):
    lines = open(p).read().split("\n")
    return float(lines[0]), dict((l.split()[0], int(l.split()[1])) for l in lines[1:] if l.strip())
(t0, a), (t1, b), label, tick = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cores = {n: (b[n] - a[n]) / tick / (t1 - t0) for n in b if n in a}
print(f"CPU {label}: " + " ".join(f"{n}={c:.2f}" for n, c in cores.items()) + f" (cores, over {t1 - t0:.1f} s)")
EOF
}
: > "$OUT/cpu.txt"

# Rate over the window where a cumulative counter moved: (last - first) / (t_last - t_first).
window_rate() { # file column
  awk -v c="$2" 'NR==1 {v0=$c} { if ($c != prev) { if (!seen && $c > v0) { t0=tp; n0=prev; seen=1 } t1=$1; n1=$c } prev=$c; tp=$1 }
    END { if (seen && t1 > t0) printf "%.1f\n", (n1-n0)/(t1-t0); else print 0 }' "$1"
}

echo "== 1. broker ceiling: bare subscriber, offered $BROKER_RATE msg/s for $DURATION, $DEVICES devices"
$LT --rate "$BROKER_RATE" --duration "$DURATION" --devices "$DEVICES" --connections "$CONNECTIONS" \
  subscribe-ceiling | tee "$OUT/broker.txt"

echo "== 2. Kafka ceilings: $KAFKA_MESSAGES records as the bridge writes them, produced then consumed"
ceiling_topic="sck.ceiling.$(date +%s)"
$LT --devices "$DEVICES" kafka-ceiling --messages "$KAFKA_MESSAGES" --topic "$ceiling_topic" \
  --partitions "${STACK_KAFKA_PARTITIONS:-6}" | tee "$OUT/kafka.txt"

echo "== 3. decoder backlog: one decoder drains those $KAFKA_MESSAGES records"
readings=$(grep -o 'kind=kafka_produce.* readings=[0-9]*' "$OUT/kafka.txt" | grep -o 'readings=[0-9]*' | cut -d= -f2)
DECODER_READINGS_TOPIC="$ceiling_topic" DECODER_GROUP="sck-ceiling-$(date +%s)" \
  DECODER_CONSUME_DEAD_LETTER=false scripts/pipeline.sh start-decoder release
cpu_mark "$OUT/cpu-backlog"
( while true; do
    printf '%s %s %s\n' "$(date +%s.%N)" \
      "$(metric 9102 sck_decoder_messages_consumed_total 'kind="readings')" \
      "$(metric 9102 sck_decoder_rows_inserted_total 'table="readings"')"
    sleep 0.1
  done ) > "$OUT/backlog-samples.txt" &
sampler=$!
for _ in $(seq 1 1200); do
  last=$(tail -n 1 "$OUT/backlog-samples.txt" 2>/dev/null | awk '{print $3}')
  [ -n "$last" ] && [ "$last" -ge "$readings" ] && break
  sleep 0.5
done
kill "$sampler"; sampler=
cpu_report "$OUT/cpu-backlog" "decoder backlog"
scripts/pipeline.sh rss | grep decoder | tee "$OUT/backlog-rss.txt" || true
scripts/pipeline.sh stop
# From the first record consumed to the last row inserted.
awk -v want="$readings" -v records="$KAFKA_MESSAGES" '
  $2 > 0 && !t0 { t0 = $1 } $3 >= want && !t1 { t1 = $1 }
  END { if (t0 && t1 > t0) printf "BACKLOG records=%d readings=%d seconds=%.2f records_per_s=%.1f rows_per_s=%.1f\n", records, want, t1-t0, records/(t1-t0), want/(t1-t0);
        else print "BACKLOG incomplete" }' "$OUT/backlog-samples.txt" | tee "$OUT/backlog.txt"

echo "== 4. bridge backlog: $BACKLOG_MESSAGES messages queued in the broker while the bridge is down, then drained"
scripts/pipeline.sh start release          # the bridge's session and subscriptions exist from now on
# The bridge drains alone, as the Kafka produce ceiling ran alone: a decoder reading at the same
# time takes tansu's one busy core from the writer (measured: 0.7 of the ceiling instead of 0.9).
scripts/pipeline.sh stop
backlog_secs=$(python3 -c "print(max(1, round($BACKLOG_MESSAGES / $BACKLOG_RATE)))")
set +e
$LT --rate "$BACKLOG_RATE" --duration "${backlog_secs}s" --ramp 0s --devices "$DEVICES" \
  --connections "$CONNECTIONS" --verify-timeout 600s > "$OUT/drain.txt" 2> "$OUT/drain.err" &
lt_pid=$!
set -e
until grep -q '^published' "$OUT/drain.err" 2>/dev/null; do
  if ! kill -0 "$lt_pid" 2>/dev/null; then
    echo "the backlog loadtest ended before publishing:"; cat "$OUT/drain.err"; exit 1
  fi
  sleep 0.2
done
queued=$(grep -o '^published [0-9]*' "$OUT/drain.err" | cut -d' ' -f2)
scripts/pipeline.sh start-bridge release
cpu_mark "$OUT/cpu-drain"
( while true; do
    printf '%s %s\n' "$(date +%s.%N)" "$(metric 9101 sck_bridge_messages_forwarded_total '')"
    sleep 0.2
  done ) > "$OUT/drain-samples.txt" &
sampler=$!
until [ "$(metric 9101 sck_bridge_messages_forwarded_total '')" -ge "$queued" ]; do
  kill -0 "$lt_pid" 2>/dev/null || break
  sleep 0.1
done
kill "$sampler"; sampler=
printf '%s %s\n' "$(date +%s.%N)" "$(metric 9101 sck_bridge_messages_forwarded_total '')" >> "$OUT/drain-samples.txt"
cpu_report "$OUT/cpu-drain" "bridge drain"
scripts/pipeline.sh rss | grep bridge | tee "$OUT/drain-rss.txt" || true
scripts/pipeline.sh start-decoder release  # now the backlog goes on to ClickHouse and is verified
set +e; wait "$lt_pid"; set -e
scripts/pipeline.sh stop
awk -v want="$queued" '$2 > 0 && !t0 { t0 = $1; n0 = $2 } $2 >= want && !t1 { t1 = $1 }
  END { if (t0 && t1 > t0) printf "DRAIN queued=%d seconds=%.2f msgs_per_s=%.1f\n", want, t1-t0, (want-n0)/(t1-t0);
        else print "DRAIN incomplete" }' "$OUT/drain-samples.txt" | tee "$OUT/drain-rate.txt"
tail -n 1 "$OUT/drain.txt"

echo "== 5. pipeline under the load RATE"
scripts/pipeline.sh start release
( while true; do
    printf '%s %s %s\n' "$(date +%s.%N)" \
      "$(metric 9101 sck_bridge_messages_forwarded_total '')" \
      "$(metric 9102 sck_decoder_rows_inserted_total 'table="readings"')"
    sleep 1
  done ) > "$OUT/samples.txt" &
sampler=$!
cpu_mark "$OUT/cpu-load"
set +e
$LT --rate "$RATE" --duration "$DURATION" --devices "$DEVICES" --connections "$CONNECTIONS" \
  --verify-timeout 600s --report "$OUT/pipeline.json" | tee "$OUT/pipeline.txt"
set -e
cpu_report "$OUT/cpu-load" "pipeline at RATE (publishing and verifying)"
kill "$sampler"; sampler=
scripts/pipeline.sh rss | tee "$OUT/rss.txt"
scripts/pipeline.sh stop
bridge_rate=$(window_rate "$OUT/samples.txt" 2)
decoder_rate=$(window_rate "$OUT/samples.txt" 3)

echo "== 6. database ceiling: bulk RowBinary inserts, 20,000-row batches (the decoder's BATCH_MAX_ROWS)"
$LT --devices "$DEVICES" insert-ceiling --rows 2000000 --batch 20000 | tee "$OUT/database.txt"

echo "== 7. end-to-end sweep: $SWEEP_RATES msg/s, $SWEEP_DURATION each"
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

echo "$bridge_rate $decoder_rate" > "$OUT/pipeline-rates.txt"
python3 scripts/ceilings-report.py "$OUT" "$RATE" "$DEVICES" | tee "$OUT/summary.txt"
