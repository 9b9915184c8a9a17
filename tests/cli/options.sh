#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Options that do not apply are refused, never ignored: every combination
# the three tools reject exits 2 with a message naming the options, before
# any file is touched (no output appears; a --sparsify FILE is not opened).
# Also: -T is clamped (memory does not grow with it), --cookie round trips
# through a bare stream, imginfo labels its offsets and shows postcopy.
set -u
. "$(dirname "$0")/lib.sh"
X="$SRC/testdata/libvirt/dumpxml.xml"

# usage ERE CMD...: exit 2, the first stderr line matches ERE, nothing
# appeared in $W/out*, stdout empty
usage() {
    local re=$1; shift
    rm -rf "$W"/out*
    "$@" >"$W/stdout" 2>"$W/stderr"
    local rc=$?
    local msg
    msg=$(head -1 "$W/stderr")
    if [ "$rc" != 2 ]; then bad "$* -> exit $rc (expected 2): $msg"; return; fi
    if ! grep -Eq -- "$re" <<<"$msg"; then bad "$* -> message '$msg' lacks /$re/"; return; fi
    if ls "$W"/out* >/dev/null 2>&1; then bad "$* -> an output appeared"; return; fi
    if [ -s "$W/stdout" ]; then bad "$* -> printed on stdout"; return; fi
    ok "$* -> 2: $msg"
}

in=$F/libvirt/raw.sav
bare=$F/qemu/plain.mig
printf '<cookie><cpu mode="host-model"/></cookie>\n' >"$W/ck.xml"

# ---- imgconv ----------------------------------------------------------------
C="$B/imgconv"
usage '--running and --paused' "$C" --running --paused "$in" "$W/out.sav"
usage '--running and --paused' "$C" --paused --running "$in" "$W/out.sav"
usage '^imgconv: -q/--quiet and -p/--progress' "$C" -q -p "$in" "$W/out.sav"
# a value option given twice with two values: the last does not silently win
usage "^imgconv: -O/--format given twice, 'xz' then 'zstd'" "$C" -O xz -O zstd "$in" "$W/out.sav"
usage "^imgconv: -l/--level given twice, '3' then '5'" "$C" -O xz -l 3 --level=5 "$in" "$W/out.sav"
usage "^imgconv: -T/--threads given twice" "$C" -T 1 -T 2 "$in" "$W/out.sav"
usage "^imgconv: --xml given twice" "$C" --xml=a.xml --xml=b.xml "$in" "$W/out.sav"
usage "^imgconv: --cookie given twice" "$C" --cookie=a.xml --cookie=b.xml "$in" "$W/out.sav"
usage "^imgconv: --offset given twice" "$C" --offset=1 --offset=2 "$bare" "$W/out.sav"
usage "^imgconv: --output given twice" "$C" --output=json --output=human "$in" "$W/out.sav"
usage "^imginfo: --output given twice" "$B/imginfo" --output=json --output=human "$in"
usage "^imginfo: --offset given twice" "$B/imginfo" --offset=1 --offset=2 "$bare"
usage "^imgverify: --max-problems given twice" "$B/imgverify" --max-problems=1 --max-problems=2 "$in"
usage "^imgverify: --offset given twice" "$B/imgverify" --offset=1 --offset=2 "$bare"
usage "^imgverify: --output given twice" "$B/imgverify" --output=json --output=human "$in"
"$C" -q -O zstd -O zstd "$in" "$W/same-twice.sav" && ok "the same value twice is harmless" ||
    bad "-O zstd -O zstd refused"
usage '^imgconv: -q/--quiet and -v/--verbose' "$C" -v -q "$in" "$W/out.sav"
# --sparsify changes FILE in place: nothing of a conversion applies; FILE
# does not even exist, so the refusal comes before it is opened
for o in "-O raw" "-O sparse" "-l 5" "-T 2" "-f" "--compact" "--xml=$X" "--cookie=$W/ck.xml" \
    "--running" "--paused" "--allow-incomplete" "--preallocate"; do
    # shellcheck disable=SC2086
    usage "^imgconv: .* does not apply to --sparsify" "$C" --sparsify $o "$W/out-missing.sav"
done
# a level for what has none, or out of the codec's range; checked before
# "output exists" and named after the option, not the input
for f in raw sparse qemu qemu-mapped ram; do
    usage "^imgconv: -l/--level applies only to compressed outputs.*not to $f" \
        "$C" -O "$f" -l 5 "$in" "$W/out.x"
done
usage '^imgconv: -l/--level applies only to compressed outputs' "$C" -l 5 "$in" "$W/out.sav"
usage '^imgconv: -l/--level 10 is out of range for gzip \(1\.\.9\)' "$C" -O gzip -l 10 "$in" "$W/out.sav"
usage '^imgconv: -l/--level 20 is out of range for zstd \(1\.\.19\)' "$C" -O zstd -l 20 "$in" "$W/out.sav"
printf 'precious' >"$W/exists.sav"
"$C" -O xz -l 10 "$in" "$W/exists.sav" 2>"$W/stderr"
rc=$?
{ [ $rc = 2 ] && grep -q -- '-l/--level 10 is out of range for xz (0..9)' "$W/stderr" &&
    ! grep -q "$in" "$W/stderr" && [ "$(cat "$W/exists.sav")" = precious ]; } &&
    ok "level checked before 'output exists'" ||
    bad "level vs existing output: exit $rc, $(cat "$W/stderr")"
usage '^imgconv: invalid thread count .0. \(1\.\.1024\)' "$C" -T 0 "$in" "$W/out.sav"
usage '^imgconv: invalid thread count .1025.' "$C" -T 1025 "$in" "$W/out.sav"
# header options for bare outputs
for f in qemu qemu-mapped ram; do
    usage "^imgconv: --xml applies only to libvirt outputs: -O $f" "$C" -O "$f" --xml="$X" "$in" "$W/out.x"
    usage "^imgconv: --cookie applies only to libvirt outputs: -O $f" "$C" -O "$f" --cookie="$W/ck.xml" "$in" "$W/out.x"
    usage "^imgconv: --running applies only to libvirt outputs: -O $f" "$C" -O "$f" --running "$in" "$W/out.x"
    usage "^imgconv: --paused applies only to libvirt outputs: -O $f" "$C" -O "$f" --paused "$in" "$W/out.x"
done
# a bare input's default output is bare too
usage '^imgconv: --xml applies only to libvirt outputs: INPUT is a bare' "$C" --xml="$X" "$bare" "$W/out.sav"
usage '^imgconv: --cookie applies only to libvirt outputs: INPUT is a bare' "$C" --cookie="$W/ck.xml" "$bare" "$W/out.sav"
usage '^imgconv: --running applies only to libvirt outputs: INPUT is a bare' "$C" --running "$bare" "$W/out.sav"
usage '^imgconv: --offset applies only to bare QEMU streams' "$C" --offset=0x100 "$in" "$W/out.sav"
# --compact and --preallocate where the layout makes them meaningless
for f in sparse qemu-mapped ram; do
    usage "^imgconv: --compact applies only to plain-layout outputs: -O $f" "$C" -O "$f" --compact "$in" "$W/out.x"
done
for f in "" "-O raw" "-O zstd" "-O qemu" "-O ram"; do
    # shellcheck disable=SC2086
    usage '^imgconv: --preallocate applies only to mapped-ram outputs' "$C" $f --preallocate "$in" "$W/out.x"
done
# --cookie must be a <cookie> document
printf '<domain><name>x</name></domain>' >"$W/notcookie.xml"
printf '<cookie><cpu></cookie>' >"$W/broken.xml"
usage '^imgconv: .*/notcookie.xml: the XML is not a save cookie' "$C" -O raw --cookie="$W/notcookie.xml" "$in" "$W/out.sav"
usage '^imgconv: .*/broken.xml: the cookie is not well-formed' "$C" -O raw --cookie="$W/broken.xml" "$in" "$W/out.sav"

# what still works
"$C" -q -O zstd -l 19 -T 2 --paused "$in" "$W/ok.sav" && ok "-O zstd -l 19 --paused" || bad "-O zstd -l 19"
"$C" -q -O sparse --preallocate "$in" "$W/ok-sparse.sav" && ok "-O sparse --preallocate" || bad "-O sparse --preallocate"
"$C" -q --output=json -O raw "$in" "$W/ok-q.sav" >"$W/j" && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$W/j" &&
    ok "-q --output=json prints the summary" || bad "-q --output=json"

# ---- --cookie through a bare stream (libvirt -> qemu -> libvirt) ------------
"$C" -q -O qemu "$in" "$W/bare.mig" || bad "to qemu"
"$B/imginfo" --cookie "$in" >"$W/cookie.xml" || bad "imginfo --cookie"
grep -q '^<cookie>' "$W/cookie.xml" || bad "imginfo --cookie prints the cookie: $(head -2 "$W/cookie.xml")"
"$B/imginfo" --xml --security-info "$in" >"$W/domain.xml"
"$C" -q -O gzip --xml="$W/domain.xml" --cookie="$W/cookie.xml" "$bare" "$W/back.sav" 2>"$W/stderr" ||
    bad "back to libvirt with --cookie: $(cat "$W/stderr")"
"$C" -q -O gzip --xml="$W/domain.xml" --cookie="$W/cookie.xml" "$W/bare.mig" "$W/back.sav" -f
"$B/imginfo" --cookie "$W/back.sav" | cmp -s - "$W/cookie.xml" && ok "cookie kept through a bare stream" ||
    bad "cookie differs after libvirt -> qemu -> libvirt"
"$B/imgverify" -q --compare "$in" "$W/back.sav" >"$W/cmp" && ok "compare: identical, cookie included" ||
    bad "compare after the round trip: $(cat "$W/cmp")"
"$B/imginfo" --cookie --output=json "$in" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert set(j) == {"file", "cookie"}, j
assert j["cookie"].startswith("<cookie>") and "<cpu" in j["cookie"]' && ok "imginfo --cookie JSON" || bad "imginfo --cookie JSON"
"$B/imginfo" --cookie "$bare" >"$W/stdout" 2>"$W/stderr"
[ $? = 1 ] && grep -q "has no save cookie" "$W/stderr" && ok "imginfo --cookie on a bare stream: 1" ||
    bad "imginfo --cookie on a bare stream"

# ---- imginfo -----------------------------------------------------------------
I="$B/imginfo"
usage '^imginfo: --xml and --cookie exclude each other' "$I" --xml --cookie "$in"
usage '^imginfo: --cookie prints only the save cookie: .* --extents' "$I" --cookie --extents "$in"
usage '^imginfo: --cookie prints only the save cookie: .* --content' "$I" --cookie --content "$in"
usage '^imginfo: --xml prints only the domain XML: .* -p/--progress' "$I" --xml -p "$in"
usage '^imginfo: --cookie prints only the save cookie: .* -p/--progress' "$I" --cookie -p "$in"
usage '^imginfo: --security-info only applies to --xml' "$I" --cookie --security-info "$in"
# offsets labelled: stream offsets for the stream, file offsets for the RAM table
"$I" "$F/libvirt/sparse.sav" >"$W/info"
grep -q "offsets in this section are stream offsets" "$W/info" &&
    grep -q "(bitmap at, pages at: file offsets)" "$W/info" && ok "imginfo labels both offset kinds" ||
    bad "imginfo offset labels: $(grep -n offsets "$W/info")"
# postcopy: shown as the stream says it, consistent with imgconv's refusal
"$I" "$F/qemu/plain-postcopy.mig" >"$W/info"
grep -q "capabilities: (none in the configuration section)" "$W/info" &&
    grep -q "postcopy: advised (postcopy-advise command" "$W/info" && ok "imginfo shows postcopy" ||
    bad "imginfo postcopy: $(grep -n -i postcopy "$W/info")"
"$I" --output=json "$F/qemu/plain-postcopy.mig" |
    python3 -c 'import json,sys; assert json.load(sys.stdin)["stream"]["postcopy-advised"] is True' &&
    ok "JSON postcopy-advised" || bad "JSON postcopy-advised"
"$I" --output=json "$bare" |
    python3 -c 'import json,sys; assert json.load(sys.stdin)["stream"]["postcopy-advised"] is False' ||
    bad "JSON postcopy-advised false"
"$C" -O qemu-mapped "$F/qemu/plain-postcopy.mig" "$W/pc.mig" 2>"$W/stderr"
[ $? = 1 ] && grep -q "postcopy-advise command" "$W/stderr" && ok "imgconv names the same command" ||
    bad "imgconv postcopy message: $(cat "$W/stderr")"

# ---- imgverify ---------------------------------------------------------------
V="$B/imgverify"
usage '^imgverify: --list-checks takes no FILE' "$V" --list-checks "$in"
for o in "--offset=5" "--max-problems=3" "--no-data" "-W" "--ignore-xml" "-p" "-q" "-v"; do
    # shellcheck disable=SC2086
    usage "^imgverify: .* does not apply with --list-checks" "$V" --list-checks $o
done
usage '^imgverify: --ignore-xml does not apply with verification' "$V" --ignore-xml "$in"
usage '^imgverify: --ignore-xml does not apply with --digest' "$V" --digest --ignore-xml "$in"
for m in --compare --digest; do
    for o in "--max-problems=3" "--no-data" "-W"; do
        # shellcheck disable=SC2086
        usage "^imgverify: .* does not apply with $m" "$V" $m $o "$in" "$in"
    done
done
usage '^imgverify: -q/--quiet and -p/--progress exclude each other' "$V" -q -p "$in"
usage '^imgverify: -q/--quiet and -v/--verbose exclude each other' "$V" -q -v "$in"
usage '^imgverify: -v/--verbose does not apply with --output=json' "$V" -v --output=json "$in"
"$V" --list-checks --output=json | python3 -c 'import json,sys; assert json.load(sys.stdin)["checks"]' &&
    ok "--list-checks --output=json" || bad "--list-checks --output=json"
"$V" --compare --ignore-xml "$in" "$W/ok.sav" >/dev/null && ok "--compare --ignore-xml" ||
    bad "--compare --ignore-xml"

# ---- -T beyond the CPUs: clamped, memory does not grow -----------------------
rss() { # peak RSS in KiB of the command
    python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}
ncpu=$(nproc)
r1=$(rss "$C" -q -f -O gzip -T "$ncpu" "$in" "$W/t1.sav")
r2=$(rss "$C" -q -f -O gzip -T 1000 "$in" "$W/t2.sav")
if [ -n "$r1" ] && [ -n "$r2" ] && [ "$r2" -le $((r1 + r1 / 4 + 4096)) ]; then
    ok "-T 1000 peak RSS ${r2} KiB vs -T $ncpu ${r1} KiB"
else
    bad "-T 1000 peak RSS ${r2} KiB vs -T $ncpu ${r1} KiB: not clamped"
fi
cmp -s "$W/t1.sav" "$W/t2.sav" && ok "-T 1000 gives the same bytes" || bad "-T 1000 output differs"

finish
