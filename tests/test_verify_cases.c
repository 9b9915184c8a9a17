/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mrimg_verify on corrupted copies of real images, for the checks that
 * test_verify's sweep does not reach: a domain XML whose root or <name> was
 * renamed, a VMDESCRIPTION replaced by JSON that is not the description
 * (an object without "devices", another page size), a mapped-ram
 * stream inside a compressed payload, and the calls that cannot run (no
 * path, a stream offset beyond the file, cancelled through the progress
 * callback).  Each finding is asserted by check name, severity and text. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&g_dir, "verify-cases");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

static const char *scratch(const char *name)
{
    static char b[4][4200];
    static unsigned k;
    char *p = b[k++ % 4];
    snprintf(p, sizeof(b[0]), "%s/%s", g_dir, name);
    return p;
}


/* Replace every occurrence of `from` in buf[0, n) by `to` (same length). */
static unsigned replace(uint8_t *buf, size_t n, const char *from, const char *to)
{
    size_t l = strlen(from);
    assert_int_equal(l, strlen(to));
    unsigned k = 0;
    for (size_t i = 0; i + l <= n; i++)
        if (!memcmp(buf + i, from, l)) {
            memcpy(buf + i, to, l);
            k++;
        }
    return k;
}

static mrimg_verify_result *verify(const char *path)
{
    mrimg_verify_result *r = NULL;
    mrimg_error err;
    int rc = t_verify(path, NULL, &r, &err);
    if (rc != 0)
        fail_msg("verify %s: %s", path, err.message);
    assert_non_null(r);
    return r;
}

/* r holds a problem of check and severity whose message contains text. */
static void expect(const mrimg_verify_result *r, const char *check, mrimg_severity sev,
                   const char *text)
{
    for (unsigned i = 0; i < r->nproblems; i++)
        if (!strcmp(r->problems[i].check, check) && r->problems[i].severity == sev &&
            strstr(r->problems[i].message, text))
            return;
    for (unsigned i = 0; i < r->nproblems; i++)
        fprintf(stderr, "  %s %s: %s\n", r->problems[i].severity == MRIMG_SEV_ERROR ? "E" : "W",
                r->problems[i].check, r->problems[i].message);
    fail_msg("no %s problem %s: \"%s\"", sev == MRIMG_SEV_ERROR ? "error" : "warning", check,
             text);
}

/* ---- the domain XML -------------------------------------------------------- */

static void test_xml_root_and_name(void **state)
{
    (void)state;
    size_t n;
    uint8_t *all = read_file(fixture_path("libvirt/raw.sav"), &n);
    assert_non_null(all);
    uint8_t *copy = malloc(n);
    assert_non_null(copy);

    memcpy(copy, all, n);
    /* the root renamed, consistently, so that the XML stays well-formed */
    assert_int_equal(replace(copy, 4096, "<domain ", "<dimain "), 1);
    assert_int_equal(replace(copy, 8192, "</domain>", "</dimain>"), 1);
    const char *p = scratch("root.sav");
    write_file(p, copy, n);
    mrimg_verify_result *r = verify(p);
    expect(r, "container.xml", MRIMG_SEV_ERROR, "the root element is <dimain> (expected <domain>)");
    assert_true(r->errors > 0);
    mrimg_verify_free(r);

    memcpy(copy, all, n);
    assert_int_equal(replace(copy, 4096, "<name>", "<nome>"), 1);
    assert_int_equal(replace(copy, 4096, "</name>", "</nome>"), 1);
    p = scratch("name.sav");
    write_file(p, copy, n);
    r = verify(p);
    expect(r, "container.xml", MRIMG_SEV_ERROR, "the <domain> element has no <name>");
    mrimg_verify_free(r);
    free(copy);
    free(all);
}

/* ---- the VMDESCRIPTION ------------------------------------------------------ */

/* plain.mig with its VMDESCRIPTION replaced by json */
static const char *with_vmdesc(const char *json)
{
    mrimg_stream_info si;
    size_t n;
    uint8_t *all = test_read_scanned(fixture_path("qemu/plain.mig"), &n, &si);
    uint64_t eof = si.eof_offset;
    assert_true(eof < n && all[eof] == 0x00);
    size_t jl = strlen(json);
    uint8_t *out = malloc(eof + 1 + 5 + jl);
    assert_non_null(out);
    memcpy(out, all, eof + 1);
    out[eof + 1] = 0x06;
    out[eof + 2] = (uint8_t)(jl >> 24);
    out[eof + 3] = (uint8_t)(jl >> 16);
    out[eof + 4] = (uint8_t)(jl >> 8);
    out[eof + 5] = (uint8_t)jl;
    memcpy(out + eof + 6, json, jl);
    const char *p = scratch("vmdesc.mig");
    write_file(p, out, eof + 6 + jl);
    free(out);
    free(all);
    return p;
}

static void test_vmdesc_not_the_description(void **state)
{
    (void)state;
    /* (JSON that is not an object is not taken for a VMDESCRIPTION at all:
     * the reader finds the tail's end by the 06 marker and an opening
     * brace, so that case is the truncation test_verify covers) */
    mrimg_verify_result *r = verify(with_vmdesc("{\"page_size\": 4096}"));
    expect(r, "stream.vmdesc", MRIMG_SEV_ERROR, "the VMDESCRIPTION has no \"devices\" list");
    mrimg_verify_free(r);

    r = verify(with_vmdesc("{\"page_size\": 1024, \"devices\": []}"));
    expect(r, "stream.vmdesc", MRIMG_SEV_ERROR,
           "the VMDESCRIPTION says page_size 1024, the stream uses 4096");
    /* and the device state is not what an empty list describes */
    expect(r, "stream.devices", MRIMG_SEV_ERROR, "is not in the description");
    mrimg_verify_free(r);
}

/* ---- mapped-ram inside a compressed payload -------------------------------- */

static void test_mapped_compressed(void **state)
{
    (void)state;
    size_t n;
    uint8_t *all = read_file(fixture_path("qemu/mapped.mig"), &n);
    assert_non_null(all);
    const char *p = scratch("mapped.mig.gz");
    gzFile gz = gzopen(p, "wb1");
    assert_non_null(gz);
    for (size_t off = 0; off < n;) {
        unsigned chunk = (unsigned)(n - off < (1u << 20) ? n - off : (1u << 20));
        assert_int_equal(gzwrite(gz, all + off, chunk), (int)chunk);
        off += chunk;
    }
    assert_int_equal(gzclose(gz), Z_OK);
    free(all);
    mrimg_verify_result *r = verify(p);
    expect(r, "mapped.format", MRIMG_SEV_ERROR,
           "a mapped-ram stream inside a gzip-compressed payload: its absolute offsets cannot "
           "be followed and QEMU cannot load it");
    assert_int_equal(r->payload_format, MRIMG_FORMAT_GZIP);
    mrimg_verify_free(r);
}

/* ---- calls that cannot run -------------------------------------------------- */

static int cancel_at_once(void *opaque, uint64_t done, uint64_t total)
{
    (void)done;
    (void)total;
    ++*(unsigned *)opaque;
    return 1;
}

static void test_cannot_run(void **state)
{
    (void)state;
    mrimg_verify_result *r = (mrimg_verify_result *)1;
    mrimg_error err;
    assert_int_equal(t_verify(NULL, NULL, &r, &err), MRIMG_ERR_INVAL);
    assert_string_equal(err.message, "no path or result given");
    assert_null(r);

    t_verify_opts o = {.stream_offset = 1ull << 40};
    assert_int_equal(t_verify(fixture_path("qemu/plain.mig"), &o, &r, &err),
                     MRIMG_ERR_INVAL);
    if (!strstr(err.message, "stream offset 1099511627776 is beyond the end of the file (1260234 "
                             "bytes)"))
        fail_msg("message: %s", err.message);
    mrimg_verify_free(r);

    unsigned calls = 0;
    t_verify_opts c = {.progress = cancel_at_once, .progress_ctx = &calls};
    r = NULL;
    assert_int_equal(t_verify(fixture_path("libvirt/raw.sav"), &c, &r, &err),
                     MRIMG_ERR_INTERRUPTED);
    assert_string_equal(err.message, "interrupted");
    assert_true(calls >= 1);
    mrimg_verify_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_root_and_name),
        cmocka_unit_test(test_vmdesc_not_the_description),
        cmocka_unit_test(test_mapped_compressed),
        cmocka_unit_test(test_cannot_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
