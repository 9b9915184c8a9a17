/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal parts of the verify layer: the problem list, SHA-256, a strict
 * bounded JSON reader, a bounded XML well-formedness checker, and the
 * device-state walk driven by the VMDESCRIPTION JSON. */
#ifndef MRIMG_VERIFY_VFY_H
#define MRIMG_VERIFY_VFY_H

#include "../image.h"
#include "../stream/vmdesc.h"
#include "../util/xml.h"

/* ---- problem list ------------------------------------------------------ */

typedef struct vf_list {
    mrimg_problem *v;
    unsigned n, max;
    size_t cap;
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

#endif
