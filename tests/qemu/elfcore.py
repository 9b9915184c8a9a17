#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small ELF64 core reader for the tests: the header, the PT_LOAD
segments and reading guest-physical ranges from them."""

import struct


class Core:
    def __init__(self, path):
        self.f = open(path, "rb")
        h = self.f.read(64)
        if h[:4] != b"\x7fELF" or h[4] != 2 or h[5] != 1:
            raise ValueError(f"{path}: not an ELF64 little-endian file")
        (self.type, self.machine, _ver, _entry, self.phoff, self.shoff, _flags, _ehsize,
         self.phentsize, self.phnum) = struct.unpack_from("<HHIQQQIHHH", h, 16)
        self.f.seek(self.phoff)
        self.phdrs = []
        for _ in range(self.phnum):
            (ptype, flags, off, vaddr, paddr, filesz, memsz,
             align) = struct.unpack("<IIQQQQQQ", self.f.read(56))
            self.phdrs.append(dict(type=ptype, flags=flags, offset=off, vaddr=vaddr,
                                   paddr=paddr, filesz=filesz, memsz=memsz, align=align))

    def loads(self):
        return [p for p in self.phdrs if p["type"] == 1]

    def ranges(self):
        """[(paddr, length)] of the PT_LOAD segments, ascending."""
        return sorted((p["paddr"], p["memsz"]) for p in self.loads())

    def notes(self):
        out = []
        for p in self.phdrs:
            if p["type"] != 4:
                continue
            self.f.seek(p["offset"])
            d = self.f.read(p["filesz"])
            o = 0
            while o + 12 <= len(d):
                nsz, dsz, t = struct.unpack_from("<III", d, o)
                name = d[o + 12:o + 12 + nsz].rstrip(b"\0").decode()
                o += 12 + ((nsz + 3) & ~3)
                out.append((name, t, d[o:o + dsz]))
                o += (dsz + 3) & ~3
        return out

    def segment_chunks(self, p, chunk=1 << 20):
        """Yield (offset within the segment, bytes) of a PT_LOAD."""
        done = 0
        while done < p["filesz"]:
            n = min(chunk, p["filesz"] - done)
            self.f.seek(p["offset"] + done)
            yield done, self.f.read(n)
            done += n

    def close(self):
        self.f.close()


def compare_cores(a_path, b_path):
    """None if both cores have the same PT_LOAD ranges with the same bytes,
    else a description of the first difference."""
    a, b = Core(a_path), Core(b_path)
    try:
        if a.ranges() != b.ranges():
            return (f"PT_LOAD ranges differ:\n  {[(hex(x), hex(y)) for x, y in a.ranges()]}\n"
                    f"  {[(hex(x), hex(y)) for x, y in b.ranges()]}")
        bl = {p["paddr"]: p for p in b.loads()}
        for pa in a.loads():
            pb = bl[pa["paddr"]]
            gb = b.segment_chunks(pb)
            for off, da in a.segment_chunks(pa):
                _, db = next(gb)
                if da != db:
                    i = next(k for k in range(len(da)) if da[k] != db[k])
                    return f"content differs at guest-physical {pa['paddr'] + off + i:#x}"
        return None
    finally:
        a.close()
        b.close()


def compare_phys(core_path, phys_path):
    """None if the flat file holds every PT_LOAD's bytes at its address and
    nothing else (outside the segments the file must read as zero)."""
    a = Core(core_path)
    try:
        with open(phys_path, "rb") as f:
            for p in a.loads():
                for off, d in a.segment_chunks(p):
                    f.seek(p["paddr"] + off)
                    if f.read(len(d)) != d:
                        return f"phys file differs in the segment at {p['paddr']:#x} (+{off:#x})"
        return None
    finally:
        a.close()
