/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_container: the libvirt save-image container and the bare-stream
 * probe.
 *
 * The input is a whole file.  ctr_read() parses header, XML, cookie and
 * padding; mrimg_open() adds the payload codec choice (libvirt format field,
 * or the magic of a bare stream, compressed or not) and, on failure, the
 * search for a QEMU magic further in.  Oracles on success: the strings lie
 * inside the metadata copy and are NUL-terminated where the info says; the
 * payload starts inside the file; and the container written back by
 * ctr_write() from what was read parses to the same XML, cookie, format and
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
    mrimg_container_info c2;
    char *meta2 = NULL;
    rc = ctr_read(&src, 0, &c2, &meta2, &err);
    FZ_CHECK(rc == 0, "our own container does not parse: %s", err.message);
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
    free(meta2);
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
    mrimg_container_info ci;
    char *meta = NULL;
    rc = ctr_read(&src, 0, &ci, &meta, &err);
    if (rc == 0) {
        check_info(&ci, meta, size);
        if (ci.is_libvirt)
            rewrite(&ci);
    } else {
        FZ_CHECK(rc == err.code && err.message[0], "error %d without a message", rc);
        FZ_CHECK(meta == NULL, "metadata left after an error");
    }
    free(meta);
    src_close(&src);

    /* the public open: codec choice, bare stream probe */
    mrimg_image *img = fz_open(path, 1, &err);
    if (img) {
        const mrimg_container_info *c = mrimg_container(img);
        check_info(c, c->is_libvirt ? c->xml : NULL, size);
        FZ_CHECK(mrimg_format_name(c->payload_format) != NULL, "payload format %d",
                 c->payload_format);
        mrimg_close(img);
    } else {
        FZ_CHECK(err.code < 0 && err.message[0], "open failed without a message");
    }
    return 0;
}
