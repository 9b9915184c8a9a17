/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "writer.h"

void sw_init(sw *w, sw_out_fn out, void *ctx)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->ctx = ctx;
    w->last_block = -1;
}

int sw_bytes(sw *w, const void *p, size_t n, mrimg_error *err)
{
    if (n == 0)
        return 0;
    int rc = w->out(w->ctx, p, n, err);
    if (rc == 0)
        w->pos += n;
    return rc;
}

static int put_u8(sw *w, uint8_t v, mrimg_error *err) { return sw_bytes(w, &v, 1, err); }
static int put_be32(sw *w, uint32_t v, mrimg_error *err)
{
    uint8_t b[4];
    wr_be32(b, v);
    return sw_bytes(w, b, 4, err);
}
static int put_be64(sw *w, uint64_t v, mrimg_error *err)
{
    uint8_t b[8];
    wr_be64(b, v);
    return sw_bytes(w, b, 8, err);
}
static int put_str8(sw *w, const char *s, mrimg_error *err)
{
    size_t n = strlen(s);
    if (n > 255)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "name longer than 255 bytes");
    uint8_t b[256];
    b[0] = (uint8_t)n;
    memcpy(b + 1, s, n);
    return sw_bytes(w, b, n + 1, err);
}

int sw_header(sw *w, mrimg_error *err)
{
    uint8_t h[8];
    wr_be32(h, QEMU_FILE_MAGIC);
    wr_be32(h + 4, QEMU_FILE_VERSION);
    return sw_bytes(w, h, 8, err);
}

static int subsection(sw *w, const char *name, mrimg_error *err)
{
    int rc = put_u8(w, QEMU_VM_SUBSECTION, err);
    if (rc == 0)
        rc = put_str8(w, name, err);
    if (rc == 0)
        rc = put_be32(w, 1, err);
    return rc;
}

int sw_config(sw *w, const sp_config *c, int mapped, mrimg_error *err)
{
    /* the capability list to write, in the stream's order; QEMU lists
     * capabilities in its enum order, where x-ignore-shared precedes
     * mapped-ram, so mapped-ram is appended last */
    const char *caps[MRIMG_MAX_CAPS + 1];
    unsigned n = 0;
    bool has_mapped = false;
    for (unsigned i = 0; i < c->ncaps; i++) {
        if (!strcmp(c->caps[i], CAP_MAPPED_RAM)) {
            has_mapped = true;
            if (mapped == 0)
                continue;
        }
        caps[n++] = c->caps[i];
    }
    if (mapped == 1 && !has_mapped)
        caps[n++] = CAP_MAPPED_RAM;

    size_t ml = strlen(c->machine);
    int rc = put_u8(w, QEMU_VM_CONFIGURATION, err);
    if (rc == 0)
        rc = put_be32(w, (uint32_t)ml, err);
    if (rc == 0)
        rc = sw_bytes(w, c->machine, ml, err);
    if (rc == 0 && c->has_page_bits) {
        rc = subsection(w, "configuration/target-page-bits", err);
        if (rc == 0)
            rc = put_be32(w, c->page_bits, err);
    }
    if (rc == 0 && n > 0) {
        rc = subsection(w, "configuration/capabilities", err);
        if (rc == 0)
            rc = put_be32(w, n, err);
        for (unsigned i = 0; rc == 0 && i < n; i++)
            rc = put_str8(w, caps[i], err);
    }
    if (rc == 0 && c->has_uuid) {
        rc = subsection(w, "configuration/uuid", err);
        if (rc == 0)
            rc = sw_bytes(w, c->uuid, 16, err);
    }
    return rc;
}

int sw_section_start(sw *w, const sp_section *s, mrimg_error *err)
{
    int rc = put_u8(w, s->type, err);
    if (rc == 0)
        rc = put_be32(w, s->id, err);
    if (rc == 0)
        rc = put_str8(w, s->idstr, err);
    if (rc == 0)
        rc = put_be32(w, s->instance, err);
    if (rc == 0)
        rc = put_be32(w, s->version, err);
    return rc;
}

int sw_section_short(sw *w, uint8_t type, uint32_t id, mrimg_error *err)
{
    int rc = put_u8(w, type, err);
    return rc ? rc : put_be32(w, id, err);
}

int sw_footer(sw *w, uint32_t id, mrimg_error *err)
{
    return sw_section_short(w, QEMU_VM_SECTION_FOOTER, id, err);
}

int sw_eos(sw *w, mrimg_error *err) { return put_be64(w, RAM_FLAG_EOS, err); }

int sw_command(sw *w, const sp_command *c, mrimg_error *err)
{
    uint8_t h[5] = {QEMU_VM_COMMAND};
    wr_be16(h + 1, c->cmd);
    wr_be16(h + 3, c->len);
    int rc = sw_bytes(w, h, 5, err);
    return rc ? rc : sw_bytes(w, c->data, c->len, err);
}

int sw_mem_size(sw *w, uint64_t total, mrimg_error *err)
{
    return put_be64(w, total | RAM_FLAG_MEM_SIZE, err);
}

int sw_block(sw *w, const sp_block *b, mrimg_error *err)
{
    int rc = put_str8(w, b->name, err);
    if (rc == 0)
        rc = put_be64(w, b->used_length, err);
    if (rc == 0 && b->has_psize)
        rc = put_be64(w, b->psize, err);
    if (rc == 0 && b->has_mr_addr)
        rc = put_be64(w, b->mr_addr, err);
    return rc;
}

int sw_mapped_header(sw *w, uint64_t page_size, uint64_t bitmap_offset, uint64_t pages_offset,
                     mrimg_error *err)
{
    uint8_t h[MAPPED_RAM_HDR_SIZE];
    wr_be32(h, MAPPED_RAM_VERSION);
    wr_be64(h + 4, page_size);
    wr_be64(h + 12, bitmap_offset);
    wr_be64(h + 20, pages_offset);
    return sw_bytes(w, h, sizeof(h), err);
}

int sw_page(sw *w, int bi, const sp_block *b, uint64_t page, uint64_t page_size,
            const uint8_t *data, mrimg_error *err)
{
    uint8_t h[8 + 256 + 1];
    size_t n = 8;
    uint64_t word = page * page_size | (data ? RAM_FLAG_PAGE : RAM_FLAG_ZERO);
    if (bi == w->last_block) {
        word |= RAM_FLAG_CONTINUE;
    } else {
        h[8] = b->name_len;
        memcpy(h + 9, b->name, b->name_len);
        n += 1u + b->name_len;
        w->last_block = bi;
    }
    wr_be64(h, word);
    if (!data)
        h[n++] = 0;
    int rc = sw_bytes(w, h, n, err);
    if (rc == 0 && data)
        rc = sw_bytes(w, data, (size_t)page_size, err);
    return rc;
}
