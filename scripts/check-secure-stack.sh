#!/usr/bin/env bash
# Checks the secured local stack end to end: starts Mosquitto, tansu and ClickHouse with
# STACK_SECURE=1 (TLS, logins, ACL, SASL/SCRAM, HTTPS, passwords on every ClickHouse user) in a
# stack directory of its own (CHECK_SECURE_STACK_DIR, default .stack-secure/) on ports of their
# own (CHECK_SECURE_*_PORT: MQTT/TLS 28883, Kafka 29092, ClickHouse HTTP 28123, HTTPS 28443,
# native 29000), so it runs next to a running `make up` stack; checks the servers' listeners, files
# and processes for exposed secrets; runs the bridge's and the decoder's `secure` tests against it;
# and stops it again, whatever happens. The CA, certificates and passwords stay in the directory
# (regenerated only when missing); Kafka starts from an empty database each time.
#
#   scripts/check-secure-stack.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
started=$SECONDS

export STACK_DIR=${CHECK_SECURE_STACK_DIR:-$ROOT/.stack-secure}
case "$STACK_DIR" in /*) ;; *) STACK_DIR=$ROOT/$STACK_DIR ;; esac
export STACK_SECURE=1
export STACK_COMPONENTS="mosquitto kafka clickhouse"
export STACK_MQTT_TLS_PORT=${CHECK_SECURE_MQTT_TLS_PORT:-28883}
# No plaintext listener in secure mode; checked to be closed (and off the default 1883).
export STACK_MQTT_PORT=${CHECK_SECURE_MQTT_PORT:-21883}
export STACK_KAFKA_PORT=${CHECK_SECURE_KAFKA_PORT:-29092}
export STACK_CLICKHOUSE_PORT=${CHECK_SECURE_CLICKHOUSE_PORT:-28123}
export STACK_CLICKHOUSE_HTTPS_PORT=${CHECK_SECURE_CLICKHOUSE_HTTPS_PORT:-28443}
export STACK_CLICKHOUSE_TCP_PORT=${CHECK_SECURE_CLICKHOUSE_TCP_PORT:-29000}
# Every test makes its own topics and none deletes any (tansu's DeleteTopics deletes all).
export STACK_FRESH_KAFKA=1

cleanup() { scripts/stack.sh down || true; }
trap cleanup EXIT

failures=0
ok() { printf '[check-secure] ok: %s\n' "$*"; }
fail() { printf '[check-secure] FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }

# A stack left running by an interrupted run is stopped first: the check starts from a known state.
scripts/stack.sh down
scripts/stack.sh up
env_file=$STACK_DIR/env
ca=$STACK_DIR/tls/ca.pem

# --- the servers ---------------------------------------------------------------------------------
listeners() { ss -Hltn "sport = :$1" | awk '{print $4}' | sort -u | tr '\n' ' '; }
for port in "$STACK_MQTT_TLS_PORT" "$STACK_KAFKA_PORT" "$STACK_CLICKHOUSE_PORT" "$STACK_CLICKHOUSE_HTTPS_PORT" "$STACK_CLICKHOUSE_TCP_PORT"; do
  if [ "$(listeners "$port")" = "127.0.0.1:$port " ]; then ok "port $port listens on loopback only"; else fail "port $port: '$(listeners "$port")'"; fi
done
if [ -z "$(listeners "$STACK_MQTT_PORT")" ]; then ok "no plaintext MQTT listener"; else fail "something listens on $STACK_MQTT_PORT"; fi
mosquitto_pid=$(cat "$STACK_DIR/mosquitto.pid")
if ss -Hltnp | grep "pid=$mosquitto_pid," | awk '{print $4}' | grep -qvx "127.0.0.1:$STACK_MQTT_TLS_PORT"; then
  fail "Mosquitto listens on more than its TLS port"
else
  ok "Mosquitto listens on its TLS port only"
fi
# The certificate chains to the stack's CA for both names clients use, over TLS 1.2 or later.
for port in "$STACK_MQTT_TLS_PORT" "$STACK_CLICKHOUSE_HTTPS_PORT"; do
  for name in 127.0.0.1 localhost; do
    verify_opt=(-verify_hostname "$name"); [ "$name" = localhost ] || verify_opt=(-verify_ip "$name")
    if openssl s_client -connect "127.0.0.1:$port" -CAfile "$ca" -verify_return_error "${verify_opt[@]}" </dev/null >/dev/null 2>&1; then
      ok "TLS on $port verifies against the stack's CA as $name"
    else
      fail "TLS on $port does not verify as $name"
    fi
  done
  # (SECLEVEL=0: OpenSSL 3 clients would not offer TLS 1.1 at all otherwise.)
  old_tls() { openssl s_client -connect "127.0.0.1:$port" -cipher 'DEFAULT:@SECLEVEL=0' "$1" </dev/null >/dev/null 2>&1; }
  if old_tls -tls1_1; then fail "TLS 1.1 accepted on $port"; else ok "TLS 1.1 refused on $port"; fi
  if old_tls -tls1_2; then ok "TLS 1.2 accepted on $port"; else fail "TLS 1.2 refused on $port"; fi
done

# --- the secrets ---------------------------------------------------------------------------------
if [ "$(stat -c %a "$env_file")" = 600 ]; then ok "$env_file is private (600)"; else fail "$env_file mode $(stat -c %a "$env_file")"; fi
if [ "$(stat -c %a "$STACK_DIR/secrets")" = 700 ]; then ok "secrets/ is private (700)"; else fail "secrets/ mode"; fi
for key in "$STACK_DIR"/tls/*.key; do
  if [ "$(stat -c %a "$key")" = 600 ]; then ok "$(basename "$key") is private (600)"; else fail "$key mode $(stat -c %a "$key")"; fi
done
# Every password of the stack, one per line (the env file's *PASSWORD* values and device logins).
passwords=$(
  sed -n 's/^export [A-Z_]*PASSWORD=//p' "$env_file"
  sed -n 's/^export STACK_MQTT_DEVICE_LOGINS="\(.*\)"$/\1/p' "$env_file" | tr ' ' '\n' | cut -d: -f2
)
count=$(grep -c . <<<"$passwords")
if [ "$count" -ge 10 ]; then ok "$count passwords in the env file"; else fail "only $count passwords found in $env_file"; fi
# In no file of the stack but the env file and secrets/ (configs hold hashes), in no log.
holders=$(grep -rlF -f <(printf '%s\n' "$passwords") "$STACK_DIR" --exclude-dir=secrets --exclude=env || true)
if [ -z "$holders" ]; then ok "no password in the stack's configuration, data or logs"; else fail "passwords in: $holders"; fi
# On no process's command line (what `ps` shows every user).
cmdlines=$(for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' <"$f" 2>/dev/null; echo; done)
if grep -qF -f <(printf '%s\n' "$passwords") <<<"$cmdlines"; then fail "a password is on a command line"; else ok "no password on any command line"; fi

# --- the tests -----------------------------------------------------------------------------------
# The decoder's secret test also runs the forwarder's binary.
cargo build -p sck-forwarder --bin sck-forwarder
if cargo test -p sck-bridge -p sck-decoder --features sck-bridge/secure,sck-decoder/secure \
  --test secure -- --test-threads=1; then
  ok "the secure tests passed"
else
  fail "the secure tests failed"
fi
# After every test: no password in any service log they wrote, nor in the servers' logs.
leaked=$(grep -rlF -f <(printf '%s\n' "$passwords") target/test-logs "$STACK_DIR/logs" 2>/dev/null || true)
if [ -z "$leaked" ]; then ok "no password in target/test-logs or the servers' logs"; else fail "passwords in: $leaked"; fi

if [ "$failures" -gt 0 ]; then
  printf '[check-secure] %d check(s) failed (%ds)\n' "$failures" $((SECONDS - started)) >&2
  exit 1
fi
printf '[check-secure] all checks passed (%ds)\n' $((SECONDS - started))
