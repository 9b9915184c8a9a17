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
 * its problem counts add up. */
#include "fuzz_common.h"

static fz_file in_file;

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
    const char *path = fz_file_put(&in_file, data, size);
    mrimg_open_opts o = {.threads = 1};
    mrimg_error err;
    bool have_digest = false;
    uint8_t digest[MRIMG_DIGEST_LEN];

    mrimg_image *img = mrimg_open(path, &o, &err);
    if (img) {
        const mrimg_container_info *ci = mrimg_container(img);
        int rc = mrimg_scan(img, MRIMG_SCAN_CONTENT, NULL, NULL, &err);
        FZ_CHECK(rc <= 0 && (rc == 0 || err.message[0]), "scan: %d", rc);
        FZ_LOG("scan: %d %s\n", rc, rc ? err.message : "");

        ext_ctx x = {0};
        mrimg_extent_totals t;
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
        mrimg_image *img2 = mrimg_open(path, &o, &err);
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

    mrimg_verify_opts vo = {.threads = 1};
    mrimg_verify_result *res = NULL;
    int rc = mrimg_verify(path, &vo, &res, &err);
    FZ_CHECK(rc == 0, "verification did not run to its end: %s", err.message);
    FZ_CHECK(res != NULL, "no verification result");
    FZ_LOG("verify: %llu errors, %llu warnings\n", (unsigned long long)res->errors,
           (unsigned long long)res->warnings);
    FZ_CHECK(res->nproblems + res->dropped == res->errors + res->warnings, "problem counts");
    for (unsigned i = 0; i < res->nproblems; i++)
        FZ_CHECK(res->problems[i].check && res->problems[i].message[0], "problem %u", i);
    mrimg_verify_free(res);

    /* last, as it changes the file: punching holes in place must leave the
     * guest state (RAM and device state: the digest) as it was */
    mrimg_sparsify_stats st;
    rc = mrimg_sparsify(path, 0, NULL, NULL, &st, &err);
    FZ_LOG("sparsify: %d %s\n", rc, rc ? err.message : "");
    if (rc == 0 && have_digest) {
        img = mrimg_open(path, &o, &err);
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
