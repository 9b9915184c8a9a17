/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One pass over a pipe for what needs the judgement and the guest state:
 * the digest and the comparison carry the quick judgement on their walk's
 * pass, the device state is the tail the scan's pass kept in the image
 * (vCPUs, memory map), the content statistics are the scan's, and a
 * judgement riding on another consumer's pass leaves that pass's parse to
 * fail as it would without it.  Each result from a pipe equals the one
 * from the file. */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/image.h"

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return test_group_tmpdir_setup(&g_dir, "onepass");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

/* A pipe whose writer (a child) writes the file at path: *pid is the
 * child's, the returned path names the read end (/proc/self/fd/N). */
typedef struct tpipe {
    int fd;
    pid_t pid;
    char path[64];
} tpipe;

static void pipe_open(tpipe *p, const char *file)
{
    size_t n;
    uint8_t *all = read_file(file, &n);
    assert_non_null(all);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        close(fds[0]);
        size_t done = 0;
        while (done < n) {
            ssize_t w = write(fds[1], all + done, n - done);
            if (w <= 0)
                _exit(1);
            done += (size_t)w;
        }
        _exit(0);
    }
    free(all);
    close(fds[1]);
    p->fd = fds[0];
    snprintf(p->path, sizeof(p->path), "/proc/self/fd/%d", fds[0]);
}

static void pipe_close(tpipe *p)
{
    close(p->fd);
    int st;
    waitpid(p->pid, &st, 0);
}

static mrimg_image *open_pipe(tpipe *p, const char *rel)
{
    pipe_open(p, fixture_path(rel));
    mrimg_image *img = test_open(p->path);
    assert_false(src_seekable(&img->src));
    return img;
}

static mrimg_digest *digest(mrimg_image *img)
{
    mrimg_digest *d = NULL;
    mrimg_error err;
    if (mrimg_digest_compute(img, &d, NULL, NULL, &err) != 0)
        fail_msg("digest: %s", err.message);
    return d;
}

/* The digest of a pipe is the file's, in one pass: the judgement rode on
 * it (cached: mrimg_check reads nothing more, which a pipe could not). */
static void test_digest_judged_on_its_pass(void **state)
{
    (void)state;
    static const char *const files[] = {"libvirt/zstd.sav", "libvirt/raw.sav",
                                        "qemu/plain.mig", "qemu/plain-q35.mig"};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(files); i++) {
        mrimg_image *f = test_open(fixture_path(files[i]));
        mrimg_digest *df = digest(f);
        /* a file too: one pass, the judgement is cached by the walk */
        assert_non_null(f->judgement);
        tpipe p;
        mrimg_image *g = open_pipe(&p, files[i]);
        mrimg_digest *dg = digest(g);
        assert_non_null(g->judgement);
        assert_memory_equal(df->digest, dg->digest, MRIMG_DIGEST_LEN);
        assert_memory_equal(df->device_digest, dg->device_digest, MRIMG_DIGEST_LEN);
        assert_int_equal(df->device_bytes, dg->device_bytes);
        const mrimg_verify_result *rf, *rg;
        mrimg_error err;
        assert_int_equal(mrimg_check(f, MRIMG_CHECK_QUICK, NULL, NULL, &rf, &err), 0);
        if (mrimg_check(g, MRIMG_CHECK_QUICK, NULL, NULL, &rg, &err) != 0)
            fail_msg("%s: check after the digest: %s", files[i], err.message);
        assert_int_equal(rf->errors, rg->errors);
        assert_int_equal(rf->warnings, rg->warnings);
        assert_int_equal(rf->nproblems, rg->nproblems);
        assert_int_equal(rg->errors, 0);
        mrimg_digest_free(df);
        mrimg_digest_free(dg);
        mrimg_close(f);
        mrimg_close(g);
        pipe_close(&p);
    }
}

/* A comparison with a pipe on either side: the same result as of the
 * files, both judgements cached. */
static void test_compare_pipe(void **state)
{
    (void)state;
    for (int side = 0; side < 2; side++) {
        tpipe p;
        mrimg_image *g = open_pipe(&p, "libvirt/raw-paused.sav");
        mrimg_image *f = test_open(fixture_path("libvirt/raw.sav"));
        mrimg_image *g2 = test_open(fixture_path("libvirt/raw-paused.sav"));
        mrimg_image *f2 = test_open(fixture_path("libvirt/raw.sav"));
        mrimg_compare_result *r = NULL, *r2 = NULL;
        mrimg_error err;
        int rc = side ? mrimg_compare(f, g, &r, NULL, NULL, &err)
                      : mrimg_compare(g, f, &r, NULL, NULL, &err);
        if (rc != 0)
            fail_msg("compare with a pipe: %s", err.message);
        rc = side ? mrimg_compare(f2, g2, &r2, NULL, NULL, &err)
                  : mrimg_compare(g2, f2, &r2, NULL, NULL, &err);
        assert_int_equal(rc, 0);
        assert_non_null(g->judgement);
        assert_non_null(f->judgement);
        assert_int_equal(r->identical, r2->identical);
        assert_false(r->identical);
        assert_int_equal(r->nblocks, r2->nblocks);
        for (unsigned i = 0; i < r->nblocks; i++) {
            assert_int_equal(r->blocks[i].pages_differ, r2->blocks[i].pages_differ);
            assert_int_equal(r->blocks[i].first_diff_page, r2->blocks[i].first_diff_page);
        }
        assert_int_equal(r->device_identical, r2->device_identical);
        assert_int_equal(r->device_bytes_differ, r2->device_bytes_differ);
        assert_int_equal(r->device_detail, 1);
        assert_memory_equal(r->digest_a->digest, r2->digest_a->digest, MRIMG_DIGEST_LEN);
        assert_memory_equal(r->digest_b->digest, r2->digest_b->digest, MRIMG_DIGEST_LEN);
        mrimg_compare_free(r);
        mrimg_compare_free(r2);
        mrimg_close(f);
        mrimg_close(g);
        mrimg_close(f2);
        mrimg_close(g2);
        pipe_close(&p);
    }
}

/* After the judgement's pass over a pipe (it scans too), the vCPUs and the
 * memory map come from the kept device state, as from the file. */
static void test_device_state_kept(void **state)
{
    (void)state;
    static const char *const files[] = {"libvirt/xz.sav", "qemu/plain-q35.mig"};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(files); i++) {
        tpipe p;
        mrimg_image *g = open_pipe(&p, files[i]);
        mrimg_image *f = test_open(fixture_path(files[i]));
        const mrimg_verify_result *jr;
        mrimg_error err;
        assert_int_equal(mrimg_check(g, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &err), 0);
        assert_int_equal(mrimg_check(f, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &err), 0);
        /* the judgement rode on the scan's pass, for the file too */
        assert_true(g->scanned);
        assert_true(f->scanned);
        assert_int_equal(mrimg_scan(g, 0, NULL, NULL, &err), 0);
        assert_int_equal(mrimg_scan(f, 0, NULL, NULL, &err), 0);
        /* the tail, kept once: the stream from the RAM END to its end */
        assert_non_null(g->tail);
        assert_int_equal(g->tail_start, g->si.ram_end);
        assert_int_equal(g->tail_len, g->si.stream_size - g->si.ram_end);
        assert_int_equal(f->tail_len, g->tail_len);
        assert_memory_equal(f->tail, g->tail, g->tail_len);
        const uint8_t *kept = f->tail;
        mrimg_cpus *cf = NULL, *cg = NULL;
        if (mrimg_cpus_read(g, &cg, &err) != 0)
            fail_msg("%s: vCPUs from a pipe: %s", files[i], err.message);
        assert_int_equal(mrimg_cpus_read(f, &cf, &err), 0);
        assert_true(mrimg_cpus_count(cf) > 0);
        assert_int_equal(mrimg_cpus_count(cf), mrimg_cpus_count(cg));
        for (unsigned c = 0; c < mrimg_cpus_count(cf); c++) {
            mrimg_x86_cpu a, b;
            a.size = b.size = sizeof(a);
            assert_int_equal(mrimg_cpus_get(cf, c, &a, &err), 0);
            assert_int_equal(mrimg_cpus_get(cg, c, &b, &err), 0);
            assert_memory_equal(&a, &b, sizeof(a));
        }
        mrimg_memmap *mf = NULL, *mg = NULL;
        if (mrimg_memory_map(g, &mg, &err) != 0)
            fail_msg("%s: memory map from a pipe: %s", files[i], err.message);
        assert_int_equal(mrimg_memory_map(f, &mf, &err), 0);
        assert_int_equal(mf->nranges, mg->nranges);
        assert_int_equal(mf->devices_decoded, mg->devices_decoded);
        assert_true(mf->devices_decoded);
        for (unsigned r = 0; r < mf->nranges; r++) {
            assert_int_equal(mf->ranges[r].gpa, mg->ranges[r].gpa);
            assert_int_equal(mf->ranges[r].length, mg->ranges[r].length);
            assert_int_equal(mf->ranges[r].block, mg->ranges[r].block);
        }
        /* nothing read the tail again: the same buffer */
        assert_ptr_equal(f->tail, kept);
        mrimg_cpus_free(cf);
        mrimg_cpus_free(cg);
        mrimg_memory_map_free(mf);
        mrimg_memory_map_free(mg);
        mrimg_close(f);
        mrimg_close(g);
        pipe_close(&p);
    }
}

/* Content statistics of a plain stream from a pipe: counted by the scan's
 * pass (the judgement's, here), as of the file; no second pass. */
static void test_content_on_the_scan(void **state)
{
    (void)state;
    tpipe p;
    mrimg_image *g = open_pipe(&p, "qemu/plain-nozerodetect.mig");
    mrimg_image *f = test_open(fixture_path("qemu/plain-nozerodetect.mig"));
    const mrimg_verify_result *jr;
    mrimg_error err;
    assert_int_equal(mrimg_check(g, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &err), 0);
    if (mrimg_content_scan(g, NULL, NULL, &err) != 0)
        fail_msg("content from a pipe: %s", err.message);
    assert_int_equal(mrimg_content_scan(f, NULL, NULL, &err), 0);
    assert_int_equal(mrimg_block_count(f), mrimg_block_count(g));
    uint64_t zf = 0;
    for (unsigned i = 0; i < mrimg_block_count(f); i++) {
        assert_int_equal(mrimg_block(f, i)->pages_zero_filled,
                         mrimg_block(g, i)->pages_zero_filled);
        zf += mrimg_block(f, i)->pages_zero_filled;
    }
    assert_true(zf > 0); /* zero-page detection was off */
    mrimg_close(f);
    mrimg_close(g);
    pipe_close(&p);
}

/* A bad stream magic after a good libvirt header, from a pipe: the
 * judgement riding on the scan finds stream.magic, and the scan itself
 * fails as it does on the file (it used to "succeed" with nothing
 * parsed: the judgement skipped the parse for every consumer). */
static void test_riding_judgement_bad_head(void **state)
{
    (void)state;
    size_t n;
    uint8_t *all = read_file(fixture_path("libvirt/raw.sav"), &n);
    assert_non_null(all);
    uint8_t *q = memmem(all, n, "QEVM", 4);
    assert_non_null(q);
    q[3] = 'X';
    char bad[4200];
    snprintf(bad, sizeof(bad), "%s/badmagic.sav", g_dir);
    write_file(bad, all, n);
    free(all);
    for (int piped = 0; piped < 2; piped++) {
        tpipe p;
        mrimg_image *img;
        if (piped) {
            pipe_open(&p, bad);
            img = test_open(p.path);
        } else {
            img = test_open(bad);
        }
        const mrimg_verify_result *jr;
        mrimg_error err;
        assert_int_equal(mrimg_check(img, MRIMG_CHECK_QUICK, NULL, NULL, &jr, &err), 0);
        assert_int_equal(jr->errors, 1);
        assert_string_equal(jr->problems[0].check, "stream.magic");
        int rc = mrimg_scan(img, 0, NULL, NULL, &err);
        assert_int_equal(rc, MRIMG_ERR_FORMAT);
        if (!strstr(err.message, "expected the QEMU stream magic"))
            fail_msg("scan: %s", err.message);
        /* nor does a digest succeed with nothing */
        mrimg_digest *d = NULL;
        assert_true(mrimg_digest_compute(img, &d, NULL, NULL, &err) < 0);
        assert_null(d);
        mrimg_close(img);
        if (piped)
            pipe_close(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_judged_on_its_pass),
        cmocka_unit_test(test_compare_pipe),
        cmocka_unit_test(test_device_state_kept),
        cmocka_unit_test(test_content_on_the_scan),
        cmocka_unit_test(test_riding_judgement_bad_head),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
