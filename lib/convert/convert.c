/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Conversion pipelines.
 *
 *  passthrough   plain -> raw/compressed/bare plain: the decoded stream is
 *                copied byte for byte into the encoder while it is parsed
 *                (parsing validates it; nothing is re-encoded).
 *  to mapped     any -> sparse / bare mapped-ram: the output layout is
 *                computed from the block list (every pages_offset known
 *                before a page is written); pages go to their slots with
 *                coalesced positional writes, zero pages stay holes, a later
 *                record of a page overwrites it (multi-pass), bitmaps are
 *                written last; commands and the device-state tail are copied.
 *  to plain      mapped-ram (or a multi-pass plain stream with compact) ->
 *                plain: one PART section with every page in block order
 *                (PAGE for data, ZERO otherwise), read through the RAM view.
 *  ram           one sparse raw file per RAM block.
 *  guest         ELF core, flat physical file, kdump (elf.c, phys.c, kdump.c).
 *
 * Every pipeline reads a raw or compressed input once: the verifier's
 * stream checks (the judgement, lib/verify/judge.h) ride on its first pass
 * over the stream (a rider of the image, see image.h), and cv_verdict
 * refuses an image with errors before its output is committed.
 * The output is a temporary file beside the target (see io/sink.c), given
 * the final libvirt magic and renamed only after everything succeeded; or
 * a descriptor (mrimg_convert_fd: standard output), written in order, for
 * the outputs that need no going back (the output table's needs_seek). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../image.h"
#include "../stream/writer.h"
#include "guestout.h"
#include "outputs.h"
#include "../util/xml.h"
#include "../verify/judge.h"

#ifndef PWB_SIZE /* smaller in the fuzz build; at least one page */
#define PWB_SIZE (8u << 20)
#endif

/* One progress scale for a whole mrimg_convert call.  The passes it runs
 * (reading a mapped-ram input's bitmaps, a scan, a replay, the conversion)
 * each report on their own scale; this maps them onto one total fixed
 * before the first report - the input's payload bytes (compressed bytes for
 * compressed payloads) per pass over the stream, its data bytes (from the
 * bitmaps) per walk over a mapped-ram input - so that the caller sees one
 * bar that never goes back, with a phase label per pass. */
typedef struct cv_prog {
    const mrimg_convert_opts *o;
    uint64_t total;     /* the whole call */
    uint64_t base;      /* where the current pass starts */
    uint64_t weight;    /* its share of total */
    uint64_t primary;   /* != 0: only reports with this pass-local total count */
    uint64_t shown;     /* the last value reported (never decreases) */
    bool silent;        /* a pass too short to report (metadata only) */
} cv_prog;

static int cvp_report(void *opaque, uint64_t done, uint64_t total)
{
    cv_prog *p = opaque;
    if (p->silent)
        return 0;
    if (p->primary && total != p->primary)
        return 0;
    uint64_t at = p->base;
    if (total && p->weight)
        at += (uint64_t)((double)MRIMG_MIN(done, total) / (double)total * (double)p->weight);
    at = MRIMG_MIN(at, p->base + p->weight);
    if (at < p->shown)
        at = p->shown;
    p->shown = at;
    return p->o->progress(p->o->progress_ctx, at, p->total);
}

/* Start the next pass: the previous one counts as complete. */
static void cvp_begin(cv_prog *p, const char *phase, uint64_t weight, uint64_t primary)
{
    if (p->base + p->weight > p->shown)
        p->shown = MRIMG_MIN(p->base + p->weight, p->total);
    p->base = p->shown;
    p->weight = MRIMG_MIN(weight, p->total - p->base);
    p->primary = primary;
    p->silent = false;
    if (p->o->progress_phase)
        p->o->progress_phase(p->o->progress_ctx, phase);
}

/* Bytes of the pages with data (what a walk over the bitmaps reads). */
static uint64_t data_bytes(const mrimg_image *in)
{
    uint64_t d = 0;
    for (unsigned i = 0; i < in->nblocks; i++)
        d += in->blocks[i].info.pages_data * in->blocks[i].info.page_size;
    return d;
}

static uint64_t payload_bytes(const mrimg_image *in)
{
    /* a pipe's size is not known before its end: no total */
    if (!src_size_known(&in->src))
        return 0;
    return in->src.size > in->ci.payload_offset ? in->src.size - in->ci.payload_offset : 0;
}

static void cvp_end(cv_prog *p)
{
    if (!p->o->progress || p->silent)
        return;
    cvp_begin(p, NULL, 0, 0);
    (void)p->o->progress(p->o->progress_ctx, p->total, p->total);
}

typedef struct cv {
    mrimg_image *in;
    const mrimg_convert_opts *o;
    mrimg_convert_stats *st;
    mrimg_sink sink;
    bool sink_open;
    bool libvirt_out;
    bool mapped_out;
    bool in_mapped;
    uint64_t out_base;          /* file offset of the output stream */
    mrimg_encoder enc;
    bool have_enc;
    sw w;
    /* re-encoding state */
    sp_config cfg;
    bool have_cfg;
    sp_block *blocks;           /* a copy of the input's block list */
    unsigned nblocks;
    sp_section ram;             /* the RAM START header */
    bool in_ram;                /* between RAM START and its footer */
    bool part_written;
    bool postcopy;
    uint64_t page_size;
    /* mapped output */
    uint64_t *o_pages;          /* per block: absolute pages_offset */
    uint64_t *o_bitmap;         /* per block: absolute bitmap_offset */
    lbitmap *o_bits;
    uint8_t *pwb;               /* coalesced page writes */
    int pwb_block;
    uint64_t pwb_first, pwb_count;
    cv_prog prog;
    /* bytes after the end of the input stream (after its VMDESCRIPTION) are
     * not part of it: the output stops at stream_limit (0: no limit) */
    uint64_t stream_limit;
    uint64_t tail_pos;          /* stream offset of the next tail byte */
    vf_judge *judge;            /* the judgement riding on the pass, or NULL */
    int out_fd;                 /* >= 0: a descriptor output (mrimg_convert_fd) */
    bool judged;                /* cv_verdict ran */
    const cv_output *row;       /* the output kind's row (outputs.c) */
} cv;

/* the progress callback and context the passes report to */
#define CV_PROG(c) ((c)->o->progress ? cvp_report : NULL), &(c)->prog

/* ---- output plumbing ---------------------------------------------------- */

static int out_enc(void *ctx, const void *p, size_t n, mrimg_error *err)
{
    return enc_write(&((cv *)ctx)->enc, p, n, err);
}

static int out_sink(void *ctx, const void *p, size_t n, mrimg_error *err)
{
    return sink_write(&((cv *)ctx)->sink, p, n, err);
}

/* Move the mapped output's main stream to stream offset pos. */
static int jump(cv *c, uint64_t pos, mrimg_error *err)
{
    c->w.pos = pos;
    return sink_seek(&c->sink, c->out_base + pos, err);
}

static int pwb_flush(cv *c, mrimg_error *err)
{
    if (!c->pwb_count)
        return 0;
    uint64_t off = c->o_pages[c->pwb_block] + c->pwb_first * c->page_size;
    int rc = sink_pwrite(&c->sink, c->pwb, (size_t)(c->pwb_count * c->page_size), off, err);
    c->pwb_count = 0;
    return rc;
}

/* A data page for the mapped output. */
static int mapped_put(cv *c, unsigned block, uint64_t page, const uint8_t *data, mrimg_error *err)
{
    lbitmap *bits = &c->o_bits[block];
    if (!data || mem_is_zero(data, (size_t)c->page_size)) {
        c->st->pages_zero++;
        if (!lb_test(bits, page))
            return 0;
        /* a page written earlier became zero (multi-pass): drop its bytes */
        lb_clear(bits, page);
        if ((int)block == c->pwb_block && page >= c->pwb_first &&
            page < c->pwb_first + c->pwb_count) {
            int rc = pwb_flush(c, err);
            if (rc < 0)
                return rc;
        }
        return sink_punch(&c->sink, c->o_pages[block] + page * c->page_size, c->page_size, err);
    }
    c->st->pages_data++;
    int rc = lb_set(bits, page, err);
    if (rc < 0)
        return rc;
    bool contiguous = c->pwb_count && (int)block == c->pwb_block &&
                      page == c->pwb_first + c->pwb_count &&
                      (c->pwb_count + 1) * c->page_size <= PWB_SIZE;
    if (!contiguous) {
        rc = pwb_flush(c, err);
        if (rc < 0)
            return rc;
        c->pwb_block = (int)block;
        c->pwb_first = page;
    }
    memcpy(c->pwb + c->pwb_count * c->page_size, data, (size_t)c->page_size);
    c->pwb_count++;
    return 0;
}

static int mapped_walk_cb(void *opaque, unsigned block, uint64_t first, uint64_t n,
                          const uint8_t *data, mrimg_error *err)
{
    cv *c = opaque;
    if (block == MRIMG_WALK_RESTART)
        return 0;
    if (!data) {
        c->st->pages_zero += n;
        return 0;
    }
    for (uint64_t k = 0; k < n; k++) {
        int rc = mapped_put(c, block, first + k, data + k * c->page_size, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Write every block's bitmap at its offset. */
static int mapped_bitmaps(cv *c, mrimg_error *err)
{
    enum { CHUNK = 1u << 20 };
    uint8_t *buf = xmalloc(CHUNK, err);
    if (!buf)
        return MRIMG_ERR_NOMEM;
    int rc = 0;
    for (unsigned b = 0; b < c->nblocks && rc == 0; b++) {
        uint64_t total = (c->blocks[b].pages + 63) / 64 * 8, done = 0;
        while (done < total && rc == 0) {
            size_t n = (size_t)MRIMG_MIN((uint64_t)CHUNK, total - done);
            lb_store_le(&c->o_bits[b], done * 8, buf, n / 8);
            if (!mem_is_zero(buf, n))
                rc = sink_pwrite(&c->sink, buf, n, c->o_bitmap[b] + done, err);
            done += n;
        }
    }
    free(buf);
    return rc;
}

/* ---- preallocation -------------------------------------------------------- */

/* Reserve the output slots of the pages the input says hold data. */
static int prealloc_block(cv *c, unsigned bi, mrimg_error *err)
{
    if (bi >= c->in->nblocks)
        return 0;
    const lbitmap *d = &c->in->blocks[bi].data;
    uint64_t i = lb_next_set(d, 0);
    while (i < d->nbits) {
        uint64_t e = lb_next_clear(d, i);
        uint64_t len = (e - i) * c->page_size;
        int rc = sink_reserve(&c->sink, c->o_pages[bi] + i * c->page_size, len, err);
        if (rc < 0)
            return rc;
        c->st->preallocated += len;
        i = lb_next_set(d, e);
    }
    return 0;
}

/* Give back reserved slots whose page turned out to be zero. */
static int prealloc_trim(cv *c, mrimg_error *err)
{
    for (unsigned bi = 0; bi < c->nblocks && bi < c->in->nblocks; bi++) {
        const lbitmap *d = &c->in->blocks[bi].data;
        uint64_t i = lb_next_set(d, 0);
        while (i < d->nbits) {
            uint64_t e = lb_next_clear(d, i);
            for (uint64_t p = i; p < e;) {
                if (lb_test(&c->o_bits[bi], p)) {
                    p++;
                    continue;
                }
                uint64_t q = p;
                while (q < e && !lb_test(&c->o_bits[bi], q))
                    q++;
                int rc = sink_punch(&c->sink, c->o_pages[bi] + p * c->page_size,
                                    (q - p) * c->page_size, err);
                if (rc < 0)
                    return rc;
                p = q;
            }
            i = lb_next_set(d, e);
        }
    }
    return 0;
}

/* ---- to plain: every page from the RAM view ------------------------------ */

static int plain_walk_cb(void *opaque, unsigned block, uint64_t first, uint64_t n,
                         const uint8_t *data, mrimg_error *err)
{
    cv *c = opaque;
    if (block == MRIMG_WALK_RESTART)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "unexpected walk restart");
    const sp_block *b = &c->blocks[block];
    for (uint64_t k = 0; k < n; k++) {
        const uint8_t *pg = data ? data + k * c->page_size : NULL;
        if (pg && mem_is_zero(pg, (size_t)c->page_size))
            pg = NULL;
        if (pg)
            c->st->pages_data++;
        else
            c->st->pages_zero++;
        int rc = sw_page(&c->w, (int)block, b, first + k, c->page_size, pg, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- event handlers for the re-encoding pipelines ----------------------- */

static int re_on_config(void *ctx, const sp_config *cfg, mrimg_error *err)
{
    cv *c = ctx;
    c->cfg = *cfg;
    c->have_cfg = true;
    if (c->mapped_out) {
        for (unsigned i = 0; i < cfg->ncaps; i++)
            if (!strcmp(cfg->caps[i], CAP_X_IGNORE_SHARED))
                return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                               "the stream uses x-ignore-shared, which QEMU 10 cannot combine "
                               "with mapped-ram");
    }
    int rc = sw_header(&c->w, err);
    return rc ? rc : sw_config(&c->w, cfg, c->mapped_out ? 1 : 0, err);
}

static int write_part_eos(cv *c, mrimg_error *err)
{
    int rc = sw_section_short(&c->w, QEMU_VM_SECTION_PART, c->ram.id, err);
    if (rc == 0)
        rc = sw_eos(&c->w, err);
    if (rc == 0)
        rc = sw_footer(&c->w, c->ram.id, err);
    return rc;
}

static int re_on_command(void *ctx, const sp_command *cmd, mrimg_error *err)
{
    cv *c = ctx;
    if (cmd->cmd == MIG_CMD_POSTCOPY_ADVISE && c->mapped_out)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                       "the stream has a postcopy-advise command (it was saved with postcopy-ram "
                       "enabled, see 'imginfo'), which QEMU cannot combine with mapped-ram; "
                       "convert it to a plain format instead");
    return sw_command(&c->w, cmd, err);
}

static int re_on_section(void *ctx, const sp_section *s, mrimg_error *err)
{
    cv *c = ctx;
    if (s->type == QEMU_VM_SECTION_START) {
        if (c->mapped_out && !c->have_cfg)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                           "the stream has no configuration section, so it cannot announce "
                           "mapped-ram");
        if (!c->have_cfg) {
            int rc = sw_header(&c->w, err);
            if (rc < 0)
                return rc;
        }
        c->ram = *s;
        c->in_ram = true;
        return sw_section_start(&c->w, s, err);
    }
    return 0;
}

static int re_on_blocks(void *ctx, const sp_block *b, unsigned n, mrimg_error *err)
{
    cv *c = ctx;
    c->blocks = xcalloc(n, sizeof(*b), err);
    if (!c->blocks)
        return MRIMG_ERR_NOMEM;
    memcpy(c->blocks, b, n * sizeof(*b));
    c->nblocks = n;
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += b[i].used_length;
    int rc = sw_mem_size(&c->w, total, err);
    if (rc < 0)
        return rc;
    if (c->mapped_out) {
        c->o_pages = xcalloc(n, sizeof(uint64_t), err);
        c->o_bitmap = xcalloc(n, sizeof(uint64_t), err);
        c->o_bits = xcalloc(n, sizeof(lbitmap), err);
        if (!c->o_pages || !c->o_bitmap || !c->o_bits)
            return MRIMG_ERR_NOMEM;
    }
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc = sw_block(&c->w, &b[i], err);
        if (rc < 0 || !c->mapped_out)
            continue;
        uint64_t hdr = c->out_base + c->w.pos;
        uint64_t bm = hdr + MAPPED_RAM_HDR_SIZE;
        uint64_t pages = round_up(bm + (b[i].pages + 63) / 64 * 8, MAPPED_RAM_ALIGN);
        c->o_bitmap[i] = bm;
        c->o_pages[i] = pages;
        rc = lb_init(&c->o_bits[i], b[i].pages, err);
        if (rc == 0 && c->o->preallocate)
            rc = prealloc_block(c, i, err);
        if (rc == 0)
            rc = sw_mapped_header(&c->w, c->page_size, bm, pages, err);
        if (rc == 0)
            rc = jump(c, pages + b[i].used_length - c->out_base, err);
    }
    return rc;
}

static int re_on_page(void *ctx, unsigned block, uint64_t page, const uint8_t *data, uint64_t pos,
                      mrimg_error *err)
{
    (void)pos;
    cv *c = ctx;
    if (c->mapped_out)
        return mapped_put(c, block, page, data, err);
    return 0; /* to plain: the content comes from the RAM view */
}

static int re_on_section_end(void *ctx, const sp_section *s, mrimg_error *err)
{
    cv *c = ctx;
    int rc = 0;
    if (s->type == QEMU_VM_SECTION_START) {
        c->in_ram = false;
        rc = sw_eos(&c->w, err);
        if (rc == 0)
            rc = sw_footer(&c->w, s->id, err);
        if (rc < 0)
            return rc;
        if (c->mapped_out) {
            /* QEMU writes one EOS-only PART after the setup */
            rc = write_part_eos(c, err);
        } else {
            /* one PART carrying every page */
            rc = sw_section_short(&c->w, QEMU_VM_SECTION_PART, s->id, err);
            if (rc == 0)
                rc = img_walk_bitmapped(c->in, plain_walk_cb, c, CV_PROG(c), err);
            if (rc == 0)
                rc = sw_eos(&c->w, err);
            if (rc == 0)
                rc = sw_footer(&c->w, s->id, err);
        }
        c->part_written = true;
    } else if (s->type == QEMU_VM_SECTION_END) {
        rc = sw_section_short(&c->w, QEMU_VM_SECTION_END, s->id, err);
        if (rc == 0)
            rc = sw_eos(&c->w, err);
        if (rc == 0)
            rc = sw_footer(&c->w, s->id, err);
    }
    return rc;
}

/* How many of n stream bytes at pos belong to the stream proper. */
static size_t within_stream(const cv *c, uint64_t pos, size_t n)
{
    if (!c->stream_limit)
        return n;
    if (pos >= c->stream_limit)
        return 0;
    return (size_t)MRIMG_MIN((uint64_t)n, c->stream_limit - pos);
}

static int re_on_tail_start(void *ctx, uint64_t pos, mrimg_error *err)
{
    (void)err;
    ((cv *)ctx)->tail_pos = pos;
    return 0;
}

static int re_on_tail(void *ctx, const uint8_t *p, size_t n, mrimg_error *err)
{
    cv *c = ctx;
    size_t k = within_stream(c, c->tail_pos, n);
    c->tail_pos += n;
    return k ? sw_bytes(&c->w, p, k, err) : 0;
}

/* ---- pipelines ---------------------------------------------------------- */

static int cv_verdict(cv *c, mrimg_error *err);
static int verdict_gate(void *ctx, mrimg_error *err);

static int tap_out(void *ctx, const uint8_t *p, size_t n, mrimg_error *err)
{
    cv *c = ctx;
    size_t k = within_stream(c, c->st->stream_bytes, n);
    c->st->stream_bytes += n;
    return k ? sw_bytes(&c->w, p, k, err) : 0;
}

/* The verbatim copy stops where the parse stops: a stream that does not
 * parse to its end is refused (the judgement riding along records why,
 * cv_failed gives its verdict), so nothing after that point is worth
 * writing - not the rest of the payload, which the judgement may still
 * decode for its codec checks, nor a terabyte hole after it. */
static int stop_tap(void *ctx, sp_pass *ps, int rc, const mrimg_error *perr, mrimg_error *err)
{
    (void)ctx;
    (void)perr;
    (void)err;
    if (rc < 0)
        ps->s->tap = NULL;
    return 0;
}

/* The conversion's pass over the input stream; the riders (the judgement,
 * see cv_verdict) come along. */
static int run_parse(cv *c, const sp_handler *h, bool tap, mrimg_error *err)
{
    img_parse_opts o = {
        .h = h,
        .ctx = c,
        .riders = true,
        .progress = c->o->progress ? cvp_report : NULL,
        .pctx = &c->prog,
    };
    if (tap) {
        o.tap = tap_out;
        o.tap_ctx = c;
        o.hooks.after = stop_tap;
    }
    img_parse_out po;
    int rc = img_parse(c->in, &o, &po, err);
    c->st->in_bytes = po.in_bytes;
    if (!tap)
        c->st->stream_bytes = po.stream_bytes;
    if (rc == 0 && c->mapped_out)
        rc = pwb_flush(c, err);
    return rc;
}

static int pipeline_passthrough(cv *c, mrimg_error *err)
{
    static const sp_handler h = {0};
    cvp_begin(&c->prog, "converting", UINT64_MAX, payload_bytes(c->in));
    return run_parse(c, &h, true, err);
}

static const sp_handler re_handler = {
    .on_config = re_on_config,
    .on_section = re_on_section,
    .on_section_end = re_on_section_end,
    .on_command = re_on_command,
    .on_blocks = re_on_blocks,
    .on_page = re_on_page,
    .on_tail_start = re_on_tail_start,
    .on_tail = re_on_tail,
};

static int pipeline_to_mapped(cv *c, mrimg_error *err)
{
    c->pwb = xmalloc_aligned(PWB_SIZE, err);
    if (!c->pwb)
        return MRIMG_ERR_NOMEM;
    c->pwb_block = -1;
    c->st->reencoded = 1;
    /* a mapped-ram input's pages are read by the walk below, the stream
     * holds only metadata: progress follows the walk */
    cvp_begin(&c->prog, "converting", UINT64_MAX,
              c->in_mapped ? data_bytes(c->in) : payload_bytes(c->in));
    int rc = run_parse(c, &re_handler, false, err);
    if (rc == 0 && c->in_mapped) {
        /* pages of a mapped-ram input are not in its stream: copy them */
        rc = img_walk_bitmapped(c->in, mapped_walk_cb, c, CV_PROG(c),
                                err);
        if (rc == 0)
            rc = pwb_flush(c, err);
    }
    if (rc == 0 && c->o->preallocate)
        rc = prealloc_trim(c, err);
    if (rc == 0)
        rc = mapped_bitmaps(c, err);
    if (rc == 0)
        rc = sink_truncate(&c->sink, c->out_base + c->w.pos, err);
    return rc;
}

static int pipeline_to_plain(cv *c, mrimg_error *err)
{
    c->st->reencoded = 1;
    /* the pages come from the RAM view: mapped-ram or a replayed stream */
    if (!c->in_mapped)
        cvp_begin(&c->prog, "replaying the stream", payload_bytes(c->in), payload_bytes(c->in));
    int rc = img_addressable(c->in, CV_PROG(c), err);
    cvp_begin(&c->prog, "converting", UINT64_MAX,
              c->in_mapped ? data_bytes(c->in) : payload_bytes(c->in));
    return rc ? rc : run_parse(c, &re_handler, false, err);
}

/* ---- one sparse raw file per block ---------------------------------------- */

typedef struct ram_out {
    cv *c;
    const char *dir;
    mrimg_sink *sinks;
    unsigned n;
    uint8_t *buf;
} ram_out;

/* A block name as a file name: without a leading '/', '/' and control
 * bytes as '_'; its length. */
static size_t block_name_subst(char out[MRIMG_NAME_MAX + 1], const char *name)
{
    size_t k = 0;
    for (const char *p = name; *p && k < MRIMG_NAME_MAX; p++) {
        if (p == name && *p == '/')
            continue;
        unsigned char ch = (unsigned char)*p;
        out[k++] = (ch == '/' || ch < 0x20 || ch == 0x7f) ? '_' : (char)ch;
    }
    out[k] = '\0';
    return k;
}

static void block_file_name(char *out, size_t cap, const char *name, unsigned idx,
                            const mrimg_image *in)
{
    char b[MRIMG_NAME_MAX + 1];
    size_t k = block_name_subst(b, name);
    if (k == 0 || !strcmp(b, ".") || !strcmp(b, ".."))
        snprintf(b, sizeof(b), "block%u", idx);
    /* names that collide after the substitution get the block index */
    for (unsigned j = 0; j < idx; j++) {
        char o[MRIMG_NAME_MAX + 1];
        block_name_subst(o, mrimg_block(in, j)->name);
        if (!strcmp(o, b)) {
            size_t l = strlen(b);
            snprintf(b + MRIMG_MIN(l, (size_t)MRIMG_NAME_MAX - 12), 12, "-%u", idx);
            break;
        }
    }
    snprintf(out, cap, "%s", b);
}

static int ram_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                  mrimg_error *err)
{
    ram_out *r = opaque;
    if (block == MRIMG_WALK_RESTART || !data) {
        if (!data && block != MRIMG_WALK_RESTART)
            r->c->st->pages_zero += n;
        return 0;
    }
    uint64_t ps = r->c->page_size;
    /* write runs of non-zero pages */
    uint64_t k = 0;
    while (k < n) {
        while (k < n && mem_is_zero(data + k * ps, (size_t)ps)) {
            r->c->st->pages_zero++;
            k++;
        }
        uint64_t s = k;
        while (k < n && !mem_is_zero(data + k * ps, (size_t)ps))
            k++;
        if (k > s) {
            r->c->st->pages_data += k - s;
            int rc = sink_pwrite(&r->sinks[block], data + s * ps, (size_t)((k - s) * ps),
                                 (first + s) * ps, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static void ram_path(char *path, size_t cap, const char *dir, const cv *c, unsigned i)
{
    char name[MRIMG_NAME_MAX + 16];
    block_file_name(name, sizeof(name), mrimg_block(c->in, i)->name, i, c->in);
    snprintf(path, cap, "%s/%s", dir, name);
}

static int pipeline_ram(cv *c, const char *dir, mrimg_error *err)
{
    if (!c->in_mapped)
        cvp_begin(&c->prog, "replaying the stream", payload_bytes(c->in), payload_bytes(c->in));
    int rc = img_addressable(c->in, CV_PROG(c), err);
    if (rc < 0)
        return rc;
    struct stat st;
    /* a directory this run creates is removed again if the run fails (or a
     * signal ends it), with what was written into it: a rerun must not find
     * it "already exists" */
    bool created = false;
    int dir_slot = -1;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return err_side(err, MRIMG_SIDE_OUTPUT,
                            err_set(err, MRIMG_ERR_EXISTS, MRIMG_OFF_NONE, 0,
                                    "%s exists and is not a directory", dir));
        if (!c->o->force)
            return err_side(err, MRIMG_SIDE_OUTPUT,
                            err_set(err, MRIMG_ERR_EXISTS, MRIMG_OFF_NONE, 0,
                                    "%s already exists (use --force to write into it)", dir));
    } else {
        dir_slot = sink_track(dir, true); /* before mkdir: no window for a signal */
        if (mkdir(dir, 0700) != 0) {
            rc = err_side(err, MRIMG_SIDE_OUTPUT,
                          err_sys(err, errno, "cannot create directory %s", dir));
            sink_untrack(dir_slot);
            return rc;
        }
        created = true;
    }
    unsigned n = mrimg_block_count(c->in);
    ram_out r = {c, dir, NULL, n, NULL};
    char path[4096 + 300];
    int *done_slot = NULL;
    r.sinks = xcalloc(n, sizeof(*r.sinks), err);
    done_slot = xcalloc(n, sizeof(*done_slot), err);
    if (!r.sinks || !done_slot)
        rc = MRIMG_ERR_NOMEM;
    unsigned opened = 0, committed = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        ram_path(path, sizeof(path), dir, c, i);
        rc = sink_create(&r.sinks[i], path, SINK_NAMED | (c->o->force ? SINK_FORCE : 0), err);
        if (rc < 0)
            break;
        opened++;
    }
    if (rc == 0) {
        c->page_size = c->in->si.target_page_size;
        cvp_begin(&c->prog, "writing RAM files", UINT64_MAX, data_bytes(c->in));
        rc = img_walk_bitmapped(c->in, ram_cb, &r, CV_PROG(c), err);
    }
    if (rc == 0)
        rc = cv_verdict(c, err); /* nothing is committed from an image with errors */
    for (unsigned i = 0; i < opened && rc == 0; i++) {
        rc = sink_truncate(&r.sinks[i], mrimg_block(c->in, i)->used_length, err);
        if (rc == 0)
            rc = sink_flush(&r.sinks[i], err);
        if (rc == 0) {
            c->st->out_bytes += r.sinks[i].size;
            if (fstat(r.sinks[i].fd, &st) == 0)
                c->st->out_allocated += (uint64_t)st.st_blocks * 512;
            rc = sink_commit(&r.sinks[i], NULL, err);
        }
        if (rc == 0) {
            committed++;
            if (created) { /* the signal cleanup removes it until the run is done */
                ram_path(path, sizeof(path), dir, c, i);
                done_slot[i] = sink_track(path, false);
            }
        }
    }
    for (unsigned i = 0; i < opened; i++)
        sink_abort(&r.sinks[i]); /* no-op for committed ones */
    if (rc < 0 && created) {
        for (unsigned i = 0; i < committed; i++) {
            ram_path(path, sizeof(path), dir, c, i);
            unlink(path);
        }
        rmdir(dir);
    }
    for (unsigned i = 0; i < committed && created; i++)
        sink_untrack(done_slot[i]);
    sink_untrack(dir_slot);
    free(done_slot);
    free(r.sinks);
    return rc;
}

/* ---- guest-physical memory: ELF core, flat file (elf.c, phys.c) ---------- */

static int verdict_gate(void *ctx, mrimg_error *err);

/* A walk-based writer of the row (elf.c, phys.c, kdump.c): one pass, the
 * judgement's verdict asked through the gate before the output is committed */
int cv_pipe_walk(cv *c, const cv_output *row, const char *out_path, mrimg_error *err)
{
    uint64_t walk = c->in_mapped ? data_bytes(c->in) : payload_bytes(c->in);
    gout_gate gate = {verdict_gate, c};
    cvp_begin(&c->prog, "converting", UINT64_MAX, walk);
    int rc = row->writer(c->in, out_path, c->o, c->st, &gate, CV_PROG(c), err);
    if (rc == 0)
        cvp_end(&c->prog);
    return rc;
}

int cv_pipe_ram(cv *c, const cv_output *row, const char *out_path, mrimg_error *err)
{
    (void)row;
    int rc = pipeline_ram(c, out_path, err);
    if (rc == 0)
        cvp_end(&c->prog);
    return rc;
}

/* ---- entry point -------------------------------------------------------- */

int mrimg_xml_check(const char *xml, mrimg_error *err)
{
    vx_result xr;
    vx_check(xml, strlen(xml), &xr);
    if (!xr.ok)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "the XML is not well-formed at byte %zu: %s", xr.where, xr.msg);
    if (strcmp(xr.root, "domain") != 0 || !xr.has_name || !xr.has_uuid)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "the XML is not a domain definition (expected a <domain> root with "
                       "<name> and <uuid>, found <%s>%s%s)",
                       xr.root, xr.has_name ? "" : " without <name>",
                       xr.has_uuid ? "" : " without <uuid>");
    return 0;
}

int mrimg_cookie_check(const char *cookie, mrimg_error *err)
{
    vx_result xr;
    vx_check(cookie, strlen(cookie), &xr);
    if (!xr.ok)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "the cookie is not well-formed XML at byte %zu: %s", xr.where, xr.msg);
    if (strcmp(xr.root, "cookie") != 0)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "the XML is not a save cookie (expected a <cookie> root, found <%s>)",
                       xr.root);
    return 0;
}

/* An error naming the first error of the judgement (check name, offset,
 * message), or 0 when there is none.  The code is MRIMG_ERR_FORMAT, or
 * INCOMPLETE / TRUNCATED / CHECKSUM for the checks of those names. */
static int refuse_on_errors(const mrimg_verify_result *r, int allow_incomplete, mrimg_error *err)
{
    uint64_t errors = r->errors;
    const mrimg_problem *first = NULL;
    for (unsigned i = 0; i < r->nproblems; i++) {
        const mrimg_problem *p = &r->problems[i];
        if (p->severity != MRIMG_SEV_ERROR)
            continue;
        if (allow_incomplete && !strcmp(p->check, "container.incomplete")) {
            errors--;
            continue;
        }
        if (!first)
            first = p;
    }
    if (!errors)
        return 0;
    if (!first) /* only dropped ones (beyond the cap) */
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                       "the image has %llu errors: it cannot be converted",
                       (unsigned long long)errors);
    char more[64] = "";
    if (errors > 1)
        snprintf(more, sizeof(more), " (and %llu more error%s: imgverify lists them)",
                 (unsigned long long)(errors - 1), errors > 2 ? "s" : "");
    /* the code says what kind of problem it is, as the pipelines would */
    const char *dot = strchr(first->check, '.');
    mrimg_code code = !strcmp(first->check, "container.incomplete") ? MRIMG_ERR_INCOMPLETE
                      : dot && !strcmp(dot, ".truncated")           ? MRIMG_ERR_TRUNCATED
                      : !strcmp(first->check, "payload.checksum")   ? MRIMG_ERR_CHECKSUM
                                                                    : MRIMG_ERR_FORMAT;
    return err_set(err, code, first->offset_kind, first->offset, "%s: %s%s", first->check,
                   first->message, more);
}

/* A metadata read failed before the judgement ran: the judgement's first
 * error names the problem better (its check); without one, the failure
 * stands as it was. */
static int judged_failure(mrimg_image *in, const mrimg_convert_opts *opts, int rc,
                          mrimg_error *err)
{
    mrimg_error jerr;
    const mrimg_verify_result *jr;
    if (mrimg_check(in, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &jerr) == 0) {
        int jrc = refuse_on_errors(jr, opts->allow_incomplete, &jerr);
        if (jrc < 0) {
            if (err)
                *err = jerr;
            return jrc;
        }
    }
    return rc;
}

/* The judgement that rode on the conversion's pass, before anything is
 * committed: an image with errors is refused (the output is then dropped
 * by the caller).  When the pass did not carry it to its end, the
 * judgement runs on its own (mrimg_check). */
static int cv_verdict(cv *c, mrimg_error *err)
{
    if (!c->judge || c->judged)
        return 0;
    c->judged = true;
    img_rider_remove(c->in, vf_judge_rider(c->judge));
    const mrimg_verify_result *jr = NULL;
    int rc = vf_judge_end(c->judge, c->in, &jr, err);
    if (rc > 0)
        rc = mrimg_check(c->in, MRIMG_CHECK_QUICK, NULL, NULL, &jr, err);
    if (rc < 0)
        return rc;
    return refuse_on_errors(jr, c->o->allow_incomplete, err);
}

static int verdict_gate(void *ctx, mrimg_error *err) { return cv_verdict(ctx, err); }

/* The conversion failed with rc while the judgement rode along: an image
 * with errors is refused with the judgement's first error, as it was when
 * the judgement ran first (judged_failure) - from the pass if it got to
 * the end, else from a judgement of its own; without errors (or when the
 * judgement cannot be had) the failure stands.  Running out of memory and
 * an interruption stand as they are. */
static int cv_failed(cv *c, int rc, mrimg_error *err)
{
    if (c->judged || rc == MRIMG_ERR_NOMEM || rc == MRIMG_ERR_INTERRUPTED)
        return rc;
    mrimg_error jerr;
    mrimg_error_clear(&jerr);
    int jrc = cv_verdict(c, &jerr);
    if (jrc < 0 && jrc != MRIMG_ERR_IO && jrc != MRIMG_ERR_NOMEM &&
        jrc != MRIMG_ERR_INTERRUPTED) {
        *err = jerr;
        return jrc;
    }
    return rc;
}

static int cv_run(cv *c, const char *out_path, bool plain_scan, mrimg_error *err);

/* Where the output goes: a file (out_path, temporary + rename) or a
 * descriptor (out_fd >= 0, written in order; out_path names it). */
static int convert(mrimg_image *in, const char *out_path, int out_fd,
                   const mrimg_convert_opts *opts, mrimg_convert_stats *stats, mrimg_error *err)
{
    /* the output kind: everything below asks its row, never the number */
    const cv_output *row = cv_output_row(opts->out);
    if (!row)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "unknown output kind %d",
                       (int)opts->out);
    /* outputs that go back to what they wrote cannot go to a stream */
    if (out_fd >= 0 && row->d.needs_seek)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "this output cannot be written to a pipe or standard output: %s (give "
                       "an output file)",
                       row->d.seek_reason ? row->d.seek_reason : "it is written by offset");
    cv c;
    memset(&c, 0, sizeof(c));
    c.in = in;
    c.o = opts;
    c.st = stats;
    c.row = row;
    c.out_fd = out_fd;
    c.libvirt_out = row->d.libvirt;
    c.mapped_out = row->d.mapped;
    /* --compact concerns plain migration-stream outputs only */
    bool compact = opts->compact && row->d.stream && !c.mapped_out;

    if (in->ci.is_libvirt && !in->ci.complete && !opts->allow_incomplete)
        return err_set(err, MRIMG_ERR_INCOMPLETE, MRIMG_OFF_FILE, 0,
                       "container.incomplete: the input is an incomplete save (magic %s): the "
                       "save never finished (allow_incomplete converts it if its stream is whole)",
                       LIBVIRT_MAGIC_PARTIAL);
    if (opts->xml) {
        /* libvirt re-parses it on restore: refuse what it could not read */
        int rc = mrimg_xml_check(opts->xml, err);
        if (rc < 0)
            return rc;
    }
    if (!c.libvirt_out && (opts->xml || opts->running >= 0))
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "a bare output has no libvirt header: a replacement XML or a "
                       "running/paused flag applies to libvirt outputs only");
    if (opts->cookie) {
        if (!c.libvirt_out)
            return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                           "a bare QEMU stream has no save cookie: a replacement cookie "
                           "applies to libvirt outputs only");
        int rc = mrimg_cookie_check(opts->cookie, err);
        if (rc < 0)
            return rc;
    }
    if (c.libvirt_out && !opts->xml && !in->ci.is_libvirt)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "a libvirt image needs a domain XML: the input is a bare QEMU stream, so "
                       "give one (--xml FILE)");

    /* which layout does the input have?  (An input these metadata reads
     * fail on is refused by the judgement, with its check's name.) */
    const sp_config *cfg;
    int rc = img_peek_config(in, &cfg, err);
    if (rc == 0)
        rc = img_head_mapped(in, &c.in_mapped, err); /* the same head, kept */
    if (rc < 0)
        return judged_failure(in, opts, rc, err);
    c.prog.o = opts;
    if (c.in_mapped) {
        /* the block list and bitmaps: metadata only, too short to report */
        c.prog.silent = true;
        rc = mrimg_scan(in, 0, CV_PROG(&c), err);
        if (rc < 0)
            return judged_failure(in, opts, rc, err);
    }
    /* the one judgement (quick level): an image with an error-severity
     * problem is not converted, whatever the pipeline would make of it; the
     * deliberate override allow_incomplete lets container.incomplete
     * through, nothing else.  A plain or compressed input is judged on the
     * conversion's own pass (the verifier's stream checks ride along, see
     * cv_verdict): its output is dropped at the end if the judgement
     * refuses it.  A mapped-ram input's judgement reads only metadata: it
     * runs first, on its own. */
    bool judge = !(in->judgement && in->judgement_level >= 1);
    if (judge && !c.in_mapped) {
        rc = vf_judge_begin(in, &c.judge, err);
        if (rc < 0)
            return rc;
        if (rc == 0 && img_rider_add(in, vf_judge_rider(c.judge)) < 0) {
            vf_judge_free(c.judge);
            c.judge = NULL;
        }
    }
    /* the plan: one total for every pass below, fixed before the first
     * report (see cv_prog) */
    uint64_t P = payload_bytes(in);
    bool plain_scan = !in->scanned && (opts->preallocate || (!c.in_mapped && compact));
    bool judge_pass = judge && !c.judge;
    uint64_t total = (plain_scan ? P : 0) + (judge_pass ? P : 0);
    if (c.in_mapped)
        total += data_bytes(in);
    else if ((row->plan & CV_PLAN_REPLAY) || compact)
        total += 2 * P; /* a replay into a scratch file, then the pages from it */
    else
        total += P;
    c.prog.total = MRIMG_MAX(total, 1);
    c.prog.silent = false;
    if (!src_seekable(&in->src)) {
        /* a pipe is read once: a plan with more than one pass over the
         * stream is refused before anything is written */
        unsigned passes = (plain_scan ? 1u : 0u) + (judge_pass ? 1u : 0u) + 1u;
        const char *twice = NULL;
        if (plain_scan)
            twice = opts->compact ? "--compact scans the stream before converting it"
                                  : "--preallocate scans the stream before converting it";
        else if (passes > 1)
            twice = "the judgement needs a pass of its own";
        if (twice) {
            if (c.judge) {
                img_rider_remove(in, vf_judge_rider(c.judge));
                vf_judge_free(c.judge);
            }
            int rc2 = err_side(err, MRIMG_SIDE_INPUT,
                               err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                                       "%s is a pipe, which can be read only once: this "
                                       "conversion reads the input twice (%s); give a regular "
                                       "file",
                                       in->src.name, twice));
            if (err)
                err->sys_errno = ESPIPE;
            return rc2;
        }
    }

    if (!c.judge) {
        if (judge)
            cvp_begin(&c.prog, "checking", P, P);
        const mrimg_verify_result *jr;
        rc = mrimg_check(in, MRIMG_CHECK_QUICK, CV_PROG(&c), &jr, err);
        if (rc < 0)
            return rc;
        rc = refuse_on_errors(jr, opts->allow_incomplete, err);
        if (rc < 0)
            return rc;
        if (jr->stream_parsed && jr->stream_trailing)
            c.stream_limit = jr->stream_size;
    }
    c.page_size = cfg->has_page_bits ? 1ull << cfg->page_bits : 4096;
    rc = cv_run(&c, out_path, plain_scan, err);
    if (rc < 0 && c.judge)
        rc = cv_failed(&c, rc, err);
    if (c.judge) {
        img_rider_remove(in, vf_judge_rider(c.judge));
        vf_judge_free(c.judge);
    }
    return rc;
}

/* The conversion proper, after the judgement (or with it riding along). */
static int cv_run(cv *c, const char *out_path, bool plain_scan, mrimg_error *err)
{
    mrimg_image *in = c->in;
    const mrimg_convert_opts *opts = c->o;
    uint64_t P = payload_bytes(in);
    int rc = 0;
    if (plain_scan)
        cvp_begin(&c->prog, "scanning", P, P);
    if (opts->preallocate) {
        if (!c->mapped_out)
            return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                           "preallocation applies to sparse (mapped-ram) outputs only");
        if (in->codec != &codec_raw)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                           "preallocation needs a sparse or raw input: a %s payload does not "
                           "tell which pages hold data without decompressing it all",
                           in->codec->name);
        /* the pages with data, from the block list and bitmaps (mapped) or
         * one pass over the records (raw) */
        rc = mrimg_scan(in, 0, CV_PROG(c), err);
        if (rc < 0)
            return rc;
    }

    return c->row->pipeline(c, c->row, out_path, err);
}

/* ---- migration streams: libvirt images and bare streams ----------------- */

int cv_pipe_stream(cv *c, const cv_output *row, const char *out_path, mrimg_error *err)
{
    mrimg_image *in = c->in;
    const mrimg_convert_opts *opts = c->o;
    mrimg_convert_stats *stats = c->st;
    int rc = 0;
    bool to_plain = !c->mapped_out && c->in_mapped;
    if (!c->mapped_out && !c->in_mapped && opts->compact) {
        rc = mrimg_scan(in, 0, CV_PROG(c), err);
        if (rc < 0)
            return rc;
        to_plain = in->si.multi_pass || !in->si.ordered;
    }

    rc = c->out_fd >= 0 ? err_side(err, MRIMG_SIDE_OUTPUT,
                                   sink_create_fd(&c->sink, c->out_fd, out_path, err))
                        : sink_create(&c->sink, out_path, opts->force ? SINK_FORCE : 0, err);
    if (rc < 0)
        return rc;
    if (c->libvirt_out) {
        ctr_out co = {
            .format = (uint32_t)row->d.payload_format,
            .was_running = opts->running >= 0 ? (uint32_t)(opts->running != 0)
                           : in->ci.is_libvirt ? in->ci.was_running
                                               : 0,
            .xml = opts->xml ? opts->xml : in->ci.xml,
            .cookie = opts->cookie ? opts->cookie : in->ci.cookie,
            .min_data_len = in->ci.is_libvirt ? in->ci.data_len : 0,
        };
        rc = ctr_write(&c->sink, &co, &c->out_base, err);
    }
    if (rc == 0 && !c->mapped_out) {
        int fmt = row->d.payload_format;
        mrimg_enc_opts eo = {opts->level, threads_effective(opts->threads)};
        const mrimg_codec *codec = codec_by_format(fmt);
        rc = codec ? enc_open(&c->enc, codec, &c->sink, &eo, err)
                   : err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                             "no encoder for format %s", mrimg_format_name(fmt));
        if (rc == 0) {
            c->have_enc = true;
            sw_init(&c->w, out_enc, c);
        }
    } else if (rc == 0) {
        sw_init(&c->w, out_sink, c);
    }

    if (rc == 0) {
        if (c->mapped_out)
            rc = pipeline_to_mapped(c, err);
        else if (to_plain)
            rc = pipeline_to_plain(c, err);
        else
            rc = pipeline_passthrough(c, err);
    }
    if (rc == 0 && c->have_enc)
        rc = enc_finish(&c->enc, err);
    if (rc == 0) {
        stats->out_bytes = c->sink.size > sink_tell(&c->sink) ? c->sink.size : sink_tell(&c->sink);
        struct stat st;
        if (sink_flush(&c->sink, err) == 0 && sink_seekable(&c->sink) &&
            fstat(c->sink.fd, &st) == 0) {
            stats->out_bytes = (uint64_t)st.st_size;
            stats->out_allocated = (uint64_t)st.st_blocks * 512;
        }
        if (rc == 0)
            rc = cv_verdict(c, err);
        if (rc == 0)
            rc = sink_commit(&c->sink, c->libvirt_out ? LIBVIRT_MAGIC_FINAL : NULL, err);
        if (rc == 0)
            cvp_end(&c->prog);
    }
    if (c->have_enc)
        enc_close(&c->enc);
    if (rc < 0)
        sink_abort(&c->sink);
    if (c->o_bits)
        for (unsigned i = 0; i < c->nblocks; i++)
            lb_free(&c->o_bits[i]);
    free(c->o_bits);
    free(c->o_pages);
    free(c->o_bitmap);
    free(c->blocks);
    free(c->pwb);
    return rc;
}

/* mrimg_convert and mrimg_convert_fd: versioned stats, defaults */
static int convert_entry(mrimg_image *in, const char *out_path, int out_fd,
                         const mrimg_convert_opts *opts, mrimg_convert_stats *stats,
                         mrimg_error *err)
{
    mrimg_error_clear(err);
    if (stats && !vstruct_ok(stats))
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "mrimg_convert_stats.size is not set");
    if (!in || !out_path)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no input or output");
    mrimg_convert_opts defaults;
    if (!opts) {
        opts_convert_defaults(&defaults);
        opts = &defaults;
    }
    /* the whole struct of this version, then what fits in the caller's */
    mrimg_convert_stats full;
    memset(&full, 0, sizeof(full));
    int rc = convert(in, out_path, out_fd, opts, &full, err);
    if (stats)
        vstruct_copy(stats, &full, sizeof(full));
    return rc;
}

int mrimg_convert(mrimg_image *in, const char *out_path, const mrimg_convert_opts *opts,
                  mrimg_convert_stats *stats, mrimg_error *err)
{
    return convert_entry(in, out_path, -1, opts, stats, err);
}

int mrimg_convert_fd(mrimg_image *in, int fd, const char *name, const mrimg_convert_opts *opts,
                     mrimg_convert_stats *stats, mrimg_error *err)
{
    if (fd < 0) {
        mrimg_error_clear(err);
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no output descriptor");
    }
    return convert_entry(in, name ? name : "(fd)", fd, opts, stats, err);
}
