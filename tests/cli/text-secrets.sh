#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Text from files and from the command line, and secrets:
#  - JSON is strict UTF-8 whatever a block name, the XML or a file name
#    holds, and the escaping (\udcXX for bytes that are not UTF-8) gives
#    the original bytes back; human output carries no raw control byte and
#    no invalid UTF-8;
#  - imgverify --compare never shows a graphics password or a disk cookie
#    (nor their length) unless --security-info; XML and cookie differences
#    are reported apart;
#  - --digest escapes file names as sha256sum does.
set -u
. "$(dirname "$0")/lib.sh"
# clean FILE...: valid UTF-8, no control byte but newline and tab, no C1
# control, no ESC/BEL
clean() {
    python3 - "$@" <<'PY' || bad "human output carries raw bytes: $*"
import sys
for p in sys.argv[1:]:
    b = open(p, "rb").read()
    t = b.decode("utf-8")          # strict: raises on invalid UTF-8
    for c in t:
        if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f:
            sys.exit(f"{p}: raw control character U+{ord(c):04X}")
PY
}
RAW="$F/libvirt/raw.sav"

# ---- an image whose first block name holds 0xE9, 0x9B (8-bit CSI) and a
# UTF-8 C1 control (oddname.sav, a sound image), and the same whose XML also
# holds 0xE9 ESC BEL in <name> (odd.sav: the judgement refuses XML that is
# not UTF-8, so it has errors, exit status 1, and is still described) ------
NAME='p\xe9\x9b\xc2\x9bm'
python3 - "$RAW" "$W/odd.sav" "$W/oddname.sav" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
assert d.count(b"\x06pc.ram") == 2 and d.count(b"<name>fixture</name>") == 1
n = d.replace(b"\x06pc.ram", b"\x06p\xe9\x9b\xc2\x9bm")
open(sys.argv[3], "wb").write(n)   # odd block name only
open(sys.argv[2], "wb").write(n.replace(b"<name>fixture</name>", b"<name>f\xe9\x1b[2J\x07</name>"))
PY
for args in "--output=json" "--output=json --extents --content"; do
    # shellcheck disable=SC2086
    expect 0 "$B/imginfo" $args "$W/oddname.sav"
    json imginfo "raw(d['ram']['blocks'][0]['name']) == b'$NAME'"
    # shellcheck disable=SC2086
    expect 1 "$B/imginfo" $args "$W/odd.sav"
    json imginfo "raw(d['ram']['blocks'][0]['name']) == b'$NAME' and d['status'] == 'problems'"
    grep -q "^imginfo: $W/odd.sav: .*invalid UTF-8" "$W/err" || bad "imginfo: the XML that is not UTF-8 is not named"
done
# the extents of a mapped-ram stream name the block (a sparse copy, patched)
if python3 "$SRC/tests/info/sparse_copy.py" "$F/qemu/mapped.mig" "$W/odd.mig"; then
    python3 - "$W/odd.mig" <<'PY'
import sys
f = open(sys.argv[1], "r+b")
f.seek(99)
assert f.read(7) == b"\x06pc.ram"
f.seek(100)
f.write(b"p\xe9\x9b\xc2\x9bm")
PY
    expect 0 "$B/imginfo" --output=json --extents "$W/odd.mig"
    json imginfo "[raw(e['block']) for e in d['extents'] if 'block' in e][0] == b'$NAME'"
    expect 0 "$B/imginfo" --extents "$W/odd.mig";     clean "$W/out" "$W/err"
    rm -f "$W/odd.mig"
else
    echo "SKIP: no sparse copy of mapped.mig"
fi
expect 0 "$B/imginfo" --xml --security-info --output=json "$W/odd.sav"
json imginfo "b'<name>f\\xe9\\x1b[2J\\x07</name>' in raw(d['xml'])"
expect 0 "$B/imginfo" --xml --output=json "$W/oddname.sav"
json imginfo "b'<name>fixture</name>' in raw(d['xml'])"
python3 - "$RAW" "$W/e9.sav" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d.replace(b"<name>fixture</name>", b"<name>fixtur\xe9</name>"))
PY
# XML that is not UTF-8 has no secrets removed: refused (1), still valid JSON
expect 1 "$B/imginfo" --xml --output=json "$W/e9.sav"
json imginfo "d['xml'] is None"
grep -q "invalid UTF-8 sequence (byte 0x3c after 0xe9" "$W/err" || bad "imginfo --xml: no reason for the refusal"
expect 0 "$B/imgverify" --digest --output=json "$W/oddname.sav"
json imgverify "raw(d['files'][0]['blocks'][0]['name']) == b'$NAME'"
expect 1 "$B/imgverify" --output=json "$W/odd.sav"
json imgverify "d['files'][0]['errors'] >= 1"
expect 1 "$B/imgverify" --compare --security-info --output=json "$RAW" "$W/oddname.sav"
json imgverify "any(raw(b['name']) == b'$NAME' for b in d['blocks'])"
# an image with errors is not compared: still one valid JSON document
expect 1 "$B/imgverify" --compare --security-info --output=json "$RAW" "$W/odd.sav"
json imgverify
# the same, for humans: nothing raw reaches the terminal
expect 0 "$B/imginfo" --extents "$W/oddname.sav";                  clean "$W/out" "$W/err"
grep -Fq 'p\xe9\x9b\u009bm' "$W/out" || bad "imginfo: the block name is not shown escaped"
expect 1 "$B/imginfo" --extents "$W/odd.sav";                      clean "$W/out" "$W/err"
grep -Fq 'p\xe9\x9b\u009bm' "$W/out" || bad "imginfo: the block name is not shown escaped (errors)"
expect 0 "$B/imginfo" --xml --security-info "$W/odd.sav";          clean "$W/out" "$W/err"
grep -Fq '<name>f\xe9\x1b[2J\x07</name>' "$W/out" || bad "imginfo --xml: the name is not shown escaped"
expect 0 "$B/imgverify" --digest -v "$W/oddname.sav";                 clean "$W/out" "$W/err"
expect 1 "$B/imgverify" -v "$W/odd.sav";                           clean "$W/out" "$W/err"
expect 1 "$B/imgverify" --compare -v --security-info "$RAW" "$W/oddname.sav"; clean "$W/out" "$W/err"
grep -Fq 'block p\xe9\x9b\u009bm: only in' "$W/out" || bad "--compare: the block name is not shown escaped"

# ---- file names with control bytes and bytes that are not UTF-8 -----------------------
BADF="$W/"$'a\nb\\c\x1b\xff.sav'
cp "$RAW" "$BADF"
expect 0 "$B/imgverify" --digest "$BADF"
python3 - "$W/out" "$BADF" <<'PY' || bad "--digest does not escape the name as sha256sum does"
import sys, os
line = open(sys.argv[1], "rb").read()
name = os.fsencode(sys.argv[2])
esc = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
assert line.startswith(b"\\") and line.endswith(b"  " + esc + b"\n"), line
assert line.count(b"\n") == 1
PY
expect 0 "$B/imgverify" --digest --output=json "$BADF"
json imgverify "raw(d['files'][0]['file']).endswith(b'a\\nb\\\\c\\x1b\\xff.sav')"
expect 3 "$B/imginfo" "$BADF.missing";                             clean "$W/err"
grep -Fq 'a\nb\c\x1b\xff.sav.missing' "$W/err" || bad "the file name is not shown escaped on stderr"
expect 0 "$B/imgverify" "$BADF";                                   clean "$W/out" "$W/err"
rm -f "$BADF"

# ---- secrets in --compare ---------------------------------------------------------------
"$B/imginfo" --xml --security-info "$RAW" > "$W/a.xml" || bad "imginfo --xml"
grep -q "passwd='s3cr3t!!'" "$W/a.xml" || bad "the fixture lost its VNC password"
python3 - "$W/a.xml" "$W" <<'PY'
import sys
x = open(sys.argv[1]).read()
disk = ("    <disk type='network' device='cdrom'>\n"
        "      <source protocol='https' name='/x.iso'>\n"
        "        <host name='example.org' port='443'/>\n"
        "        <cookies>\n"
        "          <cookie name='session'>%s</cookie>\n"
        "        </cookies>\n"
        "      </source>\n"
        "      <target dev='sdb' bus='sata'/>\n"
        "    </disk>\n")
def variant(pw, cookie, mem):
    y = x.replace("passwd='s3cr3t!!'", "passwd='%s'" % pw)
    y = y.replace("  <devices>\n", "  <devices>\n" + disk % cookie, 1)
    return y.replace("<memory unit='KiB'>131072</memory>", "<memory unit='KiB'>%s</memory>" % mem)
w = sys.argv[2]
open(w + "/1.xml", "w").write(variant("s3cr3t!!", "CookieOne-4711", "131072"))
open(w + "/2.xml", "w").write(variant("An0ther-much-longer-passw0rd", "CookieTwo-0815-x", "131072"))
open(w + "/3.xml", "w").write(variant("An0ther-much-longer-passw0rd", "CookieTwo-0815-x", "131073"))
PY
for i in 1 2 3; do
    "$B/imgconv" -q --xml="$W/$i.xml" "$RAW" "$W/$i.sav" || bad "imgconv --xml $i.xml"
done
SECRETS='s3cr3t|An0ther|passw0rd|CookieOne|CookieTwo|passwd=|<cookie'
# only the secrets differ: reported as an XML difference, nothing shown
expect 1 "$B/imgverify" --compare "$W/1.sav" "$W/2.sav"
grep -Eq "$SECRETS" "$W/out" && bad "--compare shows a secret: $(grep -E "$SECRETS" "$W/out")"
grep -q "XML: differs" "$W/out" || bad "--compare: secrets-only difference not reported"
grep -q "only in secrets" "$W/out" || bad "--compare: no note that only secrets differ"
grep -q '\*\*' "$W/out" && bad "--compare shows a mask"
expect 1 "$B/imgverify" --compare --output=json "$W/1.sav" "$W/2.sav"
json imgverify "d['xml-identical'] is False and d['xml-secrets-differ'] is True and d['xml-diff'] is None"
grep -Eq "$SECRETS" "$W/out" && bad "--compare JSON shows a secret"
# secrets and a visible change: the diff shows the change, no secret, no mask
expect 1 "$B/imgverify" --compare "$W/1.sav" "$W/3.sav"
grep -Eq "$SECRETS" "$W/out" && bad "--compare shows a secret: $(grep -E "$SECRETS" "$W/out")"
grep -q "^+  <memory unit='KiB'>131073</memory>" "$W/out" || bad "--compare: the visible change is not shown"
grep -q '\*\*' "$W/out" && bad "--compare shows a mask"
expect 1 "$B/imgverify" --compare --output=json "$W/1.sav" "$W/3.sav"
json imgverify "'131073' in d['xml-diff'] and d['xml-secrets-differ'] is False"
grep -Eq "$SECRETS" "$W/out" && bad "--compare JSON shows a secret"
# --security-info shows them
expect 1 "$B/imgverify" --compare --security-info "$W/1.sav" "$W/3.sav"
grep -q "CookieOne-4711" "$W/out" && grep -q "131073" "$W/out" ||
    bad "--security-info does not show the secrets"
expect 1 "$B/imgverify" --compare --security-info "$W/1.sav" "$W/2.sav"
grep -q "passwd='An0ther-much-longer-passw0rd'" "$W/out" && grep -q "passwd='s3cr3t!!'" "$W/out" ||
    bad "--security-info does not show the passwords"
expect 1 "$B/imgverify" --compare --security-info --output=json "$W/1.sav" "$W/2.sav"
json imgverify "d['security-info'] is True and 'CookieTwo-0815-x' in d['xml-diff']"
# with --ignore-xml the XML does not count
expect 0 "$B/imgverify" --compare --ignore-xml "$W/1.sav" "$W/2.sav"

# ---- XML and cookie reported apart ------------------------------------------------------
python3 - "$RAW" "$W/cookie.sav" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.index(b"<cookie>")
j = d.index(b"<model fallback='forbid'>qemu64</model>", i) + len("<model fallback='forbid'>qemu6")
d[j:j + 1] = b"5"
open(sys.argv[2], "wb").write(d)
PY
expect 1 "$B/imgverify" --compare "$RAW" "$W/cookie.sav"
grep -q "but their cookie differs" "$W/out" || bad "cookie-only difference not named"
grep -q "XML differs" "$W/out" && bad "cookie-only difference called an XML difference"
grep -q "  XML: identical" "$W/out" || bad "XML not reported identical"
grep -q "  cookie: differs" "$W/out" || bad "cookie not reported different"
expect 1 "$B/imgverify" --compare --output=json "$RAW" "$W/cookie.sav"
json imgverify "d['xml-identical'] is True and d['cookie-identical'] is False and 'qemu65' in d['cookie-diff']"

finish
