/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The container layer: libvirt's 92-byte save-image header, the metadata
 * region (domain XML, save cookie, padding), and the probe for bare QEMU
 * streams.  See docs/formats.md and the libvirt reference for the layout. */
#ifndef MRIMG_CONTAINER_LIBVIRT_H
#define MRIMG_CONTAINER_LIBVIRT_H

#include "../io/sink.h"
#include "../io/source.h"

#define LIBVIRT_MAGIC_FINAL "LibvirtQemudSave"
#define LIBVIRT_MAGIC_PARTIAL "LibvirtQemudPart"
#define LIBVIRT_MAGIC_LEN 16
#define LIBVIRT_PADDING 65536u  /* slack libvirt leaves after XML and cookie */
#define QEMU_STREAM_MAGIC "QEVM"

/* The fixed header as read, before any judgement: which magic, and the
 * five fields in the reading host's order after libvirt's byte-order
 * heuristic (swap when the version read natively is above 2). */
enum { CTR_MAGIC_NONE = 0, CTR_MAGIC_FINAL, CTR_MAGIC_PARTIAL, CTR_MAGIC_DAMAGED };
typedef struct ctr_header {
    int magic;               /* CTR_MAGIC_*; DAMAGED: starts "Libvirt" */
    bool complete_header;    /* all 92 bytes present */
    bool foreign_endian;
    uint32_t version, data_len, was_running, format, cookie_offset;
    uint32_t reserved_nonzero;
} ctr_header;

/* Decode the first `have` bytes of a file (have may be < 92). */
MRIMG_INTERNAL void ctr_decode(const uint8_t *h, size_t have, ctr_header *out);

/* Parse the container of src into *info.  The metadata region is copied
 * into *meta (owned by the caller, NUL-terminated strings point into it).
 * bare_offset: where a bare QEMU stream starts (used only without a libvirt
 * header).  A partial save parses fine (info->complete = 0). */
MRIMG_INTERNAL int ctr_read(mrimg_source *src, uint64_t bare_offset, mrimg_container_info *info,
                            char **meta, mrimg_error *err);

/* What to write in front of a payload. */
typedef struct ctr_out {
    uint32_t format;        /* mrimg_format */
    uint32_t was_running;
    const char *xml;        /* required */
    const char *cookie;     /* NULL: no cookie */
    uint32_t min_data_len;  /* keep at least this data_len (0: the default
                             * xml+1 + cookie+1 + 64 KiB) */
} ctr_out;

/* Size of the metadata region ctr_write() will use. */
MRIMG_INTERNAL int ctr_data_len(const ctr_out *o, uint32_t *data_len, mrimg_error *err);
/* Write header (partial magic, version 2, native byte order) + metadata at
 * the sink's current position (which must be 0). *payload_offset receives
 * 92 + data_len. */
MRIMG_INTERNAL int ctr_write(mrimg_sink *s, const ctr_out *o, uint64_t *payload_offset,
                             mrimg_error *err);

#endif
