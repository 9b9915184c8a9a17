/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The page-run reader (lib/io/pages.c), the bitmap loader and the growable
 * vector (lib/util/vec.h), on files made here with real holes. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/pages.h"
#include "util/vec.h"

static char *dir;
static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&dir, "pages");
}
static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&dir);
}

#define PS 4096u

/* A page whose bytes say which it is. */
static void fill_page(uint8_t *p, size_t ps, unsigned page)
{
    for (size_t i = 0; i < ps; i++)
        p[i] = (uint8_t)(page * 7 + i % 251 + 1);
}

/* A file of size bytes, all hole but the pages listed (page size ps, at
 * base), whose content is fill_page's. */
static char *make_file(const char *name, uint64_t size, uint64_t base, size_t ps,
                       const unsigned *data, size_t n)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    uint8_t *pg = malloc(ps);
    for (size_t i = 0; i < n; i++) {
        fill_page(pg, ps, data[i]);
        assert_int_equal(pwrite(fd, pg, ps, (off_t)(base + (uint64_t)data[i] * ps)), (ssize_t)ps);
    }
    free(pg);
    assert_int_equal(fsync(fd), 0);
    close(fd);
    return path;
}

/* Does this file system report holes?  (The assertions on hole runs need
 * it; the content assertions hold either way.) */
static bool has_holes(const char *path)
{
    int fd = open(path, O_RDONLY);
    off_t d = lseek(fd, 0, SEEK_DATA);
    close(fd);
    return d > 0;
}

/* What the runs said: the bytes of every page, and each page's kind. */
typedef struct got {
    uint8_t *bytes;       /* pages * ps, 0xee where no run went */
    int kind[64];         /* -1: not delivered */
    unsigned calls, data_calls;
    uint64_t max_run;     /* pages of the longest PG_DATA run */
    size_t ps;
    uint64_t first;
    int stop_at;          /* return an error at this call (or -1) */
} got;

static int collect(void *opaque, const pg_run *r, mrimg_error *err)
{
    got *g = opaque;
    assert_int_equal(r->ps, g->ps);
    if ((int)g->calls == g->stop_at) {
        g->calls++;
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "stop");
    }
    g->calls++;
    for (uint64_t k = 0; k < r->n; k++) {
        uint64_t pg = r->first + k - g->first;
        assert_true(pg < 64);
        assert_int_equal(g->kind[pg], -1); /* each page once */
        g->kind[pg] = (int)r->kind;
        uint8_t *dst = g->bytes + pg * g->ps;
        if (r->kind == PG_DATA && r->data)
            memcpy(dst, r->data + k * g->ps, g->ps);
        else
            memset(dst, 0, g->ps);
    }
    if (r->kind == PG_DATA) {
        g->data_calls++;
        g->max_run = MRIMG_MAX(g->max_run, r->n);
        assert_non_null(r->data);
    } else {
        assert_null(r->data);
    }
    return 0;
}

static void got_init(got *g, uint64_t pages, size_t ps, uint64_t first)
{
    memset(g, 0, sizeof(*g));
    g->bytes = malloc(pages * ps);
    memset(g->bytes, 0xee, pages * ps);
    for (unsigned i = 0; i < 64; i++)
        g->kind[i] = -1;
    g->ps = ps;
    g->first = first;
    g->stop_at = -1;
}

/* The page's bytes as the file holds them: fill_page's, or zeros. */
static void assert_page(const got *g, unsigned pg, bool data)
{
    uint8_t *want = calloc(1, g->ps);
    if (data)
        fill_page(want, g->ps, pg + (unsigned)g->first);
    assert_memory_equal(g->bytes + (size_t)pg * g->ps, want, g->ps);
    free(want);
}

static void open_src(mrimg_source *s, const char *path)
{
    mrimg_error e;
    if (src_open(s, path, &e) != 0)
        fail_msg("%s", e.message);
}

/* Holes inside set runs come back as PG_HOLE without being read, clear
 * pages as PG_CLEAR / PG_CLEAR_HOLE, the data with its bytes; reads stop at
 * the end of each data extent. */
static void test_holes(void **state)
{
    (void)state;
    const unsigned data[] = {0, 1, 2, 7, 12, 13, 14, 15};
    uint64_t base = 16 * PS;
    char *path = make_file("holes", base + 16 * PS, base, PS, data, 8);
    mrimg_source s;
    open_src(&s, path);
    lbitmap bm;
    mrimg_error e;
    assert_int_equal(lb_init(&bm, 16, &e), 0);
    for (unsigned i = 0; i < 16; i++)
        if (i != 5 && i != 13)
            assert_int_equal(lb_set(&bm, i, &e), 0);
    pg_region r = {.base = base, .ps = PS, .first = 0, .end = 16, .bits = &bm, .id = 3};
    got g;
    got_init(&g, 16, PS, 0);
    pg_opts o = {.flags = PG_WANT_CLEAR, .what = "test pages"};
    assert_int_equal(pg_read(&s, &r, 1, &o, collect, &g, &e), 0);
    for (unsigned i = 0; i < 16; i++) {
        bool d = i <= 2 || i == 7 || i >= 12;
        assert_page(&g, i, d && i != 13 ? true : false);
    }
    if (has_holes(path)) {
        assert_int_equal(g.kind[0], PG_DATA);
        assert_int_equal(g.kind[3], PG_HOLE);
        assert_int_equal(g.kind[5], PG_CLEAR_HOLE);
        assert_int_equal(g.kind[7], PG_DATA);
        assert_int_equal(g.kind[13], PG_CLEAR);
        assert_int_equal(g.kind[14], PG_DATA);
        /* only the data pages were read */
        assert_int_equal(o.bytes_read, 7 * PS);
    }
    /* without PG_WANT_CLEAR the clear pages are not delivered */
    free(g.bytes);
    got_init(&g, 16, PS, 0);
    o = (pg_opts){0};
    assert_int_equal(pg_read(&s, &r, 1, &o, collect, &g, &e), 0);
    assert_int_equal(g.kind[5], -1);
    assert_int_equal(g.kind[13], -1);
    assert_page(&g, 14, true);
    /* a callback's error stops the walk and is returned */
    free(g.bytes);
    got_init(&g, 16, PS, 0);
    g.stop_at = 1;
    o = (pg_opts){0};
    assert_int_equal(pg_read(&s, &r, 1, &o, collect, &g, &e), MRIMG_ERR_INTERRUPTED);
    assert_int_equal(g.calls, 2);
    /* the same with one-page reads (the read-ahead thread reads while the
     * callback works): the same runs, the same stop */
    for (int stop = -1; stop <= 3; stop += 4) {
        free(g.bytes);
        got_init(&g, 16, PS, 0);
        g.stop_at = stop;
        o = (pg_opts){.flags = PG_WANT_CLEAR, .max_read = PS};
        assert_int_equal(pg_read(&s, &r, 1, &o, collect, &g, &e),
                         stop < 0 ? 0 : MRIMG_ERR_INTERRUPTED);
        if (stop < 0)
            for (unsigned i = 0; i < 16; i++)
                assert_page(&g, i, (i <= 2 || i == 7 || i >= 12) && i != 13);
        else
            assert_int_equal(g.calls, 4);
    }
    free(g.bytes);
    lb_free(&bm);
    src_close(&s);
    free(path);
}

/* A file system (or a file) whose extent map says "data" where the file
 * has holes: the pages are read, and read as zeros. */
static void test_data_where_holes_are(void **state)
{
    (void)state;
    const unsigned data[] = {1, 6};
    char *path = make_file("nomap", 8 * PS, 0, PS, data, 2);
    mrimg_source s;
    open_src(&s, path);
    s.seek_probe = -1; /* as on a file system without SEEK_HOLE */
    pg_region r = {.base = 0, .ps = PS, .first = 0, .end = 8};
    got g;
    got_init(&g, 8, PS, 0);
    pg_opts o = {0};
    mrimg_error e;
    assert_int_equal(pg_read(&s, &r, 1, &o, collect, &g, &e), 0);
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(g.kind[i], PG_DATA);
        assert_page(&g, i, i == 1 || i == 6);
    }
    assert_int_equal(o.bytes_read, 8 * PS);
    assert_int_equal(g.data_calls, 1); /* one large read */
    free(g.bytes);
    src_close(&s);
    free(path);
}

/* A region that runs past the end of the file: what is there is
 * delivered, then MRIMG_ERR_TRUNCATED names the pages and the offset. */
static void test_truncated(void **state)
{
    (void)state;
    const unsigned data[] = {0, 1, 2};
    char *path = make_file("short", 3 * PS + 100, 0, PS, data, 3);
    mrimg_source s;
    open_src(&s, path);
    pg_region r = {.base = 0, .ps = PS, .first = 0, .end = 6};
    got g;
    got_init(&g, 6, PS, 0);
    pg_opts o = {.max_read = PS, .what = "RAM pages of the test"};
    mrimg_error e;
    assert_int_equal(pg_read(&s, &r, 1, &o, collect, &g, &e), MRIMG_ERR_TRUNCATED);
    assert_non_null(strstr(e.message, "RAM pages of the test"));
    assert_int_equal(e.offset, 3 * PS + 100);
    for (unsigned i = 0; i < 3; i++)
        assert_page(&g, i, true);
    assert_int_equal(g.kind[3], -1);
    /* a region wholly past the end, after a hole: the same error */
    free(g.bytes);
    got_init(&g, 4, PS, 100);
    r = (pg_region){.base = 0, .ps = PS, .first = 100, .end = 104};
    o = (pg_opts){0};
    assert_int_equal(pg_read(&s, &r, 1, &o, collect, &g, &e), MRIMG_ERR_TRUNCATED);
    assert_int_equal(g.calls, 0);
    free(g.bytes);
    src_close(&s);
    free(path);
}

/* Runs crossing extent boundaries: a page half data, half hole (pages of
 * 8 KiB over 4 KiB blocks) is read, never taken for a hole; long runs are
 * cut at max_read; several regions are walked in order with their ids. */
static void test_extent_boundaries(void **state)
{
    (void)state;
    size_t ps = 2 * PS;
    char *path = malloc(strlen(dir) + 16);
    sprintf(path, "%s/halves", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)(16 * ps)), 0);
    uint8_t *pg = malloc(ps);
    /* page 2: only its first half; page 3: only its second; 8..15: whole */
    fill_page(pg, ps, 2);
    assert_int_equal(pwrite(fd, pg, PS, (off_t)(2 * ps)), (ssize_t)PS);
    fill_page(pg, ps, 3);
    assert_int_equal(pwrite(fd, pg + PS, PS, (off_t)(3 * ps + PS)), (ssize_t)PS);
    for (unsigned i = 8; i < 16; i++) {
        fill_page(pg, ps, i);
        assert_int_equal(pwrite(fd, pg, ps, (off_t)(i * ps)), (ssize_t)ps);
    }
    close(fd);
    mrimg_source s;
    open_src(&s, path);
    pg_region r[2] = {{.base = 0, .ps = ps, .first = 0, .end = 8, .id = 0},
                      {.base = 0, .ps = ps, .first = 8, .end = 16, .id = 1}};
    got g;
    got_init(&g, 16, ps, 0);
    pg_opts o = {.max_read = 3 * ps};
    mrimg_error e;
    assert_int_equal(pg_read(&s, r, 2, &o, collect, &g, &e), 0);
    uint8_t *want = calloc(1, ps);
    fill_page(want, ps, 2);
    memset(want + PS, 0, PS);
    assert_memory_equal(g.bytes + 2 * ps, want, ps);
    memset(want, 0, ps);
    fill_page(pg, ps, 3);
    memcpy(want + PS, pg + PS, PS);
    assert_memory_equal(g.bytes + 3 * ps, want, ps);
    for (unsigned i = 8; i < 16; i++)
        assert_page(&g, i, true);
    for (unsigned i = 0; i < 8; i++)
        if (i != 2 && i != 3)
            assert_page(&g, i, false);
    assert_int_equal(g.kind[2], PG_DATA);
    assert_int_equal(g.kind[3], PG_DATA);
    assert_true(g.max_run <= 3); /* cut at max_read */
    if (has_holes(path)) {
        assert_int_equal(g.kind[0], PG_HOLE);
        assert_int_equal(g.kind[5], PG_HOLE);
        assert_int_equal(o.bytes_read, 10 * ps);
    }
    free(want);
    free(pg);
    free(g.bytes);
    src_close(&s);
    free(path);
}

/* The bitmap loader: bits as QEMU stores them, stray bits past the last
 * page counted and located; a bitmap past the end of the file is an error. */
static void test_bitmap(void **state)
{
    (void)state;
    char *path = malloc(strlen(dir) + 16);
    sprintf(path, "%s/bitmap", dir);
    uint8_t words[16] = {0};
    words[0] = 0x05;        /* pages 0 and 2 */
    words[8] = 0x01;        /* page 64 */
    words[8 + 1] = 0x0c;    /* bits 74, 75: past 70 pages */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(pwrite(fd, words, 16, 100), 16);
    close(fd);
    mrimg_source s;
    open_src(&s, path);
    lbitmap bm;
    mrimg_error e;
    assert_int_equal(lb_init(&bm, 70, &e), 0);
    uint64_t stray = 0, first = 0;
    assert_int_equal(pg_load_bitmap(&s, 100, 70, &bm, &stray, &first, &e), 0);
    assert_int_equal(lb_count(&bm), 3);
    assert_true(lb_test(&bm, 0) && lb_test(&bm, 2) && lb_test(&bm, 64));
    assert_int_equal(stray, 2);
    assert_int_equal(first, 74);
    lb_free(&bm);
    assert_int_equal(lb_init(&bm, 200, &e), 0);
    assert_int_equal(pg_load_bitmap(&s, 100, 200, &bm, NULL, NULL, &e), MRIMG_ERR_TRUNCATED);
    assert_non_null(strstr(e.message, "mapped-ram bitmap"));
    lb_free(&bm);
    src_close(&s);
    free(path);
}

/* The vector: doubling from min, the cap, overflow refused with nothing
 * changed. */
static void test_vec(void **state)
{
    (void)state;
    VEC(uint64_t) v = {0};
    for (uint64_t i = 0; i < 100; i++)
        assert_true(vec_push(&v, i * 3, 16, 0));
    assert_int_equal(v.n, 100);
    assert_int_equal(v.cap, 128);
    for (uint64_t i = 0; i < 100; i++)
        assert_int_equal(v.v[i], i * 3);
    /* a cap of 130 elements: growth stops there, then push fails */
    VEC(uint64_t) c = {0};
    for (unsigned i = 0; i < 130; i++)
        assert_true(vec_push(&c, i, 16, 130));
    assert_int_equal(c.cap, 130);
    assert_false(vec_push(&c, 1, 16, 130));
    assert_int_equal(c.n, 130);
    /* sizes that overflow size_t: refused, the array unchanged */
    uint64_t *keep = v.v;
    size_t cap = v.cap;
    assert_false(vec_reserve(v.v, v.cap, SIZE_MAX / 8 + 1, 16, 0));
    assert_false(vec_reserve(v.v, v.cap, SIZE_MAX, 16, 0));
    assert_ptr_equal(v.v, keep);
    assert_int_equal(v.cap, cap);
    /* a max beyond what size_t can hold is clamped: the doubling cannot
     * overflow either */
    v.cap = SIZE_MAX / 8 - 1; /* pretend: reserve must not compute 2 * cap */
    assert_true(vec_reserve(v.v, v.cap, 5, 16, 0)); /* already room */
    v.cap = cap;
    /* exact growth (max = need), as the codecs' output buffers use it */
    uint8_t *b = NULL;
    size_t bc = 0;
    assert_true(vec_reserve(b, bc, 1000, 0, 1000));
    assert_int_equal(bc, 1000);
    assert_true(vec_reserve(b, bc, 1500, 0, 1500));
    assert_int_equal(bc, 1500);
    free(b);
    vec_free(&v);
    vec_free(&c);
    assert_null(v.v);
    assert_int_equal(v.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holes),
        cmocka_unit_test(test_data_where_holes_are),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_extent_boundaries),
        cmocka_unit_test(test_bitmap),
        cmocka_unit_test(test_vec),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
