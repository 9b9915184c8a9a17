/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


const char *cli_prog = "mrimg";

/* Standard output is checked once at exit, like util-linux's
 * close_stdout(): output that did not reach its file is an error. */
static void close_stdout(void)
{
    errno = 0;
    int bad = ferror(stdout) != 0;
    if (fflush(stdout) != 0)
        bad = 1;
    int e = errno;
    if (fclose(stdout) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad)
        return;
    if (!e)
        e = out_write_errno;
    if (e == EPIPE) /* the reader went away: as if killed by SIGPIPE, quietly */
        _exit(EXIT_SIGNAL + SIGPIPE);
    if (e)
        fprintf(stderr, "%s: standard output: write error: %s\n", cli_prog, strerror(e));
    else
        fprintf(stderr, "%s: standard output: write error\n", cli_prog);
    _exit(EXIT_FILE);
}

void cli_init(const char *prog)
{
    const char *s = strrchr(prog, '/');
    cli_prog = s ? s + 1 : prog;
    atexit(close_stdout);
}

static void vmsg(const char *kind, const char *file, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vmsg(const char *kind, const char *file, const char *fmt, va_list ap)
{
    fflush(stdout);
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fprintf(stderr, "%s: ", cli_prog);
    if (file)
        fprintf(stderr, "%s: ", out_safe(file));
    if (kind)
        fprintf(stderr, "%s: ", kind);
    out_fputs_safe(stderr, msg, 0);
    fputc('\n', stderr);
}

void cli_error(const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(NULL, file, fmt, ap);
    va_end(ap);
}

void cli_warn(const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning", file, fmt, ap);
    va_end(ap);
}

void cli_lib_error(const char *file, const mrimg_error *e)
{
    cli_error(file, "%s", e->message[0] ? e->message : mrimg_code_name(e->code));
}

int cli_exit_for(const mrimg_error *e)
{
    switch (e->code) {
    case MRIMG_OK:
        return EXIT_OK;
    case MRIMG_ERR_IO:
    case MRIMG_ERR_NOSPC:
    case MRIMG_ERR_EXISTS:
    case MRIMG_ERR_NOMEM:
        return EXIT_FILE;
    case MRIMG_ERR_INVAL:
        return e->side != MRIMG_SIDE_NONE ? EXIT_FILE : EXIT_USAGE;
    case MRIMG_ERR_INTERRUPTED: {
        int sig = cli_signal_received();
        return EXIT_SIGNAL + (sig ? sig : SIGINT);
    }
    case MRIMG_ERR_FORMAT:
    case MRIMG_ERR_TRUNCATED:
    case MRIMG_ERR_INCOMPLETE:
    case MRIMG_ERR_UNSUPPORTED:
    case MRIMG_ERR_CHECKSUM:
    case MRIMG_ERR_LIMIT:
        return EXIT_PROBLEM;
    }
    return EXIT_PROBLEM;
}

const char *cli_error_file(const mrimg_error *e, const char *in, const char *outp)
{
    switch (e->side) {
    case MRIMG_SIDE_OUTPUT: return outp ? outp : in;
    case MRIMG_SIDE_SCRATCH: return NULL;
    default: return in;
    }
}

int cli_fail(const mrimg_error *e, const char *in, const char *outp)
{
    const char *msg = e->message[0] ? e->message : mrimg_code_name(e->code);
    if (e->side == MRIMG_SIDE_SCRATCH)
        cli_error("scratch file", "%s", msg);
    else
        cli_error(cli_error_file(e, in, outp), "%s", msg);
    return cli_exit_for(e);
}

void cli_out_error(out *w, const char *key, const mrimg_error *e, const char *file)
{
    out_obj(w, key, "error");
    out_str(w, "code", "code", mrimg_code_name(e->code));
    if (e->side != MRIMG_SIDE_NONE)
        out_str(w, "side", "side", mrimg_side_name(e->side));
    if (file)
        out_str(w, "file", "file", file);
    out_str(w, "message", "message", e->message[0] ? e->message : mrimg_code_name(e->code));
    if (e->offset_kind != MRIMG_OFF_NONE) {
        out_str(w, "offset-kind", "offset kind",
                e->offset_kind == MRIMG_OFF_FILE ? "file" : "stream");
        out_off(w, "offset", "offset", e->offset);
    }
    out_end(w);
}

void cli_version(void)
{
    printf("%s (mrimg) %s\n", cli_prog, mrimg_version_string());
    printf("Copyright (C) 2026 the mrimg authors.\n"
           "License LGPL-2.1-or-later: GNU Lesser GPL version 2.1 or later.\n");
}

void cli_usage_hint(void) { fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog); }

bool cli_parse_u64(const char *s, uint64_t *res)
{
    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s)
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && (*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
        end += 2;
    if (*end)
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *res = (uint64_t)v << shift;
    return true;
}

bool cli_once(const char **seen, const char *name, const char *arg)
{
    if (*seen && strcmp(*seen, arg) != 0) {
        cli_error(NULL, "%s given twice, '%s' then '%s'", name, *seen, arg);
        cli_usage_hint();
        return false;
    }
    *seen = arg;
    return true;
}

int cli_parse_output(const char *s)
{
    if (!strcmp(s, "human"))
        return OUT_HUMAN;
    if (!strcmp(s, "json"))
        return OUT_JSON;
    return -1;
}

/* ---- progress -------------------------------------------------------- */

static volatile sig_atomic_t got_signal;
static int progress_on;
static const char *progress_what = "";
static char progress_phase[64];
static struct timespec progress_t0, progress_last;
static int progress_shown;
static double progress_pct; /* the highest percentage shown in this run */
static double span_lo, span_hi = 100;

void cli_progress_setup(int mode, const char *what)
{
    progress_on = mode < 0 ? isatty(STDERR_FILENO) : mode;
    progress_what = what ? what : "";
    progress_phase[0] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &progress_t0);
    progress_last = progress_t0;
    progress_shown = 0;
    progress_pct = 0;
    span_lo = 0;
    span_hi = 100;
}

void cli_progress_span(const char *phase, double lo, double hi)
{
    cli_progress_phase(NULL, phase);
    span_lo = lo < 0 ? 0 : lo;
    span_hi = hi > 100 ? 100 : hi < span_lo ? span_lo : hi;
}

void cli_progress_phase(void *opaque, const char *phase)
{
    (void)opaque;
    snprintf(progress_phase, sizeof(progress_phase), "%s", phase ? phase : "");
}

static double secs(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

int cli_progress(void *opaque, uint64_t done, uint64_t total)
{
    (void)opaque;
    if (got_signal)
        return 1;
    if (!progress_on)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* at most five updates a second, but every phase is shown once */
    static char phase_shown[sizeof(progress_phase)];
    if (progress_shown && secs(&progress_last, &now) < 0.2 && (done < total || span_hi < 100) &&
        !strcmp(phase_shown, progress_phase))
        return 0;
    snprintf(phase_shown, sizeof(phase_shown), "%s", progress_phase);
    progress_last = now;
    char a[32], b[32], c[32], label[160];
    double el = secs(&progress_t0, &now);
    double rate = el > 0 ? (double)done / el : 0;
    bool ph = progress_phase[0] && strcmp(progress_phase, progress_what) != 0;
    snprintf(label, sizeof(label), "%s%s%s%s", progress_what, ph ? " (" : "",
             ph ? progress_phase : "", ph ? ")" : "");
    if (total) {
        /* one bar: a pass on another scale cannot take it back */
        double pct = span_lo + (span_hi - span_lo) *
                                   (double)(done < total ? done : total) / (double)total;
        if (pct < progress_pct)
            pct = progress_pct;
        progress_pct = pct;
        fprintf(stderr, "\r%s%s%5.1f%% (%s of %s, %s/s)   ", label, *label ? ": " : "", pct,
                fmt_size(a, sizeof(a), done), fmt_size(b, sizeof(b), total),
                fmt_size(c, sizeof(c), (uint64_t)rate));
    } else {
        fprintf(stderr, "\r%s%s%s (%s/s)   ", label, *label ? ": " : "",
                fmt_size(a, sizeof(a), done), fmt_size(b, sizeof(b), (uint64_t)rate));
    }
    progress_shown = 1;
    return 0;
}

void cli_progress_break(void)
{
    if (progress_on && progress_shown)
        fputc('\n', stderr);
    progress_shown = 0;
}

void cli_progress_done(void)
{
    if (progress_on && progress_shown)
        fputc('\n', stderr);
    progress_shown = 0;
}

/* ---- signals --------------------------------------------------------- */

int cli_signal_received(void) { return (int)got_signal; }

static void on_signal(int sig)
{
    got_signal = sig;
    mrimg_cleanup_temporaries();
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when this handler returns: status 128+sig */
}

/* Every signal whose default action ends the process: remove the
 * temporaries first, then die of the same signal.  (SIGKILL and SIGSTOP
 * cannot be caught; SIGCHLD, SIGCONT, SIGURG, SIGWINCH are ignored by
 * default.)  A signal that was ignored when we started (SIGHUP under nohup)
 * stays ignored, except SIGINT and SIGQUIT (see catch()). */
#if defined(__SANITIZE_ADDRESS__)
#define CLI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CLI_ASAN 1
#endif
#endif
static const int fatal_signals[] = {
    SIGHUP,  SIGINT,  SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM,
    SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO, SIGTRAP, SIGSYS,
#ifdef SIGSTKFLT
    SIGSTKFLT,
#endif
#ifdef SIGPWR
    SIGPWR,
#endif
#ifndef CLI_ASAN /* a crash: AddressSanitizer's own handler reports it */
    SIGILL,  SIGABRT, SIGBUS,  SIGFPE,  SIGSEGV,
#endif
};

static void catch(int sig)
{
    struct sigaction sa, old;
    /* SIGINT and SIGQUIT are exceptions: a non-interactive shell ignores
     * them for every background command, not by anyone's choice, and
     * `kill -INT` must still stop the job */
    if (sigaction(sig, NULL, &old) != 0 ||
        (old.sa_handler == SIG_IGN && sig != SIGINT && sig != SIGQUIT))
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask); /* one cleanup at a time */
    sigaction(sig, &sa, NULL);
}

void cli_signals(void)
{
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
        catch(fatal_signals[i]);
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
        catch(sig);
}

static void text_err(mrimg_error *e, mrimg_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void text_err(mrimg_error *e, mrimg_code code, int errnum, const char *fmt, ...)
{
    mrimg_error_clear(e);
    e->code = code;
    e->sys_errno = errnum;
    /* the file was named on the command line: an input of the tool */
    e->side = code == MRIMG_ERR_IO ? MRIMG_SIDE_INPUT : MRIMG_SIDE_NONE;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

char *cli_read_text(const char *path, size_t max, mrimg_error *err)
{
    /* O_NONBLOCK: a FIFO nobody writes to must not hang the open; blocking
     * reads again afterwards, which see EOF at once when there is no writer
     * (a pipe with one, as from <(virsh dumpxml dom), reads normally) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    int fl;
    if (fd < 0 || fstat(fd, &st) != 0 || (fl = fcntl(fd, F_GETFL)) < 0 ||
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        text_err(err, MRIMG_ERR_IO, errno, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        text_err(err, MRIMG_ERR_IO, EISDIR, "cannot read %s: %s", path, strerror(EISDIR));
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        text_err(err, MRIMG_ERR_IO, errno, "cannot open %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            if (cap >= max) {
                text_err(err, MRIMG_ERR_LIMIT, 0, "larger than %zu bytes", max);
                free(b);
                b = NULL;
                break;
            }
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
        }
        errno = 0;
        size_t r = fread(b + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    if (!b && err->code == MRIMG_OK)
        text_err(err, MRIMG_ERR_NOMEM, ENOMEM, "out of memory");
    if (b && ferror(f)) {
        /* a directory opens, then fails to read with EISDIR */
        int e = errno ? errno : EIO;
        text_err(err, MRIMG_ERR_IO, e, "cannot read %s: %s", path, strerror(e));
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (strlen(b) != n) {
            text_err(err, MRIMG_ERR_FORMAT, 0, "contains a NUL byte");
            free(b);
            b = NULL;
        }
    }
    return b;
}

mrimg_image *cli_open(const char *path, uint64_t stream_offset, unsigned threads,
                      mrimg_error *err)
{
    mrimg_open_opts *o = mrimg_open_opts_create();
    if (!o) {
        memset(err, 0, sizeof(*err));
        err->code = MRIMG_ERR_NOMEM;
        snprintf(err->message, sizeof(err->message), "out of memory");
        return NULL;
    }
    mrimg_image *img = NULL;
    if (mrimg_open_opts_set(o, MRIMG_P_STREAM_OFFSET, (int64_t)stream_offset, err) == 0 &&
        mrimg_open_opts_set(o, MRIMG_P_THREADS, threads, err) == 0)
        img = mrimg_open(cli_input_path(path), o, err);
    mrimg_open_opts_free(o);
    return img;
}

bool cli_is_stdio(const char *arg) { return arg && !strcmp(arg, "-"); }

const char *cli_input_path(const char *arg) { return cli_is_stdio(arg) ? "/dev/stdin" : arg; }

bool cli_input_is_pipe(const char *arg)
{
    struct stat st;
    if (cli_is_stdio(arg))
        return fstat(0, &st) == 0 && S_ISFIFO(st.st_mode);
    return stat(arg, &st) == 0 && S_ISFIFO(st.st_mode);
}

bool cli_stdin_once(char **args, int n)
{
    int seen = 0;
    for (int i = 0; i < n; i++)
        seen += cli_is_stdio(args[i]);
    if (seen > 1) {
        cli_error("-", "standard input can be read only once (given %d times)", seen);
        cli_usage_hint();
        return false;
    }
    return true;
}
