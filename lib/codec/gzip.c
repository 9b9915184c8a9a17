/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gzip (RFC 1952) through zlib.
 *
 * Decoder
 *   Accepts what `gzip -dc` (gzip 1.12) accepts: one or more members, each
 *   "1f 8b" (or gzip's old magic "1f 9e", which gzip still decodes) +
 *   method 8 (deflate) + flags FTEXT/FHCRC/FEXTRA/FNAME/FCOMMENT.  The header
 *   is parsed here (strings of any length are streamed, never buffered whole),
 *   the body is raw deflate (inflate with windowBits -15), and the trailer is
 *   checked here: CRC32 and ISIZE of every member (2 checks per member in
 *   st.checks, plus 1 when the header carries a CRC16, which is verified).
 *   Reserved flag bits (0x20 "encrypted", 0x40, 0x80) and methods other than
 *   deflate are MRIMG_ERR_FORMAT naming the file offset of the byte.
 *
 * Trailing data (measured with gzip 1.12 `gzip -dc`, exit status in ()):
 *   - 1f 8b / 1f 9e            another member (decoded; errors in it are errors)
 *   - only zero bytes to EOF   silently ignored (0)      -> trailing_zero
 *   - zeros then anything else "trailing garbage ignored" (2); a member after
 *     zeros is NOT decoded by gzip either
 *   - any other byte           "trailing garbage ignored" (2) -> tool_rejects
 *   - a lone 1f at EOF         "unexpected end of file" (1)   -> tool_rejects
 *   - 1f 1e / 1f 9d / 1f a0    gzip would go on decoding the rest as pack, LZW
 *     or LZH data: we cannot produce what gzip would, so this is
 *     MRIMG_ERR_UNSUPPORTED rather than a guess.
 *   The reference (§4.3) lists only the zero/text cases; the rest was
 *   measured here.  The payload may not be empty (gzip -dc exits 1).
 *
 * Encoder (pigz-style, one member)
 *   The input is cut into GZ_CHUNK-byte chunks; each chunk is deflated on a
 *   worker (raw deflate, windowBits -15) after deflateReset() and
 *   deflateSetDictionary() with the previous 32 KiB of input, and ended with
 *   Z_SYNC_FLUSH (Z_FINISH for the last chunk), so the pieces concatenate
 *   into one deflate stream.  Per-chunk CRC32s are joined in order with
 *   crc32_combine().  Header: mtime 0, no name, XFL 2 (-9) / 4 (-1) / 0,
 *   OS 3.  A chunk's output depends only on its bytes and dictionary, so the
 *   result is identical for any thread count.
 *   Chunk size 512 KiB: large enough that the per-chunk cost (an empty stored
 *   block of 4-5 bytes from the sync flush, a deflate restart primed by the
 *   32 KiB dictionary) is lost in the noise (<0.01% size), small enough that
 *   memory stays at about 2 x threads x (512 KiB in + 512 KiB out) and a
 *   1 GiB input still gives 2048 chunks to spread over the workers.
 *   Levels 1..9, default 6 (what `gzip -c` uses).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "../util/pchunk.h"
#include "codec.h"

#define GZ_CHUNK (512u << 10)
#define GZ_DICT 32768u
/* inflate/deflate take uInt counts: hand them at most this much at once */
#define GZ_MAX_IO (1u << 30)

/* header flag bits */
#define GZF_TEXT 0x01
#define GZF_HCRC 0x02
#define GZF_EXTRA 0x04
#define GZF_NAME 0x08
#define GZF_COMMENT 0x10
#define GZF_RESERVED 0xe0

static const uint8_t gzip_magic[2] = {0x1f, 0x8b};

/* ---- decoder ----------------------------------------------------------- */

enum { GZ_HEADER, GZ_BODY, GZ_TRAILER, GZ_NEXT, GZ_END };

typedef struct {
    z_stream zs;
    int state;
    uint64_t start;      /* file offset of the payload */
    uint64_t member_off; /* file offset of the current member */
    uint32_t crc;        /* CRC32 of the member's output so far */
    uint32_t isize;      /* its length mod 2^32 */
} gz_dec;

static int gz_truncated(mrimg_instream *in, const char *what, uint64_t member_off,
                        mrimg_error *err)
{
    return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, in_pos(in),
                   "input ends inside %s of the gzip member at file offset %llu", what,
                   (unsigned long long)member_off);
}

/* Consume a zero-terminated header string, whatever its length. */
static int gz_skip_string(mrimg_instream *in, uLong *hcrc, const char *what, uint64_t member_off,
                          mrimg_error *err)
{
    for (;;) {
        if (in_avail(in) == 0) {
            ssize_t a = in_fill(in, err);
            if (a < 0)
                return (int)a;
            if (a == 0)
                return gz_truncated(in, what, member_off, err);
        }
        const uint8_t *p = in->buf + in->r;
        size_t n = in_avail(in);
        const uint8_t *z = memchr(p, 0, n);
        size_t take = z ? (size_t)(z - p) + 1 : n;
        *hcrc = crc32(*hcrc, p, (uInt)take);
        in->r += take;
        if (z)
            return 0;
    }
}

static int gz_read_header(mrimg_decoder *d, gz_dec *g, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    uint64_t off = in_pos(in);
    g->member_off = off;
    int rc = in_need(in, 10, "a gzip member header", err);
    if (rc < 0)
        return rc;
    const uint8_t *h = in->buf + in->r;
    if (h[0] != 0x1f || (h[1] != 0x8b && h[1] != 0x9e)) {
        char hex[16];
        hex_bytes(hex, h, 2, 2);
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off,
                       "expected the gzip magic 1f 8b, found %s", hex);
    }
    if (h[2] != 8)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off + 2,
                       "gzip compression method %u is not deflate (8)", h[2]);
    unsigned flags = h[3];
    if (flags & GZF_RESERVED)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off + 3,
                       "gzip header flags 0x%02x have reserved bits set (0x%02x)", flags,
                       flags & GZF_RESERVED);
    uLong hcrc = crc32(0L, h, 10);
    in->r += 10;
    if (flags & GZF_EXTRA) {
        rc = in_need(in, 2, "the gzip FEXTRA length", err);
        if (rc < 0)
            return rc;
        const uint8_t *x = in->buf + in->r;
        size_t xlen = (size_t)x[0] | ((size_t)x[1] << 8);
        hcrc = crc32(hcrc, x, 2);
        in->r += 2;
        /* xlen <= 65535, far below the input buffer */
        rc = in_need(in, xlen, "the gzip FEXTRA field", err);
        if (rc < 0)
            return rc;
        hcrc = crc32(hcrc, in->buf + in->r, (uInt)xlen);
        in->r += xlen;
    }
    if (flags & GZF_NAME) {
        rc = gz_skip_string(in, &hcrc, "the file name (FNAME)", off, err);
        if (rc < 0)
            return rc;
    }
    if (flags & GZF_COMMENT) {
        rc = gz_skip_string(in, &hcrc, "the comment (FCOMMENT)", off, err);
        if (rc < 0)
            return rc;
    }
    if (flags & GZF_HCRC) {
        uint64_t at = in_pos(in);
        rc = in_need(in, 2, "the gzip header CRC16", err);
        if (rc < 0)
            return rc;
        const uint8_t *c = in->buf + in->r;
        unsigned stored = (unsigned)c[0] | ((unsigned)c[1] << 8);
        unsigned calc = (unsigned)(hcrc & 0xffff);
        if (stored != calc)
            return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at,
                           "gzip header CRC16 of the member at file offset %llu is %04x, "
                           "the header says %04x",
                           (unsigned long long)off, calc, stored);
        in->r += 2;
        d->st.checks++;
    }
    if (inflateReset(&g->zs) != Z_OK)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off, "cannot reset the inflater");
    g->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    g->isize = 0;
    return 0;
}

static int gz_read_trailer(mrimg_decoder *d, gz_dec *g, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    uint64_t at = in_pos(in);
    if (in_avail(in) < 8) {
        ssize_t a = in_fill(in, err);
        if (a < 0)
            return (int)a;
        if ((size_t)a < 8)
            return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, at,
                           "input ends inside the trailer (CRC32, ISIZE) of the gzip member at "
                           "file offset %llu (%zu of 8 bytes present)",
                           (unsigned long long)g->member_off, (size_t)a);
    }
    const uint8_t *t = in->buf + in->r;
    uint32_t crc = rd_le32(t), isize = rd_le32(t + 4);
    if (crc != g->crc)
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at,
                       "CRC32 of the gzip member at file offset %llu is %08x, its trailer says %08x",
                       (unsigned long long)g->member_off, g->crc, crc);
    if (isize != g->isize)
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at + 4,
                       "the gzip member at file offset %llu decodes to %u bytes (mod 2^32), its "
                       "trailer ISIZE says %u",
                       (unsigned long long)g->member_off, g->isize, isize);
    in->r += 8;
    d->st.checks += 2;
    d->st.members++;
    return 0;
}

/* After a member: another member, the end, or trailing data. */
static int gz_next(mrimg_decoder *d, gz_dec *g, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    uint64_t tstart = in_pos(in);
    if (in_avail(in) < 2) {
        ssize_t a = in_fill(in, err);
        if (a < 0)
            return (int)a;
    }
    size_t n = in_avail(in); /* < 2 only at the end of the input */
    const uint8_t *p = in->buf + in->r;
    if (n == 0) {
        g->state = GZ_END;
        return 0;
    }
    if (n >= 2 && p[0] == 0x1f && (p[1] == 0x8b || p[1] == 0x9e)) {
        g->state = GZ_HEADER;
        return 0;
    }
    if (n >= 2 && p[0] == 0x1f && (p[1] == 0x1e || p[1] == 0x9d || p[1] == 0xa0))
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, tstart,
                       "the gzip members are followed by %s data (magic 1f %02x), which "
                       "gzip -dc would decompress as part of the payload; not supported",
                       p[1] == 0x1e ? "pack" : p[1] == 0x9d ? "compress (LZW)" : "LZH", p[1]);
    g->state = GZ_END;
    if (n == 1 && p[0] == 0x1f) {
        in->r += 1;
        d->st.trailing = 1;
        d->st.tool_rejects = true;
        snprintf(d->st.note, sizeof(d->st.note),
                 "1 trailing byte 1f at file offset %llu: gzip -dc fails with \"unexpected end "
                 "of file\" (exit 1)",
                 (unsigned long long)tstart);
        return 0;
    }
    int z = in_skip_zeros(in, err);
    if (z < 0)
        return z;
    d->st.trailing = in->end - tstart;
    if (z == 1) {
        d->st.trailing_zero = true;
        snprintf(d->st.note, sizeof(d->st.note),
                 "%llu trailing zero bytes at file offset %llu: gzip -dc ignores them (exit 0)",
                 (unsigned long long)d->st.trailing, (unsigned long long)tstart);
    } else {
        d->st.tool_rejects = true;
        snprintf(d->st.note, sizeof(d->st.note),
                 "%llu trailing bytes at file offset %llu (first non-zero at %llu): gzip -dc "
                 "says \"decompression OK, trailing garbage ignored\" (exit 2)",
                 (unsigned long long)d->st.trailing, (unsigned long long)tstart,
                 (unsigned long long)in_pos(in));
    }
    return 0;
}

static int gz_dec_init(mrimg_decoder *d, mrimg_error *err)
{
    gz_dec *g = xcalloc(1, sizeof(*g), err);
    if (!g)
        return MRIMG_ERR_NOMEM;
    if (inflateInit2(&g->zs, -15) != Z_OK) {
        free(g);
        return err_nomem(err);
    }
    g->start = in_pos(&d->in);
    g->state = GZ_HEADER;
    d->priv = g;
    return 0;
}

static ssize_t gz_dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err)
{
    gz_dec *g = d->priv;
    mrimg_instream *in = &d->in;
    uint8_t *out = buf;
    if (cap == 0)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "empty output buffer");
    if (cap > GZ_MAX_IO)
        cap = GZ_MAX_IO;
    for (;;) {
        int rc = 0;
        switch (g->state) {
        case GZ_HEADER:
            rc = gz_read_header(d, g, err);
            if (rc < 0)
                return rc;
            g->state = GZ_BODY;
            break;
        case GZ_BODY: {
            if (in_avail(in) == 0) {
                ssize_t a = in_fill(in, err);
                if (a < 0)
                    return a;
                if (a == 0)
                    return gz_truncated(in, "the deflate data", g->member_off, err);
            }
            const uint8_t *ip = in->buf + in->r;
            g->zs.next_in = (Bytef *)ip;
            g->zs.avail_in = (uInt)MRIMG_MIN(in_avail(in), (size_t)GZ_MAX_IO);
            g->zs.next_out = out;
            g->zs.avail_out = (uInt)cap;
            int zr = inflate(&g->zs, Z_NO_FLUSH);
            size_t used = (size_t)(g->zs.next_in - ip);
            size_t made = (size_t)(g->zs.next_out - out);
            in->r += used;
            if (made) {
                g->crc = (uint32_t)crc32(g->crc, out, (uInt)made);
                g->isize += (uint32_t)made;
            }
            d->st.in_bytes = in_pos(in) - g->start;
            if (zr == Z_STREAM_END)
                g->state = GZ_TRAILER;
            else if (zr == Z_MEM_ERROR)
                return err_nomem(err);
            else if (zr != Z_OK && zr != Z_BUF_ERROR)
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                               "invalid deflate data in the gzip member at file offset %llu: %s",
                               (unsigned long long)g->member_off,
                               g->zs.msg ? g->zs.msg : "inflate failed");
            else if (used == 0 && made == 0)
                /* input and output space were both available */
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                               "the deflate decoder makes no progress in the gzip member at "
                               "file offset %llu",
                               (unsigned long long)g->member_off);
            if (made)
                return (ssize_t)made;
            break;
        }
        case GZ_TRAILER:
            rc = gz_read_trailer(d, g, err);
            if (rc < 0)
                return rc;
            g->state = GZ_NEXT;
            break;
        case GZ_NEXT:
            rc = gz_next(d, g, err);
            if (rc < 0)
                return rc;
            break;
        case GZ_END:
        default:
            d->st.in_bytes = in->end - g->start;
            return 0;
        }
    }
}

static void gz_dec_free(mrimg_decoder *d)
{
    gz_dec *g = d->priv;
    if (!g)
        return;
    inflateEnd(&g->zs);
    free(g);
    d->priv = NULL;
}

/* ---- encoder ----------------------------------------------------------- */

typedef struct {
    mrimg_encoder *e;
    pchunk pc;
    bool pc_ready;
    z_stream *zs;        /* one per worker */
    unsigned nzs;
    uint32_t crc;
    uint64_t total;
} gz_enc;

static int gz_work(void *ctx, unsigned worker, pchunk_job *job, mrimg_error *err)
{
    gz_enc *g = ctx;
    z_stream *zs = &g->zs[worker];
    job->check = (uint32_t)crc32(0L, job->in, (uInt)job->in_len);
    job->out_len = 0;
    if (deflateReset(zs) != Z_OK)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "deflateReset failed");
    if (job->dict_len &&
        deflateSetDictionary(zs, job->dict, (uInt)job->dict_len) != Z_OK)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "deflateSetDictionary failed");
    /* deflateBound assumes Z_FINISH; a sync flush adds at most 5 + a few */
    int rc = pchunk_out_reserve(job, deflateBound(zs, (uLong)job->in_len) + 64, err);
    if (rc < 0)
        return rc;
    int flush = job->last ? Z_FINISH : Z_SYNC_FLUSH;
    zs->next_in = (Bytef *)job->in;
    zs->avail_in = (uInt)job->in_len;
    for (;;) {
        zs->next_out = job->out + job->out_len;
        zs->avail_out = (uInt)(job->out_cap - job->out_len);
        int zr = deflate(zs, flush);
        job->out_len = (size_t)(zs->next_out - job->out);
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "deflate failed (%d)", zr);
        if (!job->last && zs->avail_in == 0 && zs->avail_out != 0)
            break; /* sync flush complete */
        if (zs->avail_out == 0) {
            rc = pchunk_out_reserve(job, job->out_cap + job->out_cap / 2 + 4096, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int gz_emit(void *ctx, pchunk_job *job, mrimg_error *err)
{
    gz_enc *g = ctx;
    g->crc = (uint32_t)crc32_combine(g->crc, job->check, (z_off_t)job->in_len);
    g->total += job->in_len;
    if (job->out_len) {
        int rc = sink_write(g->e->out, job->out, job->out_len, err);
        if (rc < 0)
            return rc;
        g->e->out_bytes += job->out_len;
    }
    return 0;
}

static void gz_enc_free(mrimg_encoder *e)
{
    gz_enc *g = e->priv;
    if (!g)
        return;
    if (g->pc_ready)
        pchunk_free(&g->pc); /* joins the workers before their streams go */
    for (unsigned i = 0; i < g->nzs; i++)
        deflateEnd(&g->zs[i]);
    free(g->zs);
    free(g);
    e->priv = NULL;
}

static int gz_enc_init(mrimg_encoder *e, mrimg_error *err)
{
    unsigned threads = e->threads ? e->threads : 1;
    gz_enc *g = xcalloc(1, sizeof(*g), err);
    if (!g)
        return MRIMG_ERR_NOMEM;
    e->priv = g;
    g->e = e;
    g->zs = xcalloc(threads, sizeof(*g->zs), err);
    if (!g->zs) {
        gz_enc_free(e);
        return MRIMG_ERR_NOMEM;
    }
    for (unsigned i = 0; i < threads; i++) {
        if (deflateInit2(&g->zs[i], e->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            gz_enc_free(e);
            return err_nomem(err);
        }
        g->nzs++;
    }
    int rc = pchunk_init(&g->pc, threads, GZ_CHUNK, GZ_DICT, gz_work, gz_emit, g, err);
    if (rc < 0) {
        gz_enc_free(e);
        return rc;
    }
    g->pc_ready = true;
    g->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    uint8_t h[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    h[8] = e->level == 9 ? 2 : e->level == 1 ? 4 : 0;
    rc = sink_write(e->out, h, sizeof(h), err);
    if (rc < 0) {
        gz_enc_free(e);
        return rc;
    }
    e->out_bytes += sizeof(h);
    return 0;
}

static int gz_enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err)
{
    gz_enc *g = e->priv;
    return pchunk_write(&g->pc, buf, len, err);
}

static int gz_enc_finish(mrimg_encoder *e, mrimg_error *err)
{
    gz_enc *g = e->priv;
    int rc = pchunk_finish(&g->pc, err);
    if (rc < 0)
        return rc;
    uint8_t t[8];
    wr_le32(t, g->crc);
    wr_le32(t + 4, (uint32_t)g->total);
    rc = sink_write(e->out, t, sizeof(t), err);
    if (rc < 0)
        return rc;
    e->out_bytes += sizeof(t);
    return 0;
}

const mrimg_codec codec_gzip = {
    .name = "gzip",
    .magic = gzip_magic,
    .magic_len = sizeof(gzip_magic),
    .level_min = 1,
    .level_max = 9,
    .level_default = 6,
    .parallel_encode = true,
    .dec_init = gz_dec_init,
    .dec_read = gz_dec_read,
    .dec_free = gz_dec_free,
    .enc_init = gz_enc_init,
    .enc_write = gz_enc_write,
    .enc_finish = gz_enc_finish,
    .enc_free = gz_enc_free,
};
