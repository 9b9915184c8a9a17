/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The codec layer's edges that test_codecs' round trips and corruptions do
 * not reach: the raw codec read through the decoder interface, the codec
 * registry's lookups, a read of 0 bytes, and inputs the stock tools treat
 * specially (a bzip2 header with block size 0, an xz stream
 * header with an unsupported check or reserved flags, zero padding of the
 * wrong length after an xz stream, a legacy zstd frame, an lzma stream
 * after zstd frames, an lzop magic with its high bit cleared or its line
 * ends translated), each with its code and message; and the lzop encoder
 * without workers writes the same bytes as with them; gzip headers cut in
 * each optional field; reads larger than the 1 GiB a zlib or libbz2 call
 * can take. */
#include "testutil.h"

#include <bzlib.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "codec/codec.h"
#include "io/sink.h"
#include "io/source.h"

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&g_dir, "codec-cases");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

static const char *put_file(const void *p, size_t n)
{
    static char path[4200];
    snprintf(path, sizeof(path), "%s/in.bin", g_dir);
    write_file(path, p, n);
    return path;
}

/* Decode p[0, n) with codec c in reads of `chunk` bytes; returns the first
 * error code (0 at a clean end); the output is compared with `want` when
 * given; *st receives the stats. */
static int decode(const mrimg_codec *c, const void *p, size_t n, size_t chunk,
                  const void *want, size_t want_len, mrimg_dec_stats *st, mrimg_error *err)
{
    mrimg_source src;
    assert_int_equal(src_open(&src, put_file(p, n), err), 0);
    mrimg_decoder d;
    int rc = dec_open(&d, c, &src, 0, src.size, 1, err);
    if (rc < 0) {
        src_close(&src);
        return rc;
    }
    uint8_t *buf = malloc(chunk ? chunk : 1);
    assert_non_null(buf);
    size_t got = 0;
    for (;;) {
        ssize_t r = dec_read(&d, buf, chunk, err);
        if (r <= 0) {
            rc = (int)r;
            break;
        }
        if (want) {
            assert_true(got + (size_t)r <= want_len);
            assert_memory_equal(buf, (const uint8_t *)want + got, (size_t)r);
        }
        got += (size_t)r;
    }
    if (rc == 0 && want)
        assert_int_equal(got, want_len);
    if (st)
        *st = d.st;
    free(buf);
    dec_close(&d);
    src_close(&src);
    return rc;
}

static void expect_err(int rc, const mrimg_error *err, mrimg_code code, const char *text)
{
    if (rc != (int)code || !strstr(err->message, text))
        fail_msg("expected %s \"%s\", got %d: %s", mrimg_code_name(code), text, rc, err->message);
}

static uint8_t payload[100000];

static void fill_payload(void)
{
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)((i * 7) ^ (i >> 9));
}

static void test_raw_and_registry(void **state)
{
    (void)state;
    fill_payload();
    mrimg_error err;
    mrimg_dec_stats st;
    assert_int_equal(decode(&codec_raw, payload, sizeof(payload), 4097, payload, sizeof(payload),
                            &st, &err),
                     0);
    assert_int_equal(st.in_bytes, sizeof(payload));

    assert_ptr_equal(codec_by_name("GZip"), &codec_gzip);
    assert_ptr_equal(codec_by_name("zstd"), &codec_zstd);
    assert_null(codec_by_name("lz4"));
    assert_null(codec_by_format(MRIMG_FORMAT_SPARSE + 1));
    assert_null(codec_by_format(-1));
}

/* A read of 0 bytes returns 0 and consumes nothing: the next read still
 * gets everything (the codecs' own refusal of an empty buffer is never
 * reached through dec_read). */
static void test_empty_read(void **state)
{
    (void)state;
    uint8_t z[1024];
    size_t zn = ZSTD_compress(z, sizeof(z), "hello", 5, 1);
    assert_false(ZSTD_isError(zn));
    mrimg_error err;
    mrimg_source src;
    assert_int_equal(src_open(&src, put_file(z, zn), &err), 0);
    mrimg_decoder d;
    assert_int_equal(dec_open(&d, &codec_zstd, &src, 0, src.size, 1, &err), 0);
    uint8_t buf[16];
    assert_int_equal(dec_read(&d, buf, 0, &err), 0);
    assert_false(d.done);
    assert_int_equal(dec_read(&d, buf, sizeof(buf), &err), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(dec_read(&d, buf, sizeof(buf), &err), 0);
    assert_true(d.done);
    dec_close(&d);
    src_close(&src);
}

static void test_bzip2_block_size_zero(void **state)
{
    (void)state;
    /* "BZh0": bzip2 -d says "bad magic number"; refused before libbz2 */
    static const uint8_t bz[] = "BZh01AY&SY\x00\x00\x00\x00\x00\x00\x00\x00";
    mrimg_error err;
    int rc = decode(&codec_bzip2, bz, sizeof(bz) - 1, 65536, NULL, 0, NULL, &err);
    expect_err(rc, &err, MRIMG_ERR_FORMAT,
               "expected a bzip2 stream header \"BZh1\"..\"BZh9\", found 42 5a 68 30");
    assert_int_equal(err.offset, 0);
}

/* An xz stream header: magic, the flags, their CRC32. */
static size_t xz_header(uint8_t *b, uint8_t flags1)
{
    static const uint8_t magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
    memcpy(b, magic, 6);
    b[6] = 0;
    b[7] = flags1;
    uint32_t crc = lzma_crc32(b + 6, 2, 0);
    for (int i = 0; i < 4; i++)
        b[8 + i] = (uint8_t)(crc >> (8 * i));
    memset(b + 12, 0, 20); /* whatever follows */
    return 32;
}

static void test_xz_headers(void **state)
{
    (void)state;
    uint8_t b[64];
    mrimg_error err;
    /* check ID 2 is reserved: liblzma cannot verify it */
    size_t n = xz_header(b, 0x02);
    int rc = decode(&codec_xz, b, n, 65536, NULL, 0, NULL, &err);
    expect_err(rc, &err, MRIMG_ERR_UNSUPPORTED,
               "the xz stream uses integrity check type 2, which this liblzma cannot verify");
    /* reserved flag bits */
    n = xz_header(b, 0x40);
    rc = decode(&codec_xz, b, n, 65536, NULL, 0, NULL, &err);
    expect_err(rc, &err, MRIMG_ERR_FORMAT, "in the xz stream at file offset 0: unsupported options");
}

/* After an xz stream, zero bytes whose count is not a multiple of 4 and
 * then data: the payload decodes, but xz -dc would fail. */
static void test_xz_bad_padding(void **state)
{
    (void)state;
    uint8_t x[2048];
    size_t xn = 0;
    assert_int_equal(lzma_easy_buffer_encode(0, LZMA_CHECK_CRC64, NULL, (const uint8_t *)"hello",
                                             5, x, &xn, sizeof(x) - 16),
                     LZMA_OK);
    size_t end = xn;
    memset(x + xn, 0, 3);
    xn += 3;
    memcpy(x + xn, "junk", 4);
    xn += 4;
    mrimg_error err;
    mrimg_dec_stats st;
    int rc = decode(&codec_xz, x, xn, 65536, "hello", 5, &st, &err);
    assert_int_equal(rc, 0);
    assert_true(st.tool_rejects);
    assert_int_equal(st.trailing, 7);
    char want[160];
    snprintf(want, sizeof(want),
             "7 trailing bytes at file offset %zu: 3 zero bytes (not a multiple of 4) then data: "
             "xz -dc says \"Compressed data is corrupt\" (exit 1)",
             end);
    assert_string_equal(st.note, want);
}

static void test_zstd_foreign(void **state)
{
    (void)state;
    mrimg_error err;
    /* a legacy frame (v0.5 magic) where a frame starts */
    static const uint8_t legacy[] = {0x25, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0};
    int rc = decode(&codec_zstd, legacy, sizeof(legacy), 65536, NULL, 0, NULL, &err);
    expect_err(rc, &err, MRIMG_ERR_UNSUPPORTED, "legacy zstd frame format v0.5 is not supported");

    /* an lzma (.lzma) stream after the frames */
    uint8_t z[1024];
    size_t zn = ZSTD_compress(z, sizeof(z), "hello", 5, 1);
    assert_false(ZSTD_isError(zn));
    static const uint8_t lzma_alone[] = {0x5d, 0x00, 0x00, 0x80, 0x00, 0xff, 0xff};
    memcpy(z + zn, lzma_alone, sizeof(lzma_alone));
    rc = decode(&codec_zstd, z, zn + sizeof(lzma_alone), 65536, NULL, 0, NULL, &err);
    expect_err(rc, &err, MRIMG_ERR_UNSUPPORTED,
               "the zstd frames are followed by an lzma stream, which zstd -dc would decompress "
               "as part of the payload; not supported");
    assert_int_equal(err.offset, zn);
}

static void test_lzop_magic(void **state)
{
    (void)state;
    mrimg_error err;
    static const uint8_t seven_bit[] = {0x09, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n', 0, 0};
    int rc = decode(&codec_lzop, seven_bit, sizeof(seven_bit), 65536, NULL, 0, NULL, &err);
    expect_err(rc, &err, MRIMG_ERR_FORMAT,
               "expected the lzop magic 89 4c 5a 4f 00 0d 0a 1a 0a, found 09 4c 5a 4f 00 0d 0a 1a "
               "0a (high bit cleared: a 7-bit transfer?)");
    static const uint8_t text_mode[] = {0x89, 'L', 'Z', 'O', 0, '\n', 0x1a, '\n', 0, 0, 0};
    rc = decode(&codec_lzop, text_mode, sizeof(text_mode), 65536, NULL, 0, NULL, &err);
    expect_err(rc, &err, MRIMG_ERR_FORMAT,
               "found 89 4c 5a 4f 00 0a 1a 0a 00 (a damaged lzop header: text-mode transfer?)");
}

/* Encode len bytes of data with codec c at level 1 in writes of `piece`
 * bytes. */
static uint8_t *encode(const mrimg_codec *c, const uint8_t *data, size_t len, unsigned threads,
                       size_t piece, size_t *out_len)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/enc-%u.%s", g_dir, threads, c->name);
    mrimg_error err;
    mrimg_sink s;
    assert_int_equal(sink_create(&s, path, SINK_FORCE, &err), 0);
    mrimg_encoder e;
    mrimg_enc_opts o = {.level = 1, .threads = threads};
    assert_int_equal(enc_open(&e, c, &s, &o, &err), 0);
    for (size_t off = 0; off < len; off += piece)
        assert_int_equal(enc_write(&e, data + off, len - off < piece ? len - off : piece, &err), 0);
    assert_int_equal(enc_finish(&e, &err), 0);
    enc_close(&e);
    assert_int_equal(sink_commit(&s, NULL, &err), 0);
    uint8_t *b = read_file(path, out_len);
    assert_non_null(b);
    return b;
}

/* Without workers, whole 1 MiB chunks are compressed where they are
 * (no copy); the output is byte for byte the threaded one, and decodes. */
static void test_lzop_direct(void **state)
{
    (void)state;
    size_t len = (5u << 20) + 12345;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i % 251 == 0 ? i >> 8 : (i / 4096) & 0x3f);
    size_t n1, n2, n3;
    uint8_t *one = encode(&codec_lzop, data, len, 1, 3u << 20, &n1);   /* direct chunks */
    uint8_t *many = encode(&codec_lzop, data, len, 2, 3u << 20, &n2);  /* workers */
    uint8_t *small = encode(&codec_lzop, data, len, 1, 100000, &n3);   /* buffered */
    assert_int_equal(n1, n2);
    assert_memory_equal(one, many, n1);
    assert_int_equal(n1, n3);
    assert_memory_equal(one, small, n1);
    mrimg_error err;
    assert_int_equal(decode(&codec_lzop, one, n1, 1u << 20, data, len, NULL, &err), 0);
    free(one);
    free(many);
    free(small);
    free(data);
}

/* A gzip header cut inside each optional field: truncated, naming it. */
static void test_gzip_header_cut(void **state)
{
    (void)state;
    static const struct {
        uint8_t flags;
        const uint8_t tail[8];
        size_t tail_len;
        const char *field;
    } cases[] = {
        {0x04, {0x05}, 1, "the gzip FEXTRA length"},
        {0x04, {0x10, 0x00, 'a', 'b'}, 4, "the gzip FEXTRA field"},
        {0x08, {'n', 'a', 'm', 'e'}, 4, "the file name (FNAME)"},
        {0x10, {'c', 'o'}, 2, "the comment (FCOMMENT)"},
        {0x02, {0x12}, 1, "the gzip header CRC16"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t b[32] = {0x1f, 0x8b, 8, cases[i].flags, 0, 0, 0, 0, 0, 3};
        memcpy(b + 10, cases[i].tail, cases[i].tail_len);
        mrimg_error err;
        int rc = decode(&codec_gzip, b, 10 + cases[i].tail_len, 65536, NULL, 0, NULL, &err);
        if (rc != MRIMG_ERR_TRUNCATED || !strstr(err.message, cases[i].field))
            fail_msg("case %zu: expected truncated in %s, got %d: %s", i, cases[i].field, rc,
                     err.message);
        assert_int_equal(err.offset_kind, MRIMG_OFF_FILE);
    }
}

/* Reads larger than 1 GiB (what one zlib or libbz2 call can take in its
 * unsigned counters) are cut to it and still decode.  The buffer is only
 * reserved: the pages never written cost nothing. */
static void test_huge_read(void **state)
{
    (void)state;
    size_t cap = (1u << 30) + 4096;
    uint8_t *big = malloc(cap);
    assert_non_null(big);
    static const char text[] = "hello, a read larger than a gigabyte";
    size_t tl = sizeof(text) - 1;

    uint8_t gz[256];
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)text;
    zs.avail_in = (uInt)tl;
    zs.next_out = gz;
    zs.avail_out = sizeof(gz);
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t gzn = sizeof(gz) - zs.avail_out;
    deflateEnd(&zs);

    char bz[256];
    unsigned bzn = sizeof(bz);
    assert_int_equal(BZ2_bzBuffToBuffCompress(bz, &bzn, (char *)text, (unsigned)tl, 9, 0, 0),
                     0);

    const struct {
        const mrimg_codec *c;
        const void *p;
        size_t n;
    } in[] = {{&codec_gzip, gz, gzn}, {&codec_bzip2, bz, bzn}};
    for (size_t i = 0; i < 2; i++) {
        mrimg_error err;
        mrimg_source src;
        assert_int_equal(src_open(&src, put_file(in[i].p, in[i].n), &err), 0);
        mrimg_decoder d;
        assert_int_equal(dec_open(&d, in[i].c, &src, 0, src.size, 1, &err), 0);
        ssize_t r = dec_read(&d, big, cap, &err);
        if (r != (ssize_t)tl)
            fail_msg("%s: read %zd: %s", in[i].c->name, r, err.message);
        assert_memory_equal(big, text, tl);
        dec_close(&d);
        src_close(&src);
    }
    free(big);
}

static void test_format_names(void **state)
{
    (void)state;
    assert_null(mrimg_format_name(-1));
    assert_null(mrimg_format_name(MRIMG_FORMAT_COUNT));
    assert_string_equal(mrimg_format_name(MRIMG_FORMAT_LZOP), "lzop");
    assert_int_equal(mrimg_format_from_name("ZSTD"), MRIMG_FORMAT_ZSTD);
    assert_int_equal(mrimg_format_from_name("lz4"), -1);
    static const uint8_t junk[8] = {0x50, 0x4b, 0x03, 0x04, 0x61, 0x62, 0x63, 0x00};
    assert_null(codec_probe(junk, sizeof(junk)));
    assert_ptr_equal(codec_probe((const uint8_t *)"BZh9", 4), &codec_bzip2);
}

/* bzip2 writes one stream per chunk of level x 100000 - 19 bytes: an input
 * of exactly two chunks gives two streams, not a third empty one, and an
 * empty input still one stream. */
static void test_bzip2_chunk_boundary(void **state)
{
    (void)state;
    size_t chunk = 100000 - 19, len = 2 * chunk;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 11));
    for (unsigned threads = 1; threads <= 2; threads++) {
        size_t n;
        uint8_t *b = encode(&codec_bzip2, data, len, threads, 65536, &n);
        mrimg_error err;
        mrimg_dec_stats st;
        assert_int_equal(decode(&codec_bzip2, b, n, 1u << 20, data, len, &st, &err), 0);
        assert_int_equal(st.members, 2);
        assert_int_equal(st.trailing, 0);
        free(b);
        b = encode(&codec_bzip2, data, 0, threads, 65536, &n);
        assert_int_equal(decode(&codec_bzip2, b, n, 1u << 20, data, 0, &st, &err), 0);
        assert_int_equal(st.members, 1);
        free(b);
    }
    free(data);
}

/* Decode p[0, n) with codec c (it must fail with MRIMG_ERR_FORMAT) and
 * ask the codec's dec_recheck about that error. */
static int recheck(const mrimg_codec *c, const void *p, size_t n, mrimg_error *why)
{
    mrimg_error e, err;
    assert_int_equal(decode(c, p, n, 65536, NULL, 0, NULL, &e), MRIMG_ERR_FORMAT);
    mrimg_source src;
    assert_int_equal(src_open(&src, put_file(p, n), &err), 0);
    int r = dec_recheck(c, &src, 0, src.size, &e, why, &err);
    assert_true(r >= 0);
    /* an error that is not "corrupt" is never looked at again, nor one of a
     * codec without the hook */
    mrimg_error t = e;
    t.code = MRIMG_ERR_TRUNCATED;
    assert_int_equal(dec_recheck(c, &src, 0, src.size, &t, why, &err), 0);
    assert_int_equal(dec_recheck(NULL, &src, 0, src.size, &e, why, &err), 0);
    src_close(&src);
    return r;
}

/* bzip2 and xz: a damaged stored checksum vs damaged data, told apart by
 * the codec's dec_recheck (1 vs 0); the other codecs have no hook (their
 * decoders already say MRIMG_ERR_CHECKSUM). */
static void test_dec_recheck(void **state)
{
    (void)state;
    fill_payload();
    mrimg_error why;
    assert_null(codec_gzip.dec_recheck);
    assert_null(codec_zstd.dec_recheck);
    assert_null(codec_lzop.dec_recheck);
    assert_null(codec_raw.dec_recheck);

    /* bzip2, one block: "BZh9", the 48-bit block magic, the block CRC */
    static uint8_t bz[120000];
    unsigned bzn = sizeof(bz);
    assert_int_equal(BZ2_bzBuffToBuffCompress((char *)bz, &bzn, (char *)payload,
                                              sizeof(payload), 9, 0, 0),
                     BZ_OK);
    assert_memory_equal(bz + 4, "\x31\x41\x59\x26\x53\x59", 6);
    bz[11] ^= 0x5a;
    assert_int_equal(recheck(&codec_bzip2, bz, bzn, &why), 1);
    assert_int_equal(why.code, MRIMG_ERR_CHECKSUM);
    assert_int_equal(why.offset_kind, MRIMG_OFF_FILE);
    assert_int_equal(why.offset, 0);
    assert_non_null(strstr(why.message, "a bzip2 CRC does not match"));
    bz[11] ^= 0x5a;
    bz[bzn / 2] ^= 0x5a;
    assert_int_equal(recheck(&codec_bzip2, bz, bzn, &why), 0);

    /* xz, one block with a CRC64: its last byte is right before the index */
    static uint8_t xz[120000];
    size_t xzn = 0;
    assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, payload, sizeof(payload),
                                             xz, &xzn, sizeof(xz)),
                     LZMA_OK);
    uint32_t backward = rd_le32(xz + xzn - 8);
    size_t index_at = xzn - 12 - ((size_t)backward + 1) * 4;
    xz[index_at - 1] ^= 0x5a;
    assert_int_equal(recheck(&codec_xz, xz, xzn, &why), 1);
    assert_int_equal(why.code, MRIMG_ERR_CHECKSUM);
    assert_non_null(strstr(why.message, "an xz integrity check does not match"));
    xz[index_at - 1] ^= 0x5a;
    xz[xzn / 2] ^= 0x5a;
    assert_int_equal(recheck(&codec_xz, xz, xzn, &why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_and_registry),
        cmocka_unit_test(test_empty_read),
        cmocka_unit_test(test_bzip2_block_size_zero),
        cmocka_unit_test(test_xz_headers),
        cmocka_unit_test(test_xz_bad_padding),
        cmocka_unit_test(test_zstd_foreign),
        cmocka_unit_test(test_lzop_magic),
        cmocka_unit_test(test_lzop_direct),
        cmocka_unit_test(test_gzip_header_cut),
        cmocka_unit_test(test_huge_read),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_dec_recheck),
        cmocka_unit_test(test_bzip2_chunk_boundary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
