/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bodies of the opaque option handles of mrimg.h (options.c sets
 * them).  Only the library sees these layouts, so a new option is a new
 * field here, a new mrimg_param and a case in its setter: never an ABI
 * change. */
#ifndef MRIMG_OPTIONS_H
#define MRIMG_OPTIONS_H

#include "util/util.h"

struct mrimg_open_opts {
    uint64_t stream_offset;
    unsigned threads;
};

struct mrimg_verify_opts {
    uint64_t stream_offset;
    unsigned threads;
    unsigned max_problems;    /* 0: MRIMG_VERIFY_MAX_PROBLEMS */
    int skip_data;
    mrimg_progress_fn progress;
    void *progress_ctx;
};

struct mrimg_convert_opts {
    mrimg_output out;
    int level;                /* -1: the codec's default */
    unsigned threads;
    int force;
    int compact;
    char *xml;                /* owned copy, or NULL: keep */
    int running;              /* -1 keep, 0 paused, 1 running */
    int allow_incomplete;
    int preallocate;
    mrimg_progress_fn progress;
    void *progress_ctx;
    void (*progress_phase)(void *progress_ctx, const char *phase);
    char *cookie;             /* owned copy, or NULL: keep */
};

/* Every default, for callers inside the library that pass NULL handles. */
MRIMG_INTERNAL void opts_open_defaults(mrimg_open_opts *o);
MRIMG_INTERNAL void opts_verify_defaults(mrimg_verify_opts *o);
MRIMG_INTERNAL void opts_convert_defaults(mrimg_convert_opts *o);

#endif
