/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared command-line manners: messages as "tool: file: what went wrong",
 * --version, progress on stderr, signal handling that leaves no temporary
 * output behind. */
#ifndef MRIMG_TOOLS_CLI_H
#define MRIMG_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "exit.h"
#include "mrimg.h"
#include "out.h"

extern const char *cli_prog;

/* Also arranges for standard output to be checked at exit (as
 * util-linux's close_stdout): a failed write or close of stdout prints
 * "prog: standard output: ..." and exits with EXIT_FILE. */
void cli_init(const char *prog);
/* "prog: file: message" on stderr (file may be NULL).  The file name and
 * the message are escaped for terminals (out_safe). */
void cli_error(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_lib_error(const char *file, const mrimg_error *e);
/* A library error as a JSON/human object under key: code, side (unless
 * none), file (if not NULL), message, offset-kind and offset (when the
 * error has an offset). */
void cli_out_error(out *w, const char *key, const mrimg_error *e, const char *file);
void cli_version(void);
/* "Try 'prog --help' for more information." */
void cli_usage_hint(void);

/* Parse a byte count/offset: decimal, 0x hex, optional K/M/G/T (binary)
 * suffix.  false on garbage or overflow. */
bool cli_parse_u64(const char *s, uint64_t *res);
/* A value option seen again: with another value it is a usage error (the
 * message "NAME given twice, 'A' then 'B'" is printed and false returned;
 * the last one does not silently win); the same value again is harmless.
 * *seen holds the first value (NULL before). */
bool cli_once(const char **seen, const char *name, const char *arg);
/* Parse "human" / "json" for --output; returns 0/1 or -1. */
int cli_parse_output(const char *s);

/* Progress on stderr: one bar per run.  mode: -1 auto (if stderr is a
 * terminal), 0 off, 1 on.  cli_progress is a mrimg_progress_fn; it also
 * returns non-zero after a SIGINT/SIGTERM so that the library stops
 * cleanly.  The percentage shown never goes back within a run, even if a
 * caller reports passes on different scales.  cli_progress_phase (the
 * signature of mrimg_convert_opts.progress_phase) labels the pass under
 * way: "converting (scanning): 12.0% ..."; a tool that runs several
 * library calls in one run labels each so. */
void cli_progress_setup(int mode, const char *what);
int cli_progress(void *opaque, uint64_t done, uint64_t total);
void cli_progress_phase(void *opaque, const char *phase);
/* The next library call covers [lo, hi] percent of the bar (a tool that
 * runs several calls per run gives each its span; setup resets to 0..100),
 * labelled phase (may be NULL). */
void cli_progress_span(const char *phase, double lo, double hi);
/* End the line of the bar (before printing on stdout) without ending the
 * run: the next update starts a new line, still never going back. */
void cli_progress_break(void);
void cli_progress_done(void);

/* Every signal whose default action terminates (INT, TERM, HUP, PIPE, USR1,
 * ALRM, XFSZ, the real-time ones...): remove the library's temporary outputs
 * (and a directory the run created), then die of the signal, so the exit
 * status is 128+N.  Signals ignored at start (SIGHUP under nohup) stay
 * ignored, except SIGINT and SIGQUIT, which shells ignore for background
 * jobs on their own. */
void cli_signals(void);
/* The signal received (0 if none). */
int cli_signal_received(void);

/* "-" names standard input (as INPUT/FILE) or standard output (as
 * imgconv's OUTPUT), as for zstd and xz; messages and output name it "-",
 * as given (a file called "-" is "./-"). */
bool cli_is_stdio(const char *arg);
/* The path to open for an input argument: /dev/stdin for "-" (a pipe
 * there is read forward once; a regular file redirected there is a file). */
const char *cli_input_path(const char *arg);
/* The input argument (a name, or "-") is a pipe or FIFO: read once,
 * forward only. */
bool cli_input_is_pipe(const char *arg);
/* "-" among args[0..n) more than once: "standard input can be read only
 * once" is printed and false returned. */
bool cli_stdin_once(char **args, int n);

/* Read a whole small file (e.g. an XML) into a NUL-terminated string.
 * NULL on failure, *err says why: MRIMG_ERR_IO (side input: cannot open or
 * read, e.g. a directory), MRIMG_ERR_LIMIT (larger than max), MRIMG_ERR_FORMAT
 * (holds a NUL), MRIMG_ERR_NOMEM.  Prints nothing. */
char *cli_read_text(const char *path, size_t max, mrimg_error *err);
/* mrimg_open with an options handle holding stream_offset (bare streams)
 * and threads (0: one per online CPU). */
mrimg_image *cli_open(const char *path, uint64_t stream_offset, unsigned threads,
                      mrimg_error *err);

#endif
