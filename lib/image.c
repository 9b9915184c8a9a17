/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening an image: container, payload codec, and the decoded stream. */
#include "image.h"

#include <stdlib.h>
#include <unistd.h>

/* Look for the QEMU stream magic in the first 16 MiB of a file (to
 * suggest --offset for a bare stream that does not start at 0). */
static bool find_stream_magic(mrimg_source *src, uint64_t *at)
{
    enum { SPAN = 16u << 20, BUF = 1u << 20 };
    static const uint8_t magic[8] = {'Q', 'E', 'V', 'M', 0, 0, 0, 3};
    uint8_t *b = malloc(BUF + 8);
    if (!b)
        return false;
    bool found = false;
    for (uint64_t off = 0; off < SPAN && off < src->size && !found; off += BUF) {
        ssize_t n = src_pread_some(src, b, BUF + 8, off, NULL);
        if (n < 8)
            break;
        void *m = memmem(b, (size_t)n, magic, sizeof(magic));
        if (m) {
            *at = off + (uint64_t)((uint8_t *)m - b);
            found = true;
        }
    }
    free(b);
    return found;
}

/* A bare stream: the QEMU magic, or a codec's (a stream compressed by
 * hand, e.g. `zstd plain.mig`); anything else is not an image. */
static void probe_bare(mrimg_source *src, uint64_t off, const uint8_t *head, size_t n,
                       const char *hex, img_payload *pl, ctr_report *rep)
{
    const mrimg_codec *c = n >= 4 && memcmp(head, QEMU_STREAM_MAGIC, 4) == 0
                               ? &codec_raw
                               : codec_probe(head, n);
    if (c) {
        pl->codec = c;
        pl->enc = codec_format(c);
        return;
    }
    uint64_t at;
    if (off == 0 && find_stream_magic(src, &at))
        ctr_error(rep, "container.magic", MRIMG_ERR_FORMAT, off, NULL, NULL,
                  "not a libvirt save image or QEMU migration stream (found %s); a QEMU stream "
                  "starts at offset %llu (0x%llx): pass that offset",
                  hex, (unsigned long long)at, (unsigned long long)at);
    else
        ctr_error(rep, "container.magic", MRIMG_ERR_FORMAT, off, NULL, NULL,
                  "not a libvirt save image or QEMU migration stream: expected \"%s\" or "
                  "\"QEVM\", found %s",
                  LIBVIRT_MAGIC_FINAL, hex);
}

int img_probe_payload(mrimg_source *src, const mrimg_container_info *ci, img_payload *pl,
                      ctr_report *rep, mrimg_error *err)
{
    pl->enc = -1;
    pl->codec = NULL;
    uint64_t off = ci->payload_offset;
    uint8_t head[16] = {0};
    ssize_t n = src_pread_some(src, head, sizeof(head), off, err);
    if (n < 0)
        return (int)n;
    char hex[64] = "an empty file";
    if (n)
        hex_bytes(hex, head, (size_t)n, 8);
    if (!ci->is_libvirt) {
        probe_bare(src, off, head, (size_t)n, hex, pl, rep);
        return 0;
    }

    /* a libvirt payload against its header's format (-1: unknown) */
    if (n == 0) {
        ctr_error(rep, "payload.truncated", MRIMG_ERR_TRUNCATED, off, NULL,
                  "no QEMU stream at all", "the file ends where the payload should start");
        return 0;
    }
    int expect = ci->payload_format == MRIMG_FORMAT_SPARSE ? MRIMG_FORMAT_RAW : ci->payload_format;
    const char *want = mrimg_format_name(ci->payload_format);
    bool qevm = n >= 4 && memcmp(head, QEMU_STREAM_MAGIC, 4) == 0;
    const mrimg_codec *found = qevm ? &codec_raw : codec_probe(head, (size_t)n);
    if (expect >= 0 && found && codec_format(found) != expect) {
        ctr_note(rep, "payload.format", MRIMG_SEV_ERROR, off,
                 "the header says the payload is %s%s, but it is %s: libvirt could not restore "
                 "it",
                 mrimg_format_name((int)ci->format),
                 ci->version < 2 && ci->format != MRIMG_FORMAT_RAW ? " (read as raw: version 1)"
                                                                   : "",
                 qevm ? "a plain QEMU stream" : found->name);
        if (expect == MRIMG_FORMAT_RAW)
            ctr_fail(rep, MRIMG_ERR_FORMAT, off,
                     "the header says the payload is %s, but it is %s-compressed", want,
                     found->name);
        else
            ctr_fail(rep, MRIMG_ERR_FORMAT, off,
                     "the header says the payload is %s, but it starts with %s%s", want,
                     qevm ? "a plain QEMU stream" : found->name, qevm ? "" : " magic");
        /* the verifier goes on with what the payload is */
        pl->codec = found;
        pl->enc = codec_format(found);
        return 0;
    }
    if (!found) {
        const mrimg_codec *wc = expect > 0 ? codec_by_format(expect) : NULL;
        if (wc && wc->magic) {
            /* the decoder cannot even start */
            if ((size_t)n < wc->magic_len && memcmp(head, wc->magic, (size_t)n) == 0)
                ctr_note(rep, "payload.truncated", MRIMG_SEV_ERROR, off + (uint64_t)n,
                         "the file ends inside the %s magic of the payload (%zd bytes present)",
                         wc->name, n);
            else
                ctr_note(rep, "payload.format", MRIMG_SEV_ERROR, off,
                         "the header says the payload is %s, but it starts with %s (no %s magic)",
                         wc->name, hex, wc->name);
            ctr_fail(rep, MRIMG_ERR_FORMAT, off,
                     "the header says the payload is %s, but it starts with %s", want, hex);
            return 0;
        }
        /* raw as the header says (or an unknown format read as raw): a bad
         * QEMU magic is the stream parser's to report */
        found = codec_by_format(expect >= 0 ? expect : MRIMG_FORMAT_RAW);
    }
    pl->codec = found;
    pl->enc = found ? codec_format(found) : -1;
    return 0;
}

/* A pipe: keep the container and the stream's first records in the head
 * window (what the judgement and the stream-head peek read again), and
 * refuse at once what needs random access: a mapped-ram payload, whose
 * pages and bitmaps are read by offset. */
static int open_sequential(mrimg_image *img, mrimg_error *err)
{
    src_seq_keep(&img->src, img->ci.payload_offset + SRC_SEQ_STREAM);
    img->ci.file_size = 0; /* unknown until the end is read (mrimg_check) */
    bool mapped = img->ci.is_libvirt && img->ci.payload_format == MRIMG_FORMAT_SPARSE;
    if (!mapped) {
        /* a bare mapped-ram stream (or a libvirt header that does not say
         * so) shows it in its configuration section; a stream that cannot
         * be peeked is left to the judgement */
        mrimg_error e;
        if (img_head_mapped(img, &mapped, &e) < 0)
            mapped = false;
    }
    if (mapped)
        return src_need_seek(&img->src,
                             "a mapped-ram (sparse) image, whose pages and bitmaps are read by "
                             "offset,",
                             err);
    return 0;
}

mrimg_image *mrimg_open(const char *path, const mrimg_open_opts *opts, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!path)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no path given"), NULL;
    mrimg_image *img = xcalloc(1, sizeof(*img), err);
    if (!img)
        return NULL;
    if (opts)
        img->opts = *opts;
    img->opts.threads = threads_effective(img->opts.threads);
    if (src_open(&img->src, path, err) < 0) {
        free(img);
        return NULL;
    }
    /* the container's first error stops opening; a libvirt payload is
     * probed when it is read (img_stream_open), a bare one now */
    ctr_scan sc;
    int rc = ctr_scan_file(&img->src, img->opts.stream_offset, &sc, err);
    img->ci = sc.info;
    img->meta = sc.meta;
    img_payload pl = {.enc = -1};
    if (rc == 0 && !img->ci.is_libvirt)
        rc = img_probe_payload(&img->src, &img->ci, &pl, &sc.rep, err);
    if (rc == 0)
        rc = ctr_report_error(&sc.rep, err);
    if (rc == 0) {
        if (img->ci.is_libvirt) {
            img->codec = codec_by_format(img->ci.payload_format == MRIMG_FORMAT_SPARSE
                                             ? MRIMG_FORMAT_RAW
                                             : img->ci.payload_format);
            img->mapped_payload = img->ci.payload_format == MRIMG_FORMAT_SPARSE;
            if (!img->codec)
                rc = err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, 28,
                             "no decoder for payload format %s",
                             mrimg_format_name(img->ci.payload_format));
        } else {
            img->codec = pl.codec;
            img->ci.payload_format = pl.enc;
        }
    }
    if (rc == 0 && !src_seekable(&img->src))
        rc = open_sequential(img, err);
    if (rc < 0) {
        mrimg_close(img);
        return NULL;
    }
    return img;
}

void mrimg_close(mrimg_image *img)
{
    if (!img)
        return;
    img_blocks_free(img);
    if (img->judgement_free)
        img->judgement_free(img->judgement);
    if (img->have_mat)
        src_close(&img->mat);
    free(img->mat_base);
    free(img->tail);
    src_close(&img->src);
    free(img->meta);
    free(img);
}

const mrimg_container_info *mrimg_container(const mrimg_image *img) { return &img->ci; }
const mrimg_stream_info *mrimg_stream(const mrimg_image *img) { return &img->si; }
unsigned mrimg_block_count(const mrimg_image *img) { return img->nblocks; }
const char *mrimg_stream_capability(const mrimg_image *img, unsigned i)
{
    return img && img->cfg.present && i < img->cfg.ncaps ? img->cfg.caps[i] : NULL;
}
const mrimg_ram_block_info *mrimg_block(const mrimg_image *img, unsigned index)
{
    return index < img->nblocks ? &img->blocks[index].info : NULL;
}

void img_blocks_free(mrimg_image *img)
{
    if (img->blocks) {
        for (unsigned i = 0; i < img->nblocks; i++) {
            lb_free(&img->blocks[i].data);
            lb_free(&img->blocks[i].seen);
            lb_free(&img->blocks[i].zf);
        }
        free(img->blocks);
    }
    img->blocks = NULL;
    img->nblocks = 0;
}

/* Open the payload of img for parsing: *s reads the decoded stream; *dec
 * is used for compressed payloads (dec->codec is NULL for raw). */
static int img_stream_open(mrimg_image *img, srd *s, mrimg_decoder *dec, mrimg_error *err)
{
    memset(dec, 0, sizeof(*dec));
    uint64_t off = img->ci.payload_offset;
    ctr_report rep;
    ctr_report_init(&rep);
    img_payload pl;
    int rc = img_probe_payload(&img->src, &img->ci, &pl, &rep, err);
    if (rc == 0)
        rc = ctr_report_error(&rep, err);
    if (rc < 0)
        return rc;
    if (img->codec == &codec_raw) {
        rc = srd_init_raw(s, &img->src, off, SRD_BUF, err);
        if (rc == 0 && !img->mapped_payload && img->opts.threads != 1)
            srd_prefetch_start(s);
        return rc;
    }
    rc = dec_open(dec, img->codec, &img->src, off, img->src.size, img->opts.threads, err);
    if (rc < 0)
        return rc;
    rc = srd_init_dec(s, dec, SRD_BUF, err);
    if (rc < 0)
        dec_close(dec);
    else if (img->opts.threads != 1)
        srd_prefetch_start(s); /* decode on another core */
    return rc;
}

int img_rider_add(mrimg_image *img, img_rider *r)
{
    for (int i = 0; i < IMG_RIDERS; i++)
        if (!img->riders[i]) {
            img->riders[i] = r;
            r->fed = false;
            return 0;
        }
    return -1;
}

void img_rider_remove(mrimg_image *img, img_rider *r)
{
    for (int i = 0; i < IMG_RIDERS; i++)
        if (img->riders[i] == r)
            img->riders[i] = NULL;
}

/* The caller's after hook, then: a parse that reached the end of the
 * stream leaves its tail window in the image (taken from the parser, not
 * copied), unless the image holds one already (the same bytes: a borrower
 * of the first keeps a valid pointer). */
typedef struct parse_after {
    mrimg_image *img;
    const img_parse_opts *o;
} parse_after;

static int keep_tail(void *ctx, sp_pass *ps, int rc, mrimg_error *err)
{
    parse_after *pa = ctx;
    mrimg_image *img = pa->img;
    int r = pa->o->after ? pa->o->after(pa->o->after_ctx, ps, rc, err) : rc;
    sp_parser *p = ps->p;
    const mrimg_stream_info *si = ps->si;
    if (rc == 0 && !img->tail && !pa->o->head_only && p->at == SP_AT_TAIL && p->tail &&
        si->stream_size >= si->ram_end && si->ram_end == p->tail_start &&
        si->stream_size - si->ram_end <= p->tail_len) {
        size_t n = (size_t)(si->stream_size - si->ram_end);
        uint8_t *t = realloc(p->tail, n ? n : 1); /* only shrinks */
        img->tail = t ? t : p->tail;
        img->tail_len = n;
        img->tail_start = si->ram_end;
        p->tail = NULL;
        p->tail_len = p->tail_cap = 0;
    }
    return r;
}

int img_tail(mrimg_image *img, mrimg_error *err)
{
    if (img->tail)
        return 0;
    img_parse_opts o = {0};
    int rc = img_parse(img, &o, NULL, err);
    if (rc == 0 && !img->tail)
        rc = err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                     "the device state after the RAM could not be read");
    return rc;
}

int img_parse(mrimg_image *img, const img_parse_opts *o, img_parse_out *out, mrimg_error *err)
{
    img_parse_out local;
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    srd s;
    mrimg_decoder dec;
    memset(&dec, 0, sizeof(dec));
    int rc = img_stream_open(img, &s, &dec, err);
    if (rc < 0)
        return rc;
    out->opened = true;
    out->compressed = dec.codec != NULL;
    s.progress = o->progress;
    s.progress_ctx = o->pctx;
    s.progress_total = src_size_known(&img->src) ? img->src.size - img->ci.payload_offset : 0;
    s.tap = o->tap;
    s.tap_ctx = o->tap_ctx;
    sp_run_opts ro = {
        .h = o->h,
        .ctx = o->ctx,
        .si = o->si,
        .ci = o->regions ? &img->ci : NULL,
        .head_only = o->head_only,
        .after = keep_tail,
    };
    parse_after pa = {img, o};
    ro.after_ctx = &pa;
    /* the pass's own handler first, then the riders, through one tee */
    if (o->hooks.before || o->hooks.after) {
        ro.hooks[0] = o->hooks;
        ro.hooks[0].member = 0; /* the first in the tee, if there is one */
        ro.nhooks = 1;
    }
    sp_tee tee;
    sp_tee_init(&tee);
    img_rider *fed[IMG_RIDERS];
    unsigned nfed = 0;
    if (o->riders && !o->head_only)
        for (int i = 0; i < IMG_RIDERS; i++) {
            img_rider *r = img->riders[i];
            if (!r || (r->once && r->fed))
                continue;
            if (!tee.n && o->h)
                sp_tee_add(&tee, o->h, o->ctx);
            int m = sp_tee_add(&tee, r->h, r->ctx);
            ro.hooks[ro.nhooks] = r->hooks;
            ro.hooks[ro.nhooks++].member = m;
            fed[nfed++] = r;
        }
    if (nfed) {
        ro.h = &sp_tee_handler;
        ro.ctx = &tee;
        ro.tee = &tee;
    }
    rc = sp_run(&s, &dec, img->src.size, &ro, err);
    for (unsigned i = 0; i < nfed; i++)
        fed[i]->fed = true;
    out->in_bytes = dec.codec ? dec.st.in_bytes : srd_pos(&s);
    out->stream_bytes = srd_pos(&s);
    if (dec.codec)
        out->dstats = dec.st;
    srd_free(&s);
    if (dec.codec)
        dec_close(&dec);
    return rc;
}

static int peek_after(void *ctx, sp_pass *ps, int rc, mrimg_error *err)
{
    (void)err;
    if (rc == 0)
        *(sp_config *)ctx = ps->p->cfg;
    return rc;
}

int img_peek_config(mrimg_image *img, const sp_config **cfg, mrimg_error *err)
{
    if (img->cfg.present) { /* a scan has read it */
        *cfg = &img->cfg;
        return 0;
    }
    if (!img->head_read) {
        img_parse_opts o = {.head_only = true, .after = peek_after, .after_ctx = &img->head};
        int rc = img_parse(img, &o, NULL, err);
        if (rc < 0)
            return rc;
        img->head_read = true;
    }
    *cfg = &img->head;
    return 0;
}

int img_head_mapped(mrimg_image *img, bool *mapped, mrimg_error *err)
{
    const sp_config *cfg;
    int rc = img_peek_config(img, &cfg, err);
    *mapped = false;
    for (unsigned i = 0; rc == 0 && i < cfg->ncaps; i++)
        *mapped |= !strcmp(cfg->caps[i], CAP_MAPPED_RAM);
    return rc;
}
