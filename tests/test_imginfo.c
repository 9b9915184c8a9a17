/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/info: the secret stripper on crafted and mutated XML, the annotated
 * file map, the stream map, content statistics, and what a failed scan
 * keeps. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- mrimg_xml_strip_secrets ------------------------------------------ */

static void strip_ok(const char *in, const char *want, unsigned want_removed)
{
    mrimg_error e;
    unsigned removed = 99;
    char *out = mrimg_xml_strip_secrets(in, strlen(in), &removed, &e);
    if (!out)
        fail_msg("unexpected error: %s\ninput: %s", e.message, in);
    if (strcmp(out, want) != 0)
        fail_msg("got:\n%s\nwant:\n%s", out, want);
    assert_int_equal(removed, want_removed);
    free(out);
}

static void strip_bad(const char *in, size_t len)
{
    mrimg_error e;
    unsigned removed = 99;
    char *out = mrimg_xml_strip_secrets(in, len, &removed, &e);
    if (out)
        fail_msg("accepted malformed XML: %.*s", (int)len, in);
    assert_int_equal(e.code, MRIMG_ERR_FORMAT);
    assert_int_equal(removed, 0);
    assert_non_null(strstr(e.message, "malformed domain XML at byte"));
}

static void test_strip_graphics(void **state)
{
    (void)state;
    /* VNC, as libvirt stores it */
    strip_ok("<domain>\n  <devices>\n    <graphics type='vnc' port='-1' autoport='yes' "
             "listen='127.0.0.1' passwd='s3cr3t!!'>\n      <listen type='address' "
             "address='127.0.0.1'/>\n    </graphics>\n  </devices>\n</domain>\n",
             "<domain>\n  <devices>\n    <graphics type='vnc' port='-1' autoport='yes' "
             "listen='127.0.0.1'>\n      <listen type='address' "
             "address='127.0.0.1'/>\n    </graphics>\n  </devices>\n</domain>\n",
             1);
    /* SPICE: passwd goes, passwdValidTo and connected stay; double quotes,
     * entities and '>' in values */
    strip_ok("<domain><graphics type=\"spice\" passwd=\"a&apos;b>c\" "
             "passwdValidTo='2010-04-09T15:51:00' connected='keep'><image "
             "compression='auto_glz'/></graphics></domain>",
             "<domain><graphics type=\"spice\" passwdValidTo='2010-04-09T15:51:00' "
             "connected='keep'><image compression='auto_glz'/></graphics></domain>",
             1);
    /* RDP: username stays; two graphics devices */
    strip_ok("<domain><graphics type='rdp' username='u' passwd='p'/>"
             "<graphics type='vnc' passwd = \"q\"/></domain>",
             "<domain><graphics type='rdp' username='u'/><graphics type='vnc'/></domain>", 2);
    /* the attribute on its own line, with its line break */
    strip_ok("<domain>\n<graphics type='vnc'\n          passwd='x'\n          port='5900'/>\n"
             "</domain>",
             "<domain>\n<graphics type='vnc'\n          port='5900'/>\n</domain>", 1);
    /* passwd elsewhere is not a libvirt secret; prefixed names differ */
    strip_ok("<domain><disk passwd='keep'/><qemu:graphics passwd='keep'/>"
             "<graphics type='vnc' x:passwd='keep' mypasswd='keep'/></domain>",
             "<domain><disk passwd='keep'/><qemu:graphics passwd='keep'/>"
             "<graphics type='vnc' x:passwd='keep' mypasswd='keep'/></domain>",
             0);
    /* tags inside comments, CDATA and processing instructions are text */
    strip_ok("<?xml version='1.0'?>\n<!DOCTYPE domain [ <!ENTITY x \"y>\"> ]>\n"
             "<!-- <graphics passwd='c'/> -->\n<domain><description><![CDATA[<graphics "
             "passwd='d'/>]]></description><?pi <graphics passwd='e'/> ?></domain>\n",
             "<?xml version='1.0'?>\n<!DOCTYPE domain [ <!ENTITY x \"y>\"> ]>\n"
             "<!-- <graphics passwd='c'/> -->\n<domain><description><![CDATA[<graphics "
             "passwd='d'/>]]></description><?pi <graphics passwd='e'/> ?></domain>\n",
             0);
}

static void test_strip_cookies(void **state)
{
    (void)state;
    strip_ok("<domain>\n"
             "  <disk type='network' device='cdrom'>\n"
             "    <source protocol='https' name='/img.iso'>\n"
             "      <host name='h.example' port='443'/>\n"
             "      <cookies>\n"
             "        <cookie name='session'>secret-value</cookie>\n"
             "        <cookie name='other'>v2</cookie>\n"
             "      </cookies>\n"
             "      <readahead size='65536'/>\n"
             "    </source>\n"
             "    <backingStore type='network'>\n"
             "      <source protocol='http' name='b'><cookies><cookie name='c'>v</cookie>"
             "</cookies></source>\n"
             "    </backingStore>\n"
             "  </disk>\n"
             "  <cookies><cookie name='not-a-disk'>kept</cookie></cookies>\n"
             "</domain>\n",
             "<domain>\n"
             "  <disk type='network' device='cdrom'>\n"
             "    <source protocol='https' name='/img.iso'>\n"
             "      <host name='h.example' port='443'/>\n"
             "      <readahead size='65536'/>\n"
             "    </source>\n"
             "    <backingStore type='network'>\n"
             "      <source protocol='http' name='b'></source>\n"
             "    </backingStore>\n"
             "  </disk>\n"
             "  <cookies><cookie name='not-a-disk'>kept</cookie></cookies>\n"
             "</domain>\n",
             2);
    /* an empty <cookies/> goes too; a graphics passwd inside is not counted twice */
    strip_ok("<domain><source>\n  <cookies/>\n</source></domain>",
             "<domain><source>\n</source></domain>", 1);
}

static void test_strip_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "   ",
        "text",
        "<domain>",
        "<domain></dom>",
        "<domain><a></b></domain>",
        "</domain>",
        "<domain/><domain/>",
        "<domain/>trailing",
        "<domain a='1></domain>",
        "<domain a=1/>",
        "<domain a/>",
        "<domain a='1'b='2'/>",
        "<domain a='<'/>",
        "<domain><!-- unterminated </domain>",
        "<domain><![CDATA[ x </domain>",
        "<domain><?pi </domain>",
        "<domain><!ELEMENT x></domain>",
        "<domain / >",
        "< domain/>",
        "<domain><graphics passwd='x'</domain>",
        "<1domain/>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        strip_bad(bad[i], strlen(bad[i]));
    /* a NUL inside the given length */
    strip_bad("<domain/>\0<x/>", 14);
    /* nesting: 256 levels are fine, 257 are not */
    char *deep = malloc(300 * 8 + 16);
    assert_non_null(deep);
    for (int levels = 256; levels <= 257; levels++) {
        size_t n = 0;
        for (int i = 0; i < levels; i++)
            n += (size_t)sprintf(deep + n, "<a>");
        for (int i = 0; i < levels; i++)
            n += (size_t)sprintf(deep + n, "</a>");
        mrimg_error e;
        char *out = mrimg_xml_strip_secrets(deep, n, NULL, &e);
        if (levels == 256) {
            assert_non_null(out);
            assert_string_equal(out, deep);
        } else {
            assert_null(out);
            assert_int_equal(e.code, MRIMG_ERR_FORMAT);
        }
        free(out);
    }
    free(deep);
    /* over the cap */
    mrimg_error e;
    assert_null(mrimg_xml_strip_secrets("<a/>", (size_t)MRIMG_DATA_LEN_MAX + 1, NULL, &e));
    assert_int_equal(e.code, MRIMG_ERR_LIMIT);
    assert_null(mrimg_xml_strip_secrets(NULL, 0, NULL, &e));
    assert_int_equal(e.code, MRIMG_ERR_INVAL);
}

/* Every prefix and thousands of mutations of the real domain XML: never a
 * crash (the sanitizer build checks every access), a result never longer
 * than the input, and a whole document always accepted. */
static void test_strip_mutations(void **state)
{
    (void)state;
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path("libvirt/raw.sav"), NULL, &e);
    assert_non_null(img);
    const mrimg_container_info *ci = mrimg_container(img);
    size_t n = ci->xml_len;
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    unsigned removed;
    char *out = mrimg_xml_strip_secrets(ci->xml, n, &removed, &e);
    assert_non_null(out);
    assert_int_equal(removed, 1);
    assert_null(strstr(out, "passwd"));
    assert_int_equal(strlen(out), n - strlen(" passwd='s3cr3t!!'"));
    free(out);
    for (size_t k = 0; k < n; k++) { /* prefixes: only the whole one is complete */
        out = mrimg_xml_strip_secrets(ci->xml, k, NULL, &e);
        if (out) {
            assert_true(strlen(out) <= k);
            free(out);
        } else {
            assert_int_equal(e.code, MRIMG_ERR_FORMAT);
        }
    }
    unsigned seed = 12345;
    for (int round = 0; round < 20000; round++) {
        memcpy(buf, ci->xml, n);
        int edits = 1 + round % 4;
        for (int j = 0; j < edits; j++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % n;
            static const char pool[] = "<>/='\"!?-[] \nax";
            seed = seed * 1103515245u + 12345u;
            buf[at] = pool[(seed >> 8) % (sizeof(pool) - 1)];
        }
        out = mrimg_xml_strip_secrets(buf, n, &removed, &e);
        if (out) {
            assert_true(strlen(out) <= n);
            free(out);
        } else {
            assert_true(e.code == MRIMG_ERR_FORMAT);
        }
    }
    free(buf);
    mrimg_close(img);
}

/* ---- the file map -------------------------------------------------------- */

typedef struct runs {
    mrimg_extent v[4096];
    char names[4096][MRIMG_NAME_MAX + 1];
    size_t n;
    size_t stop_after;
} runs;

static int collect(void *opaque, const mrimg_extent *e)
{
    runs *r = opaque;
    if (r->stop_after && r->n >= r->stop_after)
        return 1;
    if (r->n < 4096) {
        r->v[r->n] = *e;
        if (e->block_name) {
            snprintf(r->names[r->n], sizeof(r->names[0]), "%s", e->block_name);
            r->v[r->n].block_name = r->names[r->n];
        }
    }
    r->n++;
    return 0;
}

static void check_cover(const runs *r, uint64_t size)
{
    uint64_t pos = 0;
    assert_true(r->n < 4096);
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(r->v[i].offset, pos);
        assert_true(r->v[i].length > 0);
        assert_non_null(mrimg_region_name(r->v[i].region));
        pos += r->v[i].length;
    }
    assert_int_equal(pos, size);
}

static void test_extents_mapped(void **state)
{
    (void)state;
    static runs r;
    memset(&r, 0, sizeof(r));
    mrimg_error e;
    t_open_opts o = {.stream_offset = 0x12345};
    mrimg_image *img = t_open(fixture_path("qemu/mapped-offset.mig"), &o, &e);
    assert_non_null(img);
    mrimg_extent_totals t = {.size = sizeof(t)};
    /* without an explicit scan: mrimg_extents scans */
    assert_int_equal(mrimg_extents(img, collect, &r, &t, NULL, NULL, &e), 0);
    const mrimg_container_info *ci = mrimg_container(img);
    check_cover(&r, ci->file_size);
    assert_int_equal(t.runs, r.n);
    assert_int_equal(t.data_bytes + t.hole_bytes, ci->file_size);
    assert_int_equal(r.v[0].region, MRIMG_REGION_PREFIX);
    assert_int_equal(r.v[0].offset + r.v[0].length >= 0x12345, 1);
    unsigned nb = mrimg_block_count(img);
    assert_int_equal(nb, 6);
    for (unsigned b = 0; b < nb; b++) {
        const mrimg_ram_block_info *bi = mrimg_block(img, b);
        uint64_t bitmap = 0, pages = 0;
        for (size_t i = 0; i < r.n; i++) {
            const mrimg_extent *x = &r.v[i];
            if (x->block != (int)b)
                continue;
            assert_string_equal(x->block_name, bi->name);
            if (x->region == MRIMG_REGION_BITMAP) {
                if (!bitmap)
                    assert_int_equal(x->offset, bi->bitmap_offset);
                bitmap += x->length;
            } else if (x->region == MRIMG_REGION_PAGES) {
                if (!pages)
                    assert_int_equal(x->offset, bi->pages_offset);
                assert_int_equal(x->first_page, (x->offset - bi->pages_offset) / 4096);
                assert_int_equal(x->last_page,
                                 (x->offset + x->length - 1 - bi->pages_offset) / 4096);
                assert_true(x->last_page < bi->pages);
                pages += x->length;
            } else {
                assert_int_equal(x->region, MRIMG_REGION_ALIGN);
            }
        }
        assert_int_equal(bitmap, bi->bitmap_size);
        assert_int_equal(pages, bi->used_length);
    }
    /* the stream's sequential parts, in order */
    int seen_head = 0, seen_tail = 0, seen_eof = 0, seen_vmdesc = 0;
    for (size_t i = 0; i < r.n; i++) {
        int k = r.v[i].region;
        seen_head |= k == MRIMG_REGION_STREAM_HEAD && r.v[i].offset == 0x12345;
        seen_tail |= k == MRIMG_REGION_TAIL;
        seen_eof |= k == MRIMG_REGION_EOF && r.v[i].length == 1;
        seen_vmdesc |= k == MRIMG_REGION_VMDESC;
        assert_true(k != MRIMG_REGION_UNKNOWN);
    }
    assert_true(seen_head && seen_tail && seen_eof && seen_vmdesc);
    assert_int_equal(r.v[r.n - 1].region, MRIMG_REGION_VMDESC);

    /* the callback can stop the walk */
    memset(&r, 0, sizeof(r));
    r.stop_after = 3;
    assert_int_equal(mrimg_extents(img, collect, &r, NULL, NULL, NULL, &e),
                     MRIMG_ERR_INTERRUPTED);
    assert_int_equal(r.n, 3);
    assert_int_equal(mrimg_extents(img, NULL, NULL, NULL, NULL, NULL, &e), MRIMG_ERR_INVAL);
    mrimg_close(img);
}

static void test_extents_libvirt(void **state)
{
    (void)state;
    static runs r;
    static const char *const files[] = {"libvirt/raw.sav", "libvirt/gzip.sav",
                                        "libvirt/sparse-p4.sav"};
    for (size_t f = 0; f < 3; f++) {
        memset(&r, 0, sizeof(r));
        mrimg_error e;
        mrimg_image *img = t_open(fixture_path(files[f]), NULL, &e);
        assert_non_null(img);
        assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
        assert_int_equal(mrimg_extents(img, collect, &r, NULL, NULL, NULL, &e), 0);
        const mrimg_container_info *ci = mrimg_container(img);
        check_cover(&r, ci->file_size);
        /* header, XML, cookie, padding in that order, then the payload */
        assert_int_equal(r.v[0].region, MRIMG_REGION_HEADER);
        assert_int_equal(r.v[0].length, 92);
        assert_int_equal(r.v[1].region, MRIMG_REGION_XML);
        assert_int_equal(r.v[1].length, ci->xml_len + 1);
        assert_int_equal(r.v[2].region, MRIMG_REGION_COOKIE);
        assert_int_equal(r.v[2].offset, 92 + ci->cookie_offset);
        uint64_t pad = 0;
        size_t i = 3;
        for (; i < r.n && r.v[i].region == MRIMG_REGION_PADDING; i++)
            pad += r.v[i].length;
        assert_int_equal(92 + ci->data_len, r.v[i].offset);
        assert_int_equal(r.v[i].offset, ci->payload_offset);
        if (f == 1) {
            assert_int_equal(r.v[i].region, MRIMG_REGION_PAYLOAD);
            assert_int_equal(i + 1, r.n);
        } else {
            assert_int_equal(r.v[i].region, MRIMG_REGION_STREAM_HEAD);
        }
        (void)pad;
        mrimg_close(img);
    }
}

/* ---- the stream map ------------------------------------------------------ */

static void test_stream_map(void **state)
{
    (void)state;
    static runs r;
    static const char *const files[] = {"qemu/plain-live.mig", "libvirt/xz.sav",
                                        "qemu/plain-postcopy.mig"};
    for (size_t f = 0; f < 3; f++) {
        memset(&r, 0, sizeof(r));
        mrimg_error e;
        mrimg_image *img = t_open(fixture_path(files[f]), NULL, &e);
        assert_non_null(img);
        assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
        const mrimg_stream_info *si = mrimg_stream(img);
        assert_int_equal(mrimg_stream_map(img, collect, &r, NULL, NULL, &e), 0);
        check_cover(&r, si->stream_size + si->trailing_bytes);
        assert_int_equal(r.v[0].region, MRIMG_REGION_STREAM_HEAD);
        assert_int_equal(r.v[1].region, MRIMG_REGION_CONFIG);
        uint64_t sections = 0, commands = 0;
        for (size_t i = 0; i < r.n; i++) {
            if (r.v[i].region == MRIMG_REGION_RAM) {
                sections++;
                assert_int_equal(r.v[i].section_id, si->ram_section_id);
                assert_true(r.v[i].section_type >= 1 && r.v[i].section_type <= 3);
            }
            if (r.v[i].region == MRIMG_REGION_COMMAND) {
                commands++;
                assert_true(r.v[i].command >= 1 && r.v[i].command <= 11);
            }
            if (r.v[i].region == MRIMG_REGION_TAIL)
                assert_int_equal(r.v[i].offset, si->ram_end);
            if (r.v[i].region == MRIMG_REGION_EOF)
                assert_int_equal(r.v[i].offset, si->eof_offset);
        }
        assert_int_equal(sections, si->ram_sections);
        assert_int_equal(commands, si->commands);
        mrimg_close(img);
    }
}

/* ---- content, and what a failed scan keeps --------------------------------- */

static void test_content(void **state)
{
    (void)state;
    static const char *const files[] = {"qemu/plain-nozerodetect.mig",
                                        "qemu/mapped-nozerodetect.mig", "qemu/plain.mig"};
    for (size_t f = 0; f < 3; f++) {
        mrimg_error e;
        mrimg_image *img = t_open(fixture_path(files[f]), NULL, &e);
        assert_non_null(img);
        assert_int_equal(mrimg_content_scan(img, NULL, NULL, &e), 0);
        uint64_t data = 0, zf = 0;
        for (unsigned b = 0; b < mrimg_block_count(img); b++) {
            data += mrimg_block(img, b)->pages_data;
            zf += mrimg_block(img, b)->pages_zero_filled;
        }
        /* the same guest has 244 non-zero pages (QEMU's `normal` count with
         * zero-page detection on) */
        assert_int_equal(data - zf, 244);
        assert_int_equal(zf, f < 2 ? 16270 : 0);
        /* a second call is free and gives the same */
        assert_int_equal(mrimg_content_scan(img, NULL, NULL, &e), 0);
        mrimg_close(img);
    }
}

static void test_failed_scan_keeps(void **state)
{
    (void)state;
    /* mapped.mig cut inside its device state (just before the EOF record;
     * a cut inside the VMDESCRIPTION after it is only a warning): the block
     * list and the bitmaps are whole, the end of the stream is missing */
    size_t len;
    uint8_t *b = read_file(fixture_path("qemu/mapped.mig"), &len);
    assert_non_null(b);
    {
        mrimg_error e0;
        mrimg_image *i0 = t_open(fixture_path("qemu/mapped.mig"), NULL, &e0);
        assert_non_null(i0);
        assert_int_equal(mrimg_scan(i0, 0, NULL, NULL, &e0), 0);
        const mrimg_stream_info *s0 = mrimg_stream(i0);
        assert_true(s0->has_vmdesc && s0->vmdesc_size > 100);
        len = (size_t)(s0->stream_offset + s0->eof_offset - 1) + 50000;
        mrimg_close(i0);
    }
    char *dir = test_tmpdir("imginfo");
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof(path), "%s/cut.mig", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len - 50000), (ssize_t)(len - 50000));
    close(fd);
    free(b);
    mrimg_error e;
    mrimg_image *img = t_open(path, NULL, &e);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), MRIMG_ERR_TRUNCATED);
    assert_int_equal(mrimg_block_count(img), 6);
    uint64_t data = 0;
    for (unsigned i = 0; i < mrimg_block_count(img); i++)
        data += mrimg_block(img, i)->pages_data;
    assert_int_equal(data, 244);
    const mrimg_stream_info *si = mrimg_stream(img);
    assert_int_equal(si->has_eof, 0);
    assert_true(si->ram_end > 0);
    /* the map still covers the file; the tail is there, its end unknown */
    static runs r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(mrimg_extents(img, collect, &r, NULL, NULL, NULL, &e), 0);
    check_cover(&r, len - 50000);
    size_t bitmaps = 0;
    for (size_t i = 0; i < r.n; i++)
        bitmaps += r.v[i].region == MRIMG_REGION_BITMAP;
    assert_true(bitmaps >= 6);
    mrimg_close(img);

    /* cut in the middle of the RAM section of a plain stream: the stream
     * map delivers what it parsed, then the error */
    b = read_file(fixture_path("qemu/plain.mig"), &len);
    assert_non_null(b);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, 600000), 600000);
    close(fd);
    free(b);
    img = t_open(path, NULL, &e);
    assert_non_null(img);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mrimg_stream_map(img, collect, &r, NULL, NULL, &e), MRIMG_ERR_TRUNCATED);
    check_cover(&r, 600000);
    assert_int_equal(r.v[0].region, MRIMG_REGION_STREAM_HEAD);
    assert_int_equal(r.v[r.n - 1].region, MRIMG_REGION_UNKNOWN);
    memset(&r, 0, sizeof(r));
    assert_int_equal(mrimg_extents(img, collect, &r, NULL, NULL, NULL, &e), 0);
    check_cover(&r, 600000);
    assert_int_equal(r.v[r.n - 1].region, MRIMG_REGION_UNKNOWN);
    mrimg_close(img);
    unlink(path);
    test_rmdir_all(dir);
    free(dir);
}

static void test_region_names(void **state)
{
    (void)state;
    for (int k = 0; k < MRIMG_REGION_COUNT; k++)
        assert_non_null(mrimg_region_name(k));
    assert_null(mrimg_region_name(MRIMG_REGION_COUNT));
    assert_null(mrimg_region_name(-1));
    assert_string_equal(mrimg_region_name(MRIMG_REGION_PAGES), "pages");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strip_graphics),
        cmocka_unit_test(test_strip_cookies),
        cmocka_unit_test(test_strip_malformed),
        cmocka_unit_test(test_strip_mutations),
        cmocka_unit_test(test_extents_mapped),
        cmocka_unit_test(test_extents_libvirt),
        cmocka_unit_test(test_stream_map),
        cmocka_unit_test(test_content),
        cmocka_unit_test(test_failed_scan_keeps),
        cmocka_unit_test(test_region_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
