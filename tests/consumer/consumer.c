/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A program of a library user: built against the *installed* libmrimg
 * through pkg-config (tests/consumer/run.sh), statically and dynamically,
 * with only the stable API of mrimg.h (no MRIMG_EXPERIMENTAL_API).  It
 * uses the parts whose shape matters for compatibility: option handles
 * with (parameter, value) setters and bounds, the output table, versioned
 * result structs, results through queries.
 *
 * Usage: consumer IMAGE OUTDIR
 * Converts IMAGE (a libvirt save image) to every libvirt output kind of the
 * table under OUTDIR, verifies each, and checks that the guest state is
 * unchanged (the digest); prints one line per step, exits 0 when all hold. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mrimg.h>

#ifdef MRIMG_H_EXPERIMENTAL
#error "the experimental API is declared without MRIMG_EXPERIMENTAL_API"
#endif

static int failures;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                       \
            printf(__VA_ARGS__);                                                              \
            printf("\n");                                                                     \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

static mrimg_image *open_image(const char *path, mrimg_error *err)
{
    mrimg_open_opts *o = mrimg_open_opts_create();
    if (!o)
        return NULL;
    mrimg_image *img = NULL;
    if (mrimg_open_opts_set(o, MRIMG_P_THREADS, 2, err) == 0)
        img = mrimg_open(path, o, err);
    mrimg_open_opts_free(o);
    return img;
}

static int digest_of(const char *path, uint8_t d[MRIMG_DIGEST_LEN])
{
    mrimg_error err;
    mrimg_image *img = open_image(path, &err);
    if (!img) {
        printf("open %s: %s\n", path, err.message);
        return -1;
    }
    mrimg_digest *dg = NULL;
    int rc = mrimg_digest_compute(img, &dg, NULL, NULL, &err);
    if (rc == 0)
        memcpy(d, dg->digest, MRIMG_DIGEST_LEN);
    else
        printf("digest %s: %s\n", path, err.message);
    mrimg_digest_free(dg);
    mrimg_close(img);
    return rc;
}

static int progress(void *ctx, uint64_t done, uint64_t total)
{
    uint64_t *last = ctx;
    CHECK(done >= *last && done <= total, "progress went back or past the total");
    *last = done;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: consumer IMAGE OUTDIR\n");
        return 2;
    }
    const char *in = argv[1], *dir = argv[2];
    mrimg_error err;
    printf("libmrimg %s (header %s)\n", mrimg_version_string(), MRIMG_VERSION_STRING);
    CHECK(!strcmp(mrimg_version_string(), MRIMG_VERSION_STRING), "version mismatch");

    /* parameters: bounds are queryable, out-of-bounds values refused */
    int64_t lo, hi, def;
    CHECK(mrimg_param_bounds(MRIMG_P_RUNNING, &lo, &hi, &def) == 0 && lo == -1 && hi == 1 &&
              def == -1,
          "running bounds");
    CHECK(mrimg_param_bounds(MRIMG_P_LEVEL, &lo, &hi, &def) == 0 && lo == -1 && hi >= 9,
          "level bounds");
    CHECK(mrimg_param_bounds((mrimg_param)9999, NULL, NULL, NULL) == MRIMG_ERR_INVAL,
          "unknown parameter");
    mrimg_convert_opts *co = mrimg_convert_opts_create();
    CHECK(co != NULL, "convert options");
    if (!co)
        return 1;
    CHECK(mrimg_convert_opts_set(co, MRIMG_P_RUNNING, 2, &err) == MRIMG_ERR_INVAL &&
              strstr(err.message, "running"),
          "running 2 accepted (%s)", err.message);
    CHECK(mrimg_convert_opts_set(co, MRIMG_P_SKIP_DATA, 1, &err) == MRIMG_ERR_INVAL,
          "a verify parameter accepted by a conversion");
    CHECK(mrimg_convert_opts_set(co, MRIMG_P_FORCE, 1, &err) == 0, "force: %s", err.message);
    int64_t v = 0;
    CHECK(mrimg_convert_opts_get(co, MRIMG_P_FORCE, &v, &err) == 0 && v == 1, "force get");

    /* the image: container and stream through queries */
    mrimg_image *img = open_image(in, &err);
    CHECK(img != NULL, "open %s: %s", in, err.message);
    if (!img)
        return 1;
    const mrimg_container_info *ci = mrimg_container(img);
    CHECK(ci->is_libvirt && ci->complete, "%s is not a complete libvirt image", in);
    CHECK(mrimg_scan(img, 0, NULL, NULL, &err) == 0, "scan: %s", err.message);
    const mrimg_stream_info *si = mrimg_stream(img);
    printf("machine %s, %u RAM blocks, %u capabilities:", si->machine, mrimg_block_count(img),
           si->ncaps);
    for (unsigned i = 0; i < si->ncaps; i++)
        printf(" %s", mrimg_stream_capability(img, i));
    printf("\n");
    CHECK(mrimg_stream_capability(img, si->ncaps) == NULL, "capability past the count");
    uint8_t ref[MRIMG_DIGEST_LEN];
    CHECK(digest_of(in, ref) == 0, "digest of the input");

    /* every libvirt output kind of the table, by its name */
    unsigned kinds = 0;
    for (unsigned k = 0; mrimg_output_info(k); k++) {
        const mrimg_output_desc *d = mrimg_output_info(k);
        CHECK(d->kind == (mrimg_output)k, "row %u is kind %d", k, (int)d->kind);
        CHECK(mrimg_output_by_name(d->name) == d, "by name %s", d->name);
        if (!d->libvirt)
            continue;
        kinds++;
        char out[4096];
        snprintf(out, sizeof(out), "%s/out.%s", dir, d->name);
        uint64_t last = 0;
        mrimg_convert_opts_set_progress(co, progress, NULL, &last);
        CHECK(mrimg_convert_opts_set(co, MRIMG_P_OUTPUT, d->kind, &err) == 0, "output: %s",
              err.message);
        mrimg_convert_stats st = {.size = sizeof(st)};
        int rc = mrimg_convert(img, out, co, &st, &err);
        CHECK(rc == 0, "convert to %s: %s", d->name, err.message);
        if (rc)
            continue;
        printf("%-7s %" PRIu64 " bytes, %" PRIu64 " allocated\n", d->name, st.out_bytes,
               st.out_allocated);
        CHECK(st.size == sizeof(st) && st.out_bytes > 0, "stats of %s", d->name);

        mrimg_verify_opts *vo = mrimg_verify_opts_create();
        mrimg_verify_result *r = NULL;
        CHECK(vo && mrimg_verify_opts_set(vo, MRIMG_P_THREADS, 1, &err) == 0, "verify opts");
        rc = mrimg_verify(out, vo, &r, &err);
        mrimg_verify_opts_free(vo);
        CHECK(rc == 0 && r && r->errors == 0, "verify %s: %s", d->name,
              rc ? err.message : r && r->nproblems ? r->problems[0].message : "");
        mrimg_verify_free(r);
        uint8_t dg[MRIMG_DIGEST_LEN];
        CHECK(digest_of(out, dg) == 0 && !memcmp(dg, ref, sizeof(dg)),
              "%s holds another guest state", d->name);
    }
    CHECK(kinds >= 7, "only %u libvirt output kinds", kinds);

    /* a versioned struct of an older, smaller caller: nothing past its size */
    struct {
        mrimg_convert_stats st;
        unsigned char guard[64];
    } small;
    memset(&small, 0xa5, sizeof(small));
    small.st.size = sizeof(size_t) + sizeof(uint64_t); /* size and in_bytes only */
    char out[4096];
    snprintf(out, sizeof(out), "%s/out.small", dir);
    CHECK(mrimg_convert(img, out, NULL, &small.st, &err) == 0, "convert: %s", err.message);
    CHECK(small.st.in_bytes > 0, "in_bytes not filled");
    const unsigned char *p = (const unsigned char *)&small.st.stream_bytes;
    int untouched = 1;
    for (const unsigned char *q = p; q < (const unsigned char *)(&small + 1); q++)
        untouched &= *q == 0xa5;
    CHECK(untouched, "bytes past the caller's size were written");
    mrimg_close(img);
    mrimg_convert_opts_free(co);
    printf(failures ? "%d failures\n" : "ok\n", failures);
    return failures ? 1 : 0;
}
