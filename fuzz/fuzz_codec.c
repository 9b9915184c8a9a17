/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_gzip, fuzz_bzip2, fuzz_xz, fuzz_lzop, fuzz_zstd: one payload decoder
 * through the codec vtable (FZ_CODEC names it at compile time).
 *
 * The input is a compressed payload in a file.  It is decoded to its end
 * (or to FZ_OUT_CAP bytes: a small input may legitimately expand a
 * thousandfold), with read sizes that cycle through 1 byte .. 8 MiB so that
 * every buffering path of the decoder is taken (lzop, for one, decodes
 * straight into a large caller buffer but through its own block buffer
 * into a small one).  Oracles: a clean end reports the bytes it produced
 * and stays at its end; no decoder consumes more than the file holds.
 *
 * One input in eight that is at most 32 KiB is also used as plain data for
 * a round trip through the same codec's encoder (single-threaded, at a
 * level taken from the input): decoding our own output must give the input
 * back, with no trailing data and nothing the stock tool would reject. */
#include "fuzz_common.h"

#include "codec/codec.h"

#ifndef FZ_CODEC
#error "FZ_CODEC must name the codec (codec_gzip, ...)"
#endif

#define FZ_OUT_CAP (16u << 20)
#define FZ_RT_MAX (32u << 10)

static fz_file in_file;
static uint8_t *obuf;
static const size_t read_sizes[] = {1, 13, 4096, 65536, 1u << 20, 8u << 20};
#define OBUF_SIZE (8u << 20)

typedef struct dec_result {
    int rc;
    uint64_t out;
    uint64_t hash;
    mrimg_dec_stats st;
    uint8_t *copy;       /* the output, when asked for (<= copy_cap) */
    size_t copy_cap;
} dec_result;

static void decode_all(mrimg_source *src, uint64_t size, size_t seed, dec_result *r)
{
    mrimg_error err;
    mrimg_decoder d;
    r->rc = dec_open(&d, &FZ_CODEC, src, 0, size, 1, &err);
    r->out = 0;
    r->hash = 0xcbf29ce484222325ull;
    if (r->rc < 0) {
        FZ_CHECK(err.code == r->rc && err.message[0], "error without a message");
        return;
    }
    for (unsigned i = 0;; i++) {
        size_t cap = read_sizes[(seed + i) % MRIMG_ARRAY_SIZE(read_sizes)];
        ssize_t n = dec_read(&d, obuf, cap, &err);
        if (n < 0) {
            FZ_CHECK(err.code == (int)n && err.message[0], "error %zd without a message", n);
            r->rc = (int)n;
            break;
        }
        FZ_CHECK((size_t)n <= cap, "dec_read returned %zd for a %zu-byte buffer", n, cap);
        if (n == 0) {
            /* a clean end: the statistics are complete, and the end stays */
            FZ_CHECK(d.st.out_bytes == r->out, "out_bytes %llu, produced %llu",
                     (unsigned long long)d.st.out_bytes, (unsigned long long)r->out);
            FZ_CHECK(dec_read(&d, obuf, 16, &err) == 0, "read after the end");
            r->rc = 0;
            break;
        }
        if (r->copy && r->out + (uint64_t)n <= r->copy_cap)
            memcpy(r->copy + r->out, obuf, (size_t)n);
        r->hash = fz_hash(obuf, (size_t)n, r->hash);
        r->out += (uint64_t)n;
        if (r->out >= FZ_OUT_CAP) {
            r->rc = 1; /* stopped at the cap: not an end */
            break;
        }
    }
    FZ_CHECK(d.st.in_bytes <= size, "consumed %llu of %llu bytes",
             (unsigned long long)d.st.in_bytes, (unsigned long long)size);
    r->st = d.st;
    dec_close(&d);
}

static int level_for(const uint8_t *data, size_t size)
{
    const mrimg_codec *c = &FZ_CODEC;
    int lo = c->level_min, hi = c->level_max;
    /* the costly top levels add nothing to a decoder test */
    if (c == &codec_xz && hi > 3)
        hi = 3;
    if (c == &codec_zstd && hi > 9)
        hi = 9;
    return lo + (size ? data[0] : 0) % (hi - lo + 1);
}

static void roundtrip(const uint8_t *data, size_t size)
{
    mrimg_error err;
    mrimg_sink sink;
    const char *target = fz_out_path("encoded");
    int rc = sink_create(&sink, target, SINK_FORCE, &err);
    FZ_CHECK(rc == 0, "sink_create: %s", err.message);
    mrimg_encoder e;
    mrimg_enc_opts o = {level_for(data, size), 1};
    rc = enc_open(&e, &FZ_CODEC, &sink, &o, &err);
    FZ_CHECK(rc == 0, "enc_open level %d: %s", o.level, err.message);
    /* in uneven pieces */
    size_t off = 0, piece = 1;
    while (rc == 0 && off < size) {
        size_t n = MRIMG_MIN(piece, size - off);
        rc = enc_write(&e, data + off, n, &err);
        off += n;
        piece = piece * 3 + 1;
    }
    if (rc == 0)
        rc = enc_finish(&e, &err);
    FZ_CHECK(rc == 0, "encoding %zu bytes: %s", size, err.message);
    enc_close(&e);
    rc = sink_flush(&sink, &err);
    FZ_CHECK(rc == 0, "sink_flush: %s", err.message);

    mrimg_source src;
    rc = src_open(&src, sink.tmp, &err);
    FZ_CHECK(rc == 0, "reopening the encoder's output: %s", err.message);
    dec_result r = {0};
    r.copy = malloc(size + 1);
    r.copy_cap = size;
    decode_all(&src, src.size, size, &r);
    FZ_CHECK(r.rc == 0, "decoding our own %s output failed (%d)", FZ_CODEC.name, r.rc);
    FZ_CHECK(r.out == size && memcmp(r.copy, data, size) == 0,
             "round trip changed the data: %zu bytes in, %llu out", size,
             (unsigned long long)r.out);
    FZ_CHECK(r.st.trailing == 0 && !r.st.tool_rejects,
             "our own output has trailing data or would be rejected: %s", r.st.note);
    free(r.copy);
    src_close(&src);
    sink_abort(&sink);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!obuf && !(obuf = malloc(OBUF_SIZE)))
        return 0;
    const char *path = fz_file_put(&in_file, data, size);
    mrimg_error err;
    mrimg_source src;
    int rc = src_open(&src, path, &err);
    FZ_CHECK(rc == 0, "src_open: %s", err.message);
    dec_result r = {0};
    decode_all(&src, src.size, size, &r);
    src_close(&src);

    if (size <= FZ_RT_MAX && (size == 0 || (data[size - 1] & 7) == 0))
        roundtrip(data, size);
    return 0;
}
