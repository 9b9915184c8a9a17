/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The output table: every kind mrimg_convert writes is one row of
 * outputs.c, naming its public description (mrimg_output_desc), the
 * pipeline that writes it and what that pipeline reads of the input first
 * (for the one progress scale of convert.c).  A new kind is a new file with
 * its writer plus one row; convert.c never compares output kinds. */
#ifndef MRIMG_CONVERT_OUTPUTS_H
#define MRIMG_CONVERT_OUTPUTS_H

#include "../image.h"

typedef struct cv cv;
struct cv_output;
struct gout_gate; /* guestout.h */

/* A pipeline of convert.c: write c->in to out_path (progress, judgement
 * and options are in c). */
typedef int (*cv_pipeline_fn)(cv *c, const struct cv_output *row, const char *out_path,
                              mrimg_error *err);
/* A writer that takes the input's RAM from one walk (elf.c, phys.c,
 * kdump.c, the shape of guestout.h): run by cv_pipe_walk, which gives it
 * its progress span and the judgement's gate. */
typedef int (*cv_writer_fn)(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
                            mrimg_convert_stats *st, const struct gout_gate *gate,
                            mrimg_progress_fn progress, void *pctx, mrimg_error *err);

/* What a pipeline reads before it writes (plain inputs), for the plan. */
#define CV_PLAN_REPLAY 0x1u /* a replay into a scratch file and a walk from
                             * it (two passes instead of one) */

typedef struct cv_output {
    mrimg_output_desc d;
    const char *alias;        /* another -O name, or NULL */
    cv_pipeline_fn pipeline;
    cv_writer_fn writer;      /* for cv_pipe_walk */
    unsigned plan;            /* CV_PLAN_* */
} cv_output;

/* The row of kind, or NULL for an unknown one. */
MRIMG_INTERNAL const cv_output *cv_output_row(int kind);

/* The pipelines (convert.c) */
/* migration streams, libvirt or bare: passthrough, to mapped, to plain */
MRIMG_INTERNAL int cv_pipe_stream(cv *c, const cv_output *row, const char *out_path,
                                  mrimg_error *err);
/* a directory of one raw file per RAM block */
MRIMG_INTERNAL int cv_pipe_ram(cv *c, const cv_output *row, const char *out_path,
                               mrimg_error *err);
/* row->writer over one walk of the RAM */
MRIMG_INTERNAL int cv_pipe_walk(cv *c, const cv_output *row, const char *out_path,
                                mrimg_error *err);

#endif
