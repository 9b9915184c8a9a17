/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "out.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

int out_write_errno;

#define MAX_COLS 16

struct out {
    FILE *f;
    int mode;
    int depth;
    int is_list[MAX_DEPTH];   /* container kind per depth */
    int count[MAX_DEPTH];     /* members written per depth (JSON commas) */
    int indent[MAX_DEPTH];    /* human indentation per depth */
    int is_table[MAX_DEPTH];  /* a list of rows */
    int is_row[MAX_DEPTH];    /* a row of a table (one line) */
    int col[MAX_DEPTH];       /* row: next column */
    int overflow;             /* containers opened beyond MAX_DEPTH */
    int json_only;            /* values are not shown to humans */
    int ncols;                /* columns of the innermost table */
    int width[MAX_COLS];
};

out *out_new(FILE *f, int mode)
{
    out *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->f = f;
    o->mode = mode;
    if (mode == OUT_JSON)
        fputc('{', f);
    return o;
}

int out_is_json(const out *o) { return o->mode == OUT_JSON; }

/* ---- text safety ----------------------------------------------------------
 * Strings from a file (block names, XML, device names) and from the command
 * line (file names) may hold any byte.  JSON output is always valid UTF-8 and
 * reversible; human output never hands a terminal a raw control byte. */

/* Length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF) at p, or 0 if the byte at p does not start
 * one.  A NUL ends the string, so reading stops there. */
size_t utf8_seq_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

/* A C1 control (U+0080..U+009F), which terminals may obey as commands. */
static int is_c1(const unsigned char *p, size_t n) { return n == 2 && p[0] == 0xc2 && p[1] < 0xa0; }

/* JSON string.  Valid UTF-8 is kept except control characters (C0, DEL,
 * C1), which are \u-escaped; a byte that is not part of valid UTF-8 becomes
 * the lone surrogate \udcXX (XX its value, 80..ff), as Python's
 * "surrogateescape" error handler does (PEP 383).  Valid UTF-8 never
 * encodes a surrogate, so the mapping is reversible: in Python,
 * s.encode("utf-8", "surrogateescape") gives back the original bytes. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_seq_len(p);
        if (n == 0) {
            fprintf(f, "\\udc%02x", *p);
            p++;
            continue;
        }
        if (n == 1) {
            switch (*p) {
            case '"': fputs("\\\"", f); break;
            case '\\': fputs("\\\\", f); break;
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default:
                if (*p < 0x20 || *p == 0x7f)
                    fprintf(f, "\\u%04x", *p);
                else
                    fputc(*p, f);
            }
        } else if (is_c1(p, n)) {
            fprintf(f, "\\u%04x", p[1]);
        } else {
            fwrite(p, 1, n, f);
        }
        p += n;
    }
    fputc('"', f);
}

/* Human text.  Valid printable UTF-8 is shown as it is; a control
 * character as \n, \t, \r or \xHH (C1 controls as \u0080..\u009f);
 * a byte that is not valid UTF-8 as \xHH.  multiline: newlines and tabs
 * are kept (an XML document, a diff).  One step: the escape for the
 * character at p into tmp (returned), or NULL to copy its *len bytes. */
static const char *human_esc(const unsigned char *p, int multiline, size_t *len, char tmp[8])
{
    size_t n = utf8_seq_len(p);
    *len = n ? n : 1;
    if (n == 0) {
        snprintf(tmp, 8, "\\x%02x", *p);
        return tmp;
    }
    if (n == 1 && (*p < 0x20 || *p == 0x7f)) {
        if (multiline && (*p == '\n' || *p == '\t'))
            return NULL;
        if (*p == '\n')
            return "\\n";
        if (*p == '\t')
            return "\\t";
        if (*p == '\r')
            return "\\r";
        snprintf(tmp, 8, "\\x%02x", *p);
        return tmp;
    }
    if (is_c1(p, n)) {
        snprintf(tmp, 8, "\\u%04x", p[1]);
        return tmp;
    }
    return NULL;
}

void out_fputs_safe(FILE *f, const char *s, int multiline)
{
    char tmp[8];
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n;
        const char *e = human_esc(p, multiline, &n, tmp);
        if (e)
            fputs(e, f);
        else
            fwrite(p, 1, n, f);
        p += n;
    }
}

const char *out_safe(const char *s)
{
    /* a few rotating buffers, so that several can appear in one printf */
    enum { CAP = 4 * 4096 + 16 };
    static char bufs[4][CAP];
    static unsigned next;
    if (!s)
        return s;
    char tmp[8];
    size_t n;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && !human_esc(p, 0, &n, tmp))
        p += n;
    if (!*p)
        return s; /* nothing to escape */
    char *b = bufs[next++ % 4];
    size_t o = 0;
    for (p = (const unsigned char *)s; *p;) {
        const char *e = human_esc(p, 0, &n, tmp);
        const char *src = e ? e : (const char *)p;
        size_t l = e ? strlen(e) : n;
        if (o + l >= CAP)
            break;
        memcpy(b + o, src, l);
        o += l;
        p += n;
    }
    b[o] = '\0';
    return b;
}

/* JSON: comma, newline+indent, and "key": unless in a list.  Rows of a
 * table are written on one line. */
static void json_member(out *o, const char *key)
{
    if (o->is_row[o->depth]) {
        if (o->count[o->depth]++)
            fputs(", ", o->f);
        json_string(o->f, key);
        fputs(": ", o->f);
        return;
    }
    if (o->count[o->depth]++)
        fputc(',', o->f);
    fputc('\n', o->f);
    for (int i = 0; i <= o->depth; i++)
        fputs("  ", o->f);
    if (!o->is_list[o->depth]) {
        json_string(o->f, key);
        fputs(": ", o->f);
    }
}

static void human_label(out *o, const char *key, const char *label)
{
    fprintf(o->f, "%*s%s: ", o->indent[o->depth], "", label ? label : key);
}

/* One table cell: padded to its column's width, two spaces apart. */
static void human_cell(out *o, const char *text)
{
    int c = o->col[o->depth]++;
    if (c == 0)
        fprintf(o->f, "%*s", o->indent[o->depth], "");
    else
        fputs("  ", o->f);
    int w = c < o->ncols - 1 ? o->width[c] : 0;
    text = out_safe(text);
    if (w > 0)
        fprintf(o->f, "%*s", w, text);
    else if (w < 0)
        fprintf(o->f, "%-*s", -w, text);
    else
        fputs(text, o->f);
}

/* A human value: a cell in a row, else a "label: value" line. */
static void human_value(out *o, const char *key, const char *label, const char *text)
{
    if (o->json_only)
        return;
    if (o->is_row[o->depth]) {
        human_cell(o, text);
        return;
    }
    human_label(o, key, label);
    out_fputs_safe(o->f, text, 0);
    fputc('\n', o->f);
}

static void push(out *o, int is_list, int indent)
{
    if (o->depth + 1 >= MAX_DEPTH) {
        o->overflow++;
        return;
    }
    o->depth++;
    o->is_list[o->depth] = is_list;
    o->count[o->depth] = 0;
    o->indent[o->depth] = indent;
    o->is_table[o->depth] = 0;
    o->is_row[o->depth] = 0;
    o->col[o->depth] = 0;
}

void out_obj(out *o, const char *key, const char *title)
{
    if (o->is_table[o->depth]) { /* a row */
        int ind = o->indent[o->depth];
        if (o->mode == OUT_JSON) {
            json_member(o, key);
            fputc('{', o->f);
        }
        push(o, 0, ind);
        o->is_row[o->depth] = 1;
        return;
    }
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fputc('{', o->f);
        push(o, 0, 0);
        return;
    }
    int ind = o->indent[o->depth];
    if (title) {
        fprintf(o->f, "%*s%s:\n", ind, "", out_safe(title));
        ind += 2;
    } else if (o->is_list[o->depth] && o->depth > 0) {
        /* list items without a title are separated by a "-" marker */
        fprintf(o->f, "%*s-\n", ind, "");
        ind += 2;
    }
    push(o, 0, ind);
}

void out_list(out *o, const char *key, const char *title)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fputc('[', o->f);
        push(o, 1, 0);
        return;
    }
    int ind = o->indent[o->depth];
    if (title) {
        fprintf(o->f, "%*s%s:\n", ind, "", title);
        ind += 2;
    }
    push(o, 1, ind);
}

void out_table(out *o, const char *key, const char *title, const out_col *cols, int ncols)
{
    if (ncols > MAX_COLS)
        ncols = MAX_COLS;
    o->ncols = ncols;
    for (int i = 0; i < ncols; i++)
        o->width[i] = cols[i].width;
    out_list(o, key, title);
    o->is_table[o->depth] = 1;
    if (o->mode == OUT_JSON)
        return;
    /* the header line */
    out_obj(o, NULL, NULL);
    for (int i = 0; i < ncols; i++)
        human_cell(o, cols[i].header ? cols[i].header : "");
    out_end(o);
}

void out_cell(out *o, const char *text)
{
    if (o->mode == OUT_JSON || o->json_only)
        return;
    if (o->is_row[o->depth])
        human_cell(o, text);
    else
        fprintf(o->f, "%*s%s\n", o->indent[o->depth], "", out_safe(text));
}

void out_json_only(out *o, int on) { o->json_only = on; }

void out_text(out *o, const char *key, const char *text)
{
    if (!text)
        text = "";
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        json_string(o->f, text);
        return;
    }
    if (o->json_only)
        return;
    size_t n = strlen(text);
    out_fputs_safe(o->f, text, 1);
    if (n == 0 || text[n - 1] != '\n')
        fputc('\n', o->f);
}

void out_end(out *o)
{
    if (o->overflow) {
        o->overflow--;
        return;
    }
    if (o->depth == 0)
        return;
    if (o->is_row[o->depth]) {
        o->depth--;
        fputc(o->mode == OUT_JSON ? '}' : '\n', o->f);
        return;
    }
    if (o->mode == OUT_JSON) {
        int had = o->count[o->depth];
        int list = o->is_list[o->depth];
        o->depth--;
        if (had) {
            fputc('\n', o->f);
            for (int i = 0; i <= o->depth; i++)
                fputs("  ", o->f);
        }
        fputc(list ? ']' : '}', o->f);
        return;
    }
    o->depth--;
}

void out_free(out *o)
{
    if (!o)
        return;
    while (o->depth > 0)
        out_end(o);
    if (o->mode == OUT_JSON)
        fputs(o->count[0] ? "\n}\n" : "}\n", o->f);
    if (fflush(o->f) != 0 && !out_write_errno)
        out_write_errno = errno;
    free(o);
}

void out_str(out *o, const char *key, const char *label, const char *v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        if (v)
            json_string(o->f, v);
        else
            fputs("null", o->f);
        return;
    }
    human_value(o, key, label, v ? v : "-");
}

void out_u64(out *o, const char *key, const char *label, uint64_t v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%" PRIu64, v);
        return;
    }
    char b[32];
    snprintf(b, sizeof(b), "%" PRIu64, v);
    human_value(o, key, label, b);
}

void out_i64(out *o, const char *key, const char *label, int64_t v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%" PRId64, v);
        return;
    }
    char b[32];
    snprintf(b, sizeof(b), "%" PRId64, v);
    human_value(o, key, label, b);
}

void out_off(out *o, const char *key, const char *label, uint64_t v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%" PRIu64, v);
        return;
    }
    char b[64];
    if (o->is_row[o->depth])
        snprintf(b, sizeof(b), "0x%" PRIx64, v);
    else
        snprintf(b, sizeof(b), "0x%" PRIx64 " (%" PRIu64 ")", v, v);
    human_value(o, key, label, b);
}

const char *fmt_size(char *buf, size_t cap, uint64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (v < 1024) {
        snprintf(buf, cap, "%" PRIu64 " B", v);
        return buf;
    }
    double d = (double)v;
    int u = 0;
    while (d >= 1024.0 && u < 6) {
        d /= 1024.0;
        u++;
    }
    snprintf(buf, cap, d < 10 ? "%.2f %s" : d < 100 ? "%.1f %s" : "%.0f %s", d, units[u]);
    return buf;
}

void out_size(out *o, const char *key, const char *label, uint64_t v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%" PRIu64, v);
        return;
    }
    char b[32], line[80];
    fmt_size(b, sizeof(b), v);
    if (v < 1024 || o->is_row[o->depth])
        snprintf(line, sizeof(line), "%s", b);
    else
        snprintf(line, sizeof(line), "%s (%" PRIu64 " bytes)", b, v);
    human_value(o, key, label, line);
}

void out_bool(out *o, const char *key, const char *label, int v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fputs(v ? "true" : "false", o->f);
        return;
    }
    human_value(o, key, label, v ? "yes" : "no");
}

void out_double(out *o, const char *key, const char *label, double v, int decimals)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%.*f", decimals, v);
        return;
    }
    char b[64];
    snprintf(b, sizeof(b), "%.*f", decimals, v);
    human_value(o, key, label, b);
}

void out_null(out *o, const char *key, const char *label)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fputs("null", o->f);
        return;
    }
    human_value(o, key, label, "-");
}

void out_note(out *o, const char *fmt, ...)
{
    if (o->mode == OUT_JSON || o->json_only)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(o->f, "%*s", o->indent[o->depth], "");
    vfprintf(o->f, fmt, ap);
    fputc('\n', o->f);
    va_end(ap);
}
