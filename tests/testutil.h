/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers for the unit tests: fixture paths, facts.json, temp dirs. */
#ifndef MRIMG_TESTUTIL_H
#define MRIMG_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mrimg.h"

/* Path of an unpacked fixture: fixture_path("qemu/plain.mig"). Static buffer
 * per call slot (8 slots, reused round-robin). */
const char *fixture_path(const char *rel);
/* Read a whole (small) file; *len set; NULL on failure. Caller frees. */
uint8_t *read_file(const char *path, size_t *len);
/* Create (or truncate) path holding buf[0, len); fails the test on error. */
void write_file(const char *path, const void *buf, size_t len);
/* A fresh empty directory under $TMPDIR (removed by test_rmdir_all). */
char *test_tmpdir(const char *tag);
void test_rmdir_all(const char *dir);
/* cmocka group setup/teardown bodies: *dir = a fresh test_tmpdir(tag);
 * teardown removes it and frees it.  Each test file wraps them in its
 * own two-line setup/teardown naming its directory variable and tag. */
int test_group_tmpdir_setup(char **dir, const char *tag);
int test_group_tmpdir_teardown(char **dir);
/* Copy src to dst keeping holes (the mapped-ram fixtures are sparse). */
void test_sparse_copy(const char *src, const char *dst);
/* A writable copy of fixture rel, named name, in a fresh test_tmpdir(tag):
 * its path in path[cap]; returns the directory (test_rmdir_all, free). */
char *test_fixture_copy(const char *rel, const char *tag, const char *name, char *path,
                        size_t cap);
/* mrimg_open(path), failing the test with the library's message. */
mrimg_image *test_open(const char *path);
/* The bytes of the (small) image at path, for a test to alter, and in *si
 * its stream as mrimg_scan found it (where its parts lie); fails the test
 * with the library's message.  Caller frees. */
uint8_t *test_read_scanned(const char *path, size_t *len, mrimg_stream_info *si);
/* The files a and b hold the same bytes (small files: read whole). */
void test_assert_same_file(const char *a, const char *b);

/* The options of an operation as plain fields, for tests that vary a few
 * of them: t_convert / t_verify / t_open turn them into the library's
 * option handle (every parameter through its setter, so that each
 * conversion of the suite goes through the public handle API) and call
 * mrimg_convert / mrimg_verify / mrimg_open.  t_convert sets st->size. */
typedef struct t_convert_opts {
    mrimg_output out;
    int level;
    unsigned threads;
    int force, compact;
    const char *xml;
    int running, allow_incomplete, preallocate;
    mrimg_progress_fn progress;
    void *progress_ctx;
    void (*progress_phase)(void *ctx, const char *phase);
    const char *cookie;
} t_convert_opts;
void t_convert_opts_init(t_convert_opts *o); /* the library's defaults */
int t_convert(mrimg_image *in, const char *out_path, const t_convert_opts *o,
              mrimg_convert_stats *st, mrimg_error *err);

typedef struct t_verify_opts {
    uint64_t stream_offset;
    unsigned threads, max_problems;
    int skip_data;
    mrimg_progress_fn progress;
    void *progress_ctx;
} t_verify_opts;
int t_verify(const char *path, const t_verify_opts *o, mrimg_verify_result **res,
             mrimg_error *err);

typedef struct t_open_opts {
    uint64_t stream_offset;
    unsigned threads;
} t_open_opts;
/* o may be NULL */
mrimg_image *t_open(const char *path, const t_open_opts *o, mrimg_error *err);

/* facts.json (tests/facts.c parses it with a tiny JSON reader) */
typedef struct fact_block { char name[256]; uint64_t used; } fact_block;
typedef struct fact_file {
    char file[64];
    char machine[64];
    uint64_t mem_mib, offset, size, allocated, normal, duplicate, total;
    int has_stats, live, mapped;
    unsigned nblocks;
    fact_block blocks[32];
    uint64_t blob_gpa, blob_len;
} fact_file;
/* Loads fixtures/qemu/facts.json; returns the number of files (<= max). */
unsigned facts_load(fact_file *out, unsigned max);

#endif
