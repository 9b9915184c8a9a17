/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Growable arrays: one checked way to make room.
 *
 *     VEC(region) l = {0};                 // or: region *v; size_t n, cap;
 *     if (!vec_push(&l, r, 32, 0)) ...     // out of memory or over the cap
 *     if (!vec_reserve(p->tail, p->tail_cap, want, 1 << 20, SP_TAIL_MAX)) ...
 *     vec_free(&l);
 *
 * Capacity doubles, starts at `min` elements, never exceeds `max` elements
 * (0: only what size_t can count in bytes), and every size is checked for
 * overflow.  On failure nothing changes: the array and its capacity stay as
 * they were, so the caller decides what running out means (a limit, out of
 * memory, dropping an entry). */
#ifndef MRIMG_VEC_H
#define MRIMG_VEC_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* *(T **)pp holds *cap elements of elt bytes; make it hold at least need.
 * false when need > max (max 0: no cap but size_t), on overflow, or when
 * realloc fails; then *pp and *cap are unchanged. */
MRIMG_INTERNAL bool vec_reserve_(void *pp, size_t *cap, size_t need, size_t elt, size_t min,
                                 size_t max);

/* Room for need elements in the array p (an lvalue T *) of capacity cap
 * (an lvalue size_t). */
#define vec_reserve(p, cap, need, min, max) \
    vec_reserve_(&(p), &(cap), (need), sizeof(*(p)), (min), (max))

/* A typed growable array: v[0..n) in use, cap allocated. */
#define VEC(T)          \
    struct {            \
        T *v;           \
        size_t n, cap;  \
    }

/* Append x to *vec (a VEC); false (nothing appended) on failure. */
#define vec_push(vec, x, min, max)                                          \
    (vec_reserve((vec)->v, (vec)->cap, (vec)->n + 1, (min), (max))          \
         ? ((vec)->v[(vec)->n++] = (x), true)                               \
         : false)

#define vec_free(vec)            \
    do {                         \
        free((vec)->v);          \
        (vec)->v = NULL;         \
        (vec)->n = (vec)->cap = 0; \
    } while (0)

#endif
