/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Anonymous scratch files (scratch.h). */
#include "scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int scratch_open(const char *tag, const char *purpose, char *dir, size_t dir_cap,
                 mrimg_error *err)
{
    const char *d = getenv("MRIMG_TMPDIR");
    if (!d)
        d = getenv("TMPDIR");
    if (!d)
        d = "/var/tmp";
    if (dir && dir_cap)
        snprintf(dir, dir_cap, "%s", d);
    int fd = open(d, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s-XXXXXX", d, tag);
        fd = mkstemp(path);
        if (fd >= 0)
            unlink(path);
    }
    if (fd < 0)
        return err_side(err, MRIMG_SIDE_SCRATCH,
                        err_sys(err, errno, "cannot create a temporary file in %s for %s", d,
                                purpose));
    return fd;
}
