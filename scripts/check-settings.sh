#!/usr/bin/env bash
# make settings-check (part of make test). Fails when
#   - docs/settings.md is stale: the tables are regenerated from the clap definitions
#     (scripts/settings-docs.sh) into a temporary file and diffed with the committed one;
#   - the Helm chart and the clap settings disagree on a variable's name or default
#     (scripts/check-settings.py: its docstring gives the mapping rule, INTENTIONAL the
#     differences on purpose).
# Needs cargo and a Python with PyYAML: .tools/venv's (make chart-test installs it), the system
# python3's, or else one installed into .tools/settings-venv. PYTHON=… overrides.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[settings-check] %s\n' "$*" >&2; }

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in "$ROOT/.tools/venv/bin/python" python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
      PY=$candidate
      break
    fi
  done
fi
if [ -z "$PY" ]; then
  VENV=$ROOT/.tools/settings-venv
  if ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
    log "installing PyYAML into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "PyYAML>=6,<7"
  fi
  PY=$VENV/bin/python
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ROOT/scripts/settings-docs.sh" "$tmp/settings.md"

status=0
if ! diff -u "$ROOT/docs/settings.md" "$tmp/settings.md" >"$tmp/docs.diff"; then
  cat "$tmp/docs.diff" >&2
  log "docs/settings.md is stale (above: what the clap definitions give): run make settings-docs"
  status=1
fi
"$PY" "$ROOT/scripts/check-settings.py" "$tmp/settings.md" "$ROOT/deploy/charts/sck-ingest" || status=1
[ "$status" -eq 0 ] && log "docs/settings.md, values.yaml and the chart agree with the clap settings"
exit "$status"
