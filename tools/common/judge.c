/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "judge.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void one(const char *file, const mrimg_problem *p, bool as_warning)
{
    char where[80] = "";
    if (p->offset_kind != MRIMG_OFF_NONE)
        snprintf(where, sizeof(where), "at %s offset %" PRIu64 " (0x%" PRIx64 "): ",
                 p->offset_kind == MRIMG_OFF_FILE ? "file" : "stream", p->offset, p->offset);
    if (as_warning)
        cli_warn(file, "%s: %s%s", p->check, where, p->message);
    else
        cli_error(file, "%s: %s%s", p->check, where, p->message);
}

void cli_print_problems(const char *file, const mrimg_verify_result *r, bool errors,
                        bool warnings, bool allow_incomplete)
{
    for (unsigned i = 0; i < r->nproblems; i++) {
        const mrimg_problem *p = &r->problems[i];
        bool let = allow_incomplete && !strcmp(p->check, "container.incomplete");
        if (p->severity == MRIMG_SEV_WARNING || let) {
            if (warnings)
                one(file, p, true);
        }
        else if (errors)
            one(file, p, false);
    }
    if (r->dropped && warnings)
        cli_warn(file, "%" PRIu64 " more problems not shown (imgverify --max-problems)",
                 r->dropped);
}

int cli_judge(const char *file, mrimg_image *img, bool progress, mrimg_code *code)
{
    const mrimg_verify_result *r;
    mrimg_error err;
    int rc = mrimg_check(img, MRIMG_CHECK_QUICK, progress ? cli_progress : NULL, NULL, &r,
                         &err);
    if (rc < 0) {
        cli_progress_break();
        cli_lib_error(file, &err);
        if (code)
            *code = err.code;
        return -1;
    }
    if (r->nproblems)
        cli_progress_break();
    cli_print_problems(file, r, true, true, false);
    return r->errors ? 1 : 0;
}
