/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The layout of a stream as the common scan (mrimg_scan) and the verifier
 * judge it, on corrupted copies of the real fixtures:
 *
 *  - mapped-ram offsets that point where QEMU never puts them (bitmap into
 *    the libvirt header, XML, cookie, padding, the main stream, another
 *    block's header/bitmap/pages, past the end; pages overlapping the
 *    bitmap or another block; misaligned pages): refused by the scan,
 *    named by the verifier (mapped.layout, mapped.alignment);
 *  - cuts inside the device state (also right after 0x00 bytes): refused
 *    by the scan, stream.truncated; a cut right after the EOF record
 *    (suppress-vmdesc) or inside the VMDESCRIPTION JSON after a device state
 *    that ends with a section footer: a warning only (stream.vmdesc), also
 *    with a binary EOF + VMDESCRIPTION look-alike earlier in the device
 *    state;
 *  - huge trailing holes and zeros: answered at once, same digest, the
 *    zeros are trailing bytes, never device state. */
#include "testutil.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *g_dir;

/* ---- helpers ---------------------------------------------------------------- */

static const char *copy_fixture(const char *rel, const char *name)
{
    static char p[4][4096];
    static unsigned k;
    char *dst = p[k++ % 4];
    snprintf(dst, 4096, "%s/%s", g_dir, name);
    test_sparse_copy(fixture_path(rel), dst);
    return dst;
}

static void put_be64(const char *path, uint64_t off, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, 8, (off_t)off), 8);
    close(fd);
}

static mrimg_image *open_img(const char *path)
{
    mrimg_error e;
    mrimg_image *img = t_open(path, NULL, &e);
    if (!img)
        fprintf(stderr, "open %s: %s\n", path, e.message);
    assert_non_null(img);
    return img;
}

static mrimg_verify_result *verify(const char *path)
{
    mrimg_verify_result *r = NULL;
    mrimg_error e;
    assert_int_equal(t_verify(path, NULL, &r, &e), 0);
    assert_non_null(r);
    return r;
}

static void dump(const char *what, const mrimg_verify_result *r)
{
    fprintf(stderr, "%s: %llu errors, %llu warnings\n", what, (unsigned long long)r->errors,
            (unsigned long long)r->warnings);
    for (unsigned i = 0; i < r->nproblems; i++)
        fprintf(stderr, "  %s %s @%llu: %s\n",
                r->problems[i].severity == MRIMG_SEV_ERROR ? "E" : "W", r->problems[i].check,
                (unsigned long long)r->problems[i].offset, r->problems[i].message);
}

/* The problem list holds check/sev at offset off (UINT64_MAX: any) whose
 * message contains words (NULL: any). */
static const mrimg_problem *find(const mrimg_verify_result *r, const char *check,
                                 mrimg_severity sev, uint64_t off, const char *words)
{
    for (unsigned i = 0; i < r->nproblems; i++) {
        const mrimg_problem *p = &r->problems[i];
        if (!strcmp(p->check, check) && p->severity == sev &&
            (off == UINT64_MAX || p->offset == off) && (!words || strstr(p->message, words)))
            return p;
    }
    return NULL;
}

static void expect_problem(const char *path, const char *what, const char *check,
                           mrimg_severity sev, uint64_t off, const char *words, bool only)
{
    mrimg_verify_result *r = verify(path);
    bool ok = find(r, check, sev, off, words) != NULL;
    if (only)
        ok = ok && r->errors == (sev == MRIMG_SEV_ERROR ? 1u : 0u);
    if (!ok) {
        fprintf(stderr, "%s: expected %s %s at %llu containing \"%s\"%s\n", what,
                sev == MRIMG_SEV_ERROR ? "error" : "warning", check, (unsigned long long)off,
                words ? words : "", only ? " (and no other error)" : "");
        dump(what, r);
        fail();
    }
    mrimg_verify_free(r);
}

/* The common scan refuses the image with code, its message containing words. */
static void expect_scan_fails(const char *path, const char *what, int code, const char *words)
{
    mrimg_image *img = open_img(path);
    mrimg_error e;
    int rc = mrimg_scan(img, 0, NULL, NULL, &e);
    if (rc != code || (words && !strstr(e.message, words))) {
        fprintf(stderr, "%s: scan gave %d (%s), expected %d containing \"%s\"\n", what, rc,
                rc ? e.message : "ok", code, words ? words : "");
        fail();
    }
    mrimg_close(img);
}

typedef struct layout {
    unsigned n;
    mrimg_ram_block_info b[16];
    mrimg_container_info ci;
    uint64_t size;
} layout;

static void get_layout(const char *rel, layout *l)
{
    mrimg_image *img = open_img(fixture_path(rel));
    mrimg_error e;
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    l->n = mrimg_block_count(img);
    assert_true(l->n >= 1 && l->n <= 16);
    for (unsigned i = 0; i < l->n; i++)
        l->b[i] = *mrimg_block(img, i);
    l->ci = *mrimg_container(img);
    l->size = l->ci.file_size;
    mrimg_close(img);
}

/* ---- mapped-ram layout ---------------------------------------------------------- */

/* Set block i's bitmap_offset to v: an error at the field, naming where. */
static void bad_bitmap(const char *rel, const layout *l, unsigned i, uint64_t v,
                       const char *where)
{
    char what[300];
    snprintf(what, sizeof(what), "%s: bitmap of \"%s\" at 0x%llx", rel, l->b[i].name,
             (unsigned long long)v);
    const char *p = copy_fixture(rel, "bm");
    put_be64(p, l->b[i].header_offset + 12, v);
    expect_problem(p, what, "mapped.layout", MRIMG_SEV_ERROR, l->b[i].header_offset + 12, where,
                   false);
    expect_scan_fails(p, what, MRIMG_ERR_FORMAT, "not right after its header");
    /* the scan names the same region as the verifier */
    expect_scan_fails(p, what, MRIMG_ERR_FORMAT, where);
}

static void bad_pages(const char *rel, const layout *l, unsigned i, uint64_t v, const char *check,
                      const char *words)
{
    char what[300];
    snprintf(what, sizeof(what), "%s: pages of \"%s\" at 0x%llx", rel, l->b[i].name,
             (unsigned long long)v);
    const char *p = copy_fixture(rel, "pg");
    put_be64(p, l->b[i].header_offset + 20, v);
    expect_problem(p, what, check, MRIMG_SEV_ERROR, l->b[i].header_offset + 20, words, false);
    expect_scan_fails(p, what, MRIMG_ERR_FORMAT, NULL);
}

static void test_mapped_layout(void **state)
{
    (void)state;
    static const char *const rels[] = {"libvirt/sparse.sav", "libvirt/sparse-p4.sav",
                                       "qemu/mapped.mig", "qemu/mapped-multiblock.mig"};
    for (size_t k = 0; k < sizeof(rels) / sizeof(rels[0]); k++) {
        const char *rel = rels[k];
        layout l;
        get_layout(rel, &l);
        /* what QEMU writes, and what the scan reports */
        for (unsigned i = 0; i < l.n; i++) {
            assert_int_equal(l.b[i].bitmap_offset, l.b[i].header_offset + 28);
            assert_int_equal(l.b[i].pages_offset,
                             (l.b[i].bitmap_offset + l.b[i].bitmap_size + (1u << 20) - 1) /
                                 (1u << 20) * (1u << 20));
        }
        const mrimg_ram_block_info *first = &l.b[0], *last = &l.b[l.n - 1];
        uint64_t base = l.ci.payload_offset;
        if (l.ci.is_libvirt) {
            bad_bitmap(rel, &l, 0, 0x40, "into the libvirt header");
            bad_bitmap(rel, &l, 0, 92 + 16, "into the domain XML");
            bad_bitmap(rel, &l, 0, 92 + l.ci.cookie_offset + 8, "into the save cookie");
            bad_bitmap(rel, &l, 0, base - 16, "into the metadata padding");
        }
        bad_bitmap(rel, &l, 0, base + 9, "into the main stream");
        bad_bitmap(rel, &l, 0, first->header_offset + 28 + 4096, NULL);
        bad_bitmap(rel, &l, 0, l.size + 4096, "beyond the end of the file");
        bad_bitmap(rel, &l, 0, UINT64_MAX - 7, "beyond the end of the file");
        if (l.n > 1) {
            bad_bitmap(rel, &l, l.n - 1, first->header_offset, "into the header of \"");
            bad_bitmap(rel, &l, l.n - 1, first->bitmap_offset, "into the bitmap of \"");
            bad_bitmap(rel, &l, l.n - 1, first->pages_offset, "into the pages of \"");
            /* the last block's pages over the first block's: they would
             * overlap another block (and its own bitmap) */
            bad_pages(rel, &l, l.n - 1, first->pages_offset, "mapped.layout", "into the pages of");
        }
        /* pages over its own bitmap (page-aligned) */
        bad_pages(rel, &l, 0, first->bitmap_offset / 4096 * 4096, "mapped.layout",
                  "must follow the bitmap");
        /* misaligned pages_offset */
        bad_pages(rel, &l, 0, first->pages_offset + 0x800, "mapped.alignment", "bad alignment");
        (void)last;
    }
}

/* ---- the end of the device state ---------------------------------------------- */

static void cut_file(const char *p, uint64_t at) { assert_int_equal(truncate(p, (off_t)at), 0); }

static void test_device_cuts(void **state)
{
    (void)state;
    static const char *const rels[] = {"qemu/plain.mig", "libvirt/raw.sav", "libvirt/sparse.sav",
                                       "qemu/mapped.mig"};
    for (size_t k = 0; k < sizeof(rels) / sizeof(rels[0]); k++) {
        const char *rel = rels[k];
        mrimg_image *img = open_img(fixture_path(rel));
        mrimg_error e;
        assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
        const mrimg_stream_info *si = mrimg_stream(img);
        uint64_t base = si->stream_offset, ram_end = base + si->ram_end,
                 eof = base + si->eof_offset, json = base + si->vmdesc_offset,
                 end = base + si->stream_size;
        assert_true(si->devices_walked);
        assert_int_equal(si->trailing_bytes, 0);
        mrimg_close(img);
        size_t len;
        uint8_t *all = read_file(fixture_path(rel), &len);
        assert_non_null(all);
        assert_int_equal(len, end);
        /* cuts right after 0x00 bytes in the device state, spread over it,
         * and a few after other bytes */
        unsigned after0 = 0, other = 0;
        uint64_t step = (eof - ram_end) / 24 + 1;
        for (uint64_t at = ram_end + 1; at < eof; at++) {
            bool z = all[at - 1] == 0;
            if ((z && after0 * step > at - ram_end) || (!z && other * 4 * step > at - ram_end))
                continue;
            after0 += z;
            other += !z;
            char what[200];
            snprintf(what, sizeof(what), "%s cut at %llu (after 0x%02x)", rel,
                     (unsigned long long)at, all[at - 1]);
            const char *p = copy_fixture(rel, "cut");
            cut_file(p, at);
            expect_problem(p, what, "stream.truncated", MRIMG_SEV_ERROR, at,
                           "ends inside the device state", true);
            expect_scan_fails(p, what, MRIMG_ERR_TRUNCATED, "no EOF record with a VMDESCRIPTION");
        }
        assert_true(after0 >= 10);
        /* cut inside the JSON, after a device state that ends soundly (the
         * EOF record right after a section footer): QEMU loads it without a
         * word, so a warning only; the stream ends at its EOF record and the
         * partial description is trailing, not payload.trailing */
        const char *p = copy_fixture(rel, "cut");
        uint64_t jcut = json + (end - json) / 2;
        cut_file(p, jcut);
        expect_problem(p, "JSON cut", "stream.vmdesc", MRIMG_SEV_WARNING, eof + 1,
                       "is cut by the end of the file", true);
        {
            mrimg_verify_result *r = verify(p);
            assert_int_equal(r->warnings, 1);
            mrimg_verify_free(r);
        }
        img = open_img(p);
        assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
        si = mrimg_stream(img);
        assert_int_equal(si->has_vmdesc, 0);
        assert_int_equal(base + si->eof_offset, eof);
        assert_int_equal(base + si->stream_size, eof + 1);
        assert_int_equal(base + si->stream_size + si->trailing_bytes, jcut);
        mrimg_close(img);
        /* the same cut after a device state that does not end soundly (the
         * byte before the EOF record is no longer a section footer's):
         * still refused as a truncation */
        p = copy_fixture(rel, "cut");
        cut_file(p, jcut);
        {
            int fd = open(p, O_WRONLY);
            assert_true(fd >= 0);
            assert_int_equal(pwrite(fd, "\x7f", 1, (off_t)(eof - 5)), 1);
            close(fd);
        }
        expect_problem(p, "JSON cut, no footer", "stream.truncated", MRIMG_SEV_ERROR, UINT64_MAX,
                       "inside its VMDESCRIPTION", true);
        expect_scan_fails(p, "JSON cut, no footer", MRIMG_ERR_TRUNCATED, "announces");
        /* right after the EOF record: no VMDESCRIPTION (suppress-vmdesc) */
        p = copy_fixture(rel, "cut");
        cut_file(p, eof + 1);
        expect_problem(p, "no VMDESCRIPTION", "stream.vmdesc", MRIMG_SEV_WARNING, eof + 1,
                       "could not be delimited or checked", true);
        img = open_img(p);
        assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
        si = mrimg_stream(img);
        assert_int_equal(si->has_vmdesc, 0);
        assert_int_equal(si->devices_walked, 0);
        assert_int_equal(base + si->eof_offset, eof);
        mrimg_close(img);
        /* an EOF + VMDESCRIPTION look-alike in the device state, right
         * after a section footer, whose announced JSON runs past the end
         * of the file but whose bytes are binary: not a cut description,
         * with the real one cut or absent (a conversion drops a cut one:
         * the stream must still end where it did) */
        uint64_t f = 0;
        for (uint64_t at = ram_end; at + 6 <= eof && !f; at++)
            if (all[at] == 0x7e && all[at + 5] == 0x04)
                f = at + 5;
        assert_true(f > ram_end && f + 7 < eof);
        for (int after_eof = 0; after_eof < 2; after_eof++) {
            p = copy_fixture(rel, "cut");
            cut_file(p, after_eof ? eof + 1 : jcut);
            int fd = open(p, O_WRONLY);
            assert_true(fd >= 0);
            assert_int_equal(pwrite(fd, "\x00\x06\x00\x0f\xff\xff{", 7, (off_t)f), 7);
            close(fd);
            expect_problem(p, "look-alike", "stream.vmdesc", MRIMG_SEV_WARNING, eof + 1,
                           after_eof ? "could not be delimited or checked"
                                   : "is cut by the end of the file",
                           true);
            img = open_img(p);
            assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
            si = mrimg_stream(img);
            assert_int_equal(base + si->eof_offset, eof);
            assert_int_equal(base + si->stream_size, eof + 1);
            mrimg_close(img);
        }
        free(all);
    }
}

/* ---- trailing holes and zeros ----------------------------------------------------- */

static void digest_of(const char *path, uint8_t out[MRIMG_DIGEST_LEN], uint64_t *dev)
{
    mrimg_image *img = open_img(path);
    mrimg_digest *d = NULL;
    mrimg_error e;
    int rc = mrimg_digest_compute(img, &d, NULL, NULL, &e);
    if (rc)
        fprintf(stderr, "digest %s: %s\n", path, e.message);
    assert_int_equal(rc, 0);
    memcpy(out, d->digest, MRIMG_DIGEST_LEN);
    *dev = d->device_bytes;
    mrimg_digest_free(d);
    mrimg_close(img);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_trailing_holes(void **state)
{
    (void)state;
    static const char *const rels[] = {"qemu/plain.mig", "libvirt/raw.sav", "libvirt/sparse.sav",
                                       "libvirt/zstd.sav", "libvirt/gzip.sav"};
    static const uint64_t grow[] = {1ull << 40, 64ull << 20, 4096, 1};
    for (size_t k = 0; k < sizeof(rels) / sizeof(rels[0]); k++) {
        const char *rel = rels[k];
        uint8_t want[MRIMG_DIGEST_LEN];
        uint64_t want_dev;
        digest_of(fixture_path(rel), want, &want_dev);
        for (size_t g = 0; g < sizeof(grow) / sizeof(grow[0]); g++) {
            char what[200];
            snprintf(what, sizeof(what), "%s + %llu zero bytes", rel,
                     (unsigned long long)grow[g]);
            const char *p = copy_fixture(rel, "grown");
            struct stat st;
            assert_int_equal(stat(p, &st), 0);
            uint64_t old = (uint64_t)st.st_size;
            assert_int_equal(truncate(p, (off_t)(old + grow[g])), 0);
            double t0 = now();
            uint8_t got[MRIMG_DIGEST_LEN];
            uint64_t dev;
            digest_of(p, got, &dev);
            assert_memory_equal(got, want, MRIMG_DIGEST_LEN);
            assert_int_equal(dev, want_dev);
            mrimg_image *img = open_img(p);
            mrimg_error e;
            assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
            const mrimg_stream_info *si = mrimg_stream(img);
            assert_true(si->has_vmdesc);
            assert_true(si->devices_walked);
            if (mrimg_container(img)->payload_format == MRIMG_FORMAT_RAW ||
                mrimg_container(img)->payload_format == MRIMG_FORMAT_SPARSE) {
                assert_int_equal(si->trailing_bytes, grow[g]);
                assert_true(si->trailing_zero);
                assert_int_equal(si->stream_offset + si->stream_size, old);
            }
            mrimg_close(img);
            mrimg_verify_result *r = verify(p);
            if (r->errors && !strstr(rel, "zstd")) { /* zstd -dc refuses trailing bytes */
                dump(what, r);
                fail();
            }
            assert_non_null(find(r, "payload.trailing", r->errors ? MRIMG_SEV_ERROR
                                                                  : MRIMG_SEV_WARNING,
                                 UINT64_MAX, NULL));
            assert_null(find(r, "stream.vmdesc", MRIMG_SEV_ERROR, UINT64_MAX, NULL));
            assert_null(find(r, "stream.devices", MRIMG_SEV_ERROR, UINT64_MAX, NULL));
            mrimg_verify_free(r);
            double dt = now() - t0;
            if (dt > 3.0) {
                fprintf(stderr, "%s took %.2f s\n", what, dt);
                fail();
            }
        }
    }
}

static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&g_dir, "layout");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapped_layout),
        cmocka_unit_test(test_device_cuts),
        cmocka_unit_test(test_trailing_holes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
