/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One pass over a stream (run.h). */
#include "run.h"

/* ---- several handlers on one pass ----------------------------------------- */

void sp_tee_init(sp_tee *t)
{
    memset(t, 0, sizeof(*t));
    t->failed = -1;
}

int sp_tee_add(sp_tee *t, const sp_handler *h, void *ctx)
{
    if (!h || t->n >= SP_TEE_MAX)
        return -1;
    t->h[t->n] = h;
    t->ctx[t->n] = ctx;
    return (int)t->n++;
}

/* Call member event ev with the arguments after ctx; stop at a failure. */
#define TEE(ev, ...)                                                                              \
    do {                                                                                          \
        sp_tee *t = ctx;                                                                          \
        for (unsigned i = 0; i < t->n; i++) {                                                     \
            if (!t->h[i]->ev)                                                                     \
                continue;                                                                         \
            int rc = t->h[i]->ev(t->ctx[i], __VA_ARGS__);                                         \
            if (rc < 0) {                                                                         \
                t->failed = (int)i;                                                               \
                return rc;                                                                        \
            }                                                                                     \
        }                                                                                         \
        return 0;                                                                                 \
    } while (0)

static int tee_config(void *ctx, const sp_config *c, mrimg_error *err) { TEE(on_config, c, err); }
static int tee_section(void *ctx, const sp_section *s, mrimg_error *err)
{
    TEE(on_section, s, err);
}
static int tee_section_end(void *ctx, const sp_section *s, mrimg_error *err)
{
    TEE(on_section_end, s, err);
}
static int tee_command(void *ctx, const sp_command *c, mrimg_error *err)
{
    TEE(on_command, c, err);
}
static int tee_blocks(void *ctx, const sp_block *b, unsigned n, mrimg_error *err)
{
    TEE(on_blocks, b, n, err);
}
static int tee_page(void *ctx, unsigned block, uint64_t page, const uint8_t *data, uint64_t pos,
                    mrimg_error *err)
{
    TEE(on_page, block, page, data, pos, err);
}
static int tee_tail_start(void *ctx, uint64_t pos, mrimg_error *err)
{
    TEE(on_tail_start, pos, err);
}
static int tee_tail(void *ctx, const uint8_t *p, size_t n, mrimg_error *err)
{
    TEE(on_tail, p, n, err);
}

const sp_handler sp_tee_handler = {
    .on_config = tee_config,
    .on_section = tee_section,
    .on_section_end = tee_section_end,
    .on_command = tee_command,
    .on_blocks = tee_blocks,
    .on_page = tee_page,
    .on_tail_start = tee_tail_start,
    .on_tail = tee_tail,
};

/* ---- the pass --------------------------------------------------------------- */

int sp_run(srd *s, mrimg_decoder *dec, uint64_t file_size, const sp_run_opts *o,
           mrimg_error *err)
{
    mrimg_stream_info scratch;
    memset(&scratch, 0, sizeof(scratch));
    mrimg_stream_info *si = o->si ? o->si : &scratch;
    sp_parser p;
    int rc = sp_init(&p, s, file_size, si, o->h, o->ctx, err);
    if (rc < 0)
        return rc;
    p.ci = o->ci;
    sp_pass ps = {s, dec, &p, si, o->tee, -1};
    bool skip = false;
    for (unsigned i = 0; i < o->nhooks && rc == 0; i++) {
        if (!o->hooks[i].before)
            continue;
        ps.member = o->hooks[i].member;
        rc = o->hooks[i].before(o->hooks[i].ctx, &ps, err);
        if (rc > 0) {
            skip = true;
            rc = 0;
        }
    }
    if (rc < 0) {
        sp_free(&p);
        return rc;
    }
    if (!skip)
        rc = o->head_only ? sp_parse_head(&p, err) : sp_parse(&p, err);
    mrimg_error perr = *err;
    int prc = rc;
    for (unsigned i = 0; i < o->nhooks; i++) {
        if (!o->hooks[i].after)
            continue;
        mrimg_error herr;
        mrimg_error_clear(&herr);
        ps.member = o->hooks[i].member;
        int hrc = o->hooks[i].after(o->hooks[i].ctx, &ps, prc, &perr, &herr);
        if (hrc < 0 && rc == 0) {
            rc = hrc;
            *err = herr;
        }
    }
    ps.member = -1;
    if (o->after)
        rc = o->after(o->after_ctx, &ps, rc, err);
    srd_prefetch_stop(s); /* the decoder's statistics are final now */
    sp_free(&p);
    return rc;
}
