/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* imginfo: explain a libvirt save image or QEMU migration stream at a
 * glance: container, stream, RAM per block, sizes and why they are what
 * they are; optionally the annotated data/hole map and the domain XML.
 * Options, library calls, one description printed as human text or JSON. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "judge.h"
#include "mrimg.h"
#include "out.h"

enum {
    OPT_OUTPUT = 256,
    OPT_EXTENTS,
    OPT_XML,
    OPT_SECURITY_INFO,
    OPT_CONTENT,
    OPT_OFFSET,
    OPT_COOKIE,
    OPT_CPU,
    OPT_MEMORY_MAP,
};

typedef struct opts {
    int mode;           /* OUT_HUMAN / OUT_JSON */
    int extents, xml, cookie, security_info, content, progress, cpu, memory_map;
    uint64_t stream_offset;
} opts;

static void usage(void)
{
    printf("Usage: %s [OPTION]... FILE...\n"
           "Describe libvirt save images and QEMU migration streams: container, stream,\n"
           "RAM blocks, sizes, and a plain-language explanation of the sizes.\n"
           "\n"
           "Options:\n"
           "      --output=FMT      human (default) or json\n"
           "      --extents         also print the file's data/hole map, each run labelled\n"
           "                        with what lies there; for compressed payloads also the\n"
           "                        regions of the decompressed stream\n"
           "      --xml             print only the domain XML, secrets removed as by\n"
           "                        'virsh save-image-dumpxml'\n"
           "      --security-info   with --xml: keep the secrets (graphics passwords, ...)\n"
           "      --cookie          print only the save cookie (the guest CPU definition\n"
           "                        libvirt stores beside the XML; it holds no secrets)\n"
           "      --content         content statistics: count pages that hold data but are\n"
           "                        all zero (reads the RAM pages)\n"
           "      --cpu             also print each vCPU's registers (as QEMU's 'info\n"
           "                        registers -a' shows them), decoded from the device state\n"
           "      --memory-map      print the guest-physical memory map: which RAM block\n"
           "                        and offset back each range (PC machines; reads the\n"
           "                        device state)\n"
           "      --offset=N        a bare QEMU stream starts at byte N (the offset= of a\n"
           "                        file: migration URI); 0x hex and K/M/G suffixes accepted\n"
           "  -p, --progress        show progress on stderr\n"
           "  -h, --help            show this help and exit\n"
           "  -V, --version         show the version and exit\n"
           "\n"
           "FILE '-' is standard input (a pipe is read once: what needs seeking or two\n"
           "passes is refused; see PIPES in imginfo(1)).\n"
           "\n"
           "Exit status: 0 every image is fine; 1 an image has problems (incomplete or\n"
           "unparsable; what could be found is still printed); 2 usage error; 3 a file\n"
           "cannot be opened or read (or out of memory); 128+N when killed by signal N.\n",
           cli_prog);
}

/* ---- small helpers ------------------------------------------------------ */

static const char *cmd_name(unsigned c)
{
    static const char *const names[] = {
        "unknown",         "open-return-path", "ping",         "postcopy-advise",
        "postcopy-listen", "postcopy-run",     "postcopy-ram-discard", "packaged",
        "enable-colo",     "postcopy-resume",  "recv-bitmap",  "switchover-start",
    };
    return c < sizeof(names) / sizeof(names[0]) ? names[c] : "unknown";
}

static const char *section_type_name(unsigned t)
{
    switch (t) {
    case 1: return "start";
    case 2: return "part";
    case 3: return "end";
    case 4: return "full";
    default: return "unknown";
    }
}

static const char *sz(char *b, size_t n, uint64_t v) { return fmt_size(b, n, v); }

typedef struct totals {
    uint64_t ram, pages, data, zero, absent, zero_filled, records, ps;
} totals;

static totals ram_totals(const mrimg_image *img)
{
    totals t = {0};
    unsigned n = mrimg_block_count(img);
    for (unsigned i = 0; i < n; i++) {
        const mrimg_ram_block_info *b = mrimg_block(img, i);
        t.ram += b->used_length;
        t.pages += b->pages;
        t.data += b->pages_data * b->page_size;
        t.zero += (b->pages_zero + b->pages_absent) * b->page_size;
        t.absent += b->pages_absent * b->page_size;
        t.zero_filled += b->pages_zero_filled * b->page_size;
        t.records += b->records;
        t.ps = b->page_size;
    }
    return t;
}

/* ---- the explanation ---------------------------------------------------- */

/* One sentence on why the file has the size it has. */
static void explain(char *buf, size_t cap, const mrimg_image *img, int scanned_ok, int content)
{
    const mrimg_container_info *ci = mrimg_container(img);
    const mrimg_stream_info *si = mrimg_stream(img);
    totals t = ram_totals(img);
    char a[32], b[32], c[32], d[32];
    size_t n = 0;
#define PUT(...)                                                                                \
    do {                                                                                        \
        if (n < cap)                                                                            \
            n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__);                             \
    } while (0)
    if (!ci->complete)
        PUT("incomplete save (the save never finished): ");
    if (mrimg_block_count(img) == 0) {
        PUT("%s file; the RAM block list could not be read, so its content is unknown",
            sz(a, sizeof(a), ci->file_size));
        return;
    }
    int compressed = ci->payload_format != MRIMG_FORMAT_RAW &&
                     ci->payload_format != MRIMG_FORMAT_SPARSE;
    if (si->mapped_ram && !compressed) {
        /* what a sparse file needs on disk: page data, bitmaps, the main
         * stream and the metadata; twice that means holes were filled */
        uint64_t need = t.data + ci->payload_offset + si->tail_size + si->vmdesc_size + (16u << 20);
        for (unsigned i = 0; i < mrimg_block_count(img); i++)
            need += mrimg_block(img, i)->bitmap_size + (1u << 20);
        int filled = ci->file_allocated > 2 * need;
        PUT("sparse: %s logical, %s on disk: ", sz(a, sizeof(a), ci->file_size),
            sz(b, sizeof(b), ci->file_allocated));
        if (t.zero)
            PUT("%s of guest RAM is zero%s, %s is page data", sz(c, sizeof(c), t.zero),
                filled ? "" : " and left as holes", sz(d, sizeof(d), t.data));
        else
            PUT("every page of guest RAM (%s) is written as data (zero-page detection off?)",
                sz(d, sizeof(d), t.data));
        if (content && t.zero_filled)
            PUT(", %s of it zero-filled", sz(a, sizeof(a), t.zero_filled));
        if (filled)
            PUT("; far more is allocated than that: the holes were filled (copied without "
                "--sparse?)");
    } else {
        uint64_t page_bytes = si->page_records * (t.ps ? t.ps : 4096);
        if (compressed) {
            uint64_t stream = si->stream_size + si->trailing_bytes;
            PUT("%s-compressed: %s file", mrimg_format_name(ci->payload_format),
                sz(a, sizeof(a), ci->file_size));
            if (scanned_ok && si->payload_size)
                PUT(", %s stream (ratio %.1f:1)", sz(b, sizeof(b), stream),
                    (double)stream / (double)si->payload_size);
            PUT(", for %s of guest RAM", sz(c, sizeof(c), t.ram));
        } else {
            PUT("plain stream: %s file for %s of guest RAM", sz(a, sizeof(a), ci->file_size),
                sz(b, sizeof(b), t.ram));
        }
        if (ci->file_size > t.ram)
            PUT(", larger than the RAM itself");
        PUT(": %s of page data", sz(a, sizeof(a), page_bytes));
        uint64_t records = si->page_records + si->zero_records;
        uint64_t sent = t.pages - t.absent / (t.ps ? t.ps : 4096);
        if (si->multi_pass && records > sent) {
            PUT(" in %" PRIu64 " records for %" PRIu64 " pages: the guest ran during the save and "
                "%" PRIu64 " pages were sent again after they changed",
                records, sent, records - sent);
        } else if (content && t.zero_filled) {
            PUT(", %s of it zero-filled pages sent as data (zero-page detection off)",
                sz(b, sizeof(b), t.zero_filled));
        } else if (si->zero_records == 0 && t.pages && si->page_records >= t.pages) {
            PUT(": every page was sent as data (zero-page detection off?)");
        }
        if (t.zero > t.absent)
            PUT(", %s of zero pages cost a few bytes each", sz(c, sizeof(c), t.zero - t.absent));
        if (!scanned_ok)
            PUT("; the stream breaks off there: %s of guest RAM was never reached",
                sz(d, sizeof(d), t.absent));
        else if (t.absent)
            PUT(", %s of RAM was not sent at all", sz(d, sizeof(d), t.absent));
        if (si->tail_size > page_bytes && si->tail_size > (1u << 20))
            PUT(", and %s of device state", sz(d, sizeof(d), si->tail_size));
    }
#undef PUT
}

/* ---- guest-physical memory map -------------------------------------------- */

static int print_memory_map(out *w, mrimg_image *img, const char *path)
{
    mrimg_memmap *m = NULL;
    mrimg_error err;
    int rc = mrimg_memory_map(img, &m, &err);
    if (rc < 0) {
        out_null(w, "memory-map", "guest-physical memory map");
        return cli_fail(&err, path, NULL);
    }
    out_obj(w, "memory-map", "guest-physical memory map");
    out_str(w, "family", "machine family", m->family);
    out_size(w, "ram-size", "machine RAM", m->ram_size);
    out_size(w, "below-4g", "below 4 GiB", m->below_4g);
    out_size(w, "above-4g", "above 4 GiB", m->above_4g);
    out_bool(w, "devices-decoded", "device state decoded", m->devices_decoded);
    static const out_col cols[] = {
        {"start", -18}, {"end", -18}, {"length", 9}, {"block", -24}, {"offset", 0},
    };
    out_table(w, "ranges", "ranges", cols, 5);
    for (unsigned i = 0; i < m->nranges; i++) {
        const mrimg_mem_range *r = &m->ranges[i];
        char end[32], len[32];
        out_obj(w, NULL, NULL);
        out_off(w, "start", "start", r->gpa);
        snprintf(end, sizeof(end), "0x%" PRIx64, r->gpa + r->length - 1);
        out_cell(w, end);
        out_json_only(w, 1);
        out_u64(w, "length", "length", r->length);
        out_json_only(w, 0);
        out_cell(w, fmt_size(len, sizeof(len), r->length));
        out_str(w, "block", "block", mrimg_block(img, r->block)->name);
        out_off(w, "offset", "offset", r->offset);
        out_end(w);
    }
    out_end(w);
    static const out_col ucols[] = {{"block", -24}, {"reason", 0}};
    out_table(w, "unmapped", "blocks not in guest-physical memory", ucols, 2);
    for (unsigned i = 0; i < m->nunmapped; i++) {
        out_obj(w, NULL, NULL);
        out_str(w, "block", "block", mrimg_block(img, m->unmapped[i].block)->name);
        out_str(w, "reason", "reason", m->unmapped[i].reason);
        out_end(w);
    }
    out_end(w);
    out_end(w);
    mrimg_memory_map_free(m);
    return 0;
}

/* ---- extents ------------------------------------------------------------ */

typedef struct ext_ctx {
    out *w;
} ext_ctx;

static void extent_row(out *w, const mrimg_extent *e, int file_map)
{
    char what[MRIMG_NAME_MAX + 96], b[32];
    const char *rn = mrimg_region_name(e->region);
    out_obj(w, NULL, NULL);
    /* human: offset, end, length, type, what; JSON: offset, length, ... */
    out_off(w, "offset", "offset", e->offset);
    char endb[32];
    snprintf(endb, sizeof(endb), "0x%" PRIx64, e->offset + e->length);
    out_cell(w, endb);
    out_json_only(w, 1);
    out_u64(w, "length", "length", e->length);
    out_json_only(w, 0);
    out_cell(w, sz(b, sizeof(b), e->length));
    if (file_map) {
        out_cell(w, e->data ? "data" : "hole");
        out_json_only(w, 1);
        out_bool(w, "data", "data", e->data);
        out_json_only(w, 0);
    }
    out_json_only(w, 1);
    out_str(w, "region", "region", rn);
    if (e->block_name)
        out_str(w, "block", "block", e->block_name);
    if (e->region == MRIMG_REGION_PAGES) {
        out_u64(w, "first-page", "first page", e->first_page);
        out_u64(w, "last-page", "last page", e->last_page);
    }
    if (!file_map && e->region == MRIMG_REGION_RAM) {
        out_str(w, "section-type", "section type", section_type_name(e->section_type));
        out_u64(w, "section-id", "section id", e->section_id);
    }
    if (!file_map && e->region == MRIMG_REGION_COMMAND) {
        out_u64(w, "command", "command", e->command);
        out_str(w, "command-name", "command name", cmd_name(e->command));
    }
    out_json_only(w, 0);
    switch (e->region) {
    case MRIMG_REGION_PAGES:
        if (e->first_page == e->last_page)
            snprintf(what, sizeof(what), "%s pages %" PRIu64, e->block_name, e->first_page);
        else
            snprintf(what, sizeof(what), "%s pages %" PRIu64 "..%" PRIu64, e->block_name,
                     e->first_page, e->last_page);
        break;
    case MRIMG_REGION_BITMAP:
        snprintf(what, sizeof(what), "%s bitmap", e->block_name);
        break;
    case MRIMG_REGION_ALIGN:
        snprintf(what, sizeof(what), "%s alignment padding", e->block_name);
        break;
    case MRIMG_REGION_RAM:
        if (file_map)
            snprintf(what, sizeof(what), "stream: RAM section");
        else
            snprintf(what, sizeof(what), "RAM section %s (id %u)",
                     section_type_name(e->section_type), e->section_id);
        break;
    case MRIMG_REGION_COMMAND:
        snprintf(what, sizeof(what), "command %u (%s)", e->command, cmd_name(e->command));
        break;
    case MRIMG_REGION_STREAM_HEAD:
        snprintf(what, sizeof(what), "stream: header");
        break;
    case MRIMG_REGION_CONFIG:
        snprintf(what, sizeof(what), "stream: configuration");
        break;
    case MRIMG_REGION_TAIL:
        snprintf(what, sizeof(what), "stream: device state");
        break;
    case MRIMG_REGION_EOF:
        snprintf(what, sizeof(what), "stream: EOF");
        break;
    case MRIMG_REGION_VMDESC:
        snprintf(what, sizeof(what), "stream: VMDESCRIPTION");
        break;
    case MRIMG_REGION_PAYLOAD:
        snprintf(what, sizeof(what), "compressed payload");
        break;
    case MRIMG_REGION_TRAILING:
        snprintf(what, sizeof(what), "trailing bytes");
        break;
    case MRIMG_REGION_UNKNOWN:
        snprintf(what, sizeof(what), "unknown (not parsed)");
        break;
    default:
        snprintf(what, sizeof(what), "%s", rn ? rn : "?");
        break;
    }
    out_cell(w, what);
    out_end(w);
}

static int file_extent_cb(void *opaque, const mrimg_extent *e)
{
    extent_row(((ext_ctx *)opaque)->w, e, 1);
    return 0;
}

static int stream_extent_cb(void *opaque, const mrimg_extent *e)
{
    extent_row(((ext_ctx *)opaque)->w, e, 0);
    return 0;
}

/* ---- one image ---------------------------------------------------------- */

/* A string in a list: a line for humans, an array element in JSON. */
static void list_item(out *w, const char *text)
{
    out_cell(w, text);
    out_json_only(w, 1);
    out_str(w, NULL, NULL, text);
    out_json_only(w, 0);
}

static void print_error(out *w, const char *key, const mrimg_error *e)
{
    cli_out_error(w, key, e, NULL);
}

static const char *sev_name(mrimg_severity s) { return s == MRIMG_SEV_ERROR ? "error" : "warning"; }

/* The judgement: every problem (errors and warnings) of mrimg_check at the
 * quick level, and which expensive checks it left to imgverify. */
static void print_judgement(out *w, const mrimg_verify_result *r, const mrimg_error *failed)
{
    out_obj(w, "judgement", "checks");
    if (!r) {
        out_str(w, "level", "level", "not run");
        print_error(w, "error", failed);
        out_end(w);
        return;
    }
    out_str(w, "level", "level", r->data_checked ? "full" : "quick");
    out_u64(w, "errors", "errors", r->errors);
    out_u64(w, "warnings", "warnings", r->warnings);
    out_u64(w, "not-shown", "not shown", r->dropped);
    int no_data = !r->data_checked && r->mapped_ram;
    int no_recheck = !r->codec_rechecked && (r->payload_format == MRIMG_FORMAT_BZIP2 ||
                                             r->payload_format == MRIMG_FORMAT_XZ);
    out_list(w, "not-run", no_data || no_recheck ? "not run (imgverify runs them)" : NULL);
    if (no_data)
        list_item(w, "mapped-ram page data reads");
    if (no_recheck)
        list_item(w, "bzip2/xz checksum re-check of a decode error");
    out_end(w);
    out_end(w);
    out_list(w, "problems", r->nproblems ? "problems" : NULL);
    for (unsigned i = 0; i < r->nproblems; i++) {
        const mrimg_problem *p = &r->problems[i];
        char line[700];
        if (p->offset_kind == MRIMG_OFF_NONE)
            snprintf(line, sizeof(line), "%s %s: %s", sev_name(p->severity), p->check,
                     p->message);
        else
            snprintf(line, sizeof(line), "%s %s: %s offset 0x%" PRIx64 ": %s",
                     sev_name(p->severity), p->check,
                     p->offset_kind == MRIMG_OFF_FILE ? "file" : "stream", p->offset, p->message);
        if (!out_is_json(w)) {
            out_cell(w, line);
            continue;
        }
        out_obj(w, NULL, NULL);
        out_str(w, "check", NULL, p->check);
        out_str(w, "severity", NULL, sev_name(p->severity));
        out_str(w, "offset-kind", NULL,
                p->offset_kind == MRIMG_OFF_FILE     ? "file"
                : p->offset_kind == MRIMG_OFF_STREAM ? "stream"
                                                     : "none");
        if (p->offset_kind == MRIMG_OFF_NONE)
            out_null(w, "offset", NULL);
        else
            out_u64(w, "offset", NULL, p->offset);
        out_str(w, "message", NULL, p->message);
        out_end(w);
    }
    out_end(w);
}

static void print_container(out *w, const mrimg_container_info *ci)
{
    out_obj(w, "container", "container");
    out_str(w, "type", "type", ci->is_libvirt ? "libvirt" : "qemu");
    if (ci->is_libvirt) {
        out_str(w, "magic", "magic", ci->complete ? "LibvirtQemudSave" : "LibvirtQemudPart");
        out_bool(w, "complete", "complete", ci->complete);
        out_u64(w, "version", "version", ci->version);
        out_str(w, "byte-order", "byte order",
                ci->foreign_endian ? "foreign (fields byte-swapped)" : "native");
        const char *f = mrimg_format_name((int)ci->format);
        out_str(w, "format", "format", f ? f : "?");
        if ((int)ci->format != ci->payload_format)
            out_str(w, "payload-format", "payload format",
                    mrimg_format_name(ci->payload_format));
        out_bool(w, "was-running", "was running", ci->was_running != 0);
        out_size(w, "data-length", "data length", ci->data_len);
        out_size(w, "xml-size", "XML size", ci->xml_len);
        if (ci->cookie) {
            out_off(w, "cookie-offset", "cookie offset", ci->cookie_offset);
            out_size(w, "cookie-size", "cookie size", ci->cookie_len);
        } else {
            out_null(w, "cookie-offset", "cookie offset");
            out_null(w, "cookie-size", "cookie size");
        }
        uint64_t used = ci->xml_len + 1 + (ci->cookie ? ci->cookie_len + 1 : 0);
        out_size(w, "padding", "padding", ci->data_len > used ? ci->data_len - used : 0);
        if (ci->padding_nonzero)
            out_u64(w, "padding-nonzero", "non-zero padding bytes", ci->padding_nonzero);
        if (ci->reserved_nonzero)
            out_u64(w, "reserved-nonzero", "non-zero reserved words", ci->reserved_nonzero);
    } else {
        const char *pf = mrimg_format_name(ci->payload_format);
        out_str(w, "format", "format",
                ci->payload_format == MRIMG_FORMAT_RAW ? "raw (bare stream)" : pf);
    }
    out_off(w, "payload-offset", "payload offset", ci->payload_offset);
    out_end(w);
}

static void print_stream(out *w, const mrimg_image *img, int scanned_ok)
{
    const mrimg_stream_info *si = mrimg_stream(img);
    const mrimg_container_info *ci = mrimg_container(img);
    int compressed = ci->payload_format != MRIMG_FORMAT_RAW &&
                     ci->payload_format != MRIMG_FORMAT_SPARSE;
    out_obj(w, "stream", "stream");
    if (!si->stream_version) {
        out_note(w, "(the stream header could not be read)");
        out_end(w);
        return;
    }
    out_u64(w, "version", "version", si->stream_version);
    out_json_only(w, 1);
    out_str(w, "offset-space", "offsets", compressed ? "decompressed-stream" : "stream");
    out_json_only(w, 0);
    if (compressed)
        out_note(w, "(offsets in this section are positions in the decompressed stream)");
    else
        out_note(w, "(offsets in this section are stream offsets: add the payload offset for "
                    "file offsets)");
    if (si->has_config)
        out_str(w, "machine", "machine", si->machine);
    else
        out_null(w, "machine", "machine");
    out_u64(w, "page-size", "target page size", si->target_page_size);
    out_list(w, "capabilities", NULL);
    if (!out_is_json(w)) {
        char caps[1024] = "";
        size_t n = 0;
        for (unsigned i = 0; i < si->ncaps && n < sizeof(caps); i++)
            n += (size_t)snprintf(caps + n, sizeof(caps) - n, "%s%s", i ? ", " : "",
                                  mrimg_stream_capability(img, i));
        out_end(w);
        out_str(w, "capabilities", "capabilities",
                si->ncaps ? caps : "(none in the configuration section)");
    } else {
        for (unsigned i = 0; i < si->ncaps; i++)
            out_str(w, NULL, NULL, mrimg_stream_capability(img, i));
        out_end(w);
    }
    /* postcopy-ram is not among the capabilities QEMU lists in the
     * configuration section; a stream saved with it says so by a
     * postcopy-advise command (what imgconv refuses for mapped-ram) */
    bool advised = si->cmd_counts[3] != 0;
    if (out_is_json(w))
        out_bool(w, "postcopy-advised", NULL, advised);
    else
        out_str(w, "postcopy-advised", "postcopy",
                advised ? "advised (postcopy-advise command: saved with postcopy-ram enabled)"
                        : "no");
    if (si->has_uuid) {
        char u[40];
        const uint8_t *x = si->uuid;
        snprintf(u, sizeof(u),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", x[0],
                 x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13],
                 x[14], x[15]);
        out_str(w, "uuid", "uuid", u);
    } else {
        out_null(w, "uuid", "uuid");
    }
    out_str(w, "layout", "layout", si->mapped_ram ? "mapped-ram" : "plain");
    if (!si->mapped_ram) {
        out_str(w, "passes", "passes", si->multi_pass ? "multiple" : "single");
        out_bool(w, "ordered", "pages in order", si->ordered);
    }
    out_obj(w, "sections", "sections before the device state");
    out_u64(w, "start", "START", si->sections_start);
    out_u64(w, "part", "PART", si->sections_part);
    out_u64(w, "end", "END", si->sections_end);
    out_u64(w, "full", "FULL", si->sections_full);
    out_end(w);
    out_u64(w, "ram-section-id", "RAM section id", si->ram_section_id);
    out_u64(w, "commands", "commands", si->commands);
    if (si->commands) {
        out_obj(w, "command-counts", "command counts");
        for (unsigned c = 0; c < 16; c++)
            if (si->cmd_counts[c])
                out_u64(w, cmd_name(c), cmd_name(c), si->cmd_counts[c]);
        out_end(w);
    }
    if (!si->mapped_ram) {
        out_u64(w, "page-records", "page records", si->page_records);
        out_u64(w, "zero-records", "zero-page records", si->zero_records);
    }
    if (scanned_ok || si->ram_end) {
        out_off(w, "ram-end", "RAM part ends at", si->ram_end);
        out_json_only(w, 1);
        out_off(w, "device-state-offset", "device state starts at", si->ram_end);
        out_json_only(w, 0);
        out_size(w, "device-state-size", "device state size",
                 (si->has_eof ? si->eof_offset : si->stream_size) - si->ram_end);
        if (si->devices_walked)
            out_u64(w, "device-sections", "device sections", si->device_sections);
        else
            out_null(w, "device-sections", "device sections");
        if (si->has_eof)
            out_off(w, "eof-offset", "EOF record at", si->eof_offset);
        else
            out_null(w, "eof-offset", "EOF record at");
        if (si->has_vmdesc) {
            out_off(w, "vmdescription-offset", "VMDESCRIPTION JSON at", si->vmdesc_offset);
            out_size(w, "vmdescription-size", "VMDESCRIPTION JSON size", si->vmdesc_size);
        } else {
            out_null(w, "vmdescription-offset", "VMDESCRIPTION JSON at");
            out_null(w, "vmdescription-size", "VMDESCRIPTION JSON size");
        }
        out_size(w, "size", "stream size", si->stream_size);
        if (si->trailing_bytes)
            out_size(w, "trailing-bytes", "bytes after the stream", si->trailing_bytes);
    } else {
        out_null(w, "ram-end", "RAM part ends at");
        out_null(w, "size", "stream size");
    }
    out_end(w);
}

static void print_ram(out *w, const mrimg_image *img, int content)
{
    unsigned n = mrimg_block_count(img);
    const mrimg_stream_info *si = mrimg_stream(img);
    out_obj(w, "ram", "RAM");
    if (n == 0) {
        out_note(w, "(no RAM block list)");
        out_list(w, "blocks", NULL);
        out_end(w);
        out_end(w);
        return;
    }
    int mapped = si->mapped_ram;
    out_col cols[10];
    int nc = 0;
    cols[nc++] = (out_col){"block", -22};
    cols[nc++] = (out_col){"size", 9};
    cols[nc++] = (out_col){"pages", 8};
    cols[nc++] = (out_col){"data", 8};
    cols[nc++] = (out_col){"zero", 8};
    if (content)
        cols[nc++] = (out_col){"zero-filled", 11};
    if (mapped) {
        cols[nc++] = (out_col){"bitmap at", 14};
        cols[nc++] = (out_col){"pages at", 14};
    } else {
        cols[nc++] = (out_col){"absent", 8};
        cols[nc++] = (out_col){"records", 8};
    }
    if (mapped)
        out_note(w, "(bitmap at, pages at: file offsets)");
    out_table(w, "blocks", "blocks", cols, nc);
    for (unsigned i = 0; i < n; i++) {
        const mrimg_ram_block_info *b = mrimg_block(img, i);
        out_obj(w, NULL, NULL);
        out_str(w, "name", "name", b->name);
        out_size(w, "used-length", "used length", b->used_length);
        out_u64(w, "pages", "pages", b->pages);
        out_u64(w, "pages-data", "pages with data", b->pages_data);
        out_u64(w, "pages-zero", "zero pages", b->pages_zero);
        if (content)
            out_u64(w, "pages-zero-filled", "zero-filled", b->pages_zero_filled);
        if (mapped) {
            out_off(w, "bitmap-offset", "bitmap at", b->bitmap_offset);
            out_off(w, "pages-offset", "pages at", b->pages_offset);
            out_json_only(w, 1);
            out_u64(w, "bitmap-size", "bitmap size", b->bitmap_size);
            out_off(w, "header-offset", "header at", b->header_offset);
            out_json_only(w, 0);
        } else {
            out_u64(w, "pages-absent", "absent", b->pages_absent);
            out_u64(w, "records", "records", b->records);
        }
        out_json_only(w, 1);
        out_u64(w, "page-size", "page size", b->page_size);
        if (b->has_postcopy_page_size)
            out_u64(w, "postcopy-page-size", "postcopy page size", b->postcopy_page_size);
        if (b->has_mr_addr)
            out_off(w, "mr-addr", "mr_addr", b->mr_addr);
        out_json_only(w, 0);
        out_end(w);
    }
    out_end(w);
    totals t = ram_totals(img);
    out_obj(w, "total", "total");
    out_u64(w, "blocks", "blocks", n);
    out_size(w, "size", "guest RAM", t.ram);
    out_u64(w, "pages", "pages", t.pages);
    uint64_t pd = 0, pz = 0, pa = 0, pzf = 0;
    for (unsigned i = 0; i < n; i++) {
        const mrimg_ram_block_info *b = mrimg_block(img, i);
        pd += b->pages_data;
        pz += b->pages_zero;
        pa += b->pages_absent;
        pzf += b->pages_zero_filled;
    }
    out_u64(w, "pages-data", "pages with data", pd);
    out_u64(w, "pages-zero", "zero pages", pz);
    if (!mapped)
        out_u64(w, "pages-absent", "pages never sent", pa);
    if (content)
        out_u64(w, "pages-zero-filled", "zero-filled data pages", pzf);
    out_size(w, "data-size", "data", t.data);
    out_end(w);
    out_end(w);
}

static void print_sizes(out *w, const mrimg_image *img, int scanned_ok, int content)
{
    const mrimg_container_info *ci = mrimg_container(img);
    const mrimg_stream_info *si = mrimg_stream(img);
    totals t = ram_totals(img);
    int compressed = ci->payload_format != MRIMG_FORMAT_RAW &&
                     ci->payload_format != MRIMG_FORMAT_SPARSE;
    out_obj(w, "sizes", "sizes");
    out_size(w, "file-size", "file size", ci->file_size);
    out_size(w, "allocated", "allocated on disk", ci->file_allocated);
    out_size(w, "guest-ram", "guest RAM", t.ram);
    out_size(w, "ram-data", "RAM data", t.data);
    /* a pipe whose end was not read has no size yet (0) */
    uint64_t payload = ci->file_size > ci->payload_offset ? ci->file_size - ci->payload_offset : 0;
    out_size(w, "payload-size", compressed ? "payload (compressed)" : "payload", payload);
    if (scanned_ok) {
        uint64_t stream = si->stream_size + si->trailing_bytes;
        out_size(w, "stream-size", compressed ? "stream (uncompressed)" : "stream", stream);
        if (compressed && payload)
            out_double(w, "compression-ratio", "compression ratio", (double)stream / (double)payload,
                       2);
        else
            out_null(w, "compression-ratio", "compression ratio");
    } else {
        out_null(w, "stream-size", compressed ? "stream (uncompressed)" : "stream");
        out_null(w, "compression-ratio", "compression ratio");
    }
    char e[1024];
    explain(e, sizeof(e), img, scanned_ok, content);
    out_str(w, "explanation", "explanation", e);
    out_end(w);
}

static int info_xml(out *w, const char *path, mrimg_image *img, const opts *op)
{
    const mrimg_container_info *ci = mrimg_container(img);
    out_json_only(w, 1);
    out_str(w, "file", "file", path);
    out_json_only(w, 0);
    if (!ci->is_libvirt) {
        cli_error(path, "a bare QEMU migration stream has no domain XML");
        out_null(w, "xml", "xml");
        return EXIT_PROBLEM;
    }
    int status = EXIT_OK;
    if (!ci->complete) {
        cli_warn(path, "incomplete save (magic LibvirtQemudPart): libvirt refuses to restore "
                       "it");
        status = EXIT_PROBLEM;
    }
    if (op->security_info) {
        out_json_only(w, 1);
        out_bool(w, "security-info", "security info", 1);
        out_json_only(w, 0);
        out_text(w, "xml", ci->xml);
        return status;
    }
    mrimg_error err;
    unsigned removed = 0;
    char *x = mrimg_xml_strip_secrets(ci->xml, ci->xml_len, &removed, &err);
    if (!x) {
        cli_fail(&err, path, NULL);
        out_null(w, "xml", "xml");
        return EXIT_PROBLEM;
    }
    out_json_only(w, 1);
    out_bool(w, "security-info", "security info", 0);
    out_u64(w, "secrets-removed", "secrets removed", removed);
    out_json_only(w, 0);
    out_text(w, "xml", x);
    free(x);
    return status;
}

static int info_cookie(out *w, const char *path, mrimg_image *img)
{
    const mrimg_container_info *ci = mrimg_container(img);
    out_json_only(w, 1);
    out_str(w, "file", "file", path);
    out_json_only(w, 0);
    if (!ci->is_libvirt) {
        cli_error(path, "a bare QEMU migration stream has no save cookie");
        out_null(w, "cookie", "cookie");
        return EXIT_PROBLEM;
    }
    int status = EXIT_OK;
    if (!ci->complete) {
        cli_warn(path, "incomplete save (magic LibvirtQemudPart): libvirt refuses to restore "
                       "it");
        status = EXIT_PROBLEM;
    }
    if (!ci->cookie) {
        /* older libvirt versions wrote none; not a problem */
        cli_warn(path, "the image has no save cookie (cookie offset 0)");
        out_null(w, "cookie", "cookie");
        return status;
    }
    /* printed as stored: libvirt's cookie is the guest CPU definition and
     * flags such as <slirpHelper/>, no passwords or keys */
    out_text(w, "cookie", ci->cookie);
    return status;
}

/* ---- vCPUs (--cpu) ------------------------------------------------------- */

static void hex_val(out *w, const char *key, uint64_t v, int digits)
{
    char b[24];
    snprintf(b, sizeof(b), "0x%0*" PRIx64, digits, v);
    out_str(w, key, key, b);
}

static void print_segment(out *w, const char *key, const mrimg_x86_segment *s, int full)
{
    out_obj(w, key, key);
    if (full)
        hex_val(w, "selector", s->selector, 4);
    hex_val(w, "base", s->base, 16);
    hex_val(w, "limit", s->limit, 8);
    if (full)
        hex_val(w, "flags", s->flags & 0x00ffff00u, 8); /* as info registers shows it */
    out_end(w);
}

/* The vCPUs' registers; the exit status (0, or why they could not be read,
 * reported). */
static int print_cpus(out *w, const char *path, mrimg_image *img)
{
    static const char *const regs[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp",
                                         "rsi", "rdi", "r8",  "r9",  "r10", "r11",
                                         "r12", "r13", "r14", "r15"};
    static const char *const segs[6] = {"es", "cs", "ss", "ds", "fs", "gs"};
    mrimg_error err;
    mrimg_cpus *cpus = NULL;
    int rc = mrimg_cpus_read(img, &cpus, &err);
    out_list(w, "cpus", "vCPUs");
    for (unsigned i = 0; rc == 0 && i < mrimg_cpus_count(cpus); i++) {
        mrimg_x86_cpu c;
        c.size = sizeof(c);
        rc = mrimg_cpus_get(cpus, i, &c, &err);
        if (rc < 0)
            break;
        char title[32];
        snprintf(title, sizeof(title), "vCPU %u", c.index);
        out_obj(w, NULL, title);
        out_u64(w, "index", "index", c.index);
        if (c.halted >= 0)
            out_bool(w, "halted", "halted", c.halted);
        else
            out_null(w, "halted", "halted");
        out_u64(w, "cpl", "CPL", c.hflags & 3);
        out_bool(w, "long-mode", "long mode", (c.hflags >> 14) & 1);
        hex_val(w, "rip", c.rip, 16);
        hex_val(w, "rsp", c.regs[MRIMG_REG_RSP], 16);
        hex_val(w, "rflags", c.rflags, 16);
        out_obj(w, "regs", "registers");
        for (unsigned r = 0; r < 16; r++)
            hex_val(w, regs[r], c.regs[r], 16);
        out_end(w);
        out_obj(w, "segments", "segments");
        for (unsigned s = 0; s < 6; s++)
            print_segment(w, segs[s], &c.seg[s], 1);
        print_segment(w, "ldt", &c.ldt, 1);
        print_segment(w, "tr", &c.tr, 1);
        out_end(w);
        print_segment(w, "gdt", &c.gdt, 0);
        print_segment(w, "idt", &c.idt, 0);
        hex_val(w, "cr0", c.cr0, 16);
        hex_val(w, "cr2", c.cr2, 16);
        hex_val(w, "cr3", c.cr3, 16);
        hex_val(w, "cr4", c.cr4, 16);
        hex_val(w, "efer", c.efer, 16);
        hex_val(w, "kernel-gs-base", c.kernel_gs_base, 16);
        out_end(w);
    }
    out_end(w);
    mrimg_cpus_free(cpus);
    if (rc < 0) {
        print_error(w, "cpu-error", &err);
        return cli_fail(&err, path, NULL);
    }
    return EXIT_OK;
}

static int info_image(out *w, const char *path, mrimg_image *img, const opts *op)
{
    const mrimg_container_info *ci = mrimg_container(img);
    mrimg_error err, cerr;
    mrimg_error_clear(&cerr);
    /* one bar for the run: each pass (scan, content, extents, stream map)
     * an equal span of it; each reads at most the payload once */
    int compressed0 = ci->payload_format != MRIMG_FORMAT_RAW &&
                      ci->payload_format != MRIMG_FORMAT_SPARSE;
    int npass = 1 + (op->content != 0) + (op->extents ? 1 + compressed0 : 0), pass = 0;
    double span = 100.0 / npass;
    cli_progress_setup(op->progress ? 1 : 0, "imginfo");
    /* the library's one judgement (quick level): its errors make the exit
     * status 1, its warnings do not.  It rides on the scan's pass (one
     * read, a pipe or a file); the scan then returns at once, or its
     * error (a mapped-ram image's judgement reads its metadata again) */
    const mrimg_verify_result *jr = NULL;
    mrimg_error jerr;
    cli_progress_span("scanning", 0, span * ++pass);
    int jrc = mrimg_check(img, MRIMG_CHECK_QUICK, cli_progress, NULL, &jr, &jerr);
    int rc = mrimg_scan(img, 0, cli_progress, NULL, &err);
    int crc = 0;
    if (rc == 0 && op->content) {
        /* a plain stream's scan counted them; mapped-ram reads its pages */
        cli_progress_span("content", span * pass, span * (pass + 1));
        pass++;
        crc = mrimg_content_scan(img, cli_progress, NULL, &cerr);
    }
    cli_progress_break();
    int scanned_ok = rc == 0;
    int compressed = ci->payload_format != MRIMG_FORMAT_RAW &&
                     ci->payload_format != MRIMG_FORMAT_SPARSE;

    int np = (jrc < 0 || jr->errors) + (rc < 0) + (crc < 0);

    out_str(w, "file", "image", path);
    out_str(w, "status", "status", np ? "problems" : "ok");
    if (rc < 0) {
        print_error(w, "error", &err);
    } else {
        out_json_only(w, 1);
        out_null(w, "error", "error");
        out_json_only(w, 0);
    }
    print_judgement(w, jr, jrc < 0 ? &jerr : NULL);

    print_container(w, ci);
    print_stream(w, img, scanned_ok);
    print_ram(w, img, op->content && crc == 0);
    print_sizes(w, img, scanned_ok, op->content && crc == 0);
    int cpu_status = op->cpu ? print_cpus(w, path, img) : EXIT_OK;
    if (cpu_status)
        np++;

    if (rc < 0)
        cli_fail(&err, path, NULL);
    if (crc < 0)
        cli_fail(&cerr, path, NULL);
    if (jrc < 0)
        cli_fail(&jerr, path, NULL);
    else
        cli_print_problems(path, jr, true, false, false);
    /* a failed --cpu, --memory-map or extents walk */
    int ext_status = cpu_status;

    int map_status = op->memory_map ? print_memory_map(w, img, path) : EXIT_OK;
    if (map_status) {
        np++;
        if (map_status > ext_status)
            ext_status = map_status;
    }

    if (op->extents) {
        static const out_col fcols[] = {
            {"offset", -14}, {"end", -14}, {"length", 9}, {"type", -4}, {"what", 0},
        };
        ext_ctx x = {w};
        mrimg_extent_totals tot = {.size = sizeof(tot)};
        mrimg_error eerr;
        cli_progress_span("extents", span * pass, span * (pass + 1));
        pass++;
        out_table(w, "extents", "extents (file offsets)", fcols, 5);
        int erc = mrimg_extents(img, file_extent_cb, &x, &tot, cli_progress, NULL, &eerr);
        out_end(w);
        cli_progress_break();
        out_obj(w, "extent-totals", "extent totals");
        out_u64(w, "runs", "runs", tot.runs);
        out_u64(w, "data-runs", "data runs", tot.data_runs);
        out_u64(w, "hole-runs", "hole runs", tot.hole_runs);
        out_size(w, "data-bytes", "data", tot.data_bytes);
        out_size(w, "hole-bytes", "holes", tot.hole_bytes);
        out_bool(w, "hole-map", "file system reports holes", tot.hole_map);
        out_end(w);
        if (erc < 0) {
            ext_status = cli_fail(&eerr, path, NULL);
            np++;
        }
        if (compressed) {
            static const out_col scols[] = {
                {"offset", -14}, {"end", -14}, {"length", 9}, {"what", 0},
            };
            cli_progress_span("stream map", span * pass, 100);
            out_table(w, "stream-map", "regions of the decompressed stream (stream offsets)",
                      scols, 4);
            int src = mrimg_stream_map(img, stream_extent_cb, &x, cli_progress, NULL, &eerr);
            out_end(w);
            cli_progress_break();
            if (src < 0 && rc == 0) {
                int st = cli_fail(&eerr, path, NULL);
                if (st > ext_status)
                    ext_status = st;
                np++;
            }
        }
    }
    cli_progress_done();
    int status = np ? EXIT_PROBLEM : EXIT_OK;
    /* a file that could not be read (not a damaged image) */
    if (rc < 0 && cli_exit_for(&err) > status)
        status = cli_exit_for(&err);
    if (crc < 0 && cli_exit_for(&cerr) > status)
        status = cli_exit_for(&cerr);
    if (ext_status > status)
        status = ext_status;
    return status;
}

static int info_file(const char *path, const opts *op, int index)
{
    mrimg_error err;
    mrimg_image *img = cli_open(path, op->stream_offset, 0, &err);
    if (op->mode == OUT_JSON && index > 0)
        fputs(",\n", stdout);
    else if (op->mode == OUT_HUMAN && index > 0 && !op->xml && !op->cookie)
        fputc('\n', stdout);
    if (!img) {
        int status = cli_fail(&err, path, NULL);
        if (op->mode == OUT_JSON) {
            out *w = out_new(stdout, OUT_JSON);
            if (w) {
                out_str(w, "file", "image", path);
                out_str(w, "status", "status", "error");
                print_error(w, "error", &err);
                out_free(w);
            }
        }
        return status;
    }
    out *w = out_new(stdout, op->mode);
    if (!w) {
        cli_error(path, "out of memory");
        mrimg_close(img);
        return EXIT_FILE;
    }
    int status = op->xml      ? info_xml(w, path, img, op)
                 : op->cookie ? info_cookie(w, path, img)
                              : info_image(w, path, img, op);
    out_free(w);
    mrimg_close(img);
    return status;
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    static const struct option longopts[] = {
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"extents", no_argument, NULL, OPT_EXTENTS},
        {"xml", no_argument, NULL, OPT_XML},
        {"cookie", no_argument, NULL, OPT_COOKIE},
        {"security-info", no_argument, NULL, OPT_SECURITY_INFO},
        {"content", no_argument, NULL, OPT_CONTENT},
        {"offset", required_argument, NULL, OPT_OFFSET},
        {"cpu", no_argument, NULL, OPT_CPU},
        {"memory-map", no_argument, NULL, OPT_MEMORY_MAP},
        {"progress", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opts op;
    memset(&op, 0, sizeof(op));
    op.mode = OUT_HUMAN;
    int c;
    const char *seen_off = NULL, *seen_out = NULL;
    opterr = 0; /* our own messages, named "imginfo: ..." */
    while ((c = getopt_long(argc, argv, ":phV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_OUTPUT:
            if (!cli_once(&seen_out, "--output", optarg))
                return EXIT_USAGE;
            op.mode = cli_parse_output(optarg);
            if (op.mode < 0) {
                cli_error(NULL, "invalid output format '%s' (human or json)", optarg);
                cli_usage_hint();
                return EXIT_USAGE;
            }
            break;
        case OPT_EXTENTS: op.extents = 1; break;
        case OPT_XML: op.xml = 1; break;
        case OPT_COOKIE: op.cookie = 1; break;
        case OPT_SECURITY_INFO: op.security_info = 1; break;
        case OPT_CONTENT: op.content = 1; break;
        case OPT_CPU: op.cpu = 1; break;
        case OPT_MEMORY_MAP: op.memory_map = 1; break;
        case OPT_OFFSET:
            if (!cli_once(&seen_off, "--offset", optarg))
                return EXIT_USAGE;
            if (!cli_parse_u64(optarg, &op.stream_offset)) {
                cli_error(NULL, "invalid offset '%s'", optarg);
                cli_usage_hint();
                return EXIT_USAGE;
            }
            break;
        case 'p': op.progress = 1; break;
        case 'h': usage(); return EXIT_OK;
        case 'V': cli_version(); return EXIT_OK;
        case ':':
            cli_error(NULL, "option '%s' needs an argument", argv[optind - 1]);
            cli_usage_hint();
            return EXIT_USAGE;
        default:
            cli_error(NULL, "unrecognized option '%s'", argv[optind - 1]);
            cli_usage_hint();
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error(NULL, "missing FILE");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (op.security_info && !op.xml) {
        cli_error(NULL, "--security-info only applies to --xml");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if (op.xml && op.cookie) {
        cli_error(NULL, "--xml and --cookie exclude each other (run imginfo twice)");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    if ((op.xml || op.cookie) &&
        (op.extents || op.content || op.cpu || op.memory_map || op.progress)) {
        cli_error(NULL, "%s prints only the %s: it cannot be combined with %s",
                  op.xml ? "--xml" : "--cookie", op.xml ? "domain XML" : "save cookie",
                  op.extents      ? "--extents"
                  : op.content    ? "--content"
                  : op.cpu        ? "--cpu"
                  : op.memory_map ? "--memory-map"
                                  : "-p/--progress (nothing is scanned)");
        cli_usage_hint();
        return EXIT_USAGE;
    }
    int nfiles = argc - optind, status = EXIT_OK;
    if (!cli_stdin_once(argv + optind, nfiles))
        return EXIT_USAGE;
    for (int i = 0; i < nfiles; i++) {
        /* a pipe is read once, forward: what needs the file's hole map is
         * refused before anything is read (a mapped-ram input, which needs
         * random access, by mrimg_open) */
        const char *f = argv[optind + i];
        if (op.extents && cli_input_is_pipe(f)) {
            cli_error(f,
                      "--extents (a map of the file's data and holes) needs a file: this input "
                      "is a FIFO (pipe), which can be read only once");
            return EXIT_FILE; /* the input cannot be read as this needs */
        }
    }
    cli_signals();
    if (op.mode == OUT_JSON && nfiles > 1)
        fputs("[\n", stdout);
    for (int i = 0; i < nfiles; i++) {
        int s = info_file(argv[optind + i], &op, i);
        if (s > status)
            status = s;
    }
    if (op.mode == OUT_JSON && nfiles > 1)
        fputs("]\n", stdout);
    return status;
}
