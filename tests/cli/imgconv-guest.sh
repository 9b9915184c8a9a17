#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# imgconv -O elf / -O phys at the command line: exit statuses and messages
# (options that do not apply, a machine without a known layout, an existing
# output), the output's shape, and imginfo --memory-map's usage error.
# The contents are checked against QEMU's own dumps in tests/qemu.
set -euo pipefail
bin=${MRIMG_BIN:?}
fx=${MRIMG_FIXTURES:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/mrimg-guest-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

expect() { # expect STATUS PATTERN CMD...
    local want=$1 pat=$2 rc
    shift 2
    set +e
    "$@" > "$work/out" 2> "$work/err"
    rc=$?
    set -e
    [ "$rc" = "$want" ] || fail "$*: exit $rc, expected $want: $(cat "$work/err")"
    [ -z "$pat" ] || grep -q -- "$pat" "$work/err" || fail "$*: stderr lacks '$pat': $(cat "$work/err")"
}

for kind in elf phys kdump-zlib kdump-lzo; do
    for opt in --xml=/dev/null --running --paused --compact --level=3 --preallocate; do
        expect 2 "applies only to" "$bin/imgconv" -q -O $kind $opt \
            "$fx/libvirt/zstd.sav" "$work/out.$kind"
        [ ! -e "$work/out.$kind" ] || fail "-O $kind $opt: an output was written"
    done
    ok "-O $kind: options that do not apply are usage errors (exit 2)"

    expect 0 "" "$bin/imgconv" -q -O $kind "$fx/libvirt/zstd.sav" "$work/out.$kind"
    [ "$(stat -c %a "$work/out.$kind")" = 600 ] || fail "-O $kind: mode $(stat -c %a "$work/out.$kind")"
    expect 3 "already exists" "$bin/imgconv" -q -O $kind "$fx/libvirt/zstd.sav" "$work/out.$kind"
    expect 0 "" "$bin/imgconv" -q -f -O $kind "$fx/libvirt/zstd.sav" "$work/out.$kind"
    ok "-O $kind: written 0600, kept without --force (exit 3), replaced with it"

    # a machine type without a known layout (the fixture's name changed)
    python3 - "$fx/qemu/plain.mig" "$work/odd.mig" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
i = d.index(b"pc-i440fx-10.0", 0, 4096)
open(sys.argv[2], "wb").write(d[:i] + b"zz" + d[i + 2:])
PY
    expect 1 'machine type "zz-i440fx-10.0"' "$bin/imgconv" -q -O $kind "$work/odd.mig" "$work/odd.$kind"
    [ ! -e "$work/odd.$kind" ] || fail "-O $kind: output written for an unknown machine"
    [ -z "$(find "$work" -name '.*.tmp')" ] || fail "-O $kind: temporary left behind"
    ok "-O $kind: a machine without a known layout is refused (exit 1), nothing written"
done

# the ELF: x86-64 ET_CORE; phys: 4 GiB (pc.bios ends there), sparse
python3 - "$work/out.elf" "$work/out.phys" <<'PY'
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
mkfifo "$work/fifo"
expect 3 "" "$bin/imgconv" -q -O kdump-zlib "$fx/libvirt/zstd.sav" "$work/fifo"
ok "-O kdump-zlib: a FIFO output is refused (exit 3)"
PYTHONPATH="$(dirname "$0")/../qemu" python3 - "$work/out.phys" "$work/out.kdump-zlib" \
    "$work/out.kdump-lzo" <<'PY'
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

expect 2 "cannot be combined" "$bin/imginfo" --xml --memory-map "$fx/libvirt/zstd.sav"
expect 1 'machine type "zz-i440fx-10.0"' "$bin/imginfo" --memory-map "$work/odd.mig"
ok "imginfo --memory-map: --xml conflict (exit 2), unknown machine (exit 1)"
