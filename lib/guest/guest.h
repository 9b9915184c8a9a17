/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest inside an image: where its RAM blocks lie in guest-physical
 * address space (memmap.c), what its devices' saved state says about that
 * (devstate.c).  The vCPUs and the notes of an ELF core are in cpu.h. */
#ifndef MRIMG_GUEST_H
#define MRIMG_GUEST_H

#include "../image.h"

/* ---- device state ----------------------------------------------------- */

#define GUEST_MAX_PCI 1024

/* The saved configuration space of one PCI device (first 256 bytes). */
typedef struct guest_pci {
    char path[MRIMG_NAME_MAX + 1];   /* idstr before its last '/', e.g. "0000:00:02.0" */
    char name[MRIMG_NAME_MAX + 1];   /* the whole section idstr, "0000:00:02.0/vga" */
    uint8_t config[256];
} guest_pci;

/* What the memory map needs from the device state. */
typedef struct guest_devinfo {
    bool decoded;            /* the device state was walked to its EOF */
    char why[256];           /* when not decoded: why */
    unsigned npci;
    guest_pci *pci;
    bool has_vga;            /* a device with VGA state (legacy window is MMIO) */
    /* the (first) VGA's registers that decide its chain-4 window */
    char vga_path[MRIMG_NAME_MAX + 1]; /* its section idstr before the last '/' */
    unsigned vga_seen;       /* bit 0 sr, 1 gr, 2 bank_offset, 3 vbe_regs */
    uint8_t vga_sr[8], vga_gr[16];
    int32_t vga_bank_offset;
    uint16_t vga_vbe[10];
} guest_devinfo;

MRIMG_INTERNAL void guest_devinfo_free(guest_devinfo *di);

/* The device-state tail of an image, for the decoders below: borrowed
 * from the image, which keeps it from the pass that parsed its stream
 * (img_tail), so that it is never read twice (a pipe could not).  Nothing
 * to free. */
typedef struct guest_tail {
    const uint8_t *buf;      /* the image's (valid until mrimg_close) */
    size_t len;
    uint64_t start;
    bool started, overflow;
} guest_tail;

#define GUEST_TAIL_MAX (64u << 20)

/* Borrow img's tail into t (scans img if needed, after a walk at no
 * cost); a device state over GUEST_TAIL_MAX leaves t->overflow set. */
MRIMG_INTERNAL int guest_tail_get(guest_tail *t, mrimg_image *img, mrimg_error *err);
/* t holds the whole device state of the image whose stream info is si. */
MRIMG_INTERNAL bool guest_tail_complete(const guest_tail *t, const mrimg_stream_info *si);
/* Decode the device state in t (the stream after the RAM END section,
 * through the EOF and VMDESCRIPTION records).  A state that cannot be
 * decoded is not an error: di->decoded stays false and di->why says why. */
MRIMG_INTERNAL int guest_devinfo_parse_tail(const mrimg_stream_info *si, const guest_tail *t,
                                            guest_devinfo *di, mrimg_error *err);

/* ---- guest-physical memory map ---------------------------------------- */

enum { GUEST_PC_Q35 = 1, GUEST_PC_I440FX = 2 };

/* QEMU's split of pc.ram around the PCI hole (hw/i386/pc_q35.c,
 * pc_piix.c): bytes below and above 4 GiB.  max_below_4g 0: the machine's
 * default.  gigabyte_align: i440fx machine types newer than 1.7. */
MRIMG_INTERNAL void guest_pc_split(int family, uint64_t ram_size, uint64_t max_below_4g,
                                   bool gigabyte_align, uint64_t *below, uint64_t *above);

/* Machine family (GUEST_PC_*) and gigabyte alignment from a machine type
 * name ("pc-q35-10.0", "pc-i440fx-2.5", "pc-1.7", "q35", "pc"); 0 if not a
 * PC machine. */
MRIMG_INTERNAL int guest_machine_family(const char *machine, bool *gigabyte_align);
/* 0 if machine has a known guest-physical layout (a PC machine), else
 * MRIMG_ERR_UNSUPPORTED with a message naming it: the one refusal used by
 * the layout and by the outputs that check before their walk. */
MRIMG_INTERNAL int guest_machine_check(const char *machine, mrimg_error *err);

/* Everything the layout depends on, without an image (unit-testable). */
typedef struct guest_layout_in {
    const char *machine;
    const char *xml;                  /* domain XML or NULL */
    unsigned nblocks;
    const char *const *names;         /* block names */
    const uint64_t *lengths;          /* used_length of each block */
    const guest_devinfo *dev;         /* may be NULL: device state unknown */
    bool machine_ram_only;            /* only the machine RAM every device state
                                       * maps alike (dev ignored): RAM below
                                       * 0xa0000, from 1 MiB to below_4g, and
                                       * above 4 GiB; a subset of the full map */
} guest_layout_in;

MRIMG_INTERNAL int guest_layout(const guest_layout_in *in, mrimg_memmap *m,
                                mrimg_error *err);

/* Scan img (if it was not) keeping its device state, and make its map:
 * mrimg_memory_map with progress reports of the scan. */
MRIMG_INTERNAL int guest_memmap_scan(mrimg_image *img, mrimg_memmap **out,
                                     mrimg_progress_fn progress, void *pctx, mrimg_error *err);

/* The map of an image whose device state is in t (see guest_tail). */
MRIMG_INTERNAL int guest_memmap_from_tail(mrimg_image *img, const guest_tail *t,
                                          mrimg_memmap **out, mrimg_error *err);

#endif
