/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bitmap.h"

#include <stdlib.h>

int lb_init(lbitmap *b, uint64_t nbits, mrimg_error *err)
{
    b->nbits = nbits;
    b->nleaves = (size_t)((nbits + LB_LEAF_BITS - 1) / LB_LEAF_BITS);
    b->leaves = xcalloc(b->nleaves ? b->nleaves : 1, sizeof(*b->leaves), err);
    return b->leaves ? 0 : MRIMG_ERR_NOMEM;
}

void lb_free(lbitmap *b)
{
    if (b->leaves) {
        for (size_t i = 0; i < b->nleaves; i++)
            free(b->leaves[i]);
        free(b->leaves);
    }
    memset(b, 0, sizeof(*b));
}

static uint64_t *leaf(lbitmap *b, uint64_t i, mrimg_error *err)
{
    uint64_t **l = &b->leaves[i / LB_LEAF_BITS];
    if (!*l)
        *l = xcalloc(LB_LEAF_WORDS, sizeof(uint64_t), err);
    return *l;
}

int lb_set(lbitmap *b, uint64_t i, mrimg_error *err)
{
    uint64_t *l = leaf(b, i, err);
    if (!l)
        return MRIMG_ERR_NOMEM;
    l[(i % LB_LEAF_BITS) / 64] |= 1ull << (i % 64);
    return 0;
}

void lb_clear(lbitmap *b, uint64_t i)
{
    uint64_t *l = b->leaves[i / LB_LEAF_BITS];
    if (l)
        l[(i % LB_LEAF_BITS) / 64] &= ~(1ull << (i % 64));
}

uint64_t lb_count(const lbitmap *b)
{
    uint64_t n = 0;
    for (size_t i = 0; i < b->nleaves; i++) {
        const uint64_t *l = b->leaves[i];
        if (l)
            for (unsigned w = 0; w < LB_LEAF_WORDS; w++)
                n += (uint64_t)__builtin_popcountll(l[w]);
    }
    return n;
}

static uint64_t next_bit(const lbitmap *b, uint64_t i, bool want)
{
    while (i < b->nbits) {
        size_t li = (size_t)(i / LB_LEAF_BITS);
        const uint64_t *l = b->leaves[li];
        if (!l) {
            if (!want)
                return i;
            i = (uint64_t)(li + 1) * LB_LEAF_BITS;
            continue;
        }
        unsigned w = (unsigned)((i % LB_LEAF_BITS) / 64);
        uint64_t word = want ? l[w] : ~l[w];
        word &= ~0ull << (i % 64);
        for (;;) {
            if (word) {
                uint64_t r = (uint64_t)li * LB_LEAF_BITS + (uint64_t)w * 64 +
                             (uint64_t)__builtin_ctzll(word);
                return r < b->nbits ? r : b->nbits;
            }
            if (++w == LB_LEAF_WORDS)
                break;
            word = want ? l[w] : ~l[w];
        }
        i = (uint64_t)(li + 1) * LB_LEAF_BITS;
    }
    return b->nbits;
}

uint64_t lb_next_set(const lbitmap *b, uint64_t i) { return next_bit(b, i, true); }
uint64_t lb_next_clear(const lbitmap *b, uint64_t i) { return next_bit(b, i, false); }

int lb_load_le(lbitmap *b, uint64_t first_bit, const uint8_t *words, size_t nwords,
               mrimg_error *err)
{
    for (size_t k = 0; k < nwords; k++) {
        uint64_t bit = first_bit + 64 * (uint64_t)k;
        if (bit >= b->nbits)
            break;
        uint64_t v = rd_le64(words + 8 * k);
        uint64_t valid = b->nbits - bit;
        if (valid < 64)
            v &= (1ull << valid) - 1;
        if (!v)
            continue;
        uint64_t *l = leaf(b, bit, err);
        if (!l)
            return MRIMG_ERR_NOMEM;
        l[(bit % LB_LEAF_BITS) / 64] |= v;
    }
    return 0;
}

void lb_store_le(const lbitmap *b, uint64_t first_bit, uint8_t *words, size_t nwords)
{
    for (size_t k = 0; k < nwords; k++) {
        uint64_t bit = first_bit + 64 * (uint64_t)k;
        uint64_t v = 0;
        if (bit < b->nbits) {
            const uint64_t *l = b->leaves[bit / LB_LEAF_BITS];
            if (l)
                v = l[(bit % LB_LEAF_BITS) / 64];
        }
        wr_le64(words + 8 * k, v);
    }
}
