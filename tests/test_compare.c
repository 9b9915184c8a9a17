/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* mrimg_compare beyond same-guest pairs (test_verify): images whose block
 * lists differ, a domain XML changed on many lines with a graphics password
 * (the diff is cut and the password masked), a damaged second image (the
 * error names the side), and the misuse of one handle for both sides. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&g_dir, "compare");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

static mrimg_compare_result *compare(mrimg_image *a, mrimg_image *b)
{
    mrimg_compare_result *r = NULL;
    mrimg_error err;
    int rc = mrimg_compare(a, b, &r, NULL, NULL, &err);
    if (rc != 0)
        fail_msg("compare: %s", err.message);
    assert_non_null(r);
    return r;
}

/* plain.mig against plain-multiblock.mig: the second has blocks the first
 * lacks; every block of the union is listed with its side. */
static void test_compare_block_lists(void **state)
{
    (void)state;
    mrimg_image *a = test_open(fixture_path("qemu/plain.mig"));
    mrimg_image *b = test_open(fixture_path("qemu/plain-multiblock.mig"));
    mrimg_compare_result *r = compare(a, b);
    assert_false(r->identical);
    assert_false(r->ram_identical);
    assert_false(r->blocks_same_order);
    unsigned only_a = 0, only_b = 0, both = 0;
    for (unsigned i = 0; i < r->nblocks; i++) {
        const mrimg_compare_block *c = &r->blocks[i];
        if (c->index_a < 0) {
            only_b++;
            assert_int_equal(c->length_a, 0);
            assert_true(c->length_b > 0);
            assert_int_equal(c->first_diff_page, UINT64_MAX);
            assert_string_equal(c->name, mrimg_block(b, (unsigned)c->index_b)->name);
        } else if (c->index_b < 0) {
            only_a++;
        } else {
            both++;
            assert_string_equal(mrimg_block(a, (unsigned)c->index_a)->name,
                                mrimg_block(b, (unsigned)c->index_b)->name);
        }
    }
    assert_int_equal(only_a + only_b + both, r->nblocks);
    assert_int_equal(only_b + both, mrimg_block_count(b));
    assert_int_equal(only_a + both, mrimg_block_count(a));
    assert_true(only_b > 0);
    mrimg_compare_free(r);
    mrimg_close(a);
    mrimg_close(b);
}

/* raw.sav against a copy with another XML of 60 lines, one of them a VNC
 * password: the diff shows 40 lines per side then "... (more lines)", the
 * password removed (as libvirt does without --security-info); the diff with
 * secrets (xml_diff_secure) keeps it. */
static void test_compare_xml_diff(void **state)
{
    (void)state;
    char xml[8192] = "<domain type='kvm'>\n  <name>other</name>\n"
                     "  <uuid>8c1a7f5e-52c4-4bb2-9d55-0f1e2d3c4b5a</uuid>\n"
                     "  <devices>\n    <graphics type='vnc' passwd='hunter2'/>\n";
    for (int i = 0; i < 60; i++) {
        char ln[64];
        snprintf(ln, sizeof(ln), "    <!-- line %d -->\n", i);
        strcat(xml, ln);
    }
    strcat(xml, "  </devices>\n</domain>\n");
    char out[4200];
    snprintf(out, sizeof(out), "%s/other-xml.sav", g_dir);
    mrimg_image *a = test_open(fixture_path("libvirt/raw.sav"));
    t_convert_opts co;
    t_convert_opts_init(&co);
    co.out = MRIMG_OUT_RAW;
    co.xml = xml;
    mrimg_error err;
    if (t_convert(a, out, &co, NULL, &err) != 0)
        fail_msg("convert: %s", err.message);
    mrimg_image *b = test_open(out);
    mrimg_compare_result *r = compare(a, b);
    assert_true(r->ram_identical);
    assert_true(r->device_identical);
    assert_true(r->identical); /* the XML is not the guest */
    assert_false(r->xml_identical);
    assert_true(r->cookie_identical);
    assert_null(r->cookie_diff);
    const char *d = r->xml_diff;
    assert_non_null(d);
    assert_true(strncmp(d, "--- first image XML\n+++ second image XML\n@@ -", 45) == 0);
    assert_non_null(strstr(d, "+    <graphics type='vnc'/>\n"));
    assert_null(strstr(d, "passwd"));
    assert_null(strstr(d, "hunter2"));
    assert_non_null(r->xml_diff_secure);
    assert_non_null(strstr(r->xml_diff_secure, "+    <graphics type='vnc' passwd='hunter2'/>\n"));
    assert_non_null(strstr(d, "+  <name>other</name>\n"));
    assert_non_null(strstr(d, "+... (more lines)\n"));
    assert_null(strstr(d, "line 50 "));
    unsigned plus = 0;
    for (const char *p = d; (p = strstr(p, "\n+")); p++)
        plus++;
    assert_int_equal(plus, 1 + 40 + 1); /* "+++", 40 lines, the "more" line */
    mrimg_compare_free(r);

    /* the other way round the graphics line is on the "-" side, without
     * its password too */
    r = compare(b, a);
    assert_non_null(strstr(r->xml_diff, "-    <graphics type='vnc'/>\n"));
    assert_null(strstr(r->xml_diff, "passwd"));
    assert_non_null(strstr(r->xml_diff, "-... (more lines)\n"));
    mrimg_compare_free(r);
    mrimg_close(a);
    mrimg_close(b);
}

/* A second image cut in its RAM: the error names the second image. */
static void test_compare_damaged(void **state)
{
    (void)state;
    size_t n;
    uint8_t *all = read_file(fixture_path("libvirt/raw.sav"), &n);
    assert_non_null(all);
    char cutp[4200];
    snprintf(cutp, sizeof(cutp), "%s/cut.sav", g_dir);
    write_file(cutp, all, n / 2);
    free(all);
    mrimg_image *a = test_open(fixture_path("libvirt/raw.sav"));
    mrimg_image *b = test_open(cutp);
    mrimg_compare_result *r = NULL;
    mrimg_error err;
    int rc = mrimg_compare(a, b, &r, NULL, NULL, &err);
    assert_int_equal(rc, MRIMG_ERR_TRUNCATED);
    assert_null(r);
    if (strncmp(err.message, "second image: ", 14) != 0)
        fail_msg("message: %s", err.message);
    rc = mrimg_compare(b, a, &r, NULL, NULL, &err);
    assert_int_equal(rc, MRIMG_ERR_TRUNCATED);
    if (strncmp(err.message, "first image: ", 13) != 0)
        fail_msg("message: %s", err.message);
    mrimg_close(a);
    mrimg_close(b);
}

static void test_compare_misuse(void **state)
{
    (void)state;
    mrimg_image *a = test_open(fixture_path("qemu/plain.mig"));
    mrimg_compare_result *r = NULL;
    mrimg_error err;
    assert_int_equal(mrimg_compare(a, a, &r, NULL, NULL, &err), MRIMG_ERR_INVAL);
    assert_string_equal(err.message, "two different image handles are needed");
    assert_null(r);
    mrimg_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_block_lists),
        cmocka_unit_test(test_compare_xml_diff),
        cmocka_unit_test(test_compare_damaged),
        cmocka_unit_test(test_compare_misuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
