/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvirt save-image container.
 *
 * Header (92 bytes): magic[16], then five u32 in the writer's native byte
 * order: version, data_len, was_running, format, cookieOffset, then 14
 * reserved u32.  The byte order is found the way libvirt finds it: if the
 * version read natively is above 2, the five fields are byte-swapped.  The
 * metadata region [92, 92+data_len) holds the domain XML (NUL-terminated),
 * the optional cookie at 92+cookieOffset (NUL-terminated) and zero padding.
 * The payload starts at 92 + data_len, never rounded.
 *
 * Checks beyond what libvirt 11.3 does: data_len is capped
 * (MRIMG_DATA_LEN_MAX) and must fit in the file, cookieOffset must lie
 * inside data_len, both strings must be NUL-terminated in their parts and
 * well-formed XML (<domain> with <name> and <uuid>; <cookie>).
 *
 * ctr_scan_file() is the one reader of all this: it records every finding
 * (the check names and texts of imgverify) and, separately, the first
 * finding that stops mrimg_open(), worded as opening reports it. */
#include "libvirt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../util/xml.h"

/* The fixed header as read, before any judgement: which magic, and the
 * five fields in the reading host's order after libvirt's byte-order
 * heuristic (swap when the version read natively is above 2). */
enum { CTR_MAGIC_NONE = 0, CTR_MAGIC_FINAL, CTR_MAGIC_PARTIAL, CTR_MAGIC_DAMAGED };
typedef struct ctr_header {
    int magic;               /* CTR_MAGIC_*; DAMAGED: starts "Libvirt" */
    bool complete_header;    /* all 92 bytes present */
    bool foreign_endian;
    uint32_t version, data_len, was_running, format, cookie_offset;
    uint32_t reserved_nonzero;
} ctr_header;

static uint32_t host_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Decode the first `have` bytes of a file (have may be < 92). */
static void ctr_decode(const uint8_t *h, size_t have, ctr_header *o)
{
    memset(o, 0, sizeof(*o));
    if (have >= LIBVIRT_MAGIC_LEN && memcmp(h, LIBVIRT_MAGIC_FINAL, LIBVIRT_MAGIC_LEN) == 0)
        o->magic = CTR_MAGIC_FINAL;
    else if (have >= LIBVIRT_MAGIC_LEN &&
             memcmp(h, LIBVIRT_MAGIC_PARTIAL, LIBVIRT_MAGIC_LEN) == 0)
        o->magic = CTR_MAGIC_PARTIAL;
    else if (have >= 7 && memcmp(h, "Libvirt", 7) == 0)
        o->magic = CTR_MAGIC_DAMAGED;
    if (have < MRIMG_HEADER_SIZE)
        return;
    o->complete_header = true;
    o->version = host_u32(h + 16);
    o->data_len = host_u32(h + 20);
    o->was_running = host_u32(h + 24);
    o->format = host_u32(h + 28);
    o->cookie_offset = host_u32(h + 32);
    if (o->version > 2) {
        o->foreign_endian = true;
        o->version = bswap32(o->version);
        o->data_len = bswap32(o->data_len);
        o->was_running = bswap32(o->was_running);
        o->format = bswap32(o->format);
        o->cookie_offset = bswap32(o->cookie_offset);
    }
    for (int i = 0; i < 14; i++)
        o->reserved_nonzero += host_u32(h + 36 + 4 * i) != 0;
}

/* ---- findings ------------------------------------------------------------- */

void ctr_report_init(ctr_report *r)
{
    r->n = 0;
    mrimg_error_clear(&r->first);
}

void ctr_note(ctr_report *r, const char *check, mrimg_severity sev, uint64_t off,
              const char *fmt, ...)
{
    if (r->n == CTR_MAX_FINDINGS)
        return; /* not reached: see CTR_MAX_FINDINGS */
    ctr_finding *f = &r->f[r->n++];
    f->check = check;
    f->severity = sev;
    f->offset = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
}

void ctr_fail(ctr_report *r, mrimg_code code, uint64_t off, const char *fmt, ...)
{
    if (r->first.code != MRIMG_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    err_setv(&r->first, code, MRIMG_OFF_FILE, off, fmt, ap);
    va_end(ap);
}

void ctr_error(ctr_report *r, const char *check, mrimg_code code, uint64_t off, const char *lead,
               const char *why, const char *fmt, ...)
{
    char text[sizeof(r->f[0].message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ctr_note(r, check, MRIMG_SEV_ERROR, off, "%s%s%s%s%s", lead ? lead : "", text,
             why ? " (" : "", why ? why : "", why ? ")" : "");
    ctr_fail(r, code, off, "%s", text);
}

int ctr_report_error(const ctr_report *r, mrimg_error *err)
{
    if (r->first.code == MRIMG_OK)
        return 0;
    if (err)
        *err = r->first;
    return r->first.code;
}

#define NOTE_ERR(sc, check, ...) ctr_note(&(sc)->rep, check, MRIMG_SEV_ERROR, __VA_ARGS__)
#define NOTE_WARN(sc, check, ...) ctr_note(&(sc)->rep, check, MRIMG_SEV_WARNING, __VA_ARGS__)
#define FAIL(sc, ...) ctr_fail(&(sc)->rep, __VA_ARGS__)
#define ERROR(sc, ...) ctr_error(&(sc)->rep, __VA_ARGS__)

/* ---- the scanner ------------------------------------------------------------ */

/* Non-zero bytes of [p, p+n); *first (when some) the offset from base of
 * the first. */
static uint64_t count_nonzero(const char *base, const char *p, size_t n, uint64_t *first)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] && !c)
            *first = (uint64_t)(p - base) + i;
        c += p[i] != 0;
    }
    return c;
}

/* Well-formedness of the domain XML or the cookie (at file offset `at`). */
static void check_xml(ctr_scan *sc, const char *check, const char *text, size_t len, uint64_t at,
                      const char *root, bool domain)
{
    vx_result r;
    vx_check(text, len, &r);
    if (!r.ok) {
        NOTE_ERR(sc, check, at + r.where, "%s is not well-formed XML: %s",
                 domain ? "the domain XML" : "the save cookie", r.msg);
        return;
    }
    if (strcmp(r.root, root) != 0) {
        NOTE_ERR(sc, check, at, "the root element is <%s> (expected <%s>)", r.root, root);
        return;
    }
    if (domain && (!r.has_name || !r.has_uuid))
        NOTE_ERR(sc, check, at, "the <domain> element has no <%s>%s",
                 !r.has_name ? "name" : "uuid",
                 !r.has_name && !r.has_uuid ? " and no <uuid>" : "");
}

/* The header fields, after the magic and a whole 92-byte header. */
static void scan_fields(ctr_scan *sc, const ctr_header *hd)
{
    mrimg_container_info *ci = &sc->info;
    uint32_t version = hd->version, format = hd->format;
    ci->foreign_endian = hd->foreign_endian;
    ci->version = version;
    ci->data_len = hd->data_len;
    ci->was_running = hd->was_running;
    ci->format = format;
    ci->cookie_offset = hd->cookie_offset;
    ci->reserved_nonzero = hd->reserved_nonzero;

    if (version > 2) {
        NOTE_ERR(sc, "container.version", 16,
                 "image version %u is not supported (expected 2, or 1, in either byte order)",
                 version);
        FAIL(sc, MRIMG_ERR_UNSUPPORTED, 16,
             "image version %u is not supported (expected 1 or 2 in either byte order)", version);
    } else if (version == 0) {
        NOTE_WARN(sc, "container.version", 16,
                  "image version 0 (libvirt writes 2; it reads 0 as an old version-1 image)");
    }
    if (format >= MRIMG_FORMAT_COUNT) {
        ERROR(sc, "container.format", MRIMG_ERR_UNSUPPORTED, 28, NULL, NULL,
              "unsupported save image format %u (expected 0..6: raw, gzip, bzip2, xz, lzop, "
              "zstd, sparse)",
              format);
    } else {
        sc->format = (int)format;
        /* version 1 predates compression: libvirt treats the payload as raw,
         * except that format 6 still takes the sparse path */
        ci->payload_format = (version < 2 && format != MRIMG_FORMAT_SPARSE) ? MRIMG_FORMAT_RAW
                                                                            : (int)format;
        if (version < 2 && format != MRIMG_FORMAT_RAW && format != MRIMG_FORMAT_SPARSE)
            NOTE_WARN(sc, "container.format", 28,
                      "format %u (%s) in a version-%u header: libvirt ignores it and restores "
                      "the payload as raw",
                      format, mrimg_format_name((int)format), version);
    }
    if (hd->was_running > 1)
        NOTE_WARN(sc, "container.running", 24,
                  "was_running is %u (libvirt writes 0 or 1; any non-zero value means running)",
                  hd->was_running);
    if (ci->reserved_nonzero)
        NOTE_WARN(sc, "container.reserved", 36, "%u of the 14 reserved header words are not zero",
                  ci->reserved_nonzero);
}

/* The metadata region [92, 92+data_len): domain XML, cookie, padding.
 * What the file holds of it is read (at most MRIMG_DATA_LEN_MAX bytes). */
static int scan_metadata(ctr_scan *sc, mrimg_source *src, mrimg_error *err)
{
    mrimg_container_info *ci = &sc->info;
    uint32_t data_len = ci->data_len, cookie = ci->cookie_offset;
    if (data_len == 0) {
        NOTE_ERR(sc, "container.data_len", 20,
                 "invalid header data length 0 (it must cover the XML region)");
        FAIL(sc, MRIMG_ERR_FORMAT, 20,
             "invalid header data length 0 (expected the size of the XML region)");
        return 0;
    }
    if (data_len > MRIMG_DATA_LEN_MAX) {
        ERROR(sc, "container.data_len", MRIMG_ERR_LIMIT, 20, NULL,
              "libvirt would try to allocate it", "header data length %u exceeds the %u-byte cap",
              data_len, MRIMG_DATA_LEN_MAX);
        return 0;
    }
    uint64_t end = MRIMG_HEADER_SIZE + (uint64_t)data_len;
    bool whole = end <= src->size;
    if (!whole) {
        NOTE_ERR(sc, "container.data_len", src->size,
                 "the file ends inside the metadata region: data_len %u needs %llu bytes, the "
                 "file has %llu (truncated, or data_len is wrong)",
                 data_len, (unsigned long long)end, (unsigned long long)src->size);
        FAIL(sc, MRIMG_ERR_TRUNCATED, src->size,
             "file ends inside the XML region (data_len %u needs %llu bytes, file has %llu)",
             data_len, (unsigned long long)end, (unsigned long long)src->size);
    }
    size_t mlen = (size_t)(MRIMG_MIN(end, src->size) - MRIMG_HEADER_SIZE);
    char *m = xmalloc(mlen + 1, err);
    if (!m)
        return MRIMG_ERR_NOMEM;
    sc->meta = m;
    int rc = src_pread(src, m, mlen, MRIMG_HEADER_SIZE, "XML region", err);
    if (rc < 0)
        return rc;
    m[mlen] = '\0';

    bool cookie_ok = true;
    if (cookie > data_len) {
        ERROR(sc, "container.cookie", MRIMG_ERR_FORMAT, 32, NULL,
              "libvirt 11.3 would compute a negative cookie length",
              "cookie offset %u exceeds the data length %u", cookie, data_len);
        cookie_ok = false;
    }
    uint64_t pad_first = 0; /* the first non-zero padding byte, from byte 92 */
    size_t xml_part = MRIMG_MIN((cookie && cookie_ok) ? cookie : data_len, mlen);
    const char *nul = memchr(m, 0, xml_part);
    if (!nul) {
        if (whole)
            ERROR(sc, "container.xml", MRIMG_ERR_FORMAT, MRIMG_HEADER_SIZE, "the ", NULL,
                  "domain XML is not NUL-terminated within its %zu bytes", xml_part);
    } else {
        ci->xml = m;
        ci->xml_len = (size_t)(nul - m);
        if (cookie_ok)
            ci->padding_nonzero =
                count_nonzero(m, nul + 1, xml_part - ci->xml_len - 1, &pad_first);
        check_xml(sc, "container.xml", m, ci->xml_len, MRIMG_HEADER_SIZE, "domain", true);
        if (cookie && cookie_ok && cookie != ci->xml_len + 1)
            NOTE_WARN(sc, "container.cookie", 32,
                      "cookie offset %u does not directly follow the XML (%zu bytes with its NUL)",
                      cookie, ci->xml_len + 1);
    }
    /* a cookie at data_len has no room for its NUL */
    if (cookie && cookie_ok && cookie <= mlen) {
        size_t cpart = mlen - cookie;
        const char *c = m + cookie;
        const char *cnul = memchr(c, 0, cpart);
        if (!cnul) {
            if (whole)
                ERROR(sc, "container.cookie", MRIMG_ERR_FORMAT,
                      MRIMG_HEADER_SIZE + (uint64_t)cookie, "the ", NULL,
                      "save cookie is not NUL-terminated within its %zu bytes", cpart);
        } else {
            ci->cookie = c;
            ci->cookie_len = (size_t)(cnul - c);
            uint64_t first = 0;
            uint64_t nz = count_nonzero(m, cnul + 1, cpart - ci->cookie_len - 1, &first);
            if (nz && !ci->padding_nonzero)
                pad_first = first;
            ci->padding_nonzero += nz;
            check_xml(sc, "container.cookie", c, ci->cookie_len,
                      MRIMG_HEADER_SIZE + (uint64_t)cookie, "cookie", false);
        }
    }
    if (ci->padding_nonzero)
        NOTE_WARN(sc, "container.padding", MRIMG_HEADER_SIZE + pad_first,
                  "%llu non-zero bytes in the padding of the metadata region (ignored by libvirt)",
                  (unsigned long long)ci->padding_nonzero);
    if (whole) {
        ci->payload_offset = end;
        sc->payload_known = true;
    }
    return 0;
}

int ctr_scan_file(mrimg_source *src, uint64_t bare_offset, ctr_scan *sc, mrimg_error *err)
{
    memset(&sc->info, 0, sizeof(sc->info));
    sc->meta = NULL;
    sc->format = -1;
    sc->payload_known = false;
    ctr_report_init(&sc->rep);
    mrimg_container_info *ci = &sc->info;
    ci->file_size = src_size_known(src) ? src->size : 0; /* a pipe: unknown before its end */
    ci->file_allocated = src->allocated;
    ci->xml = "";
    ci->payload_format = -1;

    uint8_t h[MRIMG_HEADER_SIZE];
    /* up to 92 bytes: a pipe's size is not known before its end */
    ssize_t got = src_pread_some(src, h, sizeof(h), 0, err);
    if (got < 0)
        return (int)got;
    size_t have = (size_t)got;
    ctr_header hd;
    ctr_decode(h, have, &hd);
    if (hd.magic == CTR_MAGIC_NONE) {
        /* not a libvirt image: a bare stream, probed by lib/image.c */
        ci->is_libvirt = 0;
        ci->complete = 1;
        ci->payload_format = MRIMG_FORMAT_RAW;
        if (bare_offset > src->size)
            return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                           "stream offset %llu is beyond the end of the file (%llu bytes)",
                           (unsigned long long)bare_offset, (unsigned long long)src->size);
        ci->payload_offset = bare_offset;
        sc->payload_known = true;
        return 0;
    }

    ci->is_libvirt = 1;
    ci->complete = hd.magic == CTR_MAGIC_FINAL && hd.complete_header;
    if (hd.magic == CTR_MAGIC_PARTIAL) {
        /* opening goes on: a partial save is shown, not converted */
        NOTE_ERR(sc, "container.incomplete", 0,
                 "the magic is \"%s\": an incomplete save, which never finished (libvirt "
                 "refuses to restore it; `virsh start` deletes such a managed save)",
                 LIBVIRT_MAGIC_PARTIAL);
    } else if (hd.magic == CTR_MAGIC_DAMAGED) {
        char hex[64];
        hex_bytes(hex, h, MRIMG_MIN(have, (size_t)16), 16);
        NOTE_ERR(sc, "container.magic", 0,
                 "the image magic is incorrect: expected \"%s\", found %s", LIBVIRT_MAGIC_FINAL,
                 hex);
        FAIL(sc, MRIMG_ERR_FORMAT, 0,
             "image magic is incorrect: expected \"%s\" or \"%s\", found %s",
             LIBVIRT_MAGIC_FINAL, LIBVIRT_MAGIC_PARTIAL, hex);
    }
    if (!hd.complete_header) {
        ERROR(sc, "container.truncated", MRIMG_ERR_TRUNCATED, have, "the ", NULL,
              "file ends inside the 92-byte libvirt header (%zu bytes present)", have);
        return 0;
    }
    scan_fields(sc, &hd);
    return scan_metadata(sc, src, err);
}

void ctr_scan_free(ctr_scan *sc)
{
    free(sc->meta);
    sc->meta = NULL;
}

int ctr_data_len(const ctr_out *o, uint32_t *data_len, mrimg_error *err)
{
    uint64_t need = strlen(o->xml) + 1 + (o->cookie ? strlen(o->cookie) + 1 : 0);
    uint64_t dl = need + LIBVIRT_PADDING;
    if (o->min_data_len) {
        /* keep the input's region when everything still fits in it */
        dl = need <= o->min_data_len ? o->min_data_len : need + LIBVIRT_PADDING;
    }
    if (dl > MRIMG_DATA_LEN_MAX)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_NONE, 0,
                       "XML and cookie (%llu bytes) exceed the %u-byte cap",
                       (unsigned long long)need, MRIMG_DATA_LEN_MAX);
    *data_len = (uint32_t)dl;
    return 0;
}

int ctr_write(mrimg_sink *s, const ctr_out *o, uint64_t *payload_offset, mrimg_error *err)
{
    uint32_t data_len = 0;
    int rc = ctr_data_len(o, &data_len, err);
    if (rc < 0)
        return rc;
    size_t xl = strlen(o->xml) + 1;
    uint8_t h[MRIMG_HEADER_SIZE] = {0};
    /* A file gets the partial magic until it is complete (sink_commit
     * writes the final one).  A stream sink cannot go back, so it gets the
     * final magic now: a reader of a cut stream still finds it incomplete,
     * since the payload's own end (compressed: the codec's end marker and
     * checksums; raw: the QEMU stream's EOF and VMDESCRIPTION) is missing,
     * and restoring it fails (docs/design.md, "Endpoints"). */
    memcpy(h, sink_seekable(s) ? LIBVIRT_MAGIC_PARTIAL : LIBVIRT_MAGIC_FINAL, LIBVIRT_MAGIC_LEN);
    uint32_t f[5] = {2, data_len, o->was_running, o->format, o->cookie ? (uint32_t)xl : 0};
    memcpy(h + 16, f, sizeof(f)); /* native byte order, as libvirt writes */
    rc = sink_write(s, h, sizeof(h), err);
    if (rc == 0)
        rc = sink_write(s, o->xml, xl, err);
    size_t used = xl;
    if (rc == 0 && o->cookie) {
        size_t cl = strlen(o->cookie) + 1;
        rc = sink_write(s, o->cookie, cl, err);
        used += cl;
    }
    static const uint8_t zeros[4096];
    size_t pad = data_len - used;
    if (rc == 0 && o->format == MRIMG_FORMAT_SPARSE) {
        /* a sparse image is a sparse file: the zero padding stays a hole
         * (the payload written after it gives the file its size) */
        rc = sink_seek(s, sink_tell(s) + pad, err);
        pad = 0;
    }
    while (rc == 0 && pad) {
        size_t n = MRIMG_MIN(pad, sizeof(zeros));
        rc = sink_write(s, zeros, n, err);
        pad -= n;
    }
    if (rc == 0)
        *payload_offset = MRIMG_HEADER_SIZE + (uint64_t)data_len;
    return rc;
}
