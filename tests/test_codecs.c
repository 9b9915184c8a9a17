/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The gzip, bzip2, xz and zstd codecs: round trips through our encoder and
 * decoder, our output against the stock tools (`tool -dc`, as libvirt runs
 * them), the stock tools' output through our decoder, corrupt and truncated
 * input, trailing data judged against the real tools' exit status, and the
 * real libvirt save images. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "codec/codec.h"
#include "io/sink.h"
#include "io/source.h"

/* ---- helpers ------------------------------------------------------------ */

static char *g_dir;                /* scratch directory */
static uint8_t *g_mixed;           /* 20 MiB of mixed content */
static const size_t g_mixed_len = 20u << 20;
static uint8_t *g_rand;            /* 1 MiB random */
static const size_t g_rand_len = 1u << 20;

typedef struct {
    const mrimg_codec *c;
    const char *tool; /* stock CLI */
    const char *ext;
} codec_case;

static const codec_case *cases(size_t *n);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 32);
}

/* random, zeros, text, 0x5a pages, short runs: a guest-RAM-like mix */
static void fill_mixed(uint8_t *p, size_t n)
{
    static const char *words[] = {"migration ", "stream ", "QEVM ", "libvirt ", "save ",
                                  "image ",     "0x1f8b ", "\n",     "page ",    "ram "};
    size_t i = 0;
    unsigned k = 0;
    while (i < n) {
        size_t piece = (size_t)(4096 * (1 + rng() % 64));
        size_t len = MRIMG_MIN(n - i, piece);
        switch (k++ % 5) {
        case 0:
            fill_random(p + i, len);
            break;
        case 1:
            memset(p + i, 0, len);
            break;
        case 2:
            for (size_t j = 0; j < len;) {
                const char *w = words[rng() % MRIMG_ARRAY_SIZE(words)];
                size_t wl = MRIMG_MIN(strlen(w), len - j);
                memcpy(p + i + j, w, wl);
                j += wl;
            }
            break;
        case 3:
            memset(p + i, 0x5a, len);
            break;
        default: /* runs of exactly 4 (bzip2's RLE1 worst case) and text */
            for (size_t j = 0; j < len; j++)
                p[i + j] = (uint8_t)((j / 4) & 1 ? 'b' : 'a');
            break;
        }
        i += len;
    }
}

static char *path_in_dir(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", g_dir, name) < 0)
        return NULL;
    return p;
}


static bool have_tool(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Run a shell command; its exit status (or -1). */
static int run(const char *fmt, ...) MRIMG_PRINTF(1, 2);
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* Encode data into path with our encoder, written in uneven pieces. */
static int encode_to(const mrimg_codec *c, int level, unsigned threads, const uint8_t *data,
                     size_t len, const char *path, mrimg_error *err)
{
    mrimg_sink s;
    unlink(path);
    int rc = sink_create(&s, path, SINK_FORCE, err);
    if (rc < 0)
        return rc;
    mrimg_encoder e;
    mrimg_enc_opts o = {.level = level, .threads = threads};
    rc = enc_open(&e, c, &s, &o, err);
    if (rc < 0) {
        sink_abort(&s);
        return rc;
    }
    static const size_t pieces[] = {1, 4095, 1u << 20, 333333, 7, 3u << 20};
    size_t off = 0, k = 0;
    while (rc == 0 && off < len) {
        size_t piece = pieces[k++ % MRIMG_ARRAY_SIZE(pieces)];
        size_t n = MRIMG_MIN(len - off, piece);
        rc = enc_write(&e, data + off, n, err);
        off += n;
    }
    if (rc == 0)
        rc = enc_finish(&e, err);
    enc_close(&e);
    if (rc == 0)
        rc = sink_commit(&s, NULL, err);
    if (rc < 0)
        sink_abort(&s);
    return rc;
}

/* Decode [off, end of file) of path; *out is malloc'd. */
static int decode_from(const mrimg_codec *c, const char *path, uint64_t off, unsigned threads,
                       size_t bufsize, uint8_t **out, size_t *out_len, mrimg_dec_stats *st,
                       mrimg_error *err)
{
    mrimg_source src;
    *out = NULL;
    *out_len = 0;
    int rc = src_open(&src, path, err);
    if (rc < 0)
        return rc;
    mrimg_decoder d;
    rc = dec_open(&d, c, &src, off, src.size, threads, err);
    if (rc < 0) {
        src_close(&src);
        return rc;
    }
    size_t cap = 0, len = 0;
    uint8_t *res = NULL;
    for (;;) {
        if (cap - len < bufsize) {
            cap = cap ? cap * 2 : bufsize * 2;
            while (cap - len < bufsize)
                cap *= 2;
            res = realloc(res, cap);
            assert_non_null(res);
        }
        ssize_t n = dec_read(&d, res + len, bufsize, err);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (st)
        *st = d.st;
    dec_close(&d);
    src_close(&src);
    *out = res;
    *out_len = len;
    return rc;
}

static void assert_same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    assert_int_equal(alen, blen);
    if (alen)
        assert_memory_equal(a, b, alen);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *p = read_file(path, len);
    assert_non_null(p);
    return p;
}

static const codec_case *case_named(const char *name)
{
    size_t n;
    const codec_case *cs = cases(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(cs[i].c->name, name) == 0)
            return &cs[i];
    fail_msg("no codec %s", name);
    return NULL;
}

static const codec_case *cases(size_t *n)
{
    static const codec_case cs[] = {
        {&codec_gzip, "gzip", "gz"},
        {&codec_bzip2, "bzip2", "bz2"},
        {&codec_xz, "xz", "xz"},
        {&codec_zstd, "zstd", "zst"},
    };
    *n = MRIMG_ARRAY_SIZE(cs);
    return cs;
}

/* ---- setup -------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    g_dir = test_tmpdir("codecs");
    if (!g_dir)
        return -1;
    g_mixed = malloc(g_mixed_len);
    g_rand = malloc(g_rand_len);
    if (!g_mixed || !g_rand)
        return -1;
    fill_mixed(g_mixed, g_mixed_len);
    fill_random(g_rand, g_rand_len);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    test_rmdir_all(g_dir);
    free(g_dir);
    free(g_mixed);
    free(g_rand);
    return 0;
}

/* ---- round trips -------------------------------------------------------- */

typedef struct {
    const char *name;
    const uint8_t *data;
    size_t len;
} input;

static void roundtrip(const codec_case *cc)
{
    static const uint8_t one = 0x42;
    /* 3 MiB + 12345: not a multiple of any chunk size */
    input ins[] = {
        {"empty", NULL, 0},
        {"1byte", &one, 1},
        {"rand1m", g_rand, g_rand_len},
        {"odd", g_mixed + 12345, (3u << 20) + 12345},
        {"mixed20m", g_mixed, g_mixed_len},
    };
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(ins); i++) {
        /* every thread count must give the same bytes (imgconv(1) promises
         * it; users cache and dedup outputs); 1 vs 2 is where a codec's
         * single-threaded path differs from its multi-threaded layout */
        enum { NT = 4 };
        const unsigned thr[NT] = {1, 4, 2, 3};
        uint8_t *enc[NT] = {NULL};
        size_t enc_len[NT] = {0};
        for (int t = 0; t < NT; t++) {
            char name[128];
            snprintf(name, sizeof(name), "rt-%s.t%u.%s", ins[i].name, thr[t], cc->ext);
            char *p = path_in_dir(name);
            mrimg_error err = {0};
            int rc = encode_to(cc->c, -1, thr[t], ins[i].data, ins[i].len, p, &err);
            if (rc != 0)
                fail_msg("%s %s t%u: encode: %s", cc->c->name, ins[i].name, thr[t], err.message);
            enc[t] = slurp(p, &enc_len[t]);
            assert_true(enc_len[t] >= cc->c->magic_len);
            assert_memory_equal(enc[t], cc->c->magic, cc->c->magic_len);
            if (t > 0 && (enc_len[t] != enc_len[0] || memcmp(enc[t], enc[0], enc_len[0])))
                fail_msg("%s %s: %u threads give %zu bytes, 1 thread %zu bytes%s", cc->c->name,
                         ins[i].name, thr[t], enc_len[t], enc_len[0],
                         enc_len[t] == enc_len[0] ? " (same length, other bytes)" : "");
            /* decode with 1 and 4 threads, large and small buffers (the
             * encodings are identical: decoding the first two suffices) */
            for (int dt = 0; dt < 2 && t < 2; dt++) {
                uint8_t *out;
                size_t out_len;
                mrimg_dec_stats st;
                size_t bufsize = dt ? (4u << 20) : 65536 + 17;
                rc = decode_from(cc->c, p, 0, thr[dt], bufsize, &out, &out_len, &st, &err);
                if (rc != 0)
                    fail_msg("%s %s t%u: decode: %s", cc->c->name, ins[i].name, thr[t],
                             err.message);
                assert_same(out, out_len, ins[i].data, ins[i].len);
                assert_int_equal(st.trailing, 0);
                assert_false(st.tool_rejects);
                assert_int_equal(st.in_bytes, enc_len[t]);
                assert_true(st.members >= 1);
                assert_true(st.checks >= 1);
                free(out);
            }
            /* keep the big ones (1 and 4 threads) for the CLI test */
            if (t >= 2 || (strcmp(ins[i].name, "mixed20m") && strcmp(ins[i].name, "odd") &&
                           strcmp(ins[i].name, "empty") && strcmp(ins[i].name, "1byte")))
                unlink(p);
            free(p);
        }
        for (int t = 0; t < NT; t++)
            free(enc[t]);
    }
}

/* More threads than the machine has CPUs: still the same bytes; lzop too
 * (tested in depth by test_lzop). */
static void test_threads_8_same_bytes(void **s)
{
    (void)s;
    size_t n;
    const codec_case *c4 = cases(&n);
    codec_case cs[8];
    memcpy(cs, c4, n * sizeof(*cs));
    cs[n++] = (codec_case){&codec_lzop, "lzop", "lzo"};
    for (size_t i = 0; i < n; i++) {
        uint8_t *enc[2];
        size_t len[2];
        const unsigned thr[2] = {1, 8};
        for (int t = 0; t < 2; t++) {
            char name[64];
            snprintf(name, sizeof(name), "t8.t%u.%s", thr[t], cs[i].ext);
            char *p = path_in_dir(name);
            mrimg_error err = {0};
            if (encode_to(cs[i].c, -1, thr[t], g_mixed, (5u << 20) + 777, p, &err) != 0)
                fail_msg("%s t%u: encode: %s", cs[i].c->name, thr[t], err.message);
            enc[t] = slurp(p, &len[t]);
            unlink(p);
            free(p);
        }
        if (len[0] != len[1] || memcmp(enc[0], enc[1], len[0]))
            fail_msg("%s: 8 threads give %zu bytes, 1 thread %zu bytes", cs[i].c->name, len[1],
                     len[0]);
        free(enc[0]);
        free(enc[1]);
    }
}

static void test_roundtrip_gzip(void **s) { (void)s; roundtrip(case_named("gzip")); }
static void test_roundtrip_bzip2(void **s) { (void)s; roundtrip(case_named("bzip2")); }
static void test_roundtrip_xz(void **s) { (void)s; roundtrip(case_named("xz")); }
static void test_roundtrip_zstd(void **s) { (void)s; roundtrip(case_named("zstd")); }

/* gzip: the member is a single member, header as documented, levels. */
static void test_gzip_encoder_format(void **s)
{
    (void)s;
    char *p = path_in_dir("fmt.gz");
    mrimg_error err = {0};
    for (int level = 1; level <= 9; level += 4) {
        assert_int_equal(encode_to(&codec_gzip, level, 3, g_mixed, 2u << 20, p, &err), 0);
        size_t n;
        uint8_t *b = slurp(p, &n);
        static const uint8_t h[8] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
        assert_memory_equal(b, h, 8);
        assert_int_equal(b[8], level == 9 ? 2 : level == 1 ? 4 : 0);
        assert_int_equal(b[9], 3);
        assert_int_equal(rd_le32(b + n - 4), 2u << 20);
        uint8_t *out;
        size_t out_len;
        mrimg_dec_stats st;
        assert_int_equal(decode_from(&codec_gzip, p, 0, 1, 1u << 20, &out, &out_len, &st, &err), 0);
        assert_int_equal(st.members, 1);
        assert_int_equal(st.checks, 2);
        assert_same(out, out_len, g_mixed, 2u << 20);
        free(out);
        free(b);
    }
    /* out of range levels are refused by enc_open */
    assert_int_equal(encode_to(&codec_gzip, 10, 1, g_mixed, 10, p, &err), MRIMG_ERR_INVAL);
    assert_int_equal(encode_to(&codec_zstd, 20, 1, g_mixed, 10, p, &err), MRIMG_ERR_INVAL);
    assert_int_equal(encode_to(&codec_bzip2, 0, 1, g_mixed, 10, p, &err), MRIMG_ERR_INVAL);
    /* other levels still round-trip */
    const struct { const mrimg_codec *c; int level; } lv[] = {
        {&codec_bzip2, 1}, {&codec_xz, 0}, {&codec_xz, 6}, {&codec_zstd, 1}, {&codec_zstd, 19}};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(lv); i++) {
        for (unsigned t = 1; t <= 2; t++) {
            assert_int_equal(encode_to(lv[i].c, lv[i].level, t, g_mixed, 1u << 20, p, &err), 0);
            uint8_t *out;
            size_t out_len;
            assert_int_equal(decode_from(lv[i].c, p, 0, t, 1u << 20, &out, &out_len, NULL, &err), 0);
            assert_same(out, out_len, g_mixed, 1u << 20);
            free(out);
        }
    }
    free(p);
}

/* ---- our output through the stock tools --------------------------------- */

/* mrimg_codec_info: every codec once, by id, its name and libvirt format
 * the same both ways, and its level range exactly what the encoder
 * accepts: both ends and the default encode and decode back, one past
 * either end is refused. */
static void test_codec_info(void **s)
{
    (void)s;
    mrimg_error err;
    char *p = path_in_dir("info.bin");
    int n = 0;
    const mrimg_codec_desc *d;
    for (int id = 0; (d = mrimg_codec_info(id)) != NULL; id++, n++) {
        const mrimg_codec *c = codec_by_id(id);
        assert_non_null(c);
        assert_string_equal(d->name, c->name);
        assert_int_equal(mrimg_codec_from_name(d->name), id);
        assert_int_equal(d->format, codec_format(c));
        if (d->format != MRIMG_FORMAT_NONE) {
            assert_string_equal(mrimg_format_name(d->format), d->name);
            assert_int_equal(mrimg_codec_from_format(d->format), id);
            assert_ptr_equal(codec_by_format(d->format), c);
        }
        if (!d->has_levels) {
            assert_int_equal(d->level_min | d->level_max | d->level_default, 0);
            assert_int_equal(mrimg_format_levels(d->format, NULL, NULL, NULL), -1);
            continue;
        }
        int lo, hi, def;
        assert_int_equal(mrimg_format_levels(d->format, &lo, &hi, &def), 0);
        assert_true(lo == d->level_min && hi == d->level_max && def == d->level_default);
        assert_true(lo <= def && def <= hi);
        if (lo > 0) /* (-1 asks for the default) */
            assert_int_equal(encode_to(c, lo - 1, 1, g_mixed, 4096, p, &err), MRIMG_ERR_INVAL);
        assert_int_equal(encode_to(c, hi + 1, 1, g_mixed, 4096, p, &err), MRIMG_ERR_INVAL);
        const int levels[] = {lo, def, hi};
        for (size_t i = 0; i < MRIMG_ARRAY_SIZE(levels); i++) {
            assert_int_equal(encode_to(c, levels[i], 1, g_mixed, 64u << 10, p, &err), 0);
            uint8_t *out;
            size_t out_len;
            assert_int_equal(decode_from(c, p, 0, 1, 1u << 16, &out, &out_len, NULL, &err), 0);
            assert_same(out, out_len, g_mixed, 64u << 10);
            free(out);
        }
    }
    /* ids run without gaps from 0, one a codec; negative ones are none */
    assert_null(codec_by_id(n));
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            assert_ptr_not_equal(codec_by_id(a), codec_by_id(b));
    assert_null(mrimg_codec_info(-1));
    assert_int_equal(mrimg_codec_from_name("lz4"), -1);
    /* a libvirt format with no codec: sparse */
    assert_int_equal(mrimg_codec_from_format(MRIMG_FORMAT_SPARSE), -1);
    assert_int_equal(mrimg_codec_from_format(MRIMG_FORMAT_COUNT), -1);
    assert_int_equal(mrimg_codec_from_format(MRIMG_FORMAT_NONE), -1);
    assert_string_equal(mrimg_codec_info(mrimg_codec_from_name("ZSTD"))->name, "zstd");
    free(p);
}

static void test_stock_tools_accept_ours(void **s)
{
    (void)s;
    size_t n;
    const codec_case *cs = cases(&n);
    static const uint8_t one = 0x42;
    struct { const char *name; const uint8_t *data; size_t len; } ins[] = {
        {"empty", NULL, 0},
        {"1byte", &one, 1},
        {"odd", g_mixed + 12345, (3u << 20) + 12345},
        {"mixed20m", g_mixed, g_mixed_len},
    };
    for (size_t i = 0; i < n; i++) {
        if (!have_tool(cs[i].tool)) {
            print_message("SKIP: %s is not installed\n", cs[i].tool);
            continue;
        }
        for (size_t k = 0; k < MRIMG_ARRAY_SIZE(ins); k++) {
            for (unsigned t = 1; t <= 4; t += 3) {
                char name[128];
                snprintf(name, sizeof(name), "rt-%s.t%u.%s", ins[k].name, t, cs[i].ext);
                char *p = path_in_dir(name);
                struct stat sb;
                if (stat(p, &sb) != 0) {
                    mrimg_error err = {0};
                    assert_int_equal(encode_to(cs[i].c, -1, t, ins[k].data, ins[k].len, p, &err), 0);
                }
                char *o = path_in_dir("cli.out");
                int rc = run("%s -dc < '%s' > '%s' 2>/dev/null", cs[i].tool, p, o);
                if (rc != 0)
                    fail_msg("%s -dc of our %s (threads %u) exits %d", cs[i].tool, ins[k].name, t, rc);
                size_t ol;
                uint8_t *ob = slurp(o, &ol);
                assert_same(ob, ol, ins[k].data, ins[k].len);
                free(ob);
                if (cs[i].c == &codec_xz || cs[i].c == &codec_gzip || cs[i].c == &codec_bzip2)
                    assert_int_equal(run("%s -t < '%s' 2>/dev/null", cs[i].tool, p), 0);
                free(o);
                free(p);
            }
        }
    }
}

/* ---- the stock tools' output through our decoder ------------------------ */

static void test_decode_stock_output(void **s)
{
    (void)s;
    /* 6 MiB + 777: several pigz/lbzip2/xz-mt blocks, not aligned */
    size_t len = (6u << 20) + 777;
    const uint8_t *data = g_mixed + 4096;
    char *in = path_in_dir("stock.in");
    char *in2 = path_in_dir("stock2.in");
    write_file(in, data, len);
    write_file(in2, g_rand, 100000);
    /* expected output of each command: 1 = in, 2 = in+in2, 3 = in2+in */
    struct { const char *codec, *need, *cmd; int expect; unsigned members; } cmds[] = {
        {"gzip", "gzip", "gzip -c < IN", 1, 1},
        {"gzip", "gzip", "gzip -9 -c IN", 1, 1},          /* with FNAME */
        {"gzip", "gzip", "gzip -1 -n -c < IN", 1, 1},
        {"gzip", "pigz", "pigz -p 4 -c < IN", 1, 1},
        {"gzip", "pigz", "pigz -p 4 -i -c < IN", 1, 1},   /* independent blocks */
        {"gzip", "pigz", "pigz -p 4 -c -N IN", 1, 1},
        {"gzip", "gzip", "(gzip -c < IN; gzip -c < IN2)", 2, 2},
        {"gzip", "gzip", "(gzip -c < IN2; pigz -c < IN)", 3, 2},
        {"bzip2", "bzip2", "bzip2 -c < IN", 1, 1},
        {"bzip2", "bzip2", "bzip2 -1 -c < IN", 1, 1},
        {"bzip2", "lbzip2", "lbzip2 -n 4 -c < IN", 1, 1},
        {"bzip2", "bzip2", "(bzip2 -c < IN; bzip2 -c < IN2)", 2, 2},
        {"xz", "xz", "xz -3 -c < IN", 1, 1},
        {"xz", "xz", "xz -T0 -c < IN", 1, 1},
        {"xz", "xz", "xz -T4 --block-size=1MiB -c < IN", 1, 1},
        {"xz", "xz", "xz --check=none -c < IN", 1, 1},
        {"xz", "xz", "xz --check=sha256 -c < IN", 1, 1},
        {"xz", "xz", "xz --check=crc32 -c < IN", 1, 1},
        {"xz", "xz", "(xz -c < IN; head -c 8 /dev/zero; xz -c < IN2; head -c 4 /dev/zero)", 2, 2},
        {"zstd", "zstd", "zstd -q -c < IN", 1, 1},
        {"zstd", "zstd", "zstd -q -T0 -c < IN", 1, 1},
        {"zstd", "zstd", "zstd -q -T4 -19 -c < IN", 1, 1},
        {"zstd", "zstd", "zstd -q --no-check -c < IN", 1, 1},
        {"zstd", "zstd", "(zstd -q -c < IN; zstd -q --no-check -c < IN2)", 2, 2},
        {"zstd", "zstd", "zstd -q --long=27 -c < IN", 1, 1},
    };
    uint8_t *both = malloc(len + 100000);
    assert_non_null(both);
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(cmds); i++) {
        if (!have_tool(cmds[i].need)) {
            print_message("SKIP: %s is not installed\n", cmds[i].need);
            continue;
        }
        const codec_case *cc = case_named(cmds[i].codec);
        char *out = path_in_dir("stock.out");
        /* substitute IN / IN2 */
        char cmd[2048] = "", *w = cmd;
        for (const char *c = cmds[i].cmd; *c;) {
            if (strncmp(c, "IN2", 3) == 0) {
                w += sprintf(w, "'%s'", in2);
                c += 3;
            } else if (strncmp(c, "IN", 2) == 0) {
                w += sprintf(w, "'%s'", in);
                c += 2;
            } else {
                *w++ = *c++;
            }
        }
        *w = 0;
        assert_int_equal(run("%s > '%s'", cmd, out), 0);
        const uint8_t *exp = data;
        size_t exp_len = len;
        if (cmds[i].expect == 2) {
            memcpy(both, data, len);
            memcpy(both + len, g_rand, 100000);
            exp = both;
            exp_len = len + 100000;
        } else if (cmds[i].expect == 3) {
            memcpy(both, g_rand, 100000);
            memcpy(both + 100000, data, len);
            exp = both;
            exp_len = len + 100000;
        }
        for (unsigned t = 1; t <= 4; t += 3) {
            uint8_t *dec;
            size_t dec_len;
            mrimg_dec_stats st;
            mrimg_error err = {0};
            int rc = decode_from(cc->c, out, 0, t, 3u << 20, &dec, &dec_len, &st, &err);
            if (rc != 0)
                fail_msg("decoding `%s` (threads %u): %s", cmds[i].cmd, t, err.message);
            assert_same(dec, dec_len, exp, exp_len);
            assert_int_equal(st.members, cmds[i].members);
            assert_false(st.tool_rejects);
            if (cc->c == &codec_xz && strstr(cmds[i].cmd, "head -c 4")) {
                assert_int_equal(st.trailing, 4);
                assert_true(st.trailing_zero);
            } else {
                assert_int_equal(st.trailing, 0);
            }
            if (strstr(cmds[i].cmd, "check=none"))
                assert_int_equal(st.checks, 0);
            else if (strstr(cmds[i].cmd, "--no-check -c < IN2"))
                assert_int_equal(st.checks, 1);
            else if (strstr(cmds[i].cmd, "--no-check"))
                assert_int_equal(st.checks, 0);
            else
                assert_true(st.checks >= st.members);
            free(dec);
        }
        free(out);
    }
    free(both);
    free(in);
    free(in2);
}

/* ---- corrupt and truncated input ---------------------------------------- */

static int decode_buf(const mrimg_codec *c, const uint8_t *b, size_t n, mrimg_dec_stats *st,
                      uint8_t **out, size_t *out_len, mrimg_error *err)
{
    char *p = path_in_dir("corrupt.bin");
    write_file(p, b, n);
    uint8_t *o = NULL;
    size_t ol = 0;
    int rc = decode_from(c, p, 0, 2, 1u << 20, &o, &ol, st, err);
    free(p);
    if (out) {
        *out = o;
        *out_len = ol;
    } else {
        free(o);
    }
    return rc;
}

static uint8_t *encode_buf(const mrimg_codec *c, const uint8_t *data, size_t len, unsigned threads,
                           size_t *n)
{
    char *p = path_in_dir("src.enc");
    mrimg_error err = {0};
    assert_int_equal(encode_to(c, -1, threads, data, len, p, &err), 0);
    uint8_t *b = slurp(p, n);
    free(p);
    return b;
}

static void expect_code(const mrimg_codec *c, const uint8_t *b, size_t n, int code1, int code2,
                        const char *what)
{
    mrimg_error err = {0};
    int rc = decode_buf(c, b, n, NULL, NULL, NULL, &err);
    if (rc != code1 && rc != code2)
        fail_msg("%s %s: got %d (%s), expected %d or %d", c->name, what, rc, err.message, code1,
                 code2);
    assert_int_equal(err.code, rc);
    assert_int_equal(err.offset_kind, MRIMG_OFF_FILE);
    assert_true(err.offset <= n);
    assert_true(strlen(err.message) > 20);
}

/* a gzip member with every optional header field, built by hand around our
 * deflate data */
static uint8_t *gzip_with_header(const uint8_t *member, size_t mlen, unsigned flags,
                                 size_t name_len, bool bad_hcrc, size_t *n)
{
    size_t cap = mlen + name_len + 64;
    uint8_t *b = malloc(cap);
    assert_non_null(b);
    size_t k = 0;
    memcpy(b, member, 10);
    b[3] = (uint8_t)flags;
    k = 10;
    if (flags & 0x04) {
        b[k++] = 6;
        b[k++] = 0;
        memcpy(b + k, "AB\2\0xy", 6);
        k += 6;
    }
    if (flags & 0x08) {
        memset(b + k, 'n', name_len);
        k += name_len;
        b[k++] = 0;
    }
    if (flags & 0x10) {
        memcpy(b + k, "a comment", 10);
        k += 10;
    }
    if (flags & 0x02) {
        /* CRC-32 (reflected 0xedb88320) low 16 bits */
        uint32_t crc = 0xffffffffu;
        for (size_t i = 0; i < k; i++) {
            crc ^= b[i];
            for (int j = 0; j < 8; j++)
                crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
        }
        crc ^= 0xffffffffu;
        uint16_t c16 = (uint16_t)(crc & 0xffff);
        if (bad_hcrc)
            c16 ^= 0x0100;
        b[k++] = (uint8_t)c16;
        b[k++] = (uint8_t)(c16 >> 8);
    }
    memcpy(b + k, member + 10, mlen - 10);
    k += mlen - 10;
    *n = k;
    return b;
}

static void test_gzip_corrupt(void **s)
{
    (void)s;
    size_t n;
    uint8_t *m = encode_buf(&codec_gzip, g_mixed, 300000, 2, &n);
    uint8_t *b = malloc(n);
    assert_non_null(b);
#define FLIP(at, what, c1, c2)                                                                    \
    do {                                                                                           \
        memcpy(b, m, n);                                                                           \
        b[(at)] ^= 0x01;                                                                           \
        expect_code(&codec_gzip, b, n, c1, c2, what);                                              \
    } while (0)
    FLIP(n - 8, "CRC32 byte", MRIMG_ERR_CHECKSUM, MRIMG_ERR_CHECKSUM);
    FLIP(n - 5, "CRC32 byte", MRIMG_ERR_CHECKSUM, MRIMG_ERR_CHECKSUM);
    FLIP(n - 4, "ISIZE byte", MRIMG_ERR_CHECKSUM, MRIMG_ERR_CHECKSUM);
    FLIP(n - 1, "ISIZE byte", MRIMG_ERR_CHECKSUM, MRIMG_ERR_CHECKSUM);
    FLIP(0, "magic", MRIMG_ERR_FORMAT, MRIMG_ERR_FORMAT);
    FLIP(n / 2, "deflate data", MRIMG_ERR_FORMAT, MRIMG_ERR_CHECKSUM);
    memcpy(b, m, n);
    b[2] = 7;
    expect_code(&codec_gzip, b, n, MRIMG_ERR_FORMAT, MRIMG_ERR_FORMAT, "method 7");
    for (unsigned f = 0x20; f <= 0x80; f <<= 1) {
        memcpy(b, m, n);
        b[3] = (uint8_t)f;
        expect_code(&codec_gzip, b, n, MRIMG_ERR_FORMAT, MRIMG_ERR_FORMAT, "reserved flag");
    }
    /* optional header fields: good, and with a bad header CRC16 */
    size_t hn;
    uint8_t *h = gzip_with_header(m, n, 0x1f, 100, false, &hn);
    mrimg_dec_stats st;
    mrimg_error err = {0};
    uint8_t *out;
    size_t out_len;
    assert_int_equal(decode_buf(&codec_gzip, h, hn, &st, &out, &out_len, &err), 0);
    assert_same(out, out_len, g_mixed, 300000);
    assert_int_equal(st.checks, 3);
    free(out);
    if (have_tool("gzip")) {
        char *p = path_in_dir("hdr.gz");
        write_file(p, h, hn);
        assert_int_equal(run("gzip -dc < '%s' > /dev/null 2>&1", p), 0);
        free(p);
    }
    free(h);
    h = gzip_with_header(m, n, 0x1e, 10, true, &hn);
    expect_code(&codec_gzip, h, hn, MRIMG_ERR_CHECKSUM, MRIMG_ERR_CHECKSUM, "header CRC16");
    free(h);
    /* a file name longer than the 4 MiB input buffer is streamed */
    h = gzip_with_header(m, n, 0x08, (5u << 20) + 3, false, &hn);
    assert_int_equal(decode_buf(&codec_gzip, h, hn, &st, &out, &out_len, &err), 0);
    assert_same(out, out_len, g_mixed, 300000);
    free(out);
    /* ... and truncated inside it */
    expect_code(&codec_gzip, h, 4u << 20, MRIMG_ERR_TRUNCATED, MRIMG_ERR_TRUNCATED, "in FNAME");
    free(h);
    /* truncations */
    const size_t cuts[] = {0, 1, 2, 5, 9, 10, 11, 100, n / 3, n / 2, n - 9, n - 8, n - 7, n - 4, n - 1};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(cuts); i++)
        expect_code(&codec_gzip, m, cuts[i], MRIMG_ERR_TRUNCATED, MRIMG_ERR_FORMAT, "truncated");
    /* many empty members: no output for a long time, still terminates */
    {
        size_t en;
        uint8_t *e1 = encode_buf(&codec_gzip, NULL, 0, 1, &en);
        size_t count = 20000;
        uint8_t *many = malloc(en * count + n);
        for (size_t i = 0; i < count; i++)
            memcpy(many + i * en, e1, en);
        memcpy(many + count * en, m, n);
        assert_int_equal(decode_buf(&codec_gzip, many, en * count + n, &st, &out, &out_len, &err), 0);
        assert_int_equal(st.members, count + 1);
        assert_same(out, out_len, g_mixed, 300000);
        free(out);
        free(many);
        free(e1);
    }
#undef FLIP
    free(b);
    free(m);
}

static void test_other_corrupt(void **s)
{
    (void)s;
    const mrimg_codec *cs[] = {&codec_bzip2, &codec_xz, &codec_zstd};
    for (size_t ci = 0; ci < MRIMG_ARRAY_SIZE(cs); ci++) {
        const mrimg_codec *c = cs[ci];
        size_t n;
        uint8_t *m = encode_buf(c, g_mixed, 300000, 1, &n);
        uint8_t *b = malloc(n);
        assert_non_null(b);
        /* the stored check: zstd's XXH64 is the last 4 bytes; bzip2's
         * combined CRC ends 0-7 bits before the end; xz's CRC64 of the block
         * sits before the index (liblzma reports it as corrupt data) */
        size_t check_at;
        if (c == &codec_xz) {
            uint32_t backward = (rd_le32(m + n - 8) + 1) * 4; /* index size */
            check_at = n - 12 - backward - 8;
        } else {
            check_at = n - 2;
        }
        memcpy(b, m, n);
        b[check_at] ^= 0x10;
        expect_code(c, b, n, c == &codec_zstd ? MRIMG_ERR_CHECKSUM : MRIMG_ERR_FORMAT,
                    MRIMG_ERR_CHECKSUM, "stored check");
        memcpy(b, m, n);
        b[n / 2] ^= 0x04;
        expect_code(c, b, n, MRIMG_ERR_FORMAT, MRIMG_ERR_CHECKSUM, "middle byte");
        memcpy(b, m, n);
        b[1] ^= 0xff;
        expect_code(c, b, n, MRIMG_ERR_FORMAT, MRIMG_ERR_FORMAT, "magic");
        const size_t cuts[] = {0, 1, 3, 4, 5, 12, 13, 50, n / 4, n / 2, n - 13, n - 12, n - 5, n - 4, n - 1};
        for (size_t i = 0; i < MRIMG_ARRAY_SIZE(cuts); i++)
            expect_code(c, m, cuts[i], MRIMG_ERR_TRUNCATED, MRIMG_ERR_FORMAT, "truncated");
        free(b);
        free(m);
    }
}

/* Random damage must give an error or the right data, never a crash (this
 * is what the ASan build is for). */
static void test_random_damage(void **s)
{
    (void)s;
    size_t nc;
    const codec_case *cs = cases(&nc);
    for (size_t ci = 0; ci < nc; ci++) {
        size_t n;
        uint8_t *m = encode_buf(cs[ci].c, g_mixed + 5000, 200000, 2, &n);
        uint8_t *b = malloc(n);
        assert_non_null(b);
        for (int iter = 0; iter < 120; iter++) {
            memcpy(b, m, n);
            int flips = 1 + (int)(rng() % 4);
            for (int f = 0; f < flips; f++)
                b[rng() % n] ^= (uint8_t)(1u << (rng() % 8));
            size_t len = iter % 3 == 0 ? (size_t)(rng() % n) : n;
            mrimg_error err = {0};
            mrimg_dec_stats st;
            uint8_t *out;
            size_t out_len;
            int rc = decode_buf(cs[ci].c, b, len, &st, &out, &out_len, &err);
            if (rc == 0 && !st.tool_rejects && st.trailing == 0) {
                /* accepted: only if the damage was harmless (e.g. a header
                 * field nobody checks such as the gzip mtime) */
                assert_same(out, out_len, g_mixed + 5000, 200000);
            } else if (rc != 0) {
                assert_true(rc == MRIMG_ERR_FORMAT || rc == MRIMG_ERR_TRUNCATED ||
                            rc == MRIMG_ERR_CHECKSUM || rc == MRIMG_ERR_UNSUPPORTED ||
                            rc == MRIMG_ERR_LIMIT);
                assert_int_equal(err.offset_kind, MRIMG_OFF_FILE);
            }
            free(out);
        }
        free(b);
        free(m);
    }
}

/* ---- trailing data, judged against the real tools ----------------------- */

typedef struct {
    const char *name;
    const char *bytes;
    size_t len;       /* of bytes, or the count of zeros when bytes == NULL */
    /* expected for gzip, bzip2, xz, zstd: 0 accepted, 1 tool_rejects,
     * 2 decoder error (any code), 3 MRIMG_ERR_UNSUPPORTED */
    int expect[4];
} tail_case;

static void test_trailing(void **s)
{
    (void)s;
    static const tail_case tails[] = {
        {"4 zeros", NULL, 4, {0, 0, 0, 1}},
        {"3 zeros", NULL, 3, {0, 0, 1, 1}},
        {"1 zero", NULL, 1, {0, 0, 1, 1}},
        {"40000 zeros", NULL, 40000, {0, 0, 0, 1}},
        {"40001 zeros", NULL, 40001, {0, 0, 1, 1}},
        {"65536 zeros", NULL, 65536, {0, 0, 0, 1}},
        {"text", "garbage", 7, {1, 0, 1, 1}},
        {"zeros+text", "\0\0\0\0x", 5, {1, 0, 1, 1}},
        {"lone 1f", "\x1f", 1, {1, 0, 1, 1}},
        {"1f 8b", "\x1f\x8b", 2, {2, 0, 1, 1}},
        {"1f 8b junk", "\x1f\x8b\x08\x00junkjunkjunkjunk", 20, {2, 0, 1, 3}},
        {"1f 9d LZW", "\x1f\x9d\x90junk", 7, {3, 0, 1, 1}},
        {"B", "B", 1, {1, 1, 1, 1}},
        {"BZh", "BZh", 3, {1, 1, 1, 1}},
        {"BZh0", "BZh0junk", 8, {1, 0, 1, 1}},
        {"BZh9 junk", "BZh9junkjunk", 12, {1, 2, 1, 1}},
        {"xz magic", "\xfd" "7zXZ", 5, {1, 0, 1, 3}},
        {"xz magic junk", "\xfd" "7zXZ\0junkjunkjunk", 16, {1, 0, 2, 3}},
        {"zstd magic", "\x28\xb5\x2f\xfd", 4, {1, 0, 1, 2}},
        {"skippable", "\x50\x2a\x4d\x18\x03\0\0\0abc", 11, {1, 0, 1, 0}},
        {"empty skippable", "\x5f\x2a\x4d\x18\0\0\0\0", 8, {1, 0, 1, 0}},
        {"lz4 magic", "\x04\x22\x4d\x18junk", 8, {1, 0, 1, 3}},
    };
    static const char *order[4] = {"gzip", "bzip2", "xz", "zstd"};
    const size_t base_len = 300000;
    unsigned compared = 0;
    char *p = path_in_dir("tail.bin");
    char *o = path_in_dir("tail.out");
    for (int ci = 0; ci < 4; ci++) {
        const codec_case *cc = case_named(order[ci]);
        bool tool = have_tool(cc->tool);
        if (!tool)
            print_message("SKIP (tool comparison): %s is not installed\n", cc->tool);
        size_t n;
        uint8_t *m = encode_buf(cc->c, g_rand, base_len, 1, &n);
        for (size_t ti = 0; ti < MRIMG_ARRAY_SIZE(tails); ti++) {
            const tail_case *t = &tails[ti];
            uint8_t *b = calloc(1, n + t->len);
            assert_non_null(b);
            memcpy(b, m, n);
            if (t->bytes)
                memcpy(b + n, t->bytes, t->len);
            write_file(p, b, n + t->len);
            mrimg_dec_stats st;
            mrimg_error err = {0};
            uint8_t *out;
            size_t out_len;
            int rc = decode_from(cc->c, p, 0, 1, 1u << 20, &out, &out_len, &st, &err);
            int got = rc == MRIMG_ERR_UNSUPPORTED ? 3 : rc < 0 ? 2 : st.tool_rejects ? 1 : 0;
            if (got != t->expect[ci])
                fail_msg("%s + %s: got %d (rc %d, %s / note %s), expected %d", cc->c->name,
                         t->name, got, rc, err.message, st.note, t->expect[ci]);
            if (rc == 0) {
                assert_same(out, out_len, g_rand, base_len);
                bool skippable = cc->c == &codec_zstd && strstr(t->name, "skippable");
                if (!skippable)
                    assert_int_equal(st.trailing, t->len);
                assert_int_equal(st.in_bytes, n + t->len);
                assert_int_equal(st.trailing_zero, t->bytes == NULL);
                if (st.trailing && !(cc->c == &codec_gzip && st.trailing_zero))
                    assert_true(st.note[0] != 0);
            }
            if (tool) {
                /* the real tool agrees: exit 0 exactly when we accept */
                int trc = run("%s -dc < '%s' > '%s' 2>/dev/null", cc->tool, p, o);
                compared++;
                if (got == 0 || got == 1) {
                    if ((trc == 0) != (got == 0))
                        fail_msg("%s + %s: %s -dc exits %d but tool_rejects = %d", cc->c->name,
                                 t->name, cc->tool, trc, got);
                } else if (got == 2) {
                    if (trc == 0)
                        fail_msg("%s + %s: we fail (%s) but %s -dc exits 0", cc->c->name, t->name,
                                 err.message, cc->tool);
                }
                /* got == 3: the tool decodes foreign data we refuse to guess */
                if (trc == 0 && got == 0) {
                    size_t tl;
                    uint8_t *tb = slurp(o, &tl);
                    assert_same(tb, tl, out, out_len);
                    free(tb);
                }
            }
            free(out);
            free(b);
        }
        free(m);
    }
    print_message("trailing data: %u cases checked against the stock tools' exit status\n",
                  compared);
    free(p);
    free(o);
}

/* zstd: a gzip member after the frames is decoded by the zstd CLI: refused,
 * not dropped.  gzip: an old-magic (1f 9e) member is a member. */
static void test_foreign_members(void **s)
{
    (void)s;
    size_t zn, gn;
    uint8_t *z = encode_buf(&codec_zstd, g_rand, 1000, 1, &zn);
    uint8_t *g = encode_buf(&codec_gzip, g_rand + 1000, 1000, 1, &gn);
    uint8_t *b = malloc(zn + 2 * gn);
    assert_non_null(b);
    memcpy(b, z, zn);
    memcpy(b + zn, g, gn);
    mrimg_error err = {0};
    assert_int_equal(decode_buf(&codec_zstd, b, zn + gn, NULL, NULL, NULL, &err),
                     MRIMG_ERR_UNSUPPORTED);
    assert_int_equal(err.offset, zn);
    /* gzip + gzip with the old magic */
    memcpy(b, g, gn);
    memcpy(b + gn, g, gn);
    b[gn + 1] = 0x9e;
    mrimg_dec_stats st;
    uint8_t *out;
    size_t out_len;
    assert_int_equal(decode_buf(&codec_gzip, b, 2 * gn, &st, &out, &out_len, &err), 0);
    assert_int_equal(st.members, 2);
    assert_int_equal(out_len, 2000);
    assert_memory_equal(out, g_rand + 1000, 1000);
    assert_memory_equal(out + 1000, g_rand + 1000, 1000);
    free(out);
    free(b);
    free(z);
    free(g);
}

/* zstd: endless-looking inputs terminate: 200000 empty skippable frames
 * before the data. */
static void test_zstd_many_frames(void **s)
{
    (void)s;
    size_t zn;
    uint8_t *z = encode_buf(&codec_zstd, g_rand, 5000, 1, &zn);
    size_t count = 200000;
    size_t n = count * 8 + zn;
    uint8_t *b = calloc(1, n);
    for (size_t i = 0; i < count; i++)
        wr_le32(b + i * 8, 0x184D2A50u + (uint32_t)(i % 16));
    memcpy(b + count * 8, z, zn);
    mrimg_dec_stats st;
    mrimg_error err = {0};
    uint8_t *out;
    size_t out_len;
    assert_int_equal(decode_buf(&codec_zstd, b, n, &st, &out, &out_len, &err), 0);
    assert_int_equal(st.members, count + 1);
    assert_int_equal(st.checks, 1);
    assert_same(out, out_len, g_rand, 5000);
    free(out);
    /* a skippable frame that claims more bytes than there are */
    wr_le32(b, 0x184D2A50u);
    wr_le32(b + 4, 0xfffffff0u);
    expect_code(&codec_zstd, b, 4096, MRIMG_ERR_TRUNCATED, MRIMG_ERR_TRUNCATED, "big skippable");
    free(b);
    /* a frame asking for a 2 GiB window: refused before allocating */
    static const uint8_t big[] = {0x28, 0xb5, 0x2f, 0xfd, 0x04, 0xa8, 0, 0, 0, 0, 0, 0};
    uint8_t bb[64] = {0};
    memcpy(bb, big, sizeof(big));
    expect_code(&codec_zstd, bb, sizeof(bb), MRIMG_ERR_LIMIT, MRIMG_ERR_LIMIT, "huge window");
    free(z);
}

/* Memory caps: an xz stream whose header asks for a 1.5 GiB dictionary and
 * a zstd frame with a 256 MiB window are refused with MRIMG_ERR_LIMIT before
 * anything that large is allocated. */
static void test_memory_caps(void **s)
{
    (void)s;
    size_t n;
    /* one block (the mt layout, 5000 bytes); its header at offset 12 is
     * [size/4-1][flags][compressed size VLI][uncompressed size VLI]
     * [21 01 dict][padding][CRC32]; flags 0xc0 says both sizes are there */
    char *p = path_in_dir("caps.xz");
    mrimg_error err = {0};
    assert_int_equal(encode_to(&codec_xz, 0, 1, g_rand, 5000, p, &err), 0);
    uint8_t *b = slurp(p, &n);
    size_t hsize = ((size_t)b[12] + 1) * 4;
    assert_int_equal(b[13] & 0x3f, 0x00); /* one filter */
    size_t f = 14;
    for (int vli = 0; vli < ((b[13] & 0x40) != 0) + ((b[13] & 0x80) != 0); vli++) {
        while (b[f] & 0x80)
            f++;
        f++;
    }
    assert_int_equal(b[f], 0x21);
    assert_int_equal(b[f + 1], 0x01);
    b[f + 2] = 37; /* 3 << 29 = 1.5 GiB */
    wr_le32(b + 12 + hsize - 4, (uint32_t)crc32(0L, b + 12, (uInt)(hsize - 4)));
    for (unsigned t = 1; t <= 4; t += 3) {
        write_file(p, b, n);
        uint8_t *out;
        size_t out_len;
        int rc = decode_from(&codec_xz, p, 0, t, 1u << 20, &out, &out_len, NULL, &err);
        free(out);
        if (rc != MRIMG_ERR_LIMIT)
            fail_msg("xz with a 1.5 GiB dictionary (threads %u): %d %s", t, rc, err.message);
        assert_non_null(strstr(err.message, "MiB"));
    }
    /* the patched file is otherwise valid: xz itself decodes it */
    if (have_tool("xz"))
        assert_int_equal(run("xz -dc < '%s' > /dev/null 2>&1", p), 0);
    free(b);
    free(p);
    if (!have_tool("zstd")) {
        print_message("SKIP: zstd is not installed\n");
        return;
    }
    char *in = path_in_dir("caps.in");
    char *z = path_in_dir("caps.zst");
    write_file(in, g_rand, 100000);
    assert_int_equal(run("zstd -q --long=28 -c < '%s' > '%s'", in, z), 0);
    b = slurp(z, &n);
    expect_code(&codec_zstd, b, n, MRIMG_ERR_LIMIT, MRIMG_ERR_LIMIT, "--long=28");
    /* the CLI refuses it too without --long=28 / --memory */
    assert_true(run("zstd -dc < '%s' > /dev/null 2>&1", z) != 0);
    free(b);
    free(in);
    free(z);
}

/* ---- the real libvirt images -------------------------------------------- */

static void test_libvirt_fixtures(void **s)
{
    (void)s;
    size_t rawn;
    uint8_t *raw = read_file(fixture_path("libvirt/raw.sav"), &rawn);
    if (!raw) {
        print_message("SKIP: fixtures are not unpacked (%s)\n", fixture_path("libvirt/raw.sav"));
        skip();
    }
    uint64_t raw_off = 92 + rd_le32(raw + 20);
    assert_true(raw_off < rawn);
    uint64_t raw_payload = rawn - raw_off;
    assert_memory_equal(raw + raw_off, "QEVM\0\0\0\3", 8);
    static const char *names[] = {"gzip", "bzip2", "xz", "zstd"};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(names); i++) {
        const codec_case *cc = case_named(names[i]);
        char rel[64];
        snprintf(rel, sizeof(rel), "libvirt/%s.sav", names[i]);
        const char *path = fixture_path(rel);
        size_t hn;
        uint8_t *h = slurp(path, &hn);
        assert_memory_equal(h, "LibvirtQemudSave", 16);
        assert_int_equal(rd_le32(h + 16 + 12), (uint32_t)codec_format(cc->c)); /* compressed field */
        uint64_t off = 92 + rd_le32(h + 20);
        assert_true(off < hn);
        assert_true(codec_probe(h + off, hn - off) == cc->c);
        uint8_t *out[2];
        size_t out_len[2];
        for (int t = 0; t < 2; t++) {
            mrimg_dec_stats st;
            memset(&st, 0, sizeof(st));
            mrimg_error err = {0};
            int rc = decode_from(cc->c, path, off, t ? 4 : 1, 4u << 20, &out[t], &out_len[t], &st,
                                 &err);
            if (rc != 0)
                fail_msg("%s: %s", rel, err.message);
            assert_memory_equal(out[t], "QEVM\0\0\0\3", 8);
            assert_true(out_len[t] + 4096 > raw_payload && out_len[t] < raw_payload + 4096);
            assert_int_equal(st.members, 1);
            assert_int_equal(st.trailing, 0);
            assert_false(st.tool_rejects);
            assert_int_equal(st.in_bytes, hn - off);
        }
        assert_same(out[0], out_len[0], out[1], out_len[1]);
        if (have_tool(cc->tool)) {
            char *o = path_in_dir("fixture.out");
            assert_int_equal(run("tail -c +%llu '%s' | %s -dc > '%s'", (unsigned long long)off + 1,
                                 path, cc->tool, o),
                             0);
            size_t tl;
            uint8_t *tb = slurp(o, &tl);
            assert_same(tb, tl, out[0], out_len[0]);
            free(tb);
            free(o);
        } else {
            print_message("SKIP (tool comparison): %s is not installed\n", cc->tool);
        }
        /* re-encode with ours and decode again: the same stream */
        char *re = path_in_dir("fixture.re");
        mrimg_error err = {0};
        assert_int_equal(encode_to(cc->c, -1, 4, out[0], out_len[0], re, &err), 0);
        uint8_t *back;
        size_t back_len;
        assert_int_equal(decode_from(cc->c, re, 0, 2, 1u << 20, &back, &back_len, NULL, &err), 0);
        assert_same(back, back_len, out[0], out_len[0]);
        free(back);
        free(re);
        free(out[0]);
        free(out[1]);
        free(h);
    }
    free(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_gzip),
        cmocka_unit_test(test_roundtrip_bzip2),
        cmocka_unit_test(test_roundtrip_xz),
        cmocka_unit_test(test_roundtrip_zstd),
        cmocka_unit_test(test_threads_8_same_bytes),
        cmocka_unit_test(test_gzip_encoder_format),
        cmocka_unit_test(test_codec_info),
        cmocka_unit_test(test_stock_tools_accept_ours),
        cmocka_unit_test(test_decode_stock_output),
        cmocka_unit_test(test_gzip_corrupt),
        cmocka_unit_test(test_other_corrupt),
        cmocka_unit_test(test_random_damage),
        cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_foreign_members),
        cmocka_unit_test(test_zstd_many_frames),
        cmocka_unit_test(test_memory_caps),
        cmocka_unit_test(test_libvirt_fixtures),
    };
    /* CODECS_FILTER=test_trailing runs one test (a shell glob) */
    if (getenv("CODECS_FILTER"))
        cmocka_set_test_filter(getenv("CODECS_FILTER"));
    return cmocka_run_group_tests_name("codecs", tests, group_setup, group_teardown);
}
