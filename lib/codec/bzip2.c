/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bzip2 through libbz2.
 *
 * Decoder
 *   Accepts what `bzip2 -dc` (bzip2 1.0.8) accepts: one or more concatenated
 *   streams "BZh1".."BZh9".  libbz2 verifies every block CRC and the
 *   combined stream CRC; it reports a mismatch and corrupt data alike as
 *   BZ_DATA_ERROR, so both are MRIMG_ERR_FORMAT here (the message says so).
 *   st.checks counts one per stream (its combined CRC, which covers the
 *   block CRCs that libbz2 also checks).  Decoder memory is fixed by the
 *   block size digit (at most ~3.7 MiB for BZh9), never by a length field.
 *
 * Trailing data (measured with bzip2 1.0.8 `bzip2 -dc`, exit status in ()):
 *   - "BZh" + '1'..'9'           another stream (decoded; errors are errors)
 *   - anything else, zeros too   "trailing garbage after EOF ignored" (0):
 *     tool_rejects = false, a note is set.  A stream after garbage or zeros
 *     is not decoded by bzip2 either.
 *   - "B", "BZ" or "BZh" right before EOF: "Compressed file ends
 *     unexpectedly" (2) -> tool_rejects = true.
 *   An empty payload is MRIMG_ERR_TRUNCATED (bzip2 -dc exits 2).
 *
 * Encoder (pbzip2/lbzip2 style)
 *   The input is cut into chunks of level x 100000 - 19 bytes, which is
 *   exactly what libbz2 puts in one block (nblockMAX) when the initial RLE
 *   does not expand the data: each chunk becomes an independent one-block
 *   bzip2 stream on a worker, and the streams are concatenated in order.
 *   Only input made of runs of exactly 4 equal bytes (which RLE1 grows by
 *   up to 5/4) can spill into a second block of the same stream; the output
 *   is still one valid stream per chunk.  A chunk size that guarantees one
 *   block for every input ((level x 100000 - 19) x 4/5) cost 1.9% in size
 *   on mixed data, so it was not used.  Output depends only on the input
 *   and the level: identical for every thread count.  Memory: per worker
 *   one libbz2 compressor (~7.6 MiB at level 9, created per chunk since
 *   libbz2 has no reset) plus 2 x threads chunk buffers.
 *   Levels 1..9, default 9 (bzip2's default).
 */
#include <bzlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "../util/pchunk.h"
#include "codec.h"

#define BZ_MAX_IO (1u << 30)

static const uint8_t bzip2_magic[3] = {'B', 'Z', 'h'};

/* ---- decoder ----------------------------------------------------------- */

enum { BD_START, BD_BODY, BD_NEXT, BD_END };

typedef struct {
    bz_stream bz;
    bool bz_live;
    int state;
    uint64_t start;      /* file offset of the payload */
    uint64_t stream_off; /* file offset of the current stream */
} bz_dec;

static bool bz_is_magic(const uint8_t *p) { return p[0] == 'B' && p[1] == 'Z' && p[2] == 'h' && p[3] >= '1' && p[3] <= '9'; }

static void bz_end(bz_dec *b)
{
    if (b->bz_live)
        BZ2_bzDecompressEnd(&b->bz);
    b->bz_live = false;
}

static int bz_start(mrimg_decoder *d, bz_dec *b, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    b->stream_off = in_pos(in);
    int rc = in_need(in, 4, "a bzip2 stream header", err);
    if (rc < 0)
        return rc;
    const uint8_t *p = in->buf + in->r;
    if (!bz_is_magic(p)) {
        char hex[16];
        hex_bytes(hex, p, 4, 4);
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, b->stream_off,
                       "expected a bzip2 stream header \"BZh1\"..\"BZh9\", found %s", hex);
    }
    memset(&b->bz, 0, sizeof(b->bz));
    int r = BZ2_bzDecompressInit(&b->bz, 0, 0);
    if (r != BZ_OK)
        return r == BZ_MEM_ERROR ? err_nomem(err)
                                 : err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                                           "BZ2_bzDecompressInit failed (%d)", r);
    b->bz_live = true;
    return 0;
}

static int bz_next(mrimg_decoder *d, bz_dec *b, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    uint64_t tstart = in_pos(in);
    if (in_avail(in) < 4) {
        ssize_t a = in_fill(in, err);
        if (a < 0)
            return (int)a;
    }
    size_t n = in_avail(in); /* < 4 only at the end of the input */
    const uint8_t *p = in->buf + in->r;
    if (n == 0) {
        b->state = BD_END;
        return 0;
    }
    if (n >= 4 && bz_is_magic(p)) {
        b->state = BD_START;
        return 0;
    }
    b->state = BD_END;
    d->st.trailing = in->end - tstart;
    if (n < 4 && memcmp(p, "BZh", n) == 0) {
        in->r += n;
        d->st.tool_rejects = true;
        snprintf(d->st.note, sizeof(d->st.note),
                 "%zu trailing bytes at file offset %llu start a bzip2 header and the input "
                 "ends: bzip2 -dc says \"Compressed file ends unexpectedly\" (exit 2)",
                 n, (unsigned long long)tstart);
        return 0;
    }
    int z = in_skip_zeros(in, err);
    if (z < 0)
        return z;
    d->st.trailing = in->end - tstart;
    d->st.trailing_zero = z == 1;
    snprintf(d->st.note, sizeof(d->st.note),
             "%llu trailing %sbytes at file offset %llu: bzip2 -dc warns \"trailing garbage "
             "after EOF ignored\" (exit 0)",
             (unsigned long long)d->st.trailing, z == 1 ? "zero " : "",
             (unsigned long long)tstart);
    return 0;
}

static int bz_dec_init(mrimg_decoder *d, mrimg_error *err)
{
    bz_dec *b = xcalloc(1, sizeof(*b), err);
    if (!b)
        return MRIMG_ERR_NOMEM;
    b->start = in_pos(&d->in);
    b->state = BD_START;
    d->priv = b;
    return 0;
}

static ssize_t bz_dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err)
{
    bz_dec *b = d->priv;
    mrimg_instream *in = &d->in;
    if (cap == 0)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "empty output buffer");
    if (cap > BZ_MAX_IO)
        cap = BZ_MAX_IO;
    for (;;) {
        int rc;
        switch (b->state) {
        case BD_START:
            rc = bz_start(d, b, err);
            if (rc < 0)
                return rc;
            b->state = BD_BODY;
            break;
        case BD_BODY: {
            if (in_avail(in) == 0) {
                ssize_t a = in_fill(in, err);
                if (a < 0)
                    return a;
                if (a == 0)
                    return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, in_pos(in),
                                   "input ends inside the bzip2 stream at file offset %llu",
                                   (unsigned long long)b->stream_off);
            }
            char *ip = (char *)in->buf + in->r;
            b->bz.next_in = ip;
            b->bz.avail_in = (unsigned)MRIMG_MIN(in_avail(in), (size_t)BZ_MAX_IO);
            b->bz.next_out = buf;
            b->bz.avail_out = (unsigned)cap;
            int r = BZ2_bzDecompress(&b->bz);
            size_t used = (size_t)(b->bz.next_in - ip);
            size_t made = (size_t)(b->bz.next_out - (char *)buf);
            in->r += used;
            d->st.in_bytes = in_pos(in) - b->start;
            if (r == BZ_STREAM_END) {
                bz_end(b);
                d->st.members++;
                d->st.checks++;
                b->state = BD_NEXT;
            } else if (r == BZ_MEM_ERROR) {
                return err_nomem(err);
            } else if (r == BZ_DATA_ERROR) {
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                               "bzip2 data integrity error in the stream at file offset %llu "
                               "(a block or stream CRC does not match, or the data is corrupt)",
                               (unsigned long long)b->stream_off);
            } else if (r == BZ_DATA_ERROR_MAGIC) {
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, b->stream_off,
                               "bad bzip2 stream magic");
            } else if (r != BZ_OK) {
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                               "bzip2 decoder error %d in the stream at file offset %llu", r,
                               (unsigned long long)b->stream_off);
            } else if (used == 0 && made == 0) {
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                               "the bzip2 decoder makes no progress in the stream at file "
                               "offset %llu",
                               (unsigned long long)b->stream_off);
            }
            if (made)
                return (ssize_t)made;
            break;
        }
        case BD_NEXT:
            rc = bz_next(d, b, err);
            if (rc < 0)
                return rc;
            break;
        case BD_END:
        default:
            d->st.in_bytes = in->end - b->start;
            return 0;
        }
    }
}

static void bz_dec_free(mrimg_decoder *d)
{
    bz_dec *b = d->priv;
    if (!b)
        return;
    bz_end(b);
    free(b);
    d->priv = NULL;
}

/* ---- encoder ----------------------------------------------------------- */

typedef struct {
    mrimg_encoder *e;
    pchunk pc;
    bool pc_ready;
    bz_stream *bz; /* one per worker */
    unsigned nbz;
    int level;
} bz_enc;

static size_t bz_chunk_size(int level) { return (size_t)level * 100000u - 19u; }

static int bz_work(void *ctx, unsigned worker, pchunk_job *job, mrimg_error *err)
{
    bz_enc *b = ctx;
    job->out_len = 0;
    /* the final chunk is empty when the input ended on a chunk boundary:
     * an extra empty stream would be valid but useless (not for an empty
     * input, which still needs one stream) */
    if (job->last && job->in_len == 0 && job->seq > 0)
        return 0;
    bz_stream *s = &b->bz[worker];
    memset(s, 0, sizeof(*s));
    int r = BZ2_bzCompressInit(s, b->level, 0, 0);
    if (r != BZ_OK)
        return r == BZ_MEM_ERROR ? err_nomem(err)
                                 : err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                                           "BZ2_bzCompressInit failed (%d)", r);
    /* documented bound: 1% + 600 bytes */
    int rc = pchunk_out_reserve(job, job->in_len + job->in_len / 100 + 600, err);
    if (rc < 0)
        goto out;
    s->next_in = (char *)job->in;
    s->avail_in = (unsigned)job->in_len;
    for (;;) {
        s->next_out = (char *)job->out + job->out_len;
        s->avail_out = (unsigned)(job->out_cap - job->out_len);
        r = BZ2_bzCompress(s, BZ_FINISH);
        job->out_len = (size_t)(s->next_out - (char *)job->out);
        if (r == BZ_STREAM_END)
            break;
        if (r != BZ_FINISH_OK) {
            rc = err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "BZ2_bzCompress failed (%d)", r);
            goto out;
        }
        if (s->avail_out == 0) {
            rc = pchunk_out_reserve(job, job->out_cap + job->out_cap / 2 + 4096, err);
            if (rc < 0)
                goto out;
        }
    }
out:
    BZ2_bzCompressEnd(s);
    return rc;
}

static int bz_emit(void *ctx, pchunk_job *job, mrimg_error *err)
{
    bz_enc *b = ctx;
    if (job->out_len) {
        int rc = sink_write(b->e->out, job->out, job->out_len, err);
        if (rc < 0)
            return rc;
        b->e->out_bytes += job->out_len;
    }
    return 0;
}

static void bz_enc_free(mrimg_encoder *e)
{
    bz_enc *b = e->priv;
    if (!b)
        return;
    if (b->pc_ready)
        pchunk_free(&b->pc);
    free(b->bz);
    free(b);
    e->priv = NULL;
}

static int bz_enc_init(mrimg_encoder *e, mrimg_error *err)
{
    unsigned threads = e->threads ? e->threads : 1;
    bz_enc *b = xcalloc(1, sizeof(*b), err);
    if (!b)
        return MRIMG_ERR_NOMEM;
    e->priv = b;
    b->e = e;
    b->level = e->level;
    b->bz = xcalloc(threads, sizeof(*b->bz), err);
    if (!b->bz) {
        bz_enc_free(e);
        return MRIMG_ERR_NOMEM;
    }
    b->nbz = threads;
    int rc = pchunk_init(&b->pc, threads, bz_chunk_size(e->level), 0, bz_work, bz_emit, b, err);
    if (rc < 0) {
        bz_enc_free(e);
        return rc;
    }
    b->pc_ready = true;
    return 0;
}

static int bz_enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err)
{
    bz_enc *b = e->priv;
    return pchunk_write(&b->pc, buf, len, err);
}

static int bz_enc_finish(mrimg_encoder *e, mrimg_error *err)
{
    bz_enc *b = e->priv;
    return pchunk_finish(&b->pc, err);
}

/* ---- checksum or corrupt data ------------------------------------------ */

/* libbz2 cannot tell a CRC mismatch from corrupt data; the stored CRCs can
 * be checked against each other: the stream CRC is the fold of the block
 * CRCs.  The streams are found bit by bit (blocks are not byte-aligned) by
 * their 48-bit block and end-of-stream magics.  Returns 1 when a stored CRC
 * is inconsistent (*at: the stream's file offset), 0 when they agree, <0 on
 * error. */
static int bz_crcs_inconsistent(mrimg_source *src, uint64_t start, uint64_t end, uint64_t *at,
                                mrimg_error *err)
{
    enum { BUF = 1u << 20 };
    uint8_t *b = xmalloc(BUF, err);
    if (!b)
        return MRIMG_ERR_NOMEM;
    const uint64_t BLK = 0x314159265359ull, EOS = 0x177245385090ull, M48 = (1ull << 48) - 1;
    uint64_t sh = 0, bits = 0, stream_at = start;
    uint32_t comb = 0;
    int want = 0;          /* 32-bit field to read after a magic: 1 block CRC, 2 stream CRC */
    unsigned got = 0;
    uint32_t field = 0;
    int result = 0;
    for (uint64_t off = start; off < end && result == 0;) {
        size_t n = (size_t)MRIMG_MIN((uint64_t)BUF, end - off);
        int rc = src_pread(src, b, n, off, "bzip2 payload", err);
        if (rc < 0) {
            free(b);
            return rc;
        }
        for (size_t i = 0; i < n && result == 0; i++) {
            for (int k = 7; k >= 0; k--) {
                unsigned bit = (b[i] >> k) & 1;
                bits++;
                if (want) {
                    field = field << 1 | bit;
                    if (++got == 32) {
                        if (want == 1) {
                            comb = ((comb << 1) | (comb >> 31)) ^ field;
                        } else {
                            if (field != comb) {
                                *at = stream_at;
                                result = 1;
                                break;
                            }
                            comb = 0;
                            stream_at = off + i + 1;
                        }
                        want = 0;
                        sh = 0;
                    }
                    continue;
                }
                sh = ((sh << 1) | bit) & M48;
                if (bits >= 48 && (sh == BLK || sh == EOS)) {
                    want = sh == BLK ? 1 : 2;
                    got = 0;
                    field = 0;
                }
            }
        }
        off += n;
    }
    free(b);
    return result;
}

static int bz_dec_recheck(mrimg_source *src, uint64_t start, uint64_t end, const mrimg_error *e,
                          mrimg_error *why, mrimg_error *err)
{
    (void)e;
    uint64_t at = 0;
    int r = bz_crcs_inconsistent(src, start, end, &at, err);
    if (r == 1)
        err_set(why, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at,
                "a bzip2 CRC does not match: the block CRCs stored in the bzip2 stream starting "
                "here do not combine to its stream CRC (a stored CRC is damaged)");
    return r;
}

const mrimg_codec codec_bzip2 = {
    .name = "bzip2",
    .magic = bzip2_magic,
    .magic_len = sizeof(bzip2_magic),
    .level_min = 1,
    .level_max = 9,
    .level_default = 9,
    .parallel_encode = true,
    .dec_init = bz_dec_init,
    .dec_read = bz_dec_read,
    .dec_free = bz_dec_free,
    .dec_recheck = bz_dec_recheck,
    .enc_init = bz_enc_init,
    .enc_write = bz_enc_write,
    .enc_finish = bz_enc_finish,
    .enc_free = bz_enc_free,
};
