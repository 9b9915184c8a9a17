/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* zstd through libzstd (1.5.4), stable API only.
 *
 * Decoder
 *   Streaming ZSTD_decompressStream over any number of zstd frames and
 *   skippable frames (both counted in st.members), as `zstd -dc` accepts.
 *   A frame's content checksum (XXH64) is verified by libzstd when the frame
 *   header announces one; st.checks counts those frames.  A mismatch is
 *   MRIMG_ERR_CHECKSUM.  Window cap: ZSTD_d_windowLogMax 27 (128 MiB), the
 *   same limit the zstd CLI applies without --long/--memory, so a crafted
 *   frame cannot make us allocate more than ~128 MiB; a frame asking for more
 *   is MRIMG_ERR_LIMIT (zstd -dc refuses it as well).  Legacy (v0.x) frames
 *   are MRIMG_ERR_UNSUPPORTED.
 *
 * Trailing data (measured with zstd 1.5.4 `zstd -dc`, exit status in ()):
 *   - zstd frame / skippable frame   decoded / skipped (0)
 *   - any other byte, zeros included "unsupported format" / "unknown
 *     header" (1) -> tool_rejects; fewer than 4 bytes left is always
 *     "unknown header" (1), whatever they are
 *   - deviation from the reference: the Debian zstd CLI is built with zlib,
 *     liblzma and lz4, and after a zstd frame it goes on decoding a gzip
 *     member (1f 8b), an xz/lzma stream (fd 37 / 5d 00) or an lz4 frame
 *     (04 22 4d 18) and exits 0.  We cannot produce what the CLI would, so
 *     such data is MRIMG_ERR_UNSUPPORTED, not a guess.
 *   An empty payload is MRIMG_ERR_TRUNCATED (zstd -dc exits 1).
 *
 * Encoder
 *   ZSTD_compressStream2 with ZSTD_c_checksumFlag 1 (the CLI's default),
 *   ZSTD_c_nbWorkers = threads, at least 1, never 0.  The output does not
 *   depend on the thread count: with nbWorkers >= 1 libzstd cuts the input
 *   into jobs whose size follows from the level alone (ZSTD_c_jobSize 0),
 *   whatever the number of workers, while nbWorkers 0 (the single-threaded
 *   path) would write a different frame.  This is what the zstd 1.5.4 CLI
 *   does: `zstd -T1`, `-T2` and the default give the same bytes, only
 *   `--single-thread` differs (measured).  If this libzstd has no thread
 *   support, setting nbWorkers fails and every thread count stays on the
 *   single-threaded path - again the same bytes for all.  Levels 1..19,
 *   default 3.
 *
 * Encoder memory (what bounds the peak RSS of `imgconv -O zstd`)
 *   libzstd's multi-threaded context, as for `zstd -T W` (same parameters,
 *   so the same allocations): at level 3 the jobs are 8 MiB (4 windows of
 *   2 MiB), the input ring holds W + 3 of them (32 MiB for 1 worker, 40 MiB
 *   for 2), and each job in flight has an output buffer of
 *   ZSTD_compressBound(8 MiB) = 8.4 MiB, kept in a pool for reuse; how
 *   many exist depends on how far the workers run ahead of the flushing,
 *   at most one per slot of libzstd's job table (J = 2^(floor(log2(W + 2))
 *   + 1): 4 for one worker, 8 for two).  Each worker's match state is about
 *   1.3 MiB.  We add only ZS_OUT_BUF, and hand on every finished byte after
 *   each write (zs_code), so that output does not wait in those buffers
 *   and more of them than the zstd CLI uses are not needed.  Bound,
 *   enforced by tests/test_buffers.c through enc_mem(): (W + 3) x 8 MiB +
 *   J x 8.5 MiB + W x 2 MiB (68 MiB for 1 worker, 112 MiB for 2; measured
 *   49.4 and 67..75 MiB allocated, the CLI's 52 and 76 MiB peak RSS).  Job
 *   size and overlap are not ours to shrink: they decide the frame's bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "codec.h"

#define ZS_WINDOWLOG_MAX 27
/* Compressed output is handed to the sink (which gathers it into large
 * writes) in pieces of this size, the size libzstd recommends
 * (ZSTD_CStreamOutSize: one block's bound); larger gains nothing. */
#define ZS_OUT_BUF (128u << 10)

static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};

/* ---- decoder ----------------------------------------------------------- */

enum { ZD_FRAME_START, ZD_FRAME, ZD_END };

typedef struct {
    ZSTD_DCtx *dc;
    int state;
    uint64_t start;     /* file offset of the payload */
    uint64_t frame_off; /* file offset of the current frame */
    bool frame_check;   /* the current frame carries a content checksum */
    unsigned noprog;    /* consecutive calls without progress */
} zs_dec;

static bool zs_is_skippable(uint32_t m) { return (m & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START; }

/* What the zstd CLI would decode in another format after a frame.  It looks
 * at a frame's first 4 bytes; with fewer left it says "unknown header". */
static const char *zs_foreign(const uint8_t *p, size_t n)
{
    if (n < 4)
        return NULL;
    if (p[0] == 0x1f && p[1] == 0x8b)
        return "a gzip member";
    if (p[0] == 0xfd && p[1] == 0x37)
        return "an xz stream";
    if (p[0] == 0x5d && p[1] == 0x00)
        return "an lzma stream";
    if (rd_le32(p) == 0x184D2204u)
        return "an lz4 frame";
    return NULL;
}

/* At a frame boundary: the next frame, the end, or trailing data. */
static int zs_frame_start(mrimg_decoder *d, zs_dec *z, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    uint64_t off = in_pos(in);
    bool first = d->st.members == 0;
    if (in_avail(in) < 5) {
        ssize_t a = in_fill(in, err);
        if (a < 0)
            return (int)a;
    }
    size_t n = in_avail(in); /* < 5 only at the end of the input */
    const uint8_t *p = in->buf + in->r;
    if (n == 0) {
        if (first)
            return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off,
                           "the zstd payload is empty");
        z->state = ZD_END;
        return 0;
    }
    uint32_t m = n >= 4 ? rd_le32(p) : 0;
    if (n >= 4 && (m == ZSTD_MAGICNUMBER || zs_is_skippable(m))) {
        /* frame header descriptor: bit 2 = content checksum */
        z->frame_check = m == ZSTD_MAGICNUMBER && n >= 5 && (p[4] & 0x04);
        z->frame_off = off;
        z->noprog = 0;
        z->state = ZD_FRAME;
        return 0;
    }
    if (n >= 4 && m >= 0xFD2FB51Eu && m <= 0xFD2FB527u)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, off,
                       "legacy zstd frame format v0.%u is not supported", m - 0xFD2FB520u);
    if (first) {
        char hex[16];
        hex_bytes(hex, p, MRIMG_MIN(n, (size_t)4), 4);
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, off,
                       "expected the zstd frame magic 28 b5 2f fd, found %s", hex);
    }
    const char *foreign = zs_foreign(p, n);
    if (foreign)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, off,
                       "the zstd frames are followed by %s, which zstd -dc would decompress "
                       "as part of the payload; not supported",
                       foreign);
    z->state = ZD_END;
    int zr = in_skip_zeros(in, err);
    if (zr < 0)
        return zr;
    d->st.trailing = in->end - off;
    d->st.trailing_zero = zr == 1;
    d->st.tool_rejects = true;
    snprintf(d->st.note, sizeof(d->st.note),
             "%llu trailing %sbytes at file offset %llu: zstd -dc fails with \"%s\" (exit 1)",
             (unsigned long long)d->st.trailing, zr == 1 ? "zero " : "", (unsigned long long)off,
             n < 4 ? "unknown header" : "unsupported format");
    return 0;
}

static int zs_dec_init(mrimg_decoder *d, mrimg_error *err)
{
    zs_dec *z = xcalloc(1, sizeof(*z), err);
    if (!z)
        return MRIMG_ERR_NOMEM;
    z->dc = ZSTD_createDCtx();
    if (!z->dc) {
        free(z);
        return err_nomem(err);
    }
    size_t r = ZSTD_DCtx_setParameter(z->dc, ZSTD_d_windowLogMax, ZS_WINDOWLOG_MAX);
    if (ZSTD_isError(r)) {
        ZSTD_freeDCtx(z->dc);
        free(z);
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "cannot set the zstd window limit: %s", ZSTD_getErrorName(r));
    }
    z->start = in_pos(&d->in);
    z->state = ZD_FRAME_START;
    d->priv = z;
    return 0;
}

static int zs_error(mrimg_decoder *d, zs_dec *z, size_t r, mrimg_error *err)
{
    uint64_t at = in_pos(&d->in);
    unsigned long long fo = (unsigned long long)z->frame_off;
    switch (ZSTD_getErrorCode(r)) {
    case ZSTD_error_checksum_wrong:
        return err_set(err, MRIMG_ERR_CHECKSUM, MRIMG_OFF_FILE, at,
                       "the content checksum (XXH64) of the zstd frame at file offset %llu "
                       "does not match its data",
                       fo);
    case ZSTD_error_frameParameter_windowTooLarge:
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_FILE, fo,
                       "the zstd frame needs a window above the %u MiB cap (windowLog > %d); "
                       "zstd -dc refuses it as well unless run with --long or --memory",
                       1u << (ZS_WINDOWLOG_MAX - 20), ZS_WINDOWLOG_MAX);
    case ZSTD_error_memory_allocation:
        return err_nomem(err);
    default:
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, at,
                       "corrupt data in the zstd frame at file offset %llu: %s", fo,
                       ZSTD_getErrorName(r));
    }
}

static ssize_t zs_dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err)
{
    zs_dec *z = d->priv;
    mrimg_instream *in = &d->in;
    if (cap == 0)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "empty output buffer");
    for (;;) {
        int rc;
        switch (z->state) {
        case ZD_FRAME_START:
            rc = zs_frame_start(d, z, err);
            if (rc < 0)
                return rc;
            break;
        case ZD_FRAME: {
            if (in_avail(in) == 0) {
                ssize_t a = in_fill(in, err);
                if (a < 0)
                    return a;
                if (a == 0)
                    return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, in_pos(in),
                                   "input ends inside the zstd frame at file offset %llu",
                                   (unsigned long long)z->frame_off);
            }
            ZSTD_inBuffer ib = {in->buf + in->r, in_avail(in), 0};
            ZSTD_outBuffer ob = {buf, cap, 0};
            size_t r = ZSTD_decompressStream(z->dc, &ob, &ib);
            in->r += ib.pos;
            d->st.in_bytes = in_pos(in) - z->start;
            if (ZSTD_isError(r)) {
                ZSTD_DCtx_reset(z->dc, ZSTD_reset_session_only);
                return zs_error(d, z, r, err);
            }
            if (r == 0) { /* frame complete and flushed */
                d->st.members++;
                if (z->frame_check)
                    d->st.checks++;
                z->state = ZD_FRAME_START;
            } else if (ib.pos == 0 && ob.pos == 0) {
                /* both input and output space were available */
                if (++z->noprog > 8)
                    return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                                   "the zstd decoder makes no progress in the frame at file "
                                   "offset %llu",
                                   (unsigned long long)z->frame_off);
            } else {
                z->noprog = 0;
            }
            if (ob.pos)
                return (ssize_t)ob.pos;
            break;
        }
        case ZD_END:
        default:
            d->st.in_bytes = in->end - z->start;
            return 0;
        }
    }
}

static void zs_dec_free(mrimg_decoder *d)
{
    zs_dec *z = d->priv;
    if (!z)
        return;
    ZSTD_freeDCtx(z->dc);
    free(z);
    d->priv = NULL;
}

/* ---- encoder ----------------------------------------------------------- */

typedef struct {
    ZSTD_CCtx *cc;
    uint8_t *out;
} zs_enc;

static void zs_enc_free(mrimg_encoder *e)
{
    zs_enc *z = e->priv;
    if (!z)
        return;
    ZSTD_freeCCtx(z->cc);
    free(z->out);
    free(z);
    e->priv = NULL;
}

static int zs_enc_init(mrimg_encoder *e, mrimg_error *err)
{
    zs_enc *z = xcalloc(1, sizeof(*z), err);
    if (!z)
        return MRIMG_ERR_NOMEM;
    e->priv = z;
    z->out = xmalloc(ZS_OUT_BUF, err);
    z->cc = ZSTD_createCCtx();
    if (!z->out || !z->cc) {
        zs_enc_free(e);
        return err_nomem(err);
    }
    size_t r = ZSTD_CCtx_setParameter(z->cc, ZSTD_c_compressionLevel, e->level);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(z->cc, ZSTD_c_checksumFlag, 1);
    if (ZSTD_isError(r)) {
        zs_enc_free(e);
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "cannot set up zstd: %s",
                       ZSTD_getErrorName(r));
    }
    /* never 0 workers, so that one thread writes what two write (see the
     * head comment); fails only when libzstd was built without threads */
    (void)ZSTD_CCtx_setParameter(z->cc, ZSTD_c_nbWorkers,
                                 (int)MRIMG_MAX(1u, MRIMG_MIN(e->threads, 256u)));
    return 0;
}

static int zs_code(mrimg_encoder *e, zs_enc *z, ZSTD_inBuffer *ib, ZSTD_EndDirective mode,
                   mrimg_error *err)
{
    for (;;) {
        ZSTD_outBuffer ob = {z->out, ZS_OUT_BUF, 0};
        size_t r = ZSTD_compressStream2(z->cc, &ob, ib, mode);
        if (ZSTD_isError(r))
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation
                       ? err_nomem(err)
                       : err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "zstd encoder: %s",
                                 ZSTD_getErrorName(r));
        if (ob.pos) {
            int rc = sink_write(e->out, z->out, ob.pos, err);
            if (rc < 0)
                return rc;
            e->out_bytes += ob.pos;
        }
        /* with the input taken, go on while the output buffer comes back
         * full: the finished jobs' output is handed on now, not left in
         * libzstd's job buffers, which would then pile up (each holds up
         * to 8.4 MiB; see "Encoder memory" above) */
        if (mode == ZSTD_e_end ? r == 0 : ib->pos == ib->size && ob.pos < ob.size)
            return 0;
    }
}

static int zs_enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err)
{
    zs_enc *z = e->priv;
    ZSTD_inBuffer ib = {buf, len, 0};
    return zs_code(e, z, &ib, ZSTD_e_continue, err);
}

static int zs_enc_finish(mrimg_encoder *e, mrimg_error *err)
{
    zs_enc *z = e->priv;
    ZSTD_inBuffer ib = {NULL, 0, 0};
    return zs_code(e, z, &ib, ZSTD_e_end, err);
}

static size_t zs_enc_mem(const mrimg_encoder *e)
{
    const zs_enc *z = e->priv;
    return z ? ZS_OUT_BUF + ZSTD_sizeof_CCtx(z->cc) : 0;
}

const mrimg_codec codec_zstd = {
    .name = "zstd",
    .magic = zstd_magic,
    .magic_len = sizeof(zstd_magic),
    .level_min = 1,
    .level_max = 19,
    .level_default = 3,
    .parallel_encode = true,
    .dec_init = zs_dec_init,
    .dec_read = zs_dec_read,
    .dec_free = zs_dec_free,
    .enc_init = zs_enc_init,
    .enc_write = zs_enc_write,
    .enc_finish = zs_enc_finish,
    .enc_free = zs_enc_free,
    .enc_mem = zs_enc_mem,
};
