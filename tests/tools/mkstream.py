#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write a synthetic but well-formed plain QEMU migration stream: one RAM
block of MIB MiB whose pages hold random data (every 8th page zero), a
SWITCHOVER_START command, an END section and one small device section
described by a VMDESCRIPTION, so that conversions take a while.  With
REDIRTY, a second PART sends every 64th page again with other data, as a
live migration's next pass does (the records are then out of order).

Usage: mkstream.py OUT MIB [SEED [REDIRTY]]"""

import json
import random
import struct
import sys


def main():
    out, mib = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    page = 4096
    size = mib << 20
    name = b"pc.ram"
    with open(out, "wb") as f:
        f.write(b"QEVM" + struct.pack(">I", 3))
        mt = b"pc-i440fx-10.0"
        f.write(b"\x07" + struct.pack(">I", len(mt)) + mt)
        # RAM START: block list, EOS, footer
        f.write(b"\x01" + struct.pack(">I", 2) + b"\x03ram" + struct.pack(">II", 0, 4))
        f.write(struct.pack(">Q", size | 0x04) + bytes([len(name)]) + name + struct.pack(">Q", size))
        f.write(struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2))
        # one PART with every page
        f.write(b"\x02" + struct.pack(">I", 2))
        for i in range(size // page):
            cont = 0x20 if i else 0
            hdr = struct.pack(">Q", i * page | (0x02 if i % 8 == 7 else 0x08) | cont)
            if not cont:
                hdr += bytes([len(name)]) + name
            if i % 8 == 7:
                f.write(hdr + b"\0")
            else:
                f.write(hdr + rnd.randbytes(page))
        f.write(struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2))
        if len(sys.argv) > 4 and sys.argv[4] == "REDIRTY":
            f.write(b"\x02" + struct.pack(">I", 2))
            for n, i in enumerate(range(0, size // page, 64)):
                cont = 0x20 if n else 0
                hdr = struct.pack(">Q", i * page | 0x08 | cont)
                if not cont:
                    hdr += bytes([len(name)]) + name
                f.write(hdr + rnd.randbytes(page))
            f.write(struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2))
        f.write(b"\x08" + struct.pack(">HH", 11, 0))              # SWITCHOVER_START
        f.write(b"\x03" + struct.pack(">I", 2) + struct.pack(">Q", 0x10) + b"\x7e" + struct.pack(">I", 2))
        # one device: 8 bytes of state
        f.write(b"\x04" + struct.pack(">I", 0) + b"\x05timer" + struct.pack(">II", 0, 2))
        f.write(struct.pack(">Q", 0x1234) + b"\x7e" + struct.pack(">I", 0))
        f.write(b"\x00")
        desc = json.dumps({"page_size": page, "devices": [
            {"name": "timer", "instance_id": 0, "vmsd_name": "timer", "version": 2,
             "fields": [{"name": "ticks", "type": "int64", "size": 8}]}]}).encode()
        f.write(b"\x06" + struct.pack(">I", len(desc)) + desc)


if __name__ == "__main__":
    main()
