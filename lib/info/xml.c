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
 * A small, bounded tokenizer: one pass, a fixed-depth element stack of
 * pointers into the input, output no longer than the input.  It checks
 * what it needs to find tags reliably (balanced tags, quoted attribute
 * values, terminated comments, CDATA and processing instructions) and
 * rejects anything else as malformed instead of guessing. */
#include <stdlib.h>

#include "../util/util.h"

#define XML_MAX_DEPTH 256

typedef struct xtok {
    const char *s;
    size_t n, i;
    mrimg_error *err;
} xtok;

typedef struct span {
    size_t start, end; /* [start, end) of the input removed */
} span;

/* removal list: few entries (one per secret) but unbounded in principle:
 * grows as needed */
typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static int bad(xtok *t, size_t at, const char *what)
{
    return err_set(t->err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                   "malformed domain XML at byte %zu: %s", at, what);
}

static int spans_add(spans *sp, size_t a, size_t b, mrimg_error *err)
{
    if (sp->n == sp->cap) {
        size_t nc = sp->cap ? sp->cap * 2 : 8;
        span *v = realloc(sp->v, nc * sizeof(*v));
        if (!v)
            return err_nomem(err);
        sp->v = v;
        sp->cap = nc;
    }
    sp->v[sp->n++] = (span){a, b};
    return 0;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool is_name_char(char c)
{
    unsigned char u = (unsigned char)c;
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
           u == '_' || u == ':' || u == '-' || u == '.' || u >= 0x80;
}

static bool is_name_start(char c)
{
    unsigned char u = (unsigned char)c;
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u == ':' ||
           u >= 0x80;
}

static bool name_is(const char *s, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    return len == l && memcmp(s, lit, l) == 0;
}

/* Skip to just after the terminator `end`; false if it never comes. */
static bool skip_past(xtok *t, const char *end)
{
    size_t el = strlen(end);
    while (t->i + el <= t->n) {
        if (memcmp(t->s + t->i, end, el) == 0) {
            t->i += el;
            return true;
        }
        t->i++;
    }
    return false;
}

/* Read a name at t->i; returns its length (0 if none). */
static size_t read_name(xtok *t)
{
    size_t a = t->i;
    if (a >= t->n || !is_name_start(t->s[a]))
        return 0;
    while (t->i < t->n && is_name_char(t->s[t->i]))
        t->i++;
    return t->i - a;
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

typedef struct elem {
    const char *name;
    size_t len;
} elem;

/* Find what to remove; fills sp.  0 or a negative code. */
static int scan_xml(xtok *t, spans *sp, unsigned *nsecrets)
{
    elem stack[XML_MAX_DEPTH];
    int depth = 0;
    bool seen_root = false;
    /* inside a removed element: its depth and where it started */
    int cut_depth = -1;
    size_t cut_start = 0;

    while (t->i < t->n) {
        char c = t->s[t->i];
        if (c == '\0')
            return bad(t, t->i, "NUL byte");
        if (c != '<') {
            if (depth == 0 && !is_ws(c))
                return bad(t, t->i, "text outside the root element");
            t->i++;
            continue;
        }
        size_t lt = t->i;
        if (t->i + 1 >= t->n)
            return bad(t, lt, "the document ends inside a tag");
        char d = t->s[t->i + 1];
        if (d == '?') { /* processing instruction / XML declaration */
            t->i += 2;
            if (!skip_past(t, "?>"))
                return bad(t, lt, "unterminated processing instruction");
            continue;
        }
        if (d == '!') {
            if (t->i + 4 <= t->n && memcmp(t->s + t->i, "<!--", 4) == 0) {
                t->i += 4;
                if (!skip_past(t, "-->"))
                    return bad(t, lt, "unterminated comment");
                continue;
            }
            if (t->i + 9 <= t->n && memcmp(t->s + t->i, "<![CDATA[", 9) == 0) {
                if (depth == 0)
                    return bad(t, lt, "CDATA outside the root element");
                t->i += 9;
                if (!skip_past(t, "]]>"))
                    return bad(t, lt, "unterminated CDATA section");
                continue;
            }
            if (t->i + 9 <= t->n && memcmp(t->s + t->i, "<!DOCTYPE", 9) == 0 && !seen_root) {
                /* skip the declaration, internal subset included */
                t->i += 9;
                int brackets = 0;
                char q = 0;
                for (;;) {
                    if (t->i >= t->n)
                        return bad(t, lt, "unterminated DOCTYPE");
                    char e = t->s[t->i++];
                    if (q) {
                        if (e == q)
                            q = 0;
                    } else if (e == '"' || e == '\'') {
                        q = e;
                    } else if (e == '[') {
                        brackets++;
                    } else if (e == ']') {
                        brackets--;
                    } else if (e == '>' && brackets <= 0) {
                        break;
                    }
                }
                continue;
            }
            return bad(t, lt, "unexpected markup declaration");
        }
        if (d == '/') { /* end tag */
            t->i += 2;
            const char *nm = t->s + t->i;
            size_t nl = read_name(t);
            if (nl == 0)
                return bad(t, lt, "end tag without a name");
            while (t->i < t->n && is_ws(t->s[t->i]))
                t->i++;
            if (t->i >= t->n || t->s[t->i] != '>')
                return bad(t, lt, "unterminated end tag");
            t->i++;
            if (depth == 0)
                return bad(t, lt, "end tag without a start tag");
            elem *top = &stack[depth - 1];
            if (top->len != nl || memcmp(top->name, nm, nl) != 0)
                return bad(t, lt, "end tag does not match its start tag");
            depth--;
            if (cut_depth == depth) {
                size_t a = cut_start, b = t->i;
                widen_to_lines(t->s, t->n, &a, &b);
                if (spans_add(sp, a, b, t->err) < 0)
                    return MRIMG_ERR_NOMEM;
                cut_depth = -1;
            }
            continue;
        }
        /* start tag */
        t->i++;
        const char *nm = t->s + t->i;
        size_t nl = read_name(t);
        if (nl == 0)
            return bad(t, lt, "'<' not followed by a name");
        if (depth == 0 && seen_root)
            return bad(t, lt, "a second root element");
        seen_root = true;
        const char *parent = depth > 0 ? stack[depth - 1].name : NULL;
        size_t parent_len = depth > 0 ? stack[depth - 1].len : 0;
        bool graphics = name_is(nm, nl, "graphics");
        bool cookies = name_is(nm, nl, "cookies") && parent &&
                       name_is(parent, parent_len, "source");
        bool self_closing = false;
        for (;;) { /* attributes */
            size_t ws = t->i;
            while (t->i < t->n && is_ws(t->s[t->i]))
                t->i++;
            if (t->i >= t->n)
                return bad(t, lt, "the document ends inside a tag");
            char e = t->s[t->i];
            if (e == '>') {
                t->i++;
                break;
            }
            if (e == '/') {
                if (t->i + 1 >= t->n || t->s[t->i + 1] != '>')
                    return bad(t, t->i, "'/' not followed by '>' in a tag");
                t->i += 2;
                self_closing = true;
                break;
            }
            if (t->i == ws)
                return bad(t, t->i, "attributes not separated by white space");
            const char *an = t->s + t->i;
            size_t al = read_name(t);
            if (al == 0)
                return bad(t, t->i, "bad attribute name");
            while (t->i < t->n && is_ws(t->s[t->i]))
                t->i++;
            if (t->i >= t->n || t->s[t->i] != '=')
                return bad(t, t->i, "attribute without '='");
            t->i++;
            while (t->i < t->n && is_ws(t->s[t->i]))
                t->i++;
            if (t->i >= t->n || (t->s[t->i] != '\'' && t->s[t->i] != '"'))
                return bad(t, t->i, "attribute value not quoted");
            char q = t->s[t->i++];
            size_t vstart = t->i;
            while (t->i < t->n && t->s[t->i] != q) {
                if (t->s[t->i] == '<')
                    return bad(t, t->i, "'<' in an attribute value");
                if (t->s[t->i] == '\0')
                    return bad(t, t->i, "NUL byte");
                t->i++;
            }
            if (t->i >= t->n)
                return bad(t, vstart, "unterminated attribute value");
            t->i++; /* closing quote */
            if (graphics && cut_depth < 0 && name_is(an, al, "passwd")) {
                if (spans_add(sp, ws, t->i, t->err) < 0)
                    return MRIMG_ERR_NOMEM;
                (*nsecrets)++;
            }
        }
        if (cookies && cut_depth < 0) {
            (*nsecrets)++;
            if (self_closing) {
                size_t a = lt, b = t->i;
                widen_to_lines(t->s, t->n, &a, &b);
                if (spans_add(sp, a, b, t->err) < 0)
                    return MRIMG_ERR_NOMEM;
            } else {
                cut_depth = depth;
                cut_start = lt;
            }
        }
        if (!self_closing) {
            if (depth >= XML_MAX_DEPTH)
                return bad(t, lt, "elements nested deeper than 256");
            stack[depth].name = nm;
            stack[depth].len = nl;
            depth++;
        }
    }
    if (depth > 0)
        return bad(t, t->n, "the document ends inside an element (unclosed tags)");
    if (!seen_root)
        return bad(t, t->n, "no root element");
    return 0;
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
    xtok t = {xml, len, 0, err};
    spans sp = {0};
    unsigned n = 0;
    if (scan_xml(&t, &sp, &n) < 0) {
        free(sp.v);
        return NULL;
    }
    char *out = xmalloc(len + 1, err);
    if (!out) {
        free(sp.v);
        return NULL;
    }
    /* spans are in input order and disjoint: removals inside a removed
     * element are not recorded */
    size_t o = 0, pos = 0;
    for (size_t k = 0; k < sp.n; k++) {
        size_t a = sp.v[k].start, b = sp.v[k].end;
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
    free(sp.v);
    if (removed)
        *removed = n;
    return out;
}
