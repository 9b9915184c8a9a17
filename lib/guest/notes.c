/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PT_NOTE segment of an ELF core of the guest, as QEMU 10's
 * dump-guest-memory writes it for an x86-64 target (dump/dump.c,
 * target/i386/arch_dump.c; checked byte for byte against real dumps,
 * tests/qemu/test_cpu.py):
 *
 *  - first one NT_PRSTATUS note (type 1, name "CORE") per vCPU, in vCPU
 *    order, then one note of type 0 named "QEMU" per vCPU;
 *  - every note: namesz 5, descsz, type (little-endian 32-bit words), the
 *    name padded to 8 bytes, the descriptor padded to a multiple of 4;
 *  - the NT_PRSTATUS layout depends on the FIRST vCPU: in long mode (its
 *    hidden flag LMA) the x86-64 elf_prstatus (336 bytes: pr_pid at 32,
 *    user_regs_struct at 112: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax
 *    rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs
 *    gs, 8 bytes each), otherwise the i386 one (144 bytes: pr_pid at 24,
 *    registers at 72: ebx ecx edx esi edi ebp eax, then ds es fs gs as
 *    16-bit values each followed by 16 zero bits, orig_eax, eip, cs + 16,
 *    eflags, esp, ss + 16; values truncated to 32 bits).  orig_rax is 0;
 *    pr_pid is the vCPU number + 1 (QEMU's cpu_index() counts from 1);
 *  - the "QEMU" descriptor is QEMUCPUState, 440 bytes: version 1, size
 *    440, rax rbx rcx rdx rsi rdi rsp rbp r8-r15, rip, rflags, then the
 *    segments cs ds es fs gs ss ldt tr gdt idt as {selector, limit, flags,
 *    pad 0 (32 bits each), base (64)}, cr[0..4] (cr[1] is 0: QEMU does
 *    not save it), kernel_gs_base.
 *
 *  - last, the guest's VMCOREINFO note, when the guest has a "vmcoreinfo"
 *    device and filled it in (has_vmcoreinfo, guest format 1 = ELF, size
 *    12 bytes .. 1 MiB): QEMU reads `size` bytes at the guest-physical
 *    address the device holds and copies the first note found there
 *    (header, name and descriptor, each padded to 4 bytes) if its name
 *    and descriptor sizes are at most 1 MiB and it fits in `size`;
 *    otherwise it writes no guest note.  For a note named VMCOREINFO, the
 *    byte after the descriptor is set to 0 (QEMU's copy is terminated for
 *    parsing; the byte is padding when the size is not a multiple of 4).  Here the note is read from the
 *    "pc.ram" block, where it lies when its address is below 2 GiB and
 *    outside 0xa0000-0xfffff (true of every PC machine's layout); a note
 *    elsewhere is left out (to be read through the guest-physical memory
 *    map once lib/guest has it). */
#include <stdlib.h>

#include "cpu.h"

#define HF_LMA (1u << 14)

#define PRSTATUS64_SIZE 336u
#define PRSTATUS32_SIZE 144u
#define QEMUSTATE_SIZE 440u
#define NOTE_HDR 20u /* 12 bytes of header + "CORE"/"QEMU" padded to 8 */

static void le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Header and name of one note; returns the descriptor's place. */
static uint8_t *note_head(uint8_t *p, const char *name, uint32_t descsz, uint32_t type)
{
    le32(p, 5);
    le32(p + 4, descsz);
    le32(p + 8, type);
    memcpy(p + 12, name, 5); /* with its NUL; the rest of the 8 bytes stays 0 */
    return p + NOTE_HDR;
}

static void prstatus64(uint8_t *d, const mrimg_x86_cpu *c)
{
    le32(d + 32, c->index + 1);
    const uint64_t *r = c->regs;
    const uint64_t v[27] = {
        r[15], r[14], r[13], r[12], r[MRIMG_REG_RBP], r[MRIMG_REG_RBX], r[11], r[10], r[9],
        r[8], r[MRIMG_REG_RAX], r[MRIMG_REG_RCX], r[MRIMG_REG_RDX], r[MRIMG_REG_RSI],
        r[MRIMG_REG_RDI], 0 /* orig_rax */, c->rip, c->seg[MRIMG_SEG_CS].selector, c->rflags,
        r[MRIMG_REG_RSP], c->seg[MRIMG_SEG_SS].selector, c->seg[MRIMG_SEG_FS].base,
        c->seg[MRIMG_SEG_GS].base, c->seg[MRIMG_SEG_DS].selector,
        c->seg[MRIMG_SEG_ES].selector, c->seg[MRIMG_SEG_FS].selector,
        c->seg[MRIMG_SEG_GS].selector,
    };
    for (unsigned i = 0; i < 27; i++)
        le64(d + 112 + 8 * i, v[i]);
}

static void prstatus32(uint8_t *d, const mrimg_x86_cpu *c)
{
    le32(d + 24, c->index + 1);
    uint8_t *g = d + 72;
    const uint64_t *r = c->regs;
    const unsigned gp[7] = {MRIMG_REG_RBX, MRIMG_REG_RCX, MRIMG_REG_RDX, MRIMG_REG_RSI,
                            MRIMG_REG_RDI, MRIMG_REG_RBP, MRIMG_REG_RAX};
    for (unsigned i = 0; i < 7; i++)
        le32(g + 4 * i, (uint32_t)r[gp[i]]);
    le16(g + 28, (uint16_t)c->seg[MRIMG_SEG_DS].selector);
    le16(g + 32, (uint16_t)c->seg[MRIMG_SEG_ES].selector);
    le16(g + 36, (uint16_t)c->seg[MRIMG_SEG_FS].selector);
    le16(g + 40, (uint16_t)c->seg[MRIMG_SEG_GS].selector);
    /* orig_eax at 44 stays 0 */
    le32(g + 48, (uint32_t)c->rip);
    le16(g + 52, (uint16_t)c->seg[MRIMG_SEG_CS].selector);
    le32(g + 56, (uint32_t)c->rflags);
    le32(g + 60, (uint32_t)r[MRIMG_REG_RSP]);
    le16(g + 64, (uint16_t)c->seg[MRIMG_SEG_SS].selector);
}

static void qemu_seg(uint8_t *d, const mrimg_x86_segment *s)
{
    le32(d, s->selector);
    le32(d + 4, s->limit);
    le32(d + 8, s->flags);
    le64(d + 16, s->base);
}

static void qemustate(uint8_t *d, const mrimg_x86_cpu *c)
{
    le32(d, 1);
    le32(d + 4, QEMUSTATE_SIZE);
    static const unsigned order[16] = {MRIMG_REG_RAX, MRIMG_REG_RBX, MRIMG_REG_RCX,
                                       MRIMG_REG_RDX, MRIMG_REG_RSI, MRIMG_REG_RDI,
                                       MRIMG_REG_RSP, MRIMG_REG_RBP, 8, 9, 10, 11, 12, 13, 14,
                                       15};
    for (unsigned i = 0; i < 16; i++)
        le64(d + 8 + 8 * i, c->regs[order[i]]);
    le64(d + 136, c->rip);
    le64(d + 144, c->rflags);
    static const unsigned segs[6] = {MRIMG_SEG_CS, MRIMG_SEG_DS, MRIMG_SEG_ES,
                                     MRIMG_SEG_FS, MRIMG_SEG_GS, MRIMG_SEG_SS};
    uint8_t *s = d + 152;
    for (unsigned i = 0; i < 6; i++, s += 24)
        qemu_seg(s, &c->seg[segs[i]]);
    qemu_seg(s, &c->ldt);
    qemu_seg(s + 24, &c->tr);
    qemu_seg(s + 48, &c->gdt);
    qemu_seg(s + 72, &c->idt);
    le64(d + 392, c->cr0);
    le64(d + 408, c->cr2);
    le64(d + 416, c->cr3);
    le64(d + 424, c->cr4);
    le64(d + 432, c->kernel_gs_base);
}

int guest_notes_build(const mrimg_cpus *cpus, uint8_t **buf, size_t *len, mrimg_error *err)
{
    *buf = NULL;
    *len = 0;
    if (!cpus->n)
        return 0;
    bool lma = (cpus->cpu[0].hflags & HF_LMA) != 0;
    size_t pr = lma ? PRSTATUS64_SIZE : PRSTATUS32_SIZE;
    size_t each = NOTE_HDR + pr + NOTE_HDR + QEMUSTATE_SIZE; /* both multiples of 4 */
    uint8_t *b = xcalloc(cpus->n, each, err);               /* n <= GUEST_CPU_MAX */
    if (!b)
        return MRIMG_ERR_NOMEM;
    uint8_t *p = b;
    for (unsigned i = 0; i < cpus->n; i++, p += NOTE_HDR + pr) {
        uint8_t *d = note_head(p, "CORE", (uint32_t)pr, 1 /* NT_PRSTATUS */);
        if (lma)
            prstatus64(d, &cpus->cpu[i]);
        else
            prstatus32(d, &cpus->cpu[i]);
    }
    for (unsigned i = 0; i < cpus->n; i++, p += NOTE_HDR + QEMUSTATE_SIZE)
        qemustate(note_head(p, "QEMU", QEMUSTATE_SIZE, 0), &cpus->cpu[i]);
    *buf = b;
    *len = (size_t)cpus->n * each;
    return 0;
}

#define GUEST_NOTE_MAX (1u << 20)

/* Guest-physical [gpa, gpa + n) from the "pc.ram" block into out; 1 if
 * read, 0 if that range is not known to be pc.ram at the same offset. */
static int read_low_ram(void *ctx, uint64_t gpa, size_t n, uint8_t *out, mrimg_error *err)
{
    mrimg_image *img = ctx;
    unsigned nb = mrimg_block_count(img), b;
    for (b = 0; b < nb; b++)
        if (!strcmp(mrimg_block(img, b)->name, "pc.ram"))
            break;
    if (b == nb || gpa > UINT64_MAX - n)
        return 0;
    const mrimg_ram_block_info *bi = mrimg_block(img, b);
    uint64_t end = gpa + n, limit = MRIMG_MIN(bi->used_length, (uint64_t)1 << 31);
    bool low = end <= 0xa0000, high = gpa >= 0x100000 && end <= limit;
    if (!(low || high) || !bi->page_size)
        return 0;
    uint64_t ps = bi->page_size, first = gpa / ps, last = (end - 1) / ps;
    size_t span = (size_t)((last - first + 1) * ps); /* n <= 1 MiB: small */
    uint8_t *pages = malloc(span);
    if (!pages)
        return err_nomem(err);
    int rc = mrimg_ram_read(img, b, first, last - first + 1, pages, err);
    if (rc == 0)
        memcpy(out, pages + (gpa - first * ps), n);
    free(pages);
    return rc < 0 ? rc : 1;
}

/* The guest's VMCOREINFO note as QEMU's dump copies it, or none (*n 0). */
static int guest_note(guest_phys_read_fn rd, void *ctx, const guest_vmci *v, uint8_t **note,
                      size_t *n, mrimg_error *err)
{
    *note = NULL;
    *n = 0;
    if (!v->present || !v->has || v->size < 12 || v->size > GUEST_NOTE_MAX ||
        v->guest_format != 1)
        return 0;
    uint8_t *b = malloc(v->size);
    if (!b)
        return err_nomem(err);
    int rc = rd(ctx, v->paddr, v->size, b, err);
    if (rc <= 0) {
        free(b);
        return rc;
    }
    uint32_t namesz = rd_le32(b), descsz = rd_le32(b + 4);
    uint64_t size = 12 + (((uint64_t)namesz + 3) & ~3ull) + (((uint64_t)descsz + 3) & ~3ull);
    if (namesz > GUEST_NOTE_MAX || descsz > GUEST_NOTE_MAX || size > v->size) {
        free(b);
        return 0;
    }
    /* QEMU terminates a VMCOREINFO descriptor in its copy (to parse it for
     * phys_base): the byte after the descriptor becomes 0, which shows
     * when that byte is padding inside the note */
    if (namesz == 11 && !memcmp(b + 12, "VMCOREINFO", 11) && 24 + (uint64_t)descsz < size)
        b[24 + descsz] = 0;
    *note = b;
    *n = (size_t)size;
    return 0;
}

int guest_notes_for(const mrimg_cpus *cpus, guest_phys_read_fn rd, void *ctx, uint8_t **buf,
                    size_t *len, mrimg_error *err)
{
    *buf = NULL;
    *len = 0;
    uint8_t *g = NULL;
    size_t gn = 0;
    int rc = guest_note(rd, ctx, &cpus->vmci, &g, &gn, err);
    if (rc == 0)
        rc = guest_notes_build(cpus, buf, len, err);
    if (rc == 0 && gn) {
        uint8_t *nb = realloc(*buf, *len + gn);
        if (!nb) {
            rc = err_nomem(err);
        } else {
            memcpy(nb + *len, g, gn);
            *buf = nb;
            *len += gn;
        }
    }
    if (rc < 0) {
        free(*buf);
        *buf = NULL;
        *len = 0;
    }
    free(g);
    return rc;
}

int guest_elf_notes(mrimg_image *img, uint8_t **buf, size_t *len, mrimg_error *err)
{
    *buf = NULL;
    *len = 0;
    mrimg_cpus *cpus;
    int rc = mrimg_cpus_read(img, &cpus, err);
    if (rc < 0)
        return rc;
    rc = guest_notes_for(cpus, read_low_ram, img, buf, len, err);
    mrimg_cpus_free(cpus);
    return rc;
}
