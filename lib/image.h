/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image handle shared by the RAM view, convert and verify layers. */
#ifndef MRIMG_IMAGE_H
#define MRIMG_IMAGE_H

#include "codec/codec.h"
#include "container/libvirt.h"
#include "stream/reader.h"
#include "util/bitmap.h"

/* Per-block state of the RAM view. */
typedef struct img_block {
    mrimg_ram_block_info info;
    sp_block sp;             /* as parsed (mapped-ram offsets) */
    lbitmap data;            /* final content is data (PAGE / bit set) */
    lbitmap seen;            /* plain: some record was seen */
} img_block;

/* An observer of the device-state tail (the stream bytes after the RAM END
 * section), called by every pass that scans the stream: start() with the
 * tail's stream offset (again when a later pass re-scans: start over), then
 * bytes() with the tail in order.  Used by lib/verify for digests. */
typedef struct img_tail_hook {
    int (*start)(void *ctx, uint64_t pos, mrimg_error *err);
    int (*bytes)(void *ctx, const uint8_t *p, size_t n, mrimg_error *err);
    void *ctx;
} img_tail_hook;

struct mrimg_image {
    mrimg_source src;
    mrimg_open_opts opts;
    mrimg_container_info ci;
    char *meta;                  /* metadata region copy */
    const mrimg_codec *codec;    /* payload decoder (raw for raw and sparse) */
    bool mapped_payload;         /* payload is a mapped-ram stream */
    /* scan results */
    bool scanned;
    bool scan_tried;             /* a scan ran (it may have failed: then the
                                  * results below hold what it found) */
    unsigned scan_flags;
    mrimg_stream_info si;
    sp_config cfg;
    img_block *blocks;
    unsigned nblocks;
    mrimg_dec_stats dstats;
    /* plain streams replayed into a temporary sparse file for random access */
    bool have_mat;
    mrimg_source mat;
    uint64_t *mat_base;          /* per block: offset of page 0 in mat */
    img_tail_hook tail_hook;     /* optional (all NULL: none) */
    /* the cached judgement (mrimg_check), freed by judgement_free (set by
     * the verify layer, so that this layer does not depend on it) */
    mrimg_verify_result *judgement;
    int judgement_level;         /* 1 quick, 2 full */
    void (*judgement_free)(void *);
};

/* Open the payload of img for parsing: *s reads the decoded stream; *dec
 * is used for compressed payloads (dec->codec is NULL for raw). */
MRIMG_INTERNAL int img_stream_open(mrimg_image *img, srd *s, mrimg_decoder *dec,
                                   mrimg_error *err);
MRIMG_INTERNAL void img_stream_close(srd *s, mrimg_decoder *dec);
/* Report progress of a pass over the payload opened by img_stream_open. */
MRIMG_INTERNAL void img_stream_progress(mrimg_image *img, srd *s, mrimg_progress_fn fn,
                                        void *ctx);
/* Look for the QEMU stream magic in the first 16 MiB of a file (to
 * suggest --offset for a bare stream that does not start at 0). */
MRIMG_INTERNAL bool img_find_stream_magic(mrimg_source *src, uint64_t *at);
/* Parse the stream header and configuration section only. */
MRIMG_INTERNAL int img_peek_config(mrimg_image *img, sp_config *cfg, mrimg_error *err);
/* Walk an image whose pages are addressable (mapped-ram, or replayed). */
MRIMG_INTERNAL int img_walk_bitmapped(mrimg_image *img, mrimg_ram_fn fn, void *opaque,
                                      mrimg_progress_fn progress, void *pctx, mrimg_error *err);
/* Make the pages of img addressable: scan, and replay plain streams. */
MRIMG_INTERNAL int img_addressable(mrimg_image *img, mrimg_progress_fn progress, void *pctx,
                                   mrimg_error *err);
/* Release scan results (blocks and bitmaps). */
MRIMG_INTERNAL void img_blocks_free(mrimg_image *img);

#endif
