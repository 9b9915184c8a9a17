/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An ELF core of the guest's physical memory, as QEMU's dump-guest-memory
 * (paging off, format elf) writes it for a running guest, for the tools
 * that read those (crash, drgn, gdb, Volatility).
 *
 * What QEMU 10 writes (checked on real dumps, tests/qemu/test_memmap.py):
 * an ELF64 little-endian ET_CORE; one PT_NOTE first, then one PT_LOAD per
 * contiguous guest-physical RAM range, ascending, with p_paddr = p_vaddr =
 * the guest-physical address, p_filesz = p_memsz, p_flags 0, p_align 0.
 * We write the same PT_LOAD set with the same bytes; the file layout
 * differs: QEMU packs the segments one after the other, we place each RAM
 * block at an offset computed from the block list alone, so that pages are
 * written where they belong as the walk delivers them, in one pass over the
 * input; the program headers, which need the device state at the end of
 * the stream (BARs, PAM), are written last into a space reserved at the
 * start.  Zero pages are holes.  A block region no PT_LOAD refers to is
 * punched out again.
 *
 * The PT_NOTE (first, as QEMU puts it) holds the vCPU notes and the guest's
 * VMCOREINFO as lib/guest/notes.c builds them, from the device state
 * collected during the walk; the VMCOREINFO note is read back from this
 * core through the memory map, so no second pass is needed.  e_machine is
 * EM_X86_64, or EM_386 when the first vCPU is not in long mode (QEMU's
 * rule, which also picks the i386 NT_PRSTATUS layout then).  Differences
 * from QEMU's file, all outside the segments' contents: the segments are
 * laid out per block, not packed; the class is always ELF64 (QEMU writes
 * ELF32 for a guest not in long mode whose RAM all lies below 4 GiB); no
 * section headers (QEMU adds an empty string table); a device state whose
 * vCPUs cannot be decoded gives a core without PT_NOTE. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guestout.h"

#define EHDR_SIZE 64u
#define PHDR_SIZE 56u
#define NOTE_RESERVE (4u << 20)
#define PT_LOAD 1u
#define PT_NOTE 4u
#define ET_CORE 4u
#define EM_X86_64 62u
#define EM_386 3u
#define HF_LMA (1u << 14) /* QEMU's hidden flag: long mode active */

static void wr_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

typedef struct ew {
    mrimg_image *in;
    mrimg_convert_stats *st;
    mrimg_sink sink;
    uint64_t ps;
    bool laid_out;
    unsigned nblocks;
    uint64_t *base;          /* file offset of each block's byte 0 */
    uint64_t hdr_space;      /* bytes reserved for headers and notes */
    unsigned max_ph;
    uint64_t size;
    /* current callback */
    unsigned block;
    uint64_t first;
    const uint8_t *data;
    gout_wc wc;              /* the pages' writes */
} ew;

static int layout(ew *e, mrimg_error *err)
{
    unsigned n = mrimg_block_count(e->in);
    e->nblocks = n;
    e->ps = e->in->si.target_page_size ? e->in->si.target_page_size : 4096;
    e->base = calloc(n ? n : 1, sizeof(*e->base));
    if (!e->base)
        return err_nomem(err);
    e->max_ph = 64 + 4 * n;
    e->hdr_space = round_up(EHDR_SIZE + (uint64_t)PHDR_SIZE * e->max_ph + NOTE_RESERVE, 1u << 20);
    uint64_t off = e->hdr_space;
    for (unsigned i = 0; i < n; i++) {
        e->base[i] = off;
        off = round_up(off + mrimg_block(e->in, i)->used_length, 1u << 20);
    }
    e->size = off;
    e->laid_out = true;
    return 0;
}

static int put(void *ctx, uint64_t k0, uint64_t k1, mrimg_error *err)
{
    ew *e = ctx;
    return gout_wc_put(&e->wc, e->data + k0 * e->ps, (size_t)((k1 - k0) * e->ps),
                       e->base[e->block] + (e->first + k0) * e->ps, err);
}

static int walk_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                   mrimg_error *err)
{
    ew *e = opaque;
    if (block == MRIMG_WALK_RESTART) {
        /* start again: everything written so far goes */
        e->st->pages_data = e->st->pages_zero = 0;
        gout_wc_drop(&e->wc);
        return sink_truncate(&e->sink, 0, err);
    }
    if (!e->laid_out) {
        int rc = layout(e, err);
        if (rc < 0)
            return rc;
    }
    if (block >= e->nblocks)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0, "page of unknown block %u", block);
    if (!data) {
        e->st->pages_zero += n;
        return 0;
    }
    e->block = block;
    e->first = first;
    e->data = data;
    return gout_runs(data, n, e->ps, e->st, put, e, err);
}

static int cmp_u64pair(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Punch out what of block b no range refers to. */
static int punch_unreferenced(ew *e, const mrimg_memmap *m, unsigned b, mrimg_error *err)
{
    uint64_t len = mrimg_block(e->in, b)->used_length;
    uint64_t (*iv)[2] = calloc(m->nranges ? m->nranges : 1, sizeof(*iv));
    if (!iv)
        return err_nomem(err);
    unsigned k = 0;
    for (unsigned i = 0; i < m->nranges; i++)
        if (m->ranges[i].block == b) {
            iv[k][0] = m->ranges[i].offset;
            iv[k][1] = m->ranges[i].offset + m->ranges[i].length;
            k++;
        }
    qsort(iv, k, sizeof(*iv), cmp_u64pair);
    uint64_t at = 0;
    int rc = 0;
    for (unsigned i = 0; i <= k && rc == 0; i++) {
        uint64_t s = i < k ? iv[i][0] : len;
        if (s > at)
            rc = sink_punch(&e->sink, e->base[b] + at, s - at, err);
        if (i < k && iv[i][1] > at)
            at = iv[i][1];
    }
    free(iv);
    return rc;
}

/* Guest-physical memory as this core holds it (the VMCOREINFO note is
 * read from here): n bytes inside one range, or 0. */
typedef struct phys_rd {
    ew *e;
    const mrimg_memmap *m;
} phys_rd;

static int read_phys(void *ctx, uint64_t gpa, size_t n, uint8_t *out, mrimg_error *err)
{
    phys_rd *p = ctx;
    for (unsigned i = 0; i < p->m->nranges; i++) {
        const mrimg_mem_range *r = &p->m->ranges[i];
        if (gpa < r->gpa || gpa - r->gpa > r->length || n > r->length - (gpa - r->gpa))
            continue;
        uint64_t off = p->e->base[r->block] + r->offset + (gpa - r->gpa);
        memset(out, 0, n); /* not yet written: a hole, zero */
        size_t done = 0;
        while (done < n) {
            ssize_t k = pread(p->e->sink.fd, out + done, n - done, (off_t)(off + done));
            if (k < 0)
                return err_sys(err, errno, "cannot read back %s", p->e->sink.tmp);
            if (k == 0)
                break;
            done += (size_t)k;
        }
        return 1;
    }
    return 0;
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

static int write_headers(ew *e, const mrimg_memmap *m, const uint8_t *notes, size_t nlen,
                         bool lma, mrimg_error *err)
{
    unsigned phnum = m->nranges + (nlen ? 1 : 0);
    if (phnum > e->max_ph || nlen > NOTE_RESERVE)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_NONE, 0,
                       "%u program headers and %zu bytes of notes do not fit the %llu bytes "
                       "reserved for them",
                       phnum, nlen, (unsigned long long)e->hdr_space);
    size_t hlen = EHDR_SIZE + (size_t)PHDR_SIZE * phnum;
    uint8_t *h = calloc(1, hlen + nlen);
    if (!h)
        return err_nomem(err);
    static const uint8_t ident[16] = {0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1};
    memcpy(h, ident, 16);
    wr_le16(h + 16, ET_CORE);
    wr_le16(h + 18, lma ? EM_X86_64 : EM_386);
    wr_le32(h + 20, 1);
    wr_le64(h + 32, EHDR_SIZE); /* e_phoff */
    wr_le16(h + 52, EHDR_SIZE);
    wr_le16(h + 54, PHDR_SIZE);
    wr_le16(h + 56, (uint16_t)phnum);
    uint8_t *p = h + EHDR_SIZE;
    if (nlen) {
        wr_le32(p, PT_NOTE);
        wr_le64(p + 8, hlen);
        wr_le64(p + 32, nlen);
        wr_le64(p + 40, nlen);
        memcpy(h + hlen, notes, nlen);
        p += PHDR_SIZE;
    }
    for (unsigned i = 0; i < m->nranges; i++, p += PHDR_SIZE) {
        const mrimg_mem_range *r = &m->ranges[i];
        wr_le32(p, PT_LOAD);
        wr_le64(p + 8, e->base[r->block] + r->offset);
        wr_le64(p + 16, r->gpa);
        wr_le64(p + 24, r->gpa);
        wr_le64(p + 32, r->length);
        wr_le64(p + 40, r->length);
    }
    int rc = sink_pwrite(&e->sink, h, hlen + nlen, 0, err);
    free(h);
    return rc;
}

int cv_elf(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
           mrimg_convert_stats *st, const gout_gate *gate,
            mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    /* a machine without a known layout is refused before the long walk */
    sp_config cfg;
    int rc = img_peek_config(in, &cfg, err);
    if (rc < 0)
        return rc;
    rc = guest_machine_check(cfg.machine, err);
    if (rc < 0)
        return rc;
    ew e;
    memset(&e, 0, sizeof(e));
    e.in = in;
    e.st = st;
    rc = sink_create(&e.sink, out_path, o->force ? SINK_FORCE : 0, err);
    if (rc < 0)
        return rc;
    guest_tail t;
    guest_tail_attach(&t, in);
    e.wc.sink = &e.sink;
    rc = mrimg_ram_walk(in, walk_cb, &e, progress, pctx, err);
    if (rc == 0)
        rc = gout_wc_flush(&e.wc, err);
    gout_wc_free(&e.wc);
    guest_tail_detach(&t);
    if (rc == 0 && !e.laid_out)
        rc = layout(&e, err); /* no page at all */
    if (rc == 0)
        rc = guest_tail_finish(&t, err);
    mrimg_memmap *m = NULL;
    uint8_t *notes = NULL;
    size_t nlen = 0;
    if (rc == 0)
        rc = guest_memmap_from_tail(in, &t, &m, err);
    bool lma = true;
    phys_rd pr = {&e, m};
    if (rc == 0)
        rc = gout_notes(in, &t, read_phys, &pr, &notes, &nlen, &lma, err);
    if (rc == 0)
        rc = write_headers(&e, m, notes, nlen, lma, err);
    for (unsigned b = 0; rc == 0 && b < e.nblocks; b++)
        rc = punch_unreferenced(&e, m, b, err);
    if (rc == 0)
        rc = gout_commit(&e.sink, e.size, st, gate, err);
    if (rc < 0)
        sink_abort(&e.sink);
    free(notes);
    mrimg_memory_map_free(m);
    guest_tail_free(&t);
    free(e.base);
    return rc;
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
