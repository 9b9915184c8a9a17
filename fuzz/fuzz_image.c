/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_image: the whole read path of a file, as imginfo and imgverify run
 * it: mrimg_open -> mrimg_scan(CONTENT | TAIL) -> mrimg_extents ->
 * mrimg_stream_map -> mrimg_content_scan -> mrimg_ram_walk ->
 * mrimg_digest_compute -> mrimg_compare (against a second handle of the
 * same file) -> mrimg_xml_strip_secrets, then mrimg_verify() on the same
 * path, and last mrimg_sparsify() in place (the file is a memfd).  Any container (libvirt with every payload format, bare
 * streams plain or mapped-ram, compressed bare streams).
 *
 * Oracles: the file map covers [0, file size) exactly, in order, with
 * positive lengths; stream-map runs are positive and do not go backwards;
 * the walk contract; an image compares identical to itself; sparsify keeps
 * the digest (RAM and device state); verification
 * runs to its end on any input (it reports problems, it does not fail) and
 * its problem counts add up; the quick judgement (mrimg_check) runs to its
 * end, is cached, and has an error whenever the scan fails.
 *
 * Conversion never loses state silently (one conversion per input, chosen
 * by the input, see below):
 *   - a conversion that succeeds had an input without error-severity
 *     problems (mrimg_verify; container.incomplete excused when
 *     allow_incomplete was set), and its output holds the same guest state
 *     (mrimg_digest_compute of output == of input) and verifies without
 *     error itself;
 *   - an input that verifies sound converts, except for the refusals listed
 *     in allowed_refusal(), none of which is about soundness.
 *
 * Parameters: an input that ends with a 10-byte trailer
 *   "FzP1", output, flags, hole exponent, hole mantissa (be24)
 * has the trailer cut off and obeys it; any other input is used whole and
 * its parameters are drawn from a hash of its bytes (no hole), so that the
 * seeds convert too.  output: index into outputs[] (libvirt raw..sparse,
 * bare plain, bare mapped-ram, RAM files); flags: see FL_*.  With FL_HOLE a
 * hole of (mantissa + 1) << (exponent % 18) bytes (1 byte .. 2 TiB) is
 * appended to the file with ftruncate, so the read path, the verifier and
 * the conversion meet sparse files of any size.  MRIMG_FUZZ_HOLE_MAX (bytes)
 * caps it when exploring by hand past a known slow path. */
#include "fuzz_common.h"

static fz_file in_file;

#define FZ_TRAILER "FzP1"
#define FZ_TRAILER_LEN 10

enum {
    FL_COMPACT = 0x01,      /* compact (plain outputs of a multi-pass stream) */
    FL_INCOMPLETE = 0x02,   /* allow_incomplete */
    FL_PREALLOC = 0x04,     /* preallocate (mapped-ram outputs only) */
    FL_RUNNING = 0x08,      /* set the running flag (libvirt outputs) ... */
    FL_RUNNING_ON = 0x10,   /* ... to this */
    FL_XML = 0x20,          /* replace the domain XML (always for bare inputs
                             * to libvirt outputs, which need one) */
    FL_HOLE = 0x40,         /* append a hole */
    FL_COOKIE = 0x80,       /* replace the save cookie (libvirt outputs) */
};

static const mrimg_output outputs[] = {
    MRIMG_OUT_RAW,  MRIMG_OUT_GZIP, MRIMG_OUT_BZIP2,  MRIMG_OUT_XZ,
    MRIMG_OUT_LZOP, MRIMG_OUT_ZSTD, MRIMG_OUT_SPARSE, MRIMG_OUT_QEMU,
    MRIMG_OUT_QEMU_MAPPED, MRIMG_OUT_RAM,
};

typedef struct params {
    int out;
    unsigned flags;
    uint64_t hole;
} params;

static size_t take_params(const uint8_t *data, size_t size, params *p)
{
    uint8_t b[6];
    if (size >= FZ_TRAILER_LEN &&
        memcmp(data + size - FZ_TRAILER_LEN, FZ_TRAILER, 4) == 0) {
        memcpy(b, data + size - 6, 6);
        size -= FZ_TRAILER_LEN;
    } else {
        uint64_t h = fz_hash(data, size, 0xcbf29ce484222325ull);
        for (int i = 0; i < 6; i++)
            b[i] = (uint8_t)(h >> (8 * i));
        b[1] &= (uint8_t)~FL_HOLE;
    }
    p->out = outputs[b[0] % MRIMG_ARRAY_SIZE(outputs)];
    p->flags = b[1];
    p->hole = 0;
    if (p->flags & FL_HOLE) {
        uint64_t mant = (uint64_t)b[3] << 16 | (uint64_t)b[4] << 8 | b[5];
        p->hole = (mant + 1) << (b[2] % 18);
        const char *cap = getenv("MRIMG_FUZZ_HOLE_MAX");
        if (cap && p->hole > strtoull(cap, NULL, 0))
            p->hole = strtoull(cap, NULL, 0);
    }
    return size;
}

/* Refusals allowed for an input that verifies sound, none of them about
 * soundness (see mrimg_convert and docs/limits.md):
 *   - MRIMG_ERR_LIMIT: a documented resource cap (docs/limits.md);
 *   - MRIMG_ERR_UNSUPPORTED for mapped-ram outputs: a feature the layout
 *     cannot express (x-ignore-shared or postcopy-ram in the stream, a
 *     stream without a configuration section to announce mapped-ram), or
 *     preallocation of a compressed input;
 *   - MRIMG_ERR_NOSPC, and MRIMG_ERR_IO with ENOSPC/EFBIG/EDQUOT: writing
 *     into the scratch directory failed (a huge sparse output). */
static bool allowed_refusal(const mrimg_error *e, int out)
{
    switch (e->code) {
    case MRIMG_ERR_LIMIT:
    case MRIMG_ERR_NOSPC:
        return true;
    case MRIMG_ERR_IO:
        return e->sys_errno == ENOSPC || e->sys_errno == EFBIG || e->sys_errno == EDQUOT;
    case MRIMG_ERR_UNSUPPORTED:
        return mrimg_output_info((unsigned)out)->mapped;
    default:
        return false;
    }
}

static const char *out_name(int out)
{
    return mrimg_output_info((unsigned)out)->name;
}

/* mrimg_convert_opts_set, with the fuzzer's own parameters never out of
 * bounds */
static void set(mrimg_convert_opts *co, mrimg_param p, int64_t v)
{
    mrimg_error err;
    FZ_CHECK(mrimg_convert_opts_set(co, p, v, &err) == 0, "setting %s to %lld: %s",
             mrimg_param_name(p), (long long)v, err.message);
}

/* The conversion oracle (see the head of the file). */
static void check_conversion(const char *path, const params *p, const fz_judgement *j,
                             bool have_digest, const uint8_t *digest)
{
    bool excuse = (p->flags & FL_INCOMPLETE) != 0;
    bool sound = fz_sound(j, excuse);
    const char *what = out_name(p->out);
    mrimg_error err;
    mrimg_image *img = fz_open(path, 1, &err);
    if (!img) {
        FZ_CHECK(!sound || allowed_refusal(&err, p->out),
                 "an input that verifies sound does not open: %s", err.message);
        return;
    }
    bool bare = !mrimg_container(img)->is_libvirt;
    const mrimg_output_desc *od = mrimg_output_info((unsigned)p->out);
    mrimg_convert_opts *co = mrimg_convert_opts_create();
    FZ_CHECK(co != NULL, "out of memory");
    set(co, MRIMG_P_OUTPUT, p->out);
    set(co, MRIMG_P_FORCE, 1);
    set(co, MRIMG_P_THREADS, 1);
    set(co, MRIMG_P_COMPACT, (p->flags & FL_COMPACT) != 0);
    set(co, MRIMG_P_ALLOW_INCOMPLETE, excuse);
    set(co, MRIMG_P_PREALLOCATE, od->mapped && (p->flags & FL_PREALLOC));
    /* the header options only where there is a header: elsewhere they
     * are a usage error (mrimg_convert refuses them), not a judgement */
    if (od->libvirt && (p->flags & FL_RUNNING))
        set(co, MRIMG_P_RUNNING, (p->flags & FL_RUNNING_ON) != 0);
    if (od->libvirt && (p->flags & FL_COOKIE))
        FZ_CHECK(mrimg_convert_opts_set_cookie(
                     co, "<cookie>\n  <cpu mode='custom' match='exact'/>\n</cookie>\n",
                     &err) == 0,
                 "cookie: %s", err.message);
    /* low levels: the oracle is about state, not ratio */
    int lmin;
    if (od->libvirt && mrimg_format_levels(od->payload_format, &lmin, NULL, NULL) == 0)
        set(co, MRIMG_P_LEVEL, lmin); /* xz 0, the others 1 */
    if (od->libvirt && (bare || (p->flags & FL_XML)))
        FZ_CHECK(mrimg_convert_opts_set_xml(co, "<domain type='kvm'><name>fuzz</name>"
                                                "<uuid>8c1a7f5e-52c4-4bb2-9d55-0f1e2d3c4b5a"
                                                "</uuid></domain>",
                                            &err) == 0,
                 "xml: %s", err.message);
    const char *out = fz_out_path(od->directory ? "conv.ramdir" : "conv.out");
    int rc = mrimg_convert(img, out, co, NULL, &err);
    mrimg_convert_opts_free(co);
    mrimg_close(img);
    FZ_LOG("convert to %s (flags %#x): %d %s\n", what, p->flags, rc, rc ? err.message : "");
    if (rc != 0) {
        FZ_CHECK(err.message[0], "convert failed without a message");
        FZ_CHECK(!sound || allowed_refusal(&err, p->out),
                 "an input that verifies sound was refused (to %s): %s", what, err.message);
        return;
    }
    /* the state first (a changed state is the worse finding), then the
     * judgement of the input */
    uint8_t d2[MRIMG_DIGEST_LEN];
    if (p->out != MRIMG_OUT_RAM && have_digest) { /* RAM files: no image to digest */
        FZ_CHECK(fz_digest(out, d2, &err), "the output (%s) has no digest: %s", what,
                 err.message);
        FZ_CHECK(memcmp(d2, digest, MRIMG_DIGEST_LEN) == 0,
                 "the conversion to %s changed the guest state (digest)%s%s", what,
                 sound ? "" : "; the input has errors: ", sound ? "" : j->first);
    }
    FZ_CHECK(sound, "converted (to %s) an input with errors: %s", what, j->first);
    if (p->out == MRIMG_OUT_RAM)
        return;
    FZ_CHECK(have_digest, "converted (to %s) an input whose guest state has no digest", what);
    fz_judgement jo;
    fz_judge(out, &jo);
    FZ_CHECK(fz_sound(&jo, false), "the output (%s) of a sound input has errors: %s", what,
             jo.first);
}

typedef struct ext_ctx {
    uint64_t next;     /* file map: where the next run must start */
    uint64_t runs;
    int stream;        /* stream map */
} ext_ctx;

static int ext_cb(void *opaque, const mrimg_extent *e)
{
    ext_ctx *x = opaque;
    FZ_CHECK(e->length > 0, "a run of length 0 at %llu", (unsigned long long)e->offset);
    FZ_CHECK(mrimg_region_name(e->region) != NULL, "region %d", e->region);
    FZ_CHECK(e->offset + e->length > e->offset, "run wraps around");
    if (x->stream)
        FZ_CHECK(e->offset >= x->next, "stream map goes back from %llu to %llu",
                 (unsigned long long)x->next, (unsigned long long)e->offset);
    else
        FZ_CHECK(e->offset == x->next, "file map: run at %llu, expected %llu",
                 (unsigned long long)e->offset, (unsigned long long)x->next);
    x->next = e->offset + e->length;
    x->runs++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    params prm;
    size = take_params(data, size, &prm);
    const char *path = fz_file_put_hole(&in_file, data, size, prm.hole);
    FZ_LOG("output %s, flags %#x, hole %llu\n", out_name(prm.out), prm.flags,
           (unsigned long long)prm.hole);
    mrimg_error err;
    bool have_digest = false;
    uint8_t digest[MRIMG_DIGEST_LEN];

    mrimg_image *img = fz_open(path, 1, &err);
    if (img) {
        const mrimg_container_info *ci = mrimg_container(img);
        int rc = mrimg_scan(img, MRIMG_SCAN_CONTENT, NULL, NULL, &err);
        FZ_CHECK(rc <= 0 && (rc == 0 || err.message[0]), "scan: %d", rc);
        FZ_LOG("scan: %d %s\n", rc, rc ? err.message : "");

        /* the one judgement: runs to its end, is cached, and a stream the
         * scan cannot parse is never judged free of errors (the tools
         * would disagree) */
        int src = rc;
        const mrimg_verify_result *jr = NULL, *jr2 = NULL;
        rc = mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &err);
        FZ_CHECK(rc == 0 && jr, "quick judgement did not run to its end: %s", err.message);
        FZ_CHECK(jr->nproblems + jr->dropped == jr->errors + jr->warnings, "judgement counts");
        FZ_CHECK(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &jr2, &err) == 0 && jr2 == jr,
                 "the judgement is not cached");
        FZ_CHECK(src == 0 || jr->errors > 0,
                 "the scan failed (%s) but the judgement has no error", mrimg_code_name(src));

        ext_ctx x = {0};
        mrimg_extent_totals t = {.size = sizeof(t)};
        rc = mrimg_extents(img, ext_cb, &x, &t, NULL, NULL, &err);
        if (rc == 0) {
            FZ_CHECK(x.next == ci->file_size, "file map ends at %llu of %llu",
                     (unsigned long long)x.next, (unsigned long long)ci->file_size);
            FZ_CHECK(t.runs == x.runs && t.data_bytes + t.hole_bytes == ci->file_size,
                     "extent totals");
        }

        ext_ctx s = {.stream = 1};
        (void)mrimg_stream_map(img, ext_cb, &s, NULL, NULL, &err);

        (void)mrimg_content_scan(img, NULL, NULL, &err);

        fz_walk w;
        fz_walk_init(&w, img);
        /* the guest-physical map: sorted, disjoint, inside its blocks */
        mrimg_memmap *mm = NULL;
        if (mrimg_memory_map(img, &mm, &err) == 0) {
            for (unsigned i = 0; i < mm->nranges; i++) {
                const mrimg_mem_range *r = &mm->ranges[i];
                FZ_CHECK(r->length && r->block < mrimg_block_count(img) &&
                             r->offset + r->length <= mrimg_block(img, r->block)->used_length,
                         "memory-map range %u outside its block", i);
                FZ_CHECK(i == 0 || mm->ranges[i - 1].gpa + mm->ranges[i - 1].length <= r->gpa,
                         "memory-map ranges %u and %u overlap", i - 1, i);
            }
        }
        mrimg_memory_map_free(mm);
        rc = mrimg_ram_walk(img, fz_walk_cb, &w, NULL, NULL, &err);
        if (rc == 0)
            fz_walk_done(&w);
        FZ_LOG("walk: %d, %llu data pages, file map %llu runs\n", rc,
               (unsigned long long)w.data_pages, (unsigned long long)x.runs);

        mrimg_digest *d = NULL;
        rc = mrimg_digest_compute(img, &d, NULL, NULL, &err);
        if (rc == 0) {
            FZ_CHECK(d && d->nblocks == mrimg_block_count(img), "digest blocks");
            char hex[65];
            mrimg_digest_hex(d->digest, hex);
            FZ_CHECK(strlen(hex) == 64, "digest hex");
            memcpy(digest, d->digest, sizeof(digest));
            have_digest = true;
        }
        mrimg_digest_free(d);

        /* the image against itself, through a second handle */
        mrimg_image *img2 = fz_open(path, 1, &err);
        FZ_CHECK(img2, "second open: %s", err.message);
        mrimg_compare_result *cr = NULL;
        rc = mrimg_compare(img, img2, &cr, NULL, NULL, &err);
        if (rc == 0) {
            FZ_CHECK(cr && cr->identical && cr->ram_identical && cr->device_identical,
                     "an image differs from itself");
            for (unsigned i = 0; i < cr->nblocks; i++)
                FZ_CHECK(cr->blocks[i].identical && cr->blocks[i].pages_differ == 0,
                         "block %u differs from itself", i);
        }
        mrimg_compare_free(cr);
        mrimg_close(img2);

        unsigned removed = 0;
        char *x2 = mrimg_xml_strip_secrets(ci->xml, ci->xml_len, &removed, &err);
        if (x2) {
            FZ_CHECK(strlen(x2) <= ci->xml_len, "stripping made the XML longer");
            FZ_CHECK(removed || strcmp(x2, ci->xml) == 0, "nothing removed, but changed");
        }
        free(x2);
        mrimg_close(img);
    } else {
        FZ_CHECK(err.code < 0 && err.message[0], "open failed without a message");
    }

    mrimg_verify_result *res = NULL;
    int rc = fz_verify(path, 0, &res, &err);
    FZ_CHECK(rc == 0, "verification did not run to its end: %s", err.message);
    FZ_CHECK(res != NULL, "no verification result");
    FZ_LOG("verify: %llu errors, %llu warnings\n", (unsigned long long)res->errors,
           (unsigned long long)res->warnings);
    FZ_CHECK(res->nproblems + res->dropped == res->errors + res->warnings, "problem counts");
    for (unsigned i = 0; i < res->nproblems; i++)
        FZ_CHECK(res->problems[i].check && res->problems[i].message[0], "problem %u", i);
    fz_judgement j;
    fz_judge_result(rc, &err, res, &j);
    mrimg_verify_free(res);

    check_conversion(path, &prm, &j, have_digest, digest);
    fz_clean_outputs();

    /* last, as it changes the file: punching holes in place must leave the
     * guest state (RAM and device state: the digest) as it was */
    mrimg_sparsify_stats st = {.size = sizeof(st)};
    rc = mrimg_sparsify(path, 0, NULL, NULL, &st, &err);
    FZ_LOG("sparsify: %d %s\n", rc, rc ? err.message : "");
    if (rc == 0 && have_digest) {
        img = fz_open(path, 1, &err);
        FZ_CHECK(img, "open after sparsify: %s", err.message);
        mrimg_digest *d = NULL;
        rc = mrimg_digest_compute(img, &d, NULL, NULL, &err);
        FZ_CHECK(rc == 0, "digest after sparsify: %s", err.message);
        FZ_CHECK(memcmp(d->digest, digest, sizeof(digest)) == 0,
                 "sparsify changed the guest state (%llu bytes punched)",
                 (unsigned long long)st.bytes_punched);
        mrimg_digest_free(d);
        mrimg_close(img);
    }
    fz_clean_outputs();
    return 0;
}
