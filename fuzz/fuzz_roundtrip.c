/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_roundtrip: structure-aware.  The input is not a file format but a
 * recipe: it is read as a sequence of small decisions from which a valid
 * plain QEMU stream is written with the library's own writer
 * (lib/stream/writer.h), while a model of guest RAM records what the stream
 * says (last record wins).  Then:
 *
 *   A   the stream as written (plain, bare)
 *   B = convert(A, bare mapped-ram)
 *   C = convert(B, bare plain)
 *   D = convert(A, libvirt image in a format chosen by the recipe)
 *   E = convert(A, bare plain, compact)          (when A is multi-pass)
 *
 * and every one of them must open, scan and walk to exactly the model's RAM
 * (the walk contract is checked as well), with the same device-state tail.
 * Any error on these valid streams, or any difference, is a crash.
 *
 * The library's own judgement and digest must agree: A verifies without an
 * error-severity problem (mrimg_verify: the writer wrote a sound stream),
 * and so does every output, whose guest state (mrimg_digest_compute) is
 * A's: conversion never loses state silently.
 *
 * Recipe (every byte is consumed modulo what it chooses among; when the
 * input ends, the rest is zero):
 *   byte 0: page size (1/2/4 KiB, with or without the target-page-bits
 *           subsection), uuid subsection, commands before RAM
 *   byte 1: blocks (1..4), SWITCHOVER_START, a device state, output format
 *   per block: a name, pages (1..16)
 *   then records until the input ends (at most 512): an opcode byte, then
 *   block, page and content bytes: ZERO, PAGE (filled with a byte and
 *   patched with input bytes, or all zero), MULTIFD_FLUSH, or a section
 *   break (EOS, footer, a new PART; the last PART becomes the END). */
#include "fuzz_common.h"

#include "stream/writer.h"

#define MAX_BLOCKS 4
#define MAX_PAGES 16
#define MAX_RECORDS 512
#define MAX_SECTIONS 16

static fz_file in_file;

typedef struct recipe {
    const uint8_t *p;
    size_t n, i;
} recipe;

static uint8_t next(recipe *r) { return r->i < r->n ? r->p[r->i++] : 0; }
static bool more(const recipe *r) { return r->i < r->n; }

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static int buf_out(void *ctx, const void *p, size_t n, mrimg_error *err)
{
    buf *b = ctx;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *q = realloc(b->p, nc);
        if (!q)
            return err_nomem(err);
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

typedef struct model {
    unsigned nblocks;
    sp_block blocks[MAX_BLOCKS];
    uint64_t ps;
    uint8_t *mem[MAX_BLOCKS];       /* expected content */
    uint64_t tail_size;             /* bytes after the RAM END section */
} model;

static const char *const names[] = {
    "pc.ram", "pc.bios", "pc.rom", "/rom@etc/acpi/tables", "m1", "0000:00:02.0/vga.vram",
    "/rom@etc/table-loader", "/rom@etc/acpi/rsdp",
};

#define W(call)                                                                    \
    do {                                                                           \
        int rc_ = (call);                                                          \
        FZ_CHECK(rc_ == 0, "writer: %s: %s", #call, err.message);                  \
    } while (0)

/* Write the stream of the recipe into out, the expected RAM into m.
 * Returns the chosen output format for D. */
static int build(recipe *r, model *m, buf *out)
{
    mrimg_error err;
    sw w;
    sw_init(&w, buf_out, out);

    uint8_t b0 = next(r), b1 = next(r);
    sp_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.present = true;
    strcpy(cfg.machine, "pc-i440fx-10.0");
    switch (b0 & 3) {
    case 0: m->ps = 4096; break;
    case 1: cfg.has_page_bits = true; cfg.page_bits = 10; break;
    case 2: cfg.has_page_bits = true; cfg.page_bits = 11; break;
    default: cfg.has_page_bits = true; cfg.page_bits = 12; break;
    }
    if (cfg.has_page_bits)
        m->ps = 1ull << cfg.page_bits;
    if (b0 & 4) {
        cfg.has_uuid = true;
        for (int i = 0; i < 16; i++)
            cfg.uuid[i] = (uint8_t)(b0 * 31 + i);
    }
    W(sw_header(&w, &err));
    W(sw_config(&w, &cfg, -1, &err));
    if (b0 & 8) {
        sp_command c = {.cmd = MIG_CMD_OPEN_RETURN_PATH, .len = 0};
        W(sw_command(&w, &c, &err));
    }
    if (b0 & 16) {
        static const uint8_t ping[4] = {0, 0, 0, 1};
        sp_command c = {.cmd = MIG_CMD_PING, .len = 4, .data = ping};
        W(sw_command(&w, &c, &err));
    }

    m->nblocks = 1 + b1 % MAX_BLOCKS;
    uint64_t total = 0;
    for (unsigned i = 0; i < m->nblocks; i++) {
        sp_block *b = &m->blocks[i];
        memset(b, 0, sizeof(*b));
        unsigned k = next(r);
        const char *nm = names[k % MRIMG_ARRAY_SIZE(names)];
        for (unsigned j = 0; j < i && nm; j++)
            if (!strcmp(m->blocks[j].name, nm))
                nm = NULL;
        if (nm)
            snprintf(b->name, sizeof(b->name), "%s", nm);
        else
            snprintf(b->name, sizeof(b->name), "block%u", i);
        b->name_len = (uint8_t)strlen(b->name);
        b->pages = 1 + (k >> 3) % MAX_PAGES;
        b->used_length = b->pages * m->ps;
        total += b->used_length;
        m->mem[i] = calloc(b->pages, m->ps);
    }

    const uint32_t id = 2;
    sp_section s = {.type = QEMU_VM_SECTION_START, .id = id, .instance = 0,
                    .version = RAM_SECTION_VERSION};
    strcpy(s.idstr, "ram");
    W(sw_section_start(&w, &s, &err));
    W(sw_mem_size(&w, total, &err));
    for (unsigned i = 0; i < m->nblocks; i++)
        W(sw_block(&w, &m->blocks[i], &err));

    uint8_t *page = malloc(m->ps);
    unsigned nrec = 0, nsec = 1;
    bool in_end = false;
    while (more(r) && nrec < MAX_RECORDS) {
        uint8_t op = next(r);
        switch (op % 8) {
        case 0: /* section break */
            if (nsec >= MAX_SECTIONS || in_end)
                break;
            W(sw_eos(&w, &err));
            W(sw_footer(&w, id, &err));
            nsec++;
            in_end = nsec == MAX_SECTIONS || (op & 0x80);
            if (in_end && (b1 & 0x10)) {
                sp_command c = {.cmd = MIG_CMD_SWITCHOVER_START, .len = 0};
                W(sw_command(&w, &c, &err));
            }
            W(sw_section_short(&w, in_end ? QEMU_VM_SECTION_END : QEMU_VM_SECTION_PART, id,
                               &err));
            break;
        case 1: { /* MULTIFD_FLUSH */
            uint8_t f[8] = {0, 0, 0, 0, 0, 0, RAM_FLAG_MULTIFD_FLUSH >> 8,
                            RAM_FLAG_MULTIFD_FLUSH & 0xff};
            W(sw_bytes(&w, f, 8, &err));
            break;
        }
        case 2:
        case 3: { /* ZERO */
            unsigned bi = next(r) % m->nblocks;
            uint64_t pg = next(r) % m->blocks[bi].pages;
            W(sw_page(&w, (int)bi, &m->blocks[bi], pg, m->ps, NULL, &err));
            memset(m->mem[bi] + pg * m->ps, 0, m->ps);
            nrec++;
            break;
        }
        default: { /* PAGE */
            unsigned bi = next(r) % m->nblocks;
            uint64_t pg = next(r) % m->blocks[bi].pages;
            if (op & 0x40) {
                memset(page, 0, m->ps); /* a data record that is all zero */
            } else {
                memset(page, next(r), m->ps);
                size_t at = (size_t)next(r) * 8 % m->ps;
                for (size_t k = 0; k < 8 && more(r); k++)
                    page[(at + k) % m->ps] = next(r);
            }
            W(sw_page(&w, (int)bi, &m->blocks[bi], pg, m->ps, page, &err));
            memcpy(m->mem[bi] + pg * m->ps, page, m->ps);
            nrec++;
            break;
        }
        }
    }
    free(page);
    W(sw_eos(&w, &err));
    W(sw_footer(&w, id, &err));
    if (!in_end) {
        if (b1 & 0x10) {
            sp_command c = {.cmd = MIG_CMD_SWITCHOVER_START, .len = 0};
            W(sw_command(&w, &c, &err));
        }
        W(sw_section_short(&w, QEMU_VM_SECTION_END, id, &err));
        W(sw_eos(&w, &err));
        W(sw_footer(&w, id, &err));
    }
    /* the device state: opaque bytes, then EOF and the description */
    uint64_t tail_at = w.pos;
    static const uint8_t dev[] = {QEMU_VM_SECTION_FULL, 0, 0, 0, 3, 5, 't', 'i', 'm', 'e', 'r',
                                  0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8,
                                  QEMU_VM_SECTION_FOOTER, 0, 0, 0, 3};
    if (b1 & 0x20)
        W(sw_bytes(&w, dev, sizeof(dev), &err));
    uint8_t eof = QEMU_VM_EOF;
    W(sw_bytes(&w, &eof, 1, &err));
    /* QEMU always writes the description (only Xen machines suppress it), and
     * the judgement holds its absence against a stream: the recipe always
     * writes it, and it explains the device state (the scan checks it) */
    {
        char js[256];
        int n = snprintf(js, sizeof(js), "{\"page_size\": %llu, \"devices\": [%s]}",
                         (unsigned long long)m->ps,
                         (b1 & 0x20) ? "{\"name\": \"timer\", \"instance_id\": 0, "
                                       "\"version\": 2, \"fields\": [{\"name\": \"t\", "
                                       "\"type\": \"buffer\", \"size\": 8}]}"
                                     : "");
        uint8_t h[5] = {QEMU_VM_VMDESCRIPTION};
        wr_be32(h + 1, (uint32_t)n);
        W(sw_bytes(&w, h, 5, &err));
        W(sw_bytes(&w, js, (size_t)n, &err));
    }
    m->tail_size = w.pos - tail_at;
    static const mrimg_output formats[] = {MRIMG_OUT_RAW,  MRIMG_OUT_GZIP, MRIMG_OUT_BZIP2,
                                           MRIMG_OUT_XZ,   MRIMG_OUT_LZOP, MRIMG_OUT_ZSTD,
                                           MRIMG_OUT_SPARSE};
    return formats[(b1 >> 7 | (b0 >> 5) << 1) % MRIMG_ARRAY_SIZE(formats)];
}

/* Open path and require its RAM to be exactly the model's. */
static void expect_model(const char *path, const model *m, const char *what, bool plain_out)
{
    mrimg_error err;
    mrimg_image *img = fz_open(path, 1, &err);
    FZ_CHECK(img, "%s: open: %s", what, err.message);
    int rc = mrimg_scan(img, 0, NULL, NULL, &err);
    FZ_CHECK(rc == 0, "%s: scan: %s", what, err.message);
    FZ_CHECK(mrimg_block_count(img) == m->nblocks, "%s: %u blocks, expected %u", what,
             mrimg_block_count(img), m->nblocks);
    for (unsigned i = 0; i < m->nblocks; i++) {
        const mrimg_ram_block_info *b = mrimg_block(img, i);
        FZ_CHECK(!strcmp(b->name, m->blocks[i].name) &&
                     b->used_length == m->blocks[i].used_length && b->page_size == m->ps,
                 "%s: block %u is \"%s\" (%llu bytes)", what, i, b->name,
                 (unsigned long long)b->used_length);
    }
    const mrimg_stream_info *si = mrimg_stream(img);
    FZ_CHECK(si->has_eof && si->tail_size == m->tail_size, "%s: tail %llu bytes, expected %llu",
             what, (unsigned long long)si->tail_size, (unsigned long long)m->tail_size);
    if (plain_out)
        FZ_CHECK(si->ordered && !si->multi_pass, "%s: not a single ordered pass", what);

    uint8_t *got[MAX_BLOCKS] = {0};
    for (unsigned i = 0; i < m->nblocks; i++)
        got[i] = calloc(m->blocks[i].pages, m->ps);
    fz_walk w;
    fz_walk_init(&w, img);
    w.copy = got;
    w.ncopy = m->nblocks;
    rc = mrimg_ram_walk(img, fz_walk_cb, &w, NULL, NULL, &err);
    FZ_CHECK(rc == 0, "%s: walk: %s", what, err.message);
    fz_walk_done(&w);
    for (unsigned i = 0; i < m->nblocks; i++) {
        size_t len = (size_t)(m->blocks[i].pages * m->ps);
        if (memcmp(got[i], m->mem[i], len) != 0) {
            size_t k = 0;
            while (got[i][k] == m->mem[i][k])
                k++;
            FZ_CHECK(0, "%s: block %u differs from the model at byte %zu (page %zu)", what, i,
                     k, (size_t)(k / m->ps));
        }
        free(got[i]);
    }
    fz_check_samples(img, &w);
    mrimg_close(img);
}

static void convert(const char *in, const char *out, int fmt, bool compact, const char *what)
{
    mrimg_error err;
    mrimg_image *img = fz_open(in, 1, &err);
    FZ_CHECK(img, "%s: open the input: %s", what, err.message);
    const mrimg_output_desc *od = mrimg_output_info((unsigned)fmt);
    mrimg_convert_opts *co = mrimg_convert_opts_create();
    FZ_CHECK(co, "%s: out of memory", what);
    int lmin = -1;
    if (od->libvirt && mrimg_format_levels(od->payload_format, &lmin, NULL, NULL) < 0)
        lmin = -1; /* low levels (xz 0, the others 1): the oracle is about state */
    FZ_CHECK(mrimg_convert_opts_set(co, MRIMG_P_OUTPUT, fmt, &err) == 0 &&
                 mrimg_convert_opts_set(co, MRIMG_P_FORCE, 1, &err) == 0 &&
                 mrimg_convert_opts_set(co, MRIMG_P_THREADS, 1, &err) == 0 &&
                 mrimg_convert_opts_set(co, MRIMG_P_COMPACT, compact, &err) == 0 &&
                 mrimg_convert_opts_set(co, MRIMG_P_LEVEL, lmin, &err) == 0,
             "%s: options: %s", what, err.message);
    if (od->libvirt)
        FZ_CHECK(mrimg_convert_opts_set_xml(co, "<domain type='kvm'><name>fuzz</name>"
                                                "<uuid>8c1a7f5e-52c4-4bb2-9d55-0f1e2d3c4b5a"
                                                "</uuid></domain>",
                                            &err) == 0,
                 "%s: xml: %s", what, err.message);
    int rc = mrimg_convert(img, out, co, NULL, &err);
    mrimg_convert_opts_free(co);
    FZ_CHECK(rc == 0, "%s: convert: %s", what, err.message);
    mrimg_close(img);
}

/* The oracle of the judgement: path verifies sound and, unless it is A
 * itself (is_a: its digest is stored into d_a), holds A's guest state. */
static void expect_state(const char *path, uint8_t d_a[MRIMG_DIGEST_LEN], bool is_a,
                         const char *what)
{
    fz_judgement j;
    fz_judge(path, &j);
    FZ_CHECK(fz_sound(&j, false), "%s: a valid stream judged unsound: %s", what, j.first);
    uint8_t d[MRIMG_DIGEST_LEN];
    mrimg_error err;
    FZ_CHECK(fz_digest(path, is_a ? d_a : d, &err), "%s: digest: %s", what, err.message);
    if (!is_a)
        FZ_CHECK(memcmp(d, d_a, MRIMG_DIGEST_LEN) == 0, "%s: the guest state (digest) differs",
                 what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    recipe r = {data, size, 0};
    model m;
    memset(&m, 0, sizeof(m));
    buf stream = {0};
    int fmt = build(&r, &m, &stream);

    const char *a = fz_file_put(&in_file, stream.p, stream.len);
    free(stream.p);
    expect_model(a, &m, "A (as written)", false);
    uint8_t d_a[MRIMG_DIGEST_LEN];
    expect_state(a, d_a, true, "A (as written)");

    const char *b = fz_out_path("b.mig"), *c = fz_out_path("c.mig");
    convert(a, b, MRIMG_OUT_QEMU_MAPPED, false, "A -> B (mapped-ram)");
    expect_model(b, &m, "B (mapped-ram)", false);
    expect_state(b, d_a, false, "B (mapped-ram)");
    convert(b, c, MRIMG_OUT_QEMU, false, "B -> C (plain)");
    expect_model(c, &m, "C (plain from mapped-ram)", true);
    expect_state(c, d_a, false, "C (plain from mapped-ram)");

    const char *d = fz_out_path("d.sav");
    convert(a, d, fmt, false, "A -> D (libvirt)");
    expect_model(d, &m, mrimg_output_info((unsigned)fmt)->name, false);
    expect_state(d, d_a, false, mrimg_output_info((unsigned)fmt)->name);

    mrimg_error err;
    mrimg_image *img = fz_open(a, 1, &err);
    FZ_CHECK(img && mrimg_scan(img, 0, NULL, NULL, &err) == 0, "A: %s", err.message);
    bool multi = mrimg_stream(img)->multi_pass || !mrimg_stream(img)->ordered;
    mrimg_close(img);
    if (multi) {
        const char *e = fz_out_path("e.mig");
        convert(a, e, MRIMG_OUT_QEMU, true, "A -> E (compact)");
        expect_model(e, &m, "E (compacted)", true);
        expect_state(e, d_a, false, "E (compacted)");
    }

    for (unsigned i = 0; i < m.nblocks; i++)
        free(m.mem[i]);
    fz_clean_outputs();
    return 0;
}
