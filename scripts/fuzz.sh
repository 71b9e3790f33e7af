#!/usr/bin/env bash
# Fuzzing sck-core's decode path with cargo-fuzz (libFuzzer); the targets are fuzz/fuzz_targets/*.rs
# (raw: sck_core::raw::decode, json: JsonDecoder::decode, decode: Decoder::decode of a topic and a
# payload, as sck-decoder calls it). What each asserts: docs/testing.md, "Fuzzing".
#
#   scripts/fuzz.sh [TARGET...]         run each target (all when none is named) FUZZ_SECONDS (60) from
#                                       its seed corpus and what earlier runs found; one line per target
#   scripts/fuzz.sh check [TARGET...]   build, then run each target for FUZZ_RUNS (100000) inputs from its
#                                       seed corpus alone, from a fixed libFuzzer seed (~5 s per target;
#                                       FUZZ_RUNS=0: the seed corpus only, the same every time)
#   scripts/fuzz.sh build               build the targets only
#   scripts/fuzz.sh repro TARGET FILE   run one input (a crash artifact) through TARGET: its panic and stack
#   scripts/fuzz.sh tmin TARGET FILE    shrink a crashing input (written next to it as minimized-from-…)
#   scripts/fuzz.sh install             install cargo-fuzz only
#   scripts/fuzz.sh list                the targets
#
# Exits non-zero when a target crashes (a panic, a failed check, a sanitizer error), times out on one
# input (FUZZ_TIMEOUT) or runs out of memory (FUZZ_RSS_MB); the line names the input libFuzzer saved
# under fuzz/artifacts/<target>/. Environment: FUZZ_SECONDS (per target), FUZZ_RUNS and FUZZ_SEED
# (check: inputs per target, libFuzzer's seed), FUZZ_JOBS (targets run at once, default 1; each
# is single-threaded), FUZZ_MAX_LEN (input bytes, default 1 MiB + 1 KiB), FUZZ_TIMEOUT (seconds
# per input, 10), FUZZ_RSS_MB (2048).
#
# Seed corpora: fuzz/corpus/<target>/ (committed; libFuzzer only reads them). New inputs go to
# fuzz/target/corpus/<target>/ (kept between runs), logs to fuzz/target/logs/; fuzz/target and
# fuzz/artifacts are git-ignored. cargo-fuzz (pinned) is built once per machine into
# $HOME/.cache/sck-ingest/cargo-fuzz-<version> and copied into .tools/bin. libFuzzer needs
# nightly-only rustc flags (-Zsanitizer=address, coverage passes): RUSTC_BOOTSTRAP=1 lets the
# stable toolchain take them, no nightly toolchain needed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$ROOT/.tools
FUZZ=$ROOT/fuzz
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_CACHE=${CARGO_FUZZ_CACHE:-$HOME/.cache/sck-ingest/cargo-fuzz-$CARGO_FUZZ_VERSION}
CARGO_FUZZ=$TOOLS/bin/cargo-fuzz
TARGETS=(raw json decode)

MAX_LEN=${FUZZ_MAX_LEN:-1049600}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
JOBS=${FUZZ_JOBS:-1}

export RUSTC_BOOTSTRAP=1
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
# The same options for `build` and `run`, so that `run` finds the build up to date: release with
# debug assertions and overflow checks, AddressSanitizer, the fuzz workspace's own target dir.
BUILD_OPTS=(--fuzz-dir "$FUZZ" --target-dir "$FUZZ/target" --release --debug-assertions --sanitizer address)

log() { printf '[fuzz] %s\n' "$*" >&2; }
die() { printf '[fuzz] error: %s\n' "$*" >&2; exit 1; }

install_cargo_fuzz() {
  if [ -x "$CARGO_FUZZ" ] && [ "$("$CARGO_FUZZ" fuzz --version 2>/dev/null)" = "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    return 0
  fi
  mkdir -p "$TOOLS/bin"
  if [ ! -x "$CARGO_FUZZ_CACHE/bin/cargo-fuzz" ]; then
    log "building cargo-fuzz $CARGO_FUZZ_VERSION from crates.io (about 30 s, once per machine)"
    env -u CARGO_TARGET_DIR cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
      --root "$CARGO_FUZZ_CACHE"
  fi
  cp "$CARGO_FUZZ_CACHE/bin/cargo-fuzz" "$CARGO_FUZZ"
}

cargo_fuzz() { (cd "$ROOT" && "$CARGO_FUZZ" fuzz "$@"); }

# Packages that fuzz/Cargo.lock pins at a version the main Cargo.lock does not have: the fuzz
# build would then test other code than the services ship (fuzz/Cargo.lock is its own lock).
lock_drift() {
  awk 'FNR == 1 { n = "" }
       /^name = / { n = $3 }
       /^version = / && n != "" {
         if (FILENAME == ARGV[1]) { root[n]; have[n, $3] }
         else if ((n in root) && !((n, $3) in have)) printf " %s %s", n, $3
       }' "$ROOT/Cargo.lock" "$FUZZ/Cargo.lock" | tr -d '"'
}

build() {
  install_cargo_fuzz
  local drift; drift=$(lock_drift)
  if [ -n "$drift" ]; then
    log "warning: fuzz/Cargo.lock differs from Cargo.lock in:$drift"
    log "to fuzz what ships: cp Cargo.lock fuzz/Cargo.lock && scripts/fuzz.sh build (then commit it)"
  fi
  log "building the fuzz targets (fuzz/target)"
  cargo_fuzz build "${BUILD_OPTS[@]}"
}

check_targets() {
  local t
  for t in "$@"; do
    [ -f "$FUZZ/fuzz_targets/$t.rs" ] || die "no fuzz target '$t' (targets: ${TARGETS[*]})"
  done
}

rel() { echo "${1#"$ROOT"/}"; }

# Runs one target with working corpus WORK for LIMIT: "<n>s" seconds, or "<n>" inputs from a
# fixed seed (the same inputs every time). Prints its line, returns non-zero on a finding.
run_one() { # target limit work
  local t=$1 limit=$2 work=$3 logf=$FUZZ/target/logs/$1.log
  mkdir -p "$work" "$FUZZ/target/logs" "$FUZZ/artifacts/$t"
  local args=(-max_len="$MAX_LEN" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" -print_final_stats=1
    -dict="$FUZZ/sck.dict")
  case "$limit" in
    *s) args+=(-max_total_time="${limit%s}") ;;
    *) args+=(-runs="$limit" -seed="${FUZZ_SEED:-1}") ;;
  esac
  local start=$SECONDS
  local rc=0
  cargo_fuzz run "${BUILD_OPTS[@]}" "$t" "$work" "$FUZZ/corpus/$t" -- "${args[@]}" >"$logf" 2>&1 || rc=$?
  local runs rate status corpus cov
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logf" | tail -1)
  # The last status line: "#N DONE cov: C ft: F corp: UNITS/SIZE …".
  status=$(grep -E '^#[0-9]+.* corp: ' "$logf" | tail -1 || true)
  corpus=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$status")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
  local line
  line=$(printf '%-7s %ss  %s runs  %s exec/s  corpus %s  cov %s' "$t" "$((SECONDS - start))" "${runs:-?}" \
    "${rate:-?}" "${corpus:-?}" "${cov:-?}")
  local artifact
  artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$logf" | tail -1)
  if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
    printf '[fuzz] ok     %s\n' "$line"
    return 0
  fi
  local what=failed
  case "$(basename "${artifact:-none}")" in
    crash-*) what=CRASH ;; timeout-*) what=TIMEOUT ;; oom-*) what=OOM ;; leak-*) what=LEAK ;;
  esac
  printf '[fuzz] %-6s %s\n' "$what" "$line"
  if [ -n "$artifact" ]; then
    printf '[fuzz]        input: %s (reproduce: scripts/fuzz.sh repro %s %s)\n' \
      "$(rel "$artifact")" "$t" "$(rel "$artifact")"
  fi
  # The panic or sanitizer report, without the stack.
  grep -m1 -A1 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|ALARM: working" "$logf" \
    | cut -c1-400 | sed 's/^/[fuzz]        /' || true
  printf '[fuzz]        log: %s\n' "$(rel "$logf")"
  return 1
}

# Runs TARGETS (JOBS at a time) for LIMIT each (see run_one); WORK_BASE/<target> is each
# working corpus, emptied first when FRESH is 1.
run_all() { # limit work_base fresh target...
  local limit=$1 base=$2 fresh=$3; shift 3
  local t failed=0
  log "fuzzing ${*}: $limit each (FUZZ_JOBS=$JOBS, max_len $MAX_LEN, timeout ${TIMEOUT}s)"
  for t in "$@"; do
    if [ "$fresh" = 1 ]; then rm -rf "${base:?}/$t"; fi
    rm -f "$FUZZ/target/logs/$t.failed"
    if [ "$JOBS" -le 1 ]; then
      run_one "$t" "$limit" "$base/$t" || failed=1
    else
      while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
      { run_one "$t" "$limit" "$base/$t" || touch "$FUZZ/target/logs/$t.failed"; } &
    fi
  done
  wait
  for t in "$@"; do
    if [ -f "$FUZZ/target/logs/$t.failed" ]; then failed=1; rm -f "$FUZZ/target/logs/$t.failed"; fi
  done
  return "$failed"
}

cmd=${1:-run}
case "$cmd" in
  install) install_cargo_fuzz ;;
  build) build ;;
  list) printf '%s\n' "${TARGETS[@]}" ;;
  repro | tmin)
    [ $# -eq 3 ] || die "usage: scripts/fuzz.sh $cmd TARGET FILE"
    check_targets "$2"
    install_cargo_fuzz
    cargo_fuzz "${cmd/repro/run}" "${BUILD_OPTS[@]}" "$2" "$(cd "$(dirname "$3")" && pwd)/$(basename "$3")"
    ;;
  check)
    shift
    [ $# -gt 0 ] || set -- "${TARGETS[@]}"
    check_targets "$@"
    build
    run_all "${FUZZ_RUNS:-100000}" "$FUZZ/target/check-corpus" 1 "$@"
    ;;
  *)
    if [ $# -gt 0 ] && [ "$cmd" = run ]; then shift; fi
    [ $# -gt 0 ] || set -- "${TARGETS[@]}"
    check_targets "$@"
    build
    run_all "${FUZZ_SECONDS:-60}s" "$FUZZ/target/corpus" 0 "$@"
    ;;
esac
