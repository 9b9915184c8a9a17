/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one table of exit statuses of imginfo, imgconv and imgverify (also in
 * every man page, section EXIT STATUS, in the same words):
 *
 *   0      success: every image sound / converted / images identical /
 *          digests printed
 *   1      an image has errors (any error-severity problem), cannot be
 *          converted, or two compared images differ
 *   2      usage error: unknown option, bad or missing argument, options
 *          that do not apply together
 *   3      a file could not be opened, read or written (input, output or
 *          scratch file: missing input, permission, I/O error, no space,
 *          output exists, output is a directory or a device, standard
 *          output), or out of memory
 *   128+N  killed by signal N (temporaries are removed first)
 *
 * With several files the highest status wins.  cli_exit_for() is the one
 * mapping from a library error to a status. */
#ifndef MRIMG_TOOLS_EXIT_H
#define MRIMG_TOOLS_EXIT_H

#include "mrimg.h"

enum {
    EXIT_OK = 0,
    EXIT_PROBLEM = 1,
    EXIT_USAGE = 2,
    EXIT_FILE = 3,
    EXIT_SIGNAL = 128, /* + the signal number */
};

/* The exit status for a library error: EXIT_FILE for I/O, space, an
 * existing output and memory; EXIT_USAGE for an invalid argument that is
 * no file's fault; 128+N for an operation cancelled by signal N;
 * EXIT_PROBLEM for everything the image itself is to blame for. */
int cli_exit_for(const mrimg_error *e);

/* The file an error is about: out for MRIMG_SIDE_OUTPUT, NULL for the
 * scratch file (the message names its directory), else in. */
const char *cli_error_file(const mrimg_error *e, const char *in, const char *outp);

/* Print the error as "prog: FILE: message" (scratch files as
 * "prog: scratch file: message") and return cli_exit_for(e). */
int cli_fail(const mrimg_error *e, const char *in, const char *outp);

#endif
