/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A bounded XML well-formedness check (no libxml2), for domain XML and
 * save cookies. */
#ifndef MRIMG_UTIL_XML_H
#define MRIMG_UTIL_XML_H

#include "util.h"

/* ---- XML ----------------------------------------------------------------- */

/* Deepest element nesting the reader accepts (the root is depth 0; a start
 * callback may see depth == VX_DEPTH just before the reader refuses it). */
#define VX_DEPTH 256

typedef struct vx_result {
    bool ok;
    size_t where;            /* byte offset of the problem */
    char msg[200];
    char root[64];           /* root element name */
    bool has_name, has_uuid; /* direct children of the root */
    bool stopped;            /* vx_parse: a callback stopped it */
} vx_result;

/* Check that text is one well-formed XML document (elements, attributes,
 * comments, PIs, CDATA, character and predefined entity references; a
 * DOCTYPE is refused).  Bounded: depth <= 256, names <= 255 bytes. */
MRIMG_INTERNAL void vx_check(const char *text, size_t len, vx_result *r);

/* The same reader, telling a caller about the markup as it goes (offsets
 * are byte offsets in text).  Every member may be NULL; a callback
 * returning false stops the parse (r->ok stays true, r->msg empty). */
typedef struct vx_events {
    bool allow_doctype;  /* skip a DOCTYPE (internal subset included) */
    void *ctx;
    /* a start tag '<' at lt, its name [name, name+len), depth 0 = root */
    bool (*start)(void *ctx, size_t lt, size_t name, size_t len, unsigned depth);
    /* one attribute of that tag: [ws, end) runs from the white space
     * before it through its closing quote */
    bool (*attr)(void *ctx, size_t ws, size_t name, size_t len, size_t end);
    /* the start tag ends just before `end`; empty: it was "<.../>" */
    bool (*start_done)(void *ctx, size_t end, bool empty);
    /* an end tag ending just before `end` closes the element at depth */
    bool (*end)(void *ctx, size_t end, unsigned depth);
} vx_events;

MRIMG_INTERNAL void vx_parse(const char *text, size_t len, const vx_events *ev, vx_result *r);

#endif
