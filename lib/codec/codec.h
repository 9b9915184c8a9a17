/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The codec layer: one small vtable per payload encoding, one file per
 * codec (raw.c gzip.c bzip2.c xz.c lzop.c zstd.c), in the manner of
 * libarchive's filters.  A decoder pulls compressed bytes from an instream
 * over the input file and produces the decoded migration stream; an encoder
 * takes the stream and pushes compressed bytes to a sink.  Adding a codec is
 * adding one file and one line in registry.c. */
#ifndef MRIMG_CODEC_H
#define MRIMG_CODEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../io/sink.h"
#include "../io/source.h"

typedef struct mrimg_codec mrimg_codec;

/* Input buffer size used for compressed input (smaller in the fuzz
 * build; it must hold the largest field read whole: 64 KiB + 10). */
#ifndef CODEC_IN_BUF
#define CODEC_IN_BUF (4u << 20)
#endif

/* What follows the last complete member/stream/frame of a payload, and
 * whether the stock tool, run as libvirt runs it (`tool -dc`, lzop with
 * --ignore-warn), would still exit with status 0. */
typedef struct mrimg_dec_stats {
    uint64_t in_bytes;       /* compressed bytes consumed, trailing included */
    uint64_t out_bytes;      /* decoded bytes produced */
    uint64_t members;        /* gzip members, bzip2 streams, xz streams, lzop
                              * members, zstd frames (skippable ones too) */
    uint64_t checks;         /* checksums verified (CRCs, adler32, xxhash...) */
    uint64_t trailing;       /* bytes after the last member */
    bool trailing_zero;      /* ... all of them zero */
    bool tool_rejects;       /* the stock tool would exit non-zero: libvirt's
                              * restore would fail although the data decoded */
    char note[160];          /* what the stock tool would say, "" if nothing */
} mrimg_dec_stats;

typedef struct mrimg_decoder {
    const mrimg_codec *codec;
    mrimg_instream in;       /* compressed input [payload start, file end) */
    unsigned threads;
    mrimg_dec_stats st;
    bool done;               /* the end was reached (dec_read returned 0) */
    int pending_rc;          /* an error met after bytes were returned, */
    mrimg_error pending_err; /* reported by the next dec_read() */
    void *priv;              /* codec state */
} mrimg_decoder;

typedef struct mrimg_enc_opts {
    int level;               /* -1: the codec's default (libvirt's choice) */
    unsigned threads;        /* 0: all online CPUs; 1: no threads */
} mrimg_enc_opts;

typedef struct mrimg_encoder {
    const mrimg_codec *codec;
    mrimg_sink *out;         /* compressed bytes go to sink_write(out, ...) */
    int level;
    unsigned threads;
    uint64_t in_bytes, out_bytes;
    void *priv;
} mrimg_encoder;

struct mrimg_codec {
    const char *name;        /* "gzip" (its libvirt format, if it has one,
                              * is registry.c's to say: codec_format) */
    const uint8_t *magic;    /* first bytes of an encoded payload (NULL: raw) */
    size_t magic_len;
    int level_min, level_max, level_default; /* all 0: the encoder takes no level */
    bool parallel_encode;    /* the encoder uses several threads */

    /* Decoder.  d->in is ready; d->threads set.  dec_read produces up to cap
     * decoded bytes: >0 bytes, 0 at the clean end of the payload (stats
     * complete), <0 error (*err set, naming the file offset).  Checksums
     * are verified as data is produced. */
    int (*dec_init)(mrimg_decoder *d, mrimg_error *err);
    ssize_t (*dec_read)(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err);
    void (*dec_free)(mrimg_decoder *d);

    /* Checksum or corrupt data?  For codecs whose library reports a wrong
     * stored checksum and corrupt data alike (MRIMG_ERR_FORMAT): the payload
     * [start, end) of src is read once more, in bounded memory, after a
     * decode failed with *e.  1: the data is sound and only a checksum
     * fails (*why: MRIMG_ERR_CHECKSUM, naming where); 0: the data itself is
     * corrupt (or it cannot be told); <0: an error (*err).  NULL when the
     * decoder's errors already tell the two apart (MRIMG_ERR_CHECKSUM). */
    int (*dec_recheck)(mrimg_source *src, uint64_t start, uint64_t end, const mrimg_error *e,
                       mrimg_error *why, mrimg_error *err);

    /* Encoder.  e->out, e->level (resolved), e->threads (resolved) set. */
    int (*enc_init)(mrimg_encoder *e, mrimg_error *err);
    int (*enc_write)(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err);
    int (*enc_finish)(mrimg_encoder *e, mrimg_error *err); /* trailer, flush */
    void (*enc_free)(mrimg_encoder *e);
    /* Optional: bytes the encoder has allocated now, its library's
     * contexts included (for the memory bounds the tests enforce). */
    size_t (*enc_mem)(const mrimg_encoder *e);
};

/* registry.c: the codecs by id (mrimg_codec_info), by libvirt format
 * (NULL: that format has no codec, e.g. sparse) and by name. */
MRIMG_INTERNAL const mrimg_codec *codec_by_id(int id);
MRIMG_INTERNAL const mrimg_codec *codec_by_format(int format);
/* c's libvirt format, MRIMG_FORMAT_NONE if libvirt has none for it. */
MRIMG_INTERNAL int codec_format(const mrimg_codec *c);
MRIMG_INTERNAL const mrimg_codec *codec_by_name(const char *name);
/* The codec whose magic starts buf (raw never matches). */
MRIMG_INTERNAL const mrimg_codec *codec_probe(const uint8_t *buf, size_t len);

/* Open a decoder over [start, end) of src. */
MRIMG_INTERNAL int dec_open(mrimg_decoder *d, const mrimg_codec *c, mrimg_source *src,
                            uint64_t start, uint64_t end, unsigned threads, mrimg_error *err);
/* Read until buf is full or the payload ends; returns bytes (0 at end). */
MRIMG_INTERNAL ssize_t dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err);
MRIMG_INTERNAL void dec_close(mrimg_decoder *d);
/* c's dec_recheck of a failed decode (*e): 1 a checksum fails (*why set),
 * 0 corrupt data, not MRIMG_ERR_FORMAT, or a codec without the hook (c may
 * be NULL), <0 error. */
MRIMG_INTERNAL int dec_recheck(const mrimg_codec *c, mrimg_source *src, uint64_t start,
                               uint64_t end, const mrimg_error *e, mrimg_error *why,
                               mrimg_error *err);

MRIMG_INTERNAL int enc_open(mrimg_encoder *e, const mrimg_codec *c, mrimg_sink *out,
                            const mrimg_enc_opts *o, mrimg_error *err);
MRIMG_INTERNAL int enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err);
MRIMG_INTERNAL int enc_finish(mrimg_encoder *e, mrimg_error *err);
MRIMG_INTERNAL void enc_close(mrimg_encoder *e);
/* Bytes the encoder has allocated now (0 if its codec does not say). */
MRIMG_INTERNAL size_t enc_mem(const mrimg_encoder *e);

/* The codecs. */
MRIMG_INTERNAL extern const mrimg_codec codec_raw, codec_gzip, codec_bzip2, codec_xz, codec_lzop, codec_zstd;

#endif
