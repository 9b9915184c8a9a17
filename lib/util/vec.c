/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Growable arrays (vec.h). */
#include "vec.h"

#include <stdlib.h>

bool vec_reserve_(void *pp, size_t *cap, size_t need, size_t elt, size_t min, size_t max)
{
    if (need <= *cap)
        return true;
    size_t limit = elt ? SIZE_MAX / elt : SIZE_MAX;
    if (max == 0 || max > limit)
        max = limit;
    if (need > max)
        return false;
    size_t nc = *cap > max / 2 ? max : MRIMG_MAX(*cap * 2, min);
    nc = MRIMG_MIN(MRIMG_MAX(nc, need), max);
    void *p;
    memcpy(&p, pp, sizeof(p)); /* pp is a T **: no access through a void ** */
    void *q = realloc(p, nc * elt > 0 ? nc * elt : 1);
    if (!q)
        return false;
    memcpy(pp, &q, sizeof(q));
    *cap = nc;
    return true;
}
