/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Removing secrets from a domain XML, as libvirt does when it formats a
 * definition without VIR_DOMAIN_XML_SECURE.
 *
 * What libvirt leaves out (src/conf/domain_conf.c, libvirt 11.x; the
 * formatter only emits these when the SECURE format flag is set):
 *   - virDomainGraphicsAuthDefFormatAttr(): the `passwd` attribute of
 *     <graphics>, used for VNC, SPICE and (since RDP got passwords) RDP.
 *     passwdValidTo, connected and username are still printed.
 *   - virDomainDiskSourceFormatNetworkCookies(): the whole <cookies>
 *     element (and its <cookie> children) of a network storage source,
 *     i.e. <source> of a disk, backing store, mirror or data store.
 * Nothing else in the domain formatter depends on that flag.
 *
 * The markup is read by the project's one XML reader (util/xml.c, strict
 * and bounded; a DOCTYPE is skipped here), which reports tags and
 * attributes with their byte ranges; the secrets' ranges are cut out and
 * everything else is copied byte for byte.  Malformed XML is an error,
 * never a guess. */
#include <stdlib.h>

#include "../util/xml.h"
#include "../util/vec.h"

typedef struct span {
    size_t start, end; /* [start, end) of the input removed */
} span;

typedef struct strip {
    const char *s;
    size_t n;
    span *v;           /* removals, in input order */
    size_t nv, cap;
    unsigned secrets;
    int rc;            /* MRIMG_ERR_NOMEM if a callback failed */
    mrimg_error *err;
    /* open elements: name ranges (the reader bounds the depth) */
    size_t name[VX_DEPTH + 1], len[VX_DEPTH + 1];
    unsigned depth;
    /* the start tag being read */
    size_t lt;
    bool graphics, cookies;
    /* inside a removed element: its depth and where it started */
    int cut_depth;
    size_t cut_start;
} strip;

static bool name_is(const strip *x, size_t off, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    return len == l && memcmp(x->s + off, lit, l) == 0;
}

static bool add(strip *x, size_t a, size_t b)
{
    if (!vec_reserve(x->v, x->cap, x->nv + 1, 8, 0)) {
        x->rc = err_nomem(x->err);
        return false;
    }
    x->v[x->nv++] = (span){a, b};
    return true;
}

/* Widen a removed element [a, b) to the whole lines it stands on, when it
 * is alone on them: the indentation before it and the newline after. */
static void widen_to_lines(const char *s, size_t n, size_t *a, size_t *b)
{
    size_t x = *a, y = *b;
    while (x > 0 && (s[x - 1] == ' ' || s[x - 1] == '\t'))
        x--;
    if (x > 0 && s[x - 1] != '\n')
        return;
    while (y < n && (s[y] == ' ' || s[y] == '\t' || s[y] == '\r'))
        y++;
    if (y < n && s[y] == '\n')
        y++;
    else if (y < n)
        return;
    *a = x;
    *b = y;
}

static bool cut(strip *x, size_t a, size_t b)
{
    widen_to_lines(x->s, x->n, &a, &b);
    return add(x, a, b);
}

static bool on_start(void *ctx, size_t lt, size_t name, size_t len, unsigned depth)
{
    strip *x = ctx;
    x->lt = lt;
    x->graphics = name_is(x, name, len, "graphics");
    x->cookies = name_is(x, name, len, "cookies") && depth > 0 &&
                 name_is(x, x->name[depth - 1], x->len[depth - 1], "source");
    x->name[depth] = name;
    x->len[depth] = len;
    x->depth = depth;
    return true;
}

static bool on_attr(void *ctx, size_t ws, size_t name, size_t len, size_t end)
{
    strip *x = ctx;
    if (x->graphics && x->cut_depth < 0 && name_is(x, name, len, "passwd")) {
        x->secrets++;
        return add(x, ws, end);
    }
    return true;
}

static bool on_start_done(void *ctx, size_t end, bool empty)
{
    strip *x = ctx;
    if (!x->cookies || x->cut_depth >= 0)
        return true;
    x->secrets++;
    if (empty)
        return cut(x, x->lt, end);
    x->cut_depth = (int)x->depth;
    x->cut_start = x->lt;
    return true;
}

static bool on_end(void *ctx, size_t end, unsigned depth)
{
    strip *x = ctx;
    if (x->cut_depth == (int)depth) {
        x->cut_depth = -1;
        return cut(x, x->cut_start, end);
    }
    return true;
}

char *mrimg_xml_strip_secrets(const char *xml, size_t len, unsigned *removed, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (removed)
        *removed = 0;
    if (!xml)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no XML given"), NULL;
    if (len > MRIMG_DATA_LEN_MAX)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_NONE, 0,
                       "domain XML of %zu bytes exceeds the %u-byte cap", len,
                       MRIMG_DATA_LEN_MAX),
               NULL;
    strip x = {.s = xml, .n = len, .err = err, .cut_depth = -1};
    vx_events ev = {true, &x, on_start, on_attr, on_start_done, on_end};
    vx_result r;
    vx_parse(xml, len, &ev, &r);
    if (x.rc < 0 || !r.ok) {
        if (x.rc == 0)
            err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                    "malformed domain XML at byte %zu: %s", r.where, r.msg);
        free(x.v);
        return NULL;
    }
    char *out = xmalloc(len + 1, err);
    if (!out) {
        free(x.v);
        return NULL;
    }
    /* spans are in input order and disjoint: removals inside a removed
     * element are not recorded */
    size_t o = 0, pos = 0;
    for (size_t k = 0; k < x.nv; k++) {
        size_t a = x.v[k].start, b = x.v[k].end;
        if (a < pos) /* a widened span may touch the previous one */
            a = pos;
        if (b <= a)
            continue;
        memcpy(out + o, xml + pos, a - pos);
        o += a - pos;
        pos = b;
    }
    memcpy(out + o, xml + pos, len - pos);
    o += len - pos;
    out[o] = '\0';
    free(x.v);
    if (removed)
        *removed = x.secrets;
    return out;
}
