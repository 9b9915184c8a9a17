/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library's one judgement of an image (mrimg_check), as the tools
 * print it: one line per problem on stderr. */
#ifndef MRIMG_TOOLS_JUDGE_H
#define MRIMG_TOOLS_JUDGE_H

#include <stdbool.h>

#include "mrimg.h"

/* "prog: file: warning: check: at file offset N (0x..): message" for each
 * warning when warnings is true (and each error let through by
 * allow_incomplete), and without "warning: " for each error when errors is
 * true. */
void cli_print_problems(const char *file, const mrimg_verify_result *r, bool errors,
                        bool warnings, bool allow_incomplete);

/* The quick judgement of img: its errors and warnings printed, then 0 (no
 * error), 1 (errors) or -1 when the checks could not run (already printed;
 * *code receives the library code).  With progress, it goes to the
 * caller's bar (cli_progress_setup / cli_progress_span). */
int cli_judge(const char *file, mrimg_image *img, bool progress, mrimg_code *code);

#endif
