/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The container layer: libvirt's 92-byte save-image header, the metadata
 * region (domain XML, save cookie, padding), and the probe for bare QEMU
 * streams.  See docs/formats.md and the libvirt reference for the layout. */
#ifndef MRIMG_CONTAINER_LIBVIRT_H
#define MRIMG_CONTAINER_LIBVIRT_H

#include "../io/sink.h"
#include "../io/source.h"

#define LIBVIRT_MAGIC_FINAL "LibvirtQemudSave"
#define LIBVIRT_MAGIC_PARTIAL "LibvirtQemudPart"
#define LIBVIRT_MAGIC_LEN 16
#define LIBVIRT_PADDING 65536u  /* slack libvirt leaves after XML and cookie */
#define QEMU_STREAM_MAGIC "QEVM"

/* ---- the scanner ------------------------------------------------------------
 * One walk over the container (header, domain XML, cookie, padding) that
 * never stops at the first problem: every finding is recorded under the
 * check name imgverify reports it with (docs/imgverify.1), and the first
 * finding that opening an image cannot get past is kept as an error value.
 * mrimg_open() fails with that error; the verifier lists every finding.
 * The file is read from its start forward only (header, then metadata
 * region), so that a sequential input can be scanned as it arrives. */

/* More than the scanner and the payload probe (lib/image.c) record on any
 * file (at most 13: no check is recorded more than twice). */
#define CTR_MAX_FINDINGS 16

typedef struct ctr_finding {
    const char *check;          /* "container.xml", ... (static string) */
    mrimg_severity severity;
    uint64_t offset;            /* file offset */
    char message[512];          /* as imgverify reports it */
} ctr_finding;

typedef struct ctr_report {
    mrimg_error first;          /* the first finding opening stops at, as
                                 * mrimg_open() reports it (MRIMG_OK: none) */
    unsigned n;
    ctr_finding f[CTR_MAX_FINDINGS];
} ctr_report;

MRIMG_INTERNAL void ctr_report_init(ctr_report *r);
/* Record a finding (the message as imgverify words it). */
MRIMG_INTERNAL void ctr_note(ctr_report *r, const char *check, mrimg_severity sev,
                             uint64_t off, const char *fmt, ...) MRIMG_PRINTF(5, 6);
/* Mark the finding just noted as one that stops opening, worded as
 * mrimg_open() reports it (kept only for the first such finding). */
MRIMG_INTERNAL void ctr_fail(ctr_report *r, mrimg_code code, uint64_t off, const char *fmt, ...)
    MRIMG_PRINTF(4, 5);
/* Both at once where the wordings share their text: imgverify's is
 * lead + TEXT + " (why)", opening's TEXT alone (lead, why may be NULL). */
MRIMG_INTERNAL void ctr_error(ctr_report *r, const char *check, mrimg_code code, uint64_t off,
                              const char *lead, const char *why, const char *fmt, ...)
    MRIMG_PRINTF(7, 8);
/* 0 when nothing stops opening, else the first such error (copied to *err). */
MRIMG_INTERNAL int ctr_report_error(const ctr_report *r, mrimg_error *err);

typedef struct ctr_scan {
    mrimg_container_info info;  /* what could be read; xml and cookie point
                                 * into meta, "" / NULL when unreadable */
    char *meta;                 /* the metadata region as read (owned) */
    int format;                 /* the header's format field, -1: bare
                                 * stream, header cut short or out of range */
    bool payload_known;         /* info.payload_offset is where the payload
                                 * starts (bare stream, or a libvirt header
                                 * whose metadata region is whole) */
    ctr_report rep;
} ctr_scan;

/* Scan the container of src.  bare_offset: where a bare QEMU stream starts
 * (used only without a libvirt header).  Returns <0 only when the file
 * cannot be read, memory runs out, or bare_offset lies beyond the end of
 * the file; problems of the content are findings in sc->rep.  Free with
 * ctr_scan_free() in every case. */
MRIMG_INTERNAL int ctr_scan_file(mrimg_source *src, uint64_t bare_offset, ctr_scan *sc,
                                 mrimg_error *err);
MRIMG_INTERNAL void ctr_scan_free(ctr_scan *sc);

/* What to write in front of a payload. */
typedef struct ctr_out {
    uint32_t format;        /* mrimg_format */
    uint32_t was_running;
    const char *xml;        /* required */
    const char *cookie;     /* NULL: no cookie */
    uint32_t min_data_len;  /* keep at least this data_len (0: the default
                             * xml+1 + cookie+1 + 64 KiB) */
} ctr_out;

/* Size of the metadata region ctr_write() will use. */
MRIMG_INTERNAL int ctr_data_len(const ctr_out *o, uint32_t *data_len, mrimg_error *err);
/* Write header (partial magic, version 2, native byte order) + metadata at
 * the sink's current position (which must be 0). *payload_offset receives
 * 92 + data_len. */
MRIMG_INTERNAL int ctr_write(mrimg_sink *s, const ctr_out *o, uint64_t *payload_offset,
                             mrimg_error *err);

#endif
