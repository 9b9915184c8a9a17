/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared helpers of the fuzz harnesses (header-only, one copy per target).
 *
 * The library works on files, so the harnesses hand it the input as a file:
 * a memfd (tmpfs-backed, no disk I/O) opened through /proc/self/fd/N, which
 * runs the real code path: open(2), fstat, pread, SEEK_DATA/SEEK_HOLE.
 * Every 4 KiB-aligned all-zero page of the input is punched into a hole, so
 * the hole-skipping paths (mapped-ram pages, the RAM replay file) are
 * exercised as they are on real sparse images; the bytes read back are the
 * same.  Outputs (conversions, encoders) go to a private directory in
 * /dev/shm, removed at exit.
 *
 * Everything runs single-threaded (threads = 1), so that coverage is
 * deterministic, except the second handle of fuzz_stream, which reads
 * ahead on a second thread to compare both readers. */
#ifndef MRIMG_FUZZ_COMMON_H
#define MRIMG_FUZZ_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h" /* mrimg.h and the internal helpers */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A failed oracle (not a library error): abort the run so the fuzzer
 * records the input.  Kept in release builds (no assert()). */
#define FZ_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz oracle failed: %s (%s:%d)\n", #cond,        \
                    __FILE__, __LINE__);                                      \
            fprintf(stderr, "  " __VA_ARGS__);                                \
            fputc('\n', stderr);                                              \
            __builtin_trap();                                                 \
        }                                                                     \
    } while (0)

#define FZ_FN static inline __attribute__((unused))

/* MRIMG_FUZZ_DEBUG=1: say what each run did (for replaying by hand). */
FZ_FN bool fz_debug(void)
{
    static int on = -1;
    if (on < 0)
        on = getenv("MRIMG_FUZZ_DEBUG") != NULL;
    return on;
}
#define FZ_LOG(...)                                                           \
    do {                                                                      \
        if (fz_debug())                                                       \
            fprintf(stderr, "  " __VA_ARGS__);                                \
    } while (0)

/* An input file: one memfd per slot, reused across runs. */
typedef struct fz_file {
    int fd;
    char path[64];
} fz_file;

static char fz_dir[64] __attribute__((unused));

/* Remove every file left in the output directory (outputs of one run). */
FZ_FN void fz_clean_outputs(void)
{
    DIR *d = fz_dir[0] ? opendir(fz_dir) : NULL;
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char p[400];
        snprintf(p, sizeof(p), "%s/%s", fz_dir, e->d_name);
        if (unlink(p) != 0 && errno == EISDIR) {
            /* a directory output (RAM files): its files, then itself */
            DIR *sd = opendir(p);
            struct dirent *se;
            while (sd && (se = readdir(sd))) {
                char q[700];
                snprintf(q, sizeof(q), "%s/%s", p, se->d_name);
                if (se->d_name[0] != '.' || (se->d_name[1] && se->d_name[1] != '.'))
                    unlink(q);
            }
            if (sd)
                closedir(sd);
            rmdir(p);
        }
    }
    closedir(d);
}

FZ_FN void fz_rmdir(void)
{
    if (!fz_dir[0])
        return;
    fz_clean_outputs();
    rmdir(fz_dir);
}


/* Process setup: a private output directory and the RAM replay files in
 * /dev/shm (the library's temporary files go to $MRIMG_TMPDIR). */
FZ_FN void fz_setup(void)
{
    if (fz_dir[0])
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof(fz_dir), "%s/mrimg-fuzz-XXXXXX", base);
    if (!mkdtemp(fz_dir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fz_rmdir);
    setenv("MRIMG_TMPDIR", fz_dir, 1);
}

/* The process setup libFuzzer (and replay.c) calls first. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_setup();
    return 0;
}

/* A path in the private output directory. */
FZ_FN const char *fz_out_path(const char *name)
{
    static char bufs[4][400];
    static unsigned next;
    char *b = bufs[next++ % 4];
    fz_setup();
    snprintf(b, sizeof(bufs[0]), "%s/%s", fz_dir, name);
    return b;
}

/* Put data into f (created on first use) followed by a hole of `hole`
 * bytes (ftruncate past the data: on a memfd even terabytes cost a few
 * microseconds and no memory), and return its path. */
FZ_FN const char *fz_file_put_hole(fz_file *f, const uint8_t *data, size_t size, uint64_t hole)
{
    fz_setup();
    if (f->fd <= 0) {
        f->fd = memfd_create("mrimg-fuzz", MFD_CLOEXEC);
        if (f->fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0 || ftruncate(f->fd, (off_t)(size + hole)) != 0) {
        perror("ftruncate");
        abort();
    }
    enum { PG = 4096 };
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < PG ? size - off : PG;
        bool zero = n == PG;
        for (size_t i = 0; zero && i < n; i++)
            zero = data[off + i] == 0;
        /* zero pages stay holes (the file was truncated to its size) */
        if (!zero) {
            size_t done = 0;
            while (done < n) {
                ssize_t w = pwrite(f->fd, data + off + done, n - done, (off_t)(off + done));
                if (w <= 0) {
                    perror("pwrite");
                    abort();
                }
                done += (size_t)w;
            }
        }
        off += n;
    }
    return f->path;
}

/* Put data into f and return its path. */
FZ_FN const char *fz_file_put(fz_file *f, const uint8_t *data, size_t size)
{
    return fz_file_put_hole(f, data, size, 0);
}

/* ---- the judgement and the guest state of a file -------------------------
 * The library's one judgement of an image is mrimg_verify()'s problem list
 * (error severity: the image will not restore or cannot be proven whole);
 * the guest state it holds is its digest (mrimg_digest_compute: RAM and
 * device state, independent of format and layout).  The conversion oracles
 * compare the two. */

typedef struct fz_judgement {
    bool ran;                 /* mrimg_verify ran to its end */
    uint64_t errors;          /* error-severity problems, all of them */
    uint64_t hard_errors;     /* ... other than container.incomplete (a
                               * dropped problem counts as hard: unknown) */
    char first[600];          /* the first error not excused, for messages */
} fz_judgement;

/* The judgement from mrimg_verify's return code rc, err and result res. */
FZ_FN void fz_judge_result(int rc, const mrimg_error *err, const mrimg_verify_result *res,
                           fz_judgement *j)
{
    memset(j, 0, sizeof(*j));
    j->ran = rc == 0 && res;
    if (!j->ran) {
        snprintf(j->first, sizeof(j->first), "verification failed: %s", err->message);
        return;
    }
    j->errors = res->errors;
    for (unsigned i = 0; i < res->nproblems; i++) {
        const mrimg_problem *p = &res->problems[i];
        if (p->severity != MRIMG_SEV_ERROR)
            continue;
        if (strcmp(p->check, "container.incomplete") != 0) {
            if (!j->hard_errors++)
                snprintf(j->first, sizeof(j->first), "%s: %s", p->check, p->message);
        } else if (!j->first[0]) {
            snprintf(j->first, sizeof(j->first), "%s: %s", p->check, p->message);
        }
    }
    if (res->dropped && res->errors)
        j->hard_errors += res->dropped;
}

/* mrimg_open with `threads` decoder threads (through the options handle). */
FZ_FN mrimg_image *fz_open(const char *path, unsigned threads, mrimg_error *err)
{
    mrimg_open_opts *o = mrimg_open_opts_create();
    if (!o)
        return NULL;
    mrimg_image *img = NULL;
    if (mrimg_open_opts_set(o, MRIMG_P_THREADS, threads, err) == 0)
        img = mrimg_open(path, o, err);
    mrimg_open_opts_free(o);
    return img;
}

/* mrimg_verify, one thread (max_problems 0: the default). */
FZ_FN int fz_verify(const char *path, unsigned max_problems, mrimg_verify_result **res,
                    mrimg_error *err)
{
    mrimg_verify_opts *vo = mrimg_verify_opts_create();
    if (!vo)
        return MRIMG_ERR_NOMEM;
    int rc = mrimg_verify_opts_set(vo, MRIMG_P_THREADS, 1, err);
    if (rc == 0)
        rc = mrimg_verify_opts_set(vo, MRIMG_P_MAX_PROBLEMS, max_problems, err);
    if (rc == 0)
        rc = mrimg_verify(path, vo, res, err);
    mrimg_verify_opts_free(vo);
    return rc;
}

/* Judge path (mrimg_verify, one thread). */
FZ_FN void fz_judge(const char *path, fz_judgement *j)
{
    mrimg_verify_result *res = NULL;
    mrimg_error err;
    int rc = fz_verify(path, 0, &res, &err);
    fz_judge_result(rc, &err, res, j);
    mrimg_verify_free(res);
}

/* Whether the judgement finds no error (container.incomplete excused when
 * asked). */
FZ_FN bool fz_sound(const fz_judgement *j, bool excuse_incomplete)
{
    return j->ran && (excuse_incomplete ? j->hard_errors == 0 : j->errors == 0);
}

/* The digest of the guest state of path; false (and err) if it has none. */
FZ_FN bool fz_digest(const char *path, uint8_t out[MRIMG_DIGEST_LEN], mrimg_error *err)
{
    mrimg_image *img = fz_open(path, 1, err);
    if (!img)
        return false;
    mrimg_digest *d = NULL;
    int rc = mrimg_digest_compute(img, &d, NULL, NULL, err);
    if (rc == 0)
        memcpy(out, d->digest, MRIMG_DIGEST_LEN);
    mrimg_digest_free(d);
    mrimg_close(img);
    return rc == 0;
}

/* Read a whole file (outputs) into memory; NULL if it cannot be read. */
FZ_FN uint8_t *fz_slurp(const char *path, size_t *len, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > cap) {
        close(fd);
        return NULL;
    }
    uint8_t *p = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (p && got < (size_t)st.st_size) {
        ssize_t n = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return p;
}

/* FNV-1a, to remember page contents without keeping them. */
FZ_FN uint64_t fz_hash(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- a checker of the RAM walk contract ------------------------------------
 * mrimg_ram_walk() promises every page of every block exactly once, blocks
 * in list order, pages ascending, npages > 0, and at most one RESTART that
 * starts it all over.  The checker verifies that and folds the content into
 * a hash (all-zero data pages count as zero pages, so layouts that store a
 * zero page differently hash alike).  Optionally it keeps a few samples of
 * data and zero pages for random-access checks. */

#define FZ_SAMPLES 32

typedef struct fz_sample {
    unsigned block;
    uint64_t page;
    uint64_t hash;          /* 0: a zero page */
} fz_sample;

typedef struct fz_walk {
    mrimg_image *img;
    unsigned block;         /* next page expected */
    uint64_t page;
    unsigned restarts;
    uint64_t hash;
    uint64_t data_pages, zero_pages;
    unsigned zero_runs;
    unsigned nsamples;
    fz_sample samples[FZ_SAMPLES];
    /* optional: content of blocks [0, ncopy), page size copy_ps */
    uint8_t **copy;
    unsigned ncopy;
} fz_walk;

FZ_FN void fz_walk_init(fz_walk *w, mrimg_image *img)
{
    memset(w, 0, sizeof(*w));
    w->img = img;
    w->hash = 0xcbf29ce484222325ull;
}

FZ_FN void fz_walk_norm(fz_walk *w)
{
    unsigned n = mrimg_block_count(w->img);
    while (w->block < n && w->page >= mrimg_block(w->img, w->block)->pages) {
        w->block++;
        w->page = 0;
    }
}

FZ_FN bool fz_page_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

FZ_FN int fz_walk_cb(void *opaque, unsigned block, uint64_t first, uint64_t npages,
                     const uint8_t *data, mrimg_error *err)
{
    (void)err;
    fz_walk *w = opaque;
    if (block == MRIMG_WALK_RESTART) {
        FZ_CHECK(w->restarts == 0, "a second walk restart");
        mrimg_image *img = w->img;
        uint8_t **copy = w->copy;
        unsigned ncopy = w->ncopy;
        unsigned r = w->restarts + 1;
        fz_walk_init(w, img);
        w->restarts = r;
        w->copy = copy;
        w->ncopy = ncopy;
        return 0;
    }
    fz_walk_norm(w);
    unsigned nb = mrimg_block_count(w->img);
    FZ_CHECK(block < nb, "walk: block %u of %u", block, nb);
    const mrimg_ram_block_info *bi = mrimg_block(w->img, block);
    FZ_CHECK(block == w->block && first == w->page,
             "walk: got block %u page %llu, expected block %u page %llu", block,
             (unsigned long long)first, w->block, (unsigned long long)w->page);
    FZ_CHECK(npages > 0 && npages <= bi->pages - first, "walk: %llu pages at %llu of %llu",
             (unsigned long long)npages, (unsigned long long)first,
             (unsigned long long)bi->pages);
    size_t ps = (size_t)bi->page_size;
    if (!data) {
        /* a zero run: sample its first and last page */
        w->zero_pages += npages;
        if (w->nsamples + 2 <= FZ_SAMPLES && w->zero_runs++ < 8) {
            w->samples[w->nsamples++] = (fz_sample){block, first, 0};
            if (npages > 1)
                w->samples[w->nsamples++] = (fz_sample){block, first + npages - 1, 0};
        }
        w->page = first + npages;
        return 0;
    }
    for (uint64_t k = 0; k < npages; k++) {
        const uint8_t *pg = data + k * ps;
        uint64_t h = 0;
        if (fz_page_zero(pg, ps)) {
            w->zero_pages++;
        } else {
            w->data_pages++;
            uint64_t id[2] = {block, first + k};
            h = fz_hash(pg, ps, 0xcbf29ce484222325ull);
            w->hash = fz_hash((const uint8_t *)id, sizeof(id), w->hash);
            w->hash = fz_hash((const uint8_t *)&h, sizeof(h), w->hash);
            if (block < w->ncopy && w->copy[block])
                memcpy(w->copy[block] + (first + k) * ps, pg, ps);
        }
        /* keep the first samples of each kind */
        if (w->nsamples < FZ_SAMPLES &&
            (h ? w->data_pages <= FZ_SAMPLES / 2 : w->zero_pages <= FZ_SAMPLES / 2))
            w->samples[w->nsamples++] = (fz_sample){block, first + k, h};
    }
    w->page = first + npages;
    return 0;
}

/* After a successful walk: was every page delivered? */
FZ_FN void fz_walk_done(fz_walk *w)
{
    fz_walk_norm(w);
    FZ_CHECK(w->block == mrimg_block_count(w->img), "walk ended at block %u of %u", w->block,
             mrimg_block_count(w->img));
}

/* Random access must agree with the walk on the sampled pages. */
FZ_FN void fz_check_samples(mrimg_image *img, const fz_walk *w)
{
    for (unsigned i = 0; i < w->nsamples; i++) {
        const fz_sample *s = &w->samples[i];
        const mrimg_ram_block_info *bi = mrimg_block(img, s->block);
        FZ_CHECK(bi, "sample block %u gone", s->block);
        size_t ps = (size_t)bi->page_size;
        uint64_t n = MRIMG_MIN(bi->pages - s->page, (uint64_t)3);
        uint8_t *buf = malloc(ps * n);
        FZ_CHECK(buf, "out of memory");
        mrimg_error err;
        int rc = mrimg_ram_read(img, s->block, s->page, n, buf, &err);
        FZ_CHECK(rc == 0, "mrimg_ram_read(%u, %llu, %llu) after a good walk: %s", s->block,
                 (unsigned long long)s->page, (unsigned long long)n, err.message);
        uint64_t h = fz_page_zero(buf, ps) ? 0 : fz_hash(buf, ps, 0xcbf29ce484222325ull);
        FZ_CHECK(h == s->hash, "mrimg_ram_read(%u, %llu) differs from the walk", s->block,
                 (unsigned long long)s->page);
        int hd = mrimg_ram_page_has_data(img, s->block, s->page, &err);
        FZ_CHECK(hd == 0 || hd == 1, "has_data: %s", err.message);
        if (s->hash)
            FZ_CHECK(hd == 1, "a page with content has no data bit");
        free(buf);
    }
}

/* The input of the device-state targets: a big-endian 32-bit length, that
 * many bytes of VMDESCRIPTION JSON (cut at the input's end), then the
 * device-state tail.  Both parts are copied to exact-size buffers, so that
 * ASan sees any read past either; the caller frees *json and *tail.
 * -1 (nothing allocated) when the input is shorter than the length. */
FZ_FN int fz_split_json_tail(const uint8_t *data, size_t size, char **json, size_t *jl,
                             uint8_t **tail, size_t *tl)
{
    if (size < 4)
        return -1;
    *jl = rd_be32(data);
    if (*jl > size - 4)
        *jl = size - 4;
    *tl = size - 4 - *jl;
    *json = malloc(*jl ? *jl : 1);
    *tail = malloc(*tl ? *tl : 1);
    if (!*json || !*tail)
        abort();
    memcpy(*json, data + 4, *jl);
    memcpy(*tail, data + 4 + *jl, *tl);
    return 0;
}

#endif
