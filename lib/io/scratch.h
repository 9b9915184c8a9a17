/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Anonymous scratch files: the RAM replay of plain streams, the parked
 * pages of -O phys.  Never a name in the file system once open. */
#ifndef MRIMG_IO_SCRATCH_H
#define MRIMG_IO_SCRATCH_H

#include <stddef.h>

#include "../util/util.h"

/* A new empty read-write file in $MRIMG_TMPDIR, else $TMPDIR, else
 * /var/tmp: O_TMPFILE, else mkstemp(tag-XXXXXX) unlinked at once.  Returns
 * the descriptor, or <0 with *err "cannot create a temporary file in DIR
 * for PURPOSE" (side: scratch).  dir (if not NULL, dir_cap bytes) receives
 * the directory, for later messages. */
MRIMG_INTERNAL int scratch_open(const char *tag, const char *purpose, char *dir, size_t dir_cap,
                                mrimg_error *err);

#endif
