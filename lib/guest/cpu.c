/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vCPUs of a saved x86-64 guest, from its device state.
 *
 * QEMU saves each vCPU as a "cpu" section (instance id = vCPU number,
 * target/i386/machine.c's vmstate_x86_cpu) preceded by a "cpu_common"
 * section of the same instance (halted, interrupt_request).  The values are
 * big-endian; their layout is not fixed (fields depend on the QEMU version,
 * subsections on the guest's state), so they are found through the
 * VMDESCRIPTION JSON that QEMU appends after the EOF record: every field's
 * name, element size and count, nested "struct" descriptions, and the
 * subsections sent.  As in stream/devices.c every section is walked from
 * its header to its footer with that description; inside the "cpu" and
 * "cpu_common" sections each leaf field gets a path ("env.regs",
 * "env.segs[1].base", "env.ldt.limit") and the ones below are picked up by
 * name with their size checked.  Fields QEMU 10 writes for x86-64
 * (checked on real saves, tests/qemu/test_cpu.py):
 *
 *   env.regs 16 x 8   env.eip 8   env.eflags 8   env.hflags 4
 *   env.segs[0..5] / env.ldt / env.tr / env.gdt / env.idt, each a struct
 *     "segment" of selector 4, base 8, limit 4, flags 4
 *   env.cr[0] env.cr[2] env.cr[3] env.cr[4] 8 each, env.efer 8,
 *   env.kernelgsbase 8;  cpu_common: halted 4
 *
 * env.eflags is what `info registers` shows as EFL: QEMU's pre-save hook
 * folds the lazily computed arithmetic flags into it.
 *
 * Hostile input: the description and the bytes are both untrusted.  Every
 * field's bytes are checked to lie inside the device state before they are
 * read, nesting is bounded, an array of structs that consumes no bytes is
 * not iterated (its count may be 2^64), the field visits of one walk are
 * capped (CPU_WALK_STEPS), the number of vCPUs is capped
 * (GUEST_CPU_MAX) and an instance seen twice is refused. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "../stream/vmdesc.h"
#include "cpu.h"
#include "guest.h"
#include "../util/vec.h"

/* ---- what is picked up ------------------------------------------------- */

enum {
    S_REGS = 0,                 /* 16 */
    S_RIP = 16,
    S_RFLAGS,
    S_HFLAGS,
    S_SEG,                      /* 10 segments x 4 (selector base limit flags) */
    S_CR0 = S_SEG + 40,
    S_CR2,
    S_CR3,
    S_CR4,
    S_EFER,
    S_KGSBASE,
    S_NSLOTS
};

static const char *const seg_names[10] = {
    "env.segs[0]", "env.segs[1]", "env.segs[2]", "env.segs[3]", "env.segs[4]",
    "env.segs[5]", "env.ldt",     "env.tr",      "env.gdt",     "env.idt",
};
static const char *const seg_fields[4] = {"selector", "base", "limit", "flags"};
static const unsigned seg_sizes[4] = {4, 8, 4, 4};

static const struct {
    const char *name;
    unsigned slot, size, count;
} plain_fields[] = {
    {"env.regs", S_REGS, 8, 16},   {"env.eip", S_RIP, 8, 1},    {"env.eflags", S_RFLAGS, 8, 1},
    {"env.hflags", S_HFLAGS, 4, 1}, {"env.cr[0]", S_CR0, 8, 1}, {"env.cr[2]", S_CR2, 8, 1},
    {"env.cr[3]", S_CR3, 8, 1},    {"env.cr[4]", S_CR4, 8, 1},  {"env.efer", S_EFER, 8, 1},
    {"env.kernelgsbase", S_KGSBASE, 8, 1},
};

/* The slot, element size and count a path names; false: not wanted. */
static bool slot_of(const char *path, unsigned *slot, unsigned *size, unsigned *count)
{
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(plain_fields); i++)
        if (!strcmp(path, plain_fields[i].name)) {
            *slot = plain_fields[i].slot;
            *size = plain_fields[i].size;
            *count = plain_fields[i].count;
            return true;
        }
    for (unsigned s = 0; s < 10; s++) {
        size_t l = strlen(seg_names[s]);
        if (strncmp(path, seg_names[s], l) != 0 || path[l] != '.')
            continue;
        for (unsigned f = 0; f < 4; f++)
            if (!strcmp(path + l + 1, seg_fields[f])) {
                *slot = S_SEG + s * 4 + f;
                *size = seg_sizes[f];
                *count = 1;
                return true;
            }
    }
    return false;
}

/* A slot's name for messages. */
static void slot_name(unsigned slot, char *out, size_t cap)
{
    if (slot >= S_SEG && slot < S_SEG + 40) {
        unsigned s = (slot - S_SEG) / 4, f = (slot - S_SEG) % 4;
        snprintf(out, cap, "%s.%s", seg_names[s], seg_fields[f]);
        return;
    }
    for (size_t i = 0; i < MRIMG_ARRAY_SIZE(plain_fields); i++)
        if (plain_fields[i].slot == slot) {
            snprintf(out, cap, "%s", plain_fields[i].name);
            return;
        }
    snprintf(out, cap, "?");
}

/* One vCPU being decoded. */
typedef struct rawcpu {
    uint32_t instance;
    uint64_t at;                 /* stream offset of its section */
    uint64_t v[S_NSLOTS];
    uint8_t seen[S_NSLOTS];
    int halted;                  /* -1: no cpu_common */
} rawcpu;

/* ---- the walk ------------------------------------------------------------ */

/* Most field descriptions visited in one walk.  A QEMU 10 PC guest's state
 * takes a few thousand; the cap stops a description whose arrays of
 * structs of zero-sized fields would otherwise be walked for hours. */
#define CPU_WALK_STEPS (1ull << 24)

enum { K_OTHER, K_CPU, K_COMMON, K_VMCI };

typedef struct cw {
    const vj_doc *d;
    const uint8_t *t;
    size_t end, pos;
    uint64_t base;
    mrimg_error *err;
    int rc;                      /* first error (0: none) */
    char dev[MRIMG_NAME_MAX + 1];
    int kind;
    uint64_t steps;              /* fields visited (bounded: CPU_WALK_STEPS) */
    rawcpu *cur;                 /* K_CPU */
    uint32_t instance;
    /* cpu_common sections: instance -> halted, in order seen */
    struct cpu_common { uint32_t inst; int halted; } *common;
    unsigned ncommon;
    size_t common_cap;
    rawcpu *cpus;
    unsigned ncpu;
    size_t cpu_cap;
    guest_vmci vmci;
} cw;

static int fail(cw *w, mrimg_code code, size_t at, const char *fmt, ...) MRIMG_PRINTF(4, 5);
static int fail(cw *w, mrimg_code code, size_t at, const char *fmt, ...)
{
    if (w->rc)
        return w->rc;
    va_list ap;
    va_start(ap, fmt);
    w->rc = err_setv(w->err, code, MRIMG_OFF_STREAM, w->base + at, fmt, ap);
    va_end(ap);
    return w->rc;
}

/* A field of the vmcoreinfo section (all scalars, checked by size). */
static void take_vmci(cw *w, const char *path, const uint8_t *p, uint64_t size, uint64_t count)
{
    static const struct {
        const char *name;
        unsigned size;
    } f[] = {{"has_vmcoreinfo", 1},
             {"vmcoreinfo.guest_format", 2},
             {"vmcoreinfo.size", 4},
             {"vmcoreinfo.paddr", 8}};
    for (unsigned i = 0; i < MRIMG_ARRAY_SIZE(f); i++) {
        if (strcmp(path, f[i].name) != 0)
            continue;
        if (size != f[i].size || count != 1) {
            fail(w, MRIMG_ERR_FORMAT, w->pos,
                 "vmcoreinfo: field \"%s\" is %llu x %llu bytes, expected 1 x %u", path,
                 (unsigned long long)count, (unsigned long long)size, f[i].size);
            return;
        }
        switch (i) {
        case 0: w->vmci.has = p[0] != 0; break;
        case 1: w->vmci.guest_format = rd_be16(p); break;
        case 2: w->vmci.size = rd_be32(p); break;
        default: w->vmci.paddr = rd_be64(p); break;
        }
    }
}

/* A leaf field of a section of interest: take it if it is wanted. */
static void take(cw *w, const char *path, const uint8_t *p, uint64_t size, uint64_t count)
{
    if (w->kind == K_VMCI) {
        take_vmci(w, path, p, size, count);
        return;
    }
    if (w->kind == K_COMMON) {
        if (strcmp(path, "halted") != 0)
            return;
        if (size != 4 || count != 1) {
            fail(w, MRIMG_ERR_UNSUPPORTED, w->pos,
                 "cpu_common instance %u: field \"halted\" is %llu x %llu bytes, expected 1 x 4",
                 w->instance, (unsigned long long)count, (unsigned long long)size);
            return;
        }
        w->common[w->ncommon - 1].halted = rd_be32(p) != 0;
        return;
    }
    unsigned slot, esize, ecount;
    if (!slot_of(path, &slot, &esize, &ecount))
        return;
    if (size != esize || count != ecount) {
        fail(w, MRIMG_ERR_UNSUPPORTED, w->pos,
             "vCPU %u: field \"%s\" is %llu x %llu bytes, expected %u x %u (the section is "
             "not an x86-64 QEMU CPU)",
             w->instance, path, (unsigned long long)count, (unsigned long long)size, ecount,
             esize);
        return;
    }
    if (w->cur->seen[slot]) {
        fail(w, MRIMG_ERR_FORMAT, w->pos, "vCPU %u: field \"%s\" is described twice",
             w->instance, path);
        return;
    }
    for (unsigned k = 0; k < ecount; k++) {
        const uint8_t *q = p + (size_t)k * esize;
        w->cur->v[slot + k] = esize == 8 ? rd_be64(q) : rd_be32(q);
        w->cur->seen[slot + k] = 1;
    }
}

static bool vmsd(cw *w, int32_t desc, const char *prefix, int depth);

/* prefix + the name of field description f. */
static void field_path(const vj_doc *d, int32_t f, const char *prefix, char *out, size_t cap)
{
    char fname[96];
    vj_text(d, vj_get(d, f, "name"), fname, sizeof(fname));
    snprintf(out, cap, "%s%s", prefix, fname);
}

static bool fields(cw *w, int32_t list, const char *prefix, int depth)
{
    const vj_doc *d = w->d;
    if (list < 0)
        return true;
    if (d->n[list].type != VJ_ARR) {
        fail(w, MRIMG_ERR_FORMAT, w->pos, "device \"%s\": the description's \"fields\" is "
                                          "not a list", w->dev);
        return false;
    }
    for (int32_t f = d->n[list].child; f >= 0; f = d->n[f].next) {
        if (++w->steps > CPU_WALK_STEPS) {
            fail(w, MRIMG_ERR_LIMIT, w->pos, "device \"%s\": the description takes more than "
                 "%llu field visits to walk", w->dev, (unsigned long long)CPU_WALK_STEPS);
            return false;
        }
        /* the field's path: made where fields are taken, else for messages only */
        char path[160] = "";
        if (w->kind != K_OTHER)
            field_path(d, f, prefix, path, sizeof(path));
        uint64_t n = 1, size = 0;
        int32_t al = vj_get(d, f, "array_len");
        if (al >= 0 && !vj_u64(d, al, &n)) {
            field_path(d, f, prefix, path, sizeof(path));
            fail(w, MRIMG_ERR_FORMAT, w->pos,
                 "device \"%s\", field \"%s\": bad array_len in the description", w->dev, path);
            return false;
        }
        if (vj_streq(d, vj_get(d, f, "type"), "struct", 6)) {
            int32_t st = vj_get(d, f, "struct");
            if (st < 0 || d->n[st].type != VJ_OBJ) {
                field_path(d, f, prefix, path, sizeof(path));
                fail(w, MRIMG_ERR_FORMAT, w->pos,
                     "device \"%s\", field \"%s\": struct without a description", w->dev, path);
                return false;
            }
            for (uint64_t k = 0; k < n; k++) {
                char sub[200] = "";
                if (w->kind == K_OTHER)
                    ; /* no paths needed */
                else if (al >= 0)
                    snprintf(sub, sizeof(sub), "%s[%llu].", path, (unsigned long long)k);
                else
                    snprintf(sub, sizeof(sub), "%s.", path);
                size_t before = w->pos;
                if (!vmsd(w, st, sub, depth + 1))
                    return false;
                if (w->pos == before)
                    break; /* consumes nothing: so would every further element */
            }
            continue;
        }
        if (!vj_u64(d, vj_get(d, f, "size"), &size)) {
            field_path(d, f, prefix, path, sizeof(path));
            fail(w, MRIMG_ERR_FORMAT, w->pos, "device \"%s\", field \"%s\": no size in the "
                                              "description", w->dev, path);
            return false;
        }
        uint64_t bytes;
        if (!mul_ok(size, n, &bytes) || bytes > w->end - w->pos) {
            field_path(d, f, prefix, path, sizeof(path));
            fail(w, MRIMG_ERR_TRUNCATED, w->pos,
                 "device \"%s\", field \"%s\" (%llu x %llu bytes) runs past the end of the "
                 "device state (%llu bytes left)",
                 w->dev, path, (unsigned long long)n, (unsigned long long)size,
                 (unsigned long long)(w->end - w->pos));
            return false;
        }
        if (w->kind != K_OTHER) {
            take(w, path, w->t + w->pos, size, n);
            if (w->rc)
                return false;
        }
        w->pos += (size_t)bytes;
    }
    return true;
}

static bool vmsd(cw *w, int32_t desc, const char *prefix, int depth)
{
    const vj_doc *d = w->d;
    if (depth > VJ_MAX_DEPTH) {
        fail(w, MRIMG_ERR_LIMIT, w->pos, "device \"%s\": the description nests deeper than %d",
             w->dev, VJ_MAX_DEPTH);
        return false;
    }
    if (!fields(w, vj_get(d, desc, "fields"), prefix, depth))
        return false;
    int32_t subs = vj_get(d, desc, "subsections");
    if (subs < 0)
        return true;
    if (d->n[subs].type != VJ_ARR) {
        fail(w, MRIMG_ERR_FORMAT, w->pos, "device \"%s\": \"subsections\" is not a list",
             w->dev);
        return false;
    }
    for (int32_t s = d->n[subs].child; s >= 0; s = d->n[s].next) {
        int32_t vn = vj_get(d, s, "vmsd_name");
        size_t at = w->pos;
        if (w->end - w->pos < 2 || w->t[w->pos] != QEMU_VM_SUBSECTION ||
            w->end - w->pos < 2 + (size_t)w->t[w->pos + 1] + 4) {
            char sname[MRIMG_NAME_MAX + 1];
            vj_text(d, vn, sname, sizeof(sname));
            fail(w, MRIMG_ERR_FORMAT, at,
                 "device \"%s\": subsection \"%s\" expected (marker 05 and its header), not "
                 "found: the fields before it do not add up to the bytes present",
                 w->dev, sname);
            return false;
        }
        size_t nl = w->t[w->pos + 1];
        if (!vj_streq(d, vn, (const char *)w->t + w->pos + 2, nl)) {
            char sname[MRIMG_NAME_MAX + 1];
            vj_text(d, vn, sname, sizeof(sname));
            fail(w, MRIMG_ERR_FORMAT, at,
                 "device \"%s\": another subsection found where the description has \"%s\"",
                 w->dev, sname);
            return false;
        }
        w->pos += 2 + nl + 4;
        /* subsection fields keep their own full names ("env.pkru") */
        if (!vmsd(w, s, prefix, depth + 1))
            return false;
    }
    return true;
}

static rawcpu *new_cpu(cw *w, size_t at)
{
    for (unsigned i = 0; i < w->ncpu; i++)
        if (w->cpus[i].instance == w->instance) {
            fail(w, MRIMG_ERR_FORMAT, at, "a second \"cpu\" section for vCPU %u", w->instance);
            return NULL;
        }
    if (w->ncpu >= GUEST_CPU_MAX) {
        fail(w, MRIMG_ERR_LIMIT, at, "more than %u \"cpu\" sections", GUEST_CPU_MAX);
        return NULL;
    }
    if (!vec_reserve(w->cpus, w->cpu_cap, (size_t)w->ncpu + 1, 8, GUEST_CPU_MAX)) {
        if (!w->rc)
            w->rc = err_nomem(w->err);
        return NULL;
    }
    rawcpu *c = &w->cpus[w->ncpu++];
    memset(c, 0, sizeof(*c));
    c->instance = w->instance;
    c->at = w->base + at;
    c->halted = -1;
    return c;
}

static bool new_common(cw *w, size_t at)
{
    if (w->ncommon >= GUEST_CPU_MAX) {
        fail(w, MRIMG_ERR_LIMIT, at, "more than %u \"cpu_common\" sections", GUEST_CPU_MAX);
        return false;
    }
    if (!vec_reserve(w->common, w->common_cap, (size_t)w->ncommon + 1, 8, GUEST_CPU_MAX)) {
        if (!w->rc)
            w->rc = err_nomem(w->err);
        return false;
    }
    w->common[w->ncommon] = (struct cpu_common){w->instance, -1};
    w->ncommon++;
    return true;
}

/* Walk every device section; collect the CPUs.  0 or w->rc. */
static int walk(cw *w)
{
    const vj_doc *doc = w->d;
    int32_t devs = vj_get(doc, 0, "devices");
    if (devs < 0 || doc->n[devs].type != VJ_ARR)
        return fail(w, MRIMG_ERR_UNSUPPORTED, 0, "the VMDESCRIPTION has no \"devices\" list");
    int32_t dev = doc->n[devs].child;
    while (w->pos < w->end) {
        size_t at = w->pos;
        uint8_t ty = w->t[w->pos];
        if (ty == QEMU_VM_COMMAND) {
            if (w->end - w->pos < 5 || w->end - w->pos - 5 < rd_be16(w->t + w->pos + 3))
                return fail(w, MRIMG_ERR_TRUNCATED, at,
                            "command record runs past the end of the device state");
            w->pos += 5 + (size_t)rd_be16(w->t + w->pos + 3);
            continue;
        }
        if (ty != QEMU_VM_SECTION_FULL)
            return fail(w, ty == QEMU_VM_SECTION_START || ty == QEMU_VM_SECTION_PART ||
                                   ty == QEMU_VM_SECTION_END
                               ? MRIMG_ERR_UNSUPPORTED
                               : MRIMG_ERR_FORMAT,
                        at, "byte 0x%02x where a device section (04) or the EOF record should "
                            "start", ty);
        if (w->end - w->pos < 6 || w->end - w->pos < 6 + (size_t)w->t[w->pos + 5] + 8)
            return fail(w, MRIMG_ERR_TRUNCATED, at,
                        "device section header runs past the end of the device state");
        uint32_t id = rd_be32(w->t + w->pos + 1);
        size_t nl = w->t[w->pos + 5];
        const char *name = (const char *)w->t + w->pos + 6;
        snprintf(w->dev, sizeof(w->dev), "%.*s", (int)nl, name);
        w->instance = rd_be32(w->t + w->pos + 6 + nl);
        uint32_t ver = rd_be32(w->t + w->pos + 10 + nl);
        uint64_t di = 0, dv = 0;
        if (dev < 0)
            return fail(w, MRIMG_ERR_FORMAT, at, "device section \"%s\" is not in the "
                                                 "description", w->dev);
        if (!vj_streq(doc, vj_get(doc, dev, "name"), name, nl) ||
            !vj_u64(doc, vj_get(doc, dev, "instance_id"), &di) || di != w->instance ||
            !vj_u64(doc, vj_get(doc, dev, "version"), &dv) || dv != ver)
            return fail(w, MRIMG_ERR_FORMAT, at,
                        "device section \"%s\" instance %u version %u does not match the "
                        "description's next device",
                        w->dev, w->instance, ver);
        w->kind = K_OTHER;
        if (nl == 3 && !memcmp(name, "cpu", 3)) {
            w->kind = K_CPU;
            w->cur = new_cpu(w, at);
            if (!w->cur)
                return w->rc;
        } else if (nl == 10 && !memcmp(name, "cpu_common", 10)) {
            w->kind = K_COMMON;
            if (!new_common(w, at))
                return w->rc;
        } else if (nl == 10 && !memcmp(name, "vmcoreinfo", 10)) {
            if (w->vmci.present)
                return fail(w, MRIMG_ERR_FORMAT, at, "a second \"vmcoreinfo\" section");
            w->kind = K_VMCI;
            w->vmci.present = true;
        }
        w->pos += 6 + nl + 8;
        if (!vmsd(w, dev, "", 0))
            return w->rc;
        if (w->end - w->pos < 5 || w->t[w->pos] != QEMU_VM_SECTION_FOOTER ||
            rd_be32(w->t + w->pos + 1) != id)
            return fail(w, MRIMG_ERR_FORMAT, w->pos,
                        "device \"%s\" (section %u): no footer 7e %08x where its description "
                        "ends: the section does not match its description",
                        w->dev, id, id);
        w->pos += 5;
        dev = doc->n[dev].next;
    }
    return 0;
}

/* ---- results ------------------------------------------------------------- */

static void seg_from(const rawcpu *r, unsigned s, mrimg_x86_segment *o)
{
    const uint64_t *v = r->v + S_SEG + s * 4;
    o->selector = (uint32_t)v[0];
    o->base = v[1];
    o->limit = (uint32_t)v[2];
    o->flags = (uint32_t)v[3];
}

static int finish(cw *w, mrimg_cpus **out)
{
    mrimg_cpus *c = xcalloc(1, sizeof(*c), w->err);
    if (!c)
        return MRIMG_ERR_NOMEM;
    c->cpu = xcalloc(w->ncpu ? w->ncpu : 1, sizeof(*c->cpu), w->err);
    if (!c->cpu) {
        free(c);
        return MRIMG_ERR_NOMEM;
    }
    for (unsigned i = 0; i < w->ncpu; i++) {
        const rawcpu *r = &w->cpus[i];
        for (unsigned s = 0; s < S_NSLOTS; s++)
            if (!r->seen[s]) {
                char nm[64];
                slot_name(s < S_RIP ? S_REGS : s, nm, sizeof(nm));
                free(c->cpu);
                free(c);
                return err_set(w->err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_STREAM, r->at,
                               "vCPU %u: its \"cpu\" section has no field \"%s\" (not an "
                               "x86-64 QEMU CPU)",
                               r->instance, nm);
            }
        mrimg_x86_cpu *o = &c->cpu[i];
        o->size = sizeof(*o);
        o->index = r->instance;
        memcpy(o->regs, r->v + S_REGS, sizeof(o->regs));
        o->rip = r->v[S_RIP];
        o->rflags = r->v[S_RFLAGS];
        o->hflags = (uint32_t)r->v[S_HFLAGS];
        for (unsigned s = 0; s < 6; s++)
            seg_from(r, s, &o->seg[s]);
        seg_from(r, 6, &o->ldt);
        seg_from(r, 7, &o->tr);
        seg_from(r, 8, &o->gdt);
        seg_from(r, 9, &o->idt);
        o->cr0 = r->v[S_CR0];
        o->cr2 = r->v[S_CR2];
        o->cr3 = r->v[S_CR3];
        o->cr4 = r->v[S_CR4];
        o->efer = r->v[S_EFER];
        o->kernel_gs_base = r->v[S_KGSBASE];
        o->halted = -1;
        for (unsigned k = 0; k < w->ncommon; k++)
            if (w->common[k].inst == r->instance)
                o->halted = w->common[k].halted;
    }
    c->n = w->ncpu;
    c->vmci = w->vmci;
    *out = c;
    return 0;
}

int guest_cpus_decode(const char *json, size_t jlen, const uint8_t *dev, size_t eof,
                      uint64_t base, mrimg_cpus **out, mrimg_error *err)
{
    *out = NULL;
    vj_doc doc;
    memset(&doc, 0, sizeof(doc));
    size_t where = 0;
    char msg[160];
    if (vj_parse(json, jlen, &doc, &where, msg, sizeof(msg)) < 0) {
        vj_free(&doc);
        return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                       "the VMDESCRIPTION JSON is not valid at its byte %zu: %s", where, msg);
    }
    cw w;
    memset(&w, 0, sizeof(w));
    w.d = &doc;
    w.t = dev;
    w.end = eof;
    w.base = base;
    w.err = err;
    int rc = walk(&w);
    if (rc == 0)
        rc = finish(&w, out);
    vj_free(&doc);
    free(w.cpus);
    free(w.common);
    return rc;
}

int mrimg_cpus_read(mrimg_image *img, mrimg_cpus **out, mrimg_error *err)
{
    if (!img || !out)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no image or no result");
    *out = NULL;
    int rc = mrimg_scan(img, 0, NULL, NULL, err);
    if (rc < 0)
        return rc;
    const mrimg_stream_info *si = &img->si;
    if (!si->has_eof || !si->has_vmdesc)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                       "the stream has no %s: its device state cannot be decoded",
                       si->has_eof ? "VMDESCRIPTION" : "EOF record");
    /* the device state, read with devstate.c's collector (guest_tail) */
    if (si->stream_size < si->ram_end || si->stream_size - si->ram_end > GUEST_TAIL_MAX)
        return err_set(err, MRIMG_ERR_LIMIT, MRIMG_OFF_STREAM, si->ram_end,
                       "the device state is larger than %u MiB", GUEST_TAIL_MAX >> 20);
    guest_tail t;
    rc = guest_tail_get(&t, img, err);
    if (rc == 0 && !guest_tail_complete(&t, si))
        rc = err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_STREAM, si->ram_end,
                     "the device state could not be read again as the scan found it");
    if (rc == 0) {
        uint64_t tl = t.len;
        if (si->eof_offset < si->ram_end || si->eof_offset - si->ram_end >= tl ||
            si->vmdesc_offset < si->ram_end || si->vmdesc_offset - si->ram_end > tl ||
            si->vmdesc_size > tl - (si->vmdesc_offset - si->ram_end))
            rc = err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_STREAM, si->ram_end,
                         "the EOF record or the VMDESCRIPTION lies outside the device state");
        else
            rc = guest_cpus_decode((const char *)t.buf + (si->vmdesc_offset - si->ram_end),
                                   (size_t)si->vmdesc_size, t.buf,
                                   (size_t)(si->eof_offset - si->ram_end), si->ram_end, out,
                                   err);
    }
    return rc;
}

unsigned mrimg_cpus_count(const mrimg_cpus *cpus)
{
    return cpus ? cpus->n : 0;
}

int mrimg_cpus_get(const mrimg_cpus *cpus, unsigned i, mrimg_x86_cpu *out, mrimg_error *err)
{
    size_t v1 = offsetof(mrimg_x86_cpu, halted) + sizeof(int);
    if (!cpus || !out || i >= cpus->n)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no vCPU %u (there are %u)", i,
                       cpus ? cpus->n : 0);
    if (out->size < v1)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "mrimg_x86_cpu.size %zu is smaller than the struct's first version (%zu)",
                       out->size, v1);
    size_t n = MRIMG_MIN(out->size, sizeof(*out));
    size_t keep = out->size;
    memcpy(out, &cpus->cpu[i], n);
    out->size = keep;
    return 0;
}

void mrimg_cpus_free(mrimg_cpus *cpus)
{
    if (!cpus)
        return;
    free(cpus->cpu);
    free(cpus);
}
