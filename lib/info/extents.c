/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image information: what lies where in an image.
 *
 * The file map (mrimg_extents) is built in two steps.  First a region list
 * is made from the container and the scan results: O(blocks) regions that
 * cover [0, file size) exactly (header, XML, cookie, padding, stream head,
 * configuration, RAM section, per mapped-ram block its bitmap, alignment gap
 * and pages, device-state tail, EOF, VMDESCRIPTION, trailing bytes, and
 * "unknown" for whatever the scan could not reach).  Then the file's
 * data/hole map (SEEK_DATA/SEEK_HOLE) is walked once, in order, and every
 * data or hole run is cut at region boundaries and handed to the caller.
 * One pass, O(regions + runs) time, memory bounded by the region list, so a
 * 1 TiB sparse file with millions of runs streams out at lseek speed.
 *
 * The stream map (mrimg_stream_map) parses the (decompressed) stream again
 * and reports its records as stream offsets: header, configuration, each
 * RAM section, each command, the device-state tail, EOF, VMDESCRIPTION.
 *
 * mrimg_content_scan() counts pages that hold data but are all zero, on
 * both layouts. */
#include <stdlib.h>

#include "../image.h"
#include "../util/vec.h"

/* ---- names ----------------------------------------------------------- */

const char *mrimg_region_name(int region)
{
    switch (region) {
    case MRIMG_REGION_HEADER: return "header";
    case MRIMG_REGION_XML: return "xml";
    case MRIMG_REGION_COOKIE: return "cookie";
    case MRIMG_REGION_PADDING: return "padding";
    case MRIMG_REGION_PREFIX: return "prefix";
    case MRIMG_REGION_STREAM_HEAD: return "stream-header";
    case MRIMG_REGION_CONFIG: return "configuration";
    case MRIMG_REGION_RAM: return "ram";
    case MRIMG_REGION_BITMAP: return "bitmap";
    case MRIMG_REGION_ALIGN: return "alignment";
    case MRIMG_REGION_PAGES: return "pages";
    case MRIMG_REGION_COMMAND: return "command";
    case MRIMG_REGION_TAIL: return "device-state";
    case MRIMG_REGION_EOF: return "eof";
    case MRIMG_REGION_VMDESC: return "vmdescription";
    case MRIMG_REGION_TRAILING: return "trailing";
    case MRIMG_REGION_PAYLOAD: return "payload";
    case MRIMG_REGION_UNKNOWN: return "unknown";
    default: return NULL;
    }
}

/* ---- region list ------------------------------------------------------ */

typedef struct region {
    uint64_t start, end;   /* [start, end) file offsets */
    int kind;
    int block;             /* -1 or block index */
} region;

typedef struct rlist {
    region *v;
    size_t n, cap;
} rlist;

static int rl_add(rlist *l, uint64_t start, uint64_t end, int kind, int block, mrimg_error *err)
{
    if (end <= start)
        return 0;
    return vec_push(l, ((region){start, end, kind, block}), 32, 0) ? 0 : err_nomem(err);
}

static int region_cmp(const void *a, const void *b)
{
    const region *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    /* equal starts: keep the order of addition (qsort is not stable, so
     * break ties on kind, which is stable enough for disjoint inputs) */
    return (x->kind > y->kind) - (x->kind < y->kind);
}

/* Sort and make disjoint: a region overlapping its predecessor is clipped
 * to start where the predecessor ends (malformed inputs only), and
 * everything is clipped to [0, size). */
static void rl_normalise(rlist *l, uint64_t size)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), region_cmp);
    size_t out = 0;
    uint64_t prev_end = 0;
    for (size_t i = 0; i < l->n; i++) {
        region r = l->v[i];
        if (r.start < prev_end)
            r.start = prev_end;
        if (r.end > size)
            r.end = size;
        if (r.end <= r.start)
            continue;
        l->v[out++] = r;
        prev_end = r.end;
    }
    l->n = out;
}

static bool is_compressed(const mrimg_image *img)
{
    return img->codec && img->codec != &codec_raw;
}

/* Background regions: container, and the stream's sequential parts. */
static int add_background(const mrimg_image *img, rlist *b, mrimg_error *err)
{
    const mrimg_container_info *ci = &img->ci;
    const mrimg_stream_info *si = &img->si;
    uint64_t size = img->src.size;
    int rc = 0;
    if (ci->is_libvirt) {
        uint64_t m = MRIMG_HEADER_SIZE, mend = m + ci->data_len;
        uint64_t xml_end = m + ci->xml_len + 1;
        rc |= rl_add(b, 0, m, MRIMG_REGION_HEADER, -1, err);
        rc |= rl_add(b, m, MRIMG_MIN(xml_end, mend), MRIMG_REGION_XML, -1, err);
        if (ci->cookie) {
            uint64_t c = m + ci->cookie_offset, cend = c + ci->cookie_len + 1;
            rc |= rl_add(b, xml_end, c, MRIMG_REGION_PADDING, -1, err);
            rc |= rl_add(b, c, MRIMG_MIN(cend, mend), MRIMG_REGION_COOKIE, -1, err);
            rc |= rl_add(b, cend, mend, MRIMG_REGION_PADDING, -1, err);
        } else {
            rc |= rl_add(b, xml_end, mend, MRIMG_REGION_PADDING, -1, err);
        }
    } else {
        rc |= rl_add(b, 0, ci->payload_offset, MRIMG_REGION_PREFIX, -1, err);
    }
    if (rc < 0)
        return MRIMG_ERR_NOMEM;

    uint64_t base = ci->payload_offset;
    if (is_compressed(img)) {
        uint64_t tr = img->scanned ? si->payload_trailing : 0;
        if (tr > size - base)
            tr = size - base;
        rc |= rl_add(b, base, size - tr, MRIMG_REGION_PAYLOAD, -1, err);
        rc |= rl_add(b, size - tr, size, MRIMG_REGION_TRAILING, -1, err);
        return rc < 0 ? MRIMG_ERR_NOMEM : 0;
    }

    /* raw payload: stream offsets are file offsets minus base; all of them
     * lie inside the file (the parser read them there), but clip anyway */
    uint64_t avail = size - base;
#define AT(x) (base + MRIMG_MIN((uint64_t)(x), avail))
    uint64_t known = 0; /* stream offset up to which regions are known */
    if (si->stream_version) {
        rc |= rl_add(b, AT(0), AT(8), MRIMG_REGION_STREAM_HEAD, -1, err);
        known = 8;
    }
    if (img->cfg.present && img->cfg.end > known) {
        rc |= rl_add(b, AT(img->cfg.start), AT(img->cfg.end), MRIMG_REGION_CONFIG, -1, err);
        known = img->cfg.end;
    }
    if (img->scanned && si->ram_end >= known) {
        rc |= rl_add(b, AT(known), AT(si->ram_end), MRIMG_REGION_RAM, -1, err);
        uint64_t tail_end = si->has_eof ? si->eof_offset : si->stream_size;
        rc |= rl_add(b, AT(si->ram_end), AT(tail_end), MRIMG_REGION_TAIL, -1, err);
        known = MRIMG_MAX(si->ram_end, tail_end);
        if (si->has_eof) {
            rc |= rl_add(b, AT(si->eof_offset), AT(si->eof_offset + 1), MRIMG_REGION_EOF, -1, err);
            known = si->eof_offset + 1;
        }
        if (si->has_vmdesc && si->vmdesc_offset >= known) {
            uint64_t vend = si->vmdesc_offset + si->vmdesc_size;
            rc |= rl_add(b, AT(known), AT(vend), MRIMG_REGION_VMDESC, -1, err);
            known = vend;
        }
        rc |= rl_add(b, AT(known), size, MRIMG_REGION_TRAILING, -1, err);
    }
    /* otherwise the scan stopped early: what follows the known part stays
     * a gap, which the merge reports as unknown */
#undef AT
    return rc < 0 ? MRIMG_ERR_NOMEM : 0;
}

/* Foreground regions: the out-of-line parts of mapped-ram blocks. */
static int add_foreground(const mrimg_image *img, rlist *f, mrimg_error *err)
{
    if (is_compressed(img))
        return 0;
    int rc = 0;
    for (unsigned i = 0; i < img->nblocks; i++) {
        const mrimg_ram_block_info *bi = &img->blocks[i].info;
        if (!bi->mapped)
            continue;
        uint64_t ool = bi->header_offset + MAPPED_RAM_HDR_SIZE; /* out of line from here */
        uint64_t bo = bi->bitmap_offset, be = bo + bi->bitmap_size;
        uint64_t po = bi->pages_offset, pe = po + bi->used_length;
        rc |= rl_add(f, bo, be, MRIMG_REGION_BITMAP, (int)i, err);
        rc |= rl_add(f, po, pe, MRIMG_REGION_PAGES, (int)i, err);
        if (bo >= ool && be <= po) {
            rc |= rl_add(f, ool, bo, MRIMG_REGION_ALIGN, (int)i, err);
            rc |= rl_add(f, be, po, MRIMG_REGION_ALIGN, (int)i, err);
        } else {
            rc |= rl_add(f, ool, po, MRIMG_REGION_ALIGN, (int)i, err);
        }
    }
    return rc < 0 ? MRIMG_ERR_NOMEM : 0;
}

/* Merge: foreground regions win; gaps become UNKNOWN.  The result covers
 * [0, size) exactly, in order. */
static int merge_regions(const rlist *b, const rlist *f, uint64_t size, rlist *out,
                         mrimg_error *err)
{
    uint64_t pos = 0;
    size_t i = 0, j = 0;
    while (pos < size) {
        while (j < f->n && f->v[j].end <= pos)
            j++;
        if (j < f->n && f->v[j].start <= pos) {
            if (rl_add(out, pos, f->v[j].end, f->v[j].kind, f->v[j].block, err) < 0)
                return MRIMG_ERR_NOMEM;
            pos = f->v[j].end;
            continue;
        }
        uint64_t nextf = j < f->n ? f->v[j].start : size;
        while (i < b->n && b->v[i].end <= pos)
            i++;
        uint64_t end;
        int kind, block = -1;
        if (i < b->n && b->v[i].start <= pos) {
            end = MRIMG_MIN(b->v[i].end, nextf);
            kind = b->v[i].kind;
            block = b->v[i].block;
        } else {
            end = MRIMG_MIN(nextf, i < b->n ? b->v[i].start : size);
            kind = MRIMG_REGION_UNKNOWN;
        }
        /* coalesce with the previous region of the same kind (e.g. the RAM
         * section pieces between mapped-ram blocks stay separate because
         * blocks sit between them; only true neighbours merge) */
        if (out->n && out->v[out->n - 1].end == pos && out->v[out->n - 1].kind == kind &&
            out->v[out->n - 1].block == block) {
            out->v[out->n - 1].end = end;
        } else if (rl_add(out, pos, end, kind, block, err) < 0) {
            return MRIMG_ERR_NOMEM;
        }
        pos = end;
    }
    return 0;
}

static int build_regions(const mrimg_image *img, rlist *out, mrimg_error *err)
{
    rlist b = {0}, f = {0};
    uint64_t size = img->src.size;
    int rc = add_background(img, &b, err);
    if (rc == 0)
        rc = add_foreground(img, &f, err);
    if (rc == 0) {
        rl_normalise(&b, size);
        rl_normalise(&f, size);
        rc = merge_regions(&b, &f, size, out, err);
    }
    free(b.v);
    free(f.v);
    return rc;
}

/* ---- the file map ------------------------------------------------------ */

typedef struct ext_walk {
    mrimg_image *img;
    mrimg_extent_fn fn;
    void *opaque;
    mrimg_extent_totals tot;
    mrimg_progress_fn progress;
    void *pctx;
    uint64_t next_progress;
    /* cached answer of the last SEEK_DATA/SEEK_HOLE query */
    uint64_t q, d, de;
    bool have;
} ext_walk;

static int emit_run(ext_walk *w, const region *r, uint64_t s, uint64_t e, bool data,
                    mrimg_error *err)
{
    mrimg_extent x;
    memset(&x, 0, sizeof(x));
    x.offset = s;
    x.length = e - s;
    x.data = data;
    x.region = r->kind;
    x.block = r->block;
    if (r->block >= 0) {
        const mrimg_ram_block_info *bi = &w->img->blocks[r->block].info;
        x.block_name = bi->name;
        if (r->kind == MRIMG_REGION_PAGES && bi->page_size) {
            x.first_page = (s - bi->pages_offset) / bi->page_size;
            x.last_page = (e - 1 - bi->pages_offset) / bi->page_size;
        }
    }
    w->tot.runs++;
    if (data) {
        w->tot.data_runs++;
        w->tot.data_bytes += x.length;
    } else {
        w->tot.hole_runs++;
        w->tot.hole_bytes += x.length;
    }
    int rc = w->fn(w->opaque, &x);
    if (rc != 0)
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_FILE, s,
                       "the extent callback stopped the walk");
    if (w->progress && e >= w->next_progress) {
        w->next_progress = e + (1ull << 30);
        if (w->progress(w->pctx, e, w->img->src.size))
            return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    }
    return 0;
}

/* Emit the data/hole runs of region r. */
static int walk_region(ext_walk *w, const region *r, mrimg_error *err)
{
    uint64_t pos = r->start;
    while (pos < r->end) {
        if (!w->have || pos < w->q || pos >= w->de) {
            int rc = src_next_data(&w->img->src, pos, &w->d, &w->de, err);
            if (rc < 0)
                return rc;
            w->q = pos;
            w->have = true;
            if (w->de <= pos) { /* only a hole follows */
                w->d = w->de = w->img->src.size;
            }
        }
        uint64_t end;
        bool data;
        if (pos < w->d) {
            end = MRIMG_MIN(w->d, r->end);
            data = false;
        } else {
            end = MRIMG_MIN(w->de, r->end);
            data = true;
        }
        if (end <= pos) /* cannot happen; never loop forever */
            end = r->end;
        int rc = emit_run(w, r, pos, end, data, err);
        if (rc < 0)
            return rc;
        pos = end;
    }
    return 0;
}

int mrimg_extents(mrimg_image *img, mrimg_extent_fn fn, void *opaque,
                  mrimg_extent_totals *totals, mrimg_progress_fn progress, void *pctx,
                  mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!img || !fn)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no image or no callback");
    if (totals && !vstruct_ok(totals))
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "mrimg_extent_totals.size is not set");
    if (!img->scanned && !img->scan_tried) {
        /* a scan error does not stop the map: what the scan could not
         * identify is reported as unknown */
        mrimg_error scan_err;
        (void)mrimg_scan(img, 0, NULL, NULL, &scan_err);
    }
    rlist r = {0};
    int rc = build_regions(img, &r, err);
    ext_walk w = {.img = img, .fn = fn, .opaque = opaque, .progress = progress, .pctx = pctx};
    for (size_t i = 0; i < r.n && rc == 0; i++)
        rc = walk_region(&w, &r.v[i], err);
    free(r.v);
    w.tot.hole_map = img->src.seek_probe > 0;
    if (w.tot.runs == 0)
        w.tot.hole_map = img->src.seek_probe >= 0 && img->src.regular;
    if (totals)
        vstruct_copy(totals, &w.tot, sizeof(w.tot));
    if (rc == 0 && progress && progress(pctx, img->src.size, img->src.size))
        rc = err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    return rc;
}

/* ---- the stream map ---------------------------------------------------- */

typedef struct smap {
    mrimg_extent_fn fn;
    void *opaque;
    uint64_t pos;           /* end of the last region reported */
    uint64_t section_start;
    bool stopped;
    uint64_t reached;       /* stream bytes the pass read */
} smap;

static int smap_emit(smap *m, uint64_t start, uint64_t end, int kind, uint8_t stype,
                     uint32_t sid, uint16_t cmd, mrimg_error *err)
{
    if (end <= start)
        return 0;
    if (start > m->pos) {
        /* a gap cannot happen in a parsed stream; report it, do not hide it */
        int rc = smap_emit(m, m->pos, start, MRIMG_REGION_UNKNOWN, 0, 0, 0, err);
        if (rc < 0)
            return rc;
    }
    if (start < m->pos)
        start = m->pos;
    if (end <= start)
        return 0;
    mrimg_extent x;
    memset(&x, 0, sizeof(x));
    x.offset = start;
    x.length = end - start;
    x.data = 1;
    x.region = kind;
    x.block = -1;
    x.section_type = stype;
    x.section_id = sid;
    x.command = cmd;
    m->pos = end;
    if (m->fn(m->opaque, &x) != 0) {
        m->stopped = true;
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_STREAM, start,
                       "the extent callback stopped the walk");
    }
    return 0;
}

static int smap_on_config(void *ctx, const sp_config *c, mrimg_error *err)
{
    smap *m = ctx;
    int rc = smap_emit(m, 0, c->start, MRIMG_REGION_STREAM_HEAD, 0, 0, 0, err);
    if (rc == 0)
        rc = smap_emit(m, c->start, c->end, MRIMG_REGION_CONFIG, 0, 0, 0, err);
    return rc;
}

static int smap_on_section(void *ctx, const sp_section *s, mrimg_error *err)
{
    smap *m = ctx;
    int rc = smap_emit(m, 0, 8, MRIMG_REGION_STREAM_HEAD, 0, 0, 0, err);
    m->section_start = s->start;
    return rc;
}

static int smap_on_section_end(void *ctx, const sp_section *s, mrimg_error *err)
{
    smap *m = ctx;
    return smap_emit(m, m->section_start, s->end, MRIMG_REGION_RAM, s->type, s->id, 0, err);
}

static int smap_on_command(void *ctx, const sp_command *c, mrimg_error *err)
{
    smap *m = ctx;
    int rc = smap_emit(m, 0, 8, MRIMG_REGION_STREAM_HEAD, 0, 0, 0, err);
    if (rc == 0)
        rc = smap_emit(m, c->start, c->start + 5u + c->len, MRIMG_REGION_COMMAND, 0, 0, c->cmd,
                       err);
    return rc;
}

/* How far the pass read (for the part after a parse error). */
static int smap_after(void *ctx, sp_pass *ps, int rc, mrimg_error *err)
{
    (void)err;
    ((smap *)ctx)->reached = srd_pos(ps->s) + srd_avail(ps->s);
    return rc;
}

int mrimg_stream_map(mrimg_image *img, mrimg_extent_fn fn, void *opaque,
                     mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!img || !fn)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no image or no callback");
    static const sp_handler h = {
        .on_config = smap_on_config,
        .on_section = smap_on_section,
        .on_section_end = smap_on_section_end,
        .on_command = smap_on_command,
    };
    smap m;
    memset(&m, 0, sizeof(m));
    m.fn = fn;
    m.opaque = opaque;
    mrimg_stream_info si;
    memset(&si, 0, sizeof(si));
    img_parse_opts o = {.h = &h, .ctx = &m, .si = &si, .progress = progress, .pctx = pctx,
                        .after = smap_after, .after_ctx = &m};
    int rc = img_parse(img, &o, NULL, err);
    uint64_t reached = m.reached;
    if (m.stopped)
        return rc;
    mrimg_error e2;
    int rc2 = 0;
    if (si.ram_end && si.stream_size >= si.ram_end) {
        /* the RAM part ended: the tail and what ends it are known (also
         * when the stream then lacks its EOF record) */
        uint64_t tail_end = si.has_eof ? si.eof_offset : si.stream_size;
        rc2 = smap_emit(&m, si.ram_end, tail_end, MRIMG_REGION_TAIL, 0, 0, 0, &e2);
        if (rc2 == 0 && si.has_eof)
            rc2 = smap_emit(&m, si.eof_offset, si.eof_offset + 1, MRIMG_REGION_EOF, 0, 0, 0,
                            &e2);
        if (rc2 == 0 && si.has_vmdesc)
            rc2 = smap_emit(&m, m.pos, si.vmdesc_offset + si.vmdesc_size,
                            MRIMG_REGION_VMDESC, 0, 0, 0, &e2);
        if (rc2 == 0)
            rc2 = smap_emit(&m, m.pos, si.stream_size + si.trailing_bytes,
                            MRIMG_REGION_TRAILING, 0, 0, 0, &e2);
    } else if (rc < 0 && reached > m.pos) {
        /* parsed up to the error: the rest that was read is not identified */
        rc2 = smap_emit(&m, m.pos, reached, MRIMG_REGION_UNKNOWN, 0, 0, 0, &e2);
    }
    if (rc == 0 && rc2 < 0) {
        *err = e2;
        rc = rc2;
    }
    return rc;
}

/* ---- content statistics ------------------------------------------------ */

int mrimg_content_scan(mrimg_image *img, mrimg_progress_fn progress, void *pctx,
                       mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!img)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no image");
    int rc = mrimg_scan(img, 0, progress, pctx, err);
    if (rc < 0)
        return rc;
    /* a plain stream's scan counted them on its pass (one pass, a pipe
     * too); mapped-ram reads the pages whose bit is set */
    return mrimg_scan(img, MRIMG_SCAN_CONTENT, progress, pctx, err);
}
