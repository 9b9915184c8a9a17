/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "testutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *fixture_path(const char *rel)
{
    static char bufs[8][4096];
    static unsigned next;
    char *b = bufs[next++ % 8];
    const char *base = getenv("MRIMG_FIXTURES");
    snprintf(b, 4096, "%s/%s", base ? base : MRIMG_FIXTURES, rel);
    return b;
}

uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = 0;
        *len = (size_t)n;
    }
    return p;
}

void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    if (len && fwrite(buf, 1, len, f) != len)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    if (fclose(f) != 0)
        fail_msg("cannot write %s: %s", path, strerror(errno));
}

char *test_tmpdir(const char *tag)
{
    const char *t = getenv("TMPDIR");
    char *p = NULL;
    if (asprintf(&p, "%s/mrimg-%s-XXXXXX", t ? t : "/tmp", tag) < 0)
        return NULL;
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_rmdir_all(const char *dir)
{
    if (dir)
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a very small JSON reader, enough for facts.json ----------------- */

typedef struct {
    const char *p, *end;
} js;

static void ws(js *j)
{
    while (j->p < j->end && isspace((unsigned char)*j->p))
        j->p++;
}

static int jstr(js *j, char *out, size_t cap)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return -1;
    j->p++;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\' && j->p < j->end)
            c = *j->p++;
        if (n + 1 < cap)
            out[n++] = c;
    }
    if (cap)
        out[n] = 0;
    j->p++;
    return 0;
}

static void jskip(js *j);

static void jskip(js *j)
{
    ws(j);
    if (j->p >= j->end)
        return;
    char c = *j->p;
    if (c == '"') {
        char tmp[1];
        jstr(j, tmp, 0);
    } else if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        for (;;) {
            ws(j);
            if (j->p >= j->end)
                return;
            if (*j->p == close) {
                j->p++;
                return;
            }
            if (*j->p == ',' || *j->p == ':') {
                j->p++;
                continue;
            }
            jskip(j);
        }
    } else {
        while (j->p < j->end && !strchr(",}] \n\r\t", *j->p))
            j->p++;
    }
}

static uint64_t jnum(js *j)
{
    ws(j);
    if (j->p < j->end && *j->p == 'n') { /* null */
        jskip(j);
        return UINT64_MAX;
    }
    return strtoull(j->p, (char **)&j->p, 10);
}

static void parse_ramblock(fact_file *f, const char *line)
{
    char name[256], psz[16], unit[16], off[32], used[32];
    if (sscanf(line, "%255s %15s %15s %31s %31s", name, psz, unit, off, used) != 5)
        return;
    if (strcmp(name, "Block") == 0 || f->nblocks >= 32)
        return;
    fact_block *b = &f->blocks[f->nblocks++];
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->used = strtoull(used, NULL, 16);
}

static void parse_file_obj(js *j, fact_file *f)
{
    memset(f, 0, sizeof(*f));
    j->p++; /* { */
    for (;;) {
        ws(j);
        if (*j->p == '}') {
            j->p++;
            return;
        }
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        char key[64];
        jstr(j, key, sizeof(key));
        ws(j);
        j->p++; /* : */
        ws(j);
        if (!strcmp(key, "file"))
            jstr(j, f->file, sizeof(f->file));
        else if (!strcmp(key, "machine"))
            jstr(j, f->machine, sizeof(f->machine));
        else if (!strcmp(key, "mem_mib"))
            f->mem_mib = jnum(j);
        else if (!strcmp(key, "offset"))
            f->offset = jnum(j);
        else if (!strcmp(key, "size"))
            f->size = jnum(j);
        else if (!strcmp(key, "allocated"))
            f->allocated = jnum(j);
        else if (!strcmp(key, "blob_gpa"))
            f->blob_gpa = jnum(j);
        else if (!strcmp(key, "blob_len"))
            f->blob_len = jnum(j);
        else if (!strcmp(key, "live")) {
            f->live = *j->p == 't';
            jskip(j);
        } else if (!strcmp(key, "capabilities")) {
            const char *s = j->p;
            jskip(j);
            f->mapped = memmem(s, (size_t)(j->p - s), "\"mapped-ram\"", 12) != NULL;
        } else if (!strcmp(key, "qemu_ram_stats")) {
            j->p++;
            for (;;) {
                ws(j);
                if (*j->p == '}') {
                    j->p++;
                    break;
                }
                if (*j->p == ',') {
                    j->p++;
                    continue;
                }
                char k2[64];
                jstr(j, k2, sizeof(k2));
                ws(j);
                j->p++;
                uint64_t v = jnum(j);
                if (!strcmp(k2, "normal"))
                    f->normal = v, f->has_stats = v != UINT64_MAX;
                else if (!strcmp(k2, "duplicate"))
                    f->duplicate = v;
                else if (!strcmp(k2, "total"))
                    f->total = v;
            }
        } else if (!strcmp(key, "info_ramblock")) {
            j->p++;
            for (;;) {
                ws(j);
                if (*j->p == ']') {
                    j->p++;
                    break;
                }
                if (*j->p == ',') {
                    j->p++;
                    continue;
                }
                char line[512];
                jstr(j, line, sizeof(line));
                parse_ramblock(f, line);
            }
        } else {
            jskip(j);
        }
    }
}

unsigned facts_load(fact_file *out, unsigned max)
{
    size_t len;
    uint8_t *buf = read_file(fixture_path("qemu/facts.json"), &len);
    if (!buf)
        return 0;
    js j = {(const char *)buf, (const char *)buf + len};
    const char *files = strstr(j.p, "\"files\"");
    unsigned n = 0;
    if (files) {
        j.p = strchr(files, '[') + 1;
        for (;;) {
            ws(&j);
            if (j.p >= j.end || *j.p == ']')
                break;
            if (*j.p == ',') {
                j.p++;
                continue;
            }
            if (*j.p == '{' && n < max)
                parse_file_obj(&j, &out[n++]);
            else
                jskip(&j);
        }
    }
    free(buf);
    return n;
}

int test_group_tmpdir_setup(char **dir, const char *tag)
{
    *dir = test_tmpdir(tag);
    return *dir ? 0 : -1;
}

int test_group_tmpdir_teardown(char **dir)
{
    test_rmdir_all(*dir);
    free(*dir);
    *dir = NULL;
    return 0;
}

void test_sparse_copy(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY);
    assert_true(in >= 0);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(out >= 0);
    struct stat st;
    assert_int_equal(fstat(in, &st), 0);
    static uint8_t buf[1 << 20];
    off_t off = 0;
    while (off < st.st_size) {
        off_t d = lseek(in, off, SEEK_DATA);
        if (d < 0)
            break;
        off_t h = lseek(in, d, SEEK_HOLE);
        if (h < 0)
            h = st.st_size;
        for (off_t p = d; p < h;) {
            size_t n = (size_t)((h - p) < (off_t)sizeof(buf) ? (h - p) : (off_t)sizeof(buf));
            ssize_t r = pread(in, buf, n, p);
            assert_true(r > 0);
            assert_int_equal(pwrite(out, buf, (size_t)r, p), r);
            p += r;
        }
        off = h;
    }
    assert_int_equal(ftruncate(out, st.st_size), 0);
    close(in);
    close(out);
}

mrimg_image *test_open(const char *path)
{
    mrimg_error err;
    mrimg_image *img = mrimg_open(path, NULL, &err);
    if (!img)
        fail_msg("%s: %s", path, err.message);
    return img;
}

uint8_t *test_read_scanned(const char *path, size_t *len, mrimg_stream_info *si)
{
    mrimg_image *img = test_open(path);
    mrimg_error err;
    if (mrimg_scan(img, 0, NULL, NULL, &err) != 0)
        fail_msg("%s: scan: %s", path, err.message);
    *si = *mrimg_stream(img);
    mrimg_close(img);
    uint8_t *b = read_file(path, len);
    if (!b)
        fail_msg("%s: cannot read it", path);
    return b;
}

void test_assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    uint8_t *x = read_file(a, &la), *y = read_file(b, &lb);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    free(x);
    free(y);
}

void t_convert_opts_init(t_convert_opts *o)
{
    memset(o, 0, sizeof(*o));
    int64_t def;
    assert_int_equal(mrimg_param_bounds(MRIMG_P_OUTPUT, NULL, NULL, &def), 0);
    o->out = (mrimg_output)def;
    assert_int_equal(mrimg_param_bounds(MRIMG_P_LEVEL, NULL, NULL, &def), 0);
    o->level = (int)def;
    assert_int_equal(mrimg_param_bounds(MRIMG_P_RUNNING, NULL, NULL, &def), 0);
    o->running = (int)def;
}

int t_convert(mrimg_image *in, const char *out_path, const t_convert_opts *o,
              mrimg_convert_stats *st, mrimg_error *err)
{
    mrimg_convert_opts *h = mrimg_convert_opts_create();
    assert_non_null(h);
    if (o) {
        const struct {
            mrimg_param p;
            int64_t v;
        } set[] = {
            {MRIMG_P_OUTPUT, o->out},          {MRIMG_P_LEVEL, o->level},
            {MRIMG_P_THREADS, o->threads},     {MRIMG_P_FORCE, o->force},
            {MRIMG_P_COMPACT, o->compact},     {MRIMG_P_RUNNING, o->running},
            {MRIMG_P_ALLOW_INCOMPLETE, o->allow_incomplete},
            {MRIMG_P_PREALLOCATE, o->preallocate},
        };
        for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
            int rc = mrimg_convert_opts_set(h, set[i].p, set[i].v, err);
            if (rc < 0) {
                mrimg_convert_opts_free(h);
                return rc;
            }
        }
        assert_int_equal(mrimg_convert_opts_set_xml(h, o->xml, err), 0);
        assert_int_equal(mrimg_convert_opts_set_cookie(h, o->cookie, err), 0);
        mrimg_convert_opts_set_progress(h, o->progress, o->progress_phase, o->progress_ctx);
    }
    if (st)
        st->size = sizeof(*st);
    int rc = mrimg_convert(in, out_path, h, st, err);
    mrimg_convert_opts_free(h);
    return rc;
}

int t_verify(const char *path, const t_verify_opts *o, mrimg_verify_result **res,
             mrimg_error *err)
{
    mrimg_verify_opts *h = NULL;
    if (o) {
        h = mrimg_verify_opts_create();
        assert_non_null(h);
        int rc = mrimg_verify_opts_set(h, MRIMG_P_STREAM_OFFSET, (int64_t)o->stream_offset, err);
        if (rc == 0)
            rc = mrimg_verify_opts_set(h, MRIMG_P_THREADS, o->threads, err);
        if (rc == 0)
            rc = mrimg_verify_opts_set(h, MRIMG_P_MAX_PROBLEMS, o->max_problems, err);
        if (rc == 0)
            rc = mrimg_verify_opts_set(h, MRIMG_P_SKIP_DATA, o->skip_data, err);
        if (rc < 0) {
            mrimg_verify_opts_free(h);
            return rc;
        }
        mrimg_verify_opts_set_progress(h, o->progress, o->progress_ctx);
    }
    int rc = mrimg_verify(path, h, res, err);
    mrimg_verify_opts_free(h);
    return rc;
}

mrimg_image *t_open(const char *path, const t_open_opts *o, mrimg_error *err)
{
    if (!o)
        return mrimg_open(path, NULL, err);
    mrimg_open_opts *h = mrimg_open_opts_create();
    assert_non_null(h);
    mrimg_image *img = NULL;
    if (mrimg_open_opts_set(h, MRIMG_P_STREAM_OFFSET, (int64_t)o->stream_offset, err) == 0 &&
        mrimg_open_opts_set(h, MRIMG_P_THREADS, o->threads, err) == 0)
        img = mrimg_open(path, h, err);
    mrimg_open_opts_free(h);
    return img;
}

char *test_fixture_copy(const char *rel, const char *tag, const char *name, char *path,
                        size_t cap)
{
    char *dir = test_tmpdir(tag);
    assert_true((size_t)snprintf(path, cap, "%s/%s", dir, name) < cap);
    test_sparse_copy(fixture_path(rel), path);
    return dir;
}
