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
    }
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
        si->payload_size = img->src.size - img->ci.payload_offset;
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

static int load_bitmap(mrimg_image *img, img_block *b, mrimg_error *err)
{
    enum { CHUNK = 1u << 20 };
    uint8_t *buf = xmalloc(CHUNK, err);
    if (!buf)
        return MRIMG_ERR_NOMEM;
    uint64_t total = b->info.bitmap_size, done = 0;
    int rc = 0;
    while (done < total) {
        size_t n = (size_t)MRIMG_MIN((uint64_t)CHUNK, total - done);
        rc = src_pread(&img->src, buf, n, b->info.bitmap_offset + done, "mapped-ram bitmap", err);
        if (rc < 0)
            break;
        rc = lb_load_le(&b->data, done * 8, buf, n / 8, err);
        if (rc < 0)
            break;
        done += n;
    }
    free(buf);
    return rc;
}

/* Where a block's pages live for reading: the input (mapped-ram) or the
 * replay file (plain). */
static mrimg_source *page_src(mrimg_image *img, unsigned block, uint64_t *base)
{
    if (img->mapped_payload) {
        *base = img->blocks[block].info.pages_offset;
        return &img->src;
    }
    *base = img->mat_base[block];
    return &img->mat;
}

/* Call fn for pages [first, first+n) of block, all of which have their data
 * bit set: runs in holes are delivered as zero, the rest is read into buf
 * (cap bytes, at least one page). */
static int read_data_run(mrimg_image *img, unsigned block, uint64_t first, uint64_t n,
                         uint8_t *buf, size_t cap, mrimg_ram_fn fn, void *opaque,
                         mrimg_error *err)
{
    uint64_t base, ps = img->blocks[block].info.page_size;
    mrimg_source *s = page_src(img, block, &base);
    uint64_t max = cap / ps;
    while (n) {
        uint64_t off = base + first * ps, d, de;
        int rc = src_next_data(s, off, &d, &de, err);
        if (rc < 0)
            return rc;
        uint64_t k;
        if (d > off && d - off >= ps) { /* whole pages in a hole: zero */
            k = MRIMG_MIN(n, (d - off) / ps);
            rc = fn(opaque, block, first, k, NULL, err);
            if (rc < 0)
                return rc;
            first += k;
            n -= k;
            continue;
        }
        k = MRIMG_MIN(n, max);
        if (de > off) /* stop where the data run ends, to skip the next hole */
            k = MRIMG_MIN(k, (de - off + ps - 1) / ps);
        rc = src_pread(s, buf, (size_t)(k * ps), off, "RAM pages", err);
        if (rc < 0)
            return rc;
        src_drop_cache(s, off, k * ps);
        rc = fn(opaque, block, first, k, buf, err);
        if (rc < 0)
            return rc;
        first += k;
        n -= k;
    }
    return 0;
}

typedef struct walk_progress {
    mrimg_progress_fn fn;
    void *ctx;
    uint64_t done, total;
} walk_progress;

/* Walk a scanned image whose pages are addressable (mapped-ram, or a plain
 * stream replayed into img->mat). */
static int walk_bitmapped(mrimg_image *img, mrimg_ram_fn fn, void *opaque, walk_progress *wp,
                          mrimg_error *err)
{
    uint8_t *buf = xmalloc_aligned(WALK_RUN, err);
    if (!buf)
        return MRIMG_ERR_NOMEM;
    int rc = 0;
    for (unsigned b = 0; b < img->nblocks && rc == 0; b++) {
        img_block *ib = &img->blocks[b];
        uint64_t i = 0, pages = ib->info.pages;
        while (i < pages && rc == 0) {
            uint64_t set = lb_next_set(&ib->data, i);
            if (set > i)
                rc = fn(opaque, b, i, set - i, NULL, err);
            if (rc < 0 || set >= pages)
                break;
            uint64_t clr = lb_next_clear(&ib->data, set);
            rc = read_data_run(img, b, set, clr - set, buf, WALK_RUN, fn, opaque, err);
            i = clr;
            if (wp->fn) {
                wp->done += (clr - set) * ib->info.page_size;
                if (wp->fn(wp->ctx, wp->done, wp->total))
                    rc = err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
            }
        }
    }
    free(buf);
    return rc;
}

/* ---- materialisation of plain streams ------------------------------------ */

static int mat_create(mrimg_image *img, mrimg_error *err)
{
    const char *dir = getenv("MRIMG_TMPDIR");
    if (!dir)
        dir = getenv("TMPDIR");
    if (!dir)
        dir = "/var/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/mrimg-ram-XXXXXX", dir);
        fd = mkstemp(path);
        if (fd >= 0)
            unlink(path);
    }
    if (fd < 0)
        return err_side(err, MRIMG_SIDE_SCRATCH,
                        err_sys(err, errno,
                                "cannot create a temporary file in %s for the RAM replay", dir));
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
    if (rc == 0) {
        img->scanned = true;
        img->scan_flags = 0;
    }
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
    if (!img->scanned) {
        pass_ctx pc = {.img = img, .scan = true};
        img->scan_tried = true;
        rc = run_pass(img, &pc, progress, opaque, err);
        /* A failed scan keeps what it found (stream info so far, the block
         * list, plain page counts).  The bitmaps of a complete mapped-ram
         * block list are loaded even then: the parser checked that they
         * lie inside the file, and they say what the file holds. */
        if (img->si.mapped_ram && (rc == 0 || rc != MRIMG_ERR_NOMEM)) {
            for (unsigned i = 0; i < img->nblocks; i++) {
                img_block *b = &img->blocks[i];
                mrimg_error e2;
                int brc = load_bitmap(img, b, rc == 0 ? err : &e2);
                b->info.pages_data = lb_count(&b->data);
                b->info.pages_zero = b->info.pages - b->info.pages_data;
                if (brc < 0 && rc == 0)
                    rc = brc;
            }
        }
        if (rc < 0)
            return rc;
        img->scanned = true;
        img->scan_flags = 0;
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
            img->scanned = true;
            return 0;
        }
        if (rc < 0 && !pc.disorder)
            return rc;
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
        sp_config cfg;
        int rc = img_peek_config(img, &cfg, err);
        bool mapped = false;
        for (unsigned i = 0; rc == 0 && i < cfg.ncaps; i++)
            mapped |= !strcmp(cfg.caps[i], CAP_MAPPED_RAM);
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
    uint64_t i = first_page, end = first_page + npages;
    /* a buffer for the request, not for the largest run (one page read
     * must not cost an 8 MiB allocation) */
    size_t cap = (size_t)MRIMG_MIN((uint64_t)WALK_RUN, npages * b->info.page_size);
    uint8_t *tmp = NULL;
    while (i < end) {
        uint64_t set = MRIMG_MIN(lb_next_set(&b->data, i), end);
        if (set > i)
            read_cb(&r, block, i, set - i, NULL, err);
        if (set >= end)
            break;
        uint64_t clr = MRIMG_MIN(lb_next_clear(&b->data, set), end);
        if (!tmp && !(tmp = xmalloc_aligned(cap, err)))
            return MRIMG_ERR_NOMEM;
        rc = read_data_run(img, block, set, clr - set, tmp, cap, read_cb, &r, err);
        if (rc < 0)
            break;
        i = clr;
    }
    free(tmp);
    return rc;
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
