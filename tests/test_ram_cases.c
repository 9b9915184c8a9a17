/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The RAM view's refusals (lib/ram/view.c): calls outside the block list,
 * a walk without a callback or cancelled part-way through a mapped-ram
 * image, and a RAM replay file that cannot be created (the random access
 * of a plain stream needs one), each with its code and message. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mrimg_image *open_scanned(const char *rel)
{
    mrimg_error err;
    mrimg_image *img = t_open(fixture_path(rel), NULL, &err);
    if (!img)
        fail_msg("%s: %s", rel, err.message);
    if (mrimg_scan(img, 0, NULL, NULL, &err) != 0)
        fail_msg("%s: scan: %s", rel, err.message);
    return img;
}

static void expect(int rc, const mrimg_error *err, mrimg_code code, const char *text)
{
    if (rc != (int)code || strcmp(err->message, text) != 0)
        fail_msg("expected %s \"%s\", got %d: %s", mrimg_code_name(code), text, rc, err->message);
}

static void test_outside_the_blocks(void **state)
{
    (void)state;
    mrimg_image *img = open_scanned("qemu/mapped.mig");
    unsigned nb = mrimg_block_count(img);
    const mrimg_ram_block_info *b0 = mrimg_block(img, 0);
    uint8_t page[4096];
    mrimg_error err;
    char want[300];

    int rc = mrimg_ram_read(img, nb, 0, 1, page, &err);
    snprintf(want, sizeof(want), "no RAM block %u (%u blocks)", nb, nb);
    expect(rc, &err, MRIMG_ERR_INVAL, want);

    rc = mrimg_ram_read(img, 0, b0->pages, 1, page, &err);
    snprintf(want, sizeof(want), "pages %llu+1 are outside block \"%s\" (%llu pages)",
             (unsigned long long)b0->pages, b0->name, (unsigned long long)b0->pages);
    expect(rc, &err, MRIMG_ERR_INVAL, want);

    /* a count that wraps around is outside too */
    rc = mrimg_ram_read(img, 0, 1, UINT64_MAX, page, &err);
    assert_int_equal(rc, MRIMG_ERR_INVAL);
    assert_non_null(strstr(err.message, "are outside block"));

    rc = mrimg_ram_page_has_data(img, 0, b0->pages, &err);
    expect(rc, &err, MRIMG_ERR_INVAL, "no such page");

    rc = mrimg_ram_walk(img, NULL, NULL, NULL, NULL, &err);
    expect(rc, &err, MRIMG_ERR_INVAL, "no callback");
    mrimg_close(img);
}

static int count_pages(void *opaque, unsigned block, uint64_t first, uint64_t npages,
                       const uint8_t *data, mrimg_error *err)
{
    (void)block;
    (void)first;
    (void)data;
    (void)err;
    *(uint64_t *)opaque += npages;
    return 0;
}

typedef struct stop_at {
    unsigned calls, stop;
    uint64_t last_done, last_total;
} stop_at;

static int stop_progress(void *opaque, uint64_t done, uint64_t total)
{
    stop_at *s = opaque;
    assert_true(done >= s->last_done);
    s->last_done = done;
    s->last_total = total;
    return ++s->calls >= s->stop;
}

/* A mapped-ram walk reports progress per data run and stops when told. */
static void test_walk_cancelled(void **state)
{
    (void)state;
    mrimg_image *img = open_scanned("qemu/mapped.mig");
    mrimg_error err;
    uint64_t pages = 0;
    stop_at s = {0, 1000000, 0, 0};
    assert_int_equal(mrimg_ram_walk(img, count_pages, &pages, stop_progress, &s, &err), 0);
    assert_true(s.calls >= 2);
    assert_true(s.last_done > 0 && s.last_done <= s.last_total);
    unsigned runs = s.calls;

    pages = 0;
    s = (stop_at){0, 2, 0, 0};
    int rc = mrimg_ram_walk(img, count_pages, &pages, stop_progress, &s, &err);
    expect(rc, &err, MRIMG_ERR_INTERRUPTED, "interrupted");
    assert_int_equal(s.calls, 2);
    assert_true(runs > 2);
    mrimg_close(img);
}

/* Random access to a plain stream replays it into a temporary file in
 * $MRIMG_TMPDIR: a directory that does not exist is an I/O error that
 * names it, and the image stays usable for a walk. */
static void test_replay_file_cannot_be_created(void **state)
{
    (void)state;
    const char *old = getenv("MRIMG_TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("MRIMG_TMPDIR", "/nonexistent/mrimg-test", 1);
    mrimg_image *img = open_scanned("qemu/plain.mig");
    uint8_t page[4096];
    mrimg_error err;
    int rc = mrimg_ram_read(img, 0, 0, 1, page, &err);
    assert_int_equal(rc, MRIMG_ERR_IO);
    assert_int_equal(err.sys_errno, 2 /* ENOENT */);
    if (!strstr(err.message,
                "cannot create a temporary file in /nonexistent/mrimg-test for the RAM replay"))
        fail_msg("message: %s", err.message);
    uint64_t pages = 0;
    assert_int_equal(mrimg_ram_walk(img, count_pages, &pages, NULL, NULL, &err), 0);
    uint64_t total = 0;
    for (unsigned i = 0; i < mrimg_block_count(img); i++)
        total += mrimg_block(img, i)->pages;
    assert_int_equal(pages, total);
    mrimg_close(img);
    if (saved) {
        setenv("MRIMG_TMPDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("MRIMG_TMPDIR");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_the_blocks),
        cmocka_unit_test(test_walk_cancelled),
        cmocka_unit_test(test_replay_file_cannot_be_created),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
