#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# imgconv -O elf / -O phys at the command line: exit statuses and messages
# (options that do not apply, a machine without a known layout, an existing
# output), the output's shape, and imginfo --memory-map's usage error.
# The contents are checked against QEMU's own dumps in tests/qemu.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# expect_says STATUS PATTERN CMD...: the exit status, and stderr matches PATTERN
# (none when empty); a failure ends the test
expect_says() {
    local want=$1 pat=$2 rc=0
    shift 2
    "$@" > "$W/out" 2> "$W/err" || rc=$?
    [ "$rc" = "$want" ] || fail "$*: exit $rc, expected $want: $(cat "$W/err")"
    [ -z "$pat" ] || grep -q -- "$pat" "$W/err" || fail "$*: stderr lacks '$pat': $(cat "$W/err")"
}

for kind in elf phys kdump-zlib kdump-lzo; do
    for opt in --xml=/dev/null --running --paused --compact --level=3 --preallocate; do
        expect_says 2 "applies only to" "$B/imgconv" -q -O $kind $opt \
            "$F/libvirt/zstd.sav" "$W/out.$kind"
        [ ! -e "$W/out.$kind" ] || fail "-O $kind $opt: an output was written"
    done
    ok "-O $kind: options that do not apply are usage errors (exit 2)"

    expect_says 0 "" "$B/imgconv" -q -O $kind "$F/libvirt/zstd.sav" "$W/out.$kind"
    [ "$(stat -c %a "$W/out.$kind")" = 600 ] || fail "-O $kind: mode $(stat -c %a "$W/out.$kind")"
    expect_says 3 "already exists" "$B/imgconv" -q -O $kind "$F/libvirt/zstd.sav" "$W/out.$kind"
    expect_says 0 "" "$B/imgconv" -q -f -O $kind "$F/libvirt/zstd.sav" "$W/out.$kind"
    ok "-O $kind: written 0600, kept without --force (exit 3), replaced with it"

    # a machine type without a known layout (the fixture's name changed)
    python3 - "$F/qemu/plain.mig" "$W/odd.mig" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
i = d.index(b"pc-i440fx-10.0", 0, 4096)
open(sys.argv[2], "wb").write(d[:i] + b"zz" + d[i + 2:])
PY
    expect_says 1 'machine type "zz-i440fx-10.0"' "$B/imgconv" -q -O $kind "$W/odd.mig" "$W/odd.$kind"
    [ ! -e "$W/odd.$kind" ] || fail "-O $kind: output written for an unknown machine"
    [ -z "$(find "$W" -name '.*.tmp')" ] || fail "-O $kind: temporary left behind"
    ok "-O $kind: a machine without a known layout is refused (exit 1), nothing written"
done

# the ELF: x86-64 ET_CORE; phys: 4 GiB (pc.bios ends there), sparse
python3 - "$W/out.elf" "$W/out.phys" <<'PY'
import os, struct, sys
h = open(sys.argv[1], "rb").read(64)
assert h[:7] == b"\x7fELF\x02\x01\x01", h[:7]
et, em = struct.unpack_from("<HH", h, 16)
# the fixture's vCPU is not in long mode: EM_386, as QEMU's dump says then
assert (et, em) == (4, 3), (et, em)
ptype, = struct.unpack_from("<I", open(sys.argv[1], "rb").read(64 + 56), 64)
assert ptype == 4, ptype  # PT_NOTE first
st = os.stat(sys.argv[2])
assert st.st_size == 4 << 30, st.st_size
assert st.st_blocks * 512 < 256 << 20, st.st_blocks
PY
ok "-O elf is an ET_CORE with the vCPU notes first, -O phys a sparse 4 GiB file"

# kdump: a FIFO is refused (the file is written positionally); the pages of
# both kdump kinds are those of -O phys, in the map's pfns; the header as
# QEMU writes it (tests/qemu/test_kdump.py compares it with QEMU's own)
mkfifo "$W/fifo"
expect_says 3 "" "$B/imgconv" -q -O kdump-zlib "$F/libvirt/zstd.sav" "$W/fifo"
ok "-O kdump-zlib: a FIFO output is refused (exit 3)"
PYTHONPATH="$(dirname "$0")/../qemu" python3 - "$W/out.phys" "$W/out.kdump-zlib" \
    "$W/out.kdump-lzo" <<'PY'
import sys
import kdumpfile
phys = open(sys.argv[1], "rb")
for path, flag in ((sys.argv[2], 1), (sys.argv[3], 2)):
    k = kdumpfile.Kdump(path)
    h, s = k.hdr, k.sub
    assert (h["header_version"], h["block_size"], h["status"]) == (6, 4096, flag), h
    assert h["utsname"][4] == "Unknown" and h["timestamp"] == bytes(22), h
    assert s["dump_level"] == 1 and s["offset_note"] == 4096 + 104, s
    assert s["max_mapnr_64"] == h["max_mapnr"] == 1 << 20, (h, s)  # pc.bios ends at 4 GiB
    assert k.bitmap1 == k.bitmap2
    n = comp = 0
    for pfn, d, page in k.pages():
        phys.seek(pfn * 4096)
        assert page == phys.read(4096), f"{path}: pfn {pfn:#x} differs from -O phys"
        n += 1
        comp += d["flags"] == flag
    assert n > 1000 and comp > 100, (n, comp)
    k.close()
PY
ok "-O kdump-zlib/-lzo: KDUMP header v6, every dumped page equals -O phys"

expect_says 2 "cannot be combined" "$B/imginfo" --xml --memory-map "$F/libvirt/zstd.sav"
expect_says 1 'machine type "zz-i440fx-10.0"' "$B/imginfo" --memory-map "$W/odd.mig"
ok "imginfo --memory-map: --xml conflict (exit 2), unknown machine (exit 1)"
finish
