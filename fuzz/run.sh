#!/usr/bin/env bash
# Build the fuzz targets and run them, without the cargo-fuzz binary (it builds the same way).
#   bash fuzz/run.sh TARGET SECONDS     # one target, e.g. `bash fuzz/run.sh pickle 600`
#   bash fuzz/run.sh all SECONDS        # every target in turn (CI smoke: `all 20`)
#   bash fuzz/run.sh build              # build only
# Each target starts from fuzz/corpus/<target>/ (committed; read-only here) and writes what it
# discovers to $FUZZ_WORK/corpus/<target>/ (default /tmp/samplediff-fuzz). A crash, a leak past
# the RSS limit, a single allocation past the malloc limit or a slow input stops the run with
# exit 1 and leaves the input in $FUZZ_WORK/artifacts/<target>/: fix the bug, then add that input
# to fuzz/corpus/<target>/ so every later run replays it.
#
# Needs: the x86_64-unknown-linux-gnu std, a C++ compiler (libfuzzer-sys builds libFuzzer).
# Environment: FUZZ_ASAN=0 builds without AddressSanitizer (then the malloc limit is not enforced:
# libFuzzer needs the sanitizer's allocator hooks for it); FUZZ_JOBS=N runs N targets at once
# with `all`; FUZZ_NICE=N runs the fuzzers under `nice -n N`.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ=$PWD

TARGETS="safetensors pickle torch npy npz load trace_manifest"
# One cargo target dir: the shared one when it exists (as tests/run.sh does), else fuzz/target.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/cargo-target ]; then export CARGO_TARGET_DIR=/work/cargo-target; fi
TRIPLE=x86_64-unknown-linux-gnu
WORK=${FUZZ_WORK:-/tmp/samplediff-fuzz}; mkdir -p "$WORK"
ASAN=${FUZZ_ASAN:-1}
# Inputs stay small (the corpus files are below 64 KiB); the limits are what "hostile input costs
# at most" means here: 2 GiB RSS, and no single allocation of 512 MiB (readers may copy a strided
# view up to the file size plus 256 MiB, see limits::COPY_SLACK_BYTES). A slow input fails after
# 25 s: the instrumented build runs 10-25x slower than release, and at `nice 19` beside a compile
# a legitimate worst case (a structure of 1M nodes, written out several times) takes seconds.
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=25 -max_len=262144)

usage() { echo "usage: $0 {TARGET|all} SECONDS | $0 build   (targets: $TARGETS)" >&2; exit 2; }

build() {
  # What `cargo fuzz build` passes. The explicit --target keeps these flags away from build
  # scripts and proc macros, and puts the artifacts under <target dir>/$TRIPLE, apart from
  # the main workspace's builds in a shared CARGO_TARGET_DIR.
  local flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
  flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
  flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  # The prebuilt std has no sanitizer; rustc refuses the mix unless told it is deliberate.
  [ "$ASAN" = 1 ] && flags+=" -Zsanitizer=address -Cunsafe-allow-abi-mismatch=sanitizer"
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" cargo build --release --manifest-path "$FUZZ/Cargo.toml" --target $TRIPLE \
    $(for t in $TARGETS; do printf -- '--bin %s ' "$t"; done)
}

bin_dir() {
  local dir=${CARGO_TARGET_DIR:-$FUZZ/target}
  echo "$dir/$TRIPLE/release"
}

# run TARGET SECONDS: fuzz one target; prints libFuzzer's summary lines.
run() {
  local t=$1 secs=$2 log
  mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
  log="$WORK/$t.log"
  echo "--- $t: ${secs}s, seeds fuzz/corpus/$t ($(ls "$FUZZ/corpus/$t" | wc -l) files), log $log"
  local status=0
  # ASan: leaks are not bugs of a fuzz run (libFuzzer reports them on its own), and the parsers
  # allocate through Rust's allocator, which ASan sees.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1} \
    nice -n "${FUZZ_NICE:-0}" "$(bin_dir)/$t" "${LIMITS[@]}" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/$t/" "$WORK/corpus/$t" "$FUZZ/corpus/$t" >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+== ?ERROR|SUMMARY)' "$log" || true
  if [ $status != 0 ]; then
    echo "!!! $t FAILED (exit $status); input(s): $(ls "$WORK/artifacts/$t")" >&2
    tail -40 "$log" >&2
  fi
  return $status
}

[ $# -ge 1 ] || usage
case $1 in
  build) build ;;
  all)
    [ $# = 2 ] || usage
    build
    failed=""
    jobs=${FUZZ_JOBS:-1}
    if [ "$jobs" -le 1 ]; then
      for t in $TARGETS; do run "$t" "$2" || failed+=" $t"; done
    else
      # N at a time; each writes its own log, summaries print as they finish.
      declare -A pids
      for t in $TARGETS; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
        run "$t" "$2" >"$WORK/$t.summary" 2>&1 &
        pids[$t]=$!
      done
      for t in $TARGETS; do
        wait "${pids[$t]}" || failed+=" $t"
        cat "$WORK/$t.summary"
      done
    fi
    [ -z "$failed" ] || { echo "fuzz: failures in:$failed" >&2; exit 1; }
    echo "fuzz: all targets ran $2 s without a crash" ;;
  *)
    [ $# = 2 ] || usage
    [[ " $TARGETS " == *" $1 "* ]] || usage
    build
    run "$1" "$2" ;;
esac
