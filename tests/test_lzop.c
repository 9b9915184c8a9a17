/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lzop codec: round trips, agreement with the stock lzop 1.04 program in
 * both directions, hand-built hostile members, trailing data after a
 * member, and the real libvirt lzop fixture. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lzo/lzo1x.h>
#include <zlib.h>

#include "testutil.h"

#include "codec/codec.h"
#include "io/sink.h"
#include "io/source.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define BLK (256u * KiB)

static char *g_dir;
static bool g_lzop;

/* ---- small helpers ------------------------------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void b_put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n)
            c *= 2;
        b->p = realloc(b->p, c);
        assert_non_null(b->p);
        b->cap = c;
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_u8(buf *b, uint8_t v) { b_put(b, &v, 1); }
static void b_be16(buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    b_put(b, t, 2);
}
static void b_be32(buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    b_put(b, t, 4);
}
static void b_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}
static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t adler(const uint8_t *p, size_t n) { return (uint32_t)adler32(1, p, (uInt)n); }
static uint32_t crc(const uint8_t *p, size_t n) { return (uint32_t)crc32(0, p, (uInt)n); }

static char *tpath(const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", g_dir, name) > 0);
    return p;
}


static void write_tmp(const char *name, const uint8_t *p, size_t n)
{
    char *path = tpath(name);
    write_file(path, p, n);
    free(path);
}

static uint8_t *read_tmp(const char *name, size_t *n)
{
    char *path = tpath(name);
    uint8_t *p = read_file(path, n);
    free(path);
    assert_non_null(p);
    return p;
}

/* Run a shell command in the test directory; its exit status. */
static int sh(const char *fmt, ...) MRIMG_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char *cmd = NULL, *full = NULL;
    va_list ap;
    va_start(ap, fmt);
    assert_true(vasprintf(&cmd, fmt, ap) > 0);
    va_end(ap);
    assert_true(asprintf(&full, "cd '%s' && { %s ; }", g_dir, cmd) > 0);
    int st = system(full);
    free(cmd);
    free(full);
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

/* Deterministic data. */
static uint64_t rnd_state;
static uint64_t rnd(void)
{
    uint64_t x = rnd_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rnd_state = x;
}

static uint8_t *gen_random(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    rnd_state = seed | 1;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rnd() >> 24);
    return p;
}

/* Something like guest RAM: zero pages, text, random pages, page-table-like
 * words and byte fills, in 4 KiB pages. */
static uint8_t *gen_mixed(size_t n, uint64_t seed)
{
    static const char *const words[] = {"the ",     "kernel ", "page ",   "migration ", "qemu ",
                                        "libvirt ", "0x0000 ", "struct ", "return ",    "\n",
                                        "if (",     ") {\n",   "int ",    "lzop ",      "block "};
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    rnd_state = seed | 1;
    for (size_t off = 0; off < n; off += 4096) {
        size_t k = MRIMG_MIN((size_t)4096, n - off);
        unsigned r = (unsigned)(rnd() % 100);
        uint8_t *q = p + off;
        if (r < 40) {
            memset(q, 0, k);
        } else if (r < 70) {
            size_t i = 0;
            while (i < k) {
                const char *w = words[rnd() % MRIMG_ARRAY_SIZE(words)];
                size_t l = MRIMG_MIN(strlen(w), k - i);
                memcpy(q + i, w, l);
                i += l;
            }
        } else if (r < 85) {
            for (size_t i = 0; i < k; i++)
                q[i] = (uint8_t)(rnd() >> 32);
        } else if (r < 95) {
            uint64_t base = (rnd() & 0xffffff000ull) | 0x63;
            for (size_t i = 0; i + 8 <= k; i += 8) {
                uint64_t v = base + (i / 8) * 4096;
                memcpy(q + i, &v, 8);
            }
            memset(q + k / 8 * 8, 0, k % 8);
        } else {
            memset(q, (int)(rnd() & 0xff), k);
        }
    }
    return p;
}

/* ---- decoding and encoding through the codec ---------------------------- */

typedef struct dres {
    int rc;
    mrimg_error err;
    uint8_t *out;
    size_t len;
    mrimg_dec_stats st;
} dres;

static dres decode_path(const char *path, uint64_t start, unsigned threads, size_t cap)
{
    dres r;
    memset(&r, 0, sizeof(r));
    mrimg_source src;
    assert_int_equal(src_open(&src, path, &r.err), 0);
    mrimg_decoder d;
    r.rc = dec_open(&d, &codec_lzop, &src, start, src.size, threads, &r.err);
    if (r.rc == 0) {
        uint8_t *tmp = malloc(cap);
        assert_non_null(tmp);
        buf o = {0};
        for (;;) {
            ssize_t n = dec_read(&d, tmp, cap, &r.err);
            if (n < 0) {
                r.rc = (int)n;
                break;
            }
            if (n == 0)
                break;
            b_put(&o, tmp, (size_t)n);
        }
        free(tmp);
        r.out = o.p;
        r.len = o.n;
        r.st = d.st;
        if (r.rc == 0)
            assert_int_equal(d.st.out_bytes, r.len);
        dec_close(&d);
    }
    src_close(&src);
    return r;
}

static dres decode_mem(const uint8_t *p, size_t n, unsigned threads, size_t cap)
{
    char *path = tpath("dec-in.lzo");
    write_file(path, p, n);
    dres r = decode_path(path, 0, threads, cap);
    free(path);
    return r;
}

static void dres_free(dres *r) { free(r->out); }

static uint8_t *encode_mem(const uint8_t *in, size_t n, int level, unsigned threads, size_t *outlen)
{
    mrimg_error err;
    mrimg_sink s;
    char *path = tpath("enc-out.lzo");
    assert_int_equal(sink_create(&s, path, SINK_FORCE, &err), 0);
    mrimg_encoder e;
    mrimg_enc_opts o = {.level = level, .threads = threads};
    int rc = enc_open(&e, &codec_lzop, &s, &o, &err);
    if (rc < 0)
        fail_msg("enc_open: %s", err.message);
    /* uneven pieces, to cross chunk boundaries in odd places */
    size_t off = 0, step = 777777;
    while (off < n) {
        size_t k = MRIMG_MIN(step, n - off);
        assert_int_equal(enc_write(&e, in + off, k, &err), 0);
        off += k;
        step = step == 777777 ? 3 * MiB + 5 : 777777;
    }
    assert_int_equal(enc_finish(&e, &err), 0);
    assert_int_equal(e.in_bytes, n);
    uint64_t ob = e.out_bytes;
    enc_close(&e);
    assert_int_equal(sink_commit(&s, NULL, &err), 0);
    uint8_t *p = read_file(path, outlen);
    assert_non_null(p);
    assert_int_equal(*outlen, ob);
    free(path);
    return p;
}

/* ---- running the stock lzop ---------------------------------------------- */

/* `lzop -dc --ignore-warn` (or other args) on bytes; exit status, output. */
static int lzop_on(const char *args, const uint8_t *in, size_t n, uint8_t **out, size_t *outlen)
{
    write_tmp("lz-in", in, n);
    int st = sh("lzop %s < lz-in > lz-out 2>/dev/null", args);
    if (out)
        *out = read_tmp("lz-out", outlen);
    return st;
}

/* ---- hand-built members ------------------------------------------------- */

typedef struct hopt {
    uint16_t version, lib, needed;
    uint8_t method, level;
    uint32_t flags, filter;
    const char *name;
    bool bad_sum;
    bool extra;
    const uint8_t *extra_data;
    uint32_t extra_len;
    bool bad_extra_sum;
} hopt;

static hopt hdef(void)
{
    hopt o = {.version = 0x1040, .lib = 0x20a0, .needed = 0x0940, .method = 1, .level = 5,
              .flags = 0x0300000D, .name = ""};
    return o;
}

static void put_header(buf *b, const hopt *o)
{
    static const uint8_t magic[9] = {0x89, 'L', 'Z', 'O', 0, 0x0d, 0x0a, 0x1a, 0x0a};
    b_put(b, magic, 9);
    size_t cs = b->n;
    bool l2 = o->version >= 0x0940;
    b_be16(b, o->version);
    b_be16(b, o->lib);
    if (l2)
        b_be16(b, o->needed);
    b_u8(b, o->method);
    if (l2)
        b_u8(b, o->level);
    b_be32(b, o->flags);
    if (o->flags & 0x800)
        b_be32(b, o->filter);
    b_be32(b, 0);
    b_be32(b, 0);
    if (l2)
        b_be32(b, 0);
    b_u8(b, (uint8_t)strlen(o->name));
    b_put(b, o->name, strlen(o->name));
    bool c = (o->flags & 0x1000) != 0;
    uint32_t s = c ? crc(b->p + cs, b->n - cs) : adler(b->p + cs, b->n - cs);
    b_be32(b, o->bad_sum ? s ^ 1 : s);
    if (o->extra) {
        size_t xs = b->n;
        b_be32(b, o->extra_len);
        b_put(b, o->extra_data, o->extra_len);
        uint32_t x = c ? crc(b->p + xs, b->n - xs) : adler(b->p + xs, b->n - xs);
        b_be32(b, o->bad_extra_sum ? x ^ 0x100 : x);
    }
}

/* A block with explicit lengths; checksums computed over orig (D) and data
 * (C), present as the flags say. */
static void put_block_ex(buf *b, uint32_t flags, uint32_t d_len, uint32_t c_len,
                         const uint8_t *orig, size_t olen, const uint8_t *data, size_t dlen)
{
    b_be32(b, d_len);
    b_be32(b, c_len);
    if (flags & 1)
        b_be32(b, adler(orig, olen));
    if (flags & 0x100)
        b_be32(b, crc(orig, olen));
    if (c_len < d_len) {
        if (flags & 2)
            b_be32(b, adler(data, dlen));
        if (flags & 0x200)
            b_be32(b, crc(data, dlen));
    }
    b_put(b, data, dlen);
}

static size_t lzo_pack(const uint8_t *in, size_t n, uint8_t *out)
{
    static uint8_t wrk[LZO1X_1_MEM_COMPRESS];
    lzo_uint ol = n + n / 16 + 67;
    assert_int_equal(lzo1x_1_compress(in, n, out, &ol, wrk), LZO_E_OK);
    return ol;
}

/* A block as a writer makes it: compressed if smaller (and allowed). */
static void put_block(buf *b, uint32_t flags, const uint8_t *d, size_t n, bool comp)
{
    uint8_t *c = malloc(n + n / 16 + 67);
    assert_non_null(c);
    size_t cl = lzo_pack(d, n, c);
    if (comp && cl < n)
        put_block_ex(b, flags, (uint32_t)n, (uint32_t)cl, d, n, c, cl);
    else
        put_block_ex(b, flags, (uint32_t)n, (uint32_t)n, d, n, d, n);
    free(c);
}

static void put_member(buf *b, const hopt *o, const uint8_t *d, size_t n, size_t bs)
{
    put_header(b, o);
    for (size_t i = 0; i < n; i += bs)
        put_block(b, o->flags, d + i, MRIMG_MIN(bs, n - i), true);
    b_be32(b, 0);
}

/* Decoding must fail with code at offset, and lzop must fail as well. */
static void expect_err(const buf *b, int code, uint64_t off)
{
    for (unsigned t = 1; t <= 2; t++) {
        dres r = decode_mem(b->p, b->n, t, 8 * MiB);
        if (r.rc != code || r.err.offset != off)
            fail_msg("expected %s at %llu, got rc %d (%s) at %llu: %s",
                     mrimg_code_name((mrimg_code)code), (unsigned long long)off, r.rc,
                     mrimg_code_name((mrimg_code)r.rc), (unsigned long long)r.err.offset,
                     r.err.message);
        assert_int_equal(r.err.offset_kind, MRIMG_OFF_FILE);
        assert_true(strstr(r.err.message, "expected") != NULL);
        dres_free(&r);
    }
    if (g_lzop) {
        int st = lzop_on("-dc --ignore-warn", b->p, b->n, NULL, NULL);
        if (getenv("MRIMG_TEST_VERBOSE"))
            fprintf(stderr, "  %-11s at %-8llu lzop -dc --ignore-warn exit %d\n",
                    mrimg_code_name((mrimg_code)code), (unsigned long long)off, st);
        if (st == 0)
            fail_msg("we fail with %s at %llu, but lzop -dc --ignore-warn exits 0",
                     mrimg_code_name((mrimg_code)code), (unsigned long long)off);
    }
}

/* Decoding must succeed with this output; lzop must agree on the exit
 * status (0 unless rejects) and, when it succeeds, on the bytes. */
static dres expect_ok(const buf *b, const uint8_t *want, size_t wlen, bool rejects)
{
    dres r = decode_mem(b->p, b->n, 1, 8 * MiB);
    if (r.rc != 0)
        fail_msg("decode failed: %s", r.err.message);
    assert_int_equal(r.len, wlen);
    if (wlen)
        assert_memory_equal(r.out, want, wlen);
    assert_int_equal(r.st.tool_rejects, rejects);
    if (rejects)
        assert_true(r.st.note[0] != 0);
    dres r2 = decode_mem(b->p, b->n, 3, 100003);
    assert_int_equal(r2.rc, 0);
    assert_int_equal(r2.len, wlen);
    if (wlen)
        assert_memory_equal(r2.out, want, wlen);
    assert_int_equal(r2.st.checks, r.st.checks);
    dres_free(&r2);
    if (g_lzop) {
        uint8_t *o;
        size_t ol;
        int st = lzop_on("-dc --ignore-warn", b->p, b->n, &o, &ol);
        if (getenv("MRIMG_TEST_VERBOSE"))
            fprintf(stderr, "  ok (%zu bytes, rejects %d, note '%s') lzop exit %d\n", wlen,
                    (int)rejects, r.st.note, st);
        if (rejects) {
            assert_int_not_equal(st, 0);
        } else {
            assert_int_equal(st, 0);
            assert_int_equal(ol, wlen);
            if (wlen)
                assert_memory_equal(o, want, wlen);
        }
        free(o);
    }
    return r;
}

/* ---- setup --------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (lzo_init() != LZO_E_OK)
        return -1;
    g_dir = test_tmpdir("lzop");
    if (!g_dir)
        return -1;
    g_lzop = system("lzop --version >/dev/null 2>&1") == 0;
    if (!g_lzop)
        fprintf(stderr, "note: lzop not installed; comparisons with the stock tool skipped\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_rmdir_all(g_dir);
    free(g_dir);
    return 0;
}

/* ---- tests: our encoder and decoder -------------------------------------- */

static void check_our_header(const uint8_t *p, size_t n, int level)
{
    assert_true(n >= 42);
    static const uint8_t magic[9] = {0x89, 'L', 'Z', 'O', 0, 0x0d, 0x0a, 0x1a, 0x0a};
    assert_memory_equal(p, magic, 9);
    assert_int_equal((p[9] << 8) | p[10], 0x1040);
    assert_int_equal((p[11] << 8) | p[12], lzo_version() & 0xffff);
    assert_int_equal((p[13] << 8) | p[14], 0x0940);
    int method = level == 1 ? 2 : level <= 6 ? 1 : 3;
    int lb = level == 1 ? 1 : level <= 6 ? 5 : level;
    assert_int_equal(p[15], method);
    assert_int_equal(p[16], lb);
    assert_int_equal(rd_be32(p + 17), 0x0300000D);
    for (int i = 21; i < 34; i++) /* mode, mtime, name_len */
        assert_int_equal(p[i], 0);
    assert_int_equal(rd_be32(p + 34), adler(p + 9, 25));
    assert_int_equal(rd_be32(p + n - 4), 0);
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct {
        const char *what;
        size_t n;
        int kind; /* 0 mixed, 1 random */
    } in[] = {
        {"empty", 0, 0},      {"1 byte", 1, 0},          {"256 KiB", BLK, 0},
        {"1 MiB random", MiB, 1}, {"20 MiB mixed", 20 * MiB, 0},
    };
    const int levels[] = {1, 3, 9};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(in); i++) {
        uint8_t *data = in[i].kind ? gen_random(in[i].n, 11 + i) : gen_mixed(in[i].n, 7 + i);
        for (size_t l = 0; l < MRIMG_ARRAY_SIZE(levels); l++) {
            size_t n1, n4;
            uint8_t *e1 = encode_mem(data, in[i].n, levels[l], 1, &n1);
            uint8_t *e4 = encode_mem(data, in[i].n, levels[l], 4, &n4);
            assert_int_equal(n1, n4);
            assert_memory_equal(e1, e4, n1);
            check_our_header(e1, n1, levels[l]);
            uint64_t nblk = (in[i].n + BLK - 1) / BLK;
            assert_true(n1 <= 42 + 12 * nblk + in[i].n);
            if (in[i].kind == 1)
                assert_int_equal(n1, 42 + 12 * nblk + in[i].n); /* random: all stored */
            const unsigned th[] = {1, 2, 4};
            const size_t caps[] = {8 * MiB, 100003, 4096};
            for (size_t t = 0; t < 3; t++) {
                dres r = decode_mem(e1, n1, th[t], caps[t]);
                if (r.rc != 0)
                    fail_msg("%s level %d: %s", in[i].what, levels[l], r.err.message);
                assert_int_equal(r.len, in[i].n);
                if (in[i].n)
                    assert_memory_equal(r.out, data, in[i].n);
                assert_int_equal(r.st.members, 1);
                assert_int_equal(r.st.checks, 1 + nblk);
                assert_int_equal(r.st.in_bytes, n1);
                assert_int_equal(r.st.trailing, 0);
                assert_false(r.st.tool_rejects);
                assert_string_equal(r.st.note, "");
                dres_free(&r);
            }
            free(e1);
            free(e4);
        }
        free(data);
    }
}

/* The stock lzop must accept our output with exit 0, even without
 * --ignore-warn, and its pipe output must be ours up to mtime. */
static void test_stock_accepts_ours(void **state)
{
    (void)state;
    if (!g_lzop)
        skip();
    struct {
        size_t n;
        int kind;
    } in[] = {{0, 0}, {1, 0}, {BLK, 0}, {MiB, 1}, {3 * MiB + 12345, 0}};
    const int levels[] = {1, 3, 9};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(in); i++) {
        uint8_t *data = in[i].kind ? gen_random(in[i].n, 99 + i) : gen_mixed(in[i].n, 5 + i);
        write_tmp("plain", data, in[i].n);
        for (size_t l = 0; l < MRIMG_ARRAY_SIZE(levels); l++) {
            size_t n;
            uint8_t *e = encode_mem(data, in[i].n, levels[l], 2, &n);
            write_tmp("ours.lzo", e, n);
            assert_int_equal(sh("lzop -dc < ours.lzo > ours.out"), 0);
            assert_int_equal(sh("cmp -s ours.out plain"), 0);
            assert_int_equal(sh("lzop -t < ours.lzo >/dev/null 2>&1"), 0);
            assert_int_equal(sh("lzop -t ours.lzo >/dev/null 2>&1"), 0);
            /* lzop -c from a pipe, mtime patched to 0 */
            assert_int_equal(sh("cat plain | lzop -%d -c > theirs.lzo", levels[l]), 0);
            size_t tn;
            uint8_t *t = read_tmp("theirs.lzo", &tn);
            assert_true(tn >= 42);
            memset(t + 25, 0, 8);
            put_be32(t + 34, adler(t + 9, 25));
            assert_int_equal(tn, n);
            assert_memory_equal(t, e, n);
            free(t);
            free(e);
        }
        free(data);
    }
}

static void test_stock_outputs(void **state)
{
    (void)state;
    if (!g_lzop)
        skip();
    size_t na = 700000, nb = 300000, nr = 600000;
    uint8_t *a = gen_mixed(na, 1), *b = gen_mixed(nb, 2), *r = gen_random(nr, 3);
    write_tmp("a", a, na);
    write_tmp("b", b, nb);
    write_tmp("r", r, nr);
    write_tmp("empty", NULL, 0);
    assert_int_equal(sh("mkdir -p sub && cp a sub/a"), 0);
    uint8_t *ab = malloc(na + nb);
    memcpy(ab, a, na);
    memcpy(ab + na, b, nb);
    struct {
        const char *cmd;
        const uint8_t *want;
        size_t wlen;
        uint64_t members;
        int checks; /* -1: don't know */
        bool rejects;
    } c[] = {
        {"cat a | lzop -c", a, na, 1, 1 + 3, false},
        {"lzop -c < a", a, na, 1, 1 + 3, false},
        {"lzop -c a", a, na, 1, 1 + 3, false},
        {"lzop -1 -c a", a, na, 1, 1 + 3, false},
        {"lzop -9 -c a", a, na, 1, 1 + 3, false},
        {"lzop -F -c a", a, na, 1, 1, false},
        {"lzop -CC -c a", a, na, 1, 1 + 3 + 3, false},
        {"lzop --crc32 -c a", a, na, 1, 1 + 3, false},
        {"lzop --crc32 -CC -c a", a, na, 1, 1 + 3 + 3, false},
        {"lzop --filter=2 -c a", a, na, 1, 1 + 3, false},
        {"lzop --filter=1 -c r", r, nr, 1, 1 + 3, false},
        {"lzop --filter=16 -9 -c a", a, na, 1, 1 + 3, false},
        {"lzop -CC -c r", r, nr, 1, 1 + 3, false}, /* stored blocks: no C field */
        {"lzop -P -c sub/a", a, na, 1, 1 + 3, false},
        {"lzop -c a b", ab, na + nb, 2, 2 + 3 + 2, false},
        {"lzop -c a > x1 && lzop -9 -c b > x2 && cat x1 x2", ab, na + nb, 2, 2 + 3 + 2, false},
        {"cat empty | lzop -c", NULL, 0, 1, 1, false},
        /* lzop's own filter + -CC bug on stored blocks: we decode, it fails */
        {"lzop --filter=2 -CC -c r", r, nr, 1, 1 + 3, true},
    };
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(c); i++) {
        assert_int_equal(sh("%s > s.lzo", c[i].cmd), 0);
        size_t n;
        uint8_t *f = read_tmp("s.lzo", &n);
        buf bb = {.p = f, .n = n, .cap = n};
        dres d = expect_ok(&bb, c[i].want, c[i].wlen, c[i].rejects);
        if (d.st.members != c[i].members || (c[i].checks >= 0 && d.st.checks != (uint64_t)c[i].checks))
            fail_msg("%s: members %llu checks %llu", c[i].cmd, (unsigned long long)d.st.members,
                     (unsigned long long)d.st.checks);
        if (c[i].members > 1)
            assert_true(strstr(d.st.note, "multipart") != NULL);
        assert_int_equal(d.st.in_bytes, n);
        dres_free(&d);
        b_free(&bb);
    }
    /* lzop -t agrees that the filter + -CC file is bad */
    assert_int_equal(sh("lzop --filter=2 -CC -c r > s.lzo"), 0);
    assert_int_not_equal(sh("lzop -t s.lzo 2>/dev/null"), 0);
    free(a);
    free(b);
    free(r);
    free(ab);
}

/* ---- hostile members ------------------------------------------------------ */

static void test_hostile_header(void **state)
{
    (void)state;
    uint8_t *data = gen_mixed(100000, 42);
    buf b = {0};
    hopt o;

    /* the reference: accepted */
    o = hdef();
    put_member(&b, &o, data, 100000, BLK);
    dres r = expect_ok(&b, data, 100000, false);
    dres_free(&r);
    b_free(&b);

#define CASE(setup_, code, off)                                                                   \
    do {                                                                                          \
        o = hdef();                                                                               \
        setup_;                                                                                   \
        put_member(&b, &o, data, 100000, BLK);                                                    \
        expect_err(&b, code, off);                                                                \
        b_free(&b);                                                                               \
    } while (0)

    CASE(o.bad_sum = true, MRIMG_ERR_CHECKSUM, 34);
    CASE(o.flags |= 0x4000, MRIMG_ERR_FORMAT, 17);
    CASE(o.flags |= 0x80000, MRIMG_ERR_FORMAT, 17);
    CASE(o.method = 0, MRIMG_ERR_FORMAT, 15);
    CASE(o.method = 4, MRIMG_ERR_FORMAT, 15);
    CASE(o.level = 10, MRIMG_ERR_FORMAT, 16);
    CASE(o.needed = 0x1041, MRIMG_ERR_UNSUPPORTED, 13);
    CASE(o.needed = 0x0800, MRIMG_ERR_FORMAT, 13);
    CASE(o.version = 0x0800, MRIMG_ERR_FORMAT, 9);
    CASE(o.flags = 0x03000002 | 0x0c, MRIMG_ERR_FORMAT, 17);   /* ADLER32_C alone */
    CASE(o.flags = 0x03000201 | 0x0c, MRIMG_ERR_FORMAT, 17);   /* CRC32_C without CRC32_D */
    CASE((o.flags |= 0x800, o.filter = 255), MRIMG_ERR_FORMAT, 21);
    CASE((o.flags |= 0x800, o.filter = 17), MRIMG_ERR_FORMAT, 21);
    /* extra field with a bad checksum: the field after 38 + 4 + 5 bytes */
    static const uint8_t xd[5] = {1, 2, 3, 4, 5};
    CASE((o.flags |= 0x40, o.extra = true, o.extra_data = xd, o.extra_len = 5,
          o.bad_extra_sum = true),
         MRIMG_ERR_CHECKSUM, 38 + 4 + 5);
    /* an extra field longer than the input */
    o = hdef();
    o.flags |= 0x40;
    put_header(&b, &o);
    b_be32(&b, 1000000);
    b_put(&b, data, 100);
    expect_err(&b, MRIMG_ERR_TRUNCATED, b.n);
    b_free(&b);
    /* the input ends inside the extra field's length, then inside its
     * checksum (the header itself is whole: 38 bytes) */
    o = hdef();
    o.flags |= 0x40;
    put_header(&b, &o);
    b_put(&b, "\0\0", 2);
    expect_err(&b, MRIMG_ERR_TRUNCATED, 38);
    b_free(&b);
    o = hdef();
    o.flags |= 0x40;
    put_header(&b, &o);
    b_be32(&b, 5);
    b_put(&b, xd, 5);
    b_put(&b, "\0", 1);
    expect_err(&b, MRIMG_ERR_TRUNCATED, 38 + 4 + 5);
    b_free(&b);

    /* accepted variants: level 0, old layout, version 0x2000, extra fields
     * (0 and 11 bytes, Adler-32 and CRC-32), both D checksums, any OS and
     * charset, F_H_GMTDIFF, needed 0x1040 */
    static const uint8_t x11[11] = "hello extra";
    struct {
        const char *what;
        hopt o;
    } ok[9];
    memset(ok, 0, sizeof(ok));
    for (int i = 0; i < 9; i++)
        ok[i].o = hdef();
    ok[8].what = "filter field 0 (no filter, as lzop reads it)";
    ok[8].o.flags |= 0x800;
    ok[8].o.filter = 0;
    ok[0].what = "level 0";
    ok[0].o.level = 0;
    ok[1].what = "0x0930 layout";
    ok[1].o.version = 0x0930;
    ok[2].what = "version 0x2000, needed 0x1040";
    ok[2].o.version = 0x2000;
    ok[2].o.needed = 0x1040;
    ok[3].what = "extra 11 adler";
    ok[3].o.flags |= 0x40;
    ok[3].o.extra = true;
    ok[3].o.extra_data = x11;
    ok[3].o.extra_len = 11;
    ok[4].what = "extra 0 crc";
    ok[4].o.flags = 0x03001041;
    ok[4].o.extra = true;
    ok[4].o.extra_len = 0;
    ok[5].what = "both D, both C";
    ok[5].o.flags = 0x0300030F;
    ok[6].what = "OS 0xff charset 5 gmtdiff";
    ok[6].o.flags = 0xFF50008D;
    ok[7].what = "multipart flag on one member";
    ok[7].o.flags |= 0x400;
    for (int i = 0; i < 9; i++) {
        put_member(&b, &ok[i].o, data, 100000, 30000);
        r = expect_ok(&b, data, 100000, false);
        assert_int_equal(r.st.members, 1);
        if (i == 3 || i == 4)
            assert_int_equal(r.st.checks, 2 + 4);
        if (i == 5)
            assert_int_equal(r.st.checks, 1 + 4 * 4);
        if (i == 7)
            assert_true(strstr(r.st.note, "multipart") != NULL);
        dres_free(&r);
        b_free(&b);
    }
#undef CASE
    free(data);
}

static void test_hostile_blocks(void **state)
{
    (void)state;
    size_t n = 100000;
    uint8_t *data = gen_mixed(n, 43);
    uint8_t *c = malloc(n + n / 16 + 67 + 1);
    size_t cl = lzo_pack(data, n, c);
    assert_true(cl < n);
    buf b = {0};
    hopt o = hdef();
    const uint64_t blk = 38; /* first block header with the default header */

    /* d_len 0xFFFFFFFF, > 64 MiB, c_len 0, c_len > d_len */
    put_header(&b, &o);
    b_be32(&b, 0xFFFFFFFFu);
    b_be32(&b, 10);
    expect_err(&b, MRIMG_ERR_UNSUPPORTED, blk);
    b_free(&b);
    put_header(&b, &o);
    b_be32(&b, 64 * MiB + 1);
    b_be32(&b, 10);
    expect_err(&b, MRIMG_ERR_FORMAT, blk);
    b_free(&b);
    put_header(&b, &o);
    put_block_ex(&b, o.flags, (uint32_t)n, 0, data, n, NULL, 0);
    b_be32(&b, 0);
    expect_err(&b, MRIMG_ERR_FORMAT, blk + 4);
    b_free(&b);
    put_header(&b, &o);
    put_block_ex(&b, o.flags, 100, 101, data, 100, data, 101);
    b_be32(&b, 0);
    expect_err(&b, MRIMG_ERR_FORMAT, blk + 4);
    b_free(&b);

    /* bad checksums: D adler, D crc, C adler, C crc */
    struct {
        uint32_t flags;
        size_t field; /* offset in the block header of the corrupted field */
    } sums[] = {{0x0300000D, 8}, {0x03001108, 8}, {0x0300000B, 12}, {0x03001308, 12},
                {0x0300010D, 12}, {0x0300030F, 20}};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(sums); i++) {
        o = hdef();
        o.flags = sums[i].flags;
        if (o.flags & 0x1000)
            o.needed = 0x1001;
        put_header(&b, &o);
        put_block_ex(&b, o.flags, (uint32_t)n, (uint32_t)cl, data, n, c, cl);
        b_be32(&b, 0);
        b.p[blk + sums[i].field + 3] ^= 0x40;
        expect_err(&b, MRIMG_ERR_CHECKSUM, blk + sums[i].field);
        b_free(&b);
    }
    /* a bad checksum on a stored block (C flags set: only D is present) */
    o = hdef();
    o.flags = 0x0300000B;
    put_header(&b, &o);
    put_block_ex(&b, o.flags, 1000, 1000, data, 1000, data, 1000);
    b_be32(&b, 0);
    assert_int_equal(b.n, 38 + 12 + 1000 + 4);
    b.p[blk + 12 + 500] ^= 1;
    expect_err(&b, MRIMG_ERR_CHECKSUM, blk + 8);
    b_free(&b);

    /* LZO stream with an extra byte; d_len one larger than produced; one
     * smaller; damaged data */
    o = hdef();
    c[cl] = 0x00;
    put_header(&b, &o);
    put_block_ex(&b, o.flags, (uint32_t)n, (uint32_t)cl + 1, data, n, c, cl + 1);
    b_be32(&b, 0);
    expect_err(&b, MRIMG_ERR_FORMAT, blk + 12);
    b_free(&b);
    put_header(&b, &o);
    put_block_ex(&b, o.flags, (uint32_t)n + 1, (uint32_t)cl, data, n, c, cl);
    b_be32(&b, 0);
    expect_err(&b, MRIMG_ERR_FORMAT, blk + 12);
    b_free(&b);
    put_header(&b, &o);
    put_block_ex(&b, o.flags, (uint32_t)n - 1, (uint32_t)cl, data, n - 1, c, cl);
    b_be32(&b, 0);
    expect_err(&b, MRIMG_ERR_FORMAT, blk + 12);
    b_free(&b);
    put_header(&b, &o);
    put_block_ex(&b, o.flags, (uint32_t)n, (uint32_t)cl, data, n, c, cl);
    b_be32(&b, 0);
    b.p[blk + 12 + cl - 3] ^= 0xff; /* the end instruction */
    expect_err(&b, MRIMG_ERR_FORMAT, blk + 12);
    b_free(&b);

    /* truncation: inside the magic, the header, a block header, the data,
     * and a missing end marker */
    put_member(&b, &o, data, n, 30000);
    size_t full = b.n;
    uint8_t *copy = malloc(full);
    memcpy(copy, b.p, full);
    b_free(&b);
    struct {
        size_t cut;
        uint64_t off;
    } tr[] = {{0, 0}, {5, 0}, {20, 17}, {37, 34}, {38 + 2, 38}, {38 + 6, 42}, {38 + 10, 46},
              {38 + 12 + 7, 50}, {full - 4, full - 4}, {full - 2, full - 4}};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(tr); i++) {
        b_put(&b, copy, tr[i].cut);
        expect_err(&b, MRIMG_ERR_TRUNCATED, tr[i].off);
        b_free(&b);
    }
    /* every prefix is TRUNCATED, none crashes or succeeds */
    for (size_t cut = 0; cut < full; cut += (cut < 200 ? 1 : 97)) {
        dres r = decode_mem(copy, cut, 1, 65536);
        if (r.rc != MRIMG_ERR_TRUNCATED)
            fail_msg("prefix %zu: rc %d %s", cut, r.rc, r.err.message);
        dres_free(&r);
    }

    /* blocks of 1, 2, 100, 1000 and 64 KiB bytes in one member */
    put_header(&b, &o);
    size_t sizes[] = {1, 2, 100, 1000, 65536}, at = 0;
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(sizes); i++) {
        put_block(&b, o.flags, data + at, sizes[i], true);
        at += sizes[i];
    }
    b_be32(&b, 0);
    dres r = expect_ok(&b, data, at, false);
    dres_free(&r);
    b_free(&b);

    free(copy);
    free(c);
    free(data);
}

/* Blocks larger than lzop's 256 KiB: decoded, but lzop would refuse. */
static void test_big_blocks(void **state)
{
    (void)state;
    hopt o = hdef();
    buf b = {0};
    /* a compressed 300000-byte block */
    uint8_t *m = gen_mixed(300000, 8);
    put_member(&b, &o, m, 300000, 300000);
    dres r = expect_ok(&b, m, 300000, true);
    assert_true(strstr(r.st.note, "256 KiB") != NULL);
    dres_free(&r);
    b_free(&b);
    /* a stored 5 MiB random block: larger than the input buffer */
    size_t n = 5 * MiB + 3;
    uint8_t *x = gen_random(n, 9);
    put_header(&b, &o);
    put_block(&b, o.flags, m, 1000, true);
    size_t big_at = b.n;
    put_block(&b, o.flags, x, n, false);
    put_block(&b, o.flags, m, 5000, true);
    b_be32(&b, 0);
    uint8_t *want = malloc(n + 6000);
    memcpy(want, m, 1000);
    memcpy(want + 1000, x, n);
    memcpy(want + 1000 + n, m, 5000);
    r = expect_ok(&b, want, n + 6000, true);
    assert_int_equal(r.st.checks, 1 + 3);
    dres_free(&r);
    /* the same, cut inside the big block, and with a bad checksum */
    size_t full = b.n;
    b.n = big_at + 12 + 4 * MiB + 100;
    dres t = decode_mem(b.p, b.n, 2, 8 * MiB);
    assert_int_equal(t.rc, MRIMG_ERR_TRUNCATED);
    assert_int_equal(t.err.offset, big_at + 12);
    assert_int_equal(t.len, 1000); /* the good bytes come out before the error */
    dres_free(&t);
    b.n = full;
    b.p[big_at + 12 + 3 * MiB] ^= 1;
    t = decode_mem(b.p, b.n, 1, 8 * MiB);
    assert_int_equal(t.rc, MRIMG_ERR_CHECKSUM);
    assert_int_equal(t.err.offset, big_at + 8);
    dres_free(&t);
    b_free(&b);
    /* exactly 64 MiB of zeros in one block is allowed */
    uint8_t *z = calloc(1, 64 * MiB);
    put_header(&b, &o);
    put_block(&b, o.flags, z, 64 * MiB, true);
    b_be32(&b, 0);
    t = decode_mem(b.p, b.n, 2, 8 * MiB);
    assert_int_equal(t.rc, 0);
    assert_int_equal(t.len, 64 * MiB);
    assert_true(t.st.tool_rejects);
    dres_free(&t);
    b_free(&b);
    free(z);
    free(want);
    free(x);
    free(m);
}

/* Output before a bad block is delivered; the error comes next. */
static void test_error_after_output(void **state)
{
    (void)state;
    uint8_t *data = gen_mixed(200000, 4);
    hopt o = hdef();
    buf b = {0};
    put_member(&b, &o, data, 200000, 100000);
    size_t second = 38;
    second += 12 + rd_be32(b.p + 38 + 4);
    b.p[second + 8] ^= 0x10; /* second block's d_adler32 */
    write_tmp("deferred.lzo", b.p, b.n);
    char *path = tpath("deferred.lzo");
    mrimg_error err;
    mrimg_source src;
    assert_int_equal(src_open(&src, path, &err), 0);
    mrimg_decoder d;
    assert_int_equal(dec_open(&d, &codec_lzop, &src, 0, src.size, 1, &err), 0);
    uint8_t *out = malloc(MiB);
    ssize_t n = d.codec->dec_read(&d, out, MiB, &err);
    assert_int_equal(n, 100000);
    assert_memory_equal(out, data, 100000);
    n = d.codec->dec_read(&d, out, MiB, &err);
    assert_int_equal(n, MRIMG_ERR_CHECKSUM);
    assert_int_equal(err.offset, second + 8);
    n = d.codec->dec_read(&d, out, MiB, &err); /* sticky */
    assert_int_equal(n, MRIMG_ERR_CHECKSUM);
    dec_close(&d);
    src_close(&src);
    free(path);
    free(out);
    b_free(&b);
    free(data);
}

/* Random damage: never a crash, and never success unless no byte changed
 * in a checked place. */
static void test_mutations(void **state)
{
    (void)state;
    uint8_t *data = gen_mixed(40000, 77);
    hopt o = hdef();
    o.flags = 0x0300030F;
    buf b = {0};
    put_member(&b, &o, data, 40000, 7000);
    uint8_t *orig = malloc(b.n);
    memcpy(orig, b.p, b.n);
    rnd_state = 12345;
    unsigned ok = 0, bad = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(b.p, orig, b.n);
        int k = 1 + (int)(rnd() % 3);
        for (int j = 0; j < k; j++)
            b.p[rnd() % b.n] ^= (uint8_t)(1 + rnd() % 255);
        dres r = decode_mem(b.p, b.n, 1 + (it & 1), 65536);
        if (r.rc == 0) {
            ok++;
            /* every byte of data is covered by two checksums */
            assert_true(r.len >= 40000);
            assert_memory_equal(r.out, data, 40000);
        } else {
            bad++;
            assert_true(r.rc == MRIMG_ERR_FORMAT || r.rc == MRIMG_ERR_CHECKSUM ||
                        r.rc == MRIMG_ERR_TRUNCATED || r.rc == MRIMG_ERR_UNSUPPORTED);
        }
        dres_free(&r);
    }
    assert_true(bad > ok);
    free(orig);
    b_free(&b);
    free(data);
}

/* ---- after the member ----------------------------------------------------- */

static void test_trailing(void **state)
{
    (void)state;
    size_t na = 600000, nb = 50000;
    uint8_t *a = gen_mixed(na, 21), *bd = gen_mixed(nb, 22);
    size_t ma, mb;
    uint8_t *A = encode_mem(a, na, 3, 2, &ma);
    uint8_t *B = encode_mem(bd, nb, 9, 1, &mb);
    uint8_t *ab = malloc(na + nb);
    memcpy(ab, a, na);
    memcpy(ab + na, bd, nb);
    static uint8_t zeros[65536];
    buf b = {0};
    dres r;

    /* nothing after: exact */
    b_put(&b, A, ma);
    r = expect_ok(&b, a, na, false);
    assert_int_equal(r.st.trailing, 0);
    assert_string_equal(r.st.note, "");
    dres_free(&r);
    /* 64 KiB of zeros (libvirt --bypass-cache padding): silent */
    b_put(&b, zeros, sizeof(zeros));
    r = expect_ok(&b, a, na, false);
    assert_int_equal(r.st.trailing, sizeof(zeros));
    assert_true(r.st.trailing_zero);
    assert_string_equal(r.st.note, "");
    assert_int_equal(r.st.in_bytes, b.n);
    dres_free(&r);
    b_free(&b);
    /* a second member: appended */
    b_put(&b, A, ma);
    b_put(&b, B, mb);
    r = expect_ok(&b, ab, na + nb, false);
    assert_int_equal(r.st.members, 2);
    assert_true(strstr(r.st.note, "multipart") != NULL);
    dres_free(&r);
    /* ... and zeros after it */
    b_put(&b, zeros, 100);
    r = expect_ok(&b, ab, na + nb, false);
    assert_true(r.st.trailing_zero);
    assert_int_equal(r.st.trailing, 100);
    dres_free(&r);
    b_free(&b);
    /* garbage: ignored with a warning (exit 0 with --ignore-warn) */
    const char *garb[] = {"GARBAGE!!", "ab", "\0\0\0ab", "xLZO\0abc", "\x89LZO\0\r\n"};
    const size_t glen[] = {9, 2, 5, 8, 7};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(garb); i++) {
        b_put(&b, A, ma);
        b_put(&b, garb[i], glen[i]);
        r = expect_ok(&b, a, na, false);
        assert_int_equal(r.st.trailing, glen[i]);
        assert_false(r.st.trailing_zero);
        assert_true(strstr(r.st.note, "garbage") != NULL);
        assert_int_equal(r.st.in_bytes, b.n);
        dres_free(&r);
        b_free(&b);
    }
    /* zeros, then garbage */
    b_put(&b, A, ma);
    b_put(&b, zeros, 100);
    b_put(&b, "abc", 3);
    r = expect_ok(&b, a, na, false);
    assert_int_equal(r.st.trailing, 103);
    assert_true(strstr(r.st.note, "garbage") != NULL);
    dres_free(&r);
    b_free(&b);
    /* zeros, then a member: lzop drops the member; so do we */
    const size_t zl[] = {4, 100, 5000};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(zl); i++) {
        b_put(&b, A, ma);
        b_put(&b, zeros, zl[i]);
        b_put(&b, B, mb);
        r = expect_ok(&b, a, na, false);
        assert_int_equal(r.st.members, 1);
        assert_int_equal(r.st.trailing, zl[i] + mb);
        assert_true(strstr(r.st.note, "not decoded") != NULL);
        dres_free(&r);
        b_free(&b);
    }
    /* near-magic: lzop fails (exit 1); we end cleanly and say so */
    const char *near[] = {"xLZO\0abcdefgh", "\0LZO\0\0\0\0\0\0", "\x89LZO\0\r\n\x1a\x0b"};
    const size_t nlen[] = {13, 10, 9};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(near); i++) {
        b_put(&b, A, ma);
        b_put(&b, near[i], nlen[i]);
        r = expect_ok(&b, a, na, true);
        assert_int_equal(r.st.trailing, nlen[i]);
        assert_true(strstr(r.st.note, "header corrupted") != NULL);
        dres_free(&r);
        if (g_lzop) { /* lzop still wrote the first member's data */
            uint8_t *o;
            size_t ol;
            assert_int_equal(lzop_on("-dc --ignore-warn", b.p, b.n, &o, &ol), 1);
            assert_int_equal(ol, na);
            assert_memory_equal(o, a, na);
            free(o);
        }
        b_free(&b);
    }
    /* the exact magic, then a cut or damaged header: an error, like lzop */
    b_put(&b, A, ma);
    b_put(&b, B, 10);
    expect_err(&b, MRIMG_ERR_TRUNCATED, ma + 9);
    b_free(&b);
    b_put(&b, A, ma);
    b_put(&b, B, 9);
    expect_err(&b, MRIMG_ERR_TRUNCATED, ma + 9);
    b_free(&b);
    b_put(&b, A, ma);
    b_put(&b, B, mb);
    b.p[ma + 20] ^= 1;
    expect_err(&b, MRIMG_ERR_CHECKSUM, ma + 34);
    b_free(&b);

    free(A);
    free(B);
    free(a);
    free(bd);
    free(ab);
}

/* ---- the real libvirt image ---------------------------------------------- */

static void test_libvirt_fixture(void **state)
{
    (void)state;
    const char *path = fixture_path("libvirt/lzop.sav");
    size_t flen;
    uint8_t *f = read_file(path, &flen);
    assert_non_null(f);
    assert_true(flen > 92);
    assert_memory_equal(f, "LibvirtQemudSave", 16);
    uint64_t off = 92 + (uint64_t)rd_le32(f + 20);
    assert_true(off < flen);
    dres r = decode_path(path, off, 1, 8 * MiB);
    if (r.rc != 0)
        fail_msg("%s", r.err.message);
    assert_true(r.len > 8);
    assert_memory_equal(r.out, "QEVM\0\0\0\3", 8);
    assert_false(r.st.tool_rejects);
    assert_int_equal(r.st.members, 1);
    assert_true(r.st.checks > 1);
    assert_int_equal(r.st.in_bytes, flen - off);
    dres r2 = decode_path(path, off, 4, 1000003);
    assert_int_equal(r2.rc, 0);
    assert_int_equal(r2.len, r.len);
    assert_memory_equal(r2.out, r.out, r.len);
    dres_free(&r2);
    if (g_lzop) {
        write_tmp("payload", f + off, flen - off);
        assert_int_equal(sh("lzop -dc --ignore-warn < payload > payload.out"), 0);
        size_t n;
        uint8_t *o = read_tmp("payload.out", &n);
        assert_int_equal(n, r.len);
        assert_memory_equal(o, r.out, n);
        free(o);
        /* and re-encoded by us, the stock lzop restores it too */
        size_t en;
        uint8_t *e = encode_mem(r.out, r.len, 3, 2, &en);
        write_tmp("reenc.lzo", e, en);
        assert_int_equal(sh("lzop -dc < reenc.lzo | cmp -s - payload.out"), 0);
        free(e);
    }
    dres_free(&r);
    free(f);
}

static void test_probe_and_levels(void **state)
{
    (void)state;
    size_t n;
    uint8_t *e = encode_mem((const uint8_t *)"x", 1, 5, 1, &n);
    assert_ptr_equal(codec_probe(e, n), &codec_lzop);
    free(e);
    mrimg_error err;
    mrimg_sink s;
    char *path = tpath("lvl.lzo");
    assert_int_equal(sink_create(&s, path, SINK_FORCE, &err), 0);
    mrimg_encoder enc;
    mrimg_enc_opts o = {.level = 10, .threads = 1};
    assert_int_equal(enc_open(&enc, &codec_lzop, &s, &o, &err), MRIMG_ERR_INVAL);
    o.level = 0;
    assert_int_equal(enc_open(&enc, &codec_lzop, &s, &o, &err), MRIMG_ERR_INVAL);
    o.level = -1; /* default: 3 → method 1, level byte 5 */
    assert_int_equal(enc_open(&enc, &codec_lzop, &s, &o, &err), 0);
    assert_int_equal(enc.level, 3);
    assert_int_equal(enc_finish(&enc, &err), 0);
    enc_close(&enc);
    assert_int_equal(sink_commit(&s, NULL, &err), 0);
    uint8_t *p = read_file(path, &n);
    assert_int_equal(n, 42);
    check_our_header(p, n, 3);
    free(p);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_and_levels),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_stock_accepts_ours),
        cmocka_unit_test(test_stock_outputs),
        cmocka_unit_test(test_hostile_header),
        cmocka_unit_test(test_hostile_blocks),
        cmocka_unit_test(test_big_blocks),
        cmocka_unit_test(test_error_after_output),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_libvirt_fixture),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
