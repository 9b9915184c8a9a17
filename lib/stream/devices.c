/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device-state walk: the FULL sections after the RAM END are delimited
 * with the VMDESCRIPTION JSON that QEMU writes after the EOF record.  For
 * each section the JSON's "devices" entry (same order, same idstr, instance
 * and version) gives the fields with their sizes ("size" bytes per element,
 * "array_len" elements, nested "struct" descriptions walked recursively),
 * then the subsections actually sent (each a 0x05 marker, its name and
 * version, its own fields and subsections).  The walk checks that this
 * explains every byte: each section ends exactly where its footer
 * (7e + section id) starts, and the last one ends at the EOF record.
 *
 * What this proves: the framing of the device state is intact and agrees
 * with the description QEMU wrote with it.  It does not check field values
 * (QEMU does that when it loads them). */
#include <stdio.h>

#include "vmdesc.h"

typedef struct dw {
    const vj_doc *d;
    const uint8_t *t;
    size_t end;            /* device state length */
    size_t pos;
    uint64_t base;         /* stream offset of t[0] */
    sp_problem_fn fn;
    void *ctx;
    char dev[MRIMG_NAME_MAX + 1];
    bool failed;
    sp_field_fn visit;     /* optional: every leaf field's bytes */
    void *vctx;
    int32_t vmsd;          /* description node of the VMSD being walked */
} dw;

static void problem(dw *w, size_t at, const char *fmt, ...) MRIMG_PRINTF(3, 4);
static void problem(dw *w, size_t at, const char *fmt, ...)
{
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    if (w->fn)
        w->fn(w->ctx, w->base + at, m);
    w->failed = true;
}

static bool vmsd(dw *w, int32_t desc, int depth);

static bool fields(dw *w, int32_t list, int depth)
{
    const vj_doc *d = w->d;
    if (list < 0)
        return true;
    if (d->n[list].type != VJ_ARR) {
        problem(w, w->pos, "device \"%s\": the description's \"fields\" is not a list", w->dev);
        return false;
    }
    for (int32_t f = d->n[list].child; f >= 0; f = d->n[f].next) {
        char fname[96];
        vj_text(d, vj_get(d, f, "name"), fname, sizeof(fname));
        uint64_t n = 1, size = 0;
        int32_t al = vj_get(d, f, "array_len");
        if (al >= 0 && !vj_u64(d, al, &n)) {
            problem(w, w->pos, "device \"%s\", field \"%s\": bad array_len in the description",
                    w->dev, fname);
            return false;
        }
        int32_t type = vj_get(d, f, "type");
        if (vj_streq(d, type, "struct", 6)) {
            int32_t st = vj_get(d, f, "struct");
            if (st < 0 || d->n[st].type != VJ_OBJ) {
                problem(w, w->pos, "device \"%s\", field \"%s\": struct without a description",
                        w->dev, fname);
                return false;
            }
            for (uint64_t k = 0; k < n; k++) {
                size_t before = w->pos;
                if (!vmsd(w, st, depth + 1))
                    return false;
                if (w->pos == before)
                    break; /* consumed nothing: neither would the other n - k - 1 */
            }
            continue;
        }
        if (!vj_u64(d, vj_get(d, f, "size"), &size)) {
            problem(w, w->pos, "device \"%s\", field \"%s\": no size in the description", w->dev,
                    fname);
            return false;
        }
        uint64_t bytes;
        if (!mul_ok(size, n, &bytes) || bytes > w->end - w->pos) {
            problem(w, w->pos,
                    "device \"%s\", field \"%s\" (%llu x %llu bytes) runs past the end of the "
                    "device state (%llu bytes left): the stream is truncated or the "
                    "description does not match it",
                    w->dev, fname, (unsigned long long)n, (unsigned long long)size,
                    (unsigned long long)(w->end - w->pos));
            return false;
        }
        if (w->visit) {
            char vname[96];
            int32_t vn = vj_get(d, w->vmsd, "vmsd_name");
            vj_text(d, vn >= 0 ? vn : vj_get(d, w->vmsd, "name"), vname, sizeof(vname));
            w->visit(w->vctx, w->dev, vname, fname, w->t + w->pos, (size_t)bytes);
        }
        w->pos += (size_t)bytes;
    }
    return true;
}

static bool vmsd(dw *w, int32_t desc, int depth)
{
    const vj_doc *d = w->d;
    if (depth > VJ_MAX_DEPTH)
        return false;
    int32_t outer = w->vmsd;
    w->vmsd = desc;
    bool ok = fields(w, vj_get(d, desc, "fields"), depth);
    w->vmsd = outer;
    if (!ok)
        return false;
    int32_t subs = vj_get(d, desc, "subsections");
    if (subs < 0)
        return true;
    if (d->n[subs].type != VJ_ARR) {
        problem(w, w->pos, "device \"%s\": \"subsections\" is not a list", w->dev);
        return false;
    }
    for (int32_t s = d->n[subs].child; s >= 0; s = d->n[s].next) {
        char sname[MRIMG_NAME_MAX + 1];
        int32_t vn = vj_get(d, s, "vmsd_name");
        vj_text(d, vn, sname, sizeof(sname));
        size_t at = w->pos;
        if (w->end - w->pos < 2 || w->t[w->pos] != QEMU_VM_SUBSECTION) {
            problem(w, at,
                    "device \"%s\": subsection \"%s\" expected (marker 05), found %s: the "
                    "fields before it do not add up to the bytes present",
                    w->dev, sname,
                    w->end - w->pos ? (w->t[w->pos] == QEMU_VM_SECTION_FOOTER
                                           ? "a section footer"
                                           : "another byte")
                                    : "the end of the device state");
            return false;
        }
        size_t nl = w->t[w->pos + 1];
        if (w->end - w->pos < 2 + nl + 4) {
            problem(w, at, "device \"%s\": subsection \"%s\" header runs past the end", w->dev,
                    sname);
            return false;
        }
        uint64_t ver = 0;
        if (!vj_streq(d, vn, (const char *)w->t + w->pos + 2, nl)) {
            char got[MRIMG_NAME_MAX + 1];
            snprintf(got, sizeof(got), "%.*s", (int)nl, (const char *)w->t + w->pos + 2);
            problem(w, at, "device \"%s\": subsection \"%s\" found where the description has \"%s\"",
                    w->dev, got, sname);
            return false;
        }
        uint32_t sv = rd_be32(w->t + w->pos + 2 + nl);
        if (vj_u64(d, vj_get(d, s, "version"), &ver) && ver != sv) {
            problem(w, at, "device \"%s\": subsection \"%s\" has version %u, the description %llu",
                    w->dev, sname, sv, (unsigned long long)ver);
            return false;
        }
        w->pos += 2 + nl + 4;
        if (!vmsd(w, s, depth + 1))
            return false;
    }
    return true;
}

void sp_walk_devices(const vj_doc *doc, const uint8_t *tail, size_t eof, uint64_t tail_pos,
                     sp_problem_fn fn, void *ctx, sp_devwalk *out)
{
    sp_walk_device_fields(doc, tail, eof, tail_pos, fn, ctx, NULL, NULL, out);
}

void sp_walk_device_fields(const vj_doc *doc, const uint8_t *tail, size_t eof, uint64_t tail_pos,
                           sp_problem_fn fn, void *ctx, sp_field_fn visit, void *vctx,
                           sp_devwalk *out)
{
    memset(out, 0, sizeof(*out));
    dw w = {doc, tail, eof, 0, tail_pos, fn, ctx, "", false, visit, vctx, 0};
    int32_t devs = vj_get(doc, 0, "devices");
    if (devs < 0 || doc->n[devs].type != VJ_ARR) {
        out->skipped = true;
        snprintf(out->note, sizeof(out->note), "the description has no \"devices\" list");
        return;
    }
    int32_t dev = doc->n[devs].child;
    while (w.pos < w.end) {
        size_t at = w.pos;
        uint8_t t = tail[w.pos];
        if (t == QEMU_VM_COMMAND) {
            if (w.end - w.pos < 5) {
                problem(&w, at, "command record runs past the end of the device state");
                break;
            }
            size_t len = rd_be16(tail + w.pos + 3);
            if (len > w.end - w.pos - 5) {
                problem(&w, at,
                        "command record of %zu bytes runs past the end of the device state "
                        "(%zu bytes left)",
                        len, w.end - w.pos - 5);
                break;
            }
            w.pos += 5 + len;
            continue;
        }
        if (t == QEMU_VM_SECTION_END || t == QEMU_VM_SECTION_PART ||
            t == QEMU_VM_SECTION_START) {
            out->skipped = true;
            snprintf(out->note, sizeof(out->note),
                     "a section of type %u (an iterable device) at device-state offset %zu is "
                     "not described by the JSON; the walk stopped there",
                     t, at);
            out->sections = 0;
            return;
        }
        if (t != QEMU_VM_SECTION_FULL) {
            problem(&w, at,
                    "byte 0x%02x where a device section (04) or the EOF record should start",
                    t);
            break;
        }
        if (w.end - w.pos < 6 || w.end - w.pos < 6 + (size_t)tail[w.pos + 5] + 8) {
            problem(&w, at, "device section header runs past the end of the device state");
            break;
        }
        uint32_t id = rd_be32(tail + w.pos + 1);
        size_t nl = tail[w.pos + 5];
        snprintf(w.dev, sizeof(w.dev), "%.*s", (int)nl, (const char *)tail + w.pos + 6);
        uint32_t inst = rd_be32(tail + w.pos + 6 + nl), ver = rd_be32(tail + w.pos + 10 + nl);
        if (dev < 0) {
            problem(&w, at, "device section \"%s\" is not in the description (which lists fewer "
                            "devices)",
                    w.dev);
            break;
        }
        uint64_t di = 0, dv = 0;
        int32_t dn = vj_get(doc, dev, "name");
        if (!vj_streq(doc, dn, (const char *)tail + w.pos + 6, nl) ||
            !vj_u64(doc, vj_get(doc, dev, "instance_id"), &di) || di != inst ||
            !vj_u64(doc, vj_get(doc, dev, "version"), &dv) || dv != ver) {
            char want[MRIMG_NAME_MAX + 1];
            vj_text(doc, dn, want, sizeof(want));
            problem(&w, at,
                    "device section \"%s\" instance %u version %u where the description has "
                    "\"%s\" instance %llu version %llu",
                    w.dev, inst, ver, want, (unsigned long long)di, (unsigned long long)dv);
            break;
        }
        w.pos += 6 + nl + 8;
        if (!vmsd(&w, dev, 0))
            break;
        if (w.end - w.pos < 5 || tail[w.pos] != QEMU_VM_SECTION_FOOTER ||
            rd_be32(tail + w.pos + 1) != id) {
            char hex[40] = "the end of the device state";
            if (w.end > w.pos)
                hex_bytes(hex, tail + w.pos, MRIMG_MIN(w.end - w.pos, (size_t)5), 5);
            problem(&w, w.pos,
                    "device \"%s\" (section %u): the description explains %zu bytes, but no "
                    "footer 7e %08x follows them (found %s): the section is damaged or its "
                    "description does not match",
                    w.dev, id, w.pos - at, id, hex);
            break;
        }
        w.pos += 5;
        out->sections++;
        dev = doc->n[dev].next;
    }
    out->explained = w.pos;
    if (w.failed)
        return;
    if (dev >= 0) {
        char want[MRIMG_NAME_MAX + 1];
        vj_text(doc, vj_get(doc, dev, "name"), want, sizeof(want));
        problem(&w, w.pos,
                "the EOF record comes where the description lists more devices (next: \"%s\"): "
                "device sections are missing",
                want);
        return;
    }
    out->complete = true;
}
