/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A flat file of guest-physical memory: file offset = guest-physical
 * address (the layout of lqs2mem and most raw-memory tools); the gaps of
 * the memory map (PCI hole, VGA window) and zero pages are holes, so the
 * file is as large as the highest mapped address and takes the space of
 * the pages with data.
 *
 * The map must be known before the first page is written, and it depends
 * on the device state at the end of the stream: the caller makes it first
 * (guest_memmap_scan: for a mapped-ram image only its headers, bitmaps and
 * device state are read; a plain or compressed stream is read once more),
 * then the RAM is walked once and each data run is written at the
 * guest-physical address of every range that shows it (a block part can be
 * visible twice, e.g. the end of pc.bios below 1 MiB and below 4 GiB). */
#include <stdlib.h>

#include "guestout.h"

typedef struct pw {
    mrimg_image *in;
    mrimg_convert_stats *st;
    mrimg_sink sink;
    const mrimg_memmap *m;
    uint64_t ps;
    unsigned block;
    uint64_t first;
    const uint8_t *data;
} pw;

/* Pages [first+k0, first+k1) of the current block, to every range. */
static int put(void *ctx, uint64_t k0, uint64_t k1, mrimg_error *err)
{
    pw *w = ctx;
    uint64_t s = (w->first + k0) * w->ps, e = (w->first + k1) * w->ps;
    for (unsigned i = 0; i < w->m->nranges; i++) {
        const mrimg_mem_range *r = &w->m->ranges[i];
        if (r->block != w->block || r->offset >= e || r->offset + r->length <= s)
            continue;
        uint64_t a = MRIMG_MAX(s, r->offset), b = MRIMG_MIN(e, r->offset + r->length);
        int rc = sink_pwrite(&w->sink, w->data + (a - (w->first * w->ps)), (size_t)(b - a),
                             r->gpa + (a - r->offset), err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int walk_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                   mrimg_error *err)
{
    pw *w = opaque;
    if (block == MRIMG_WALK_RESTART) {
        w->st->pages_data = w->st->pages_zero = 0;
        return sink_truncate(&w->sink, 0, err);
    }
    if (!data) {
        w->st->pages_zero += n;
        return 0;
    }
    w->block = block;
    w->first = first;
    w->data = data;
    return gout_runs(data, n, w->ps, w->st, put, w, err);
}

int cv_phys(mrimg_image *in, const mrimg_memmap *m, const char *out_path,
            const mrimg_convert_opts *o, mrimg_convert_stats *st, mrimg_progress_fn progress,
            void *pctx, mrimg_error *err)
{
    pw w;
    memset(&w, 0, sizeof(w));
    w.in = in;
    w.st = st;
    w.m = m;
    w.ps = in->si.target_page_size ? in->si.target_page_size : 4096;
    uint64_t size = 0;
    for (unsigned i = 0; i < m->nranges; i++)
        size = MRIMG_MAX(size, m->ranges[i].gpa + m->ranges[i].length);
    int rc = sink_create(&w.sink, out_path, o->force ? SINK_FORCE : 0, err);
    if (rc < 0)
        return rc;
    rc = mrimg_ram_walk(in, walk_cb, &w, progress, pctx, err);
    if (rc == 0)
        rc = gout_commit(&w.sink, size, st, err);
    if (rc < 0)
        sink_abort(&w.sink);
    return rc;
}
