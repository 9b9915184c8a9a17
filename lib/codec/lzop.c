/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lzop: the lzop 1.x file container (what libvirt writes with `lzop -c` and
 * reads back with `lzop -dc --ignore-warn`), implemented here from the
 * published layout; liblzo2 is used only for the LZO1X block codec.
 * See /work/shared/reference/lzop-format.md for the format itself.
 *
 * Decoder: what it accepts
 *   - One or more members, each: the 9-byte magic, a header in either
 *     layout (version >= 0x0940, or the older one without version_needed,
 *     level and mtime_high), an optional extra field, blocks, and the
 *     00 00 00 00 end marker.
 *   - The header checks lzop 1.04 makes, in its order: version >= 0x0900;
 *     0x0900 <= version_needed <= 0x1040 (a higher value is UNSUPPORTED);
 *     the header checksum (Adler-32, or CRC-32 with F_H_CRC32); method 1, 2
 *     or 3; level 0..9; no reserved flag bits; the extra field's checksum.
 *     A filter number must be 0..16 (0: none, as lzop 1.04 reads it; 1..16:
 *     the delta filter with that stride, undone after decompression).  A C
 *     checksum flag without its D flag (lzop 1.04 dies on an assertion) is
 *     refused as FORMAT.  F_MULTIPART is accepted and noted.
 *   - Blocks: d_len 0 ends the member; 0xFFFFFFFF ("split file", never
 *     implemented by lzop) is UNSUPPORTED; above 64 MiB is FORMAT; c_len 0
 *     or above d_len is FORMAT; c_len == d_len is a stored block.  Blocks
 *     of 256 KiB + 1 .. 64 MiB are decoded, but since lzop 1.04 refuses
 *     them the stats say so (note, tool_rejects).  Every checksum present
 *     is verified (D and C, Adler-32 and CRC-32; for stored blocks the C
 *     value is absent and the D value covers the data) and counted in
 *     st.checks; LZO1X data must decode with lzo1x_decompress_safe to
 *     LZO_E_OK and exactly d_len bytes.  With a filter, a stored block and
 *     a C flag, lzop 1.04 checks the D value against the filtered bytes and
 *     fails; we decode the block but flag tool_rejects.
 *
 * Decoder: after a member (what `lzop -dc --ignore-warn` does)
 *   - end of input: done;
 *   - only zero bytes up to the end: done, st.trailing_zero;
 *   - the exact magic: another member, decoded and appended (multipart
 *     warning noted; --ignore-warn makes it harmless);
 *   - 9+ bytes with "LZO\0" at positions 1..4 but not the magic: lzop fails
 *     with "header corrupted" (exit 1).  Everything before was complete, so
 *     we end cleanly (dec_read returns 0) with tool_rejects and a note;
 *   - zero bytes and then a member: lzop treats the whole tail as garbage,
 *     so the member is NOT decoded here either; a note says so;
 *   - anything else: trailing garbage, ignored with a note (exit 0 under
 *     --ignore-warn, so tool_rejects stays false).
 *
 * Errors name the file offset of the offending field: TRUNCATED when the
 * input ends early, FORMAT for a corrupt structure, CHECKSUM for a checksum
 * mismatch, UNSUPPORTED as said above.  Output already produced by a call
 * is returned first and the error reported by the next call.
 *
 * Memory and caps: the 4 MiB input buffer of the instream, a batch of at
 * most LZ_MAX_TASKS blocks decoded straight into the caller's buffer, one
 * block-sized output buffer (only when the caller's room is smaller than a
 * block) and, for a block whose compressed data is larger than the input
 * buffer, one copy of it.  Block sizes are checked (<= 64 MiB) before
 * anything is allocated for them; an extra field is checksummed while it
 * is skipped, never buffered.
 *
 * Threading: the decoder walks block headers on the caller's thread and
 * decompresses and checks the blocks of one batch on d->threads threads
 * (the caller's thread included; the workers are started on first use),
 * each block into its own place in the caller's buffer, so the output order
 * is the stream order.  The encoder cuts the input into jobs of
 * LZ_JOB_BLOCKS 256 KiB blocks and compresses them on e->threads workers
 * through pchunk; block boundaries are fixed multiples of 256 KiB, so the
 * output is byte-identical for every thread count.  With one thread, whole
 * chunks are compressed straight from the caller's buffer (no copy).
 *
 * Encoder: exactly one member as `lzop -c` writes it from a pipe (flags
 * 0x0300000D, mode 0, empty name), except mtime, which is 0 so the output
 * is reproducible: version 0x1040, lib_version lzo_version() & 0xFFFF,
 * version_needed 0x0940, Adler-32 header checksum, 256 KiB blocks with
 * d_adler32, a block stored raw whenever LZO1X output is not strictly
 * smaller, then the end marker.  Levels: 1 is method 2 (LZO1X-1(15)) level
 * 1; 2..6 are method 1 (LZO1X-1) with level byte 5; 7..9 are method 3
 * (LZO1X-999 at that level, then lzo1x_optimize).  Default 3, as lzop. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lzo/lzo1x.h>
#include <zlib.h>

#include "../util/pchunk.h"
#include "../util/vec.h"
#include "codec.h"

/* ---- format constants ----------------------------------------------- */

static const uint8_t lzop_magic[9] = {0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a};

#define F_ADLER32_D 0x00000001u
#define F_ADLER32_C 0x00000002u
#define F_STDIN 0x00000004u
#define F_STDOUT 0x00000008u
#define F_H_EXTRA_FIELD 0x00000040u
#define F_CRC32_D 0x00000100u
#define F_CRC32_C 0x00000200u
#define F_MULTIPART 0x00000400u
#define F_H_FILTER 0x00000800u
#define F_H_CRC32 0x00001000u
#define F_RESERVED 0x000FC000u
#define F_OS_UNIX 0x03000000u

#define LZ_VERSION 0x1040u          /* the lzop version we write and understand */
#define LZ_VERSION_MIN 0x0900u      /* older is "header corrupted" */
#define LZ_VERSION_LAYOUT2 0x0940u  /* from here: version_needed, level, mtime_high */
#define LZ_NEEDED 0x0940u           /* version_needed we write */

#define LZ_BLOCK (256u * 1024u)            /* block size lzop writes and reads */
#define LZ_BLOCK_FORMAT_MAX (64u << 20)    /* largest d_len the format allows */
#define LZ_SPLIT 0xFFFFFFFFu               /* d_len of a "split file" */
#define LZ_BOUND(n) ((n) + (n) / 16u + 64u + 3u) /* LZO1X worst case */

/* magic 9 + version 2 + lib 2 + needed 2 + method 1 + level 1 + flags 4 +
 * filter 4 + mode 4 + mtime 8 + name_len 1 + name 255 + checksum 4 */
#define LZ_HEADER_MAX 297u

#define LZ_MAX_TASKS 512u           /* blocks per decoding batch */
#define LZ_PAR_MIN_BYTES (192u * 1024u) /* smaller batches are decoded inline */
#define LZ_JOB_BLOCKS 4u            /* encoder: blocks per pchunk job */

/* ---- liblzo2 initialisation and checksums ---------------------------- */

static pthread_once_t lz_once = PTHREAD_ONCE_INIT;
static int lz_init_rc;

static void lz_init_once(void) { lz_init_rc = lzo_init(); }

static int lz_ready(mrimg_error *err)
{
    pthread_once(&lz_once, lz_init_once);
    if (lz_init_rc != LZO_E_OK)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                       "liblzo2 failed to initialise (lzo_init returned %d)", lz_init_rc);
    return 0;
}

static uint32_t sum_adler(uint32_t prev, const uint8_t *p, size_t n)
{
    while (n) {
        size_t k = MRIMG_MIN(n, (size_t)1 << 30);
        prev = (uint32_t)adler32(prev, p, (uInt)k);
        p += k;
        n -= k;
    }
    return prev;
}

static uint32_t sum_crc(uint32_t prev, const uint8_t *p, size_t n)
{
    while (n) {
        size_t k = MRIMG_MIN(n, (size_t)1 << 30);
        prev = (uint32_t)crc32(prev, p, (uInt)k);
        p += k;
        n -= k;
    }
    return prev;
}

static const char *lzo_err_name(int rc)
{
    switch (rc) {
    case LZO_E_OK: return "ok";
    case LZO_E_INPUT_OVERRUN: return "input overrun";
    case LZO_E_OUTPUT_OVERRUN: return "output overrun";
    case LZO_E_LOOKBEHIND_OVERRUN: return "look-behind overrun";
    case LZO_E_EOF_NOT_FOUND: return "end of stream not found";
    case LZO_E_INPUT_NOT_CONSUMED: return "bytes after the end of the stream";
    default: return "error";
    }
}

/* ======================================================================
 * Decoder
 * ====================================================================== */

typedef struct lz_member {
    uint64_t off;           /* file offset of the magic */
    uint16_t version, lib_version, version_needed;
    uint8_t method, level;
    uint32_t flags;
    uint32_t filter;        /* 0: none */
    size_t dsum_len;        /* bytes of D checksums in each block header */
    size_t csum_len;        /* bytes of C checksums in a compressed block */
} lz_member;

typedef enum {
    ST_FIRST,     /* expecting the first member's magic */
    ST_HEADER,    /* a member's magic was seen (and is still unread) */
    ST_BLOCKS,
    ST_AFTER,     /* after an end marker */
    ST_DONE,
    ST_FAILED
} lz_state;

enum { RES_OK, RES_C_ADLER, RES_C_CRC, RES_LZO, RES_D_ADLER, RES_D_CRC };

typedef struct lz_block {
    uint32_t d_len, c_len;
    uint32_t d_adler, d_crc, c_adler, c_crc;
    size_t hlen;            /* header bytes: 8 + checksums (4 for the end) */
} lz_block;

typedef struct lz_task {
    lz_block b;
    const uint8_t *src;
    uint8_t *dst;
    uint64_t off;           /* file offset of the block's d_len */
    /* results */
    int res;
    int lzo_rc;
    size_t got;             /* bytes produced by a failed decompression */
    uint32_t computed;      /* checksum value that did not match */
    bool tool_bug;          /* lzop 1.04's filter + C-checksum failure */
} lz_task;

typedef struct lz_pool {
    bool inited;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    pthread_t *tids;
    unsigned started;
    bool stop;
    lz_task *tasks;
    const lz_member *m;
    unsigned n, next, finished;
} lz_pool;

typedef struct lz_dec {
    lz_state state;
    lz_member m;
    uint64_t start;         /* file offset of the payload */
    /* pending copy-out of a block that did not fit the caller's room */
    uint8_t *outbuf;
    size_t outcap;
    size_t cur_len, cur_pos;
    /* a block whose compressed data exceeds the input buffer */
    uint8_t *big;
    size_t bigcap;
    lz_task *tasks;
    lz_pool pool;
    unsigned noted;         /* NOTE_* given */
    bool note_reject;       /* a note that explains tool_rejects is first */
    int prc;                /* error of ST_FAILED */
    mrimg_error perr;
} lz_dec;

enum {
    NOTE_MULTIPART = 1u << 0,
    NOTE_BIGBLOCK = 1u << 1,
    NOTE_FILTER_BUG = 1u << 2,
};

static void note_add(mrimg_decoder *d, bool rejects, const char *fmt, ...) MRIMG_PRINTF(3, 4);

/* Add a sentence to st.note; one that explains tool_rejects goes first. */
static void note_add(mrimg_decoder *d, bool rejects, const char *fmt, ...)
{
    lz_dec *p = d->priv;
    char msg[sizeof(d->st.note)], old[sizeof(d->st.note)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(old, d->st.note, sizeof(old));
    bool first = rejects && !p->note_reject;
    const char *parts[3] = {first ? msg : old, old[0] ? "; " : "", first ? old : msg};
    size_t n = 0, cap = sizeof(d->st.note) - 1;
    for (unsigned i = 0; i < 3; i++) {
        size_t k = MRIMG_MIN(strlen(parts[i]), cap - n);
        memcpy(d->st.note + n, parts[i], k);
        n += k;
    }
    d->st.note[n] = 0;
    if (rejects) {
        d->st.tool_rejects = true;
        p->note_reject = true;
    }
}

static void consume(mrimg_decoder *d, size_t n)
{
    d->in.r += n;
    lz_dec *p = d->priv;
    d->st.in_bytes = in_pos(&d->in) - p->start;
}

/* Make at least n (<= in->cap) bytes available if the input has them;
 * returns the bytes available, or <0. */
static ssize_t fill_upto(mrimg_instream *in, size_t n, mrimg_error *err)
{
    n = MRIMG_MIN(n, in->cap);
    while (in_avail(in) < n) {
        size_t before = in_avail(in);
        ssize_t a = in_fill(in, err);
        if (a < 0)
            return a;
        if ((size_t)a <= before)
            break;
    }
    return (ssize_t)in_avail(in);
}

/* ---- member header --------------------------------------------------- */

static int bad_magic(const uint8_t *b, size_t have, uint64_t off, mrimg_error *err)
{
    char found[3 * 9 + 1];
    if (have == 0)
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off,
                       "expected the lzop magic 89 4c 5a 4f 00 0d 0a 1a 0a, but the payload is "
                       "empty");
    hex_bytes(found, b, MRIMG_MIN(have, 9u), 9);
    if (have < 9 && memcmp(b, lzop_magic, have) == 0)
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off,
                       "expected the 9-byte lzop magic, but the input ends after %zu bytes (%s)",
                       have, found);
    const char *why = "";
    if (have >= 4 && memcmp(b + 1, "LZO", 3) == 0) {
        if ((b[0] & 0x7f) == 0x09 && b[0] != 0x89)
            why = " (high bit cleared: a 7-bit transfer?)";
        else
            why = " (a damaged lzop header: text-mode transfer?)";
    }
    return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off,
                   "expected the lzop magic 89 4c 5a 4f 00 0d 0a 1a 0a, found %s%s", found, why);
}

/* Parse a member header at the current position (the magic included). */
static int parse_header(mrimg_decoder *d, lz_dec *p, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    ssize_t a = fill_upto(in, LZ_HEADER_MAX, err);
    if (a < 0)
        return (int)a;
    size_t have = (size_t)a;
    const uint8_t *b = in->buf + in->r;
    uint64_t base = in_pos(in);
    size_t pos = 0;
    lz_member m;
    memset(&m, 0, sizeof(m));
    m.off = base;

#define LZ_NEED(sz, what)                                                                       \
    do {                                                                                        \
        if (have - pos < (size_t)(sz))                                                          \
            return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, base + pos,                \
                           "expected the lzop header's %s (%u bytes), but the input ends "     \
                           "after %zu of them", what, (unsigned)(sz), have - pos);             \
    } while (0)

    if (have < 9 || memcmp(b, lzop_magic, 9) != 0)
        return bad_magic(b, have, base, err);
    pos = 9;

    LZ_NEED(2, "version");
    m.version = rd_be16(b + pos);
    if (m.version < LZ_VERSION_MIN)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, base + pos,
                       "expected an lzop version >= 0x%04x, found 0x%04x (header corrupted)",
                       LZ_VERSION_MIN, m.version);
    pos += 2;
    LZ_NEED(2, "lib_version");
    m.lib_version = rd_be16(b + pos);
    pos += 2;
    bool layout2 = m.version >= LZ_VERSION_LAYOUT2;
    if (layout2) {
        LZ_NEED(2, "version_needed_to_extract");
        m.version_needed = rd_be16(b + pos);
        if (m.version_needed > LZ_VERSION)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, base + pos,
                           "expected version_needed_to_extract <= 0x%04x (lzop 1.04), found "
                           "0x%04x: a newer lzop wrote this", LZ_VERSION, m.version_needed);
        if (m.version_needed < LZ_VERSION_MIN)
            return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, base + pos,
                           "expected version_needed_to_extract >= 0x%04x, found 0x%04x "
                           "(header corrupted)", LZ_VERSION_MIN, m.version_needed);
        pos += 2;
    }
    LZ_NEED(1, "method");
    size_t method_at = pos;
    m.method = b[pos++];
    size_t level_at = 0;
    if (layout2) {
        LZ_NEED(1, "level");
        level_at = pos;
        m.level = b[pos++];
    }
    LZ_NEED(4, "flags");
    size_t flags_at = pos;
    m.flags = rd_be32(b + pos);
    pos += 4;
    size_t filter_at = 0;
    if (m.flags & F_H_FILTER) {
        LZ_NEED(4, "filter");
        filter_at = pos;
        m.filter = rd_be32(b + pos);
        pos += 4;
    }
    LZ_NEED(4, "mode");
    pos += 4;
    LZ_NEED(4, "mtime_low");
    pos += 4;
    if (layout2) {
        LZ_NEED(4, "mtime_high");
        pos += 4;
    }
    LZ_NEED(1, "name_len");
    size_t name_len = b[pos++];
    LZ_NEED(name_len, "name");
    pos += name_len;
    LZ_NEED(4, "header checksum");
    bool hcrc = (m.flags & F_H_CRC32) != 0;
    uint32_t want = rd_be32(b + pos);
    uint32_t got = hcrc ? sum_crc(0, b + 9, pos - 9) : sum_adler(1, b + 9, pos - 9);
    if (want != got)
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, base + pos,
                       "expected the header %s 0x%08x stored here, computed 0x%08x over bytes "
                       "9..%zu of the member (header corrupted)", hcrc ? "CRC-32" : "Adler-32",
                       want, got, pos - 1);
    d->st.checks++;
    pos += 4;
#undef LZ_NEED

    if (m.method < 1 || m.method > 3)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, base + method_at,
                       "expected lzop method 1, 2 or 3 (LZO1X), found %u (unknown compression "
                       "method)", m.method);
    if (layout2 && m.level > 9)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, base + level_at,
                       "expected lzop level 0..9, found %u (unknown compression level)",
                       m.level);
    if (m.flags & F_RESERVED)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, base + flags_at,
                       "expected no reserved lzop header flags (mask 0x%08x), found flags "
                       "0x%08x (unknown header flags)", F_RESERVED, m.flags);
    if ((m.flags & F_H_FILTER) && m.filter > 16) /* lzop 1.04 takes 0 as "none" */
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, base + filter_at,
                       "expected an lzop filter number 1..16 (or 0), found %u (invalid "
                       "filter)", m.filter);
    consume(d, pos);

    if (m.flags & F_H_EXTRA_FIELD) {
        uint64_t xoff = in_pos(in);
        a = fill_upto(in, 4, err);
        if (a < 0)
            return (int)a;
        if ((size_t)a < 4)
            return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, xoff,
                           "expected the 4-byte length of the lzop extra field, but the input "
                           "ends after %zd bytes", a);
        const uint8_t *x = in->buf + in->r;
        uint32_t xlen = rd_be32(x);
        uint32_t sum = hcrc ? sum_crc(0, x, 4) : sum_adler(1, x, 4);
        consume(d, 4);
        uint64_t left = xlen;
        while (left) {
            if (in_avail(in) == 0) {
                a = in_fill(in, err);
                if (a < 0)
                    return (int)a;
                if (a == 0)
                    return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, in_pos(in),
                                   "expected %llu more bytes of the %u-byte lzop extra field "
                                   "that starts at 0x%llx, but the input ends",
                                   (unsigned long long)left, xlen, (unsigned long long)xoff);
            }
            size_t k = (size_t)MRIMG_MIN((uint64_t)in_avail(in), left);
            const uint8_t *q = in->buf + in->r;
            sum = hcrc ? sum_crc(sum, q, k) : sum_adler(sum, q, k);
            consume(d, k);
            left -= k;
        }
        uint64_t coff = in_pos(in);
        a = fill_upto(in, 4, err);
        if (a < 0)
            return (int)a;
        if ((size_t)a < 4)
            return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, coff,
                           "expected the 4-byte checksum of the lzop extra field, but the input "
                           "ends after %zd bytes", a);
        uint32_t xwant = rd_be32(in->buf + in->r);
        if (xwant != sum)
            return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, coff,
                           "expected the extra field %s 0x%08x stored here, computed 0x%08x "
                           "(header corrupted)", hcrc ? "CRC-32" : "Adler-32", xwant, sum);
        d->st.checks++;
        consume(d, 4);
    }

    if (((m.flags & F_ADLER32_C) && !(m.flags & F_ADLER32_D)) ||
        ((m.flags & F_CRC32_C) && !(m.flags & F_CRC32_D)))
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, base + flags_at,
                       "expected every compressed-data checksum flag (F_ADLER32_C/F_CRC32_C) "
                       "together with its data flag (F_ADLER32_D/F_CRC32_D), found flags "
                       "0x%08x (lzop 1.04 aborts on this)", m.flags);

    m.dsum_len = 4u * (((m.flags & F_ADLER32_D) != 0) + ((m.flags & F_CRC32_D) != 0));
    m.csum_len = 4u * (((m.flags & F_ADLER32_C) != 0) + ((m.flags & F_CRC32_C) != 0));
    p->m = m;
    d->st.members++;
    if ((m.flags & F_MULTIPART) && !(p->noted & NOTE_MULTIPART)) {
        p->noted |= NOTE_MULTIPART;
        note_add(d, false, "multipart lzop archive: lzop -dc warns (exit 2 without --ignore-warn)");
    }
    p->state = ST_BLOCKS;
    return 0;
}

/* ---- blocks ----------------------------------------------------------- */

/* Parse the block header at b (avail bytes, file offset off).  1: parsed;
 * 0: *need bytes are required; <0: error. */
static int parse_block(const lz_member *m, const uint8_t *b, size_t avail, uint64_t off,
                       lz_block *h, size_t *need, mrimg_error *err)
{
    memset(h, 0, sizeof(*h));
    if (avail < 4) {
        *need = 4;
        return 0;
    }
    h->d_len = rd_be32(b);
    if (h->d_len == 0) {
        h->hlen = 4;
        return 1;
    }
    if (h->d_len == LZ_SPLIT)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, off,
                       "expected a block's d_len, found 0xffffffff: this is a split lzop file, "
                       "which lzop never implemented");
    if (h->d_len > LZ_BLOCK_FORMAT_MAX)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off,
                       "expected a block d_len of at most %u bytes (64 MiB), found %u (lzop "
                       "file corrupted)", LZ_BLOCK_FORMAT_MAX, h->d_len);
    if (avail < 8) {
        *need = 8;
        return 0;
    }
    h->c_len = rd_be32(b + 4);
    if (h->c_len == 0 || h->c_len > h->d_len)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off + 4,
                       "expected a block c_len of 1..%u (its d_len), found %u (lzop file "
                       "corrupted)", h->d_len, h->c_len);
    bool comp = h->c_len < h->d_len;
    h->hlen = 8 + m->dsum_len + (comp ? m->csum_len : 0);
    if (avail < h->hlen) {
        *need = h->hlen;
        return 0;
    }
    const uint8_t *q = b + 8;
    if (m->flags & F_ADLER32_D) {
        h->d_adler = rd_be32(q);
        q += 4;
    }
    if (m->flags & F_CRC32_D) {
        h->d_crc = rd_be32(q);
        q += 4;
    }
    if (comp && (m->flags & F_ADLER32_C)) {
        h->c_adler = rd_be32(q);
        q += 4;
    }
    if (comp && (m->flags & F_CRC32_C))
        h->c_crc = rd_be32(q);
    return 1;
}

static int trunc_block(const lz_dec *p, size_t avail, uint64_t off, mrimg_error *err)
{
    if (avail == 0)
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off,
                       "expected a block or the 00 00 00 00 end marker of the lzop member "
                       "that starts at 0x%llx, but the input ends",
                       (unsigned long long)p->m.off);
    if (avail < 4)
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off,
                       "expected a 4-byte block d_len or end marker, but the input ends after "
                       "%zu bytes", avail);
    if (avail < 8)
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off + 4,
                       "expected the block's 4-byte c_len, but the input ends after %zu bytes",
                       avail - 4);
    uint64_t at = off + avail / 4 * 4;
    return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, at,
                   "expected the block's checksum fields (block at 0x%llx), but the input ends",
                   (unsigned long long)off);
}

static void unfilter(uint8_t *p, size_t n, uint32_t stride)
{
    for (size_t j = stride; j < n; j++)
        p[j] = (uint8_t)(p[j] + p[j - stride]);
}

/* Decompress and check one block; runs on any thread. */
static void run_task(const lz_member *m, lz_task *t)
{
    const lz_block *b = &t->b;
    bool comp = b->c_len < b->d_len;
    t->res = RES_OK;
    t->tool_bug = false;
    if (comp && (m->flags & F_ADLER32_C)) {
        uint32_t v = sum_adler(1, t->src, b->c_len);
        if (v != b->c_adler) {
            t->res = RES_C_ADLER;
            t->computed = v;
            return;
        }
    }
    if (comp && (m->flags & F_CRC32_C)) {
        uint32_t v = sum_crc(0, t->src, b->c_len);
        if (v != b->c_crc) {
            t->res = RES_C_CRC;
            t->computed = v;
            return;
        }
    }
    if (comp) {
        lzo_uint n = b->d_len;
        int r = lzo1x_decompress_safe(t->src, b->c_len, t->dst, &n, NULL);
        if (r != LZO_E_OK || n != b->d_len) {
            t->res = RES_LZO;
            t->lzo_rc = r;
            t->got = n;
            return;
        }
    } else {
        memcpy(t->dst, t->src, b->d_len);
    }
    if (m->filter) {
        /* lzop 1.04 checks a stored block's bytes (still filtered) against
         * the D value when a C flag is set, and so fails on its own files */
        if (!comp && (m->flags & F_ADLER32_C) && sum_adler(1, t->src, b->d_len) != b->d_adler)
            t->tool_bug = true;
        if (!comp && (m->flags & F_CRC32_C) && sum_crc(0, t->src, b->d_len) != b->d_crc)
            t->tool_bug = true;
        unfilter(t->dst, b->d_len, m->filter);
    }
    if (m->flags & F_ADLER32_D) {
        uint32_t v = sum_adler(1, t->dst, b->d_len);
        if (v != b->d_adler) {
            t->res = RES_D_ADLER;
            t->computed = v;
            return;
        }
    }
    if (m->flags & F_CRC32_D) {
        uint32_t v = sum_crc(0, t->dst, b->d_len);
        if (v != b->d_crc) {
            t->res = RES_D_CRC;
            t->computed = v;
            return;
        }
    }
}

/* The error for a failed task, naming the field concerned. */
static int task_error(const lz_member *m, const lz_task *t, mrimg_error *err)
{
    const lz_block *b = &t->b;
    bool comp = b->c_len < b->d_len;
    uint64_t f = t->off + 8, at_dadler = 0, at_dcrc = 0, at_cadler = 0, at_ccrc = 0;
    if (m->flags & F_ADLER32_D) {
        at_dadler = f;
        f += 4;
    }
    if (m->flags & F_CRC32_D) {
        at_dcrc = f;
        f += 4;
    }
    if (comp && (m->flags & F_ADLER32_C)) {
        at_cadler = f;
        f += 4;
    }
    if (comp && (m->flags & F_CRC32_C)) {
        at_ccrc = f;
        f += 4;
    }
    uint64_t data = t->off + b->hlen;
    unsigned long long boff = (unsigned long long)t->off;
    switch (t->res) {
    case RES_C_ADLER:
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at_cadler,
                       "expected Adler-32 0x%08x (stored here) of the %u compressed bytes of "
                       "the block at 0x%llx, computed 0x%08x",
                       b->c_adler, b->c_len, boff, t->computed);
    case RES_C_CRC:
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at_ccrc,
                       "expected CRC-32 0x%08x (stored here) of the %u compressed bytes of the "
                       "block at 0x%llx, computed 0x%08x", b->c_crc, b->c_len, boff, t->computed);
    case RES_LZO:
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, data,
                       "expected %u bytes of LZO1X data decoding to exactly %u bytes (block at "
                       "0x%llx), but liblzo2 reports %s (%d) after %zu bytes (compressed data "
                       "violation)", b->c_len, b->d_len, boff, lzo_err_name(t->lzo_rc),
                       t->lzo_rc, t->got);
    case RES_D_ADLER:
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at_dadler,
                       "expected Adler-32 0x%08x (stored here) of the %u decoded bytes of the "
                       "block at 0x%llx, computed 0x%08x", b->d_adler, b->d_len, boff,
                       t->computed);
    case RES_D_CRC:
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at_dcrc,
                       "expected CRC-32 0x%08x (stored here) of the %u decoded bytes of the "
                       "block at 0x%llx, computed 0x%08x", b->d_crc, b->d_len, boff, t->computed);
    }
    return 0;
}

/* ---- worker pool for batches ------------------------------------------ */

static void *pool_main(void *arg)
{
    lz_pool *pl = arg;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (!pl->stop && pl->next >= pl->n)
            pthread_cond_wait(&pl->cv_work, &pl->mu);
        if (pl->stop)
            break;
        unsigned i = pl->next++;
        const lz_member *m = pl->m;
        lz_task *t = &pl->tasks[i];
        pthread_mutex_unlock(&pl->mu);
        run_task(m, t);
        pthread_mutex_lock(&pl->mu);
        if (++pl->finished == pl->n)
            pthread_cond_signal(&pl->cv_done);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* Start up to want workers; false if none could be started. */
static bool pool_start(lz_pool *pl, unsigned want)
{
    if (pl->inited)
        return pl->started > 0;
    pl->inited = true;
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->cv_work, NULL);
    pthread_cond_init(&pl->cv_done, NULL);
    pl->tids = calloc(want, sizeof(*pl->tids));
    if (!pl->tids)
        return false;
    for (unsigned i = 0; i < want; i++) {
        if (pthread_create(&pl->tids[i], NULL, pool_main, pl) != 0)
            break; /* run with the threads we have */
        pl->started++;
    }
    return pl->started > 0;
}

static void pool_stop(lz_pool *pl)
{
    if (!pl->inited)
        return;
    pthread_mutex_lock(&pl->mu);
    pl->stop = true;
    pthread_cond_broadcast(&pl->cv_work);
    pthread_mutex_unlock(&pl->mu);
    for (unsigned i = 0; i < pl->started; i++)
        pthread_join(pl->tids[i], NULL);
    free(pl->tids);
    pthread_mutex_destroy(&pl->mu);
    pthread_cond_destroy(&pl->cv_work);
    pthread_cond_destroy(&pl->cv_done);
    memset(pl, 0, sizeof(*pl));
}

/* Run n tasks: on the workers and this thread when worthwhile. */
static void run_batch(mrimg_decoder *d, lz_dec *p, unsigned n, size_t bytes)
{
    lz_pool *pl = &p->pool;
    if (n < 2 || d->threads < 2 || bytes < LZ_PAR_MIN_BYTES ||
        !pool_start(pl, MRIMG_MIN(d->threads, 256u) - 1)) {
        for (unsigned i = 0; i < n; i++)
            run_task(&p->m, &p->tasks[i]);
        return;
    }
    pthread_mutex_lock(&pl->mu);
    pl->tasks = p->tasks;
    pl->m = &p->m;
    pl->n = n;
    pl->next = 0;
    pl->finished = 0;
    pthread_cond_broadcast(&pl->cv_work);
    while (pl->next < pl->n) {
        unsigned i = pl->next++;
        pthread_mutex_unlock(&pl->mu);
        run_task(&p->m, &p->tasks[i]);
        pthread_mutex_lock(&pl->mu);
        pl->finished++;
    }
    while (pl->finished < pl->n)
        pthread_cond_wait(&pl->cv_done, &pl->mu);
    pl->n = pl->next = pl->finished = 0;
    pthread_mutex_unlock(&pl->mu);
}

/* Exactly need bytes when it grows: the sizes come from block headers. */
static int grow(uint8_t **buf, size_t *cap, size_t need, mrimg_error *err)
{
    return vec_reserve(*buf, *cap, need, 0, need) ? 0 : err_nomem(err);
}

/* Book-keeping for a block that decoded correctly. */
static void block_done(mrimg_decoder *d, lz_dec *p, const lz_task *t)
{
    const lz_member *m = &p->m;
    d->st.checks += (m->dsum_len + (t->b.c_len < t->b.d_len ? m->csum_len : 0)) / 4;
    if (t->b.d_len > LZ_BLOCK && !(p->noted & NOTE_BIGBLOCK)) {
        p->noted |= NOTE_BIGBLOCK;
        note_add(d, true, "block of %u bytes at 0x%llx: lzop 1.04 refuses blocks over 256 KiB "
                 "(block size too small)", t->b.d_len, (unsigned long long)t->off);
    }
    if (t->tool_bug && !(p->noted & NOTE_FILTER_BUG)) {
        p->noted |= NOTE_FILTER_BUG;
        note_add(d, true, "stored block at 0x%llx with a filter and a C checksum: lzop 1.04 "
                 "fails its own check there", (unsigned long long)t->off);
    }
}

/* A block too large for the input buffer: copy its data aside first. */
static int big_block(mrimg_decoder *d, lz_dec *p, const lz_block *h, uint8_t *out, size_t room,
                     size_t *produced, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    uint64_t off = in_pos(in);
    uint64_t left = in->end > off ? in->end - off : 0;
    if (left < h->hlen + (uint64_t)h->c_len) /* don't allocate for data that is not there */
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off + h->hlen,
                       "expected %u bytes of block data (block at 0x%llx), but the input ends "
                       "after %llu", h->c_len, (unsigned long long)off,
                       (unsigned long long)(left - h->hlen));
    int rc = grow(&p->big, &p->bigcap, h->c_len, err);
    if (rc < 0)
        return rc;
    consume(d, h->hlen);
    size_t have = 0;
    while (have < h->c_len) {
        if (in_avail(in) == 0) {
            ssize_t a = in_fill(in, err);
            if (a < 0)
                return (int)a;
            if (a == 0)
                return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off + h->hlen + have,
                               "expected %u bytes of block data (block at 0x%llx), but the "
                               "input ends after %zu", h->c_len, (unsigned long long)off, have);
        }
        size_t k = MRIMG_MIN(in_avail(in), (size_t)h->c_len - have);
        memcpy(p->big + have, in->buf + in->r, k);
        consume(d, k);
        have += k;
    }
    lz_task *t = &p->tasks[0];
    memset(t, 0, sizeof(*t));
    t->b = *h;
    t->src = p->big;
    t->off = off;
    bool direct = h->d_len <= room;
    if (!direct) {
        rc = grow(&p->outbuf, &p->outcap, h->d_len, err);
        if (rc < 0)
            return rc;
    }
    t->dst = direct ? out : p->outbuf;
    run_task(&p->m, t);
    if (t->res != RES_OK)
        return task_error(&p->m, t, err);
    block_done(d, p, t);
    if (direct) {
        *produced = h->d_len;
    } else {
        p->cur_len = h->d_len;
        p->cur_pos = 0;
    }
    return 0;
}

/* Decode a batch of blocks into out (room bytes).  *produced is set even
 * when an error is returned (the blocks before the bad one are good). */
static int do_blocks(mrimg_decoder *d, lz_dec *p, uint8_t *out, size_t room, size_t *produced,
                     mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    unsigned n = 0;
    size_t q = 0, outpos = 0, bytes = 0;
    bool to_outbuf = false;
    *produced = 0;
    while (n < LZ_MAX_TASKS) {
        size_t avail = in_avail(in) - q;
        const uint8_t *b = in->buf + in->r + q;
        uint64_t off = in_pos(in) + q;
        lz_block h;
        size_t need = 0;
        int r = parse_block(&p->m, b, avail, off, &h, &need, err);
        if (r < 0) {
            if (n)
                break; /* decode the good blocks first; this recurs next time */
            return r;
        }
        if (r == 0 || (h.d_len && h.hlen + (size_t)h.c_len > avail)) {
            if (n)
                break;
            if (r == 1 && h.hlen + (size_t)h.c_len > in->cap)
                return big_block(d, p, &h, out, room, produced, err);
            size_t want = r == 0 ? need : h.hlen + h.c_len;
            ssize_t a = fill_upto(in, want, err);
            if (a < 0)
                return (int)a;
            if ((size_t)a < want) {
                if (r == 0)
                    return trunc_block(p, (size_t)a, off, err);
                return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off + h.hlen,
                               "expected %u bytes of block data (block at 0x%llx), but the "
                               "input ends after %zu", h.c_len, (unsigned long long)off,
                               (size_t)a - h.hlen);
            }
            continue;
        }
        if (h.d_len == 0) {
            if (n)
                break;
            consume(d, 4);
            p->state = ST_AFTER;
            return 0;
        }
        uint8_t *dst;
        if (h.d_len <= room - outpos) {
            dst = out + outpos;
        } else if (n == 0) {
            int rc = grow(&p->outbuf, &p->outcap, h.d_len, err);
            if (rc < 0)
                return rc;
            dst = p->outbuf;
            to_outbuf = true;
        } else {
            break;
        }
        lz_task *t = &p->tasks[n++];
        memset(t, 0, sizeof(*t));
        t->b = h;
        t->src = b + h.hlen;
        t->dst = dst;
        t->off = off;
        q += h.hlen + h.c_len;
        bytes += h.d_len;
        if (to_outbuf)
            break;
        outpos += h.d_len;
    }
    if (n == 0)
        return 0;

    run_batch(d, p, n, bytes);

    size_t used = 0;
    for (unsigned i = 0; i < n; i++) {
        lz_task *t = &p->tasks[i];
        if (t->res != RES_OK) {
            consume(d, used);
            return task_error(&p->m, t, err);
        }
        block_done(d, p, t);
        used += t->b.hlen + t->b.c_len;
        if (to_outbuf && i == n - 1) { /* only the last task may go there */
            p->cur_len = t->b.d_len;
            p->cur_pos = 0;
        } else {
            *produced += t->b.d_len;
        }
    }
    consume(d, used);
    return 0;
}

/* ---- after a member --------------------------------------------------- */

static void tail_rest(mrimg_decoder *d, uint64_t from)
{
    /* the rest is not decoded: count it up to the declared payload end */
    uint64_t end = MRIMG_MAX(d->in.end, from);
    d->st.trailing += end - from;
    lz_dec *p = d->priv;
    d->st.in_bytes = end - p->start;
}

static int after_member(mrimg_decoder *d, lz_dec *p, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    ssize_t a = fill_upto(in, 9, err);
    if (a < 0)
        return (int)a;
    if (a == 0) {
        p->state = ST_DONE;
        return 0;
    }
    const uint8_t *b = in->buf + in->r;
    uint64_t at = in_pos(in);
    if (a >= 9 && memcmp(b, lzop_magic, 9) == 0) {
        if (!(p->noted & NOTE_MULTIPART)) {
            p->noted |= NOTE_MULTIPART;
            note_add(d, false, "several lzop members (multipart): lzop -dc warns, exit 0 only "
                     "with --ignore-warn");
        }
        p->state = ST_HEADER;
        return 0;
    }
    p->state = ST_DONE;
    if (a >= 9 && memcmp(b + 1, "LZO", 3) == 0 && b[4] == 0) {
        char found[3 * 9 + 1];
        hex_bytes(found, b, 9, 9);
        note_add(d, true, "damaged lzop header at 0x%llx after the last member (%s): lzop fails "
                 "there (header corrupted, exit 1)", (unsigned long long)at, found);
        tail_rest(d, at);
        return 0;
    }
    /* skip a run of zero bytes */
    uint64_t zstart = in_pos(in);
    int zr = in_skip_zeros(in, err);
    if (zr < 0)
        return zr;
    consume(d, 0); /* account for the skipped bytes */
    uint64_t zeros = in_pos(in) - zstart;
    if (zr == 1) {
        d->st.trailing += zeros;
        d->st.trailing_zero = true;
        return 0; /* only zeros: lzop is silent */
    }
    uint64_t nz = in_pos(in);
    a = fill_upto(in, 9, err);
    if (a < 0)
        return (int)a;
    d->st.trailing += zeros;
    if (zeros && a >= 9 && memcmp(in->buf + in->r, lzop_magic, 9) == 0)
        note_add(d, false, "lzop member at 0x%llx after %llu zero bytes: lzop drops it as "
                 "trailing garbage, so it is not decoded", (unsigned long long)nz,
                 (unsigned long long)zeros);
    else
        note_add(d, false, "ignoring trailing garbage at 0x%llx after the lzop data (lzop -dc "
                 "warns, exit 0 with --ignore-warn)", (unsigned long long)at);
    tail_rest(d, nz);
    return 0;
}

/* ---- decoder entry points --------------------------------------------- */

static int lzop_dec_init(mrimg_decoder *d, mrimg_error *err)
{
    int rc = lz_ready(err);
    if (rc < 0)
        return rc;
    lz_dec *p = xcalloc(1, sizeof(*p), err);
    if (!p)
        return MRIMG_ERR_NOMEM;
    p->tasks = xcalloc(LZ_MAX_TASKS, sizeof(*p->tasks), err);
    if (!p->tasks) {
        free(p);
        return MRIMG_ERR_NOMEM;
    }
    p->state = ST_FIRST;
    p->start = in_pos(&d->in);
    d->priv = p;
    return 0;
}

static ssize_t lzop_dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err)
{
    lz_dec *p = d->priv;
    uint8_t *out = buf;
    size_t got = 0;
    int rc = 0;
    if (p->state == ST_FAILED) {
        if (err)
            *err = p->perr;
        return p->prc;
    }
    while (got < cap) {
        if (p->cur_pos < p->cur_len) {
            size_t k = MRIMG_MIN(cap - got, p->cur_len - p->cur_pos);
            memcpy(out + got, p->outbuf + p->cur_pos, k);
            p->cur_pos += k;
            got += k;
            continue;
        }
        if (p->state == ST_DONE)
            break;
        size_t produced = 0;
        switch (p->state) {
        case ST_FIRST:
        case ST_HEADER:
            rc = parse_header(d, p, &p->perr);
            break;
        case ST_BLOCKS:
            rc = do_blocks(d, p, out + got, cap - got, &produced, &p->perr);
            break;
        case ST_AFTER:
            rc = after_member(d, p, &p->perr);
            break;
        default:
            break;
        }
        got += produced;
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        p->state = ST_FAILED;
        p->prc = rc;
        if (got > 0)
            return (ssize_t)got; /* the error comes with the next call */
        if (err)
            *err = p->perr;
        return rc;
    }
    return (ssize_t)got;
}

static void lzop_dec_free(mrimg_decoder *d)
{
    lz_dec *p = d->priv;
    if (!p)
        return;
    pool_stop(&p->pool);
    free(p->tasks);
    free(p->outbuf);
    free(p->big);
    free(p);
    d->priv = NULL;
}

/* ======================================================================
 * Encoder
 * ====================================================================== */

typedef struct lz_enc {
    mrimg_encoder *e;
    pchunk pc;
    bool pc_ready;
    unsigned nworkers;
    void **wrk;             /* per-worker compressor work memory */
    uint8_t **scratch;      /* per-worker lzo1x_optimize output (levels 7..9) */
    uint8_t method, level_byte;
    uint64_t queued;        /* bytes handed to pchunk */
    pchunk_job direct;      /* 1 thread: whole chunks straight from the caller */
} lz_enc;

static int lz_compress(const lz_enc *q, unsigned w, const uint8_t *in, size_t len, uint8_t *out,
                       lzo_uint *olen)
{
    int r;
    switch (q->method) {
    case 2:
        return lzo1x_1_15_compress(in, len, out, olen, q->wrk[w]);
    case 3:
        r = lzo1x_999_compress_level(in, len, out, olen, q->wrk[w], NULL, 0, NULL,
                                     q->level_byte);
        if (r == LZO_E_OK && *olen < len) {
            lzo_uint n = len;
            r = lzo1x_optimize(out, *olen, q->scratch[w], &n, NULL);
            if (r == LZO_E_OK && n != len)
                r = LZO_E_ERROR;
        }
        return r;
    default:
        return lzo1x_1_compress(in, len, out, olen, q->wrk[w]);
    }
}

static int enc_work(void *ctx, unsigned worker, pchunk_job *job, mrimg_error *err)
{
    lz_enc *q = ctx;
    size_t nblk = (job->in_len + LZ_BLOCK - 1) / LZ_BLOCK;
    size_t need = nblk * (12u + LZ_BOUND(LZ_BLOCK));
    int rc = pchunk_out_reserve(job, need, err);
    if (rc < 0)
        return rc;
    size_t o = 0;
    for (size_t i = 0; i < job->in_len; i += LZ_BLOCK) {
        const uint8_t *src = job->in + i;
        size_t len = MRIMG_MIN((size_t)LZ_BLOCK, job->in_len - i);
        uint8_t *hdr = job->out + o, *data = hdr + 12;
        lzo_uint clen = LZ_BOUND(len);
        int r = lz_compress(q, worker, src, len, data, &clen);
        if (r != LZO_E_OK)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                           "liblzo2 failed to compress a block (method %u, error %d)",
                           q->method, r);
        if (clen >= len) {
            memcpy(data, src, len); /* not smaller: store it */
            clen = len;
        }
        wr_be32(hdr, (uint32_t)len);
        wr_be32(hdr + 4, (uint32_t)clen);
        wr_be32(hdr + 8, sum_adler(1, src, len));
        o += 12 + clen;
    }
    job->out_len = o;
    return 0;
}

static int enc_emit(void *ctx, pchunk_job *job, mrimg_error *err)
{
    lz_enc *q = ctx;
    if (job->out_len == 0)
        return 0;
    q->e->out_bytes += job->out_len;
    return sink_write(q->e->out, job->out, job->out_len, err);
}

static void lzop_enc_free(mrimg_encoder *e)
{
    lz_enc *q = e->priv;
    if (!q)
        return;
    if (q->pc_ready)
        pchunk_free(&q->pc);
    for (unsigned i = 0; i < q->nworkers; i++) {
        if (q->wrk)
            free(q->wrk[i]);
        if (q->scratch)
            free(q->scratch[i]);
    }
    free(q->wrk);
    free(q->scratch);
    free(q->direct.out);
    free(q);
    e->priv = NULL;
}

static int lzop_enc_init(mrimg_encoder *e, mrimg_error *err)
{
    int rc = lz_ready(err);
    if (rc < 0)
        return rc;
    if (e->level < 1 || e->level > 9)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "lzop compression level %d is out of range 1..9", e->level);
    lz_enc *q = xcalloc(1, sizeof(*q), err);
    if (!q)
        return MRIMG_ERR_NOMEM;
    e->priv = q;
    q->e = e;
    size_t wsize;
    if (e->level == 1) {
        q->method = 2;
        q->level_byte = 1;
        wsize = LZO1X_1_15_MEM_COMPRESS;
    } else if (e->level <= 6) {
        q->method = 1;
        q->level_byte = 5;
        wsize = LZO1X_1_MEM_COMPRESS;
    } else {
        q->method = 3;
        q->level_byte = (uint8_t)e->level;
        wsize = LZO1X_999_MEM_COMPRESS;
    }
    q->nworkers = e->threads ? e->threads : 1;
    q->wrk = xcalloc(q->nworkers, sizeof(*q->wrk), err);
    q->scratch = xcalloc(q->nworkers, sizeof(*q->scratch), err);
    if (!q->wrk || !q->scratch) {
        lzop_enc_free(e);
        return MRIMG_ERR_NOMEM;
    }
    for (unsigned i = 0; i < q->nworkers; i++) {
        q->wrk[i] = xmalloc(wsize, err);
        if (!q->wrk[i]) {
            lzop_enc_free(e);
            return MRIMG_ERR_NOMEM;
        }
        if (q->method == 3) {
            q->scratch[i] = xmalloc(LZ_BLOCK, err);
            if (!q->scratch[i]) {
                lzop_enc_free(e);
                return MRIMG_ERR_NOMEM;
            }
        }
    }
    rc = pchunk_init(&q->pc, q->nworkers, (size_t)LZ_JOB_BLOCKS * LZ_BLOCK, 0, enc_work, enc_emit,
                     q, err);
    if (rc < 0) {
        lzop_enc_free(e);
        return rc;
    }
    q->pc_ready = true;

    /* the header `lzop -c` writes from a pipe, with mtime 0 */
    uint8_t h[38];
    memcpy(h, lzop_magic, 9);
    wr_be16(h + 9, LZ_VERSION);
    wr_be16(h + 11, (uint16_t)(lzo_version() & 0xFFFFu));
    wr_be16(h + 13, LZ_NEEDED);
    h[15] = q->method;
    h[16] = q->level_byte;
    wr_be32(h + 17, F_OS_UNIX | F_STDOUT | F_STDIN | F_ADLER32_D);
    wr_be32(h + 21, 0); /* mode */
    wr_be32(h + 25, 0); /* mtime_low */
    wr_be32(h + 29, 0); /* mtime_high */
    h[33] = 0;          /* name_len */
    wr_be32(h + 34, sum_adler(1, h + 9, 25));
    rc = sink_write(e->out, h, sizeof(h), err);
    if (rc < 0) {
        lzop_enc_free(e);
        return rc;
    }
    e->out_bytes += sizeof(h);
    return 0;
}

static int lzop_enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err)
{
    lz_enc *q = e->priv;
    const uint8_t *p = buf;
    const size_t chunk = (size_t)LZ_JOB_BLOCKS * LZ_BLOCK;
    if (q->nworkers == 1) {
        /* Without workers pchunk would only copy: when no partial chunk is
         * pending, compress whole chunks where they are.  Block boundaries
         * stay at the same stream offsets, so the bytes are the same. */
        while (len >= chunk && q->queued % chunk == 0) {
            q->direct.in = p;
            q->direct.in_len = chunk;
            int rc = enc_work(q, 0, &q->direct, err);
            if (rc == 0)
                rc = enc_emit(q, &q->direct, err);
            if (rc < 0)
                return rc;
            p += chunk;
            len -= chunk;
        }
    }
    q->queued += len;
    return len ? pchunk_write(&q->pc, p, len, err) : 0;
}

static int lzop_enc_finish(mrimg_encoder *e, mrimg_error *err)
{
    lz_enc *q = e->priv;
    int rc = pchunk_finish(&q->pc, err);
    if (rc < 0)
        return rc;
    static const uint8_t end[4] = {0, 0, 0, 0};
    rc = sink_write(e->out, end, sizeof(end), err);
    if (rc < 0)
        return rc;
    e->out_bytes += sizeof(end);
    return 0;
}

const mrimg_codec codec_lzop = {
    .name = "lzop",
    .magic = lzop_magic,
    .magic_len = sizeof(lzop_magic),
    .level_min = 1,
    .level_max = 9,
    .level_default = 3,
    .parallel_encode = true,
    .dec_init = lzop_dec_init,
    .dec_read = lzop_dec_read,
    .dec_free = lzop_dec_free,
    .enc_init = lzop_enc_init,
    .enc_write = lzop_enc_write,
    .enc_finish = lzop_enc_finish,
    .enc_free = lzop_enc_free,
};
