/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMU migration stream parser (see reader.h and docs/formats.md). */
#include "reader.h"

#include "vmdesc.h"
#include "../util/vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define E(p) srd_okind((p)->in), srd_eoff((p)->in, srd_pos((p)->in))
#define EAT(p, pos) srd_okind((p)->in), srd_eoff((p)->in, (pos))

static int need(sp_parser *p, size_t n, const char *what, mrimg_error *err)
{
    return srd_need(p->in, n, what, err);
}

static uint8_t get_u8(sp_parser *p)
{
    uint8_t v = *srd_ptr(p->in);
    srd_consume(p->in, 1);
    return v;
}
static uint16_t get_be16(sp_parser *p)
{
    uint16_t v = rd_be16(srd_ptr(p->in));
    srd_consume(p->in, 2);
    return v;
}
static uint32_t get_be32(sp_parser *p)
{
    uint32_t v = rd_be32(srd_ptr(p->in));
    srd_consume(p->in, 4);
    return v;
}
static uint64_t get_be64(sp_parser *p)
{
    uint64_t v = rd_be64(srd_ptr(p->in));
    srd_consume(p->in, 8);
    return v;
}

/* str8: u8 length + bytes, into out (NUL-terminated). */
static int get_str8(sp_parser *p, char *out, uint8_t *lenp, const char *what, mrimg_error *err)
{
    int rc = need(p, 1, what, err);
    if (rc < 0)
        return rc;
    uint8_t len = *srd_ptr(p->in);
    rc = need(p, 1u + len, what, err);
    if (rc < 0)
        return rc;
    memcpy(out, srd_ptr(p->in) + 1, len);
    out[len] = '\0';
    if (lenp)
        *lenp = len;
    srd_consume(p->in, 1u + len);
    return 0;
}

static bool printable_name(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
}

/* ---- block name hash -------------------------------------------------- */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int block_find(sp_parser *p, const char *name, size_t n)
{
    uint32_t h = name_hash(name, n) & (p->hash_size - 1);
    for (unsigned probe = 0; probe < p->hash_size; probe++) {
        uint16_t v = p->hash[(h + probe) & (p->hash_size - 1)];
        if (v == 0)
            return -1;
        sp_block *b = &p->blocks[v - 1];
        if (b->name_len == n && memcmp(b->name, name, n) == 0)
            return v - 1;
    }
    return -1;
}

static void block_index(sp_parser *p, unsigned idx)
{
    sp_block *b = &p->blocks[idx];
    uint32_t h = name_hash(b->name, b->name_len) & (p->hash_size - 1);
    while (p->hash[h])
        h = (h + 1) & (p->hash_size - 1);
    p->hash[h] = (uint16_t)(idx + 1);
}

/* ---- init ------------------------------------------------------------- */

int sp_init(sp_parser *p, srd *in, uint64_t file_size, mrimg_stream_info *si, const sp_handler *h,
            void *ctx, mrimg_error *err)
{
    static const sp_handler none;
    memset(p, 0, sizeof(*p));
    p->in = in;
    p->h = h ? h : &none;
    p->ctx = ctx;
    p->si = si;
    p->file_size = file_size;
    p->last_block = -1;
    p->page_size = 4096;
    p->hash_size = 2 * MRIMG_MAX_BLOCKS;
    p->hash = xcalloc(p->hash_size, sizeof(*p->hash), err);
    if (!p->hash)
        return MRIMG_ERR_NOMEM;
    return 0;
}

void sp_free(sp_parser *p)
{
    free(p->hash);
    free(p->blocks);
    free(p->page_buf);
    free(p->tail);
    memset(p, 0, sizeof(*p));
}

/* ---- configuration section -------------------------------------------- */

static int parse_config(sp_parser *p, mrimg_error *err)
{
    sp_config *c = &p->cfg;
    p->at = SP_AT_CONFIG;
    c->present = true;
    c->start = srd_pos(p->in);
    srd_consume(p->in, 1); /* 0x07 */
    int rc = need(p, 4, "configuration section", err);
    if (rc < 0)
        return rc;
    uint64_t at = srd_pos(p->in);
    uint32_t len = get_be32(p);
    if (len > MRIMG_NAME_MAX)
        return err_set(err, MRIMG_ERR_LIMIT, EAT(p, at),
                       "machine type name of %u bytes exceeds the %d-byte cap", len,
                       MRIMG_NAME_MAX);
    rc = need(p, len, "machine type name", err);
    if (rc < 0)
        return rc;
    memcpy(c->machine, srd_ptr(p->in), len);
    c->machine[len] = '\0';
    srd_consume(p->in, len);
    if (!printable_name(c->machine, len))
        return err_set(err, MRIMG_ERR_FORMAT, EAT(p, at + 4),
                       "machine type name contains control characters");

    /* subsections in their fixed order: target-page-bits, capabilities, uuid */
    int order = 0;
    for (;;) {
        rc = srd_peek(p->in, 1, err);
        if (rc < 0)
            return rc;
        if (rc == 0 || *srd_ptr(p->in) != QEMU_VM_SUBSECTION)
            break;
        uint64_t sub_at = srd_pos(p->in);
        srd_consume(p->in, 1);
        char name[MRIMG_NAME_MAX + 1];
        rc = get_str8(p, name, NULL, "configuration subsection name", err);
        if (rc < 0)
            return rc;
        rc = need(p, 4, "configuration subsection version", err);
        if (rc < 0)
            return rc;
        uint32_t ver = get_be32(p);
        int kind = !strcmp(name, "configuration/target-page-bits") ? 1
                   : !strcmp(name, "configuration/capabilities")   ? 2
                   : !strcmp(name, "configuration/uuid")           ? 3
                                                                   : 0;
        if (kind == 0)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, sub_at),
                           "unknown configuration subsection \"%s\" (expected "
                           "configuration/target-page-bits, /capabilities or /uuid)",
                           name);
        if (kind <= order)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, sub_at),
                           "configuration subsection \"%s\" repeated or out of order", name);
        order = kind;
        if (ver != 1)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, sub_at),
                           "configuration subsection \"%s\" has version %u (expected 1)", name,
                           ver);
        if (kind == 1) {
            rc = need(p, 4, "target page bits", err);
            if (rc < 0)
                return rc;
            uint64_t a = srd_pos(p->in);
            c->has_page_bits = true;
            c->page_bits = get_be32(p);
            if (c->page_bits < 10 || c->page_bits > 21)
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, a),
                               "target page bits %u out of range (expected 10..21)",
                               c->page_bits);
        } else if (kind == 2) {
            rc = need(p, 4, "capability count", err);
            if (rc < 0)
                return rc;
            uint64_t a = srd_pos(p->in);
            uint32_t n = get_be32(p);
            if (n > MRIMG_MAX_CAPS)
                return err_set(err, MRIMG_ERR_LIMIT, EAT(p, a),
                               "%u capabilities exceed the cap of %d", n, MRIMG_MAX_CAPS);
            for (uint32_t i = 0; i < n; i++) {
                uint8_t l;
                uint64_t ca = srd_pos(p->in);
                rc = get_str8(p, c->caps[i], &l, "capability name", err);
                if (rc < 0)
                    return rc;
                if (l == 0 || !printable_name(c->caps[i], l))
                    return err_set(err, MRIMG_ERR_FORMAT, EAT(p, ca),
                                   "capability %u has an empty or unprintable name", i);
                c->ncaps = i + 1;
            }
        } else {
            rc = need(p, 16, "uuid", err);
            if (rc < 0)
                return rc;
            memcpy(c->uuid, srd_ptr(p->in), 16);
            srd_consume(p->in, 16);
            c->has_uuid = true;
        }
    }
    c->end = srd_pos(p->in);

    for (unsigned i = 0; i < c->ncaps; i++) {
        if (!strcmp(c->caps[i], CAP_MAPPED_RAM))
            p->mapped = true;
        else if (!strcmp(c->caps[i], CAP_X_IGNORE_SHARED))
            p->ignore_shared = true;
    }
    if (c->has_page_bits)
        p->page_size = 1ull << c->page_bits;

    mrimg_stream_info *si = p->si;
    si->has_config = 1;
    memcpy(si->machine, c->machine, sizeof(si->machine));
    si->has_page_bits = c->has_page_bits;
    si->page_bits = c->page_bits;
    si->ncaps = c->ncaps;
    si->has_uuid = c->has_uuid;
    memcpy(si->uuid, c->uuid, 16);
    si->mapped_ram = p->mapped;
    si->x_ignore_shared = p->ignore_shared;
    si->target_page_size = p->page_size;
    return p->h->on_config ? p->h->on_config(p->ctx, c, err) : 0;
}

/* ---- RAM: block list -------------------------------------------------- */

/* Name what lies at file offset off while block b's header is read. */
static void describe_at(const sp_parser *p, const sp_block *b, uint64_t off, char *out,
                        size_t cap)
{
    uint64_t base = p->in->base, hat = b->header_offset;
    if (off >= p->file_size) {
        snprintf(out, cap, "beyond the end of the file");
        return;
    }
    const mrimg_container_info *ci = p->ci;
    if (off < base && ci && ci->is_libvirt) {
        uint64_t xml = MRIMG_HEADER_SIZE, cookie = MRIMG_HEADER_SIZE + (uint64_t)ci->cookie_offset;
        snprintf(out, cap, "before the QEMU stream, into the %s",
                 off < MRIMG_HEADER_SIZE                           ? "libvirt header"
                 : off < xml + ci->xml_len + 1                     ? "domain XML"
                 : ci->cookie_offset && off >= cookie &&
                         off < cookie + ci->cookie_len + 1         ? "save cookie"
                                                                   : "metadata padding");
        return;
    }
    if (off < base) {
        snprintf(out, cap, "before the QEMU stream (into the %s)",
                 ci && !ci->is_libvirt ? "bytes before the stream"
                                       : "container metadata: libvirt header, domain XML, "
                                         "cookie or padding");
        return;
    }
    for (unsigned i = 0; i < p->nblocks; i++) {
        const sp_block *o = &p->blocks[i];
        uint64_t bm_end = o->bitmap_offset + (o->pages + 63) / 64 * 8;
        if (off >= o->header_offset && off < o->header_offset + MAPPED_RAM_HDR_SIZE) {
            snprintf(out, cap, "into the header of \"%s\"", o->name);
            return;
        }
        if (off >= o->bitmap_offset && off < bm_end) {
            snprintf(out, cap, "into the bitmap of \"%s\"", o->name);
            return;
        }
        if (off >= o->pages_offset && off - o->pages_offset < o->used_length) {
            snprintf(out, cap, "into the pages of \"%s\"", o->name);
            return;
        }
    }
    /* its own bitmap belongs right after its header */
    uint64_t bm = hat + MAPPED_RAM_HDR_SIZE;
    if (off >= hat && off < bm)
        snprintf(out, cap, "into its own header");
    else if (off < hat)
        snprintf(out, cap, "into the main stream before its header");
    else if (off - bm < (b->pages + 63) / 64 * 8)
        snprintf(out, cap, "into its own bitmap");
    else
        snprintf(out, cap, "past its bitmap, where nothing was written for it");
}

static int parse_mem_size(sp_parser *p, uint64_t total, uint64_t rec_at, mrimg_error *err)
{
    p->at = SP_AT_BLOCKS;
    if (p->have_blocks)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, rec_at),
                       "a second RAM block list (the RAM setup restarted); not supported");
    if (total > SP_MAX_RAM_TOTAL)
        return err_set(err, MRIMG_ERR_LIMIT, EAT(p, rec_at),
                       "RAM total of %llu bytes exceeds the 64 TiB cap",
                       (unsigned long long)total);
    if (p->mapped && p->ignore_shared)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, rec_at),
                       "x-ignore-shared together with mapped-ram (broken in QEMU 10.0: the "
                       "loader cannot read such a stream)");
    p->blocks = xcalloc(MRIMG_MAX_BLOCKS, sizeof(*p->blocks), err);
    if (!p->blocks)
        return MRIMG_ERR_NOMEM;
    uint64_t remaining = total;
    while (remaining > 0) {
        if (p->nblocks >= MRIMG_MAX_BLOCKS)
            return err_set(err, MRIMG_ERR_LIMIT, E(p), "more than %d RAM blocks",
                           MRIMG_MAX_BLOCKS);
        sp_block *b = &p->blocks[p->nblocks];
        uint64_t bat = srd_pos(p->in);
        int rc = get_str8(p, b->name, &b->name_len, "RAM block name", err);
        if (rc < 0)
            return rc;
        if (b->name_len == 0 || !printable_name(b->name, b->name_len))
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, bat),
                           "RAM block %u has an empty or unprintable name (the block list's "
                           "lengths do not add up to its total?)",
                           p->nblocks);
        if (block_find(p, b->name, b->name_len) >= 0)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, bat), "RAM block \"%s\" listed twice",
                           b->name);
        rc = need(p, 8, "RAM block length", err);
        if (rc < 0)
            return rc;
        uint64_t lat = srd_pos(p->in);
        b->used_length = get_be64(p);
        if (b->used_length > remaining)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, lat),
                           "RAM block \"%s\" length %llu exceeds what remains of the list total "
                           "(%llu)",
                           b->name, (unsigned long long)b->used_length,
                           (unsigned long long)remaining);
        if (b->used_length == 0 || b->used_length % p->page_size)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, lat),
                           "RAM block \"%s\" length %llu is not a positive multiple of the %llu-byte "
                           "page size",
                           b->name, (unsigned long long)b->used_length,
                           (unsigned long long)p->page_size);
        if (b->used_length > SP_MAX_BLOCK_LEN)
            return err_set(err, MRIMG_ERR_LIMIT, EAT(p, lat),
                           "RAM block \"%s\" of %llu bytes exceeds the 16 TiB cap", b->name,
                           (unsigned long long)b->used_length);
        b->pages = b->used_length / p->page_size;
        remaining -= b->used_length;

        if (p->postcopy) {
            /* hugepage-backed blocks carry their page size: a power of two
             * with no flag bits, which neither a block name (it would start
             * with a length byte of 0) nor a record word can be */
            rc = srd_peek(p->in, 8, err);
            if (rc < 0)
                return rc;
            if (rc) {
                uint64_t v = rd_be64(srd_ptr(p->in));
                uint64_t std = MRIMG_MAX(p->postcopy_host_psize, p->page_size);
                if (v >= 4096 && (v & (v - 1)) == 0 && v <= (1ull << 40) && v != std &&
                    *srd_ptr(p->in) == 0) {
                    b->has_psize = true;
                    b->psize = v;
                    srd_consume(p->in, 8);
                }
            }
        }
        if (p->ignore_shared) {
            rc = need(p, 8, "RAM block mr_addr", err);
            if (rc < 0)
                return rc;
            b->has_mr_addr = true;
            b->mr_addr = get_be64(p);
        }
        if (p->mapped) {
            p->at = SP_AT_MAPPED;
            rc = need(p, MAPPED_RAM_HDR_SIZE, "mapped-ram block header", err);
            if (rc < 0)
                return rc;
            uint64_t hat = srd_pos(p->in);
            const uint8_t *h = srd_ptr(p->in);
            b->mapped = true;
            b->header_offset = srd_eoff(p->in, hat);
            b->mversion = rd_be32(h);
            b->mpage_size = rd_be64(h + 4);
            b->bitmap_offset = rd_be64(h + 12);
            b->pages_offset = rd_be64(h + 20);
            srd_consume(p->in, MAPPED_RAM_HDR_SIZE);
            if (b->mversion > MAPPED_RAM_VERSION)
                return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, hat),
                               "mapped-ram header version %u of block \"%s\" is not supported "
                               "(expected 1)",
                               b->mversion, b->name);
            if (b->mpage_size != p->page_size)
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, hat + 4),
                               "mapped-ram page size %llu of block \"%s\" differs from the "
                               "target page size %llu",
                               (unsigned long long)b->mpage_size, b->name,
                               (unsigned long long)p->page_size);
            if (b->pages_offset % p->page_size)
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, hat + 20),
                               "pages offset 0x%llx of block \"%s\" is not page-aligned",
                               (unsigned long long)b->pages_offset, b->name);
            /* QEMU writes the bitmap right after the header and the pages
             * after the bitmap; a bitmap anywhere else would be read from
             * bytes that belong to something else (docs/layout.md) */
            if (b->bitmap_offset != b->header_offset + MAPPED_RAM_HDR_SIZE) {
                char where[MRIMG_NAME_MAX + 96];
                describe_at(p, b, b->bitmap_offset, where, sizeof(where));
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, hat + 12),
                               "bitmap offset 0x%llx of block \"%s\" points %s, not right after "
                               "its header (0x%llx) where QEMU writes it",
                               (unsigned long long)b->bitmap_offset, b->name, where,
                               (unsigned long long)(b->header_offset + MAPPED_RAM_HDR_SIZE));
            }
            uint64_t bm_bytes = (b->pages + 63) / 64 * 8, bm_end, pg_end;
            if (!add_ok(b->bitmap_offset, bm_bytes, &bm_end) || bm_end > p->file_size)
                return err_set(err, MRIMG_ERR_TRUNCATED, EAT(p, hat + 12),
                               "bitmap of block \"%s\" [0x%llx, +%llu) lies beyond the end of "
                               "the file (%llu bytes)",
                               b->name, (unsigned long long)b->bitmap_offset,
                               (unsigned long long)bm_bytes, (unsigned long long)p->file_size);
            if (!add_ok(b->pages_offset, b->used_length, &pg_end) || pg_end > p->file_size)
                return err_set(err, MRIMG_ERR_TRUNCATED, EAT(p, hat + 20),
                               "pages of block \"%s\" [0x%llx, +%llu) lie beyond the end of "
                               "the file (%llu bytes)",
                               b->name, (unsigned long long)b->pages_offset,
                               (unsigned long long)b->used_length,
                               (unsigned long long)p->file_size);
            if (b->pages_offset < bm_end) {
                char where[MRIMG_NAME_MAX + 96];
                describe_at(p, b, b->pages_offset, where, sizeof(where));
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, hat + 20),
                               "pages offset 0x%llx of block \"%s\" points %s: the pages must "
                               "follow its bitmap, which ends at 0x%llx",
                               (unsigned long long)b->pages_offset, b->name, where,
                               (unsigned long long)bm_end);
            }
            /* the main stream continues after this block's pages */
            uint64_t next = pg_end - p->in->base;
            if (pg_end < p->in->base + srd_pos(p->in))
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, hat + 20),
                               "pages of block \"%s\" end at 0x%llx, before the block header: the "
                               "stream would not advance",
                               b->name, (unsigned long long)pg_end);
            rc = srd_seek(p->in, next, err);
            if (rc < 0)
                return rc;
        }
        p->at = SP_AT_BLOCKS;
        block_index(p, p->nblocks);
        p->nblocks++;
    }
    p->have_blocks = true;
    mrimg_stream_info *si = p->si;
    si->ram_total = total;
    si->nblocks = p->nblocks;
    return p->h->on_blocks ? p->h->on_blocks(p->ctx, p->blocks, p->nblocks, err) : 0;
}

/* ---- RAM: records ----------------------------------------------------- */

static int inflate_page(sp_parser *p, const uint8_t *src, uint32_t len, uint64_t at,
                        mrimg_error *err)
{
    if (!p->page_buf) {
        p->page_buf = xmalloc(p->page_size, err);
        if (!p->page_buf)
            return MRIMG_ERR_NOMEM;
    }
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit(&z) != Z_OK)
        return err_set(err, MRIMG_ERR_NOMEM, MRIMG_OFF_NONE, 0, "zlib initialisation failed");
    z.next_in = (Bytef *)src;
    z.avail_in = len;
    z.next_out = p->page_buf;
    z.avail_out = (uInt)p->page_size;
    int zr = inflate(&z, Z_FINISH);
    uLong out = z.total_out;
    inflateEnd(&z);
    if (zr != Z_STREAM_END || out != p->page_size)
        return err_set(err, MRIMG_ERR_FORMAT, EAT(p, at),
                       "compressed page does not inflate to exactly one %llu-byte page",
                       (unsigned long long)p->page_size);
    return 0;
}

static void note_order(sp_parser *p, unsigned block, uint64_t page)
{
    mrimg_stream_info *si = p->si;
    if (p->ord_started &&
        (block < p->ord_block || (block == p->ord_block && page <= p->ord_page)))
        si->ordered = 0;
    p->ord_started = true;
    p->ord_block = block;
    p->ord_page = page;
}

static int parse_ram_body(sp_parser *p, mrimg_error *err)
{
    mrimg_stream_info *si = p->si;
    const uint64_t mask = p->page_size - 1;
    for (;;) {
        int rc = need(p, 8, "RAM record", err);
        if (rc < 0)
            return rc;
        uint64_t at = srd_pos(p->in);
        uint64_t word = get_be64(p);
        uint32_t flags = (uint32_t)(word & mask);
        uint64_t addr = word & ~mask;
        uint32_t kind = flags & ~(uint32_t)RAM_FLAG_CONTINUE;

        if (kind == RAM_FLAG_EOS)
            return 0;
        if (kind == RAM_FLAG_MULTIFD_FLUSH) {
            if (p->mapped)
                goto unexpected;
            continue;
        }
        if (kind == RAM_FLAG_MEM_SIZE) {
            rc = parse_mem_size(p, addr, at, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (kind != RAM_FLAG_ZERO && kind != RAM_FLAG_PAGE && kind != RAM_FLAG_COMPRESS_PAGE &&
            kind != RAM_FLAG_XBZRLE) {
            if (kind == RAM_FLAG_HOOK)
                return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, at),
                               "RAM hook record (RDMA migration) cannot appear in a file");
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, at),
                           "unknown combination of RAM record flags 0x%x (expected ZERO, PAGE, "
                           "MEM_SIZE, EOS, ...)",
                           flags);
        }
        if (p->mapped)
            goto unexpected;
        if (!p->have_blocks)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, at),
                           "RAM page record before the block list (MEM_SIZE)");
        int bi;
        if (flags & RAM_FLAG_CONTINUE) {
            bi = p->last_block;
            if (bi < 0)
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, at),
                               "RAM record continues a block but no block was named before");
        } else {
            char name[MRIMG_NAME_MAX + 1];
            uint8_t nl;
            rc = get_str8(p, name, &nl, "RAM block name", err);
            if (rc < 0)
                return rc;
            bi = block_find(p, name, nl);
            if (bi < 0)
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, at + 8),
                               "RAM record names block \"%s\", which is not in the block list",
                               name);
            p->last_block = bi;
        }
        sp_block *b = &p->blocks[bi];
        if (addr >= b->used_length)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, at),
                           "RAM record offset 0x%llx is beyond block \"%s\" (%llu bytes)",
                           (unsigned long long)addr, b->name, (unsigned long long)b->used_length);
        uint64_t page = addr / p->page_size;
        const uint8_t *data = NULL;
        if (kind == RAM_FLAG_ZERO) {
            rc = need(p, 1, "zero page fill byte", err);
            if (rc < 0)
                return rc;
            uint8_t fill = get_u8(p);
            if (fill != 0)
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, srd_pos(p->in) - 1),
                               "zero page record has fill value 0x%02x (expected 0)", fill);
            si->zero_records++;
        } else if (kind == RAM_FLAG_PAGE) {
            rc = need(p, (size_t)p->page_size, "RAM page", err);
            if (rc < 0)
                return rc;
            data = srd_ptr(p->in);
            srd_consume(p->in, (size_t)p->page_size);
            si->page_records++;
        } else if (kind == RAM_FLAG_COMPRESS_PAGE) {
            rc = need(p, 4, "compressed page length", err);
            if (rc < 0)
                return rc;
            uint32_t len = get_be32(p);
            if (len == 0 || len > compressBound((uLong)p->page_size))
                return err_set(err, MRIMG_ERR_FORMAT, EAT(p, srd_pos(p->in) - 4),
                               "compressed page length %u out of range (1..%lu)", len,
                               (unsigned long)compressBound((uLong)p->page_size));
            rc = need(p, len, "compressed page", err);
            if (rc < 0)
                return rc;
            rc = inflate_page(p, srd_ptr(p->in), len, at, err);
            if (rc < 0)
                return rc;
            srd_consume(p->in, len);
            data = p->page_buf;
            si->page_records++;
        } else {
            si->xbzrle_records++;
            return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, at),
                           "XBZRLE-encoded page (the stream was saved with the xbzrle "
                           "capability); not supported");
        }
        note_order(p, (unsigned)bi, page);
        if (p->h->on_page) {
            rc = p->h->on_page(p->ctx, (unsigned)bi, page, data, at, err);
            if (rc < 0)
                return rc;
        }
    }
unexpected:
    return err_set(err, MRIMG_ERR_FORMAT, EAT(p, srd_pos(p->in) - 8),
                   "page record in a mapped-ram stream (only the block list and EOS are "
                   "allowed there)");
}

/* ---- sections --------------------------------------------------------- */

static int parse_footer(sp_parser *p, sp_section *s, mrimg_error *err)
{
    int rc = srd_peek(p->in, 1, err);
    if (rc < 0)
        return rc;
    s->footer = false;
    if (rc && *srd_ptr(p->in) == QEMU_VM_SECTION_FOOTER) {
        rc = need(p, 5, "section footer", err);
        if (rc < 0)
            return rc;
        uint32_t id = rd_be32(srd_ptr(p->in) + 1);
        if (id != s->id)
            return err_set(err, MRIMG_ERR_FORMAT, E(p),
                           "section footer names section %u (expected %u, \"%s\")", id, s->id,
                           s->idstr);
        srd_consume(p->in, 5);
        s->footer = true;
        p->footers = true;
    }
    s->end = srd_pos(p->in);
    return p->h->on_section_end ? p->h->on_section_end(p->ctx, s, err) : 0;
}

static int parse_command(sp_parser *p, mrimg_error *err)
{
    mrimg_stream_info *si = p->si;
    sp_command c;
    p->at = SP_AT_COMMAND;
    c.start = srd_pos(p->in);
    int rc = need(p, 5, "command header", err);
    if (rc < 0)
        return rc;
    srd_consume(p->in, 1);
    c.cmd = get_be16(p);
    c.len = get_be16(p);
    rc = need(p, c.len, "command payload", err);
    if (rc < 0)
        return rc;
    c.data = srd_ptr(p->in);
    int fixed = -1;
    switch (c.cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_POSTCOPY_RUN:
    case MIG_CMD_ENABLE_COLO:
    case MIG_CMD_POSTCOPY_RESUME:
    case MIG_CMD_SWITCHOVER_START:
        fixed = 0;
        break;
    case MIG_CMD_PING:
    case MIG_CMD_PACKAGED:
        fixed = 4;
        break;
    case MIG_CMD_POSTCOPY_ADVISE:
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
    case MIG_CMD_RECV_BITMAP:
        break;
    default:
        return err_set(err, MRIMG_ERR_FORMAT, EAT(p, c.start),
                       "unknown command %u (expected 1..%d)", c.cmd, MIG_CMD_MAX);
    }
    if (fixed >= 0 && c.len != fixed)
        return err_set(err, MRIMG_ERR_FORMAT, EAT(p, c.start),
                       "command %u has length %u (expected %d)", c.cmd, c.len, fixed);
    switch (c.cmd) {
    case MIG_CMD_POSTCOPY_ADVISE:
        if (c.len != 0 && c.len != 16)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, c.start),
                           "postcopy advise command has length %u (expected 0 or 16)", c.len);
        p->postcopy = true;
        if (c.len == 16)
            p->postcopy_host_psize = rd_be64(c.data);
        break;
    case MIG_CMD_PACKAGED:
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_POSTCOPY_RUN:
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
    case MIG_CMD_ENABLE_COLO:
    case MIG_CMD_POSTCOPY_RESUME:
    case MIG_CMD_RECV_BITMAP:
        return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, c.start),
                       "command %u belongs to a running postcopy/COLO migration and cannot be "
                       "loaded from a file",
                       c.cmd);
    default:
        break;
    }
    si->commands++;
    si->cmd_counts[c.cmd < 16 ? c.cmd : 0]++;
    if (p->h->on_command) {
        rc = p->h->on_command(p->ctx, &c, err);
        if (rc < 0)
            return rc;
    }
    srd_consume(p->in, c.len);
    return 0;
}

static int parse_section(sp_parser *p, uint8_t type, bool *ram_end, mrimg_error *err)
{
    mrimg_stream_info *si = p->si;
    sp_section s;
    p->at = SP_AT_SECTION;
    memset(&s, 0, sizeof(s));
    s.type = type;
    s.start = srd_pos(p->in);
    int rc = need(p, 5, "section header", err);
    if (rc < 0)
        return rc;
    srd_consume(p->in, 1);
    s.id = get_be32(p);
    if (type == QEMU_VM_SECTION_START || type == QEMU_VM_SECTION_FULL) {
        rc = get_str8(p, s.idstr, NULL, "section name", err);
        if (rc < 0)
            return rc;
        rc = need(p, 8, "section instance and version", err);
        if (rc < 0)
            return rc;
        s.instance = get_be32(p);
        s.version = get_be32(p);
        s.is_ram = strcmp(s.idstr, "ram") == 0 && s.instance == 0;
        if (type == QEMU_VM_SECTION_START)
            si->sections_start++;
        else
            si->sections_full++;
        if (!s.is_ram)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, s.start),
                           "section \"%s\" (instance %u) appears before the end of RAM; an "
                           "iterable or early device section cannot be delimited without its "
                           "schema",
                           s.idstr, s.instance);
        if (type == QEMU_VM_SECTION_FULL)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, s.start),
                           "RAM sent as a FULL section (expected START, PART, END)");
        if (p->ram_seen)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, s.start), "second RAM START section");
        /* QEMU's RAM loader takes version 4 only (and its section loader
         * refuses any version above the handler's): not loadable */
        if (s.version != RAM_SECTION_VERSION)
            return err_set(err, MRIMG_ERR_FORMAT, EAT(p, s.start + 1),
                           "RAM section version %u: QEMU loads only version %d (it would fail "
                           "with \"unsupported version\")",
                           s.version, RAM_SECTION_VERSION);
        p->ram_seen = true;
        p->ram_id = s.id;
        si->ram_section_id = s.id;
    } else {
        if (type == QEMU_VM_SECTION_PART)
            si->sections_part++;
        else
            si->sections_end++;
        if (!p->ram_seen || s.id != p->ram_id)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, s.start),
                           "%s section %u is not the RAM section (%s); other iterable devices "
                           "before the end of RAM are not supported",
                           type == QEMU_VM_SECTION_PART ? "PART" : "END", s.id,
                           p->ram_seen ? "which has a different id" : "none started yet");
        strcpy(s.idstr, "ram");
        s.is_ram = true;
        s.version = RAM_SECTION_VERSION;
    }
    si->ram_sections++;
    if (p->h->on_section) {
        rc = p->h->on_section(p->ctx, &s, err);
        if (rc < 0)
            return rc;
    }
    p->at = SP_AT_RAM;
    rc = parse_ram_body(p, err);
    if (rc < 0)
        return rc;
    if (!p->have_blocks)
        return err_set(err, MRIMG_ERR_FORMAT, E(p), "RAM section ends without a block list");
    p->at = SP_AT_FOOTER;
    rc = parse_footer(p, &s, err);
    if (rc < 0)
        return rc;
    *ram_end = type == QEMU_VM_SECTION_END;
    return 0;
}

/* ---- tail ------------------------------------------------------------- */

/* The end of the stream is found from its own structure, reading forward
 * from the end of RAM: the first EOF record followed by a VMDESCRIPTION
 * whose JSON is complete, valid, and explains the device state before it
 * (sp_walk_devices) ends the stream.  Nothing after that end is read as
 * part of the stream: trailing bytes are counted (holes skipped, data
 * checked up to SP_TRAIL_CHECK) and never become device state.  Without a
 * VMDESCRIPTION (suppress-vmdesc) the EOF record must follow the footer of
 * a device section.  At most SP_TAIL_MAX bytes are read after the RAM
 * END (docs/limits.md). */

static const char *off_name(const sp_parser *p)
{
    return srd_okind(p->in) == MRIMG_OFF_FILE ? "file offset" : "stream offset";
}

static int tail_grow(sp_parser *p, size_t want, mrimg_error *err)
{
    return vec_reserve(p->tail, p->tail_cap, want, 1u << 20, SP_TAIL_MAX) ? 0 : err_nomem(err);
}

typedef struct walk_note {
    char *out;
    size_t cap;
    bool set;
} walk_note;

static void first_problem(void *ctx, uint64_t off, const char *msg)
{
    walk_note *n = ctx;
    if (n->set)
        return;
    n->set = true;
    snprintf(n->out, n->cap, "at stream offset %llu, %s", (unsigned long long)off, msg);
}

/* Examine the EOF + VMDESCRIPTION candidate at tail[c].  Returns 1 when it
 * ends the stream (JSON valid, device walk complete or impossible), 0
 * otherwise (the reason is kept for the first rejected candidate). */
static int tail_try(sp_parser *p, size_t c, size_t L)
{
    mrimg_stream_info *si = p->si;
    const char *json = (const char *)p->tail + c + 6;
    if (json[L - 1] != '}')
        return 0;
    if (++p->tail_tries > SP_TAIL_CANDIDATES)
        return 0;
    vj_doc doc;
    size_t where;
    char msg[128];
    if (vj_parse(json, L, &doc, &where, msg, sizeof(msg)) < 0) {
        if (!p->tail_bad_set) {
            p->tail_bad_set = true;
            p->tail_bad_eof = c;
            p->tail_bad_len = L;
            snprintf(p->tail_note, sizeof(p->tail_note),
                     "the VMDESCRIPTION after the EOF record at %s %llu is not valid JSON: %s "
                     "(at byte %zu of %zu)",
                     off_name(p), (unsigned long long)srd_eoff(p->in, p->tail_start + c), msg,
                     where, L);
        }
        return 0;
    }
    sp_devwalk dw;
    char note[400];
    walk_note wn = {note, sizeof(note), false};
    sp_walk_devices(&doc, p->tail, c, p->tail_start, first_problem, &wn, &dw);
    vj_free(&doc);
    if (!dw.complete && !dw.skipped) {
        if (!p->tail_bad_set) {
            p->tail_bad_set = true;
            p->tail_bad_eof = c;
            p->tail_bad_len = L;
            snprintf(p->tail_note, sizeof(p->tail_note),
                     "the device state does not match the VMDESCRIPTION after it: %s",
                     wn.set ? note : "the walk failed");
        }
        return 0;
    }
    si->has_eof = 1;
    si->eof_offset = p->tail_start + c;
    si->has_vmdesc = 1;
    si->vmdesc_offset = p->tail_start + c + 6;
    si->vmdesc_size = L;
    si->devices_walked = dw.complete;
    si->device_sections = dw.complete ? dw.sections : 0;
    if (dw.skipped)
        snprintf(p->tail_note, sizeof(p->tail_note),
                 "the device state was not checked against the VMDESCRIPTION: %s", dw.note);
    p->tail_end = c + 6 + L;
    return 1;
}

/* Can t[from, n) be part of a JSON text?  JSON has no control bytes
 * outside whitespace, not even inside strings (a zero byte is one: the
 * EOF record of the real stream end is one too). */
static bool json_text(const uint8_t *t, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++)
        if (t[i] < 0x20 && t[i] != '\t' && t[i] != '\n' && t[i] != '\r')
            return false;
    return true;
}

/* Look for candidates in tail[p->tail_scan, tail_len).  final: no more
 * bytes will come (an incomplete JSON is a cut one).  Returns 1 when the
 * end is found. */
static int tail_scan(sp_parser *p, bool final)
{
    const uint8_t *t = p->tail;
    size_t n = p->tail_len;
    for (size_t c = p->tail_scan; c + 7 <= n; c++) {
        if (t[c] != QEMU_VM_EOF || t[c + 1] != QEMU_VM_VMDESCRIPTION || t[c + 6] != '{') {
            p->tail_scan = c + 1;
            continue;
        }
        uint32_t L = rd_be32(t + c + 2);
        if (L >= 2 && L <= SP_VMDESC_MAX && (uint64_t)c + 6 + L > n) {
            /* a description that runs past the bytes here: it is one only
             * if those bytes are JSON text (a look-alike in binary device
             * state is not, and must not end the stream where a conversion
             * that drops a cut description would then end it) */
            if (!json_text(t, MRIMG_MAX(p->tail_text, c + 6), n)) {
                p->tail_scan = c + 1;
                continue;
            }
            p->tail_text = n;
            if (!final) /* decide this one first, when its JSON is here */
                return 0;
            if (!p->tail_cut_set) {
                p->tail_cut_set = true;
                p->tail_cut_eof = c;
                p->tail_cut_len = L;
            }
        } else if (L >= 2 && L <= SP_VMDESC_MAX && tail_try(p, c, L)) {
            return 1;
        }
        p->tail_scan = c + 1;
    }
    return 0;
}

/* Is section header "04 <id> str8 <instance> <version>" at t[h] (< lim)? */
static bool full_header_at(const uint8_t *t, size_t h, size_t lim)
{
    if (h + 6 > lim || t[h] != QEMU_VM_SECTION_FULL)
        return false;
    size_t nl = t[h + 5];
    if (nl == 0 || h + 6 + nl + 8 > lim)
        return false;
    return printable_name((const char *)t + h + 6, nl);
}

/* Does an EOF record at tail[e] close the device state soundly: directly
 * after the RAM END (no device section), or (with footers) directly after
 * the footer of a device section whose header is in tail[0, e)? */
static bool eof_closes_devices(const sp_parser *p, size_t e)
{
    const uint8_t *t = p->tail;
    if (e == 0)
        return true;
    if (!p->footers || e < 5 || e > p->tail_len || t[e - 5] != QEMU_VM_SECTION_FOOTER)
        return false;
    uint32_t id = rd_be32(t + e - 4);
    for (size_t h = 0; h + 6 <= e - 5; h++)
        if (full_header_at(t, h, e - 5) && rd_be32(t + h + 1) == id)
            return true;
    return false;
}

/* No VMDESCRIPTION: the EOF record right after the last non-zero byte,
 * which (with footers) must close a device section seen in the tail.
 * total: bytes of the tail, window plus zero bytes known beyond it. */
static bool tail_no_desc(sp_parser *p, uint64_t total, size_t *eof)
{
    const uint8_t *t = p->tail;
    size_t n = p->tail_len, z = n;
    while (z > 0 && t[z - 1] == 0)
        z--;
    if (z == 0) {
        /* no device section at all: the EOF record comes first */
        *eof = 0;
        return total > 0;
    }
    for (size_t e = z; e < z + 5 && e < total; e++) {
        if (!p->footers) {
            *eof = e;
            return true;
        }
        if (e < 5 || e > n || t[e - 5] != QEMU_VM_SECTION_FOOTER)
            continue;
        uint32_t id = rd_be32(t + e - 4);
        for (size_t h = 0; h + 6 <= e - 5; h++) {
            if (full_header_at(t, h, e - 5) && rd_be32(t + h + 1) == id) {
                *eof = e;
                return true;
            }
        }
    }
    return false;
}

/* The last device section header in tail[0, lim): its position, or -1. */
static ptrdiff_t last_full_header(const uint8_t *t, size_t lim)
{
    ptrdiff_t last = -1;
    for (size_t h = 0; h + 6 <= lim; h++)
        if (full_header_at(t, h, lim))
            last = (ptrdiff_t)h;
    return last;
}

/* Trailing bytes after the stream in a raw payload: count them from the
 * file size; check that they are zero by skipping holes and reading at
 * most SP_TRAIL_CHECK bytes of data extents. */
static int trailing_raw(sp_parser *p, uint64_t from, mrimg_error *err)
{
    srd *in = p->in;
    mrimg_stream_info *si = p->si;
    uint64_t end = in->limit;
    si->trailing_bytes = end > from ? end - from : 0;
    si->trailing_zero = 1;
    uint64_t checked = 0;
    enum { TBUF = 1u << 20 };
    uint8_t *buf = NULL;
    int rc = 0;
    uint64_t at = from;
    while (at < end && rc == 0) {
        uint64_t d, de;
        rc = src_next_data(in->src, in->base + at, &d, &de, err);
        if (rc < 0)
            break;
        if (d >= in->src->size || d - in->base >= end)
            break;
        at = d - in->base;
        uint64_t run = MRIMG_MIN(de - in->base, end) - at;
        if (!buf && !(buf = xmalloc(TBUF, err))) {
            rc = MRIMG_ERR_NOMEM;
            break;
        }
        while (run) {
            if (checked >= SP_TRAIL_CHECK) {
                si->trailing_zero = 0; /* not known */
                p->trailing_unchecked = true;
                free(buf);
                return 0;
            }
            size_t k = (size_t)MRIMG_MIN((uint64_t)TBUF, run);
            ssize_t got = src_pread_some(in->src, buf, k, in->base + at, err);
            if (got <= 0) {
                rc = (int)got;
                break;
            }
            if (!mem_is_zero(buf, (size_t)got)) {
                si->trailing_zero = 0;
                free(buf);
                return 0;
            }
            at += (uint64_t)got;
            run -= (uint64_t)got;
            checked += (uint64_t)got;
        }
        if (run)
            break;
    }
    free(buf);
    return rc;
}

/* Trailing decoded bytes of a compressed payload: drained to the end (the
 * codec's checks need the whole payload), counted, checked for zeros. */
static int trailing_dec(sp_parser *p, mrimg_error *err)
{
    srd *in = p->in;
    mrimg_stream_info *si = p->si;
    for (;;) {
        size_t n = srd_avail(in);
        if (n) {
            si->trailing_bytes += n;
            if (si->trailing_zero && !mem_is_zero(srd_ptr(in), n))
                si->trailing_zero = 0;
            srd_consume(in, n);
        }
        int rc = srd_peek(in, 1, err);
        if (rc <= 0)
            return rc;
    }
}

/* Read the tail and find the end of the stream. */
static int parse_tail(sp_parser *p, mrimg_error *err)
{
    srd *in = p->in;
    mrimg_stream_info *si = p->si;
    p->tail_start = si->ram_end;
    p->tail_len = p->tail_scan = p->tail_text = 0;
    p->tail_end = 0;
    uint64_t holes = 0;      /* zero bytes known beyond the window (a hole to EOF) */
    size_t consumed = 0;     /* window bytes consumed from the reader */
    bool bound = false, found = false;
    for (;;) {
        if (srd_avail(in) == 0) {
            if (srd_seekable(in)) {
                uint64_t d, de, at = in->base + srd_pos(in);
                int rc = src_next_data(in->src, at, &d, &de, err);
                if (rc < 0)
                    return rc;
                if (d >= in->src->size && at < in->src->size) {
                    holes = in->src->size - at; /* only a hole follows */
                    break;
                }
            }
            int rc = srd_peek(in, 1, err);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
        }
        size_t n = MRIMG_MIN(srd_avail(in), (size_t)SP_TAIL_MAX - p->tail_len);
        if (n == 0) {
            bound = true;
            break;
        }
        int rc = tail_grow(p, p->tail_len + n, err);
        if (rc < 0)
            return rc;
        memcpy(p->tail + p->tail_len, srd_ptr(in), n);
        size_t before = p->tail_len;
        p->tail_len += n;
        if (tail_scan(p, false)) {
            /* stop reading at the end (a crafted candidate may end before
             * this piece: then the reader is already past it) */
            if (p->tail_end > before)
                srd_consume(in, p->tail_end - before);
            consumed = MRIMG_MAX(p->tail_end, before);
            found = true;
            break;
        }
        srd_consume(in, n);
        consumed = p->tail_len;
    }
    if (!found && !bound)
        found = tail_scan(p, true);
    if (!found && p->tail_tries > SP_TAIL_CANDIDATES)
        return err_set(err, MRIMG_ERR_LIMIT, EAT(p, p->tail_start),
                       "more than %u EOF + VMDESCRIPTION look-alikes in the device state: the "
                       "end of the stream is not searched further",
                       SP_TAIL_CANDIDATES);
    if (found) {
        uint64_t end = p->tail_start + p->tail_end;
        si->stream_size = end;
        if (srd_seekable(in))
            return trailing_raw(p, end, err);
        /* decoded bytes already consumed past the end, then the rest */
        si->trailing_bytes = consumed - p->tail_end;
        si->trailing_zero = mem_is_zero(p->tail + p->tail_end, consumed - p->tail_end);
        return trailing_dec(p, err);
    }
    uint64_t at_end = p->tail_start + p->tail_len;
    if (bound)
        return err_set(err, MRIMG_ERR_LIMIT, EAT(p, at_end),
                       "no EOF record with a VMDESCRIPTION that explains the device state within "
                       "the %u MiB after the end of RAM (stream offset %llu): the end of the "
                       "stream cannot be found",
                       SP_TAIL_MAX >> 20, (unsigned long long)p->tail_start);
    if (p->tail_bad_set) {
        /* a description that does not explain the bytes before it */
        si->has_eof = 1;
        si->eof_offset = p->tail_start + p->tail_bad_eof;
        si->has_vmdesc = 1;
        si->vmdesc_offset = si->eof_offset + 6;
        si->vmdesc_size = p->tail_bad_len;
        si->stream_size = si->vmdesc_offset + p->tail_bad_len;
        return err_set(err, MRIMG_ERR_FORMAT, EAT(p, si->eof_offset), "%s", p->tail_note);
    }
    if (p->tail_cut_set && holes == 0 && eof_closes_devices(p, p->tail_cut_eof)) {
        /* the VMDESCRIPTION is cut by the end of the file/payload, but the
         * device state before it ends soundly: QEMU loads it and reads the
         * cut description without noticing.  The stream ends at the EOF
         * record; the partial description is counted as trailing bytes
         * (a conversion leaves it out), the verifier names it (vmdesc_cut). */
        size_t e = p->tail_cut_eof;
        si->has_eof = 1;
        si->eof_offset = p->tail_start + e;
        si->has_vmdesc = 0;
        si->stream_size = si->eof_offset + 1;
        p->vmdesc_cut = true;
        snprintf(p->tail_note, sizeof(p->tail_note),
                 "the VMDESCRIPTION after the EOF record at %s %llu is cut by the end of the "
                 "%s: it announces %llu bytes of JSON, %llu are present; QEMU loads the "
                 "device state without reading it, but the device state could not be checked "
                 "against its description, and a conversion leaves the partial description out",
                 off_name(p), (unsigned long long)srd_eoff(p->in, si->eof_offset),
                 srd_seekable(in) ? "file" : "payload", (unsigned long long)p->tail_cut_len,
                 (unsigned long long)(at_end - (si->eof_offset + 6)));
        if (srd_seekable(in)) {
            si->trailing_zero = 1;
            return trailing_raw(p, si->stream_size, err);
        }
        si->trailing_bytes = p->tail_len - (e + 1);
        si->trailing_zero = mem_is_zero(p->tail + e + 1, si->trailing_bytes);
        return trailing_dec(p, err);
    }
    if (p->tail_cut_set) {
        uint64_t j = p->tail_start + p->tail_cut_eof + 6;
        si->stream_size = at_end;
        return err_set(err, MRIMG_ERR_TRUNCATED, EAT(p, at_end),
                       "the stream ends inside its VMDESCRIPTION: the JSON at %s %llu announces "
                       "%llu bytes, %llu are present (the file is truncated)",
                       off_name(p), (unsigned long long)srd_eoff(p->in, j),
                       (unsigned long long)p->tail_cut_len, (unsigned long long)(at_end - j));
    }
    size_t eof;
    if (tail_no_desc(p, p->tail_len + holes, &eof)) {
        si->has_eof = 1;
        si->eof_offset = p->tail_start + eof;
        si->has_vmdesc = 0;
        si->stream_size = si->eof_offset + 1;
        snprintf(p->tail_note, sizeof(p->tail_note),
                 "the stream has no VMDESCRIPTION after its EOF record (QEMU's suppress-vmdesc): "
                 "the device state could not be delimited or checked");
        si->trailing_zero = 1;
        if (srd_seekable(in))
            return trailing_raw(p, si->stream_size, err);
        si->trailing_bytes = p->tail_len - (eof + 1);
        return trailing_dec(p, err);
    }
    /* cut inside the device state */
    si->has_eof = 0;
    si->stream_size = at_end;
    ptrdiff_t h = last_full_header(p->tail, p->tail_len);
    char last[MRIMG_NAME_MAX + 120] = "no device section header was found in it";
    if (h >= 0) {
        size_t nl = p->tail[h + 5];
        snprintf(last, sizeof(last),
                 "the last device section that starts, \"%.*s\" (section %u, at %s %llu), has "
                 "%llu bytes and no end",
                 (int)nl, (const char *)p->tail + h + 6, rd_be32(p->tail + h + 1), off_name(p),
                 (unsigned long long)srd_eoff(p->in, p->tail_start + (uint64_t)h),
                 (unsigned long long)(p->tail_len - (size_t)h));
    }
    return err_set(err, MRIMG_ERR_TRUNCATED, EAT(p, at_end),
                   "the stream ends inside the device state, %llu bytes after the end of RAM: "
                   "no EOF record with a VMDESCRIPTION follows, and %s (how many bytes are "
                   "missing was in the lost description)",
                   (unsigned long long)p->tail_len, last);
}

/* ---- top level -------------------------------------------------------- */

int sp_parse_head(sp_parser *p, mrimg_error *err)
{
    mrimg_stream_info *si = p->si;
    si->ordered = 1;
    si->stream_offset = srd_eoff(p->in, 0);
    int rc = need(p, 8, "QEMU stream header", err);
    if (rc < 0)
        return rc;
    const uint8_t *h = srd_ptr(p->in);
    if (rd_be32(h) != QEMU_FILE_MAGIC) {
        char hex[32];
        hex_bytes(hex, h, 4, 4);
        return err_set(err, MRIMG_ERR_FORMAT, E(p),
                       "expected the QEMU stream magic \"QEVM\" (51 45 56 4d), found %s", hex);
    }
    si->stream_version = rd_be32(h + 4);
    if (si->stream_version != QEMU_FILE_VERSION)
        return err_set(err, MRIMG_ERR_UNSUPPORTED, EAT(p, 4),
                       "QEMU stream version %u (expected 3%s)", si->stream_version,
                       si->stream_version == 2 ? "; version 2 is obsolete" : "");
    srd_consume(p->in, 8);
    si->target_page_size = p->page_size;

    rc = need(p, 1, "first record", err);
    if (rc < 0)
        return rc;
    if (*srd_ptr(p->in) == QEMU_VM_CONFIGURATION) {
        rc = parse_config(p, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sp_parse(sp_parser *p, mrimg_error *err)
{
    int rc = sp_parse_head(p, err);
    if (rc < 0)
        return rc;
    mrimg_stream_info *si = p->si;
    bool done = false;
    while (!done) {
        p->at = SP_AT_RECORD;
        rc = need(p, 1, "next record (section, command or EOF)", err);
        if (rc < 0)
            return rc;
        uint8_t t = *srd_ptr(p->in);
        switch (t) {
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
        case QEMU_VM_SECTION_FULL:
            rc = parse_section(p, t, &done, err);
            break;
        case QEMU_VM_COMMAND:
            rc = parse_command(p, err);
            break;
        case QEMU_VM_EOF:
            return err_set(err, MRIMG_ERR_FORMAT, E(p),
                           "EOF record before the RAM section ended (%s)",
                           p->ram_seen ? "no RAM END section" : "no RAM section at all");
        case QEMU_VM_CONFIGURATION:
            return err_set(err, MRIMG_ERR_FORMAT, E(p),
                           "configuration section in the middle of the stream");
        default:
            return err_set(err, MRIMG_ERR_FORMAT, E(p),
                           "unexpected record type 0x%02x (expected a section, a command or EOF)",
                           t);
        }
        if (rc < 0)
            return rc;
    }
    si->ram_end = srd_pos(p->in);
    if (p->h->on_tail_start) {
        rc = p->h->on_tail_start(p->ctx, si->ram_end, err);
        if (rc < 0)
            return rc;
    }
    p->at = SP_AT_TAIL;
    /* the tail is delivered to the tap and to on_tail once its end is
     * known, so that nothing after the end is copied */
    rc = srd_flush_tap(p->in, err);
    if (rc < 0)
        return rc;
    srd_tap_fn tap = p->in->tap;
    p->in->tap = NULL;
    rc = parse_tail(p, err);
    p->in->tap = tap;
    p->in->tapped = p->in->r;
    si->tail_size = si->stream_size >= si->ram_end ? si->stream_size - si->ram_end : 0;
    if (rc < 0)
        return rc;
    size_t len = (size_t)si->tail_size;
    if (tap && len) {
        rc = tap(p->in->tap_ctx, p->tail, len, err);
        if (rc < 0)
            return rc;
    }
    if (p->h->on_tail && len) {
        rc = p->h->on_tail(p->ctx, p->tail, len, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
