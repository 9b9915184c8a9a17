/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Until the vCPU decoder and note builder (lib/guest/notes.c) are part of
 * the library, ELF cores carry no PT_NOTE.  A weak definition: the real
 * guest_elf_notes() replaces it at link time; delete this file then. */
#include "guest.h"

__attribute__((weak)) int guest_elf_notes(mrimg_image *img, uint8_t **buf, size_t *len,
                                          mrimg_error *err)
{
    (void)img;
    (void)err;
    *buf = NULL;
    *len = 0;
    return 0;
}
