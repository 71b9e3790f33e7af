# sck-ingest: readings ingestion for Smart Citizen Kit sensors (MQTT -> Kafka -> ClickHouse).
#   make up     install what is missing and start Mosquitto, tansu (Kafka API), ClickHouse, PostgreSQL, Redis
#               (STACK_SECURE=1 make up: TLS, logins, ACL, SASL, HTTPS as in production; docs/local-stack.md)
#   make down   stop only what `make up` started
#   make test   lint (fmt, clippy, core purity) + unit tests + settings and deployment checks + integration tests
#   make demo   start stack + one bridge + one decoder, publish ~20 s of readings, show RESULT
#   make bench  criterion benchmarks (decode path of both formats, simd-json vs serde_json)
#   make drills every fault of the failure table in full (docs/drills.md); make test runs them short
#   make fuzz   cargo-fuzz on the raw parser, the JSON decoder and the whole decode (FUZZ_SECONDS=60 each)
#   make loadtest / make ceilings   a configurable load (RATE DURATION DEVICES) / throughput vs ceilings
#   make chart-test / make settings-check / make settings-docs   deployment checks / settings checks / docs/settings.md
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help up down status build lint unit-test chart-test k8s-render integration-test test bench demo loadtest ceilings drills fuzz fuzz-check

help:
	@sed -n '2,11p' Makefile

up:
	@scripts/stack.sh up

down:
	@scripts/stack.sh down

status:
	@scripts/stack.sh status

build:
	cargo build --workspace --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	@scripts/check-core-pure.sh

unit-test:
	cargo test --workspace --lib --bins

# Brings the stack up if it is not running and stops it again afterwards (only then).
integration-test:
	@scripts/test-integration.sh

# Helm chart lint/render/validate per toggle, promtool rules + tests, kubectl kustomize of each
# overlay, dashboard metric names (no cluster needed; installs its tools into .tools/).
chart-test:
	@deploy/checks/run.sh

# Regenerate deploy/k8s/overlays/dev/sck-ingest/chart.yaml after changing the chart or its dev values.
k8s-render:
	@deploy/checks/run.sh k8s-render

# docs/settings.md from the binaries' clap definitions (scripts/settings-docs.sh).
.PHONY: settings-docs settings-check platform-stack-check current-clickhouse-check
settings-docs:
	@scripts/settings-docs.sh

# docs/settings.md up to date; the chart's env vars and values.yaml defaults match the clap settings.
settings-check:
	@scripts/check-settings.sh

# The local PostgreSQL and Redis (roles, grants, schema, seed, restarts) on their own ports.
platform-stack-check:
	@scripts/check-platform-stack.sh

# The migrations and the sink's RowBinary on a current ClickHouse (chdb, in-process).
current-clickhouse-check:
	@scripts/check-current-clickhouse.sh

test: lint unit-test settings-check chart-test platform-stack-check current-clickhouse-check fuzz-check secure-stack-check integration-test

bench:
	cargo bench -p sck-core --bench decode

# Every fault drill at full size (release builds), the table also in target/drills/table-full.md.
drills:
	@scripts/drills.sh full

# Each fuzz target for FUZZ_SECONDS (60) seconds; crashes saved under fuzz/artifacts/.
fuzz:
	@scripts/fuzz.sh

# The stack in secure mode (TLS, logins, ACL, SASL/SCRAM, HTTPS) on ports and a directory of its
# own, with the bridge's and decoder's secure tests (scripts/check-secure-stack.sh).
.PHONY: secure-stack-check
secure-stack-check:
	@scripts/check-secure-stack.sh

# The fuzz targets built and run over every seed of the corpus (part of make test: the same every
# run; random fuzzing is make fuzz, which may find something new on any run).
fuzz-check:
	@FUZZ_RUNS=0 scripts/fuzz.sh check

demo:
	@scripts/demo.sh

# A bigger load through one bridge and one decoder: make loadtest RATE=300 DURATION=60s DEVICES=300
# (the local pipeline sustains ~12,000 msg/s, bounded by tansu's ~14,000 records/s produce ceiling)
RATE ?= 300
DURATION ?= 60s
DEVICES ?= 300
loadtest:
	@RATE=$(RATE) DURATION=$(DURATION) DEVICES=$(DEVICES) scripts/loadtest.sh

ceilings:
	@scripts/ceilings.sh
