#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the libFuzzer harnesses with clang and run each for a bounded time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target: the argument, else $MRIMG_FUZZ_SECONDS, else 60.
# TARGET: fuzz_container fuzz_gzip ... (default: all).  Environment:
#   MRIMG_FUZZ_BUILD      build directory      (default: build-fuzz)
#   MRIMG_FUZZ_WORK       growing corpora and crash artifacts
#                         (default: fuzz/corpus-work, not committed)
#   MRIMG_FUZZ_JOBS       build parallelism    (default: nproc)
#   CC                    the compiler         (default: clang)
#
# Each target starts from its committed seeds (fuzz/corpus/TARGET), its
# past crashes (fuzz/regressions/TARGET) and what earlier local runs found
# (MRIMG_FUZZ_WORK/TARGET, where new inputs are saved).  libFuzzer runs
# with -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 and leak
# detection; the harnesses are built with ASan and UBSan (no recovery).
# Exit status: 0 when every target ran its time without a crash, leak,
# timeout, OOM or sanitizer report; 1 otherwise (the reproducer is saved
# as MRIMG_FUZZ_WORK/artifacts/TARGET-crash-..., the log next to it).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${MRIMG_FUZZ_SECONDS:-60}
case "${1:-}" in
    ''|fuzz_*) ;;
    *) SECS=$1; shift ;;
esac
BUILD=${MRIMG_FUZZ_BUILD:-$ROOT/build-fuzz}
WORK=${MRIMG_FUZZ_WORK:-$ROOT/fuzz/corpus-work}
ART=$WORK/artifacts
JOBS=${MRIMG_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

ALL="fuzz_container fuzz_gzip fuzz_bzip2 fuzz_xz fuzz_lzop fuzz_zstd fuzz_stream fuzz_image fuzz_roundtrip fuzz_xml fuzz_json fuzz_devices fuzz_cpu"
TARGETS=${*:-$ALL}

# -max_len per target: large enough for the seeds (a shrunk image with
# its real device state is ~160 KiB) and to cross the fuzz build's input
# buffers (codecs: 68 KiB, stream: 72 KiB), small enough to mutate quickly
max_len() {
    case $1 in
        fuzz_stream|fuzz_image|fuzz_devices|fuzz_cpu) echo 262144 ;;
        fuzz_roundtrip) echo 4096 ;;
        fuzz_xml) echo 65536 ;;
        *) echo 131072 ;;
    esac
}
dict() {
    case $1 in
        fuzz_stream|fuzz_image|fuzz_container|fuzz_roundtrip) echo "-dict=$ROOT/fuzz/mrimg.dict" ;;
        *) echo "" ;;
    esac
}

echo "== building the harnesses in $BUILD"
mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DMRIMG_FUZZ=ON -DCMAKE_C_COMPILER="${CC:-clang}" \
    -DMRIMG_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 ||
    { cat "$BUILD/configure.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$JOBS" --target $TARGETS

mkdir -p "$ART"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
failed=""
summary=""
for t in $TARGETS; do
    bin=$BUILD/fuzz/$t
    mkdir -p "$WORK/$t"
    log=$ART/$t.log
    dirs="$WORK/$t $ROOT/fuzz/corpus/$t"
    [ -d "$ROOT/fuzz/regressions/$t" ] && dirs="$dirs $ROOT/fuzz/regressions/$t"
    echo "== $t: ${SECS}s"
    rc=0
    # shellcheck disable=SC2046,SC2086
    "$bin" -max_total_time="$SECS" -max_len=$(max_len "$t") $(dict "$t") \
        -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -detect_leaks=1 \
        -print_final_stats=1 -artifact_prefix="$ART/$t-" $dirs >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -E '^#[0-9]+' "$log" | grep -o 'ft: [0-9]*' | tail -n 1 | cut -d' ' -f2)
    line=$(printf '%-16s execs %-9s exec/s %-6s cov %-6s ft %-6s' "$t" "${execs:-?}" \
        "${speed:-?}" "${cov:-?}" "${ft:-?}")
    if [ "$rc" -ne 0 ]; then
        failed="$failed $t"
        line="$line FAILED (exit $rc, log $log)"
        grep -E 'ERROR: |SUMMARY: |runtime error|fuzz oracle failed|Test unit written' "$log" |
            head -n 8 | sed 's/^/    /'
    fi
    echo "$line"
    summary="$summary$line
"
done

echo
echo "== summary (${SECS}s per target)"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "no crash, leak, timeout or sanitizer report"
