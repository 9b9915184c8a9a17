/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Error values: a code, an offset and a message.  Never printed here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

const char *mrimg_version_string(void) { return MRIMG_VERSION_STRING; }

const char *mrimg_code_name(mrimg_code code)
{
    switch (code) {
    case MRIMG_OK: return "ok";
    case MRIMG_ERR_IO: return "io";
    case MRIMG_ERR_NOMEM: return "nomem";
    case MRIMG_ERR_INVAL: return "invalid-argument";
    case MRIMG_ERR_FORMAT: return "format";
    case MRIMG_ERR_TRUNCATED: return "truncated";
    case MRIMG_ERR_INCOMPLETE: return "incomplete";
    case MRIMG_ERR_UNSUPPORTED: return "unsupported";
    case MRIMG_ERR_CHECKSUM: return "checksum";
    case MRIMG_ERR_LIMIT: return "limit";
    case MRIMG_ERR_EXISTS: return "exists";
    case MRIMG_ERR_NOSPC: return "nospace";
    case MRIMG_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

const char *mrimg_side_name(mrimg_side side)
{
    switch (side) {
    case MRIMG_SIDE_NONE: return "none";
    case MRIMG_SIDE_INPUT: return "input";
    case MRIMG_SIDE_OUTPUT: return "output";
    case MRIMG_SIDE_SCRATCH: return "scratch";
    }
    return "none";
}

void mrimg_error_clear(mrimg_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

int err_setv(mrimg_error *err, mrimg_code code, mrimg_offset_kind kind, uint64_t off,
             const char *fmt, va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    err->sys_errno = 0;
    err->side = MRIMG_SIDE_NONE;
    err->offset_kind = kind;
    err->offset = kind == MRIMG_OFF_NONE ? 0 : off;
    size_t n = 0;
    if (kind == MRIMG_OFF_FILE)
        n = (size_t)snprintf(err->message, sizeof(err->message),
                             "at file offset %llu (0x%llx): ", (unsigned long long)off,
                             (unsigned long long)off);
    else if (kind == MRIMG_OFF_STREAM)
        n = (size_t)snprintf(err->message, sizeof(err->message),
                             "at stream offset %llu (0x%llx): ", (unsigned long long)off,
                             (unsigned long long)off);
    if (n >= sizeof(err->message))
        n = sizeof(err->message) - 1;
    vsnprintf(err->message + n, sizeof(err->message) - n, fmt, ap);
    return code;
}

int err_set(mrimg_error *err, mrimg_code code, mrimg_offset_kind kind, uint64_t off,
            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_setv(err, code, kind, off, fmt, ap);
    va_end(ap);
    return code;
}

int err_sys(mrimg_error *err, int errnum, const char *fmt, ...)
{
    mrimg_code code = (errnum == ENOSPC || errnum == EDQUOT) ? MRIMG_ERR_NOSPC
                      : errnum == ENOMEM                     ? MRIMG_ERR_NOMEM
                                                             : MRIMG_ERR_IO;
    if (!err)
        return code;
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    err_set(err, code, MRIMG_OFF_NONE, 0, "%s: %s", what, strerror(errnum));
    err->sys_errno = errnum;
    return code;
}

void err_prefix(mrimg_error *err, const char *fmt, ...)
{
    if (!err || err->code == MRIMG_OK)
        return;
    char pre[200], old[sizeof(err->message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof(old));
    size_t pl = strlen(pre), ol = strlen(old);
    if (pl >= sizeof(err->message))
        pl = sizeof(err->message) - 1;
    if (pl + ol >= sizeof(err->message))
        ol = sizeof(err->message) - 1 - pl;
    memcpy(err->message, pre, pl);
    memcpy(err->message + pl, old, ol);
    err->message[pl + ol] = '\0';
}

void *xcalloc(size_t n, size_t size, mrimg_error *err)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        err_nomem(err);
    return p;
}

void *xmalloc(size_t size, mrimg_error *err)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        err_nomem(err);
    return p;
}

void *xmalloc_aligned(size_t size, mrimg_error *err)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, size ? size : 1) != 0) {
        err_nomem(err);
        return NULL;
    }
    return p;
}

char *xstrdup(const char *s, mrimg_error *err)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n, err);
    if (p)
        memcpy(p, s, n);
    return p;
}

bool mem_is_zero(const void *ptr, size_t len)
{
    const unsigned char *p = ptr;
    /* head up to 8-byte alignment */
    while (len && ((uintptr_t)p & 7)) {
        if (*p)
            return false;
        p++;
        len--;
    }
    typedef uint64_t __attribute__((may_alias)) word;
    const word *w = (const word *)(const void *)p;
    while (len >= 64) {
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
            return false;
        w += 8;
        len -= 64;
    }
    while (len >= 8) {
        if (*w)
            return false;
        w++;
        len -= 8;
    }
    p = (const unsigned char *)w;
    while (len--) {
        if (*p++)
            return false;
    }
    return true;
}

unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

unsigned threads_effective(unsigned requested)
{
    unsigned n = cpu_count();
    return requested == 0 || requested > n ? n : requested;
}

void hex_bytes(char *out, const uint8_t *p, size_t n, size_t max)
{
    size_t k = n < max ? n : max;
    char *o = out;
    for (size_t i = 0; i < k; i++)
        o += sprintf(o, i ? " %02x" : "%02x", p[i]);
    *o = '\0';
}
