/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "sink.h"

#include "source.h" /* io_kind_name */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sequential writes are gathered into SINK_BUF bytes: 1 MiB writes go at
 * disk speed, and a conversion's memory stays small (tests/test_buffers.c
 * holds it to this bound).  Smaller in the fuzz build. */
#ifndef SINK_BUF
#define SINK_BUF (1u << 20)
#endif

/* ---- registry of temporary files, for signal handlers ----------------
 * A fixed table of paths; a slot is published by setting `used` after the
 * path is complete, so an async-signal handler only ever sees whole paths.
 * used == 1: a file to unlink; used == 2: a directory this run created, to
 * rmdir (after the files, so that it is empty by then; rmdir never removes
 * anything else). */
#define TMP_SLOTS 64
static char tmp_paths[TMP_SLOTS][PATH_MAX];
static volatile sig_atomic_t tmp_used[TMP_SLOTS];
static pthread_mutex_t tmp_lock = PTHREAD_MUTEX_INITIALIZER;

static int tmp_register(const char *path, int kind)
{
    if (strlen(path) >= PATH_MAX)
        return -1;
    pthread_mutex_lock(&tmp_lock);
    int slot = -1;
    for (int i = 0; i < TMP_SLOTS; i++) {
        if (!tmp_used[i]) {
            strcpy(tmp_paths[i], path);
            /* release: a handler on any thread that sees the slot used
             * sees the whole path (a lock-free int store: signal-safe) */
            __atomic_store_n(&tmp_used[i], kind, __ATOMIC_RELEASE);
            slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&tmp_lock);
    return slot;
}

static void tmp_unregister(int slot)
{
    if (slot < 0)
        return;
    pthread_mutex_lock(&tmp_lock);
    tmp_used[slot] = 0;
    pthread_mutex_unlock(&tmp_lock);
}

int sink_track(const char *path, bool dir) { return tmp_register(path, dir ? 2 : 1); }

void sink_untrack(int slot) { tmp_unregister(slot); }

void mrimg_cleanup_temporaries(void)
{
    /* async-signal-safe: unlink() and rmdir() only, no locks */
    for (int kind = 1; kind <= 2; kind++) {
        for (int i = 0; i < TMP_SLOTS; i++) {
            if (__atomic_load_n(&tmp_used[i], __ATOMIC_ACQUIRE) == kind) {
                if (kind == 1)
                    unlink(tmp_paths[i]);
                else
                    rmdir(tmp_paths[i]);
                tmp_used[i] = 0;
            }
        }
    }
}

/* Every error raised here is about the output (its temporary, the target
 * or its directory): the error value says so. */
static inline int out_side(mrimg_error *err, int rc) { return err_side(err, MRIMG_SIDE_OUTPUT, rc); }
#define err_set(e, ...) out_side((e), (err_set)((e), __VA_ARGS__))
#define err_sys(e, ...) out_side((e), (err_sys)((e), __VA_ARGS__))

/* ---- helpers ---------------------------------------------------------- */

/* A stream sink cannot go back: the one error for every operation that
 * would need it. */
static int no_seek(mrimg_sink *s, const char *what, mrimg_error *err)
{
    int rc = err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                     "%s is a pipe: cannot %s (this output needs a seekable file)", s->label,
                     what);
    if (err)
        err->sys_errno = ESPIPE;
    return rc;
}

static int write_all(mrimg_sink *s, const void *data, size_t len, uint64_t off, mrimg_error *err)
{
    const char *p = data;
    if (s->sequential && off != s->size)
        return no_seek(s, "write out of order", err);
    while (len) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = s->sequential ? write(s->fd, p, chunk)
                                  : pwrite(s->fd, p, chunk, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(err, errno, "cannot write %s at offset %llu", s->label,
                           (unsigned long long)off);
        }
        if (n == 0)
            return err_sys(err, ENOSPC, "cannot write %s at offset %llu", s->label,
                           (unsigned long long)off);
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
        s->written += (uint64_t)n;
    }
    if (off > s->size)
        s->size = off;
    return 0;
}

/* ".NAME.XXXXXX.tmp" beside path.  The name part is shortened so that the
 * whole name fits NAME_MAX (a 250-byte target name is fine); uniqueness comes
 * from the random part and the caller's O_EXCL retries. */
#define TMP_EXTRA 12 /* "." ".XXXXXX" ".tmp" */
static char *make_tmp_name(const char *path, mrimg_error *err)
{
    static unsigned long counter;
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = slash ? slash + 1 : path;
    size_t baselen = strlen(base);
    if (baselen > NAME_MAX - TMP_EXTRA)
        baselen = NAME_MAX - TMP_EXTRA;
    size_t n = dirlen + baselen + TMP_EXTRA + 1;
    char *t = xmalloc(n, err);
    if (!t)
        return NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long r = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16) ^
                      (unsigned long)(uintptr_t)t ^
                      (__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) * 0x9e3779b1ul);
    snprintf(t, n, "%.*s.%.*s.%06lx.tmp", (int)dirlen, path, (int)baselen, base, r & 0xffffff);
    return t;
}

/* Where the output goes.  Nothing but a regular file is ever replaced: a
 * directory, device, FIFO or socket is refused (with or without --force).
 * A symbolic link to a regular file is followed: the file it points to is
 * replaced atomically, in its own directory, and the link survives.  A
 * dangling link, or one to anything else, is refused.  *path is the file
 * to create or replace. */
static int resolve_target(const char *target, const char *label, unsigned flags, char **path,
                          mrimg_error *err)
{
    struct stat st;
    *path = NULL;
    if (lstat(target, &st) != 0) { /* absent (or unreachable: creating says why) */
        *path = xstrdup(target, err);
        return *path ? 0 : MRIMG_ERR_NOMEM;
    }
    const char *link = "";
    if (S_ISLNK(st.st_mode)) {
        if (stat(target, &st) != 0)
            return err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                           "%s is a symbolic link to a missing file (%s); not followed", label,
                           strerror(errno));
        link = "a symbolic link to ";
    }
    if (S_ISDIR(st.st_mode)) {
        int rc = err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0, "%s is %s%s", label, link,
                         io_kind_name(st.st_mode));
        err->sys_errno = EISDIR; /* for callers that test the errno */
        return rc;
    }
    if (!S_ISREG(st.st_mode))
        return err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                       "%s is %s%s, not a regular file: refusing to replace it", label, link,
                       io_kind_name(st.st_mode));
    if (!(flags & SINK_FORCE))
        return err_set(err, MRIMG_ERR_EXISTS, MRIMG_OFF_NONE, 0,
                       "%s already exists (use --force to replace it)", label);
    *path = *link ? realpath(target, NULL) : xstrdup(target, err);
    if (!*path && *link)
        return err_sys(err, errno, "cannot resolve %s, a symbolic link", label);
    return *path ? 0 : MRIMG_ERR_NOMEM;
}

int sink_create(mrimg_sink *s, const char *target, unsigned flags, mrimg_error *err)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->slot = -1;
    s->flags = flags;
    s->target = xstrdup(target, err);
    if (!s->target)
        return MRIMG_ERR_NOMEM;
    const char *slash = strrchr(s->target, '/');
    s->label = (flags & SINK_NAMED) ? (slash ? slash + 1 : s->target) : "the output";
    int rc = resolve_target(target, s->label, flags, &s->path, err);
    if (rc < 0) {
        free(s->target);
        s->target = NULL;
        s->label = NULL;
        return rc;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        free(s->tmp);
        s->tmp = make_tmp_name(s->path, err);
        if (!s->tmp)
            goto fail;
        /* register first so that a signal between open and register cannot
         * leak the file; unlinking a not-yet-existing path is harmless */
        s->slot = tmp_register(s->tmp, 1);
        s->fd = open(s->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd >= 0)
            break;
        int e = errno;
        tmp_unregister(s->slot);
        s->slot = -1;
        if (e != EEXIST) {
            err_sys(err, e, "cannot create a temporary file beside %s", s->label);
            goto fail;
        }
    }
    if (s->fd < 0) {
        err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0, "cannot create a temporary file beside %s",
                s->label);
        goto fail;
    }
    s->cap = SINK_BUF;
    s->buf = xmalloc_aligned(s->cap, err);
    if (!s->buf) {
        sink_abort(s);
        return MRIMG_ERR_NOMEM;
    }
    return 0;
fail:
    free(s->tmp);
    free(s->target);
    free(s->path);
    s->tmp = s->target = s->path = NULL;
    s->label = NULL;
    return err ? err->code : MRIMG_ERR_IO;
}

int sink_create_fd(mrimg_sink *s, int fd, const char *name, mrimg_error *err)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->slot = -1;
    s->sequential = true;
    s->target = xstrdup(name ? name : "(fd)", err);
    if (!s->target)
        return MRIMG_ERR_NOMEM;
    s->label = s->target;
    s->cap = SINK_BUF;
    s->buf = xmalloc_aligned(s->cap, err);
    if (!s->buf) {
        free(s->target);
        s->target = NULL;
        s->label = NULL;
        return MRIMG_ERR_NOMEM;
    }
    return 0;
}

int sink_flush(mrimg_sink *s, mrimg_error *err)
{
    if (s->len) {
        int rc = write_all(s, s->buf, s->len, s->pos, err);
        if (rc < 0)
            return rc;
        s->pos += s->len;
        s->len = 0;
    }
    return 0;
}

int sink_write(mrimg_sink *s, const void *data, size_t len, mrimg_error *err)
{
    const uint8_t *p = data;
    if (s->len == 0 && len >= s->cap) {
        int rc = write_all(s, p, len, s->pos, err);
        if (rc == 0)
            s->pos += len;
        return rc;
    }
    while (len) {
        size_t room = s->cap - s->len;
        size_t n = len < room ? len : room;
        memcpy(s->buf + s->len, p, n);
        s->len += n;
        p += n;
        len -= n;
        if (s->len == s->cap) {
            int rc = sink_flush(s, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int sink_seek(mrimg_sink *s, uint64_t off, mrimg_error *err)
{
    if (s->sequential && off != sink_tell(s))
        return no_seek(s, "seek", err);
    int rc = sink_flush(s, err);
    if (rc < 0)
        return rc;
    s->pos = off;
    return 0;
}

int sink_pwrite(mrimg_sink *s, const void *data, size_t len, uint64_t off, mrimg_error *err)
{
    int rc = sink_flush(s, err);
    if (rc < 0)
        return rc;
    return write_all(s, data, len, off, err);
}

int sink_truncate(mrimg_sink *s, uint64_t size, mrimg_error *err)
{
    int rc = sink_flush(s, err);
    if (rc < 0)
        return rc;
    if (s->sequential)
        return size == s->size ? 0 : no_seek(s, "change the size", err);
    if (ftruncate(s->fd, (off_t)size) != 0)
        return err_sys(err, errno, "cannot set the size of %s", s->label);
    s->size = size;
    return 0;
}

int sink_punch(mrimg_sink *s, uint64_t off, uint64_t len, mrimg_error *err)
{
    int rc = sink_flush(s, err);
    if (rc < 0 || len == 0)
        return rc;
    if (s->sequential)
        return no_seek(s, "punch a hole", err);
    if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return err_sys(err, errno, "cannot punch a hole in %s", s->label);
    static const uint8_t zeros[65536];
    while (len) {
        size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;
        rc = write_all(s, zeros, n, off, err);
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

int sink_reserve(mrimg_sink *s, uint64_t off, uint64_t len, mrimg_error *err)
{
    if (len == 0)
        return 0;
    if (s->sequential)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                       "%s is a pipe: nothing can be reserved", s->label);
    if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                       "the file system of %s cannot reserve space", s->label);
    return err_sys(err, errno, "cannot reserve %llu bytes for %s", (unsigned long long)len,
                   s->label);
}

static void fsync_dir(const char *target)
{
    const char *slash = strrchr(target, '/');
    char dir[PATH_MAX];
    if (slash) {
        size_t n = (size_t)(slash - target);
        if (n == 0)
            n = 1;
        if (n >= sizeof(dir))
            return;
        memcpy(dir, target, n);
        dir[n] = '\0';
    } else {
        strcpy(dir, ".");
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* A stream sink: everything is written in order already.  A libvirt
 * header on a stream was written with its final magic from the start
 * (container/libvirt.c ctr_write): there is no going back to flip it. */
static int stream_commit(mrimg_sink *s, mrimg_error *err)
{
    int rc = sink_flush(s, err);
    if (rc < 0)
        return rc;
    struct stat st;
    if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode) && fsync(s->fd) != 0)
        return err_sys(err, errno, "cannot sync %s", s->label);
    s->fd = -1;
    free(s->buf);
    s->buf = NULL;
    free(s->target);
    s->target = NULL;
    s->label = NULL;
    return 0;
}

int sink_commit(mrimg_sink *s, const char *final_magic, mrimg_error *err)
{
    if (s->sequential)
        return stream_commit(s, err);
    int rc = sink_flush(s, err);
    if (rc < 0)
        return rc;
    if (fsync(s->fd) != 0)
        return err_sys(err, errno, "cannot sync %s", s->label);
    if (final_magic) {
        rc = write_all(s, final_magic, 16, 0, err);
        if (rc < 0)
            return rc;
        if (fsync(s->fd) != 0)
            return err_sys(err, errno, "cannot sync %s", s->label);
    }
    if (close(s->fd) != 0) {
        s->fd = -1;
        return err_sys(err, errno, "cannot close %s", s->label);
    }
    s->fd = -1;
    if (s->flags & SINK_FORCE) {
        if (rename(s->tmp, s->path) != 0)
            return err_sys(err, errno, "cannot rename the temporary file to %s", s->label);
    } else {
        long r;
#ifdef SYS_renameat2
        r = syscall(SYS_renameat2, AT_FDCWD, s->tmp, AT_FDCWD, s->path, 1 /* NOREPLACE */);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
#else
        r = -1;
        {
#endif
            /* no renameat2 here: link() refuses to replace as well */
            if (link(s->tmp, s->path) == 0) {
                unlink(s->tmp);
                errno = 0;
                r = 0;
            } else {
                r = -1;
            }
        }
        if (r != 0) {
            if (errno == EEXIST)
                return err_set(err, MRIMG_ERR_EXISTS, MRIMG_OFF_NONE, 0,
                               "%s appeared while converting; not replaced (use --force)",
                               s->label);
            return err_sys(err, errno, "cannot rename the temporary file to %s", s->label);
        }
    }
    tmp_unregister(s->slot);
    s->slot = -1;
    fsync_dir(s->path);
    free(s->tmp);
    s->tmp = NULL;
    free(s->buf);
    s->buf = NULL;
    free(s->target);
    free(s->path);
    s->target = s->path = NULL;
    s->label = NULL;
    return 0;
}

void sink_abort(mrimg_sink *s)
{
    if (s->fd >= 0 && !s->sequential)
        close(s->fd);
    s->fd = -1;
    if (s->tmp)
        unlink(s->tmp);
    tmp_unregister(s->slot);
    s->slot = -1;
    free(s->tmp);
    free(s->buf);
    free(s->target);
    free(s->path);
    s->tmp = NULL;
    s->buf = NULL;
    s->target = s->path = NULL;
    s->label = NULL;
}
