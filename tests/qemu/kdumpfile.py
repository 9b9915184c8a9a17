# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small reader of compressed kdump files (makedumpfile "KDUMP   ",
header version 6, x86-64, not flattened), enough for the tests: the header
fields, the notes, the bitmaps and every dumped page, decompressed (zlib
from the standard library, LZO1X through liblzo2 with ctypes)."""

import ctypes
import ctypes.util
import struct
import zlib

HDR = struct.Struct("<8sI390s22sIIIIIIIIII")
HDR_NAMES = ("signature", "header_version", "utsname", "timestamp", "status", "block_size",
             "sub_hdr_size", "bitmap_blocks", "max_mapnr", "total_ram_blocks",
             "device_blocks", "written_blocks", "current_cpu", "nr_cpus")
SUB = struct.Struct("<QIIQQQQQQQQQQQ")
SUB_NAMES = ("phys_base", "dump_level", "split", "start_pfn", "end_pfn", "offset_vmcoreinfo",
             "size_vmcoreinfo", "offset_note", "note_size", "offset_eraseinfo",
             "size_eraseinfo", "start_pfn_64", "end_pfn_64", "max_mapnr_64")
DESC = struct.Struct("<QIIQ")
ZLIB, LZO = 1, 2

_lzo = None


def _liblzo():
    # lzo1x_1_compress and lzo1x_decompress_safe need no lzo_init() (that
    # only checks the caller's type sizes)
    global _lzo
    if _lzo is None:
        _lzo = ctypes.CDLL(ctypes.util.find_library("lzo2") or "liblzo2.so.2")
    return _lzo


def lzo_decompress(data, out_len):
    out = ctypes.create_string_buffer(out_len)
    n = ctypes.c_size_t(out_len)
    rc = _liblzo().lzo1x_decompress_safe(data, ctypes.c_size_t(len(data)), out,
                                         ctypes.byref(n), None)
    if rc != 0 or n.value != out_len:
        raise ValueError(f"LZO page does not decode (rc {rc}, {n.value} bytes)")
    return out.raw


def lzo_compressed_len(page):
    """Size of LZO1X-1's output for page (what QEMU's dump compares)."""
    out = ctypes.create_string_buffer(len(page) + len(page) // 16 + 64 + 3)
    n = ctypes.c_size_t(len(out))
    wrk = ctypes.create_string_buffer(1 << 17)
    rc = _liblzo().lzo1x_1_compress(page, ctypes.c_size_t(len(page)), out, ctypes.byref(n),
                                    wrk)
    if rc != 0:
        raise RuntimeError(f"lzo1x_1_compress failed: {rc}")
    return n.value


class Kdump:
    def __init__(self, path):
        self.f = open(path, "rb")
        h = self.f.read(HDR.size)
        self.hdr = dict(zip(HDR_NAMES, HDR.unpack(h)))
        u = self.hdr["utsname"]
        self.hdr["utsname"] = tuple(u[i:i + 65].rstrip(b"\0").decode("latin-1")
                                    for i in range(0, 390, 65))
        if self.hdr["signature"] != b"KDUMP   ":
            raise ValueError(f"{path}: not a kdump file (signature {self.hdr['signature']!r})")
        bs = self.bs = self.hdr["block_size"]
        self.f.seek(bs)
        self.sub = dict(zip(SUB_NAMES, SUB.unpack(self.f.read(SUB.size))))
        self.f.seek(self.sub["offset_note"])
        self.notes = self.f.read(self.sub["note_size"])
        bm_off = (1 + self.hdr["sub_hdr_size"]) * bs
        bm_len = self.hdr["bitmap_blocks"] * bs // 2
        self.f.seek(bm_off)
        self.bitmap1 = self.f.read(bm_len)
        self.bitmap2 = self.f.read(bm_len)
        self.desc_off = bm_off + 2 * bm_len

    def fields(self):
        d = {("header", k): v for k, v in self.hdr.items()}
        d.update({("sub", k): v for k, v in self.sub.items()})
        return d

    def pfns(self):
        """The dumpable pfns (bitmap 2), ascending."""
        for i, b in enumerate(self.bitmap2):
            if b:
                for j in range(8):
                    if b >> j & 1:
                        yield i * 8 + j

    def pages(self):
        """(pfn, descriptor dict, page bytes) for every dumped page."""
        ps = self.bs
        pfns = list(self.pfns())
        self.f.seek(self.desc_off)
        raw = self.f.read(DESC.size * len(pfns))
        if len(raw) != DESC.size * len(pfns):
            raise ValueError("descriptor table truncated")
        for i, pfn in enumerate(pfns):
            off, size, flags, pflags = DESC.unpack_from(raw, i * DESC.size)
            self.f.seek(off)
            data = self.f.read(size)
            if len(data) != size:
                raise ValueError(f"pfn {pfn:#x}: data at {off:#x}+{size} beyond the end")
            if flags & ZLIB:
                page = zlib.decompress(data)
            elif flags & LZO:
                page = lzo_decompress(data, ps)
            else:
                page = data
            if len(page) != ps:
                raise ValueError(f"pfn {pfn:#x}: {len(page)} bytes after decompression")
            yield pfn, {"offset": off, "size": size, "flags": flags, "page_flags": pflags}, page

    def close(self):
        self.f.close()
