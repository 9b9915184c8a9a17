/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The public API's shape (mrimg.h): the output table, option handles with
 * (parameter, value) setters and bounds, versioned result structs and
 * results by query - the parts that let the API grow without breaking
 * callers built against an older header. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *tmpdir;
static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&tmpdir, "api");
}
static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&tmpdir);
}

/* Every kind is one row, numbered densely from 0, with a unique name that
 * mrimg_output_by_name finds; the libvirt rows write their own payload
 * format; what needs seeking is marked. */
static void test_output_table(void **state)
{
    (void)state;
    unsigned n = 0, libvirt = 0;
    for (const mrimg_output_desc *d; (d = mrimg_output_info(n)); n++) {
        assert_int_equal(d->kind, n);
        assert_non_null(d->name);
        assert_non_null(d->summary);
        assert_ptr_equal(mrimg_output_by_name(d->name), d);
        for (unsigned k = 0; k < n; k++)
            assert_string_not_equal(mrimg_output_info(k)->name, d->name);
        if (d->libvirt) {
            libvirt++;
            assert_true(d->stream);
            assert_int_equal(d->payload_format, (int)d->kind);
            assert_string_equal(mrimg_format_name(d->payload_format), d->name);
        }
        if (!d->stream)
            assert_int_equal(d->payload_format, -1);
        if (d->mapped || d->directory || !d->stream)
            assert_true(d->needs_seek);
        /* a reason for every output a pipe cannot take, and only for those */
        assert_int_equal(d->seek_reason != NULL, d->needs_seek != 0);
    }
    assert_int_equal(n, 14); /* issue 14's outputs included */
    assert_int_equal(libvirt, MRIMG_FORMAT_COUNT);
    assert_null(mrimg_output_info(n));
    assert_null(mrimg_output_info(UINT32_MAX));
    /* the aliases of imgconv -O, and nothing else */
    assert_int_equal(mrimg_output_by_name("plain")->kind, MRIMG_OUT_QEMU);
    assert_int_equal(mrimg_output_by_name("mapped")->kind, MRIMG_OUT_QEMU_MAPPED);
    assert_null(mrimg_output_by_name("ZSTD"));
    assert_null(mrimg_output_by_name(""));
    assert_null(mrimg_output_by_name(NULL));
    const mrimg_output_desc *e = mrimg_output_by_name("elf");
    assert_true(e && !e->libvirt && !e->stream && e->needs_seek);
    assert_false(mrimg_output_by_name("zstd")->needs_seek);
    assert_true(mrimg_output_by_name("sparse")->needs_seek);
    assert_true(mrimg_output_by_name("ram")->directory);
}

static void test_param_bounds(void **state)
{
    (void)state;
    int64_t lo, hi, def;
    assert_int_equal(mrimg_param_bounds(MRIMG_P_OUTPUT, &lo, &hi, &def), 0);
    assert_int_equal(lo, 0);
    assert_int_equal(def, MRIMG_OUT_RAW);
    assert_non_null(mrimg_output_info((unsigned)hi));
    assert_null(mrimg_output_info((unsigned)hi + 1));
    /* the level range covers every codec's (zstd 1..19, xz 0..9) */
    assert_int_equal(mrimg_param_bounds(MRIMG_P_LEVEL, &lo, &hi, &def), 0);
    assert_int_equal(lo, -1);
    assert_int_equal(def, -1);
    for (int f = 0; f < MRIMG_FORMAT_COUNT; f++) {
        int fmin, fmax;
        if (mrimg_format_levels(f, &fmin, &fmax, NULL) == 0)
            assert_true(fmin >= lo && fmax <= hi);
    }
    assert_int_equal(mrimg_param_bounds(MRIMG_P_RUNNING, &lo, &hi, &def), 0);
    assert_true(lo == -1 && hi == 1 && def == -1);
    assert_int_equal(mrimg_param_bounds(MRIMG_P_THREADS, NULL, &hi, NULL), 0);
    assert_int_equal(hi, 1024);
    assert_int_equal(mrimg_param_bounds((mrimg_param)0, NULL, NULL, NULL), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_param_bounds((mrimg_param)12345, NULL, NULL, NULL), MRIMG_ERR_INVAL);
    assert_string_equal(mrimg_param_name(MRIMG_P_ALLOW_INCOMPLETE), "allow-incomplete");
    assert_null(mrimg_param_name((mrimg_param)12345));
}

/* Each handle takes its operation's parameters within their bounds, keeps
 * the last value, and refuses the rest with a message naming them. */
static void test_option_handles(void **state)
{
    (void)state;
    mrimg_error e;
    int64_t v;
    mrimg_convert_opts *c = mrimg_convert_opts_create();
    assert_non_null(c);
    assert_int_equal(mrimg_convert_opts_get(c, MRIMG_P_OUTPUT, &v, &e), 0);
    assert_int_equal(v, MRIMG_OUT_RAW);
    assert_int_equal(mrimg_convert_opts_get(c, MRIMG_P_LEVEL, &v, &e), 0);
    assert_int_equal(v, -1);
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_OUTPUT, MRIMG_OUT_KDUMP_LZO, &e), 0);
    assert_int_equal(mrimg_convert_opts_get(c, MRIMG_P_OUTPUT, &v, &e), 0);
    assert_int_equal(v, MRIMG_OUT_KDUMP_LZO);
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_OUTPUT, MRIMG_OUT_KDUMP_LZO + 1, &e),
                     MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "parameter output: 14 is out of bounds (0..13)"));
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_OUTPUT, -1, &e), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_convert_opts_get(c, MRIMG_P_OUTPUT, &v, &e), 0);
    assert_int_equal(v, MRIMG_OUT_KDUMP_LZO); /* a refused value changes nothing */
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_THREADS, 1025, &e), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_STREAM_OFFSET, 0, &e), MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "stream-offset does not apply to conversion"));
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_SKIP_DATA, 0, &e), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_convert_opts_get(c, MRIMG_P_MAX_PROBLEMS, &v, &e), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_convert_opts_set(c, (mrimg_param)999, 0, &e), MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "unknown parameter 999"));
    /* the strings are copies */
    char xml[] = "<domain><name>a</name><uuid>0</uuid></domain>";
    assert_int_equal(mrimg_convert_opts_set_xml(c, xml, &e), 0);
    xml[1] = 'X';
    assert_int_equal(mrimg_convert_opts_set_xml(c, NULL, &e), 0);
    assert_int_equal(mrimg_convert_opts_set_cookie(c, "<cookie/>", &e), 0);
    mrimg_convert_opts_free(c);
    mrimg_convert_opts_free(NULL);

    mrimg_verify_opts *vo = mrimg_verify_opts_create();
    assert_int_equal(mrimg_verify_opts_set(vo, MRIMG_P_MAX_PROBLEMS, 7, &e), 0);
    assert_int_equal(mrimg_verify_opts_get(vo, MRIMG_P_MAX_PROBLEMS, &v, &e), 0);
    assert_int_equal(v, 7);
    assert_int_equal(mrimg_verify_opts_set(vo, MRIMG_P_SKIP_DATA, 2, &e), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_verify_opts_set(vo, MRIMG_P_LEVEL, 3, &e), MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "level does not apply to verification"));
    mrimg_verify_opts_free(vo);

    mrimg_open_opts *oo = mrimg_open_opts_create();
    assert_int_equal(mrimg_open_opts_set(oo, MRIMG_P_STREAM_OFFSET, 4096, &e), 0);
    assert_int_equal(mrimg_open_opts_get(oo, MRIMG_P_STREAM_OFFSET, &v, &e), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(mrimg_open_opts_set(oo, MRIMG_P_STREAM_OFFSET, -1, &e), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_open_opts_set(oo, MRIMG_P_FORCE, 1, &e), MRIMG_ERR_INVAL);
    assert_int_equal(mrimg_open_opts_set(NULL, MRIMG_P_THREADS, 1, &e), MRIMG_ERR_INVAL);
    mrimg_open_opts_free(oo);
}

/* The level of the chosen output is checked by mrimg_convert against its
 * codec's own range (the parameter's bounds are every codec's together). */
static void test_level_of_output(void **state)
{
    (void)state;
    mrimg_error e;
    mrimg_image *img = test_open(fixture_path("libvirt/raw.sav"));
    mrimg_convert_opts *c = mrimg_convert_opts_create();
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_OUTPUT, MRIMG_OUT_XZ, &e), 0);
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_LEVEL, 19, &e), 0);
    char out[4096];
    snprintf(out, sizeof(out), "%s/level.sav", tmpdir);
    assert_int_equal(mrimg_convert(img, out, c, NULL, &e), MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "0..9"));
    assert_int_equal(access(out, F_OK), -1);
    mrimg_convert_opts_free(c);
    mrimg_close(img);
}

static int count_extent(void *opaque, const mrimg_extent *x)
{
    (void)x;
    (*(unsigned *)opaque)++;
    return 0;
}

/* A caller built against an older, smaller mrimg_convert_stats gets the
 * fields it knows and nothing written past them; one that forgot the
 * size is refused before anything happens. */
static void test_versioned_stats(void **state)
{
    (void)state;
    mrimg_error e;
    mrimg_image *img = test_open(fixture_path("libvirt/raw.sav"));
    char out[4096];
    snprintf(out, sizeof(out), "%s/v.sav", tmpdir);
    mrimg_convert_stats zero;
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(mrimg_convert(img, out, NULL, &zero, &e), MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "size is not set"));
    assert_int_equal(access(out, F_OK), -1);

    struct {
        mrimg_convert_stats st;
        unsigned char guard[32];
    } small;
    memset(&small, 0xa5, sizeof(small));
    small.st.size = offsetof(mrimg_convert_stats, stream_bytes);
    assert_int_equal(mrimg_convert(img, out, NULL, &small.st, &e), 0);
    assert_int_equal(small.st.size, offsetof(mrimg_convert_stats, stream_bytes));
    assert_true(small.st.in_bytes > 0 && small.st.in_bytes < UINT64_MAX / 2);
    for (const unsigned char *p = (const unsigned char *)&small.st.stream_bytes;
         p < (const unsigned char *)(&small + 1); p++)
        assert_int_equal(*p, 0xa5);

    mrimg_convert_stats full = {.size = sizeof(full)};
    mrimg_convert_opts *c = mrimg_convert_opts_create();
    assert_int_equal(mrimg_convert_opts_set(c, MRIMG_P_FORCE, 1, &e), 0);
    assert_int_equal(mrimg_convert(img, out, c, &full, &e), 0);
    assert_int_equal(full.in_bytes, small.st.in_bytes);
    assert_true(full.out_bytes > 0 && full.out_allocated > 0);
    mrimg_convert_opts_free(c);

    mrimg_extent_totals t;
    memset(&t, 0, sizeof(t));
    unsigned runs = 0;
    assert_int_equal(mrimg_extents(img, count_extent, &runs, &t, NULL, NULL, &e),
                     MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "size is not set"));
    assert_int_equal(runs, 0);
    mrimg_close(img);
}

/* The capabilities of the configuration section, by query. */
static void test_capabilities(void **state)
{
    (void)state;
    mrimg_error e;
    mrimg_image *img = test_open(fixture_path("libvirt/sparse.sav"));
    assert_null(mrimg_stream_capability(img, 0)); /* not scanned yet */
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    const mrimg_stream_info *si = mrimg_stream(img);
    assert_true(si->ncaps >= 1);
    int mapped = 0;
    for (unsigned i = 0; i < si->ncaps; i++)
        mapped |= !strcmp(mrimg_stream_capability(img, i), "mapped-ram");
    assert_true(mapped);
    assert_null(mrimg_stream_capability(img, si->ncaps));
    unsigned runs = 0;
    mrimg_extent_totals t = {.size = sizeof(t)};
    assert_int_equal(mrimg_extents(img, count_extent, &runs, &t, NULL, NULL, &e), 0);
    assert_int_equal(t.size, sizeof(t));
    assert_int_equal(t.runs, runs);
    mrimg_close(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_table),   cmocka_unit_test(test_param_bounds),
        cmocka_unit_test(test_option_handles), cmocka_unit_test(test_level_of_output),
        cmocka_unit_test(test_versioned_stats), cmocka_unit_test(test_capabilities),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
