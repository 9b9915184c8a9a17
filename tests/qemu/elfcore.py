#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small ELF64 core reader for the tests: the header and the program
headers (PT_LOAD segments: guest-physical ranges and where their bytes are)."""

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

    def close(self):
        self.f.close()

