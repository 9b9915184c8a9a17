/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device-state walk (lib/stream/devices.c) on hand-made device states
 * and descriptions: what it explains and every way it can refuse, each with
 * the message and the stream offset it reports.  The real device states of
 * the fixtures are walked by test_verify (stream.devices); these cases reach
 * the shapes QEMU does not write but a damaged file can hold. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream/vmdesc.h"

/* ---- a device-state builder -------------------------------------------- */

typedef struct ds {
    uint8_t b[4096];
    size_t n;
} ds;

static void put(ds *d, const void *p, size_t n)
{
    assert_true(d->n + n <= sizeof(d->b));
    memcpy(d->b + d->n, p, n);
    d->n += n;
}
static void put8(ds *d, uint8_t v) { put(d, &v, 1); }
static void put32(ds *d, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(d, b, 4);
}
static void fill(ds *d, uint8_t v, size_t n)
{
    while (n--)
        put8(d, v);
}

/* FULL section header: 04, id, name, instance, version */
static void sec(ds *d, uint32_t id, const char *name, uint32_t inst, uint32_t ver)
{
    put8(d, 0x04);
    put32(d, id);
    put8(d, (uint8_t)strlen(name));
    put(d, name, strlen(name));
    put32(d, inst);
    put32(d, ver);
}
static void footer(ds *d, uint32_t id)
{
    put8(d, 0x7e);
    put32(d, id);
}
static void subsec(ds *d, const char *name, uint32_t ver)
{
    put8(d, 0x05);
    put8(d, (uint8_t)strlen(name));
    put(d, name, strlen(name));
    put32(d, ver);
}

/* ---- running the walk ---------------------------------------------------- */

typedef struct seen {
    unsigned n;
    uint64_t off;
    char msg[400];
} seen;

static void on_problem(void *ctx, uint64_t off, const char *msg)
{
    seen *s = ctx;
    if (!s->n++) {
        s->off = off;
        snprintf(s->msg, sizeof(s->msg), "%s", msg);
    }
}

#define TAIL_POS 1000u /* the stream offset of the device state */

static sp_devwalk walk(const char *json, const ds *d, seen *s)
{
    vj_doc doc = {0};
    size_t where;
    char msg[128];
    if (vj_parse(json, strlen(json), &doc, &where, msg, sizeof(msg)) != 0)
        fail_msg("test JSON at byte %zu: %s", where, msg);
    memset(s, 0, sizeof(*s));
    sp_devwalk out;
    sp_walk_devices(&doc, d->b, d->n, TAIL_POS, on_problem, s, &out);
    vj_free(&doc);
    return out;
}

/* one problem whose message contains want, at stream offset off */
static void expect_problem(const seen *s, uint64_t off, const char *want)
{
    if (s->n != 1 || !strstr(s->msg, want))
        fail_msg("expected one problem \"%s\", got %u: \"%s\"", want, s->n, s->msg);
    assert_int_equal(s->off, off);
}

#define DEV_A                                                                                  \
    "{\"name\": \"a\", \"instance_id\": 0, \"version\": 3, \"fields\": ["                      \
    "{\"name\": \"x\", \"size\": 4}, {\"name\": \"arr\", \"array_len\": 2, \"size\": 2}, "      \
    "{\"name\": \"s\", \"type\": \"struct\", \"array_len\": 2, \"struct\": "                   \
    "{\"fields\": [{\"name\": \"y\", \"size\": 1}]}}], "                                      \
    "\"subsections\": [{\"vmsd_name\": \"a/sub\", \"version\": 1, \"fields\": "               \
    "[{\"name\": \"z\", \"size\": 2}]}]}"
#define DEV_B "{\"name\": \"b\", \"instance_id\": 1, \"version\": 1, \"fields\": []}"

/* device a: 4 + 2*2 + 2*1 bytes of fields, the subsection a/sub with 2 */
static void dev_a(ds *d, uint32_t id)
{
    sec(d, id, "a", 0, 3);
    fill(d, 0xaa, 10);
    subsec(d, "a/sub", 1);
    fill(d, 0xbb, 2);
    footer(d, id);
}

/* Sections, fields, arrays, structs, subsections and commands add up. */
static void test_walk_complete(void **state)
{
    (void)state;
    ds d = {0};
    dev_a(&d, 7);
    put8(&d, 0x08); /* a command record between sections: skipped */
    put8(&d, 0);
    put8(&d, 9);
    put8(&d, 0);
    put8(&d, 2);
    fill(&d, 0, 2);
    sec(&d, 8, "b", 1, 1);
    footer(&d, 8);
    seen s;
    sp_devwalk w = walk("{\"devices\": [" DEV_A ", " DEV_B "]}", &d, &s);
    assert_int_equal(s.n, 0);
    assert_true(w.complete);
    assert_false(w.skipped);
    assert_int_equal(w.sections, 2);
    assert_int_equal(w.explained, d.n);
}

static void test_walk_no_devices(void **state)
{
    (void)state;
    ds d = {0};
    dev_a(&d, 7);
    seen s;
    sp_devwalk w = walk("{\"page_size\": 4096}", &d, &s);
    assert_true(w.skipped);
    assert_false(w.complete);
    assert_string_equal(w.note, "the description has no \"devices\" list");
    w = walk("{\"devices\": {}}", &d, &s);
    assert_true(w.skipped);
    assert_int_equal(s.n, 0);
}

/* An iterable device (START/PART/END after the RAM) is not described. */
static void test_walk_iterable(void **state)
{
    (void)state;
    ds d = {0};
    dev_a(&d, 7);
    put8(&d, 0x01);
    fill(&d, 0, 8);
    seen s;
    sp_devwalk w = walk("{\"devices\": [" DEV_A "]}", &d, &s);
    assert_true(w.skipped);
    assert_int_equal(w.sections, 0);
    assert_non_null(strstr(w.note, "a section of type 1 (an iterable device) at device-state "
                                   "offset 43"));
    assert_int_equal(s.n, 0);
}

static void test_walk_bad_framing(void **state)
{
    (void)state;
    seen s;
    ds d = {0};
    /* a command cut in its header, and one whose length runs past */
    put8(&d, 0x08);
    put8(&d, 0);
    walk("{\"devices\": []}", &d, &s);
    expect_problem(&s, TAIL_POS, "command record runs past the end of the device state");
    d.n = 0;
    put8(&d, 0x08);
    put8(&d, 0);
    put8(&d, 9);
    put8(&d, 0);
    put8(&d, 50);
    sp_devwalk cw = walk("{\"devices\": []}", &d, &s);
    expect_problem(&s, TAIL_POS,
                   "command record of 50 bytes runs past the end of the device state (0 bytes "
                   "left)");
    assert_int_equal(cw.explained, 0); /* never more than there is (fuzz_devices) */

    /* a byte that starts nothing */
    d.n = 0;
    put8(&d, 0x42);
    walk("{\"devices\": []}", &d, &s);
    expect_problem(&s, TAIL_POS,
                   "byte 0x42 where a device section (04) or the EOF record should start");

    /* a section header cut short */
    d.n = 0;
    put8(&d, 0x04);
    put32(&d, 1);
    put8(&d, 20);
    put(&d, "abc", 3);
    walk("{\"devices\": [" DEV_A "]}", &d, &s);
    expect_problem(&s, TAIL_POS, "device section header runs past the end of the device state");

    /* more sections than devices described */
    d.n = 0;
    dev_a(&d, 7);
    size_t second = d.n;
    sec(&d, 8, "b", 1, 1);
    footer(&d, 8);
    sp_devwalk w = walk("{\"devices\": [" DEV_A "]}", &d, &s);
    expect_problem(&s, TAIL_POS + second,
                   "device section \"b\" is not in the description (which lists fewer devices)");
    assert_int_equal(w.sections, 1);
    assert_int_equal(w.explained, second);
    assert_false(w.complete);

    /* fewer sections than described */
    d.n = 0;
    dev_a(&d, 7);
    walk("{\"devices\": [" DEV_A ", " DEV_B "]}", &d, &s);
    expect_problem(&s, TAIL_POS + d.n,
                   "the EOF record comes where the description lists more devices (next: \"b\"): "
                   "device sections are missing");
}

static void test_walk_identity(void **state)
{
    (void)state;
    seen s;
    ds d = {0};
    sec(&d, 7, "a", 0, 4); /* version 4, described as 3 */
    fill(&d, 0, 16);
    footer(&d, 7);
    walk("{\"devices\": [" DEV_A "]}", &d, &s);
    expect_problem(&s, TAIL_POS,
                   "device section \"a\" instance 0 version 4 where the description has \"a\" "
                   "instance 0 version 3");
    /* a name that is not a string in the description */
    walk("{\"devices\": [{\"name\": 5, \"instance_id\": 0, \"version\": 4}]}", &d, &s);
    expect_problem(&s, TAIL_POS, "where the description has \"?\" instance 0 version 0");
}

static void test_walk_fields(void **state)
{
    (void)state;
    seen s;
    ds d = {0};
    sec(&d, 7, "a", 0, 3);
    size_t body = d.n;
    fill(&d, 0, 6);
    footer(&d, 7);
#define ONE(fields) "{\"devices\": [{\"name\": \"a\", \"instance_id\": 0, \"version\": 3, " fields "}]}"
    walk(ONE("\"fields\": {}"), &d, &s);
    expect_problem(&s, TAIL_POS + body, "device \"a\": the description's \"fields\" is not a list");
    walk(ONE("\"fields\": [{\"name\": \"f\", \"array_len\": -1, \"size\": 1}]"), &d, &s);
    expect_problem(&s, TAIL_POS + body, "device \"a\", field \"f\": bad array_len in the description");
    walk(ONE("\"fields\": [{\"name\": \"f\", \"type\": \"struct\"}]"), &d, &s);
    expect_problem(&s, TAIL_POS + body, "device \"a\", field \"f\": struct without a description");
    walk(ONE("\"fields\": [{\"name\": \"f\", \"type\": \"struct\", \"struct\": "
             "{\"fields\": [{\"name\": \"g\"}]}}]"),
         &d, &s);
    expect_problem(&s, TAIL_POS + body, "device \"a\", field \"g\": no size in the description");
    walk(ONE("\"fields\": [{\"name\": \"f\", \"size\": 1.5}]"), &d, &s);
    expect_problem(&s, TAIL_POS + body, "device \"a\", field \"f\": no size in the description");
    walk(ONE("\"fields\": [{\"name\": \"f\", \"size\": 4, \"array_len\": 100}]"), &d, &s);
    expect_problem(&s, TAIL_POS + body,
                   "device \"a\", field \"f\" (100 x 4 bytes) runs past the end of the device "
                   "state (11 bytes left)");
    /* an element count whose product overflows */
    walk(ONE("\"fields\": [{\"name\": \"f\", \"size\": 4, \"array_len\": 9223372036854775807}]"),
         &d, &s);
    expect_problem(&s, TAIL_POS + body, "runs past the end of the device state");
    /* fields that explain fewer bytes than the section holds */
    walk(ONE("\"fields\": [{\"name\": \"f\", \"size\": 4}]"), &d, &s);
    expect_problem(&s, TAIL_POS + body + 4,
                   "device \"a\" (section 7): the description explains 19 bytes, but no footer "
                   "7e 00000007 follows them (found 00 00 7e 00 00)");
    /* ... and more than it holds: the footer is found inside the fields */
    walk(ONE("\"fields\": [{\"name\": \"f\", \"size\": 9}]"), &d, &s);
    expect_problem(&s, TAIL_POS + body + 9, "but no footer 7e 00000007 follows them (found 00 07)");
    /* nothing at all after the fields */
    walk(ONE("\"fields\": [{\"name\": \"f\", \"size\": 11}]"), &d, &s);
    expect_problem(&s, TAIL_POS + body + 11, "(found the end of the device state)");
#undef ONE
}

static void test_walk_subsections(void **state)
{
    (void)state;
    seen s;
    ds d = {0};
#define SUB(subs) "{\"devices\": [{\"name\": \"a\", \"instance_id\": 0, \"version\": 3, " \
                  "\"fields\": [{\"name\": \"x\", \"size\": 2}], \"subsections\": " subs "}]}"
    sec(&d, 7, "a", 0, 3);
    size_t body = d.n;
    fill(&d, 0, 2);
    size_t at = d.n;
    subsec(&d, "a/s", 2);
    put8(&d, 1);
    footer(&d, 7);
    const char *good = SUB("[{\"vmsd_name\": \"a/s\", \"version\": 2, "
                           "\"fields\": [{\"name\": \"v\", \"size\": 1}]}]");
    sp_devwalk w = walk(good, &d, &s);
    assert_int_equal(s.n, 0);
    assert_true(w.complete);

    walk(SUB("{}"), &d, &s);
    expect_problem(&s, TAIL_POS + at, "device \"a\": \"subsections\" is not a list");
    walk(SUB("[{\"vmsd_name\": \"a/t\", \"version\": 2}]"), &d, &s);
    expect_problem(&s, TAIL_POS + at,
                   "device \"a\": subsection \"a/s\" found where the description has \"a/t\"");
    walk(SUB("[{\"vmsd_name\": \"a/s\", \"version\": 3}]"), &d, &s);
    expect_problem(&s, TAIL_POS + at,
                   "device \"a\": subsection \"a/s\" has version 2, the description 3");
    /* a second subsection described but not sent: the footer comes */
    walk(SUB("[{\"vmsd_name\": \"a/s\", \"fields\": [{\"name\": \"v\", \"size\": 1}]}, "
             "{\"vmsd_name\": \"a/u\"}]"),
         &d, &s);
    expect_problem(&s, TAIL_POS + at + 10,
                   "device \"a\": subsection \"a/u\" expected (marker 05), found a section "
                   "footer: the fields before it do not add up to the bytes present");
    /* the fields before it end inside other bytes */
    walk(SUB("[{\"vmsd_name\": \"a/s\", \"fields\": [{\"name\": \"v\", \"size\": 1}], "
             "\"subsections\": [{\"vmsd_name\": \"a/s/t\"}]}]"),
         &d, &s);
    expect_problem(&s, TAIL_POS + at + 10, "found a section footer");

    /* a subsection header cut by the end of the device state */
    ds e = {0};
    sec(&e, 7, "a", 0, 3);
    fill(&e, 0, 2);
    put8(&e, 0x05);
    put8(&e, 30);
    put(&e, "a/s", 3);
    walk(SUB("[{\"vmsd_name\": \"a/s\"}]"), &e, &s);
    expect_problem(&s, TAIL_POS + body + 2, "device \"a\": subsection \"a/s\" header runs past the end");
    /* the marker missing where the device state ends */
    e.n = body + 2;
    walk(SUB("[{\"vmsd_name\": \"a/s\"}]"), &e, &s);
    expect_problem(&s, TAIL_POS + body + 2, "found the end of the device state");
    /* and another byte instead of the marker */
    put8(&e, 0x33);
    put8(&e, 0x33);
    walk(SUB("[{\"vmsd_name\": \"a/s\"}]"), &e, &s);
    expect_problem(&s, TAIL_POS + body + 2, "found another byte");
#undef SUB
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_complete),    cmocka_unit_test(test_walk_no_devices),
        cmocka_unit_test(test_walk_iterable),    cmocka_unit_test(test_walk_bad_framing),
        cmocka_unit_test(test_walk_identity),    cmocka_unit_test(test_walk_fields),
        cmocka_unit_test(test_walk_subsections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
