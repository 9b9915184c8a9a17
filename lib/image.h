/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image handle shared by the RAM view, convert and verify layers. */
#ifndef MRIMG_IMAGE_H
#define MRIMG_IMAGE_H

#include "codec/codec.h"
#include "container/libvirt.h"
#include "options.h"
#include "stream/run.h"
#include "util/bitmap.h"

/* Per-block state of the RAM view. */
typedef struct img_block {
    mrimg_ram_block_info info;
    sp_block sp;             /* as parsed (mapped-ram offsets) */
    lbitmap data;            /* final content is data (PAGE / bit set) */
    lbitmap seen;            /* plain: some record was seen */
    lbitmap zf;              /* plain: final content is data, all zero bytes */
} img_block;

/* A consumer that rides along the passes that scan img's stream (a RAM
 * walk's or a scan's pass, a conversion's own pass), so that it needs no
 * pass of its own: its events come through an sp_tee after the pass's own
 * handler, its hooks see the parse's result.  A persistent rider is fed by
 * every such pass (on_tail_start says where the tail starts: start over);
 * a one-shot rider (the judgement riding on a conversion's, a digest's or
 * a scan's pass) by the first only, and is then detached (fed tells that
 * it was).  The device state needs no rider: every pass keeps it in the
 * image (img_tail). */
typedef struct img_rider {
    const sp_handler *h;
    void *ctx;
    sp_hooks hooks;              /* optional */
    bool once;
    bool fed;
} img_rider;

#define IMG_RIDERS 2


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
    int scan_rc;                 /* a failed scan of a pipe (which cannot be */
    mrimg_error scan_err;        /* read again): its result, for mrimg_scan */
    mrimg_stream_info si;
    sp_config cfg;               /* the scan's (mrimg_stream_capability) */
    /* the stream head as img_peek_config parsed it before any scan: read
     * once (a pipe's comes from the head window, io/source.c) */
    bool head_read;
    sp_config head;
    img_block *blocks;
    unsigned nblocks;
    mrimg_dec_stats dstats;
    /* plain streams replayed into a temporary sparse file for random access */
    bool have_mat;
    mrimg_source mat;
    uint64_t *mat_base;          /* per block: offset of page 0 in mat */
    img_rider *riders[IMG_RIDERS];  /* see img_rider */
    /* the device-state tail of the stream, stream offsets [tail_start,
     * tail_start + tail_len): from the RAM END through the EOF record and
     * the VMDESCRIPTION, as the parser's tail window held it after the
     * first pass that parsed the whole stream (at most SP_TAIL_MAX bytes).
     * Kept once, unchanged until mrimg_close: the device-state readers
     * (lib/guest, the digest) borrow it instead of reading the stream
     * again, which a pipe could not (img_tail). */
    uint8_t *tail;
    size_t tail_len;
    uint64_t tail_start;
    /* the cached judgement (mrimg_check), freed by judgement_free (set by
     * the verify layer, so that this layer does not depend on it) */
    mrimg_verify_result *judgement;
    int judgement_level;         /* 1 quick, 2 full */
    void (*judgement_free)(void *);
};

/* One pass over img's stream, the one way to parse it (run.h sp_run):
 * open the payload reader, report progress, parse, stop the read-ahead,
 * close.  The pass's own handler gets the events first, then the riders
 * (when riders is set).  stats receives the decoder's statistics (NULL:
 * not wanted); in_bytes the payload bytes consumed. */
typedef struct img_parse_opts {
    const sp_handler *h;
    void *ctx;
    sp_hooks hooks;              /* the pass's own consumer's hooks (optional) */
    mrimg_stream_info *si;       /* NULL: a scratch one */
    bool head_only;
    bool regions;                /* name the container regions bad mapped-ram offsets point into */
    bool riders;                 /* a pass over the whole stream that feeds the riders */
    srd_tap_fn tap;              /* every stream byte, in order (a verbatim copy) */
    void *tap_ctx;
    mrimg_progress_fn progress;
    void *pctx;
    int (*after)(void *ctx, sp_pass *ps, int rc, mrimg_error *err); /* sp_run_opts.after */
    void *after_ctx;
} img_parse_opts;

typedef struct img_parse_out {
    bool opened;                 /* the payload reader opened (else err is why not) */
    bool compressed;
    mrimg_dec_stats dstats;      /* compressed payloads */
    uint64_t in_bytes;           /* payload bytes read */
    uint64_t stream_bytes;       /* decoded stream bytes passed */
} img_parse_out;

MRIMG_INTERNAL int img_parse(mrimg_image *img, const img_parse_opts *o, img_parse_out *out,
                             mrimg_error *err);
/* The device-state tail of img (img->tail): the one kept by a pass that
 * parsed the whole stream, else from a pass of its own (which fails on a
 * pipe, whose bytes are gone: the source's error).  0 when img->tail is
 * set; a stream that cannot be parsed to its end fails with the parse's
 * error. */
MRIMG_INTERNAL int img_tail(mrimg_image *img, mrimg_error *err);
/* Attach / detach a rider (IMG_RIDERS at most; -1 when full). */
MRIMG_INTERNAL int img_rider_add(mrimg_image *img, img_rider *r);
MRIMG_INTERNAL void img_rider_remove(mrimg_image *img, img_rider *r);
/* The payload probe, the one place that looks at a payload's first bytes:
 * a bare stream's (the QEMU magic or a codec's; nothing known is a
 * container.magic finding) or a libvirt payload's against its header's
 * format (payload.format, payload.truncated).  Findings go to rep as
 * ctr_scan_file() records them: under imgverify's check names, with the
 * error opening the payload stops at.  Reads the first 16 bytes at
 * ci->payload_offset (and, for a bare file without a magic, its first
 * 16 MiB to suggest an offset).  Returns <0 only on read errors. */
typedef struct img_payload {
    int enc;                     /* the payload's encoding (mrimg_format;
                                  * -1: unknown) */
    const mrimg_codec *codec;    /* what decodes it (NULL: nothing can) */
} img_payload;
MRIMG_INTERNAL int img_probe_payload(mrimg_source *src, const mrimg_container_info *ci,
                                     img_payload *pl, ctr_report *rep, mrimg_error *err);
/* The stream header's configuration section: the scan's when a scan has
 * read it, else the head parsed once (header and configuration section
 * only) and kept on img.  *cfg is valid until mrimg_close. */
MRIMG_INTERNAL int img_peek_config(mrimg_image *img, const sp_config **cfg, mrimg_error *err);
/* Whether the configuration section (img_peek_config) lists mapped-ram. */
MRIMG_INTERNAL int img_head_mapped(mrimg_image *img, bool *mapped, mrimg_error *err);
/* Walk an image whose pages are addressable (mapped-ram, or replayed). */
MRIMG_INTERNAL int img_walk_bitmapped(mrimg_image *img, mrimg_ram_fn fn, void *opaque,
                                      mrimg_progress_fn progress, void *pctx, mrimg_error *err);
/* Make the pages of img addressable: scan, and replay plain streams. */
MRIMG_INTERNAL int img_addressable(mrimg_image *img, mrimg_progress_fn progress, void *pctx,
                                   mrimg_error *err);
/* Release scan results (blocks and bitmaps). */
MRIMG_INTERNAL void img_blocks_free(mrimg_image *img);

#endif
