#!/usr/bin/env bash
# The local stack of real servers on loopback: Mosquitto (MQTT), tansu (Kafka API), ClickHouse.
#
#   scripts/stack.sh up              install what is missing, start what is not running, wait, write .stack/env
#   scripts/stack.sh down            stop only what `up` started (by pid file)
#   scripts/stack.sh status          one line per component
#   scripts/stack.sh start|stop|kill C   one component (kill = SIGKILL, a crash): mosquitto | kafka | clickhouse
#   scripts/stack.sh create-topics   the three pipeline topics (idempotent)
#   scripts/stack.sh check-drops     fail if Mosquitto logged dropped messages
#   scripts/stack.sh install         install packages and tansu only
#   scripts/stack.sh kafka-index     check that tansu's header index is in place
#
# Everything lives under .stack/ (git-ignored): config, data, logs, pid files.
# Ports: STACK_MQTT_PORT (1883), STACK_KAFKA_PORT (9092), STACK_CLICKHOUSE_PORT (8123),
# STACK_CLICKHOUSE_TCP_PORT (19000; not 9000, which the services' METRICS_ADDR defaults to).
# Topic partitions: STACK_KAFKA_PARTITIONS (6).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=${STACK_DIR:-$ROOT/.stack}
TOOLS=$ROOT/.tools
# tansu takes ~11 minutes to build on 2 cores: the build is shared by every clone on this machine
# (a clean CI clone included) through this cache, and copied into the project's .tools/.
TANSU_CACHE=${TANSU_CACHE:-$HOME/.cache/sck-ingest/tansu-0.6.0}
TANSU_VERSION=0.6.0

MQTT_PORT=${STACK_MQTT_PORT:-1883}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
CH_PORT=${STACK_CLICKHOUSE_PORT:-8123}
CH_TCP_PORT=${STACK_CLICKHOUSE_TCP_PORT:-19000}
PARTITIONS=${STACK_KAFKA_PARTITIONS:-6}
TOPICS=(sck.readings sck.device-events sck.dead-letter)

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# --- installation ---------------------------------------------------------------------------

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # policy-rc.d or not, the packaged services must not be started: we run our own instances.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Some packages start a system-wide daemon on install; stop those so they do not hold our ports.
  for svc in mosquitto clickhouse-server; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      $sudo systemctl stop "$svc" || true
    fi
  done
}

tansu_bin() { echo "$TOOLS/bin/tansu"; }

install_tansu() {
  local bin; bin=$(tansu_bin)
  [ -x "$bin" ] && return 0
  mkdir -p "$TOOLS/bin"
  if [ ! -x "$TANSU_CACHE/bin/tansu" ]; then
    log "building tansu $TANSU_VERSION from crates.io (about 11 minutes, once per machine)"
    cargo install --locked --quiet tansu --version "$TANSU_VERSION" --features dynostore,libsql --root "$TANSU_CACHE"
  fi
  cp "$TANSU_CACHE/bin/tansu" "$bin"
}

install_all() {
  apt_install mosquitto clickhouse-server clickhouse-client curl iproute2
  install_tansu
}

# --- process bookkeeping --------------------------------------------------------------------

pidfile() { echo "$STACK/$1.pid"; }

running() {
  local pf; pf=$(pidfile "$1")
  [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
  log "$what is up"
}

ensure_port_free() { # component port variable
  if port_open "$2"; then
    die "port $2 for $1 is taken by a process this stack did not start; free it or set $3"
  fi
}

spawn() { # name workdir command... ; starts detached, records pid
  local name=$1 dir=$2; shift 2
  mkdir -p "$STACK/logs"
  (cd "$dir" && exec setsid "$@" >>"$STACK/logs/$name.log" 2>&1 </dev/null) &
  echo $! >"$(pidfile "$name")"
}

stop_one() { # name [signal]
  local name=$1 sig=${2:-TERM} pf; pf=$(pidfile "$1")
  if ! running "$name"; then rm -f "$pf"; return 0; fi
  local pid; pid=$(cat "$pf")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop on SIGTERM within 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pf"
  log "$name stopped"
}

# --- components -----------------------------------------------------------------------------

start_mosquitto() {
  running mosquitto && { log "mosquitto already running"; return 0; }
  ensure_port_free mosquitto "$MQTT_PORT" STACK_MQTT_PORT
  local dir=$STACK/mosquitto
  mkdir -p "$dir/data"
  cat >"$dir/mosquitto.conf" <<EOF
# Generated by scripts/stack.sh. Local test broker for sck-ingest.
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
user root
# Sessions and queued QoS 1 messages survive a broker restart.
persistence true
persistence_location $dir/data/
autosave_interval 30
# The defaults drop QoS 1 messages beyond 1000 queued per client; the tests build bigger backlogs
# on purpose (bridge killed, Kafka down), and a loss test must measure the pipeline, not this policy.
max_queued_messages 0
max_queued_bytes 0
# Per-client window of unacknowledged QoS 1 messages towards subscribers (the bridge).
max_inflight_messages 1000
log_dest file $STACK/logs/mosquitto-broker.log
log_type error
log_type warning
log_type notice
log_timestamp_format %Y-%m-%dT%H:%M:%S
EOF
  spawn mosquitto "$dir" mosquitto -c "$dir/mosquitto.conf"
  wait_until 20 "mosquitto on :$MQTT_PORT" port_open "$MQTT_PORT" || die "mosquitto did not start; see $STACK/logs/"
}

kafka_ready() {
  port_open "$KAFKA_PORT" && "$(tansu_bin)" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
}

spawn_kafka() {
  # sqlite:// keeps records across a restart (memory:// would not). The path is relative to the
  # broker's working directory: sqlite:///abs/path does not work in tansu 0.6.0.
  spawn kafka "$STACK/kafka" "$(tansu_bin)" broker \
    --storage-engine "sqlite://tansu.db" \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT"
  wait_until 60 "kafka (tansu) on :$KAFKA_PORT" kafka_ready || die "tansu did not start; see $STACK/logs/kafka.log"
}

# tansu 0.6.0 reads each fetched record's headers with one query on its `header` table, which
# has no index: every fetch scans every header row of every topic (the bridge writes three per
# record), so a consumer of a topic past ~20 k records never catches up and the broker stops
# answering producers meanwhile. One index on (topition, offset_id) fixes it. It is created
# while the broker is stopped (tansu creates its tables at its first start) and survives
# restarts; `tansu_index` checks that it is there.
TANSU_INDEX=header_topition_offset
tansu_index() { # state (prints: new | missing | present) | apply
  python3 - "$1" "$STACK/kafka/tansu.db" "$TANSU_INDEX" <<'EOF'
import os, sqlite3, sys
what, db, name = sys.argv[1:]
if what == "state" and (not os.path.exists(db) or os.path.getsize(db) == 0):
    sys.exit(print("new"))
c = sqlite3.connect(f"file:{db}?mode={'rw' if what == 'apply' else 'ro'}", uri=True, timeout=30)
count = lambda kind, n: c.execute(
    "select count(*) from sqlite_master where type = ? and name = ?", (kind, n)).fetchone()[0]
if what == "apply":
    c.execute(f"create index if not exists {name} on header (topition, offset_id)")
    c.commit()
    sys.exit(0 if count("index", name) == 1 else 1)
print("new" if count("table", "header") == 0 else "present" if count("index", name) else "missing")
EOF
}

start_kafka() {
  running kafka && { log "kafka (tansu) already running"; return 0; }
  ensure_port_free kafka "$KAFKA_PORT" STACK_KAFKA_PORT
  mkdir -p "$STACK/kafka"
  if [ "${STACK_FRESH_KAFKA:-0}" = 1 ]; then
    rm -f "$STACK"/kafka/tansu.db*
    log "kafka (tansu): starting from an empty database (STACK_FRESH_KAFKA=1)"
  fi
  local state; state=$(tansu_index state) || die "cannot read $STACK/kafka/tansu.db"
  if [ "$state" = new ]; then
    # tansu creates its tables at its first start; the index goes in once they exist.
    spawn_kafka
    stop_one kafka
    state=missing
  fi
  if [ "$state" = missing ]; then
    tansu_index apply || die "cannot create the $TANSU_INDEX index in $STACK/kafka/tansu.db"
    log "kafka (tansu): created index $TANSU_INDEX"
  fi
  [ "$(tansu_index state)" = present ] || die "index $TANSU_INDEX is missing from $STACK/kafka/tansu.db"
  spawn_kafka
}

create_topics() {
  local existing; existing=$("$(tansu_bin)" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" 2>/dev/null || true)
  for t in "${TOPICS[@]}"; do
    if grep -qx "$t" <<<"$existing" || grep -q "\"$t\"" <<<"$existing"; then continue; fi
    "$(tansu_bin)" topic create "$t" --partitions "$PARTITIONS" --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null
    log "created topic $t ($PARTITIONS partitions)"
  done
}

clickhouse_ready() { [ "$(curl -fsS "http://127.0.0.1:$CH_PORT/ping" 2>/dev/null)" = "Ok." ]; }

start_clickhouse() {
  running clickhouse && { log "clickhouse already running"; return 0; }
  ensure_port_free clickhouse "$CH_PORT" STACK_CLICKHOUSE_PORT
  ensure_port_free clickhouse "$CH_TCP_PORT" STACK_CLICKHOUSE_TCP_PORT
  local dir=$STACK/clickhouse
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/stack.sh. Local ClickHouse for sck-ingest. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$STACK/logs/clickhouse-server.log</log>
        <errorlog>$STACK/logs/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <http_port>$CH_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
EOF
  cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
  spawn clickhouse "$dir" clickhouse-server --config-file="$dir/config.xml"
  wait_until 60 "clickhouse on :$CH_PORT" clickhouse_ready || die "clickhouse did not start; see $STACK/logs/"
}

write_env() {
  cat >"$STACK/env" <<EOF
# Written by scripts/stack.sh up: endpoints of the local stack. Source it: . .stack/env
export MQTT_HOST=127.0.0.1
export MQTT_PORT=$MQTT_PORT
export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export CLICKHOUSE_URL=http://127.0.0.1:$CH_PORT
EOF
}

status_line() {
  if running "$1"; then echo "$1: running (pid $(cat "$(pidfile "$1")"))"; else echo "$1: stopped"; fi
}

start_component() {
  case "$1" in
    mosquitto) start_mosquitto ;;
    kafka) start_kafka ;;
    clickhouse) start_clickhouse ;;
    *) die "unknown component '$1' (mosquitto | kafka | clickhouse)" ;;
  esac
}

cmd=${1:-}
mkdir -p "$STACK"
case "$cmd" in
  install) install_all ;;
  up)
    install_all
    start_mosquitto
    start_kafka
    create_topics
    start_clickhouse
    write_env
    log "stack is up; endpoints in $STACK/env"
    ;;
  down)
    for c in clickhouse kafka mosquitto; do stop_one "$c"; done
    rm -f "$STACK/env"
    ;;
  status) for c in mosquitto kafka clickhouse; do status_line "$c"; done ;;
  is-up) running mosquitto && running kafka && running clickhouse ;;
  start) start_component "${2:?component}" ;;
  stop) stop_one "${2:?component}" ;;
  kill) stop_one "${2:?component}" KILL ;;
  create-topics) create_topics ;;
  kafka-index) [ "$(tansu_index state)" = present ] && log "index $TANSU_INDEX is in place" || die "index $TANSU_INDEX is missing" ;;
  check-drops)
    if grep -i "dropped\|drop" "$STACK/logs/mosquitto-broker.log" 2>/dev/null; then
      die "mosquitto dropped messages (see above): a loss test would measure broker policy"
    fi
    log "mosquitto log shows no dropped messages"
    ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
