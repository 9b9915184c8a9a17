/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_stream: a bare QEMU migration stream, plain or mapped-ram.
 *
 * The input is the whole file, stream at offset 0 (mapped-ram offsets are
 * absolute file offsets, so they point back into the input; all-zero pages
 * of the input are holes).  Two handles walk it in the two orders the
 * library supports:
 *   A: mrimg_ram_walk() first (plain streams: scan and walk in one pass,
 *      with a restart into the replay file if the records are out of
 *      order), then MRIMG_SCAN_CONTENT, then random access
 *      (mrimg_ram_read, mrimg_ram_page_has_data) on sampled pages;
 *   B: mrimg_scan() first, then the walk, with threads = 2: plain
 *      payloads are then read ahead on a second thread (buffer swapping,
 *      lib/stream/bytes.c), so A and B also compare the synchronous and
 *      the read-ahead reader.
 * Oracles: the walk contract (every page once, in order), both handles
 * agree on success or failure and on the content, random access agrees
 * with the walk, and the per-block page counts add up. */
#include "fuzz_common.h"

static fz_file in_file;

static void check_counts(mrimg_image *img)
{
    const mrimg_stream_info *si = mrimg_stream(img);
    FZ_CHECK(si->nblocks == mrimg_block_count(img), "nblocks");
    uint64_t total = 0;
    for (unsigned i = 0; i < mrimg_block_count(img); i++) {
        const mrimg_ram_block_info *b = mrimg_block(img, i);
        FZ_CHECK(b->page_size == si->target_page_size && b->pages * b->page_size == b->used_length,
                 "block %u: pages", i);
        if (b->mapped)
            FZ_CHECK(b->pages_data + b->pages_zero == b->pages, "mapped block %u counts", i);
        else
            FZ_CHECK(b->pages_data + b->pages_zero + b->pages_absent == b->pages,
                     "plain block %u counts", i);
        total += b->used_length;
    }
    FZ_CHECK(total == si->ram_total, "block lengths add up to %llu, MEM_SIZE says %llu",
             (unsigned long long)total, (unsigned long long)si->ram_total);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file_put(&in_file, data, size);
    mrimg_error err;

    /* A: walk first */
    mrimg_image *a = fz_open(path, 1, &err);
    if (!a) {
        FZ_LOG("open: %s\n", err.message);
        return 0;
    }
    fz_walk wa;
    fz_walk_init(&wa, a);
    int rca = mrimg_ram_walk(a, fz_walk_cb, &wa, NULL, NULL, &err);
    if (rca == 0) {
        fz_walk_done(&wa);
        check_counts(a);
        int rc = mrimg_scan(a, MRIMG_SCAN_CONTENT, NULL, NULL, &err);
        FZ_CHECK(rc == 0, "content scan after a good walk: %s", err.message);
        for (unsigned i = 0; i < mrimg_block_count(a); i++) {
            const mrimg_ram_block_info *b = mrimg_block(a, i);
            if (b->mapped)
                FZ_CHECK(b->pages_zero_filled <= b->pages_data, "zero-filled %llu > data %llu",
                         (unsigned long long)b->pages_zero_filled,
                         (unsigned long long)b->pages_data);
        }
        fz_check_samples(a, &wa);
    } else {
        FZ_CHECK(err.code == rca && err.message[0], "walk error %d without a message", rca);
        /* a failed scan keeps what it found; the accessors must still work */
        for (unsigned i = 0; i < mrimg_block_count(a); i++)
            FZ_CHECK(mrimg_block(a, i) != NULL, "block %u", i);
    }

    /* B: scan first, reading ahead on a second thread */
    mrimg_image *b = fz_open(path, 2, &err);
    FZ_CHECK(b != NULL, "second open failed: %s", err.message);
    int rcs = mrimg_scan(b, 0, NULL, NULL, &err);
    fz_walk wb;
    fz_walk_init(&wb, b);
    int rcb = rcs;
    if (rcs == 0) {
        rcb = mrimg_ram_walk(b, fz_walk_cb, &wb, NULL, NULL, &err);
        if (rcb == 0)
            fz_walk_done(&wb);
    }
    FZ_LOG("walk first: %d, scan first: %d/%d, %u blocks, %llu data + %llu zero pages%s%s\n",
           rca, rcs, rcb, mrimg_block_count(a), (unsigned long long)wa.data_pages,
           (unsigned long long)wa.zero_pages, rca ? ": " : "", rca ? err.message : "");
    FZ_CHECK((rca == 0) == (rcb == 0), "walk first: %d, scan first: %d (%s)", rca, rcb,
             err.message);
    if (rca == 0) {
        FZ_CHECK(wa.hash == wb.hash && wa.data_pages == wb.data_pages &&
                     wa.zero_pages == wb.zero_pages,
                 "the two walks differ: %llu/%llu data pages", (unsigned long long)wa.data_pages,
                 (unsigned long long)wb.data_pages);
        const mrimg_stream_info *sa = mrimg_stream(a), *sb = mrimg_stream(b);
        FZ_CHECK(sa->stream_size == sb->stream_size && sa->ram_end == sb->ram_end &&
                     sa->has_eof == sb->has_eof && sa->has_vmdesc == sb->has_vmdesc &&
                     sa->multi_pass == sb->multi_pass && sa->ordered == sb->ordered,
                 "the two scans differ");
    }
    mrimg_close(b);
    mrimg_close(a);
    return 0;
}
