/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bytes.h"

#include <stdlib.h>

static int alloc_buf(srd *s, size_t cap, mrimg_error *err)
{
    s->cap = cap;
    s->buf = xmalloc_aligned(cap, err);
    return s->buf ? 0 : MRIMG_ERR_NOMEM;
}

int srd_init_raw(srd *s, mrimg_source *src, uint64_t base, size_t cap, mrimg_error *err)
{
    memset(s, 0, sizeof(*s));
    s->src = src;
    s->base = base;
    s->limit = src->size > base ? src->size - base : 0;
    s->dropped = base;
    return alloc_buf(s, cap, err);
}

int srd_init_dec(srd *s, mrimg_decoder *dec, size_t cap, mrimg_error *err)
{
    memset(s, 0, sizeof(*s));
    s->dec = dec;
    return alloc_buf(s, cap, err);
}

void srd_free(srd *s)
{
    free(s->buf);
    s->buf = NULL;
}

int srd_flush_tap(srd *s, mrimg_error *err)
{
    if (s->tap && s->r > s->tapped) {
        int rc = s->tap(s->tap_ctx, s->buf + s->tapped, s->r - s->tapped, err);
        if (rc < 0)
            return rc;
        s->tapped = s->r;
    }
    return 0;
}

static int report_progress(srd *s, mrimg_error *err)
{
    if (!s->progress)
        return 0;
    uint64_t done = s->dec ? s->dec->st.in_bytes : s->buf_pos + s->w;
    if (done < s->progress_next && !s->eof)
        return 0;
    s->progress_next = done + (16u << 20);
    if (s->progress(s->progress_ctx, done, s->progress_total))
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    return 0;
}

/* Compact the buffer and read more; returns bytes added (0 at the end). */
static ssize_t fill(srd *s, mrimg_error *err)
{
    if (s->eof)
        return 0;
    int rc = srd_flush_tap(s, err);
    if (rc < 0)
        return rc;
    if (s->r > 0) {
        memmove(s->buf, s->buf + s->r, s->w - s->r);
        s->buf_pos += s->r;
        s->w -= s->r;
        s->r = 0;
        s->tapped = 0;
    }
    size_t room = s->cap - s->w;
    if (room == 0)
        return 0;
    ssize_t n;
    if (s->dec) {
        n = dec_read(s->dec, s->buf + s->w, room, err);
    } else {
        uint64_t at = s->buf_pos + s->w;
        uint64_t left = s->limit > at ? s->limit - at : 0;
        if ((uint64_t)room > left)
            room = (size_t)left;
        n = room ? src_pread_some(s->src, s->buf + s->w, room, s->base + at, err) : 0;
        /* sequential reads: keep the page cache from filling with the input */
        uint64_t done = s->base + s->buf_pos;
        if (n > 0 && done > s->dropped + (64u << 20)) {
            src_drop_cache(s->src, s->dropped, done - s->dropped);
            s->dropped = done;
        }
    }
    if (n < 0)
        return n;
    if (n == 0)
        s->eof = true;
    s->w += (size_t)n;
    rc = report_progress(s, err);
    if (rc < 0)
        return rc;
    return n;
}

int srd_peek(srd *s, size_t n, mrimg_error *err)
{
    if (n > s->cap)
        return err_set(err, MRIMG_ERR_LIMIT, srd_okind(s), srd_eoff(s, srd_pos(s)),
                       "a %zu-byte record exceeds the %zu-byte parse buffer", n, s->cap);
    while (srd_avail(s) < n) {
        ssize_t got = fill(s, err);
        if (got < 0)
            return (int)got;
        if (got == 0)
            return 0;
    }
    return 1;
}

int srd_need(srd *s, size_t n, const char *what, mrimg_error *err)
{
    int rc = srd_peek(s, n, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return err_set(err, MRIMG_ERR_TRUNCATED, srd_okind(s), srd_eoff(s, srd_pos(s) + srd_avail(s)),
                       "stream ends inside %s (%zu of %zu bytes present)", what, srd_avail(s), n);
    return 0;
}

int srd_skip(srd *s, uint64_t n, const char *what, mrimg_error *err)
{
    while (n) {
        if (srd_avail(s) == 0) {
            ssize_t got = fill(s, err);
            if (got < 0)
                return (int)got;
            if (got == 0)
                return err_set(err, MRIMG_ERR_TRUNCATED, srd_okind(s), srd_eoff(s, srd_pos(s)),
                               "stream ends inside %s (%llu bytes missing)", what,
                               (unsigned long long)n);
        }
        size_t k = (size_t)MRIMG_MIN((uint64_t)srd_avail(s), n);
        s->r += k;
        n -= k;
    }
    return 0;
}

int srd_seek(srd *s, uint64_t pos, mrimg_error *err)
{
    if (s->dec)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_STREAM, srd_pos(s),
                       "cannot seek in a compressed payload (mapped-ram needs a seekable file)");
    if (s->tap)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "seek while copying the stream");
    if (pos >= s->buf_pos && pos <= s->buf_pos + s->w) {
        s->r = (size_t)(pos - s->buf_pos);
        return 0;
    }
    s->buf_pos = pos;
    s->r = s->w = 0;
    s->tapped = 0;
    s->eof = false;
    return 0;
}

int srd_drain(srd *s, srd_tap_fn fn, void *ctx, mrimg_error *err)
{
    for (;;) {
        if (srd_avail(s)) {
            size_t n = srd_avail(s);
            if (fn) {
                int rc = fn(ctx, srd_ptr(s), n, err);
                if (rc < 0)
                    return rc;
            }
            s->r += n;
        }
        ssize_t got = fill(s, err);
        if (got < 0)
            return (int)got;
        if (got == 0 && srd_avail(s) == 0)
            break;
    }
    return srd_flush_tap(s, err);
}
