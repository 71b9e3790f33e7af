#!/usr/bin/env bash
# Checks the platform side of the local stack on its own: PostgreSQL (the registry tables, their
# seed, the least-privilege registry role) and Redis (pub/sub). It starts only those two, in a
# temporary STACK_DIR on ports of their own (CHECK_POSTGRES_PORT 25432, CHECK_REDIS_PORT 26379),
# so it runs next to a running `make up` stack; it stops them and removes the directory at the end.
#
#   scripts/check-platform-stack.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

STACK_DIR=$(mktemp -d /tmp/sck-platform-check.XXXXXX)
# The server runs as the `postgres` user when we are root: it must be able to enter the directory.
chmod 755 "$STACK_DIR"
export STACK_DIR
export STACK_POSTGRES_PORT=${CHECK_POSTGRES_PORT:-25432}
export STACK_REDIS_PORT=${CHECK_REDIS_PORT:-26379}
subscriber=""
cleanup() {
  [ -z "$subscriber" ] || kill "$subscriber" 2>/dev/null || true
  scripts/stack.sh stop redis || true
  scripts/stack.sh stop postgres || true
  rm -rf "$STACK_DIR"
}
trap cleanup EXIT

failures=0
ok() { printf '[check-platform] ok: %s\n' "$*"; }
fail() { printf '[check-platform] FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }

scripts/stack.sh start postgres
scripts/stack.sh start redis
scripts/stack.sh env
# shellcheck disable=SC1091
. "$STACK_DIR/env"

PSQL=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/psql' | sort -V | tail -n 1)
password_of() { local u=${1#postgres://*:}; echo "${u%%@*}"; }
OWNER_PW=$(password_of "$PLATFORM_POSTGRES_URL")
REGISTRY_PW=$(password_of "$REGISTRY_POSTGRES_URL")
# psql as a role over TCP, as the services connect; the password through the environment.
sql_as() { # role password sql
  PGPASSWORD=$2 PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -w -At -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U "$1" -d sck_platform -c "$3"
}
owner() { sql_as sck_platform "$OWNER_PW" "$1"; }
registry() { sql_as sck_registry "$REGISTRY_PW" "$1"; }
expect() { # description expected actual
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$2', got '$3'"; fi
}

# --- endpoints ---------------------------------------------------------------------------------
expect "PLATFORM_POSTGRES_URL" "postgres://sck_platform:$OWNER_PW@127.0.0.1:$STACK_POSTGRES_PORT/sck_platform" "$PLATFORM_POSTGRES_URL"
expect "REGISTRY_POSTGRES_URL" "postgres://sck_registry:$REGISTRY_PW@127.0.0.1:$STACK_POSTGRES_PORT/sck_platform" "$REGISTRY_POSTGRES_URL"
expect "REDIS_URL" "redis://127.0.0.1:$STACK_REDIS_PORT" "$REDIS_URL"
for port in "$STACK_POSTGRES_PORT" "$STACK_REDIS_PORT"; do
  listeners=$(ss -Hltn "sport = :$port" | awk '{print $4}' | sort -u | tr '\n' ' ')
  expect "port $port listens on loopback only" "127.0.0.1:$port " "$listeners"
done

# --- schema and seed, applied again ---------------------------------------------------------------
counts="select (select count(*) from users), (select count(*) from devices), (select count(*) from orphan_devices),
  (select count(*) from sensors), (select count(*) from components)"
expect "seed rows (users|devices|orphan_devices|sensors|components)" "3|4|1|12|48" "$(owner "$counts")"
expect "tables owned by sck_platform" "5" \
  "$(owner "select count(*) from pg_tables where schemaname = 'public' and tableowner = 'sck_platform'")"
for f in schema grants seed schema grants seed; do
  if PGPASSWORD=$OWNER_PW PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$STACK_POSTGRES_PORT" -U sck_platform -d sck_platform -f "scripts/platform/$f.sql" >/dev/null; then
    ok "$f.sql applied again"
  else
    fail "$f.sql applied again"
  fi
done
expect "seed rows unchanged after applying everything twice more" "3|4|1|12|48" "$(owner "$counts")"
new_id=$(owner "insert into devices (device_token) values ('check-seq') returning id")
if [ "${new_id:-0}" -gt 4 ]; then ok "a device inserted without an id gets a fresh one ($new_id)"; else fail "new device id '$new_id'"; fi
owner "delete from devices where id = $new_id" >/dev/null
expect "seeded sensor key" "temp" "$(owner "select default_key from sensors where id = 55")"
expect "forwarding device with an owner's forwarding token" "2|fwdDemoToken2xA7" \
  "$(owner "select d.id, u.forwarding_token from devices d join users u on u.id = d.owner_id where d.enable_forwarding and u.forwarding_token is not null")"

# --- the registry role: reads everything, writes only its columns ----------------------------------
for t in devices users orphan_devices sensors components; do
  if registry "select count(*) from $t" >/dev/null 2>&1; then ok "sck_registry selects $t"; else fail "sck_registry cannot select $t"; fi
done
allowed=(
  "update devices set hardware_info = '{\"hw_ver\": \"2.1\"}' where device_token = 'demo02'"
  "update devices d set last_reading_at = v.t, data = coalesce(d.data, '{}') || v.data, state = 'has_published'
     from (values (2, timestamp '2030-01-01 00:00:00', jsonb '{\"55\": 20.5}')) as v(id, t, data) where d.id = v.id"
  "update orphan_devices set device_handshake = true where device_token = 'orph01'"
  "update components c set last_reading_at = timestamp '2030-01-01 00:00:00'
     from unnest(array[55, 56]) as s(id) where c.device_id = 2 and c.sensor_id = s.id"
)
for q in "${allowed[@]}"; do
  if registry "$q" >/dev/null; then ok "sck_registry may: ${q%%set*}set …"; else fail "sck_registry refused: $q"; fi
done
expect "the registry's updates are stored" "2.1|2030-01-01 00:00:00|20.5|has_published|t|2" "$(owner "
  select d.hardware_info->>'hw_ver', d.last_reading_at, d.data->>'55', d.state,
    (select device_handshake from orphan_devices where device_token = 'orph01'),
    (select count(*) from components where device_id = 2 and last_reading_at = '2030-01-01')
  from devices d where d.id = 2")"
denied=(
  "update devices set owner_id = 3 where id = 2"
  "update devices set enable_forwarding = false where id = 2"
  "update devices set device_token = 'stolen' where id = 2"
  "update users set forwarding_token = 'x' where id = 2"
  "update orphan_devices set onboarding_session = 'x' where id = 1"
  "update components set key = 'x' where device_id = 2"
  "update sensors set default_key = 'x' where id = 55"
  "insert into devices (device_token) values ('intruder')"
  "insert into orphan_devices (device_token) values ('intruder')"
  "delete from components where device_id = 2"
  "truncate orphan_devices"
  "create table intruder (id int)"
)
for q in "${denied[@]}"; do
  if out=$(registry "$q" 2>&1); then
    fail "sck_registry was allowed: $q"
  elif grep -q "permission denied" <<<"$out"; then
    ok "sck_registry may not: $q"
  else
    fail "sck_registry: $q failed otherwise: $out"
  fi
done
expect "denied statements changed nothing" "1|2|demo02|0" \
  "$(owner "select (select count(*) from orphan_devices), owner_id, device_token, (select count(*) from devices where device_token = 'intruder') from devices where id = 2")"

# --- authentication -----------------------------------------------------------------------------
if sql_as sck_registry wrong-password "select 1" >/dev/null 2>&1; then fail "a wrong password is accepted"; else ok "a wrong password is refused"; fi
if sql_as postgres "" "select 1" >/dev/null 2>&1; then fail "the superuser logs in over TCP"; else ok "the superuser cannot log in over TCP"; fi

# --- Redis pub/sub -----------------------------------------------------------------------------
timeout 20 redis-cli -p "$STACK_REDIS_PORT" --raw SUBSCRIBE token-received >"$STACK_DIR/subscriber.out" 2>&1 &
subscriber=$!
receivers=0
for _ in $(seq 1 50); do
  receivers=$(redis-cli -p "$STACK_REDIS_PORT" PUBLISH token-received '{"onboarding_session":"check"}')
  [ "$receivers" = 1 ] && break
  sleep 0.1
done
expect "a PUBLISH reaches the subscriber" "1" "$receivers"
for _ in $(seq 1 50); do grep -q '"onboarding_session":"check"' "$STACK_DIR/subscriber.out" && break; sleep 0.1; done
if grep -q '"onboarding_session":"check"' "$STACK_DIR/subscriber.out"; then ok "the subscriber received the message"; else fail "the subscriber received nothing"; fi
kill "$subscriber" 2>/dev/null || true
subscriber=""

# --- restarts keep the data ----------------------------------------------------------------------
registry "update devices set state = 'before-stop' where id = 3" >/dev/null
scripts/stack.sh stop postgres
scripts/stack.sh start postgres
expect "data kept across stop/start (and not reset by the seed)" "before-stop|2030-01-01 00:00:00" \
  "$(owner "select (select state from devices where id = 3), (select last_reading_at from devices where id = 2)")"
registry "update devices set state = 'before-kill' where id = 3" >/dev/null
scripts/stack.sh kill postgres
scripts/stack.sh start postgres
expect "committed data kept across a crash (SIGKILL)" "before-kill|3|4|1|12|48" \
  "$(owner "select (select state from devices where id = 3), (select count(*) from users), (select count(*) from devices),
    (select count(*) from orphan_devices), (select count(*) from sensors), (select count(*) from components)")"
scripts/stack.sh kill redis
scripts/stack.sh start redis
expect "redis answers after a crash and a start" "PONG" "$(redis-cli -p "$STACK_REDIS_PORT" ping)"

# --- secrets stay out of the logs --------------------------------------------------------------
if grep -rqF -e "$OWNER_PW" -e "$REGISTRY_PW" "$STACK_DIR/logs"; then fail "a password is in $STACK_DIR/logs"; else ok "no password in the logs"; fi
expect ".stack/env is private" "600" "$(stat -c %a "$STACK_DIR/env")"

if [ "$failures" -gt 0 ]; then
  printf '[check-platform] %d check(s) failed\n' "$failures" >&2
  exit 1
fi
printf '[check-platform] all checks passed\n'
