/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Input side of the I/O layer: a read-only source with positional reads,
 * its data/hole map, and a buffered sequential reader over it.
 *
 * Two kinds of source endpoint, told apart by their capabilities (the
 * layers above ask the source, never st_size):
 *   file        a regular file or block device: pread at any offset,
 *               SEEK_DATA/SEEK_HOLE, a size known at open.
 *   sequential  a pipe or FIFO (stdin in a pipeline): read forward once,
 *               size unknown until its end.  The first bytes (the container
 *               header, XML and cookie, and the stream's first records) are
 *               kept in a bounded head window, so that they can be read
 *               again; a read ahead of the position skips forward; a read
 *               that needs bytes already passed and outside the window
 *               fails at once (MRIMG_ERR_IO, ESPIPE) naming the offset -
 *               never a hang, never wrong data. */
#ifndef MRIMG_IO_SOURCE_H
#define MRIMG_IO_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../util/util.h"

typedef struct mrimg_source {
    int fd;
    bool own_fd;
    char *name;          /* for messages */
    mrimg_side side;     /* named on every error (input unless told) */
    /* st_size at open; a sequential source's is SRC_SIZE_UNKNOWN until the
     * read-ahead thread reads its end, while other threads look at it */
    _Atomic uint64_t size;
    uint64_t allocated;  /* st_blocks * 512 at open */
    bool regular;        /* S_ISREG */
    bool seek_data_ok;   /* SEEK_DATA works on this file (probed lazily) */
    int seek_probe;      /* 0 unknown, 1 works, -1 not supported */
    /* sequential sources only (NULL for files): forward reads, head window;
     * shared by the copies src_share makes, freed with the source that
     * created it */
    struct src_seq *seq;
    bool own_seq;
} mrimg_source;

/* A sequential source's size while its end has not been read. */
#define SRC_SIZE_UNKNOWN UINT64_MAX
/* The largest head window of a sequential source: the biggest libvirt
 * header and metadata region (92 + MRIMG_DATA_LEN_MAX) plus SRC_SEQ_STREAM
 * bytes of payload.  src_seq_keep lowers it once the payload offset is
 * known. */
#define SRC_SEQ_STREAM (32u << 20)

/* Capabilities. */
static inline bool src_seekable(const mrimg_source *s) { return s->seq == NULL; }
/* The size is known: always for files, at the end for sequential ones. */
static inline bool src_size_known(const mrimg_source *s) { return s->size != SRC_SIZE_UNKNOWN; }
/* Sequential sources: keep [0, upto) in the head window (no more). */
MRIMG_INTERNAL void src_seq_keep(mrimg_source *s, uint64_t upto);
/* Sequential sources: the bytes read so far (the position). */
MRIMG_INTERNAL uint64_t src_seq_pos(const mrimg_source *s);
/* Make dst a second handle on src (same descriptor, same sequential state;
 * closing dst closes neither).  A file handle gets its own hole probe. */
MRIMG_INTERNAL void src_share(mrimg_source *dst, const mrimg_source *src, mrimg_error *err);
/* The error for an operation that needs a seekable input (offset kind
 * none): "NAME is a pipe: WHAT needs ... (give a regular file)". */
MRIMG_INTERNAL int src_need_seek(const mrimg_source *s, const char *what, mrimg_error *err);

/* Open path read-only (O_RDONLY|O_CLOEXEC, O_NOATIME when permitted).  A
 * FIFO (or /dev/stdin on a pipe) opens as a sequential source without
 * waiting for a writer; its first read waits at most a second for one. */
MRIMG_INTERNAL int src_open(mrimg_source *s, const char *path, mrimg_error *err);
/* Wrap an existing descriptor (not closed by src_close unless own). */
MRIMG_INTERNAL int src_open_fd(mrimg_source *s, int fd, const char *name, bool own,
                               mrimg_error *err);
MRIMG_INTERNAL void src_close(mrimg_source *s);
/* "a character device", "a FIFO (named pipe)", ... for an st_mode. */
MRIMG_INTERNAL const char *io_kind_name(unsigned mode);

/* Read exactly len bytes at off.  Reading past the end is
 * MRIMG_ERR_TRUNCATED naming `what` and the offset. */
MRIMG_INTERNAL int src_pread(mrimg_source *s, void *buf, size_t len, uint64_t off,
                             const char *what, mrimg_error *err);
/* Read up to len bytes at off; returns bytes read (0 at EOF) or <0. */
MRIMG_INTERNAL ssize_t src_pread_some(mrimg_source *s, void *buf, size_t len, uint64_t off,
                                      mrimg_error *err);

/* Data/hole map.  Finds the first data byte at or after off and the end of
 * that data run.  Sets *data = *end = size when only a hole follows.  When
 * the file system cannot report holes, the whole file is one data run.
 * Never required for correctness: it only lets callers skip holes. */
MRIMG_INTERNAL int src_next_data(mrimg_source *s, uint64_t off, uint64_t *data, uint64_t *end,
                                 mrimg_error *err);
/* true if [off, off+len) lies entirely in a hole (never true without
 * SEEK_HOLE support). */
MRIMG_INTERNAL bool src_is_hole(mrimg_source *s, uint64_t off, uint64_t len);

/* Drop cached pages [off, off+len) after they were consumed. */
MRIMG_INTERNAL void src_drop_cache(mrimg_source *s, uint64_t off, uint64_t len);

/* ---- buffered sequential reader ------------------------------------- */

typedef struct mrimg_instream {
    mrimg_source *src;
    uint8_t *buf;
    size_t cap;
    size_t r, w;         /* unread bytes are buf[r..w) */
    uint64_t next;       /* file offset of buf[w] (next byte to read from file) */
    uint64_t end;        /* file offset where this stream's input ends */
    uint64_t dropped;    /* page-cache bytes already dropped */
} mrimg_instream;

/* A reader of [start, end) of the source with a buffer of cap bytes. */
MRIMG_INTERNAL int in_init(mrimg_instream *in, mrimg_source *src, uint64_t start, uint64_t end,
                           size_t cap, mrimg_error *err);
MRIMG_INTERNAL void in_free(mrimg_instream *in);
/* Move unread bytes to the front and read more.  Returns the number of
 * unread bytes afterwards (0 only at the end), or <0 on error. */
MRIMG_INTERNAL ssize_t in_fill(mrimg_instream *in, mrimg_error *err);
/* File offset of the next unread byte. */
static inline uint64_t in_pos(const mrimg_instream *in) { return in->next - (in->w - in->r); }
static inline size_t in_avail(const mrimg_instream *in) { return in->w - in->r; }
/* Ensure at least n (<= cap) unread bytes; 0 ok, MRIMG_ERR_TRUNCATED if the
 * input ends first (what names the missing structure). */
MRIMG_INTERNAL int in_need(mrimg_instream *in, size_t n, const char *what, mrimg_error *err);
/* Skip zero bytes: 1 if the input ended (only zeros were left), 0 if a
 * non-zero byte is next, <0 on error.  Used to classify what trails the
 * last member of a compressed payload. */
MRIMG_INTERNAL int in_skip_zeros(mrimg_instream *in, mrimg_error *err);

#endif
