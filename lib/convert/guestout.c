/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the guest-physical outputs (elf.c, phys.c, kdump.c) share: the RAM
 * walk of an output that writes each page with data at its place as the
 * walk delivers it, the combined positional writes, the ELF notes, the
 * scratch writes and the commit (see guestout.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestout.h"

#define HF_LMA (1u << 14) /* QEMU's hidden flag: long mode active */

/* Lay out now (the block list is known). */
static int walk_layout(gout_walk *g, mrimg_error *err)
{
    g->nblocks = mrimg_block_count(g->in);
    g->ps = g->in->si.target_page_size ? g->in->si.target_page_size : 4096;
    int rc = g->ops->layout(g, err);
    if (rc == 0)
        g->laid_out = true;
    return rc;
}

/* The RAM walk's callback (mrimg_ram_fn). */
static int walk_page(void *opaque, unsigned block, uint64_t first, uint64_t n,
                     const uint8_t *data, mrimg_error *err)
{
    gout_walk *g = opaque;
    if (block == MRIMG_WALK_RESTART) {
        /* start again: everything written so far goes */
        g->st->pages_data = g->st->pages_zero = 0;
        int rc = g->ops->restart ? g->ops->restart(g, err) : 0;
        if (rc < 0)
            return rc;
        gout_wc_drop(&g->wc);
        return sink_truncate(&g->sink, 0, err);
    }
    if (!g->laid_out) {
        int rc = walk_layout(g, err);
        if (rc < 0)
            return rc;
    }
    if (block >= g->nblocks)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0, "page of unknown block %u", block);
    if (!data) {
        g->st->pages_zero += n;
        return 0;
    }
    g->block = block;
    g->first = first;
    g->data = data;
    return gout_runs(data, n, g->ps, g->st, g->ops->put, g, err);
}

/* Create the sink, walk the RAM into it with the device state collected
 * into t, lay out if no page came, make the memory map *m. */
static int walk_run(gout_walk *g, const char *out_path, const mrimg_convert_opts *o,
                    guest_tail *t, mrimg_memmap **m, mrimg_progress_fn progress, void *pctx,
                    mrimg_error *err)
{
    int rc = sink_create(&g->sink, out_path, o->force ? SINK_FORCE : 0, err);
    if (rc < 0)
        return rc;
    g->sink_open = true;
    g->wc.sink = &g->sink;
    rc = mrimg_ram_walk(g->in, walk_page, g, progress, pctx, err);
    if (rc == 0)
        rc = gout_wc_flush(&g->wc, err);
    gout_wc_free(&g->wc);
    if (rc == 0 && !g->laid_out)
        rc = walk_layout(g, err); /* no page at all */
    if (rc == 0)
        rc = guest_tail_get(t, g->in, err);
    if (rc == 0)
        rc = guest_memmap_from_tail(g->in, t, m, err);
    return rc;
}

int gout_convert(const gout_ops *ops, mrimg_image *in, const char *out_path,
                 const mrimg_convert_opts *o, mrimg_convert_stats *st, const gout_gate *gate,
                 mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    /* a machine without a known layout is refused before the long walk */
    const sp_config *cfg;
    int rc = img_peek_config(in, &cfg, err);
    if (rc == 0)
        rc = guest_machine_check(cfg->machine, err);
    if (rc < 0)
        return rc;
    gout_walk *g = xcalloc(1, ops->size, err);
    if (!g)
        return MRIMG_ERR_NOMEM;
    *g = (gout_walk){.ops = ops, .in = in, .machine = cfg->machine, .st = st};
    guest_tail t;
    memset(&t, 0, sizeof(t));
    mrimg_memmap *m = NULL;
    uint64_t size = 0;
    rc = ops->begin ? ops->begin(g, err) : 0;
    if (rc == 0)
        rc = walk_run(g, out_path, o, &t, &m, progress, pctx, err);
    if (rc == 0)
        rc = ops->finish(g, m, &t, &size, err);
    if (rc == 0)
        rc = gout_commit(&g->sink, size, st, gate, err);
    if (rc < 0 && g->sink_open)
        sink_abort(&g->sink);
    mrimg_memory_map_free(m);
    ops->free(g);
    free(g);
    return rc;
}

int gout_notes(const mrimg_image *in, const guest_tail *t, guest_phys_read_fn rd, void *ctx,
               uint8_t **notes, size_t *nlen, bool *lma, mrimg_error *err)
{
    const mrimg_stream_info *si = &in->si;
    *notes = NULL;
    *nlen = 0;
    *lma = true;
    if (!guest_tail_complete(t, si) || !si->has_eof || !si->has_vmdesc ||
        si->eof_offset < si->ram_end || si->vmdesc_offset < si->ram_end ||
        si->vmdesc_offset - si->ram_end + si->vmdesc_size > t->len)
        return 0;
    mrimg_cpus *cpus = NULL;
    mrimg_error derr;
    if (guest_cpus_decode((const char *)t->buf + (si->vmdesc_offset - si->ram_end),
                          (size_t)si->vmdesc_size, t->buf, (size_t)(si->eof_offset - si->ram_end),
                          si->ram_end, &cpus, &derr) < 0)
        return 0;
    if (cpus->n)
        *lma = (cpus->cpu[0].hflags & HF_LMA) != 0;
    int rc = guest_notes_for(cpus, rd, ctx, notes, nlen, err);
    mrimg_cpus_free(cpus);
    return rc;
}

const mrimg_mem_range *gout_range_of(const mrimg_memmap *m, uint64_t gpa, size_t n)
{
    for (unsigned i = 0; i < m->nranges; i++) {
        const mrimg_mem_range *r = &m->ranges[i];
        if (gpa >= r->gpa && gpa - r->gpa <= r->length && n <= r->length - (gpa - r->gpa))
            return r;
    }
    return NULL;
}

int gout_scratch_write(int fd, const uint8_t *p, size_t n, uint64_t off, const char *dir,
                       mrimg_error *err)
{
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return err_sys(err, k < 0 ? errno : ENOSPC, "cannot write the scratch file in %s",
                           dir);
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

int gout_wc_flush(gout_wc *w, mrimg_error *err)
{
    int rc = w->len ? sink_pwrite(w->sink, w->buf, w->len, w->off, err) : 0;
    w->len = 0;
    return rc;
}

int gout_wc_put(gout_wc *w, const uint8_t *p, size_t n, uint64_t off, mrimg_error *err)
{
    if (w->len && (off != w->off + w->len || n > w->cap - w->len)) {
        int rc = gout_wc_flush(w, err);
        if (rc < 0)
            return rc;
    }
    if (!w->buf) {
        w->buf = malloc(GOUT_WC_SIZE);
        if (!w->buf)
            return err_nomem(err);
        w->cap = GOUT_WC_SIZE;
    }
    if (n >= w->cap) /* large: directly */
        return sink_pwrite(w->sink, p, n, off, err);
    if (!w->len)
        w->off = off;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

int gout_commit(mrimg_sink *s, uint64_t size, mrimg_convert_stats *st, const gout_gate *gate,
                mrimg_error *err)
{
    int rc = gate && gate->fn ? gate->fn(gate->ctx, err) : 0;
    if (rc == 0)
        rc = sink_truncate(s, size, err);
    if (rc < 0)
        return rc;
    struct stat sb;
    if (fstat(s->fd, &sb) == 0) {
        st->out_bytes = (uint64_t)sb.st_size;
        st->out_allocated = (uint64_t)sb.st_blocks * 512;
    }
    return sink_commit(s, NULL, err);
}
