# SPDX-License-Identifier: LGPL-2.1-or-later
# The preamble of every tests/cli script (sourced, not a test itself: see
# tests/CMakeLists.txt), after the script's own `set` line:
#     . "$(dirname "$0")/lib.sh"
# Gives:
#   B, F, SRC   the tools, the unpacked fixtures and the source tree
#               (MRIMG_BIN, MRIMG_FIXTURES, MRIMG_SRC, set by ctest)
#   W           a fresh work directory, removed at exit, after the
#               processes in pids are killed and $mnt (when set and
#               mounted) is unmounted
#   ok / bad    count a check that passed / failed and say so; fail: one
#               that failed and makes the rest pointless (the summary, exit 1)
#   expect STATUS CMD...   run CMD (stdout in $W/out, stderr in $W/err;
#               within $T_TIMEOUT seconds when set), compare its exit status
#   json SCHEMA [EXPR]     $W/out is a valid document of docs/SCHEMA.schema.json
#               (and the Python EXPR over it, d, holds)
#   finish      the summary line; exit 0 when nothing failed, else 1
#   big_sav     $W/big.sav: a libvirt raw image of a 160 MiB stream
#   slow_convert FORMAT    convert it to $W/out.sav in the background
# The work directory and the summary are named after the script.

T_NAME=$(basename "$0" .sh)
B=${MRIMG_BIN:?MRIMG_BIN not set}
F=${MRIMG_FIXTURES:?MRIMG_FIXTURES not set}
SRC=${MRIMG_SRC:?MRIMG_SRC not set}
W=$(mktemp -d "${TMPDIR:-/tmp}/$T_NAME.XXXXXX") || exit 1
pids=()
mnt=
t_cleanup() {
    local p
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$mnt" ] && mountpoint -q "$mnt" 2>/dev/null; then umount "$mnt"; fi
    rm -rf "$W"
}
trap t_cleanup EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
fail() { bad "$@"; finish; }
expect() {
    local want=$1 got=0
    shift
    ${T_TIMEOUT:+timeout "$T_TIMEOUT"} "$@" >"$W/out" 2>"$W/err" || got=$?
    if [ "$got" = "$want" ]; then ok "$* -> $got"; else
        bad "$* -> $got (expected $want)"; sed 's/^/  | /' "$W/out" "$W/err" | head -20; fi
}
json() {
    python3 "$SRC/tests/tools/check_json.py" "$SRC/docs/$1.schema.json" "$W/out" "${2:-True}" ||
        bad "JSON ($1): ${2:-}"
}
finish() {
    echo "$T_NAME: $passes passed, $fails failed"
    exit $((fails > 0))
}

# big_sav: $W/big.sav, a libvirt raw image of a 160 MiB stream (from
# $W/big.mig), long enough to be caught converting
big_sav() {
    python3 "$SRC/tests/tools/mkstream.py" "$W/big.mig" 160 &&
        "$B/imgconv" -q -O raw --xml "$SRC/testdata/libvirt/dumpxml-security-info.xml" \
            "$W/big.mig" "$W/big.sav"
}
# slow_convert FORMAT: convert $W/big.sav to $W/out.sav (which holds
# "precious" until then) in the background, stderr in $W/err; its pid in
# $pid (and pids).  Slow enough to be caught working: one thread, a high
# level where one applies (xz's default level: at -9 its 192 MiB blocks
# would show no output before the end).
slow_convert() {
    printf 'precious' > "$W/out.sav"
    local lvl=()
    case $1 in gzip | bzip2 | lzop | zstd) lvl=(-l 9) ;; esac
    "$B/imgconv" -q -f -T 1 "${lvl[@]}" -O "$1" "$W/big.sav" "$W/out.sav" 2> "$W/err" &
    pid=$!
    pids+=("$pid")
}
