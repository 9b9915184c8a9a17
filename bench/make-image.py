#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Make large, realistic save images for the benchmarks.

A paused TCG guest with RAM_GIB of RAM gets DATA_GIB of guest-page-cache-like
content (files from /usr: binaries and text, some random data, zero runs)
loaded at 16 MiB, and is saved twice by real QEMU: plain (`migrate file:`)
and mapped-ram.  Usage: make-image.py OUTDIR [RAM_GIB] [DATA_GIB]"""

import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "qemu"))
import qemuh  # noqa: E402


def make_blob(path, size):
    rnd = random.Random(1234)
    files = []
    for root, _, names in os.walk("/usr"):
        for n in names:
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    files.sort()
    rnd.shuffle(files)
    written = 0
    with open(path, "wb") as out:
        it = iter(files)
        while written < size:
            kind = rnd.random()
            if kind < 0.03:  # zero run: freed or never-touched pages
                chunk = b"\0" * (rnd.randint(1, 64) * 4096)
            elif kind < 0.15:  # random: compressed or encrypted data
                chunk = os.urandom(rnd.randint(1, 64) * 4096)
            else:
                try:
                    with open(next(it), "rb") as f:
                        chunk = f.read(min(64 << 20, size - written))
                except StopIteration:
                    it = iter(files)
                    continue
                except OSError:
                    continue
            chunk = chunk[: size - written]
            out.write(chunk)
            written += len(chunk)


def main():
    outdir = sys.argv[1]
    ram = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    data = float(sys.argv[3]) if len(sys.argv) > 3 else 2
    os.makedirs(outdir, exist_ok=True)
    blob = os.path.join(outdir, "blob.bin")
    if not os.path.exists(blob):
        make_blob(blob, int(data * (1 << 30)) // 4096 * 4096)
    for name, mapped in (("plain.mig", False), ("mapped.mig", True)):
        dst = os.path.join(outdir, name)
        if os.path.exists(dst):
            continue
        g = qemuh.Guest(outdir, machine="pc-i440fx-10.0", mem_mib=ram * 1024, blob=blob,
                        blob_addr=0x1000000)
        try:
            g.save(os.path.abspath(dst), mapped=mapped)
        finally:
            g.close()
        print("made", dst)


if __name__ == "__main__":
    main()
