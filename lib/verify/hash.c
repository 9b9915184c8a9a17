/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SHA-256 as specified in FIPS 180-4 (written from the specification), and
 * a fast 64-bit page hash used only to locate differences. */
#include "vfy.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static inline uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void compress_blocks(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    while (nblocks--) {
        uint32_t w[64];
        for (int i = 0; i < 16; i++)
            w[i] = rd_be32(p + 4 * i);
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6],
                 hh = h[7];
        for (int i = 0; i < 64; i++) {
            uint32_t S1 = ror(e, 6) ^ ror(e, 11) ^ ror(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = hh + S1 + ch + K[i] + w[i];
            uint32_t S0 = ror(a, 2) ^ ror(a, 13) ^ ror(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
        h[5] += f;
        h[6] += g;
        h[7] += hh;
        p += 64;
    }
}

/* ---- SHA-NI (x86-64 SHA extensions), chosen at run time ------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

#define SHANI_TARGET __attribute__((target("sha,sse4.1")))

SHANI_TARGET static void compress_shani(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i t = _mm_loadu_si128((const __m128i *)&h[0]);    /* a b c d (h0..h3) */
    __m128i s1 = _mm_loadu_si128((const __m128i *)&h[4]);   /* e f g h */
    t = _mm_shuffle_epi32(t, 0xB1);                         /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1B);                       /* EFGH */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                 /* ABEF */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                      /* CDGH */

    while (nblocks--) {
        __m128i abef = s0, cdgh = s1, msg, m0, m1, m2, m3;
        m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
        m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
        m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
        m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
        __m128i *mw[4] = {&m0, &m1, &m2, &m3};
        for (int i = 0; i < 16; i++) {
            /* words 4i..4i+3 from the four groups before (FIPS 180-4 6.2.2) */
            __m128i *cur = mw[i & 3];
            if (i >= 4) {
                __m128i w7 = _mm_alignr_epi8(*mw[(i - 1) & 3], *mw[(i - 2) & 3], 4);
                *cur = _mm_sha256msg1_epu32(*cur, *mw[(i - 3) & 3]);
                *cur = _mm_add_epi32(*cur, w7);
                *cur = _mm_sha256msg2_epu32(*cur, *mw[(i - 1) & 3]);
            }
            msg = _mm_add_epi32(*cur, _mm_loadu_si128((const __m128i *)&K[4 * i]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
        p += 64;
    }
    t = _mm_shuffle_epi32(s0, 0x1B);                        /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);                       /* DCHG */
    s0 = _mm_blend_epi16(t, s1, 0xF0);                      /* DCBA */
    s1 = _mm_alignr_epi8(s1, t, 8);                         /* ABEF */
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

static void (*pick(void))(uint32_t *, const uint8_t *, size_t)
{
    /* CPUID directly: clang 14 does not know __builtin_cpu_supports("sha") */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return compress_blocks;
    bool ssse3 = c & bit_SSSE3, sse41 = c & bit_SSE4_1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return compress_blocks;
    bool sha = b & (1u << 29); /* CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29] */
    return sha && sse41 && ssse3 ? compress_shani : compress_blocks;
}
#else
static void (*pick(void))(uint32_t *, const uint8_t *, size_t) { return compress_blocks; }
#endif

typedef void (*compress_t)(uint32_t *, const uint8_t *, size_t);
static compress_t compress_fn;

static void compress(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    compress_t f = __atomic_load_n(&compress_fn, __ATOMIC_ACQUIRE);
    if (!f) {
        f = pick();
        /* self-test the fast path once; fall back on any mismatch */
        if (f != compress_blocks) {
            uint32_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
            uint8_t blk[128];
            for (int i = 0; i < 128; i++)
                blk[i] = (uint8_t)(i * 37 + 11);
            f(a, blk, 2);
            compress_blocks(b, blk, 2);
            if (memcmp(a, b, sizeof(a)) != 0)
                f = compress_blocks;
        }
        __atomic_store_n(&compress_fn, f, __ATOMIC_RELEASE);
    }
    f(h, p, nblocks);
}

void vf_sha256_init(vf_sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->len = 0;
    s->nbuf = 0;
}

void vf_sha256_update(vf_sha256 *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t k = MRIMG_MIN(n, 64 - s->nbuf);
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k;
        p += k;
        n -= k;
        if (s->nbuf < 64)
            return;
        compress(s->h, s->buf, 1);
        s->nbuf = 0;
    }
    if (n >= 64) {
        compress(s->h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(s->buf, p, n);
    s->nbuf = n;
}

void vf_sha256_final(vf_sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (s->nbuf < 56) ? 56 - s->nbuf : 120 - s->nbuf;
    uint8_t lenb[8];
    wr_be64(lenb, bits);
    uint64_t keep = s->len;
    vf_sha256_update(s, pad, padlen);
    vf_sha256_update(s, lenb, 8);
    s->len = keep;
    for (int i = 0; i < 8; i++)
        wr_be32(out + 4 * i, s->h[i]);
}

/* ---- 64-bit page hash ------------------------------------------------------ */

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull

static inline uint64_t lane(uint64_t acc, uint64_t w)
{
    acc += w * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

uint64_t vf_hash64(const uint8_t *p, size_t n)
{
    uint64_t a = P1 + P2, b = P2, c = 0, d = 0 - P1;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        a = lane(a, w[0]);
        b = lane(b, w[1]);
        c = lane(c, w[2]);
        d = lane(d, w[3]);
    }
    uint64_t h = rotl64(a, 1) + rotl64(b, 7) + rotl64(c, 12) + rotl64(d, 18) + (uint64_t)n;
    for (; i < n; i++)
        h = rotl64(h ^ (p[i] * P3), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h ? h : 1;
}
