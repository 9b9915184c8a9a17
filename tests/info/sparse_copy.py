#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Copy a file so that its data/hole map is known exactly: every 4 KiB
block that holds a non-zero byte is written, every all-zero block is left
as a hole (the copy is written by seeking over zero blocks, then sized).

The fixtures are unpacked by zstd, whose holes follow its own granularity;
the extents goldens are made from such copies instead, so they do not
depend on how the fixture was unpacked.  Exit status 3 if the file system
does not report the holes exactly (the caller then skips what needs them).

Usage: sparse_copy.py SRC DST"""

import os
import sys

BLOCK = 4096


def nonzero_runs(path):
    """(start, end) runs of non-zero 4 KiB blocks, coalesced."""
    runs = []
    with open(path, "rb") as f:
        off = 0
        start = None
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            for i in range(0, len(chunk), BLOCK):
                blk = chunk[i:i + BLOCK]
                nz = blk.count(0) != len(blk)
                if nz and start is None:
                    start = off + i
                elif not nz and start is not None:
                    runs.append((start, off + i))
                    start = None
            off += len(chunk)
        if start is not None:
            runs.append((start, off))
    return runs, off


def data_map(path):
    """The file's data runs as the file system reports them."""
    runs = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE)
            runs.append((d, min(h, size)))
            off = h
    finally:
        os.close(fd)
    return runs


def main():
    src, dst = sys.argv[1], sys.argv[2]
    runs, size = nonzero_runs(src)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for a, b in runs:
            fi.seek(a)
            fo.seek(a)
            fo.write(fi.read(b - a))
        fo.truncate(size)
    if data_map(dst) != runs:
        print(f"{dst}: the file system does not report holes exactly", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
