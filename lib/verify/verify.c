/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Verification: every check of docs/imgverify.1, all problems reported.
 *
 * Order: the container (the scanner of lib/container, which records every
 * finding where opening stops at the first); the payload encoding against
 * the header (the payload probe of lib/image.c); one pass over the decoded stream
 * with the stream parser (its first error stops the stream walk, and the
 * payload is then still decoded to its end for the codec checksums and the
 * trailing data); the end of the stream (EOF, VMDESCRIPTION, the device
 * state walked with the JSON); the mapped-ram regions of every block found
 * (headers, bounds, alignment, overlaps, bitmaps) and their data extents. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "judge.h"
#include "vfy.h"
#include "../io/pages.h"
#include "../util/vec.h"

/* ---- the check table ------------------------------------------------------ */

static const mrimg_check_desc checks[] = {
    {"container.magic", "the file starts with the libvirt magic or a QEMU stream"},
    {"container.incomplete", "the libvirt magic is LibvirtQemudSave, not LibvirtQemudPart "
                             "(a save that never finished)"},
    {"container.truncated", "the file holds the whole 92-byte libvirt header"},
    {"container.version", "the header version is 2 (or 1), in either byte order"},
    {"container.format", "the header format is a known one (0..6)"},
    {"container.data_len", "data_len is non-zero, within the 64 MiB cap and inside the file"},
    {"container.cookie", "the cookie offset lies inside data_len, the cookie is NUL-terminated "
                         "well-formed XML with a <cookie> root"},
    {"container.xml", "the domain XML is NUL-terminated, well-formed, with a <domain> root "
                      "holding <name> and <uuid>"},
    {"container.padding", "the metadata padding is zero (warning)"},
    {"container.reserved", "the reserved header words are zero (warning)"},
    {"container.running", "was_running is 0 or 1 (warning)"},
    {"payload.format", "the payload is encoded as the header says"},
    {"payload.decode", "the compressed payload decodes to its end"},
    {"payload.truncated", "the compressed payload is complete"},
    {"payload.checksum", "every checksum the codec stores matches (CRCs, sizes, integrity "
                         "checks, frame checksums: each codec's are listed in imgverify(1))"},
    {"payload.trailing", "no bytes follow the payload or the stream; error when libvirt's "
                         "'tool -dc' would fail because of them"},
    {"stream.magic", "the stream starts with the QEVM magic"},
    {"stream.version", "the stream version is 3"},
    {"stream.config", "the configuration section is present and valid"},
    {"stream.section", "every record is a known section type, framed as it should be"},
    {"stream.footer", "every RAM section ends with its footer"},
    {"stream.command", "every command is known, with a valid length, loadable from a file"},
    {"stream.blocks", "the RAM block list is valid and its lengths add up to its total"},
    {"stream.ram", "every RAM record is valid; every page is sent (warning)"},
    {"stream.truncated", "the stream does not end early"},
    {"stream.vmdesc", "the VMDESCRIPTION is present and is well-formed JSON"},
    {"stream.devices", "the device sections are exactly explained by the VMDESCRIPTION"},
    {"mapped.format", "container format 6 if and only if the stream announces mapped-ram"},
    {"mapped.header", "each mapped-ram block header has version 1"},
    {"mapped.page_size", "each mapped-ram header's page size is the target page size"},
    {"mapped.layout", "each block's bitmap starts right after its 28-byte header and its pages "
                      "start after its bitmap, as QEMU writes them (anywhere else they would be "
                      "read from bytes that belong to something else)"},
    {"mapped.alignment", "pages_offset is page-aligned (error) and where QEMU puts it: the end of "
                         "the bitmap rounded up to 1 MiB (warning)"},
    {"mapped.region", "each block's bitmap and pages lie inside the file"},
    {"mapped.overlap", "bitmaps, page regions and the main stream do not overlap"},
    {"mapped.bitmap", "each bitmap is readable and sets no bit past the block's last page"},
    {"mapped.stream", "the main stream continues validly after each block's pages"},
};

const mrimg_check_desc *mrimg_verify_checks(unsigned *n)
{
    if (n)
        *n = (unsigned)MRIMG_ARRAY_SIZE(checks);
    return checks;
}

/* ---- problem list ----------------------------------------------------------- */

static void vf_addv(vf_list *l, const char *check, mrimg_severity sev, mrimg_offset_kind kind,
                    uint64_t off, const char *fmt, va_list ap) MRIMG_PRINTF(6, 0);
static void vf_addv(vf_list *l, const char *check, mrimg_severity sev, mrimg_offset_kind kind,
                    uint64_t off, const char *fmt, va_list ap)
{
    if (sev == MRIMG_SEV_ERROR)
        l->errors++;
    else
        l->warnings++;
    if (l->n >= l->max) {
        l->dropped++;
        return;
    }
    if (!vec_reserve(l->v, l->cap, (size_t)l->n + 1, 16, l->max)) {
        l->nomem = true;
        l->dropped++;
        return;
    }
    mrimg_problem *p = &l->v[l->n++];
    memset(p, 0, sizeof(*p));
    p->check = check;
    p->severity = sev;
    p->offset_kind = kind;
    p->offset = kind == MRIMG_OFF_NONE ? 0 : off;
    vsnprintf(p->message, sizeof(p->message), fmt, ap);
}

void vf_add(vf_list *l, const char *check, mrimg_severity sev, mrimg_offset_kind kind, uint64_t off,
            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vf_addv(l, check, sev, kind, off, fmt, ap);
    va_end(ap);
}

/* A library error as a problem: the offset prefix of its message is
 * dropped (the problem carries the offset). */
static const char *bare_message(const mrimg_error *e)
{
    const char *m = e->message;
    if (e->offset_kind != MRIMG_OFF_NONE && !strncmp(m, "at ", 3)) {
        const char *c = strstr(m, "): ");
        if (c)
            m = c + 3;
    }
    return m;
}

void vf_add_err(vf_list *l, const char *check, mrimg_severity sev, const mrimg_error *e)
{
    vf_add(l, check, sev, e->offset_kind, e->offset, "%s", bare_message(e));
}

unsigned vf_count(const vf_list *l, const char *check)
{
    unsigned c = 0;
    for (unsigned i = 0; i < l->n; i++)
        c += !strcmp(l->v[i].check, check);
    return c;
}

#define ERR(v, check, ...) vf_add(&(v)->l, check, MRIMG_SEV_ERROR, __VA_ARGS__)
#define WARN(v, check, ...) vf_add(&(v)->l, check, MRIMG_SEV_WARNING, __VA_ARGS__)
#define FILEOFF MRIMG_OFF_FILE
#define NOOFF MRIMG_OFF_NONE, 0

/* ---- state ------------------------------------------------------------------ */

typedef struct vf {
    vf_list l;
    const mrimg_verify_opts *o;
    mrimg_verify_result *res;
    mrimg_image *img;            /* built by hand: the container may be broken */
    /* container */
    bool libvirt;
    int hdr_format;              /* -1 bare or unknown */
    bool have_payload;           /* payload location and decoder known */
    int enc;                     /* actual encoding (mrimg_format; -1 unknown) */
    bool compressed;
    /* stream pass */
    sp_config cfg;
    bool mapped;                 /* configuration lists mapped-ram */
    sp_block *blocks;            /* parsed blocks (+ a partial one) */
    unsigned nblocks;            /* complete blocks */
    bool partial_block;          /* blocks[nblocks] holds a read mapped header */
    uint64_t page_size;
    lbitmap *seen;               /* plain: pages with a record */
    uint64_t ram_footers, ram_nofooters;
    mrimg_stream_info si;
    bool parsed;                 /* sp_parse succeeded */
    bool stream_error;           /* a stream problem stopped the parse */
    mrimg_offset_kind sk;        /* how stream positions are reported */
    uint64_t sbase;              /* ... and their base */
    bool quick;                  /* MRIMG_CHECK_QUICK: no codec re-checks */
    bool head_skipped;           /* vf_before judged the stream head bad */
    bool drain_after;            /* ... riding: vf_after drains the payload */
    bool stream_done;            /* vf_after ran */
    bool cut;                    /* the pass did not run to its end: incomplete */
    int frc;                     /* vf_after failed (fatal): rc and error */
    mrimg_error ferr;
} vf;

/* ---- container -------------------------------------------------------------- */

/* The container scan and the payload probe, every finding of both. */
static int check_container(vf *v, mrimg_error *err)
{
    mrimg_image *img = v->img;
    ctr_scan sc;
    int rc = ctr_scan_file(&img->src, v->o->stream_offset, &sc, err);
    img->ci = sc.info;
    img->meta = sc.meta;
    img_payload pl = {.enc = -1};
    if (rc == 0 && sc.payload_known)
        rc = img_probe_payload(&img->src, &img->ci, &pl, &sc.rep, err);
    for (unsigned i = 0; i < sc.rep.n; i++) {
        const ctr_finding *f = &sc.rep.f[i];
        vf_add(&v->l, f->check, f->severity, FILEOFF, f->offset, "%s", f->message);
    }
    v->libvirt = img->ci.is_libvirt;
    v->hdr_format = sc.format;
    v->enc = pl.enc;
    v->have_payload = pl.codec != NULL;
    return rc;
}

/* ---- decoder error classification ---------------------------------------------- */

static bool fatal_code(int rc)
{
    return rc == MRIMG_ERR_IO || rc == MRIMG_ERR_NOMEM || rc == MRIMG_ERR_INTERRUPTED ||
           rc == MRIMG_ERR_NOSPC || rc == MRIMG_ERR_INVAL;
}

/* A decoder error as a problem.  Returns <0 only for fatal errors. */
static int payload_problem(vf *v, const mrimg_error *e, mrimg_error *err)
{
    mrimg_image *img = v->img;
    const char *check = "payload.decode";
    if (e->code == MRIMG_ERR_CHECKSUM) {
        check = "payload.checksum";
    } else if (e->code == MRIMG_ERR_TRUNCATED) {
        check = "payload.truncated";
    } else if (v->quick || !src_seekable(&img->src)) {
        /* telling a damaged checksum from damaged data takes another pass
         * (a pipe cannot be read twice) */
    } else {
        mrimg_error why;
        int r = dec_recheck(codec_by_format(v->enc), &img->src, img->ci.payload_offset,
                            img->src.size, e, &why, err);
        if (r < 0)
            return r;
        if (r == 1) {
            vf_add_err(&v->l, "payload.checksum", MRIMG_SEV_ERROR, &why);
            return 0;
        }
    }
    vf_add_err(&v->l, check, MRIMG_SEV_ERROR, e);
    return 0;
}

/* ---- the stream pass ------------------------------------------------------------- */

static int on_config(void *ctx, const sp_config *c, mrimg_error *err)
{
    (void)err;
    vf *v = ctx;
    v->cfg = *c;
    for (unsigned i = 0; i < c->ncaps; i++) {
        if (strcmp(c->caps[i], CAP_MAPPED_RAM) && strcmp(c->caps[i], CAP_X_IGNORE_SHARED))
            WARN(v, "stream.config", v->sk, v->sbase + c->start,
                 "capability \"%s\" in the configuration is not one QEMU 10.0 validates "
                 "(x-ignore-shared, mapped-ram): an older QEMU refuses the stream",
                 c->caps[i]);
        if (!strcmp(c->caps[i], CAP_MAPPED_RAM))
            v->mapped = true;
    }
    if (v->mapped && !src_seekable(&v->img->src))
        return src_need_seek(&v->img->src,
                             "a mapped-ram stream, whose pages and bitmaps are read by offset,",
                             err);
    return 0;
}

static int on_section_end(void *ctx, const sp_section *s, mrimg_error *err)
{
    (void)err;
    vf *v = ctx;
    if (s->footer)
        v->ram_footers++;
    else
        v->ram_nofooters++;
    return 0;
}

static int on_blocks(void *ctx, const sp_block *b, unsigned n, mrimg_error *err)
{
    vf *v = ctx;
    (void)b;
    if (v->seen || v->mapped)
        return 0;
    v->seen = xcalloc(n ? n : 1, sizeof(*v->seen), err);
    if (!v->seen)
        return MRIMG_ERR_NOMEM;
    for (unsigned i = 0; i < n; i++) {
        int rc = lb_init(&v->seen[i], b[i].pages, err);
        if (rc < 0)
            return rc;
    }
    v->nblocks = n;
    return 0;
}

static int on_page(void *ctx, unsigned block, uint64_t page, const uint8_t *data, uint64_t pos,
                   mrimg_error *err)
{
    (void)data;
    (void)pos;
    vf *v = ctx;
    if (v->seen && block < v->nblocks && !lb_test(&v->seen[block], page))
        return lb_set(&v->seen[block], page, err);
    return 0;
}

/* Which check a parser error belongs to. */
static const char *parser_check(const vf *v, const sp_parser *p, const mrimg_error *e)
{
    if (e->code == MRIMG_ERR_TRUNCATED && p->at != SP_AT_MAPPED && p->at != SP_AT_TAIL)
        return "stream.truncated";
    switch (p->at) {
    case SP_AT_HEADER: return "stream.magic";
    case SP_AT_CONFIG: return "stream.config";
    case SP_AT_RECORD: return "stream.section";
    case SP_AT_SECTION: return "stream.section";
    case SP_AT_BLOCKS: return "stream.blocks";
    case SP_AT_MAPPED: return e->code == MRIMG_ERR_TRUNCATED && !v->partial_block
                                  ? "stream.truncated"
                                  : "mapped.header";
    case SP_AT_RAM: return "stream.ram";
    case SP_AT_FOOTER: return "stream.footer";
    case SP_AT_COMMAND: return "stream.command";
    case SP_AT_TAIL: return "stream.truncated";
    default: return "stream.section";
    }
}

/* Locate the EOF record and VMDESCRIPTION in a tail window whose end the
 * parser could not explain: a JSON followed by other bytes, or a JSON whose
 * length field is wrong.  Returns the window index of the EOF byte or -1. */
static ptrdiff_t find_vmdesc(const uint8_t *w, size_t n, size_t *json_len, bool *len_ok)
{
    size_t end = n;
    while (end > 0 && w[end - 1] == 0)
        end--;
    unsigned tried = 0;
    for (size_t c = n >= 7 ? n - 7 : 0; n >= 7 && tried < 16; c--) {
        if (w[c] == QEMU_VM_EOF && w[c + 1] == QEMU_VM_VMDESCRIPTION && w[c + 6] == '{') {
            tried++;
            uint32_t L = rd_be32(w + c + 2);
            char msg[8];
            size_t where;
            if ((uint64_t)c + 6 + L <= n && L > 0 && w[c + 6 + L - 1] == '}' &&
                vj_parse((const char *)w + c + 6, L, NULL, &where, msg, sizeof(msg)) == 0) {
                *json_len = L;
                *len_ok = true;
                return (ptrdiff_t)c;
            }
            if (end > c + 6 &&
                vj_parse((const char *)w + c + 6, end - (c + 6), NULL, &where, msg, sizeof(msg)) ==
                    0) {
                *json_len = end - (c + 6);
                *len_ok = false;
                return (ptrdiff_t)c;
            }
        }
        if (c == 0)
            break;
    }
    return -1;
}

/* The end of the stream: EOF record, VMDESCRIPTION, device state. */
/* A problem the device walk found (off is a stream offset). */
static void device_problem(void *ctx, uint64_t off, const char *msg)
{
    vf *v = ctx;
    ERR(v, "stream.devices", v->sk, v->sbase + off, "%s", msg);
}

static void check_tail(vf *v, sp_parser *p, const mrimg_error *perr, sp_devwalk *dwr)
{
    mrimg_stream_info *si = &v->si;
    const uint8_t *w = p->tail;
    size_t n = p->tail_len;
    uint64_t wpos = p->tail_start;       /* stream offset of w[0] */
    memset(dwr, 0, sizeof(*dwr));

    /* The parser found the end of the stream from its structure (EOF,
     * VMDESCRIPTION, the device walk): see reader.c parse_tail. */
    size_t eof_i = 0, json_len = 0;
    bool have_json = false;
    if (!perr) {
        eof_i = (size_t)(si->eof_offset - wpos);
        if (si->has_vmdesc) {
            json_len = (size_t)si->vmdesc_size;
            have_json = true;
        }
        if (si->trailing_bytes && !p->vmdesc_cut) /* else: stream.vmdesc below */
            WARN(v, "payload.trailing", v->sk, v->sbase + si->stream_size,
                 "%llu %sbytes after the end of the QEMU stream (after its VMDESCRIPTION): QEMU "
                 "does not read them, they are not part of the device state, and a conversion "
                 "leaves them out",
                 (unsigned long long)si->trailing_bytes,
                 si->trailing_zero ? "zero " : p->trailing_unchecked ? "" : "non-zero ");
    } else if (si->has_vmdesc) {
        /* a complete description that does not explain the device state:
         * the walk below reports where */
        eof_i = (size_t)(si->eof_offset - wpos);
        json_len = (size_t)si->vmdesc_size;
        have_json = true;
    } else {
        bool len_ok = false;
        ptrdiff_t c = perr->code == MRIMG_ERR_TRUNCATED
                          ? find_vmdesc(w, n, &json_len, &len_ok)
                          : -1;
        if (c < 0 || len_ok) {
            /* cut inside the device state or the VMDESCRIPTION, or no end
             * within the bound: the parser says which */
            vf_add_err(&v->l, perr->code == MRIMG_ERR_LIMIT ? "stream.devices" : "stream.truncated",
                       MRIMG_SEV_ERROR, perr);
            return;
        }
        eof_i = (size_t)c;
        have_json = true;
        si->has_eof = 1;
        si->eof_offset = wpos + eof_i;
        si->has_vmdesc = 1;
        si->vmdesc_offset = wpos + eof_i + 6;
        si->vmdesc_size = json_len;
        ERR(v, "stream.vmdesc", v->sk, v->sbase + si->eof_offset + 2,
            "the VMDESCRIPTION length field says %u bytes, but the JSON has %zu",
            rd_be32(w + eof_i + 2), json_len);
    }
    if (!have_json) {
        WARN(v, "stream.vmdesc", v->sk, v->sbase + si->eof_offset + 1,
             "%s%s", p->tail_note[0] ? p->tail_note : "no VMDESCRIPTION after the EOF record",
             v->cfg.present && !p->vmdesc_cut ? " (QEMU writes one unless the machine has suppress-vmdesc=on; it "
                              "loads such a stream with a warning)"
                            : "");
        return;
    }
    /* validate the JSON and walk the devices with it */
    const char *json = (const char *)w + eof_i + 6;
    vj_doc doc;
    size_t where = 0;
    char msg[160];
    int rc = vj_parse(json, json_len, &doc, &where, msg, sizeof(msg));
    if (rc < 0) {
        ERR(v, "stream.vmdesc", v->sk, v->sbase + si->vmdesc_offset + where,
            "the VMDESCRIPTION is not valid JSON: %s (at byte %zu of %zu)", msg, where, json_len);
        return;
    }
    v->res->vmdesc_checked = 1;
    if (doc.count == 0 || doc.n[0].type != VJ_OBJ) {
        ERR(v, "stream.vmdesc", v->sk, v->sbase + si->vmdesc_offset,
            "the VMDESCRIPTION is not a JSON object");
    } else if (vj_get(&doc, 0, "devices") < 0) {
        ERR(v, "stream.vmdesc", v->sk, v->sbase + si->vmdesc_offset,
            "the VMDESCRIPTION has no \"devices\" list");
    } else {
        uint64_t ps = 0;
        if (vj_u64(&doc, vj_get(&doc, 0, "page_size"), &ps) && ps != v->page_size)
            ERR(v, "stream.vmdesc", v->sk, v->sbase + si->vmdesc_offset,
                "the VMDESCRIPTION says page_size %llu, the stream uses %llu",
                (unsigned long long)ps, (unsigned long long)v->page_size);
        /* the parser keeps the whole tail (SP_TAIL_MAX) */
        sp_walk_devices(&doc, w, eof_i, wpos, device_problem, v, dwr);
        if (dwr->skipped)
            WARN(v, "stream.devices", v->sk, v->sbase + si->ram_end,
                 "the device state could not be checked against the VMDESCRIPTION: %s",
                 dwr->note);
    }
    vj_free(&doc);
}

static int drain_payload(vf *v, srd *s, mrimg_decoder *dec, mrimg_error *err)
{
    if (!dec->codec)
        return 0;
    mrimg_error e;
    mrimg_error_clear(&e);
    int rc = srd_drain(s, NULL, NULL, &e);
    if (rc < 0) {
        if (fatal_code(rc)) {
            *err = e;
            return rc;
        }
        return payload_problem(v, &e, err);
    }
    return 0;
}

/* The stream checks are a consumer of a pass over the payload: their
 * events (vf_handler) and two hooks, vf_before (the magic and version,
 * which nothing else can be read without) and vf_after (the parse's
 * result as problems, the payload's end).  stream_pass runs that pass for
 * the verifier itself; a conversion takes them along on its own pass
 * (vf_judge_*). */
static const sp_handler vf_handler = {
    .on_config = on_config,
    .on_section_end = on_section_end,
    .on_blocks = on_blocks,
    .on_page = on_page,
};

/* A bad stream head: the verifier judged the stream itself, and drains a
 * compressed payload for its codec's findings.  On its own pass it skips
 * the parse (1); riding on another consumer's pass (a tee) it lets the
 * parse run for that consumer, which gets the parser's error as it would
 * without the judgement, and drains what is left after it (vf_after). */
static int head_judged(vf *v, sp_pass *ps, bool drain, mrimg_error *err)
{
    if (ps->tee) {
        v->drain_after = drain;
        return 0;
    }
    int rc = drain ? drain_payload(v, ps->s, ps->dec, err) : 0;
    return rc < 0 ? rc : 1;
}

static int vf_before(void *ctx, sp_pass *ps, mrimg_error *err)
{
    vf *v = ctx;
    srd *s = ps->s;
    mrimg_image *img = v->img;
    v->compressed = ps->dec->codec != NULL;
    v->sk = v->compressed ? MRIMG_OFF_STREAM : MRIMG_OFF_FILE;
    v->sbase = v->compressed ? 0 : img->ci.payload_offset;
    memset(&v->si, 0, sizeof(v->si));
    v->head_skipped = true; /* until the head is known to be good */
    mrimg_error e;
    mrimg_error_clear(&e);
    int rc = srd_peek(s, 8, &e);
    if (rc < 0) {
        if (fatal_code(rc)) {
            *err = e;
            return rc;
        }
        rc = payload_problem(v, &e, err);
        return rc < 0 ? rc : head_judged(v, ps, false, err);
    }
    if (rc == 0) {
        ERR(v, "stream.truncated", v->sk, v->sbase + srd_avail(s),
            "the stream ends inside its 8-byte header (%zu bytes)", srd_avail(s));
        return head_judged(v, ps, true, err);
    }
    const uint8_t *hd = srd_ptr(s);
    if (rd_be32(hd) != QEMU_FILE_MAGIC) {
        char hex[32];
        hex_bytes(hex, hd, 4, 4);
        ERR(v, "stream.magic", v->sk, v->sbase,
            "expected the QEMU stream magic \"QEVM\" (51 45 56 4d), found %s", hex);
    } else if (rd_be32(hd + 4) != QEMU_FILE_VERSION) {
        ERR(v, "stream.version", v->sk, v->sbase + 4, "QEMU stream version %u (expected 3%s)",
            rd_be32(hd + 4), rd_be32(hd + 4) == 2 ? "; version 2 is obsolete" : "");
    } else {
        v->head_skipped = false;
        return 0;
    }
    v->stream_error = true;
    return head_judged(v, ps, true, err);
}

/* The parse's result (rc, *perr) as problems. */
static int vf_parsed(vf *v, sp_pass *ps, int rc, const mrimg_error *perr, mrimg_error *err)
{
    sp_parser *p = ps->p;
    srd *s = ps->s;
    mrimg_decoder *dec = ps->dec;
    mrimg_error e = *perr;
    v->page_size = p->page_size;
    v->mapped = p->mapped;
    /* blocks found so far, with a partly read one (its mapped header read) */
    if (p->blocks) {
        unsigned nb = p->nblocks + (p->nblocks < MRIMG_MAX_BLOCKS && p->blocks[p->nblocks].mapped);
        v->partial_block = nb > p->nblocks;
        free(v->blocks);
        v->blocks = xcalloc(nb ? nb : 1, sizeof(*v->blocks), err);
        if (!v->blocks)
            return MRIMG_ERR_NOMEM;
        memcpy(v->blocks, p->blocks, nb * sizeof(*v->blocks));
        v->nblocks = p->nblocks;
    }
    if (rc < 0) {
        if (fatal_code(rc)) {
            *err = e;
            return rc;
        }
        if (dec->codec && e.offset_kind == MRIMG_OFF_FILE) {
            /* the decoder failed: the payload is damaged, the rest unreadable */
            v->stream_error = true;
            return payload_problem(v, &e, err);
        }
        v->stream_error = true;
        const char *check = parser_check(v, p, &e);
        /* the mapped-ram header checks below report these themselves */
        bool mine = p->at == SP_AT_MAPPED && v->partial_block;
        if (v->mapped && v->nblocks > 0 && !v->compressed) {
            const sp_block *lb = &v->blocks[v->nblocks - 1];
            uint64_t cont = lb->pages_offset + lb->used_length;
            if (e.offset_kind == MRIMG_OFF_FILE && e.offset == cont &&
                e.code != MRIMG_ERR_TRUNCATED &&
                (p->at == SP_AT_BLOCKS || p->at == SP_AT_RAM))
                check = "mapped.stream";
        }
        if (p->at == SP_AT_TAIL) {
            sp_devwalk dw;
            check_tail(v, p, &e, &dw);
            v->res->device_sections = dw.sections;
            v->res->devices_checked = dw.complete;
        } else if (!strcmp(check, "mapped.stream")) {
            vf_add(&v->l, check, MRIMG_SEV_ERROR, e.offset_kind, e.offset,
                   "the main stream does not continue validly after the pages of block \"%s\": "
                   "%s",
                   v->blocks[v->nblocks - 1].name, bare_message(&e));
        } else if (!mine) {
            vf_add_err(&v->l, check, MRIMG_SEV_ERROR, &e);
        }
        return drain_payload(v, s, dec, err);
    }
    v->parsed = true;
    v->res->stream_parsed = 1;
    sp_devwalk dw;
    check_tail(v, p, NULL, &dw);
    v->res->device_sections = dw.sections;
    v->res->devices_checked = dw.complete;
    return 0;
}

static int vf_after(void *ctx, sp_pass *ps, int rc, const mrimg_error *perr, mrimg_error *err)
{
    vf *v = ctx;
    if (ps->si != &v->si)
        v->si = *ps->si; /* a pass of another consumer's: its parser's stream info */
    if (sp_pass_cut(ps)) {
        v->cut = true; /* another consumer stopped the pass: no judgement */
        return 0;
    }
    if (rc < 0 && fatal_code(rc))
        v->cut = true;
    if (!v->head_skipped)
        rc = vf_parsed(v, ps, rc, perr, err);
    else if (v->drain_after)
        rc = drain_payload(v, ps->s, ps->dec, err); /* the parse's error is not ours */
    else
        rc = 0; /* vf_before judged the head (and drained the payload) */
    if (rc < 0) {
        v->cut = true;
        v->frc = rc;
        v->ferr = *err;
    }
    mrimg_image *img = v->img;
    mrimg_decoder *dec = ps->dec;
    if (dec->codec) {
        img->dstats = dec->st;
        v->res->payload_bytes = dec->st.in_bytes;
        v->res->codec_checks = dec->st.checks;
        v->res->codec_members = dec->st.members;
        if (rc == 0 && dec->done && dec->st.trailing) {
            uint64_t at = img->src.size - dec->st.trailing;
            if (dec->st.tool_rejects && dec->st.note[0])
                ERR(v, "payload.trailing", FILEOFF, at, "%s; libvirt's restore would fail",
                    dec->st.note);
            else if (dec->st.tool_rejects)
                ERR(v, "payload.trailing", FILEOFF, at,
                    "%llu bytes after the %s payload: `%s -dc` would fail, and with it "
                    "libvirt's restore",
                    (unsigned long long)dec->st.trailing, dec->codec->name, dec->codec->name);
            else if (dec->st.note[0])
                WARN(v, "payload.trailing", FILEOFF, at, "%s", dec->st.note);
            else
                WARN(v, "payload.trailing", FILEOFF, at,
                     "%llu %sbytes after the %s payload (`%s -dc` accepts them)",
                     (unsigned long long)dec->st.trailing, dec->st.trailing_zero ? "zero " : "",
                     dec->codec->name, dec->codec->name);
        } else if (rc == 0 && dec->done && dec->st.tool_rejects) {
            ERR(v, "payload.trailing", FILEOFF, img->src.size,
                "%s (libvirt's restore would fail)",
                dec->st.note[0] ? dec->st.note : "the stock tool would reject this payload");
        }
    } else {
        v->res->payload_bytes = srd_pos(ps->s);
    }
    v->res->stream_bytes = srd_pos(ps->s);
    v->stream_done = true;
    return rc;
}

/* The stream checks' own pass (mrimg_verify, mrimg_check). */
static int stream_pass(vf *v, mrimg_error *err)
{
    mrimg_image *img = v->img;
    mrimg_error e;
    mrimg_error_clear(&e);
    img_parse_opts o = {
        .h = &vf_handler,
        .ctx = v,
        .si = &v->si,
        .hooks = {vf_before, vf_after, v, 0},
        .progress = v->o->progress,
        .pctx = v->o->progress_ctx,
    };
    img_parse_out po;
    int rc = img_parse(img, &o, &po, &e);
    if (!po.opened) {
        if (fatal_code(rc)) {
            *err = e;
            return rc;
        }
        return payload_problem(v, &e, err);
    }
    if (v->frc < 0) { /* vf_after's own failure */
        *err = v->ferr;
        return v->frc;
    }
    if (v->stream_done)
        return 0; /* a parse error is a problem now (vf_after) */
    if (rc < 0)
        *err = e;
    return rc;
}

/* ---- plain-stream checks after the pass ----------------------------------------------- */

static void check_plain(vf *v)
{
    if (v->mapped || !v->parsed || !v->seen)
        return;
    if (v->cfg.present)
        for (unsigned i = 0; i < v->cfg.ncaps; i++)
            if (!strcmp(v->cfg.caps[i], CAP_X_IGNORE_SHARED))
                return; /* ignored blocks are never sent */
    for (unsigned i = 0; i < v->nblocks; i++) {
        uint64_t seen = lb_count(&v->seen[i]);
        if (seen < v->blocks[i].pages) {
            uint64_t first = lb_next_clear(&v->seen[i], 0);
            WARN(v, "stream.ram", NOOFF,
                 "block \"%s\": %llu of %llu pages are never sent, the first is page %llu "
                 "(QEMU sends every page in its first pass; the destination keeps its own "
                 "content for them)",
                 v->blocks[i].name, (unsigned long long)(v->blocks[i].pages - seen),
                 (unsigned long long)v->blocks[i].pages, (unsigned long long)first);
        }
    }
}

static void check_stream_misc(vf *v)
{
    if (v->stream_error && !v->parsed && v->ram_footers + v->ram_nofooters == 0)
        return;
    if (v->parsed && !v->cfg.present)
        WARN(v, "stream.config", v->sk, v->sbase + 8,
             "no configuration section: QEMU 10.0 refuses such a stream unless "
             "send-configuration is off (Xen)");
    if (v->ram_nofooters && v->ram_footers)
        ERR(v, "stream.footer", NOOFF,
            "%llu RAM sections end without a footer while %llu have one: QEMU rejects the "
            "stream (\"Missing section footer\")",
            (unsigned long long)v->ram_nofooters, (unsigned long long)v->ram_footers);
    else if (v->ram_nofooters && v->parsed)
        WARN(v, "stream.footer", NOOFF,
             "no section has a footer (send-section-footer off): QEMU only loads it with the "
             "same setting");
}

/* ---- mapped-ram ------------------------------------------------------------------------ */

typedef struct region {
    uint64_t start, end;
    char what[MRIMG_NAME_MAX + 40];
} region;

static int cmp_region(const void *a, const void *b)
{
    const region *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

static void check_format_vs_stream(vf *v)
{
    if (!v->libvirt || v->hdr_format < 0 || !v->cfg.present)
        return;
    if (v->hdr_format == MRIMG_FORMAT_SPARSE && !v->mapped)
        ERR(v, "mapped.format", FILEOFF, 28,
            "the header says format 6 (sparse) but the stream does not announce mapped-ram: "
            "libvirt would restore it with mapped-ram on and QEMU would refuse it");
    else if (v->hdr_format != MRIMG_FORMAT_SPARSE && v->mapped)
        ERR(v, "mapped.format", FILEOFF, 28,
            "the stream announces mapped-ram but the header says format %d (%s), not 6 "
            "(sparse): libvirt would restore it without mapped-ram and QEMU would refuse it",
            v->hdr_format, mrimg_format_name(v->hdr_format));
}

static int read_bitmaps_and_data(vf *v, lbitmap *bm, const bool *usable, mrimg_error *err);

/* Name what lies at file offset off, for a mapped-ram offset that points
 * where it must not (block i's offsets are being checked). */
static void describe_file_at(const vf *v, unsigned i, uint64_t off, char *out, size_t cap)
{
    const mrimg_image *img = v->img;
    const mrimg_container_info *ci = &img->ci;
    uint64_t base = ci->payload_offset;
    if (off >= img->src.size) {
        snprintf(out, cap, "beyond the end of the file");
        return;
    }
    if (off < base) {
        if (!v->libvirt)
            snprintf(out, cap, "before the QEMU stream");
        else if (off < MRIMG_HEADER_SIZE)
            snprintf(out, cap, "into the libvirt header");
        else if (off < MRIMG_HEADER_SIZE + ci->xml_len + 1)
            snprintf(out, cap, "into the domain XML");
        else if (ci->cookie_offset && off >= MRIMG_HEADER_SIZE + (uint64_t)ci->cookie_offset &&
                 off < MRIMG_HEADER_SIZE + (uint64_t)ci->cookie_offset + ci->cookie_len + 1)
            snprintf(out, cap, "into the save cookie");
        else
            snprintf(out, cap, "into the metadata padding");
        return;
    }
    unsigned nb = v->nblocks + (v->partial_block ? 1 : 0);
    for (unsigned k = 0; k < nb; k++) {
        const sp_block *o = &v->blocks[k];
        uint64_t bsz = (o->pages + 63) / 64 * 8;
        const char *own = k == i ? "its own" : NULL;
        if (off >= o->header_offset && off - o->header_offset < MAPPED_RAM_HDR_SIZE)
            snprintf(out, cap, "into %s header%s%s%s", own ? own : "the", own ? "" : " of \"",
                     own ? "" : o->name, own ? "" : "\"");
        else if (k != i && off >= o->bitmap_offset && off - o->bitmap_offset < bsz)
            snprintf(out, cap, "into the bitmap of \"%s\"", o->name);
        else if (off >= o->pages_offset && off - o->pages_offset < o->used_length)
            snprintf(out, cap, "into %s pages%s%s%s", own ? own : "the", own ? "" : " of \"",
                     own ? "" : o->name, own ? "" : "\"");
        else
            continue;
        return;
    }
    if (v->parsed && off >= base + v->si.ram_end)
        snprintf(out, cap, "into the device state or after it");
    else
        snprintf(out, cap, "into the main stream");
}

static int check_mapped(vf *v, mrimg_error *err)
{
    if (!v->mapped)
        return 0;
    if (v->compressed) {
        ERR(v, "mapped.format", NOOFF,
            "a mapped-ram stream inside a %s-compressed payload: its absolute offsets cannot "
            "be followed and QEMU cannot load it",
            mrimg_format_name(v->enc));
        return 0;
    }
    mrimg_image *img = v->img;
    uint64_t fsize = img->src.size, ps = v->page_size;
    unsigned nb = v->nblocks + (v->partial_block ? 1 : 0);
    if (nb == 0)
        return 0;
    region *rg = xcalloc(2 * (size_t)nb + nb + 1, sizeof(*rg), err);
    bool *usable = xcalloc(nb, sizeof(bool), err);
    lbitmap *bm = xcalloc(nb, sizeof(lbitmap), err);
    if (!rg || !usable || !bm) {
        free(rg);
        free(usable);
        free(bm);
        return MRIMG_ERR_NOMEM;
    }
    size_t nr = 0;
    uint64_t stream_from = img->ci.payload_offset;
    for (unsigned i = 0; i < nb; i++) {
        const sp_block *b = &v->blocks[i];
        uint64_t hat = b->header_offset;
        bool ok = true;
        if (b->mversion != MAPPED_RAM_VERSION) {
            if (b->mversion > MAPPED_RAM_VERSION) {
                ERR(v, "mapped.header", FILEOFF, hat,
                    "block \"%s\": mapped-ram header version %u (QEMU 10.0 reads only 1)",
                    b->name, b->mversion);
                ok = false;
            } else {
                WARN(v, "mapped.header", FILEOFF, hat,
                     "block \"%s\": mapped-ram header version 0 (QEMU writes 1)", b->name);
            }
        }
        if (b->mpage_size != ps) {
            ERR(v, "mapped.page_size", FILEOFF, hat + 4,
                "block \"%s\": mapped-ram page size %llu differs from the target page size %llu",
                b->name, (unsigned long long)b->mpage_size, (unsigned long long)ps);
            ok = false;
        }
        if (b->pages_offset % ps) {
            ERR(v, "mapped.alignment", FILEOFF, hat + 20,
                "block \"%s\": pages offset 0x%llx is not a multiple of the %llu-byte page size "
                "(QEMU: \"region has bad alignment\")",
                b->name, (unsigned long long)b->pages_offset, (unsigned long long)ps);
            ok = false;
        }
        uint64_t bsz = (b->pages + 63) / 64 * 8, bend, pend;
        uint64_t want_bm = hat + MAPPED_RAM_HDR_SIZE;
        char where[MRIMG_NAME_MAX + 64];
        if (b->bitmap_offset != want_bm) {
            describe_file_at(v, i, b->bitmap_offset, where, sizeof(where));
            ERR(v, "mapped.layout", FILEOFF, hat + 12,
                "block \"%s\": bitmap offset 0x%llx points %s, not right after the block's "
                "header (0x%llx) where QEMU writes it: its bits would be read from bytes that "
                "are not a bitmap",
                b->name, (unsigned long long)b->bitmap_offset, where,
                (unsigned long long)want_bm);
            ok = false;
        } else if (add_ok(b->bitmap_offset, bsz, &bend) && b->pages_offset < bend) {
            describe_file_at(v, i, b->pages_offset, where, sizeof(where));
            ERR(v, "mapped.layout", FILEOFF, hat + 20,
                "block \"%s\": pages offset 0x%llx points %s: the pages must follow the "
                "bitmap, which ends at 0x%llx",
                b->name, (unsigned long long)b->pages_offset, where, (unsigned long long)bend);
            ok = false;
        } else if (b->pages_offset % ps == 0 &&
                   b->pages_offset != round_up(want_bm + bsz, MAPPED_RAM_ALIGN)) {
            WARN(v, "mapped.alignment", FILEOFF, hat + 20,
                 "block \"%s\": pages offset 0x%llx is not where QEMU puts it (0x%llx, the end "
                 "of the bitmap rounded up to 1 MiB); QEMU loads it%s",
                 b->name, (unsigned long long)b->pages_offset,
                 (unsigned long long)round_up(want_bm + bsz, MAPPED_RAM_ALIGN),
                 b->pages_offset % MAPPED_RAM_ALIGN ? ", but a restore with direct-io may fail"
                                                    : "");
        }
        bool bm_in = add_ok(b->bitmap_offset, bsz, &bend) && bend <= fsize;
        bool pg_in = add_ok(b->pages_offset, b->used_length, &pend) && pend <= fsize;
        if (!bm_in)
            ERR(v, "mapped.region", FILEOFF, hat + 12,
                "block \"%s\": bitmap [0x%llx, +%llu) lies beyond the end of the file (%llu "
                "bytes)",
                b->name, (unsigned long long)b->bitmap_offset, (unsigned long long)bsz,
                (unsigned long long)fsize);
        if (!pg_in)
            ERR(v, "mapped.region", FILEOFF, hat + 20,
                "block \"%s\": pages [0x%llx, +%llu) lie beyond the end of the file (%llu bytes)",
                b->name, (unsigned long long)b->pages_offset, (unsigned long long)b->used_length,
                (unsigned long long)fsize);
        if (pg_in && pend < hat + MAPPED_RAM_HDR_SIZE)
            ERR(v, "mapped.region", FILEOFF, hat + 20,
                "block \"%s\": its pages end at 0x%llx, before its own header: the stream "
                "cannot continue after them",
                b->name, (unsigned long long)pend);
        /* regions for the overlap check */
        if (hat + MAPPED_RAM_HDR_SIZE > stream_from) {
            region *r = &rg[nr++];
            r->start = stream_from;
            r->end = hat + MAPPED_RAM_HDR_SIZE;
            snprintf(r->what, sizeof(r->what), "the main stream up to the header of \"%s\"",
                     b->name);
        }
        if (bm_in && bsz) {
            region *r = &rg[nr++];
            r->start = b->bitmap_offset;
            r->end = bend;
            snprintf(r->what, sizeof(r->what), "the bitmap of \"%s\"", b->name);
        }
        if (pg_in) {
            region *r = &rg[nr++];
            r->start = b->pages_offset;
            r->end = pend;
            snprintf(r->what, sizeof(r->what), "the pages of \"%s\"", b->name);
            stream_from = pend;
        }
        usable[i] = ok && bm_in && pg_in && i < v->nblocks;
        if (!ok || !bm_in)
            usable[i] = false;
    }
    if (v->parsed && v->si.stream_size) {
        uint64_t send = img->ci.payload_offset + v->si.stream_size;
        if (send > stream_from) {
            region *r = &rg[nr++];
            r->start = stream_from;
            r->end = send;
            snprintf(r->what, sizeof(r->what), "the main stream after the last block");
        }
    }
    qsort(rg, nr, sizeof(*rg), cmp_region);
    unsigned reported = 0;
    for (size_t i = 0; i + 1 < nr && reported < 64; i++) {
        /* compare with every later region that starts before this one ends */
        for (size_t j = i + 1; j < nr && rg[j].start < rg[i].end && reported < 64; j++) {
            ERR(v, "mapped.overlap", FILEOFF, rg[j].start,
                "%s [0x%llx, 0x%llx) overlaps %s [0x%llx, 0x%llx)", rg[j].what,
                (unsigned long long)rg[j].start, (unsigned long long)rg[j].end, rg[i].what,
                (unsigned long long)rg[i].start, (unsigned long long)rg[i].end);
            reported++;
        }
    }
    free(rg);
    int rc = read_bitmaps_and_data(v, bm, usable, err);
    for (unsigned i = 0; i < nb; i++)
        lb_free(&bm[i]);
    free(bm);
    free(usable);
    return rc;
}

typedef struct vf_read {
    vf *v;
    uint64_t done, total;
} vf_read;

static int data_run(void *opaque, const pg_run *r, mrimg_error *err)
{
    vf_read *x = opaque;
    x->done += r->n * x->v->blocks[r->id].mpage_size;
    if (x->v->o->progress && x->v->o->progress(x->v->o->progress_ctx, x->done, x->total))
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    return 0;
}

static int read_bitmaps_and_data(vf *v, lbitmap *bm, const bool *usable, mrimg_error *err)
{
    mrimg_image *img = v->img;
    unsigned nb = v->nblocks + (v->partial_block ? 1 : 0);
    pg_region *reg = xcalloc(nb, sizeof(*reg), err);
    if (!reg)
        return MRIMG_ERR_NOMEM;
    int rc = 0;
    size_t nreg = 0;
    vf_read x = {v, 0, 0};
    for (unsigned i = 0; i < nb && rc == 0; i++) {
        const sp_block *b = &v->blocks[i];
        uint64_t bsz = (b->pages + 63) / 64 * 8, bend;
        if (!add_ok(b->bitmap_offset, bsz, &bend) || bend > img->src.size ||
            b->bitmap_offset != b->header_offset + MAPPED_RAM_HDR_SIZE)
            continue; /* not a bitmap (mapped.layout) */
        uint64_t extra = 0, first_extra = 0;
        rc = lb_init(&bm[i], b->pages, err);
        if (rc == 0)
            rc = pg_load_bitmap(&img->src, b->bitmap_offset, b->pages, &bm[i], &extra,
                                &first_extra, err);
        if (rc < 0)
            break;
        if (extra)
            ERR(v, "mapped.bitmap", FILEOFF, b->bitmap_offset + first_extra / 8,
                "block \"%s\": %llu bitmap bits are set past its last page (%llu pages; first "
                "stray bit %llu): the bitmap is damaged",
                b->name, (unsigned long long)extra, (unsigned long long)b->pages,
                (unsigned long long)first_extra);
        if (usable[i]) {
            x.total += lb_count(&bm[i]) * b->mpage_size;
            reg[nreg++] = (pg_region){.base = b->pages_offset, .ps = b->mpage_size,
                                      .first = 0, .end = b->pages, .bits = &bm[i], .id = i};
        }
    }
    /* read the data extents of the set pages */
    if (rc == 0 && !v->o->skip_data) {
        pg_opts o = {.what = "RAM pages"};
        rc = pg_read(&img->src, reg, nreg, &o, data_run, &x, err);
        v->res->data_read += o.bytes_read;
    }
    free(reg);
    return rc;
}

/* ---- entry point --------------------------------------------------------------------- */

void mrimg_verify_free(mrimg_verify_result *r)
{
    if (!r)
        return;
    free((void *)r->problems);
    free(r);
}

/* The engine, in three steps: the container checks (which tell where the
 * payload is and how it is encoded), the stream checks on a pass over the
 * payload (their own, or a conversion's), then the checks on what the pass
 * found, into the result.  scratch is a handle built by hand, since the
 * container may be too broken for mrimg_open. */
static int vf_start(vf *v, mrimg_image *scratch, const mrimg_verify_opts *o, bool quick,
                    mrimg_error *err)
{
    memset(v, 0, sizeof(*v));
    v->o = o;
    v->quick = quick;
    v->l.max = v->o->max_problems ? v->o->max_problems : MRIMG_VERIFY_MAX_PROBLEMS;
    v->res = xcalloc(1, sizeof(*v->res), err);
    if (!v->res)
        return MRIMG_ERR_NOMEM;
    v->page_size = 4096;
    v->img = scratch;
    int rc = check_container(v, err);
    if (rc == 0 && v->have_payload && v->libvirt && v->hdr_format == MRIMG_FORMAT_SPARSE &&
        !src_seekable(&scratch->src))
        rc = src_need_seek(&scratch->src,
                           "a mapped-ram (sparse) image, whose pages and bitmaps are read by "
                           "offset,",
                           err);
    if (rc == 0 && v->have_payload) {
        mrimg_image *img = v->img;
        img->ci.payload_format = v->enc;
        if (v->libvirt && v->hdr_format == MRIMG_FORMAT_SPARSE && v->enc == MRIMG_FORMAT_RAW)
            img->ci.payload_format = MRIMG_FORMAT_SPARSE;
        img->codec = codec_by_format(v->enc == MRIMG_FORMAT_SPARSE ? MRIMG_FORMAT_RAW : v->enc);
        if (!img->codec)
            img->codec = &codec_raw;
    }
    return rc;
}

/* rc: the result so far (the stream pass's); *res receives the result,
 * also when it failed part-way. */
static int vf_conclude(vf *v, int rc, mrimg_verify_result **res, mrimg_error *err)
{
    const mrimg_verify_opts *o = v->o;
    if (rc == 0 && v->have_payload) {
        check_plain(v);
        check_stream_misc(v);
        check_format_vs_stream(v);
        rc = check_mapped(v, err);
    }
    mrimg_verify_result *r = v->res;
    const mrimg_container_info *ci = &v->img->ci;
    r->is_libvirt = ci->is_libvirt;
    r->complete = ci->complete;
    r->format = v->hdr_format;
    r->payload_format = v->libvirt && v->hdr_format == MRIMG_FORMAT_SPARSE &&
                                v->enc == MRIMG_FORMAT_RAW
                            ? MRIMG_FORMAT_SPARSE
                            : v->enc;
    r->mapped_ram = v->mapped;
    /* 0: a pipe whose end was not read */
    r->file_size = src_size_known(&v->img->src) ? v->img->src.size : 0;
    r->payload_offset = ci->payload_offset;
    r->nblocks = v->nblocks;
    for (unsigned i = 0; i < v->nblocks; i++)
        r->ram_bytes += v->blocks[i].used_length;
    if (v->parsed) {
        r->stream_size = v->si.stream_size;
        r->stream_trailing = v->si.trailing_bytes;
    }
    r->data_checked = !o->skip_data;
    r->codec_rechecked = !v->quick;
    if (v->l.nomem && rc == 0)
        rc = err_nomem(err);
    r->errors = v->l.errors;
    r->warnings = v->l.warnings;
    r->dropped = v->l.dropped;
    r->nproblems = v->l.n;
    r->problems = v->l.v;
    v->l.v = NULL;
    v->res = NULL;
    *res = r;
    return rc;
}

/* What a vf holds besides its result. */
static void vf_release(vf *v)
{
    if (v->seen) {
        for (unsigned i = 0; i < v->nblocks; i++)
            lb_free(&v->seen[i]);
        free(v->seen);
        v->seen = NULL;
    }
    free(v->blocks);
    v->blocks = NULL;
    if (v->res) { /* never concluded */
        free(v->l.v);
        v->l.v = NULL;
        mrimg_verify_free(v->res);
        v->res = NULL;
    }
}

static int run_checks(mrimg_image *scratch, const mrimg_verify_opts *o, bool quick,
                      mrimg_verify_result **res, mrimg_error *err)
{
    vf v;
    int rc = vf_start(&v, scratch, o, quick, err);
    if (rc == MRIMG_ERR_NOMEM && !v.res)
        return rc;
    if (rc == 0 && v.have_payload)
        rc = stream_pass(&v, err);
    rc = vf_conclude(&v, rc, res, err);
    vf_release(&v);
    return rc;
}

int mrimg_verify(const char *path, const mrimg_verify_opts *opts, mrimg_verify_result **res,
                 mrimg_error *err)
{
    mrimg_error_clear(err);
    if (res)
        *res = NULL;
    if (!path || !res)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no path or result given");
    static const mrimg_verify_opts defaults;
    if (!opts)
        opts = &defaults;
    mrimg_image *img = xcalloc(1, sizeof(*img), err);
    if (!img)
        return MRIMG_ERR_NOMEM;
    img->opts.stream_offset = opts->stream_offset;
    img->opts.threads = threads_effective(opts->threads);
    int rc = src_open(&img->src, path, err);
    if (rc < 0) {
        free(img);
        return rc;
    }
    rc = run_checks(img, opts, false, res, err);
    mrimg_close(img);
    return rc;
}

static void judgement_free(void *p) { mrimg_verify_free(p); }

/* Cache r as img's judgement at level (1 quick, 2 full). */
static void judgement_keep(mrimg_image *img, mrimg_verify_result *r, int level)
{
    if (img->judgement_free)
        img->judgement_free(img->judgement);
    img->judgement = r;
    img->judgement_level = level;
    img->judgement_free = judgement_free;
}

/* A second handle on img's descriptor: the checks fill in their own
 * container and codec state, the caller's handle is left as it is. */
static int scratch_open(mrimg_image *img, mrimg_image **out, mrimg_error *err)
{
    mrimg_image *scratch = xcalloc(1, sizeof(*scratch), err);
    if (!scratch)
        return MRIMG_ERR_NOMEM;
    scratch->opts = img->opts;
    /* the same source (a pipe's position and head window are shared) */
    src_share(&scratch->src, &img->src, err);
    if (!scratch->src.name) {
        free(scratch);
        return err_nomem(err);
    }
    *out = scratch;
    return 0;
}

int mrimg_check(mrimg_image *img, unsigned flags, mrimg_progress_fn progress, void *pctx,
                const mrimg_verify_result **res, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (res)
        *res = NULL;
    if (!img || (flags & ~MRIMG_CHECK_FULL))
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no image, or unknown flags");
    int level = (flags & MRIMG_CHECK_FULL) ? 2 : 1;
    if (img->judgement && img->judgement_level >= level) {
        if (res)
            *res = img->judgement;
        return MRIMG_OK;
    }
    int rc;
    if (level == 1 && !img->scanned && !img->scan_tried) {
        /* the judgement rides on the scan's pass: one read of the input for
         * both (a pipe is read once; a file is not read twice) */
        vf_judge *j = NULL;
        rc = vf_judge_begin(img, &j, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            img_rider *rd = vf_judge_rider(j);
            img_rider_add(img, rd);
            mrimg_error se;
            (void)mrimg_scan(img, 0, progress, pctx, &se); /* its failure is kept */
            img_rider_remove(img, rd);
            const mrimg_verify_result *jr = NULL;
            rc = vf_judge_end(j, img, &jr, err);
            vf_judge_free(j);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                if (src_size_known(&img->src))
                    img->ci.file_size = img->src.size;
                if (res)
                    *res = jr;
                return MRIMG_OK;
            }
            /* the pass ended early: a judgement of its own (which fails
             * if it needs what the pipe no longer holds) */
        }
    }
    mrimg_image *scratch = NULL;
    rc = scratch_open(img, &scratch, err);
    if (rc < 0)
        return rc;
    mrimg_verify_opts o = {
        .stream_offset = img->opts.stream_offset,
        .threads = img->opts.threads,
        .skip_data = level < 2,
        .progress = progress,
        .progress_ctx = pctx,
    };
    mrimg_verify_result *r = NULL;
    rc = run_checks(scratch, &o, level < 2, &r, err);
    if (!src_seekable(&img->src)) {
        /* a pipe's size is known once its end was read */
        if (!src_size_known(&img->src) && src_size_known(&scratch->src))
            img->src.size = scratch->src.size;
        if (src_size_known(&img->src))
            img->ci.file_size = img->src.size;
    }
    mrimg_close(scratch);
    if (rc < 0) {
        mrimg_verify_free(r);
        return rc;
    }
    judgement_keep(img, r, level);
    if (res)
        *res = r;
    return MRIMG_OK;
}

/* ---- the quick judgement on a conversion's own pass ------------------------------ */

struct vf_judge {
    vf v;
    mrimg_verify_opts o;
    mrimg_image *scratch;
    img_rider rider;
};

int vf_judge_begin(mrimg_image *img, vf_judge **out, mrimg_error *err)
{
    *out = NULL;
    vf_judge *j = xcalloc(1, sizeof(*j), err);
    if (!j)
        return MRIMG_ERR_NOMEM;
    int rc = scratch_open(img, &j->scratch, err);
    if (rc < 0) {
        free(j);
        return rc;
    }
    j->o = (mrimg_verify_opts){
        .stream_offset = img->opts.stream_offset, .threads = img->opts.threads, .skip_data = 1};
    rc = vf_start(&j->v, j->scratch, &j->o, true, err);
    /* the pass must read what the verifier's own would: the same payload,
     * decoded by the same codec (else: a judgement of its own) */
    if (rc < 0 || !j->v.have_payload || j->scratch->codec != img->codec ||
        j->scratch->ci.payload_offset != img->ci.payload_offset) {
        vf_judge_free(j);
        return rc < 0 ? rc : 1;
    }
    j->rider = (img_rider){
        .h = &vf_handler,
        .ctx = &j->v,
        .hooks = {vf_before, vf_after, &j->v, -1},
        .once = true,
    };
    *out = j;
    return 0;
}

img_rider *vf_judge_rider(vf_judge *j) { return &j->rider; }

int vf_judge_end(vf_judge *j, mrimg_image *img, const mrimg_verify_result **res,
                 mrimg_error *err)
{
    vf *v = &j->v;
    if (!j->rider.fed || !v->stream_done || v->cut)
        return 1; /* the pass ended early: no judgement */
    if (v->mapped)
        return 1; /* a mapped-ram payload's checks name what its offsets point
                   * into from a pass of their own (metadata only) */
    /* the parser's stream info is the conversion pass's (vf_after took a copy) */
    mrimg_verify_result *r = NULL;
    int rc = vf_conclude(v, 0, &r, err);
    if (rc < 0) {
        mrimg_verify_free(r);
        return rc;
    }
    judgement_keep(img, r, 1);
    *res = r;
    return 0;
}

void vf_judge_free(vf_judge *j)
{
    if (!j)
        return;
    vf_release(&j->v);
    mrimg_close(j->scratch);
    free(j);
}
