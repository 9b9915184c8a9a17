/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A strict, bounded JSON reader (RFC 8259) for the VMDESCRIPTION: exactly
 * one value, valid UTF-8, no control characters in strings, strict number
 * grammar, nesting at most VJ_MAX_DEPTH, at most VJ_MAX_NODES values when a
 * tree is built.  Recursion depth is bounded by the nesting cap. */
#include <stdio.h>
#include <stdlib.h>

#include "vmdesc.h"
#include "../util/vec.h"

typedef struct vj_p {
    const uint8_t *s;
    size_t n, i;
    vj_doc *doc;
    int depth;
    size_t where;
    char *msg;
    size_t msgcap;
} vj_p;

static int fail(vj_p *p, const char *what)
{
    p->where = p->i;
    snprintf(p->msg, p->msgcap, "%s", what);
    return -1;
}

static void ws(vj_p *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int32_t new_node(vj_p *p, uint8_t type)
{
    if (!p->doc)
        return 0;
    vj_doc *d = p->doc;
    if (d->count >= VJ_MAX_NODES)
        return -2;
    if (!vec_reserve(d->n, d->cap, d->count + 1, 1024, VJ_MAX_NODES))
        return -3;
    vj_node *x = &d->n[d->count];
    memset(x, 0, sizeof(*x));
    x->type = type;
    x->child = x->next = -1;
    x->off = (uint32_t)p->i;
    return (int32_t)d->count++;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string at p->i (the opening quote); sets *off and *len to its inside. */
static int string(vj_p *p, uint32_t *off, uint32_t *len)
{
    p->i++; /* " */
    size_t start = p->i;
    while (p->i < p->n) {
        uint8_t c = p->s[p->i];
        if (c == '"') {
            *off = (uint32_t)start;
            *len = (uint32_t)(p->i - start);
            p->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(p, "control character inside a string");
        if (c == '\\') {
            if (p->i + 1 >= p->n)
                break;
            uint8_t e = p->s[p->i + 1];
            if (e == 'u') {
                if (p->i + 6 > p->n)
                    break;
                unsigned v = 0;
                for (int k = 2; k < 6; k++) {
                    int h = hexval(p->s[p->i + k]);
                    if (h < 0)
                        return fail(p, "bad \\u escape");
                    v = v << 4 | (unsigned)h;
                }
                p->i += 6;
                if (v >= 0xd800 && v <= 0xdbff) {
                    /* a high surrogate needs its low half */
                    if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return fail(p, "lone UTF-16 surrogate in a \\u escape");
                    unsigned lo = 0;
                    for (int k = 2; k < 6; k++) {
                        int h = hexval(p->s[p->i + k]);
                        if (h < 0)
                            return fail(p, "bad \\u escape");
                        lo = lo << 4 | (unsigned)h;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return fail(p, "lone UTF-16 surrogate in a \\u escape");
                    p->i += 6;
                } else if (v >= 0xdc00 && v <= 0xdfff) {
                    return fail(p, "lone UTF-16 surrogate in a \\u escape");
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0)
                return fail(p, "invalid escape in a string");
            p->i += 2;
            continue;
        }
        if (c < 0x80) {
            p->i++;
            continue;
        }
        /* UTF-8: shortest form, no surrogates, <= U+10FFFF */
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return fail(p, "invalid UTF-8 in a string");
        }
        if (p->i + need >= p->n)
            break;
        for (size_t k = 1; k <= need; k++) {
            uint8_t cc = p->s[p->i + k];
            if ((cc & 0xc0) != 0x80)
                return fail(p, "invalid UTF-8 in a string");
            cp = cp << 6 | (cc & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return fail(p, "invalid UTF-8 in a string");
        p->i += need + 1;
    }
    return fail(p, "unterminated string");
}

static int number(vj_p *p)
{
    size_t i = p->i;
    if (i < p->n && p->s[i] == '-')
        i++;
    if (i >= p->n)
        return fail(p, "truncated number");
    if (p->s[i] == '0') {
        i++;
    } else if (p->s[i] >= '1' && p->s[i] <= '9') {
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    } else {
        return fail(p, "invalid number");
    }
    if (i < p->n && p->s[i] == '.') {
        i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') {
            p->i = i;
            return fail(p, "invalid number (digits expected after '.')");
        }
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') {
            p->i = i;
            return fail(p, "invalid number (digits expected in the exponent)");
        }
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
    }
    p->i = i;
    return 0;
}

static int value(vj_p *p, int32_t *out);

static int nomem_or_cap(vj_p *p, int32_t r)
{
    return fail(p, r == -2 ? "more values than the cap of the description reader"
                           : "out of memory");
}

static int container(vj_p *p, bool obj, int32_t self)
{
    if (++p->depth > VJ_MAX_DEPTH)
        return fail(p, "nesting deeper than 64 levels");
    p->i++; /* { or [ */
    ws(p);
    uint8_t close = obj ? '}' : ']';
    int32_t last = -1;
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        uint32_t koff = 0, klen = 0;
        if (obj) {
            if (p->i >= p->n || p->s[p->i] != '"')
                return fail(p, p->i >= p->n ? "truncated object" : "member name expected");
            if (string(p, &koff, &klen) < 0)
                return -1;
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return fail(p, "':' expected after a member name");
            p->i++;
            ws(p);
        }
        int32_t child;
        if (value(p, &child) < 0)
            return -1;
        if (p->doc) {
            vj_node *c = &p->doc->n[child];
            c->key_off = koff;
            c->key_len = klen;
            if (last < 0)
                p->doc->n[self].child = child;
            else
                p->doc->n[last].next = child;
        }
        last = child;
        ws(p);
        if (p->i >= p->n)
            return fail(p, obj ? "truncated object" : "truncated array");
        if (p->s[p->i] == ',') {
            p->i++;
            ws(p);
            continue;
        }
        if (p->s[p->i] == close) {
            p->i++;
            p->depth--;
            return 0;
        }
        return fail(p, obj ? "',' or '}' expected" : "',' or ']' expected");
    }
}

static int literal(vj_p *p, const char *w)
{
    size_t l = strlen(w);
    if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0)
        return fail(p, "unexpected character");
    p->i += l;
    return 0;
}

static int value(vj_p *p, int32_t *out)
{
    if (p->i >= p->n)
        return fail(p, "value expected, found the end");
    uint8_t c = p->s[p->i];
    int32_t self;
    int rc;
    switch (c) {
    case '{':
    case '[':
        self = new_node(p, c == '{' ? VJ_OBJ : VJ_ARR);
        if (self < 0)
            return nomem_or_cap(p, self);
        rc = container(p, c == '{', self);
        break;
    case '"': {
        self = new_node(p, VJ_STR);
        if (self < 0)
            return nomem_or_cap(p, self);
        uint32_t off, len;
        rc = string(p, &off, &len);
        if (rc == 0 && p->doc) {
            p->doc->n[self].off = off;
            p->doc->n[self].len = len;
        }
        *out = self;
        return rc;
    }
    case 't':
    case 'f':
    case 'n':
        self = new_node(p, c == 't' ? VJ_TRUE : c == 'f' ? VJ_FALSE : VJ_NULL);
        if (self < 0)
            return nomem_or_cap(p, self);
        rc = literal(p, c == 't' ? "true" : c == 'f' ? "false" : "null");
        break;
    default:
        if (c != '-' && (c < '0' || c > '9'))
            return fail(p, "unexpected character where a value should start");
        self = new_node(p, VJ_NUM);
        if (self < 0)
            return nomem_or_cap(p, self);
        rc = number(p);
        break;
    }
    if (rc == 0 && p->doc)
        p->doc->n[self].len = (uint32_t)(p->i - p->doc->n[self].off);
    *out = self;
    return rc;
}

int vj_parse(const char *text, size_t len, vj_doc *doc, size_t *where, char *msg, size_t msgcap)
{
    vj_p p = {(const uint8_t *)text, len, 0, doc, 0, 0, msg, msgcap};
    if (doc) {
        memset(doc, 0, sizeof(*doc));
        doc->text = text;
        doc->text_len = len;
    }
    if (len > UINT32_MAX) {
        *where = 0;
        snprintf(msg, msgcap, "text too large");
        return -1;
    }
    ws(&p);
    int32_t root;
    int rc = value(&p, &root);
    if (rc == 0) {
        ws(&p);
        if (p.i != p.n)
            rc = fail(&p, "text after the end of the JSON value");
    }
    if (rc < 0) {
        *where = p.where;
        if (doc)
            vj_free(doc);
        return -1;
    }
    return 0;
}

void vj_free(vj_doc *doc)
{
    free(doc->n);
    doc->n = NULL;
    doc->count = doc->cap = 0;
}

int32_t vj_get(const vj_doc *d, int32_t obj, const char *key)
{
    if (obj < 0 || d->n[obj].type != VJ_OBJ)
        return -1;
    size_t kl = strlen(key);
    for (int32_t c = d->n[obj].child; c >= 0; c = d->n[c].next)
        if (d->n[c].key_len == kl && memcmp(d->text + d->n[c].key_off, key, kl) == 0)
            return c;
    return -1;
}

bool vj_u64(const vj_doc *d, int32_t node, uint64_t *v)
{
    if (node < 0 || d->n[node].type != VJ_NUM)
        return false;
    const char *s = d->text + d->n[node].off;
    uint64_t x = 0;
    for (uint32_t i = 0; i < d->n[node].len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (!mul_ok(x, 10, &x) || !add_ok(x, (uint64_t)(s[i] - '0'), &x))
            return false;
    }
    *v = x;
    return true;
}

bool vj_streq(const vj_doc *d, int32_t node, const char *s, size_t n)
{
    return node >= 0 && d->n[node].type == VJ_STR && d->n[node].len == n &&
           memcmp(d->text + d->n[node].off, s, n) == 0;
}

void vj_text(const vj_doc *d, int32_t node, char *out, size_t cap)
{
    if (node < 0 || d->n[node].type != VJ_STR) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, "%.*s", (int)MRIMG_MIN((size_t)d->n[node].len, cap - 1),
             d->text + d->n[node].off);
}
