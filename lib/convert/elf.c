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

static void wr_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

typedef struct ew {
    gout_walk g;             /* first: the pass (its sink is the core) */
    uint64_t *base;          /* file offset of each block's byte 0 */
    uint64_t hdr_space;      /* bytes reserved for headers and notes */
    unsigned max_ph;
    uint64_t size;
} ew;

static int layout(gout_walk *g, mrimg_error *err)
{
    ew *e = (ew *)g;
    unsigned n = g->nblocks;
    e->base = calloc(n ? n : 1, sizeof(*e->base));
    if (!e->base)
        return err_nomem(err);
    e->max_ph = 64 + 4 * n;
    e->hdr_space = round_up(EHDR_SIZE + (uint64_t)PHDR_SIZE * e->max_ph + NOTE_RESERVE, 1u << 20);
    uint64_t off = e->hdr_space;
    for (unsigned i = 0; i < n; i++) {
        e->base[i] = off;
        off = round_up(off + mrimg_block(g->in, i)->used_length, 1u << 20);
    }
    e->size = off;
    return 0;
}

static int put(void *ctx, uint64_t k0, uint64_t k1, mrimg_error *err)
{
    ew *e = ctx;
    gout_walk *g = &e->g;
    return gout_wc_put(&g->wc, g->data + k0 * g->ps, (size_t)((k1 - k0) * g->ps),
                       e->base[g->block] + (g->first + k0) * g->ps, err);
}

static int cmp_u64pair(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Punch out what of block b no range refers to. */
static int punch_unreferenced(ew *e, const mrimg_memmap *m, unsigned b, mrimg_error *err)
{
    uint64_t len = mrimg_block(e->g.in, b)->used_length;
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
            rc = sink_punch(&e->g.sink, e->base[b] + at, s - at, err);
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
    const mrimg_mem_range *r = gout_range_of(p->m, gpa, n);
    if (!r)
        return 0;
    uint64_t off = p->e->base[r->block] + r->offset + (gpa - r->gpa);
    memset(out, 0, n); /* not yet written: a hole, zero */
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(p->e->g.sink.fd, out + done, n - done, (off_t)(off + done));
        if (k < 0)
            return err_sys(err, errno, "cannot read back %s", p->e->g.sink.tmp);
        if (k == 0)
            break;
        done += (size_t)k;
    }
    return 1;
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
    int rc = sink_pwrite(&e->g.sink, h, hlen + nlen, 0, err);
    free(h);
    return rc;
}

/* The walk is over: the notes, the program headers, the holes. */
static int finish(gout_walk *g, const mrimg_memmap *m, const guest_tail *t, uint64_t *size,
                  mrimg_error *err)
{
    ew *e = (ew *)g;
    uint8_t *notes = NULL;
    size_t nlen = 0;
    bool lma = true;
    phys_rd pr = {e, m};
    int rc = gout_notes(g->in, t, read_phys, &pr, &notes, &nlen, &lma, err);
    if (rc == 0)
        rc = write_headers(e, m, notes, nlen, lma, err);
    for (unsigned b = 0; rc == 0 && b < g->nblocks; b++)
        rc = punch_unreferenced(e, m, b, err);
    *size = e->size;
    free(notes);
    return rc;
}

static void release(gout_walk *g)
{
    free(((ew *)g)->base);
}

static const gout_ops elf_ops = {
    .size = sizeof(ew), .layout = layout, .put = put, .finish = finish, .free = release,
};

int cv_elf(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
           mrimg_convert_stats *st, const gout_gate *gate,
           mrimg_progress_fn progress, void *pctx, mrimg_error *err)
{
    return gout_convert(&elf_ops, in, out_path, o, st, gate, progress, pctx, err);
}
