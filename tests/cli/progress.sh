#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Progress (-p, forced on a non-terminal): one bar per run whose total is
# known from the start and the same in every update, whose percentage never
# goes back and ends at 100 %, with a phase label where a run has phases;
# the same for --compare; -q silences --compare's summary.
set -u
. "$(dirname "$0")/lib.sh"

# bar SAME_TOTAL CMD...: run with stderr captured, check the updates
bar() {
    local same=$1; shift
    "$@" >"$W/stdout" 2>"$W/stderr"
    local rc=$?
    if [ $rc != 0 ] && [ $rc != 1 ]; then bad "$* -> exit $rc: $(cat "$W/stderr")"; return; fi
    if python3 - "$W/stderr" "$same" <<'PY'; then ok "$* -> $(tr '\r' '\n' <"$W/stderr" | grep . | tail -1)"; else bad "$*"; tr '\r' '\n' <"$W/stderr" | grep . | sed 's/^/  | /'; fi
import re, sys
text = open(sys.argv[1]).read()
same = sys.argv[2] == "1"
ups = [u for u in re.split(r"[\r\n]", text) if u.strip()]
pct, totals, phases = [], set(), set()
for u in ups:
    m = re.search(r"^([a-z ]+?)(?: \(([^)]*)\))?: +([0-9.]+)% \(.* of ([^,]+),", u.strip())
    if not m:
        print("not a progress update: %r" % u)
        sys.exit(1)
    pct.append(float(m.group(3)))
    totals.add(m.group(4))
    if m.group(2):
        phases.add(m.group(2))
if not pct:
    print("no progress shown")
    sys.exit(1)
for a, b in zip(pct, pct[1:]):
    if b < a:
        print("progress went back: %s" % pct)
        sys.exit(1)
if pct[-1] != 100.0:
    print("does not end at 100 %%: %s" % pct)
    sys.exit(1)
if same and len(totals) != 1:
    print("the total changed: %s" % sorted(totals))
    sys.exit(1)
print("phases: %s" % sorted(phases), file=sys.stderr)
PY
}

C="$B/imgconv"
sparse=$F/libvirt/sparse.sav
# the case of the report: a sparse input to xz (bitmaps, then the pages,
# then the rest of the stream - three scales before)
bar 1 "$C" -p -f -O xz -l 0 -T 2 "$sparse" "$W/out.sav"
bar 1 "$C" -p -f -O zstd "$sparse" "$W/out.sav"
bar 1 "$C" -p -f -O qemu-mapped "$sparse" "$W/out.mig"
bar 1 "$C" -p -f -O ram "$sparse" "$W/ram"
# compressed inputs: the compressed bytes are the total
bar 1 "$C" -p -f -O sparse --preallocate "$F/libvirt/raw.sav" "$W/out.sav"
bar 1 "$C" -p -f -O sparse "$F/libvirt/xz.sav" "$W/out.sav"
bar 1 "$C" -p -f -O ram "$F/libvirt/zstd.sav" "$W/ram"
grep -q "replaying the stream" "$W/stderr" && ok "phase label shown" || bad "no phase label for -O ram"
# a multi-pass stream compacted: scan, replay, conversion on one bar
bar 1 "$C" -p -f --compact -O qemu "$F/qemu/plain-live.mig" "$W/out.mig"
grep -q "(scanning)" "$W/stderr" || bad "no scanning phase for --compact"
bar 1 "$C" -p -f --compact -O gzip "$F/libvirt/xz.sav" "$W/out.sav"
# a compressed input is decoded once: the judgement (and kdump's memory map)
# come from the conversion's own pass, so there is no other phase
for k in elf phys kdump-zlib zstd sparse; do
    bar 1 "$C" -p -f -O $k "$F/libvirt/zstd.sav" "$W/out.$k"
    if grep -q "(checking)\|(scanning)" "$W/stderr"; then
        bad "zstd -> $k: more than one pass: $(tr '\r' '\n' < "$W/stderr" | grep -o '([a-z ]*)' | sort -u | tr '\n' ' ')"
    else
        ok "zstd -> $k: one pass"
    fi
done
# --sparsify
cp "$F/libvirt/sparse.sav" "$W/sp.sav" && chmod u+w "$W/sp.sav"
bar 1 "$C" -p --sparsify "$W/sp.sav"

# imgverify: --compare has a total; -q silences its summary
V="$B/imgverify"
"$C" -q -f -O xz "$F/libvirt/zstd.sav" "$W/same.sav"
bar 1 "$V" -p --compare "$F/libvirt/zstd.sav" "$W/same.sav"
bar 1 "$V" -p --compare "$sparse" "$F/libvirt/sparse-p4.sav"
"$V" -q --compare "$F/libvirt/zstd.sav" "$W/same.sav" >"$W/stdout" 2>"$W/stderr"
rc=$?
[ $rc = 0 ] && [ ! -s "$W/stdout" ] && [ ! -s "$W/stderr" ] && ok "-q --compare of identical images prints nothing" ||
    bad "-q --compare: exit $rc, printed: $(cat "$W/stdout" "$W/stderr")"
"$V" -q --compare "$F/libvirt/raw.sav" "$F/libvirt/zstd.sav" >"$W/stdout" 2>&1
rc=$?
[ $rc = 1 ] && grep -q DIFFER "$W/stdout" && ! grep -q "identical" "$W/stdout" &&
    ok "-q --compare of different images prints only the differences" ||
    bad "-q --compare different: exit $rc: $(head -5 "$W/stdout")"
bar 0 "$V" -p "$sparse"
bar 0 "$V" -p --digest "$F/libvirt/xz.sav"
bar 0 "$B/imginfo" -p --extents "$F/libvirt/gzip.sav"

finish
