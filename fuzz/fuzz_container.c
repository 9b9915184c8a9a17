/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_container: the libvirt save-image container and the bare-stream
 * probe.
 *
 * The input is a whole file.  ctr_scan_file() walks header, XML, cookie and
 * padding, recording every finding and the first one opening stops at;
 * mrimg_open() adds the payload probe (libvirt format field, or the magic of
 * a bare stream, compressed or not, and on failure the search for a QEMU
 * magic further in).  Oracles: every finding is a container check with a
 * message and an offset inside the file, and mrimg_open() fails exactly
 * with the scan's first error; when nothing stops opening, the strings lie
 * inside the metadata copy and are NUL-terminated where the info says, the
 * payload starts inside the file, and the container written back by
 * ctr_write() from what was read scans to the same XML, cookie, format and
 * running state. */
#include "fuzz_common.h"

#include "container/libvirt.h"

static fz_file in_file;

static void check_info(const mrimg_container_info *ci, const char *meta, uint64_t size)
{
    FZ_CHECK(ci->file_size == size, "file size %llu", (unsigned long long)ci->file_size);
    FZ_CHECK(ci->payload_offset <= size, "payload at %llu beyond %llu",
             (unsigned long long)ci->payload_offset, (unsigned long long)size);
    FZ_CHECK(ci->xml && strlen(ci->xml) == ci->xml_len, "xml_len");
    if (!ci->is_libvirt) {
        FZ_CHECK(ci->cookie == NULL && ci->xml_len == 0, "bare stream with metadata");
        return;
    }
    /* libvirt reads any version <= 2 (0 and 1 as the old raw format) */
    FZ_CHECK(ci->version <= 2, "version %u", ci->version);
    FZ_CHECK(ci->format < MRIMG_FORMAT_COUNT, "format %u", ci->format);
    FZ_CHECK(ci->data_len > 0 && ci->data_len <= MRIMG_DATA_LEN_MAX, "data_len %u",
             ci->data_len);
    FZ_CHECK(ci->payload_offset == MRIMG_HEADER_SIZE + (uint64_t)ci->data_len, "payload offset");
    FZ_CHECK(meta && ci->xml == meta, "xml outside the metadata copy");
    FZ_CHECK(ci->xml_len < ci->data_len, "xml_len %zu, data_len %u", ci->xml_len, ci->data_len);
    if (ci->cookie) {
        FZ_CHECK(ci->cookie_offset > 0 && ci->cookie == meta + ci->cookie_offset,
                 "cookie pointer");
        FZ_CHECK(ci->cookie_offset + ci->cookie_len < ci->data_len &&
                     strlen(ci->cookie) == ci->cookie_len,
                 "cookie_len");
    } else {
        FZ_CHECK(ci->cookie_offset == 0, "cookie offset without a cookie");
    }
}

/* Write the container back and parse it again. */
static void rewrite(const mrimg_container_info *ci)
{
    mrimg_error err;
    mrimg_sink sink;
    int rc = sink_create(&sink, fz_out_path("container"), SINK_FORCE, &err);
    FZ_CHECK(rc == 0, "sink_create: %s", err.message);
    ctr_out o = {
        .format = ci->format,
        .was_running = ci->was_running,
        .xml = ci->xml,
        .cookie = ci->cookie,
        .min_data_len = ci->data_len,
    };
    uint64_t payload_offset;
    rc = ctr_write(&sink, &o, &payload_offset, &err);
    FZ_CHECK(rc == 0, "ctr_write: %s", err.message);
    rc = sink_write(&sink, "QEVM", 4, &err);
    if (rc == 0)
        rc = sink_flush(&sink, &err);
    FZ_CHECK(rc == 0, "writing: %s", err.message);

    mrimg_source src;
    rc = src_open(&src, sink.tmp, &err);
    FZ_CHECK(rc == 0, "reopen: %s", err.message);
    ctr_scan sc;
    rc = ctr_scan_file(&src, 0, &sc, &err);
    if (rc == 0)
        rc = ctr_report_error(&sc.rep, &err);
    FZ_CHECK(rc == 0, "our own container does not parse: %s", err.message);
    /* only what was copied from the input can be wrong in it */
    for (unsigned i = 0; i < sc.rep.n; i++) {
        const char *k = sc.rep.f[i].check;
        FZ_CHECK(!strcmp(k, "container.incomplete") || !strcmp(k, "container.xml") ||
                     !strcmp(k, "container.cookie") || !strcmp(k, "container.running"),
                 "our own container: %s: %s", k, sc.rep.f[i].message);
    }
    const mrimg_container_info c2 = sc.info;
    FZ_CHECK(c2.is_libvirt && !c2.complete && c2.version == 2 && !c2.foreign_endian,
             "header fields");
    FZ_CHECK(c2.format == ci->format && c2.was_running == ci->was_running, "format/running");
    FZ_CHECK(c2.payload_offset == payload_offset, "payload offset");
    FZ_CHECK(c2.data_len >= ci->data_len, "data_len shrank");
    FZ_CHECK(c2.xml_len == ci->xml_len && memcmp(c2.xml, ci->xml, ci->xml_len) == 0,
             "xml changed");
    FZ_CHECK(!c2.cookie == !ci->cookie, "cookie appeared or vanished");
    if (ci->cookie)
        FZ_CHECK(c2.cookie_len == ci->cookie_len &&
                     memcmp(c2.cookie, ci->cookie, ci->cookie_len) == 0,
                 "cookie changed");
    FZ_CHECK(c2.padding_nonzero == 0 && c2.reserved_nonzero == 0, "dirty padding");
    ctr_scan_free(&sc);
    src_close(&src);
    sink_abort(&sink);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file_put(&in_file, data, size);
    mrimg_error err;

    /* the container layer alone */
    mrimg_source src;
    int rc = src_open(&src, path, &err);
    FZ_CHECK(rc == 0, "src_open: %s", err.message);
    ctr_scan sc;
    rc = ctr_scan_file(&src, 0, &sc, &err);
    mrimg_error first = sc.rep.first;
    bool libvirt = sc.info.is_libvirt;
    FZ_CHECK(sc.rep.n <= CTR_MAX_FINDINGS, "%u findings", sc.rep.n);
    for (unsigned i = 0; i < sc.rep.n; i++) {
        const ctr_finding *f = &sc.rep.f[i];
        FZ_CHECK(!strncmp(f->check, "container.", 10) && f->message[0] &&
                     (f->severity == MRIMG_SEV_ERROR || f->severity == MRIMG_SEV_WARNING),
                 "finding %u: %s", i, f->check);
        FZ_CHECK(f->offset <= size, "%s at %llu beyond %zu", f->check,
                 (unsigned long long)f->offset, size);
    }
    if (rc == 0 && first.code == MRIMG_OK) {
        check_info(&sc.info, sc.meta, size);
        if (sc.info.is_libvirt)
            rewrite(&sc.info);
    } else if (rc == 0) {
        FZ_CHECK(first.code < 0 && first.message[0] && sc.rep.n > 0,
                 "a first error without a finding");
    } else {
        FZ_CHECK(rc == err.code && err.message[0], "error %d without a message", rc);
    }
    ctr_scan_free(&sc);
    src_close(&src);

    /* the public open: codec choice, bare stream probe */
    mrimg_image *img = fz_open(path, 1, &err);
    bool opened = img != NULL;
    if (img) {
        const mrimg_container_info *c = mrimg_container(img);
        check_info(c, c->is_libvirt ? c->xml : NULL, size);
        FZ_CHECK(mrimg_format_name(c->payload_format) != NULL, "payload format %d",
                 c->payload_format);
        mrimg_close(img);
    } else {
        FZ_CHECK(err.code < 0 && err.message[0], "open failed without a message");
    }
    /* opening stops at the scan's first error, worded the same; a sound
     * libvirt container opens (its payload is probed when it is read) */
    if (rc == 0 && first.code == MRIMG_OK && libvirt)
        FZ_CHECK(opened, "a container without an error does not open: %s", err.message);
    if (rc == 0 && first.code != MRIMG_OK)
        FZ_CHECK(!opened && err.code == first.code && !strcmp(err.message, first.message),
                 "open: %s, the scan's first error: %s", opened ? "opened" : err.message,
                 first.message);
    return 0;
}
