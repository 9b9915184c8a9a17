#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Compare `imginfo --xml` with what libvirt itself printed for the same
image (virsh save-image-dumpxml, with and without --security-info; the
files dumpxml*.xml beside the fixtures).

libvirt re-formats the definition and adds implicit devices, so the texts
differ; the comparison is structural:
  - every element of ours, with all its attributes and its text, is in
    libvirt's output at the same place (children matched in order);
  - libvirt's extra elements are only its implicit defaults (PS/2
    keyboard, the "none" audio backend, the q35 iTCO watchdog);
  - the VNC password is absent from ours exactly when libvirt left it out,
    and present (same value) exactly when libvirt printed it.
And ours differs from the XML stored in the image only by the removed
attribute: everything else is byte-identical.

Usage: check_xml.py IMGINFO FIXTURES"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

IMPLICIT = [
    ("input", {"type": "keyboard", "bus": "ps2"}),
    ("audio", {"id": "1", "type": "none"}),
    ("watchdog", {"model": "itco", "action": "reset"}),
]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def is_implicit(el):
    return any(el.tag == t and el.attrib == a for t, a in IMPLICIT)


def same(a, b):
    return a.tag == b.tag and a.attrib == b.attrib and (a.text or "").strip() == (b.text or "").strip()


def compare(ours, theirs, path):
    """Every child of ours matches, in order, a child of theirs; the
    unmatched children of theirs must be implicit defaults."""
    check(same(ours, theirs), f"{path}: <{ours.tag} {ours.attrib}> != <{theirs.tag} {theirs.attrib}>")
    tc = list(theirs)
    j = 0
    for c in ours:
        while j < len(tc) and not same(c, tc[j]):
            check(is_implicit(tc[j]), f"{path}/{tc[j].tag}: extra element in libvirt's output "
                                      f"{tc[j].attrib} is not an implicit default")
            j += 1
        if j == len(tc):
            check(False, f"{path}/{c.tag} {c.attrib}: not in libvirt's output")
            return
        compare(c, tc[j], f"{path}/{c.tag}")
        j += 1
    for rest in tc[j:]:
        check(is_implicit(rest), f"{path}/{rest.tag}: extra element {rest.attrib} is not an implicit default")


def passwords(root):
    return [g.get("passwd") for g in root.iter("graphics")]


def stored_xml(path):
    with open(path, "rb") as f:
        head = f.read(92)
        import struct
        version, data_len, running, fmt, cookie = struct.unpack("<5I", head[16:36])
        if version > 2:
            version, data_len, running, fmt, cookie = struct.unpack(">5I", head[16:36])
        meta = f.read(data_len)
    return meta.split(b"\0", 1)[0].decode()


def main():
    binary, fixtures = sys.argv[1], sys.argv[2]
    lv = os.path.join(fixtures, "libvirt")
    for secure, ref in ((False, "dumpxml.xml"), (True, "dumpxml-security-info.xml")):
        theirs_txt = open(os.path.join(lv, ref)).read()
        theirs = ET.fromstring(theirs_txt)
        for img in ("raw.sav", "zstd.sav", "sparse.sav", "raw-paused.sav"):
            args = [binary, "--xml"] + (["--security-info"] if secure else []) + [os.path.join(lv, img)]
            p = subprocess.run(args, capture_output=True, text=True)
            label = f"{img} {'--security-info' if secure else ''}"
            check(p.returncode == 0, f"{label}: exit {p.returncode}: {p.stderr.strip()}")
            ours = ET.fromstring(p.stdout)
            compare(ours, theirs, label)
            check(passwords(ours) == passwords(theirs),
                  f"{label}: passwords {passwords(ours)} != libvirt's {passwords(theirs)}")
            check(("passwd=" in p.stdout) == ("passwd=" in theirs_txt), f"{label}: passwd text")
            stored = stored_xml(os.path.join(lv, img))
            if secure:
                check(p.stdout.rstrip("\n") == stored.rstrip("\n"), f"{label}: not the stored XML")
            else:
                check(p.stdout.rstrip("\n") == stored.replace(" passwd='s3cr3t!!'", "").rstrip("\n"),
                      f"{label}: differs from the stored XML by more than the password")
        check(passwords(theirs) == ([None] if not secure else ["s3cr3t!!"]),
              f"{ref}: unexpected reference passwords {passwords(theirs)}")
    print(f"xml: {'FAILED' if failures else 'ok'} ({len(failures)} failures)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
