/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* -O kdump-zlib / -O kdump-lzo on the real fixtures: the header as QEMU
 * writes it, one bitmap bit and one descriptor per page of the memory map's
 * ranges, and every dumped page, decompressed, equal to the same page of
 * -O phys (which tests/qemu/test_memmap.py holds against QEMU's own dump;
 * tests/qemu/test_kdump.py holds the kdump file itself against QEMU's). */
#include "testutil.h"

#include <fcntl.h>
#include <stdbool.h>
#include <lzo/lzo1x.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PS 4096u

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static void convert(const char *in, const char *out, int kind)
{
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path(in), NULL, &e);
    if (!img)
        fail_msg("%s: %s", in, e.message);
    t_convert_opts o;
    t_convert_opts_init(&o);
    o.force = 1;
    o.out = kind;
    mrimg_convert_stats st;
    if (t_convert(img, out, &o, &st, &e) != 0)
        fail_msg("%s -> %d: %s", in, kind, e.message);
    mrimg_close(img);
}

/* Check the kdump file at path against the phys file and the map of in. */
static void check(const char *in, const char *path, const char *phys, uint32_t flag)
{
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path(in), NULL, &e);
    assert_non_null(img);
    mrimg_memmap *m = NULL;
    if (mrimg_memory_map(img, &m, &e) != 0)
        fail_msg("%s: %s", in, e.message);
    uint64_t npages = 0, max_mapnr = 0;
    for (unsigned i = 0; i < m->nranges; i++) {
        npages += m->ranges[i].length / PS;
        max_mapnr = (m->ranges[i].gpa + m->ranges[i].length) / PS;
    }

    int fd = open(path, O_RDONLY), pfd = open(phys, O_RDONLY);
    assert_true(fd >= 0 && pfd >= 0);
    uint8_t h[PS + 104];
    assert_int_equal(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    assert_memory_equal(h, "KDUMP   ", 8);
    assert_int_equal(le32(h + 8), 6);            /* header_version */
    assert_string_equal((char *)h + 12 + 4 * 65, "Unknown");
    assert_int_equal(le32(h + 424), flag);       /* status */
    assert_int_equal(le32(h + 428), PS);         /* block_size */
    uint32_t sub_blocks = le32(h + 432), bm_blocks = le32(h + 436);
    assert_int_equal(le32(h + 440), max_mapnr);
    const uint8_t *k = h + PS;
    assert_int_equal(le32(k + 8), 1);            /* dump_level */
    assert_int_equal(le64(k + 48), PS + 104);    /* offset_note */
    assert_int_equal(le64(k + 96), max_mapnr);   /* max_mapnr_64 */
    assert_int_equal(sub_blocks, (104 + le64(k + 56) + PS - 1) / PS);
    uint64_t bm_len = (max_mapnr / 8 + PS - 1) / PS * PS;
    assert_int_equal(bm_blocks, bm_len / PS * 2);

    /* bitmaps: equal, exactly the ranges' pages */
    uint8_t *b1 = malloc(bm_len), *b2 = malloc(bm_len);
    uint64_t off_bm = (1 + (uint64_t)sub_blocks) * PS;
    assert_int_equal(pread(fd, b1, bm_len, (off_t)off_bm), (ssize_t)bm_len);
    assert_int_equal(pread(fd, b2, bm_len, (off_t)(off_bm + bm_len)), (ssize_t)bm_len);
    assert_memory_equal(b1, b2, bm_len);
    unsigned ri = 0;
    uint64_t set = 0;
    for (uint64_t p = 0; p < bm_len * 8; p++) {
        while (ri < m->nranges && (m->ranges[ri].gpa + m->ranges[ri].length) / PS <= p)
            ri++;
        bool want = ri < m->nranges && m->ranges[ri].gpa / PS <= p;
        bool got = b1[p / 8] >> (p % 8) & 1;
        if (want != got)
            fail_msg("%s: bitmap bit %#llx is %d", path, (unsigned long long)p, got);
        set += got;
    }
    assert_int_equal(set, npages);

    /* descriptors: every page equals -O phys; zero pages share one */
    uint64_t off_desc = off_bm + 2 * bm_len, zero_off = UINT64_MAX, ncomp = 0, ndata = 0;
    uint8_t *pg = malloc(PS), *want = malloc(PS), *cb = malloc(2 * PS);
    uint64_t d = 0;
    for (uint64_t p = 0; p < bm_len * 8; p++) {
        if (!(b1[p / 8] >> (p % 8) & 1))
            continue;
        uint8_t desc[24];
        assert_int_equal(pread(fd, desc, 24, (off_t)(off_desc + 24 * d++)), 24);
        uint64_t off = le64(desc);
        uint32_t size = le32(desc + 8), flags = le32(desc + 12);
        assert_int_equal(le64(desc + 16), 0);
        assert_true(size <= PS && size > 0);
        assert_int_equal(pread(fd, cb, size, (off_t)off), (ssize_t)size);
        if (flags == 0) {
            assert_int_equal(size, PS);
            memcpy(pg, cb, PS);
        } else if (flags == 1) {
            assert_int_equal(flag, 1);
            uLongf n = PS;
            assert_int_equal(uncompress(pg, &n, cb, size), Z_OK);
            assert_int_equal(n, PS);
            ncomp++;
        } else {
            assert_int_equal(flags, 2);
            assert_int_equal(flag, 2);
            lzo_uint n = PS;
            assert_int_equal(lzo1x_decompress_safe(cb, size, pg, &n, NULL), LZO_E_OK);
            assert_int_equal(n, PS);
            ncomp++;
        }
        assert_int_equal(pread(pfd, want, PS, (off_t)(p * PS)), (ssize_t)PS);
        if (memcmp(pg, want, PS))
            fail_msg("%s: pfn %#llx differs from -O phys", path, (unsigned long long)p);
        bool zero = true;
        for (unsigned i = 0; i < PS && zero; i++)
            zero = pg[i] == 0;
        if (zero) {
            assert_int_equal(flags, 0);
            if (zero_off == UINT64_MAX)
                zero_off = off;
            assert_int_equal(off, zero_off); /* one shared zero page */
        } else {
            ndata++;
        }
    }
    assert_int_equal(d, npages);
    assert_true(ndata > 0 && ncomp > 0);
    /* the data ends the file */
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_true((uint64_t)sb.st_size >= off_desc + 24 * npages + PS);
    free(pg);
    free(want);
    free(cb);
    free(b1);
    free(b2);
    close(fd);
    close(pfd);
    mrimg_memory_map_free(m);
    mrimg_close(img);
}

static void test_fixtures(void **state)
{
    (void)state;
    char *dir = test_tmpdir("kdump");
    char phys[4096], kd[4096];
    snprintf(phys, sizeof(phys), "%s/out.phys", dir);
    snprintf(kd, sizeof(kd), "%s/out.kdump", dir);
    /* plain, mapped-ram, a live (multi-pass) stream, a compressed libvirt
     * image, q35 */
    const char *ins[] = {"qemu/plain.mig", "qemu/mapped.mig", "qemu/plain-live.mig",
                         "libvirt/zstd.sav", "qemu/mapped-q35.mig"};
    for (unsigned i = 0; i < sizeof(ins) / sizeof(*ins); i++) {
        convert(ins[i], phys, MRIMG_OUT_PHYS);
        convert(ins[i], kd, MRIMG_OUT_KDUMP_ZLIB);
        check(ins[i], kd, phys, 1);
        convert(ins[i], kd, MRIMG_OUT_KDUMP_LZO);
        check(ins[i], kd, phys, 2);
    }
    test_rmdir_all(dir);
    free(dir);
}

/* The same input gives the same file for any thread count. */
static void test_deterministic(void **state)
{
    (void)state;
    char *dir = test_tmpdir("kdump-det");
    char a[4096], b[4096];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    unsigned threads[] = {1, 4};
    const char *outs[] = {a, b};
    for (unsigned t = 0; t < 2; t++) {
        mrimg_error e;
        mrimg_image *img = t_open(fixture_path("libvirt/zstd.sav"), NULL, &e);
        assert_non_null(img);
        t_convert_opts o;
        t_convert_opts_init(&o);
        o.out = MRIMG_OUT_KDUMP_ZLIB;
        o.threads = threads[t];
        if (t_convert(img, outs[t], &o, NULL, &e) != 0)
            fail_msg("%s", e.message);
        mrimg_close(img);
    }
    test_assert_same_file(a, b);
    test_rmdir_all(dir);
    free(dir);
}

/* Phases of a conversion, as "a,b,c", and the last progress total. */
typedef struct phases {
    char s[256];
    uint64_t total, calls;
} phases;

static void on_phase(void *ctx, const char *phase)
{
    phases *p = ctx;
    if (!phase)
        return;
    size_t l = strlen(p->s);
    snprintf(p->s + l, sizeof(p->s) - l, "%s%s", l ? "," : "", phase);
}

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    phases *p = ctx;
    (void)done;
    p->total = total;
    p->calls++;
    return 0;
}

/* Convert in to out as kind; *payload: the input's payload bytes. */
static void phases_of(const char *in, const char *out, int kind, phases *p, uint64_t *payload)
{
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path(in), NULL, &e);
    assert_non_null(img);
    t_convert_opts o;
    t_convert_opts_init(&o);
    o.force = 1;
    o.out = kind;
    memset(p, 0, sizeof(*p));
    o.progress = on_progress;
    o.progress_phase = on_phase;
    o.progress_ctx = p;
    mrimg_convert_stats st;
    if (t_convert(img, out, &o, &st, &e) != 0)
        fail_msg("%s -> %d: %s", in, kind, e.message);
    const mrimg_container_info *ci = mrimg_container(img);
    if (payload)
        *payload = ci->file_size - ci->payload_offset;
    /* the judgement rode on the conversion's pass and is cached: asking for
     * it again reads nothing */
    phases again;
    memset(&again, 0, sizeof(again));
    const mrimg_verify_result *jr = NULL;
    assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, on_progress, &again, &jr, &e), 0);
    assert_non_null(jr);
    assert_int_equal(jr->errors, 0);
    assert_int_equal(again.calls, 0);
    mrimg_close(img);
}

/* A plain or compressed input is decoded once for every output: the
 * judgement and, for kdump, the memory map come from the conversion's own
 * pass (one phase, a progress total of one pass over the payload).  Before,
 * a "checking" pass came first, and kdump also had a "scanning" pass. */
static void test_one_pass(void **state)
{
    (void)state;
    char *dir = test_tmpdir("kdump");
    char out[4096];
    snprintf(out, sizeof(out), "%s/out", dir);
    static const int kinds[] = {MRIMG_OUT_ELF, MRIMG_OUT_PHYS, MRIMG_OUT_KDUMP_ZLIB,
                                MRIMG_OUT_KDUMP_LZO, MRIMG_FORMAT_ZSTD, MRIMG_FORMAT_RAW,
                                MRIMG_OUT_QEMU, MRIMG_FORMAT_SPARSE};
    static const char *ins[] = {"libvirt/zstd.sav", "libvirt/raw.sav"};
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++)
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            phases p;
            uint64_t payload = 0;
            phases_of(ins[i], out, kinds[k], &p, &payload);
            if (strcmp(p.s, "converting") != 0)
                fail_msg("%s -> %d: phases %s", ins[i], kinds[k], p.s);
            if (p.total != payload)
                fail_msg("%s -> %d: progress total %llu, payload %llu bytes", ins[i], kinds[k],
                         (unsigned long long)p.total, (unsigned long long)payload);
        }
    test_rmdir_all(dir);
    free(dir);
}

/* A corrupted compressed input is refused by the judgement that rides on
 * the conversion: the same error as mrimg_check gives on its own, and the
 * target is left as it was. */
static void test_refused_on_the_pass(void **state)
{
    (void)state;
    char *dir = test_tmpdir("kdump");
    char bad[4096], out[4096];
    snprintf(bad, sizeof(bad), "%s/bad.sav", dir);
    snprintf(out, sizeof(out), "%s/out", dir);
    size_t len;
    uint8_t *b = read_file(fixture_path("libvirt/zstd.sav"), &len);
    assert_non_null(b);
    /* a byte in the middle of the compressed payload */
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path("libvirt/zstd.sav"), NULL, &e);
    assert_non_null(img);
    uint64_t po = mrimg_container(img)->payload_offset;
    mrimg_close(img);
    b[po + (len - po) / 2] ^= 0x5a;
    write_file(bad, b, len);
    free(b);
    /* what the judgement says on its own */
    img = t_open(bad, NULL, &e);
    assert_non_null(img);
    const mrimg_verify_result *jr = NULL;
    assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &e), 0);
    assert_true(jr->errors > 0);
    const mrimg_problem *first = NULL;
    for (unsigned i = 0; i < jr->nproblems && !first; i++)
        if (jr->problems[i].severity == MRIMG_SEV_ERROR)
            first = &jr->problems[i];
    assert_non_null(first);
    char want[1024];
    snprintf(want, sizeof(want), "%s: %s", first->check, first->message);
    uint64_t errors = jr->errors;
    mrimg_close(img);
    static const int kinds[] = {MRIMG_FORMAT_ZSTD, MRIMG_OUT_ELF, MRIMG_OUT_PHYS,
                                MRIMG_OUT_KDUMP_ZLIB, MRIMG_FORMAT_SPARSE};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        write_file(out, "keep", 4);
        img = t_open(bad, NULL, &e);
        assert_non_null(img);
        t_convert_opts o;
        t_convert_opts_init(&o);
        o.force = 1;
        o.out = kinds[k];
        mrimg_error ce;
        int rc = t_convert(img, out, &o, NULL, &ce);
        if (rc == 0 || !strstr(ce.message, want))
            fail_msg("-> %d: rc %d, \"%s\", expected \"%s...\"", kinds[k], rc, ce.message,
                     want);
        /* the judgement is cached as mrimg_check would have */
        const mrimg_verify_result *r2 = NULL;
        assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &r2, &e), 0);
        assert_int_equal(r2->errors, errors);
        mrimg_close(img);
        size_t ol;
        uint8_t *ob = read_file(out, &ol);
        assert_non_null(ob);
        assert_int_equal(ol, 4);
        assert_memory_equal(ob, "keep", 4);
        free(ob);
        /* no temporary left beside it */
        char cmd[4200];
        snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 2", dir);
        assert_int_equal(system(cmd), 0);
    }
    test_rmdir_all(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_one_pass),
        cmocka_unit_test(test_refused_on_the_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
