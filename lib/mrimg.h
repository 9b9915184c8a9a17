/*
 * mrimg.h - libmrimg, a library for libvirt save images and QEMU migration
 * streams.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libmrimg reads the files that `virsh save` and `virsh managedsave` write
 * (a 92-byte libvirt header, the domain XML, an optional save cookie, and a
 * QEMU migration stream that is either plain, compressed with gzip, bzip2,
 * xz, lzop or zstd, or laid out in QEMU's mapped-ram format), as well as bare
 * QEMU migration streams written by `migrate file:PATH`.  It decodes every
 * payload in-process, parses the migration stream, gives a uniform view of
 * guest RAM over both RAM layouts, and converts and verifies images.
 *
 * Conventions
 * -----------
 * - Every function that can fail takes a `mrimg_error *err` as its last
 *   argument (which may be NULL) and returns a negative mrimg_code, or NULL,
 *   on failure.  The library never prints, never exits and never aborts on
 *   bad input: every problem becomes an error value that names the file
 *   offset concerned and what was expected there.
 * - Inputs are opened read-only and are never modified, except by the
 *   explicitly in-place operation mrimg_sparsify().
 * - Handles are not thread-safe: use one handle per thread.  Different
 *   handles may be used concurrently.
 * - How the API grows (docs/design.md, "A stable API"): the caller never
 *   allocates a struct whose size the library may change.  Options are
 *   opaque handles set as (parameter, value) pairs whose bounds can be
 *   queried (mrimg_param_bounds); results are either handed out by the
 *   library (a const pointer, or a struct it allocates and frees) and may
 *   gain fields at their end, or are "versioned" structs whose first field
 *   `size` the caller sets to sizeof as it was compiled (the library fills
 *   only what fits).  Arrays are read through count + index queries.
 * - Stable and experimental API: everything in this header is stable
 *   (source and binary compatible within a major version) except the
 *   section guarded by MRIMG_EXPERIMENTAL_API, which is declared only when
 *   the caller defines that macro before including mrimg.h, and which may
 *   change in any release (as zstd's ZSTD_STATIC_LINKING_ONLY).
 * - Sizes and offsets are uint64_t bytes.  "File offsets" are absolute
 *   positions in the input file; "stream offsets" are positions in the
 *   (decompressed) QEMU migration stream, 0 being its first magic byte.
 *
 * Resource bounds (see docs/limits.md): XML and cookie <= 64 MiB together
 * (data_len cap), <= 4096 RAM blocks, RAM block names <= 255 bytes, a RAM block
 * <= 16 TiB and the sum of all blocks <= 64 TiB, at most 64 capabilities in
 * the configuration section, a VMDESCRIPTION JSON <= 64 MiB.  Memory used by
 * the library is bounded by these caps and by the bitmaps (1 bit per guest
 * page, 32 KiB per GiB of guest RAM), never by a length read from a file.
 */
#ifndef MRIMG_H
#define MRIMG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define MRIMG_API __attribute__((visibility("default")))
#else
#define MRIMG_API
#endif

/* ======================================================================
 * Version
 * ====================================================================== */

#define MRIMG_VERSION_MAJOR 0
#define MRIMG_VERSION_MINOR 1
#define MRIMG_VERSION_PATCH 0
#define MRIMG_VERSION_STRING "0.1.0"

/*! mrimg_version_string(): the version of the library actually linked. */
MRIMG_API const char *mrimg_version_string(void);

/* ======================================================================
 * Errors
 * ====================================================================== */

typedef enum mrimg_code {
    MRIMG_OK = 0,
    MRIMG_ERR_IO = -1,          /* a system call failed (sys_errno is set) */
    MRIMG_ERR_NOMEM = -2,       /* out of memory */
    MRIMG_ERR_INVAL = -3,       /* invalid argument from the caller */
    MRIMG_ERR_FORMAT = -4,      /* the input is corrupt or not what it claims */
    MRIMG_ERR_TRUNCATED = -5,   /* the input ends before it should */
    MRIMG_ERR_INCOMPLETE = -6,  /* a partial save (magic LibvirtQemudPart) */
    MRIMG_ERR_UNSUPPORTED = -7, /* valid, but a feature this library refuses */
    MRIMG_ERR_CHECKSUM = -8,    /* a codec checksum does not match */
    MRIMG_ERR_LIMIT = -9,       /* a value exceeds a documented resource cap */
    MRIMG_ERR_EXISTS = -10,     /* the output exists and overwriting was not asked */
    MRIMG_ERR_NOSPC = -11,      /* no space left on the output device */
    MRIMG_ERR_INTERRUPTED = -12 /* cancelled through the progress callback */
} mrimg_code;

/* Where mrimg_error.offset points. */
typedef enum mrimg_offset_kind {
    MRIMG_OFF_NONE = 0,   /* no offset applies */
    MRIMG_OFF_FILE = 1,   /* absolute offset in the file */
    MRIMG_OFF_STREAM = 2  /* offset in the decompressed migration stream */
} mrimg_offset_kind;

/* Which file an error is about, as the I/O layer knows it: so that a tool
 * can name the right file and tell "cannot read the input" from "cannot
 * write the output" without guessing from the code.  Messages call the
 * input and the output by their role ("the input", "standard input", "the
 * output"), never by the path the caller gave: the caller puts that in
 * front, as the tools do ("imginfo: vm.sav: cannot open the input: ...").
 * A scratch file, and a file inside an output directory (MRIMG_OUT_RAM),
 * are named. */
typedef enum mrimg_side {
    MRIMG_SIDE_NONE = 0,    /* not an error of a file (argument, memory) */
    MRIMG_SIDE_INPUT = 1,   /* the image being read (or sparsified in place) */
    MRIMG_SIDE_OUTPUT = 2,  /* the output being written (or its directory) */
    MRIMG_SIDE_SCRATCH = 3  /* a temporary file of the library in $MRIMG_TMPDIR,
                             * $TMPDIR or /var/tmp (the RAM replay file) */
} mrimg_side;

typedef struct mrimg_error {
    mrimg_code code;
    int sys_errno;                 /* errno for MRIMG_ERR_IO / NOSPC, else 0 */
    mrimg_offset_kind offset_kind;
    uint64_t offset;
    /* Set by the I/O layer on every error it raises (open, read, write,
     * sync, rename, short file); MRIMG_SIDE_NONE for errors of the content
     * (format, checksum, ...) found by the layers above, which are about
     * the input. */
    mrimg_side side;
    /* Human-readable text, already naming the offset, e.g.
     * "at file offset 0x5c: expected QEMU stream magic QEVM, found 1f 8b 08 00" */
    char message[512];
} mrimg_error;

/*! mrimg_code_name(): a stable short name ("format", "truncated", ...). */
MRIMG_API const char *mrimg_code_name(mrimg_code code);

/*! mrimg_side_name(): "none", "input", "output" or "scratch". */
MRIMG_API const char *mrimg_side_name(mrimg_side side);

/*! mrimg_error_clear(): reset *err to MRIMG_OK. */
MRIMG_API void mrimg_error_clear(mrimg_error *err);

/* ======================================================================
 * Progress and cancellation
 * ====================================================================== */

/* Called from long operations with the work done and the total (0 if the
 * total is unknown).  Returning non-zero cancels the operation, which then
 * fails with MRIMG_ERR_INTERRUPTED. */
typedef int (*mrimg_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* ======================================================================
 * Options: (parameter, value) pairs on opaque handles
 * ====================================================================== */
/* Each operation that takes options has its own opaque handle
 * (mrimg_open_opts, mrimg_verify_opts, mrimg_convert_opts), created with
 * defaults by *_create(), changed by *_set() and freed by *_free().  The
 * parameters form one list; a parameter that does not apply to a handle's
 * operation is refused by its setter (MRIMG_ERR_INVAL), as is a value out of
 * the parameter's bounds.  Value 0 means "the default" wherever 0 is not a
 * meaningful value of its own.  New parameters are added with new numbers;
 * numbers are never reused. */
typedef enum mrimg_param {
    /* open, verify: bare QEMU streams: file offset where the stream starts
     * (the `offset=` of a `file:` URI); ignored when the file has a libvirt
     * header.  With 0 a bare stream must start at offset 0.  [0, 2^63) */
    MRIMG_P_STREAM_OFFSET = 1,
    /* open, verify, convert: threads for decoders and encoders: 0 one per
     * online CPU; more than the online CPUs are clamped to them (outputs do
     * not depend on the count).  [0, 1024] */
    MRIMG_P_THREADS = 2,
    /* verify: problems kept in the result, 0 MRIMG_VERIFY_MAX_PROBLEMS; the
     * rest are only counted.  [0, 2^32) */
    MRIMG_P_MAX_PROBLEMS = 10,
    /* verify: 1 = mapped-ram: do not read the page data.  [0, 1] */
    MRIMG_P_SKIP_DATA = 11,
    /* convert: the output kind, a mrimg_output (default MRIMG_OUT_RAW). */
    MRIMG_P_OUTPUT = 20,
    /* convert: compression level, -1 the libvirt default (gzip 6, bzip2 9,
     * xz 3, lzop 3, zstd 3).  The bounds below are those of every codec
     * together; the chosen output's own range is that of its payload format
     * (mrimg_format_levels), checked by mrimg_convert. */
    MRIMG_P_LEVEL = 21,
    /* convert: 1 = replace an existing output.  [0, 1] */
    MRIMG_P_FORCE = 22,
    /* convert: 1 = plain output: rewrite a multi-pass stream as one pass
     * (last record of each page wins).  [0, 1] */
    MRIMG_P_COMPACT = 23,
    /* convert: the libvirt header's running flag: -1 keep, 0 paused,
     * 1 running.  [-1, 1], default -1 */
    MRIMG_P_RUNNING = 24,
    /* convert: 1 = convert a partial save whose stream is whole (the one
     * problem of the judgement let through).  [0, 1] */
    MRIMG_P_ALLOW_INCOMPLETE = 25,
    /* convert: 1 = sparse outputs: reserve the data runs before writing
     * (needs a sparse or raw input, whose pages with data are known after
     * reading its metadata; a full disk fails at the start).  [0, 1] */
    MRIMG_P_PREALLOCATE = 26
} mrimg_param;

/*! mrimg_param_bounds(): the values parameter p accepts, [*min, *max], and
 *  its default *def; any pointer may be NULL.
 *  @return 0, or MRIMG_ERR_INVAL for an unknown parameter. */
MRIMG_API int mrimg_param_bounds(mrimg_param p, int64_t *min, int64_t *max, int64_t *def);

/*! mrimg_param_name(): "stream-offset", "threads", "level", ...; NULL if
 *  unknown. */
MRIMG_API const char *mrimg_param_name(mrimg_param p);

/* ======================================================================
 * Formats and codecs
 * ====================================================================== */

/* libvirt's save-image formats: the values are the libvirt on-disk
 * `format` field.  A format's payload is encoded by a codec (below), except
 * sparse, whose payload is QEMU's mapped-ram layout of raw pages. */
typedef enum mrimg_format {
    MRIMG_FORMAT_NONE = -1,    /* no libvirt format (a codec libvirt lacks) */
    MRIMG_FORMAT_RAW = 0,
    MRIMG_FORMAT_GZIP = 1,
    MRIMG_FORMAT_BZIP2 = 2,
    MRIMG_FORMAT_XZ = 3,
    MRIMG_FORMAT_LZOP = 4,
    MRIMG_FORMAT_ZSTD = 5,
    MRIMG_FORMAT_SPARSE = 6,
    MRIMG_FORMAT_COUNT = 7
} mrimg_format;

/*! mrimg_format_name(): "raw", "gzip", ..., "sparse"; NULL if unknown. */
MRIMG_API const char *mrimg_format_name(int format);
/*! mrimg_format_from_name(): the inverse; -1 if unknown. */
MRIMG_API int mrimg_format_from_name(const char *name);
/*! mrimg_format_levels(): the compression levels the encoder of a libvirt
 *  FORMAT accepts, [*min, *max], and its default (*def, what libvirt's
 *  tools use); any pointer may be NULL.
 *  @return 0, or -1 if the format takes no level (raw, sparse, unknown). */
MRIMG_API int mrimg_format_levels(int format, int *min, int *max, int *def);

/* A codec: one encoding of a payload (the migration stream), with a
 * decoder and an encoder.  Codecs are numbered by an id of their own,
 * 0, 1, 2, ... with no gaps; new codecs are only ever appended, so an id
 * keeps its meaning across versions.  The id is not libvirt's format
 * number: a codec may have no libvirt format, and a libvirt format may have
 * no codec (sparse).  Lists of formats and levels (a tool's --help) are
 * meant to be built from this table, never written by hand:
 *
 *     const mrimg_codec_desc *d;
 *     for (int id = 0; (d = mrimg_codec_info(id)) != NULL; id++)
 *         printf("%s\n", d->name);
 */
typedef struct mrimg_codec_desc {
    const char *name;     /* "gzip": lower case; for a codec with a libvirt
                           * format, that format's name too */
    int format;           /* its libvirt format (mrimg_format), or
                           * MRIMG_FORMAT_NONE */
    int has_levels;       /* 1 if the encoder takes a compression level */
    int level_min;        /* with has_levels: the levels the encoder */
    int level_max;        /*   accepts, [level_min, level_max], and */
    int level_default;    /*   its default (what libvirt's tools use);
                           *   all 0 otherwise */
    int parallel;         /* 1 if the encoder runs on several threads (the
                           * output is the same for every thread count) */
    /* fields are only ever appended: the descriptor is the library's */
} mrimg_codec_desc;

/*! mrimg_codec_info(): the codec with id ID.
 *  @return a descriptor owned by the library (valid for the life of the
 *  process, never to be freed), or NULL if there is no codec ID: ids run
 *  from 0 to the first one that returns NULL. */
MRIMG_API const mrimg_codec_desc *mrimg_codec_info(int id);
/*! mrimg_codec_from_name(): the id of the codec NAME (any case); -1 if
 *  none. */
MRIMG_API int mrimg_codec_from_name(const char *name);
/*! mrimg_codec_from_format(): the id of the codec of a libvirt FORMAT's
 *  payload; -1 if it has none (sparse) or FORMAT is unknown. */
MRIMG_API int mrimg_codec_from_format(int format);

/* ======================================================================
 * Opening an image
 * ====================================================================== */

typedef struct mrimg_image mrimg_image;

/* Options of mrimg_open: MRIMG_P_STREAM_OFFSET, MRIMG_P_THREADS. */
typedef struct mrimg_open_opts mrimg_open_opts;

/*! mrimg_open_opts_create(): a handle with every default; NULL when out of
 *  memory.  mrimg_open_opts_free() accepts NULL. */
MRIMG_API mrimg_open_opts *mrimg_open_opts_create(void);
MRIMG_API void mrimg_open_opts_free(mrimg_open_opts *o);
/*! mrimg_open_opts_set(), _get(): see mrimg_param.
 *  @return 0, or MRIMG_ERR_INVAL (a parameter that does not apply, a value
 *  out of bounds). */
MRIMG_API int mrimg_open_opts_set(mrimg_open_opts *o, mrimg_param p, int64_t value,
                                  mrimg_error *err);
MRIMG_API int mrimg_open_opts_get(const mrimg_open_opts *o, mrimg_param p, int64_t *value,
                                  mrimg_error *err);

/*! mrimg_open():
 *  Open PATH read-only and parse its container: the libvirt header, XML and
 *  cookie, or the QEMU stream magic of a bare stream.  The payload is not
 *  read yet.  A partial save (LibvirtQemudPart) opens successfully: check
 *  mrimg_container_info.complete.  opts may be NULL.  PATH must be a
 *  regular file, a block device or a pipe/FIFO (/dev/stdin in a pipeline):
 *  a directory, socket or character device fails at once with
 *  MRIMG_ERR_IO.  A pipe is read forward once (see docs/design.md,
 *  "Endpoints"): the open never waits for a FIFO's writer (its first read
 *  waits at most a second for one, then fails with MRIMG_ERR_IO), a
 *  mapped-ram image on a pipe fails here with MRIMG_ERR_IO (ESPIPE), and an
 *  operation that would read the pipe twice fails with MRIMG_ERR_IO
 *  (ESPIPE) before reading.
 *  @return a handle, or NULL with *err set. */
MRIMG_API mrimg_image *mrimg_open(const char *path, const mrimg_open_opts *opts,
                                  mrimg_error *err);

/*! mrimg_cleanup_temporaries(): remove every temporary output file the
 *  library has created and not yet committed (and an `-O ram` directory
 *  the running conversion created).  Async-signal-safe: call it from the
 *  handler of any terminating signal before re-raising the signal. */
MRIMG_API void mrimg_cleanup_temporaries(void);

/*! mrimg_close(): release everything; NULL is accepted. */
MRIMG_API void mrimg_close(mrimg_image *img);

/* ----------------------------------------------------------------------
 * Container
 * ---------------------------------------------------------------------- */

#define MRIMG_HEADER_SIZE 92u
#define MRIMG_DATA_LEN_MAX (64u * 1024u * 1024u) /* cap on data_len */

typedef struct mrimg_container_info {
    int is_libvirt;        /* 1: libvirt header; 0: bare QEMU stream */
    int complete;          /* 1: LibvirtQemudSave; 0: LibvirtQemudPart */
    int foreign_endian;    /* header fields were byte-swapped to be read */
    uint32_t version;      /* 1 or 2 */
    uint32_t data_len;     /* metadata region size (XML+cookie+padding) */
    uint32_t was_running;  /* raw value; non-zero means running */
    uint32_t format;       /* mrimg_format */
    uint32_t cookie_offset;/* relative to byte 92; 0 = no cookie */
    uint32_t reserved_nonzero; /* count of reserved words that are not 0 */
    const char *xml;       /* NUL-terminated domain XML ("" for bare) */
    size_t xml_len;        /* strlen(xml) */
    const char *cookie;    /* NUL-terminated cookie XML, or NULL */
    size_t cookie_len;
    uint64_t padding_nonzero; /* non-zero bytes in the padding */
    uint64_t payload_offset;  /* 92 + data_len, or the bare stream offset */
    uint64_t file_size;       /* logical size (st_size); for a pipe 0 until
                               * its end was read (mrimg_scan, mrimg_check) */
    uint64_t file_allocated;  /* st_blocks * 512 */
    int payload_format;    /* effective payload encoding (mrimg_format);
                            * version-1 headers always give RAW */
} mrimg_container_info;

MRIMG_API const mrimg_container_info *mrimg_container(const mrimg_image *img);

/* ----------------------------------------------------------------------
 * Stream scan: one pass over the payload that parses the whole migration
 * stream and fills the stream and RAM summaries below.  For mapped-ram
 * payloads it reads only headers and bitmaps (and, with
 * MRIMG_SCAN_CONTENT, the pages, to count zero-filled ones); for plain
 * payloads it reads and decodes everything, and counts the zero-filled
 * data pages on the way (its scan covers MRIMG_SCAN_CONTENT).
 * ---------------------------------------------------------------------- */

#define MRIMG_SCAN_CONTENT 0x1u /* mapped-ram: read pages to find zero ones */

#define MRIMG_NAME_MAX 255
#define MRIMG_MAX_BLOCKS 4096
#define MRIMG_MAX_CAPS 64

typedef struct mrimg_ram_block_info {
    char name[MRIMG_NAME_MAX + 1];
    uint64_t used_length;     /* bytes, from the block list */
    uint64_t page_size;       /* target page size used for this block */
    uint64_t pages;           /* used_length / page_size */
    uint64_t pages_data;      /* pages whose final content is data */
    uint64_t pages_zero;      /* pages known to be zero (record or bitmap) */
    uint64_t pages_absent;    /* plain: pages never sent */
    uint64_t records;         /* plain: PAGE+ZERO records for this block */
    int has_postcopy_page_size; uint64_t postcopy_page_size;
    int has_mr_addr; uint64_t mr_addr;
    /* mapped-ram only */
    int mapped;
    uint32_t mapped_version;
    uint64_t bitmap_offset;   /* absolute file offset */
    uint64_t bitmap_size;     /* bytes */
    uint64_t pages_offset;    /* absolute file offset of page 0 */
    uint64_t header_offset;   /* absolute file offset of the 28-byte header */
    uint64_t pages_zero_filled; /* with MRIMG_SCAN_CONTENT: final content is
                                 * data (mapped-ram: bit set), bytes 0; a plain
                                 * stream's scan always counts them */
} mrimg_ram_block_info;

typedef struct mrimg_stream_info {
    uint64_t stream_offset;   /* file offset of the magic (raw/sparse) */
    uint32_t stream_version;  /* 3 */
    int has_config;
    char machine[MRIMG_NAME_MAX + 1];
    int has_page_bits; uint32_t page_bits;
    unsigned ncaps;           /* capabilities: mrimg_stream_capability() */
    int has_uuid; uint8_t uuid[16];
    int mapped_ram;           /* configuration lists mapped-ram */
    int x_ignore_shared;
    uint64_t target_page_size;
    /* records before the tail */
    uint64_t sections_start, sections_part, sections_end, sections_full;
    uint64_t commands;        /* COMMAND records before the tail */
    uint64_t cmd_counts[16];  /* per command id 0..15 (ids above counted in 0) */
    uint32_t ram_section_id;
    uint64_t ram_sections;    /* START + PART + END of the ram section */
    int multi_pass;           /* plain: some page was sent more than once */
    int ordered;              /* plain: records in block-list / page order */
    uint64_t page_records, zero_records, xbzrle_records;
    uint64_t ram_total;       /* MEM_SIZE total bytes */
    unsigned nblocks;
    /* where things are, as stream offsets */
    uint64_t ram_end;         /* first byte after the RAM END footer */
    uint64_t tail_size;       /* bytes from ram_end to the end of the stream */
    uint64_t stream_size;     /* bytes of the whole (decompressed) stream: up to
                               * the end of its VMDESCRIPTION (or its EOF
                               * record), found from the stream's structure,
                               * trailing bytes excluded (docs/layout.md) */
    int has_eof;              /* EOF byte found at the end of the devices */
    uint64_t eof_offset;      /* stream offset of the EOF byte */
    int has_vmdesc;
    uint64_t vmdesc_offset, vmdesc_size; /* JSON bytes */
    int devices_walked;       /* the VMDESCRIPTION JSON explained every byte of
                               * the device state (framing checked) */
    uint64_t device_sections; /* device (FULL) sections in the tail, counted
                               * by that walk; 0 when it was not possible */
    uint64_t trailing_bytes;  /* bytes after the stream's end (never device state;
                               * also the partial VMDESCRIPTION of a stream cut
                               * inside its JSON, which then ends at its EOF) */
    int trailing_zero;        /* ... and all of them are known to be zero (holes
                               * are; at most 16 MiB of data is read to check) */
    /* payload (compressed) */
    uint64_t payload_size;    /* bytes of payload in the file */
    uint64_t payload_members; /* gzip members / xz streams / zstd frames... */
    uint64_t payload_trailing;/* bytes after the last compressed member */
    int payload_trailing_zero;
} mrimg_stream_info;

/*! mrimg_scan(): parse the whole stream (see above).  Results are cached in
 *  the handle; a second call returns at once.  progress may be NULL.
 *  @return MRIMG_OK or a negative code. */
MRIMG_API int mrimg_scan(mrimg_image *img, unsigned flags,
                         mrimg_progress_fn progress, void *opaque,
                         mrimg_error *err);

MRIMG_API const mrimg_stream_info *mrimg_stream(const mrimg_image *img);
/*! mrimg_stream_capability(): the name of capability i (0 <= i < ncaps,
 *  in the configuration section's order) of a scanned image, valid until
 *  mrimg_close; NULL when out of range. */
MRIMG_API const char *mrimg_stream_capability(const mrimg_image *img, unsigned i);
MRIMG_API unsigned mrimg_block_count(const mrimg_image *img);
MRIMG_API const mrimg_ram_block_info *mrimg_block(const mrimg_image *img,
                                                  unsigned index);

/* ======================================================================
 * RAM view: guest RAM over either stream layout
 * ====================================================================== */

/* Receives guest RAM in canonical order: blocks in block-list order, pages
 * ascending, every page of every block exactly once.
 *  data != NULL: npages pages of content, npages * page_size bytes (a page
 *                may still happen to be all zero);
 *  data == NULL: npages pages that are zero (a ZERO record, a clear
 *                mapped-ram bit, or never sent).
 * block == MRIMG_WALK_RESTART: forget everything received so far; the walk
 * starts again from the first page (happens once, on plain streams found to
 * be multi-pass or out of order while walking).
 * Return 0 to go on, <0 (with *err set) to stop the walk. */
#define MRIMG_WALK_RESTART 0xffffffffu
typedef int (*mrimg_ram_fn)(void *opaque, unsigned block, uint64_t first_page,
                            uint64_t npages, const uint8_t *data, mrimg_error *err);

/*! mrimg_ram_walk(): deliver all of guest RAM to fn (see above), with the
 *  last record of each page winning.  Mapped-ram: bitmap order, reading only
 *  set pages and only data extents.  Plain: one pass when the stream is a
 *  single ordered pass (and the scan results are filled in on the way);
 *  otherwise the stream is replayed once into a temporary sparse file in
 *  $TMPDIR and walked from there.
 *  @return MRIMG_OK or a negative code. */
MRIMG_API int mrimg_ram_walk(mrimg_image *img, mrimg_ram_fn fn, void *opaque,
                             mrimg_progress_fn progress, void *pctx, mrimg_error *err);

/*! mrimg_ram_read(): random access to the final content of pages
 *  [first_page, first_page + npages) of block `block` into buf (npages *
 *  page_size bytes; zero for pages that hold no data).  Needs a scan (done
 *  on demand).  On plain streams the first call replays the stream into a
 *  temporary sparse file ($TMPDIR) that later calls read from. */
MRIMG_API int mrimg_ram_read(mrimg_image *img, unsigned block, uint64_t first_page,
                             uint64_t npages, void *buf, mrimg_error *err);

/*! mrimg_ram_page_has_data(): 1 if the page's final record is data (PAGE
 *  record / mapped-ram bit set), 0 if it is zero or absent, <0 on error
 *  (needs a scan, done on demand). */
MRIMG_API int mrimg_ram_page_has_data(mrimg_image *img, unsigned block, uint64_t page,
                                      mrimg_error *err);

/* ======================================================================
 * Conversion
 * ====================================================================== */

/* ---- Output kinds ----------------------------------------------------------
 * What mrimg_convert writes, one row of the library's output table each.
 * The values are dense from 0 (MRIMG_OUT_RAW .. MRIMG_OUT_SPARSE equal the
 * libvirt payload formats they write); a new kind gets the next number, so a
 * caller lists them all with mrimg_output_info(0), (1), ... until NULL,
 * never with a count compiled in. */
typedef enum mrimg_output {
    MRIMG_OUT_RAW = 0,        /* libvirt save image, raw payload */
    MRIMG_OUT_GZIP = 1,       /* ... gzip payload */
    MRIMG_OUT_BZIP2 = 2,
    MRIMG_OUT_XZ = 3,
    MRIMG_OUT_LZOP = 4,
    MRIMG_OUT_ZSTD = 5,
    MRIMG_OUT_SPARSE = 6,     /* ... mapped-ram payload ("sparse") */
    MRIMG_OUT_QEMU = 7,       /* bare QEMU stream, plain layout */
    MRIMG_OUT_QEMU_MAPPED = 8,/* bare QEMU stream, mapped-ram layout */
    MRIMG_OUT_RAM = 9,        /* a directory: one sparse raw file per RAM block */
    MRIMG_OUT_ELF = 10,       /* an ELF64 core of guest-physical memory, as
                               * QEMU's dump-guest-memory (paging off) writes */
    MRIMG_OUT_PHYS = 11,      /* a flat sparse file: offset = guest-physical address */
    MRIMG_OUT_KDUMP_ZLIB = 12,/* compressed kdump (makedumpfile "KDUMP", pages zlib),
                               * as dump-guest-memory format kdump-raw-zlib writes */
    MRIMG_OUT_KDUMP_LZO = 13  /* the same with LZO1X pages (kdump-raw-lzo) */
} mrimg_output;

/* One row of the output table; owned by the library (may gain fields at
 * its end). */
typedef struct mrimg_output_desc {
    mrimg_output kind;
    const char *name;         /* the -O name of imgconv: "zstd", "qemu-mapped" */
    const char *summary;      /* one line for --help */
    int libvirt;              /* a libvirt save image (header, XML, cookie):
                               * a replacement XML, cookie or running flag
                               * applies */
    int stream;               /* a QEMU migration stream (libvirt or bare) */
    int mapped;               /* ... in the mapped-ram layout (--preallocate
                               * applies; --compact does not) */
    int payload_format;       /* the mrimg_format of the stream's payload:
                               * the libvirt header's format field, raw for
                               * the bare plain stream, sparse for the bare
                               * mapped-ram one; -1 for outputs that are no
                               * migration stream */
    int needs_seek;           /* written positionally or with holes: needs a
                               * seekable output file, never a pipe */
    int directory;            /* the output path names a directory */
    const char *seek_reason;  /* needs_seek: why, in a few words ("a mapped-ram
                               * stream places pages by offset"); else NULL */
} mrimg_output_desc;

/*! mrimg_output_info(): the row of output kind `kind`; NULL past the last
 *  one (iterate from 0). */
MRIMG_API const mrimg_output_desc *mrimg_output_info(unsigned kind);
/*! mrimg_output_by_name(): the row whose name (or alias: "plain" for
 *  "qemu", "mapped" for "qemu-mapped") is `name`; NULL if none. */
MRIMG_API const mrimg_output_desc *mrimg_output_by_name(const char *name);

/*! mrimg_xml_check(): whether xml is a well-formed XML document with a
 *  <domain> root holding <name> and <uuid> (what a replacement XML must
 *  be for libvirt to restore the image; mrimg_convert checks it too).
 *  Bounded; no external XML library.  @return 0 or MRIMG_ERR_INVAL. */
MRIMG_API int mrimg_xml_check(const char *xml, mrimg_error *err);

/*! mrimg_cookie_check(): whether cookie is a well-formed XML document with
 *  a <cookie> root, what libvirt writes as a save cookie (the guest CPU
 *  definition and flags such as <slirpHelper/>) and parses on restore.
 *  @return 0 or MRIMG_ERR_INVAL. */
MRIMG_API int mrimg_cookie_check(const char *cookie, mrimg_error *err);

/* ---- Conversion options ----------------------------------------------------
 * MRIMG_P_OUTPUT, _LEVEL, _THREADS, _FORCE, _COMPACT, _RUNNING,
 * _ALLOW_INCOMPLETE, _PREALLOCATE (see mrimg_param), plus the strings and
 * callbacks of their own setters below. */
typedef struct mrimg_convert_opts mrimg_convert_opts;

/*! mrimg_convert_opts_create(): a handle with every default (a raw libvirt
 *  image, the libvirt level, keep XML, cookie and running flag); NULL when
 *  out of memory.  mrimg_convert_opts_free() accepts NULL. */
MRIMG_API mrimg_convert_opts *mrimg_convert_opts_create(void);
MRIMG_API void mrimg_convert_opts_free(mrimg_convert_opts *o);
/*! mrimg_convert_opts_set(), _get(): see mrimg_param.
 *  @return 0, or MRIMG_ERR_INVAL (a parameter that does not apply, a value
 *  out of bounds, an unknown output kind). */
MRIMG_API int mrimg_convert_opts_set(mrimg_convert_opts *o, mrimg_param p, int64_t value,
                                     mrimg_error *err);
MRIMG_API int mrimg_convert_opts_get(const mrimg_convert_opts *o, mrimg_param p,
                                     int64_t *value, mrimg_error *err);
/*! mrimg_convert_opts_set_xml(): a replacement domain XML (copied; NULL
 *  keeps the input's), libvirt outputs only; mrimg_convert checks it with
 *  mrimg_xml_check.  @return 0 or MRIMG_ERR_NOMEM. */
MRIMG_API int mrimg_convert_opts_set_xml(mrimg_convert_opts *o, const char *xml,
                                         mrimg_error *err);
/*! mrimg_convert_opts_set_cookie(): a replacement save cookie (a <cookie>
 *  document, see mrimg_cookie_check; copied; NULL keeps the input's),
 *  libvirt outputs only.  @return 0 or MRIMG_ERR_NOMEM. */
MRIMG_API int mrimg_convert_opts_set_cookie(mrimg_convert_opts *o, const char *cookie,
                                            mrimg_error *err);
/*! mrimg_convert_opts_set_progress(): progress (may be NULL) and phase
 *  (may be NULL), both called with ctx.  phase receives a short label
 *  ("scanning", "replaying the stream", "converting", ...) when a pass
 *  starts; progress reports all passes of one call on one scale: done never
 *  decreases, total is the same in every report (the payload bytes -
 *  compressed bytes for compressed inputs - per pass over the stream, the
 *  data bytes from the bitmaps for a mapped-ram input), the last report has
 *  done == total. */
MRIMG_API void mrimg_convert_opts_set_progress(mrimg_convert_opts *o, mrimg_progress_fn progress,
                                               void (*phase)(void *ctx, const char *label),
                                               void *ctx);

/* A versioned struct: set size = sizeof(mrimg_convert_stats) (as compiled)
 * before the call; the library fills the fields that fit in size.  Fields
 * are only ever added at the end. */
typedef struct mrimg_convert_stats {
    size_t size;              /* in: sizeof(mrimg_convert_stats) */
    uint64_t in_bytes;        /* payload bytes read from the input */
    uint64_t stream_bytes;    /* decoded stream bytes processed */
    uint64_t out_bytes;       /* logical size of the output */
    uint64_t out_allocated;   /* bytes allocated on disk for the output */
    uint64_t pages_data;      /* RAM pages written with data */
    uint64_t pages_zero;      /* RAM pages found zero (holes / ZERO records) */
    int reencoded;            /* the RAM section was rewritten */
    uint64_t preallocated;    /* bytes reserved up front (preallocate) */
} mrimg_convert_stats;

/*! mrimg_convert(): write `in` to out_path as the output kind of o
 *  (MRIMG_P_OUTPUT; o may be NULL: every default).
 *  First the input is judged (mrimg_check at MRIMG_CHECK_QUICK, one pass
 *  over the payload, cached in the handle): an input with an error-severity
 *  problem is refused before anything is written, with an error naming the
 *  first one's check, offset and message (MRIMG_ERR_INCOMPLETE for
 *  container.incomplete, MRIMG_ERR_TRUNCATED for a *.truncated check,
 *  MRIMG_ERR_CHECKSUM for payload.checksum, MRIMG_ERR_FORMAT otherwise).
 *  MRIMG_P_ALLOW_INCOMPLETE lets container.incomplete through, nothing else.
 *  The warnings are in the cached judgement (mrimg_check returns it at
 *  once).  Bytes after the end of the input stream (after its
 *  VMDESCRIPTION) are left out of the output.
 *  The output is created as a temporary file (0600, O_EXCL) beside
 *  out_path, written, fsync'd, given its final libvirt magic, and renamed
 *  over out_path only when everything succeeded; on any error (or
 *  cancellation through the progress callback, or after
 *  mrimg_cleanup_temporaries()) out_path is untouched.  Only a regular
 *  file is replaced (with MRIMG_P_FORCE): a directory, device, FIFO or socket at
 *  out_path fails with MRIMG_ERR_IO; a symbolic link to a regular file is
 *  followed (the file it names is replaced, the link stays).  For
 *  MRIMG_OUT_RAM a directory this call created is removed again on failure
 *  or by mrimg_cleanup_temporaries().  stats may be NULL; its size must be
 *  set (else MRIMG_ERR_INVAL). */
MRIMG_API int mrimg_convert(mrimg_image *in, const char *out_path, const mrimg_convert_opts *o,
                            mrimg_convert_stats *stats, mrimg_error *err);

/*! mrimg_convert_fd():
 *  Like mrimg_convert(), but the output goes to fd, an open descriptor
 *  (standard output in a pipeline), written strictly in order: no
 *  temporary, no rename, no holes, no sync unless fd is a regular file;
 *  fd is not closed.  name names it in messages ("standard output":
 *  "standard output is a pipe: ...").  Only
 *  outputs written in one forward pass can go there: the libvirt formats
 *  raw, gzip, bzip2, xz, lzop and zstd, and MRIMG_OUT_QEMU.  sparse,
 *  qemu-mapped, ram, elf, phys and kdump-* fail with MRIMG_ERR_INVAL
 *  (MRIMG_SIDE_NONE) before anything is read or written.  A libvirt header
 *  is written with its final magic at once, since a descriptor cannot go
 *  back to it: a reader of a cut output still finds it incomplete, by the
 *  payload's own end (the codec's end marker and checksums; for raw, the
 *  QEMU stream's EOF record and VMDESCRIPTION), and restoring it fails.
 *  On failure part of the output may have been written: the consumer must
 *  look at the exit status (as with zstd or xz writing to a pipe). */
MRIMG_API int mrimg_convert_fd(mrimg_image *in, int fd, const char *name,
                               const mrimg_convert_opts *o, mrimg_convert_stats *stats,
                               mrimg_error *err);

/* ======================================================================
 * Image information: extents, XML (lib/info/)
 * ====================================================================== */

/* What a region of an image holds.  File map (mrimg_extents): file
 * offsets; stream map (mrimg_stream_map): offsets in the decompressed
 * migration stream. */
typedef enum mrimg_region {
    MRIMG_REGION_HEADER = 0,   /* the 92-byte libvirt header */
    MRIMG_REGION_XML,          /* the domain XML and its NUL */
    MRIMG_REGION_COOKIE,       /* the save cookie and its NUL */
    MRIMG_REGION_PADDING,      /* the rest of the metadata region (data_len) */
    MRIMG_REGION_PREFIX,       /* bytes before a bare stream (offset=) */
    MRIMG_REGION_STREAM_HEAD,  /* stream magic and version (8 bytes) */
    MRIMG_REGION_CONFIG,       /* the configuration section */
    MRIMG_REGION_RAM,          /* RAM section records in the main stream;
                                * stream map: one RAM section each */
    MRIMG_REGION_BITMAP,       /* mapped-ram: page bitmap of a block */
    MRIMG_REGION_ALIGN,        /* mapped-ram: alignment gap before a block's pages */
    MRIMG_REGION_PAGES,        /* mapped-ram: the page slots of a block */
    MRIMG_REGION_COMMAND,      /* stream map: one COMMAND record */
    MRIMG_REGION_TAIL,         /* device state after the RAM END section */
    MRIMG_REGION_EOF,          /* the EOF record (one byte) */
    MRIMG_REGION_VMDESC,       /* the VMDESCRIPTION record (type, length, JSON) */
    MRIMG_REGION_TRAILING,     /* bytes after the end of the stream or of the
                                * last compressed member */
    MRIMG_REGION_PAYLOAD,      /* a compressed payload (see mrimg_stream_map) */
    MRIMG_REGION_UNKNOWN,      /* not identified: the scan stopped before it */
    MRIMG_REGION_COUNT
} mrimg_region;

/*! mrimg_region_name(): "header", "xml", "cookie", "padding", "prefix",
 *  "stream-header", "configuration", "ram", "bitmap", "alignment", "pages",
 *  "command", "device-state", "eof", "vmdescription", "trailing",
 *  "payload", "unknown"; NULL if out of range. */
MRIMG_API const char *mrimg_region_name(int region);

/* One run of a map. */
typedef struct mrimg_extent {
    uint64_t offset;          /* file offset (file map) or stream offset */
    uint64_t length;          /* > 0 */
    int data;                 /* file map: 1 data, 0 hole; stream map: 1 */
    int region;               /* mrimg_region */
    int block;                /* BITMAP/ALIGN/PAGES: block index; else -1 */
    const char *block_name;   /* that block's name, else NULL */
    uint64_t first_page;      /* PAGES: the pages the run touches, */
    uint64_t last_page;       /* [first_page, last_page] of the block */
    uint8_t section_type;     /* stream map, RAM: 1 START, 2 PART, 3 END */
    uint32_t section_id;
    uint16_t command;         /* stream map, COMMAND: the command number */
} mrimg_extent;

/* Receives one run; valid during the call only.  Non-zero stops the walk
 * (which then fails with MRIMG_ERR_INTERRUPTED). */
typedef int (*mrimg_extent_fn)(void *opaque, const mrimg_extent *e);

/* A versioned struct, as mrimg_convert_stats: set size first. */
typedef struct mrimg_extent_totals {
    size_t size;              /* in: sizeof(mrimg_extent_totals) */
    uint64_t runs, data_runs, hole_runs;
    uint64_t data_bytes, hole_bytes;
    int hole_map;             /* 1: the file system reported holes
                               * (SEEK_DATA/SEEK_HOLE); 0: it cannot, and
                               * the whole file was reported as data */
} mrimg_extent_totals;

/*! mrimg_extents(): the file's data/hole map, annotated.
 *  Walks the file once with SEEK_DATA/SEEK_HOLE; every maximal data or
 *  hole run is cut where the region under it changes (header, XML, ...,
 *  each mapped-ram block's bitmap, alignment gap and pages, device state),
 *  and fn receives the pieces in file order, covering [0, file size)
 *  exactly.  A piece in a block's pages also names the page range it
 *  touches.  Time is linear in regions (O(blocks)) plus runs, memory is
 *  O(blocks); no page content is read.  Scans the image first if it was
 *  never scanned; a scan error does not stop the map: what the scan could
 *  not reach is reported as MRIMG_REGION_UNKNOWN.  For a compressed payload
 *  the payload is one region; mrimg_stream_map() describes its content.
 *  totals (size set, see mrimg_convert_stats) and progress may be NULL.
 *  @return MRIMG_OK or a negative code. */
MRIMG_API int mrimg_extents(mrimg_image *img, mrimg_extent_fn fn, void *opaque,
                            mrimg_extent_totals *totals, mrimg_progress_fn progress,
                            void *pctx, mrimg_error *err);

/*! mrimg_stream_map(): the regions of the decompressed migration stream, in
 *  stream offsets: stream header, configuration, every RAM section (with
 *  its type and id), every command, the device-state tail, EOF,
 *  VMDESCRIPTION, trailing bytes.  One sequential pass over the payload
 *  (decoding it again for compressed images); memory is bounded.  On a
 *  stream that cannot be parsed to its end, the regions before the problem
 *  are delivered, then the rest that was read as MRIMG_REGION_UNKNOWN, and
 *  the parse error is returned.  (For mapped-ram streams a START section
 *  spans the out-of-line bitmaps and pages; mrimg_extents shows those.) */
MRIMG_API int mrimg_stream_map(mrimg_image *img, mrimg_extent_fn fn, void *opaque,
                               mrimg_progress_fn progress, void *pctx, mrimg_error *err);

/*! mrimg_content_scan(): content statistics: for every block, count the
 *  pages whose final content is data but all zero bytes
 *  (mrimg_ram_block_info.pages_zero_filled).  Mapped-ram: reads the pages
 *  whose bit is set (mrimg_scan with MRIMG_SCAN_CONTENT).  Plain streams:
 *  counted by the scan's own pass (no second pass: a pipe works).  Scans
 *  first if needed. */
MRIMG_API int mrimg_content_scan(mrimg_image *img, mrimg_progress_fn progress, void *pctx,
                                 mrimg_error *err);

/*! mrimg_xml_strip_secrets(): a copy of a domain XML with the secrets
 *  removed that libvirt leaves out when it formats a domain definition
 *  without VIR_DOMAIN_XML_SECURE (`virsh dumpxml` and `virsh
 *  save-image-dumpxml` without --security-info):
 *   - the passwd attribute of <graphics> (VNC, SPICE and RDP passwords);
 *   - the <cookies> element of a disk <source> (HTTP cookies of network
 *     disks, backing stores and mirrors).
 *  Nothing else changes: every other byte is kept as it is (a removed
 *  attribute takes its leading white space with it, a removed element the
 *  indentation and line it stood on).  The XML is tokenised, not
 *  validated: no DTD, no entities are expanded; comments, CDATA and
 *  processing instructions are skipped over.  len bytes (at most
 *  MRIMG_DATA_LEN_MAX) are read; a NUL before len is an error.  Malformed
 *  XML (unbalanced or unterminated tags, nesting deeper than 256) is
 *  MRIMG_ERR_FORMAT naming the byte offset.  *removed (may be NULL)
 *  receives the number of secrets removed.
 *  @return a malloc'd NUL-terminated string (free() it), or NULL. */
MRIMG_API char *mrimg_xml_strip_secrets(const char *xml, size_t len, unsigned *removed,
                                        mrimg_error *err);

/* ======================================================================
 * Verification, comparison, digests (lib/verify/)
 * ====================================================================== */
/* Verification answers "will this file restore?" offline: every check of
 * docs/imgverify.1 runs and every problem found is reported (up to a cap),
 * each with a stable check name, a severity, the offset concerned and a
 * message.  Independent checks go on after a problem: the container checks
 * all run, a stream error stops the stream walk but the mapped-ram checks of
 * the blocks found so far still run, and a compressed payload is decoded to
 * its end to verify its checksums and trailing data. */

typedef enum mrimg_severity {
    MRIMG_SEV_WARNING = 1,  /* unusual, but the image restores */
    MRIMG_SEV_ERROR = 2     /* the image will not restore, or cannot be
                             * proven complete */
} mrimg_severity;

typedef struct mrimg_problem {
    const char *check;      /* stable check name, e.g. "payload.checksum" */
    mrimg_severity severity;
    mrimg_offset_kind offset_kind;
    uint64_t offset;
    char message[512];
} mrimg_problem;

#define MRIMG_VERIFY_MAX_PROBLEMS 1000u

/* Options of mrimg_verify: MRIMG_P_STREAM_OFFSET, MRIMG_P_THREADS,
 * MRIMG_P_MAX_PROBLEMS, MRIMG_P_SKIP_DATA, and a progress callback. */
typedef struct mrimg_verify_opts mrimg_verify_opts;

/*! mrimg_verify_opts_create(): a handle with every default; NULL when out
 *  of memory.  mrimg_verify_opts_free() accepts NULL. */
MRIMG_API mrimg_verify_opts *mrimg_verify_opts_create(void);
MRIMG_API void mrimg_verify_opts_free(mrimg_verify_opts *o);
/*! mrimg_verify_opts_set(), _get(): see mrimg_param.
 *  @return 0, or MRIMG_ERR_INVAL (a parameter that does not apply, a value
 *  out of bounds). */
MRIMG_API int mrimg_verify_opts_set(mrimg_verify_opts *o, mrimg_param p, int64_t value,
                                    mrimg_error *err);
MRIMG_API int mrimg_verify_opts_get(const mrimg_verify_opts *o, mrimg_param p,
                                    int64_t *value, mrimg_error *err);
/*! mrimg_verify_opts_set_progress(): progress of the verification (NULL:
 *  none), called with ctx. */
MRIMG_API void mrimg_verify_opts_set_progress(mrimg_verify_opts *o, mrimg_progress_fn progress,
                                              void *ctx);

typedef struct mrimg_verify_result {
    uint64_t errors, warnings;    /* all problems found, kept or not */
    uint64_t dropped;             /* problems found beyond max_problems */
    unsigned nproblems;           /* problems kept, in the order found */
    const mrimg_problem *problems;
    /* what was looked at */
    int is_libvirt;               /* libvirt header present */
    int complete;                 /* final magic, whole header (libvirt) */
    int format;                   /* header format field, -1 for bare streams */
    int payload_format;           /* the payload's actual encoding, -1 unknown */
    int mapped_ram;               /* the stream announces mapped-ram */
    uint64_t file_size;
    uint64_t payload_offset;
    uint64_t payload_bytes;       /* payload bytes read (compressed) */
    uint64_t stream_bytes;        /* decoded stream bytes parsed */
    uint64_t codec_checks;        /* codec checksums verified */
    uint64_t codec_members;       /* gzip members, xz streams, zstd frames... */
    uint64_t data_read;           /* mapped-ram page bytes read */
    unsigned nblocks;             /* RAM blocks listed */
    uint64_t ram_bytes;           /* their total length */
    uint64_t device_sections;     /* device sections explained by the JSON */
    int stream_parsed;            /* the whole stream parsed without error */
    int vmdesc_checked;           /* the VMDESCRIPTION JSON was validated */
    int devices_checked;          /* the device state was walked to its EOF */
    uint64_t stream_size;         /* stream_parsed: bytes of the stream proper,
                                   * from its magic through the VMDESCRIPTION */
    uint64_t stream_trailing;     /* stream_parsed: bytes after it (warning
                                   * payload.trailing; QEMU does not read them) */
    int data_checked;             /* mapped-ram page data was read (not skip_data) */
    int codec_rechecked;          /* a bzip2/xz decode error was examined again
                                   * to tell a damaged checksum from damaged data
                                   * (0: quick judgement, reported as payload.decode) */
} mrimg_verify_result;

/*! mrimg_verify():
 *  Run every check on the image at path.  *res receives the result (free
 *  it with mrimg_verify_free), also when the function fails part-way (then
 *  it holds what was found before), or NULL.  opts may be NULL.
 *  @return MRIMG_OK when the verification ran to its end, whatever it found;
 *  a negative code when it could not (I/O error, out of memory, cancelled). */
MRIMG_API int mrimg_verify(const char *path, const mrimg_verify_opts *opts,
                           mrimg_verify_result **res, mrimg_error *err);
MRIMG_API void mrimg_verify_free(mrimg_verify_result *res);

/* ---- The judgement of an open image ------------------------------------------
 * One problem list per image, the same whichever tool asks: mrimg_check runs
 * the checks of mrimg_verify on an image already open.  Two levels:
 *  MRIMG_CHECK_QUICK  every check except the expensive ones: the container,
 *                     the payload encoding, one pass over the (decoded) stream
 *                     with its framing, the end of the stream and the device
 *                     state, the mapped-ram layout and bitmaps.  Left out: the
 *                     mapped-ram page data reads (skip_data) and the second
 *                     look at a bzip2/xz decode error (it stays payload.decode
 *                     instead of payload.checksum).  mrimg_convert runs it.
 *  MRIMG_CHECK_FULL   everything mrimg_verify does.
 * Problems are those of mrimg_verify: an image "has errors" when
 * res->errors > 0; warnings never stop anything. */
#define MRIMG_CHECK_QUICK 0x0u
#define MRIMG_CHECK_FULL 0x1u

/*! mrimg_check():
 *  Judge img (see above).  The result is cached in the handle: a second
 *  call at the same or a lower level returns it at once; a higher level
 *  runs again and replaces it.  *res points into the handle (valid until
 *  the next mrimg_check at a higher level or mrimg_close; do not free it).
 *  The quick judgement of a handle not scanned yet rides on the scan's
 *  pass (one read of the input, a pipe too): the handle is then scanned
 *  (mrimg_scan returns at once, or with the scan's error).  The handle is
 *  not changed otherwise (its scan results stay).
 *  progress may be NULL; it receives payload bytes of the pass.
 *  @return MRIMG_OK when the checks ran to their end, whatever they found;
 *  a negative code (nothing cached) when they could not: I/O error, out
 *  of memory, cancelled. */
MRIMG_API int mrimg_check(mrimg_image *img, unsigned flags, mrimg_progress_fn progress,
                          void *pctx, const mrimg_verify_result **res, mrimg_error *err);

typedef struct mrimg_check_desc {
    const char *name;         /* "container.magic" */
    const char *what;         /* one line: what it verifies */
} mrimg_check_desc;

/*! mrimg_verify_checks(): the table of every check name (*n entries). */
MRIMG_API const mrimg_check_desc *mrimg_verify_checks(unsigned *n);

/* ---- Digest: a format-independent content digest of the guest state -------
 * digest v1 (SHA-256), stable across versions of this library:
 *   block digest  = SHA-256("mrimg-ram-block-v1" 00, be16 name length, name,
 *                   be64 used_length, be64 page_size, then for every page
 *                   whose content is not all zero, ascending: be64 page
 *                   index, the page bytes)
 *   device digest = SHA-256(device state: the stream bytes after the RAM END
 *                   section up to, not including, the EOF record)
 *   image digest  = SHA-256("mrimg-digest-v1" 00, be32 block count, for each
 *                   block in list order: be16 name length, name, be64
 *                   used_length, be64 page_size, block digest; then be64
 *                   device-state length, device digest)
 * Zero and absent pages are skipped, so the plain and mapped-ram layouts,
 * every compression and single- or multi-pass streams of the same guest
 * state give the same digest.  The XML and the VMDESCRIPTION are not part
 * of it. */

#define MRIMG_DIGEST_LEN 32

typedef struct mrimg_block_digest {
    char name[MRIMG_NAME_MAX + 1];
    uint64_t used_length, page_size;
    uint64_t pages_nonzero;       /* pages that entered the digest */
    uint8_t digest[MRIMG_DIGEST_LEN];
} mrimg_block_digest;

typedef struct mrimg_digest {
    uint8_t digest[MRIMG_DIGEST_LEN];         /* image digest */
    uint8_t device_digest[MRIMG_DIGEST_LEN];
    uint64_t device_offset;                   /* stream offset of the device state */
    uint64_t device_bytes;
    unsigned nblocks;
    mrimg_block_digest *blocks;
} mrimg_digest;

/*! mrimg_digest_compute(): walk img's RAM and device state once and compute
 *  the digest v1 (see above).  *out is freed with mrimg_digest_free.
 *  When img has no judgement yet, the quick judgement (mrimg_check,
 *  MRIMG_CHECK_QUICK) rides on the walk's pass and is cached: a
 *  mrimg_check afterwards reads nothing more, so that judging and
 *  digesting read the input once (a pipe too).  A stream whose pages come
 *  out of order is replayed from the input: on a pipe that fails with
 *  MRIMG_ERR_IO (ESPIPE). */
MRIMG_API int mrimg_digest_compute(mrimg_image *img, mrimg_digest **out,
                                   mrimg_progress_fn progress, void *pctx,
                                   mrimg_error *err);
MRIMG_API void mrimg_digest_free(mrimg_digest *d);
/*! mrimg_digest_hex(): 64 lowercase hex digits and a NUL into out[65]. */
MRIMG_API void mrimg_digest_hex(const uint8_t *digest, char *out);

/* ---- Compare: the same guest state in two images, whatever their formats -- */

typedef struct mrimg_range {
    uint64_t offset, length;
} mrimg_range;

typedef struct mrimg_compare_block {
    char name[MRIMG_NAME_MAX + 1];
    int index_a, index_b;         /* position in each block list, -1: absent */
    uint64_t length_a, length_b;  /* used_length in each */
    uint64_t page_size;
    uint64_t pages_compared;      /* pages present in both */
    uint64_t pages_differ;        /* of those, pages whose content differs */
    uint64_t first_diff_page;     /* UINT64_MAX when none differs */
    uint8_t digest_a[MRIMG_DIGEST_LEN], digest_b[MRIMG_DIGEST_LEN];
    int identical;                /* same length and same content */
} mrimg_compare_block;

#define MRIMG_COMPARE_RANGES 32

typedef struct mrimg_compare_result {
    int identical;                /* same guest: RAM and device state identical */
    int ram_identical;            /* same blocks (names, lengths), same content */
    int blocks_same_order;        /* the block lists are identical, in order */
    int device_identical;
    int xml_identical, cookie_identical;
    uint64_t granule;             /* pages per compared unit (1: exact per page;
                                   * more for very large guests, see docs) */
    unsigned nblocks;             /* union of both block lists */
    mrimg_compare_block *blocks;
    /* device state: offsets relative to its start */
    uint64_t device_bytes_a, device_bytes_b;
    int device_detail;            /* both device states were compared byte by
                                   * byte (always, since they are at most
                                   * 64 MiB; 0 was: only by digest) */
    uint64_t device_first_diff;   /* UINT64_MAX when identical */
    uint64_t device_bytes_differ; /* differing bytes in the common length */
    unsigned ndevice_ranges;      /* first differing byte runs */
    mrimg_range device_ranges[MRIMG_COMPARE_RANGES];
    /* short unified-diff-like text of the XMLs with their secrets removed
     * by mrimg_xml_strip_secrets() (graphics passwords, disk cookies), or
     * NULL when they are equal that way (or an XML is malformed) */
    char *xml_diff;
    char *cookie_diff;
    mrimg_digest *digest_a, *digest_b; /* full digests of both images */
    /* the XMLs differ, but not once their secrets are removed */
    int xml_secrets_differ;
    /* the diff of the XMLs as they are, secrets included (NULL if equal):
     * for callers asked to show secrets (imgverify --security-info) */
    char *xml_diff_secure;
} mrimg_compare_result;

/*! mrimg_compare(): walk both images (concurrently, one thread each) and
 *  compare RAM page by page, the device state byte by byte and the XML.
 *  Each walk carries its image's quick judgement as mrimg_digest_compute
 *  does (one read of each input, a pipe too); a side that fails does not
 *  stop the other.
 *  On failure the message starts with "first image: " or "second image: ",
 *  naming the image it is about.
 *  Memory: 8 bytes per guest page per image, capped (docs/imgverify.1).
 *  @return MRIMG_OK (identical or not: see the result) or a negative code. */
MRIMG_API int mrimg_compare(mrimg_image *a, mrimg_image *b, mrimg_compare_result **out,
                            mrimg_progress_fn progress, void *pctx, mrimg_error *err);
MRIMG_API void mrimg_compare_free(mrimg_compare_result *r);

/* ======================================================================
 * In-place hole punching and preallocation
 * ====================================================================== */

/* A versioned struct, as mrimg_convert_stats: set size first. */
typedef struct mrimg_sparsify_stats {
    size_t size;                /* in: sizeof(mrimg_sparsify_stats) */
    uint64_t allocated_before;  /* st_blocks * 512 before */
    uint64_t allocated_after;   /* ... and after */
    uint64_t bytes_punched;     /* bytes of the ranges handed to fallocate */
    uint64_t bytes_read;        /* data read to look for zero pages */
    uint64_t pages_examined;    /* pages of the pages regions not already holes */
    uint64_t runs_punched;      /* fallocate calls */
} mrimg_sparsify_stats;

/*! mrimg_sparsify(): give a sparse (mapped-ram) image its holes back, in
 *  place.  Punches (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) every
 *  page-aligned run inside each RAM block's pages region whose bitmap bit
 *  is clear (QEMU never reads those pages) or whose content is all zero,
 *  and the all-zero pages of the alignment padding before each block's
 *  pages and of libvirt's XML-region padding; never in the header, XML,
 *  block list, bitmaps or the stream, so the
 *  guest state read back is unchanged, at every moment of the run (an
 *  interrupted run leaves a valid image).  Existing holes are skipped with
 *  SEEK_DATA/SEEK_HOLE.  On a raw or compressed libvirt image only the zero
 *  padding of the XML region is punched; bare plain streams are refused.
 *  A file system without hole punching gives MRIMG_ERR_UNSUPPORTED and no
 *  change.  stats may be NULL; its size must be set. */
MRIMG_API int mrimg_sparsify(const char *path, uint64_t stream_offset,
                             mrimg_progress_fn progress, void *pctx,
                             mrimg_sparsify_stats *stats, mrimg_error *err);

/* **********************************************************************
 * EXPERIMENTAL API
 * **********************************************************************
 * Declared only when MRIMG_EXPERIMENTAL_API is defined before mrimg.h is
 * included.  These functions and structs may change, or go, in any release
 * (the guest-physical layer of issue 14 is still growing: more machines,
 * more architectures); a program that uses them must be built and linked
 * against the exact version it runs with (static linking is the safe way).
 * They are exported by both libraries all the same. */
#if defined(MRIMG_EXPERIMENTAL_API) && !defined(MRIMG_H_EXPERIMENTAL)
#define MRIMG_H_EXPERIMENTAL

/* ======================================================================
 * The guest-physical memory map (lib/guest/)
 * ====================================================================== */
/* Where each RAM block lies in the guest's physical address space, as
 * QEMU lays it out for the PC machines (q35 and i440fx, every version):
 * pc.ram split around the PCI hole (q35: 2 GiB below 4 GiB once RAM
 * reaches 0xb0000000, else all of it; i440fx: 3 GiB once RAM reaches the
 * 3.5 GiB max-ram-below-4g, gigabyte-aligned on machine types newer than
 * 1.7; an explicit max-ram-below-4g in the domain XML's QEMU command line
 * is honoured), the rest above 4 GiB; the legacy VGA window
 * 0xa0000-0xbffff left out when a VGA device decodes it; 0xc0000-0xfffff
 * from RAM or, where the chipset's PAM registers send it to PCI, from
 * pc.rom and the last 128 KiB of pc.bios; pc.bios just below 4 GiB;
 * device RAM (vga.vram) at the BAR the guest programmed, read from the
 * device's saved PCI configuration space, and the part of it a VGA in
 * chain-4 or VBE mode shows at 0xa0000; a pc-dimm's memory backend at the
 * base the domain XML gives it, or the start of the device-memory region
 * for the only one.  The result equals the RAM ranges of QEMU's
 * `info mtree -f` and the PT_LOAD segments of `dump-guest-memory`
 * (paging off) for the same guest: adjacent pieces of the same block are
 * merged, as the dump merges them. */

typedef struct mrimg_mem_range {
    uint64_t gpa;             /* guest-physical start */
    uint64_t length;          /* bytes, > 0 */
    unsigned block;           /* index in the block list */
    uint64_t offset;          /* offset of gpa's byte in that block */
} mrimg_mem_range;

typedef struct mrimg_unmapped_block {
    unsigned block;
    const char *reason;       /* static text: why it is not mapped */
} mrimg_unmapped_block;

typedef struct mrimg_memmap {
    char machine[MRIMG_NAME_MAX + 1]; /* from the configuration section */
    const char *family;       /* "q35", "i440fx" */
    uint64_t ram_size;        /* machine RAM (pc.ram or the NUMA nodes) */
    uint64_t below_4g, above_4g; /* its split */
    int devices_decoded;      /* the device state was read (PAM, BARs, VGA);
                               * 0: ranges that depend on it are left out */
    unsigned nranges;         /* ascending gpa, not overlapping */
    mrimg_mem_range *ranges;
    unsigned nunmapped;
    mrimg_unmapped_block *unmapped;
} mrimg_memmap;

/*! mrimg_memory_map(): the guest-physical map of img (see above).  Needs
 *  the block list and the device state: scans the image if needed; the
 *  device state is the one the pass that parsed the stream kept (no
 *  second read: a pipe works once scanned).  Machines other than the PC ones give
 *  MRIMG_ERR_UNSUPPORTED.  Free *out with mrimg_memory_map_free. */
MRIMG_API int mrimg_memory_map(mrimg_image *img, mrimg_memmap **out, mrimg_error *err);
MRIMG_API void mrimg_memory_map_free(mrimg_memmap *m);

/* ======================================================================
 * vCPU state (lib/guest/cpu.c)
 * ====================================================================== */
/* The registers of each vCPU of an x86-64 guest, decoded from its "cpu"
 * device sections (one per vCPU, instance = vCPU number) with the field
 * layout QEMU describes in the stream's VMDESCRIPTION (target/i386's
 * vmstate_x86_cpu), and "halted" from the matching "cpu_common" section.
 * The values are QEMU's own: what `info registers -a` shows for the paused
 * guest.  Every field is located by name and its size checked; a section
 * that does not add up to its description is refused. */

typedef struct mrimg_x86_segment {
    uint32_t selector;
    uint32_t limit;
    uint32_t flags;           /* QEMU's descriptor flags (type, S, DPL, P, AVL, L, D/B, G) */
    uint64_t base;
} mrimg_x86_segment;

/* Index of a segment in mrimg_x86_cpu.seg (QEMU's order). */
enum { MRIMG_SEG_ES, MRIMG_SEG_CS, MRIMG_SEG_SS, MRIMG_SEG_DS, MRIMG_SEG_FS, MRIMG_SEG_GS };
/* Index of a register in mrimg_x86_cpu.regs (QEMU's and the ISA's order). */
enum {
    MRIMG_REG_RAX, MRIMG_REG_RCX, MRIMG_REG_RDX, MRIMG_REG_RBX,
    MRIMG_REG_RSP, MRIMG_REG_RBP, MRIMG_REG_RSI, MRIMG_REG_RDI,
    MRIMG_REG_R8 /* ... R15 = 15 */
};

/* A versioned struct: the caller sets size = sizeof(mrimg_x86_cpu) as
 * compiled; the library fills the fields that fit in size and leaves the
 * rest alone, so that fields added at the end later never break a caller
 * built against this header. */
typedef struct mrimg_x86_cpu {
    size_t size;              /* in: sizeof(mrimg_x86_cpu) */
    unsigned index;           /* vCPU number (the section's instance id) */
    uint64_t regs[16];        /* MRIMG_REG_* */
    uint64_t rip;
    uint64_t rflags;
    mrimg_x86_segment seg[6]; /* MRIMG_SEG_* */
    mrimg_x86_segment ldt, tr;
    mrimg_x86_segment gdt, idt; /* base and limit only */
    uint64_t cr0, cr2, cr3, cr4;
    uint64_t efer;
    uint64_t kernel_gs_base;  /* MSR_KERNEL_GS_BASE */
    uint32_t hflags;          /* QEMU's hidden flags: bits 0-1 CPL, bit 14 long mode
                               * active, bit 15 64-bit code segment */
    int halted;               /* 1 halted, 0 running, -1 unknown (no cpu_common) */
} mrimg_x86_cpu;

typedef struct mrimg_cpus mrimg_cpus;

/*! mrimg_cpus_read(): decode the vCPUs of img.  Scans the image if
 *  needed; its device state is the one the pass that parsed the stream
 *  kept (no second read: a pipe works once scanned).  A stream without VMDESCRIPTION, or whose CPU
 *  sections are not described as x86-64 ones, gives MRIMG_ERR_UNSUPPORTED;
 *  a device state that does not match its description MRIMG_ERR_FORMAT
 *  naming the stream offset and the field.  A guest without "cpu"
 *  sections gives a set of 0 vCPUs.  Free *out with mrimg_cpus_free. */
MRIMG_API int mrimg_cpus_read(mrimg_image *img, mrimg_cpus **out, mrimg_error *err);
/*! mrimg_cpus_count(): the number of vCPUs in cpus. */
MRIMG_API unsigned mrimg_cpus_count(const mrimg_cpus *cpus);
/*! mrimg_cpus_get(): copy vCPU i (0 <= i < count, stream order) into *out,
 *  whose size the caller has set.  @return 0, or MRIMG_ERR_INVAL for an i
 *  out of range or a size smaller than the first version of the struct
 *  (offsetof halted + sizeof(int)). */
MRIMG_API int mrimg_cpus_get(const mrimg_cpus *cpus, unsigned i, mrimg_x86_cpu *out,
                             mrimg_error *err);
MRIMG_API void mrimg_cpus_free(mrimg_cpus *cpus);

#endif /* MRIMG_EXPERIMENTAL_API */

#ifdef __cplusplus
}
#endif

#endif /* MRIMG_H */
