/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The list of codecs and the generic decoder/encoder wrappers. */
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

#include "codec.h"

/* Every codec, by id (mrimg_codec_info): append only, so that an id keeps
 * its meaning.  Adding a codec is one file and one line here (and one in
 * formats[] below if libvirt has a format for it). */
static const mrimg_codec *const codecs[] = {
    &codec_raw, &codec_gzip, &codec_bzip2, &codec_xz, &codec_lzop, &codec_zstd,
};

/* libvirt's save-image formats (the header's `format` field, the names of
 * libvirt's virQEMUSaveFormat) and the codec of each one's payload: the one
 * map between codecs and libvirt formats. */
static const struct {
    const char *name;
    const mrimg_codec *codec; /* NULL: the payload is no codec's */
} formats[MRIMG_FORMAT_COUNT] = {
    [MRIMG_FORMAT_RAW] = {"raw", &codec_raw},
    [MRIMG_FORMAT_GZIP] = {"gzip", &codec_gzip},
    [MRIMG_FORMAT_BZIP2] = {"bzip2", &codec_bzip2},
    [MRIMG_FORMAT_XZ] = {"xz", &codec_xz},
    [MRIMG_FORMAT_LZOP] = {"lzop", &codec_lzop},
    [MRIMG_FORMAT_ZSTD] = {"zstd", &codec_zstd},
    [MRIMG_FORMAT_SPARSE] = {"sparse", NULL}, /* raw pages in QEMU's mapped-ram layout */
};

#define NCODECS ((int)MRIMG_ARRAY_SIZE(codecs))

const char *mrimg_format_name(int format)
{
    if (format < 0 || format >= MRIMG_FORMAT_COUNT)
        return NULL;
    return formats[format].name;
}

int mrimg_format_from_name(const char *name)
{
    for (int i = 0; i < MRIMG_FORMAT_COUNT; i++)
        if (strcasecmp(name, formats[i].name) == 0)
            return i;
    return -1;
}

int mrimg_format_levels(int format, int *min, int *max, int *def)
{
    const mrimg_codec_desc *d = mrimg_codec_info(mrimg_codec_from_format(format));
    if (!d || !d->has_levels)
        return -1;
    if (min)
        *min = d->level_min;
    if (max)
        *max = d->level_max;
    if (def)
        *def = d->level_default;
    return 0;
}

static bool has_levels(const mrimg_codec *c) { return c->enc_init && c->level_max > 0; }

/* The descriptors, made once from the codecs and the format map. */
static mrimg_codec_desc descs[MRIMG_ARRAY_SIZE(codecs)];
static pthread_once_t descs_once = PTHREAD_ONCE_INIT;

static void make_descs(void)
{
    for (int id = 0; id < NCODECS; id++) {
        const mrimg_codec *c = codecs[id];
        bool lv = has_levels(c);
        descs[id] = (mrimg_codec_desc){
            .name = c->name,
            .format = codec_format(c),
            .has_levels = lv,
            .level_min = lv ? c->level_min : 0,
            .level_max = lv ? c->level_max : 0,
            .level_default = lv ? c->level_default : 0,
            .parallel = c->parallel_encode,
        };
    }
}

const mrimg_codec_desc *mrimg_codec_info(int id)
{
    if (id < 0 || id >= NCODECS)
        return NULL;
    pthread_once(&descs_once, make_descs);
    return &descs[id];
}

int mrimg_codec_from_name(const char *name)
{
    for (int id = 0; id < NCODECS; id++)
        if (strcasecmp(codecs[id]->name, name) == 0)
            return id;
    return -1;
}

int mrimg_codec_from_format(int format)
{
    const mrimg_codec *c = codec_by_format(format);
    for (int id = 0; c && id < NCODECS; id++)
        if (codecs[id] == c)
            return id;
    return -1;
}

const mrimg_codec *codec_by_id(int id) { return id >= 0 && id < NCODECS ? codecs[id] : NULL; }

const mrimg_codec *codec_by_format(int format)
{
    return format >= 0 && format < MRIMG_FORMAT_COUNT ? formats[format].codec : NULL;
}

int codec_format(const mrimg_codec *c)
{
    for (int f = 0; f < MRIMG_FORMAT_COUNT; f++)
        if (formats[f].codec == c)
            return f;
    return MRIMG_FORMAT_NONE;
}

const mrimg_codec *codec_by_name(const char *name)
{
    return codec_by_id(mrimg_codec_from_name(name));
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

size_t enc_mem(const mrimg_encoder *e)
{
    return e->codec && e->codec->enc_mem ? e->codec->enc_mem(e) : 0;
}

void enc_close(mrimg_encoder *e)
{
    if (e->codec && e->codec->enc_free)
        e->codec->enc_free(e);
    e->codec = NULL;
}
