/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The migration stream reader (lib/stream/reader.c) on hand-made bare
 * streams, one defect each: every refusal of the configuration section,
 * the block list, the RAM records, the commands and the section framing is
 * met once, and must come with its error code, its message and the stream
 * offset of the record at fault.  (Corrupted copies of the real images are
 * in test_verify; these are the records QEMU never writes, which only a
 * damaged or hostile file holds.) */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    return test_group_tmpdir_setup(&g_dir, "reader");
}

static int teardown(void **state)
{
    (void)state;
    return test_group_tmpdir_teardown(&g_dir);
}

/* ---- a stream builder ------------------------------------------------------ */

typedef struct st {
    uint8_t b[65536];
    size_t n;
} st;

static void put(st *s, const void *p, size_t n)
{
    assert_true(s->n + n <= sizeof(s->b));
    memcpy(s->b + s->n, p, n);
    s->n += n;
}
static void u8(st *s, uint8_t v) { put(s, &v, 1); }
static void be16(st *s, uint16_t v)
{
    u8(s, (uint8_t)(v >> 8));
    u8(s, (uint8_t)v);
}
static void be32(st *s, uint32_t v)
{
    be16(s, (uint16_t)(v >> 16));
    be16(s, (uint16_t)v);
}
static void be64(st *s, uint64_t v)
{
    be32(s, (uint32_t)(v >> 32));
    be32(s, (uint32_t)v);
}
static void str8(st *s, const char *t)
{
    u8(s, (uint8_t)strlen(t));
    put(s, t, strlen(t));
}

#define PS 4096u
#define RAM_ID 2u

static void magic(st *s)
{
    put(s, "QEVM", 4);
    be32(s, 3);
}
/* configuration with the machine name only */
static void config(st *s, const char *machine)
{
    u8(s, 0x07);
    be32(s, (uint32_t)strlen(machine));
    put(s, machine, strlen(machine));
}
static void cfg_sub(st *s, const char *name, uint32_t ver)
{
    u8(s, 0x05);
    str8(s, name);
    be32(s, ver);
}
static void section(st *s, uint8_t type, uint32_t id, const char *idstr, uint32_t inst,
                    uint32_t ver)
{
    u8(s, type);
    be32(s, id);
    if (type == 0x01 || type == 0x04) {
        str8(s, idstr);
        be32(s, inst);
        be32(s, ver);
    }
}
static void ram_start(st *s) { section(s, 0x01, RAM_ID, "ram", 0, 4); }
static void rec(st *s, uint64_t addr, uint32_t flags) { be64(s, addr | flags); }
static void mem_size(st *s, uint64_t total) { rec(s, total, 0x04); }
static void block(st *s, const char *name, uint64_t len)
{
    str8(s, name);
    be64(s, len);
}
static void eos(st *s) { rec(s, 0, 0x10); }
static void footer(st *s, uint32_t id)
{
    u8(s, 0x7e);
    be32(s, id);
}
static void command(st *s, uint16_t cmd, uint16_t len)
{
    u8(s, 0x08);
    be16(s, cmd);
    be16(s, len);
    for (uint16_t i = 0; i < len; i++)
        u8(s, 0);
}
/* the usual head: magic, configuration, RAM START with one 2-page block */
static void head(st *s)
{
    magic(s);
    config(s, "pc-i440fx-10.0");
    ram_start(s);
    mem_size(s, 2 * PS);
    block(s, "pc.ram", 2 * PS);
}

/* ---- expectations ----------------------------------------------------------- */

/* The stream s, as a bare file, fails to open or scan with code and a
 * message containing want, at stream offset off (UINT64_MAX: not checked). */
static void expect_fail(const st *s, mrimg_code code, const char *want, uint64_t off)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/s.mig", g_dir);
    write_file(path, s->b, s->n);
    mrimg_error err;
    mrimg_image *img = t_open(path, NULL, &err);
    int rc = img ? mrimg_scan(img, 0, NULL, NULL, &err) : err.code;
    mrimg_close(img);
    if (rc != (int)code || !strstr(err.message, want))
        fail_msg("expected %s \"%s\", got %d: %s", mrimg_code_name(code), want, rc, err.message);
    if (off != UINT64_MAX) {
        assert_int_not_equal(err.offset_kind, MRIMG_OFF_NONE); /* a bare stream at 0: file = stream offsets */
        if (err.offset != off)
            fail_msg("\"%s\" at %llu, expected %llu", err.message,
                     (unsigned long long)err.offset, (unsigned long long)off);
    }
}

/* ---- the configuration section ------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    st s = {0};
    magic(&s);
    config(&s, "pc\x01q35");
    expect_fail(&s, MRIMG_ERR_FORMAT, "machine type name contains control characters", 13);

    s.n = 0;
    magic(&s);
    config(&s, "pc");
    size_t at = s.n;
    cfg_sub(&s, "configuration/colour", 1);
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "unknown configuration subsection \"configuration/colour\" (expected "
                "configuration/target-page-bits, /capabilities or /uuid)",
                at);

    s.n = 0;
    magic(&s);
    config(&s, "pc");
    cfg_sub(&s, "configuration/uuid", 1);
    put(&s, "0123456789abcdef", 16);
    at = s.n;
    cfg_sub(&s, "configuration/target-page-bits", 1);
    be32(&s, 12);
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "configuration subsection \"configuration/target-page-bits\" repeated or out of "
                "order",
                at);

    s.n = 0;
    magic(&s);
    config(&s, "pc");
    at = s.n;
    cfg_sub(&s, "configuration/target-page-bits", 2);
    be32(&s, 12);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED,
                "configuration subsection \"configuration/target-page-bits\" has version 2 "
                "(expected 1)",
                at);

    s.n = 0;
    magic(&s);
    config(&s, "pc");
    cfg_sub(&s, "configuration/target-page-bits", 1);
    at = s.n;
    be32(&s, 9);
    expect_fail(&s, MRIMG_ERR_FORMAT, "target page bits 9 out of range (expected 10..21)", at);

    s.n = 0;
    magic(&s);
    config(&s, "pc");
    cfg_sub(&s, "configuration/capabilities", 1);
    at = s.n;
    be32(&s, 65);
    expect_fail(&s, MRIMG_ERR_LIMIT, "65 capabilities exceed the cap of 64", at);

    s.n = 0;
    magic(&s);
    config(&s, "pc");
    cfg_sub(&s, "configuration/capabilities", 1);
    be32(&s, 2);
    str8(&s, "mapped-ram");
    at = s.n;
    str8(&s, "");
    expect_fail(&s, MRIMG_ERR_FORMAT, "capability 1 has an empty or unprintable name", at);

    /* mapped-ram and x-ignore-shared together: refused at the block list */
    s.n = 0;
    magic(&s);
    config(&s, "pc");
    cfg_sub(&s, "configuration/capabilities", 1);
    be32(&s, 2);
    str8(&s, "mapped-ram");
    str8(&s, "x-ignore-shared");
    ram_start(&s);
    at = s.n;
    mem_size(&s, PS);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED, "x-ignore-shared together with mapped-ram", at);

    /* the configuration again in the middle */
    s.n = 0;
    magic(&s);
    config(&s, "pc");
    at = s.n;
    config(&s, "pc");
    expect_fail(&s, MRIMG_ERR_FORMAT, "configuration section in the middle of the stream", at);
}

/* ---- the block list ----------------------------------------------------------- */

static void test_block_list(void **state)
{
    (void)state;
    st s = {0};
    head(&s);
    size_t at = s.n;
    mem_size(&s, PS);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED,
                "a second RAM block list (the RAM setup restarted); not supported", at);

    s.n = 0;
    magic(&s);
    ram_start(&s);
    at = s.n;
    mem_size(&s, (64ull << 40) + PS);
    expect_fail(&s, MRIMG_ERR_LIMIT, "RAM total of 70368744181760 bytes exceeds the 64 TiB cap",
                at);

    s.n = 0;
    magic(&s);
    ram_start(&s);
    mem_size(&s, 2 * PS);
    block(&s, "pc.ram", PS);
    at = s.n;
    block(&s, "pc.ram", PS);
    expect_fail(&s, MRIMG_ERR_FORMAT, "RAM block \"pc.ram\" listed twice", at);

    s.n = 0;
    magic(&s);
    ram_start(&s);
    mem_size(&s, 17ull << 40);
    str8(&s, "pc.ram");
    at = s.n;
    be64(&s, 17ull << 40);
    expect_fail(&s, MRIMG_ERR_LIMIT,
                "RAM block \"pc.ram\" of 18691697672192 bytes exceeds the 16 TiB cap", at);

    /* a RAM section with records but no block list at all */
    s.n = 0;
    magic(&s);
    ram_start(&s);
    rec(&s, 0, 0x200); /* MULTIFD_FLUSH */
    eos(&s);
    at = s.n;
    footer(&s, RAM_ID);
    expect_fail(&s, MRIMG_ERR_FORMAT, "RAM section ends without a block list", at);
}

/* ---- the RAM records ---------------------------------------------------------- */

static void test_records(void **state)
{
    (void)state;
    st s = {0};
    magic(&s);
    ram_start(&s);
    size_t at = s.n;
    rec(&s, 0, 0x08);
    expect_fail(&s, MRIMG_ERR_FORMAT, "RAM page record before the block list (MEM_SIZE)", at);

    s.n = 0;
    head(&s);
    at = s.n;
    rec(&s, 0, 0x08 | 0x20);
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "RAM record continues a block but no block was named before", at);

    s.n = 0;
    head(&s);
    at = s.n;
    rec(&s, 0, 0x02);
    str8(&s, "pc.rom");
    u8(&s, 0);
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "RAM record names block \"pc.rom\", which is not in the block list", at + 8);

    s.n = 0;
    head(&s);
    rec(&s, PS, 0x40); /* XBZRLE */
    str8(&s, "pc.ram");
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED,
                "XBZRLE-encoded page (the stream was saved with the xbzrle capability); not "
                "supported",
                s.n - 15);

    /* compressed pages: a length out of range, then one that inflates to
     * less than a page, then a good one (the stream goes on to its end) */
    s.n = 0;
    head(&s);
    rec(&s, 0, 0x100);
    str8(&s, "pc.ram");
    at = s.n;
    be32(&s, 0);
    expect_fail(&s, MRIMG_ERR_FORMAT, "compressed page length 0 out of range (1..", at);

    static uint8_t page[PS], z[PS + 64];
    memset(page, 0x5a, sizeof(page));
    uLongf zl = sizeof(z);
    assert_int_equal(compress(z, &zl, page, 100), Z_OK); /* 100 bytes, not a page */
    s.n = 0;
    head(&s);
    at = s.n;
    rec(&s, 0, 0x100);
    str8(&s, "pc.ram");
    be32(&s, (uint32_t)zl);
    put(&s, z, zl);
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "compressed page does not inflate to exactly one 4096-byte page", at);

    zl = sizeof(z);
    assert_int_equal(compress(z, &zl, page, PS), Z_OK);
    s.n = 0;
    head(&s);
    rec(&s, PS, 0x100);
    str8(&s, "pc.ram");
    be32(&s, (uint32_t)zl);
    put(&s, z, zl);
    eos(&s);
    footer(&s, RAM_ID);
    at = s.n;
    u8(&s, 0x00); /* EOF without a RAM END */
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "EOF record before the RAM section ended (no RAM END section)", at);

    /* a page record in a mapped-ram stream */
    s.n = 0;
    magic(&s);
    config(&s, "pc");
    cfg_sub(&s, "configuration/capabilities", 1);
    be32(&s, 1);
    str8(&s, "mapped-ram");
    ram_start(&s);
    at = s.n;
    rec(&s, 0, 0x200);
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "page record in a mapped-ram stream (only the block list and EOS are allowed "
                "there)",
                at);
}

/* ---- commands and sections ----------------------------------------------------- */

static void test_commands(void **state)
{
    (void)state;
    st s = {0};
    magic(&s);
    size_t at = s.n;
    command(&s, 2, 2); /* PING carries 4 bytes */
    expect_fail(&s, MRIMG_ERR_FORMAT, "command 2 has length 2 (expected 4)", at);

    s.n = 0;
    magic(&s);
    at = s.n;
    command(&s, 3, 5);
    expect_fail(&s, MRIMG_ERR_FORMAT, "postcopy advise command has length 5 (expected 0 or 16)",
                at);

    static const uint16_t live[] = {4, 5, 6, 7, 8, 9, 10};
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        s.n = 0;
        magic(&s);
        at = s.n;
        command(&s, live[i], live[i] == 7 ? 4 : live[i] == 6 || live[i] == 10 ? 3 : 0);
        char want[128];
        snprintf(want, sizeof(want),
                 "command %u belongs to a running postcopy/COLO migration and cannot be loaded "
                 "from a file",
                 live[i]);
        expect_fail(&s, MRIMG_ERR_UNSUPPORTED, want, at);
    }
}

static void test_sections(void **state)
{
    (void)state;
    st s = {0};
    magic(&s);
    size_t at = s.n;
    section(&s, 0x04, 3, "timer", 0, 2);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED,
                "section \"timer\" (instance 0) appears before the end of RAM; an iterable or "
                "early device section cannot be delimited without its schema",
                at);

    s.n = 0;
    magic(&s);
    at = s.n;
    section(&s, 0x04, RAM_ID, "ram", 0, 4);
    expect_fail(&s, MRIMG_ERR_FORMAT, "RAM sent as a FULL section (expected START, PART, END)",
                at);

    s.n = 0;
    head(&s);
    eos(&s);
    footer(&s, RAM_ID);
    at = s.n;
    ram_start(&s);
    expect_fail(&s, MRIMG_ERR_FORMAT, "second RAM START section", at);

    s.n = 0;
    magic(&s);
    at = s.n;
    section(&s, 0x02, 7, NULL, 0, 0);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED,
                "PART section 7 is not the RAM section (none started yet); other iterable "
                "devices before the end of RAM are not supported",
                at);

    s.n = 0;
    head(&s);
    eos(&s);
    footer(&s, RAM_ID);
    at = s.n;
    section(&s, 0x03, 9, NULL, 0, 0);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED,
                "END section 9 is not the RAM section (which has a different id)", at);

    s.n = 0;
    magic(&s);
    config(&s, "pc");
    at = s.n;
    u8(&s, 0x00);
    expect_fail(&s, MRIMG_ERR_FORMAT,
                "EOF record before the RAM section ended (no RAM section at all)", at);
}

/* The stream header: magic and version (a bare file needs the magic to be
 * recognised at all; at an offset the reader itself checks it). */
static void test_header(void **state)
{
    (void)state;
    st s = {0};
    put(&s, "QEVM", 4);
    be32(&s, 2);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED, "QEMU stream version 2 (expected 3; version 2 is "
                                           "obsolete)",
                4);
    s.n = 0;
    put(&s, "QEVM", 4);
    be32(&s, 4);
    expect_fail(&s, MRIMG_ERR_UNSUPPORTED, "QEMU stream version 4 (expected 3)", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),   cmocka_unit_test(test_block_list),
        cmocka_unit_test(test_records),  cmocka_unit_test(test_commands),
        cmocka_unit_test(test_sections), cmocka_unit_test(test_header),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
