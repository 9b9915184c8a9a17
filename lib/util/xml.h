/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A bounded XML well-formedness check (no libxml2), for domain XML and
 * save cookies. */
#ifndef MRIMG_UTIL_XML_H
#define MRIMG_UTIL_XML_H

#include "util.h"

/* ---- XML ----------------------------------------------------------------- */

typedef struct vx_result {
    bool ok;
    size_t where;            /* byte offset of the problem */
    char msg[200];
    char root[64];           /* root element name */
    bool has_name, has_uuid; /* direct children of the root */
} vx_result;

/* Check that text is one well-formed XML document (elements, attributes,
 * comments, PIs, CDATA, character and predefined entity references; a
 * DOCTYPE is refused).  Bounded: depth <= 256, names <= 255 bytes. */
MRIMG_INTERNAL void vx_check(const char *text, size_t len, vx_result *r);

#endif
