/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Outputs of guest-physical memory: an ELF core (elf.c), a flat
 * physical-address file (phys.c) and a compressed kdump (kdump.c).  Each
 * takes the RAM from one canonical walk (mrimg_ram_walk), which also
 * carries the device-state collector and the conversion's judgement, and
 * writes only pages with data into a sparse temporary file (io/sink.c). */
#ifndef MRIMG_CONVERT_GUESTOUT_H
#define MRIMG_CONVERT_GUESTOUT_H

#include "../guest/cpu.h"
#include "../guest/guest.h"
#include "../io/sink.h"

/* Asked before an output is committed (the conversion's judgement, see
 * convert.c cv_verdict): <0 drops it with that error. */
typedef struct gout_gate {
    int (*fn)(void *ctx, mrimg_error *err);
    void *ctx;
} gout_gate;

/* The ELF core of in at out_path (one walk; the map is made at its end). */
MRIMG_INTERNAL int cv_elf(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
                          mrimg_convert_stats *st, const gout_gate *gate,
                          mrimg_progress_fn progress, void *pctx, mrimg_error *err);
/* The flat physical file of in at out_path (one walk; pages whose place
 * needs the device state are parked in a scratch file until its end). */
MRIMG_INTERNAL int cv_phys(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
                           mrimg_convert_stats *st, const gout_gate *gate,
                           mrimg_progress_fn progress, void *pctx, mrimg_error *err);
/* The compressed kdump file of in (o->out: MRIMG_OUT_KDUMP_ZLIB or _LZO)
 * (kdump.c). */
MRIMG_INTERNAL int cv_kdump(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
                            mrimg_convert_stats *st, const gout_gate *gate,
                            mrimg_progress_fn progress, void *pctx, mrimg_error *err);

/* Write the pages of data[0, n pages) that are not all zero, in runs, at
 * pos(ctx, page index within the run's block) ... : calls put(ctx, k0, k1)
 * for every maximal run [k0, k1) of non-zero pages; counts the rest. */
static inline int gout_runs(const uint8_t *data, uint64_t n, uint64_t ps,
                            mrimg_convert_stats *st,
                            int (*put)(void *ctx, uint64_t k0, uint64_t k1, mrimg_error *err),
                            void *ctx, mrimg_error *err)
{
    uint64_t k = 0;
    while (k < n) {
        while (k < n && mem_is_zero(data + k * ps, (size_t)ps)) {
            st->pages_zero++;
            k++;
        }
        uint64_t s = k;
        while (k < n && !mem_is_zero(data + k * ps, (size_t)ps))
            k++;
        if (k > s) {
            st->pages_data += k - s;
            int rc = put(ctx, s, k, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* The ELF notes (vCPUs, then the guest's VMCOREINFO, read through rd) from
 * the device state in t, and whether the first vCPU is in long mode.  A
 * device state whose vCPUs cannot be decoded gives no notes: the memory is
 * still worth having. */
MRIMG_INTERNAL int gout_notes(const mrimg_image *in, const guest_tail *t, guest_phys_read_fn rd,
                              void *ctx, uint8_t **notes, size_t *nlen, bool *lma,
                              mrimg_error *err);
/* The range of m that holds guest-physical bytes [gpa, gpa + n) whole, or
 * NULL (a guest_phys_read_fn answers 0 then). */
MRIMG_INTERNAL const mrimg_mem_range *gout_range_of(const mrimg_memmap *m, uint64_t gpa,
                                                   size_t n);
/* Write p[0, n) at off of the scratch file fd (in dir, for messages). */
MRIMG_INTERNAL int gout_scratch_write(int fd, const uint8_t *p, size_t n, uint64_t off,
                                      const char *dir, mrimg_error *err);

/* Positional writes to a sink, combined: a write that continues the
 * buffered one is appended (the walk delivers a plain stream page by
 * page), anything else flushes first.  Flush before reading the sink back,
 * truncating or committing it. */
typedef struct gout_wc {
    mrimg_sink *sink;
    uint8_t *buf;
    size_t cap, len;
    uint64_t off;
} gout_wc;

#define GOUT_WC_SIZE (4u << 20)

MRIMG_INTERNAL int gout_wc_put(gout_wc *w, const uint8_t *p, size_t n, uint64_t off,
                               mrimg_error *err);
MRIMG_INTERNAL int gout_wc_flush(gout_wc *w, mrimg_error *err);
static inline void gout_wc_drop(gout_wc *w) { w->len = 0; }
static inline void gout_wc_free(gout_wc *w) { free(w->buf); w->buf = NULL; w->len = 0; }

/* Finish an output file: size, statistics, fsync and rename. */
MRIMG_INTERNAL int gout_commit(mrimg_sink *s, uint64_t size, mrimg_convert_stats *st,
                               const gout_gate *gate, mrimg_error *err);

/* An output that writes each page with data at its place in the sink as
 * the one walk delivers it (elf.c, phys.c), run by gout_convert: its
 * state is a struct of ops->size bytes whose first member is the
 * gout_walk, zeroed, that every hook receives. */
typedef struct gout_walk gout_walk;
typedef struct gout_ops {
    size_t size;
    /* optional: the machine is known, the sink not yet created */
    int (*begin)(gout_walk *g, mrimg_error *err);
    /* the block list is known (nblocks, ps set): place the blocks */
    int (*layout)(gout_walk *g, mrimg_error *err);
    /* optional: the walk starts again, forget what the output kept besides
     * the sink (which is emptied, the counts reset) */
    int (*restart)(gout_walk *g, mrimg_error *err);
    /* pages [k0, k1) of the current ones (g->block, first, data), all
     * with data: write them (ctx is g, see gout_runs) */
    int (*put)(void *g, uint64_t k0, uint64_t k1, mrimg_error *err);
    /* the walk is over: the memory map m made from the device state t is
     * known; write the rest, *size = the output's size */
    int (*finish)(gout_walk *g, const mrimg_memmap *m, const guest_tail *t, uint64_t *size,
                  mrimg_error *err);
    /* release the output's state (also after a failed begin) */
    void (*free)(gout_walk *g);
} gout_ops;

struct gout_walk {
    const gout_ops *ops;
    mrimg_image *in;
    const char *machine;     /* the configuration's machine type (layout known) */
    mrimg_sink sink;
    bool sink_open;
    gout_wc wc;              /* the pages' writes */
    mrimg_convert_stats *st;
    uint64_t ps;             /* target page size */
    unsigned nblocks;
    bool laid_out;
    /* the current callback's pages */
    unsigned block;
    uint64_t first;
    const uint8_t *data;
};

/* Write the output of ops for in at out_path: refuse a machine without a
 * known layout before the long walk, walk the RAM into the sink (laid out
 * on the first page, or at the end when none came), collect the device
 * state, make the memory map, finish, commit (gout_commit). */
MRIMG_INTERNAL int gout_convert(const gout_ops *ops, mrimg_image *in, const char *out_path,
                                const mrimg_convert_opts *o, mrimg_convert_stats *st,
                                const gout_gate *gate, mrimg_progress_fn progress, void *pctx,
                                mrimg_error *err);

#endif
