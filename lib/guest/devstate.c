/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the saved device state says about the guest-physical memory map.
 *
 * The device state (the stream after the RAM END section) is delimited
 * with the VMDESCRIPTION JSON that QEMU writes after it
 * (stream/devices.c).  Every PCI device's state holds a "PCIDevice" VMSD
 * whose "config" field is the device's configuration space as the guest
 * left it: the command register (memory decoding), the BARs the firmware
 * or the OS programmed, the expansion ROM BAR, and for the host bridges the
 * PAM registers that decide what backs 0xc0000-0xfffff.  A device with a
 * "vga" VMSD decodes the legacy VGA window 0xa0000-0xbffff.
 *
 * The tail is the one the image kept from the pass that parsed its stream
 * (img_tail): never read a second time. */
#include <stdio.h>
#include <stdlib.h>

#include "../stream/vmdesc.h"
#include "guest.h"

/* ---- the tail, kept by the image ------------------------------------------ */

bool guest_tail_complete(const guest_tail *t, const mrimg_stream_info *si)
{
    return t->started && !t->overflow && t->start == si->ram_end &&
           t->len >= si->stream_size - si->ram_end;
}

int guest_tail_get(guest_tail *t, mrimg_image *img, mrimg_error *err)
{
    memset(t, 0, sizeof(*t));
    int rc = mrimg_scan(img, 0, NULL, NULL, err);
    if (rc < 0)
        return rc;
    const mrimg_stream_info *si = &img->si;
    if (si->stream_size < si->ram_end || si->stream_size - si->ram_end > GUEST_TAIL_MAX) {
        t->overflow = true;
        return 0;
    }
    rc = img_tail(img, err);
    if (rc < 0)
        return rc;
    t->buf = img->tail;
    t->len = img->tail_len;
    t->start = img->tail_start;
    t->started = true;
    t->overflow = false;
    return 0;
}

/* ---- decoding it -------------------------------------------------------- */

typedef struct dv {
    guest_devinfo *di;
    bool nomem;
} dv;

static void visit(void *ctx, const char *dev, const char *vmsd, const char *field,
                  const uint8_t *p, size_t n)
{
    dv *v = ctx;
    guest_devinfo *di = v->di;
    if (!strcmp(vmsd, "vga")) {
        char path[MRIMG_NAME_MAX + 1];
        snprintf(path, sizeof(path), "%s", dev);
        char *slash = strrchr(path, '/');
        if (slash)
            *slash = '\0';
        if (!di->has_vga)
            memcpy(di->vga_path, path, sizeof(path));
        di->has_vga = true;
        if (strcmp(path, di->vga_path) != 0)
            return; /* only the first VGA's registers */
        /* VGACommonState fields (hw/display/vga.c), big-endian in the stream */
        if (!strcmp(field, "sr") && n == sizeof(di->vga_sr)) {
            memcpy(di->vga_sr, p, n);
            di->vga_seen |= 1;
        } else if (!strcmp(field, "gr") && n == sizeof(di->vga_gr)) {
            memcpy(di->vga_gr, p, n);
            di->vga_seen |= 2;
        } else if (!strcmp(field, "bank_offset") && n == 4) {
            di->vga_bank_offset = (int32_t)rd_be32(p);
            di->vga_seen |= 4;
        } else if (!strcmp(field, "vbe_regs") && n == 2 * MRIMG_ARRAY_SIZE(di->vga_vbe)) {
            for (size_t k = 0; k < MRIMG_ARRAY_SIZE(di->vga_vbe); k++)
                di->vga_vbe[k] = rd_be16(p + 2 * k);
            di->vga_seen |= 8;
        }
        return;
    }
    if (strcmp(vmsd, "PCIDevice") != 0 || strncmp(field, "config", 6) != 0 || n < 64)
        return;
    if (di->npci >= GUEST_MAX_PCI)
        return;
    if (!di->pci) {
        di->pci = calloc(GUEST_MAX_PCI, sizeof(*di->pci));
        if (!di->pci) {
            v->nomem = true;
            return;
        }
    }
    guest_pci *g = &di->pci[di->npci++];
    snprintf(g->name, sizeof(g->name), "%s", dev);
    snprintf(g->path, sizeof(g->path), "%s", dev);
    char *slash = strrchr(g->path, '/');
    if (slash)
        *slash = '\0';
    memset(g->config, 0, sizeof(g->config));
    memcpy(g->config, p, MRIMG_MIN(n, sizeof(g->config)));
}

int guest_devinfo_parse_tail(const mrimg_stream_info *si, const guest_tail *t,
                             guest_devinfo *di, mrimg_error *err)
{
    memset(di, 0, sizeof(*di));
    if (!guest_tail_complete(t, si)) {
        snprintf(di->why, sizeof(di->why), "the device state was not read (larger than %u MiB "
                 "or not reached)", GUEST_TAIL_MAX >> 20);
        return 0;
    }
    if (!si->has_eof || !si->has_vmdesc || si->eof_offset < si->ram_end ||
        si->vmdesc_offset < si->ram_end ||
        si->vmdesc_offset + si->vmdesc_size > si->ram_end + t->len) {
        snprintf(di->why, sizeof(di->why),
                 "the stream has no VMDESCRIPTION to delimit the device state with");
        return 0;
    }
    vj_doc doc;
    size_t where;
    char msg[128];
    if (vj_parse((const char *)t->buf + (si->vmdesc_offset - si->ram_end),
                 (size_t)si->vmdesc_size, &doc, &where, msg, sizeof(msg)) < 0) {
        snprintf(di->why, sizeof(di->why), "the VMDESCRIPTION JSON is not valid at byte %zu: %s",
                 where, msg);
        return 0;
    }
    dv v = {di, false};
    sp_devwalk w;
    sp_walk_device_fields(&doc, t->buf, (size_t)(si->eof_offset - si->ram_end), si->ram_end,
                          NULL, NULL, visit, &v, &w);
    vj_free(&doc);
    if (v.nomem) {
        guest_devinfo_free(di);
        return err_nomem(err);
    }
    if (!w.complete) {
        di->npci = 0;
        di->has_vga = false;
        snprintf(di->why, sizeof(di->why), "the device state could not be walked with its "
                 "description%s%.190s", w.note[0] ? ": " : "", w.note);
        return 0;
    }
    di->decoded = true;
    return 0;
}

void guest_devinfo_free(guest_devinfo *di)
{
    free(di->pci);
    di->pci = NULL;
    di->npci = 0;
}
