#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Pipes: "-" is standard input (imginfo, imgverify, imgconv INPUT) and
# standard output (imgconv OUTPUT), as for zstd and xz; /dev/stdin and a
# named FIFO with a writer are read as pipes too.
#   1. imginfo and imgverify read every payload format (raw, gzip, bzip2, xz,
#      lzop, zstd) and bare streams from a pipe in one pass, saying what they
#      say of the file (the input larger than the head window too)
#   2. imgconv writes every stream output to a pipe byte for byte as to a
#      file, with the final libvirt magic; no file called "-" appears; a cut
#      pipe output is judged incomplete (why the final magic is safe)
#   2b. imgconv reads a plain or compressed stream from a pipe once, for
#      every output (sparse, elf, phys, kdump, ram too), byte for byte as
#      from the file
#   1b. imgverify --digest and --compare (a pipe on either side), imginfo
#      --cpu, --memory-map and --content, human and --output=json: from a pipe byte for
#      byte what the same command says of the file on standard input, with
#      the same exit status; in one pass (the input larger than the head
#      window too); an image with errors is judged the same from a pipe
#   3. what needs seeking or two passes is refused at once, with its reason
#      and status: seekable outputs to stdout (2), options that read a pipe
#      twice (3), mapped-ram from a pipe (3; imgverify's report says why),
#      pages out of order for --digest/--compare (3), a conversion that
#      would read the pipe twice: --compact, --preallocate (3); stdin given
#      twice (2); no message names standard input "/dev/stdin"
set -u
. "$(dirname "$0")/lib.sh"
cd "$W" || exit 1
# piped STATUS FILE CMD...: cat FILE | CMD, compare CMD's exit status
piped() {
    local want=$1 in=$2; shift 2
    cat "$in" | "$@" >"$W/out" 2>"$W/err"
    local got=${PIPESTATUS[1]}
    if [ "$got" = "$want" ]; then ok "cat ${in##*/} | ${*##*/} -> $got"; else
        bad "cat $in | $* -> $got (expected $want)"; sed 's/^/  | /' "$W/err" | head -5; fi
}
# says PATTERN: the last command's stderr matches
says() { grep -qE -- "$1" "$W/err" || { bad "stderr lacks /$1/: $(head -2 "$W/err")"; }; }
no_dash() { [ -e "$W/-" ] && { bad "a file named '-' was created"; rm -f "$W/-"; }; }

# an input larger than the head window (32 MiB + header): a second read
# would fail, so passing proves one pass
python3 "$SRC/tests/tools/mkstream.py" "$W/big.mig" 64 || bad "mkstream"
zstd -q -3 "$W/big.mig" -o "$W/big.mig.zst" || bad "zstd"

# ---- 1. imginfo / imgverify from a pipe: what they say of the file -------
same_json() { # TOOL ARGS... -- FILE: JSON of the file and of the pipe agree
    local tool=$1 f=${*: -1}; local args=("${@:2:$#-2}")
    "$B/$tool" "${args[@]}" --output=json "$f" >"$W/a.json" 2>/dev/null
    local ra=$?
    cat "$f" | "$B/$tool" "${args[@]}" --output=json - >"$W/b.json" 2>"$W/err"
    local rb=${PIPESTATUS[1]}
    python3 - "$W/a.json" "$W/b.json" "$f" <<'PY' && [ $ra = $rb ] && ok "$tool ${f##*/}: pipe = file (exit $rb)" || bad "$tool ${f##*/}: pipe differs from file (exit $ra vs $rb)"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def norm(x):
    if isinstance(x, dict):
        # the name as given; a pipe allocates nothing on disk
        return {k: (None if k in ("allocated", "file") else norm(v)) for k, v in x.items()}
    if isinstance(x, list):
        return [norm(v) for v in x]
    return x
if norm(a) != norm(b):
    for k in a if isinstance(a, dict) else []:
        if norm(a.get(k)) != norm(b.get(k)):
            print("  differs:", k, json.dumps(a.get(k))[:200], json.dumps(b.get(k))[:200])
    sys.exit(1)
PY
}
for f in "$F"/libvirt/{raw,gzip,bzip2,xz,lzop,zstd}.sav "$F/qemu/plain.mig" "$F/qemu/plain-live.mig" \
    "$W/big.mig" "$W/big.mig.zst"; do
    same_json imginfo "$f"
    same_json imgverify "$f"
done
# a bare stream at an offset, from a pipe
same_json imgverify --offset=0x12345 "$F/qemu/plain-offset.mig"
# human output names the input "-"
piped 0 "$F/libvirt/zstd.sav" "$B/imgverify" -
grep -q "^-: sound" "$W/out" || bad "imgverify - does not name its input '-': $(head -1 "$W/out")"
piped 0 "$W/big.mig" "$B/imginfo" -
grep -q "^image: -$" "$W/out" || bad "imginfo - does not name its input '-'"
grep -q "file size: 56.1 MiB" "$W/out" || bad "imginfo -: the size of a pipe read to its end"
# /dev/stdin on a pipe: a pipe, not "Illegal seek"
piped 0 "$W/big.mig.zst" "$B/imgverify" /dev/stdin
grep -qi "illegal seek" "$W/err" && bad "/dev/stdin: Illegal seek"
piped 0 "$F/libvirt/xz.sav" "$B/imginfo" /dev/stdin
# a named FIFO with a writer
mkfifo "$W/fifo"
(cat "$W/big.mig" > "$W/fifo") &
"$B/imgverify" -q "$W/fifo" >"$W/out" 2>"$W/err" && ok "imgverify FIFO with a writer" ||
    bad "imgverify FIFO with a writer: $(cat "$W/err")"
wait
# an empty pipe: an empty input, at once
: | "$B/imginfo" - >"$W/out" 2>"$W/err"
[ $? = 1 ] && ok "imginfo of an empty pipe -> 1" || bad "imginfo of an empty pipe"
says "^imginfo: -: .*empty"

# ---- 1b. one pass for --digest, --compare, --cpu, --memory-map --------------
# same_out TOOL ARGS... -- FILE: `cat FILE | TOOL ARGS` and `TOOL ARGS < FILE`
# (the file itself on standard input, so that both name it "-") print the
# same bytes on stdout and stderr and exit alike; imginfo's "allocated" (a
# pipe allocates nothing) is left out, and so are the lines matching $SKIP
SKIP='^$'
same_out() {
    local f=${*: -1}; local args=("${@:1:$#-2}")
    "$B/${args[0]}" "${args[@]:1}" < "$f" >"$W/a.out" 2>"$W/a.err"
    local ra=$?
    cat "$f" | "$B/${args[0]}" "${args[@]:1}" >"$W/b.out" 2>"$W/b.err"
    local rb=${PIPESTATUS[1]}
    for x in a b; do
        grep -vE '^ *("allocated"|allocated on disk)' "$W/$x.out" | grep -vE "$SKIP" > "$W/$x.cmp"
    done
    if [ $ra = $rb ] && cmp -s "$W/a.cmp" "$W/b.cmp" && cmp -s "$W/a.err" "$W/b.err"; then
        ok "${args[*]} ${f##*/}: pipe = file, byte for byte (exit $rb)"
    else
        bad "${args[*]} ${f##*/}: pipe (exit $rb) differs from the file (exit $ra)"
        diff "$W/a.cmp" "$W/b.cmp" | head -4; diff "$W/a.err" "$W/b.err" | head -4
    fi
}
for f in "$F"/libvirt/{raw,zstd,xz}.sav "$F/qemu/plain.mig" "$F/qemu/plain-q35.mig" \
    "$W/big.mig" "$W/big.mig.zst"; do
    for o in "" --output=json; do
        same_out imgverify --digest $o - -- "$f"
        same_out imginfo --cpu $o - -- "$f"
        same_out imginfo --memory-map $o - -- "$f"
        same_out imginfo --content $o - -- "$f"
    done
done
# zero-filled pages (zero-page detection off): counted on the scan's pass
for o in "" --output=json; do
    same_out imginfo --content $o - -- "$F/qemu/plain-nozerodetect.mig"
done
cat "$F/qemu/plain-nozerodetect.mig" | "$B/imginfo" --content --output=json - |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert sum(b["pages-zero-filled"] for b in d["ram"]["blocks"]) > 0' &&
    ok "imginfo --content -: zero-filled pages counted from a pipe" || bad "no zero-filled pages counted from a pipe"
same_out imgverify --digest -v - -- "$F/libvirt/gzip.sav"
same_out imginfo --cpu --memory-map - -- "$F/libvirt/bzip2.sav"
# --compare: the pipe on either side; identical (0) and different (1)
for o in "" -v --output=json; do
    same_out imgverify --compare $o - "$F/libvirt/zstd.sav" -- "$F/libvirt/raw.sav"
    same_out imgverify --compare $o "$F/libvirt/raw.sav" - -- "$F/libvirt/raw-paused.sav"
    same_out imgverify --compare $o - "$W/big.mig" -- "$W/big.mig.zst"
done
same_out imgverify --compare --ignore-xml - "$F/qemu/plain.mig" -- "$F/libvirt/xz.sav"
# one pass: the digest of the 56 MiB stream from a pipe is the file's
d1=$("$B/imgverify" --digest "$W/big.mig.zst" | cut -d' ' -f1)
d2=$(cat "$W/big.mig" | "$B/imgverify" --digest - | cut -d' ' -f1)
[ -n "$d1" ] && [ "$d1" = "$d2" ] && ok "one pass: the digest of big.mig from a pipe = of big.mig.zst" ||
    bad "big.mig digest from a pipe '$d2' vs '$d1'"
# an image with errors (a bad QEVM magic after a good libvirt header): the
# same judgement from a pipe, for imginfo, --digest and --compare
python3 - "$F/libvirt/zstd.sav" "$F/libvirt/raw.sav" "$W" <<'PY'
import sys
for src, dst in ((sys.argv[1], "badz.sav"), (sys.argv[2], "badr.sav")):
    d = bytearray(open(src, "rb").read())
    if dst == "badr.sav":
        i = d.index(b"QEVM")
        d[i:i + 4] = b"QEVX"
    else:
        d[-200:-100] = bytes(100)      # inside the zstd payload: a decode error
    open(sys.argv[3] + "/" + dst, "wb").write(d)
PY
for f in "$W/badr.sav" "$W/badz.sav"; do
    # a pipe whose end was not read has no size (0) yet
    SKIP='^ *(file size|payload|explanation):' same_out imginfo - -- "$f"
    same_out imgverify --digest - -- "$f"
    same_out imgverify --digest --output=json - -- "$f"
    same_out imgverify --compare - "$F/libvirt/raw.sav" -- "$f"
    same_out imgverify - -- "$f"
done
piped 1 "$W/badr.sav" "$B/imginfo" -
says "^imginfo: -: stream.magic: .*expected the QEMU stream magic"

# ---- 2. imgconv to standard output ---------------------------------------
for fmt in raw gzip bzip2 xz lzop zstd qemu; do
    rm -f "$W/file.out"
    "$B/imgconv" -q -O $fmt "$F/libvirt/raw.sav" "$W/file.out" || bad "-O $fmt to a file"
    "$B/imgconv" -q -O $fmt "$F/libvirt/raw.sav" - 2>"$W/err" | cat > "$W/pipe.out"
    st=${PIPESTATUS[0]}
    if [ $st = 0 ] && cmp -s "$W/file.out" "$W/pipe.out"; then ok "-O $fmt to a pipe = to a file"
    else bad "-O $fmt to a pipe (exit $st) differs from the file output"; fi
    no_dash
done
head -c 16 "$W/pipe.out" | grep -q "QEVM" || bad "-O qemu: not a bare stream"
"$B/imgconv" -q -O zstd "$F/libvirt/raw.sav" - | cat > "$W/p.sav"
[ "$(head -c 16 "$W/p.sav")" = "LibvirtQemudSave" ] && ok "a pipe output has the final magic" ||
    bad "pipe output magic: $(head -c 16 "$W/p.sav" | od -c | head -1)"
"$B/imgverify" -q "$W/p.sav" && ok "the pipe output is sound" || bad "the pipe output is not sound"
# stdin to stdout, the summary on stderr (stdout carries the image)
"$B/imgconv" -O zstd --output=json "$F/libvirt/raw.sav" - 2>"$W/err" | cat > "$W/p2.sav"
cmp -s "$W/p.sav" "$W/p2.sav" && ok "--output=json with OUTPUT '-': the image is unchanged" ||
    bad "--output=json mixed into the image"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["output"]=="-" and d["status"]=="ok"' "$W/err" &&
    ok "--output=json with OUTPUT '-': the summary is on stderr" || bad "summary on stderr: $(head -3 "$W/err")"
# why the final magic is safe: a cut pipe output is not a sound image
for fmt in zstd raw; do
    "$B/imgconv" -q -O $fmt "$F/libvirt/raw.sav" - 2>/dev/null | head -c 1000000 > "$W/cut.sav"
    "$B/imgverify" "$W/cut.sav" >"$W/out" 2>&1
    st=$?
    if [ $st = 1 ] && grep -qE "(payload|stream)\.truncated" "$W/out"; then
        ok "-O $fmt cut on its pipe: judged truncated (exit 1)"
    else bad "-O $fmt cut on its pipe: exit $st, $(grep -m1 error "$W/out")"; fi
done
# the reader of the pipe goes away: SIGPIPE, 128+13
"$B/imgconv" -q -O raw "$W/big.mig" --xml="$F/libvirt/dumpxml.xml" - 2>/dev/null | head -c 100 > /dev/null
st=${PIPESTATUS[0]}
[ $st = 141 ] && ok "stdout closed early -> 141" || bad "stdout closed early -> $st (expected 141)"
no_dash

# ---- 2b. imgconv from a pipe: one pass, the same output as from the file --
# (the input is larger than the head window: a second read would fail)
X="--xml=$F/libvirt/dumpxml.xml"
for a in "-O zstd $X" "-O raw $X" "-O qemu" "-O sparse $X" "-O qemu-mapped" "-O elf" "-O phys" \
    "-O kdump-zlib" "-O ram"; do
    rm -rf "$W/f.out" "$W/p.out"
    "$B/imgconv" -q $a "$W/big.mig" "$W/f.out" || bad "$a from the file"
    cat "$W/big.mig" | "$B/imgconv" -q $a - "$W/p.out" 2>"$W/err"
    st=${PIPESTATUS[1]}
    if [ $st = 0 ] && diff -r "$W/f.out" "$W/p.out" > /dev/null; then ok "cat | imgconv $a - = from the file"
    else bad "cat | imgconv $a -: exit $st, $(head -2 "$W/err")"; fi
done
for f in "$F"/libvirt/{gzip,bzip2,xz,lzop}.sav; do
    rm -rf "$W/f.out" "$W/p.out"
    "$B/imgconv" -q -O zstd "$f" "$W/f.out"
    cat "$f" | "$B/imgconv" -q -O zstd - - 2>"$W/err" | cat > "$W/p.out"
    cmp -s "$W/f.out" "$W/p.out" && ok "cat ${f##*/} | imgconv -O zstd - - = from the file" ||
        bad "cat ${f##*/} | imgconv -O zstd - -: $(head -2 "$W/err")"
done
no_dash

# ---- 3. refusals, at once --------------------------------------------------
for fmt in sparse qemu-mapped ram elf phys kdump-zlib kdump-lzo; do
    "$B/imgconv" -O $fmt "$F/libvirt/zstd.sav" - >"$W/out" 2>"$W/err"
    st=$?
    [ $st = 2 ] && [ ! -s "$W/out" ] && ok "-O $fmt to stdout refused (2)" || bad "-O $fmt to stdout -> $st"
    says "^imgconv: -: -O $fmt cannot be written to standard output: [a-z-].* \(give an output file\)$"
    no_dash
done
"$B/imgconv" -f -O zstd "$F/libvirt/raw.sav" - >/dev/null 2>"$W/err"
[ $? = 2 ] && ok "--force with OUTPUT '-' -> 2" || bad "--force with OUTPUT '-'"
says "does not apply to standard output"
"$B/imgconv" --sparsify - </dev/null >/dev/null 2>"$W/err"
[ $? = 2 ] && ok "--sparsify - -> 2" || bad "--sparsify -"
# mapped-ram needs random access: refused when the input says so, naming
# standard input by its role (never "-: /dev/stdin")
for f in "$F/libvirt/sparse.sav" "$F/qemu/mapped.mig"; do
    for t in imginfo imgverify "imgverify --digest" "imgverify --compare" "imginfo --cpu"; do
        if [ "$t" = "imgverify --compare" ]; then
            piped 3 "$f" timeout 60 "$B/imgverify" --compare - "$F/libvirt/raw.sav"
        else
            piped 3 "$f" timeout 60 "$B/"$t -
        fi
        says "^${t%% *}: -: standard input is a pipe: a mapped-ram.*needs random access to the input \(give a regular file\)$"
        grep -q "/dev/stdin" "$W/err" "$W/out" && bad "$t: a message names /dev/stdin"
    done
    # imgverify's report says why it stopped
    cat "$f" | "$B/imgverify" - >"$W/out" 2>/dev/null
    grep -q "^-: verification stopped: standard input is a pipe: a mapped-ram.*needs random access" "$W/out" &&
        ok "imgverify -: the report says why it stopped" || bad "imgverify - report: $(head -1 "$W/out")"
    piped 3 "$f" timeout 60 "$B/imgconv" -O zstd - "$W/x.sav"
    says "^imgconv: -: standard input is a pipe: a mapped-ram"
done
# an option that needs the file itself (its hole map), on a pipe: refused
# before reading
for o in --extents; do
    piped 3 "$F/libvirt/raw.sav" "$B/imginfo" $o -
    says "^imginfo: -: $o .*needs a file: this input is a FIFO"
done
# pages out of order (a live migration's later passes): a walk in guest
# order replays them from the input, which a pipe cannot give again
python3 "$SRC/tests/tools/mkstream.py" "$W/redirty.mig" 40 1 REDIRTY || bad "mkstream REDIRTY"
"$B/imgverify" -q --digest "$W/redirty.mig" > /dev/null && ok "an out-of-order file: digest" ||
    bad "digest of an out-of-order file"
piped 3 "$W/redirty.mig" "$B/imgverify" --digest -
says "^imgverify: -: standard input is a pipe: a stream whose pages come out of order .*\(give a regular file\)$"
piped 3 "$W/redirty.mig" "$B/imgverify" --compare "$W/big.mig" -
says "^imgverify: -: second image: standard input is a pipe: a stream whose pages come out of order"
same_json imginfo "$W/redirty.mig"   # a scan takes them in any order
# standard input once
piped 2 "$F/libvirt/raw.sav" "$B/imginfo" - -
says "standard input can be read only once"
piped 2 "$F/libvirt/raw.sav" "$B/imgverify" - -
# a conversion whose plan reads the input twice: refused before writing
for a in "--compact -O qemu" "--preallocate -O qemu-mapped"; do
    rm -rf "$W/x.out"
    piped 3 "$W/big.mig" "$B/imgconv" $a - "$W/x.out"
    says "^imgconv: -: .*is a pipe, which can be read only once: this conversion reads the input twice \(--(compact|preallocate) scans"
    [ -e "$W/x.out" ] && bad "$a: an output was left"
done
# regular files redirected to stdin are files: everything works
"$B/imginfo" --extents - < "$F/libvirt/sparse.sav" > /dev/null 2>"$W/err" &&
    ok "imginfo --extents - < file: a file on stdin is seekable" || bad "imginfo --extents - < file: $(cat "$W/err")"
rm -f "$W/r.sav"
"$B/imgconv" -q -O raw - "$W/r.sav" < "$F/libvirt/sparse.sav" && "$B/imgverify" -q "$W/r.sav" &&
    ok "imgconv - < sparse file works" || bad "imgconv - < sparse file"
no_dash

echo "$fails failure(s)"
[ $fails = 0 ]
