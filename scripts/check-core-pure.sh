#!/usr/bin/env bash
# `make lint`: sck-core (the domain) builds alone and depends on no runtime, client or I/O crate.
# Its whole normal dependency tree must stay within the allowed list below; anything else (tokio,
# rdkafka, clickhouse, axum, tracing, ...) belongs in sck-runtime or a service. (serde_json is
# simd-json's, for its serde bridge.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p sck-core --lib
allowed='^(sck-core|serde|serde_core|serde_derive|serde_json|simd-json|simdutf8|value-trait|halfbrown|hashbrown|foldhash|allocator-api2|equivalent|float-cmp|num-traits|autocfg|itoa|ryu|zmij|memchr|thiserror|thiserror-impl|proc-macro2|quote|syn|unicode-ident|ref-cast|ref-cast-impl|once_cell|cfg-if|libc|getrandom|version_check|ahash|zerocopy|zerocopy-derive|std-simd)$'
bad=$(cargo tree -q -p sck-core -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u | grep -Ev "$allowed" || true)
if [ -n "$bad" ]; then
  echo "sck-core must stay pure; it now depends on: $bad" >&2
  exit 1
fi
echo "sck-core builds alone with a pure dependency tree"
