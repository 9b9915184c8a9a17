/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest-physical memory map of a PC guest, as QEMU lays it out.
 *
 * Facts (QEMU 10: hw/i386/pc_q35.c, pc_piix.c, pc.c, x86.c,
 * hw/pci-host/pam.c, q35.c, i440fx.c; checked against `info mtree -f` and
 * dump-guest-memory of real guests, tests/qemu/test_memmap.py):
 *  - machine RAM ("pc.ram", or the NUMA node backends in node order) is
 *    split: q35 keeps 0xb0000000 bytes below 4 GiB unless RAM reaches
 *    0xb0000000, then 2 GiB; i440fx keeps max-ram-below-4g (default 3.5
 *    GiB) and, once RAM reaches it, at most 3 GiB on machine types newer
 *    than 1.7 (gigabyte alignment); an explicit max-ram-below-4g lowers
 *    either.  The rest is mapped at 4 GiB.
 *  - 0xa0000-0xbffff is the VGA window when a VGA device is present
 *    (MMIO, not RAM), where a VGA in chain-4 mode (or VBE above 4 bpp)
 *    shows part of vga.vram; without a VGA, or with SMRAM open, RAM shows
 *    through.
 *  - 0xc0000-0xfffff is decided per PAM segment (16 KiB from 0xc0000, one
 *    64 KiB at 0xf0000) by the host bridge's PAM registers (q35 MCH 0x90,
 *    i440fx 0x59): mode 0 sends it to PCI, where pc.rom sits at 0xc0000
 *    and the last 128 KiB of pc.bios (isa-bios) end at 1 MiB; modes 1-3
 *    show RAM.
 *  - pc.bios ends at 4 GiB.
 *  - device RAM (vga.vram) is mapped at its BAR 0 and a PCI ROM at its
 *    ROM BAR, when the BAR is programmed and the command register enables
 *    memory decoding.
 *  - pc-dimm backends: at the base the domain XML gives them; without
 *    one, a single DIMM is at the start of the device-memory region,
 *    4 GiB + RAM above 4 GiB rounded up to 1 GiB.
 *  - fw_cfg blobs (/rom@etc/...) are not in guest-physical memory. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "guest.h"
#include "../util/vec.h"

#define GiB (1ull << 30)
#define FOUR_G (4ull << 30)

void guest_pc_split(int family, uint64_t ram_size, uint64_t max_below_4g, bool gigabyte_align,
                    uint64_t *below, uint64_t *above)
{
    uint64_t lowmem;
    if (family == GUEST_PC_Q35) {
        lowmem = ram_size >= 0xb0000000ull ? 0x80000000ull : 0xb0000000ull;
        uint64_t max = max_below_4g ? max_below_4g : FOUR_G;
        if (lowmem > max)
            lowmem = max;
    } else {
        uint64_t max = max_below_4g ? max_below_4g : 0xe0000000ull;
        lowmem = max;
        if (ram_size >= max && gigabyte_align && lowmem > 0xc0000000ull)
            lowmem = 0xc0000000ull;
    }
    if (ram_size >= lowmem) {
        *below = lowmem;
        *above = ram_size - lowmem;
    } else {
        *below = ram_size;
        *above = 0;
    }
}

int guest_machine_family(const char *m, bool *gigabyte_align)
{
    *gigabyte_align = true;
    if (!strcmp(m, "q35") || !strncmp(m, "pc-q35-", 7))
        return GUEST_PC_Q35;
    const char *v = NULL;
    if (!strcmp(m, "pc"))
        return GUEST_PC_I440FX;
    if (!strncmp(m, "pc-i440fx-", 10))
        v = m + 10;
    else if (!strncmp(m, "pc-", 3) && m[3] >= '0' && m[3] <= '9')
        v = m + 3; /* pc-0.x, pc-1.x */
    if (!v)
        return 0;
    unsigned major = 0, minor = 0;
    if (sscanf(v, "%u.%u", &major, &minor) == 2 && (major < 1 || (major == 1 && minor <= 7)))
        *gigabyte_align = false; /* pc_compat_1_7 */
    return GUEST_PC_I440FX;
}

/* ---- the domain XML ----------------------------------------------------- */

/* A QEMU size ("3G", "3221225472", "3072M"); false if not one. */
static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (end == s)
        return false;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; break;
    case 'm': case 'M': mul = 1ull << 20; break;
    case 'g': case 'G': mul = 1ull << 30; break;
    case 't': case 'T': mul = 1ull << 40; break;
    case 'b': case 'B': break;
    default:
        if (*end && *end != ',' && *end != '\'' && *end != '"' && *end != ' ')
            return false;
    }
    return mul_ok(v, mul, out);
}

/* max-ram-below-4g given on the QEMU command line (<qemu:arg value=...>). */
static uint64_t xml_max_ram_below_4g(const char *xml)
{
    const char *p = xml ? strstr(xml, "max-ram-below-4g=") : NULL;
    uint64_t v = 0;
    if (p && parse_size(p + 17, &v))
        return v;
    return 0;
}

/* An attribute value inside [p, end): copies it to out. */
static bool attr_in(const char *p, const char *end, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *q = p; q && q < end; q++) {
        q = strstr(q, name);
        if (!q || q >= end)
            return false;
        if (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\n') && q[nl] == '=' &&
            (q[nl + 1] == '\'' || q[nl + 1] == '"')) {
            char quote = q[nl + 1];
            const char *v = q + nl + 2, *e = strchr(v, quote);
            if (!e || e > end || (size_t)(e - v) >= cap)
                return false;
            memcpy(out, v, (size_t)(e - v));
            out[e - v] = '\0';
            return true;
        }
    }
    return false;
}

/* The base libvirt gave the DIMM whose memory backend is `backend`
 * (libvirt names a DIMM's backend "mem" + its alias). */
static bool xml_dimm_base(const char *xml, const char *backend, uint64_t *base)
{
    if (!xml)
        return false;
    for (const char *p = strstr(xml, "<memory "); p; p = strstr(p + 1, "<memory ")) {
        const char *end = strstr(p, "</memory>");
        if (!end)
            return false;
        char model[32], alias[MRIMG_NAME_MAX + 1], b[40];
        if (!attr_in(p, end, "model", model, sizeof(model)) ||
            (strcmp(model, "dimm") != 0 && strcmp(model, "nvdimm") != 0))
            continue;
        const char *a = strstr(p, "<alias ");
        if (!a || a > end || !attr_in(a, end, "name", alias, sizeof(alias)))
            continue;
        if (strncmp(backend, "mem", 3) != 0 || strcmp(backend + 3, alias) != 0)
            continue;
        const char *ad = strstr(p, "<address ");
        if (!ad || ad > end || !attr_in(ad, end, "base", b, sizeof(b)))
            return false;
        return parse_size(b, base);
    }
    return false;
}

/* ---- building the map ---------------------------------------------------- */

typedef struct mb {
    mrimg_memmap *m;
    size_t cap;
    const guest_layout_in *in;
    uint8_t *placed;              /* per block: has a range */
    const char **why;             /* per block: reason when not placed */
    /* machine RAM: blocks in order */
    unsigned nram;
    unsigned ram_block[64];
} mb;

static int add(mb *b, uint64_t gpa, uint64_t len, unsigned block, uint64_t off, mrimg_error *err)
{
    if (!len)
        return 0;
    if (off > b->in->lengths[block] || len > b->in->lengths[block] - off)
        return 0; /* never past the block's end */
    mrimg_memmap *m = b->m;
    if (!vec_reserve(m->ranges, b->cap, (size_t)m->nranges + 1, 32, UINT_MAX))
        return err_nomem(err);
    m->ranges[m->nranges++] = (mrimg_mem_range){gpa, len, block, off};
    b->placed[block] = 1;
    return 0;
}

/* A block placed by a device (BAR, DIMM base): if it would overlap what is
 * already mapped, QEMU's machine RAM and firmware win (the PCI address
 * space lies below them); the block is then reported as not mapped. */
static int add_dev(mb *b, uint64_t gpa, uint64_t len, unsigned block, mrimg_error *err)
{
    if (gpa + len < gpa) {
        b->why[block] = "its address wraps around the end of the address space";
        return 0;
    }
    for (unsigned k = 0; k < b->m->nranges; k++) {
        const mrimg_mem_range *r = &b->m->ranges[k];
        if (gpa < r->gpa + r->length && r->gpa < gpa + len) {
            b->why[block] = "its BAR or base overlaps memory mapped before it (RAM, firmware "
                            "or another device): hidden";
            return 0;
        }
    }
    return add(b, gpa, len, block, 0, err);
}

/* [gpa, gpa+len) backed by machine RAM from offset ram_off. */
static int add_ram(mb *b, uint64_t gpa, uint64_t ram_off, uint64_t len, mrimg_error *err)
{
    uint64_t base = 0;
    for (unsigned i = 0; i < b->nram && len; i++) {
        unsigned blk = b->ram_block[i];
        uint64_t bl = b->in->lengths[blk];
        if (ram_off < base + bl) {
            uint64_t in = ram_off - base, n = MRIMG_MIN(len, bl - in);
            int rc = add(b, gpa, n, blk, in, err);
            if (rc < 0)
                return rc;
            gpa += n;
            ram_off += n;
            len -= n;
        }
        base += bl;
    }
    return 0;
}

static int find_block(const guest_layout_in *in, const char *name)
{
    for (unsigned i = 0; i < in->nblocks; i++)
        if (!strcmp(in->names[i], name))
            return (int)i;
    return -1;
}

static const guest_pci *find_pci_suffix(const guest_devinfo *d, const char *suffix)
{
    size_t sl = strlen(suffix);
    for (unsigned i = 0; d && i < d->npci; i++) {
        size_t nl = strlen(d->pci[i].name);
        if (nl >= sl && !strcmp(d->pci[i].name + nl - sl, suffix))
            return &d->pci[i];
    }
    return NULL;
}

static const guest_pci *find_pci_path(const guest_devinfo *d, const char *path, size_t plen)
{
    for (unsigned i = 0; d && i < d->npci; i++)
        if (strlen(d->pci[i].path) == plen && !memcmp(d->pci[i].path, path, plen))
            return &d->pci[i];
    return NULL;
}

/* 0xc0000-0xfffff, one PAM segment at a time. */
static int add_pam(mb *b, const uint8_t *pam, int rom, int bios, mrimg_error *err)
{
    const guest_layout_in *in = b->in;
    for (int idx = 0; idx <= 12; idx++) {
        uint64_t start = idx == 0 ? 0xf0000 : 0xc0000 + (uint64_t)(idx - 1) * 0x4000;
        uint64_t size = idx == 0 ? 0x10000 : 0x4000;
        uint8_t reg = pam[(idx + 1) / 2];
        unsigned mode = (reg >> ((idx & 1) ? 0 : 4)) & 3;
        int rc = 0;
        if (mode != 0) {
            rc = add_ram(b, start, start, size, err);
        } else {
            /* the PCI address space: pc.rom at 0xc0000, isa-bios below 1 MiB */
            uint64_t rom_len = rom >= 0 ? in->lengths[rom] : 0;
            uint64_t bios_len = bios >= 0 ? in->lengths[bios] : 0;
            uint64_t isa = MRIMG_MIN(bios_len, 0x20000ull), isa_at = 0x100000 - isa;
            for (uint64_t a = start; a < start + size && rc == 0; a += 0x1000) {
                if (rom >= 0 && a >= 0xc0000 && a < 0xc0000 + rom_len)
                    rc = add(b, a, 0x1000, (unsigned)rom, a - 0xc0000, err);
                else if (bios >= 0 && isa && a >= isa_at)
                    rc = add(b, a, 0x1000, (unsigned)bios, bios_len - (0x100000 - a), err);
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The host bridge shows RAM in 0xa0000-0xbffff instead of the PCI (VGA)
 * window: SMRAM open (D_OPEN), and on q35 high SMRAM not enabled
 * (ESMRAMC.H_SMRAME), as hw/pci-host/i440fx.c and q35.c decide. */
static bool smram_open(int fam, const guest_pci *hb)
{
    if (!hb)
        return false;
    if (fam == GUEST_PC_Q35)
        return (hb->config[0x9d] & 0x40) && !(hb->config[0x9e] & 0x80);
    return (hb->config[0x72] & 0x40) != 0;
}

/* A memory BAR's address, or 0 when it does not decode. */
static uint64_t bar_addr(const guest_pci *p, unsigned off, bool rom)
{
    const uint8_t *c = p->config;
    if (!(c[0x04] & 0x02))
        return 0; /* memory space decoding off */
    uint32_t lo = rd_le32(c + off);
    if (rom)
        return (lo & 1) ? (lo & 0xfffff800u) : 0;
    if (lo & 1)
        return 0; /* an I/O BAR */
    uint64_t a = lo & 0xfffffff0u;
    if (((lo >> 1) & 3) == 2 && off + 8 <= 0x28)
        a |= (uint64_t)rd_le32(c + off + 4) << 32;
    return a == 0xfffffff0u ? 0 : a;
}

/* The VGA's chain-4 window: in chain-4 mode with all planes written (or
 * with VBE on at more than 4 bits per pixel, where QEMU forces both), a
 * part of vga.vram shows in the legacy window, above the MMIO
 * (hw/display/vga.c, vga_update_memory_access).  Returns its place. */
static bool vga_chain4(const guest_devinfo *d, uint64_t *base, uint64_t *off, uint64_t *size)
{
    if ((d->vga_seen & 3) != 3)
        return false;
    uint8_t plane = d->vga_sr[2], mode = d->vga_sr[4];
    if ((d->vga_seen & 8) && (d->vga_vbe[4] & 0x01) && d->vga_vbe[3] != 4) {
        plane |= 0x0f;
        mode |= 0x08;
    }
    if ((plane & 0x0f) != 0x0f || !(mode & 0x08))
        return false;
    *off = 0;
    switch ((d->vga_gr[6] >> 2) & 3) {
    case 0: *base = 0xa0000; *size = 0x20000; break;
    case 1:
        *base = 0xa0000;
        *size = 0x10000;
        if (!(d->vga_seen & 4) || d->vga_bank_offset < 0)
            return false;
        *off = (uint64_t)d->vga_bank_offset;
        break;
    case 2: *base = 0xb0000; *size = 0x8000; break;
    default: *base = 0xb8000; *size = 0x8000; break;
    }
    return true;
}

static int cmp_range(const void *a, const void *b)
{
    const mrimg_mem_range *x = a, *y = b;
    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* Machine RAM (pc.ram, or the NUMA node backends in node order). */
static int find_machine_ram(mb *b)
{
    int pcram = find_block(b->in, "pc.ram");
    if (pcram >= 0) {
        b->ram_block[b->nram++] = (unsigned)pcram;
    } else {
        for (unsigned node = 0; node < MRIMG_ARRAY_SIZE(b->ram_block); node++) {
            char nm[32];
            snprintf(nm, sizeof(nm), "ram-node%u", node);
            int k = find_block(b->in, nm);
            if (k < 0)
                break;
            b->ram_block[b->nram++] = (unsigned)k;
        }
    }
    for (unsigned i = 0; i < b->nram; i++)
        b->m->ram_size += b->in->lengths[b->ram_block[i]];
    return b->nram ? 0 : -1;
}

/* What the machine itself maps: RAM below and above 4 GiB, the legacy
 * window, 0xc0000-0xfffff, the BIOS. */
static int place_machine(mb *b, int fam, const guest_devinfo *dev, int rom, int bios,
                         mrimg_error *err)
{
    const guest_layout_in *in = b->in;
    uint64_t below = b->m->below_4g;
    const guest_pci *hb =
        dev ? find_pci_suffix(dev, fam == GUEST_PC_Q35 ? "/mch" : "/I440FX") : NULL;
    int rc = add_ram(b, 0, 0, MRIMG_MIN(below, 0xa0000ull), err);
    if (rc == 0 && dev && below > 0xa0000 && (!dev->has_vga || smram_open(fam, hb)))
        rc = add_ram(b, 0xa0000, 0xa0000, MRIMG_MIN(below, 0xc0000ull) - 0xa0000, err);
    if (rc == 0 && dev && dev->has_vga && !smram_open(fam, hb)) {
        uint64_t base, off, size;
        char name[MRIMG_NAME_MAX + 16];
        snprintf(name, sizeof(name), "%s/vga.vram", dev->vga_path);
        int vram = find_block(in, name);
        if (vram >= 0 && vga_chain4(dev, &base, &off, &size))
            rc = add(b, base, size, (unsigned)vram, off, err);
    }
    if (rc == 0 && hb && below >= 0x100000)
        rc = add_pam(b, hb->config + (fam == GUEST_PC_Q35 ? 0x90 : 0x59), rom, bios, err);
    if (rc == 0 && below > 0x100000)
        rc = add_ram(b, 0x100000, 0x100000, below - 0x100000, err);
    if (rc == 0 && b->m->above_4g)
        rc = add_ram(b, FOUR_G, below, b->m->above_4g, err);
    if (rc == 0 && bios >= 0)
        rc = add(b, FOUR_G - in->lengths[bios], in->lengths[bios], (unsigned)bios, 0, err);
    if (rc == 0 && rom >= 0 && !b->placed[rom])
        b->why[rom] = dev ? "the PAM registers show RAM at 0xc0000-0xdffff, not PCI"
                          : "mapped only where the PAM registers send 0xc0000-0xdffff to PCI; "
                            "the device state was not decoded";
    return rc;
}

/* Block i that is not the machine's: a device's RAM or ROM at its BAR, a
 * DIMM's backend at its base, or a reason why it is not mapped.  dimms: how
 * many blocks may be DIMM backends. */
static int place_other(mb *b, unsigned i, const guest_devinfo *dev, unsigned dimms,
                       mrimg_error *err)
{
    const char *n = b->in->names[i];
    uint64_t len = b->in->lengths[i];
    const char *slash = strrchr(n, '/');
    if (!strncmp(n, "/rom@", 5)) {
        b->why[i] = "a fw_cfg file: the firmware reads it through fw_cfg, it is not "
                    "guest-physical memory";
        return 0;
    }
    if (!slash) {
        uint64_t base = 0;
        if (xml_dimm_base(b->in->xml, n, &base))
            return add_dev(b, base, len, i, err);
        if (dimms == 1)
            return add_dev(b, round_up(FOUR_G + b->m->above_4g, GiB), len, i, err);
        b->why[i] = "a memory backend of several, and no domain XML gives its DIMM's base "
                    "address";
        return 0;
    }
    const char *leaf = slash + 1;
    size_t ll = strlen(leaf);
    bool vram = !strcmp(leaf, "vga.vram");
    bool prom = ll > 4 && !strcmp(leaf + ll - 4, ".rom");
    if (slash == n || (!vram && !prom)) {
        b->why[i] = "device RAM this library cannot place";
        return 0;
    }
    if (!dev) {
        b->why[i] = "its place is a PCI BAR, and the device state was not decoded";
        return 0;
    }
    const guest_pci *p = find_pci_path(dev, n, (size_t)(slash - n));
    uint64_t a = p ? bar_addr(p, vram ? 0x10 : 0x30, prom) : 0;
    if (!p)
        b->why[i] = "no saved PCI configuration for its device";
    else if (!a)
        b->why[i] = vram ? "BAR 0 not programmed or memory decoding off"
                         : "expansion ROM BAR disabled (the firmware copied the ROM)";
    else
        return add_dev(b, a, len, i, err);
    return 0;
}

/* Sort, merge the pieces where a block continues, list the blocks left. */
static int finish(mb *b, mrimg_error *err)
{
    mrimg_memmap *m = b->m;
    qsort(m->ranges, m->nranges, sizeof(*m->ranges), cmp_range);
    unsigned o = 0;
    for (unsigned k = 0; k < m->nranges; k++) {
        const mrimg_mem_range *r = &m->ranges[k];
        mrimg_mem_range *prev = o ? &m->ranges[o - 1] : NULL;
        if (prev && prev->block == r->block && prev->gpa + prev->length == r->gpa &&
            prev->offset + prev->length == r->offset) {
            prev->length += r->length;
            continue;
        }
        if (prev && prev->gpa + prev->length > r->gpa)
            return err_set(err, MRIMG_ERR_FORMAT, MRIMG_OFF_NONE, 0,
                           "guest-physical ranges overlap at 0x%llx (blocks \"%s\" and \"%s\"): "
                           "the machine's RAM layout is inconsistent",
                           (unsigned long long)r->gpa, b->in->names[prev->block],
                           b->in->names[r->block]);
        m->ranges[o++] = *r;
    }
    m->nranges = o;
    m->unmapped = calloc(b->in->nblocks ? b->in->nblocks : 1, sizeof(*m->unmapped));
    if (!m->unmapped)
        return err_nomem(err);
    for (unsigned i = 0; i < b->in->nblocks; i++)
        if (!b->placed[i])
            m->unmapped[m->nunmapped++] =
                (mrimg_unmapped_block){i, b->why[i] ? b->why[i] : "not mapped"};
    return 0;
}

int guest_machine_check(const char *machine, mrimg_error *err)
{
    bool gig;
    if (guest_machine_family(machine, &gig))
        return 0;
    return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                   "machine type \"%s\": only the PC machines (q35, i440fx) have a known "
                   "guest-physical layout",
                   machine[0] ? machine : "(none in the stream)");
}

int guest_layout(const guest_layout_in *in, mrimg_memmap *m, mrimg_error *err)
{
    bool gig;
    int fam = guest_machine_family(in->machine, &gig);
    snprintf(m->machine, sizeof(m->machine), "%s", in->machine);
    if (!fam)
        return guest_machine_check(in->machine, err);
    m->family = fam == GUEST_PC_Q35 ? "q35" : "i440fx";
    const guest_devinfo *dev =
        !in->machine_ram_only && in->dev && in->dev->decoded ? in->dev : NULL;
    m->devices_decoded = dev != NULL;

    mb b = {m, 0, in, NULL, NULL, 0, {0}};
    b.placed = calloc(in->nblocks ? in->nblocks : 1, 1);
    b.why = calloc(in->nblocks ? in->nblocks : 1, sizeof(*b.why));
    int rc = 0;
    if (!b.placed || !b.why) {
        rc = err_nomem(err);
        goto out;
    }
    if (find_machine_ram(&b) < 0) {
        rc = err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                     "no machine RAM block (\"pc.ram\" or \"ram-node0\"...) in the block list");
        goto out;
    }
    guest_pc_split(fam, m->ram_size, xml_max_ram_below_4g(in->xml), gig, &m->below_4g,
                   &m->above_4g);
    int rom = find_block(in, "pc.rom"), bios = find_block(in, "pc.bios");
    if (in->machine_ram_only)
        rom = bios = -1;
    rc = place_machine(&b, fam, dev, rom, bios, err);
    if (in->machine_ram_only) {
        if (rc == 0)
            rc = finish(&b, err);
        goto out;
    }

    /* the other blocks: devices' RAM and ROMs, DIMM backends */
    bool *mine = calloc(in->nblocks ? in->nblocks : 1, sizeof(*mine));
    if (!mine && rc == 0)
        rc = err_nomem(err);
    unsigned dimms = 0;
    for (unsigned i = 0; mine && i < in->nblocks; i++) {
        mine[i] = (int)i == rom || (int)i == bios;
        for (unsigned k = 0; k < b.nram; k++)
            mine[i] |= b.ram_block[k] == i;
        dimms += !mine[i] && !strchr(in->names[i], '/') && strncmp(in->names[i], "ram-node", 8);
    }
    for (unsigned i = 0; i < in->nblocks && rc == 0; i++)
        if (!mine[i])
            rc = place_other(&b, i, dev, dimms, err);
    free(mine);
    if (rc == 0)
        rc = finish(&b, err);
out:
    free(b.placed);
    free(b.why);
    return rc;
}

/* ---- the public entry points ------------------------------------------- */

void mrimg_memory_map_free(mrimg_memmap *m)
{
    if (!m)
        return;
    free(m->ranges);
    free(m->unmapped);
    free(m);
}

int guest_memmap_from_tail(mrimg_image *img, const guest_tail *t, mrimg_memmap **out,
                           mrimg_error *err)
{
    *out = NULL;
    guest_devinfo di;
    int rc = guest_devinfo_parse_tail(&img->si, t, &di, err);
    if (rc < 0)
        return rc;
    unsigned n = img->nblocks;
    const char **names = calloc(n ? n : 1, sizeof(*names));
    uint64_t *lens = calloc(n ? n : 1, sizeof(*lens));
    mrimg_memmap *m = calloc(1, sizeof(*m));
    if (!names || !lens || !m) {
        rc = err_nomem(err);
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        names[i] = img->blocks[i].info.name;
        lens[i] = img->blocks[i].info.used_length;
    }
    guest_layout_in in = {img->si.machine, img->ci.xml, n, names, lens, &di, false};
    rc = guest_layout(&in, m, err);
out:
    if (rc < 0) {
        mrimg_memory_map_free(m);
        m = NULL;
    }
    *out = m;
    free(names);
    free(lens);
    guest_devinfo_free(&di);
    return rc;
}

int guest_memmap_scan(mrimg_image *img, mrimg_memmap **out, mrimg_progress_fn progress,
                      void *pctx, mrimg_error *err)
{
    *out = NULL;
    guest_tail t;
    int rc = mrimg_scan(img, 0, progress, pctx, err);
    if (rc == 0)
        rc = guest_tail_get(&t, img, err);
    if (rc == 0)
        rc = guest_memmap_from_tail(img, &t, out, err);
    return rc;
}

int mrimg_memory_map(mrimg_image *img, mrimg_memmap **out, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (!img || !out)
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0, "no image or no result");
    return guest_memmap_scan(img, out, NULL, NULL, err);
}
