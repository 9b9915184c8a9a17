#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Line and branch coverage of lib/, per directory, from the whole test suite.
#
#   scripts/coverage.sh [--html DIR]
#
# Builds with clang's source-based coverage (-fprofile-instr-generate
# -fcoverage-mapping) into $MRIMG_COV_BUILD, runs ctest there (every test:
# unit, cli, the fuzz corpus and regression replays, and the QEMU and
# libvirt round trips when they can run), merges the profiles of every
# process that ran (the tools started by the CLI and round-trip tests
# included: LLVM_PROFILE_FILE has %p, one file per process), and prints
# line and branch coverage for each directory of lib/ and the total.
# --html DIR also writes llvm-cov's annotated sources to DIR/index.html.
#
# Environment:
#   MRIMG_COV_BUILD       build directory             (default: build-cov)
#   MRIMG_COV_CTEST_ARGS  extra ctest arguments, e.g. "-LE qemu|libvirt" for
#                         a quick run without the round trips, "-L unit"
#   MRIMG_COV_JOBS        build and ctest parallelism (default: nproc)
#   MRIMG_COV_MIN         fail (exit 1) when a parser directory (container,
#                         codec, stream, ram, verify) is below this line
#                         coverage in percent (default: no check)
#   LLVM_PROFDATA, LLVM_COV   the tools (default: llvm-profdata-14 and
#                         llvm-cov-14 if present, else without the suffix)
#   CI                    passed on to the tests (round trips then fail
#                         instead of skipping without QEMU/libvirt)
#
# Needs clang, llvm-profdata and llvm-cov (Debian: clang, llvm) and python3.
# Exit status: 0; 1 when a test failed (the coverage is printed anyway) or
# MRIMG_COV_MIN is not met; 2 when the build or the report failed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MRIMG_COV_BUILD:-$ROOT/build-cov}
JOBS=${MRIMG_COV_JOBS:-$(nproc 2>/dev/null || echo 2)}
HTML=""
while [ $# -gt 0 ]; do
    case "$1" in
        --html) HTML=${2:?--html needs a directory}; shift 2 ;;
        --html=*) HTML=${1#--html=}; shift ;;
        -h|--help) sed -n '3,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "coverage.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

tool() {
    for t in "$@"; do
        if command -v "$t" >/dev/null 2>&1; then echo "$t"; return; fi
    done
    echo "coverage.sh: none of $* found (apt-get install clang llvm)" >&2
    exit 2
}
PROFDATA=${LLVM_PROFDATA:-$(tool llvm-profdata-14 llvm-profdata)}
COV=${LLVM_COV:-$(tool llvm-cov-14 llvm-cov)}
CC=${CC:-$(tool clang-14 clang)}
case "$CC" in *clang*) ;; *) CC=$(tool clang-14 clang) ;; esac

FLAGS="-fprofile-instr-generate -fcoverage-mapping"
mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fprofile-instr-generate" >"$BUILD/configure.log" 2>&1 ||
    { cat "$BUILD/configure.log"; exit 2; }
cmake --build "$BUILD" -j "$JOBS" >"$BUILD/build.log" 2>&1 ||
    { tail -n 40 "$BUILD/build.log"; exit 2; }

PROF=$BUILD/profiles
rm -rf "$PROF"
mkdir -p "$PROF"
# one raw profile per process (%p) and binary (%m): the tools run by the
# CLI tests and round trips, the test binaries and the replay drivers
LLVM_PROFILE_FILE="$PROF/%p-%m.profraw"
export LLVM_PROFILE_FILE
status=0
start=$(date +%s)
# shellcheck disable=SC2086
ctest --test-dir "$BUILD" -j "$JOBS" --output-on-failure ${MRIMG_COV_CTEST_ARGS:-} \
    >"$BUILD/ctest.log" 2>&1 || status=1
unset LLVM_PROFILE_FILE
grep -E '^[0-9]+% tests passed|tests failed|^Total Test time' "$BUILD/ctest.log" || true
if [ "$status" -ne 0 ]; then
    echo "coverage.sh: some tests failed (log: $BUILD/ctest.log):"
    sed -n '/The following tests FAILED/,$p' "$BUILD/ctest.log"
fi
echo "ctest: $(($(date +%s) - start)) s, $(find "$PROF" -name '*.profraw' | wc -l) profiles"

find "$PROF" -name '*.profraw' -size +0 >"$BUILD/profiles.list"
"$PROFDATA" merge -sparse -f "$BUILD/profiles.list" -o "$BUILD/coverage.profdata" ||
    { echo "coverage.sh: llvm-profdata merge failed" >&2; exit 2; }

# every binary that holds library code: the shared library and each
# executable (the tests, tools and replay drivers link it statically)
objs=""
for f in $(find "$BUILD" -type f \( -name 'libmrimg.so*' -o -perm -u+x \) \
        ! -path "$PROF/*" ! -path '*/CMakeFiles/*' ! -name '*.sh' ! -name '*.py' | sort); do
    if [ "$(head -c 4 "$f" | tail -c 3)" = ELF ]; then
        if [ -z "$objs" ]; then objs="$f"; else objs="$objs -object $f"; fi
    fi
done
FILTER="$ROOT/(tests|tools|fuzz|bench)/|/usr/"
# shellcheck disable=SC2086
"$COV" export -summary-only -instr-profile="$BUILD/coverage.profdata" \
    -ignore-filename-regex="$FILTER" $objs >"$BUILD/coverage.json" ||
    { echo "coverage.sh: llvm-cov export failed" >&2; exit 2; }
if [ -n "$HTML" ]; then
    # shellcheck disable=SC2086
    "$COV" show -format=html -output-dir="$HTML" -show-branches=count \
        -instr-profile="$BUILD/coverage.profdata" -ignore-filename-regex="$FILTER" $objs ||
        { echo "coverage.sh: llvm-cov show failed" >&2; exit 2; }
    echo "HTML report: $HTML/index.html"
fi

python3 - "$BUILD/coverage.json" "$ROOT/lib/" "${MRIMG_COV_MIN:-}" <<'EOF' || status=1
import json, sys
data, lib, minimum = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
dirs = {}
for f in data["data"][0]["files"]:
    name = f["filename"]
    if not name.startswith(lib):
        continue
    rel = name[len(lib):]
    d = rel.rsplit("/", 1)[0] + "/" if "/" in rel else "./"
    s = f["summary"]
    acc = dirs.setdefault(d, [0, 0, 0, 0])
    acc[0] += s["lines"]["covered"]; acc[1] += s["lines"]["count"]
    acc[2] += s["branches"]["covered"]; acc[3] += s["branches"]["count"]
def pct(a, b):
    return "%6.1f %%" % (100.0 * a / b) if b else "     - "
print("%-12s %9s %15s %9s %15s" % ("lib/", "lines", "", "branches", ""))
tot = [0, 0, 0, 0]
for d in sorted(dirs):
    a = dirs[d]
    tot = [x + y for x, y in zip(tot, a)]
    print("%-12s %9s %15s %9s %15s" % (d, pct(a[0], a[1]), "%d/%d" % (a[0], a[1]),
                                        pct(a[2], a[3]), "%d/%d" % (a[2], a[3])))
print("%-12s %9s %15s %9s %15s" % ("total", pct(tot[0], tot[1]), "%d/%d" % (tot[0], tot[1]),
                                    pct(tot[2], tot[3]), "%d/%d" % (tot[2], tot[3])))
if minimum:
    low = [d for d in ("container/", "codec/", "stream/", "ram/", "verify/")
           if d in dirs and 100.0 * dirs[d][0] / dirs[d][1] < float(minimum)]
    if low:
        print("below %s %% of lines: %s" % (minimum, " ".join(low)))
        sys.exit(1)
EOF
exit "$status"
