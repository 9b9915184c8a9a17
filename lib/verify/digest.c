/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Digests and comparison of the guest state (RAM per block + device state).
 *
 * One walk per image through the RAM view (canonical order, any layout,
 * any compression) feeds a SHA-256 per block; the device state is the tail
 * the same pass kept in the image, and the quick judgement rides on that
 * pass too (dg_run): one read of each input.  For a comparison
 * each walk also keeps a 64-bit hash per page (per granule of pages for
 * very large blocks) to say which pages differ; the two walks run in two
 * threads.  The definition of the digest is in mrimg.h and imgverify(1). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "judge.h"
#include "vfy.h"
#include "../util/vec.h"

/* page-hash entries per image, all blocks together: beyond this, pages are
 * hashed in granules of 2, 4, ... pages (the same for every block of an
 * image, so that equal block lists give comparable arrays) */
#define GRAN_MAX_ENTRIES (4u << 20)

typedef struct dg_block {
    vf_sha256 sha;
    uint64_t nonzero;
    uint64_t pages, page_size;
    uint64_t granule;        /* pages per hash entry */
    uint64_t *gh;            /* hash entries (comparisons only) */
    uint64_t ngh;
} dg_block;

typedef struct dg {
    mrimg_image *img;
    bool hashes;             /* keep per-page hashes */
    bool setup;
    unsigned nblocks;
    dg_block *b;
    /* the device state: borrowed from the image (img_tail), stream
     * offsets [tail_pos, tail_pos + dev_len) */
    const uint8_t *dev;
    uint64_t tail_pos, dev_len;
    /* progress: user callback (main thread) or shared counters */
    mrimg_progress_fn progress;
    void *pctx;
    uint64_t done, total;    /* of the current pass (atomic access) */
    int *cancel;             /* shared cancel flag (atomic access) */
} dg;

static void dg_blocks_free(dg *d)
{
    if (d->b)
        for (unsigned i = 0; i < d->nblocks; i++)
            free(d->b[i].gh);
    free(d->b);
    d->b = NULL;
    d->nblocks = 0;
    d->setup = false;
}

static void put_name(vf_sha256 *s, const char *name, uint64_t used, uint64_t ps)
{
    uint8_t b[8];
    size_t nl = strlen(name);
    wr_be16(b, (uint16_t)nl);
    vf_sha256_update(s, b, 2);
    vf_sha256_update(s, name, nl);
    wr_be64(b, used);
    vf_sha256_update(s, b, 8);
    wr_be64(b, ps);
    vf_sha256_update(s, b, 8);
}

static int dg_setup(dg *d, mrimg_error *err)
{
    dg_blocks_free(d);
    unsigned n = mrimg_block_count(d->img);
    d->b = xcalloc(n ? n : 1, sizeof(*d->b), err);
    if (!d->b)
        return MRIMG_ERR_NOMEM;
    d->nblocks = n;
    /* one granule for the image, from the pages of all its blocks: memory
     * and work follow a budget, not the lengths a block list claims */
    uint64_t total = 0, granule = 1;
    for (unsigned i = 0; i < n; i++)
        total += mrimg_block(d->img, i)->pages;
    while (total / granule > GRAN_MAX_ENTRIES)
        granule *= 2;
    for (unsigned i = 0; i < n; i++) {
        const mrimg_ram_block_info *bi = mrimg_block(d->img, i);
        dg_block *b = &d->b[i];
        b->pages = bi->pages;
        b->page_size = bi->page_size;
        vf_sha256_init(&b->sha);
        static const char tag[] = "mrimg-ram-block-v1";
        vf_sha256_update(&b->sha, tag, sizeof(tag)); /* with its NUL */
        put_name(&b->sha, bi->name, bi->used_length, bi->page_size);
        if (d->hashes) {
            b->granule = granule;
            b->ngh = (b->pages + b->granule - 1) / b->granule;
            b->gh = xcalloc(b->ngh ? b->ngh : 1, sizeof(uint64_t), err);
            if (!b->gh)
                return MRIMG_ERR_NOMEM;
        }
    }
    d->setup = true;
    return 0;
}

static inline uint64_t mix64(uint64_t h)
{
    h ^= h >> 31;
    h *= 0x7fb5d329728ea185ull;
    h ^= h >> 27;
    h *= 0x81dadef4bc2dd44dull;
    h ^= h >> 33;
    return h;
}

static int dg_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                 mrimg_error *err)
{
    dg *d = opaque;
    if (d->cancel && __atomic_load_n(d->cancel, __ATOMIC_RELAXED))
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    if (block == MRIMG_WALK_RESTART) {
        dg_blocks_free(d);
        return 0;
    }
    if (!d->setup) {
        int rc = dg_setup(d, err);
        if (rc < 0)
            return rc;
    }
    if (block >= d->nblocks)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0, "RAM walk past the block list");
    if (!data)
        return 0;
    dg_block *b = &d->b[block];
    size_t ps = (size_t)b->page_size;
    for (uint64_t k = 0; k < n; k++) {
        const uint8_t *pg = data + k * ps;
        if (mem_is_zero(pg, ps))
            continue;
        uint64_t idx = first + k;
        uint8_t ib[8];
        wr_be64(ib, idx);
        vf_sha256_update(&b->sha, ib, 8);
        vf_sha256_update(&b->sha, pg, ps);
        b->nonzero++;
        if (b->gh)
            b->gh[idx / b->granule] ^= mix64(vf_hash64(pg, ps) + idx * 0x9E3779B97F4A7C15ull);
    }
    return 0;
}

static int walk_progress(void *opaque, uint64_t done, uint64_t total)
{
    dg *d = opaque;
    __atomic_store_n(&d->done, done, __ATOMIC_RELAXED);
    __atomic_store_n(&d->total, total, __ATOMIC_RELAXED);
    if (d->cancel && __atomic_load_n(d->cancel, __ATOMIC_RELAXED))
        return 1;
    return d->progress ? d->progress(d->pctx, done, total) : 0;
}

/* Walk img: block digests, optional page hashes, the device state.  The
 * quick judgement (mrimg_check) rides on the walk's pass when img has none
 * yet, so that judging and digesting read the input once (a pipe gives
 * one pass); a pass that did not carry it to the end leaves it to
 * mrimg_check.  The device state is the one the pass kept in the image. */
static int dg_run(dg *d, mrimg_error *err)
{
    mrimg_image *img = d->img;
    vf_judge *j = NULL;
    if (!img->judgement) {
        int jrc = vf_judge_begin(img, &j, err);
        if (jrc < 0)
            return jrc;
        if (jrc == 0 && img_rider_add(img, vf_judge_rider(j)) < 0) {
            vf_judge_free(j);
            j = NULL;
        }
    }
    int rc = mrimg_ram_walk(img, dg_cb, d, walk_progress, d, err);
    if (j) {
        img_rider_remove(img, vf_judge_rider(j));
        const mrimg_verify_result *jr;
        mrimg_error je;
        (void)vf_judge_end(j, img, &jr, &je); /* else mrimg_check makes its own */
        vf_judge_free(j);
    }
    if (rc == 0 && !d->setup)
        rc = dg_setup(d, err); /* no page at all was delivered */
    if (rc == 0)
        rc = img_tail(img, err);
    if (rc < 0)
        return rc;
    const mrimg_stream_info *si = mrimg_stream(img);
    d->tail_pos = img->tail_start;
    if (!si->has_eof || si->eof_offset < d->tail_pos)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                       "the end of the device state (EOF record) is unknown");
    d->dev_len = si->eof_offset - d->tail_pos;
    if (d->dev_len > img->tail_len)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_NONE, 0,
                       "the end of the device state lies outside the kept tail");
    d->dev = img->tail;
    return 0;
}

static void dg_free(dg *d)
{
    dg_blocks_free(d);
    d->dev = NULL;
}

static mrimg_digest *dg_result(dg *d, mrimg_error *err)
{
    mrimg_digest *r = xcalloc(1, sizeof(*r), err);
    if (!r)
        return NULL;
    r->blocks = xcalloc(d->nblocks ? d->nblocks : 1, sizeof(*r->blocks), err);
    if (!r->blocks) {
        free(r);
        return NULL;
    }
    r->nblocks = d->nblocks;
    uint64_t dev_len = d->dev_len;
    vf_sha256 t;
    vf_sha256_init(&t);
    vf_sha256_update(&t, d->dev, (size_t)dev_len);
    vf_sha256_final(&t, r->device_digest);
    r->device_bytes = dev_len;
    r->device_offset = d->tail_pos;

    vf_sha256 all;
    vf_sha256_init(&all);
    static const char tag[] = "mrimg-digest-v1";
    vf_sha256_update(&all, tag, sizeof(tag));
    uint8_t b[8];
    wr_be32(b, d->nblocks);
    vf_sha256_update(&all, b, 4);
    for (unsigned i = 0; i < d->nblocks; i++) {
        const mrimg_ram_block_info *bi = mrimg_block(d->img, i);
        mrimg_block_digest *o = &r->blocks[i];
        memcpy(o->name, bi->name, sizeof(o->name));
        o->used_length = bi->used_length;
        o->page_size = bi->page_size;
        o->pages_nonzero = d->b[i].nonzero;
        vf_sha256 s = d->b[i].sha;
        vf_sha256_final(&s, o->digest);
        put_name(&all, bi->name, bi->used_length, bi->page_size);
        vf_sha256_update(&all, o->digest, MRIMG_DIGEST_LEN);
    }
    wr_be64(b, dev_len);
    vf_sha256_update(&all, b, 8);
    vf_sha256_update(&all, r->device_digest, MRIMG_DIGEST_LEN);
    vf_sha256_final(&all, r->digest);
    return r;
}

void mrimg_digest_free(mrimg_digest *d)
{
    if (!d)
        return;
    free(d->blocks);
    free(d);
}

void mrimg_digest_hex(const uint8_t *digest, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < MRIMG_DIGEST_LEN; i++) {
        out[2 * i] = hx[digest[i] >> 4];
        out[2 * i + 1] = hx[digest[i] & 15];
    }
    out[2 * MRIMG_DIGEST_LEN] = '\0';
}

int mrimg_digest_compute(mrimg_image *img, mrimg_digest **out, mrimg_progress_fn progress,
                         void *pctx, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!img || !out)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no image or result");
    *out = NULL;
    dg d;
    memset(&d, 0, sizeof(d));
    d.img = img;
    d.progress = progress;
    d.pctx = pctx;
    int rc = dg_run(&d, err);
    if (rc == 0) {
        *out = dg_result(&d, err);
        if (!*out)
            rc = MRIMG_ERR_NOMEM;
    }
    dg_free(&d);
    return rc;
}

/* ---- comparison --------------------------------------------------------------- */

typedef struct side {
    dg d;
    mrimg_error err;
    int rc;
} side;

static void *side_thread(void *arg)
{
    side *s = arg;
    s->rc = dg_run(&s->d, &s->err);
    return NULL;
}

/* Both sides on one scale: total = the payload bytes of A and B; each
 * side counts its payload times the fraction of its current pass (a side
 * may make more than one pass: a scan, a replay); never decreasing. */
typedef struct main_progress {
    side *a, *b;
    mrimg_progress_fn fn;
    void *ctx;
    int cancel;
    uint64_t pa, pb, shown;
} main_progress;

static uint64_t side_share(uint64_t done, uint64_t total, uint64_t weight)
{
    if (!total)
        return 0;
    return (uint64_t)((double)MRIMG_MIN(done, total) / (double)total * (double)weight);
}

static int compare_progress(void *opaque, uint64_t done, uint64_t total)
{
    main_progress *m = opaque;
    uint64_t da = __atomic_load_n(&m->a->d.done, __ATOMIC_RELAXED);
    uint64_t ta = __atomic_load_n(&m->a->d.total, __ATOMIC_RELAXED);
    uint64_t at = side_share(da, ta, m->pa) + side_share(done, total, m->pb);
    if (at > m->shown)
        m->shown = at;
    if (m->fn && m->fn(m->ctx, m->shown, m->pa + m->pb)) {
        __atomic_store_n(&m->cancel, 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

static uint64_t payload_of(const mrimg_image *img)
{
    if (!src_size_known(&img->src)) /* a pipe: its share shows at its end */
        return 1;
    return img->src.size > img->ci.payload_offset ? img->src.size - img->ci.payload_offset : 1;
}

/* A short unified-diff-like text of two strings (NULL if equal). */
static char *text_diff(const char *a, const char *b, const char *la, const char *lb)
{
    if (!strcmp(a, b))
        return NULL;
    /* lines */
    typedef struct line { const char *p; size_t l; } line;
    VEC(line) lines[2] = {{0}};
    char *out = NULL;
    for (int side_i = 0; side_i < 2; side_i++) {
        const char *s = side_i ? b : a;
        while (*s) {
            const char *e = strchr(s, '\n');
            size_t l = e ? (size_t)(e - s) : strlen(s);
            if (!vec_push(&lines[side_i], ((line){s, l}), 64, 0))
                goto done;
            s += l + (e ? 1 : 0);
        }
    }
    const line *A = lines[0].v, *B = lines[1].v;
    size_t na = lines[0].n, nb = lines[1].n;
    size_t pre = 0;
    while (pre < na && pre < nb && A[pre].l == B[pre].l && !memcmp(A[pre].p, B[pre].p, A[pre].l))
        pre++;
    size_t suf = 0;
    while (suf < na - pre && suf < nb - pre && A[na - 1 - suf].l == B[nb - 1 - suf].l &&
           !memcmp(A[na - 1 - suf].p, B[nb - 1 - suf].p, A[na - 1 - suf].l))
        suf++;
    size_t cap = 16384, len = 0;
    out = malloc(cap);
    if (!out)
        goto done;
    enum { CTX = 3, MAXL = 40 };
    size_t c0 = pre > CTX ? pre - CTX : 0;
    size_t ea = na - suf, eb = nb - suf;
    size_t c1a = MRIMG_MIN(na, ea + CTX);
    len += (size_t)snprintf(out + len, cap - len, "--- %s\n+++ %s\n@@ -%zu,%zu +%zu,%zu @@\n", la,
                            lb, c0 + 1, c1a - c0, c0 + 1, MRIMG_MIN(nb, eb + CTX) - c0);
#define EMIT(pfx, p, l)                                                                          \
    do {                                                                                         \
        char ln[208];                                                                            \
        size_t ll = MRIMG_MIN((size_t)(l), (size_t)200);                                         \
        memcpy(ln, p, ll);                                                                       \
        ln[ll] = '\0';                                                                           \
        if (len < cap - 1)                                                                       \
            len += (size_t)snprintf(out + len, cap - len, "%c%s\n", pfx, ln);                    \
        if (len > cap - 1)                                                                       \
            len = cap - 1;                                                                       \
    } while (0)
    for (size_t i = c0; i < pre; i++)
        EMIT(' ', A[i].p, A[i].l);
    for (size_t i = pre, k = 0; i < ea; i++, k++) {
        if (k == MAXL) {
            EMIT('-', "... (more lines)", 16);
            break;
        }
        EMIT('-', A[i].p, A[i].l);
    }
    for (size_t i = pre, k = 0; i < eb; i++, k++) {
        if (k == MAXL) {
            EMIT('+', "... (more lines)", 16);
            break;
        }
        EMIT('+', B[i].p, B[i].l);
    }
    for (size_t i = ea; i < c1a; i++)
        EMIT(' ', A[i].p, A[i].l);
#undef EMIT
done:
    vec_free(&lines[0]);
    vec_free(&lines[1]);
    return out;
}

void mrimg_compare_free(mrimg_compare_result *r)
{
    if (!r)
        return;
    free(r->blocks);
    free(r->xml_diff);
    free(r->xml_diff_secure);
    free(r->cookie_diff);
    mrimg_digest_free(r->digest_a);
    mrimg_digest_free(r->digest_b);
    free(r);
}

static void compare_blocks(mrimg_compare_result *r, const dg *da, const dg *db,
                           const mrimg_image *a, const mrimg_image *b)
{
    unsigned na = da->nblocks, nb = db->nblocks, n = 0;
    r->blocks_same_order = na == nb;
    for (unsigned i = 0; i < na && i < nb; i++) {
        const mrimg_ram_block_info *x = mrimg_block(a, i), *y = mrimg_block(b, i);
        if (strcmp(x->name, y->name) || x->used_length != y->used_length)
            r->blocks_same_order = 0;
    }
    r->ram_identical = 1;
    r->granule = 1;
    for (unsigned i = 0; i < na; i++) {
        const mrimg_ram_block_info *x = mrimg_block(a, i);
        mrimg_compare_block *c = &r->blocks[n++];
        memcpy(c->name, x->name, sizeof(c->name));
        c->index_a = (int)i;
        c->index_b = -1;
        c->length_a = x->used_length;
        c->page_size = x->page_size;
        c->first_diff_page = UINT64_MAX;
        memcpy(c->digest_a, r->digest_a->blocks[i].digest, MRIMG_DIGEST_LEN);
        for (unsigned j = 0; j < nb; j++) {
            if (strcmp(mrimg_block(b, j)->name, x->name))
                continue;
            const mrimg_ram_block_info *y = mrimg_block(b, j);
            c->index_b = (int)j;
            c->length_b = y->used_length;
            memcpy(c->digest_b, r->digest_b->blocks[j].digest, MRIMG_DIGEST_LEN);
            const dg_block *p = &da->b[i], *q = &db->b[j];
            if (x->page_size != y->page_size) {
                c->pages_compared = 0;
                break;
            }
            c->pages_compared = MRIMG_MIN(x->pages, y->pages);
            if (p->granule == q->granule && p->gh && q->gh) {
                uint64_t g = p->granule, ng = (c->pages_compared + g - 1) / g;
                if (g > r->granule)
                    r->granule = g;
                for (uint64_t k = 0; k < ng; k++) {
                    if (p->gh[k] != q->gh[k]) {
                        uint64_t pg = k * g;
                        if (c->first_diff_page == UINT64_MAX)
                            c->first_diff_page = pg;
                        c->pages_differ += MRIMG_MIN(g, c->pages_compared - pg);
                    }
                }
            }
            c->identical = x->used_length == y->used_length &&
                           !memcmp(c->digest_a, c->digest_b, MRIMG_DIGEST_LEN);
            if (!c->identical && c->pages_differ == 0 && x->used_length == y->used_length) {
                /* the page hashes agree but the digests do not (a hash
                 * collision): say the whole block differs */
                c->pages_differ = c->pages_compared;
                c->first_diff_page = 0;
            }
            break;
        }
        if (!c->identical)
            r->ram_identical = 0;
    }
    for (unsigned j = 0; j < nb; j++) {
        const mrimg_ram_block_info *y = mrimg_block(b, j);
        bool found = false;
        for (unsigned i = 0; i < na && !found; i++)
            found = !strcmp(mrimg_block(a, i)->name, y->name);
        if (found)
            continue;
        mrimg_compare_block *c = &r->blocks[n++];
        memcpy(c->name, y->name, sizeof(c->name));
        c->index_a = -1;
        c->index_b = (int)j;
        c->length_b = y->used_length;
        c->page_size = y->page_size;
        c->first_diff_page = UINT64_MAX;
        memcpy(c->digest_b, r->digest_b->blocks[j].digest, MRIMG_DIGEST_LEN);
        r->ram_identical = 0;
    }
    r->nblocks = n;
}

static void compare_device(mrimg_compare_result *r, const dg *da, const dg *db)
{
    r->device_bytes_a = r->digest_a->device_bytes;
    r->device_bytes_b = r->digest_b->device_bytes;
    r->device_identical =
        r->device_bytes_a == r->device_bytes_b &&
        !memcmp(r->digest_a->device_digest, r->digest_b->device_digest, MRIMG_DIGEST_LEN);
    r->device_first_diff = UINT64_MAX;
    r->device_detail = 1; /* both kept whole (img_tail) */
    const uint8_t *x = da->dev, *y = db->dev;
    uint64_t n = MRIMG_MIN(r->device_bytes_a, r->device_bytes_b);
    mrimg_range *cur = NULL;
    for (uint64_t i = 0; i < n; i++) {
        if (x[i] == y[i]) {
            cur = NULL;
            continue;
        }
        r->device_bytes_differ++;
        if (r->device_first_diff == UINT64_MAX)
            r->device_first_diff = i;
        if (cur) {
            cur->length++;
        } else if (r->ndevice_ranges < MRIMG_COMPARE_RANGES) {
            cur = &r->device_ranges[r->ndevice_ranges++];
            cur->offset = i;
            cur->length = 1;
        }
    }
    if (r->device_bytes_a != r->device_bytes_b && r->device_first_diff == UINT64_MAX)
        r->device_first_diff = n;
}

/* The XML without its secrets, as `virsh save-image-dumpxml` shows it ("" for
 * a bare stream, which has none); NULL if it is malformed or on ENOMEM. */
static char *xml_public(const mrimg_container_info *c)
{
    if (c->xml_len == 0)
        return strdup("");
    return mrimg_xml_strip_secrets(c->xml, c->xml_len, NULL, NULL);
}

int mrimg_compare(mrimg_image *a, mrimg_image *b, mrimg_compare_result **out,
                  mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!a || !b || !out || a == b)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "two different image handles are needed");
    *out = NULL;
    side sa, sb;
    memset(&sa, 0, sizeof(sa));
    memset(&sb, 0, sizeof(sb));
    main_progress mp = {&sa, &sb, progress, pctx, 0, payload_of(a), payload_of(b), 0};
    sa.d.img = a;
    sa.d.hashes = true;
    sa.d.cancel = &mp.cancel;
    sb.d.img = b;
    sb.d.hashes = true;
    sb.d.cancel = &mp.cancel;
    sb.d.progress = compare_progress;
    sb.d.pctx = &mp;
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, side_thread, &sa) == 0;
    if (!threaded)
        side_thread(&sa);
    /* a side that fails does not stop the other: its walk carries its
     * judgement (dg_run), which the caller asks for next */
    sb.rc = dg_run(&sb.d, &sb.err);
    if (threaded)
        pthread_join(th, NULL);
    int rc = 0;
    mrimg_compare_result *r = NULL;
    if (sb.rc < 0 || sa.rc < 0) {
        /* the first real error (the other side may just have been cancelled) */
        side *bad = sa.rc < 0 && sa.rc != MRIMG_ERR_INTERRUPTED ? &sa
                    : sb.rc < 0                                  ? &sb
                                                                 : &sa;
        if (err)
            *err = bad->err;
        err_prefix(err, "%s: ", bad == &sa ? "first image" : "second image");
        rc = bad->rc;
        goto done;
    }
    r = xcalloc(1, sizeof(*r), err);
    if (!r) {
        rc = MRIMG_ERR_NOMEM;
        goto done;
    }
    r->digest_a = dg_result(&sa.d, err);
    r->digest_b = dg_result(&sb.d, err);
    r->blocks = xcalloc((size_t)sa.d.nblocks + sb.d.nblocks + 1, sizeof(*r->blocks), err);
    if (!r->digest_a || !r->digest_b || !r->blocks) {
        rc = MRIMG_ERR_NOMEM;
        goto done;
    }
    compare_blocks(r, &sa.d, &sb.d, a, b);
    compare_device(r, &sa.d, &sb.d);
    const mrimg_container_info *ca = mrimg_container(a), *cb = mrimg_container(b);
    r->xml_identical = !strcmp(ca->xml, cb->xml);
    if (!r->xml_identical) {
        r->xml_diff_secure = text_diff(ca->xml, cb->xml, "first image XML", "second image XML");
        /* what is shown by default: the XMLs as `virsh save-image-dumpxml`
         * shows them, secrets removed (a malformed XML: no diff at all) */
        char *sa_x = xml_public(ca), *sb_x = sa_x ? xml_public(cb) : NULL;
        if (sa_x && sb_x) {
            r->xml_diff = text_diff(sa_x, sb_x, "first image XML", "second image XML");
            r->xml_secrets_differ = !strcmp(sa_x, sb_x);
        }
        free(sa_x);
        free(sb_x);
    }
    const char *ka = ca->cookie ? ca->cookie : "", *kb = cb->cookie ? cb->cookie : "";
    r->cookie_identical = !strcmp(ka, kb);
    if (!r->cookie_identical)
        r->cookie_diff = text_diff(ka, kb, "first image cookie", "second image cookie");
    r->identical = r->ram_identical && r->device_identical;
    if (progress)
        (void)progress(pctx, mp.pa + mp.pb, mp.pa + mp.pb);
done:
    dg_free(&sa.d);
    dg_free(&sb.d);
    if (rc < 0) {
        mrimg_compare_free(r);
        return rc;
    }
    *out = r;
    return 0;
}
