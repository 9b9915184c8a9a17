/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal parts of the verify layer: the problem list, SHA-256, a strict
 * bounded JSON reader, a bounded XML well-formedness checker, and the
 * device-state walk driven by the VMDESCRIPTION JSON. */
#ifndef MRIMG_VERIFY_VFY_H
#define MRIMG_VERIFY_VFY_H

#include "../image.h"

/* ---- problem list ------------------------------------------------------ */

typedef struct vf_list {
    mrimg_problem *v;
    unsigned n, cap, max;
    uint64_t errors, warnings, dropped;
    bool nomem;
} vf_list;

/* Add a problem (check must be a static string from the check table). */
MRIMG_INTERNAL void vf_add(vf_list *l, const char *check, mrimg_severity sev,
                           mrimg_offset_kind kind, uint64_t off, const char *fmt, ...)
    MRIMG_PRINTF(6, 7);
/* Add a problem from a library error (its message already names the offset). */
MRIMG_INTERNAL void vf_add_err(vf_list *l, const char *check, mrimg_severity sev,
                               const mrimg_error *e);
/* Problems with this check name so far. */
MRIMG_INTERNAL unsigned vf_count(const vf_list *l, const char *check);

/* ---- SHA-256 (FIPS 180-4) ---------------------------------------------- */

typedef struct vf_sha256 {
    uint32_t h[8];
    uint64_t len;         /* bytes hashed */
    uint8_t buf[64];
    size_t nbuf;
} vf_sha256;

MRIMG_INTERNAL void vf_sha256_init(vf_sha256 *s);
MRIMG_INTERNAL void vf_sha256_update(vf_sha256 *s, const void *p, size_t n);
MRIMG_INTERNAL void vf_sha256_final(vf_sha256 *s, uint8_t out[32]);

/* A 64-bit non-cryptographic hash of a page, never 0 (used to locate
 * differences; the verdicts rest on SHA-256). */
MRIMG_INTERNAL uint64_t vf_hash64(const uint8_t *p, size_t n);

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

/* ---- device-state walk ----------------------------------------------------- */

typedef struct vf_devwalk {
    uint64_t sections;       /* device sections explained */
    uint64_t explained;      /* bytes explained (from the tail start) */
    bool complete;           /* walked up to the EOF record */
    bool skipped;            /* could not be attempted (reason in note) */
    char note[256];
} vf_devwalk;

/* Walk the device state tail[0, eof) (tail[eof] is the EOF byte; tail[0]
 * is at stream offset tail_pos) with the description doc.  Problems go to
 * l under "stream.devices".  kind/base turn tail offsets into reported
 * offsets (base + tail_pos + i). */
MRIMG_INTERNAL void vf_walk_devices(const vj_doc *doc, const uint8_t *tail, size_t eof,
                                    uint64_t tail_pos, mrimg_offset_kind kind, uint64_t base,
                                    vf_list *l, vf_devwalk *out);

#endif
