#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The layout checks of the common scan from the command line, on corrupted
# copies of real images: mapped-ram bitmaps pointing into the container
# metadata or another region (refused by imginfo, imgconv, --digest; named
# by imgverify), cuts inside the device state (also right after a 0x00
# byte), a stream without a VMDESCRIPTION or with one cut inside its JSON
# (a warning), and +1 TiB / +64 MiB
# of trailing holes (answered at once, same digest, identical).
set -u
. "$(dirname "$0")/lib.sh"
V="$B/imgverify"
I="$B/imginfo"
C="$B/imgconv"
T_TIMEOUT=5 # expect: at most 5 s a command
# has FILE TEXT: the output file holds TEXT
has() { grep -qF -- "$2" "$W/$1" || { bad "no \"$2\" in $1"; sed 's/^/  | /' "$W/$1" | head -10; }; }
put_be64() { python3 -c 'import struct,sys
f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); f.write(struct.pack(">Q",int(sys.argv[3],0)))' "$@"; }
# ijson FILE EXPR: a value of imginfo's JSON
ijson() { "$I" --output=json "$1" | python3 -c 'import json,sys
j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"; }

# ---- 1. a mapped-ram bitmap that points where QEMU never puts it -------------
for src in libvirt/sparse.sav qemu/mapped.mig; do
    img="$F/$src"
    hat=$(ijson "$img" 'j["ram"]["blocks"][0]["header-offset"]')
    case $src in
    libvirt/*) targets="0x40:libvirt_header 0x100:domain_XML" out=zstd ;;
    *) targets="0x10:main_stream" out=qemu ;;
    esac
    for t in $targets; do
        val=${t%%:*} where=${t#*:} where=${where//_/ }
        cp --sparse=always "$img" "$W/bad"
        put_be64 "$W/bad" $((hat + 12)) "$val"
        expect 1 "$V" "$W/bad"
        has out "mapped.layout"
        has out "points into the $where"
        expect 1 "$I" "$W/bad"
        has err "not right after its header"
        rm -f "$W/conv"
        expect 1 "$C" -O "$out" "$W/bad" "$W/conv"
        [ -e "$W/conv" ] && bad "imgconv left an output for a bitmap at $val"
        expect 1 "$V" --digest "$W/bad"
        expect 1 "$V" --compare "$img" "$W/bad"
    done
done

# ---- 2. cuts inside the device state ------------------------------------------
img="$F/qemu/plain.mig"
ram_end=$(ijson "$img" 'j["stream"]["ram-end"]')
eof=$(ijson "$img" 'j["stream"]["eof-offset"]')
# the issue's example (right after a 0x00 byte), and every 997th byte
cuts="1154128"
for ((at = ram_end + 1; at < eof; at += 997)); do cuts="$cuts $at"; done
for at in $cuts; do
    head -c "$at" "$img" >"$W/cut.mig"
    expect 1 "$V" "$W/cut.mig"
    has out "stream.truncated"
    has out "ends inside the device state"
    expect 1 "$I" "$W/cut.mig"
    rm -f "$W/conv"
    expect 1 "$C" -O qemu "$W/cut.mig" "$W/conv"
    [ -e "$W/conv" ] && bad "imgconv converted a stream cut at $at"
    expect 1 "$V" --digest "$W/cut.mig"
done
head -c 1154128 "$img" >"$W/cut.mig"
expect 1 "$V" "$W/cut.mig"
has out '"0000:00:01.3/piix4_pm"'
# right after the EOF record: no VMDESCRIPTION, QEMU loads it with a warning
head -c $((eof + 1)) "$img" >"$W/novmdesc.mig"
expect 0 "$V" "$W/novmdesc.mig"
has out "warning stream.vmdesc"
has out "could not be delimited or checked"
expect 0 "$I" "$W/novmdesc.mig"
has out "device state could not be delimited or checked"
# inside the VMDESCRIPTION JSON (the EOF record right after a section's
# footer): QEMU loads it silently, every tool warns; the conversion ends at
# the EOF record (no partial description) and has the original's digest
json_at=$(ijson "$img" 'j["stream"]["vmdescription-offset"]')
head -c $((json_at + 1000)) "$img" >"$W/cutjson.mig"
for args in "$V" "$I" "$V --digest"; do
    expect 0 $args "$W/cutjson.mig"
    grep -q "stream.vmdesc" "$W/out" "$W/err" || bad "$args: no stream.vmdesc warning"
    grep -q "is cut by the end of the file" "$W/out" "$W/err" || bad "$args: the cut not named"
done
expect 1 "$V" -q -W "$W/cutjson.mig"
rm -f "$W/conv"
expect 0 "$C" -O qemu "$W/cutjson.mig" "$W/conv"
has err "warning: stream.vmdesc"
[ "$(stat -c %s "$W/conv")" = $((eof + 1)) ] || bad "the conversion of cutjson.mig does not end at its EOF record"
[ "$("$V" --digest "$W/conv" | cut -d' ' -f1)" = "$("$V" --digest "$img" | cut -d' ' -f1)" ] ||
    bad "the conversion of cutjson.mig has another digest"

# ---- 4. huge trailing holes -----------------------------------------------------
for src in qemu/plain.mig libvirt/raw.sav libvirt/sparse.sav; do
    img="$F/$src"
    case $src in libvirt/*) out=raw ;; *) out=qemu ;; esac
    "$V" --digest "$img" | cut -d' ' -f1 >"$W/want"
    for grow in +1T +64M; do
        cp --sparse=always "$img" "$W/grown"
        truncate -s "$grow" "$W/grown"
        start=$(date +%s%N)
        expect 0 "$V" --digest "$W/grown"
        cut -d' ' -f1 "$W/out" | cmp -s - "$W/want" || bad "$src $grow: digest changed"
        expect 0 "$V" --compare "$img" "$W/grown"
        has out "hold the same guest state"
        expect 0 "$V" "$W/grown"
        has out "payload.trailing"
        has out "zero bytes after the end of the QEMU stream"
        grep -q "stream.vmdesc\|stream.devices" "$W/out" && bad "$src $grow: vmdesc/devices"
        expect 0 "$I" "$W/grown"
        grep -q "device state size: .*MiB" "$W/out" && bad "$src $grow: zeros counted as device state"
        rm -f "$W/conv"
        expect 0 "$C" -O "$out" "$W/grown" "$W/conv"
        expect 0 "$V" --compare "$img" "$W/conv"
        ms=$((($(date +%s%N) - start) / 1000000))
        [ "$ms" -lt 5000 ] || bad "$src $grow took $ms ms"
    done
done

# zeros written as data (a file system that reports no holes looks so): the
# end is still found from the stream, at most 16 MiB of them are read
img="$F/libvirt/raw.sav"
cp "$img" "$W/zeros"
head -c 64M /dev/zero >>"$W/zeros"
"$V" --digest "$img" | cut -d' ' -f1 >"$W/want"
expect 0 "$V" --digest "$W/zeros"
cut -d' ' -f1 "$W/out" | cmp -s - "$W/want" || bad "64 MiB of written zeros: digest changed"
expect 0 "$V" "$W/zeros"
has out "67108864 bytes after the end of the QEMU stream"
expect 0 "$V" --compare "$img" "$W/zeros"
rm -f "$W/zeros"

# zeros and garbage inside a compressed stream, after its end: trailing bytes
img="$F/qemu/plain.mig"
"$V" --digest "$img" | cut -d' ' -f1 >"$W/want"
(cat "$img"; head -c 100000 /dev/zero) | zstd -q -c >"$W/tz.mig.zst"
(cat "$img"; echo garbage) | zstd -q -c >"$W/tg.mig.zst"
for f in tz tg; do
    expect 0 "$V" --digest "$W/$f.mig.zst"
    cut -d' ' -f1 "$W/out" | cmp -s - "$W/want" || bad "$f: digest changed"
    expect 0 "$V" "$W/$f.mig.zst"
done
has out "8 non-zero bytes after the end of the QEMU stream"
expect 0 "$V" "$W/tz.mig.zst"
has out "100000 zero bytes after the end of the QEMU stream"

finish
