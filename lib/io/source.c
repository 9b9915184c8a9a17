/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every error raised here is about this source's file. */
#define SIDE(s, rc) err_side(err, (s)->side, (rc))

const char *io_kind_name(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    default: return "not a regular file";
    }
}

/* ---- sequential sources ----------------------------------------------- */

/* The state of a pipe or FIFO, shared by every handle src_share made.
 * Invariant: head holds bytes [0, head_len) and head_len == MIN(pos,
 * head_max): every byte read below head_max is kept. */
#define SRC_SEQ_USERS 8
struct src_seq {
    pthread_mutex_t mu;     /* the read-ahead thread reads while others may */
    uint8_t *head;
    size_t head_len, head_alloc;
    uint64_t head_max;
    uint64_t pos;           /* bytes read from the descriptor */
    bool eof;
    bool waited;            /* the wait for a first writer was done */
    /* the handles on it (src_share): each learns the size at the end */
    mrimg_source *users[SRC_SEQ_USERS];
};

static int seq_init(mrimg_source *s, mrimg_error *err)
{
    struct src_seq *q = xcalloc(1, sizeof(*q), err);
    if (!q)
        return MRIMG_ERR_NOMEM;
    pthread_mutex_init(&q->mu, NULL);
    q->head_max = MRIMG_HEADER_SIZE + (uint64_t)MRIMG_DATA_LEN_MAX + SRC_SEQ_STREAM;
    s->seq = q;
    s->own_seq = true;
    q->users[0] = s;
    /* a larger pipe buffer: fewer reads and wake-ups of both sides (a
     * hint; the default stays when it cannot be raised) */
    (void)fcntl(s->fd, F_SETPIPE_SZ, 1 << 20);
    s->regular = false;
    s->size = SRC_SIZE_UNKNOWN;
    s->allocated = 0;
    s->seek_probe = -1;
    return 0;
}

static void seq_free(mrimg_source *s)
{
    if (s->seq && !s->own_seq) {
        pthread_mutex_lock(&s->seq->mu);
        for (int i = 0; i < SRC_SEQ_USERS; i++)
            if (s->seq->users[i] == s)
                s->seq->users[i] = NULL;
        pthread_mutex_unlock(&s->seq->mu);
    }
    if (s->seq && s->own_seq) {
        pthread_mutex_destroy(&s->seq->mu);
        free(s->seq->head);
        free(s->seq);
    }
    s->seq = NULL;
}

void src_seq_keep(mrimg_source *s, uint64_t upto)
{
    struct src_seq *q = s->seq;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    if (upto < q->head_max) {
        q->head_max = upto;
        if (q->head_len > upto)
            q->head_len = (size_t)upto; /* the invariant holds: MIN(pos, upto) */
    }
    pthread_mutex_unlock(&q->mu);
}

uint64_t src_seq_pos(const mrimg_source *s)
{
    if (!s->seq)
        return 0;
    pthread_mutex_lock(&s->seq->mu); /* the read-ahead thread advances it */
    uint64_t pos = s->seq->pos;
    pthread_mutex_unlock(&s->seq->mu);
    return pos;
}

void src_share(mrimg_source *dst, const mrimg_source *src, mrimg_error *err)
{
    (void)err;
    *dst = *src;
    dst->own_fd = false;
    dst->own_seq = false;
    dst->name = xstrdup(src->name, NULL);
    if (!src->seq) {
        dst->seek_probe = 0;
        return;
    }
    pthread_mutex_lock(&src->seq->mu);
    for (int i = 0; i < SRC_SEQ_USERS; i++)
        if (!src->seq->users[i]) {
            src->seq->users[i] = dst;
            break;
        }
    pthread_mutex_unlock(&src->seq->mu);
}

int src_need_seek(const mrimg_source *s, const char *what, mrimg_error *err)
{
    int rc = SIDE(s, err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                             "%s is a pipe: %s needs random access to the input (give a regular "
                             "file)",
                             s->name, what));
    if (err)
        err->sys_errno = ESPIPE;
    return rc;
}

/* Keep what was just read at the position in the head window. */
static int seq_record(struct src_seq *q, const uint8_t *p, size_t n, mrimg_error *err)
{
    if (q->pos >= q->head_max || n == 0)
        return 0;
    size_t k = (size_t)MRIMG_MIN((uint64_t)n, q->head_max - q->pos);
    if (q->head_len + k > q->head_alloc) {
        size_t na = q->head_alloc ? q->head_alloc : (64u << 10);
        while (na < q->head_len + k)
            na *= 2;
        if (na > q->head_max)
            na = (size_t)q->head_max;
        uint8_t *nh = realloc(q->head, na);
        if (!nh)
            return err_nomem(err);
        q->head = nh;
        q->head_alloc = na;
    }
    memcpy(q->head + q->head_len, p, k);
    q->head_len += k;
    return 0;
}

/* One forward read of up to len bytes from the descriptor (0 at the end).
 * The first read that finds nothing waits up to a second for a writer to
 * appear (a FIFO opened before its writer): no writer is an error, never a
 * hang. */
static ssize_t seq_read(mrimg_source *s, uint8_t *buf, size_t len, mrimg_error *err)
{
    struct src_seq *q = s->seq;
    for (;;) {
        ssize_t n = read(s->fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SIDE(s, err_sys(err, errno, "read error in %s at offset %llu", s->name,
                                   (unsigned long long)q->pos));
        }
        if (n == 0 && q->pos == 0 && !q->waited) {
            q->waited = true;
            struct pollfd pf = {.fd = s->fd, .events = POLLIN};
            int r;
            do
                r = poll(&pf, 1, 1000);
            while (r < 0 && errno == EINTR);
            if (r == 0) {
                int rc = SIDE(s, err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                                         "%s is a FIFO (named pipe) with no writer: nothing to "
                                         "read",
                                         s->name));
                if (err)
                    err->sys_errno = EPIPE;
                return rc;
            }
            continue; /* data, or a writer came and went (then: empty) */
        }
        if (n == 0) {
            q->eof = true;
            s->size = q->pos;
            for (int i = 0; i < SRC_SEQ_USERS; i++)
                if (q->users[i])
                    q->users[i]->size = q->pos;
            return 0;
        }
        return n; /* the caller records the bytes and advances pos */
    }
}

static ssize_t seq_pread_some(mrimg_source *s, void *out, size_t len, uint64_t off,
                              mrimg_error *err)
{
    struct src_seq *q = s->seq;
    uint8_t *buf = out;
    size_t done = 0;
    ssize_t rc = 0;
    pthread_mutex_lock(&q->mu);
    if (q->eof)
        s->size = q->pos;
    /* 1. what the head window holds */
    if (off < q->head_len) {
        size_t k = (size_t)MRIMG_MIN((uint64_t)len, q->head_len - off);
        memcpy(buf, q->head + off, k);
        done = k;
    }
    uint64_t at = off + done;
    if (done < len && at < q->pos) {
        /* 2. bytes passed already, outside the window */
        rc = SIDE(s, err_set(err, MRIMG_ERR_IO, MRIMG_OFF_FILE, at,
                             "%s is a pipe and this byte was read already: only the first "
                             "%llu bytes are kept, and this operation needs the input again "
                             "(give a regular file)",
                             s->name, (unsigned long long)q->head_len));
        if (err)
            err->sys_errno = ESPIPE;
        goto out;
    }
    /* 3. skip forward to the offset (kept in the window while it lasts) */
    while (done < len && q->pos < at && !q->eof) {
        uint8_t tmp[65536];
        size_t want = (size_t)MRIMG_MIN((uint64_t)sizeof(tmp), at - q->pos);
        ssize_t n = seq_read(s, tmp, want, err);
        if (n < 0) {
            rc = n;
            goto out;
        }
        if ((rc = seq_record(q, tmp, (size_t)n, err)) < 0)
            goto out;
        q->pos += (uint64_t)n;
    }
    /* 4. read at the position, straight into the caller's buffer */
    while (done < len && !q->eof) {
        ssize_t n = seq_read(s, buf + done, len - done, err);
        if (n < 0) {
            rc = n;
            goto out;
        }
        rc = seq_record(q, buf + done, (size_t)n, err);
        q->pos += (uint64_t)n;
        if (rc < 0)
            goto out;
        done += (size_t)n;
    }
    rc = (ssize_t)done;
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int src_stat(mrimg_source *s, mrimg_error *err)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return SIDE(s, err_sys(err, errno, "cannot stat %s", s->name));
    /* a file or block device is read at any offset; a FIFO (a pipe:
     * /dev/stdin in a pipeline) forward only; a socket or character device
     * (a terminal) not at all */
    if (S_ISDIR(st.st_mode)) {
        int rc = SIDE(s, err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0, "%s is a directory",
                                 s->name));
        err->sys_errno = EISDIR; /* for callers that test the errno */
        return rc;
    }
    if (S_ISFIFO(st.st_mode))
        return seq_init(s, err);
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return SIDE(s, err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                               "%s is %s, not a regular file, a block device or a pipe",
                               s->name, io_kind_name(st.st_mode)));
    s->regular = S_ISREG(st.st_mode);
    s->size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
    s->allocated = (uint64_t)st.st_blocks * 512u;
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(s->fd, 0, SEEK_END);
        if (end > 0)
            s->size = (uint64_t)end;
    }
    return 0;
}

int src_open_fd(mrimg_source *s, int fd, const char *name, bool own, mrimg_error *err)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->own_fd = own;
    s->side = MRIMG_SIDE_INPUT;
    s->name = xstrdup(name ? name : "(fd)", err);
    if (!s->name)
        return MRIMG_ERR_NOMEM;
    int rc = src_stat(s, err);
    if (rc < 0) {
        free(s->name);
        s->name = NULL;
        return rc;
    }
    return 0;
}

/* The name messages give a source: its role, never its path.  A tool
 * puts the path it was given in front ("imginfo: vm.sav: cannot open the
 * input: ...", "imgconv: -: standard input is a pipe: ..."); a path in the
 * message too would say it twice, and /dev/stdin where the user typed -. */
static const char *src_display_name(const char *path)
{
    static const char *const stdin_paths[] = {"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"};
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(stdin_paths); i++)
        if (!strcmp(path, stdin_paths[i]))
            return "standard input";
    return "the input";
}

int src_open(mrimg_source *s, const char *path, mrimg_error *err)
{
    const char *name = src_display_name(path);
    /* O_NONBLOCK: opening a FIFO without a writer would wait forever (its
     * first read waits a bounded time instead, seq_read); every source gets
     * its blocking reads back below */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME | O_NONBLOCK);
    if (fd < 0 && errno == EPERM)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        struct stat st;
        if (e == ENXIO && stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            return err_side(err, MRIMG_SIDE_INPUT,
                            err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                                    "%s is a socket, not a regular file, a block device or "
                                    "a pipe",
                                    name));
        return err_side(err, MRIMG_SIDE_INPUT, err_sys(err, e, "cannot open %s", name));
    }
    int rc = src_open_fd(s, fd, name, true, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        rc = SIDE(s, err_sys(err, errno, "cannot open %s", name));
        src_close(s);
        return rc;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return 0;
}

void src_close(mrimg_source *s)
{
    seq_free(s);
    if (s->own_fd && s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    free(s->name);
    s->name = NULL;
}

ssize_t src_pread_some(mrimg_source *s, void *buf, size_t len, uint64_t off, mrimg_error *err)
{
    size_t done = 0;
    if (s->seq)
        return seq_pread_some(s, buf, len, off, err);
    if (off > (uint64_t)INT64_MAX)
        return 0;
    while (done < len) {
        ssize_t n = pread(s->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SIDE(s, err_sys(err, errno, "read error in %s at offset %llu", s->name,
                                   (unsigned long long)(off + done)));
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int src_pread(mrimg_source *s, void *buf, size_t len, uint64_t off, const char *what,
              mrimg_error *err)
{
    ssize_t n = src_pread_some(s, buf, len, off, err);
    if (n < 0)
        return (int)n;
    if ((size_t)n < len)
        return SIDE(s, err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, off + (uint64_t)n,
                               "file ends inside %s (%zu of %zu bytes present)", what, (size_t)n,
                               len));
    return 0;
}

int src_next_data(mrimg_source *s, uint64_t off, uint64_t *data, uint64_t *end, mrimg_error *err)
{
    (void)err;
    if (off >= s->size) {
        *data = *end = s->size;
        return 0;
    }
    if (s->seek_probe >= 0 && s->regular) {
        off_t d = lseek(s->fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno == ENXIO) {
            s->seek_probe = 1;
            *data = *end = s->size;
            return 0;
        }
        if (d >= 0) {
            off_t h = lseek(s->fd, d, SEEK_HOLE);
            if (h >= d) {
                s->seek_probe = 1;
                *data = (uint64_t)d;
                *end = MRIMG_MIN((uint64_t)h, s->size);
                if (*data > s->size)
                    *data = s->size;
                return 0;
            }
        }
        /* EINVAL / ENOTSUP: the file system has no hole map */
        s->seek_probe = -1;
    }
    *data = off;
    *end = s->size;
    return 0;
}

bool src_is_hole(mrimg_source *s, uint64_t off, uint64_t len)
{
    if (len == 0 || off >= s->size)
        return off >= s->size;
    uint64_t d, e;
    if (src_next_data(s, off, &d, &e, NULL) < 0)
        return false;
    return d >= off + len || d >= s->size;
}

void src_drop_cache(mrimg_source *s, uint64_t off, uint64_t len)
{
    if (s->regular && len)
        (void)posix_fadvise(s->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

/* ---- instream -------------------------------------------------------- */

int in_init(mrimg_instream *in, mrimg_source *src, uint64_t start, uint64_t end, size_t cap,
            mrimg_error *err)
{
    memset(in, 0, sizeof(*in));
    in->src = src;
    in->cap = cap;
    in->next = start;
    in->end = end;
    in->dropped = start;
    in->buf = xmalloc_aligned(cap, err);
    return in->buf ? 0 : MRIMG_ERR_NOMEM;
}

void in_free(mrimg_instream *in)
{
    free(in->buf);
    in->buf = NULL;
}

ssize_t in_fill(mrimg_instream *in, mrimg_error *err)
{
    if (in->r > 0) {
        memmove(in->buf, in->buf + in->r, in->w - in->r);
        in->w -= in->r;
        in->r = 0;
    }
    if (in->w < in->cap && in->next < in->end) {
        size_t want = in->cap - in->w;
        if ((uint64_t)want > in->end - in->next)
            want = (size_t)(in->end - in->next);
        ssize_t n = src_pread_some(in->src, in->buf + in->w, want, in->next, err);
        if (n < 0)
            return n;
        in->w += (size_t)n;
        in->next += (uint64_t)n;
        if ((size_t)n < want)
            in->end = in->next; /* file shrank or ended early */
        /* keep the page cache clean on huge inputs: drop what is consumed */
        if (in->next - in->dropped >= (64u << 20)) {
            uint64_t upto = in->next - (in->w);
            if (upto > in->dropped) {
                src_drop_cache(in->src, in->dropped, upto - in->dropped);
                in->dropped = upto;
            }
        }
    }
    return (ssize_t)(in->w - in->r);
}

int in_need(mrimg_instream *in, size_t n, const char *what, mrimg_error *err)
{
    if (n > in->cap)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_FILE, in_pos(in),
                       "%s of %zu bytes exceeds the %zu-byte input buffer", what, n, in->cap);
    while (in_avail(in) < n) {
        size_t before = in_avail(in);
        ssize_t a = in_fill(in, err);
        if (a < 0)
            return (int)a;
        if ((size_t)a == before)
            return SIDE(in->src, err_set(err, MRIMG_ERR_TRUNCATED, MRIMG_OFF_FILE, in_pos(in),
                                         "input ends inside %s (%zu of %zu bytes present)",
                                         what, before, n));
    }
    return 0;
}

int in_skip_zeros(mrimg_instream *in, mrimg_error *err)
{
    for (;;) {
        if (in_avail(in) == 0) {
            /* holes are zeros: skip them without reading (a +1 TiB hole
             * after a payload costs two lseek calls) */
            uint64_t d, de;
            int rc = src_next_data(in->src, in->next, &d, &de, err);
            if (rc < 0)
                return rc;
            if (d >= in->end) {
                in->next = in->end;
                return 1;
            }
            if (d > in->next)
                in->next = d;
            ssize_t a = in_fill(in, err);
            if (a < 0)
                return (int)a;
            if (a == 0)
                return 1;
        }
        const uint8_t *p = in->buf + in->r;
        size_t n = in_avail(in);
        if (mem_is_zero(p, n)) {
            in->r += n;
            continue;
        }
        size_t i = 0;
        while (p[i] == 0)
            i++;
        in->r += i;
        return 0;
    }
}
