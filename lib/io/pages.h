/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs of pages at file offsets, read hole-aware: the one reader of
 * mapped-ram pages regions (the RAM view, the verifier, in-place hole
 * punching), and the one loader of mapped-ram bitmaps.
 *
 * The caller describes regions (a file offset of page 0, a page range and
 * optionally a bitmap of the pages that count); the reader walks them in the
 * order given, asks the file's extent map where the data lies, reads data
 * extents with large reads and hands the caller runs: read pages, pages in
 * a hole (zeros, never read) and, when asked, pages whose bit is clear.
 * While the caller works on one buffer of runs a thread reads the next
 * (large walks only; a one-page read stays on the caller's thread), the
 * data runs up to 32 MiB ahead are asked for (POSIX_FADV_WILLNEED), and
 * what was read is dropped from the page cache, as for plain inputs.  The extent map only saves reads: data it reports
 * where the file has a hole is read and reads as zeros; a region past the
 * end of the file is MRIMG_ERR_TRUNCATED. */
#ifndef MRIMG_IO_PAGES_H
#define MRIMG_IO_PAGES_H

#include "../util/bitmap.h"
#include "source.h"

/* One region: pages [first, end) of size ps at file offset base + i*ps. */
typedef struct pg_region {
    uint64_t base;
    uint64_t ps;
    uint64_t first, end;
    const lbitmap *bits;   /* pages that count (set bits), or NULL: all */
    unsigned id;           /* the caller's name for it (a RAM block index) */
} pg_region;

typedef enum pg_kind {
    PG_DATA,    /* read: data holds n pages */
    PG_HOLE,    /* inside a hole of the file: zeros, not read */
    PG_CLEAR,   /* bit clear, not in a hole (PG_WANT_CLEAR; not read) */
    PG_CLEAR_HOLE, /* bit clear and in a hole (PG_WANT_CLEAR) */
} pg_kind;

typedef struct pg_run {
    unsigned id;           /* the region's id */
    pg_kind kind;
    uint64_t first, n;     /* pages [first, first+n) of the region */
    uint64_t off;          /* file offset of page first */
    uint64_t ps;           /* the region's page size */
    const uint8_t *data;   /* PG_DATA: n * ps bytes; else NULL */
} pg_run;

/* 0 to go on, <0 to stop (returned by pg_read). */
typedef int (*pg_fn)(void *opaque, const pg_run *r, mrimg_error *err);

enum {
    PG_WANT_CLEAR = 1u << 0, /* deliver runs of clear bits too (split by the extent map) */
    PG_NO_READ = 1u << 1,    /* never read: data extents come as PG_DATA with data NULL */
    PG_ONE_THREAD = 1u << 2, /* no read-ahead thread (the caller asked for one thread) */
};

typedef struct pg_opts {
    unsigned flags;
    size_t max_read;       /* bytes per read (0: 8 MiB); also the buffer size */
    const char *what;      /* names the pages in a truncation error */
    uint64_t bytes_read;   /* out: bytes read from the file */
} pg_opts;

/* Walk nreg regions of src in order, calling fn for every run.  Each read
 * covers at most max_read bytes (rounded down to whole pages, at least one
 * page) and stops where the data extent ends, so the next hole is skipped.
 * Returns 0, fn's error, or an I/O / truncation error. */
MRIMG_INTERNAL int pg_read(mrimg_source *src, const pg_region *reg, size_t nreg, pg_opts *o,
                           pg_fn fn, void *opaque, mrimg_error *err);

/* Load a mapped-ram bitmap of `pages` bits stored at off (little-endian
 * 64-bit words, (pages + 63) / 64 words) into bm, which must be initialised
 * with lb_init(bm, pages).  *stray (if not NULL) receives the number of bits
 * set past the last page and *first_stray the first of them. */
MRIMG_INTERNAL int pg_load_bitmap(mrimg_source *src, uint64_t off, uint64_t pages, lbitmap *bm,
                                  uint64_t *stray, uint64_t *first_stray, mrimg_error *err);

#endif
