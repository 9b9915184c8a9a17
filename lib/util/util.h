/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal helpers shared by every layer: errors, byte order, allocation,
 * zero detection.  Not part of the public API. */
#ifndef MRIMG_UTIL_H
#define MRIMG_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mrimg.h"

#define MRIMG_INTERNAL __attribute__((visibility("hidden")))
#define MRIMG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MRIMG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MRIMG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MRIMG_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- errors ---------------------------------------------------------- */

/* Set *err (if err != NULL) and return code.  The message is prefixed with
 * "at file offset 0x...: " or "at stream offset 0x...: " when kind is not
 * MRIMG_OFF_NONE. */
MRIMG_INTERNAL int err_set(mrimg_error *err, mrimg_code code,
                           mrimg_offset_kind kind, uint64_t off,
                           const char *fmt, ...) MRIMG_PRINTF(5, 6);
MRIMG_INTERNAL int err_setv(mrimg_error *err, mrimg_code code,
                            mrimg_offset_kind kind, uint64_t off,
                            const char *fmt, va_list ap) MRIMG_PRINTF(5, 0);
/* An I/O error from errno: "what: strerror(errno)"; ENOSPC/EDQUOT map to
 * MRIMG_ERR_NOSPC. */
MRIMG_INTERNAL int err_sys(mrimg_error *err, int errnum, const char *fmt, ...)
    MRIMG_PRINTF(3, 4);
/* Mark *err (if set) as being about that file; returns rc unchanged. */
static inline int err_side(mrimg_error *err, mrimg_side side, int rc)
{
    if (err && err->code != MRIMG_OK)
        err->side = side;
    return rc;
}
#define err_nomem(err) err_set((err), MRIMG_ERR_NOMEM, MRIMG_OFF_NONE, 0, "out of memory")
/* Prepend context ("decoding gzip payload: ") to an existing message. */
MRIMG_INTERNAL void err_prefix(mrimg_error *err, const char *fmt, ...)
    MRIMG_PRINTF(2, 3);

/* ---- byte order ------------------------------------------------------ */

static inline uint16_t rd_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t rd_be64(const uint8_t *p)
{
    return ((uint64_t)rd_be32(p) << 32) | rd_be32(p + 4);
}
static inline uint32_t rd_le32(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static inline uint64_t rd_le64(const uint8_t *p)
{
    return ((uint64_t)rd_le32(p + 4) << 32) | rd_le32(p);
}
static inline void wr_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void wr_be64(uint8_t *p, uint64_t v) { wr_be32(p, (uint32_t)(v >> 32)); wr_be32(p + 4, (uint32_t)v); }
static inline void wr_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void wr_le64(uint8_t *p, uint64_t v) { wr_le32(p, (uint32_t)v); wr_le32(p + 4, (uint32_t)(v >> 32)); }
static inline uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }

/* ---- arithmetic ------------------------------------------------------ */

/* a + b into *r; false on overflow. */
static inline bool add_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }
static inline bool mul_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline uint64_t round_up(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }

/* ---- memory ---------------------------------------------------------- */

/* calloc/malloc wrappers that set *err on failure. */
MRIMG_INTERNAL void *xcalloc(size_t n, size_t size, mrimg_error *err);
MRIMG_INTERNAL void *xmalloc(size_t size, mrimg_error *err);
/* Page-aligned allocation (for large I/O buffers); free with free(). */
MRIMG_INTERNAL void *xmalloc_aligned(size_t size, mrimg_error *err);
MRIMG_INTERNAL char *xstrdup(const char *s, mrimg_error *err);

/* ---- zero detection -------------------------------------------------- */

/* true if all len bytes are zero.  Word-wise; len need not be aligned. */
MRIMG_INTERNAL bool mem_is_zero(const void *p, size_t len);

/* ---- misc ------------------------------------------------------------ */

/* Number of online CPUs (at least 1). */
MRIMG_INTERNAL unsigned cpu_count(void);
/* The threads a public call really uses: 0 (the default) and anything above
 * the online CPUs become the online CPUs.  More workers than CPUs never
 * speed up compression, but each holds its own buffers (a gzip worker
 * ~0.4 MiB, an xz worker a block of 3 x dictionary); outputs do not depend
 * on the count, so clamping changes nothing but memory. */
MRIMG_INTERNAL unsigned threads_effective(unsigned requested);
/* Bytes shown as "a1 b2 c3" (at most max bytes) into out (size >= 3*max+1). */
MRIMG_INTERNAL void hex_bytes(char *out, const uint8_t *p, size_t n, size_t max);

/* Versioned result structs of mrimg.h (first member `size_t size`, set by
 * the caller to sizeof as it was compiled): whether the size is set, and
 * the copy of the library's whole struct src into the part of dst that
 * the caller has (its size stays). */
static inline bool vstruct_ok(const void *dst)
{
    size_t want;
    memcpy(&want, dst, sizeof(want));
    return want >= sizeof(size_t);
}

static inline void vstruct_copy(void *dst, const void *src, size_t full)
{
    size_t want;
    memcpy(&want, dst, sizeof(want));
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
           (want < full ? want : full) - sizeof(size_t));
}

#endif
