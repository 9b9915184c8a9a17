/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hole-aware reading of page runs (pages.h). */
#include "pages.h"

#include <fcntl.h>
#include <stdlib.h>

#define PG_DEFAULT_READ (8u << 20)

/* Where the walk stands, and the extent the file reported last. */
typedef struct pg_iter {
    mrimg_source *src;
    const pg_region *reg;
    size_t nreg, r;
    uint64_t i;                /* next page of reg[r] */
    bool started;
    uint64_t run_end;          /* the bitmap run containing i ends here */
    bool run_set;
    uint64_t cq, cd, cde;      /* from cq on, data starts at cd and ends at cde */
    bool cache;
    unsigned flags;
    uint64_t max_read;
} pg_iter;

/* A run found but not read yet. */
typedef struct pg_desc {
    pg_run run;
    bool read;                 /* its bytes are to be read */
} pg_desc;

/* The data extent at or after off: *d (== off when off is in data) and its end. */
static int extent_at(pg_iter *it, uint64_t off, uint64_t *d, uint64_t *de, mrimg_error *err)
{
    if (!it->cache || off < it->cq || off >= MRIMG_MAX(it->cd, it->cde)) {
        int rc = src_next_data(it->src, off, &it->cd, &it->cde, err);
        if (rc < 0)
            return rc;
        it->cq = off;
        it->cache = true;
    }
    *d = MRIMG_MAX(it->cd, off);
    *de = it->cde;
    return 0;
}

/* The next run: 1 with *out filled, 0 at the end, <0 on error. */
static int pg_next(pg_iter *it, pg_desc *out, mrimg_error *err)
{
    for (;;) {
        if (it->r >= it->nreg)
            return 0;
        const pg_region *g = &it->reg[it->r];
        if (!it->started) {
            it->i = g->first;
            it->run_end = g->first;
            it->started = true;
        }
        if (it->i >= g->end || g->ps == 0) {
            it->r++;
            it->started = false;
            continue;
        }
        if (it->i >= it->run_end) {
            if (!g->bits) {
                it->run_set = true;
                it->run_end = g->end;
            } else {
                it->run_set = lb_test(g->bits, it->i);
                uint64_t e = it->run_set ? lb_next_clear(g->bits, it->i)
                                         : lb_next_set(g->bits, it->i);
                it->run_end = MRIMG_MIN(e, g->end);
            }
        }
        if (!it->run_set && !(it->flags & PG_WANT_CLEAR)) {
            it->i = it->run_end;
            continue;
        }
        uint64_t ps = g->ps, left = it->run_end - it->i, off, d, de, k;
        if (!mul_ok(it->i, ps, &off) || !add_ok(off, g->base, &off))
            off = UINT64_MAX; /* past any file: read, and found truncated */
        int rc = extent_at(it, off, &d, &de, err);
        if (rc < 0)
            return rc;
        bool hole = d > off && d - off >= ps;
        if (hole) {
            k = MRIMG_MIN(left, (d - off) / ps);
        } else {
            k = left;
            if (it->run_set && !(it->flags & PG_NO_READ))
                k = MRIMG_MIN(k, MRIMG_MAX(it->max_read / ps, 1));
            if (de > off) /* up to the end of this data extent: the next hole is skipped */
                k = MRIMG_MIN(k, (de - off + ps - 1) / ps);
        }
            out->run = (pg_run){.id = g->id, .first = it->i, .n = k, .off = off, .ps = ps};
        out->run.kind = it->run_set ? (hole ? PG_HOLE : PG_DATA) : (hole ? PG_CLEAR_HOLE : PG_CLEAR);
        out->read = out->run.kind == PG_DATA && !(it->flags & PG_NO_READ);
        it->i += k;
        return 1;
    }
}

/* Page-cache advice in spans: what is read next is asked for ahead
 * (WILLNEED), what was worked on is dropped (DONTNEED).  A span bridges
 * holes up to PG_GAP, never a larger one (a hole of unused RAM can be
 * gigabytes: read ahead it would fill the cache with zero pages). */
#define PG_AHEAD (32u << 20)   /* bytes of data asked for ahead of the run worked on */
#define PG_QUEUE 256u          /* runs found ahead at most */
#define PG_DROP (16u << 20)    /* dropped in spans of at least this much */
#define PG_GAP (1u << 20)

typedef struct pg_span {
    uint64_t from, to;
} pg_span;

static void span_flush(mrimg_source *src, pg_span *s, int advice)
{
    if (s->to > s->from)
        (void)posix_fadvise(src->fd, (off_t)s->from, (off_t)(s->to - s->from), advice);
    s->from = s->to = 0;
}

/* Add [off, off+len) to span s; a span that cannot take it is issued first. */
static void span_add(mrimg_source *src, pg_span *s, uint64_t off, uint64_t len, int advice)
{
    if (s->to > s->from && off >= s->to && off - s->to <= PG_GAP) {
        s->to = off + len;
        return;
    }
    span_flush(src, s, advice);
    s->from = off;
    s->to = off + len;
}

int pg_read(mrimg_source *src, const pg_region *reg, size_t nreg, pg_opts *o, pg_fn fn,
            void *opaque, mrimg_error *err)
{
    pg_iter it = {.src = src, .reg = reg, .nreg = nreg, .flags = o->flags,
                  .max_read = o->max_read ? o->max_read : PG_DEFAULT_READ};
    size_t cap = 0;
    for (size_t r = 0; r < nreg; r++) /* a buffer for the largest read, not more */
        if (reg[r].ps && reg[r].end > reg[r].first) {
            uint64_t pages = MRIMG_MAX(it.max_read / reg[r].ps, 1);
            pages = MRIMG_MIN(pages, reg[r].end - reg[r].first);
            cap = (size_t)MRIMG_MAX((uint64_t)cap, pages * reg[r].ps);
        }
    pg_desc *q = xcalloc(PG_QUEUE, sizeof(*q), err);
    if (!q)
        return MRIMG_ERR_NOMEM;
    uint8_t *buf = NULL;
    size_t qh = 0, qn = 0;
    uint64_t ahead = 0;
    pg_span adv = {0, 0}, drop = {0, 0};
    bool end = false;
    int rc = 0;
    for (;;) {
        /* find the runs ahead and ask for their data */
        while (!end && qn < PG_QUEUE && ahead < PG_AHEAD) {
            pg_desc *d = &q[(qh + qn) % PG_QUEUE];
            rc = pg_next(&it, d, err);
            if (rc <= 0) {
                end = true;
                break;
            }
            qn++;
            if (d->read) {
                ahead += d->run.n * d->run.ps;
                span_add(src, &adv, d->run.off, d->run.n * d->run.ps, POSIX_FADV_WILLNEED);
            }
        }
        span_flush(src, &adv, POSIX_FADV_WILLNEED);
        if (rc < 0 || qn == 0)
            break;
        pg_desc cur = q[qh];
        qh = (qh + 1) % PG_QUEUE;
        qn--;
        uint64_t len = cur.run.n * cur.run.ps;
        if (cur.read) {
            ahead -= len;
            if (!buf && !(buf = xmalloc_aligned(cap, err))) {
                rc = MRIMG_ERR_NOMEM;
                break;
            }
            rc = src_pread(src, buf, (size_t)len, cur.run.off, o->what ? o->what : "pages", err);
            if (rc < 0)
                break;
            o->bytes_read += len;
            cur.run.data = buf;
        }
        rc = fn(opaque, &cur.run, err);
        if (rc < 0)
            break;
        if (cur.read && src->regular) {
            span_add(src, &drop, cur.run.off, len, POSIX_FADV_DONTNEED);
            if (drop.to - drop.from >= PG_DROP)
                span_flush(src, &drop, POSIX_FADV_DONTNEED);
        }
    }
    if (src->regular)
        span_flush(src, &drop, POSIX_FADV_DONTNEED);
    free(buf);
    free(q);
    return rc < 0 ? rc : 0;
}

int pg_load_bitmap(mrimg_source *src, uint64_t off, uint64_t pages, lbitmap *bm, uint64_t *stray,
                   uint64_t *first_stray, mrimg_error *err)
{
    enum { CHUNK = 1u << 20 };
    uint64_t total = (pages + 63) / 64 * 8, extra = 0, first_extra = 0;
    uint8_t *buf = total ? xmalloc((size_t)MRIMG_MIN((uint64_t)CHUNK, total), err) : NULL;
    if (total && !buf)
        return MRIMG_ERR_NOMEM;
    int rc = 0;
    for (uint64_t done = 0; done < total;) {
        size_t n = (size_t)MRIMG_MIN((uint64_t)CHUNK, total - done);
        rc = src_pread(src, buf, n, off + done, "mapped-ram bitmap", err);
        if (rc < 0)
            break;
        rc = lb_load_le(bm, done * 8, buf, n / 8, err);
        if (rc < 0)
            break;
        /* bits at or past the last page: only the last word can hold them */
        uint64_t bit = (done + n - 8) * 8;
        if (bit + 64 > pages) {
            uint64_t w = rd_le64(buf + n - 8);
            if (bit < pages)
                w &= ~((1ull << (pages - bit)) - 1);
            if (w) {
                first_extra = bit + (uint64_t)__builtin_ctzll(w);
                extra = (uint64_t)__builtin_popcountll(w);
            }
        }
        done += n;
    }
    free(buf);
    if (stray)
        *stray = extra;
    if (first_stray)
        *first_stray = first_extra;
    return rc;
}
