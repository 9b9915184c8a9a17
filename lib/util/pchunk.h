/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parallel chunk pipeline: cut a byte stream into fixed-size chunks,
 * transform each chunk on a worker thread, and hand the results back in the
 * original order.  Used by the codecs whose formats allow independent pieces
 * (gzip deflate runs, bzip2 streams, lzop blocks).  Memory is bounded:
 * 2 x threads chunks in flight at most. */
#ifndef MRIMG_PCHUNK_H
#define MRIMG_PCHUNK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

typedef struct pchunk_job {
    uint64_t seq;          /* 0, 1, 2, ... in stream order */
    const uint8_t *dict;   /* up to dict_size bytes that precede in[] in the
                            * stream (the tail of the previous chunk) */
    size_t dict_len;
    const uint8_t *in;     /* this chunk */
    size_t in_len;
    bool last;             /* this is the final chunk (may be empty) */
    uint8_t *out;          /* result, allocated/grown by the worker fn with
                            * realloc(); kept between uses of the slot */
    size_t out_len, out_cap;
    uint32_t check;        /* free for the codec (e.g. a CRC of in[]) */
} pchunk_job;

/* Make job->out hold at least want bytes, growing it to exactly want (a
 * chunk's output bound is the same from chunk to chunk).  0 or
 * MRIMG_ERR_NOMEM; for the work functions. */
MRIMG_INTERNAL int pchunk_out_reserve(pchunk_job *job, size_t want, mrimg_error *err);

/* Transform one chunk; runs on a worker thread (worker = 0..threads-1, so
 * per-worker state can be indexed).  Return 0 or <0 with *err set. */
typedef int (*pchunk_work_fn)(void *ctx, unsigned worker, pchunk_job *job, mrimg_error *err);
/* Consume one finished chunk, in order, on the caller's thread. */
typedef int (*pchunk_emit_fn)(void *ctx, pchunk_job *job, mrimg_error *err);

typedef struct pchunk_slot pchunk_slot;

typedef struct pchunk {
    unsigned threads;
    size_t chunk_size, dict_size;
    pchunk_work_fn work;
    pchunk_emit_fn emit;
    void *ctx;
    pchunk_slot *slots;
    unsigned nslots;
    uint64_t next_seq;     /* seq of the chunk being filled */
    uint64_t emit_seq;     /* next seq to emit */
    pthread_t *tids;
    unsigned started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    bool stop;
    bool failed;
    mrimg_error werr;      /* first worker error */
} pchunk;

/* threads == 1 runs everything inline on the caller's thread. */
MRIMG_INTERNAL int pchunk_init(pchunk *p, unsigned threads, size_t chunk_size, size_t dict_size,
                               pchunk_work_fn work, pchunk_emit_fn emit, void *ctx,
                               mrimg_error *err);
MRIMG_INTERNAL int pchunk_write(pchunk *p, const void *data, size_t len, mrimg_error *err);
/* Submit the last chunk (possibly empty, with last = true) and emit
 * everything. */
MRIMG_INTERNAL int pchunk_finish(pchunk *p, mrimg_error *err);
MRIMG_INTERNAL void pchunk_free(pchunk *p);

#endif
