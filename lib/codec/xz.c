/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* xz through liblzma (5.4).
 *
 * Decoder
 *   Accepts what `xz -dc` (xz 5.4) accepts for .xz input: one or more
 *   streams, with stream padding (zero bytes in multiples of 4) between
 *   them and after the last.  This is LZMA_CONCATENATED's behaviour, done
 *   here stream by stream (one decoder per stream, reinitialised in place)
 *   so that the end of the last stream is known exactly and what follows can
 *   be judged as xz would judge it.  threads > 1 uses lzma_stream_decoder_mt
 *   (parallel only for multi-block streams that record block sizes, as the
 *   xz -T encoder writes them), threads == 1 lzma_stream_decoder.
 *   Integrity checks are always verified (CRC32, CRC64, SHA-256); a check
 *   type this liblzma cannot verify is MRIMG_ERR_UNSUPPORTED rather than
 *   skipped.  st.checks counts one per stream whose check type is not None.
 *   liblzma reports corrupt data and a check mismatch alike (LZMA_DATA_ERROR),
 *   so both are MRIMG_ERR_FORMAT.
 *   Memory: memlimit_stop 1 GiB (XZ_MEMLIMIT) - every xz preset needs at most
 *   ~65 MiB to decode (64 MiB dictionary at -9); a crafted header asking for
 *   more than 1 GiB of dictionary is MRIMG_ERR_LIMIT before anything is
 *   allocated.  memlimit_threading 512 MiB: above it the mt decoder uses
 *   fewer threads (never fails because of it).
 *
 * Trailing data (measured with xz 5.4.1 `xz -dc`, exit status in ()):
 *   - zero bytes, a multiple of 4, to EOF      stream padding (0)
 *   - padding (multiple of 4) + FD 37 7A 58 5A 00   next stream (0)
 *   - zeros not a multiple of 4 (at EOF or before a stream)   "Compressed
 *     data is corrupt" (1) -> tool_rejects; the stream after it is not
 *     decoded (xz does not either)
 *   - anything else: "Compressed data is corrupt" / "Unexpected end of
 *     input" (1) -> tool_rejects
 *   A non-empty padding is reported in trailing/trailing_zero (not rejected).
 *
 * Encoder
 *   lzma_stream_encoder_mt for every thread count, one thread included
 *   (blocks of 3 x dictionary size, liblzma's default, with their sizes in
 *   the block headers, so that xz -T / our mt decoder can decode them in
 *   parallel).  The block layout depends on the preset only, so the output
 *   is the same bytes for any thread count.  The single-threaded
 *   lzma_easy_encoder (one block) would differ: xz 5.4.1 `xz -3 -T1 -c`
 *   (and plain `xz -3 -c`, libvirt's command) writes one block, while
 *   `-T2`, `-T3` and `-T+1` (multi-threaded mode with one thread) agree with
 *   each other and with us (measured); `xz -dc` decodes both layouts.
 *   Preset = level 0..9, default 3 (libvirt runs `xz -3 -c`), check CRC64
 *   (xz's default).
 */
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec.h"

/* The decoder's memory limit (1 GiB: every xz preset fits); the re-check
 * of a failed decode uses the same cap. */
#define XZ_MEMLIMIT (1ull << 30)
#define XZ_MEMLIMIT_THREADING (512ull << 20)
#define XZ_OUT_BUF (1u << 20)

static const uint8_t xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};

/* ---- decoder ----------------------------------------------------------- */

enum { XD_START, XD_BODY, XD_NEXT, XD_END };

typedef struct {
    lzma_stream ls;
    int state;
    bool eof;            /* the input is exhausted */
    uint64_t start;      /* file offset of the payload */
    uint64_t stream_off; /* file offset of the current stream */
} xz_dec;

static const char *xz_ret_name(lzma_ret r)
{
    switch (r) {
    case LZMA_FORMAT_ERROR: return "file format not recognized";
    case LZMA_OPTIONS_ERROR: return "unsupported options";
    case LZMA_DATA_ERROR: return "compressed data is corrupt or an integrity check failed";
    case LZMA_BUF_ERROR: return "unexpected end of input";
    case LZMA_PROG_ERROR: return "internal error";
    default: return "decoder error";
    }
}

static int xz_start(mrimg_decoder *d, xz_dec *x, mrimg_error *err)
{
    x->stream_off = in_pos(&d->in);
    uint32_t flags = LZMA_TELL_UNSUPPORTED_CHECK | LZMA_TELL_ANY_CHECK;
    lzma_ret r;
    if (d->threads > 1) {
        lzma_mt mt;
        memset(&mt, 0, sizeof(mt));
        mt.flags = flags;
        mt.threads = d->threads;
        mt.timeout = 0;
        mt.memlimit_threading = XZ_MEMLIMIT_THREADING;
        mt.memlimit_stop = XZ_MEMLIMIT;
        r = lzma_stream_decoder_mt(&x->ls, &mt);
    } else {
        r = lzma_stream_decoder(&x->ls, XZ_MEMLIMIT, flags);
    }
    if (r == LZMA_MEM_ERROR)
        return err_nomem(err);
    if (r != LZMA_OK)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "cannot initialise the xz decoder (liblzma error %d)", (int)r);
    return 0;
}

static int xz_next(mrimg_decoder *d, xz_dec *x, mrimg_error *err)
{
    mrimg_instream *in = &d->in;
    uint64_t tstart = in_pos(in);
    int z = in_skip_zeros(in, err);
    if (z < 0)
        return z;
    uint64_t pad = in_pos(in) - tstart;
    if (z == 1) { /* zeros (or nothing) up to the end */
        x->state = XD_END;
        d->st.trailing = pad;
        d->st.trailing_zero = pad > 0;
        if (pad % 4 == 0) {
            if (pad)
                snprintf(d->st.note, sizeof(d->st.note),
                         "%llu bytes of xz stream padding at file offset %llu (xz -dc accepts "
                         "them, exit 0)",
                         (unsigned long long)pad, (unsigned long long)tstart);
        } else {
            d->st.tool_rejects = true;
            snprintf(d->st.note, sizeof(d->st.note),
                     "%llu trailing zero bytes at file offset %llu are not a multiple of 4: xz "
                     "-dc says \"Compressed data is corrupt\" (exit 1)",
                     (unsigned long long)pad, (unsigned long long)tstart);
        }
        return 0;
    }
    if (pad % 4 == 0 && in_avail(in) < sizeof(xz_magic)) {
        ssize_t a = in_fill(in, err);
        if (a < 0)
            return (int)a;
    }
    if (pad % 4 == 0 && in_avail(in) >= sizeof(xz_magic) &&
        memcmp(in->buf + in->r, xz_magic, sizeof(xz_magic)) == 0) {
        x->state = XD_START;
        return 0;
    }
    x->state = XD_END;
    d->st.trailing = in->end - tstart;
    d->st.tool_rejects = true;
    if (pad % 4)
        snprintf(d->st.note, sizeof(d->st.note),
                 "%llu trailing bytes at file offset %llu: %llu zero bytes (not a multiple of "
                 "4) then data: xz -dc says \"Compressed data is corrupt\" (exit 1)",
                 (unsigned long long)d->st.trailing, (unsigned long long)tstart,
                 (unsigned long long)pad);
    else
        snprintf(d->st.note, sizeof(d->st.note),
                 "%llu trailing bytes at file offset %llu are not an xz stream: xz -dc fails "
                 "(exit 1)",
                 (unsigned long long)d->st.trailing, (unsigned long long)tstart);
    return 0;
}

static int xz_dec_init(mrimg_decoder *d, mrimg_error *err)
{
    xz_dec *x = xcalloc(1, sizeof(*x), err);
    if (!x)
        return MRIMG_ERR_NOMEM;
    lzma_stream init = LZMA_STREAM_INIT;
    x->ls = init;
    x->start = in_pos(&d->in);
    x->state = XD_START;
    d->priv = x;
    return 0;
}

static ssize_t xz_dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err)
{
    xz_dec *x = d->priv;
    mrimg_instream *in = &d->in;
    if (cap == 0)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "empty output buffer");
    for (;;) {
        int rc;
        switch (x->state) {
        case XD_START:
            rc = xz_start(d, x, err);
            if (rc < 0)
                return rc;
            x->eof = false;
            x->state = XD_BODY;
            break;
        case XD_BODY: {
            if (in_avail(in) == 0 && !x->eof) {
                ssize_t a = in_fill(in, err);
                if (a < 0)
                    return a;
                if (a == 0)
                    x->eof = true;
            }
            const uint8_t *ip = in->buf + in->r;
            x->ls.next_in = ip;
            x->ls.avail_in = in_avail(in);
            x->ls.next_out = buf;
            x->ls.avail_out = cap;
            lzma_ret r = lzma_code(&x->ls, x->eof ? LZMA_FINISH : LZMA_RUN);
            size_t used = (size_t)(x->ls.next_in - ip);
            size_t made = (size_t)(x->ls.next_out - (uint8_t *)buf);
            in->r += used;
            d->st.in_bytes = in_pos(in) - x->start;
            switch (r) {
            case LZMA_OK:
                break;
            case LZMA_GET_CHECK:
                if (lzma_get_check(&x->ls) != LZMA_CHECK_NONE)
                    d->st.checks++;
                break;
            case LZMA_STREAM_END:
                d->st.members++;
                x->state = XD_NEXT;
                break;
            case LZMA_UNSUPPORTED_CHECK:
                return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, x->stream_off,
                               "the xz stream uses integrity check type %d, which this "
                               "liblzma cannot verify",
                               (int)lzma_get_check(&x->ls));
            case LZMA_MEM_ERROR:
                return err_nomem(err);
            case LZMA_MEMLIMIT_ERROR:
                return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_FILE, in_pos(in),
                               "the xz stream at file offset %llu needs %llu MiB of memory to "
                               "decode, above the %llu MiB cap",
                               (unsigned long long)x->stream_off,
                               (unsigned long long)(lzma_memusage(&x->ls) >> 20),
                               (unsigned long long)(XZ_MEMLIMIT >> 20));
            case LZMA_BUF_ERROR:
                if (x->eof)
                    return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, in_pos(in),
                                   "input ends inside the xz stream at file offset %llu",
                                   (unsigned long long)x->stream_off);
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                               "the xz decoder makes no progress in the stream at file offset "
                               "%llu",
                               (unsigned long long)x->stream_off);
            case LZMA_FORMAT_ERROR:
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, x->stream_off,
                               "not an xz stream (expected the magic fd 37 7a 58 5a 00)");
            default:
                return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, in_pos(in),
                               "in the xz stream at file offset %llu: %s",
                               (unsigned long long)x->stream_off, xz_ret_name(r));
            }
            /* LZMA_OK without progress twice in a row becomes LZMA_BUF_ERROR
             * inside liblzma, so this loop cannot spin */
            if (made)
                return (ssize_t)made;
            break;
        }
        case XD_NEXT:
            rc = xz_next(d, x, err);
            if (rc < 0)
                return rc;
            break;
        case XD_END:
        default:
            d->st.in_bytes = in->end - x->start;
            return 0;
        }
    }
}

static void xz_dec_free(mrimg_decoder *d)
{
    xz_dec *x = d->priv;
    if (!x)
        return;
    lzma_end(&x->ls);
    free(x);
    d->priv = NULL;
}

/* ---- encoder ----------------------------------------------------------- */

typedef struct {
    lzma_stream ls;
    uint8_t *out;
} xz_enc;

static void xz_enc_free(mrimg_encoder *e)
{
    xz_enc *x = e->priv;
    if (!x)
        return;
    lzma_end(&x->ls);
    free(x->out);
    free(x);
    e->priv = NULL;
}

static int xz_enc_init(mrimg_encoder *e, mrimg_error *err)
{
    xz_enc *x = xcalloc(1, sizeof(*x), err);
    if (!x)
        return MRIMG_ERR_NOMEM;
    lzma_stream init = LZMA_STREAM_INIT;
    x->ls = init;
    e->priv = x;
    x->out = xmalloc(XZ_OUT_BUF, err);
    if (!x->out) {
        xz_enc_free(e);
        return MRIMG_ERR_NOMEM;
    }
    lzma_ret r;
    /* the multi-threaded layout even for one thread: see the head comment */
    lzma_mt mt;
    memset(&mt, 0, sizeof(mt));
    mt.threads = MRIMG_MAX(1u, MRIMG_MIN(e->threads, 16384u) /* liblzma's LZMA_THREADS_MAX */);
    mt.block_size = 0; /* liblzma's default: 3 x dictionary size */
    mt.timeout = 0;
    mt.preset = (uint32_t)e->level;
    mt.filters = NULL;
    mt.check = LZMA_CHECK_CRC64;
    r = lzma_stream_encoder_mt(&x->ls, &mt);
    if (r != LZMA_OK) {
        xz_enc_free(e);
        return r == LZMA_MEM_ERROR ? err_nomem(err)
                                   : err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                                             "cannot initialise the xz encoder (liblzma error %d)",
                                             (int)r);
    }
    x->ls.next_out = x->out;
    x->ls.avail_out = XZ_OUT_BUF;
    return 0;
}

static int xz_flush_out(mrimg_encoder *e, xz_enc *x, mrimg_error *err)
{
    size_t n = XZ_OUT_BUF - x->ls.avail_out;
    if (n) {
        int rc = sink_write(e->out, x->out, n, err);
        if (rc < 0)
            return rc;
        e->out_bytes += n;
    }
    x->ls.next_out = x->out;
    x->ls.avail_out = XZ_OUT_BUF;
    return 0;
}

static int xz_code(mrimg_encoder *e, xz_enc *x, lzma_action act, mrimg_error *err)
{
    for (;;) {
        lzma_ret r = lzma_code(&x->ls, act);
        if (r != LZMA_OK && r != LZMA_STREAM_END)
            return r == LZMA_MEM_ERROR ? err_nomem(err)
                                       : err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                                                 "xz encoder error (liblzma error %d)", (int)r);
        if (x->ls.avail_out == 0 || r == LZMA_STREAM_END) {
            int rc = xz_flush_out(e, x, err);
            if (rc < 0)
                return rc;
        }
        if (r == LZMA_STREAM_END)
            return 0;
        if (act == LZMA_RUN && x->ls.avail_in == 0)
            return 0;
    }
}

static int xz_enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err)
{
    xz_enc *x = e->priv;
    x->ls.next_in = buf;
    x->ls.avail_in = len;
    return xz_code(e, x, LZMA_RUN, err);
}

static int xz_enc_finish(mrimg_encoder *e, mrimg_error *err)
{
    xz_enc *x = e->priv;
    x->ls.next_in = NULL;
    x->ls.avail_in = 0;
    return xz_code(e, x, LZMA_FINISH, err);
}

/* ---- checksum or corrupt data ------------------------------------------ */

/* liblzma reports a failed integrity check and corrupt data alike; decoding
 * again with the checks ignored tells them apart.  1: the data decodes
 * (so a check failed), 0: it does not, <0 error. */
static int xz_decodes_without_checks(mrimg_source *src, uint64_t start, uint64_t end,
                                     mrimg_error *err)
{
    enum { IN = 1u << 20, OUT = 4u << 20 };
    lzma_stream z = LZMA_STREAM_INIT;
    /* the decoder's own memory cap: a header asking for more is not worth
     * a second look */
    if (lzma_stream_decoder(&z, XZ_MEMLIMIT, LZMA_CONCATENATED | LZMA_IGNORE_CHECK) != LZMA_OK)
        return err_set(err, MRIMG_ERR_NOMEM, MRIMG_OFF_NONE, 0, "liblzma initialisation failed");
    uint8_t *in = xmalloc(IN, err), *out = in ? xmalloc(OUT, err) : NULL;
    int result = 0;
    if (!in || !out) {
        result = MRIMG_ERR_NOMEM;
        goto done;
    }
    uint64_t off = start;
    uint64_t streams_out = 0;
    for (;;) {
        if (z.avail_in == 0 && off < end) {
            size_t n = (size_t)MRIMG_MIN((uint64_t)IN, end - off);
            int rc = src_pread(src, in, n, off, "xz payload", err);
            if (rc < 0) {
                result = rc;
                goto done;
            }
            z.next_in = in;
            z.avail_in = n;
            off += n;
        }
        z.next_out = out;
        z.avail_out = OUT;
        lzma_ret r = lzma_code(&z, off >= end && z.avail_in == 0 ? LZMA_FINISH : LZMA_RUN);
        streams_out += OUT - z.avail_out;
        if (r == LZMA_STREAM_END) {
            result = 1;
            break;
        }
        if (r == LZMA_OK)
            continue;
        /* garbage after at least some decoded data is trailing data */
        result = (r == LZMA_FORMAT_ERROR && streams_out > 0) ? 1 : 0;
        break;
    }
done:
    lzma_end(&z);
    free(in);
    free(out);
    return result;
}

static int xz_dec_recheck(mrimg_source *src, uint64_t start, uint64_t end, const mrimg_error *e,
                          mrimg_error *why, mrimg_error *err)
{
    int r = xz_decodes_without_checks(src, start, end, err);
    if (r == 1)
        err_set(why, MRIMG_ERR_CHECKSUM, e->offset_kind, e->offset,
                "an xz integrity check does not match (the data decodes with the checks "
                "ignored)");
    return r;
}

const mrimg_codec codec_xz = {
    .name = "xz",
    .magic = xz_magic,
    .magic_len = sizeof(xz_magic),
    .level_min = 0,
    .level_max = 9,
    .level_default = 3,
    .parallel_encode = true,
    .dec_init = xz_dec_init,
    .dec_read = xz_dec_read,
    .dec_free = xz_dec_free,
    .dec_recheck = xz_dec_recheck,
    .enc_init = xz_enc_init,
    .enc_write = xz_enc_write,
    .enc_finish = xz_enc_finish,
    .enc_free = xz_enc_free,
};
