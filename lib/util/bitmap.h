/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A two-level page bitmap: leaves of 32768 bits (4 KiB) allocated on first
 * set, so memory follows the pages actually present, not the length a
 * stream claims. */
#ifndef MRIMG_BITMAP_H
#define MRIMG_BITMAP_H

#include "util.h"

#define LB_LEAF_BITS 32768u
#define LB_LEAF_WORDS (LB_LEAF_BITS / 64)

typedef struct lbitmap {
    uint64_t nbits;
    size_t nleaves;
    uint64_t **leaves;
} lbitmap;

MRIMG_INTERNAL int lb_init(lbitmap *b, uint64_t nbits, mrimg_error *err);
MRIMG_INTERNAL void lb_free(lbitmap *b);
MRIMG_INTERNAL int lb_set(lbitmap *b, uint64_t i, mrimg_error *err);
MRIMG_INTERNAL void lb_clear(lbitmap *b, uint64_t i);
static inline bool lb_test(const lbitmap *b, uint64_t i)
{
    const uint64_t *l = b->leaves[i / LB_LEAF_BITS];
    return l && ((l[(i % LB_LEAF_BITS) / 64] >> (i % 64)) & 1);
}
MRIMG_INTERNAL uint64_t lb_count(const lbitmap *b);
/* First set bit at or after i, or nbits. */
MRIMG_INTERNAL uint64_t lb_next_set(const lbitmap *b, uint64_t i);
/* First clear bit at or after i, or nbits. */
MRIMG_INTERNAL uint64_t lb_next_clear(const lbitmap *b, uint64_t i);
/* OR in little-endian 64-bit words describing bits [first_bit, ...);
 * first_bit must be a multiple of 64.  Bits beyond nbits are ignored. */
MRIMG_INTERNAL int lb_load_le(lbitmap *b, uint64_t first_bit, const uint8_t *words, size_t nwords,
                              mrimg_error *err);
/* Store bits [first_bit, first_bit + 64*nwords) as little-endian words. */
MRIMG_INTERNAL void lb_store_le(const lbitmap *b, uint64_t first_bit, uint8_t *words,
                                size_t nwords);

#endif
