/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Option handles of mrimg.h: one list of (parameter, value) pairs with
 * their bounds, and a setter per operation that takes the parameters that
 * apply to it (as zstd's ZSTD_CCtx_setParameter / ZSTD_cParam_getBounds).
 * The handles' layouts are in options.h, private to the library. */
#include <stdlib.h>
#include <string.h>

#include "options.h"

/* applies to */
#define AT_OPEN 0x1u
#define AT_VERIFY 0x2u
#define AT_CONVERT 0x4u

typedef struct param_row {
    mrimg_param p;
    const char *name;
    unsigned at;
    int64_t min, max, def;
} param_row;

/* MRIMG_P_LEVEL's maximum and MRIMG_P_OUTPUT's are computed (see
 * row_bounds): they follow the codec and output tables. */
static const param_row params[] = {
    {MRIMG_P_STREAM_OFFSET, "stream-offset", AT_OPEN | AT_VERIFY, 0, INT64_MAX, 0},
    {MRIMG_P_THREADS, "threads", AT_OPEN | AT_VERIFY | AT_CONVERT, 0, 1024, 0},
    {MRIMG_P_MAX_PROBLEMS, "max-problems", AT_VERIFY, 0, UINT32_MAX, 0},
    {MRIMG_P_SKIP_DATA, "skip-data", AT_VERIFY, 0, 1, 0},
    {MRIMG_P_OUTPUT, "output", AT_CONVERT, 0, 0, MRIMG_OUT_RAW},
    {MRIMG_P_LEVEL, "level", AT_CONVERT, -1, 0, -1},
    {MRIMG_P_FORCE, "force", AT_CONVERT, 0, 1, 0},
    {MRIMG_P_COMPACT, "compact", AT_CONVERT, 0, 1, 0},
    {MRIMG_P_RUNNING, "running", AT_CONVERT, -1, 1, -1},
    {MRIMG_P_ALLOW_INCOMPLETE, "allow-incomplete", AT_CONVERT, 0, 1, 0},
    {MRIMG_P_PREALLOCATE, "preallocate", AT_CONVERT, 0, 1, 0},
};

static const param_row *row_of(mrimg_param p)
{
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
        if (params[i].p == p)
            return &params[i];
    return NULL;
}

static void row_bounds(const param_row *r, int64_t *min, int64_t *max, int64_t *def)
{
    int64_t hi = r->max;
    if (r->p == MRIMG_P_OUTPUT) {
        unsigned n = 0;
        while (mrimg_output_info(n + 1))
            n++;
        hi = n;
    } else if (r->p == MRIMG_P_LEVEL) {
        for (int f = 0; f < MRIMG_FORMAT_COUNT; f++) {
            int lmax;
            if (mrimg_format_levels(f, NULL, &lmax, NULL) == 0 && lmax > hi)
                hi = lmax;
        }
    }
    if (min)
        *min = r->min;
    if (max)
        *max = hi;
    if (def)
        *def = r->def;
}

int mrimg_param_bounds(mrimg_param p, int64_t *min, int64_t *max, int64_t *def)
{
    const param_row *r = row_of(p);
    if (!r)
        return MRIMG_ERR_INVAL;
    row_bounds(r, min, max, def);
    return 0;
}

const char *mrimg_param_name(mrimg_param p)
{
    const param_row *r = row_of(p);
    return r ? r->name : NULL;
}

/* The row of p if it applies to `at` and value is within its bounds. */
static const param_row *check(mrimg_param p, unsigned at, const char *op, bool setting,
                              int64_t value, mrimg_error *err)
{
    const param_row *r = row_of(p);
    if (!r || !(r->at & at)) {
        if (r)
            err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                    "parameter %s does not apply to %s", r->name, op);
        else
            err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "unknown parameter %d", (int)p);
        return NULL;
    }
    if (setting) {
        int64_t lo, hi;
        row_bounds(r, &lo, &hi, NULL);
        if (value < lo || value > hi) {
            err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                    "parameter %s: %lld is out of bounds (%lld..%lld)", r->name,
                    (long long)value, (long long)lo, (long long)hi);
            return NULL;
        }
    }
    return r;
}

/* ---- open ---------------------------------------------------------------- */

void opts_open_defaults(mrimg_open_opts *o)
{
    memset(o, 0, sizeof(*o));
}

mrimg_open_opts *mrimg_open_opts_create(void)
{
    mrimg_open_opts *o = malloc(sizeof(*o));
    if (o)
        opts_open_defaults(o);
    return o;
}

void mrimg_open_opts_free(mrimg_open_opts *o)
{
    free(o);
}

int mrimg_open_opts_set(mrimg_open_opts *o, mrimg_param p, int64_t v, mrimg_error *err)
{
    if (!o)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle");
    if (!check(p, AT_OPEN, "opening an image", true, v, err))
        return MRIMG_ERR_INVAL;
    if (p == MRIMG_P_STREAM_OFFSET)
        o->stream_offset = (uint64_t)v;
    else
        o->threads = (unsigned)v;
    return 0;
}

int mrimg_open_opts_get(const mrimg_open_opts *o, mrimg_param p, int64_t *v, mrimg_error *err)
{
    if (!o || !v)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle or value");
    if (!check(p, AT_OPEN, "opening an image", false, 0, err))
        return MRIMG_ERR_INVAL;
    *v = p == MRIMG_P_STREAM_OFFSET ? (int64_t)o->stream_offset : (int64_t)o->threads;
    return 0;
}

/* ---- verify -------------------------------------------------------------- */

void opts_verify_defaults(mrimg_verify_opts *o)
{
    memset(o, 0, sizeof(*o));
}

mrimg_verify_opts *mrimg_verify_opts_create(void)
{
    mrimg_verify_opts *o = malloc(sizeof(*o));
    if (o)
        opts_verify_defaults(o);
    return o;
}

void mrimg_verify_opts_free(mrimg_verify_opts *o)
{
    free(o);
}

int mrimg_verify_opts_set(mrimg_verify_opts *o, mrimg_param p, int64_t v, mrimg_error *err)
{
    if (!o)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle");
    if (!check(p, AT_VERIFY, "verification", true, v, err))
        return MRIMG_ERR_INVAL;
    switch (p) {
    case MRIMG_P_STREAM_OFFSET: o->stream_offset = (uint64_t)v; break;
    case MRIMG_P_THREADS: o->threads = (unsigned)v; break;
    case MRIMG_P_MAX_PROBLEMS: o->max_problems = (unsigned)v; break;
    default: o->skip_data = (int)v; break;
    }
    return 0;
}

int mrimg_verify_opts_get(const mrimg_verify_opts *o, mrimg_param p, int64_t *v,
                          mrimg_error *err)
{
    if (!o || !v)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle or value");
    if (!check(p, AT_VERIFY, "verification", false, 0, err))
        return MRIMG_ERR_INVAL;
    switch (p) {
    case MRIMG_P_STREAM_OFFSET: *v = (int64_t)o->stream_offset; break;
    case MRIMG_P_THREADS: *v = o->threads; break;
    case MRIMG_P_MAX_PROBLEMS: *v = o->max_problems; break;
    default: *v = o->skip_data; break;
    }
    return 0;
}

void mrimg_verify_opts_set_progress(mrimg_verify_opts *o, mrimg_progress_fn progress, void *ctx)
{
    if (o) {
        o->progress = progress;
        o->progress_ctx = ctx;
    }
}

/* ---- convert ------------------------------------------------------------- */

void opts_convert_defaults(mrimg_convert_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->out = MRIMG_OUT_RAW;
    o->level = -1;
    o->running = -1;
}

mrimg_convert_opts *mrimg_convert_opts_create(void)
{
    mrimg_convert_opts *o = malloc(sizeof(*o));
    if (o)
        opts_convert_defaults(o);
    return o;
}

void mrimg_convert_opts_free(mrimg_convert_opts *o)
{
    if (!o)
        return;
    free(o->xml);
    free(o->cookie);
    free(o);
}

int mrimg_convert_opts_set(mrimg_convert_opts *o, mrimg_param p, int64_t v, mrimg_error *err)
{
    if (!o)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle");
    if (!check(p, AT_CONVERT, "conversion", true, v, err))
        return MRIMG_ERR_INVAL;
    switch (p) {
    case MRIMG_P_OUTPUT: o->out = (mrimg_output)v; break;
    case MRIMG_P_LEVEL: o->level = (int)v; break;
    case MRIMG_P_THREADS: o->threads = (unsigned)v; break;
    case MRIMG_P_FORCE: o->force = (int)v; break;
    case MRIMG_P_COMPACT: o->compact = (int)v; break;
    case MRIMG_P_RUNNING: o->running = (int)v; break;
    case MRIMG_P_ALLOW_INCOMPLETE: o->allow_incomplete = (int)v; break;
    default: o->preallocate = (int)v; break;
    }
    return 0;
}

int mrimg_convert_opts_get(const mrimg_convert_opts *o, mrimg_param p, int64_t *v,
                           mrimg_error *err)
{
    if (!o || !v)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle or value");
    if (!check(p, AT_CONVERT, "conversion", false, 0, err))
        return MRIMG_ERR_INVAL;
    switch (p) {
    case MRIMG_P_OUTPUT: *v = o->out; break;
    case MRIMG_P_LEVEL: *v = o->level; break;
    case MRIMG_P_THREADS: *v = o->threads; break;
    case MRIMG_P_FORCE: *v = o->force; break;
    case MRIMG_P_COMPACT: *v = o->compact; break;
    case MRIMG_P_RUNNING: *v = o->running; break;
    case MRIMG_P_ALLOW_INCOMPLETE: *v = o->allow_incomplete; break;
    default: *v = o->preallocate; break;
    }
    return 0;
}

static int set_text(char **slot, const char *text, mrimg_error *err)
{
    char *copy = NULL;
    if (text && !(copy = strdup(text)))
        return err_set(err, MRIMG_ERR_NOMEM, MRIMG_OFF_NONE, 0, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

int mrimg_convert_opts_set_xml(mrimg_convert_opts *o, const char *xml, mrimg_error *err)
{
    if (!o)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle");
    return set_text(&o->xml, xml, err);
}

int mrimg_convert_opts_set_cookie(mrimg_convert_opts *o, const char *cookie, mrimg_error *err)
{
    if (!o)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no options handle");
    return set_text(&o->cookie, cookie, err);
}

void mrimg_convert_opts_set_progress(mrimg_convert_opts *o, mrimg_progress_fn progress,
                                     void (*phase)(void *ctx, const char *label), void *ctx)
{
    if (o) {
        o->progress = progress;
        o->progress_phase = phase;
        o->progress_ctx = ctx;
    }
}
