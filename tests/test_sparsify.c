/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Holes on purpose: --sparsify in place and --preallocate, against the
 * allocation QEMU itself produced (facts.json) and on file systems that
 * refuse what is asked. */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *tmpdir;
static fact_file facts[32];
static unsigned nfacts;

static const char *tpath(const char *name)
{
    static char bufs[4][4096];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, 4096, "%s/%s", tmpdir, name);
    return b;
}

/* Copy with every hole filled (what scp or a naive backup does). */
static void copy_dense(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    static uint8_t buf[1 << 20];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

static uint64_t allocated(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

/* A densely copied mapped-ram image gets back exactly the allocation QEMU
 * gave it, reads back byte for byte the same, and a second run punches
 * nothing. */
static void test_regain_allocation(void **state)
{
    (void)state;
    unsigned checked = 0;
    for (unsigned f = 0; f < nfacts; f++) {
        if (!facts[f].mapped || facts[f].size > (200u << 20))
            continue;
        char rel[128];
        snprintf(rel, sizeof(rel), "qemu/%.60s", facts[f].file);
        const char *dense = tpath("dense.mig");
        copy_dense(fixture_path(rel), dense);
        assert_true(allocated(dense) >= facts[f].size / 2);
        mrimg_sparsify_stats st = {.size = sizeof(st)};
        mrimg_error e;
        if (mrimg_sparsify(dense, facts[f].offset, NULL, NULL, &st, &e) != 0)
            fail_msg("%s: %s", rel, e.message);
        uint64_t a = allocated(dense), want = facts[f].allocated;
        if (strstr(rel, "nozerodetect")) {
            /* QEMU wrote the zero pages as data; they are zero, so they go:
             * the result is what QEMU writes with zero detection on */
            for (unsigned g = 0; g < nfacts; g++)
                if (!strcmp(facts[g].file, "mapped.mig"))
                    want = facts[g].allocated;
        }
        /* within file-system block rounding of what QEMU wrote */
        if (a > want + 65536 || a + 65536 < want)
            fail_msg("%s: %llu bytes allocated after sparsify, QEMU's file had %llu", rel,
                     (unsigned long long)a, (unsigned long long)want);
        assert_int_equal(st.allocated_after, a);
        assert_true(st.bytes_punched > 0);
        test_assert_same_file(dense, fixture_path(rel));

        assert_int_equal(mrimg_sparsify(dense, facts[f].offset, NULL, NULL, &st, &e), 0);
        assert_int_equal(st.bytes_punched, 0);
        assert_int_equal(st.runs_punched, 0);
        assert_int_equal(allocated(dense), a);
        unlink(dense);
        checked++;
    }
    assert_true(checked >= 8);
}

/* libvirt's sparse image: the same, plus the XML padding. */
static void test_libvirt_sparse(void **state)
{
    (void)state;
    const char *dense = tpath("dense.sav");
    copy_dense(fixture_path("libvirt/sparse.sav"), dense);
    mrimg_sparsify_stats st = {.size = sizeof(st)};
    mrimg_error e;
    assert_int_equal(mrimg_sparsify(dense, 0, NULL, NULL, &st, &e), 0);
    assert_true(st.allocated_after < st.allocated_before / 20);
    test_assert_same_file(dense, fixture_path("libvirt/sparse.sav"));
    /* a raw image: only its XML padding, never the stream */
    copy_dense(fixture_path("libvirt/raw.sav"), dense);
    assert_int_equal(mrimg_sparsify(dense, 0, NULL, NULL, &st, &e), 0);
    assert_true(st.bytes_punched > 0 && st.bytes_punched <= 65536);
    test_assert_same_file(dense, fixture_path("libvirt/raw.sav"));
    /* a bare plain stream: refused, untouched */
    copy_dense(fixture_path("qemu/plain.mig"), dense);
    assert_int_equal(mrimg_sparsify(dense, 0, NULL, NULL, &st, &e), MRIMG_ERR_UNSUPPORTED);
    test_assert_same_file(dense, fixture_path("qemu/plain.mig"));
}

/* Killed mid-way: whatever was punched, the content is unchanged. */
static int kill_after(void *opaque, uint64_t done, uint64_t total)
{
    (void)total;
    if (done >= *(uint64_t *)opaque)
        raise(SIGKILL);
    return 0;
}

static void test_sigkill(void **state)
{
    (void)state;
    const char *dense = tpath("kill.mig");
    static const uint64_t points[] = {1u << 20, 20u << 20, 60u << 20};
    for (size_t i = 0; i < 3; i++) {
        copy_dense(fixture_path("qemu/mapped-nozerodetect.mig"), dense);
        pid_t pid = fork();
        if (pid == 0) {
            uint64_t at = points[i];
            mrimg_error e;
            mrimg_sparsify(dense, 0, kill_after, &at, NULL, &e);
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        test_assert_same_file(dense, fixture_path("qemu/mapped-nozerodetect.mig"));
        mrimg_error e;
        mrimg_image *img = t_open(dense, NULL, &e);
        assert_non_null(img);
        assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
        mrimg_close(img);
    }
}

/* File systems that refuse: read-only, and one without hole punching. */
static void test_refusals(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char *mnt = test_tmpdir("mnt");
    char f[4200];
    snprintf(f, sizeof(f), "%s/img.mig", mnt);
    mrimg_sparsify_stats st = {.size = sizeof(st)};
    mrimg_error e;

    assert_int_equal(mount("mrimg-test", mnt, "ramfs", 0, NULL), 0);
    copy_dense(fixture_path("qemu/mapped.mig"), f);
    assert_int_equal(mrimg_sparsify(f, 0, NULL, NULL, &st, &e), MRIMG_ERR_UNSUPPORTED);
    assert_non_null(strstr(e.message, "cannot punch holes"));
    test_assert_same_file(f, fixture_path("qemu/mapped.mig"));
    assert_int_equal(umount(mnt), 0);

    assert_int_equal(mount("mrimg-test", mnt, "tmpfs", 0, "size=128m"), 0);
    copy_dense(fixture_path("qemu/mapped.mig"), f);
    uint64_t before = allocated(f);
    assert_int_equal(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    assert_int_equal(mrimg_sparsify(f, 0, NULL, NULL, &st, &e), MRIMG_ERR_IO);
    assert_non_null(strstr(e.message, "Read-only"));
    assert_int_equal(allocated(f), before);
    assert_int_equal(umount(mnt), 0);
    rmdir(mnt);
    free(mnt);
}

/* --preallocate: a full disk is found before any page is written, and a
 * successful run gives the same image as without it. */
static void test_preallocate(void **state)
{
    (void)state;
    t_convert_opts o;
    t_convert_opts_init(&o);
    o.out = MRIMG_OUT_SPARSE;
    o.force = 1;
    o.preallocate = 1;
    mrimg_error e;
    mrimg_convert_stats st, st2;
    mrimg_image *img = t_open(fixture_path("libvirt/raw.sav"), NULL, &e);
    assert_non_null(img);
    assert_int_equal(t_convert(img, tpath("pre.sav"), &o, &st, &e), 0);
    assert_true(st.preallocated >= st.pages_data * 4096);
    o.preallocate = 0;
    assert_int_equal(t_convert(img, tpath("nopre.sav"), &o, &st2, &e), 0);
    test_assert_same_file(tpath("pre.sav"), tpath("nopre.sav"));
    /* reserved slots of pages that turned out zero were given back */
    assert_true(allocated(tpath("pre.sav")) <= allocated(tpath("nopre.sav")) + 65536);

    /* compressed inputs cannot tell which pages hold data up front */
    mrimg_image *gz = t_open(fixture_path("libvirt/gzip.sav"), NULL, &e);
    o.preallocate = 1;
    assert_int_equal(t_convert(gz, tpath("x.sav"), &o, NULL, &e), MRIMG_ERR_UNSUPPORTED);
    mrimg_close(gz);
    o.out = MRIMG_OUT_ZSTD;
    assert_int_equal(t_convert(img, tpath("x.sav"), &o, NULL, &e), MRIMG_ERR_INVAL);
    o.out = MRIMG_OUT_SPARSE;

    if (geteuid() == 0) {
        /* 2 MiB of room: the 2.7 MiB of data does not fit; found at once */
        char *mnt = test_tmpdir("full");
        char f[4200];
        snprintf(f, sizeof(f), "%s/out.sav", mnt);
        assert_int_equal(mount("mrimg-test", mnt, "tmpfs", 0, "size=2m"), 0);
        assert_int_equal(t_convert(img, f, &o, &st, &e), MRIMG_ERR_NOSPC);
        assert_int_not_equal(access(f, F_OK), 0);
        struct stat sb;
        assert_int_equal(stat(mnt, &sb), 0);
        assert_int_equal(umount(mnt), 0);
        rmdir(mnt);
        free(mnt);
    }
    mrimg_close(img);
}

static int group_setup(void **state)
{
    (void)state;
    tmpdir = test_tmpdir("sparsify");
    nfacts = facts_load(facts, 32);
    return tmpdir && nfacts ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    test_rmdir_all(tmpdir);
    free(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regain_allocation),
        cmocka_unit_test(test_libvirt_sparse),
        cmocka_unit_test(test_sigkill),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_preallocate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
