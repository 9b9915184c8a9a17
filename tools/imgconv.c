/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* imgconv: convert a libvirt save image or QEMU migration stream to any
 * other format.  Options, one library call, a report. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "judge.h"
#include "mrimg.h"
#include "out.h"

enum {
    OPT_COMPACT = 256,
    OPT_XML,
    OPT_RUNNING,
    OPT_PAUSED,
    OPT_OFFSET,
    OPT_ALLOW_INCOMPLETE,
    OPT_OUTPUT,
    OPT_PREALLOCATE,
    OPT_SPARSIFY,
    OPT_COOKIE,
};

/* The codecs of the libvirt formats that take a level, from the library's
 * codec table ("gzip, bzip2, ... or zstd"; with `defaults`: "gzip 6, ...").
 * `last` joins the last two items. */
static const char *level_list(char *b, size_t n, bool defaults, const char *last)
{
    const mrimg_codec_desc *d;
    int ids[64], m = 0;
    for (int id = 0; (d = mrimg_codec_info(id)) != NULL && m < 64; id++)
        if (d->has_levels && d->format != MRIMG_FORMAT_NONE)
            ids[m++] = id;
    size_t k = 0;
    b[0] = 0;
    for (int i = 0; i < m && k < n; i++) {
        d = mrimg_codec_info(ids[i]);
        const char *sep = i == 0 ? "" : i == m - 1 ? last : ", ";
        k += defaults ? (size_t)snprintf(b + k, n - k, "%s%s %d", sep, d->name, d->level_default)
                      : (size_t)snprintf(b + k, n - k, "%s%s", sep, d->name);
    }
    return b;
}

/* "  NAME" padded to the description column, then the summary folded at
 * 79 columns: one line of --help per row of the library's output table */
static void usage_output(const char *name, const char *summary)
{
    int col = printf("  %s", name);
    if (col >= 24) {
        putchar('\n');
        col = 0;
    }
    printf("%*s", 24 - col, "");
    col = 24;
    const char *p = summary;
    while (*p) {
        size_t w = strcspn(p, " ");
        if (col > 24 && col + 1 + (int)w > 79) {
            printf("\n%24s", "");
            col = 24;
        } else if (col > 24) {
            putchar(' ');
            col++;
        }
        col += printf("%.*s", (int)w, p);
        p += w;
        p += strspn(p, " ");
    }
    putchar('\n');
}

static void usage(void)
{
    char levels[256];
    printf("Usage: %s [-O FORMAT] [OPTION]... INPUT OUTPUT\n"
           "  or:  %s --sparsify [OPTION]... FILE\n"
           "Convert a libvirt save image or QEMU migration stream to another format,\n"
           "or give a sparse image its holes back in place.\n"
           "\n"
           "Formats (-O):\n",
           cli_prog, cli_prog);
    /* the libvirt images on one line, then every other kind */
    char names[256] = "";
    size_t n = 0;
    for (unsigned k = 0; mrimg_output_info(k); k++)
        if (mrimg_output_info(k)->libvirt && n < sizeof(names))
            n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", n ? ", " : "",
                                  mrimg_output_info(k)->name);
    printf("  %s\n", names);
    usage_output("", "libvirt save image with that payload format");
    for (unsigned k = 0; mrimg_output_info(k); k++) {
        const mrimg_output_desc *d = mrimg_output_info(k);
        if (!d->libvirt)
            usage_output(d->name, d->summary);
    }
    printf("\n"
           "Options:\n"
           "  -O, --format=FORMAT   output format (default: raw for libvirt inputs,\n"
           "                        qemu for bare streams)\n"
           "  -l, --level=N         compression level (default: what libvirt's tools use:\n"
           "                        %s)\n"
           "  -T, --threads=N       threads, 1..1024 (default and at most: the online\n"
           "                        CPUs); the output is the same for every N\n"
           "  -f, --force           replace OUTPUT if it exists\n"
           "      --compact         rewrite a multi-pass (live) plain stream as one pass\n"
           "      --xml=FILE        replace the domain XML (the data region grows if needed)\n"
           "      --cookie=FILE     replace the save cookie (a <cookie> XML as libvirt\n"
           "                        writes it; see 'imginfo --cookie')\n"
           "      --running         restore should start the guest's vCPUs\n"
           "      --paused          restore should leave the guest paused\n"
           "      --offset=N        the input is a bare stream starting at byte N\n"
           "      --allow-incomplete  convert a partial save whose stream is complete (the\n"
           "                        one problem of the input's judgement it lets through)\n"
           "      --preallocate     sparse outputs: reserve the space of the pages with\n"
           "                        data before writing (sparse or raw inputs)\n"
           "      --sparsify        in place: punch holes in FILE's pages regions where\n"
           "                        pages are zero or not part of the image\n"
           "  -p, --progress        show progress (default: when stderr is a terminal)\n"
           "  -q, --quiet           no progress, no warnings\n"
           "  -v, --verbose         print a summary when done\n"
           "      --output=FMT      summary format: human or json (implies -v)\n"
           "  -h, --help            show this help and exit\n"
           "  -V, --version         show the version and exit\n"
           "\n"
           "OUTPUT is written to a temporary file beside it and renamed into place only\n"
           "when complete; on any error or interruption OUTPUT is left untouched.\n"           "INPUT '-' is standard input (a pipe is read once: what needs seeking or two\n"
           "passes is refused); OUTPUT '-' is standard output, for -O raw, gzip, bzip2,\n"
           "xz, lzop, zstd and qemu (see PIPES in imgconv(1)).\n"
           "\n"
           "Exit status: 0 success, 1 the input cannot be converted, 2 usage error,\n"
           "3 a file cannot be opened, read or written (input, output, scratch file);\n"
           "128+N when killed by signal N.\n",
           level_list(levels, sizeof(levels), true, ", "));
}

/* The parsed command line, turned into the library's option handle by
 * convert_opts() once every check of the tool has passed. */
typedef struct conv_args {
    const mrimg_output_desc *out;   /* NULL: the default for the input */
    int level;
    unsigned threads;
    int force, compact, running, allow_incomplete, preallocate;
    const char *xml, *cookie;
} conv_args;

static mrimg_convert_opts *convert_opts(const conv_args *a, mrimg_error *err)
{
    mrimg_convert_opts *o = mrimg_convert_opts_create();
    if (!o) {
        memset(err, 0, sizeof(*err));
        err->code = MRIMG_ERR_NOMEM;
        snprintf(err->message, sizeof(err->message), "out of memory");
        return NULL;
    }
    const struct {
        mrimg_param p;
        int64_t v;
    } set[] = {
        {MRIMG_P_OUTPUT, a->out->kind},   {MRIMG_P_LEVEL, a->level},
        {MRIMG_P_THREADS, a->threads},    {MRIMG_P_FORCE, a->force},
        {MRIMG_P_COMPACT, a->compact},    {MRIMG_P_RUNNING, a->running},
        {MRIMG_P_ALLOW_INCOMPLETE, a->allow_incomplete},
        {MRIMG_P_PREALLOCATE, a->preallocate},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (mrimg_convert_opts_set(o, set[i].p, set[i].v, err) < 0) {
            mrimg_convert_opts_free(o);
            return NULL;
        }
    if (mrimg_convert_opts_set_xml(o, a->xml, err) < 0 ||
        mrimg_convert_opts_set_cookie(o, a->cookie, err) < 0) {
        mrimg_convert_opts_free(o);
        return NULL;
    }
    mrimg_convert_opts_set_progress(o, cli_progress, cli_progress_phase, NULL);
    return o;
}

/* --output=json on failure: still one object on stdout, with the error. */
/* The summary's stream: stderr when standard output carries the image. */
static FILE *summary_to = NULL;

static void json_failure(int outmode, const char *key, const char *path, const char *key2,
                         const char *path2, const mrimg_error *err, const char *about, int status)
{
    if (outmode != OUT_JSON)
        return;
    out *w = out_new(summary_to ? summary_to : stdout, OUT_JSON);
    if (!w)
        return;
    out_str(w, key, NULL, path);
    if (key2)
        out_str(w, key2, NULL, path2);
    out_str(w, "status", NULL, "error");
    out_u64(w, "exit-status", NULL, (uint64_t)status);
    cli_out_error(w, "error", err, about);
    out_free(w);
}

static int do_sparsify(const char *path, uint64_t offset, int progress, int quiet, int outmode)
{
    cli_signals();
    cli_progress_setup(progress, "sparsifying");
    mrimg_sparsify_stats st = {.size = sizeof(st)};
    mrimg_error err;
    int rc = mrimg_sparsify(path, offset, cli_progress, NULL, &st, &err);
    cli_progress_done();
    if (rc < 0) {
        json_failure(outmode, "file", path, NULL, NULL, &err, cli_error_file(&err, path, NULL),
                     cli_exit_for(&err));
        return cli_fail(&err, path, NULL);
    }
    if (!quiet) {
        out *w = out_new(stdout, outmode);
        out_str(w, "file", "file", path);
        out_json_only(w, 1);
        out_str(w, "status", NULL, "ok");
        out_u64(w, "exit-status", NULL, EXIT_OK);
        out_null(w, "error", NULL);
        out_json_only(w, 0);
        out_size(w, "allocated-before", "allocated before", st.allocated_before);
        out_size(w, "allocated-after", "allocated after", st.allocated_after);
        out_size(w, "given-back", "given back",
                 st.allocated_before > st.allocated_after
                     ? st.allocated_before - st.allocated_after
                     : 0);
        out_size(w, "punched", "ranges punched", st.bytes_punched);
        out_u64(w, "punch-calls", "punch calls", st.runs_punched);
        out_size(w, "read", "data examined", st.bytes_read);
        out_free(w);
    }
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'O'},
        {"level", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 'T'},
        {"force", no_argument, NULL, 'f'},
        {"compact", no_argument, NULL, OPT_COMPACT},
        {"xml", required_argument, NULL, OPT_XML},
        {"cookie", required_argument, NULL, OPT_COOKIE},
        {"running", no_argument, NULL, OPT_RUNNING},
        {"paused", no_argument, NULL, OPT_PAUSED},
        {"offset", required_argument, NULL, OPT_OFFSET},
        {"allow-incomplete", no_argument, NULL, OPT_ALLOW_INCOMPLETE},
        {"preallocate", no_argument, NULL, OPT_PREALLOCATE},
        {"sparsify", no_argument, NULL, OPT_SPARSIFY},
        {"progress", no_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    conv_args o = {.level = -1, .running = -1};
    int progress = -1, quiet = 0, verbose = 0, outmode = OUT_HUMAN, sparsify = 0;
    int explicit_verbose = 0, explicit_progress = 0, running_set = 0;
    const char *xml_path = NULL, *cookie_path = NULL, *level_arg = NULL, *threads_arg = NULL;
    const char *seen_fmt = NULL, *seen_off = NULL, *seen_out = NULL;
    uint64_t stream_offset = 0;
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "O:l:T:fpqvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'O':
            if (!cli_once(&seen_fmt, "-O/--format", optarg))
                return EXIT_USAGE;
            o.out = mrimg_output_by_name(optarg);
            if (!o.out) {
                cli_error(NULL, "unknown format '%s'", optarg);
                cli_usage_hint();
                return EXIT_USAGE;
            }
            break;
        case 'l':
            if (!cli_once(&level_arg, "-l/--level", optarg))
                return EXIT_USAGE;
            if (!cli_parse_u64(optarg, &v) || v > 99) {
                cli_error(NULL, "invalid level '%s'", optarg);
                cli_usage_hint();
                return EXIT_USAGE;
            }
            o.level = (int)v;
            level_arg = optarg;
            break;
        case 'T':
            if (!cli_once(&threads_arg, "-T/--threads", optarg))
                return EXIT_USAGE;
            if (!cli_parse_u64(optarg, &v) || v == 0 || v > 1024) {
                cli_error(NULL, "invalid thread count '%s' (1..1024)", optarg);
                cli_usage_hint();
                return EXIT_USAGE;
            }
            o.threads = (unsigned)v;
            threads_arg = optarg;
            break;
        case 'f': o.force = 1; break;
        case OPT_COMPACT: o.compact = 1; break;
        case OPT_XML:
            if (!cli_once(&xml_path, "--xml", optarg))
                return EXIT_USAGE;
            break;
        case OPT_COOKIE:
            if (!cli_once(&cookie_path, "--cookie", optarg))
                return EXIT_USAGE;
            break;
        case OPT_RUNNING:
        case OPT_PAUSED:
            if (running_set && o.running != (c == OPT_RUNNING)) {
                cli_error(NULL, "--running and --paused exclude each other");
                cli_usage_hint();
                return EXIT_USAGE;
            }
            o.running = c == OPT_RUNNING;
            running_set = 1;
            break;
        case OPT_OFFSET:
            if (!cli_once(&seen_off, "--offset", optarg))
                return EXIT_USAGE;
            if (!cli_parse_u64(optarg, &stream_offset)) {
                cli_error(NULL, "invalid offset '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_ALLOW_INCOMPLETE: o.allow_incomplete = 1; break;
        case OPT_PREALLOCATE: o.preallocate = 1; break;
        case OPT_SPARSIFY: sparsify = 1; break;
        case 'p': progress = 1; explicit_progress = 1; break;
        case 'q': quiet = 1; progress = 0; break;
        case 'v': verbose = 1; explicit_verbose = 1; break;
        case OPT_OUTPUT:
            if (!cli_once(&seen_out, "--output", optarg))
                return EXIT_USAGE;
            outmode = cli_parse_output(optarg);
            if (outmode < 0) {
                cli_error(NULL, "invalid output format '%s' (human or json)", optarg);
                return EXIT_USAGE;
            }
            verbose = 1;
            break;
        case 'h': usage(); return EXIT_OK;
        case 'V': cli_version(); return EXIT_OK;
        default: cli_usage_hint(); return EXIT_USAGE;
        }
    }
    /* options that do not apply together: refused before any file is
     * touched, never ignored (see imgconv(1), "Options that exclude each
     * other") */
    if (quiet && explicit_progress) {
        cli_error(NULL, "-q/--quiet and -p/--progress exclude each other");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (quiet && explicit_verbose) {
        cli_error(NULL, "-q/--quiet and -v/--verbose exclude each other");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (sparsify) {
        /* in place: nothing is encoded, no output file, no new header */
        const char *bad = o.out              ? "-O/--format"
                          : level_arg        ? "-l/--level"
                          : threads_arg      ? "-T/--threads"
                          : o.force          ? "-f/--force"
                          : o.compact        ? "--compact"
                          : xml_path         ? "--xml"
                          : cookie_path      ? "--cookie"
                          : running_set      ? (o.running ? "--running" : "--paused")
                          : o.allow_incomplete ? "--allow-incomplete"
                          : o.preallocate    ? "--preallocate"
                                             : NULL;
        if (bad) {
            cli_error(NULL, "%s does not apply to --sparsify, which changes FILE in place", bad);
            cli_usage_hint();
            return EXIT_USAGE;
        }
        if (argc - optind != 1) {
            cli_error(NULL, "--sparsify takes exactly one FILE");
            cli_usage_hint();
            return EXIT_USAGE;
        }
        if (cli_is_stdio(argv[optind])) {
            cli_error("-", "--sparsify changes a file in place: not standard input");
            cli_usage_hint();
            return EXIT_USAGE;
        }
        return do_sparsify(argv[optind], stream_offset, progress, quiet && !verbose,
                           outmode);
    }
    if (argc - optind != 2) {
        cli_error(NULL, argc - optind < 2 ? "missing INPUT or OUTPUT" : "too many arguments");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    /* without -O the output is raw (libvirt inputs) or qemu (bare ones):
     * neither is compressed nor mapped, neither takes a level */
    const mrimg_output_desc *known = o.out ? o.out : mrimg_output_info(MRIMG_OUT_RAW);
    if (level_arg) {
        int lmin, lmax;
        if (!o.out || !o.out->libvirt ||
            mrimg_format_levels(o.out->payload_format, &lmin, &lmax, NULL) < 0) {
            char codecs[256];
            cli_error(NULL, "-l/--level applies only to compressed outputs (-O %s)%s%s",
                      level_list(codecs, sizeof(codecs), false, " or "),
                      o.out ? ", not to " : "", o.out ? o.out->name : "");
            cli_usage_hint();
            return EXIT_USAGE;
        }
        if (o.level < lmin || o.level > lmax) {
            cli_error(NULL, "-l/--level %s is out of range for %s (%d..%d)", level_arg,
                      o.out->name, lmin, lmax);
            cli_usage_hint();
            return EXIT_USAGE;
        }
    }
    if (o.out && !o.out->libvirt) {
        const char *bad = xml_path      ? "--xml"
                          : cookie_path ? "--cookie"
                          : running_set ? (o.running ? "--running" : "--paused")
                                        : NULL;
        if (bad) {
            cli_error(NULL, "%s applies only to libvirt outputs: -O %s writes no libvirt "
                            "header", bad, o.out->name);
            cli_usage_hint();
            return EXIT_USAGE;
        }
    }
    if (o.compact && (known->mapped || !known->stream)) {
        cli_error(NULL, "--compact applies only to plain-layout outputs: -O %s is always "
                        "written in one pass", known->name);
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (o.preallocate && !known->mapped) {
        cli_error(NULL, "--preallocate applies only to mapped-ram outputs (-O sparse or "
                        "qemu-mapped)%s%s", o.out ? ", not to " : "", o.out ? o.out->name : "");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    const char *in_path = argv[optind], *out_path = argv[optind + 1];
    bool to_stdout = cli_is_stdio(out_path);
    if (to_stdout) {
        /* standard output is written in order, once: what goes back to
         * what it wrote is refused before anything is read (the library
         * refuses it too: mrimg_convert_fd) */
        if (known->needs_seek) {
            cli_error("-", "-O %s cannot be written to standard output: %s (give an output file)",
                      known->name, known->seek_reason ? known->seek_reason : "it is written by offset");
            cli_usage_hint();
            return EXIT_USAGE;
        }
        if (o.force) {
            cli_error("-", "-f/--force does not apply to standard output (nothing is replaced)");
            cli_usage_hint();
            return EXIT_USAGE;
        }
        if (isatty(1)) {
            cli_error("-", "standard output is a terminal: refusing to write an image to it "
                           "(redirect it, or give an output file)");
            cli_usage_hint();
            return EXIT_USAGE;
        }
        summary_to = stderr; /* stdout carries the image */
    }
    cli_signals();

    char *xml = NULL;
    if (xml_path) {
        /* --xml names a file of the command line: one that cannot be read
         * is 3, one that is not a well-formed XML a bad argument (2) */
        mrimg_error xerr;
        xml = cli_read_text(xml_path, MRIMG_DATA_LEN_MAX, &xerr);
        if (!xml || mrimg_xml_check(xml, &xerr) < 0) {
            int xst = cli_exit_for(&xerr) == EXIT_FILE ? EXIT_FILE : EXIT_USAGE;
            json_failure(outmode, "input", in_path, "output", out_path, &xerr, xml_path, xst);
            cli_fail(&xerr, xml_path, NULL);
            free(xml);
            return xst;
        }
        o.xml = xml;
    }
    char *cookie = NULL;
    if (cookie_path) {
        /* as --xml: cannot be read is 3, not a well-formed cookie 2 */
        mrimg_error cerr;
        cookie = cli_read_text(cookie_path, MRIMG_DATA_LEN_MAX, &cerr);
        if (!cookie || mrimg_cookie_check(cookie, &cerr) < 0) {
            int cst = cli_exit_for(&cerr) == EXIT_FILE ? EXIT_FILE : EXIT_USAGE;
            json_failure(outmode, "input", in_path, "output", out_path, &cerr, cookie_path, cst);
            cli_fail(&cerr, cookie_path, NULL);
            free(cookie);
            free(xml);
            return cst;
        }
        o.cookie = cookie;
    }
    mrimg_error err;
    mrimg_image *img = cli_open(in_path, stream_offset, o.threads, &err);
    if (!img) {
        json_failure(outmode, "input", in_path, "output", out_path, &err,
                     cli_error_file(&err, in_path, out_path), cli_exit_for(&err));
        free(xml);
        free(cookie);
        return cli_fail(&err, in_path, out_path);
    }
    const mrimg_container_info *ci = mrimg_container(img);
    if (ci->is_libvirt && stream_offset) {
        /* the library ignores it for libvirt images; we do not */
        cli_error(NULL, "--offset applies only to bare QEMU streams: %s is a libvirt save image",
                  in_path);
        cli_usage_hint();
        mrimg_close(img);
        free(xml);
        free(cookie);
        return EXIT_USAGE;
    }
    if (!o.out) {
        o.out = mrimg_output_info(ci->is_libvirt ? MRIMG_OUT_RAW : MRIMG_OUT_QEMU);
        /* the default for a bare input is a bare output: the header options
         * need an explicit libvirt -O (known only now that INPUT is open) */
        const char *bad = ci->is_libvirt ? NULL
                          : xml_path     ? "--xml"
                          : cookie_path  ? "--cookie"
                          : running_set  ? (o.running ? "--running" : "--paused")
                                         : NULL;
        if (bad) {
            cli_error(NULL, "%s applies only to libvirt outputs: INPUT is a bare QEMU stream, "
                            "whose default output is a bare stream too (give -O raw, or "
                            "another libvirt format)", bad);
            cli_usage_hint();
            mrimg_close(img);
            free(xml);
            free(cookie);
            return EXIT_USAGE;
        }
    }

    cli_progress_setup(progress, "converting");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mrimg_convert_stats st = {.size = sizeof(st)};
    mrimg_convert_opts *co = convert_opts(&o, &err);
    int rc = !co         ? err.code
             : to_stdout ? mrimg_convert_fd(img, 1, "standard output", co, &st, &err)
                         : mrimg_convert(img, out_path, co, &st, &err);
    mrimg_convert_opts_free(co);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cli_progress_done();
    int status = EXIT_OK;
    if (rc == 0 || err.code == MRIMG_ERR_FORMAT || err.code == MRIMG_ERR_TRUNCATED ||
        err.code == MRIMG_ERR_CHECKSUM) {
        /* the judgement mrimg_convert ran (cached in the handle): its
         * warnings, and the incomplete save --allow-incomplete let through */
        const mrimg_verify_result *jr;
        mrimg_error jerr;
        if (mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &jerr) == 0)
            cli_print_problems(in_path, jr, false, true, o.allow_incomplete);
    }
    if (rc < 0) {
        /* the error value says which file the problem is about */
        json_failure(outmode, "input", in_path, "output", out_path, &err,
                     cli_error_file(&err, in_path, out_path), cli_exit_for(&err));
        status = cli_fail(&err, in_path, out_path);
    } else if (verbose) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        out *w = out_new(summary_to ? summary_to : stdout, outmode);
        out_str(w, "input", "input", in_path);
        out_str(w, "output", "output", out_path);
        out_json_only(w, 1);
        out_str(w, "status", NULL, "ok");
        out_u64(w, "exit-status", NULL, EXIT_OK);
        out_null(w, "error", NULL);
        out_json_only(w, 0);
        out_str(w, "format", "format", o.out->name);
        out_bool(w, "reencoded", "RAM section re-encoded", st.reencoded);
        out_size(w, "input-bytes", "payload read", st.in_bytes);
        out_size(w, "stream-bytes", "stream processed", st.stream_bytes);
        out_size(w, "output-size", "output size", st.out_bytes);
        out_size(w, "output-allocated", "output allocated", st.out_allocated);
        if (o.preallocate)
            out_size(w, "preallocated", "preallocated", st.preallocated);
        if (st.reencoded) {
            out_u64(w, "pages-data", "pages with data", st.pages_data);
            out_u64(w, "pages-zero", "zero pages", st.pages_zero);
        }
        out_double(w, "seconds", "seconds", secs, 3);
        out_free(w);
    }
    (void)quiet;
    mrimg_close(img);
    free(xml);
    free(cookie);
    return status;
}
