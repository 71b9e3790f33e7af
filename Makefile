# sck-ingest: readings ingestion for Smart Citizen Kit sensors (MQTT -> Kafka -> ClickHouse).
#   make up     install what is missing and start Mosquitto, tansu (Kafka API), ClickHouse on loopback
#   make down   stop only what `make up` started
#   make test   format + lint + unit tests + integration tests on the real stack
#   make bench  criterion benchmarks (decode path of both formats, simd-json vs serde_json)
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help up down status build lint unit-test integration-test test bench

help:
	@sed -n '2,7p' Makefile

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
	cargo clippy --workspace --all-targets -- -D warnings

unit-test:
	cargo test --workspace --lib --bins

# Brings the stack up if it is not running and stops it again afterwards (only then).
integration-test:
	@scripts/test-integration.sh

test: lint unit-test integration-test

bench:
	cargo bench -p sck-core --bench decode
