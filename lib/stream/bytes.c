/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bytes.h"

#include <pthread.h>
#include <stdlib.h>

enum { PF_EMPTY, PF_FULL, PF_END };

struct srd_prefetch {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *buf;          /* SRD_HEAD + cap bytes; data at SRD_HEAD */
    size_t len;
    int state;
    bool stop;
    int rc;                /* PF_END: 0 end of stream, <0 error */
    mrimg_error err;
    uint64_t at;           /* raw: stream offset of the next read */
    uint64_t in_bytes;     /* compressed bytes consumed so far */
};

static int alloc_buf(srd *s, size_t cap, mrimg_error *err)
{
    s->cap = cap;
    s->buf = xmalloc_aligned(cap + SRD_HEAD, err);
    return s->buf ? 0 : MRIMG_ERR_NOMEM;
}

/* One read of the producer: up to room bytes at dst. */
static ssize_t produce(srd *s, uint8_t *dst, size_t room, uint64_t at, mrimg_error *err)
{
    if (s->dec)
        return dec_read(s->dec, dst, room, err);
    uint64_t left = s->limit > at ? s->limit - at : 0;
    if ((uint64_t)room > left)
        room = (size_t)left;
    return room ? src_pread_some(s->src, dst, room, s->base + at, err) : 0;
}

static void *pf_main(void *arg)
{
    srd *s = arg;
    srd_prefetch *pf = s->pf;
    pthread_mutex_lock(&pf->mu);
    for (;;) {
        while (!pf->stop && pf->state != PF_EMPTY)
            pthread_cond_wait(&pf->cv, &pf->mu);
        if (pf->stop)
            break;
        uint64_t at = pf->at;
        pthread_mutex_unlock(&pf->mu);
        mrimg_error e;
        mrimg_error_clear(&e);
        ssize_t n = produce(s, pf->buf + SRD_HEAD, s->cap, at, &e);
        if (n > 0 && !s->dec) {
            /* keep the page cache from filling with the input */
            src_drop_cache(s->src, s->base + at, (uint64_t)n);
        }
        pthread_mutex_lock(&pf->mu);
        if (n > 0) {
            pf->len = (size_t)n;
            pf->at = at + (uint64_t)n;
            pf->state = PF_FULL;
        } else {
            pf->rc = (int)n;
            pf->err = e;
            pf->state = PF_END;
        }
        if (s->dec)
            pf->in_bytes = s->dec->st.in_bytes;
        pthread_cond_broadcast(&pf->cv);
    }
    pthread_mutex_unlock(&pf->mu);
    return NULL;
}

void srd_prefetch_start(srd *s)
{
    if (s->pf || s->eof || cpu_count() < 2)
        return;
    srd_prefetch *pf = calloc(1, sizeof(*pf));
    if (!pf)
        return;
    pf->buf = xmalloc_aligned(s->cap + SRD_HEAD, NULL);
    if (!pf->buf) {
        free(pf);
        return;
    }
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    pf->at = s->buf_pos + s->w;
    pf->state = PF_EMPTY;
    s->pf = pf;
    if (pthread_create(&pf->th, NULL, pf_main, s) != 0) {
        s->pf = NULL;
        pthread_mutex_destroy(&pf->mu);
        pthread_cond_destroy(&pf->cv);
        free(pf->buf);
        free(pf);
    }
}

void srd_prefetch_stop(srd *s)
{
    srd_prefetch *pf = s->pf;
    if (!pf)
        return;
    pthread_mutex_lock(&pf->mu);
    pf->stop = true;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    pthread_join(pf->th, NULL);
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
    free(pf->buf);
    free(pf);
    s->pf = NULL;
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

size_t srd_footprint(const srd *s)
{
    if (!s->buf)
        return 0;
    return (s->cap + SRD_HEAD) * (s->pf ? 2u : 1u);
}

void srd_free(srd *s)
{
    srd_prefetch_stop(s);
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
    uint64_t done = s->dec ? (s->pf ? s->in_bytes : s->dec->st.in_bytes) : s->buf_pos + s->w;
    if (done < s->progress_next && !s->eof)
        return 0;
    s->progress_next = done + (16u << 20);
    if (s->progress(s->progress_ctx, done, s->progress_total))
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    return 0;
}

/* Compact the buffer and read more; returns bytes added (0 at the end). */
/* Take the buffer the read-ahead thread filled; the unparsed rest of the
 * current one goes in front of it. */
static ssize_t fill_prefetched(srd *s, mrimg_error *err)
{
    srd_prefetch *pf = s->pf;
    size_t left = s->w - s->r;
    pthread_mutex_lock(&pf->mu);
    while (pf->state == PF_EMPTY)
        pthread_cond_wait(&pf->cv, &pf->mu);
    s->in_bytes = pf->in_bytes;
    if (pf->state == PF_END) {
        int rc = pf->rc;
        if (rc < 0 && err)
            *err = pf->err;
        pthread_mutex_unlock(&pf->mu);
        if (rc < 0)
            return rc;
        s->eof = true;
        return 0;
    }
    uint8_t *nb = pf->buf;
    memcpy(nb + SRD_HEAD - left, s->buf + s->r, left);
    uint64_t pos = s->buf_pos + s->r;
    size_t n = pf->len;
    pf->buf = s->buf;
    pf->state = PF_EMPTY;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    s->buf = nb;
    s->buf_pos = pos - (SRD_HEAD - left);
    s->r = SRD_HEAD - left;
    s->w = SRD_HEAD + n;
    s->tapped = s->r;
    return (ssize_t)n;
}

static ssize_t fill(srd *s, mrimg_error *err)
{
    if (s->eof)
        return 0;
    int rc = srd_flush_tap(s, err);
    if (rc < 0)
        return rc;
    if (s->pf && s->w - s->r <= SRD_HEAD) {
        ssize_t n = fill_prefetched(s, err);
        if (n >= 0) {
            int prc = report_progress(s, err);
            if (prc < 0)
                return prc;
        }
        return n;
    }
    if (s->pf) /* more unparsed bytes than fit in front: go synchronous */
        srd_prefetch_stop(s);
    if (s->r > 0) {
        memmove(s->buf, s->buf + s->r, s->w - s->r);
        s->buf_pos += s->r;
        s->w -= s->r;
        s->r = 0;
        s->tapped = 0;
    }
    size_t room = s->w < s->cap ? s->cap - s->w : 0;
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
    srd_prefetch_stop(s);
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
