/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory bounds of a conversion.  An image is never held in memory; what a
 * conversion holds is its stream reader's buffers, the sink's write buffer
 * and the encoder (its own buffer and its library's contexts).  These tests
 * ask each part how much it has allocated (srd_footprint, sink cap,
 * enc_mem), after real use, and fail when one grows past the bound
 * documented beside it (lib/stream/bytes.h, lib/io/sink.c, lib/codec/zstd.c)
 * - peak RSS of `imgconv -O zstd` is measured against `zstd -T N` in
 * bench/run.sh; these bounds are what keeps it close. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/codec.h"
#include "image.h"
#include "io/sink.h"
#include "stream/bytes.h"

#define MiB (1u << 20)

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&g_dir, "buffers");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

/* The stream reader over a real raw save image, read to the end: its
 * buffers (with the read-ahead thread's, when it runs) stay within
 * 2 x (SRD_BUF + SRD_HEAD) <= 5 MiB, and the parse buffer still holds the
 * largest record the parser asks for whole. */
static void test_reader_footprint(void **state)
{
    (void)state;
    assert_true(SRD_BUF >= SRD_MAX_RECORD);
    assert_true(2u * (SRD_BUF + SRD_HEAD) <= 5u * MiB);
    mrimg_image *img = test_open(fixture_path("libvirt/raw.sav"));
    srd s;
    mrimg_error err;
    /* as the image layer opens a raw payload (lib/image.c) */
    int rc = srd_init_raw(&s, &img->src, img->ci.payload_offset, SRD_BUF, &err);
    if (rc < 0)
        fail_msg("srd_init_raw: %s", err.message);
    srd_prefetch_start(&s);
    size_t peak = srd_footprint(&s);
    uint64_t total = 0;
    while (rc == 0) {
        size_t n = srd_avail(&s);
        if (n == 0) {
            rc = srd_peek(&s, 1, &err);
            if (rc <= 0)
                break;
            rc = 0;
            continue;
        }
        total += n;
        srd_consume(&s, n);
        peak = MRIMG_MAX(peak, srd_footprint(&s));
    }
    assert_int_equal(rc, 0);
    assert_true(total > 0);
    print_message("reader: %llu stream bytes, buffers %zu bytes (read-ahead %s)\n",
                  (unsigned long long)total, peak, s.pf ? "on" : "off");
    assert_true(peak <= 2u * (SRD_BUF + SRD_HEAD));
    assert_true(peak >= SRD_BUF + SRD_HEAD);
    srd_free(&s);
    mrimg_close(img);
}

/* The sink's write buffer: 1 MiB. */
static void test_sink_buffer(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof(path), "%s/sink.out", g_dir);
    mrimg_sink k;
    mrimg_error err;
    int rc = sink_create(&k, path, SINK_FORCE, &err);
    if (rc < 0)
        fail_msg("sink_create: %s", err.message);
    assert_true(k.cap <= 1u * MiB);
    assert_true(k.cap >= 64u << 10); /* still large writes */
    sink_abort(&k);
}

/* guest-RAM-like data: text, zeros, random pages */
static void fill(uint8_t *p, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t off = 0; off < n; off += 4096) {
        size_t k = MRIMG_MIN((size_t)4096, n - off);
        unsigned kind = (unsigned)(off / 4096) % 5;
        if (kind == 0) {
            memset(p + off, 0, k);
        } else if (kind == 1) {
            for (size_t i = 0; i < k; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                p[off + i] = (uint8_t)(x >> 32);
            }
        } else {
            for (size_t i = 0; i < k; i++)
                p[off + i] = (uint8_t)("migration stream of a guest "[(off / 64 + i) % 28]);
        }
    }
}

/* The zstd encoder at the default level: what it has allocated (its
 * output buffer and libzstd's contexts, ZSTD_sizeof_CCtx) after 64 MiB -
 * enough for every job buffer libzstd keeps to exist - stays within the
 * bound documented in lib/codec/zstd.c for W workers: an input ring of
 * W + 3 jobs of 8 MiB, an output buffer of 8.5 MiB per job in flight (at
 * most the job table, J = 2^(floor(log2(W + 2)) + 1): 4 for one worker, 8
 * for 2 to 5), 2 MiB of match state per worker.  That is libzstd's, the same the zstd CLI allocates at -T W;
 * what we add is a 128 KiB output buffer, all that an encoder holds before
 * its first job (<= 256 KiB). */
static void test_zstd_encoder_memory(void **state)
{
    (void)state;
    const size_t len = 64u * MiB;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    fill(data, len);
    static const unsigned threads[] = {1, 2, 4};
    for (size_t t = 0; t < MRIMG_ARRAY_SIZE(threads); t++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/t%u.zst", g_dir, threads[t]);
        mrimg_sink k;
        mrimg_error err;
        assert_int_equal(sink_create(&k, path, SINK_FORCE, &err), 0);
        mrimg_encoder e;
        mrimg_enc_opts o = {.level = -1, .threads = threads[t]};
        int rc = enc_open(&e, &codec_zstd, &k, &o, &err);
        if (rc < 0)
            fail_msg("enc_open: %s", err.message);
        size_t peak = enc_mem(&e);
        print_message("zstd -T%u: %zu bytes allocated when opened\n", threads[t], peak);
        assert_true(peak <= 256u << 10);
        for (size_t off = 0; rc == 0 && off < len; off += MiB) {
            rc = enc_write(&e, data + off, MiB, &err);
            peak = MRIMG_MAX(peak, enc_mem(&e));
        }
        if (rc == 0)
            rc = enc_finish(&e, &err);
        peak = MRIMG_MAX(peak, enc_mem(&e));
        assert_int_equal(rc, 0);
        size_t w = MRIMG_MAX(1u, MRIMG_MIN(threads[t], 256u));
        size_t jobs = 2;
        while (jobs <= w + 2)
            jobs *= 2;
        size_t bound = (w + 3) * (8u * MiB) + jobs * (17u << 19) + w * (2u * MiB);
        print_message("zstd -T%u: %zu bytes allocated (bound %zu)\n", threads[t], peak, bound);
        assert_true(peak > 0);
        assert_true(peak <= bound);
        enc_close(&e);
        sink_abort(&k);
    }
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_footprint),
        cmocka_unit_test(test_sink_buffer),
        cmocka_unit_test(test_zstd_encoder_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
