#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# imgverify from the command line: exit codes, messages, JSON, every
# fixture sound, --offset, --digest and --compare across conversions, the
# check names documented in docs/imgverify.1.
set -u
. "$(dirname "$0")/lib.sh"
T="$B/imgverify"
C="$B/imgconv"
DOC="$SRC/docs/imgverify.1"
json_ok() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1"; }

expect 0 "$T" --help
grep -q -- "--compare" "$W/out" || bad "--help lacks --compare"
expect 0 "$T" --version
expect 2 "$T"
expect 2 "$T" --bogus
expect 2 "$T" --compare "$F/qemu/plain.mig"
expect 2 "$T" --output=xml "$F/qemu/plain.mig"
expect 3 "$T" /nonexistent/file.sav  # a missing input: 3 (the exit-status table)
grep -q "^imgverify: /nonexistent/file.sav: " "$W/err" || bad "error message format"

# every fixture is sound, quietly
for f in "$F"/qemu/*.mig "$F"/libvirt/*.sav; do
    off=
    case "$f" in *-offset.mig) off=--offset=0x12345 ;; esac
    expect 0 "$T" -q $off "$f"
    [ -s "$W/out" ] && bad "-q printed something for $f"
done
expect 1 "$T" "$F/qemu/plain-offset.mig"
grep -q "container.magic" "$W/out" || bad "offset hint"
grep -q "74565" "$W/out" || bad "offset hint names 0x12345"

# several files, JSON
expect 0 "$T" --output=json "$F/libvirt/zstd.sav" "$F/libvirt/sparse.sav"
json_ok "$W/out" || bad "JSON output does not parse"
python3 - "$W/out" <<'PY' || bad "JSON content"
import json, sys
j = json.load(open(sys.argv[1]))
assert len(j["files"]) == 2
for f in j["files"]:
    assert f["sound"] is True and f["errors"] == 0 and f["problems"] == []
    assert f["summary"]["devices-checked"] is True
assert j["files"][0]["summary"]["codec-checksums"] >= 1
assert j["files"][1]["summary"]["mapped-ram"] is True
PY

# problems: a flipped gzip CRC, then warnings only
cp "$F/libvirt/gzip.sav" "$W/bad.sav"; chmod u+w "$W/bad.sav"
size=$(stat -c %s "$W/bad.sav")
printf '\xff' | dd of="$W/bad.sav" bs=1 seek=$((size - 8)) conv=notrunc status=none
expect 1 "$T" "$W/bad.sav"
grep -q "payload.checksum" "$W/out" || bad "gzip CRC not named payload.checksum"
expect 1 "$T" --output=json "$W/bad.sav"
json_ok "$W/out" || bad "JSON of a bad file"
python3 - "$W/out" <<'PY' || bad "JSON problem fields"
import json, sys
p = json.load(open(sys.argv[1]))["files"][0]["problems"][0]
assert p["check"] == "payload.checksum" and p["severity"] == "error"
assert p["offset-kind"] == "file" and isinstance(p["offset"], int) and p["message"]
PY
cp "$F/libvirt/raw.sav" "$W/warn.sav"; chmod u+w "$W/warn.sav"
printf 'garbage' >>"$W/warn.sav"
expect 0 "$T" "$W/warn.sav"
grep -q "payload.trailing" "$W/out" || bad "trailing garbage warning"
expect 1 "$T" -W "$W/warn.sav"
expect 1 "$T" "$W/bad.sav" "$F/libvirt/raw.sav"
expect 3 "$T" "$W/bad.sav" /nonexistent  # the highest status wins

# digests: raw.sav and its conversions agree; JSON has per-block digests
"$C" -O zstd "$F/libvirt/raw.sav" "$W/c.zst" || bad "imgconv zstd"
"$C" -O sparse "$F/libvirt/raw.sav" "$W/c.sparse" || bad "imgconv sparse"
expect 0 "$T" --digest "$F/libvirt/raw.sav" "$W/c.zst" "$W/c.sparse"
n=$(awk '{print $1}' "$W/out" | sort -u | wc -l)
[ "$n" = 1 ] || bad "digests differ across conversions: $(cat "$W/out")"
expect 0 "$T" --digest --output=json "$W/c.sparse"
python3 - "$W/out" <<'PY' || bad "digest JSON"
import json, sys
f = json.load(open(sys.argv[1]))["files"][0]
assert len(f["digest"]) == 64 and len(f["blocks"]) == 8
assert all(len(b["digest"]) == 64 for b in f["blocks"])
assert f["device-state"]["bytes"] > 0
PY
expect 0 "$T" --digest -v "$F/qemu/plain.mig"
grep -q "block pc.ram" "$W/out" || bad "verbose digest lacks per-block lines"

# compare
expect 0 "$T" --compare "$F/libvirt/raw.sav" "$W/c.sparse"
grep -q "same guest state" "$W/out" || bad "compare wording"
expect 1 "$T" --compare "$F/qemu/plain.mig" "$F/qemu/mapped.mig"
grep -q "RAM: identical" "$W/out" || bad "plain/mapped RAM should be identical"
grep -q "device state: differs" "$W/out" || bad "plain/mapped device state differs"
expect 1 "$T" --compare --output=json "$F/qemu/plain.mig" "$F/qemu/mapped.mig"
python3 - "$W/out" <<'PY' || bad "compare JSON"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["ram-identical"] is True and j["identical"] is False
assert j["device-state"]["bytes-differ"] == 16
PY
"$C" -O qemu "$F/libvirt/raw.sav" "$W/c.mig" || bad "imgconv qemu"
expect 1 "$T" --compare "$F/libvirt/raw.sav" "$W/c.mig"
grep -q "XML differs\|XML: differs" "$W/out" || bad "XML difference not shown"
grep -q "s3cr3t" "$W/out" && bad "the XML diff shows the VNC password"
expect 0 "$T" --compare --ignore-xml "$F/libvirt/raw.sav" "$W/c.mig"

# every check name is documented, and documented names exist
expect 0 "$T" --list-checks
for c in $(awk '{print $1}' "$W/out"); do
    grep -q -- "^\.B $c\$" "$DOC" || bad "check $c is not documented in imgverify.1"
done
for c in $(grep -o '^\.B [a-z]*\.[a-z_]*$' "$DOC" | awk '{print $2}'); do
    grep -q "^$c " "$W/out" || bad "imgverify.1 documents $c, which does not exist"
done

finish
