/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Conversions against QEMU's and libvirt's own bytes: plain <-> mapped-ram
 * re-encodings reproduce QEMU's RAM sections byte for byte, raw <->
 * compressed keeps the stream bytes, and round trips give back the input. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *tmpdir;

static const char *tpath(const char *name)
{
    static char bufs[4][4096];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, 4096, "%s/%s", tmpdir, name);
    return b;
}

static mrimg_image *open_at(const char *path, uint64_t off)
{
    t_open_opts o = {.stream_offset = off};
    mrimg_error e;
    mrimg_image *img = t_open(path, &o, &e);
    if (!img)
        fail_msg("%s: %s", path, e.message);
    return img;
}

static void convert(const char *in, uint64_t in_off, const char *out, mrimg_output fmt,
                    void (*tweak)(t_convert_opts *), mrimg_convert_stats *st)
{
    mrimg_image *img = open_at(in, in_off);
    t_convert_opts o;
    t_convert_opts_init(&o);
    o.out = fmt;
    o.force = 1;
    if (tweak)
        tweak(&o);
    mrimg_error e;
    if (t_convert(img, out, &o, st, &e) != 0)
        fail_msg("%s -> %s (%d): %s", in, out, fmt, e.message);
    mrimg_close(img);
}

/* first n bytes of two files are equal */
static void assert_prefix_equal(const char *a, const char *b, uint64_t n)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    assert_non_null(fa);
    assert_non_null(fb);
    static uint8_t ba[1 << 20], bb[1 << 20];
    uint64_t done = 0;
    while (done < n) {
        size_t k = (size_t)(n - done < sizeof(ba) ? n - done : sizeof(ba));
        size_t ra = fread(ba, 1, k, fa), rb = fread(bb, 1, k, fb);
        if (ra != k || rb != k)
            fail_msg("%s / %s shorter than %llu bytes", a, b, (unsigned long long)n);
        if (memcmp(ba, bb, k) != 0) {
            for (size_t i = 0; i < k; i++)
                if (ba[i] != bb[i])
                    fail_msg("%s and %s differ at byte %llu", a, b,
                             (unsigned long long)(done + i));
        }
        done += k;
    }
    fclose(fa);
    fclose(fb);
}

static uint64_t ram_end_of(const char *path, uint64_t off)
{
    mrimg_image *img = open_at(path, off);
    mrimg_error e;
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    uint64_t r = mrimg_stream(img)->ram_end + mrimg_container(img)->payload_offset;
    mrimg_close(img);
    return r;
}

static uint64_t file_size(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

/* plain -> mapped-ram gives QEMU's own mapped-ram RAM part, and back. */
static void test_reencode_matches_qemu(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"plain.mig", "mapped.mig"},
        {"plain-q35.mig", "mapped-q35.mig"},
        {"plain-multiblock.mig", "mapped-multiblock.mig"},
        {"plain-i440fx-9.2.mig", "mapped-i440fx-9.2.mig"},
        {"plain-1g.mig", "mapped-1g.mig"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(*pairs); i++) {
        char pl[512], mp[512], rel[128];
        snprintf(rel, sizeof(rel), "qemu/%s", pairs[i][0]);
        snprintf(pl, sizeof(pl), "%s", fixture_path(rel));
        snprintf(rel, sizeof(rel), "qemu/%s", pairs[i][1]);
        snprintf(mp, sizeof(mp), "%s", fixture_path(rel));
        mrimg_convert_stats st;
        convert(pl, 0, tpath("p2m.mig"), MRIMG_OUT_QEMU_MAPPED, NULL, &st);
        assert_true(st.reencoded);
        assert_prefix_equal(tpath("p2m.mig"), mp, ram_end_of(mp, 0));
        /* zero pages stay holes: far less allocated than the logical size */
        assert_true(st.out_allocated < st.out_bytes / 8);

        convert(mp, 0, tpath("m2p.mig"), MRIMG_OUT_QEMU, NULL, &st);
        assert_prefix_equal(tpath("m2p.mig"), pl, ram_end_of(pl, 0));
        /* the device-state tail is copied byte for byte */
        mrimg_image *a = open_at(mp, 0), *b = open_at(tpath("m2p.mig"), 0);
        mrimg_error e;
        assert_int_equal(mrimg_scan(a, 0, NULL, NULL, &e), 0);
        assert_int_equal(mrimg_scan(b, 0, NULL, NULL, &e), 0);
        assert_int_equal(mrimg_stream(a)->tail_size, mrimg_stream(b)->tail_size);
        uint64_t ta = mrimg_stream(a)->ram_end, tb = mrimg_stream(b)->ram_end;
        uint64_t n = mrimg_stream(a)->tail_size;
        mrimg_close(a);
        mrimg_close(b);
        uint8_t *x = malloc(n), *y = malloc(n);
        int fa = open(mp, O_RDONLY), fb = open(tpath("m2p.mig"), O_RDONLY);
        assert_int_equal(pread(fa, x, n, (off_t)ta), (ssize_t)n);
        assert_int_equal(pread(fb, y, n, (off_t)tb), (ssize_t)n);
        assert_memory_equal(x, y, n);
        close(fa);
        close(fb);
        free(x);
        free(y);
    }
}

/* raw <-> every codec: the stream bytes are kept, the header too, and the
 * way back gives the original file byte for byte. */
static void test_libvirt_roundtrips(void **state)
{
    (void)state;
    const char *raw = fixture_path("libvirt/raw.sav");
    static const mrimg_output fmts[] = {MRIMG_OUT_GZIP, MRIMG_OUT_BZIP2, MRIMG_OUT_XZ,
                               MRIMG_OUT_LZOP, MRIMG_OUT_ZSTD, MRIMG_OUT_SPARSE,
                               MRIMG_OUT_RAW};
    for (size_t i = 0; i < sizeof(fmts) / sizeof(*fmts); i++) {
        char a[64];
        snprintf(a, sizeof(a), "rt.%s", mrimg_output_info(fmts[i])->name);
        convert(raw, 0, tpath(a), fmts[i], NULL, NULL);
        mrimg_image *img = open_at(tpath(a), 0);
        const mrimg_container_info *c = mrimg_container(img);
        assert_true(c->complete);
        assert_int_equal(c->format, fmts[i]);
        assert_int_equal(c->was_running, 1);
        mrimg_close(img);
        convert(tpath(a), 0, tpath("rt.back"), MRIMG_OUT_RAW, NULL, NULL);
        assert_int_equal(file_size(tpath("rt.back")), file_size(raw));
        assert_prefix_equal(tpath("rt.back"), raw, file_size(raw));
    }
    /* libvirt's own sparse image -> raw -> sparse: same RAM part as libvirt's */
    const char *sp = fixture_path("libvirt/sparse.sav");
    convert(sp, 0, tpath("s2r.sav"), MRIMG_OUT_RAW, NULL, NULL);
    convert(tpath("s2r.sav"), 0, tpath("r2s.sav"), MRIMG_OUT_SPARSE, NULL, NULL);
    assert_prefix_equal(tpath("r2s.sav"), sp, ram_end_of(sp, 0));
}

static const char *big_xml;
static void with_xml(t_convert_opts *o)
{
    o->xml = big_xml;
    o->running = 0;
}

/* A larger XML moves the payload; sparse offsets follow it. */
static void test_xml_replace(void **state)
{
    (void)state;
    mrimg_image *img = open_at(fixture_path("libvirt/raw.sav"), 0);
    const char *xml = mrimg_container(img)->xml;
    size_t n = strlen(xml);
    char *x = malloc(n + 200000);
    memcpy(x, xml, n);
    char *end = strstr(x, "</domain>");
    assert_non_null(end);
    size_t pos = (size_t)(end - x);
    strcpy(x + pos, "  <description>");
    memset(x + pos + 15, 'd', 150000);
    strcpy(x + pos + 15 + 150000, "</description>\n</domain>\n");
    big_xml = x;
    mrimg_close(img);
    static const mrimg_output fmts[] = {MRIMG_OUT_SPARSE, MRIMG_OUT_ZSTD};
    for (size_t i = 0; i < 2; i++) {
        convert(fixture_path("libvirt/sparse.sav"), 0, tpath("xml.sav"), fmts[i], with_xml, NULL);
        img = open_at(tpath("xml.sav"), 0);
        const mrimg_container_info *c = mrimg_container(img);
        assert_string_equal(c->xml, big_xml);
        assert_int_equal(c->was_running, 0);
        assert_true(c->data_len >= strlen(big_xml) + 1 + c->cookie_len + 1);
        assert_non_null(c->cookie);
        mrimg_error e;
        assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
        const mrimg_ram_block_info *b = mrimg_block(img, 0);
        if (fmts[i] == MRIMG_OUT_SPARSE) {
            assert_true(b->pages_offset % (1u << 20) == 0);
            assert_true(b->pages_offset > c->payload_offset);
        }
        size_t blen;
        uint8_t *blob = read_file(fixture_path("libvirt/blob.bin"), &blen);
        uint8_t *buf = malloc(blen + 4096);
        assert_int_equal(mrimg_ram_read(img, 0, 0x2000000 / 4096, (blen + 4095) / 4096, buf, &e),
                         0);
        assert_memory_equal(buf, blob, blen);
        free(buf);
        free(blob);
        mrimg_close(img);
    }
    free(x);

    /* what libvirt could not read back is refused, nothing is written */
    static const char *const bad[] = {
        "<domain><name>x</name><uuid>u</uuid>",            /* unterminated */
        "<domain><name>x</name></domain>",                 /* no uuid */
        "<cookie><name>x</name><uuid>u</uuid></cookie>",   /* not a domain */
        "<domain><name>x</name><uuid>u</uuid></domain><x/>", /* two roots */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        mrimg_error e;
        img = open_at(fixture_path("libvirt/raw.sav"), 0);
        t_convert_opts o;
        t_convert_opts_init(&o);
        o.out = MRIMG_OUT_RAW;
        o.xml = bad[i];
        assert_int_equal(t_convert(img, tpath("badxml.sav"), &o, NULL, &e), MRIMG_ERR_INVAL);
        assert_int_equal(mrimg_xml_check(bad[i], &e), MRIMG_ERR_INVAL);
        assert_int_not_equal(access(tpath("badxml.sav"), F_OK), 0);
        mrimg_close(img);
    }
}

/* --cookie: a bare stream gets the cookie libvirt wrote (libvirt -> qemu ->
 * libvirt keeps it); what is not a <cookie> document, and header options
 * for bare outputs, are refused before any output exists. */
static void test_convert_cookie(void **s)
{
    (void)s;
    mrimg_error e;
    mrimg_image *img = open_at(fixture_path("libvirt/raw.sav"), 0);
    char *want = strdup(mrimg_container(img)->cookie);
    char *xml = strdup(mrimg_container(img)->xml);
    assert_non_null(strstr(want, "<cookie>"));
    t_convert_opts o;
    t_convert_opts_init(&o);
    o.out = MRIMG_OUT_QEMU;
    o.force = 1;
    assert_int_equal(t_convert(img, tpath("ck.mig"), &o, NULL, &e), 0);
    mrimg_close(img);

    static const char *const bad[] = {
        "<cookie><cpu></cookie>", /* not well-formed */
        "<domain><name>x</name><uuid>u</uuid></domain>", /* not a cookie */
        "",
    };
    img = open_at(tpath("ck.mig"), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(mrimg_cookie_check(bad[i], &e), MRIMG_ERR_INVAL);
        t_convert_opts_init(&o);
        o.out = MRIMG_OUT_ZSTD;
        o.xml = xml;
        o.cookie = bad[i];
        assert_int_equal(t_convert(img, tpath("ckbad.sav"), &o, NULL, &e), MRIMG_ERR_INVAL);
        assert_int_not_equal(access(tpath("ckbad.sav"), F_OK), 0);
    }
    /* header options for a bare output */
    t_convert_opts_init(&o);
    o.out = MRIMG_OUT_QEMU_MAPPED;
    o.cookie = want;
    assert_int_equal(t_convert(img, tpath("ckbad.mig"), &o, NULL, &e), MRIMG_ERR_INVAL);
    o.cookie = NULL;
    o.xml = xml;
    assert_int_equal(t_convert(img, tpath("ckbad.mig"), &o, NULL, &e), MRIMG_ERR_INVAL);
    o.xml = NULL;
    o.running = 1;
    assert_int_equal(t_convert(img, tpath("ckbad.mig"), &o, NULL, &e), MRIMG_ERR_INVAL);
    assert_int_not_equal(access(tpath("ckbad.mig"), F_OK), 0);

    /* back to libvirt with the cookie: stored as given */
    assert_int_equal(mrimg_cookie_check(want, &e), 0);
    t_convert_opts_init(&o);
    o.out = MRIMG_OUT_RAW;
    o.force = 1;
    o.xml = xml;
    o.cookie = want;
    assert_int_equal(t_convert(img, tpath("ck.sav"), &o, NULL, &e), 0);
    mrimg_close(img);
    img = open_at(tpath("ck.sav"), 0);
    assert_non_null(mrimg_container(img)->cookie);
    assert_string_equal(mrimg_container(img)->cookie, want);
    assert_string_equal(mrimg_container(img)->xml, xml);
    mrimg_close(img);
    free(want);
    free(xml);
}

static void compact(t_convert_opts *o) { o->compact = 1; }

/* A live (multi-pass) stream: to mapped-ram the last record of each page
 * wins; --compact makes one ordered pass with the same content. */
typedef struct sum_ctx {
    uint64_t sum, data;
} sum_ctx;

static int sum_cb(void *opaque, unsigned block, uint64_t first, uint64_t n, const uint8_t *data,
                  mrimg_error *err)
{
    (void)err;
    sum_ctx *s = opaque;
    if (block == MRIMG_WALK_RESTART) {
        memset(s, 0, sizeof(*s));
        return 0;
    }
    if (!data)
        return 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t h = 1469598103934665603ull ^ ((uint64_t)block << 40) ^ (first + k);
        int nz = 0;
        for (int j = 0; j < 4096; j++) {
            nz |= data[k * 4096 + j];
            h = (h ^ data[k * 4096 + j]) * 1099511628211ull;
        }
        if (nz) {
            s->sum += h;
            s->data++;
        }
    }
    return 0;
}

static sum_ctx ram_sum(const char *p)
{
    sum_ctx s = {0, 0};
    mrimg_image *img = open_at(p, 0);
    mrimg_error e;
    if (mrimg_ram_walk(img, sum_cb, &s, NULL, NULL, &e) != 0)
        fail_msg("%s: %s", p, e.message);
    mrimg_close(img);
    return s;
}

static void test_multipass(void **state)
{
    (void)state;
    const char *live = fixture_path("qemu/plain-live.mig");
    sum_ctx ref = ram_sum(live);
    assert_true(ref.data > 0);
    convert(live, 0, tpath("live.mapped"), MRIMG_OUT_QEMU_MAPPED, NULL, NULL);
    sum_ctx m = ram_sum(tpath("live.mapped"));
    assert_int_equal(m.sum, ref.sum);
    convert(live, 0, tpath("live.compact"), MRIMG_OUT_QEMU, compact, NULL);
    mrimg_image *img = open_at(tpath("live.compact"), 0);
    mrimg_error e;
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    assert_int_equal(mrimg_stream(img)->multi_pass, 0);
    assert_int_equal(mrimg_stream(img)->ordered, 1);
    assert_true(mrimg_stream(img)->stream_size < file_size(live));
    mrimg_close(img);
    sum_ctx c = ram_sum(tpath("live.compact"));
    assert_int_equal(c.sum, ref.sum);
    /* mapped-ram live input -> plain */
    convert(fixture_path("qemu/mapped-live.mig"), 0, tpath("ml.plain"), MRIMG_OUT_QEMU, NULL,
            NULL);
    sum_ctx ml = ram_sum(fixture_path("qemu/mapped-live.mig"));
    sum_ctx mlp = ram_sum(tpath("ml.plain"));
    assert_int_equal(ml.sum, mlp.sum);
}

/* -O ram: one sparse file per block, named after it. */
static void test_ram_dir(void **state)
{
    (void)state;
    convert(fixture_path("qemu/mapped-multiblock.mig"), 0, tpath("ramdir"), MRIMG_OUT_RAM, NULL,
            NULL);
    assert_int_equal(file_size(tpath("ramdir/pc.ram")), 64u << 20);
    assert_int_equal(file_size(tpath("ramdir/m1")), 32u << 20);
    assert_int_equal(file_size(tpath("ramdir/rom@etc_acpi_tables")), 128u << 10);
    assert_int_equal(file_size(tpath("ramdir/0000:00:02.0_vga.vram")), 16u << 20);
    size_t blen, rlen;
    uint8_t *blob = read_file(fixture_path("qemu/blob.bin"), &blen);
    uint8_t *ram = read_file(tpath("ramdir/pc.ram"), &rlen);
    assert_memory_equal(ram + 0x200000, blob, blen);
    free(blob);
    free(ram);
    struct stat st;
    assert_int_equal(stat(tpath("ramdir/pc.ram"), &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 < (8u << 20));
}

/* Failures leave the target untouched and no temporary behind. */
static unsigned count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' || strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

static void test_safety(void **state)
{
    (void)state;
    char *dir = test_tmpdir("safety");
    char target[4200], cut[4200];
    snprintf(target, sizeof(target), "%s/out.sav", dir);
    snprintf(cut, sizeof(cut), "%s/cut.sav", dir);
    write_file(target, "precious", 8);

    mrimg_image *img = open_at(fixture_path("libvirt/raw.sav"), 0);
    t_convert_opts o;
    t_convert_opts_init(&o);
    o.out = MRIMG_OUT_ZSTD;
    mrimg_error e;
    assert_int_equal(t_convert(img, target, &o, NULL, &e), MRIMG_ERR_EXISTS);
    mrimg_close(img);

    /* a truncated input fails mid-way: target unchanged, no temporary
     * (cut inside the device state, just before the EOF record: a cut
     * inside the VMDESCRIPTION after it is only a warning, QEMU loads it) */
    mrimg_stream_info si;
    size_t len;
    uint8_t *b = test_read_scanned(fixture_path("libvirt/raw.sav"), &len, &si);
    assert_true(si.has_eof);
    size_t keep = (size_t)(si.stream_offset + si.eof_offset - 1);
    assert_true(keep < len);
    write_file(cut, b, keep);
    free(b);
    unsigned before = count_entries(dir);
    static const mrimg_output fmts[] = {MRIMG_OUT_ZSTD, MRIMG_OUT_SPARSE, MRIMG_OUT_GZIP};
    for (size_t i = 0; i < 3; i++) {
        img = open_at(cut, 0);
        o.out = fmts[i];
        o.force = 1;
        int rc = t_convert(img, target, &o, NULL, &e);
        assert_int_equal(rc, MRIMG_ERR_TRUNCATED);
        mrimg_close(img);
        size_t tl;
        uint8_t *t = read_file(target, &tl);
        assert_int_equal(tl, 8);
        assert_memory_equal(t, "precious", 8);
        free(t);
        assert_int_equal(count_entries(dir), before);
    }

    /* a successful output is 0600 and complete */
    img = open_at(fixture_path("libvirt/raw.sav"), 0);
    o.out = MRIMG_OUT_LZOP;
    assert_int_equal(t_convert(img, target, &o, NULL, &e), 0);
    mrimg_close(img);
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    img = open_at(target, 0);
    assert_true(mrimg_container(img)->complete);
    mrimg_close(img);
    test_rmdir_all(dir);
    free(dir);
}

/* A stream that does not parse to its end, followed by a terabyte hole:
 * refused at once with the judgement's reason, nothing written (the
 * verbatim copy used to go on through the hole: minutes, and a full
 * tmpfs, for an output that was then dropped; fuzz_image's timeout). */
static void test_unparsable_then_hole(void **state)
{
    (void)state;
    mrimg_stream_info si;
    size_t len;
    uint8_t *b = test_read_scanned(fixture_path("libvirt/raw.sav"), &len, &si);
    uint32_t id = si.ram_section_id;
    /* the first PART of the RAM section: right after the START's footer */
    uint8_t want[10] = {0x7e, 0, 0, 0, 0, 0x02, 0, 0, 0, 0};
    for (int k = 0; k < 4; k++)
        want[1 + k] = want[6 + k] = (uint8_t)(id >> (24 - 8 * k));
    size_t at = 0;
    for (size_t i = 0; i + sizeof(want) <= len && !at; i++)
        if (!memcmp(b + i, want, sizeof(want)))
            at = i + 6;
    assert_true(at > 0);
    b[at + 3] ^= 0x40; /* another section's id */
    char in[4200], out[4200];
    snprintf(in, sizeof(in), "%s", tpath("unparsable.sav"));
    snprintf(out, sizeof(out), "%s", tpath("unparsable.out"));
    write_file(in, b, len);
    free(b);
    assert_int_equal(truncate(in, (off_t)len + ((off_t)1 << 40)), 0);
    static const mrimg_output fmts[] = {MRIMG_OUT_QEMU, MRIMG_OUT_RAW, MRIMG_OUT_ZSTD};
    for (size_t i = 0; i < 3; i++) {
        mrimg_image *img = open_at(in, 0);
        mrimg_error e;
        t_convert_opts o;
        t_convert_opts_init(&o);
        o.out = fmts[i];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = t_convert(img, out, &o, NULL, &e);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        mrimg_close(img);
        if (rc != MRIMG_ERR_FORMAT || !strstr(e.message, "is not the RAM section"))
            fail_msg("output %d: unexpected refusal (%s): %s", (int)fmts[i], mrimg_code_name(rc),
                     e.message);
        assert_true(t1.tv_sec - t0.tv_sec < 20); /* was minutes: 1 TiB of zeros */
        assert_int_equal(access(out, F_OK), -1);
    }
    unlink(in);
}

static int group_setup(void **state)
{
    (void)state;
    tmpdir = test_tmpdir("convert");
    return tmpdir ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    test_rmdir_all(tmpdir);
    free(tmpdir);
    return 0;
}

/* The error value says which file failed: the input (missing, a
 * directory, cut short), the output (a directory, exists) or the scratch
 * file (the RAM replay of --compact in $MRIMG_TMPDIR). */
static void test_error_side(void **state)
{
    (void)state;
    mrimg_error e;
    assert_null(t_open(tpath("missing.sav"), NULL, &e));
    assert_int_equal(e.code, MRIMG_ERR_IO);
    assert_int_equal(e.side, MRIMG_SIDE_INPUT);
    assert_string_equal(mrimg_side_name(e.side), "input");
    assert_null(t_open(tmpdir, NULL, &e));
    assert_int_equal(e.code, MRIMG_ERR_IO);
    assert_int_equal(e.sys_errno, EISDIR);
    assert_int_equal(e.side, MRIMG_SIDE_INPUT);

    mrimg_image *img = open_at(fixture_path("libvirt/raw.sav"), 0);
    t_convert_opts o;
    t_convert_opts_init(&o);
    o.out = MRIMG_OUT_ZSTD;
    for (int force = 0; force < 2; force++) {
        o.force = force;
        assert_int_equal(t_convert(img, tmpdir, &o, NULL, &e), MRIMG_ERR_IO);
        assert_int_equal(e.sys_errno, EISDIR);
        assert_int_equal(e.side, MRIMG_SIDE_OUTPUT);
    }
    o.force = 0;
    write_file(tpath("exists.sav"), "", 0);
    assert_int_equal(t_convert(img, tpath("exists.sav"), &o, NULL, &e), MRIMG_ERR_EXISTS);
    assert_int_equal(e.side, MRIMG_SIDE_OUTPUT);
    mrimg_close(img);

    /* a content error is no file's: side none */
    assert_null(t_open(fixture_path("qemu/blob.bin"), NULL, &e));
    assert_int_equal(e.side, MRIMG_SIDE_NONE);

    const char *old = getenv("MRIMG_TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("MRIMG_TMPDIR", tpath("no-such-dir"), 1);
    img = open_at(fixture_path("qemu/plain-live.mig"), 0);
    t_convert_opts_init(&o);
    o.out = MRIMG_OUT_QEMU;
    o.compact = 1;
    assert_true(t_convert(img, tpath("live.out"), &o, NULL, &e) < 0);
    assert_int_equal(e.side, MRIMG_SIDE_SCRATCH);
    assert_non_null(strstr(e.message, "no-such-dir"));
    assert_int_equal(access(tpath("live.out"), F_OK), -1);
    mrimg_close(img);
    if (saved)
        setenv("MRIMG_TMPDIR", saved, 1);
    else
        unsetenv("MRIMG_TMPDIR");
    free(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reencode_matches_qemu),
        cmocka_unit_test(test_libvirt_roundtrips),
        cmocka_unit_test(test_xml_replace),
        cmocka_unit_test(test_convert_cookie),
        cmocka_unit_test(test_multipass),
        cmocka_unit_test(test_ram_dir),
        cmocka_unit_test(test_safety),
        cmocka_unit_test(test_unparsable_then_hole),
        cmocka_unit_test(test_error_side),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
