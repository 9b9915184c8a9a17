/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* raw: the payload is the migration stream itself. */
#include "codec.h"

static int raw_dec_init(mrimg_decoder *d, mrimg_error *err)
{
    (void)d;
    (void)err;
    return 0;
}

static ssize_t raw_dec_read(mrimg_decoder *d, void *buf, size_t cap, mrimg_error *err)
{
    if (in_avail(&d->in) == 0) {
        ssize_t n = in_fill(&d->in, err);
        if (n <= 0)
            return n;
    }
    size_t n = MRIMG_MIN(cap, in_avail(&d->in));
    memcpy(buf, d->in.buf + d->in.r, n);
    d->in.r += n;
    d->st.in_bytes += n;
    return (ssize_t)n;
}

static int raw_enc_init(mrimg_encoder *e, mrimg_error *err)
{
    (void)e;
    (void)err;
    return 0;
}

static int raw_enc_write(mrimg_encoder *e, const void *buf, size_t len, mrimg_error *err)
{
    e->out_bytes += len;
    return sink_write(e->out, buf, len, err);
}

static int raw_enc_finish(mrimg_encoder *e, mrimg_error *err)
{
    (void)e;
    (void)err;
    return 0;
}

const mrimg_codec codec_raw = {
    .name = "raw",
    .level_min = 0,
    .level_max = 0,
    .level_default = 0,
    .dec_init = raw_dec_init,
    .dec_read = raw_dec_read,
    .enc_init = raw_enc_init,
    .enc_write = raw_enc_write,
    .enc_finish = raw_enc_finish,
};
