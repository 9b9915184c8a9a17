/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The compressed kdump format of makedumpfile ("KDUMP   ", header version
 * 6), as QEMU's dump-guest-memory writes it with format kdump-raw-zlib or
 * kdump-raw-lzo (the non-flattened file `crash` reads directly; QEMU's
 * kdump-zlib/-lzo are the same records wrapped in makedumpfile's
 * flattened stream).
 *
 * What QEMU 10 puts in it (dump/dump.c, include/sysemu/dump.h; checked on
 * real dumps by tests/qemu/test_kdump.py), all little-endian:
 *   block 0   disk_dump_header (464 bytes): signature, header_version 6,
 *             utsname with only machine set ("x86_64"), timestamp zero,
 *             status = the compression flag (1 zlib, 2 lzo), block_size =
 *             page size, sub_hdr_size = blocks of sub header + notes,
 *             bitmap_blocks = both bitmaps, max_mapnr (32-bit, capped),
 *             nr_cpus; the other counters zero.
 *   block 1   kdump_sub_header (104 bytes): phys_base (0 unless the
 *             VMCOREINFO of a guest in long mode says NUMBER(phys_base)), dump_level 1,
 *             offset/size of the VMCOREINFO note's descriptor when the
 *             last note is one, offset_note = block_size + 104, note_size,
 *             max_mapnr_64; split, pfn ranges and eraseinfo zero.  The ELF
 *             notes (the same as an ELF core's PT_NOTE) follow at once.
 *   then      two equal bitmaps of len = pages of ceil(max_mapnr / 8)
 *             bytes: bit pfn set for every page of guest-physical RAM;
 *             max_mapnr is the end of the highest RAM range.
 *   then      one 24-byte page descriptor per set bit, in pfn order
 *             (offset, size, flags, page_flags 0), and the page data:
 *             first one page of zeros that every zero page's descriptor
 *             points to (size = page size, flags 0), then each other page
 *             compressed (zlib level 1 / LZO1X-1) or, when that does not
 *             make it smaller, raw with flags 0.
 * QEMU writes the data in pfn order.  We write the same header, bitmaps
 * and descriptors (as QEMU's, up to the data offsets), but the data in
 * the order the RAM walk delivers it, each compressed page appended once
 * and referred to by every descriptor of a range that shows it; the zero
 * page is a hole.  The layout up to the data needs the memory map and the
 * notes, which are known only at the end of the input (the device state):
 * so the one walk over the input compresses every page with data (on -T
 * threads, util/pchunk.c, 64 pages a job, in the order given, so the file
 * is the same for every thread count) into a scratch file, with the page
 * it is; at the end the map and the notes (the VMCOREINFO read back from
 * the parked pages) give the layout, the descriptors are written all
 * pointing at the zero page, and the parked pages that a range shows are
 * appended in their order, their descriptors pointed at them. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <lzo/lzo1x.h>
#include <zlib.h>

#include "../util/pchunk.h"
#include "guestout.h"
#include "../io/scratch.h"
#include "../util/vec.h"

#define KD_HDR_SIZE 464u
#define KD_SUB_SIZE 104u
#define KD_DESC 24u
#define KD_ZLIB 1u
#define KD_LZO 2u

typedef struct kw {
    mrimg_image *in;
    mrimg_convert_stats *st;
    mrimg_sink sink;
    const mrimg_memmap *m;
    uint64_t ps;
    uint32_t flag;            /* KD_ZLIB or KD_LZO */
    uint64_t *first_desc;     /* per range: index of its first descriptor */
    uint64_t ndesc;
    uint64_t off_desc, off_zero, data_start, data_end;
    size_t cbuf_cap;          /* bound of one compressed page */
    unsigned threads;
    uint8_t **lzo_mem;        /* one per worker */
    pchunk pc;                /* pages with data: compressed in parallel,
                               * appended in the order they were given */
    bool pc_ready;
    /* descriptor indices of the pages given to pc and not yet emitted:
     * qn[i] indices in qidx for page i (a page a range shows twice) */
    uint64_t *qidx;
    unsigned *qn;
    size_t qidx_head, qidx_len, qidx_cap, qn_head, qn_len, qn_cap;
    /* a run of consecutive descriptors not yet written */
    uint8_t *run;
    uint64_t run_first, run_len;
    /* the pages with data, compressed, parked in walk order until the map
     * is known: records [u64 block << 48 | page][u32 size][u32 flags][data] */
    int scratch;
    char scratch_dir[4096];
    uint64_t park_end;
    uint64_t desc_data;       /* descriptors pointing at data */
} kw;

#define KD_PARK_HDR 16u
#define KD_ID(block, page) ((uint64_t)(block) << 48 | (page))

static void put_desc(uint8_t *p, uint64_t off, uint32_t size, uint32_t flags)
{
    wr_le64(p, off);
    wr_le32(p + 8, size);
    wr_le32(p + 12, flags);
    wr_le64(p + 16, 0);
}

/* All descriptors point at the zero page (written once, again after a
 * restart of the walk). */
static int write_zero_descs(kw *w, mrimg_error *err)
{
    enum { N = 4096 };
    uint8_t *buf = malloc((size_t)N * KD_DESC);
    if (!buf)
        return err_nomem(err);
    for (unsigned i = 0; i < N; i++)
        put_desc(buf + (size_t)i * KD_DESC, w->off_zero, (uint32_t)w->ps, 0);
    int rc = sink_seek(&w->sink, w->off_desc, err);
    for (uint64_t i = 0; rc == 0 && i < w->ndesc; i += N) {
        uint64_t k = MRIMG_MIN((uint64_t)N, w->ndesc - i);
        rc = sink_write(&w->sink, buf, (size_t)(k * KD_DESC), err);
    }
    free(buf);
    if (rc == 0)
        rc = sink_seek(&w->sink, w->data_start, err);
    w->data_end = w->data_start;
    return rc;
}

#define KD_RUN 4096u          /* descriptors buffered before a write */
#define KD_CHUNK_PAGES 64u    /* pages per parallel job */

static int run_flush(kw *w, mrimg_error *err)
{
    if (!w->run_len)
        return 0;
    int rc = sink_pwrite(&w->sink, w->run, (size_t)(w->run_len * KD_DESC),
                         w->off_desc + w->run_first * KD_DESC, err);
    w->run_len = 0;
    return rc;
}

static int run_put(kw *w, uint64_t idx, uint64_t off, uint32_t size, uint32_t flags,
                   mrimg_error *err)
{
    if (w->run_len && (idx != w->run_first + w->run_len || w->run_len == KD_RUN)) {
        int rc = run_flush(w, err);
        if (rc < 0)
            return rc;
    }
    if (!w->run_len)
        w->run_first = idx;
    put_desc(w->run + w->run_len * KD_DESC, off, size, flags);
    w->run_len++;
    return 0;
}

/* Worker: each page of the job becomes [size u32][flags u32][bytes]. */
static int kd_work(void *ctx, unsigned worker, pchunk_job *job, mrimg_error *err)
{
    kw *w = ctx;
    size_t ps = (size_t)w->ps, np = job->in_len / ps;
    size_t want = np * (8 + w->cbuf_cap);
    int rc = pchunk_out_reserve(job, want, err);
    if (rc < 0)
        return rc;
    job->out_len = 0;
    for (size_t i = 0; i < np; i++) {
        const uint8_t *pg = job->in + i * ps;
        uint8_t *rec = job->out + job->out_len, *c = rec + 8;
        size_t n = w->cbuf_cap;
        bool ok;
        if (w->flag == KD_ZLIB) {
            uLongf zl = (uLongf)n;
            ok = compress2(c, &zl, pg, (uLong)ps, Z_BEST_SPEED) == Z_OK;
            n = (size_t)zl;
        } else {
            lzo_uint ll = (lzo_uint)n;
            ok = lzo1x_1_compress(pg, (lzo_uint)ps, c, &ll, w->lzo_mem[worker]) == LZO_E_OK;
            n = (size_t)ll;
        }
        uint32_t flags = w->flag;
        if (!ok || n >= ps) { /* stored raw, as QEMU does */
            memcpy(c, pg, ps);
            n = ps;
            flags = 0;
        }
        wr_le32(rec, (uint32_t)n);
        wr_le32(rec + 4, flags);
        job->out_len += 8 + n;
    }
    return 0;
}

/* Parking (before the map is known): each page's record to the scratch
 * file, with the page it is (the queue holds KD_IDs). */
static int park(kw *w, pchunk_job *job, mrimg_error *err)
{
    size_t at = 0;
    while (at < job->out_len) {
        uint32_t n = rd_le32(job->out + at);
        if (w->qidx_len == 0)
            return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                           "kdump: a compressed page nobody asked for");
        uint8_t h[KD_PARK_HDR - 8];
        wr_le64(h, w->qidx[w->qidx_head++]);
        w->qidx_len--;
        w->qn_head++;
        w->qn_len--;
        /* [id][size][flags]: the job's record starts with [size][flags] */
        int rc = gout_scratch_write(w->scratch, h, 8, w->park_end, w->scratch_dir, err);
        if (rc == 0)
            rc = gout_scratch_write(w->scratch, job->out + at, 8 + (size_t)n, w->park_end + 8,
                                    w->scratch_dir, err);
        if (rc < 0)
            return rc;
        w->park_end += KD_PARK_HDR + n;
        at += 8 + n;
    }
    return 0;
}

static int kd_emit(void *ctx, pchunk_job *job, mrimg_error *err)
{
    return park(ctx, job, err);
}

/* Room for one more entry in the queue *pp (a T **) of len entries from
 * head. */
static int q_grow(void *pp, size_t *cap, size_t *head, size_t len, size_t elt, mrimg_error *err)
{
    if (*head && *head + len + 1 > *cap) { /* slide to the front */
        uint8_t *p;
        memcpy(&p, pp, sizeof(p));
        memmove(p, p + *head * elt, len * elt);
        *head = 0;
    }
    return vec_reserve_(pp, cap, len + 1, elt, 1024, 0) ? 0 : err_nomem(err);
}

/* Queue one page with data whose descriptors are idx[0, n). */
static int page_give(kw *w, const uint8_t *pg, const uint64_t *idx, unsigned n,
                     mrimg_error *err)
{
    int rc = q_grow(&w->qn, &w->qn_cap, &w->qn_head, w->qn_len, sizeof(*w->qn), err);
    for (unsigned j = 0; rc == 0 && j < n; j++) {
        rc = q_grow(&w->qidx, &w->qidx_cap, &w->qidx_head, w->qidx_len,
                    sizeof(*w->qidx), err);
        if (rc == 0)
            w->qidx[w->qidx_head + w->qidx_len++] = idx[j];
    }
    if (rc < 0)
        return rc;
    w->qn[w->qn_head + w->qn_len++] = n;
    return pchunk_write(&w->pc, pg, (size_t)w->ps, err); /* may emit */
}

static int pc_start(kw *w, mrimg_error *err)
{
    int rc = pchunk_init(&w->pc, w->threads, (size_t)(KD_CHUNK_PAGES * w->ps), 0, kd_work,
                         kd_emit, w, err);
    w->pc_ready = rc == 0;
    return rc;
}

/* Everything given is compressed, appended and described. */
static int pc_finish(kw *w, mrimg_error *err)
{
    int rc = pchunk_finish(&w->pc, err);
    pchunk_free(&w->pc);
    w->pc_ready = false;
    if (rc == 0)
        rc = run_flush(w, err);
    return rc;
}

#define KD_MAX_ALIAS 8u        /* ranges one page can be shown by */

/* Every page with data is parked (the map decides at the end which
 * ranges show it); zero pages are the zero page's. */
static int walk_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                   mrimg_error *err)
{
    kw *w = opaque;
    if (block == MRIMG_WALK_RESTART) {
        /* drain, then forget what was parked */
        int rc = pc_finish(w, err);
        w->park_end = 0;
        if (rc == 0 && ftruncate(w->scratch, 0) != 0)
            rc = err_sys(err, errno, "cannot truncate the scratch file in %s", w->scratch_dir);
        return rc < 0 ? rc : pc_start(w, err);
    }
    for (uint64_t k = 0; data && k < n; k++) {
        const uint8_t *pg = data + k * w->ps;
        if (mem_is_zero(pg, (size_t)w->ps))
            continue;
        uint64_t id = KD_ID(block, first + k);
        int rc = page_give(w, pg, &id, 1, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Walk the ELF notes: how many NT_PRSTATUS (one per vCPU in QEMU's dump),
 * and where the descriptor of a last note named VMCOREINFO lies. */
static void scan_notes(const uint8_t *nb, size_t nlen, uint32_t *ncpu, bool *lma,
                       uint64_t *vmci_off, uint64_t *vmci_len)
{
    size_t at = 0;
    *ncpu = 0;
    *lma = false;
    *vmci_off = *vmci_len = 0;
    while (nlen - at >= 12) {
        uint32_t nsz = rd_le32(nb + at), dsz = rd_le32(nb + at + 4), type = rd_le32(nb + at + 8);
        uint64_t name_end = at + 12 + round_up(nsz, 4);
        uint64_t end = name_end + round_up(dsz, 4);
        if (end > nlen)
            return;
        if (type == 1 && nsz == 5 && !memcmp(nb + at + 12, "CORE", 5)) {
            /* the x86-64 elf_prstatus (336 bytes) for a vCPU in long mode,
             * the i386 one otherwise: what QEMU's dump calls EM_X86_64 */
            if (*ncpu == 0)
                *lma = dsz == 336;
            (*ncpu)++;
        }
        if (nsz == 11 && !memcmp(nb + at + 12, "VMCOREINFO", 11) && end == nlen) {
            *vmci_off = name_end;
            *vmci_len = dsz;
        }
        at = (size_t)end;
    }
}

/* NUMBER(phys_base)=<hex> at the start of a line of the VMCOREINFO text,
 * as QEMU reads it (base 16, an optional 0x). */
static uint64_t vmci_phys_base(const uint8_t *p, uint64_t len)
{
    static const char key[] = "NUMBER(phys_base)=";
    size_t kl = sizeof(key) - 1;
    for (uint64_t i = 0; i + kl <= len; i++) {
        if ((i == 0 || p[i - 1] == '\n') && !memcmp(p + i, key, kl)) {
            uint64_t v = 0, j0 = i + kl;
            if (j0 + 2 <= len && p[j0] == '0' && (p[j0 + 1] | 0x20) == 'x')
                j0 += 2;
            for (uint64_t j = j0; j < len && j < j0 + 16; j++) {
                int c = p[j], d = c >= '0' && c <= '9' ? c - '0'
                                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0)
                    break;
                v = v << 4 | (uint64_t)d;
            }
            return v;
        }
    }
    return 0;
}

static int write_layout(kw *w, const uint8_t *notes, size_t nlen, uint64_t max_mapnr,
                        mrimg_error *err)
{
    uint64_t bs = w->ps;
    uint64_t sub_blocks = (KD_SUB_SIZE + nlen + bs - 1) / bs;
    uint64_t bm_len = round_up((max_mapnr + 7) / 8, bs);
    uint64_t bm_blocks = bm_len / bs * 2;
    if (sub_blocks > UINT32_MAX || bm_blocks > UINT32_MAX)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_NONE, 0,
                       "%zu bytes of notes or %llu pages do not fit a kdump header", nlen,
                       (unsigned long long)max_mapnr);
    uint32_t ncpu;
    bool lma;
    uint64_t vmci_off, vmci_len;
    scan_notes(notes, nlen, &ncpu, &lma, &vmci_off, &vmci_len);
    uint64_t off_note = bs + KD_SUB_SIZE;

    uint8_t *h = calloc(1, (size_t)(bs + KD_SUB_SIZE + nlen));
    if (!h)
        return err_nomem(err);
    memcpy(h, "KDUMP   ", 8);
    wr_le32(h + 8, 6);
    memcpy(h + 12 + 4 * 65, "Unknown", 7); /* utsname.machine: QEMU 10 writes this */
    wr_le32(h + 424, w->flag);
    wr_le32(h + 428, (uint32_t)bs);
    wr_le32(h + 432, (uint32_t)sub_blocks);
    wr_le32(h + 436, (uint32_t)bm_blocks);
    wr_le32(h + 440, (uint32_t)MRIMG_MIN(max_mapnr, UINT32_MAX));
    wr_le32(h + 460, ncpu);
    uint8_t *k = h + bs;
    /* QEMU reads phys_base from the VMCOREINFO of an x86-64 (long mode) guest */
    wr_le64(k, vmci_len && lma ? vmci_phys_base(notes + vmci_off, vmci_len) : 0);
    wr_le32(k + 8, 1); /* dump_level */
    if (vmci_len) {
        wr_le64(k + 32, off_note + vmci_off);
        wr_le64(k + 40, vmci_len);
    }
    wr_le64(k + 48, off_note);
    wr_le64(k + 56, nlen);
    wr_le64(k + 96, max_mapnr);
    if (nlen)
        memcpy(h + off_note, notes, nlen);
    int rc = sink_pwrite(&w->sink, h, (size_t)(bs + KD_SUB_SIZE + nlen), 0, err);
    free(h);
    if (rc < 0)
        return rc;

    /* the bitmaps, one page of bits at a time */
    uint64_t off_bm = (1 + sub_blocks) * bs;
    uint8_t *bm = malloc((size_t)bs);
    if (!bm)
        return err_nomem(err);
    uint64_t bits = bs * 8;
    unsigned ri = 0;
    for (uint64_t c = 0; rc == 0 && c < bm_len / bs; c++) {
        memset(bm, 0, (size_t)bs);
        uint64_t p0 = c * bits, p1 = p0 + bits;
        while (ri < w->m->nranges &&
               (w->m->ranges[ri].gpa + w->m->ranges[ri].length) / w->ps <= p0)
            ri++;
        for (unsigned i = ri; i < w->m->nranges; i++) {
            const mrimg_mem_range *r = &w->m->ranges[i];
            uint64_t a = r->gpa / w->ps, b = (r->gpa + r->length) / w->ps;
            if (a >= p1)
                break;
            for (uint64_t p = MRIMG_MAX(a, p0); p < MRIMG_MIN(b, p1); p++)
                bm[(p - p0) / 8] |= (uint8_t)(1u << ((p - p0) % 8));
        }
        if (mem_is_zero(bm, (size_t)bs))
            continue; /* a hole */
        rc = sink_pwrite(&w->sink, bm, (size_t)bs, off_bm + c * bs, err);
        if (rc == 0)
            rc = sink_pwrite(&w->sink, bm, (size_t)bs, off_bm + bm_len + c * bs, err);
    }
    free(bm);
    if (rc < 0)
        return rc;
    w->off_desc = (1 + sub_blocks + bm_blocks) * bs;
    w->off_zero = w->off_desc + w->ndesc * KD_DESC;
    w->data_start = w->off_zero + bs;
    return write_zero_descs(w, err);
}

/* ---- one pass: park the pages, lay out the file at the end -------------- */

/* Call fn with every parked record, in the order parked; fn returns >0 to
 * stop early. */
typedef int (*park_fn)(kw *w, void *ctx, uint64_t id, uint32_t n, uint32_t flags,
                       const uint8_t *data, mrimg_error *err);

static int park_each(kw *w, park_fn fn, void *ctx, mrimg_error *err)
{
    size_t cap = (8u << 20) + KD_PARK_HDR + (size_t)w->cbuf_cap;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return err_nomem(err);
    uint64_t pos = 0;
    int rc = 0;
    while (rc == 0 && pos < w->park_end) {
        size_t want = (size_t)MRIMG_MIN((uint64_t)cap, w->park_end - pos), got = 0;
        while (got < want) {
            ssize_t k = pread(w->scratch, buf + got, want - got, (off_t)(pos + got));
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                rc = err_sys(err, k < 0 ? errno : EIO, "cannot read the scratch file in %s",
                             w->scratch_dir);
                break;
            }
            got += (size_t)k;
        }
        size_t at = 0;
        while (rc == 0 && got - at >= KD_PARK_HDR) {
            uint32_t n = rd_le32(buf + at + 8);
            if (n > w->cbuf_cap && n > w->ps) {
                rc = err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                             "the scratch file in %s changed under us", w->scratch_dir);
                break;
            }
            if (got - at < KD_PARK_HDR + n)
                break; /* the rest in the next read */
            rc = fn(w, ctx, rd_le64(buf + at), n, rd_le32(buf + at + 12), buf + at + KD_PARK_HDR,
                    err);
            at += KD_PARK_HDR + n;
        }
        if (rc > 0) {
            rc = 0;
            break;
        }
        if (rc == 0 && at == 0)
            rc = err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                         "the scratch file in %s changed under us", w->scratch_dir);
        pos += at;
    }
    free(buf);
    return rc;
}

/* Guest-physical memory from the parked pages (the VMCOREINFO note). */
typedef struct park_rd {
    kw *w;
    unsigned block;
    uint64_t off, n;           /* bytes [off, off + n) of block */
    uint8_t *out;
    uint8_t *page;
} park_rd;

static int park_read_one(kw *w, void *ctx, uint64_t id, uint32_t n, uint32_t flags,
                         const uint8_t *data, mrimg_error *err)
{
    park_rd *r = ctx;
    uint64_t ps = w->ps, page = id & ((1ull << 48) - 1);
    if ((unsigned)(id >> 48) != r->block || (page + 1) * ps <= r->off ||
        page * ps >= r->off + r->n)
        return 0;
    bool ok;
    if (flags == KD_ZLIB) {
        uLongf l = (uLongf)ps;
        ok = uncompress(r->page, &l, data, n) == Z_OK && l == ps;
    } else if (flags == KD_LZO) {
        lzo_uint l = (lzo_uint)ps;
        ok = lzo1x_decompress_safe(data, n, r->page, &l, NULL) == LZO_E_OK && l == ps;
    } else {
        ok = n == ps;
        if (ok)
            memcpy(r->page, data, n);
    }
    if (!ok)
        return err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                       "a page parked in the scratch file in %s does not decompress",
                       w->scratch_dir);
    uint64_t s = MRIMG_MAX(page * ps, r->off), e = MRIMG_MIN((page + 1) * ps, r->off + r->n);
    memcpy(r->out + (s - r->off), r->page + (s - page * ps), (size_t)(e - s));
    return 0;
}

static int park_read(void *ctx, uint64_t gpa, size_t n, uint8_t *out, mrimg_error *err)
{
    kw *w = ctx;
    const mrimg_mem_range *q = gout_range_of(w->m, gpa, n);
    if (!q)
        return 0;
    memset(out, 0, n); /* pages not parked are zero */
    park_rd r = {w, q->block, q->offset + (gpa - q->gpa), n, out, malloc((size_t)w->ps)};
    if (!r.page)
        return err_nomem(err);
    int rc = park_each(w, park_read_one, &r, err);
    free(r.page);
    return rc < 0 ? rc : 1;
}

/* A parked page into the output: its data appended, the descriptor of
 * every range that shows it pointed at it (a page no range shows is left
 * out). */
static int park_emit(kw *w, void *ctx, uint64_t id, uint32_t n, uint32_t flags,
                     const uint8_t *data, mrimg_error *err)
{
    (void)ctx;
    unsigned block = (unsigned)(id >> 48);
    uint64_t off = (id & ((1ull << 48) - 1)) * w->ps;
    unsigned shown = 0;
    for (unsigned j = 0; j < w->m->nranges; j++) {
        const mrimg_mem_range *q = &w->m->ranges[j];
        if (q->block != block || off < q->offset || off >= q->offset + q->length)
            continue;
        if (++shown > KD_MAX_ALIAS)
            return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_NONE, 0,
                           "a page of block %u shows at more than %u addresses", block,
                           KD_MAX_ALIAS);
        int rc = run_put(w, w->first_desc[j] + (off - q->offset) / w->ps, w->data_end, n, flags,
                         err);
        if (rc < 0)
            return rc;
    }
    if (!shown)
        return 0;
    w->st->pages_data++;
    w->desc_data += shown;
    int rc = sink_write(&w->sink, data, n, err);
    w->data_end += n;
    return rc;
}

/* One walk over the input: the pages with data are compressed and parked
 * in a scratch file while the device state is collected; at its end the
 * map and the notes are known, the layout is written and the parked pages
 * are appended in the order they came, as a walk after a scan would have
 * appended them. */
int cv_kdump(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
             mrimg_convert_stats *st, const gout_gate *gate, mrimg_progress_fn progress,
             void *pctx, mrimg_error *err)
{
    kw w;
    memset(&w, 0, sizeof(w));
    w.in = in;
    w.st = st;
    w.scratch = -1;
    w.flag = o->out == MRIMG_OUT_KDUMP_LZO ? KD_LZO : KD_ZLIB;
    const sp_config *cfg;
    int rc = img_peek_config(in, &cfg, err);
    if (rc < 0)
        return rc;
    w.ps = cfg->has_page_bits ? 1ull << cfg->page_bits : 4096;
    if (w.ps < KD_HDR_SIZE || w.ps > (1u << 20) || (w.ps & (w.ps - 1)))
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                       "target page size %llu: a kdump block must hold the header and be a "
                       "power of two",
                       (unsigned long long)w.ps);
    w.cbuf_cap = (size_t)MRIMG_MAX(compressBound((uLong)w.ps), w.ps + w.ps / 16 + 64 + 3);
    w.threads = threads_effective(o->threads);
    w.lzo_mem = calloc(w.threads, sizeof(*w.lzo_mem));
    w.run = malloc((size_t)KD_RUN * KD_DESC);
    guest_tail t;
    memset(&t, 0, sizeof(t));
    mrimg_memmap *m = NULL;
    uint8_t *notes = NULL;
    size_t nlen = 0;
    bool sink_open = false;
    if (!w.lzo_mem || !w.run) {
        rc = err_nomem(err);
        goto out;
    }
    for (unsigned i = 0; w.flag == KD_LZO && i < w.threads; i++)
        if (!(w.lzo_mem[i] = malloc(LZO1X_1_MEM_COMPRESS))) {
            rc = err_nomem(err);
            goto out;
        }
    if (w.flag == KD_LZO && lzo_init() != LZO_E_OK) {
        rc = err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0, "liblzo2 failed to initialise");
        goto out;
    }
    rc = sink_create(&w.sink, out_path, o->force ? SINK_FORCE : 0, err);
    if (rc < 0)
        goto out;
    sink_open = true;
    w.scratch = scratch_open("mrimg-kdump", "the compressed pages until the memory map is known",
                             w.scratch_dir, sizeof(w.scratch_dir), err);
    rc = w.scratch < 0 ? w.scratch : 0;
    if (rc == 0)
        rc = pc_start(&w, err);
    if (rc == 0)
        rc = mrimg_ram_walk(in, walk_cb, &w, progress, pctx, err);
    if (rc == 0)
        rc = pc_finish(&w, err);
    if (rc == 0)
        rc = guest_tail_get(&t, in, err);
    if (rc == 0)
        rc = guest_memmap_from_tail(in, &t, &m, err);
    if (rc < 0)
        goto out;
    w.m = m;
    uint64_t max_mapnr = 0;
    for (unsigned i = 0; i < m->nranges; i++) {
        const mrimg_mem_range *r = &m->ranges[i];
        if (r->gpa % w.ps || r->length % w.ps || r->offset % w.ps) {
            rc = err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                         "memory range at 0x%llx (%llu bytes) is not page-aligned: a kdump "
                         "file describes whole pages",
                         (unsigned long long)r->gpa, (unsigned long long)r->length);
            goto out;
        }
        if (r->gpa < max_mapnr * w.ps) {
            rc = err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                         "memory ranges not ascending at 0x%llx", (unsigned long long)r->gpa);
            goto out;
        }
        max_mapnr = (r->gpa + r->length) / w.ps;
    }
    /* vCPU notes and the guest's VMCOREINFO (read from the parked pages) */
    bool lma;
    rc = gout_notes(in, &t, park_read, &w, &notes, &nlen, &lma, err);
    if (rc < 0)
        goto out;
    w.first_desc = calloc(m->nranges ? m->nranges : 1, sizeof(*w.first_desc));
    if (!w.first_desc) {
        rc = err_nomem(err);
        goto out;
    }
    for (unsigned i = 0; i < m->nranges; i++) {
        w.first_desc[i] = w.ndesc;
        w.ndesc += m->ranges[i].length / w.ps;
    }
    rc = write_layout(&w, notes, nlen, max_mapnr, err);
    if (rc == 0)
        rc = park_each(&w, park_emit, NULL, err);
    if (rc == 0)
        rc = run_flush(&w, err);
    st->pages_zero = w.ndesc - w.desc_data;
    if (rc == 0)
        rc = gout_commit(&w.sink, w.data_end, st, gate, err);
out:
    if (w.pc_ready)
        pchunk_free(&w.pc); /* joins the workers */
    if (rc < 0 && sink_open)
        sink_abort(&w.sink);
    if (w.scratch >= 0)
        close(w.scratch);
    mrimg_memory_map_free(m);
    free(notes);
    free(w.first_desc);
    for (unsigned i = 0; w.lzo_mem && i < w.threads; i++)
        free(w.lzo_mem[i]);
    free(w.lzo_mem);
    free(w.run);
    free(w.qidx);
    free(w.qn);
    return rc;
}
