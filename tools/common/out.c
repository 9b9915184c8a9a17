/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "out.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

struct out {
    FILE *f;
    int mode;
    int depth;
    int is_list[MAX_DEPTH];   /* container kind per depth */
    int count[MAX_DEPTH];     /* members written per depth (JSON commas) */
    int indent[MAX_DEPTH];    /* human indentation per depth */
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

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
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
    }
    fputc('"', f);
}

/* JSON: comma, newline+indent, and "key": unless in a list. */
static void json_member(out *o, const char *key)
{
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

static void push(out *o, int is_list, int indent)
{
    if (o->depth + 1 >= MAX_DEPTH)
        return;
    o->depth++;
    o->is_list[o->depth] = is_list;
    o->count[o->depth] = 0;
    o->indent[o->depth] = indent;
}

void out_obj(out *o, const char *key, const char *title)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fputc('{', o->f);
        push(o, 0, 0);
        return;
    }
    int ind = o->indent[o->depth];
    if (title) {
        fprintf(o->f, "%*s%s:\n", ind, "", title);
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

void out_end(out *o)
{
    if (o->depth == 0)
        return;
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
    fflush(o->f);
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
    human_label(o, key, label);
    fprintf(o->f, "%s\n", v ? v : "-");
}

void out_u64(out *o, const char *key, const char *label, uint64_t v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%" PRIu64, v);
        return;
    }
    human_label(o, key, label);
    fprintf(o->f, "%" PRIu64 "\n", v);
}

void out_i64(out *o, const char *key, const char *label, int64_t v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%" PRId64, v);
        return;
    }
    human_label(o, key, label);
    fprintf(o->f, "%" PRId64 "\n", v);
}

void out_off(out *o, const char *key, const char *label, uint64_t v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%" PRIu64, v);
        return;
    }
    human_label(o, key, label);
    fprintf(o->f, "0x%" PRIx64 " (%" PRIu64 ")\n", v, v);
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
    char b[32];
    human_label(o, key, label);
    if (v < 1024)
        fprintf(o->f, "%s\n", fmt_size(b, sizeof(b), v));
    else
        fprintf(o->f, "%s (%" PRIu64 " bytes)\n", fmt_size(b, sizeof(b), v), v);
}

void out_bool(out *o, const char *key, const char *label, int v)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fputs(v ? "true" : "false", o->f);
        return;
    }
    human_label(o, key, label);
    fputs(v ? "yes\n" : "no\n", o->f);
}

void out_double(out *o, const char *key, const char *label, double v, int decimals)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fprintf(o->f, "%.*f", decimals, v);
        return;
    }
    human_label(o, key, label);
    fprintf(o->f, "%.*f\n", decimals, v);
}

void out_null(out *o, const char *key, const char *label)
{
    if (o->mode == OUT_JSON) {
        json_member(o, key);
        fputs("null", o->f);
        return;
    }
    human_label(o, key, label);
    fputs("-\n", o->f);
}

void out_note(out *o, const char *fmt, ...)
{
    if (o->mode == OUT_JSON)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(o->f, "%*s", o->indent[o->depth], "");
    vfprintf(o->f, fmt, ap);
    fputc('\n', o->f);
    va_end(ap);
}
