/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMU migration stream writer: the records of the plain and mapped-ram
 * layouts, serialised exactly as QEMU 10 writes them. */
#ifndef MRIMG_STREAM_WRITER_H
#define MRIMG_STREAM_WRITER_H

#include "reader.h"

/* Where the bytes go: an encoder or a sink, through one function. */
typedef int (*sw_out_fn)(void *ctx, const void *p, size_t n, mrimg_error *err);

typedef struct sw {
    sw_out_fn out;
    void *ctx;
    uint64_t pos;          /* bytes written so far (stream offset) */
    int last_block;        /* CONTINUE state: last block named, -1 none */
} sw;

MRIMG_INTERNAL void sw_init(sw *w, sw_out_fn out, void *ctx);
MRIMG_INTERNAL int sw_bytes(sw *w, const void *p, size_t n, mrimg_error *err);
MRIMG_INTERNAL int sw_header(sw *w, mrimg_error *err);
/* The configuration section of c, with mapped-ram added or removed from
 * the capability list (mapped: 1 add, 0 remove, -1 keep as is). */
MRIMG_INTERNAL int sw_config(sw *w, const sp_config *c, int mapped, mrimg_error *err);
MRIMG_INTERNAL int sw_section_start(sw *w, const sp_section *s, mrimg_error *err);
/* PART or END header. */
MRIMG_INTERNAL int sw_section_short(sw *w, uint8_t type, uint32_t id, mrimg_error *err);
MRIMG_INTERNAL int sw_footer(sw *w, uint32_t id, mrimg_error *err);
MRIMG_INTERNAL int sw_eos(sw *w, mrimg_error *err);
MRIMG_INTERNAL int sw_command(sw *w, const sp_command *c, mrimg_error *err);
MRIMG_INTERNAL int sw_mem_size(sw *w, uint64_t total, mrimg_error *err);
/* Name and length of a block, plus its optional postcopy page size and
 * mr_addr fields (not the mapped-ram header). */
MRIMG_INTERNAL int sw_block(sw *w, const sp_block *b, mrimg_error *err);
MRIMG_INTERNAL int sw_mapped_header(sw *w, uint64_t page_size, uint64_t bitmap_offset,
                                    uint64_t pages_offset, mrimg_error *err);
/* One PAGE record (data) or ZERO record (data == NULL) for page `page` of
 * block `bi`, naming the block unless it is the last one named. */
MRIMG_INTERNAL int sw_page(sw *w, int bi, const sp_block *b, uint64_t page, uint64_t page_size,
                           const uint8_t *data, mrimg_error *err);

#endif
