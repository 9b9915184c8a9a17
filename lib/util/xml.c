/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A small, bounded XML 1.0 well-formedness checker for the domain XML and
 * the save cookie (no libxml2): one root element, matching tags, unique
 * attributes with quoted values, comments, processing instructions, CDATA,
 * predefined and character entity references, no stray '<' or '&', no
 * control characters.  A DOCTYPE is refused (libvirt never writes one).
 * It records the root element's name and whether <name> and <uuid> are
 * among its children. */
#include <stdio.h>

#include "xml.h"

#define VX_ATTRS 256

typedef struct vx {
    const char *s;
    size_t n, i;
    vx_result *r;
    const vx_events *ev;
} vx;

static bool fail(vx *x, size_t at, const char *msg)
{
    x->r->ok = false;
    x->r->where = at;
    snprintf(x->r->msg, sizeof(x->r->msg), "%s", msg);
    return false;
}

/* A callback asked to stop: not a failure of the document. */
static bool stop(vx *x)
{
    x->r->stopped = true;
    return false;
}

static bool name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
}
static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}
static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool bad_ctl(unsigned char c) { return c < 0x20 && c != '\t' && c != '\n' && c != '\r'; }

static void skip_ws(vx *x)
{
    while (x->i < x->n && is_ws(x->s[x->i]))
        x->i++;
}

/* A name at x->i; *len set. */
static bool name(vx *x, size_t *len, const char *what)
{
    size_t st = x->i;
    if (x->i >= x->n || !name_start((unsigned char)x->s[x->i])) {
        char m[64];
        snprintf(m, sizeof(m), "%s name expected", what);
        return fail(x, x->i, m);
    }
    while (x->i < x->n && name_char((unsigned char)x->s[x->i]))
        x->i++;
    *len = x->i - st;
    if (*len > 255) {
        char m[64];
        snprintf(m, sizeof(m), "%s name longer than 255 bytes", what);
        return fail(x, st, m);
    }
    return true;
}

/* &...; at x->i */
static bool reference(vx *x)
{
    size_t st = x->i++;
    if (x->i < x->n && x->s[x->i] == '#') {
        x->i++;
        bool hex = x->i < x->n && x->s[x->i] == 'x';
        if (hex)
            x->i++;
        unsigned long v = 0;
        size_t digits = 0;
        while (x->i < x->n && x->s[x->i] != ';' && digits < 8) {
            char c = x->s[x->i];
            int d = (c >= '0' && c <= '9')            ? c - '0'
                    : hex && (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : hex && (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                      : -1;
            if (d < 0)
                return fail(x, st, "invalid character reference");
            v = v * (hex ? 16 : 10) + (unsigned long)d;
            x->i++;
            digits++;
        }
        if (x->i >= x->n || x->s[x->i] != ';' || digits == 0 || v == 0 || v > 0x10ffff ||
            (v < 0x20 && v != 9 && v != 10 && v != 13) || (v >= 0xd800 && v <= 0xdfff))
            return fail(x, st, "invalid character reference");
        x->i++;
        return true;
    }
    static const char *const ents[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
    for (size_t k = 0; k < MRIMG_ARRAY_SIZE(ents); k++) {
        size_t l = strlen(ents[k]);
        if (x->n - x->i >= l && memcmp(x->s + x->i, ents[k], l) == 0) {
            x->i += l;
            return true;
        }
    }
    return fail(x, st, "'&' that does not start an entity reference (only &amp; &lt; &gt; "
                       "&quot; &apos; and &#...; are defined)");
}

/* <!-- ... --> at x->i */
static bool comment(vx *x)
{
    size_t st = x->i;
    x->i += 4;
    for (;;) {
        if (x->n - x->i < 3)
            return fail(x, st, "unterminated comment");
        if (x->s[x->i] == '-' && x->s[x->i + 1] == '-') {
            if (x->s[x->i + 2] != '>')
                return fail(x, x->i, "'--' inside a comment");
            x->i += 3;
            return true;
        }
        if (bad_ctl((unsigned char)x->s[x->i]))
            return fail(x, x->i, "control character in a comment");
        x->i++;
    }
}

/* <? ... ?> at x->i */
static bool pi(vx *x, bool at_start)
{
    size_t st = x->i;
    x->i += 2;
    size_t nl;
    if (!name(x, &nl, "processing instruction"))
        return false;
    if (nl == 3 && (x->s[st + 2] | 0x20) == 'x' && (x->s[st + 3] | 0x20) == 'm' &&
        (x->s[st + 4] | 0x20) == 'l' && !at_start)
        return fail(x, st, "XML declaration not at the start of the document");
    for (;;) {
        if (x->n - x->i < 2)
            return fail(x, st, "unterminated processing instruction");
        if (x->s[x->i] == '?' && x->s[x->i + 1] == '>') {
            x->i += 2;
            return true;
        }
        if (bad_ctl((unsigned char)x->s[x->i]))
            return fail(x, x->i, "control character in a processing instruction");
        x->i++;
    }
}

typedef struct span {
    size_t off, len;
} span;

/* A start or empty-element tag at x->i ('<' name ...) of an element at
 * depth.  *empty set for "/>".  The tag's name goes to *nm. */
static bool start_tag(vx *x, unsigned depth, span *nm, bool *empty)
{
    span attrs[VX_ATTRS];
    unsigned na = 0;
    x->i++;
    nm->off = x->i;
    if (!name(x, &nm->len, "element"))
        return false;
    if (x->ev && x->ev->start &&
        !x->ev->start(x->ev->ctx, nm->off - 1, nm->off, nm->len, depth))
        return stop(x);
    for (;;) {
        size_t before = x->i;
        skip_ws(x);
        if (x->i >= x->n)
            return fail(x, nm->off - 1, "unterminated start tag");
        if (x->s[x->i] == '>') {
            x->i++;
            *empty = false;
            return true;
        }
        if (x->s[x->i] == '/') {
            if (x->i + 1 >= x->n || x->s[x->i + 1] != '>')
                return fail(x, x->i, "'/' not followed by '>' in a tag");
            x->i += 2;
            *empty = true;
            return true;
        }
        if (x->i == before)
            return fail(x, x->i, "white space expected before an attribute");
        span a = {x->i, 0};
        if (!name(x, &a.len, "attribute"))
            return false;
        for (unsigned k = 0; k < na; k++)
            if (attrs[k].len == a.len && memcmp(x->s + attrs[k].off, x->s + a.off, a.len) == 0)
                return fail(x, a.off, "attribute repeated in one tag");
        if (na >= VX_ATTRS)
            return fail(x, a.off, "more than 256 attributes in one tag");
        attrs[na++] = a;
        size_t ws_start = before;
        skip_ws(x);
        if (x->i >= x->n || x->s[x->i] != '=')
            return fail(x, x->i, "'=' expected after an attribute name");
        x->i++;
        skip_ws(x);
        if (x->i >= x->n || (x->s[x->i] != '"' && x->s[x->i] != '\''))
            return fail(x, x->i, "quoted attribute value expected");
        char q = x->s[x->i++];
        for (;;) {
            if (x->i >= x->n)
                return fail(x, a.off, "unterminated attribute value");
            char c = x->s[x->i];
            if (c == q) {
                x->i++;
                break;
            }
            if (c == '<')
                return fail(x, x->i, "'<' inside an attribute value");
            if (c == '&') {
                if (!reference(x))
                    return false;
                continue;
            }
            if (bad_ctl((unsigned char)c))
                return fail(x, x->i, "control character in an attribute value");
            x->i++;
        }
        if (x->ev && x->ev->attr && !x->ev->attr(x->ev->ctx, ws_start, a.off, a.len, x->i))
            return stop(x);
    }
}

void vx_check(const char *text, size_t len, vx_result *r) { vx_parse(text, len, NULL, r); }

/* A DOCTYPE at x->i ("<!DOCTYPE"), internal subset included. */
static bool doctype(vx *x)
{
    size_t st = x->i;
    x->i += 9;
    int brackets = 0;
    char q = 0;
    for (;;) {
        if (x->i >= x->n)
            return fail(x, st, "unterminated DOCTYPE");
        char e = x->s[x->i++];
        if (bad_ctl((unsigned char)e))
            return fail(x, x->i - 1, "control character in a DOCTYPE");
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
            return true;
        }
    }
}

/* The document must be UTF-8 made of XML 1.0 characters, as libxml2 (and
 * with it libvirt) requires of a document without an encoding declaration:
 * no malformed or truncated sequence, no overlong form, no surrogate, no
 * code point above U+10FFFF, no C0 control other than tab, LF and CR, and
 * neither U+FFFE nor U+FFFF.  Returns true, or fails at the first bad byte. */
static bool utf8_chars(vx *x)
{
    const unsigned char *s = (const unsigned char *)x->s;
    char m[120];
    for (size_t i = 0; i < x->n;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (bad_ctl((unsigned char)c)) {
                snprintf(m, sizeof(m), "control character 0x%02x (not an XML 1.0 character)", c);
                return fail(x, i, m);
            }
            i++;
            continue;
        }
        size_t k = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
        if (k == 0 || c > 0xf4) {
            snprintf(m, sizeof(m), "byte 0x%02x is not UTF-8 (the XML must be UTF-8)", c);
            return fail(x, i, m);
        }
        if (x->n - i <= k) {
            snprintf(m, sizeof(m), "truncated UTF-8 sequence (byte 0x%02x)", c);
            return fail(x, i, m);
        }
        uint32_t cp = c & (0x3fu >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                snprintf(m, sizeof(m),
                         "invalid UTF-8 sequence (byte 0x%02x after 0x%02x; the XML must be "
                         "UTF-8)",
                         s[i + j], c);
                return fail(x, i, m);
            }
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[k]) {
            snprintf(m, sizeof(m), "overlong UTF-8 form of U+%04X", (unsigned)cp);
            return fail(x, i, m);
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff) {
            snprintf(m, sizeof(m), "%s U+%04X is not an XML 1.0 character",
                     cp >= 0xd800 && cp <= 0xdfff ? "surrogate" : "code point", (unsigned)cp);
            return fail(x, i, m);
        }
        i += k + 1;
    }
    return true;
}

void vx_parse(const char *text, size_t len, const vx_events *ev, vx_result *r)
{
    memset(r, 0, sizeof(*r));
    r->ok = true;
    vx x = {text, len, 0, r, ev};
    span stack[VX_DEPTH];
    unsigned depth = 0;
    bool root_done = false, any = false;
    if (!utf8_chars(&x))
        return;
    /* optional UTF-8 byte order mark */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        x.i = 3;
    size_t first = x.i;
    while (x.i < x.n) {
        char c = x.s[x.i];
        if (c != '<') {
            if (depth == 0) {
                if (!is_ws(c)) {
                    fail(&x, x.i, root_done ? "text after the root element"
                                            : "text before the root element");
                    return;
                }
                x.i++;
                continue;
            }
            if (c == '&') {
                if (!reference(&x))
                    return;
                continue;
            }
            if (c == ']' && x.n - x.i >= 3 && memcmp(x.s + x.i, "]]>", 3) == 0) {
                fail(&x, x.i, "']]>' in text");
                return;
            }
            if (bad_ctl((unsigned char)c) || c == 0) {
                fail(&x, x.i, "control character in text");
                return;
            }
            x.i++;
            continue;
        }
        size_t at = x.i;
        if (x.n - x.i >= 4 && memcmp(x.s + x.i, "<!--", 4) == 0) {
            if (!comment(&x))
                return;
            continue;
        }
        if (x.n - x.i >= 2 && x.s[x.i + 1] == '?') {
            if (!pi(&x, at == first))
                return;
            continue;
        }
        if (x.n - x.i >= 9 && memcmp(x.s + x.i, "<![CDATA[", 9) == 0) {
            if (depth == 0) {
                fail(&x, at, "CDATA section outside the root element");
                return;
            }
            const char *e = memmem(x.s + x.i + 9, x.n - x.i - 9, "]]>", 3);
            if (!e) {
                fail(&x, at, "unterminated CDATA section");
                return;
            }
            for (size_t k = x.i + 9; k < (size_t)(e - x.s); k++) {
                if (bad_ctl((unsigned char)x.s[k])) {
                    fail(&x, k, "control character in a CDATA section");
                    return;
                }
            }
            x.i = (size_t)(e - x.s) + 3;
            continue;
        }
        if (ev && ev->allow_doctype && depth == 0 && !root_done && !any &&
            x.n - x.i >= 9 && memcmp(x.s + x.i, "<!DOCTYPE", 9) == 0) {
            if (!doctype(&x))
                return;
            continue;
        }
        if (x.n - x.i >= 2 && x.s[x.i + 1] == '!') {
            fail(&x, at, "DOCTYPE or other declaration (not expected in a domain XML)");
            return;
        }
        if (x.n - x.i >= 2 && x.s[x.i + 1] == '/') {
            x.i += 2;
            span nm = {x.i, 0};
            if (!name(&x, &nm.len, "end tag"))
                return;
            skip_ws(&x);
            if (x.i >= x.n || x.s[x.i] != '>') {
                fail(&x, at, "unterminated end tag");
                return;
            }
            x.i++;
            if (depth == 0) {
                fail(&x, at, "end tag without a start tag");
                return;
            }
            span *top = &stack[depth - 1];
            if (top->len != nm.len || memcmp(x.s + top->off, x.s + nm.off, nm.len) != 0) {
                char b[80];
                snprintf(b, sizeof(b), "%.*s", (int)MRIMG_MIN(top->len, (size_t)60),
                         x.s + top->off);
                char m[120];
                snprintf(m, sizeof(m), "end tag does not match the start tag <%s>", b);
                fail(&x, at, m);
                return;
            }
            if (--depth == 0)
                root_done = true;
            if (ev && ev->end && !ev->end(ev->ctx, x.i, depth)) {
                stop(&x);
                return;
            }
            continue;
        }
        /* start tag */
        if (depth == 0 && root_done) {
            fail(&x, at, "a second root element");
            return;
        }
        span nm;
        bool empty;
        if (!start_tag(&x, depth, &nm, &empty))
            return; /* malformed, or a callback stopped it (r->ok stays true) */
        if (ev && ev->start_done && !ev->start_done(ev->ctx, x.i, empty)) {
            stop(&x);
            return;
        }
        if (depth == 0) {
            any = true;
            snprintf(r->root, sizeof(r->root), "%.*s", (int)MRIMG_MIN(nm.len, (size_t)63),
                     x.s + nm.off);
        } else if (depth == 1) {
            if (nm.len == 4 && memcmp(x.s + nm.off, "name", 4) == 0)
                r->has_name = true;
            if (nm.len == 4 && memcmp(x.s + nm.off, "uuid", 4) == 0)
                r->has_uuid = true;
        }
        if (empty) {
            if (depth == 0)
                root_done = true;
            continue;
        }
        if (depth >= VX_DEPTH) {
            fail(&x, at, "elements nested deeper than 256 levels");
            return;
        }
        stack[depth++] = nm;
    }
    if (depth > 0) {
        char b[80];
        snprintf(b, sizeof(b), "%.*s", (int)MRIMG_MIN(stack[depth - 1].len, (size_t)60),
                 x.s + stack[depth - 1].off);
        char m[120];
        snprintf(m, sizeof(m), "the document ends inside <%s>", b);
        fail(&x, x.n, m);
        return;
    }
    if (!any)
        fail(&x, x.n, "no root element");
}
