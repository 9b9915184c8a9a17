/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vCPUs of a saved guest (cpu.c) and the ELF notes that describe them
 * in a core file (notes.c). */
#ifndef MRIMG_GUEST_CPU_H
#define MRIMG_GUEST_CPU_H

#include "../image.h"

/* Most vCPUs accepted (QEMU's PC machines allow at most 4096). */
#define GUEST_CPU_MAX 8192u

/* The "vmcoreinfo" device's state (hw/misc/vmcoreinfo.c): where the guest
 * put its VMCOREINFO ELF note, as the guest wrote it through fw_cfg. */
typedef struct guest_vmci {
    bool present;            /* the stream has a "vmcoreinfo" section */
    bool has;                /* has_vmcoreinfo: the guest filled it in */
    uint16_t guest_format;   /* 1: an ELF note */
    uint32_t size;
    uint64_t paddr;          /* guest-physical address of the note */
} guest_vmci;

struct mrimg_cpus {
    unsigned n;
    mrimg_x86_cpu *cpu;      /* n entries, in stream order (= vCPU order) */
    guest_vmci vmci;
};

/* Decode the vCPUs from the device state dev[0, eof) (dev[eof] is the EOF
 * byte; dev[0] lies at stream offset base), delimited with the
 * VMDESCRIPTION json[0, jlen).  Errors name the stream offset and the
 * field.  Pure: no image needed (unit tests, fuzzing). */
MRIMG_INTERNAL int guest_cpus_decode(const char *json, size_t jlen, const uint8_t *dev,
                                     size_t eof, uint64_t base, mrimg_cpus **out,
                                     mrimg_error *err);

/* The PT_NOTE contents for cpus, as QEMU's dump-guest-memory writes them
 * (see notes.c).  *buf is malloc'd; *len 0 when there is no vCPU. */
MRIMG_INTERNAL int guest_notes_build(const mrimg_cpus *cpus, uint8_t **buf, size_t *len,
                                     mrimg_error *err);

/* Reads n bytes of guest-physical memory at gpa into out: 1 when read, 0
 * when that memory is not available there, <0 on error. */
typedef int (*guest_phys_read_fn)(void *ctx, uint64_t gpa, size_t n, uint8_t *out,
                                  mrimg_error *err);

/* The PT_NOTE contents for cpus, the guest's VMCOREINFO note read with rd
 * (the ELF writer reads it from its own output, laid out by the memory
 * map; guest_elf_notes from pc.ram). */
MRIMG_INTERNAL int guest_notes_for(const mrimg_cpus *cpus, guest_phys_read_fn rd, void *ctx,
                                   uint8_t **buf, size_t *len, mrimg_error *err);

/* The PT_NOTE contents of an ELF core of the guest in img (also declared
 * in guest.h, which the ELF writer includes). */
MRIMG_INTERNAL int guest_elf_notes(mrimg_image *img, uint8_t **buf, size_t *len,
                                   mrimg_error *err);

#endif
