/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lib/verify: SHA-256, the JSON and XML checkers, every fixture verifying
 * sound, plain/mapped pairs compared, raw.sav converted to every format
 * comparing identical with one digest, and a suite of corrupted copies of
 * real images (truncations at every region boundary and mid-page, flipped
 * header fields, bad offsets and lengths, bad bitmaps, flipped codec
 * checksums, trailing garbage), each found under its check name. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "verify/vfy.h"

static char *g_dir;

/* ---- helpers ----------------------------------------------------------------- */

static const char *scratch(const char *name)
{
    static char b[4][4096];
    static unsigned k;
    char *p = b[k++ % 4];
    snprintf(p, 4096, "%s/%s", g_dir, name);
    return p;
}

static const char *copy_fixture(const char *rel)
{
    const char *dst = scratch("work");
    test_sparse_copy(fixture_path(rel), dst);
    return dst;
}

static void poke(const char *path, uint64_t off, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void peek(const char *path, uint64_t off, void *b, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void flip(const char *path, uint64_t off)
{
    uint8_t c;
    peek(path, off, &c, 1);
    c ^= 0x5a;
    poke(path, off, &c, 1);
}

static void put_be32(const char *path, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    poke(path, off, b, 4);
}

static void put_be64(const char *path, uint64_t off, uint64_t v)
{
    put_be32(path, off, (uint32_t)(v >> 32));
    put_be32(path, off + 4, (uint32_t)v);
}

static void put_le32(const char *path, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    poke(path, off, b, 4);
}

static void cut(const char *path, uint64_t size) { assert_int_equal(truncate(path, (off_t)size), 0); }

static uint64_t fsize(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void append(const char *path, const void *b, size_t n) { poke(path, fsize(path), b, n); }

static mrimg_verify_result *verify_off(const char *path, uint64_t offset)
{
    t_verify_opts o = {0};
    o.stream_offset = offset;
    mrimg_verify_result *r = NULL;
    mrimg_error err;
    int rc = t_verify(path, &o, &r, &err);
    if (rc != 0)
        fprintf(stderr, "verify %s: %s\n", path, err.message);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    return r;
}

static mrimg_verify_result *verify(const char *path) { return verify_off(path, 0); }

static void dump(const char *what, const mrimg_verify_result *r)
{
    fprintf(stderr, "%s: %llu errors, %llu warnings\n", what, (unsigned long long)r->errors,
            (unsigned long long)r->warnings);
    for (unsigned i = 0; i < r->nproblems; i++)
        fprintf(stderr, "  %s %s @%llu: %s\n",
                r->problems[i].severity == MRIMG_SEV_ERROR ? "E" : "W", r->problems[i].check,
                (unsigned long long)r->problems[i].offset, r->problems[i].message);
}

static bool has(const mrimg_verify_result *r, const char *check, mrimg_severity sev)
{
    for (unsigned i = 0; i < r->nproblems; i++)
        if (!strcmp(r->problems[i].check, check) && r->problems[i].severity == sev)
            return true;
    return false;
}

/* The corrupted copy at path shows an error under check. */
static void expect_error(const char *path, const char *check, const char *what)
{
    mrimg_verify_result *r = verify(path);
    if (!has(r, check, MRIMG_SEV_ERROR) || r->errors == 0) {
        fprintf(stderr, "expected %s for %s\n", check, what);
        dump(what, r);
        fail();
    }
    /* every check name is one of the table */
    unsigned n;
    const mrimg_check_desc *c = mrimg_verify_checks(&n);
    for (unsigned i = 0; i < r->nproblems; i++) {
        bool known = false;
        for (unsigned k = 0; k < n && !known; k++)
            known = !strcmp(c[k].name, r->problems[i].check);
        assert_true(known);
    }
    mrimg_verify_free(r);
}

static void expect_warning_only(const char *path, const char *check, const char *what)
{
    mrimg_verify_result *r = verify(path);
    if (!has(r, check, MRIMG_SEV_WARNING) || r->errors != 0) {
        fprintf(stderr, "expected only a %s warning for %s\n", check, what);
        dump(what, r);
        fail();
    }
    mrimg_verify_free(r);
}

/* Scan a clean image for its layout. */
static mrimg_image *scan(const char *path)
{
    mrimg_error err;
    mrimg_image *img = t_open(path, NULL, &err);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &err), 0);
    return img;
}

/* ---- SHA-256, JSON, XML ---------------------------------------------------------- */

static void hexeq(const uint8_t *d, const char *want)
{
    char h[65];
    mrimg_digest_hex(d, h);
    assert_string_equal(h, want);
}

static void test_sha256(void **state)
{
    (void)state;
    uint8_t d[32];
    vf_sha256 s;
    vf_sha256_init(&s);
    vf_sha256_final(&s, d);
    hexeq(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    vf_sha256_init(&s);
    vf_sha256_update(&s, "abc", 3);
    vf_sha256_final(&s, d);
    hexeq(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    vf_sha256_init(&s);
    for (size_t i = 0; i < strlen(m); i++) /* byte by byte */
        vf_sha256_update(&s, m + i, 1);
    vf_sha256_final(&s, d);
    hexeq(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', in uneven pieces */
    static char a[1000000];
    memset(a, 'a', sizeof(a));
    vf_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < sizeof(a)) {
        size_t k = MRIMG_MIN(step, sizeof(a) - off);
        vf_sha256_update(&s, a + off, k);
        off += k;
        step = step * 3 + 7;
    }
    vf_sha256_final(&s, d);
    hexeq(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static bool json_ok(const char *t)
{
    size_t where;
    char msg[100];
    return vj_parse(t, strlen(t), NULL, &where, msg, sizeof(msg)) == 0;
}

static void test_json(void **state)
{
    (void)state;
    assert_true(json_ok("{}"));
    assert_true(json_ok(" [1, -2.5e+3, 0, true, false, null, \"a\\u00e9\\n\", {\"k\": []}] "));
    assert_true(json_ok("\"\\ud83d\\ude00\""));
    assert_true(json_ok("{\"\xc3\xa9\": 1}"));
    assert_false(json_ok(""));
    assert_false(json_ok("{"));
    assert_false(json_ok("{\"a\" 1}"));
    assert_false(json_ok("{\"a\": 1,}"));
    assert_false(json_ok("[1,]"));
    assert_false(json_ok("01"));
    assert_false(json_ok("1."));
    assert_false(json_ok("-"));
    assert_false(json_ok("\"\\x\""));
    assert_false(json_ok("\"\\ud83d\""));
    assert_false(json_ok("\"a\tb\""));
    assert_false(json_ok("\"\xc0\xaf\""));
    assert_false(json_ok("{} {}"));
    assert_false(json_ok("tru"));
    assert_false(json_ok("{'a': 1}"));
    /* depth cap */
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = 0;
    assert_false(json_ok(deep));
    memset(deep, '[', 60);
    memset(deep + 60, ']', 60);
    deep[120] = 0;
    assert_true(json_ok(deep));
    /* the tree */
    const char *t = "{\"name\": \"cpu\", \"size\": 8, \"fields\": [1, 2]}";
    vj_doc doc;
    size_t where;
    char msg[80];
    assert_int_equal(vj_parse(t, strlen(t), &doc, &where, msg, sizeof(msg)), 0);
    uint64_t v;
    assert_true(vj_u64(&doc, vj_get(&doc, 0, "size"), &v));
    assert_int_equal(v, 8);
    assert_true(vj_streq(&doc, vj_get(&doc, 0, "name"), "cpu", 3));
    assert_int_equal(vj_get(&doc, 0, "nope"), -1);
    vj_free(&doc);
}

static bool xml_ok(const char *t, const char *root)
{
    vx_result r;
    vx_check(t, strlen(t), &r);
    return r.ok && (!root || !strcmp(r.root, root));
}

static void test_xml(void **state)
{
    (void)state;
    assert_true(xml_ok("<domain type='kvm'><name>a</name><uuid>x</uuid></domain>", "domain"));
    assert_true(xml_ok("<?xml version='1.0'?>\n<!-- c -->\n<a x=\"1\" y='&amp;&#x41;'>t<b/>"
                       "<![CDATA[<>&]]></a>\n",
                       "a"));
    assert_true(xml_ok("<cookie>\n</cookie>\n", "cookie"));
    assert_false(xml_ok("", NULL));
    assert_false(xml_ok("<a>", NULL));
    assert_false(xml_ok("<a></b>", NULL));
    assert_false(xml_ok("<a x='1' x='2'/>", NULL));
    assert_false(xml_ok("<a x=1/>", NULL));
    assert_false(xml_ok("<a>&nbsp;</a>", NULL));
    assert_false(xml_ok("<a>a < b</a>", NULL));
    assert_false(xml_ok("<a/><b/>", NULL));
    assert_false(xml_ok("text<a/>", NULL));
    assert_false(xml_ok("<!DOCTYPE a><a/>", NULL));
    assert_false(xml_ok("<a><!-- x -- y --></a>", NULL));
    assert_false(xml_ok("<a>\x01</a>", NULL));
    /* UTF-8 of XML 1.0 characters, as libxml2 (xmllint) decides */
    assert_true(xml_ok("<a>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80</a>", "a"));
    assert_true(xml_ok("<a>\xc2\x85\x7f</a>", "a"));          /* C1 control, DEL: allowed */
    assert_true(xml_ok("\xef\xbb\xbf<a/>", "a"));             /* byte order mark */
    assert_false(xml_ok("<a>\xff</a>", NULL));                 /* not UTF-8 */
    assert_false(xml_ok("<a>\xe9t\xe9</a>", NULL));           /* Latin-1 */
    assert_false(xml_ok("<a>\xc0\xaf</a>", NULL));            /* overlong '/' */
    assert_false(xml_ok("<a>\xe0\x80\xaf</a>", NULL));       /* overlong, 3 bytes */
    assert_false(xml_ok("<a>\xed\xa0\x80</a>", NULL));       /* surrogate U+D800 */
    assert_false(xml_ok("<a>\xf4\x90\x80\x80</a>", NULL));  /* U+110000 */
    assert_false(xml_ok("<a>\xef\xbf\xbe</a>", NULL));       /* U+FFFE */
    assert_false(xml_ok("<a>\xe2\x82</a>", NULL));            /* truncated */
    assert_false(xml_ok("<a x='\x1b'/>", NULL));               /* ESC in an attribute */
    {
        vx_result u;
        vx_check("<a>xy\xffz</a>", 9, &u);
        assert_false(u.ok);
        assert_int_equal(u.where, 5);
        assert_non_null(strstr(u.msg, "UTF-8"));
    }
    vx_result r;
    const char *d = "<domain><name>n</name><devices><uuid/></devices></domain>";
    vx_check(d, strlen(d), &r);
    assert_true(r.ok);
    assert_true(r.has_name);
    assert_false(r.has_uuid); /* only direct children count */
}

/* ---- every fixture is sound ------------------------------------------------------- */

static const char *const qemu_fixtures[] = {
    "plain",           "mapped",           "mapped-multifd4",     "plain-offset",
    "mapped-offset",   "plain-nozerodetect", "mapped-nozerodetect", "plain-multiblock",
    "mapped-multiblock", "plain-live",     "mapped-live",         "plain-uuid",
    "plain-postcopy",  "plain-q35",        "mapped-q35",          "plain-i440fx-9.2",
    "mapped-i440fx-9.2", "plain-1g",       "mapped-1g",
};
static const char *const libvirt_fixtures[] = {
    "raw", "raw-paused", "gzip", "bzip2", "xz", "lzop", "zstd", "sparse", "sparse-p4",
};

static void expect_sound(const char *rel, uint64_t offset)
{
    mrimg_verify_result *r = verify_off(fixture_path(rel), offset);
    if (r->errors || r->warnings) {
        dump(rel, r);
        fail();
    }
    assert_true(r->stream_parsed);
    assert_true(r->vmdesc_checked);
    assert_true(r->devices_checked);
    assert_true(r->device_sections > 10);
    assert_true(r->nblocks > 0);
    if (r->mapped_ram)
        assert_true(r->data_read > 0);
    if (r->payload_format > MRIMG_FORMAT_RAW && r->payload_format < MRIMG_FORMAT_SPARSE &&
        r->payload_format != MRIMG_FORMAT_BZIP2 && r->payload_format != MRIMG_FORMAT_XZ)
        assert_true(r->codec_checks > 0);
    mrimg_verify_free(r);
}

static void test_fixtures_sound(void **state)
{
    (void)state;
    char rel[128];
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(qemu_fixtures); i++) {
        snprintf(rel, sizeof(rel), "qemu/%s.mig", qemu_fixtures[i]);
        expect_sound(rel, strstr(rel, "-offset") ? 0x12345 : 0);
    }
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(libvirt_fixtures); i++) {
        snprintf(rel, sizeof(rel), "libvirt/%s.sav", libvirt_fixtures[i]);
        expect_sound(rel, 0);
    }
    /* the offset fixtures without their offset are not streams */
    mrimg_verify_result *r = verify(fixture_path("qemu/plain-offset.mig"));
    assert_true(has(r, "container.magic", MRIMG_SEV_ERROR));
    assert_non_null(strstr(r->problems[0].message, "74565"));
    mrimg_verify_free(r);
}

/* ---- compare and digest ------------------------------------------------------------ */

static mrimg_image *open_off(const char *rel, uint64_t off)
{
    t_open_opts o = {0};
    o.stream_offset = off;
    mrimg_error err;
    mrimg_image *img = t_open(fixture_path(rel), &o, &err);
    assert_non_null(img);
    return img;
}

static mrimg_compare_result *compare_files(mrimg_image *a, mrimg_image *b)
{
    mrimg_compare_result *r = NULL;
    mrimg_error err;
    int rc = mrimg_compare(a, b, &r, NULL, NULL, &err);
    if (rc)
        fprintf(stderr, "compare: %s\n", err.message);
    assert_int_equal(rc, 0);
    return r;
}

typedef struct pair_case {
    const char *suffix;
    /* differing device-state bytes: offset,length pairs (0-terminated) */
    uint64_t ranges[20][2];
    const char *ram_diff_block; /* NULL: RAM identical */
    uint64_t ram_diff_pages;
} pair_case;

/* What really differs between the separate saves of each pair: the
 * kvmclock clock and three mc146818rtc timer fields (timestamps); the live
 * pair (a running guest) also differs in 5 pages of pc.ram and in more
 * device bytes. */
static const pair_case pairs[] = {
    {"", {{2353, 4}, {3320, 4}, {3336, 4}, {3344, 4}}, NULL, 0},
    {"-offset", {{2354, 3}, {3320, 4}, {3336, 4}, {3344, 4}}, NULL, 0},
    {"-nozerodetect", {{2354, 3}, {3320, 4}, {3335, 5}, {3344, 4}}, NULL, 0},
    {"-multiblock", {{2354, 3}, {3320, 4}, {3336, 4}, {3344, 4}}, NULL, 0},
    {"-q35", {{2354, 3}, {3333, 4}, {3349, 4}, {3357, 4}}, NULL, 0},
    {"-i440fx-9.2", {{2354, 3}, {3320, 4}, {3336, 4}, {3344, 4}}, NULL, 0},
    {"-1g", {{2354, 3}, {3320, 4}, {3336, 4}, {3344, 4}}, NULL, 0},
    {"-live",
     {{23, 4}, {40, 3}, {115, 3}, {237, 1}, {245, 1}, {1262, 5}, {2303, 3}, {2354, 3},
      {3103, 1}, {3315, 1}, {3319, 5}, {3336, 4}, {3344, 4}, {7175, 3}, {7183, 3}, {7207, 3},
      {7239, 3}, {7255, 3}},
     "pc.ram", 5},
};

static void test_compare_pairs(void **state)
{
    (void)state;
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(pairs); i++) {
        const pair_case *pc = &pairs[i];
        char pa[128], pb[128];
        snprintf(pa, sizeof(pa), "qemu/plain%s.mig", pc->suffix);
        snprintf(pb, sizeof(pb), "qemu/mapped%s.mig", pc->suffix);
        uint64_t off = !strcmp(pc->suffix, "-offset") ? 0x12345 : 0;
        mrimg_image *a = open_off(pa, off), *b = open_off(pb, off);
        mrimg_compare_result *r = compare_files(a, b);
        assert_true(r->blocks_same_order);
        assert_int_equal(r->granule, 1);
        if (!pc->ram_diff_block) {
            assert_true(r->ram_identical);
        } else {
            assert_false(r->ram_identical);
            for (unsigned k = 0; k < r->nblocks; k++) {
                bool d = !strcmp(r->blocks[k].name, pc->ram_diff_block);
                assert_int_equal(r->blocks[k].identical, !d);
                if (d)
                    assert_int_equal(r->blocks[k].pages_differ, pc->ram_diff_pages);
            }
        }
        assert_false(r->device_identical);
        assert_true(r->device_detail);
        assert_int_equal(r->device_bytes_a, r->device_bytes_b);
        unsigned n = 0;
        while (n < 20 && pc->ranges[n][1])
            n++;
        if (r->ndevice_ranges != n) {
            fprintf(stderr, "pair %s: %u ranges\n", pc->suffix, r->ndevice_ranges);
            for (unsigned k = 0; k < r->ndevice_ranges; k++)
                fprintf(stderr, "  %llu+%llu\n", (unsigned long long)r->device_ranges[k].offset,
                        (unsigned long long)r->device_ranges[k].length);
        }
        assert_int_equal(r->ndevice_ranges, n);
        for (unsigned k = 0; k < n; k++) {
            assert_int_equal(r->device_ranges[k].offset, pc->ranges[k][0]);
            assert_int_equal(r->device_ranges[k].length, pc->ranges[k][1]);
        }
        assert_true(r->xml_identical);
        assert_false(r->identical);
        mrimg_compare_free(r);
        mrimg_close(a);
        mrimg_close(b);
    }
    /* the same save under two layouts of the same paused guest: multifd */
    mrimg_image *a = open_off("qemu/mapped.mig", 0), *b = open_off("qemu/mapped-multifd4.mig", 0);
    mrimg_compare_result *r = compare_files(a, b);
    assert_true(r->ram_identical);
    mrimg_compare_free(r);
    mrimg_close(a);
    mrimg_close(b);
}

static void digest_of(const char *path, uint8_t out[32])
{
    mrimg_error err;
    mrimg_image *img = t_open(path, NULL, &err);
    assert_non_null(img);
    mrimg_digest *d = NULL;
    assert_int_equal(mrimg_digest_compute(img, &d, NULL, NULL, &err), 0);
    memcpy(out, d->digest, 32);
    /* the image digest is recomputable from the parts */
    assert_true(d->nblocks > 0);
    assert_true(d->device_bytes > 0);
    mrimg_digest_free(d);
    mrimg_close(img);
}

static void test_conversions(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int out;
    } outs[] = {
        {"raw", MRIMG_OUT_RAW},     {"gzip", MRIMG_OUT_GZIP},
        {"bzip2", MRIMG_OUT_BZIP2}, {"xz", MRIMG_OUT_XZ},
        {"lzop", MRIMG_OUT_LZOP},   {"zstd", MRIMG_OUT_ZSTD},
        {"sparse", MRIMG_OUT_SPARSE}, {"qemu", MRIMG_OUT_QEMU},
        {"qemu-mapped", MRIMG_OUT_QEMU_MAPPED},
    };
    const char *src = fixture_path("libvirt/raw.sav");
    uint8_t ref[32], d[32];
    digest_of(src, ref);
    mrimg_error err;
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(outs); i++) {
        char out[4096];
        snprintf(out, sizeof(out), "%s/conv.%s", g_dir, outs[i].name);
        mrimg_image *in = t_open(src, NULL, &err);
        assert_non_null(in);
        t_convert_opts o;
        t_convert_opts_init(&o);
        o.out = outs[i].out;
        o.force = 1;
        int rc = t_convert(in, out, &o, NULL, &err);
        if (rc)
            fprintf(stderr, "convert to %s: %s\n", outs[i].name, err.message);
        assert_int_equal(rc, 0);
        mrimg_close(in);

        mrimg_verify_result *r = verify(out);
        if (r->errors || r->warnings) {
            dump(out, r);
            fail();
        }
        mrimg_verify_free(r);

        digest_of(out, d);
        assert_memory_equal(d, ref, 32);

        mrimg_image *a = t_open(src, NULL, &err), *b = t_open(out, NULL, &err);
        assert_non_null(a);
        assert_non_null(b);
        mrimg_compare_result *c = compare_files(a, b);
        assert_true(c->identical);
        assert_true(c->ram_identical);
        assert_true(c->device_identical);
        if (outs[i].out < MRIMG_OUT_QEMU) {
            assert_true(c->xml_identical);
            assert_null(c->xml_diff);
        } else {
            /* a bare stream has no XML: the difference is shown, secrets hidden */
            assert_false(c->xml_identical);
            assert_non_null(c->xml_diff);
            assert_null(strstr(c->xml_diff, "s3cr3t"));
        }
        mrimg_compare_free(c);
        mrimg_close(a);
        mrimg_close(b);
        unlink(out);
    }
}

/* ---- corrupted copies -------------------------------------------------------------- */

static void test_corrupt_container(void **state)
{
    (void)state;
    const char *rel = "libvirt/raw.sav";
    const char *p;
    uint32_t data_len;
    peek(fixture_path(rel), 20, &data_len, 4);
    uint64_t payload = 92 + (uint64_t)data_len;

    p = copy_fixture(rel);
    flip(p, 15);
    expect_error(p, "container.magic", "flipped magic");

    p = copy_fixture(rel);
    poke(p, 12, "Part", 4);
    expect_error(p, "container.incomplete", "partial magic");

    p = copy_fixture(rel);
    put_le32(p, 16, 7);
    expect_error(p, "container.version", "version 7");

    p = copy_fixture(rel);
    put_le32(p, 28, 9);
    expect_error(p, "container.format", "format 9");

    p = copy_fixture(rel);
    put_le32(p, 28, MRIMG_FORMAT_GZIP);
    expect_error(p, "payload.format", "gzip format on a raw payload");

    p = copy_fixture(rel);
    put_le32(p, 28, MRIMG_FORMAT_SPARSE);
    expect_error(p, "mapped.format", "sparse format on a plain stream");

    p = copy_fixture(rel);
    put_le32(p, 20, 0);
    expect_error(p, "container.data_len", "data_len 0");

    p = copy_fixture(rel);
    put_le32(p, 20, 0x7fffffff);
    expect_error(p, "container.data_len", "data_len over the cap");

    p = copy_fixture(rel);
    put_le32(p, 20, (uint32_t)fsize(p));
    expect_error(p, "container.data_len", "data_len beyond the file");

    p = copy_fixture(rel);
    put_le32(p, 20, data_len + 8);
    expect_error(p, "stream.magic", "data_len 8 too large");

    p = copy_fixture(rel);
    put_le32(p, 32, data_len + 100);
    expect_error(p, "container.cookie", "cookie offset beyond data_len");

    p = copy_fixture(rel);
    put_le32(p, 32, 40);
    expect_error(p, "container.xml", "cookie offset inside the XML");

    p = copy_fixture(rel);
    poke(p, 92 + 1, "x", 1); /* <xomain */
    expect_error(p, "container.xml", "damaged root element");

    p = copy_fixture(rel);
    {
        size_t xl;
        char *x = (char *)read_file(p, &xl);
        char *n = memmem(x, xl, "<name>", 6);
        assert_non_null(n);
        poke(p, (uint64_t)(n - x) + 1, "nome", 4);
        free(x);
    }
    expect_error(p, "container.xml", "<name> renamed");

    p = copy_fixture(rel);
    put_le32(p, 60, 1);
    expect_warning_only(p, "container.reserved", "reserved word");

    p = copy_fixture(rel);
    put_le32(p, 24, 5);
    expect_warning_only(p, "container.running", "was_running 5");

    p = copy_fixture(rel);
    poke(p, payload - 10, "x", 1);
    poke(p, payload - 7, "y", 1);
    {
        /* the warning points at the first non-zero byte, not at byte 92 */
        mrimg_verify_result *r = verify(p);
        bool found = false;
        for (unsigned i = 0; i < r->nproblems; i++) {
            const mrimg_problem *q = &r->problems[i];
            if (strcmp(q->check, "container.padding"))
                continue;
            found = true;
            assert_int_equal(q->offset_kind, MRIMG_OFF_FILE);
            assert_int_equal(q->offset, payload - 10);
            assert_non_null(strstr(q->message, "2 non-zero"));
        }
        assert_true(found);
        mrimg_verify_free(r);
    }
    expect_warning_only(p, "container.padding", "padding");

    p = copy_fixture(rel);
    append(p, "garbage!", 8);
    expect_warning_only(p, "payload.trailing", "garbage after a raw stream");
}

/* the stream of raw.sav: damage records */
static void test_corrupt_stream(void **state)
{
    (void)state;
    const char *rel = "libvirt/raw.sav";
    mrimg_image *img = scan(fixture_path(rel));
    const mrimg_stream_info *si = mrimg_stream(img);
    uint64_t base = si->stream_offset, ram_end = base + si->ram_end, eof = base + si->eof_offset,
             json = base + si->vmdesc_offset;
    mrimg_close(img);
    size_t n;
    uint8_t *all = read_file(fixture_path(rel), &n);
    assert_non_null(all);
    const char *p;

    p = copy_fixture(rel);
    flip(p, base + 1);
    expect_error(p, "stream.magic", "stream magic");

    p = copy_fixture(rel);
    put_be32(p, base + 4, 2);
    expect_error(p, "stream.version", "stream version 2");

    p = copy_fixture(rel);
    put_be32(p, base + 9, 300); /* machine name length */
    expect_error(p, "stream.config", "machine name length");

    uint32_t mlen = rd_be32(all + base + 9);
    uint64_t ram_start = base + 13 + mlen; /* no subsections in this stream */
    assert_int_equal(all[ram_start], QEMU_VM_SECTION_START);

    p = copy_fixture(rel);
    put_be32(p, ram_start + 1 + 4 + 1 + 3 + 4, 5); /* RAM section version */
    expect_error(p, "stream.section", "RAM section version");

    p = copy_fixture(rel);
    poke(p, ram_start, "\x09", 1);
    expect_error(p, "stream.section", "unknown record type");

    /* MEM_SIZE: the block list total */
    uint64_t mem_size = ram_start + 1 + 4 + 1 + 3 + 8;
    assert_int_equal(all[mem_size + 7] & 0x04, 0x04);
    p = copy_fixture(rel);
    put_be64(p, mem_size, (rd_be64(all + mem_size) + 0x1000000) | 0x04);
    expect_error(p, "stream.blocks", "block list total");

    /* the first block's length */
    p = copy_fixture(rel);
    uint8_t nl = all[mem_size + 8];
    put_be64(p, mem_size + 8 + 1 + nl, 12345);
    expect_error(p, "stream.blocks", "block length");

    /* the footer after the setup EOS of RAM START */
    const uint8_t foot[] = {QEMU_VM_SECTION_FOOTER, 0, 0, 0};
    uint8_t *f = memmem(all + mem_size, n - mem_size, foot, sizeof(foot));
    assert_non_null(f);
    p = copy_fixture(rel);
    poke(p, (uint64_t)(f - all) + 4, "\x63", 1);
    expect_error(p, "stream.footer", "footer id");

    /* the record after the first PART header: bad flags */
    uint64_t part = (uint64_t)(f - all) + 5;
    assert_int_equal(all[part], QEMU_VM_SECTION_PART);
    p = copy_fixture(rel);
    poke(p, part + 5 + 7, "\x41", 1);
    expect_error(p, "stream.ram", "RAM record flags");

    /* SWITCHOVER_START becomes an unknown command */
    const uint8_t sw[] = {QEMU_VM_COMMAND, 0, 11, 0, 0, QEMU_VM_SECTION_END};
    uint8_t *c = memmem(all, n, sw, sizeof(sw));
    assert_non_null(c);
    p = copy_fixture(rel);
    poke(p, (uint64_t)(c - all) + 2, "\x2a", 1);
    expect_error(p, "stream.command", "unknown command");

    /* a ZERO record with a fill byte */
    p = copy_fixture(rel);
    {
        /* a ZERO|CONTINUE record (flags 0x22, fill byte 0) followed by
         * another CONTINUE record */
        uint64_t i = part + 20, found = 0;
        for (; i + 10 < n && !found; i++)
            if (all[i] == 0x22 && all[i + 1] == 0 && (all[i + 9] == 0x22 || all[i + 9] == 0x28) &&
                !all[i - 7] && !all[i - 6] && !all[i - 5] && !all[i - 4] && !all[i + 2] &&
                !all[i + 3] && !all[i + 4] && !all[i + 5] && (all[i - 1] & 0x0f) == 0)
                found = i;
        assert_true(found > 0);
        poke(p, found + 1, "\x01", 1);
    }
    expect_error(p, "stream.ram", "zero page fill byte");

    /* device state: a section header, a footer, the JSON */
    p = copy_fixture(rel);
    poke(p, ram_end, "\x09", 1);
    expect_error(p, "stream.devices", "device section type");

    p = copy_fixture(rel);
    flip(p, ram_end + 6); /* first letter of the first device's idstr */
    expect_error(p, "stream.devices", "device name");

    p = copy_fixture(rel);
    flip(p, eof - 1); /* last byte of the last device's footer */
    expect_error(p, "stream.devices", "last footer damaged");

    p = copy_fixture(rel);
    {
        /* remove one byte from the middle of the device state: the walk
         * finds the footer one byte early */
        uint64_t mid = ram_end + (eof - ram_end) / 2;
        int fd = open(p, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, all, mid), (ssize_t)mid);
        assert_int_equal(write(fd, all + mid + 1, n - mid - 1), (ssize_t)(n - mid - 1));
        close(fd);
    }
    expect_error(p, "stream.devices", "one device byte missing");

    p = copy_fixture(rel);
    poke(p, json + 1, "[", 1);
    expect_error(p, "stream.vmdesc", "JSON damaged");

    p = copy_fixture(rel);
    put_be32(p, eof + 2, (uint32_t)(n - (json - 0)) - 1);
    expect_error(p, "stream.vmdesc", "VMDESCRIPTION length");
    free(all);
}

/* Truncate a copy at off and check the problem named. */
static void expect_cut(const char *rel, uint64_t off, const char *check)
{
    const char *p = copy_fixture(rel);
    cut(p, off);
    char what[200];
    snprintf(what, sizeof(what), "%s cut at %llu", rel, (unsigned long long)off);
    expect_error(p, check, what);
}

/* Cut right after the EOF record: the shape of a stream written with
 * suppress-vmdesc, which QEMU loads with a warning: the device state could
 * not be checked (a warning), the image is not refused. */
static void expect_cut_after_eof(const char *rel, uint64_t off)
{
    const char *p = copy_fixture(rel);
    cut(p, off);
    char what[200];
    snprintf(what, sizeof(what), "%s cut after its EOF record at %llu", rel,
             (unsigned long long)off);
    expect_warning_only(p, "stream.vmdesc", what);
}

/* A cut anywhere in the device state is a truncation, also right after a
 * 0x00 byte (which is not an EOF record there). */
static const char *tail_cut_check(const uint8_t *all, uint64_t off)
{
    (void)all;
    (void)off;
    return "stream.truncated";
}

static void test_truncations_plain(void **state)
{
    (void)state;
    static const char *const rels[] = {"libvirt/raw.sav", "qemu/plain-multiblock.mig"};
    for (size_t r = 0; r < MRIMG_ARRAY_SIZE(rels); r++) {
        const char *rel = rels[r];
        mrimg_image *img = scan(fixture_path(rel));
        const mrimg_stream_info *si = mrimg_stream(img);
        uint64_t base = si->stream_offset, ram_end = base + si->ram_end,
                 eof = base + si->eof_offset, json = base + si->vmdesc_offset;
        bool libvirt = mrimg_container(img)->is_libvirt;
        mrimg_close(img);
        size_t n;
        uint8_t *all = read_file(fixture_path(rel), &n);
        if (libvirt) {
            expect_cut(rel, 0, "container.magic");
            expect_cut(rel, 16, "container.truncated");
            expect_cut(rel, 91, "container.truncated");
            expect_cut(rel, 92, "container.data_len");
            expect_cut(rel, 92 + 500, "container.data_len");
            expect_cut(rel, base - 1, "container.data_len");
            expect_cut(rel, base, "payload.truncated");
        } else {
            expect_cut(rel, 0, "container.magic");
        }
        expect_cut(rel, base + 4, "stream.truncated");
        expect_cut(rel, base + 8, "stream.truncated");
        expect_cut(rel, base + 12, "stream.truncated");
        uint32_t mlen = rd_be32(all + base + 9);
        uint64_t ram_start = base + 13 + mlen;
        expect_cut(rel, ram_start, "stream.truncated");
        expect_cut(rel, ram_start + 1, "stream.truncated");
        expect_cut(rel, ram_start + 20, "stream.truncated");
        expect_cut(rel, ram_start + 40, "stream.truncated");
        /* mid-page: the page of 0x5a bytes of blob.bin */
        static uint8_t page5a[4096];
        memset(page5a, 0x5a, sizeof(page5a));
        uint8_t *pg = memmem(all, n, page5a, sizeof(page5a));
        assert_non_null(pg);
        uint64_t pgo = (uint64_t)(pg - all);
        expect_cut(rel, pgo, "stream.truncated");
        expect_cut(rel, pgo + 2048, "stream.truncated");
        expect_cut(rel, pgo + 4095, "stream.truncated");
        expect_cut(rel, ram_end - 1, "stream.truncated");
        expect_cut(rel, ram_end, "stream.truncated");
        for (uint64_t k = 1; k <= 7; k++) {
            uint64_t at = ram_end + (eof - ram_end) * k / 8;
            expect_cut(rel, at, tail_cut_check(all, at));
        }
        expect_cut(rel, eof, "stream.truncated");
        expect_cut_after_eof(rel, eof + 1);
        expect_cut(rel, eof + 4, tail_cut_check(all, eof + 4));
        /* cut inside the VMDESCRIPTION JSON after a sound device state:
         * QEMU loads it silently (tests/qemu/test_judgement.py), a warning */
        expect_cut_after_eof(rel, json + 1);
        expect_cut_after_eof(rel, json + (n - json) / 2);
        expect_cut_after_eof(rel, n - 1);
        free(all);
    }
}

static void test_truncations_mapped(void **state)
{
    (void)state;
    const char *rel = "libvirt/sparse.sav";
    mrimg_image *img = scan(fixture_path(rel));
    const mrimg_stream_info *si = mrimg_stream(img);
    uint64_t base = si->stream_offset, ram_end = base + si->ram_end, eof = base + si->eof_offset;
    uint64_t size = mrimg_container(img)->file_size;
    unsigned nb = mrimg_block_count(img);
    expect_cut(rel, base + 8, "stream.truncated");
    for (unsigned i = 0; i < nb; i++) {
        const mrimg_ram_block_info *b = mrimg_block(img, i);
        expect_cut(rel, b->header_offset, "stream.truncated");
        expect_cut(rel, b->header_offset + 14, "stream.truncated");
        expect_cut(rel, b->bitmap_offset, "mapped.region");
        expect_cut(rel, b->bitmap_offset + b->bitmap_size / 2, "mapped.region");
        expect_cut(rel, b->bitmap_offset + b->bitmap_size, "mapped.region");
        expect_cut(rel, b->pages_offset, "mapped.region");
        /* mid-page of the first page with data */
        uint64_t first = 0;
        while (first < b->pages) {
            mrimg_error err;
            if (mrimg_ram_page_has_data(img, i, first, &err) == 1)
                break;
            first++;
        }
        if (first < b->pages)
            expect_cut(rel, b->pages_offset + first * b->page_size + b->page_size / 2,
                       "mapped.region");
        expect_cut(rel, b->pages_offset + b->used_length - 1, "mapped.region");
        expect_cut(rel, b->pages_offset + b->used_length, "stream.truncated");
    }
    size_t n;
    (void)n;
    uint8_t tail[16];
    expect_cut(rel, ram_end, "stream.truncated");
    peek(fixture_path(rel), ram_end + 99, tail, 1);
    (void)tail;
    expect_cut(rel, ram_end + 100, "stream.truncated");
    expect_cut(rel, eof, "stream.truncated");
    expect_cut_after_eof(rel, eof + 1);
    expect_cut_after_eof(rel, size - 1); /* inside the JSON: a warning */
    mrimg_close(img);
}

static void test_corrupt_mapped(void **state)
{
    (void)state;
    const char *rel = "libvirt/sparse.sav";
    mrimg_image *img = scan(fixture_path(rel));
    uint64_t size = mrimg_container(img)->file_size;
    unsigned nb = mrimg_block_count(img);
    const mrimg_ram_block_info *b0 = mrimg_block(img, 0), *b1 = mrimg_block(img, 1);
    const mrimg_ram_block_info *odd = NULL; /* a block whose bitmap has spare bits */
    for (unsigned i = 0; i < nb && !odd; i++)
        if (mrimg_block(img, i)->pages % 64)
            odd = mrimg_block(img, i);
    assert_non_null(odd);
    uint64_t h0 = b0->header_offset;
    const char *p;

    p = copy_fixture(rel);
    put_be32(p, h0, 2);
    expect_error(p, "mapped.header", "mapped-ram version 2");

    p = copy_fixture(rel);
    put_be64(p, h0 + 4, 8192);
    expect_error(p, "mapped.page_size", "page size 8192");

    p = copy_fixture(rel);
    put_be64(p, h0 + 20, b0->pages_offset + 512);
    expect_error(p, "mapped.alignment", "pages_offset not page-aligned");

    p = copy_fixture(rel);
    put_be64(p, h0 + 20, b0->pages_offset + 4096);
    expect_error(p, "mapped.stream", "pages_offset moved by a page");

    p = copy_fixture(rel);
    put_be64(p, h0 + 12, size + 4096);
    expect_error(p, "mapped.region", "bitmap beyond the file");

    p = copy_fixture(rel);
    put_be64(p, b1->header_offset + 20, (size + (1u << 20)) & ~(uint64_t)4095);
    expect_error(p, "mapped.region", "pages beyond the file");

    p = copy_fixture(rel);
    put_be64(p, h0 + 12, UINT64_MAX - 100);
    expect_error(p, "mapped.region", "bitmap offset overflowing");

    p = copy_fixture(rel);
    put_be64(p, h0 + 12, h0);
    expect_error(p, "mapped.overlap", "bitmap over the block header");

    p = copy_fixture(rel);
    put_be64(p, b1->header_offset + 20, b0->pages_offset);
    expect_error(p, "mapped.overlap", "pages of two blocks overlapping");

    p = copy_fixture(rel);
    put_be64(p, b1->header_offset + 12, b0->pages_offset + 4096);
    expect_error(p, "mapped.overlap", "bitmap inside another block's pages");

    p = copy_fixture(rel);
    {
        uint8_t w[8];
        peek(p, odd->bitmap_offset + odd->bitmap_size - 8, w, 8);
        w[7] |= 0x80; /* the last bit of the last word */
        poke(p, odd->bitmap_offset + odd->bitmap_size - 8, w, 8);
    }
    expect_error(p, "mapped.bitmap", "bitmap bit past the last page");

    p = copy_fixture(rel);
    put_le32(p, 28, MRIMG_FORMAT_RAW);
    expect_error(p, "mapped.format", "sparse payload labelled raw");

    p = copy_fixture(rel);
    put_be64(p, h0 - 8, b0->used_length * 2);
    expect_error(p, "stream.blocks", "block length over the total");

    p = copy_fixture(rel);
    append(p, "garbage!", 8);
    expect_warning_only(p, "payload.trailing", "garbage after a sparse image");
    mrimg_close(img);
}

/* ---- codec checksums and trailing data ------------------------------------------------ */

static uint64_t payload_of(const char *path)
{
    uint32_t dl;
    peek(path, 20, &dl, 4);
    return 92 + (uint64_t)dl;
}

static uint64_t varint(const uint8_t *p, size_t *i)
{
    uint64_t v = 0;
    for (int s = 0; s < 63; s += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* The file offset of the last byte of the first xz block's check, found
 * through the index. */
static uint64_t xz_first_check(const char *p)
{
    uint64_t pay = payload_of(p), size = fsize(p);
    uint8_t ft[12];
    peek(p, size - 12, ft, 12);
    assert_memory_equal(ft + 10, "YZ", 2);
    uint32_t bsz = ft[4] | ft[5] << 8 | ft[6] << 16 | (uint32_t)ft[7] << 24;
    uint64_t isz = ((uint64_t)bsz + 1) * 4;
    int ck = ft[9] & 15;
    size_t cks = ck == 0 ? 0 : ck == 1 ? 4 : ck == 4 ? 8 : 32;
    assert_true(cks > 0);
    uint8_t *ix = malloc(isz);
    peek(p, size - 12 - isz, ix, isz);
    assert_int_equal(ix[0], 0);
    size_t i = 1;
    uint64_t nrec = varint(ix, &i);
    assert_true(nrec >= 1);
    uint64_t unpadded = varint(ix, &i);
    free(ix);
    return pay + 12 + unpadded - 1;
}

static void test_corrupt_codecs(void **state)
{
    (void)state;
    const char *p;
    uint64_t size, pay;
    uint8_t b[64];

    /* gzip: CRC32, ISIZE, truncation, trailing bytes */
    p = copy_fixture("libvirt/gzip.sav");
    size = fsize(p);
    flip(p, size - 8);
    expect_error(p, "payload.checksum", "gzip CRC32");
    p = copy_fixture("libvirt/gzip.sav");
    flip(p, size - 2);
    expect_error(p, "payload.checksum", "gzip ISIZE");
    p = copy_fixture("libvirt/gzip.sav");
    cut(p, size / 2);
    expect_error(p, "payload.truncated", "gzip cut");
    p = copy_fixture("libvirt/gzip.sav");
    cut(p, payload_of(p) + 1);
    expect_error(p, "payload.truncated", "gzip cut inside its magic");
    p = copy_fixture("libvirt/gzip.sav");
    append(p, "trailing", 8);
    expect_error(p, "payload.trailing", "gzip + garbage");
    p = copy_fixture("libvirt/gzip.sav");
    memset(b, 0, sizeof(b));
    append(p, b, 64);
    expect_warning_only(p, "payload.trailing", "gzip + zeros");

    /* bzip2: the first block CRC (after "BZh9" and the 48-bit block magic) */
    p = copy_fixture("libvirt/bzip2.sav");
    pay = payload_of(p);
    peek(p, pay, b, 10);
    assert_memory_equal(b, "BZh", 3);
    assert_memory_equal(b + 4, "\x31\x41\x59\x26\x53\x59", 6);
    flip(p, pay + 11);
    expect_error(p, "payload.checksum", "bzip2 block CRC");
    p = copy_fixture("libvirt/bzip2.sav");
    flip(p, fsize(p) - 2); /* the stream CRC */
    expect_error(p, "payload.checksum", "bzip2 stream CRC");
    p = copy_fixture("libvirt/bzip2.sav");
    cut(p, fsize(p) - 100);
    expect_error(p, "payload.truncated", "bzip2 cut");

    /* xz: the check of the first block, found through the index */
    p = copy_fixture("libvirt/xz.sav");
    pay = payload_of(p);
    size = fsize(p);
    flip(p, xz_first_check(p));
    expect_error(p, "payload.checksum", "xz block check");
    p = copy_fixture("libvirt/xz.sav");
    append(p, "trailing", 8);
    expect_error(p, "payload.trailing", "xz + garbage");
    p = copy_fixture("libvirt/xz.sav");
    cut(p, size - 30);
    expect_error(p, "payload.truncated", "xz cut");

    /* zstd: the frame checksum is the last 4 bytes */
    p = copy_fixture("libvirt/zstd.sav");
    size = fsize(p);
    flip(p, size - 1);
    expect_error(p, "payload.checksum", "zstd frame checksum");
    p = copy_fixture("libvirt/zstd.sav");
    append(p, "trailing", 8);
    expect_error(p, "payload.trailing", "zstd + garbage");
    p = copy_fixture("libvirt/zstd.sav");
    memset(b, 0, sizeof(b));
    append(p, b, 16);
    expect_error(p, "payload.trailing", "zstd + zeros (zstd -dc fails)");
    p = copy_fixture("libvirt/zstd.sav");
    cut(p, size - 5);
    expect_error(p, "payload.truncated", "zstd cut");

    /* lzop: the Adler-32 of the first block's data, and the header checksum */
    p = copy_fixture("libvirt/lzop.sav");
    pay = payload_of(p);
    peek(p, pay, b, 40);
    assert_memory_equal(b, "\x89LZO\0\r\n\x1a\n", 9);
    assert_true(rd_be16(b + 9) >= 0x0940);
    assert_int_equal(rd_be32(b + 17) & 0x800, 0); /* no filter */
    assert_int_equal(rd_be32(b + 17) & 0x1, 0x1);  /* F_ADLER32_D */
    uint64_t hdr_ck = pay + 34 + b[33];
    flip(p, hdr_ck + 4 + 8); /* first block: d_len, c_len, d_adler32 */
    expect_error(p, "payload.checksum", "lzop data Adler-32");
    p = copy_fixture("libvirt/lzop.sav");
    flip(p, hdr_ck);
    expect_error(p, "payload.checksum", "lzop header checksum");
    p = copy_fixture("libvirt/lzop.sav");
    cut(p, fsize(p) / 2);
    expect_error(p, "payload.truncated", "lzop cut");
}

#define ANY_OFFSET UINT64_MAX

/* The one problem of the payload at path: check, file offset (ANY_OFFSET:
 * any in the payload) and message. */
static void expect_payload(const char *path, const char *check, uint64_t off, const char *msg)
{
    mrimg_verify_result *r = verify(path);
    unsigned found = 0;
    for (unsigned i = 0; i < r->nproblems; i++) {
        const mrimg_problem *q = &r->problems[i];
        if (strncmp(q->check, "payload.", 8))
            continue;
        found++;
        if (strcmp(q->check, check) || q->offset_kind != MRIMG_OFF_FILE ||
            (off == ANY_OFFSET ? q->offset < payload_of(path) : q->offset != off) ||
            strcmp(q->message, msg)) {
            dump(check, r);
            fail();
        }
    }
    if (found != 1)
        dump(check, r);
    assert_int_equal(found, 1);
    mrimg_verify_free(r);
}

/* bzip2 and xz report a wrong stored checksum and corrupt data alike; the
 * codec's dec_recheck tells them apart (payload.checksum vs payload.decode),
 * and the verifier words neither itself. */
static void test_codec_recheck(void **state)
{
    (void)state;
    const char *p;
    uint64_t pay;

    /* bzip2: the first block CRC (after "BZh9" and the block magic) ... */
    p = copy_fixture("libvirt/bzip2.sav");
    pay = payload_of(p);
    flip(p, pay + 11);
    expect_payload(p, "payload.checksum", pay,
                   "a bzip2 CRC does not match: the block CRCs stored in the bzip2 stream "
                   "starting here do not combine to its stream CRC (a stored CRC is damaged)");
    /* ... vs a byte of its compressed data: the stored CRCs still agree */
    p = copy_fixture("libvirt/bzip2.sav");
    flip(p, pay + 5000);
    char want[256];
    snprintf(want, sizeof(want),
             "bzip2 data integrity error in the stream at file offset %llu (a block or stream "
             "CRC does not match, or the data is corrupt)",
             (unsigned long long)pay);
    expect_payload(p, "payload.decode", ANY_OFFSET, want);

    /* xz: the check of the first block, reported where the decoder stopped:
     * the end of the block, padded to 4 bytes from the stream start ... */
    p = copy_fixture("libvirt/xz.sav");
    pay = payload_of(p);
    uint64_t ck = xz_first_check(p);
    flip(p, ck);
    expect_payload(p, "payload.checksum", pay + ((ck + 1 - pay + 3) & ~3ull),
                   "an xz integrity check does not match (the data decodes with the checks "
                   "ignored)");
    /* ... vs a byte of its compressed data */
    p = copy_fixture("libvirt/xz.sav");
    flip(p, pay + 5000);
    snprintf(want, sizeof(want),
             "in the xz stream at file offset %llu: compressed data is corrupt or an integrity "
             "check failed",
             (unsigned long long)pay);
    expect_payload(p, "payload.decode", ANY_OFFSET, want);
}

/* Damage every 4099th byte region of a small image, one at a time: never a
 * crash, always a clean result (run under ASan for the full effect). */
static void test_no_crash_sweep(void **state)
{
    (void)state;
    static const char *const rels[] = {"qemu/plain.mig", "libvirt/zstd.sav", "libvirt/gzip.sav"};
    for (size_t r = 0; r < MRIMG_ARRAY_SIZE(rels); r++) {
        const char *src = fixture_path(rels[r]);
        uint64_t size = fsize(src);
        const char *p = scratch("sweep");
        for (uint64_t off = 7; off < size; off += size / 97 + 1) {
            test_sparse_copy(src, p);
            flip(p, off);
            mrimg_verify_result *res = NULL;
            mrimg_error err;
            int rc = t_verify(p, NULL, &res, &err);
            assert_int_equal(rc, 0);
            assert_non_null(res);
            mrimg_verify_free(res);
        }
    }
}

static void test_problem_cap(void **state)
{
    (void)state;
    const char *p = copy_fixture("libvirt/raw.sav");
    put_le32(p, 60, 1);
    put_le32(p, 24, 5);
    t_verify_opts o = {0};
    o.max_problems = 1;
    mrimg_verify_result *r = NULL;
    mrimg_error err;
    assert_int_equal(t_verify(p, &o, &r, &err), 0);
    assert_int_equal(r->nproblems, 1);
    assert_int_equal(r->warnings, 2);
    assert_int_equal(r->dropped, 1);
    mrimg_verify_free(r);
    /* not a file */
    assert_int_equal(t_verify("/nonexistent/x", NULL, &r, &err), MRIMG_ERR_IO);
    assert_null(r);
}

/* ---- the one judgement (mrimg_check) and mrimg_convert's use of it ------------------ */

static uint64_t find_bytes(const char *path, const void *needle, size_t n)
{
    size_t len;
    uint8_t *d = read_file(path, &len);
    assert_non_null(d);
    void *m = memmem(d, len, needle, n);
    assert_non_null(m);
    uint64_t at = (uint64_t)((uint8_t *)m - d);
    free(d);
    return at;
}

static bool has_p(const mrimg_verify_result *r, const char *check, mrimg_severity sev)
{
    return has(r, check, sev);
}

static void test_judgement(void **state)
{
    (void)state;
    mrimg_error err;
    const mrimg_verify_result *r, *r2;
    t_convert_opts co;
    const char *out = scratch("judged.out");

    /* malformed domain XML: open works, the judgement has the error, the
     * conversion is refused naming it, and no output appears */
    const char *p = copy_fixture("libvirt/raw.sav");
    poke(p, find_bytes(p, "</name>", 7) + 3, "A", 1);
    mrimg_image *img = t_open(p, NULL, &err);
    assert_non_null(img);
    assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &r, &err), 0);
    assert_true(r->errors > 0);
    assert_true(has_p(r, "container.xml", MRIMG_SEV_ERROR));
    assert_false(r->data_checked);
    assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &r2, &err), 0);
    assert_ptr_equal(r, r2); /* cached */
    t_convert_opts_init(&co);
    unlink(out);
    assert_int_equal(t_convert(img, out, &co, NULL, &err), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(err.message, "container.xml"));
    assert_non_null(strstr(err.message, "does not match"));
    assert_int_equal(err.offset_kind, MRIMG_OFF_FILE);
    assert_int_not_equal(access(out, F_OK), 0);
    /* a full judgement replaces the quick one; a quick request then reuses it */
    assert_int_equal(mrimg_check(img, MRIMG_CHECK_FULL, NULL, NULL, &r2, &err), 0);
    assert_true(r2->data_checked);
    assert_true(has_p(r2, "container.xml", MRIMG_SEV_ERROR));
    assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &r, &err), 0);
    assert_ptr_equal(r, r2);
    assert_int_equal(mrimg_check(img, 0x80, NULL, NULL, &r, &err), MRIMG_ERR_INVAL);
    mrimg_close(img);

    /* non-UTF-8 in the domain XML */
    p = copy_fixture("libvirt/raw.sav");
    poke(p, find_bytes(p, "<name>", 6) + 6, "\xff", 1);
    expect_error(p, "container.xml", "a byte that is not UTF-8 in the domain XML");
    assert_int_equal(mrimg_xml_check("<domain><name>\xff</name><uuid>u</uuid></domain>", &err),
                     MRIMG_ERR_INVAL);
    assert_non_null(strstr(err.message, "UTF-8"));

    /* a RAM section version QEMU cannot load: the scan fails with a format
     * error (no verbatim copy), the conversion is refused */
    p = copy_fixture("qemu/plain.mig");
    uint64_t v = find_bytes(p, "\x03ram\0\0\0\0\0\0\0\x04", 12) + 8;
    put_be32(p, v, 5);
    img = t_open(p, NULL, &err);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &err), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(err.message, "RAM section version 5"));
    t_convert_opts_init(&co);
    co.out = MRIMG_OUT_QEMU;
    unlink(out);
    assert_int_equal(t_convert(img, out, &co, NULL, &err), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(err.message, "stream.section"));
    assert_int_not_equal(access(out, F_OK), 0);
    mrimg_close(img);

    /* bytes after a complete raw stream: a warning; the scan accepts them,
     * and the output is the stream without them */
    p = copy_fixture("qemu/plain.mig");
    uint64_t size = fsize(p);
    append(p, "garbage!", 8);
    img = t_open(p, NULL, &err);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &err), 0);
    assert_int_equal(mrimg_stream(img)->trailing_bytes, 8);
    assert_false(mrimg_stream(img)->trailing_zero);
    assert_int_equal(mrimg_stream(img)->stream_size, size);
    assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &r, &err), 0);
    assert_int_equal(r->errors, 0);
    assert_true(has_p(r, "payload.trailing", MRIMG_SEV_WARNING));
    assert_int_equal(r->stream_size, size);
    assert_int_equal(r->stream_trailing, 8);
    static const int outs[] = {MRIMG_OUT_QEMU, MRIMG_OUT_QEMU_MAPPED};
    for (unsigned k = 0; k < 2; k++) {
        t_convert_opts_init(&co);
        co.out = outs[k];
        unlink(out);
        assert_int_equal(t_convert(img, out, &co, NULL, &err), 0);
        mrimg_verify_result *vr = verify(out);
        if (vr->errors || vr->warnings) {
            dump("converted from a stream with trailing bytes", vr);
            fail();
        }
        mrimg_verify_free(vr);
        if (outs[k] == MRIMG_OUT_QEMU)
            assert_int_equal(fsize(out), size);
    }
    mrimg_close(img);

    /* an incomplete save: refused, unless allow_incomplete, which lets
     * that problem (and only that one) through */
    p = copy_fixture("libvirt/raw.sav");
    poke(p, 0, "LibvirtQemudPart", 16);
    img = t_open(p, NULL, &err);
    assert_non_null(img);
    t_convert_opts_init(&co);
    unlink(out);
    assert_int_equal(t_convert(img, out, &co, NULL, &err), MRIMG_ERR_INCOMPLETE);
    co.allow_incomplete = 1;
    assert_int_equal(t_convert(img, out, &co, NULL, &err), 0);
    mrimg_close(img);
    poke(p, find_bytes(p, "</name>", 7) + 3, "A", 1);
    img = t_open(p, NULL, &err);
    assert_non_null(img);
    unlink(out);
    assert_int_equal(t_convert(img, out, &co, NULL, &err), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(err.message, "container.xml"));
    mrimg_close(img);
    unlink(out);
}

/* ---- one container scanner: every finding for imgverify, the first error for opening ---- */

/* The i-th finding of check in r (NULL if fewer). */
static const mrimg_problem *problem(const mrimg_verify_result *r, const char *check, unsigned i)
{
    for (unsigned k = 0; k < r->nproblems; k++)
        if (!strcmp(r->problems[k].check, check) && i-- == 0)
            return &r->problems[k];
    return NULL;
}

/* A corrupted copy with several container problems: the scanner records
 * them all (in file order, with their offsets), imgverify lists every one
 * with the scanner's text, and mrimg_open fails with the first one that
 * opening cannot get past, worded as it always was. */
typedef struct scan_case {
    const char *what;
    const char *checks[4];     /* the container findings, in order */
    mrimg_severity sev[4];
    uint64_t off[4];
    int open_code;             /* 0: opens */
    const char *open_msg;      /* the whole message of the open error */
} scan_case;

static void expect_scan(const char *p, const scan_case *c)
{
    /* the scanner alone */
    mrimg_source src;
    mrimg_error err;
    assert_int_equal(src_open(&src, p, &err), 0);
    ctr_scan sc;
    assert_int_equal(ctr_scan_file(&src, 0, &sc, &err), 0);
    unsigned n = 0;
    while (n < 4 && c->checks[n])
        n++;
    if (sc.rep.n != n) {
        for (unsigned i = 0; i < sc.rep.n; i++)
            fprintf(stderr, "  %s @%llu: %s\n", sc.rep.f[i].check,
                    (unsigned long long)sc.rep.f[i].offset, sc.rep.f[i].message);
        fail_msg("%s: %u findings, expected %u", c->what, sc.rep.n, n);
    }
    for (unsigned i = 0; i < n; i++) {
        assert_string_equal(sc.rep.f[i].check, c->checks[i]);
        assert_int_equal(sc.rep.f[i].severity, c->sev[i]);
        assert_int_equal(sc.rep.f[i].offset, c->off[i]);
    }
    assert_int_equal(sc.rep.first.code, c->open_code);

    /* imgverify: every finding, with the scanner's words */
    mrimg_verify_result *r = verify(p);
    for (unsigned i = 0; i < n; i++) {
        unsigned same = 0;
        for (unsigned k = 0; k < i; k++)
            same += !strcmp(c->checks[k], c->checks[i]);
        const mrimg_problem *q = problem(r, c->checks[i], same);
        if (!q) {
            dump(c->what, r);
            fail_msg("%s: no %s", c->what, c->checks[i]);
        }
        assert_int_equal(q->severity, c->sev[i]);
        assert_int_equal(q->offset_kind, MRIMG_OFF_FILE);
        assert_int_equal(q->offset, c->off[i]);
        assert_string_equal(q->message, sc.rep.f[i].message);
    }
    mrimg_verify_free(r);
    ctr_scan_free(&sc);
    src_close(&src);

    /* opening: the first error, or none */
    mrimg_image *img = mrimg_open(p, NULL, &err);
    if (!c->open_code) {
        assert_non_null(img);
        mrimg_close(img);
        return;
    }
    assert_null(img);
    assert_int_equal(err.code, c->open_code);
    assert_string_equal(err.message, c->open_msg);
}

static void test_container_scan(void **state)
{
    (void)state;
    const char *rel = "libvirt/raw.sav";
    uint32_t data_len, cookie;
    peek(fixture_path(rel), 20, &data_len, 4);
    peek(fixture_path(rel), 32, &cookie, 4);
    const char *p;
    char msg[512];

    /* format 9 and a cookie offset beyond data_len: two errors; opening
     * stops at the format */
    p = copy_fixture(rel);
    put_le32(p, 28, 9);
    put_le32(p, 32, data_len + 100);
    expect_scan(p, &(scan_case){
                       "format and cookie offset",
                       {"container.format", "container.cookie"},
                       {MRIMG_SEV_ERROR, MRIMG_SEV_ERROR},
                       {28, 32},
                       MRIMG_ERR_UNSUPPORTED,
                       "at file offset 28 (0x1c): unsupported save image format 9 (expected "
                       "0..6: raw, gzip, bzip2, xz, lzop, zstd, sparse)",
                   });

    /* a domain XML without <name> (opening tolerates it) and a cookie whose
     * NUL is gone: opening stops at the cookie, imgverify names both */
    p = copy_fixture(rel);
    poke(p, find_bytes(p, "<name>", 6) + 1, "nome", 4);
    poke(p, find_bytes(p, "</name>", 7) + 2, "nome", 4);
    {
        size_t n = data_len - cookie;
        char *ys = malloc(n);
        assert_non_null(ys);
        memset(ys, 'y', n);
        poke(p, 92 + (uint64_t)cookie, ys, n);
        free(ys);
    }
    snprintf(msg, sizeof(msg),
             "at file offset %u (0x%x): save cookie is not NUL-terminated within its %u bytes",
             92 + cookie, 92 + cookie, data_len - cookie);
    expect_scan(p, &(scan_case){
                       "XML root and cookie NUL",
                       {"container.xml", "container.cookie"},
                       {MRIMG_SEV_ERROR, MRIMG_SEV_ERROR},
                       {92, 92 + (uint64_t)cookie},
                       MRIMG_ERR_FORMAT,
                       msg,
                   });

    /* two warnings before an error: was_running 5, a reserved word, and
     * data_len 0 */
    p = copy_fixture(rel);
    put_le32(p, 24, 5);
    put_le32(p, 60, 1);
    put_le32(p, 20, 0);
    expect_scan(p, &(scan_case){
                       "running, reserved, data_len",
                       {"container.running", "container.reserved", "container.data_len"},
                       {MRIMG_SEV_WARNING, MRIMG_SEV_WARNING, MRIMG_SEV_ERROR},
                       {24, 36, 20},
                       MRIMG_ERR_FORMAT,
                       "at file offset 20 (0x14): invalid header data length 0 (expected the "
                       "size of the XML region)",
                   });

    /* findings that opening gets past: a partial save with dirty padding */
    p = copy_fixture(rel);
    poke(p, 12, "Part", 4);
    poke(p, 92 + (uint64_t)data_len - 3, "z", 1);
    expect_scan(p, &(scan_case){
                       "partial, padding",
                       {"container.incomplete", "container.padding"},
                       {MRIMG_SEV_ERROR, MRIMG_SEV_WARNING},
                       {0, 92 + (uint64_t)data_len - 3},
                       0,
                       NULL,
                   });

    /* a cookie offset at data_len leaves no room for the cookie's NUL:
     * opening always refused it, imgverify now says so too (it called the
     * image sound); the real cookie is now padding after the XML */
    p = copy_fixture(rel);
    put_le32(p, 32, data_len);
    snprintf(msg, sizeof(msg),
             "at file offset %u (0x%x): save cookie is not NUL-terminated within its 0 bytes",
             92 + data_len, 92 + data_len);
    expect_scan(p, &(scan_case){
                       "cookie at data_len",
                       {"container.cookie", "container.cookie", "container.padding"},
                       {MRIMG_SEV_WARNING, MRIMG_SEV_ERROR, MRIMG_SEV_WARNING},
                       {32, 92 + (uint64_t)data_len, 92 + (uint64_t)cookie},
                       MRIMG_ERR_FORMAT,
                       msg,
                   });
}

/* The payload probe, shared by opening, reading and imgverify: a header
 * that says zstd over a gzip payload is one payload.format finding for
 * imgverify and the same judgement when the payload is opened. */
static void test_payload_probe(void **state)
{
    (void)state;
    const char *p = copy_fixture("libvirt/gzip.sav");
    put_le32(p, 28, MRIMG_FORMAT_ZSTD);
    mrimg_verify_result *r = verify(p);
    const mrimg_problem *q = problem(r, "payload.format", 0);
    assert_non_null(q);
    assert_string_equal(q->message, "the header says the payload is zstd, but it is gzip: "
                                    "libvirt could not restore it");
    assert_int_equal(r->payload_format, MRIMG_FORMAT_GZIP);
    mrimg_verify_free(r);

    mrimg_error err;
    mrimg_image *img = mrimg_open(p, NULL, &err);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &err), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(err.message, "the header says the payload is zstd, but it starts "
                                        "with gzip magic"));
    mrimg_close(img);

    /* the probe itself, on the container as scanned */
    mrimg_source src;
    assert_int_equal(src_open(&src, p, &err), 0);
    ctr_scan sc;
    assert_int_equal(ctr_scan_file(&src, 0, &sc, &err), 0);
    assert_int_equal(sc.rep.n, 0);
    img_payload pl;
    assert_int_equal(img_probe_payload(&src, &sc.info, &pl, &sc.rep, &err), 0);
    assert_int_equal(sc.rep.n, 1);
    assert_string_equal(sc.rep.f[0].check, "payload.format");
    assert_int_equal(sc.rep.first.code, MRIMG_ERR_FORMAT);
    assert_int_equal(pl.enc, MRIMG_FORMAT_GZIP);
    ctr_scan_free(&sc);
    src_close(&src);
}

static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&g_dir, "verify");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_xml),
        cmocka_unit_test(test_fixtures_sound),
        cmocka_unit_test(test_compare_pairs),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_corrupt_container),
        cmocka_unit_test(test_container_scan),
        cmocka_unit_test(test_payload_probe),
        cmocka_unit_test(test_corrupt_stream),
        cmocka_unit_test(test_truncations_plain),
        cmocka_unit_test(test_truncations_mapped),
        cmocka_unit_test(test_corrupt_mapped),
        cmocka_unit_test(test_corrupt_codecs),
        cmocka_unit_test(test_codec_recheck),
        cmocka_unit_test(test_no_crash_sweep),
        cmocka_unit_test(test_problem_cap),
        cmocka_unit_test(test_judgement),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
