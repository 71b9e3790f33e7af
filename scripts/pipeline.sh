#!/usr/bin/env bash
# Runs one sck-bridge and one sck-decoder in the background against the local stack
# (`make up`), for `make demo`, `make loadtest` and the ceiling measurements; and on request one
# sck-forwarder (the metrics capture).
#
#   scripts/pipeline.sh start [debug|release]   start both (binaries must be built), wait until ready
#   scripts/pipeline.sh start-decoder|start-bridge|start-forwarder [profile]   one of them alone
#   scripts/pipeline.sh stop-bridge|stop-forwarder   stop that one alone
#   scripts/pipeline.sh stop                    stop all three (those running; SIGTERM, by pid)
#   scripts/pipeline.sh rss                     peak RSS (VmHWM, KiB) of those running
#
# Ports: BRIDGE_METRICS_PORT (9101), DECODER_METRICS_PORT (9102), FORWARDER_METRICS_PORT (9103).
# Binaries: $CARGO_TARGET_DIR (default target/)/<profile>/. Logs: .stack/logs/sck-*.log.
#
# The bridge's producer is idempotent here as in production (extra librdkafka properties:
# BRIDGE_PRODUCER_PROPERTIES). With tansu's header index in place (scripts/stack.sh), bridges
# SIGTERMed and SIGKILLed mid-stream and a Kafka SIGKILL (5 s down) lose nothing and make tansu
# panic nowhere; only an outage longer than KAFKA_MESSAGE_TIMEOUT_MS (an epoch bump) still does.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=$ROOT/.stack
BRIDGE_PORT=${BRIDGE_METRICS_PORT:-9101}
DECODER_PORT=${DECODER_METRICS_PORT:-9102}
FORWARDER_PORT=${FORWARDER_METRICS_PORT:-9103}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf '[pipeline] %s\n' "$*" >&2; }
die() { printf '[pipeline] error: %s\n' "$*" >&2; exit 1; }
pidfile() { echo "$STACK/$1.pid"; }
running() { local pf; pf=$(pidfile "$1"); [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; }

wait_ready() { # name port
  for _ in $(seq 1 600); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/readyz")" = 200 ]; then
      log "$1 ready (metrics on :$2)"; return 0
    fi
    running "$1" || die "$1 exited; see $STACK/logs/$1.log"
    sleep 0.1
  done
  die "$1 not ready within 60 s; see $STACK/logs/$1.log"
}

start_one() { # name binary port env...
  local name=$1 bin=$2 port=$3; shift 3
  running "$name" && { log "$name already running"; return 0; }
  [ -x "$bin" ] || die "$bin is not built"
  mkdir -p "$STACK/logs"
  (exec env "$@" METRICS_ADDR="127.0.0.1:$port" setsid "$bin" >>"$STACK/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$(pidfile "$name")"
}

stop_one() {
  local name=$1 pf; pf=$(pidfile "$1")
  running "$name" || { rm -f "$pf"; return 0; }
  local pid; pid=$(cat "$pf")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { log "$name did not stop within 30 s; SIGKILL"; kill -KILL "$pid" || true; }
  rm -f "$pf"
  log "$name stopped"
}

case "${1:-}" in
  start-forwarder)
    profile=${2:-release}
    [ -f "$STACK/env" ] || die "the stack is not up (make up)"
    # shellcheck disable=SC1091
    . "$STACK/env"
    [ -n "${REGISTRY_POSTGRES_URL-}" ] || die "no REGISTRY_POSTGRES_URL in $STACK/env (the stack's PostgreSQL)"
    # Forwards what the decoder's group (DECODER_GROUP, as start-decoder) has committed.
    start_one sck-forwarder "$TARGET/$profile/sck-forwarder" "$FORWARDER_PORT" \
      REGISTRY_POSTGRES_URL="$REGISTRY_POSTGRES_URL" \
      MQTT_HOST="$MQTT_HOST" MQTT_PORT="$MQTT_PORT" KAFKA_BROKERS="$KAFKA_BROKERS" \
      FORWARD_AFTER_GROUP="${DECODER_GROUP:-sck-decoder}" \
      KAFKA_STATISTICS_INTERVAL_MS=1000 RUST_LOG="${RUST_LOG:-info}"
    wait_ready sck-forwarder "$FORWARDER_PORT"
    ;;
  start|start-decoder|start-bridge)
    profile=${2:-release}
    [ -f "$STACK/env" ] || die "the stack is not up (make up)"
    # shellcheck disable=SC1091
    . "$STACK/env"
    if [ "$1" != start-decoder ]; then
      start_one sck-bridge "$TARGET/$profile/sck-bridge" "$BRIDGE_PORT" \
        MQTT_HOST="$MQTT_HOST" MQTT_PORT="$MQTT_PORT" KAFKA_BROKERS="$KAFKA_BROKERS" \
        MQTT_CLIENT=sck-bridge MQTT_CLIENT_SUFFIX=local MQTT_SESSION_EXPIRY_SECS=600 \
        KAFKA_PRODUCER_PROPERTIES="${BRIDGE_PRODUCER_PROPERTIES-}" \
        KAFKA_CREATE_TOPICS=true KAFKA_TOPIC_PARTITIONS="${STACK_KAFKA_PARTITIONS:-6}" RUST_LOG="${RUST_LOG:-info}"
    fi
    [ "$1" = start-bridge ] && { wait_ready sck-bridge "$BRIDGE_PORT"; exit 0; }
    # DECODER_READINGS_TOPIC / DECODER_GROUP / DECODER_CONSUME_DEAD_LETTER: a decoder on other
    # records (make ceilings drains a backlog the Kafka ceiling wrote). DECODER_REGISTRY (on): the
    # device registry and platform updates (the stack's REGISTRY_POSTGRES_URL, REDIS_URL); the load
    # test and the demo register their devices first (PLATFORM_POSTGRES_URL).
    registry_url=""
    [ "${DECODER_REGISTRY:-on}" = on ] && registry_url=${REGISTRY_POSTGRES_URL-}
    start_one sck-decoder "$TARGET/$profile/sck-decoder" "$DECODER_PORT" \
      REGISTRY_POSTGRES_URL="$registry_url" REDIS_URL="${REDIS_URL-}" \
      KAFKA_BROKERS="$KAFKA_BROKERS" CLICKHOUSE_URL="$CLICKHOUSE_URL" \
      KAFKA_READINGS_TOPIC="${DECODER_READINGS_TOPIC:-sck.readings}" \
      KAFKA_GROUP="${DECODER_GROUP:-sck-decoder}" \
      KAFKA_CONSUME_DEAD_LETTER="${DECODER_CONSUME_DEAD_LETTER:-true}" \
      KAFKA_STATISTICS_INTERVAL_MS=1000 RUST_LOG="${RUST_LOG:-info}"
    [ "$1" = start ] && wait_ready sck-bridge "$BRIDGE_PORT"
    wait_ready sck-decoder "$DECODER_PORT"
    ;;
  stop)
    stop_one sck-bridge
    stop_one sck-decoder
    stop_one sck-forwarder
    ;;
  stop-bridge) stop_one sck-bridge ;;
  stop-forwarder) stop_one sck-forwarder ;;
  rss)
    for n in sck-bridge sck-decoder sck-forwarder; do
      if running "$n"; then
        printf '%s %s\n' "$n" "$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$(pidfile "$n")")/status")"
      fi
    done
    ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
