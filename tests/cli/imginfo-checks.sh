#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# imginfo against ground truth that does not come from our parser:
#  - tests/info/check_truth.py: QEMU's facts.json (machine, `info ramblock`,
#    page counters, sizes, offset=) for every QEMU fixture; the annotated
#    extents against Python's own SEEK_DATA/SEEK_HOLE walk and the
#    mapped-ram bitmaps read from the files;
#  - tests/info/check_xml.py: --xml against libvirt's own dumpxml output.
# Environment (set by ctest): MRIMG_BIN, MRIMG_FIXTURES, MRIMG_SRC.
set -u
. "$(dirname "$0")/lib.sh"
BIN=$B/imginfo
FIX=$F
mkdir -p "$W/qemu" "$W/libvirt"
status=0
for f in qemu/mapped.mig qemu/mapped-multiblock.mig libvirt/sparse.sav libvirt/sparse-p4.sav; do
    python3 "$SRC/tests/info/sparse_copy.py" "$FIX/$f" "$W/$f"
    case $? in
    0) ;;
    3) echo "SKIP: $f: no exact hole map on this file system: extents not checked"
       rm -f "$W/$f" ;;
    *) echo "FAIL: cannot copy $f"; status=1 ;;
    esac
done
python3 "$SRC/tests/info/check_truth.py" "$BIN" "$FIX" "$W" "$SRC/docs/imginfo.schema.json" || status=1
python3 "$SRC/tests/info/check_xml.py" "$BIN" "$FIX" || status=1
if [ $status -eq 0 ]; then
    echo "imginfo-checks: 2 passed, 0 failed"
else
    echo "imginfo-checks: failed"
fi
exit $status
