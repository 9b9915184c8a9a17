#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One judgement: damaged copies of real fixtures get the same verdict from
# imginfo, imgconv and imgverify (exit status and the check named), from
# the library's one problem list.  Items of issue 11: bytes after a
# complete stream (3), malformed or non-UTF-8 domain XML (5), a RAM section
# of a version QEMU cannot load (6), an incomplete save with and without
# --allow-incomplete.
set -u
. "$(dirname "$0")/lib.sh"
I="$B/imginfo"
C="$B/imgconv"
V="$B/imgverify"

# run NAME CMD...: exit status in $rc, stdout+stderr in $W/NAME.log
run() {
    local name=$1; shift
    "$@" >"$W/$name.log" 2>&1
    rc=$?
}
# judge FILE INFO CONV VERIFY CHECK [imgconv options]: the three exit
# statuses, each tool's output naming CHECK (skipped when CHECK is "-")
judge() {
    local f=$1 wi=$2 wc=$3 wv=$4 check=$5; shift 5
    local tag
    tag=$(basename "$f")
    run info "$I" "$f"
    [ "$rc" = "$wi" ] && ok "$tag: imginfo exit $rc" || { bad "$tag: imginfo exit $rc (expected $wi)"; head -c 2000 "$W/info.log"; }
    rm -rf "$W/out"
    run conv "$C" "$@" "$f" "$W/out"
    [ "$rc" = "$wc" ] && ok "$tag: imgconv $* exit $rc" || { bad "$tag: imgconv $* exit $rc (expected $wc)"; head -c 2000 "$W/conv.log"; }
    if [ "$wc" != 0 ] && [ -e "$W/out" ]; then bad "$tag: imgconv left an output behind"; fi
    run verify "$V" "$f"
    [ "$rc" = "$wv" ] && ok "$tag: imgverify exit $rc" || { bad "$tag: imgverify exit $rc (expected $wv)"; head -c 2000 "$W/verify.log"; }
    if [ "$check" != - ]; then
        for t in info conv verify; do
            grep -q -- "$check" "$W/$t.log" && ok "$tag: $t names $check" ||
                { bad "$tag: $t does not name $check"; head -c 1500 "$W/$t.log"; }
        done
    fi
}
# copy SRC DST: a writable copy (holes kept)
copy() { cp --sparse=always "$1" "$2" && chmod u+w "$2"; }
# patch FILE OFFSET BYTES(printf format)
patch() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# offset of a byte string (python bytes literal) in a file
find_off() { python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.find(eval(sys.argv[2])))' "$1" "$2"; }

# ---- item 3: bytes after a complete stream -------------------------------------
for src in qemu/plain.mig libvirt/raw.sav libvirt/sparse.sav qemu/mapped.mig; do
    f="$W/trail-$(basename "$src")"
    copy "$F/$src" "$f"
    printf 'garbage!' >> "$f"
    judge "$f" 0 0 0 payload.trailing
    grep -q "warning: payload.trailing" "$W/conv.log" || bad "$src+garbage: imgconv prints no warning"
    grep -q "leaves them out" "$W/conv.log" || bad "$src+garbage: the warning does not say the output leaves them out"
    # the output carries the stream only: it verifies clean
    "$V" -q "$W/out" >/dev/null 2>&1 && ok "$src+garbage: output verifies" || bad "$src+garbage: output does not verify"
    run v2 "$V" "$W/out"
    grep -q payload.trailing "$W/v2.log" && bad "$src+garbage: the output still has trailing bytes"
    rm -f "$f"
done
# same-format output of a raw input is the original stream, byte for byte
f="$W/trail.mig"; copy "$F/qemu/plain.mig" "$f"; printf 'garbage!' >> "$f"
rm -f "$W/o.mig"; "$C" -q "$f" "$W/o.mig" && cmp -s "$W/o.mig" "$F/qemu/plain.mig" &&
    ok "plain.mig+garbage -> the stream without the garbage" || bad "plain.mig+garbage: output differs from the stream"
# many more bytes, and zero bytes
f="$W/trail2.mig"; copy "$F/qemu/plain.mig" "$f"; head -c 100000 /dev/urandom >> "$f"
judge "$f" 0 0 0 payload.trailing
f="$W/trail3.mig"; copy "$F/qemu/plain.mig" "$f"; head -c 4096 /dev/zero >> "$f"
judge "$f" 0 0 0 payload.trailing
# inside a compressed payload (the decoded stream goes on after its end):
# `zstd -dc` accepts it, QEMU stops reading: a warning, left out of the output
f="$W/trail-in.mig.zst"
{ cat "$F/qemu/plain.mig"; printf 'garbage!'; } | zstd -q -c > "$f"
judge "$f" 0 0 0 payload.trailing
cmp -s "$W/out" "$F/qemu/plain.mig" && ok "zstd(plain.mig+garbage) -> the stream alone" ||
    bad "zstd(plain.mig+garbage): output is not the stream"
# a compressed payload: an error exactly where `zstd -dc` rejects the bytes
f="$W/trail-zstd.sav"; copy "$F/libvirt/zstd.sav" "$f"; printf 'garbage!' >> "$f"
judge "$f" 1 1 1 payload.trailing
f="$W/trail-gzip.sav"; copy "$F/libvirt/gzip.sav" "$f"; printf '\0\0\0\0' >> "$f"
judge "$f" 0 0 0 payload.trailing

# ---- item 5: malformed and non-UTF-8 domain XML ----------------------------------
for src in libvirt/raw.sav libvirt/zstd.sav libvirt/sparse.sav; do
    f="$W/xml-$(basename "$src")"; copy "$F/$src" "$f"
    at=$(find_off "$f" "b'</name>'")
    patch "$f" $((at + 3)) 'A'      # </nAme>
    judge "$f" 1 1 1 container.xml
    grep -q "does not match" "$W/conv.log" || bad "$src </nAme>: imgconv message"
    rm -f "$f"
done
n=0
for bytes in '\377' '\300\257' '\355\240\200' '\364\220\200\200' '\001' '\357\277\276'; do
    n=$((n + 1))
    f="$W/utf8-$n.sav"; copy "$F/libvirt/raw.sav" "$f"
    at=$(find_off "$f" "b'<name>'")
    patch "$f" $((at + 6)) "$bytes"
    judge "$f" 1 1 1 container.xml
    rm -f "$f"
done
grep -q "not an XML 1.0 character" "$W/conv.log" || bad "U+FFFE: message"
# accepted by libxml2, accepted here: C1 control and DEL
f="$W/utf8-ok.sav"; copy "$F/libvirt/raw.sav" "$f"
at=$(find_off "$f" "b'<name>'"); patch "$f" $((at + 6)) '\302\205\177'
judge "$f" 0 0 0 -
# --xml FILE goes through the same reader
sed 's/<name>/<name>\xff/' "$F/libvirt/dumpxml.xml" > "$W/bad.xml"
run conv "$C" --xml "$W/bad.xml" "$F/libvirt/raw.sav" "$W/o2.sav"
[ "$rc" = 2 ] && ok "--xml non-UTF-8: exit 2" || bad "--xml non-UTF-8: exit $rc"
grep -q "UTF-8" "$W/conv.log" && ok "--xml non-UTF-8: message" || { bad "--xml non-UTF-8: message"; cat "$W/conv.log"; }
[ -e "$W/o2.sav" ] && bad "--xml non-UTF-8: output written"

# ---- item 6: a RAM section version QEMU does not load -------------------------------
for src in qemu/plain.mig libvirt/raw.sav libvirt/sparse.sav; do
    f="$W/ramv-$(basename "$src")"; copy "$F/$src" "$f"
    at=$(find_off "$f" "b'\\x03ram\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x04'")
    patch "$f" $((at + 11)) '\005'
    judge "$f" 1 1 1 stream.section
    grep -q "RAM section version 5" "$W/conv.log" || bad "$src: imgconv does not name the version"
    rm -f "$f"
done

# ---- an incomplete save, with and without --allow-incomplete ---------------------------
for src in libvirt/raw.sav libvirt/zstd.sav; do
    f="$W/part-$(basename "$src")"; copy "$F/$src" "$f"
    patch "$f" 0 'LibvirtQemudPart'
    judge "$f" 1 1 1 container.incomplete
    judge "$f" 1 0 1 container.incomplete --allow-incomplete
    grep -q "warning: container.incomplete" "$W/conv.log" || bad "$src --allow-incomplete: no warning"
    # the override is only for that problem
    at=$(find_off "$f" "b'</name>'"); patch "$f" $((at + 3)) 'A'
    judge "$f" 1 1 1 container.xml --allow-incomplete
    rm -f "$f"
done

# ---- --digest and --compare consult the same judgement -------------------------------
f="$W/dig.sav"; copy "$F/libvirt/raw.sav" "$f"
at=$(find_off "$f" "b'</name>'"); patch "$f" $((at + 3)) 'A'
run d "$V" --digest "$f"
[ "$rc" = 1 ] && grep -q container.xml "$W/d.log" && ok "--digest: exit 1, names container.xml" ||
    { bad "--digest on a broken image: exit $rc"; cat "$W/d.log"; }
run d "$V" --compare "$F/libvirt/raw.sav" "$f"
[ "$rc" = 1 ] && grep -q container.xml "$W/d.log" && ok "--compare: exit 1, names container.xml" ||
    { bad "--compare with a broken image: exit $rc"; cat "$W/d.log"; }
run d "$V" --digest "$F/libvirt/raw.sav"
[ "$rc" = 0 ] && ok "--digest sound image: exit 0" || bad "--digest sound image: exit $rc"

# ---- imginfo --output=json carries the same problems --------------------------------
f="$W/trail.mig"
"$I" --output=json "$f" > "$W/j.json" 2>/dev/null
python3 - "$W/j.json" <<'PY' && ok "imginfo JSON: judgement and problems" || bad "imginfo JSON"
import json, sys
d = json.load(open(sys.argv[1]))
j, p = d["judgement"], d["problems"]
assert j["level"] == "quick" and j["errors"] == 0 and j["warnings"] == 1, j
assert p[0]["check"] == "payload.trailing" and p[0]["severity"] == "warning", p
PY

finish
