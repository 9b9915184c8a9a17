/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The output table (see outputs.h).  The row order is the mrimg_output
 * numbering, which is public: append new kinds at the end. */
#include <stdlib.h>

#include "outputs.h"
#include "guestout.h"

#define LIBVIRT(k, n, f)                                                                      \
    {{k, n, "libvirt save image, " n " payload", 1, 1, 0, f, 0, 0, NULL}, NULL, cv_pipe_stream,   \
     NULL, 0}

static const cv_output table[] = {
    LIBVIRT(MRIMG_OUT_RAW, "raw", MRIMG_FORMAT_RAW),
    LIBVIRT(MRIMG_OUT_GZIP, "gzip", MRIMG_FORMAT_GZIP),
    LIBVIRT(MRIMG_OUT_BZIP2, "bzip2", MRIMG_FORMAT_BZIP2),
    LIBVIRT(MRIMG_OUT_XZ, "xz", MRIMG_FORMAT_XZ),
    LIBVIRT(MRIMG_OUT_LZOP, "lzop", MRIMG_FORMAT_LZOP),
    LIBVIRT(MRIMG_OUT_ZSTD, "zstd", MRIMG_FORMAT_ZSTD),
    {{MRIMG_OUT_SPARSE, "sparse", "libvirt save image, mapped-ram payload (sparse file)",
      1, 1, 1, MRIMG_FORMAT_SPARSE, 1, 0, "a sparse (mapped-ram) image places pages by offset"},
     NULL, cv_pipe_stream, NULL, 0},
    {{MRIMG_OUT_QEMU, "qemu", "bare QEMU migration stream, plain layout", 0, 1, 0,
      MRIMG_FORMAT_RAW, 0, 0, NULL},
     "plain", cv_pipe_stream, NULL, 0},
    {{MRIMG_OUT_QEMU_MAPPED, "qemu-mapped", "bare QEMU migration stream, mapped-ram layout",
      0, 1, 1, MRIMG_FORMAT_SPARSE, 1, 0, "a mapped-ram stream places pages by offset"},
     "mapped", cv_pipe_stream, NULL, 0},
    {{MRIMG_OUT_RAM, "ram", "OUTPUT is a directory: one sparse raw file per RAM block", 0, 0,
      0, -1, 1, 1, "-O ram writes a directory of files"},
     NULL, cv_pipe_ram, NULL, CV_PLAN_REPLAY},
    {{MRIMG_OUT_ELF, "elf",
      "ELF core of guest-physical memory (as QEMU's dump-guest-memory writes), for crash, "
      "drgn, gdb",
      0, 0, 0, -1, 1, 0, "an ELF core is written by offset (its headers last)"},
     NULL, cv_pipe_walk, cv_elf, 0},
    {{MRIMG_OUT_PHYS, "phys", "flat sparse file: file offset = guest-physical address", 0, 0, 0,
      -1, 1, 0, "a guest-physical image places pages by address"},
     NULL, cv_pipe_walk, cv_phys, 0},
    {{MRIMG_OUT_KDUMP_ZLIB, "kdump-zlib",
      "compressed kdump of guest-physical memory, zlib pages (as QEMU's kdump-raw-zlib), "
      "for crash",
      0, 0, 0, -1, 1, 0, "a kdump file is written by offset (its descriptors are rewritten)"},
     NULL, cv_pipe_walk, cv_kdump, 0},
    {{MRIMG_OUT_KDUMP_LZO, "kdump-lzo",
      "compressed kdump of guest-physical memory, LZO pages (as QEMU's kdump-raw-lzo), "
      "for crash",
      0, 0, 0, -1, 1, 0, "a kdump file is written by offset (its descriptors are rewritten)"},
     NULL, cv_pipe_walk, cv_kdump, 0},
};

#define NROWS (sizeof(table) / sizeof(table[0]))

const cv_output *cv_output_row(int kind)
{
    if (kind < 0 || (size_t)kind >= NROWS)
        return NULL;
    return &table[kind];
}

const mrimg_output_desc *mrimg_output_info(unsigned kind)
{
    return kind < NROWS ? &table[kind].d : NULL;
}

const mrimg_output_desc *mrimg_output_by_name(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < NROWS; i++)
        if (!strcmp(table[i].d.name, name) || (table[i].alias && !strcmp(table[i].alias, name)))
            return &table[i].d;
    return NULL;
}
