#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# imginfo golden-output tests (human and JSON) on the real fixtures, plus a
# partial save, a truncated file and the exit codes.
#
# Environment (set by ctest): MRIMG_BIN (the tools), MRIMG_FIXTURES (the
# unpacked fixtures), MRIMG_SRC (the source tree).
#
# Values that depend on the host file system are normalised here, never by
# the tool: the allocated size (and the explanation's "... on disk" figure).
# The --extents cases run on copies whose data/hole map is exact (every
# non-zero 4 KiB block is data, every zero block a hole: see
# tests/info/sparse_copy.py), so their goldens do not depend on how zstd
# unpacked the fixtures; where the file system cannot report such holes,
# those cases are skipped (and said so).
#
# Regenerate the goldens after an intended change of the output with
#   MRIMG_UPDATE_GOLDEN=1 ctest -R cli_imginfo
# and review the diff (git diff tests/golden/imginfo) before committing:
# the goldens were checked against ground truth (facts.json, QEMU's page
# counters, libvirt's dumpxml), see tests/cli/imginfo-checks.sh.
set -u

. "$(dirname "$0")/lib.sh"
BIN=$B/imginfo
FIX=$F
GOLD=$SRC/tests/golden/imginfo
UPDATE=${MRIMG_UPDATE_GOLDEN:-0}
skips=0

pass() { passes=$((passes + 1)); } # a golden matched (silent)

normalise() {
    sed -e 's/^\(  allocated on disk: \).*/\1<allocated>/' \
        -e 's/"allocated": [0-9]*/"allocated": "<allocated>"/' \
        -e 's/, [0-9.]* [KMGTPE]\{0,1\}i\{0,1\}B on disk/, <allocated> on disk/' \
        -e 's/ of guest RAM is zero, \(.*\); far more is allocated than that: the holes were filled (copied without --sparse?)/ of guest RAM is zero and left as holes, \1/'
}

# Work directories with the same relative layout (qemu/, libvirt/), so that
# outputs name files the same way whatever the host paths are.
mkdir -p "$W/fix" "$W/copy/qemu" "$W/copy/libvirt" "$W/made/libvirt"
ln -s "$FIX/qemu" "$W/fix/qemu"
ln -s "$FIX/libvirt" "$W/fix/libvirt"

have_copies=1
for f in qemu/mapped.mig libvirt/sparse.sav libvirt/zstd.sav; do
    python3 "$SRC/tests/info/sparse_copy.py" "$FIX/$f" "$W/copy/$f"
    rc=$?
    if [ $rc -eq 3 ]; then
        have_copies=0
    elif [ $rc -ne 0 ]; then
        bad "cannot make an exact sparse copy of $f"
        have_copies=0
    fi
done

# A save whose description lost the name of the vCPU's instruction pointer
# (same length: the JSON stays valid, only --cpu cannot find the field).
python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(d.replace(b"\"env.eip\"", b"\"env.eiq\""))' \
    "$FIX/qemu/plain.mig" "$W/made/libvirt/no-eip.mig"
# A partial save: raw.sav with the magic of a save that never finished.
cp "$FIX/libvirt/raw.sav" "$W/made/libvirt/partial.sav"
chmod u+w "$W/made/libvirt/partial.sav"
printf 'LibvirtQemudPart' | dd of="$W/made/libvirt/partial.sav" bs=16 count=1 conv=notrunc \
    2>/dev/null
# A truncated save: the stream ends inside a RAM page.
head -c 2000000 "$FIX/libvirt/raw.sav" > "$W/made/libvirt/truncated.sav"
# A truncated sparse save: the mapped-ram pages lie beyond the end.
head -c 20000000 "$FIX/libvirt/sparse.sav" > "$W/made/libvirt/truncated-sparse.sav"

# run NAME DIR EXPECTED_RC STDERR_PATTERN ARGS...: compare stdout with the
# goldens NAME.txt (human) and NAME.json (--output=json).
run() {
    local name=$1 dir=$2 want=$3 pat=$4
    shift 4
    local mode ext out err rc
    for mode in human json; do
        ext=txt
        [ $mode = json ] && ext=json
        out=$W/out.$ext
        err=$W/err.$ext
        (cd "$W/$dir" && "$BIN" --output=$mode "$@") > "$out.raw" 2> "$err"
        rc=$?
        normalise < "$out.raw" > "$out"
        if [ "$rc" != "$want" ]; then
            bad "$name ($mode): exit status $rc, expected $want"
            cat "$err"
            continue
        fi
        if [ -n "$pat" ] && ! grep -q -- "$pat" "$err"; then
            bad "$name ($mode): stderr lacks '$pat'"
            cat "$err"
            continue
        fi
        if [ $mode = json ] && ! python3 -m json.tool "$out" > /dev/null; then
            bad "$name ($mode): not valid JSON"
            continue
        fi
        if [ "$UPDATE" = 1 ]; then
            cp "$out" "$GOLD/$name.$ext"
            pass
        elif ! diff -u "$GOLD/$name.$ext" "$out"; then
            bad "$name ($mode): differs from $GOLD/$name.$ext"
        else
            pass
        fi
    done
}

mkdir -p "$GOLD"

# the summary of every kind of input
run plain fix 0 "" qemu/plain.mig
run mapped fix 0 "" qemu/mapped.mig
run plain-live fix 0 "" qemu/plain-live.mig
run mapped-offset fix 0 "" --offset 0x12345 qemu/mapped-offset.mig
run raw fix 0 "" libvirt/raw.sav
run zstd fix 0 "" libvirt/zstd.sav
run sparse fix 0 "" libvirt/sparse.sav
# content statistics: zero pages written as data (zero-page detection off)
run plain-nozerodetect-content fix 0 "" --content qemu/plain-nozerodetect.mig
run mapped-nozerodetect-content fix 0 "" --content qemu/mapped-nozerodetect.mig
# vCPU registers (the fixtures' guests never ran: the x86 reset state)
run plain-cpu fix 0 "" --cpu qemu/plain.mig
run zstd-cpu fix 0 "" --cpu libvirt/zstd.sav
run no-eip-cpu made 1 'no field "env.eip"' --cpu libvirt/no-eip.mig
# the domain XML, as virsh save-image-dumpxml shows it, and with secrets
run raw-xml fix 0 "" --xml libvirt/raw.sav
run raw-xml-security-info fix 0 "" --xml --security-info libvirt/raw.sav
# problems: still described, exit status 1
# the guest-physical map (the ranges are QEMU's `info mtree -f` for these
# 64 MiB -nodefaults guests at reset; tests/test_memmap.c checks them)
run q35-memory-map fix 0 "" --memory-map qemu/plain-q35.mig
run zstd-memory-map fix 0 "" --memory-map libvirt/zstd.sav
run partial made 1 "incomplete save" libvirt/partial.sav
run truncated made 1 "stream ends inside RAM page" libvirt/truncated.sav
run truncated-sparse made 1 "lie beyond the end of the file" libvirt/truncated-sparse.sav

if [ $have_copies = 1 ]; then
    run mapped-extents copy 0 "" --extents qemu/mapped.mig
    run sparse-extents copy 0 "" --extents libvirt/sparse.sav
    run zstd-extents copy 0 "" --extents libvirt/zstd.sav
else
    echo "SKIP: the file system here does not report holes exactly: --extents goldens skipped"
    skips=$((skips + 3))
fi

# a truncated compressed save: described as far as it decodes, exit status 1
head -c 700000 "$FIX/libvirt/zstd.sav" > "$W/made/libvirt/truncated.zstd.sav"
(cd "$W/made" && "$BIN" --extents libvirt/truncated.zstd.sav) > "$W/out" 2> "$W/err"
rc=$?
if [ $rc -ne 1 ] || ! grep -q '^imginfo: libvirt/truncated.zstd.sav: ' "$W/err" ||
    ! grep -q '^status: problems' "$W/out" ||
    ! grep -q 'regions of the decompressed stream' "$W/out"; then
    bad "truncated zstd save: exit status $rc"
    cat "$W/err"
else
    pass
fi

# exit status 2: usage errors; 3: files that cannot be opened
for args in "--bogus qemu/plain.mig" "--output=xml qemu/plain.mig" "" "--security-info qemu/plain.mig" \
    "--offset=zz qemu/plain.mig" "no-such-file" "--xml --cpu libvirt/raw.sav"; do
    want=2
    [ "$args" = no-such-file ] && want=3
    # shellcheck disable=SC2086
    (cd "$W/fix" && "$BIN" $args) > /dev/null 2> "$W/err"
    rc=$?
    if [ $rc -ne $want ]; then
        bad "'imginfo $args': exit status $rc, expected $want"
    elif ! grep -q '^imginfo: ' "$W/err"; then
        bad "'imginfo $args': message does not start with 'imginfo: '"
    else
        pass
    fi
done
# exit status 1: not an image; the message names the file
(cd "$W/fix" && "$BIN" qemu/blob.bin) > /dev/null 2> "$W/err"
rc=$?
if [ $rc -ne 1 ] || ! grep -q '^imginfo: qemu/blob.bin: ' "$W/err"; then
    bad "not an image: exit status $rc"
    cat "$W/err"
else
    pass
fi
# several files: JSON is an array, the worst status wins
(cd "$W/fix" && "$BIN" --output=json qemu/plain.mig no-such-file libvirt/raw.sav) \
    > "$W/multi.json" 2> /dev/null
rc=$?
if [ $rc -ne 3 ]; then
    bad "several files: exit status $rc, expected 3"
elif ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d, list) and len(d) == 3 and d[1]["status"] == "error", d' "$W/multi.json"; then
    bad "several files: not a JSON array of 3 with the error in the middle"
else
    pass
fi
# --help and --version
if "$BIN" --help | grep -q -- '--extents' && "$BIN" --version | grep -q '^imginfo (mrimg) '; then
    pass
else
    bad "--help / --version"
fi

finish
