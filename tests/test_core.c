/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The core reader against ground truth: QEMU's own facts (facts.json), the
 * blob loaded into every guest, and libvirt's own images. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fact_file facts[32];
static unsigned nfacts;

static int setup(void **state)
{
    (void)state;
    nfacts = facts_load(facts, 32);
    return nfacts == 19 ? 0 : -1;
}

static mrimg_image *open_fixture(const char *rel, uint64_t offset)
{
    t_open_opts o = {.stream_offset = offset};
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path(rel), &o, &e);
    if (!img)
        fail_msg("%s: %s", rel, e.message);
    return img;
}

static int find_block(mrimg_image *img, const char *name)
{
    for (unsigned i = 0; i < mrimg_block_count(img); i++)
        if (!strcmp(mrimg_block(img, i)->name, name))
            return (int)i;
    return -1;
}

/* Block names and used lengths equal QEMU's `info ramblock`; pages with
 * data equal QEMU's `normal` counter for paused guests. */
static void test_qemu_facts(void **state)
{
    (void)state;
    for (unsigned f = 0; f < nfacts; f++) {
        fact_file *ff = &facts[f];
        char rel[128];
        snprintf(rel, sizeof(rel), "qemu/%.60s", ff->file);
        mrimg_image *img = open_fixture(rel, ff->offset);
        mrimg_error e;
        int rc = mrimg_scan(img, 0, NULL, NULL, &e);
        if (rc != 0)
            fail_msg("%s: scan: %s", rel, e.message);
        const mrimg_stream_info *si = mrimg_stream(img);
        assert_string_equal(si->machine, ff->machine);
        assert_int_equal(si->mapped_ram, ff->mapped);
        assert_int_equal(mrimg_block_count(img), ff->nblocks);
        uint64_t total = 0, data = 0;
        for (unsigned b = 0; b < ff->nblocks; b++) {
            int i = find_block(img, ff->blocks[b].name);
            if (i < 0)
                fail_msg("%s: block %s missing", rel, ff->blocks[b].name);
            const mrimg_ram_block_info *bi = mrimg_block(img, (unsigned)i);
            assert_int_equal(bi->used_length, ff->blocks[b].used);
            assert_int_equal(bi->pages, ff->blocks[b].used / 4096);
            assert_int_equal(bi->pages_data + bi->pages_zero + bi->pages_absent, bi->pages);
            total += bi->used_length;
            data += bi->pages_data;
        }
        assert_int_equal(si->ram_total, total);
        if (ff->has_stats) /* QEMU's `total` is the bytes of all RAM blocks */
            assert_int_equal(total, ff->total);
        if (ff->has_stats && !ff->live) {
            if (data != ff->normal)
                fail_msg("%s: %llu pages with data, QEMU says %llu", rel,
                         (unsigned long long)data, (unsigned long long)ff->normal);
            if (!ff->mapped)
                assert_int_equal(si->page_records, ff->normal);
        }
        if (!ff->mapped && ff->has_stats && !ff->live)
            assert_int_equal(si->zero_records, ff->duplicate);
        assert_true(si->has_eof);
        assert_true(si->has_vmdesc);
        assert_int_equal(si->stream_offset, ff->offset);
        assert_int_equal(si->multi_pass, ff->live && !ff->mapped ? 1 : 0);
        mrimg_close(img);
    }
}

/* blob.bin lies at its documented offset of pc.ram, read through both the
 * random-access API and the canonical walk. */
typedef struct walk_ctx {
    unsigned block;
    uint64_t lo, hi; /* byte range of interest */
    uint8_t *buf;
    uint64_t pages_seen, restarts;
} walk_ctx;

static int walk_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                   mrimg_error *err)
{
    (void)err;
    walk_ctx *w = opaque;
    if (block == MRIMG_WALK_RESTART) {
        w->restarts++;
        w->pages_seen = 0;
        return 0;
    }
    w->pages_seen += n;
    if (block != w->block)
        return 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t a = (first + k) * 4096;
        if (a + 4096 <= w->lo || a >= w->hi)
            continue;
        for (uint64_t j = 0; j < 4096; j++) {
            uint64_t x = a + j;
            if (x >= w->lo && x < w->hi)
                w->buf[x - w->lo] = data ? data[k * 4096 + j] : 0;
        }
    }
    return 0;
}

static void check_blob(const char *rel, uint64_t offset, const char *blob_rel, uint64_t addr)
{
    size_t blen;
    uint8_t *blob = read_file(fixture_path(blob_rel), &blen);
    assert_non_null(blob);
    mrimg_image *img = open_fixture(rel, offset);
    mrimg_error e;
    int pc = -1;
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    pc = find_block(img, "pc.ram");
    assert_true(pc >= 0);
    uint64_t first = addr / 4096, n = (addr + blen + 4095) / 4096 - first;
    uint8_t *buf = malloc(n * 4096);
    if (mrimg_ram_read(img, (unsigned)pc, first, n, buf, &e) != 0)
        fail_msg("%s: read: %s", rel, e.message);
    assert_memory_equal(buf + (addr - first * 4096), blob, blen);
    free(buf);
    mrimg_close(img);

    /* a fresh handle: the walk also does the scan on the way */
    img = open_fixture(rel, offset);
    walk_ctx w = {.block = 0, .lo = addr, .hi = addr + blen, .buf = calloc(1, blen)};
    if (mrimg_ram_walk(img, walk_cb, &w, NULL, NULL, &e) != 0)
        fail_msg("%s: walk: %s", rel, e.message);
    assert_int_equal(find_block(img, "pc.ram"), 0);
    assert_memory_equal(w.buf, blob, blen);
    uint64_t pages = 0;
    for (unsigned i = 0; i < mrimg_block_count(img); i++)
        pages += mrimg_block(img, i)->pages;
    assert_int_equal(w.pages_seen, pages); /* every page exactly once */
    free(w.buf);
    mrimg_close(img);
    free(blob);
}

static void test_blob_qemu(void **state)
{
    (void)state;
    for (unsigned f = 0; f < nfacts; f++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "qemu/%.60s", facts[f].file);
        check_blob(rel, facts[f].offset, "qemu/blob.bin", facts[f].blob_gpa);
    }
}

static const char *const libvirt_images[] = {
    "raw.sav", "raw-paused.sav", "gzip.sav", "bzip2.sav", "xz.sav",
    "lzop.sav", "zstd.sav", "sparse.sav", "sparse-p4.sav",
};

static void test_blob_libvirt(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(libvirt_images) / sizeof(*libvirt_images); i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "libvirt/%s", libvirt_images[i]);
        check_blob(rel, 0, "libvirt/blob.bin", 0x2000000);
    }
}

/* All 9 libvirt images parse; the header fields are what virsh save wrote. */
static void test_libvirt_container(void **state)
{
    (void)state;
    static const int formats[] = {0, 0, 1, 2, 3, 4, 5, 6, 6};
    for (size_t i = 0; i < sizeof(libvirt_images) / sizeof(*libvirt_images); i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "libvirt/%s", libvirt_images[i]);
        mrimg_image *img = open_fixture(rel, 0);
        const mrimg_container_info *c = mrimg_container(img);
        assert_true(c->is_libvirt);
        assert_true(c->complete);
        assert_int_equal(c->version, 2);
        assert_int_equal(c->format, formats[i]);
        assert_int_equal(c->was_running, strcmp(libvirt_images[i], "raw-paused.sav") ? 1 : 0);
        assert_int_equal(c->reserved_nonzero, 0);
        assert_int_equal(c->padding_nonzero, 0);
        /* data_len = xml+1 + cookie+1 + 64 KiB */
        assert_int_equal(c->data_len, c->xml_len + 1 + c->cookie_len + 1 + 65536);
        assert_int_equal(c->cookie_offset, c->xml_len + 1);
        assert_non_null(strstr(c->xml, "<name>fixture</name>"));
        assert_non_null(strstr(c->xml, "<uuid>6d6170ed-7261-4d00-8f1a-000000000001</uuid>"));
        assert_non_null(strstr(c->xml, "passwd='s3cr3t!!'"));
        assert_non_null(c->cookie);
        assert_true(strncmp(c->cookie, "<cookie>", 8) == 0);
        assert_int_equal(c->payload_offset, 92 + c->data_len);
        mrimg_error e;
        if (mrimg_scan(img, 0, NULL, NULL, &e) != 0)
            fail_msg("%s: %s", rel, e.message);
        const mrimg_stream_info *si = mrimg_stream(img);
        assert_string_equal(si->machine, "pc-q35-10.0");
        assert_int_equal(si->mapped_ram, formats[i] == 6);
        assert_true(si->has_eof);
        assert_int_equal(si->payload_trailing, 0);
        mrimg_close(img);
    }
}

/* The stored XML agrees with libvirt's own dumpxml: every line of what we
 * read appears in libvirt's rendering, in order (libvirt adds implicit
 * devices, which is the only difference allowed). */
static void test_libvirt_xml(void **state)
{
    (void)state;
    size_t len;
    char *ref = (char *)read_file(fixture_path("libvirt/dumpxml-security-info.xml"), &len);
    assert_non_null(ref);
    mrimg_image *img = open_fixture("libvirt/raw.sav", 0);
    const char *xml = mrimg_container(img)->xml;
    const char *pos = ref;
    unsigned lines = 0;
    for (const char *l = xml; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[1024];
        assert_true(n < sizeof(line));
        memcpy(line, l, n);
        line[n] = '\0';
        const char *hit = strstr(pos, line);
        if (!hit)
            fail_msg("stored XML line not in libvirt's dumpxml (in order): %s", line);
        pos = hit + n;
        lines++;
        l = e ? e + 1 : l + n;
    }
    assert_true(lines > 40);
    mrimg_close(img);
    free(ref);
}

/* Plain and mapped-ram saves of the same guest hold the same RAM. */
typedef struct hash_ctx {
    uint64_t h[64];
} hash_ctx;

static int hash_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                   mrimg_error *err)
{
    (void)err;
    hash_ctx *hc = opaque;
    if (block == MRIMG_WALK_RESTART) {
        memset(hc, 0, sizeof(*hc));
        return 0;
    }
    if (!data || block >= 64)
        return 0;
    for (uint64_t k = 0; k < n; k++) {
        const uint8_t *p = data + k * 4096;
        uint64_t h = 1469598103934665603ull ^ (first + k);
        int nz = 0;
        for (int j = 0; j < 4096; j++) {
            nz |= p[j];
            h = (h ^ p[j]) * 1099511628211ull;
        }
        if (nz) /* zero pages contribute nothing, whatever their record */
            hc->h[block] += h;
    }
    return 0;
}

static void ram_hash(const char *rel, uint64_t offset, hash_ctx *hc)
{
    memset(hc, 0, sizeof(*hc));
    mrimg_image *img = open_fixture(rel, offset);
    mrimg_error e;
    if (mrimg_ram_walk(img, hash_cb, hc, NULL, NULL, &e) != 0)
        fail_msg("%s: %s", rel, e.message);
    mrimg_close(img);
}

static void test_plain_mapped_pairs(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"plain.mig", "mapped.mig"},
        {"plain-offset.mig", "mapped-offset.mig"},
        {"plain-nozerodetect.mig", "mapped-nozerodetect.mig"},
        {"plain-multiblock.mig", "mapped-multiblock.mig"},
        {"plain-q35.mig", "mapped-q35.mig"},
        {"plain-i440fx-9.2.mig", "mapped-i440fx-9.2.mig"},
        {"plain-1g.mig", "mapped-1g.mig"},
        {"plain.mig", "mapped-multifd4.mig"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(*pairs); i++) {
        hash_ctx a, b;
        char ra[128], rb[128];
        snprintf(ra, sizeof(ra), "qemu/%s", pairs[i][0]);
        snprintf(rb, sizeof(rb), "qemu/%s", pairs[i][1]);
        uint64_t off = strstr(ra, "offset") ? 0x12345 : 0;
        ram_hash(ra, off, &a);
        ram_hash(rb, off, &b);
        assert_memory_equal(&a, &b, sizeof(a));
        int any = 0;
        for (int k = 0; k < 64; k++)
            any |= a.h[k] != 0;
        assert_true(any);
    }
    /* the live pair: separate runs of a running guest; the restart path
     * (multi-pass replay) must still deliver every page once */
    hash_ctx l;
    ram_hash("qemu/plain-live.mig", 0, &l);
}

/* ---- hostile containers, made from a real header ----------------------- */

static char *tmpdir;

static const char *make_variant(const char *name, void (*patch)(uint8_t *, size_t *), size_t keep)
{
    static char path[4096];
    size_t len;
    uint8_t *b = read_file(fixture_path("libvirt/raw.sav"), &len);
    assert_non_null(b);
    if (keep && keep < len)
        len = keep;
    if (patch)
        patch(b, &len);
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    write_file(path, b, len);
    free(b);
    return path;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void swap5(uint8_t *b, size_t *len)
{
    (void)len;
    for (int i = 0; i < 5; i++) {
        uint8_t *p = b + 16 + 4 * i;
        uint8_t t = p[0];
        p[0] = p[3];
        p[3] = t;
        t = p[1];
        p[1] = p[2];
        p[2] = t;
    }
}
static void part_magic(uint8_t *b, size_t *len) { (void)len; memcpy(b, "LibvirtQemudPart", 16); }
static void bad_magic(uint8_t *b, size_t *len) { (void)len; memcpy(b, "LibvirtQemudXXXX", 16); }
static void version3(uint8_t *b, size_t *len) { (void)len; put32(b + 16, 3); }
static void dlen0(uint8_t *b, size_t *len) { (void)len; put32(b + 20, 0); }
static void dlen_huge(uint8_t *b, size_t *len) { (void)len; put32(b + 20, 0x7fffffff); }
static void dlen_past_eof(uint8_t *b, size_t *len) { put32(b + 20, (uint32_t)*len); }
static void cookie_past(uint8_t *b, size_t *len) { (void)len; put32(b + 32, 0x7ffff); }
static void format7(uint8_t *b, size_t *len) { (void)len; put32(b + 28, 7); }
static void xml_no_nul(uint8_t *b, size_t *len)
{
    (void)len;
    uint32_t co;
    memcpy(&co, b + 32, 4);
    memset(b + 92 + co - 8, 'x', 8); /* overwrite the XML's terminator */
}
static void fmt_gzip(uint8_t *b, size_t *len) { (void)len; put32(b + 28, 1); }

static void expect_open(const char *path, int code, const char *needle)
{
    mrimg_error e;
    mrimg_image *img = t_open(path, NULL, &e);
    if (code == 0) {
        if (!img)
            fail_msg("%s: %s", path, e.message);
        mrimg_close(img);
        return;
    }
    if (img)
        fail_msg("%s: opened, expected %s", path, mrimg_code_name(code));
    if ((int)e.code != code)
        fail_msg("%s: got %s (%s), expected %s", path, mrimg_code_name(e.code), e.message,
                 mrimg_code_name(code));
    if (needle && !strstr(e.message, needle))
        fail_msg("%s: message \"%s\" lacks \"%s\"", path, e.message, needle);
}

static void test_hostile_headers(void **state)
{
    (void)state;
    expect_open(make_variant("trunc40", NULL, 40), MRIMG_ERR_TRUNCATED, "92-byte");
    expect_open(make_variant("badmagic", bad_magic, 0), MRIMG_ERR_FORMAT, "magic");
    expect_open(make_variant("v3", version3, 0), MRIMG_ERR_UNSUPPORTED, "version");
    expect_open(make_variant("dlen0", dlen0, 0), MRIMG_ERR_FORMAT, "data length");
    expect_open(make_variant("dlenhuge", dlen_huge, 0), MRIMG_ERR_LIMIT, "cap");
    expect_open(make_variant("dlenpast", dlen_past_eof, 0), MRIMG_ERR_TRUNCATED, "XML region");
    expect_open(make_variant("cookie", cookie_past, 0), MRIMG_ERR_FORMAT, "cookie offset");
    expect_open(make_variant("fmt7", format7, 0), MRIMG_ERR_UNSUPPORTED, "format 7");
    expect_open(make_variant("xmlnonul", xml_no_nul, 0), MRIMG_ERR_FORMAT, "NUL");
    expect_open(make_variant("trunc-xml", NULL, 1000), MRIMG_ERR_TRUNCATED, NULL);

    /* a partial save opens and says so; its stream is whole */
    const char *p = make_variant("part", part_magic, 0);
    mrimg_error e;
    mrimg_image *img = t_open(p, NULL, &e);
    assert_non_null(img);
    assert_int_equal(mrimg_container(img)->complete, 0);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    t_convert_opts co;
    t_convert_opts_init(&co);
    char out[4200];
    snprintf(out, sizeof(out), "%s/part-out.sav", tmpdir);
    assert_int_equal(t_convert(img, out, &co, NULL, &e), MRIMG_ERR_INCOMPLETE);
    assert_int_not_equal(access(out, F_OK), 0);
    mrimg_close(img);

    /* the other byte order reads the same */
    p = make_variant("swapped", swap5, 0);
    img = t_open(p, NULL, &e);
    assert_non_null(img);
    const mrimg_container_info *c = mrimg_container(img);
    assert_true(c->foreign_endian);
    assert_int_equal(c->version, 2);
    assert_int_equal(c->format, 0);
    assert_int_equal(c->was_running, 1);
    assert_int_equal(c->cookie_offset, c->xml_len + 1);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    mrimg_close(img);

    /* header says gzip, payload is plain: caught when the payload is read */
    p = make_variant("fmtlie", fmt_gzip, 0);
    img = t_open(p, NULL, &e);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(e.message, "gzip"));
    mrimg_close(img);

    /* a truncated stream (cut in the middle of a page) is an error, fast */
    p = make_variant("cut", NULL, 92 + 67978 + 500000);
    img = t_open(p, NULL, &e);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), MRIMG_ERR_TRUNCATED);
    mrimg_close(img);
}

/* A bare stream that does not start at offset 0: the error names where it is. */
static void test_offset_hint(void **state)
{
    (void)state;
    mrimg_error e;
    assert_null(t_open(fixture_path("qemu/plain-offset.mig"), NULL, &e));
    assert_int_equal(e.code, MRIMG_ERR_FORMAT);
    assert_non_null(strstr(e.message, "0x12345"));
}

static int group_setup(void **state)
{
    tmpdir = test_tmpdir("core");
    return setup(state);
}

static int group_teardown(void **state)
{
    (void)state;
    test_rmdir_all(tmpdir);
    free(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qemu_facts),
        cmocka_unit_test(test_blob_qemu),
        cmocka_unit_test(test_libvirt_container),
        cmocka_unit_test(test_blob_libvirt),
        cmocka_unit_test(test_libvirt_xml),
        cmocka_unit_test(test_plain_mapped_pairs),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_offset_hint),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
