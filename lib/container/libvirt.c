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
 * inside data_len, both strings must be NUL-terminated in their parts. */
#include "libvirt.h"

#include <stdlib.h>

static uint32_t host_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t count_nonzero(const char *p, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += p[i] != 0;
    return c;
}

void ctr_decode(const uint8_t *h, size_t have, ctr_header *o)
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

int ctr_read(mrimg_source *src, uint64_t bare_offset, mrimg_container_info *info, char **meta,
             mrimg_error *err)
{
    memset(info, 0, sizeof(*info));
    *meta = NULL;
    info->file_size = src->size;
    info->file_allocated = src->allocated;
    info->xml = "";

    uint8_t h[MRIMG_HEADER_SIZE];
    /* up to 92 bytes: a pipe's size is not known before its end */
    ssize_t got = src_pread_some(src, h, sizeof(h), 0, err);
    if (got < 0)
        return (int)got;
    size_t have = (size_t)got;
    int rc;
    ctr_header hd;
    ctr_decode(h, have, &hd);
    if (hd.magic == CTR_MAGIC_DAMAGED) {
        char hex[64];
        hex_bytes(hex, h, MRIMG_MIN(have, (size_t)16), 16);
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, 0,
                       "image magic is incorrect: expected \"%s\" or \"%s\", found %s",
                       LIBVIRT_MAGIC_FINAL, LIBVIRT_MAGIC_PARTIAL, hex);
    }
    if (hd.magic == CTR_MAGIC_NONE) {
        /* not a libvirt image: a bare stream, checked by the stream layer */
        info->is_libvirt = 0;
        info->complete = 1;
        info->payload_offset = bare_offset;
        info->payload_format = MRIMG_FORMAT_RAW;
        if (bare_offset > src->size)
            return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                           "stream offset %llu is beyond the end of the file (%llu bytes)",
                           (unsigned long long)bare_offset, (unsigned long long)src->size);
        return 0;
    }
    info->is_libvirt = 1;
    info->complete = hd.magic == CTR_MAGIC_FINAL;
    if (!hd.complete_header)
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, have,
                       "file ends inside the 92-byte libvirt header (%zu bytes present)", have);

    uint32_t version = hd.version, data_len = hd.data_len, format = hd.format,
             cookie = hd.cookie_offset;
    info->foreign_endian = hd.foreign_endian;
    info->version = version;
    info->data_len = data_len;
    info->was_running = hd.was_running;
    info->format = format;
    info->cookie_offset = cookie;
    info->reserved_nonzero = hd.reserved_nonzero;

    if (version > 2)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, 16,
                       "image version %u is not supported (expected 1 or 2 in either byte order)",
                       version);
    if (format >= MRIMG_FORMAT_COUNT)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_FILE, 28,
                       "unsupported save image format %u (expected 0..6: raw, gzip, bzip2, xz, "
                       "lzop, zstd, sparse)",
                       format);
    /* version 1 predates compression: libvirt treats the payload as raw,
     * except that format 6 still takes the sparse path */
    info->payload_format = (version < 2 && format != MRIMG_FORMAT_SPARSE) ? MRIMG_FORMAT_RAW
                                                                          : (int)format;
    if (data_len == 0)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, 20,
                       "invalid header data length 0 (expected the size of the XML region)");
    if (data_len > MRIMG_DATA_LEN_MAX)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_FILE, 20,
                       "header data length %u exceeds the %u-byte cap", data_len,
                       MRIMG_DATA_LEN_MAX);
    info->payload_offset = MRIMG_HEADER_SIZE + (uint64_t)data_len;
    if (info->payload_offset > src->size)
        return err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, src->size,
                       "file ends inside the XML region (data_len %u needs %llu bytes, file has "
                       "%llu)",
                       data_len, (unsigned long long)info->payload_offset,
                       (unsigned long long)src->size);
    if (cookie > data_len)
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, 32,
                       "cookie offset %u exceeds the data length %u", cookie, data_len);

    char *m = xmalloc((size_t)data_len + 1, err);
    if (!m)
        return MRIMG_ERR_NOMEM;
    rc = src_pread(src, m, data_len, MRIMG_HEADER_SIZE, "XML region", err);
    if (rc < 0) {
        free(m);
        return rc;
    }
    m[data_len] = '\0';
    size_t xml_part = cookie ? cookie : data_len;
    const char *nul = memchr(m, 0, xml_part);
    if (!nul) {
        free(m);
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, MRIMG_HEADER_SIZE,
                       "domain XML is not NUL-terminated within its %zu bytes", xml_part);
    }
    info->xml = m;
    info->xml_len = (size_t)(nul - m);
    info->padding_nonzero = count_nonzero(nul + 1, xml_part - info->xml_len - 1);
    if (cookie) {
        size_t cpart = data_len - cookie;
        const char *c = m + cookie;
        const char *cnul = memchr(c, 0, cpart);
        if (!cnul) {
            free(m);
            info->xml = "";
            return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_FILE, MRIMG_HEADER_SIZE + cookie,
                           "save cookie is not NUL-terminated within its %zu bytes", cpart);
        }
        info->cookie = c;
        info->cookie_len = (size_t)(cnul - c);
        info->padding_nonzero += count_nonzero(cnul + 1, cpart - info->cookie_len - 1);
    }
    *meta = m;
    return 0;
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
