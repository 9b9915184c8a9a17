#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Set up (packages, build) and run every test:
#   1. ctest in the normal build          ($MRIMG_BUILD, default build/,
#                                          RelWithDebInfo, -O2)
#   2. ctest in an ASan+UBSan build       ($MRIMG_BUILD_ASAN, default build-asan/,
#                                          -DMRIMG_SANITIZE=ON)
#   3. ctest in a Release build with GCC  ($MRIMG_BUILD_RELEASE, default
#                                          build-release/, -O3: the whole suite)
#   4. ctest in a Release build with clang ($MRIMG_BUILD_CLANG, default
#                                          build-clang/, -O3; ctest -LE
#                                          'qemu|libvirt': the round trips
#                                          already ran three times)
#   5. ctest in a ThreadSanitizer build  ($MRIMG_BUILD_TSAN, default
#                                          build-tsan/, -DMRIMG_TSAN=ON;
#                                          ctest -L 'unit|cli': the threads
#                                          of the library and its tools)
#   6. the fuzzers (fuzz/run.sh, if present: builds them with clang in
#      build-fuzz/ and runs each target for $MRIMG_FUZZ_SECONDS seconds,
#      default 60 -- 13 targets, so about 14 minutes; 0 skips fuzzing)
# Every build uses -DMRIMG_WERROR=ON: a warning of either compiler at any
# optimisation level fails its step (users' builds leave it off).
# Every step runs even if an earlier one failed; the exit status is 0 only if
# all passed.  The ctest runs include the QEMU and libvirt round trips, which
# are skipped when no QEMU >= 9.0 / libvirt >= 11.3 is installed, unless CI
# is set (then they fail).
# MRIMG_TEST_JOBS: parallel ctest jobs (default: online CPUs).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

build=${MRIMG_BUILD:-build}
asan=${MRIMG_BUILD_ASAN:-build-asan}
release=${MRIMG_BUILD_RELEASE:-build-release}
clang=${MRIMG_BUILD_CLANG:-build-clang}
tsan=${MRIMG_BUILD_TSAN:-build-tsan}
jobs=${MRIMG_TEST_JOBS:-$(nproc)}
fuzz_seconds=${MRIMG_FUZZ_SECONDS:-60}  # per fuzz target
start=$SECONDS

passed=()
failed=()
step() {  # step NAME COMMAND...: run, time and record one step
    local name=$1 t0=$SECONDS rc=0
    shift
    printf '\n=== %s\n' "$name"
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        passed+=("$name")
        printf '=== %s: passed (%d s)\n' "$name" $((SECONDS - t0))
    else
        failed+=("$name")
        printf '=== %s: FAILED, exit status %d (%d s)\n' "$name" "$rc" $((SECONDS - t0))
    fi
}

run_ctest() {  # run_ctest BUILD_DIR [CTEST ARGS...]
    local dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@"
}

asan_build_and_ctest() {
    cmake -S . -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMRIMG_SANITIZE=ON \
        -DMRIMG_WERROR=ON &&
        cmake --build "$asan" -j "$(nproc)" &&
        run_ctest "$asan"
}

release_gcc_build_and_ctest() {
    cmake -S . -B "$release" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc \
        -DMRIMG_WERROR=ON &&
        cmake --build "$release" -j "$(nproc)" &&
        run_ctest "$release"
}

release_clang_build_and_ctest() {
    cmake -S . -B "$clang" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
        -DMRIMG_WERROR=ON &&
        cmake --build "$clang" -j "$(nproc)" &&
        run_ctest "$clang" -LE 'qemu|libvirt'
}

tsan_build_and_ctest() {
    cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMRIMG_TSAN=ON \
        -DMRIMG_WERROR=ON &&
        cmake --build "$tsan" -j "$(nproc)" &&
        TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1} \
            run_ctest "$tsan" -L 'unit|cli'
}

run_fuzz() {
    MRIMG_FUZZ_SECONDS=$fuzz_seconds bash fuzz/run.sh
}

# Packages and the normal build: without them nothing else can run.
MRIMG_BUILD=$build MRIMG_CMAKE_ARGS=-DMRIMG_WERROR=ON scripts/setup.sh --tests

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
step "ctest ($build)" run_ctest "$build"
step "build and ctest ($asan, ASan+UBSan)" asan_build_and_ctest
step "build and ctest ($release, Release, GCC)" release_gcc_build_and_ctest
step "build and ctest ($clang, Release, clang, -LE 'qemu|libvirt')" release_clang_build_and_ctest
step "build and ctest ($tsan, ThreadSanitizer, -L 'unit|cli')" tsan_build_and_ctest
if [ "$fuzz_seconds" = 0 ]; then
    printf '\n=== fuzz: skipped (MRIMG_FUZZ_SECONDS=0)\n'
elif [ -f fuzz/run.sh ]; then
    step "fuzz (${fuzz_seconds} s per target)" run_fuzz
else
    printf '\n=== fuzz: no fuzz/run.sh in this tree yet, nothing to run\n'
fi

printf '\n=== summary (%d s)\n' $((SECONDS - start))
for s in "${passed[@]}"; do printf '  passed  %s\n' "$s"; done
for s in "${failed[@]}"; do printf '  FAILED  %s\n' "$s"; done
printf 'steps: %d passed, %d failed\n' "${#passed[@]}" "${#failed[@]}"
[ "${#failed[@]}" -eq 0 ]
