/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* imgverify: prove that a libvirt save image or QEMU migration stream is
 * complete and sound, compare the guest state of two images, or print a
 * format-independent digest of it.  Options, library calls, a report. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "judge.h"
#include "mrimg.h"
#include "out.h"

enum {
    OPT_OUTPUT = 256,
    OPT_OFFSET,
    OPT_COMPARE,
    OPT_DIGEST,
    OPT_LIST,
    OPT_MAX,
    OPT_NO_DATA,
    OPT_IGNORE_XML,
    OPT_SECURITY_INFO,
};

typedef struct opts {
    int outmode;
    int progress;
    int quiet, verbose, strict, ignore_xml, no_data, security_info;
    unsigned max_problems;
    uint64_t stream_offset;         /* --offset */
} opts;

static void usage(void)
{
    printf("Usage: %s [OPTION]... FILE...\n"
           "   or: %s --compare [OPTION]... A B\n"
           "   or: %s --digest [OPTION]... FILE...\n"
           "Verify that libvirt save images or QEMU migration streams are complete and sound\n"
           "(every check runs and every problem is reported), compare the guest state held\n"
           "by two images whatever their formats, or print a format-independent digest of it.\n"
           "\n"
           "Modes:\n"
           "      --compare         compare the guest state of A and B: RAM per block, the\n"
           "                        device state, the domain XML and cookie\n"
           "      --digest          print the digest of each FILE's guest state (SHA-256 of\n"
           "                        RAM per block and the device state; see imgverify(1))\n"
           "      --list-checks     list every check name with what it verifies\n"
           "\n"
           "Options:\n"
           "      --offset=N        a bare QEMU stream starts at byte N of the file\n"
           "      --max-problems=N  keep at most N problems per file (default 1000; the\n"
           "                        rest are counted)\n"
           "      --no-data         mapped-ram: do not read the page data (structure only)\n"
           "  -W, --strict          warnings count as problems for the exit status\n"
           "      --ignore-xml      --compare: differences in XML or cookie do not count\n"
           "      --security-info   --compare: show secrets (graphics passwords, disk\n"
           "                        cookies) in the XML diff; hidden by default\n"
           "      --output=FMT      human (default) or json\n"
           "  -p, --progress        show progress (default: when stderr is a terminal)\n"
           "  -q, --quiet           print only problems and differences; no progress\n"
           "  -v, --verbose         also print what was verified, per-block digests\n"
           "  -h, --help            show this help and exit\n"
           "  -V, --version         show the version and exit\n"
           "\n"
           "FILE '-' is standard input (a pipe is read once: what needs seeking or two\n"
           "passes is refused; see PIPES in imgverify(1)).\n"
           "\n"
           "Exit status: 0 sound (or identical, or digests printed), 1 problems found\n"
           "(or different), 2 usage error, 3 a file cannot be opened or read (or out of\n"
           "memory); 128+N when killed by signal N.\n",
           cli_prog, cli_prog, cli_prog);
}

static const char *sev_name(mrimg_severity s) { return s == MRIMG_SEV_ERROR ? "error" : "warning"; }

static const char *okind_name(mrimg_offset_kind k)
{
    return k == MRIMG_OFF_FILE ? "file" : k == MRIMG_OFF_STREAM ? "stream" : "none";
}

static void list_checks(const opts *o)
{
    unsigned n;
    const mrimg_check_desc *c = mrimg_verify_checks(&n);
    out *w = out_new(stdout, o->outmode);
    if (out_is_json(w)) {
        out_list(w, "checks", NULL);
        for (unsigned i = 0; i < n; i++) {
            out_obj(w, NULL, NULL);
            out_str(w, "name", NULL, c[i].name);
            out_str(w, "what", NULL, c[i].what);
            out_end(w);
        }
        out_end(w);
    } else {
        for (unsigned i = 0; i < n; i++)
            printf("%-22s %s\n", c[i].name, c[i].what);
    }
    out_free(w);
}

/* ---- verify --------------------------------------------------------------- */

static void print_problem_human(const mrimg_problem *p)
{
    if (p->offset_kind == MRIMG_OFF_NONE)
        printf("  %-7s %-20s %s\n", sev_name(p->severity), p->check, out_safe(p->message));
    else
        printf("  %-7s %-20s %s offset 0x%" PRIx64 ": %s\n", sev_name(p->severity), p->check,
               okind_name(p->offset_kind), p->offset, out_safe(p->message));
}

static const char *fmt_name(int f) { return f < 0 ? NULL : mrimg_format_name(f); }

static void summary_obj(out *w, const mrimg_verify_result *r)
{
    /* what was verified; the same keys in both output forms */
    out_obj(w, "summary", "verified");
    out_str(w, "container", "container", r->is_libvirt ? "libvirt" : "bare QEMU stream");
    if (r->is_libvirt) {
        out_str(w, "format", "header format", fmt_name(r->format));
        out_bool(w, "complete", "complete (final magic)", r->complete);
    }
    out_str(w, "payload-format", "payload", fmt_name(r->payload_format));
    out_bool(w, "mapped-ram", "mapped-ram", r->mapped_ram);
    out_size(w, "file-size", "file size", r->file_size);
    out_off(w, "payload-offset", "payload offset", r->payload_offset);
    bool compressed = r->payload_format > MRIMG_FORMAT_RAW &&
                      r->payload_format < MRIMG_FORMAT_SPARSE;
    if (compressed || out_is_json(w)) {
        out_size(w, "payload-read", "compressed payload read", r->payload_bytes);
        out_u64(w, "codec-members", "codec members", r->codec_members);
        out_u64(w, "codec-checksums", "codec checksums verified", r->codec_checks);
    }
    out_size(w, "stream-bytes", "stream length", r->stream_bytes);
    out_u64(w, "ram-blocks", "RAM blocks", r->nblocks);
    out_size(w, "ram-bytes", "RAM", r->ram_bytes);
    out_size(w, "data-read", "mapped-ram data read", r->data_read);
    out_bool(w, "stream-parsed", "whole stream parsed", r->stream_parsed);
    out_bool(w, "vmdesc-checked", "VMDESCRIPTION validated", r->vmdesc_checked);
    out_bool(w, "devices-checked", "device state walked to EOF", r->devices_checked);
    out_u64(w, "device-sections", "device sections explained", r->device_sections);
    out_end(w);
}

/* w: the JSON document, or NULL for human output */
static int verify_one(const char *path, const opts *o, out *w)
{
    mrimg_verify_result *r = NULL;
    mrimg_error err;
    mrimg_verify_opts *vo = mrimg_verify_opts_create();
    int rc = vo ? 0 : MRIMG_ERR_NOMEM;
    if (!vo) {
        memset(&err, 0, sizeof(err));
        err.code = MRIMG_ERR_NOMEM;
        snprintf(err.message, sizeof(err.message), "out of memory");
    }
    if (rc == 0)
        rc = mrimg_verify_opts_set(vo, MRIMG_P_STREAM_OFFSET, (int64_t)o->stream_offset, &err);
    if (rc == 0)
        rc = mrimg_verify_opts_set(vo, MRIMG_P_MAX_PROBLEMS, o->max_problems, &err);
    if (rc == 0)
        rc = mrimg_verify_opts_set(vo, MRIMG_P_SKIP_DATA, o->no_data, &err);
    mrimg_verify_opts_set_progress(vo, cli_progress, NULL);
    cli_progress_setup(o->quiet ? 0 : o->progress, "verifying");
    if (rc == 0)
        rc = mrimg_verify(cli_input_path(path), vo, &r, &err);
    mrimg_verify_opts_free(vo);
    cli_progress_done();
    int status;
    if (rc < 0)
        status = cli_exit_for(&err);
    else if (r->errors || (o->strict && r->warnings))
        status = EXIT_PROBLEM;
    else
        status = EXIT_OK;
    if (w) {
        out_obj(w, NULL, NULL);
        out_str(w, "file", NULL, path);
        out_bool(w, "sound", NULL, rc == 0 && status == EXIT_OK);
        out_u64(w, "exit-status", NULL, (uint64_t)status);
        if (rc < 0) {
            cli_out_error(w, "error", &err, cli_error_file(&err, path, NULL));
            cli_fail(&err, path, NULL); /* on stderr too, as in human mode */
        } else {
            out_null(w, "error", NULL);
        }
        if (r) {
            out_u64(w, "errors", NULL, r->errors);
            out_u64(w, "warnings", NULL, r->warnings);
            out_u64(w, "not-shown", NULL, r->dropped);
            out_list(w, "problems", NULL);
            for (unsigned i = 0; i < r->nproblems; i++) {
                const mrimg_problem *p = &r->problems[i];
                out_obj(w, NULL, NULL);
                out_str(w, "check", NULL, p->check);
                out_str(w, "severity", NULL, sev_name(p->severity));
                out_str(w, "offset-kind", NULL, okind_name(p->offset_kind));
                if (p->offset_kind == MRIMG_OFF_NONE)
                    out_null(w, "offset", NULL);
                else
                    out_u64(w, "offset", NULL, p->offset);
                out_str(w, "message", NULL, p->message);
                out_end(w);
            }
            out_end(w);
            summary_obj(w, r);
        }
        out_end(w);
    } else {
        if (rc < 0)
            cli_fail(&err, path, NULL);
        if (r) {
            bool quiet_ok = o->quiet && r->nproblems == 0 && rc == 0;
            if (!quiet_ok) {
                const char *sp = out_safe(path);
                if (rc < 0) {
                    /* why, as on stderr; then what was found before */
                    printf("%s: verification stopped: %s", sp,
                           out_safe(err.message[0] ? err.message : mrimg_code_name(err.code)));
                    if (r->errors || r->warnings)
                        printf("; found before:");
                } else if (r->errors) {
                    printf("%s: NOT SOUND:", sp);
                } else {
                    printf("%s: sound%s", sp, r->warnings ? ", with" : "");
                }
                if (r->errors)
                    printf(" %" PRIu64 " error%s", r->errors, r->errors == 1 ? "" : "s");
                if (r->errors && r->warnings)
                    printf(",");
                if (r->warnings)
                    printf(" %" PRIu64 " warning%s", r->warnings, r->warnings == 1 ? "" : "s");
                printf("\n");
                for (unsigned i = 0; i < r->nproblems; i++)
                    print_problem_human(&r->problems[i]);
                if (r->dropped)
                    printf("  ... and %" PRIu64 " more problems not shown\n", r->dropped);
            }
            if (o->verbose) {
                out *h = out_new(stdout, OUT_HUMAN);
                out_obj(h, NULL, NULL);
                summary_obj(h, r);
                out_end(h);
                out_free(h);
            }
        }
    }
    mrimg_verify_free(r);
    return status;
}

/* ---- digest ---------------------------------------------------------------- */

/* A file that could not be opened or digested: its JSON object with the
 * error, and the message on stderr.  Returns the exit status. */
static int file_failure(out *w, const char *path, const mrimg_error *err)
{
    int status = cli_exit_for(err);
    if (w) {
        out_obj(w, NULL, NULL);
        out_str(w, "file", NULL, path);
        out_u64(w, "exit-status", NULL, (uint64_t)status);
        cli_out_error(w, "error", err, cli_error_file(err, path, NULL));
        out_end(w);
    }
    cli_fail(err, path, NULL);
    return status;
}

/* An image the judgement refused (cli_judge printed why): its JSON object
 * all the same.  Returns the exit status. */
static int judged_failure(out *w, const char *path, int j, mrimg_code jcode)
{
    mrimg_error je;
    mrimg_error_clear(&je);
    je.code = j > 0 ? MRIMG_ERR_FORMAT : jcode;
    snprintf(je.message, sizeof(je.message), "%s",
             j > 0 ? "the image has errors (imgverify FILE lists them)" : mrimg_code_name(jcode));
    int status = j > 0 ? EXIT_PROBLEM : cli_exit_for(&je);
    if (w) {
        out_obj(w, NULL, NULL);
        out_str(w, "file", NULL, path);
        out_u64(w, "exit-status", NULL, (uint64_t)status);
        cli_out_error(w, "error", &je, path);
        out_end(w);
    }
    return status;
}

static void hex(const uint8_t *d, char *buf) { mrimg_digest_hex(d, buf); }

/* A digest line, as sha256sum writes one: a file name holding a newline,
 * a carriage return or a backslash is written with those escaped (\n, \r,
 * \\) and the line starts with a backslash. */
static void digest_line(const char *hx, const char *path)
{
    if (strpbrk(path, "\n\r\\")) {
        printf("\\%s  ", hx);
        for (const char *p = path; *p; p++) {
            if (*p == '\n')
                fputs("\\n", stdout);
            else if (*p == '\r')
                fputs("\\r", stdout);
            else if (*p == '\\')
                fputs("\\\\", stdout);
            else
                putchar(*p);
        }
        putchar('\n');
    } else {
        printf("%s  %s\n", hx, path);
    }
}

static int digest_one(const char *path, const opts *o, out *w)
{
    mrimg_error err;
    mrimg_image *img = cli_open(path, o->stream_offset, 0, &err);
    if (!img)
        return file_failure(w, path, &err);
    /* one pass: the library's judgement rides on the digest's walk; then
     * the same judgement as every tool: no digest of an image with errors
     * (whatever the walk made of it) */
    cli_progress_setup(o->quiet ? 0 : o->progress, "digest");
    mrimg_digest *d = NULL;
    int rc = mrimg_digest_compute(img, &d, cli_progress, NULL, &err);
    cli_progress_done();
    if (rc < 0 && cli_exit_for(&err) == EXIT_FILE) {
        /* the input could not be read (as the digest needs): nothing to judge */
        mrimg_close(img);
        return file_failure(w, path, &err);
    }
    mrimg_code jcode = MRIMG_OK;
    int j = cli_judge(path, img, false, &jcode);
    if (j != 0) {
        mrimg_digest_free(d);
        mrimg_close(img);
        return judged_failure(w, path, j, jcode);
    }
    if (rc < 0) {
        mrimg_close(img);
        return file_failure(w, path, &err);
    }
    char hx[2 * MRIMG_DIGEST_LEN + 1];
    if (w) {
        out_obj(w, NULL, NULL);
        out_str(w, "file", NULL, path);
        out_u64(w, "exit-status", NULL, EXIT_OK);
        out_null(w, "error", NULL);
        hex(d->digest, hx);
        out_str(w, "digest", NULL, hx);
        out_str(w, "algorithm", NULL, "mrimg-digest-v1 (SHA-256)");
        out_obj(w, "device-state", NULL);
        out_u64(w, "offset", NULL, d->device_offset);
        out_u64(w, "bytes", NULL, d->device_bytes);
        hex(d->device_digest, hx);
        out_str(w, "digest", NULL, hx);
        out_end(w);
        out_list(w, "blocks", NULL);
        for (unsigned i = 0; i < d->nblocks; i++) {
            const mrimg_block_digest *b = &d->blocks[i];
            out_obj(w, NULL, NULL);
            out_str(w, "name", NULL, b->name);
            out_u64(w, "used-length", NULL, b->used_length);
            out_u64(w, "page-size", NULL, b->page_size);
            out_u64(w, "pages-nonzero", NULL, b->pages_nonzero);
            hex(b->digest, hx);
            out_str(w, "digest", NULL, hx);
            out_end(w);
        }
        out_end(w);
        out_end(w);
    } else {
        hex(d->digest, hx);
        digest_line(hx, path);
        if (o->verbose) {
            for (unsigned i = 0; i < d->nblocks; i++) {
                const mrimg_block_digest *b = &d->blocks[i];
                hex(b->digest, hx);
                printf("  %s  block %s (%" PRIu64 " bytes, %" PRIu64 " non-zero pages)\n", hx,
                       out_safe(b->name), b->used_length, b->pages_nonzero);
            }
            hex(d->device_digest, hx);
            printf("  %s  device state (%" PRIu64 " bytes at stream offset 0x%" PRIx64 ")\n", hx,
                   d->device_bytes, d->device_offset);
        }
    }
    mrimg_digest_free(d);
    mrimg_close(img);
    return EXIT_OK;
}

/* ---- compare ----------------------------------------------------------------- */

/* --compare could not run: the JSON document naming the file the error is
 * about, and the message on stderr.  Returns the exit status. */
static int compare_failure(const char *pa, const char *pb, const opts *o,
                           const mrimg_error *err, const char *about)
{
    int status = cli_exit_for(err);
    if (o->outmode == OUT_JSON) {
        out *w = out_new(stdout, OUT_JSON);
        if (w) {
            out_str(w, "a", NULL, pa);
            out_str(w, "b", NULL, pb);
            out_null(w, "identical", NULL);
            out_u64(w, "exit-status", NULL, (uint64_t)status);
            cli_out_error(w, "error", err, cli_error_file(err, about, NULL));
            out_free(w);
        }
    }
    cli_fail(err, about, NULL);
    return status;
}

static int compare(const char *pa, const char *pb, const opts *o)
{
    mrimg_error err;
    mrimg_image *a = cli_open(pa, o->stream_offset, 0, &err);
    if (!a)
        return compare_failure(pa, pb, o, &err, pa);
    mrimg_image *b = cli_open(pb, o->stream_offset, 0, &err);
    if (!b) {
        mrimg_close(a);
        return compare_failure(pa, pb, o, &err, pb);
    }
    /* one pass over each: the library's judgement rides on the comparison's
     * walks; then the same judgement as every tool: images with errors are
     * not compared (whatever the walks made of them) */
    cli_progress_setup(o->quiet ? 0 : o->progress, "comparing");
    mrimg_compare_result *r = NULL;
    int rc = mrimg_compare(a, b, &r, cli_progress, NULL, &err);
    cli_progress_done();
    if (rc < 0 && cli_exit_for(&err) == EXIT_FILE) {
        /* an input could not be read (as the comparison needs): nothing to judge */
        mrimg_close(a);
        mrimg_close(b);
        return compare_failure(pa, pb, o, &err,
                               !strncmp(err.message, "second image: ", 14) ? pb : pa);
    }
    mrimg_code ca = MRIMG_OK, cb = MRIMG_OK;
    int ja = cli_judge(pa, a, false, &ca);
    int jb = cli_judge(pb, b, false, &cb);
    if (ja != 0 || jb != 0) {
        mrimg_compare_free(r);
        mrimg_error je;
        mrimg_error_clear(&je);
        int first_a = ja != 0;
        int j = first_a ? ja : jb;
        mrimg_code jc = first_a ? ca : cb;
        je.code = j > 0 ? MRIMG_ERR_FORMAT : jc;
        snprintf(je.message, sizeof(je.message), "%s",
                 j > 0 ? "the image has errors (imgverify FILE lists them)" : mrimg_code_name(jc));
        int st = EXIT_PROBLEM;
        for (int k = 0; k < 2; k++) {
            mrimg_error e;
            mrimg_error_clear(&e);
            e.code = k ? cb : ca;
            if ((k ? jb : ja) < 0 && cli_exit_for(&e) > st)
                st = cli_exit_for(&e);
        }
        if (o->outmode == OUT_JSON) {
            out *w = out_new(stdout, OUT_JSON);
            if (w) {
                out_str(w, "a", NULL, pa);
                out_str(w, "b", NULL, pb);
                out_null(w, "identical", NULL);
                out_u64(w, "exit-status", NULL, (uint64_t)st);
                cli_out_error(w, "error", &je, first_a ? pa : pb);
                out_free(w);
            }
        }
        mrimg_close(a);
        mrimg_close(b);
        return st;
    }
    if (rc < 0) {
        mrimg_close(a);
        mrimg_close(b);
        /* the library names the image: "first image: ..." / "second image: ..." */
        return compare_failure(pa, pb, o, &err,
                               !strncmp(err.message, "second image: ", 14) ? pb : pa);
    }
    bool xml_same = r->xml_identical && r->cookie_identical;
    bool same = r->identical && (o->ignore_xml || xml_same);
    char hx[2 * MRIMG_DIGEST_LEN + 1];
    out *w = out_new(stdout, o->outmode);
    if (out_is_json(w)) {
        out_str(w, "a", NULL, pa);
        out_str(w, "b", NULL, pb);
        out_bool(w, "identical", NULL, same);
        out_u64(w, "exit-status", NULL, same ? EXIT_OK : EXIT_PROBLEM);
        out_null(w, "error", NULL);
        out_bool(w, "same-guest-state", NULL, r->identical);
        out_bool(w, "ram-identical", NULL, r->ram_identical);
        out_bool(w, "blocks-same-order", NULL, r->blocks_same_order);
        out_u64(w, "granule-pages", NULL, r->granule);
        out_list(w, "blocks", NULL);
        for (unsigned i = 0; i < r->nblocks; i++) {
            const mrimg_compare_block *c = &r->blocks[i];
            out_obj(w, NULL, NULL);
            out_str(w, "name", NULL, c->name);
            out_i64(w, "index-a", NULL, c->index_a);
            out_i64(w, "index-b", NULL, c->index_b);
            out_u64(w, "length-a", NULL, c->length_a);
            out_u64(w, "length-b", NULL, c->length_b);
            out_bool(w, "identical", NULL, c->identical);
            out_u64(w, "pages-compared", NULL, c->pages_compared);
            out_u64(w, "pages-differ", NULL, c->pages_differ);
            if (c->first_diff_page == UINT64_MAX)
                out_null(w, "first-diff-page", NULL);
            else
                out_u64(w, "first-diff-page", NULL, c->first_diff_page);
            if (c->index_a >= 0) {
                hex(c->digest_a, hx);
                out_str(w, "digest-a", NULL, hx);
            }
            if (c->index_b >= 0) {
                hex(c->digest_b, hx);
                out_str(w, "digest-b", NULL, hx);
            }
            out_end(w);
        }
        out_end(w);
        out_obj(w, "device-state", NULL);
        out_bool(w, "identical", NULL, r->device_identical);
        out_u64(w, "bytes-a", NULL, r->device_bytes_a);
        out_u64(w, "bytes-b", NULL, r->device_bytes_b);
        out_bool(w, "byte-detail", NULL, r->device_detail);
        if (r->device_first_diff == UINT64_MAX)
            out_null(w, "first-diff", NULL);
        else
            out_u64(w, "first-diff", NULL, r->device_first_diff);
        out_u64(w, "bytes-differ", NULL, r->device_bytes_differ);
        out_list(w, "ranges", NULL);
        for (unsigned i = 0; i < r->ndevice_ranges; i++) {
            out_obj(w, NULL, NULL);
            out_u64(w, "offset", NULL, r->device_ranges[i].offset);
            out_u64(w, "length", NULL, r->device_ranges[i].length);
            out_end(w);
        }
        out_end(w);
        out_end(w);
        out_bool(w, "xml-identical", NULL, r->xml_identical);
        out_bool(w, "security-info", NULL, o->security_info);
        out_bool(w, "xml-secrets-differ", NULL, r->xml_secrets_differ);
        out_str(w, "xml-diff", NULL, o->security_info ? r->xml_diff_secure : r->xml_diff);
        out_bool(w, "cookie-identical", NULL, r->cookie_identical);
        out_str(w, "cookie-diff", NULL, r->cookie_diff);
        hex(r->digest_a->digest, hx);
        out_str(w, "digest-a", NULL, hx);
        hex(r->digest_b->digest, hx);
        out_str(w, "digest-b", NULL, hx);
    } else if (o->quiet && r->identical && xml_same) {
        /* -q: only differences are printed, and there are none */
    } else {
        const char *meta = !r->xml_identical && !r->cookie_identical ? "XML and cookie differ"
                           : !r->xml_identical                       ? "XML differs"
                                                                     : "cookie differs";
        printf("%s\n%s\n  ", out_safe(pa), out_safe(pb));
        if (same)
            printf("hold the same guest state%s%s%s\n", xml_same ? "" : " (their ",
                   xml_same ? "" : meta, xml_same ? "" : ", ignored)");
        else if (r->identical)
            printf("hold the same guest state, but their %s\n", meta);
        else
            printf("DIFFER\n");
        unsigned ndiff = 0;
        for (unsigned i = 0; i < r->nblocks; i++)
            ndiff += !r->blocks[i].identical;
        if (r->ram_identical && !o->quiet)
            printf("  RAM: identical (%u blocks%s)\n", r->nblocks,
                   r->blocks_same_order ? "" : ", listed in a different order");
        else if (!r->ram_identical)
            printf("  RAM: %u of %u blocks differ\n", ndiff, r->nblocks);
        for (unsigned i = 0; i < r->nblocks; i++) {
            const mrimg_compare_block *c = &r->blocks[i];
            if (c->identical && !o->verbose)
                continue;
            if (c->index_a < 0 || c->index_b < 0) {
                printf("    block %s: only in %s\n", out_safe(c->name),
                       out_safe(c->index_a < 0 ? pb : pa));
                continue;
            }
            if (c->identical) {
                hex(c->digest_a, hx);
                printf("    block %s: identical (%s)\n", out_safe(c->name), hx);
                continue;
            }
            printf("    block %s:", out_safe(c->name));
            if (c->length_a != c->length_b)
                printf(" length %" PRIu64 " vs %" PRIu64 ";", c->length_a, c->length_b);
            if (c->pages_differ)
                printf(" %" PRIu64 " of %" PRIu64 " pages differ%s, the first is page %" PRIu64
                       " (offset 0x%" PRIx64 ")",
                       c->pages_differ, c->pages_compared, r->granule > 1 ? " (at most)" : "",
                       c->first_diff_page, c->first_diff_page * c->page_size);
            printf("\n");
        }
        if (r->device_identical) {
            if (!o->quiet)
                printf("  device state: identical (%" PRIu64 " bytes)\n", r->device_bytes_a);
        } else {
            printf("  device state: differs (%" PRIu64 " vs %" PRIu64 " bytes", r->device_bytes_a,
                   r->device_bytes_b);
            if (r->device_detail)
                printf("; %" PRIu64 " bytes differ, the first at offset %" PRIu64 ")\n",
                       r->device_bytes_differ, r->device_first_diff);
            else
                printf("; too large to compare byte by byte)\n");
            for (unsigned i = 0; i < r->ndevice_ranges; i++)
                printf("    bytes %" PRIu64 "..%" PRIu64 "\n", r->device_ranges[i].offset,
                       r->device_ranges[i].offset + r->device_ranges[i].length - 1);
        }
        if (r->xml_identical) {
            if (!o->quiet)
                printf("  XML: identical\n");
        } else {
            printf("  XML: differs%s\n", o->ignore_xml ? " (ignored)" : "");
            const char *d = o->security_info ? r->xml_diff_secure : r->xml_diff;
            if (d)
                out_fputs_safe(stdout, d, 1);
            else if (r->xml_secrets_differ)
                printf("    only in secrets (graphics passwords, disk cookies): "
                       "--security-info shows them\n");
        }
        if (r->cookie_identical) {
            if (!o->quiet)
                printf("  cookie: identical\n");
        } else {
            printf("  cookie: differs%s\n", o->ignore_xml ? " (ignored)" : "");
            if (r->cookie_diff)
                out_fputs_safe(stdout, r->cookie_diff, 1);
        }
        if (o->verbose) {
            hex(r->digest_a->digest, hx);
            printf("  digest %s  %s\n", hx, out_safe(pa));
            hex(r->digest_b->digest, hx);
            printf("  digest %s  %s\n", hx, out_safe(pb));
        }
    }
    out_free(w);
    mrimg_compare_free(r);
    mrimg_close(a);
    mrimg_close(b);
    return same ? EXIT_OK : EXIT_PROBLEM;
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    static const struct option longopts[] = {
        {"compare", no_argument, NULL, OPT_COMPARE},
        {"digest", no_argument, NULL, OPT_DIGEST},
        {"list-checks", no_argument, NULL, OPT_LIST},
        {"offset", required_argument, NULL, OPT_OFFSET},
        {"max-problems", required_argument, NULL, OPT_MAX},
        {"no-data", no_argument, NULL, OPT_NO_DATA},
        {"strict", no_argument, NULL, 'W'},
        {"ignore-xml", no_argument, NULL, OPT_IGNORE_XML},
        {"security-info", no_argument, NULL, OPT_SECURITY_INFO},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"progress", no_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opts o;
    memset(&o, 0, sizeof(o));
    o.progress = -1;
    int mode = 0; /* 0 verify, OPT_COMPARE, OPT_DIGEST, OPT_LIST */
    int explicit_progress = 0, offset_set = 0, max_set = 0;
    const char *seen_off = NULL, *seen_max = NULL, *seen_out = NULL;
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "WpqvhV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_COMPARE:
        case OPT_DIGEST:
        case OPT_LIST:
            if (mode && mode != c) {
                cli_error(NULL, "--compare, --digest and --list-checks exclude each other");
                cli_usage_hint();
                return EXIT_USAGE;
            }
            mode = c;
            break;
        case OPT_OFFSET:
            if (!cli_once(&seen_off, "--offset", optarg))
                return EXIT_USAGE;
            if (!cli_parse_u64(optarg, &o.stream_offset)) {
                cli_error(NULL, "invalid offset '%s'", optarg);
                return EXIT_USAGE;
            }
            offset_set = 1;
            break;
        case OPT_MAX:
            if (!cli_once(&seen_max, "--max-problems", optarg))
                return EXIT_USAGE;
            if (!cli_parse_u64(optarg, &v) || v == 0 || v > 1000000) {
                cli_error(NULL, "invalid problem count '%s' (1..1000000)", optarg);
                return EXIT_USAGE;
            }
            o.max_problems = (unsigned)v;
            max_set = 1;
            break;
        case OPT_NO_DATA: o.no_data = 1; break;
        case 'W': o.strict = 1; break;
        case OPT_IGNORE_XML: o.ignore_xml = 1; break;
        case OPT_SECURITY_INFO: o.security_info = 1; break;
        case OPT_OUTPUT:
            if (!cli_once(&seen_out, "--output", optarg))
                return EXIT_USAGE;
            o.outmode = cli_parse_output(optarg);
            if (o.outmode < 0) {
                cli_error(NULL, "invalid output format '%s' (human or json)", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'p': o.progress = 1; explicit_progress = 1; break;
        case 'q': o.quiet = 1; o.progress = 0; break;
        case 'v': o.verbose = 1; break;
        case 'h': usage(); return EXIT_OK;
        case 'V': cli_version(); return EXIT_OK;
        default: cli_usage_hint(); return EXIT_USAGE;
        }
    }
    /* options that do not apply together: refused, never ignored (see
     * imgverify(1), "Options that exclude each other") */
    const char *bad = NULL, *what = NULL;
    if (o.quiet && (explicit_progress || o.verbose)) {
        cli_error(NULL, "-q/--quiet and %s exclude each other",
                  explicit_progress ? "-p/--progress" : "-v/--verbose");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (mode == OPT_LIST) {
        /* the list is fixed: only its output form can be chosen */
        bad = offset_set ? "--offset" : max_set ? "--max-problems" : o.no_data ? "--no-data"
              : o.strict ? "-W/--strict" : o.ignore_xml ? "--ignore-xml"
              : explicit_progress ? "-p/--progress" : o.quiet ? "-q/--quiet"
              : o.verbose ? "-v/--verbose" : NULL;
        what = "--list-checks";
    } else if (mode != 0) {
        /* --compare and --digest: no problem list, no warnings */
        bad = max_set ? "--max-problems" : o.no_data ? "--no-data" : o.strict ? "-W/--strict"
                                                                               : NULL;
        what = mode == OPT_COMPARE ? "--compare" : "--digest";
    }
    if (!bad && o.ignore_xml && mode != OPT_COMPARE) {
        bad = "--ignore-xml";
        what = mode == OPT_DIGEST ? "--digest" : "verification (it applies to --compare only)";
    }
    if (!bad && o.security_info && mode != OPT_COMPARE) {
        bad = "--security-info";
        what = mode == OPT_DIGEST  ? "--digest"
               : mode == OPT_LIST ? "--list-checks"
                                  : "verification (it applies to --compare only)";
    }
    if (!bad && o.verbose && o.outmode == OUT_JSON) {
        bad = "-v/--verbose";
        what = "--output=json (the JSON document always holds everything)";
    }
    if (bad) {
        cli_error(NULL, "%s does not apply with %s", bad, what);
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (mode == OPT_LIST && optind < argc) {
        cli_error(NULL, "--list-checks takes no FILE");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (mode == OPT_LIST) {
        list_checks(&o);
        return EXIT_OK;
    }
    int nfiles = argc - optind;
    if (mode == OPT_COMPARE && nfiles != 2) {
        cli_error(NULL, "--compare needs exactly two files");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (nfiles < 1) {
        cli_error(NULL, "missing FILE");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (!cli_stdin_once(argv + optind, nfiles))
        return EXIT_USAGE;
    cli_signals();
    if (mode == OPT_COMPARE)
        return compare(argv[optind], argv[optind + 1], &o);

    int status = EXIT_OK;
    /* JSON: one document for all files; human: printed directly */
    out *w = o.outmode == OUT_JSON ? out_new(stdout, OUT_JSON) : NULL;
    if (w)
        out_list(w, "files", NULL);
    for (int i = optind; i < argc; i++) {
        int s = mode == OPT_DIGEST ? digest_one(argv[i], &o, w) : verify_one(argv[i], &o, w);
        if (s > status)
            status = s;
    }
    if (w)
        out_free(w);
    return status;
}
