/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hole-aware reading of page runs (pages.h). */
#include "pages.h"

#include <fcntl.h>
#include <pthread.h>
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
            } else if (it->i >= g->bits->nbits) { /* past the bitmap: clear */
                it->run_set = false;
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

/* ---- the producer: runs found, data asked for ahead and read ----------- */

#define PG_SLOT_RUNS 256u      /* runs one slot carries at most */

typedef struct pg_slot {
    uint8_t *buf;              /* the slot's read runs, one after the other */
    size_t used;
    pg_desc runs[PG_SLOT_RUNS];
    size_t at[PG_SLOT_RUNS];   /* where a read run's bytes start in buf */
    unsigned n;
    bool end;                  /* no run after these */
    int rc;                    /* <0: the producer failed after these runs */
    mrimg_error err;
    bool full;                 /* handed to the consumer */
} pg_slot;

typedef struct pg_prod {
    pg_iter it;
    mrimg_source *src;
    const char *what;
    size_t cap;                /* bytes of one slot's buffer */
    pg_desc q[PG_QUEUE];       /* runs found ahead */
    size_t qh, qn;
    uint64_t ahead;            /* bytes to read in q */
    pg_span adv;
    bool end;
    uint64_t bytes_read;
} pg_prod;

/* Fill slot s with the next runs, reading their data. */
static void fill(pg_prod *p, pg_slot *s)
{
    s->used = 0;
    s->n = 0;
    s->end = false;
    s->rc = 0;
    mrimg_error_clear(&s->err);
    for (;;) {
        /* find the runs ahead and ask for their data */
        while (!p->end && p->qn < PG_QUEUE && p->ahead < PG_AHEAD) {
            pg_desc *d = &p->q[(p->qh + p->qn) % PG_QUEUE];
            int rc = pg_next(&p->it, d, &s->err);
            if (rc < 0) {
                s->rc = rc;
                return;
            }
            if (rc == 0) {
                p->end = true;
                break;
            }
            p->qn++;
            if (d->read) {
                p->ahead += d->run.n * d->run.ps;
                span_add(p->src, &p->adv, d->run.off, d->run.n * d->run.ps, POSIX_FADV_WILLNEED);
            }
        }
        span_flush(p->src, &p->adv, POSIX_FADV_WILLNEED);
        if (p->qn == 0) {
            s->end = true;
            return;
        }
        if (s->n == PG_SLOT_RUNS)
            return;
        pg_desc *d = &p->q[p->qh];
        uint64_t len = d->run.n * d->run.ps;
        if (d->read) {
            if (s->used + len > p->cap && s->n) /* a read is never larger than cap */
                return;
            int rc = src_pread(p->src, s->buf + s->used, (size_t)len, d->run.off, p->what,
                               &s->err);
            if (rc < 0) {
                s->rc = rc;
                return;
            }
            s->at[s->n] = s->used;
            s->used += (size_t)len;
            p->ahead -= len;
            p->bytes_read += len;
        }
        s->runs[s->n++] = *d;
        p->qh = (p->qh + 1) % PG_QUEUE;
        p->qn--;
    }
}

/* ---- the read-ahead thread --------------------------------------------- */

typedef struct pg_rt {
    pg_prod *p;
    pg_slot *slot[2];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
} pg_rt;

static void *rt_main(void *arg)
{
    pg_rt *t = arg;
    for (unsigned i = 0;; i ^= 1) {
        pg_slot *s = t->slot[i];
        pthread_mutex_lock(&t->mu);
        while (!t->stop && s->full)
            pthread_cond_wait(&t->cv, &t->mu);
        bool stop = t->stop;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            break;
        fill(t->p, s);
        pthread_mutex_lock(&t->mu);
        s->full = true;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        if (s->end || s->rc < 0)
            break;
    }
    return NULL;
}

/* ---- the consumer ------------------------------------------------------ */

/* Hand slot s's runs to fn; 1 when they were the last, 0 to go on, <0. */
static int consume(mrimg_source *src, pg_slot *s, pg_span *drop, pg_fn fn, void *opaque,
                   mrimg_error *err)
{
    for (unsigned k = 0; k < s->n; k++) {
        pg_desc *d = &s->runs[k];
        if (d->read)
            d->run.data = s->buf + s->at[k];
        int rc = fn(opaque, &d->run, err);
        if (rc < 0)
            return rc;
        if (d->read && src->regular) {
            span_add(src, drop, d->run.off, d->run.n * d->run.ps, POSIX_FADV_DONTNEED);
            if (drop->to - drop->from >= PG_DROP)
                span_flush(src, drop, POSIX_FADV_DONTNEED);
        }
    }
    if (s->rc < 0) {
        if (err)
            *err = s->err;
        return s->rc;
    }
    return s->end ? 1 : 0;
}

int pg_read(mrimg_source *src, const pg_region *reg, size_t nreg, pg_opts *o, pg_fn fn,
            void *opaque, mrimg_error *err)
{
    pg_prod *p = xcalloc(1, sizeof(*p), err);
    pg_slot *slot[2] = {xcalloc(1, sizeof(pg_slot), err), xcalloc(1, sizeof(pg_slot), err)};
    int rc = MRIMG_ERR_NOMEM;
    if (!p || !slot[0] || !slot[1])
        goto out;
    p->it = (pg_iter){.src = src, .reg = reg, .nreg = nreg, .flags = o->flags,
                      .max_read = o->max_read ? o->max_read : PG_DEFAULT_READ};
    p->src = src;
    p->what = o->what ? o->what : "pages";
    uint64_t span = 0; /* bytes the regions cover */
    for (size_t r = 0; r < nreg; r++) /* a buffer for the largest read, not more */
        if (reg[r].ps && reg[r].end > reg[r].first) {
            uint64_t pages = MRIMG_MAX(p->it.max_read / reg[r].ps, 1);
            pages = MRIMG_MIN(pages, reg[r].end - reg[r].first);
            p->cap = (size_t)MRIMG_MAX((uint64_t)p->cap, pages * reg[r].ps);
            span += (reg[r].end - reg[r].first) * reg[r].ps;
        }
    pg_span drop = {0, 0};
    /* reads of more than two buffers go on in a thread of their own while
     * fn works; a small request (one page of mrimg_ram_read) stays here */
    bool threaded = !(o->flags & (PG_NO_READ | PG_ONE_THREAD)) && span > 2 * (uint64_t)p->cap &&
                    cpu_count() > 1;
    for (unsigned i = 0; i < (threaded ? 2u : 1u); i++)
        if (p->cap && !(slot[i]->buf = xmalloc_aligned(p->cap, err)))
            goto out;
    pg_rt t = {.p = p, .slot = {slot[0], slot[1]}};
    pthread_t th;
    if (threaded) {
        pthread_mutex_init(&t.mu, NULL);
        pthread_cond_init(&t.cv, NULL);
        if (pthread_create(&th, NULL, rt_main, &t) != 0) {
            pthread_mutex_destroy(&t.mu);
            pthread_cond_destroy(&t.cv);
            threaded = false;
        }
    }
    if (!threaded) {
        do {
            fill(p, slot[0]);
            rc = consume(src, slot[0], &drop, fn, opaque, err);
        } while (rc == 0);
    } else {
        for (unsigned i = 0;; i ^= 1) {
            pg_slot *s = slot[i];
            pthread_mutex_lock(&t.mu);
            while (!s->full)
                pthread_cond_wait(&t.cv, &t.mu);
            pthread_mutex_unlock(&t.mu);
            rc = consume(src, s, &drop, fn, opaque, err);
            if (rc != 0)
                break;
            pthread_mutex_lock(&t.mu);
            s->full = false;
            pthread_cond_broadcast(&t.cv);
            pthread_mutex_unlock(&t.mu);
        }
        pthread_mutex_lock(&t.mu);
        t.stop = true;
        pthread_cond_broadcast(&t.cv);
        pthread_mutex_unlock(&t.mu);
        pthread_join(th, NULL);
        pthread_mutex_destroy(&t.mu);
        pthread_cond_destroy(&t.cv);
    }
    if (src->regular)
        span_flush(src, &drop, POSIX_FADV_DONTNEED);
    o->bytes_read += p->bytes_read;
    if (rc > 0)
        rc = 0;
out:
    for (unsigned i = 0; i < 2; i++)
        if (slot[i]) {
            free(slot[i]->buf);
            free(slot[i]);
        }
    free(p);
    return rc;
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
