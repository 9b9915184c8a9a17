/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A buffered reader of the decoded migration stream.  Over a raw payload it
 * reads the file directly (and can seek, which mapped-ram needs); over a
 * compressed payload it pulls from the codec's decoder.  Parsing happens in
 * place in a large buffer; records never cost a system call each. */
#ifndef MRIMG_STREAM_BYTES_H
#define MRIMG_STREAM_BYTES_H

#include "../codec/codec.h"

/* Buffer sizes.  They are what a conversion holds besides the codec's own
 * state (an image is never held in memory), so they are kept small: large
 * enough for the largest record and for reads that go at disk speed, no
 * larger (tests/test_buffers.c holds them to these bounds).
 *
 * SRD_BUF is the parse buffer: a record must fit whole, and the largest
 * one is a zlib-compressed 2 MiB page (target page bits 21, compressBound:
 * 2 MiB + 653 bytes); 64 KiB more than 2 MiB covers it.  2 MiB reads are
 * as fast as larger ones (the kernel reads ahead sequential files), and the
 * read-ahead thread doubles the buffer: 2 x (SRD_BUF + SRD_HEAD) = 4.6 MiB
 * per pass.  The fuzz build (fuzz/CMakeLists.txt) makes SRD_BUF small, so
 * that small inputs reach the refill and boundary paths. */
#ifndef SRD_BUF
#define SRD_BUF ((2u << 20) + (64u << 10))
#endif
/* Room in front of a prefetched buffer for the unparsed end of the
 * previous one (a record cut by the buffer boundary: at most one page
 * record, 64 KiB on hosts with 64 KiB pages).  A longer rest (2 MiB
 * pages) makes the reader finish the pass synchronously. */
#define SRD_HEAD (256u << 10)
/* Largest record the parser asks for whole (see SRD_BUF). */
#define SRD_MAX_RECORD ((2u << 20) + 653u)

/* Read-ahead: a thread fills the next buffer (file reads, or decoding)
 * while the caller parses the current one; buffers are swapped, not
 * copied. */
typedef struct srd_prefetch srd_prefetch;

/* Called with every stream byte, in order, just before it leaves the
 * buffer (used to copy a stream verbatim while it is parsed). */
typedef int (*srd_tap_fn)(void *ctx, const uint8_t *p, size_t n, mrimg_error *err);

typedef struct srd {
    mrimg_decoder *dec;     /* compressed payload, or NULL */
    mrimg_source *src;      /* raw payload: direct reads */
    uint64_t base;          /* raw: file offset of stream offset 0 */
    uint64_t limit;         /* raw: stream offset of the end of the file */
    uint8_t *buf;
    size_t cap, r, w;
    uint64_t buf_pos;       /* stream offset of buf[0] */
    bool eof;
    srd_tap_fn tap;
    void *tap_ctx;
    size_t tapped;          /* bytes of buf[0..] already passed to tap */
    uint64_t dropped;       /* raw: page cache dropped up to this file offset */
    mrimg_progress_fn progress;
    void *progress_ctx;
    uint64_t progress_total;
    uint64_t progress_next;
    srd_prefetch *pf;       /* read-ahead thread, or NULL */
    uint64_t in_bytes;      /* compressed bytes consumed (for progress) */
} srd;

MRIMG_INTERNAL int srd_init_raw(srd *s, mrimg_source *src, uint64_t base, size_t cap,
                                mrimg_error *err);
MRIMG_INTERNAL int srd_init_dec(srd *s, mrimg_decoder *dec, size_t cap, mrimg_error *err);
MRIMG_INTERNAL void srd_free(srd *s);
/* Bytes of buffer the reader holds now (its parse buffer, and the
 * read-ahead thread's while that runs). */
MRIMG_INTERNAL size_t srd_footprint(const srd *s);
/* Start reading ahead on a second thread (no-op on failure: the reader
 * then works synchronously).  Stops by itself at the first seek. */
MRIMG_INTERNAL void srd_prefetch_start(srd *s);
/* Stop the read-ahead thread (the decoder may be used again afterwards). */
MRIMG_INTERNAL void srd_prefetch_stop(srd *s);

static inline uint64_t srd_pos(const srd *s) { return s->buf_pos + s->r; }
static inline size_t srd_avail(const srd *s) { return s->w - s->r; }
static inline const uint8_t *srd_ptr(const srd *s) { return s->buf + s->r; }
/* Raw payload of a file: positional reads, holes, a known end.  (A raw
 * payload on a pipe is read forward like a decoded one.) */
static inline bool srd_seekable(const srd *s) { return s->dec == NULL && src_seekable(s->src); }
/* Offset kind and value to name a stream position in an error. */
static inline mrimg_offset_kind srd_okind(const srd *s)
{
    return s->dec ? MRIMG_OFF_STREAM : MRIMG_OFF_FILE;
}
static inline uint64_t srd_eoff(const srd *s, uint64_t pos) { return s->dec ? pos : s->base + pos; }

/* Make at least n bytes available at srd_ptr().  MRIMG_ERR_TRUNCATED names
 * `what` if the stream ends first. */
MRIMG_INTERNAL int srd_need(srd *s, size_t n, const char *what, mrimg_error *err);
/* Like srd_need but returns 1 if available, 0 at a clean end (fewer bytes). */
MRIMG_INTERNAL int srd_peek(srd *s, size_t n, mrimg_error *err);
static inline void srd_consume(srd *s, size_t n) { s->r += n; }
/* Skip n bytes (may exceed the buffer). */
MRIMG_INTERNAL int srd_skip(srd *s, uint64_t n, const char *what, mrimg_error *err);
/* Raw payloads only: continue reading at stream offset pos. */
MRIMG_INTERNAL int srd_seek(srd *s, uint64_t pos, mrimg_error *err);
/* Pass everything left to fn in large pieces, until the end of the stream. */
MRIMG_INTERNAL int srd_drain(srd *s, srd_tap_fn fn, void *ctx, mrimg_error *err);
/* Hand untapped bytes before the read position to the tap. */
MRIMG_INTERNAL int srd_flush_tap(srd *s, mrimg_error *err);

#endif
