/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cpunotes IMAGE OUT: write the PT_NOTE contents that guest_elf_notes()
 * makes for IMAGE to OUT, for test_cpu.py to compare with the notes of
 * QEMU's own dump-guest-memory.  Exit 0, or 1 with the library's message. */
#include <stdio.h>
#include <stdlib.h>

#include "guest/cpu.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cpunotes IMAGE OUT\n");
        return 2;
    }
    mrimg_error err;
    mrimg_image *img = mrimg_open(argv[1], NULL, &err);
    if (!img) {
        fprintf(stderr, "cpunotes: %s: %s\n", argv[1], err.message);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = guest_elf_notes(img, &buf, &len, &err);
    mrimg_close(img);
    if (rc < 0) {
        fprintf(stderr, "cpunotes: %s: %s\n", argv[1], err.message);
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(argv[2]);
        free(buf);
        return 1;
    }
    free(buf);
    return 0;
}
