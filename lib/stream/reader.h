/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU migration stream parser.
 *
 * It walks header, configuration section, every section and COMMAND record
 * up to the footer of the RAM section's END, decoding the RAM records of
 * both layouts (plain: MEM_SIZE, PAGE, ZERO, COMPRESS_PAGE, EOS,
 * MULTIFD_FLUSH; mapped-ram: block headers with absolute offsets, EOS).  What
 * follows the RAM END is the device-state tail: it has no lengths, so it is
 * read forward (at most SP_TAIL_MAX bytes) until the first EOF record whose
 * VMDESCRIPTION explains the device state before it, which ends the stream
 * (docs/layout.md); the tail up to there is passed on as opaque bytes, what
 * follows is counted as trailing bytes.  Events go to an sp_handler. */
#ifndef MRIMG_STREAM_READER_H
#define MRIMG_STREAM_READER_H

#include "bytes.h"

/* top-level record types */
#define QEMU_VM_EOF 0x00
#define QEMU_VM_SECTION_START 0x01
#define QEMU_VM_SECTION_PART 0x02
#define QEMU_VM_SECTION_END 0x03
#define QEMU_VM_SECTION_FULL 0x04
#define QEMU_VM_SUBSECTION 0x05
#define QEMU_VM_VMDESCRIPTION 0x06
#define QEMU_VM_CONFIGURATION 0x07
#define QEMU_VM_COMMAND 0x08
#define QEMU_VM_SECTION_FOOTER 0x7e

#define QEMU_FILE_MAGIC 0x5145564du
#define QEMU_FILE_VERSION 3u

/* RAM record flags */
#define RAM_FLAG_FULL 0x001
#define RAM_FLAG_ZERO 0x002
#define RAM_FLAG_MEM_SIZE 0x004
#define RAM_FLAG_PAGE 0x008
#define RAM_FLAG_EOS 0x010
#define RAM_FLAG_CONTINUE 0x020
#define RAM_FLAG_XBZRLE 0x040
#define RAM_FLAG_HOOK 0x080
#define RAM_FLAG_COMPRESS_PAGE 0x100
#define RAM_FLAG_MULTIFD_FLUSH 0x200

/* commands */
#define MIG_CMD_OPEN_RETURN_PATH 1
#define MIG_CMD_PING 2
#define MIG_CMD_POSTCOPY_ADVISE 3
#define MIG_CMD_POSTCOPY_LISTEN 4
#define MIG_CMD_POSTCOPY_RUN 5
#define MIG_CMD_POSTCOPY_RAM_DISCARD 6
#define MIG_CMD_PACKAGED 7
#define MIG_CMD_ENABLE_COLO 8
#define MIG_CMD_POSTCOPY_RESUME 9
#define MIG_CMD_RECV_BITMAP 10
#define MIG_CMD_SWITCHOVER_START 11
#define MIG_CMD_MAX 11

#define RAM_SECTION_VERSION 4
#define MAPPED_RAM_HDR_SIZE 28
#define MAPPED_RAM_VERSION 1
#define MAPPED_RAM_ALIGN (1u << 20)

#define SP_MAX_RAM_TOTAL (64ull << 40)    /* sum of block lengths */
#define SP_MAX_BLOCK_LEN (16ull << 40)
/* The end of the stream is searched for in at most SP_TAIL_MAX bytes after
 * the RAM END (device state + EOF + VMDESCRIPTION); at most
 * SP_TAIL_CANDIDATES EOF+VMDESCRIPTION look-alikes are parsed; trailing
 * data after the end is checked for zeros up to SP_TRAIL_CHECK bytes
 * (holes are skipped).  docs/limits.md. */
#define SP_TAIL_MAX (64u << 20)
#define SP_TAIL_CANDIDATES 16u
#define SP_TRAIL_CHECK (16u << 20)
#define SP_VMDESC_MAX (32u << 20)

#define CAP_MAPPED_RAM "mapped-ram"
#define CAP_X_IGNORE_SHARED "x-ignore-shared"

typedef struct sp_config {
    bool present;
    uint64_t start, end;               /* stream offsets of the whole record */
    char machine[MRIMG_NAME_MAX + 1];
    bool has_page_bits;
    uint32_t page_bits;
    unsigned ncaps;
    char caps[MRIMG_MAX_CAPS][MRIMG_NAME_MAX + 1];
    bool has_uuid;
    uint8_t uuid[16];
} sp_config;

typedef struct sp_block {
    char name[MRIMG_NAME_MAX + 1];
    uint8_t name_len;
    uint64_t used_length;
    uint64_t pages;
    bool has_psize;
    uint64_t psize;
    bool has_mr_addr;
    uint64_t mr_addr;
    bool mapped;
    uint32_t mversion;
    uint64_t mpage_size;
    uint64_t header_offset;            /* absolute file offset */
    uint64_t bitmap_offset, pages_offset;
} sp_block;

typedef struct sp_section {
    uint8_t type;
    uint32_t id;
    char idstr[MRIMG_NAME_MAX + 1];
    uint32_t instance, version;
    bool is_ram;
    bool footer;                       /* on_section_end: a footer was present */
    uint64_t start, end;               /* stream offsets (end: after footer) */
} sp_section;

typedef struct sp_command {
    uint16_t cmd, len;
    const uint8_t *data;
    uint64_t start;                    /* stream offset of the 0x08 byte */
} sp_command;

/* Event handler; every member may be NULL.  Returning <0 stops parsing. */
typedef struct sp_handler {
    int (*on_config)(void *ctx, const sp_config *c, mrimg_error *err);
    int (*on_section)(void *ctx, const sp_section *s, mrimg_error *err);
    int (*on_section_end)(void *ctx, const sp_section *s, mrimg_error *err);
    int (*on_command)(void *ctx, const sp_command *c, mrimg_error *err);
    int (*on_blocks)(void *ctx, const sp_block *b, unsigned n, mrimg_error *err);
    /* One page record.  data: page_size bytes, or NULL for a ZERO record.
     * pos: stream offset of the record. */
    int (*on_page)(void *ctx, unsigned block, uint64_t page, const uint8_t *data, uint64_t pos,
                   mrimg_error *err);
    /* The RAM part is over; the tail starts at stream offset pos. */
    int (*on_tail_start)(void *ctx, uint64_t pos, mrimg_error *err);
    /* The tail bytes up to the end of the stream, once its end is known
     * (not called when the stream ends inside the tail). */
    int (*on_tail)(void *ctx, const uint8_t *p, size_t n, mrimg_error *err);
} sp_handler;

/* What the parser is reading (sp_parser.at): names the part of the stream
 * an error is about, for the verifier's check names. */
enum {
    SP_AT_HEADER = 0, SP_AT_CONFIG, SP_AT_RECORD, SP_AT_SECTION, SP_AT_BLOCKS,
    SP_AT_MAPPED, SP_AT_RAM, SP_AT_FOOTER, SP_AT_COMMAND, SP_AT_TAIL
};

typedef struct sp_parser {
    srd *in;
    int at;                            /* SP_AT_*: what is being read */
    const sp_handler *h;
    void *ctx;
    mrimg_stream_info *si;             /* counters and offsets are filled in */
    sp_config cfg;
    sp_block *blocks;
    unsigned nblocks;
    uint16_t *hash;                    /* name -> block index + 1 */
    unsigned hash_size;
    int last_block;                    /* for CONTINUE, across sections */
    bool have_blocks;
    bool mapped, ignore_shared, postcopy;
    uint64_t postcopy_host_psize;
    uint64_t page_size;
    bool ram_seen;
    uint32_t ram_id;
    uint8_t *page_buf;                 /* COMPRESS_PAGE output */
    /* ordering of page records, to tell single- from multi-pass streams */
    unsigned ord_block;
    uint64_t ord_page;
    bool ord_started;
    uint64_t file_size;                /* for mapped-ram bounds */
    const mrimg_container_info *ci;    /* optional: names the container regions a
                                        * bad mapped-ram offset points into */
    bool footers;                      /* a RAM section had a footer */
    /* tail window: the whole tail from the RAM END (bytes past its end
     * may follow tail[tail_end]) */
    uint8_t *tail;
    size_t tail_len, tail_cap;
    uint64_t tail_start;               /* stream offset of tail[0] */
    size_t tail_end;                   /* end of the stream in the window */
    size_t tail_scan;                  /* candidates before this decided */
    size_t tail_text;                  /* the pending candidate's JSON bytes
                                        * before this are text (see json_text) */
    unsigned tail_tries;               /* JSON candidates parsed */
    bool tail_bad_set, tail_cut_set;   /* a rejected / a cut candidate */
    size_t tail_bad_eof, tail_bad_len, tail_cut_eof, tail_cut_len;
    bool trailing_unchecked;           /* trailing data beyond SP_TRAIL_CHECK */
    bool vmdesc_cut;                   /* the stream ends at its EOF record: the
                                        * VMDESCRIPTION after it is cut by the end
                                        * of the file/payload (its bytes are the
                                        * trailing bytes; tail_note says so) */
    char tail_note[512];               /* why the device state was not checked,
                                        * or why the description was rejected */
} sp_parser;

MRIMG_INTERNAL int sp_init(sp_parser *p, srd *in, uint64_t file_size, mrimg_stream_info *si,
                           const sp_handler *h, void *ctx, mrimg_error *err);
MRIMG_INTERNAL void sp_free(sp_parser *p);
/* Parse only the header and the configuration section. */
MRIMG_INTERNAL int sp_parse_head(sp_parser *p, mrimg_error *err);
/* Parse the whole stream.  On success the stream info is complete. */
MRIMG_INTERNAL int sp_parse(sp_parser *p, mrimg_error *err);

#endif
