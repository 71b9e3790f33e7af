#!/usr/bin/env bash
# The local stack of real servers on loopback: Mosquitto (MQTT), tansu (Kafka API), ClickHouse,
# and the Smart Citizen platform's side: PostgreSQL (its registry tables) and Redis.
#
#   scripts/stack.sh up              install what is missing, start what is not running, wait, write .stack/env
#   scripts/stack.sh down            stop only what `up` started (by pid file)
#   scripts/stack.sh status          one line per component
#   scripts/stack.sh start|stop|kill C   one component (kill = SIGKILL, a crash): mosquitto | kafka | clickhouse | postgres | redis
#   scripts/stack.sh env             write .stack/env (`up` does; for components started one by one)
#   scripts/stack.sh psql [ARGS]     psql on the platform database as the tables' owner
#   scripts/stack.sh create-topics   the three pipeline topics (idempotent)
#   scripts/stack.sh check-drops     fail if Mosquitto logged dropped messages
#   scripts/stack.sh install         install packages and tansu only
#   scripts/stack.sh kafka-index     check that tansu's header index is in place
#
# Everything lives under .stack/ (git-ignored): config, data, logs, pid files.
# Ports: STACK_MQTT_PORT (1883), STACK_KAFKA_PORT (9092), STACK_CLICKHOUSE_PORT (8123),
# STACK_CLICKHOUSE_TCP_PORT (19000; not 9000, which the services' METRICS_ADDR defaults to),
# STACK_POSTGRES_PORT (15432), STACK_REDIS_PORT (16379; both off the defaults a system
# PostgreSQL or Redis would hold). Topic partitions: STACK_KAFKA_PARTITIONS (6).
# PostgreSQL: database sck_platform, tables from scripts/platform/schema.sql owned by
# sck_platform (PLATFORM_POSTGRES_URL), read and partly updated by sck_registry
# (REGISTRY_POSTGRES_URL, scripts/platform/grants.sql), demo rows from scripts/platform/seed.sql.
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
PG_PORT=${STACK_POSTGRES_PORT:-15432}
REDIS_PORT=${STACK_REDIS_PORT:-16379}
PG_DB=sck_platform
PG_OWNER=sck_platform
PG_REGISTRY=sck_registry
# Fixed development passwords: the server listens on loopback only, and they leave this script only
# through .stack/env (mode 600) and psql's stdin, never a command line or a log.
PG_OWNER_PASSWORD=sck_platform_dev
PG_REGISTRY_PASSWORD=sck_registry_dev
PLATFORM_SQL=$ROOT/scripts/platform
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
  for svc in mosquitto clickhouse-server postgresql redis-server; do
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
  apt_install mosquitto clickhouse-server clickhouse-client curl iproute2 postgresql redis-server
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

# PostgreSQL's SIGTERM is a "smart" shutdown that waits for every client to disconnect (a running
# decoder never does); SIGINT is its fast shutdown: clients cut, a clean checkpoint, data kept.
stop_signal() { if [ "$1" = postgres ]; then echo INT; else echo TERM; fi; }

stop_one() { # name [signal]
  local name=$1 sig=${2:-$(stop_signal "$1")} pf; pf=$(pidfile "$1")
  if ! running "$name"; then rm -f "$pf"; return 0; fi
  local pid; pid=$(cat "$pf")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop on SIG$sig within 10 s; sending SIGKILL"
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
# Saved every STACK_MQTT_AUTOSAVE_SECS (5 s) and at a clean shutdown: a SIGKILLed broker loses what
# it acknowledged since the last save (make drills measures it).
autosave_interval ${STACK_MQTT_AUTOSAVE_SECS:-5}
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

# --- platform: PostgreSQL and Redis ----------------------------------------------------------

pg_bin() { # the server's binaries: STACK_POSTGRES_BIN, else the newest /usr/lib/postgresql/N/bin
  local bin=${STACK_POSTGRES_BIN:-}
  [ -n "$bin" ] || bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/postgres" ] || die "PostgreSQL server binaries not found (scripts/stack.sh install, or set STACK_POSTGRES_BIN)"
  echo "$bin"
}

# PostgreSQL refuses to run as root. As root, initdb and the server run as the unprivileged
# `postgres` system user that the Debian package creates, through setpriv: it changes uid/gid and
# execs, so the pid `spawn` records is the postmaster's own and `stop`/`kill` signal it directly
# (runuser and su fork and stay in between: su answers SIGTERM with SIGKILL to its child after
# 2 s, and a SIGKILL to it would orphan the server). As any other user, they run as that user.
PG_AS=()
if [ "$(id -u)" -eq 0 ]; then
  PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env --)
fi

# $STACK/postgres, physical path: the server must not go through directories it cannot enter.
pg_dir() { (cd "$STACK/postgres" 2>/dev/null && pwd -P) || echo "$STACK/postgres"; }

# As root, the `postgres` user must be able to enter the cluster's directory. A clone in a directory
# closed to other users (e.g. /root) gets its cluster in /var/lib/sck-ingest, linked as .stack/postgres.
pg_prepare_dir() {
  local link=$STACK/postgres
  [ "$(id -u)" -eq 0 ] && [ ! -e "$link" ] || return 0
  "${PG_AS[@]}" test -x "$STACK" && return 0
  local real; real=/var/lib/sck-ingest/postgres-$(printf '%s' "$(cd "$STACK" && pwd -P)" | sha256sum | cut -c1-12)
  mkdir -p "$real" && chmod 755 /var/lib/sck-ingest "$real" && ln -s "$real" "$link"
  log "postgres: $STACK is closed to the postgres user; the cluster lives in $real (linked from $link)"
}

pg_ready() { "$(pg_bin)/pg_isready" -q -h "$(pg_dir)/run" -p "$PG_PORT" -d postgres -U postgres; }

# psql over the server's unix socket: `trust` there, but the socket's directory is 0700 and owned
# by the server's user, so only that user (and root) can reach it. Passwords come in on stdin.
pg_socket_psql() { # role database [psql args...]
  local role=$1 db=$2; shift 2
  PGOPTIONS="-c client_min_messages=warning" \
    "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$(pg_dir)/run" -p "$PG_PORT" -U "$role" -d "$db" "$@"
}

write_pg_config() {
  local dir; dir=$(pg_dir)
  cat >"$dir/postgresql.conf" <<EOF
# Generated by scripts/stack.sh. Local PostgreSQL holding the Smart Citizen platform's registry tables.
data_directory = '$dir/data'
hba_file = '$dir/pg_hba.conf'
ident_file = '$dir/data/pg_ident.conf'
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir/run'
unix_socket_permissions = 0700
password_encryption = scram-sha-256
max_connections = 100
shared_buffers = 128MB
timezone = 'UTC'
log_timezone = 'UTC'
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
lc_messages = 'C'
EOF
  # Loopback is shared with every process on the machine: TCP logins need the role's password
  # (scram-sha-256), and the superuser `postgres` has none, so it is reachable on the socket only.
  cat >"$dir/pg_hba.conf" <<'EOF'
# Generated by scripts/stack.sh.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
EOF
}

# A SIGKILLed postmaster can leave backends that still hold its shared memory for a moment; a new
# server refuses to start until they are gone. They all run with the data directory as their cwd.
pg_orphans_gone() {
  local data cwd; data=$(cd "$(pg_dir)/data" && pwd -P)
  for cwd in /proc/[0-9]*/cwd; do
    [ "$(readlink "$cwd" 2>/dev/null)" = "$data" ] && return 1
  done
  return 0
}

# Roles and database (as the superuser), then the tables, the registry's grants and the demo rows
# (as the tables' owner). Every step is idempotent: it runs at each start.
pg_apply_platform() {
  pg_socket_psql postgres postgres <<EOF || die "postgres: creating the roles or the database failed (see above)"
-- These statements carry passwords: keep them out of the server log, even on an error.
SET log_min_error_statement = panic;
SELECT 'CREATE ROLE $PG_OWNER' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_OWNER') \gexec
SELECT 'CREATE ROLE $PG_REGISTRY' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_REGISTRY') \gexec
ALTER ROLE $PG_OWNER LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$PG_OWNER_PASSWORD';
ALTER ROLE $PG_REGISTRY LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD '$PG_REGISTRY_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_OWNER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
  local f
  for f in schema grants seed; do
    pg_socket_psql "$PG_OWNER" "$PG_DB" -f "$PLATFORM_SQL/$f.sql" >/dev/null || die "postgres: $f.sql failed (see above)"
  done
  log "postgres: schema, grants and seed applied to $PG_DB"
}

start_postgres() {
  running postgres && { log "postgres already running"; return 0; }
  ensure_port_free postgres "$PG_PORT" STACK_POSTGRES_PORT
  [ "$(id -u)" -ne 0 ] || id postgres >/dev/null 2>&1 ||
    die "no postgres system user to run the server as (the Debian postgresql package creates it: scripts/stack.sh install)"
  pg_prepare_dir
  local dir bin; dir=$(pg_dir); bin=$(pg_bin)
  mkdir -p "$dir/data" "$dir/run" "$STACK/logs"
  chmod 700 "$dir/data" "$dir/run"
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir/data" "$dir/run"
  "${PG_AS[@]}" test -w "$dir/data" -a -r "$dir" ||
    die "the postgres user cannot reach $dir (a parent directory closed to other users?); set STACK_DIR elsewhere"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "postgres: creating a cluster in $dir/data"
    "${PG_AS[@]}" "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 >>"$STACK/logs/postgres.log" 2>&1 ||
      die "initdb failed; see $STACK/logs/postgres.log"
  fi
  write_pg_config
  for _ in $(seq 1 100); do pg_orphans_gone && break; sleep 0.2; done
  pg_orphans_gone || die "processes of a previous server still use $dir/data"
  spawn postgres "$dir" "${PG_AS[@]}" "$bin/postgres" -c config_file="$dir/postgresql.conf"
  wait_until 60 "postgres on :$PG_PORT" pg_ready || die "postgres did not start; see $STACK/logs/postgres.log"
  pg_apply_platform
}

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
  running redis && { log "redis already running"; return 0; }
  ensure_port_free redis "$REDIS_PORT" STACK_REDIS_PORT
  local dir=$STACK/redis
  mkdir -p "$dir"
  cat >"$dir/redis.conf" <<EOF
# Generated by scripts/stack.sh. Local Redis: the pub/sub channel of the onboarding handshake.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize no
supervised no
# Nothing to keep: pub/sub messages are never stored.
save ""
appendonly no
dir $dir
logfile ""
loglevel notice
EOF
  spawn redis "$dir" redis-server "$dir/redis.conf"
  wait_until 20 "redis on :$REDIS_PORT" redis_ready || die "redis did not start; see $STACK/logs/redis.log"
}

write_env() {
  # Mode 600: it holds the PostgreSQL roles' passwords.
  rm -f "$STACK/env"
  (umask 077 && cat >"$STACK/env") <<EOF
# Written by scripts/stack.sh (up, env): endpoints of the local stack. Source it: . .stack/env
export MQTT_HOST=127.0.0.1
export MQTT_PORT=$MQTT_PORT
export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export CLICKHOUSE_URL=http://127.0.0.1:$CH_PORT
export PLATFORM_POSTGRES_URL=postgres://$PG_OWNER:$PG_OWNER_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
export REGISTRY_POSTGRES_URL=postgres://$PG_REGISTRY:$PG_REGISTRY_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
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
    postgres) start_postgres ;;
    redis) start_redis ;;
    *) die "unknown component '$1' (${COMPONENTS[*]})" ;;
  esac
}

# In start order; `down` stops them in reverse.
COMPONENTS=(mosquitto kafka clickhouse postgres redis)

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
    start_postgres
    start_redis
    write_env
    log "stack is up; endpoints in $STACK/env"
    ;;
  down)
    for c in redis postgres clickhouse kafka mosquitto; do stop_one "$c"; done
    rm -f "$STACK/env"
    ;;
  status) for c in "${COMPONENTS[@]}"; do status_line "$c"; done ;;
  is-up) for c in "${COMPONENTS[@]}"; do running "$c" || exit 1; done ;;
  start) start_component "${2:?component}" ;;
  stop) stop_one "${2:?component}" ;;
  kill) stop_one "${2:?component}" KILL ;;
  env) write_env && log "endpoints in $STACK/env" ;;
  psql) # the password through the environment, not the command line (which `ps` shows to all)
    shift
    PGPASSWORD=$PG_OWNER_PASSWORD exec "$(pg_bin)/psql" -X -h 127.0.0.1 -p "$PG_PORT" -U "$PG_OWNER" -d "$PG_DB" "$@" ;;
  create-topics) create_topics ;;
  kafka-index) [ "$(tansu_index state)" = present ] && log "index $TANSU_INDEX is in place" || die "index $TANSU_INDEX is missing" ;;
  check-drops)
    if grep -i "dropped\|drop" "$STACK/logs/mosquitto-broker.log" 2>/dev/null; then
      die "mosquitto dropped messages (see above): a loss test would measure broker policy"
    fi
    log "mosquitto log shows no dropped messages"
    ;;
  *) sed -n '2,23p' "$0"; exit 2 ;;
esac
