#!/usr/bin/env bash
# The local stack of real servers on loopback: Mosquitto (MQTT), tansu (Kafka API), ClickHouse,
# and the Smart Citizen platform's side: PostgreSQL (its registry tables) and Redis.
#
#   scripts/stack.sh up              install what is missing, start what is not running, wait, write .stack/env
#   scripts/stack.sh down            stop only what `up` started (by pid file)
#   scripts/stack.sh status          one line per component
#   scripts/stack.sh is-up           exit 0 when every selected component runs
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
#
# STACK_COMPONENTS="mosquitto kafka clickhouse" limits up / down / status / is-up to those
# components (default: all five). STACK_DIR moves everything (.stack/ by default).
#
# STACK_SECURE=1 (secure mode; remembered in $STACK_DIR/mode while anything runs) starts
# the servers as production runs them: Mosquitto with TLS only (STACK_MQTT_TLS_PORT, 8883), no
# anonymous access, users and an ACL (devices publish only under their own token, the bridge
# subscribes, the forwarder writes its forward topics); tansu with SASL/SCRAM-SHA-512
# authentication; ClickHouse with an HTTPS port (STACK_CLICKHOUSE_HTTPS_PORT, 8443) and a password
# on every user (the decoder's, a read-only one). A CA and a server certificate (127.0.0.1,
# localhost) are generated into $STACK_DIR/tls/ and the passwords into $STACK_DIR/secrets/ when
# missing; they leave this script only through $STACK_DIR/env (mode 600). docs/local-stack.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=${STACK_DIR:-$ROOT/.stack}
# Absolute: the paths written into $STACK/env (certificates) must hold from any directory.
mkdir -p "$STACK" && STACK=$(cd "$STACK" && pwd)
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
MQTT_TLS_PORT=${STACK_MQTT_TLS_PORT:-8883}
CH_HTTPS_PORT=${STACK_CLICKHOUSE_HTTPS_PORT:-8443}
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
  apt_install mosquitto clickhouse-server clickhouse-client curl iproute2 openssl postgresql redis-server
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

# --- secure mode: certificates, passwords, users ----------------------------------------------

TLS_DIR=$STACK/tls
# The device users of the secure Mosquitto (username = device token, as Smart Citizen's broker
# does): the platform's seeded devices.
MQTT_DEVICES=${STACK_MQTT_DEVICES:-demo01 demo02 demo03 demo04}
MQTT_BRIDGE_USER=sck-bridge
MQTT_FORWARDER_USER=sck-forwarder
KAFKA_USER=sck-ingest
CH_DECODER_USER=sck_decoder
CH_READER_USER=sck_reader

# STACK_SECURE when given (1 or 0), else the mode the stack in $STACK was started in.
resolve_mode() {
  case "${STACK_SECURE:-}" in
    1) echo 1 ;;
    0) echo 0 ;;
    "") if [ "$(cat "$STACK/mode" 2>/dev/null || true)" = secure ]; then echo 1; else echo 0; fi ;;
    *) die "STACK_SECURE must be 1 or 0, not '$STACK_SECURE'" ;;
  esac
}

mode_name() { if [ "$SECURE" = 1 ]; then echo secure; else echo plain; fi; }

any_running() {
  local c
  for c in "${COMPONENTS[@]}"; do running "$c" && return 0; done
  return 1
}

# Before starting anything: a stack runs in one mode, remembered in $STACK/mode while it runs.
claim_mode() {
  local have; have=$(cat "$STACK/mode" 2>/dev/null || true)
  if [ -n "$have" ] && [ "$have" != "$(mode_name)" ] && any_running; then
    die "the stack in $STACK runs in $have mode; stop it (scripts/stack.sh down) before starting it in $(mode_name) mode"
  fi
  mode_name >"$STACK/mode"
}

# secret NAME: this stack's password NAME (128 random bits, hex; printed without a newline),
# generated at its first use into $STACK/secrets/ (mode 700). It travels through builtins,
# command substitutions and pipes only: never on a command line.
secret() {
  local f=$STACK/secrets/$1
  if [ ! -s "$f" ]; then
    (umask 077 && mkdir -p "$STACK/secrets" && openssl rand -hex 16 >"$f.new" && mv "$f.new" "$f") ||
      die "cannot generate the password $1 in $STACK/secrets"
  fi
  printf '%s' "$(cat "$f")"
}

# Every password of the secure stack, generated here in the main shell (where a failure stops the
# script) before the configs and the env file read them through command substitutions.
ensure_secrets() {
  local name
  for name in "mqtt-$MQTT_BRIDGE_USER" "mqtt-$MQTT_FORWARDER_USER" "kafka-$KAFKA_USER" clickhouse-default \
    "clickhouse-$CH_DECODER_USER" "clickhouse-$CH_READER_USER"; do
    secret "$name" >/dev/null
  done
  for name in $MQTT_DEVICES; do secret "mqtt-$name" >/dev/null; done
}

# A CA and a server certificate for 127.0.0.1 and localhost, signed by it (Mosquitto's and
# ClickHouse's TLS), generated when missing; the server certificate also when it expires within a
# day or no longer matches the CA. Keys are mode 600; clients trust $TLS_DIR/ca.pem.
ensure_tls() {
  local d=$TLS_DIR tlslog=$STACK/logs/tls.log
  mkdir -p "$d" "$STACK/logs"
  if [ ! -s "$d/ca.pem" ] || [ ! -s "$d/ca.key" ]; then
    log "tls: generating the stack's CA in $d"
    rm -f "$d/server.pem"
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -keyout "$d/ca.key" -out "$d/ca.pem" -subj "/CN=sck-ingest local stack CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign") \
      >>"$tlslog" 2>&1 || die "openssl could not make the CA; see $tlslog"
  fi
  if [ ! -s "$d/server.pem" ] || [ ! -s "$d/server.key" ] ||
    ! openssl x509 -checkend 86400 -noout -in "$d/server.pem" >/dev/null 2>&1 ||
    ! openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null 2>&1; then
    log "tls: generating the server certificate (IP:127.0.0.1, DNS:localhost)"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext"
    (umask 077 && openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$d/server.key" -out "$d/server.csr" \
      -subj "/CN=localhost" &&
      openssl x509 -req -sha256 -days 825 -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAserial "$d/ca.srl" -CAcreateserial -extfile "$d/server.ext" -out "$d/server.pem") \
      >>"$tlslog" 2>&1 || die "openssl could not make the server certificate; see $tlslog"
    rm -f "$d/server.csr"
  fi
  chmod 644 "$d/ca.pem" "$d/server.pem"
  chmod 600 "$d/ca.key" "$d/server.key"
}

# Mosquitto's dynamic-security plugin (Debian's mosquitto package ships it).
dynsec_plugin() {
  local f=${STACK_MOSQUITTO_DYNSEC:-}
  [ -n "$f" ] || f=$(dpkg -L mosquitto 2>/dev/null | grep '/mosquitto_dynamic_security\.so$' | head -n 1 || true)
  if [ -z "$f" ] || [ ! -f "$f" ]; then
    die "mosquitto_dynamic_security.so not found (Debian's mosquitto package; or set STACK_MOSQUITTO_DYNSEC)"
  fi
  echo "$f"
}

# Mosquitto's users and ACL, in the spirit of Smart Citizen's acl.conf: a device (username = its
# token) may publish only under device/sck/<token>/ and subscribe to nothing; the bridge may only
# subscribe to its shared subscriptions of device/ and bridge/ topics and receive those; the
# forwarder may only publish its /forward/ topics; everything else is denied.
#
# Through the dynamic-security plugin, not an acl_file: Mosquitto 2.0's acl_file never checks a
# SUBSCRIBE (it grants every one and checks reads at delivery), so a device could join the
# bridge's shared group ($share/sck-bridge/device/#) and every message the broker hands it, which
# its ACL then forbids delivering, would be lost to the bridge. The plugin refuses that SUBSCRIBE
# (SUBACK 0x80; MQTT 5: 0x87). It has no %u patterns in 2.0, so each device gets its own role.
# Passwords are hashed here as the plugin does (PBKDF2-SHA512); they come in on stdin.
write_mosquitto_dynsec() {
  local dir=$1 u code
  code=$(cat <<'PY'
import base64, hashlib, json, os, sys
bridge, forwarder, out = sys.argv[1:4]
clients, roles = [], []
def login(user, password, role):
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    clients.append({"username": user, "roles": [{"rolename": role}], "iterations": 101,
                    "salt": base64.b64encode(salt).decode(), "password": base64.b64encode(digest).decode()})
def role(name, *acls):
    roles.append({"rolename": name, "acls": [{"acltype": t, "topic": topic, "allow": True} for t, topic in acls]})
role("bridge", ("subscribePattern", "$share/+/device/#"), ("subscribePattern", "$share/+/bridge/#"),
     ("publishClientReceive", "device/#"), ("publishClientReceive", "bridge/#"))
role("forwarder", ("publishClientSend", "/forward/#"))
for line in sys.stdin.read().splitlines():
    user, password = line.split(" ", 1)
    if user == bridge:
        login(user, password, "bridge")
    elif user == forwarder:
        login(user, password, "forwarder")
    else:
        role("device-" + user, ("publishClientSend", "device/sck/%s/#" % user))
        login(user, password, "device-" + user)
config = {"defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                               "subscribe": False, "unsubscribe": True},
          "clients": clients, "groups": [], "roles": roles}
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(config, f, indent=1)
PY
  )
  rm -f "$dir/dynamic-security.json"
  for u in "$MQTT_BRIDGE_USER" "$MQTT_FORWARDER_USER" $MQTT_DEVICES; do
    printf '%s %s\n' "$u" "$(secret "mqtt-$u")"
  done | python3 -c "$code" "$MQTT_BRIDGE_USER" "$MQTT_FORWARDER_USER" "$dir/dynamic-security.json" ||
    die "cannot write $dir/dynamic-security.json"
}

# tansu's SCRAM-SHA-512 credential for the services' user, written into its database while the
# broker is stopped (what AlterUserScramCredentials stores; `tansu user create` would need the
# password as an argument). The password comes in on stdin.
tansu_scram_user() { # user
  local code
  code=$(cat <<'PY'
import hashlib, hmac, os, sqlite3, sys
db, user = sys.argv[1:]
password = sys.stdin.read().encode()
salt, iterations = os.urandom(32), 8192
salted = hashlib.pbkdf2_hmac("sha512", password, salt, iterations)
stored_key = hashlib.sha512(hmac.new(salted, b"Client Key", "sha512").digest()).digest()
server_key = hmac.new(salted, b"Server Key", "sha512").digest()
c = sqlite3.connect(db, timeout=30)
# mechanism 2 = SCRAM-SHA-512; tansu's cluster id is its default, tansu_cluster.
n = c.execute("""
    insert into scram_credential (cluster, username, mechanism, salt, iterations, stored_key, server_key)
    select id, ?, 2, ?, ?, ?, ? from cluster where name = 'tansu_cluster'
    on conflict (cluster, username, mechanism) do update set salt = excluded.salt,
      iterations = excluded.iterations, stored_key = excluded.stored_key,
      server_key = excluded.server_key, last_updated = current_timestamp""",
    (user, salt, iterations, stored_key, server_key)).rowcount
c.commit()
sys.exit(0 if n == 1 else 1)
PY
  )
  secret "kafka-$1" | python3 -c "$code" "$STACK/kafka/tansu.db" "$1"
}

# A Kafka ApiVersions round trip (allowed before authentication): the broker answers.
kafka_answers() {
  python3 - "$KAFKA_PORT" <<'PY' 2>/dev/null
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
req = struct.pack(">hhih", 18, 0, 7, -1)  # ApiVersions v0, correlation id 7, no client id
s.sendall(struct.pack(">i", len(req)) + req)
head = s.recv(4, socket.MSG_WAITALL)
body = s.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
correlation, error = struct.unpack(">ih", body[:6])
sys.exit(0 if (correlation, error) == (7, 0) else 1)
PY
}

# --- components -----------------------------------------------------------------------------

start_mosquitto() {
  running mosquitto && { log "mosquitto already running"; return 0; }
  local dir=$STACK/mosquitto port=$MQTT_PORT listener max_queued=0
  mkdir -p "$dir/data"
  if [ "$SECURE" = 1 ]; then
    port=$MQTT_TLS_PORT
    ensure_port_free mosquitto "$port" STACK_MQTT_TLS_PORT
    local plugin; plugin=$(dynsec_plugin)
    ensure_tls
    write_mosquitto_dynsec "$dir"
    # Mosquitto 2.0.11 with max_queued_messages 0 closes a client's connection right after the
    # PUBACK of a publish its ACL denied; with a (large) limit it drops the publish and keeps the
    # client connected, as EMQX does by default.
    max_queued=1000000
    # TLS only: no plaintext listener, no anonymous client; users and ACL of the plugin.
    listener="listener $port 127.0.0.1
cafile $TLS_DIR/ca.pem
certfile $TLS_DIR/server.pem
keyfile $TLS_DIR/server.key
tls_version tlsv1.2
allow_anonymous false
plugin $plugin
plugin_opt_config_file $dir/dynamic-security.json"
  else
    ensure_port_free mosquitto "$port" STACK_MQTT_PORT
    rm -f "$dir/dynamic-security.json"
    listener="listener $port 127.0.0.1
allow_anonymous true"
  fi
  cat >"$dir/mosquitto.conf" <<EOF
# Generated by scripts/stack.sh ($(mode_name) mode). Local test broker for sck-ingest.
per_listener_settings false
$listener
user root
# Sessions and queued QoS 1 messages survive a broker restart.
persistence true
persistence_location $dir/data/
# Saved every STACK_MQTT_AUTOSAVE_SECS (5 s) and at a clean shutdown: a SIGKILLed broker loses what
# it acknowledged since the last save (make drills measures it).
autosave_interval ${STACK_MQTT_AUTOSAVE_SECS:-5}
# The defaults drop QoS 1 messages beyond 1000 queued per client; the tests build bigger backlogs
# on purpose (bridge killed, Kafka down), and a loss test must measure the pipeline, not this policy.
max_queued_messages $max_queued
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
  wait_until 20 "mosquitto on :$port ($(mode_name))" port_open "$port" || die "mosquitto did not start; see $STACK/logs/"
}

kafka_ready() { # open | auth
  port_open "$KAFKA_PORT" || return 1
  if [ "$1" = auth ]; then
    # tansu's CLI cannot authenticate: ask for the API versions, which needs no login.
    kafka_answers
  else
    "$(tansu_bin)" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
  fi
}

spawn_kafka() { # open | auth (SASL/SCRAM required of every client: tansu's --authentication)
  local auth=()
  [ "$1" = open ] || auth=(--authentication)
  # sqlite:// keeps records across a restart (memory:// would not). The path is relative to the
  # broker's working directory: sqlite:///abs/path does not work in tansu 0.6.0.
  spawn kafka "$STACK/kafka" "$(tansu_bin)" broker \
    --storage-engine "sqlite://tansu.db" \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" "${auth[@]}"
  wait_until 60 "kafka (tansu, $1) on :$KAFKA_PORT" kafka_ready "$1" || die "tansu did not start; see $STACK/logs/kafka.log"
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
    spawn_kafka open
    # In secure mode this is the only time tansu's CLI can create the pipeline topics (it cannot
    # authenticate); this first start lasts seconds and listens on loopback only.
    [ "$SECURE" = 0 ] || create_topics
    stop_one kafka
    state=missing
  fi
  if [ "$state" = missing ]; then
    tansu_index apply || die "cannot create the $TANSU_INDEX index in $STACK/kafka/tansu.db"
    log "kafka (tansu): created index $TANSU_INDEX"
  fi
  [ "$(tansu_index state)" = present ] || die "index $TANSU_INDEX is missing from $STACK/kafka/tansu.db"
  if [ "$SECURE" = 1 ]; then
    tansu_scram_user "$KAFKA_USER" || die "cannot store the SCRAM credential of $KAFKA_USER in $STACK/kafka/tansu.db"
    spawn_kafka auth
  else
    spawn_kafka open
  fi
}

create_topics() {
  local existing; existing=$("$(tansu_bin)" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" 2>/dev/null || true)
  for t in "${TOPICS[@]}"; do
    if grep -qx "$t" <<<"$existing" || grep -q "\"$t\"" <<<"$existing"; then continue; fi
    "$(tansu_bin)" topic create "$t" --partitions "$PARTITIONS" --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null
    log "created topic $t ($PARTITIONS partitions)"
  done
}

clickhouse_ready() {
  [ "$(curl -fsS "http://127.0.0.1:$CH_PORT/ping" 2>/dev/null)" = "Ok." ] || return 1
  [ "$SECURE" = 0 ] ||
    [ "$(curl -fsS --cacert "$TLS_DIR/ca.pem" "https://127.0.0.1:$CH_HTTPS_PORT/ping" 2>/dev/null)" = "Ok." ]
}

# <user> entries of users.xml; in secure mode each with the SHA-256 of its password (the
# plaintext is never written into the server's configuration).
clickhouse_user() { # name profile [password]
  local password="<password></password>"
  [ $# -lt 3 ] || password="<password_sha256_hex>$(printf '%s' "$3" | sha256sum | cut -d' ' -f1)</password_sha256_hex>"
  printf '        <%s>\n            %s\n            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\n            <profile>%s</profile>\n            <quota>default</quota>\n        </%s>\n' \
    "$1" "$password" "$2" "$1"
}

start_clickhouse() {
  running clickhouse && { log "clickhouse already running"; return 0; }
  ensure_port_free clickhouse "$CH_PORT" STACK_CLICKHOUSE_PORT
  ensure_port_free clickhouse "$CH_TCP_PORT" STACK_CLICKHOUSE_TCP_PORT
  local dir=$STACK/clickhouse tls="" users
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  if [ "$SECURE" = 1 ]; then
    ensure_port_free clickhouse "$CH_HTTPS_PORT" STACK_CLICKHOUSE_HTTPS_PORT
    ensure_tls
    # HTTPS for the services (CLICKHOUSE_URL=https://…, CLICKHOUSE_CA_FILE). The HTTP and native
    # ports stay on loopback for tools and the tests' own queries; every user needs its password.
    tls="<https_port>$CH_HTTPS_PORT</https_port>
    <openSSL>
        <server>
            <certificateFile>$TLS_DIR/server.pem</certificateFile>
            <privateKeyFile>$TLS_DIR/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>"
    # default: the administrator (tests, operators); sck_decoder: migrations and inserts;
    # sck_reader: queries only (readonly=1 refuses INSERT, CREATE, ALTER, SET).
    users="$(clickhouse_user default default "$(secret clickhouse-default)")
$(clickhouse_user "$CH_DECODER_USER" default "$(secret "clickhouse-$CH_DECODER_USER")")
$(clickhouse_user "$CH_READER_USER" readonly "$(secret "clickhouse-$CH_READER_USER")")"
  else
    users=$(clickhouse_user default default)
  fi
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/stack.sh ($(mode_name) mode). Local ClickHouse for sck-ingest. -->
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
    $tls
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
  rm -f "$dir/users.xml"
  (umask 077 && cat >"$dir/users.xml") <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default><max_memory_usage>4000000000</max_memory_usage></default>
        <readonly><max_memory_usage>4000000000</max_memory_usage><readonly>1</readonly></readonly>
    </profiles>
    <users>
$users
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
  spawn clickhouse "$dir" clickhouse-server --config-file="$dir/config.xml"
  wait_until 60 "clickhouse on :$CH_PORT$([ "$SECURE" = 0 ] || echo " and https :$CH_HTTPS_PORT")" clickhouse_ready ||
    die "clickhouse did not start; see $STACK/logs/"
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
  local mqtt_port=$MQTT_PORT clickhouse_url=http://127.0.0.1:$CH_PORT
  if [ "$SECURE" = 1 ]; then mqtt_port=$MQTT_TLS_PORT clickhouse_url=https://127.0.0.1:$CH_HTTPS_PORT; fi
  # Mode 600: it holds the passwords.
  rm -f "$STACK/env"
  (umask 077 && cat >"$STACK/env") <<EOF
# Written by scripts/stack.sh (up, env; $(mode_name) mode): endpoints of the local stack. Source it: . $STACK/env
export MQTT_HOST=127.0.0.1
export MQTT_PORT=$mqtt_port
export KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
export CLICKHOUSE_URL=$clickhouse_url
EOF
  # The platform's endpoints only when selected: a stack of other components must not point its
  # clients at whatever listens on the default ports.
  if selected postgres; then
    cat >>"$STACK/env" <<EOF
export PLATFORM_POSTGRES_URL=postgres://$PG_OWNER:$PG_OWNER_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
export REGISTRY_POSTGRES_URL=postgres://$PG_REGISTRY:$PG_REGISTRY_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
EOF
  fi
  if selected redis; then echo "export REDIS_URL=redis://127.0.0.1:$REDIS_PORT" >>"$STACK/env"; fi
  [ "$SECURE" = 1 ] || return 0
  local logins="" d
  for d in $MQTT_DEVICES; do logins="$logins${logins:+ }$d:$(secret "mqtt-$d")"; done
  cat >>"$STACK/env" <<EOF
# Secure mode. A service's settings: the bridge's MQTT user, the services' Kafka user, the
# decoder's ClickHouse user, and the CA that signed the servers' certificates.
export MQTT_TLS=true
export MQTT_CA_FILE=$TLS_DIR/ca.pem
export MQTT_USERNAME=$MQTT_BRIDGE_USER
export MQTT_PASSWORD=$(secret "mqtt-$MQTT_BRIDGE_USER")
export KAFKA_SECURITY_PROTOCOL=sasl_plaintext
export KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export KAFKA_SASL_USERNAME=$KAFKA_USER
export KAFKA_SASL_PASSWORD=$(secret "kafka-$KAFKA_USER")
export CLICKHOUSE_CA_FILE=$TLS_DIR/ca.pem
export CLICKHOUSE_USER=$CH_DECODER_USER
export CLICKHOUSE_PASSWORD=$(secret "clickhouse-$CH_DECODER_USER")
# The stack's other identities (settings of no service): the forwarder's MQTT user, the devices'
# logins (token:password), ClickHouse's administrator and read-only user on its HTTP port.
export STACK_FORWARDER_MQTT_USERNAME=$MQTT_FORWARDER_USER
export STACK_FORWARDER_MQTT_PASSWORD=$(secret "mqtt-$MQTT_FORWARDER_USER")
export STACK_MQTT_DEVICE_LOGINS="$logins"
export STACK_CLICKHOUSE_HTTP_URL=http://127.0.0.1:$CH_PORT
export STACK_CLICKHOUSE_ADMIN_USER=default
export STACK_CLICKHOUSE_ADMIN_PASSWORD=$(secret clickhouse-default)
export STACK_CLICKHOUSE_READER_USER=$CH_READER_USER
export STACK_CLICKHOUSE_READER_PASSWORD=$(secret "clickhouse-$CH_READER_USER")
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

# The components up / down / status / is-up act on: STACK_COMPONENTS, in start order.
selected_components() {
  local c w known
  for w in ${STACK_COMPONENTS:-${COMPONENTS[*]}}; do
    known=0
    for c in "${COMPONENTS[@]}"; do [ "$c" = "$w" ] && known=1; done
    [ "$known" = 1 ] || die "STACK_COMPONENTS: unknown component '$w' (${COMPONENTS[*]})"
  done
  for c in "${COMPONENTS[@]}"; do
    for w in ${STACK_COMPONENTS:-${COMPONENTS[*]}}; do [ "$c" = "$w" ] && echo "$c" && break; done
  done
  return 0
}

selected() { local c; for c in "${SELECTED[@]}"; do [ "$c" = "$1" ] && return 0; done; return 1; }

cmd=${1:-}
mkdir -p "$STACK"
SECURE=$(resolve_mode)
selected_components >/dev/null # in this shell: an unknown component stops the script here
mapfile -t SELECTED < <(selected_components)
[ ${#SELECTED[@]} -gt 0 ] || die "STACK_COMPONENTS selects no component"
case "$cmd" in up | start | env) [ "$SECURE" = 0 ] || ensure_secrets ;; esac
case "$cmd" in
  install) install_all ;;
  up)
    install_all
    claim_mode
    for c in "${SELECTED[@]}"; do
      start_component "$c"
      # Secure mode: tansu's CLI cannot authenticate; start_kafka made them on a new database.
      if [ "$c" = kafka ] && [ "$SECURE" = 0 ]; then create_topics; fi
    done
    write_env
    log "stack is up ($(mode_name) mode: ${SELECTED[*]}); endpoints in $STACK/env"
    ;;
  down)
    for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do stop_one "${SELECTED[$i]}"; done
    if ! any_running; then rm -f "$STACK/env" "$STACK/mode"; fi
    ;;
  status) for c in "${SELECTED[@]}"; do status_line "$c"; done ;;
  is-up) for c in "${SELECTED[@]}"; do running "$c" || exit 1; done ;;
  start) claim_mode && start_component "${2:?component}" ;;
  stop) stop_one "${2:?component}" ;;
  kill) stop_one "${2:?component}" KILL ;;
  env) write_env && log "endpoints in $STACK/env" ;;
  psql) # the password through the environment, not the command line (which `ps` shows to all)
    shift
    PGPASSWORD=$PG_OWNER_PASSWORD exec "$(pg_bin)/psql" -X -h 127.0.0.1 -p "$PG_PORT" -U "$PG_OWNER" -d "$PG_DB" "$@" ;;
  create-topics)
    [ "$SECURE" = 0 ] || die "secure mode: tansu's CLI cannot authenticate; topics are created on a new database by \`up\`, or by the bridge (KAFKA_CREATE_TOPICS=true)"
    create_topics ;;
  kafka-index)
    if [ "$(tansu_index state)" = present ]; then log "index $TANSU_INDEX is in place"; else die "index $TANSU_INDEX is missing"; fi ;;
  check-drops)
    if grep -i "dropped\|drop" "$STACK/logs/mosquitto-broker.log" 2>/dev/null; then
      die "mosquitto dropped messages (see above): a loss test would measure broker policy"
    fi
    log "mosquitto log shows no dropped messages"
    ;;
  *) sed -n '2,36p' "$0"; exit 2 ;;
esac
