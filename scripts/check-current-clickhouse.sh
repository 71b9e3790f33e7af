#!/usr/bin/env bash
# `make current-clickhouse-check` (part of `make test`): the schema and the decoder's rows on a
# current ClickHouse. Captures the RowBinary bodies the sink sends for every table
# (crates/store/tests/rowbinary.rs, no server) and the migrations rendered for a current server,
# then runs them in chdb (PyPI; ClickHouse 26.x in-process, installed into .tools/chdb-venv) and
# reads every table back (scripts/check-current-clickhouse.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CHDB_VERSION=4.4.0
VENV=$ROOT/.tools/chdb-venv
if ! "$VENV/bin/python" -c "import chdb, sys; sys.exit(chdb.__version__ != '$CHDB_VERSION')" 2>/dev/null; then
  echo "[current-clickhouse] installing chdb $CHDB_VERSION into .tools/chdb-venv" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "chdb==$CHDB_VERSION"
fi
OUT=$ROOT/target/current-clickhouse
rm -rf "$OUT"
SCK_CAPTURE_DIR=$OUT cargo test -q -p sck-store --test rowbinary >/dev/null
"$VENV/bin/python" scripts/check-current-clickhouse.py "$OUT"
