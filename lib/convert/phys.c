/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A flat file of guest-physical memory: file offset = guest-physical
 * address (the layout of lqs2mem and most raw-memory tools); the gaps of
 * the memory map (PCI hole, VGA window) and zero pages are holes, so the
 * file is as large as the highest mapped address and takes the space of
 * the pages with data.
 *
 * One pass over the input.  The full map depends on the device state at
 * the end of the stream (BARs, PAM, SMRAM), but most of the machine RAM
 * lies where the machine type and the block list alone put it: RAM below
 * 0xa0000, from 1 MiB to the end of RAM below 4 GiB, and the rest at
 * 4 GiB (guest_layout with machine_ram_only, a subset of the full map).
 * Pages there are written to their final offset as the walk delivers
 * them; every other page (RAM at 0xa0000-0xfffff, ROMs, vga.vram, other
 * device RAM) is parked in a sparse scratch file (MRIMG_TMPDIR, TMPDIR or
 * /var/tmp; unlinked), at an offset computed from the block list.  After
 * the walk the map is made from the device state collected during it, and
 * the parked pages are copied to every guest-physical range that shows
 * them (a block part can be visible twice, e.g. the end of pc.bios below
 * 1 MiB and below 4 GiB); zero pages stay holes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../io/scratch.h"
#include "guestout.h"

#define COPY_CHUNK (1u << 20)

typedef struct pw {
    gout_walk g;           /* first: the pass (its sink is the output) */
    mrimg_memmap *fixed;   /* machine RAM placed from the block list alone */
    uint64_t *base;        /* scratch offset of each block's byte 0 */
    int scratch;           /* parked pages */
    bool have_scratch;
    char scratch_dir[4096];
} pw;

static int layout(gout_walk *g, mrimg_error *err)
{
    pw *w = (pw *)g;
    unsigned n = g->nblocks;
    w->base = calloc(n ? n : 1, sizeof(*w->base));
    const char **names = calloc(n ? n : 1, sizeof(*names));
    uint64_t *lens = calloc(n ? n : 1, sizeof(*lens));
    w->fixed = calloc(1, sizeof(*w->fixed));
    int rc = 0;
    if (!w->base || !names || !lens || !w->fixed) {
        rc = err_nomem(err);
        goto out;
    }
    uint64_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        const mrimg_ram_block_info *b = mrimg_block(g->in, i);
        names[i] = b->name;
        lens[i] = b->used_length;
        w->base[i] = off;
        off = round_up(off + b->used_length, 1u << 20);
    }
    guest_layout_in li = {g->machine, g->in->ci.xml, n, names, lens, NULL, true};
    rc = guest_layout(&li, w->fixed, err);
out:
    free(names);
    free(lens);
    return rc;
}

/* Pages [k0, k1) of the walk's current pages (all with data): to the
 * output where the fixed map places them, the rest parked. */
static int put(void *ctx, uint64_t k0, uint64_t k1, mrimg_error *err)
{
    pw *w = ctx;
    gout_walk *g = &w->g;
    uint64_t s = (g->first + k0) * g->ps, e = (g->first + k1) * g->ps;
    const uint8_t *d0 = g->data - g->first * g->ps; /* block byte 0 */
    uint64_t at = s;
    const mrimg_memmap *f = w->fixed;
    /* fixed ranges are sorted by gpa and, for one block, by offset too */
    for (unsigned i = 0; i < f->nranges && at < e; i++) {
        const mrimg_mem_range *r = &f->ranges[i];
        if (r->block != g->block || r->offset + r->length <= at || r->offset >= e)
            continue;
        uint64_t a = MRIMG_MAX(at, r->offset), b = MRIMG_MIN(e, r->offset + r->length);
        int rc = 0;
        if (a > at)
            rc = gout_scratch_write(w->scratch, d0 + at, (size_t)(a - at), w->base[g->block] + at,
                           w->scratch_dir, err);
        if (rc == 0)
            rc = gout_wc_put(&g->wc, d0 + a, (size_t)(b - a), r->gpa + (a - r->offset), err);
        if (rc < 0)
            return rc;
        at = b;
    }
    if (at < e)
        return gout_scratch_write(w->scratch, d0 + at, (size_t)(e - at), w->base[g->block] + at,
                         w->scratch_dir, err);
    return 0;
}

/* The walk starts again: the parked pages go too. */
static int restart(gout_walk *g, mrimg_error *err)
{
    pw *w = (pw *)g;
    if (ftruncate(w->scratch, 0) != 0)
        return err_sys(err, errno, "cannot truncate the scratch file in %s", w->scratch_dir);
    return 0;
}

/* Whether block bytes [off, off+len) of block b were written by the walk
 * (the fixed map holds them, at the same place as the full map). */
static bool fixed_at(const mrimg_memmap *f, unsigned b, uint64_t gpa, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < f->nranges; i++) {
        const mrimg_mem_range *r = &f->ranges[i];
        if (r->block == b && off >= r->offset && off - r->offset < r->length &&
            len <= r->length - (off - r->offset) &&
            r->gpa + (off - r->offset) == gpa)
            return true;
    }
    return false;
}

/* Every range of the fixed map inside the full map m, at the same place
 * (guest_layout guarantees it; checked, as the pages are already written). */
static int check_fixed(const pw *w, const mrimg_memmap *m, mrimg_error *err)
{
    for (unsigned i = 0; i < w->fixed->nranges; i++) {
        const mrimg_mem_range *f = &w->fixed->ranges[i];
        if (!fixed_at(m, f->block, f->gpa, f->offset, f->length))
            return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                           "machine RAM at 0x%llx: the memory map made from the device state "
                           "does not place it where the block list alone did",
                           (unsigned long long)f->gpa);
    }
    return 0;
}

/* Copy the parked part of range r (everything not fixed) from the
 * scratch file to its guest-physical place, non-zero pages only. */
static int copy_parked(pw *w, const mrimg_mem_range *r, uint8_t *buf, mrimg_error *err)
{
    uint64_t pos = 0;
    while (pos < r->length) {
        size_t n = (size_t)MRIMG_MIN((uint64_t)COPY_CHUNK, r->length - pos);
        uint64_t off = r->offset + pos;
        /* a piece is fixed as a whole or not at all: the fixed ranges are
         * ranges of the full map, merged no further than it */
        if (w->fixed && fixed_at(w->fixed, r->block, r->gpa + pos, off, n)) {
            pos += n;
            continue;
        }
        uint64_t src = w->base[r->block] + off;
        off_t d = lseek(w->scratch, (off_t)src, SEEK_DATA);
        if (d < 0 || (uint64_t)d >= src + n) {
            /* a hole (or no extent map): read it anyway unless it is past the end */
            if (d < 0 && errno != ENXIO)
                d = (off_t)src;
            else {
                pos += n;
                continue;
            }
        }
        size_t got = 0;
        memset(buf, 0, n);
        while (got < n) {
            ssize_t k = pread(w->scratch, buf + got, n - got, (off_t)(src + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return err_sys(err, errno, "cannot read the scratch file in %s", w->scratch_dir);
            if (k == 0)
                break;
            got += (size_t)k;
        }
        /* non-zero page runs */
        uint64_t ps = w->g.ps, np = (n + ps - 1) / ps;
        uint64_t k = 0;
        while (k < np) {
            while (k < np && mem_is_zero(buf + k * ps, (size_t)MRIMG_MIN(ps, n - k * ps)))
                k++;
            uint64_t s = k;
            while (k < np && !mem_is_zero(buf + k * ps, (size_t)MRIMG_MIN(ps, n - k * ps)))
                k++;
            if (k > s) {
                size_t len = (size_t)(MRIMG_MIN(k * ps, (uint64_t)n) - s * ps);
                int rc = sink_pwrite(&w->g.sink, buf + s * ps, len, r->gpa + pos + s * ps, err);
                if (rc < 0)
                    return rc;
            }
        }
        pos += n;
    }
    return 0;
}

static int begin(gout_walk *g, mrimg_error *err)
{
    pw *w = (pw *)g;
    w->scratch = scratch_open("mrimg-phys", "the pages whose place depends on the device state",
                              w->scratch_dir, sizeof(w->scratch_dir), err);
    w->have_scratch = w->scratch >= 0;
    return w->have_scratch ? 0 : w->scratch;
}

/* The walk is over: the parked pages to every place the map shows them. */
static int finish(gout_walk *g, const mrimg_memmap *m, const guest_tail *t, uint64_t *size,
                  mrimg_error *err)
{
    pw *w = (pw *)g;
    (void)t;
    int rc = check_fixed(w, m, err);
    uint8_t *buf = rc == 0 ? malloc(COPY_CHUNK) : NULL;
    if (rc == 0 && !buf)
        rc = err_nomem(err);
    *size = 0;
    for (unsigned i = 0; rc == 0 && i < m->nranges; i++) {
        *size = MRIMG_MAX(*size, m->ranges[i].gpa + m->ranges[i].length);
        rc = copy_parked(w, &m->ranges[i], buf, err);
    }
    free(buf);
    return rc;
}

static void release(gout_walk *g)
{
    pw *w = (pw *)g;
    mrimg_memory_map_free(w->fixed);
    free(w->base);
    if (w->have_scratch)
        close(w->scratch);
}

static const gout_ops phys_ops = {
    .size = sizeof(pw), .begin = begin, .layout = layout, .restart = restart, .put = put,
    .finish = finish, .free = release,
};

int cv_phys(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
            mrimg_convert_stats *st, const gout_gate *gate,
            mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    return gout_convert(&phys_ops, in, out_path, o, st, gate, progress, pctx, err);
}
