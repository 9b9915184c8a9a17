/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The list of codecs and the generic decoder/encoder wrappers. */
#include <stdlib.h>
#include <strings.h>

#include "codec.h"

static const mrimg_codec *const codecs[] = {
    &codec_raw, &codec_gzip, &codec_bzip2, &codec_xz, &codec_lzop, &codec_zstd,
};

static const char *const format_names[MRIMG_FORMAT_COUNT] = {
    "raw", "gzip", "bzip2", "xz", "lzop", "zstd", "sparse",
};

const char *mrimg_format_name(int format)
{
    if (format < 0 || format >= MRIMG_FORMAT_COUNT)
        return NULL;
    return format_names[format];
}

int mrimg_format_from_name(const char *name)
{
    for (int i = 0; i < MRIMG_FORMAT_COUNT; i++)
        if (strcasecmp(name, format_names[i]) == 0)
            return i;
    return -1;
}

int mrimg_format_levels(int format, int *min, int *max, int *def)
{
    const mrimg_codec *c = codec_by_format(format);
    if (!c || c == &codec_raw || !c->enc_init)
        return -1;
    if (min)
        *min = c->level_min;
    if (max)
        *max = c->level_max;
    if (def)
        *def = c->level_default;
    return 0;
}

const mrimg_codec *codec_by_format(int format)
{
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(codecs); i++)
        if (codecs[i]->format == format)
            return codecs[i];
    return NULL;
}

const mrimg_codec *codec_by_name(const char *name)
{
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(codecs); i++)
        if (strcasecmp(codecs[i]->name, name) == 0)
            return codecs[i];
    return NULL;
}

const mrimg_codec *codec_probe(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(codecs); i++) {
        const mrimg_codec *c = codecs[i];
        if (c->magic && len >= c->magic_len && memcmp(buf, c->magic, c->magic_len) == 0)
            return c;
    }
    return NULL;
}

int dec_open(mrimg_decoder *d, const mrimg_codec *c, mrimg_source *src, uint64_t start,
             uint64_t end, unsigned threads, mrimg_error *err)
{
    memset(d, 0, sizeof(*d));
    d->codec = c;
    d->threads = threads ? threads : cpu_count();
    int rc = in_init(&d->in, src, start, end, CODEC_IN_BUF, err);
    if (rc < 0)
        return rc;
    rc = c->dec_init(d, err);
    if (rc < 0) {
        in_free(&d->in);
        return rc;
    }
    return 0;
}

ssize_t dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err)
{
    if (d->pending_rc < 0) {
        if (err)
            *err = d->pending_err;
        return d->pending_rc;
    }
    size_t got = 0;
    while (got < cap && !d->done) {
        ssize_t n = d->codec->dec_read(d, (uint8_t *)buf + got, cap - got,
                                       got ? &d->pending_err : err);
        if (n < 0) {
            if (!got)
                return n;
            /* hand out the good bytes first; the error comes next time */
            d->pending_rc = (int)n;
            break;
        }
        if (n == 0) {
            d->done = true;
            break;
        }
        got += (size_t)n;
        d->st.out_bytes += (uint64_t)n;
    }
    return (ssize_t)got;
}

void dec_close(mrimg_decoder *d)
{
    if (d->codec && d->codec->dec_free)
        d->codec->dec_free(d);
    in_free(&d->in);
    d->codec = NULL;
}

int dec_recheck(const mrimg_codec *c, mrimg_source *src, uint64_t start, uint64_t end,
                const mrimg_error *e, mrimg_error *why, mrimg_error *err)
{
    if (!c || !c->dec_recheck || e->code != MRIMG_ERR_FORMAT)
        return 0;
    return c->dec_recheck(src, start, end, e, why, err);
}

int enc_open(mrimg_encoder *e, const mrimg_codec *c, mrimg_sink *out, const mrimg_enc_opts *o,
             mrimg_error *err)
{
    memset(e, 0, sizeof(*e));
    e->codec = c;
    e->out = out;
    e->level = (o && o->level >= 0) ? o->level : c->level_default;
    if (e->level < c->level_min || e->level > c->level_max)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "%s compression level %d is out of range %d..%d", c->name, e->level,
                       c->level_min, c->level_max);
    e->threads = (o && o->threads) ? o->threads : cpu_count();
    return c->enc_init(e, err);
}

int enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err)
{
    if (len == 0)
        return 0;
    e->in_bytes += len;
    return e->codec->enc_write(e, buf, len, err);
}

int enc_finish(mrimg_encoder *e, mrimg_error *err) { return e->codec->enc_finish(e, err); }

void enc_close(mrimg_encoder *e)
{
    if (e->codec && e->codec->enc_free)
        e->codec->enc_free(e);
    e->codec = NULL;
}
