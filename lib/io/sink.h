/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Output side of the I/O layer.  Two sink endpoints:
 *   file    (sink_create) written to a temporary file created 0600 with
 *           O_EXCL beside the target, then fsync'd and renamed over the
 *           target by sink_commit(); until then the target is untouched.
 *           Positional writes, holes, preallocation.
 *   stream  (sink_create_fd) a descriptor the caller opened, usually
 *           standard output in a pipeline: written strictly in order, no
 *           holes, nothing to rename.  Whatever needs to go back (a seek,
 *           a positional write, a hole, a size change) fails at once with
 *           MRIMG_ERR_IO (ESPIPE); outputs that need those are refused
 *           before anything is written (convert.c). */
#ifndef MRIMG_IO_SINK_H
#define MRIMG_IO_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "../util/util.h"

#define SINK_FORCE 0x1u   /* replace an existing target */
#define SINK_NAMED 0x2u   /* messages name the file (its last component: a
                           * file of an output directory); else "the output",
                           * since the caller names the target itself */

typedef struct mrimg_sink {
    int fd;
    char *target;        /* the name given */
    const char *label;   /* what messages call it: "the output", the file's
                          * name (SINK_NAMED), or sink_create_fd's name */
    char *path;          /* the file replaced: target, or what its symlink names */
    char *tmp;           /* the temporary beside path */
    int slot;            /* index in the signal-cleanup registry, -1 none */
    unsigned flags;
    /* sequential writes are buffered */
    uint8_t *buf;
    size_t cap, len;
    uint64_t pos;        /* file offset of buf[0] */
    uint64_t written;    /* bytes handed to the kernel */
    uint64_t size;       /* highest offset written or truncated to */
    bool sequential;     /* a stream sink: in order only, fd not ours */
} mrimg_sink;

MRIMG_INTERNAL int sink_create(mrimg_sink *s, const char *target, unsigned flags,
                               mrimg_error *err);
/* A stream sink on fd (not closed; name is for messages).  sink_commit
 * flushes it (and syncs it when it is a regular file). */
MRIMG_INTERNAL int sink_create_fd(mrimg_sink *s, int fd, const char *name, mrimg_error *err);
static inline bool sink_seekable(const mrimg_sink *s) { return !s->sequential; }
/* Buffered sequential write at the current position. */
MRIMG_INTERNAL int sink_write(mrimg_sink *s, const void *data, size_t len, mrimg_error *err);
/* Current sequential position. */
static inline uint64_t sink_tell(const mrimg_sink *s) { return s->pos + s->len; }
/* Move the sequential position (flushes the buffer). */
MRIMG_INTERNAL int sink_seek(mrimg_sink *s, uint64_t off, mrimg_error *err);
/* Unbuffered positional write (flushes the sequential buffer first). */
MRIMG_INTERNAL int sink_pwrite(mrimg_sink *s, const void *data, size_t len, uint64_t off,
                               mrimg_error *err);
MRIMG_INTERNAL int sink_flush(mrimg_sink *s, mrimg_error *err);
/* Set the logical file size (holes beyond the written data). */
MRIMG_INTERNAL int sink_truncate(mrimg_sink *s, uint64_t size, mrimg_error *err);
/* Turn [off, off+len) back into a hole, or write zeros where punching is
 * not supported. */
MRIMG_INTERNAL int sink_punch(mrimg_sink *s, uint64_t off, uint64_t len, mrimg_error *err);
/* Reserve [off, off+len) with fallocate (keeps the size).  Returns
 * MRIMG_ERR_UNSUPPORTED when the file system cannot. */
MRIMG_INTERNAL int sink_reserve(mrimg_sink *s, uint64_t off, uint64_t len, mrimg_error *err);
/* Flush, fsync; if final_magic is not NULL write those 16 bytes at offset 0
 * and fsync again; then rename onto the target and fsync the directory. */
MRIMG_INTERNAL int sink_commit(mrimg_sink *s, const char *final_magic, mrimg_error *err);
/* Remove the temporary file (no-op after a commit). */
MRIMG_INTERNAL void sink_abort(mrimg_sink *s);

/* Have the signal cleanup (mrimg_cleanup_temporaries) remove path too: a
 * file (unlinked) or a directory this run created (rmdir'd after the files,
 * so only if empty).  Returns a slot for sink_untrack, or -1 if the table is
 * full (then nothing is removed on a signal). */
MRIMG_INTERNAL int sink_track(const char *path, bool dir);
MRIMG_INTERNAL void sink_untrack(int slot);

#endif
