/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VMDESCRIPTION that QEMU appends after the EOF record: a JSON
 * description of the device sections in the stream.  A strict, bounded
 * JSON reader, and the walk that delimits the device sections of the tail
 * with that description. */
#ifndef MRIMG_STREAM_VMDESC_H
#define MRIMG_STREAM_VMDESC_H

#include "reader.h"

/* ---- JSON -------------------------------------------------------------- */

enum { VJ_NULL, VJ_FALSE, VJ_TRUE, VJ_NUM, VJ_STR, VJ_ARR, VJ_OBJ };

/* One value of the tree.  Strings and keys point into the source text
 * (still escaped; names in a VMDESCRIPTION never need unescaping, and the
 * walker compares escaped text only against plain names). */
typedef struct vj_node {
    uint8_t type;
    uint32_t key_off, key_len;   /* member name (in objects) */
    uint32_t off, len;           /* value text (strings: without quotes) */
    int32_t child, next;         /* first child, next sibling (-1: none) */
} vj_node;

typedef struct vj_doc {
    vj_node *n;
    size_t count, cap;
    const char *text;
    size_t text_len;
} vj_doc;

#define VJ_MAX_DEPTH 64
#define VJ_MAX_NODES (4u << 20)

/* Parse text strictly (RFC 8259: one value, UTF-8, no trailing text), with
 * nesting <= VJ_MAX_DEPTH.  doc may be NULL to validate only.  On failure
 * returns <0 and fills *where (byte offset) and msg. */
MRIMG_INTERNAL int vj_parse(const char *text, size_t len, vj_doc *doc, size_t *where, char *msg,
                            size_t msgcap);
MRIMG_INTERNAL void vj_free(vj_doc *doc);
/* Member of an object by name (-1 if none). */
MRIMG_INTERNAL int32_t vj_get(const vj_doc *d, int32_t obj, const char *key);
/* Unsigned integer value of a number node; false if not a non-negative integer. */
MRIMG_INTERNAL bool vj_u64(const vj_doc *d, int32_t node, uint64_t *v);
/* String node equals s (compared as written). */
MRIMG_INTERNAL bool vj_streq(const vj_doc *d, int32_t node, const char *s, size_t n);
/* The text of a string node (as written, cut to cap - 1 bytes) into
 * out[cap] (cap > 0), for messages; "?" when node is not a string. */
MRIMG_INTERNAL void vj_text(const vj_doc *d, int32_t node, char *out, size_t cap);

/* ---- device-state walk ------------------------------------------------- */

typedef struct sp_devwalk {
    uint64_t sections;       /* device sections explained */
    uint64_t explained;      /* bytes explained (from the tail start) */
    bool complete;           /* walked up to the EOF record */
    bool skipped;            /* could not be attempted (reason in note) */
    char note[256];
} sp_devwalk;

/* Receives a problem found by the walk: off is tail_pos + the offset in
 * the tail (a stream offset). */
typedef void (*sp_problem_fn)(void *ctx, uint64_t off, const char *msg);

/* Walk the device state tail[0, eof) (tail[eof] is the EOF byte; tail[0]
 * is at stream offset tail_pos) with the description doc.  Problems go to
 * fn (which may be NULL). */
MRIMG_INTERNAL void sp_walk_devices(const vj_doc *doc, const uint8_t *tail, size_t eof,
                                    uint64_t tail_pos, sp_problem_fn fn, void *ctx,
                                    sp_devwalk *out);

/* Receives every leaf field the walk steps over: the section's idstr, the
 * name of the VMSD the field belongs to ("PCIDevice", "vga", ...), the
 * field's name as described and its bytes (valid during the call only). */
typedef void (*sp_field_fn)(void *ctx, const char *dev, const char *vmsd, const char *field,
                            const uint8_t *p, size_t n);

/* sp_walk_devices with a field visitor (visit may be NULL).  Fields are
 * visited as the walk reaches them, also in a section the walk later finds
 * damaged: callers use what they need only when out->complete. */
MRIMG_INTERNAL void sp_walk_device_fields(const vj_doc *doc, const uint8_t *tail, size_t eof,
                                          uint64_t tail_pos, sp_problem_fn fn, void *ctx,
                                          sp_field_fn visit, void *vctx, sp_devwalk *out);

#endif
