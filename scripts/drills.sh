#!/usr/bin/env bash
# Fault drills (tools/drills, docs/drills.md) against the real local stack: every failure of the
# table, one fresh bridge + decoder each, every reading counted in ClickHouse.
#
#   scripts/drills.sh [full|short] [sck-drills options...]   (make drills = full, make test = short)
#   e.g. scripts/drills.sh full --only clickhouse-down,kafka-sigkill-5s ; scripts/drills.sh full --list
#
# The full profile runs release builds (the memory column is then what production would see) and
# writes the table as Markdown to target/drills/table.md. If the stack was not running it is
# started here (from an empty Kafka database) and stopped at the end; one you started is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-full}
shift || true
case "$profile" in
  full) build=(--release); out=target/release ;;
  short) build=(); out=target/debug ;;
  *) echo "usage: $0 [full|short] [sck-drills options...]" >&2; exit 2 ;;
esac
cargo build -q "${build[@]}" -p sck-bridge -p sck-decoder -p sck-drills --bins
started=0
if ! scripts/stack.sh is-up; then
  scripts/stack.sh down
  STACK_FRESH_KAFKA=1 scripts/stack.sh up
  started=1
fi
cleanup() {
  if [ "$started" = 1 ]; then scripts/stack.sh down; fi
}
trap cleanup EXIT
mkdir -p target/drills
"$out/sck-drills" --profile "$profile" --markdown "target/drills/table-$profile.md" "$@"
