/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One output path for human and JSON output.  A tool describes its result
 * once, as nested objects, lists and typed values; the emitter renders it
 * either as indented "label: value" lines or as JSON with the keys.  So the
 * two forms cannot drift apart. */
#ifndef MRIMG_TOOLS_OUT_H
#define MRIMG_TOOLS_OUT_H

#include <stdint.h>
#include <stdio.h>

typedef struct out out;

enum { OUT_HUMAN = 0, OUT_JSON = 1 };

out *out_new(FILE *f, int mode);
/* errno of the first failed flush of an output (for the exit check). */
extern int out_write_errno;

/* Finish the document (closes any open containers) and free. */
void out_free(out *o);
int out_is_json(const out *o);

/* Containers.  key: the JSON member name (ignored inside lists); title: the
 * human heading (NULL: no heading, children are not indented). */
void out_obj(out *o, const char *key, const char *title);
void out_list(out *o, const char *key, const char *title);
void out_end(out *o);

/* Values.  label: the human label (NULL: use key). */
void out_str(out *o, const char *key, const char *label, const char *v);
void out_u64(out *o, const char *key, const char *label, uint64_t v);
void out_i64(out *o, const char *key, const char *label, int64_t v);
/* human: 0x1a2b (6699); json: number */
void out_off(out *o, const char *key, const char *label, uint64_t v);
/* human: 1.5 GiB (1610612736 bytes); json: number of bytes */
void out_size(out *o, const char *key, const char *label, uint64_t v);
void out_bool(out *o, const char *key, const char *label, int v);
void out_double(out *o, const char *key, const char *label, double v, int decimals);
void out_null(out *o, const char *key, const char *label);
/* A line of free text for humans only (not in JSON). */
void out_note(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A block of text (e.g. an XML document): humans get it verbatim, with a
 * final newline added if missing, no label; JSON a string member. */
void out_text(out *o, const char *key, const char *text);

/* Tables: a list whose items are rows, one line each for humans, so that
 * long lists (millions of extents) stay readable and stream out as they
 * are written.  cols gives each column's header (printed once, after the
 * title) and width (> 0 right-aligned, < 0 left-aligned; the last column
 * is not padded).  Inside a table, out_obj(o, NULL, NULL) starts a row and
 * out_end() ends it; the values written in between fill the columns in
 * order, without labels (out_size shows "1.50 MiB", out_off "0x1a2b").
 * JSON: a list of objects, one per line.  At most 16 columns. */
typedef struct out_col {
    const char *header;
    int width;
} out_col;
void out_table(out *o, const char *key, const char *title, const out_col *cols, int ncols);
/* Human-only table cell (not in JSON). */
void out_cell(out *o, const char *text);
/* While on, values go to JSON only (humans do not see them). */
void out_json_only(out *o, int on);

/* Text safety (see out.c): human output never carries a raw control byte
 * or invalid UTF-8 from a file; JSON strings are valid UTF-8, bytes that are
 * not UTF-8 written as the lone surrogates \udc80..\udcff (reversible,
 * Python's "surrogateescape").
 * out_fputs_safe: s with control characters and invalid bytes escaped
 *   (\n \t \r \xHH \u0080..\u009f); multiline keeps newlines and tabs.
 * out_safe: the same as a string (s itself when nothing needs escaping;
 *   else one of 4 rotating static buffers, cut at 16 KiB).
 * utf8_seq_len: length of the valid UTF-8 sequence at p, 0 if none. */
void out_fputs_safe(FILE *f, const char *s, int multiline);
const char *out_safe(const char *s);
size_t utf8_seq_len(const unsigned char *p);

/* "1.5 GiB" into buf (for messages). */
const char *fmt_size(char *buf, size_t cap, uint64_t v);

#endif
