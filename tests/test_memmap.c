/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest-physical memory map (lib/guest/memmap.c) and the outputs built
 * on it (-O elf, -O phys).  The layout values were established from QEMU
 * 10.0 itself (`info mtree -f` of guests started with these options; the
 * full comparison with dump-guest-memory is tests/qemu/test_memmap.py);
 * the fixture cases use the real saves of testdata/qemu. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/guest.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* ---- the split of pc.ram -------------------------------------------------- */

typedef struct split_case {
    const char *machine;
    uint64_t ram, max_below, below, above;
} split_case;

/* (machine, -m, max-ram-below-4g) -> pc.ram below and above 4 GiB, as
 * `info mtree -f` of QEMU 10.0 shows them */
static const split_case splits[] = {
    {"pc-q35-10.0", 3072 * MiB, 0, 2 * GiB, 1 * GiB},
    {"pc-q35-10.0", 2815 * MiB, 0, 2815 * MiB, 0},         /* below 0xb0000000 */
    {"pc-q35-10.0", 2816 * MiB, 0, 2 * GiB, 768 * MiB},    /* = 0xb0000000 */
    {"pc-q35-10.0", 1 * GiB, 0, 1 * GiB, 0},
    {"pc-q35-10.0", 2 * GiB, 1 * GiB, 1 * GiB, 1 * GiB},   /* max-ram-below-4g=1G */
    {"pc-q35-10.0", 4 * GiB, 3200 * MiB, 2 * GiB, 2 * GiB},
    {"pc-i440fx-10.0", 4 * GiB, 0, 3 * GiB, 1 * GiB},
    {"pc-i440fx-10.0", 3583 * MiB, 0, 3583 * MiB, 0},      /* below 3.5 GiB */
    {"pc-i440fx-10.0", 3584 * MiB, 0, 3 * GiB, 512 * MiB}, /* = 3.5 GiB: 1 GiB aligned */
    {"pc-i440fx-10.0", 4 * GiB, 2 * GiB, 2 * GiB, 2 * GiB},
    {"pc-i440fx-10.0", 3968 * MiB, 3968 * MiB, 3 * GiB, 896 * MiB},
    {"pc-i440fx-10.0", 4 * GiB, 3200 * MiB, 3 * GiB, 1 * GiB},
    {"pc-i440fx-10.0", 4 * GiB, 3584 * MiB, 3 * GiB, 1 * GiB},
    {"pc-i440fx-10.0", 3968 * MiB, 4 * GiB, 3968 * MiB, 0}, /* QEMU's own example */
    /* pc-1.7 and older: no gigabyte alignment (QEMU's example: 3584M low) */
    {"pc-i440fx-1.7", 4 * GiB, 0, 3584 * MiB, 512 * MiB},
    {"pc-1.3", 4 * GiB, 0, 3584 * MiB, 512 * MiB},
};

static void test_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        const split_case *c = &splits[i];
        bool gig;
        int fam = guest_machine_family(c->machine, &gig);
        assert_true(fam == GUEST_PC_Q35 || fam == GUEST_PC_I440FX);
        uint64_t below, above;
        guest_pc_split(fam, c->ram, c->max_below, gig, &below, &above);
        if (below != c->below || above != c->above)
            fail_msg("%s -m %llu MiB max-ram-below-4g %llu: got %llx/%llx, QEMU %llx/%llx",
                     c->machine, (unsigned long long)(c->ram / MiB),
                     (unsigned long long)c->max_below, (unsigned long long)below,
                     (unsigned long long)above, (unsigned long long)c->below,
                     (unsigned long long)c->above);
    }
}

static void test_machine_family(void **state)
{
    (void)state;
    bool gig;
    assert_int_equal(guest_machine_family("q35", &gig), GUEST_PC_Q35);
    assert_int_equal(guest_machine_family("pc-q35-2.4", &gig), GUEST_PC_Q35);
    assert_true(gig);
    assert_int_equal(guest_machine_family("pc", &gig), GUEST_PC_I440FX);
    assert_int_equal(guest_machine_family("pc-i440fx-2.0", &gig), GUEST_PC_I440FX);
    assert_true(gig);
    assert_int_equal(guest_machine_family("pc-i440fx-1.7", &gig), GUEST_PC_I440FX);
    assert_false(gig);
    assert_int_equal(guest_machine_family("virt-9.2", &gig), 0);
    assert_int_equal(guest_machine_family("microvm", &gig), 0);
    assert_int_equal(guest_machine_family("", &gig), 0);
}

/* ---- layouts of synthetic guests ----------------------------------------- */

typedef struct lay {
    const char *names[12];
    uint64_t lens[12];
    unsigned n;
    guest_devinfo dev;
    guest_pci pci[6];
    mrimg_memmap m;
} lay;

static void lay_block(lay *l, const char *name, uint64_t len)
{
    l->names[l->n] = name;
    l->lens[l->n++] = len;
}

static guest_pci *lay_pci(lay *l, const char *name)
{
    guest_pci *p = &l->pci[l->dev.npci++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->path, sizeof(p->path), "%s", name);
    *strrchr(p->path, '/') = '\0';
    l->dev.pci = l->pci;
    l->dev.decoded = true;
    return p;
}

static int lay_run(lay *l, const char *machine, const char *xml, bool with_dev, mrimg_error *e)
{
    memset(&l->m, 0, sizeof(l->m));
    guest_layout_in in = {machine, xml, l->n, l->names, l->lens, with_dev ? &l->dev : NULL, false};
    return guest_layout(&in, &l->m, e);
}

static void lay_free(lay *l)
{
    free(l->m.ranges);
    free(l->m.unmapped);
}

static void expect(const lay *l, unsigned i, uint64_t gpa, uint64_t len, unsigned block,
                   uint64_t off)
{
    if (i >= l->m.nranges)
        fail_msg("range %u missing (%u ranges)", i, l->m.nranges);
    const mrimg_mem_range *r = &l->m.ranges[i];
    if (r->gpa != gpa || r->length != len || r->block != block || r->offset != off)
        fail_msg("range %u: [%llx,+%llx) block %u @%llx, expected [%llx,+%llx) block %u @%llx", i,
                 (unsigned long long)r->gpa, (unsigned long long)r->length, r->block,
                 (unsigned long long)r->offset, (unsigned long long)gpa,
                 (unsigned long long)len, block, (unsigned long long)off);
}

static const char *reason_of(const lay *l, unsigned block)
{
    for (unsigned i = 0; i < l->m.nunmapped; i++)
        if (l->m.unmapped[i].block == block)
            return l->m.unmapped[i].reason;
    return NULL;
}

static void std_blocks(lay *l, uint64_t ram)
{
    memset(l, 0, sizeof(*l));
    lay_block(l, "pc.ram", ram);                    /* 0 */
    lay_block(l, "0000:00:02.0/vga.vram", 16 * MiB); /* 1 */
    lay_block(l, "/rom@etc/acpi/tables", 128 << 10); /* 2 */
    lay_block(l, "pc.bios", 256 << 10);              /* 3 */
    lay_block(l, "pc.rom", 128 << 10);               /* 4 */
    lay_block(l, "0000:00:02.0/vga.rom", 64 << 10);  /* 5 */
}

/* q35 after SeaBIOS (as tests/qemu/test_memmap.py's q35-3G-booted): PAM
 * shows RAM everywhere, vga.vram at 0xfd000000 */
static void test_layout_booted(void **state)
{
    (void)state;
    lay l;
    std_blocks(&l, 3 * GiB);
    guest_pci *hb = lay_pci(&l, "0000:00:00.0/mch");
    memset(hb->config + 0x90, 0x33, 7);
    hb->config[0x90] = 0x30;
    guest_pci *vga = lay_pci(&l, "0000:00:02.0/vga");
    vga->config[0x04] = 0x03;
    vga->config[0x10] = 0x08; /* prefetchable 32-bit */
    vga->config[0x13] = 0xfd;
    l.dev.has_vga = true;
    mrimg_error e;
    assert_int_equal(lay_run(&l, "pc-q35-10.0", NULL, true, &e), 0);
    assert_int_equal(l.m.nranges, 5);
    expect(&l, 0, 0, 0xa0000, 0, 0);
    expect(&l, 1, 0xc0000, 2 * GiB - 0xc0000, 0, 0xc0000);
    expect(&l, 2, 0xfd000000, 16 * MiB, 1, 0);
    expect(&l, 3, 0xfffc0000, 256 << 10, 3, 0);
    expect(&l, 4, 4 * GiB, 1 * GiB, 0, 2 * GiB);
    assert_non_null(strstr(reason_of(&l, 2), "fw_cfg"));
    assert_non_null(strstr(reason_of(&l, 4), "PAM"));
    assert_non_null(strstr(reason_of(&l, 5), "ROM BAR"));
    assert_true(l.m.devices_decoded);
    lay_free(&l);

    /* memory decoding off: vga.vram is not mapped */
    vga->config[0x04] = 0x01;
    assert_int_equal(lay_run(&l, "pc-q35-10.0", NULL, true, &e), 0);
    assert_int_equal(l.m.nranges, 4);
    assert_non_null(strstr(reason_of(&l, 1), "BAR 0"));
    lay_free(&l);

    /* a 64-bit BAR above 4 GiB, and the ROM BAR enabled */
    vga->config[0x04] = 0x02;
    vga->config[0x10] = 0x0c; /* 64-bit prefetchable */
    vga->config[0x13] = 0x00;
    vga->config[0x14] = 0x80; /* 0x80_00000000 */
    vga->config[0x30] = 0x01;
    vga->config[0x32] = 0x0e; /* 0xfe0e0000 */
    vga->config[0x33] = 0xfe;
    assert_int_equal(lay_run(&l, "pc-q35-10.0", NULL, true, &e), 0);
    assert_int_equal(l.m.nranges, 6);
    expect(&l, 2, 0xfe0e0000, 64 << 10, 5, 0);
    expect(&l, 5, 0x8000000000ull, 16 * MiB, 1, 0);
    lay_free(&l);
}

/* The VGA's chain-4 window (hw/display/vga.c): text mode shows nothing in
 * 0xa0000-0xbffff; a VBE mode above 4 bpp shows 64 KiB of vga.vram from
 * bank_offset at 0xa0000 (as `info mtree -f` shows for the i440fx-vbe guest
 * of tests/qemu/test_memmap.py); chain 4 set by the registers follows the
 * memory map select of GR6. */
static void test_layout_vga_chain4(void **state)
{
    (void)state;
    lay l;
    std_blocks(&l, 512 * MiB);
    guest_pci *hb = lay_pci(&l, "0000:00:00.0/I440FX");
    memset(hb->config + 0x59, 0x33, 7);
    guest_pci *vga = lay_pci(&l, "0000:00:02.0/vga");
    vga->config[0x04] = 0x02;
    vga->config[0x13] = 0xfd;
    l.dev.has_vga = true;
    snprintf(l.dev.vga_path, sizeof(l.dev.vga_path), "0000:00:02.0");
    l.dev.vga_seen = 15;
    l.dev.vga_sr[2] = 0x03; /* text mode, as SeaBIOS leaves it */
    l.dev.vga_sr[4] = 0x02;
    l.dev.vga_gr[6] = 0x0e;
    mrimg_error e;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 0, 0, 0xa0000, 0, 0);
    expect(&l, 1, 0xc0000, 512 * MiB - 0xc0000, 0, 0xc0000);
    lay_free(&l);

    /* VBE on at 32 bpp: QEMU forces chain 4 and memory map 1 */
    l.dev.vga_vbe[4] = 0x41;
    l.dev.vga_vbe[3] = 32;
    l.dev.vga_gr[6] = 0x05;
    l.dev.vga_bank_offset = 0x20000;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 1, 0xa0000, 0x10000, 1, 0x20000);
    expect(&l, 3, 0xfd000000, 16 * MiB, 1, 0);
    lay_free(&l);

    /* VBE at 4 bpp: the sequencer decides; here not chain 4 */
    l.dev.vga_vbe[3] = 4;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 1, 0xc0000, 512 * MiB - 0xc0000, 0, 0xc0000);
    lay_free(&l);

    /* chain 4 by the registers (mode 13h), memory map 0: 128 KiB */
    l.dev.vga_vbe[4] = 0;
    l.dev.vga_sr[2] = 0x0f;
    l.dev.vga_sr[4] = 0x0e;
    l.dev.vga_gr[6] = 0x01;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 1, 0xa0000, 0x20000, 1, 0);
    lay_free(&l);
    l.dev.vga_gr[6] = 0x0d; /* memory map 3: 32 KiB at 0xb8000 */
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 1, 0xb8000, 0x8000, 1, 0);
    lay_free(&l);

    /* SMRAM open: RAM shows in the whole window instead */
    hb->config[0x72] = 0x40;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 0, 0, 512 * MiB, 0, 0);
    lay_free(&l);
}

/* PAM at reset (every segment to PCI), mixed modes, no VGA: what QEMU
 * shows for -nodefaults guests and after partial shadowing. */
static void test_layout_pam(void **state)
{
    (void)state;
    lay l;
    std_blocks(&l, 64 * MiB);
    guest_pci *hb = lay_pci(&l, "0000:00:00.0/I440FX");
    mrimg_error e;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 0, 0, 0xc0000, 0, 0);            /* no VGA: RAM shows through */
    expect(&l, 1, 0xc0000, 0x20000, 4, 0);      /* pc.rom */
    expect(&l, 2, 0xe0000, 0x20000, 3, 0x20000); /* isa-bios */
    expect(&l, 3, 0x100000, 63 * MiB, 0, 0x100000);
    expect(&l, 4, 0xfffc0000, 0x40000, 3, 0);
    assert_int_equal(l.m.nranges, 5);
    lay_free(&l);

    /* 0xc0000-0xc3fff read-only RAM (PAM1 low nibble 1), 0xf0000 RAM
     * (PAM0 high nibble 3), 0xe4000-0xe7fff write-only (PAM5 high nibble 2):
     * QEMU 10 maps modes 1-3 all to RAM (hw/pci-host/pam.c) */
    hb->config[0x59] = 0x30;
    hb->config[0x5a] = 0x01;
    hb->config[0x5e] = 0x20;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 0, 0, 0xc4000, 0, 0);
    expect(&l, 1, 0xc4000, 0x1c000, 4, 0x4000);
    expect(&l, 2, 0xe0000, 0x4000, 3, 0x20000);
    expect(&l, 3, 0xe4000, 0x4000, 0, 0xe4000);
    expect(&l, 4, 0xe8000, 0x8000, 3, 0x28000);
    expect(&l, 5, 0xf0000, 64 * MiB - 0xf0000, 0, 0xf0000);
    lay_free(&l);

    /* a VGA device decodes 0xa0000-0xbffff, unless SMRAM is open (i440fx
     * SMRAM register 0x72, D_OPEN 0x40): then RAM shows there */
    l.dev.has_vga = true;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 0, 0, 0xa0000, 0, 0);
    expect(&l, 1, 0xc0000, 0x4000, 0, 0xc0000);
    expect(&l, 2, 0xc4000, 0x1c000, 4, 0x4000);
    lay_free(&l);
    hb->config[0x72] = 0x40;
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, true, &e), 0);
    expect(&l, 0, 0, 0xc4000, 0, 0);
    lay_free(&l);
    l.dev.has_vga = false;

    /* without the device state, what it decides is left out */
    assert_int_equal(lay_run(&l, "pc-i440fx-10.0", NULL, false, &e), 0);
    assert_false(l.m.devices_decoded);
    expect(&l, 0, 0, 0xa0000, 0, 0);
    expect(&l, 1, 0x100000, 63 * MiB, 0, 0x100000);
    expect(&l, 2, 0xfffc0000, 0x40000, 3, 0);
    assert_int_equal(l.m.nranges, 3);
    assert_non_null(strstr(reason_of(&l, 1), "device state"));
    lay_free(&l);
}

static void test_layout_dimm_numa(void **state)
{
    (void)state;
    lay l;
    memset(&l, 0, sizeof(l));
    lay_block(&l, "ram-node0", 2 * GiB);
    lay_block(&l, "ram-node1", 2 * GiB);
    lay_block(&l, "memdimm0", 1 * GiB);
    lay_block(&l, "memdimm1", 1 * GiB);
    lay_block(&l, "pc.bios", 256 << 10);
    mrimg_error e;
    /* NUMA nodes form the machine RAM in node order; two DIMMs without XML */
    assert_int_equal(lay_run(&l, "pc-q35-10.0", NULL, false, &e), 0);
    assert_int_equal(l.m.ram_size, 4 * GiB);
    expect(&l, 0, 0, 0xa0000, 0, 0);
    expect(&l, 1, 0x100000, 2 * GiB - 0x100000, 0, 0x100000);
    expect(&l, 2, 0xfffc0000, 256 << 10, 4, 0);
    expect(&l, 3, 4 * GiB, 2 * GiB, 1, 0);
    assert_non_null(strstr(reason_of(&l, 2), "several"));
    lay_free(&l);

    /* libvirt's XML gives each DIMM's base (backend "mem" + alias) */
    const char *xml =
        "<domain><devices>"
        "<memory model='dimm'><target><size unit='KiB'>1048576</size></target>"
        "<alias name='dimm1'/><address type='dimm' slot='1' base='0x1c0000000'/></memory>\n"
        "<memory model=\"dimm\"><alias name=\"dimm0\"/>"
        "<address type=\"dimm\" slot=\"0\" base=\"0x180000000\"/></memory>"
        "</devices></domain>";
    assert_int_equal(lay_run(&l, "pc-q35-10.0", xml, false, &e), 0);
    expect(&l, 4, 0x180000000ull, 1 * GiB, 2, 0);
    expect(&l, 5, 0x1c0000000ull, 1 * GiB, 3, 0);
    assert_int_equal(l.m.nunmapped, 0);
    lay_free(&l);

    /* max-ram-below-4g on the QEMU command line of the XML */
    const char *xml2 = "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
                       "<qemu:commandline><qemu:arg value='-machine'/>"
                       "<qemu:arg value='max-ram-below-4g=1G'/></qemu:commandline></domain>";
    assert_int_equal(lay_run(&l, "pc-q35-10.0", xml2, false, &e), 0);
    assert_int_equal(l.m.below_4g, 1 * GiB);
    assert_int_equal(l.m.above_4g, 3 * GiB);
    lay_free(&l);
}

static void test_layout_refusals(void **state)
{
    (void)state;
    lay l;
    std_blocks(&l, 64 * MiB);
    mrimg_error e;
    assert_int_equal(lay_run(&l, "virt-10.0", NULL, false, &e), MRIMG_ERR_UNSUPPORTED);
    assert_non_null(strstr(e.message, "virt-10.0"));
    lay_free(&l);
    memset(&l, 0, sizeof(l));
    lay_block(&l, "pc.bios", 256 << 10);
    assert_int_equal(lay_run(&l, "pc-q35-10.0", NULL, false, &e), MRIMG_ERR_UNSUPPORTED);
    assert_non_null(strstr(e.message, "pc.ram"));
    lay_free(&l);

    /* two BARs claiming the same address, one over RAM, one wrapping: the
     * first wins, RAM wins, the wrapping one is not mapped */
    std_blocks(&l, 64 * MiB);
    lay_block(&l, "0000:00:03.0/vga.vram", 16 * MiB);
    lay_block(&l, "0000:00:04.0/vga.vram", 16 * MiB);
    lay_block(&l, "0000:00:05.0/vga.vram", 16 * MiB);
    guest_pci *a = lay_pci(&l, "0000:00:02.0/vga"), *b = lay_pci(&l, "0000:00:03.0/vga");
    guest_pci *c = lay_pci(&l, "0000:00:04.0/vga"), *d = lay_pci(&l, "0000:00:05.0/vga");
    a->config[0x04] = b->config[0x04] = c->config[0x04] = d->config[0x04] = 0x02;
    a->config[0x13] = b->config[0x13] = 0xfd;
    c->config[0x13] = 0x03;                    /* 0x03000000: inside pc.ram */
    d->config[0x10] = 0x04;                    /* 64-bit */
    memset(d->config + 0x13, 0xff, 5);         /* 0xffffffffff000000 + 16 MiB wraps */
    assert_int_equal(lay_run(&l, "pc-q35-10.0", NULL, true, &e), 0);
    assert_int_equal(l.m.nranges, 4);
    expect(&l, 2, 0xfd000000, 16 * MiB, 1, 0);
    assert_non_null(strstr(reason_of(&l, 6), "overlaps"));
    assert_non_null(strstr(reason_of(&l, 7), "overlaps"));
    assert_non_null(strstr(reason_of(&l, 8), "wraps"));
    lay_free(&l);
}

/* ---- real saves ------------------------------------------------------------ */

static void check_fixture_map(const char *rel)
{
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path(rel), NULL, &e);
    if (!img)
        fail_msg("%s: %s", rel, e.message);
    mrimg_memmap *m = NULL;
    if (mrimg_memory_map(img, &m, &e) != 0)
        fail_msg("%s: %s", rel, e.message);
    /* `info mtree -f` of a 64 MiB -nodefaults guest at reset (both
     * machines): pc.ram [0,0xc0000), pc.rom, isa-bios, pc.ram from 1 MiB,
     * pc.bios below 4 GiB */
    static const struct { uint64_t gpa, len, off; const char *block; } want[] = {
        {0, 0xc0000, 0, "pc.ram"},
        {0xc0000, 0x20000, 0, "pc.rom"},
        {0xe0000, 0x20000, 0x20000, "pc.bios"},
        {0x100000, 63 * MiB, 0x100000, "pc.ram"},
        {0xfffc0000, 0x40000, 0, "pc.bios"},
    };
    assert_int_equal(m->nranges, 5);
    assert_true(m->devices_decoded);
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(m->ranges[i].gpa, want[i].gpa);
        assert_int_equal(m->ranges[i].length, want[i].len);
        assert_int_equal(m->ranges[i].offset, want[i].off);
        assert_string_equal(mrimg_block(img, m->ranges[i].block)->name, want[i].block);
    }
    assert_int_equal(m->nunmapped, 3); /* the three fw_cfg blobs */
    mrimg_memory_map_free(m);
    mrimg_close(img);
}

static void test_fixture_maps(void **state)
{
    (void)state;
    check_fixture_map("qemu/plain.mig");
    check_fixture_map("qemu/mapped.mig");
    check_fixture_map("qemu/plain-q35.mig");
    check_fixture_map("qemu/mapped-q35.mig");
}

/* -O phys: the blob QEMU loaded at blob_gpa is at that file offset; the
 * file ends at 4 GiB (pc.bios); -O elf: a PT_LOAD holds it. */
static void test_fixture_outputs(void **state)
{
    (void)state;
    fact_file facts[32];
    unsigned nf = facts_load(facts, 32);
    const fact_file *f = NULL;
    for (unsigned i = 0; i < nf; i++)
        if (!strcmp(facts[i].file, "plain.mig"))
            f = &facts[i];
    assert_non_null(f);
    size_t blen;
    uint8_t *blob = read_file(fixture_path("qemu/blob.bin"), &blen);
    assert_non_null(blob);
    assert_int_equal(blen, f->blob_len);

    char *dir = test_tmpdir("memmap");
    char phys[4096], elf[4096];
    snprintf(phys, sizeof(phys), "%s/out.phys", dir);
    snprintf(elf, sizeof(elf), "%s/out.elf", dir);
    const char *ins[] = {"qemu/plain.mig", "qemu/mapped.mig"};
    for (unsigned k = 0; k < 2; k++) {
        mrimg_error e;
        mrimg_image *img = t_open(fixture_path(ins[k]), NULL, &e);
        assert_non_null(img);
        t_convert_opts o;
        t_convert_opts_init(&o);
        o.force = 1;
        o.out = MRIMG_OUT_PHYS;
        mrimg_convert_stats st;
        if (t_convert(img, phys, &o, &st, &e) != 0)
            fail_msg("%s -> phys: %s", ins[k], e.message);
        o.out = MRIMG_OUT_ELF;
        if (t_convert(img, elf, &o, &st, &e) != 0)
            fail_msg("%s -> elf: %s", ins[k], e.message);
        mrimg_close(img);

        struct stat sb;
        assert_int_equal(stat(phys, &sb), 0);
        assert_int_equal((uint64_t)sb.st_size, 4 * GiB);
        assert_true((uint64_t)sb.st_blocks * 512 < 16 * MiB); /* sparse */
        int fd = open(phys, O_RDONLY);
        uint8_t *got = malloc(blen);
        assert_int_equal(pread(fd, got, blen, (off_t)f->blob_gpa), (ssize_t)blen);
        assert_memory_equal(got, blob, blen);
        close(fd);

        /* the ELF: an x86-64 ET_CORE whose PT_LOADs are the map above */
        fd = open(elf, O_RDONLY);
        uint8_t eh[64];
        assert_int_equal(pread(fd, eh, 64, 0), 64);
        assert_memory_equal(eh, "\x7f" "ELF\x02\x01\x01", 7);
        assert_int_equal(eh[16], 4); /* ET_CORE */
        assert_int_equal(eh[18], 3);  /* EM_386: QEMU's choice for a vCPU not in long mode */
        unsigned phnum = eh[56] | eh[57] << 8;
        assert_int_equal(phnum, 6); /* PT_NOTE and the five ranges */
        uint8_t ph[56];
        assert_int_equal(pread(fd, ph, 56, 64), 56);
        assert_int_equal(ph[0], 4); /* PT_NOTE first: one vCPU, i386 NT_PRSTATUS + QEMU */
        uint64_t noff, nlen;
        memcpy(&noff, ph + 8, 8);
        memcpy(&nlen, ph + 32, 8);
        assert_int_equal(noff, 64 + 56 * 6);
        assert_int_equal(nlen, (12 + 8 + 144) + (12 + 8 + 440));
        bool found = false;
        for (unsigned i = 1; i < phnum; i++) {
            assert_int_equal(pread(fd, ph, 56, 64 + 56 * i), 56);
            uint64_t off, paddr, vaddr, filesz;
            memcpy(&off, ph + 8, 8);
            memcpy(&vaddr, ph + 16, 8);
            memcpy(&paddr, ph + 24, 8);
            memcpy(&filesz, ph + 32, 8);
            assert_int_equal(ph[0], 1);
            assert_int_equal(vaddr, paddr);
            if (paddr <= f->blob_gpa && f->blob_gpa + blen <= paddr + filesz) {
                assert_int_equal(pread(fd, got, blen, (off_t)(off + f->blob_gpa - paddr)),
                                 (ssize_t)blen);
                assert_memory_equal(got, blob, blen);
                found = true;
            }
        }
        assert_true(found);
        close(fd);
        free(got);
    }
    free(blob);
    test_rmdir_all(dir);
    free(dir);
}

/* A machine type without a known layout is refused before anything is
 * written (a copy of a real save with its machine name changed). */
static void test_unsupported_machine(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img_bytes = read_file(fixture_path("qemu/plain.mig"), &len);
    assert_non_null(img_bytes);
    uint8_t *m = memmem(img_bytes, len < 4096 ? len : 4096, "pc-i440fx-10.0", 14);
    assert_non_null(m);
    memcpy(m, "zz-i440fx-10.0", 14);
    char *dir = test_tmpdir("memmap-unsupported");
    char in[4096], out[4096];
    snprintf(in, sizeof(in), "%s/in.mig", dir);
    snprintf(out, sizeof(out), "%s/out", dir);
    write_file(in, img_bytes, len);
    free(img_bytes);
    int kinds[] = {MRIMG_OUT_ELF, MRIMG_OUT_PHYS, MRIMG_OUT_KDUMP_ZLIB, MRIMG_OUT_KDUMP_LZO};
    for (unsigned k = 0; k < 4; k++) {
        mrimg_error e;
        mrimg_image *img = t_open(in, NULL, &e);
        assert_non_null(img);
        t_convert_opts o;
        t_convert_opts_init(&o);
        o.out = kinds[k];
        assert_int_equal(t_convert(img, out, &o, NULL, &e), MRIMG_ERR_UNSUPPORTED);
        assert_non_null(strstr(e.message, "zz-i440fx-10.0"));
        assert_int_equal(access(out, F_OK), -1);
        mrimg_memmap *mm = NULL;
        assert_int_equal(mrimg_memory_map(img, &mm, &e), MRIMG_ERR_UNSUPPORTED);
        assert_null(mm);
        mrimg_close(img);
    }
    test_rmdir_all(dir);
    free(dir);
}

/* One progress bar per conversion: never goes back, one total, ends full. */
typedef struct prog {
    uint64_t last, total, calls;
    bool back, changed;
} prog;

static int on_progress(void *opaque, uint64_t done, uint64_t total)
{
    prog *p = opaque;
    if (p->calls && (done < p->last))
        p->back = true;
    if (p->calls && total != p->total)
        p->changed = true;
    p->last = done;
    p->total = total;
    p->calls++;
    return 0;
}

static void test_progress(void **state)
{
    (void)state;
    char *dir = test_tmpdir("memmap-progress");
    char out[4096];
    snprintf(out, sizeof(out), "%s/out", dir);
    const char *ins[] = {"qemu/plain.mig", "qemu/mapped.mig", "libvirt/zstd.sav"};
    int kinds[] = {MRIMG_OUT_ELF, MRIMG_OUT_PHYS, MRIMG_OUT_KDUMP_ZLIB, MRIMG_OUT_KDUMP_LZO};
    for (unsigned i = 0; i < 3; i++)
        for (unsigned k = 0; k < 4; k++) {
            mrimg_error e;
            mrimg_image *img = t_open(fixture_path(ins[i]), NULL, &e);
            assert_non_null(img);
            prog p = {0};
            t_convert_opts o;
            t_convert_opts_init(&o);
            o.out = kinds[k];
            o.force = 1;
            o.progress = on_progress;
            o.progress_ctx = &p;
            if (t_convert(img, out, &o, NULL, &e) != 0)
                fail_msg("%s: %s", ins[i], e.message);
            mrimg_close(img);
            if (!p.calls || p.back || p.changed || p.last != p.total)
                fail_msg("%s -> %d: %llu reports, back %d, total changed %d, ends %llu/%llu",
                         ins[i], kinds[k], (unsigned long long)p.calls, p.back, p.changed,
                         (unsigned long long)p.last, (unsigned long long)p.total);
        }
    test_rmdir_all(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_machine_family),
        cmocka_unit_test(test_layout_booted),
        cmocka_unit_test(test_layout_pam),
        cmocka_unit_test(test_layout_vga_chain4),
        cmocka_unit_test(test_layout_dimm_numa),
        cmocka_unit_test(test_layout_refusals),
        cmocka_unit_test(test_fixture_maps),
        cmocka_unit_test(test_fixture_outputs),
        cmocka_unit_test(test_unsupported_machine),
        cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
