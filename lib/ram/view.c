/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The RAM view: one description of guest RAM over both stream layouts.
 *
 * Plain streams are replayed: every record updates two bitmaps per block
 * (page seen, final content is data), so the last record of a page wins in
 * multi-pass streams.  A walk over a plain stream is delivered while parsing
 * as long as the records come in canonical order (one pass, as QEMU writes a
 * paused guest); a stream found out of order is replayed once into a
 * temporary sparse file laid out like mapped-ram, which is then read like a
 * mapped-ram payload.
 *
 * Mapped-ram payloads are read through their block headers and bitmaps;
 * pages are read only when asked for, only where the bitmap is set, and
 * holes in the file are recognised as zero without reading them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../image.h"
#include "../io/pages.h"
#include "../io/scratch.h"

#define WALK_RUN (8u << 20)

/* ---- one pass over a plain (or mapped-ram) stream ---------------------- */

typedef struct pass_ctx {
    mrimg_image *img;
    bool scan;            /* fill the scan results */
    mrimg_ram_fn fn;      /* deliver pages in canonical order */
    void *opaque;
    unsigned cur_block;   /* next page to deliver */
    uint64_t cur_page;
    bool disorder;        /* stopped: records out of canonical order */
    bool materialize;     /* write pages into img->mat */
} pass_ctx;

#define DISORDER_CODE MRIMG_ERR_INTERRUPTED

static int pass_on_config(void *ctx, const sp_config *c, mrimg_error *err)
{
    (void)err;
    pass_ctx *pc = ctx;
    if (pc->scan)
        pc->img->cfg = *c;
    return 0;
}

static int mat_create(mrimg_image *img, mrimg_error *err);

static int pass_on_blocks(void *ctx, const sp_block *b, unsigned n, mrimg_error *err)
{
    pass_ctx *pc = ctx;
    mrimg_image *img = pc->img;
    if (!pc->scan) {
        /* the stream must be the one scanned before */
        if (n != img->nblocks)
            return err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0, "the image changed while read");
        return 0;
    }
    img->blocks = xcalloc(n, sizeof(*img->blocks), err);
    if (!img->blocks)
        return MRIMG_ERR_NOMEM;
    img->nblocks = n;
    uint64_t ps = img->si.target_page_size;
    for (unsigned i = 0; i < n; i++) {
        img_block *ib = &img->blocks[i];
        mrimg_ram_block_info *bi = &ib->info;
        ib->sp = b[i];
        memcpy(bi->name, b[i].name, sizeof(bi->name));
        bi->used_length = b[i].used_length;
        bi->page_size = ps;
        bi->pages = b[i].pages;
        bi->has_postcopy_page_size = b[i].has_psize;
        bi->postcopy_page_size = b[i].psize;
        bi->has_mr_addr = b[i].has_mr_addr;
        bi->mr_addr = b[i].mr_addr;
        bi->mapped = b[i].mapped;
        if (b[i].mapped) {
            bi->mapped_version = b[i].mversion;
            bi->header_offset = b[i].header_offset;
            bi->bitmap_offset = b[i].bitmap_offset;
            bi->bitmap_size = (b[i].pages + 63) / 64 * 8;
            bi->pages_offset = b[i].pages_offset;
        }
        int rc = lb_init(&ib->data, b[i].pages, err);
        if (rc == 0 && !b[i].mapped)
            rc = lb_init(&ib->seen, b[i].pages, err);
        if (rc == 0 && !b[i].mapped)
            rc = lb_init(&ib->zf, b[i].pages, err);
        if (rc < 0)
            return rc;
    }
    if (pc->materialize)
        return mat_create(img, err);
    return 0;
}

/* Deliver zero runs for every page before (block, page). */
static int advance_to(pass_ctx *pc, unsigned block, uint64_t page, mrimg_error *err)
{
    mrimg_image *img = pc->img;
    while (pc->cur_block < block || (pc->cur_block == block && pc->cur_page < page)) {
        uint64_t end = pc->cur_block < block ? img->blocks[pc->cur_block].info.pages : page;
        if (end > pc->cur_page) {
            int rc = pc->fn(pc->opaque, pc->cur_block, pc->cur_page, end - pc->cur_page, NULL, err);
            if (rc < 0)
                return rc;
        }
        if (pc->cur_block < block) {
            pc->cur_block++;
            pc->cur_page = 0;
        } else {
            pc->cur_page = end;
        }
    }
    return 0;
}

static int pass_on_page(void *ctx, unsigned block, uint64_t page, const uint8_t *data,
                        uint64_t pos, mrimg_error *err)
{
    (void)pos;
    pass_ctx *pc = ctx;
    mrimg_image *img = pc->img;
    img_block *b = &img->blocks[block];
    int rc;
    if (pc->scan) {
        b->info.records++;
        if (lb_test(&b->seen, page))
            img->si.multi_pass = 1;
        else if (lb_set(&b->seen, page, err) < 0)
            return MRIMG_ERR_NOMEM;
        if (data) {
            if (lb_set(&b->data, page, err) < 0)
                return MRIMG_ERR_NOMEM;
        } else {
            lb_clear(&b->data, page);
        }
        /* the content statistics on the way (MRIMG_SCAN_CONTENT): a data
         * page of zero bytes (mem_is_zero stops at the first other byte,
         * so that costs next to nothing for the rest) */
        if (data && mem_is_zero(data, (size_t)b->info.page_size)) {
            if (lb_set(&b->zf, page, err) < 0)
                return MRIMG_ERR_NOMEM;
        } else {
            lb_clear(&b->zf, page);
        }
    }
    if (pc->materialize) {
        uint64_t ps = b->info.page_size, off = img->mat_base[block] + page * ps;
        if (data) {
            ssize_t w = pwrite(img->mat.fd, data, (size_t)ps, (off_t)off);
            if (w != (ssize_t)ps)
                return err_side(err, MRIMG_SIDE_SCRATCH,
                                err_sys(err, w < 0 ? errno : ENOSPC,
                                        "writing the RAM replay file"));
        }
        /* a page that became zero keeps stale bytes; its data bit is clear */
    }
    if (pc->fn) {
        if (block < pc->cur_block || (block == pc->cur_block && page < pc->cur_page)) {
            pc->disorder = true;
            return err_set(err, DISORDER_CODE, MRIMG_OFF_NONE, 0, "out of order");
        }
        /* zero records are not delivered one by one: the gap before the
         * next data page (or the end) is delivered as one zero run */
        if (data) {
            rc = advance_to(pc, block, page, err);
            if (rc < 0)
                return rc;
            rc = pc->fn(pc->opaque, block, page, 1, data, err);
            if (rc < 0)
                return rc;
            pc->cur_page = page + 1;
        }
    }
    return 0;
}

static void finish_plain_stats(mrimg_image *img)
{
    for (unsigned i = 0; i < img->nblocks; i++) {
        mrimg_ram_block_info *bi = &img->blocks[i].info;
        uint64_t seen = lb_count(&img->blocks[i].seen);
        bi->pages_data = lb_count(&img->blocks[i].data);
        bi->pages_zero = seen - bi->pages_data;
        bi->pages_absent = bi->pages - seen;
        bi->pages_zero_filled = lb_count(&img->blocks[i].zf);
    }
}

/* A scan completed: a plain stream's pass counted its content too. */
static void scan_done(mrimg_image *img)
{
    img->scanned = true;
    img->scan_flags = img->si.mapped_ram ? 0 : MRIMG_SCAN_CONTENT;
}

/* Parse the stream once with pc's duties. */
static int run_pass(mrimg_image *img, pass_ctx *pc, mrimg_progress_fn progress, void *pctx,
                    mrimg_error *err)
{
    if (pc->scan) {
        img_blocks_free(img);
        memset(&img->si, 0, sizeof(img->si));
        memset(&img->dstats, 0, sizeof(img->dstats));
    }
    static const sp_handler h = {
        .on_config = pass_on_config,
        .on_blocks = pass_on_blocks,
        .on_page = pass_on_page,
    };
    mrimg_stream_info scratch, *si = pc->scan ? &img->si : &scratch;
    memset(&scratch, 0, sizeof(scratch));
    /* a scanning pass carries the riders (device-state collectors, a
     * conversion's judgement) */
    img_parse_opts o = {
        .h = &h, .ctx = pc, .si = si, .regions = true, .riders = true, .progress = progress, .pctx = pctx,
    };
    img_parse_out po;
    int rc = img_parse(img, &o, &po, err);
    if (pc->scan && po.opened) {
        if (!src_seekable(&img->src) && src_size_known(&img->src))
            img->ci.file_size = img->src.size; /* a pipe's end was read */
        si->payload_size = src_size_known(&img->src) ? img->src.size - img->ci.payload_offset
                                                      : src_seq_pos(&img->src) -
                                                            img->ci.payload_offset;
        if (po.compressed) {
            img->dstats = po.dstats;
            si->payload_members = po.dstats.members;
            si->payload_trailing = po.dstats.trailing;
            si->payload_trailing_zero = po.dstats.trailing_zero;
        } else {
            si->payload_members = 1;
        }
        img->mapped_payload = si->mapped_ram;
        if (!si->mapped_ram)
            finish_plain_stats(img);
    }
    if (rc == 0 && pc->fn && !si->mapped_ram)
        rc = advance_to(pc, img->nblocks, 0, err);
    return rc;
}

/* ---- mapped-ram bitmaps and content ------------------------------------ */

/* Where the pages of an addressable image live: the input (mapped-ram)
 * or the replay file (plain), and block b's region there: pages [first,
 * end) of it, the data bitmap saying which count. */
static mrimg_source *page_src(mrimg_image *img)
{
    return img->mapped_payload ? &img->src : &img->mat;
}

static pg_region page_region(const mrimg_image *img, unsigned b, uint64_t first, uint64_t end)
{
    const img_block *ib = &img->blocks[b];
    return (pg_region){.base = img->mapped_payload ? ib->info.pages_offset : img->mat_base[b],
                       .ps = ib->info.page_size, .first = first, .end = end,
                       .bits = &ib->data, .id = b};
}

typedef struct walk_progress {
    mrimg_progress_fn fn;
    void *ctx;
    uint64_t done, total;
} walk_progress;

typedef struct walk_ctx {
    mrimg_image *img;
    mrimg_ram_fn fn;
    void *opaque;
    walk_progress *wp;
} walk_ctx;

/* Every run goes to the walker's callback: read pages with their bytes,
 * the rest (clear bits, holes) as zero. */
static int walk_run(void *opaque, const pg_run *r, mrimg_error *err)
{
    walk_ctx *w = opaque;
    int rc = w->fn(w->opaque, r->id, r->first, r->n, r->data, err);
    if (rc < 0 || (r->kind != PG_DATA && r->kind != PG_HOLE) || !w->wp || !w->wp->fn)
        return rc;
    w->wp->done += r->n * w->img->blocks[r->id].info.page_size;
    if (w->wp->fn(w->wp->ctx, w->wp->done, w->wp->total))
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    return 0;
}

/* Walk a scanned image whose pages are addressable (mapped-ram, or a plain
 * stream replayed into img->mat). */
static int walk_bitmapped(mrimg_image *img, mrimg_ram_fn fn, void *opaque, walk_progress *wp,
                          mrimg_error *err)
{
    pg_region *reg = xcalloc(img->nblocks ? img->nblocks : 1, sizeof(*reg), err);
    if (!reg)
        return MRIMG_ERR_NOMEM;
    for (unsigned b = 0; b < img->nblocks; b++)
        reg[b] = page_region(img, b, 0, img->blocks[b].info.pages);
    walk_ctx w = {img, fn, opaque, wp};
    pg_opts o = {.flags = PG_WANT_CLEAR | (img->opts.threads == 1 ? PG_ONE_THREAD : 0),
                 .max_read = WALK_RUN, .what = "RAM pages"};
    int rc = pg_read(page_src(img), reg, img->nblocks, &o, walk_run, &w, err);
    free(reg);
    return rc;
}

/* ---- materialisation of plain streams ------------------------------------ */

static int mat_create(mrimg_image *img, mrimg_error *err)
{
    char dir[4096];
    int fd = scratch_open("mrimg-ram", "the RAM replay", dir, sizeof(dir), err);
    if (fd < 0)
        return fd;
    img->mat_base = xcalloc(img->nblocks, sizeof(uint64_t), err);
    if (!img->mat_base) {
        close(fd);
        return MRIMG_ERR_NOMEM;
    }
    uint64_t off = 0;
    for (unsigned i = 0; i < img->nblocks; i++) {
        img->mat_base[i] = off;
        off = round_up(off + img->blocks[i].info.used_length, MAPPED_RAM_ALIGN);
    }
    if (ftruncate(fd, (off_t)off) != 0) {
        int e = errno;
        close(fd);
        return err_side(err, MRIMG_SIDE_SCRATCH,
                        err_sys(err, e, "cannot size the RAM replay file in %s", dir));
    }
    int rc = src_open_fd(&img->mat, fd, "RAM replay file", true, err);
    if (rc < 0) {
        close(fd);
        return err_side(err, MRIMG_SIDE_SCRATCH, rc);
    }
    img->mat.side = MRIMG_SIDE_SCRATCH;
    img->have_mat = true;
    return 0;
}

/* Replay a plain stream into img->mat (scanning it again on the way). */
static int materialize(mrimg_image *img, mrimg_progress_fn progress, void *pctx,
                       mrimg_error *err)
{
    if (img->have_mat)
        return 0;
    pass_ctx pc = {.img = img, .scan = true, .materialize = true};
    int rc = run_pass(img, &pc, progress, pctx, err);
    if (rc == 0)
        scan_done(img);
    return rc;
}

/* ---- public API --------------------------------------------------------- */

static int scan_mapped_content(mrimg_image *img, mrimg_progress_fn progress, void *pctx,
                               mrimg_error *err);

int mrimg_scan(mrimg_image *img, unsigned flags, mrimg_progress_fn progress, void *opaque,
               mrimg_error *err)
{
    mrimg_error_clear(err);
    if (img->scanned && (flags & ~img->scan_flags) == 0)
        return 0;
    int rc = 0;
    if (!img->scanned && img->scan_rc < 0 && !src_seekable(&img->src)) {
        /* the scan of this pipe failed (the judgement's pass may have
         * ridden on it): the pipe cannot be read again */
        if (err)
            *err = img->scan_err;
        return img->scan_rc;
    }
    if (!img->scanned) {
        pass_ctx pc = {.img = img, .scan = true};
        img->scan_tried = true;
        rc = run_pass(img, &pc, progress, opaque, err);
        if (rc < 0 && !src_seekable(&img->src)) {
            img->scan_rc = rc;
            if (err)
                img->scan_err = *err;
        }
        /* A failed scan keeps what it found (stream info so far, the block
         * list, plain page counts).  The bitmaps of a complete mapped-ram
         * block list are loaded even then: the parser checked that they
         * lie inside the file, and they say what the file holds. */
        if (img->si.mapped_ram && (rc == 0 || rc != MRIMG_ERR_NOMEM)) {
            for (unsigned i = 0; i < img->nblocks; i++) {
                img_block *b = &img->blocks[i];
                mrimg_error e2;
                int brc = pg_load_bitmap(&img->src, b->info.bitmap_offset, b->info.pages,
                                         &b->data, NULL, NULL, rc == 0 ? err : &e2);
                b->info.pages_data = lb_count(&b->data);
                b->info.pages_zero = b->info.pages - b->info.pages_data;
                if (brc < 0 && rc == 0)
                    rc = brc;
            }
        }
        if (rc < 0)
            return rc;
        scan_done(img);
    }
    if ((flags & MRIMG_SCAN_CONTENT) && img->si.mapped_ram) {
        rc = scan_mapped_content(img, progress, opaque, err);
        if (rc < 0)
            return rc;
    }
    img->scan_flags |= flags;
    return 0;
}

/* Count pages whose bit is set but whose bytes are zero. */
typedef struct zf_ctx {
    mrimg_image *img;
} zf_ctx;

static int zf_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                 mrimg_error *err)
{
    (void)first;
    (void)err;
    zf_ctx *z = opaque;
    mrimg_ram_block_info *bi = &z->img->blocks[block].info;
    if (!data) {
        /* called for holes inside set runs and for clear runs; only the
         * former count, and clear runs are subtracted below */
        bi->pages_zero_filled += n;
        return 0;
    }
    for (uint64_t k = 0; k < n; k++)
        bi->pages_zero_filled += mem_is_zero(data + k * bi->page_size, (size_t)bi->page_size);
    return 0;
}

static int scan_mapped_content(mrimg_image *img, mrimg_progress_fn progress, void *pctx,
                               mrimg_error *err)
{
    for (unsigned i = 0; i < img->nblocks; i++)
        img->blocks[i].info.pages_zero_filled = 0;
    zf_ctx z = {img};
    walk_progress wp = {progress, pctx, 0, 0};
    for (unsigned i = 0; i < img->nblocks; i++)
        wp.total += img->blocks[i].info.pages_data * img->blocks[i].info.page_size;
    int rc = walk_bitmapped(img, zf_cb, &z, &wp, err);
    for (unsigned i = 0; i < img->nblocks; i++) /* remove the clear runs */
        img->blocks[i].info.pages_zero_filled -= img->blocks[i].info.pages_zero;
    return rc;
}

int mrimg_ram_walk(mrimg_image *img, mrimg_ram_fn fn, void *opaque, mrimg_progress_fn progress,
                   void *pctx, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!fn)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no callback");
    int rc;
    if (!img->scanned && !img->mapped_payload) {
        /* walk and scan in one pass, if the stream is in canonical order */
        pass_ctx pc = {.img = img, .scan = true, .fn = fn, .opaque = opaque};
        rc = run_pass(img, &pc, progress, pctx, err);
        if (rc == 0 && !img->si.mapped_ram) {
            scan_done(img);
            return 0;
        }
        if (rc < 0 && !pc.disorder)
            return rc;
        if (rc < 0 && !src_seekable(&img->src))
            /* the replay would read the stream again */
            return src_need_seek(&img->src,
                                 "a stream whose pages come out of order (a live migration's "
                                 "later passes), replayed in guest order from the input,",
                                 err);
        if (rc < 0) {
            /* out of order: start over from a replay of the whole stream */
            mrimg_error_clear(err);
            rc = fn(opaque, MRIMG_WALK_RESTART, 0, 0, NULL, err);
            if (rc == 0)
                rc = materialize(img, progress, pctx, err);
            if (rc < 0)
                return rc;
        }
    }
    rc = mrimg_scan(img, 0, progress, pctx, err);
    if (rc < 0)
        return rc;
    if (!img->si.mapped_ram) {
        if (img->si.ordered && !img->si.multi_pass && !img->have_mat) {
            pass_ctx pc = {.img = img, .fn = fn, .opaque = opaque};
            return run_pass(img, &pc, progress, pctx, err);
        }
        rc = materialize(img, progress, pctx, err);
        if (rc < 0)
            return rc;
    }
    return img_walk_bitmapped(img, fn, opaque, progress, pctx, err);
}

typedef struct read_ctx {
    uint8_t *out;
    uint64_t first, ps;
} read_ctx;

static int read_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                   mrimg_error *err)
{
    (void)block;
    (void)err;
    read_ctx *r = opaque;
    uint8_t *dst = r->out + (first - r->first) * r->ps;
    if (data)
        memcpy(dst, data, (size_t)(n * r->ps));
    else
        memset(dst, 0, (size_t)(n * r->ps));
    return 0;
}

int img_addressable(mrimg_image *img, mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    if (!img->scanned && !img->mapped_payload) {
        /* a plain stream: the replay scans it on the way (one pass) */
        bool mapped;
        int rc = img_head_mapped(img, &mapped, err);
        if (rc == 0 && !mapped)
            return materialize(img, progress, pctx, err);
    }
    int rc = mrimg_scan(img, 0, progress, pctx, err);
    if (rc == 0 && !img->si.mapped_ram)
        rc = materialize(img, progress, pctx, err);
    return rc;
}

int img_walk_bitmapped(mrimg_image *img, mrimg_ram_fn fn, void *opaque,
                       mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    walk_progress wp = {progress, pctx, 0, 0};
    for (unsigned i = 0; i < img->nblocks; i++)
        wp.total += img->blocks[i].info.pages_data * img->blocks[i].info.page_size;
    return walk_bitmapped(img, fn, opaque, &wp, err);
}

int mrimg_ram_read(mrimg_image *img, unsigned block, uint64_t first_page, uint64_t npages,
                   void *buf, mrimg_error *err)
{
    mrimg_error_clear(err);
    int rc = img_addressable(img, NULL, NULL, err);
    if (rc < 0)
        return rc;
    if (block >= img->nblocks)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no RAM block %u (%u blocks)",
                       block, img->nblocks);
    img_block *b = &img->blocks[block];
    if (first_page > b->info.pages || npages > b->info.pages - first_page)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "pages %llu+%llu are outside block \"%s\" (%llu pages)",
                       (unsigned long long)first_page, (unsigned long long)npages, b->info.name,
                       (unsigned long long)b->info.pages);
    read_ctx r = {buf, first_page, b->info.page_size};
    walk_ctx w = {img, read_cb, &r, NULL};
    pg_region reg = page_region(img, block, first_page, first_page + npages);
    pg_opts o = {.flags = PG_WANT_CLEAR, .max_read = WALK_RUN, .what = "RAM pages"};
    return pg_read(page_src(img), &reg, 1, &o, walk_run, &w, err);
}

int mrimg_ram_page_has_data(mrimg_image *img, unsigned block, uint64_t page, mrimg_error *err)
{
    int rc = mrimg_scan(img, 0, NULL, NULL, err);
    if (rc < 0)
        return rc;
    if (block >= img->nblocks || page >= img->blocks[block].info.pages)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no such page");
    return lb_test(&img->blocks[block].data, page) ? 1 : 0;
}
