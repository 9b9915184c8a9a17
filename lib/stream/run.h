/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One pass over a stream, the one way every layer parses it.
 *
 * sp_run() runs the parser over a payload reader that is already open
 * (lib/image.c img_parse() opens it for an image): sp_init, the hooks that
 * look at the raw stream first, sp_parse (or only its head), the hooks
 * that look at the result, then stops the read-ahead so that the decoder's
 * statistics are final.  The events of the pass go to one handler; an
 * sp_tee hands them to several, in order, so that one pass feeds several
 * consumers (a conversion and the verifier's checks, a RAM walk and a
 * device-state collector). */
#ifndef MRIMG_STREAM_RUN_H
#define MRIMG_STREAM_RUN_H

#include "reader.h"

#define SP_TEE_MAX 4

/* Several handlers on one pass.  Events go to the members in the order
 * they were added; the first member that fails stops the pass (failed
 * then names it). */
typedef struct sp_tee {
    unsigned n;
    const sp_handler *h[SP_TEE_MAX];
    void *ctx[SP_TEE_MAX];
    int failed;                       /* member that stopped the pass, or -1 */
} sp_tee;

MRIMG_INTERNAL void sp_tee_init(sp_tee *t);
/* Returns the member's index, or -1 when the tee is full (a programming
 * error: SP_TEE_MAX covers every combination the library makes). */
MRIMG_INTERNAL int sp_tee_add(sp_tee *t, const sp_handler *h, void *ctx);
/* The handler that fans out to a tee (its ctx is the sp_tee). */
MRIMG_INTERNAL extern const sp_handler sp_tee_handler;

/* What the hooks of a pass see. */
typedef struct sp_pass {
    srd *s;
    mrimg_decoder *dec;               /* dec->codec is NULL for a raw payload */
    sp_parser *p;
    mrimg_stream_info *si;
    const sp_tee *tee;                /* the events' tee, or NULL */
    int member;                       /* the hook's consumer in tee (-1: none) */
} sp_pass;

/* Another consumer of the tee stopped the pass: what this hook's consumer
 * saw is incomplete, and the parse's error is not about the stream. */
static inline bool sp_pass_cut(const sp_pass *ps)
{
    return ps->tee && ps->tee->failed >= 0 && ps->tee->failed != ps->member;
}

/* Hooks around the parse of a consumer that needs more than events (the
 * verifier: it looks at the stream's first bytes itself, and turns a
 * parse error into a problem).  Each may be NULL.
 *   before: after sp_init; >0 skips the parse (the hook judged the stream
 *           itself), <0 fails the pass.
 *   after:  with the parse's result (rc, perr: also when before skipped
 *           it, then rc is 0); <0 is a failure of the consumer's own. */
typedef struct sp_hooks {
    int (*before)(void *ctx, sp_pass *ps, mrimg_error *err);
    int (*after)(void *ctx, sp_pass *ps, int rc, const mrimg_error *perr, mrimg_error *err);
    void *ctx;
    int member;                       /* its consumer's index in the tee, or -1 */
} sp_hooks;

typedef struct sp_run_opts {
    const sp_handler *h;              /* NULL: no events */
    void *ctx;
    const sp_tee *tee;                /* h is sp_tee_handler with this tee */
    mrimg_stream_info *si;            /* NULL: a scratch one */
    const mrimg_container_info *ci;   /* optional (names regions in errors) */
    bool head_only;                   /* header and configuration section only */
    sp_hooks hooks[SP_TEE_MAX];       /* consumers' hooks, called in order */
    unsigned nhooks;
    /* the caller's own: with the parse's result, before the read-ahead
     * stops; returns the pass's result (NULL: the parse's) */
    int (*after)(void *ctx, sp_pass *ps, int rc, mrimg_error *err);
    void *after_ctx;
} sp_run_opts;

/* One pass over the stream s reads (dec: its decoder, or one whose codec
 * is NULL).  The hooks run before the read-ahead stops, the caller's after
 * last.  Returns the parse's result, or the first hook failure. */
MRIMG_INTERNAL int sp_run(srd *s, mrimg_decoder *dec, uint64_t file_size, const sp_run_opts *o,
                          mrimg_error *err);

#endif
