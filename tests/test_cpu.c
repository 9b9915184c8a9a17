/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vCPU state decoding (lib/guest/cpu.c) on a real QEMU save and on
 * corrupted copies of its device state and description.
 *
 * The fixture qemu/plain.mig was saved by QEMU 10 from a guest that never
 * ran (-S), so its one vCPU holds the x86 reset state: RIP 0xfff0, CS
 * selector 0xf000 with base 0xffff0000, CR0 0x60000010, RFLAGS 0x2.  The
 * values QEMU shows for guests that ran are checked in
 * tests/qemu/test_cpu.py. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest/cpu.h"

/* The fixture's bytes and where its device state and JSON lie. */
typedef struct fx {
    uint8_t *file;
    size_t len;
    uint64_t ram_end, eof, vmdesc, vmdesc_size;
} fx;

static void load(fx *f)
{
    const char *path = fixture_path("qemu/plain.mig");
    f->file = read_file(path, &f->len);
    assert_non_null(f->file);
    mrimg_error e;
    mrimg_image *img = t_open(path, NULL, &e);
    assert_non_null(img);
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    const mrimg_stream_info *si = mrimg_stream(img);
    assert_true(si->has_eof && si->has_vmdesc);
    assert_int_equal(si->stream_offset, 0);
    f->ram_end = si->ram_end;
    f->eof = si->eof_offset;
    f->vmdesc = si->vmdesc_offset;
    f->vmdesc_size = si->vmdesc_size;
    mrimg_close(img);
}

/* Decode with json (NULL: the fixture's own) and the device state cut at
 * eof (0: at the EOF record). */
static int decode(const fx *f, const char *json, size_t dev_len, mrimg_cpus **out,
                  mrimg_error *e)
{
    const char *j = json ? json : (const char *)f->file + f->vmdesc;
    size_t jl = json ? strlen(json) : (size_t)f->vmdesc_size;
    size_t n = dev_len ? dev_len : (size_t)(f->eof - f->ram_end);
    /* an exact-size copy, so that a read past the end is caught by ASan */
    uint8_t *dev = malloc(n + 1);
    assert_non_null(dev);
    memcpy(dev, f->file + f->ram_end, n);
    dev[n] = 0x06;
    int rc = guest_cpus_decode(j, jl, dev, n, f->ram_end, out, e);
    free(dev);
    return rc;
}

/* The fixture's JSON with the first `from` replaced by `to`. */
static char *json_edit(const fx *f, const char *from, const char *to)
{
    size_t jl = (size_t)f->vmdesc_size;
    char *j = malloc(jl + 1);
    assert_non_null(j);
    memcpy(j, f->file + f->vmdesc, jl);
    j[jl] = 0;
    char *at = strstr(j, from);
    assert_non_null(at);
    char *o = malloc(jl + strlen(to) + 1);
    assert_non_null(o);
    size_t pre = (size_t)(at - j);
    memcpy(o, j, pre);
    strcpy(o + pre, to);
    strcat(o, at + strlen(from));
    free(j);
    return o;
}

static void test_reset_state(void **state)
{
    (void)state;
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path("qemu/plain.mig"), NULL, &e);
    assert_non_null(img);
    mrimg_cpus *cpus;
    assert_int_equal(mrimg_cpus_read(img, &cpus, &e), 0);
    assert_int_equal(mrimg_cpus_count(cpus), 1);
    mrimg_x86_cpu c;
    memset(&c, 0xa5, sizeof(c));
    c.size = sizeof(c);
    assert_int_equal(mrimg_cpus_get(cpus, 0, &c, &e), 0);
    assert_int_equal(c.size, sizeof(c));
    assert_int_equal(c.index, 0);
    assert_int_equal(c.rip, 0xfff0);
    assert_int_equal(c.rflags, 0x2);
    assert_int_equal(c.seg[MRIMG_SEG_CS].selector, 0xf000);
    assert_int_equal(c.seg[MRIMG_SEG_CS].base, 0xffff0000u);
    assert_int_equal(c.seg[MRIMG_SEG_CS].limit, 0xffff);
    assert_int_equal(c.cr0, 0x60000010u);
    assert_int_equal(c.efer, 0);
    assert_int_equal(c.halted, 0);
    assert_int_equal(c.idt.limit, 0xffff);
    /* out of range, too small a struct */
    assert_int_equal(mrimg_cpus_get(cpus, 1, &c, &e), MRIMG_ERR_INVAL);
    c.size = 16;
    assert_int_equal(mrimg_cpus_get(cpus, 0, &c, &e), MRIMG_ERR_INVAL);
    assert_non_null(strstr(e.message, "smaller than"));
    mrimg_cpus_free(cpus);
    mrimg_close(img);
}

static void test_notes_reset(void **state)
{
    (void)state;
    mrimg_error e;
    mrimg_image *img = t_open(fixture_path("qemu/plain.mig"), NULL, &e);
    assert_non_null(img);
    uint8_t *b;
    size_t n;
    assert_int_equal(guest_elf_notes(img, &b, &n, &e), 0);
    /* not in long mode: i386 prstatus (144) + QEMUCPUState (440), 20-byte heads */
    assert_int_equal(n, 20 + 144 + 20 + 440);
    assert_memory_equal(b, "\x05\0\0\0\x90\0\0\0\x01\0\0\0CORE\0\0\0\0", 20);
    assert_int_equal(b[20 + 24], 1);                   /* pr_pid = vCPU 0 + 1 */
    assert_int_equal(b[20 + 72 + 48], 0xf0);           /* eip 0xfff0 */
    assert_int_equal(b[20 + 72 + 49], 0xff);
    const uint8_t *q = b + 164;
    assert_memory_equal(q, "\x05\0\0\0\xb8\x01\0\0\0\0\0\0QEMU\0\0\0\0", 20);
    assert_int_equal(q[20], 1);                         /* version */
    assert_int_equal(q[20 + 136], 0xf0);                /* rip */
    free(b);
    mrimg_close(img);
}

static void test_decode_unchanged(void **state)
{
    (void)state;
    fx f;
    load(&f);
    mrimg_cpus *cpus;
    mrimg_error e;
    assert_int_equal(decode(&f, NULL, 0, &cpus, &e), 0);
    assert_int_equal(mrimg_cpus_count(cpus), 1);
    mrimg_cpus_free(cpus);
    free(f.file);
}

static void expect(const fx *f, const char *json, size_t dev_len, int code, const char *words)
{
    mrimg_cpus *cpus = (mrimg_cpus *)1;
    mrimg_error e;
    memset(&e, 0, sizeof(e));
    int rc = decode(f, json, dev_len, &cpus, &e);
    if (rc != code || !strstr(e.message, words))
        fail_msg("expected %s with \"%s\", got %d: %s", mrimg_code_name(code), words, rc,
                 e.message);
    assert_null(cpus);
}

static void test_missing_field(void **state)
{
    (void)state;
    fx f;
    load(&f);
    char *j = json_edit(&f, "\"env.eip\"", "\"env.eiq\"");
    expect(&f, j, 0, MRIMG_ERR_UNSUPPORTED, "vCPU 0: its \"cpu\" section has no field \"env.eip\"");
    free(j);
    j = json_edit(&f, "\"name\": \"selector\"", "\"name\": \"sElector\"");
    expect(&f, j, 0, MRIMG_ERR_UNSUPPORTED, "no field \"env.segs[0].selector\"");
    free(j);
    free(f.file);
}

static void test_wrong_size(void **state)
{
    (void)state;
    fx f;
    load(&f);
    char *j = json_edit(&f, "{\"name\": \"env.eip\", \"type\": \"uint64\", \"size\": 8}",
                        "{\"name\": \"env.eip\", \"type\": \"uint32\", \"size\": 4}");
    expect(&f, j, 0, MRIMG_ERR_UNSUPPORTED,
           "vCPU 0: field \"env.eip\" is 1 x 4 bytes, expected 1 x 8");
    free(j);
    /* the general registers as 8 x 8 (an i386 target's count) */
    j = json_edit(&f, "\"name\": \"env.regs\", \"array_len\": 16",
                  "\"name\": \"env.regs\", \"array_len\": 8");
    expect(&f, j, 0, MRIMG_ERR_UNSUPPORTED, "field \"env.regs\" is 8 x 8 bytes, expected 16 x 8");
    free(j);
    /* a field described twice */
    j = json_edit(&f, "\"env.eflags\"", "\"env.eip\"");
    expect(&f, j, 0, MRIMG_ERR_FORMAT, "field \"env.eip\" is described twice");
    free(j);
    free(f.file);
}

static void test_truncated(void **state)
{
    (void)state;
    fx f;
    load(&f);
    /* cut the device state inside, and just after, the first cpu section */
    const uint8_t *dev = f.file + f.ram_end;
    size_t n = (size_t)(f.eof - f.ram_end);
    size_t cpu_at = 0;
    for (size_t i = 0; i + 4 < n; i++)
        if (dev[i] == 3 && !memcmp(dev + i + 1, "cpu", 3) && i >= 5 && dev[i - 5] == 0x04) {
            cpu_at = i - 5;
            break;
        }
    assert_true(cpu_at > 0);
    for (size_t cut = cpu_at + 1; cut < cpu_at + 400; cut += 37) {
        mrimg_cpus *cpus;
        mrimg_error e;
        int rc = decode(&f, NULL, cut, &cpus, &e);
        assert_true(rc == MRIMG_ERR_TRUNCATED || rc == MRIMG_ERR_FORMAT);
        assert_int_equal(e.offset_kind, MRIMG_OFF_STREAM);
        assert_true(e.offset >= f.ram_end && e.offset <= f.ram_end + cut);
        assert_null(cpus);
    }
    expect(&f, NULL, cpu_at + 30, MRIMG_ERR_TRUNCATED, "field \"env.regs\" (16 x 8 bytes) runs "
                                                       "past the end");
    free(f.file);
}

static void test_bad_json(void **state)
{
    (void)state;
    fx f;
    load(&f);
    expect(&f, "{\"devices\": [", 0, MRIMG_ERR_FORMAT, "VMDESCRIPTION JSON is not valid");
    expect(&f, "{\"page_size\": 4096}", 0, MRIMG_ERR_UNSUPPORTED, "no \"devices\" list");
    /* an array of structs with a count of 2^64 - 1 ends at the device
     * state's end, not after 2^64 iterations */
    char *j = json_edit(&f, "\"name\": \"env.segs\", \"array_len\": 6",
                        "\"name\": \"env.segs\", \"array_len\": 18446744073709551615");
    mrimg_cpus *cpus;
    mrimg_error e;
    int rc = decode(&f, j, 0, &cpus, &e); /* the struct has fields: it runs out of bytes */
    assert_true(rc < 0);
    free(j);
    free(f.file);
}

/* A description whose elements are mostly zero-sized fields: the walk's
 * field visits are capped instead of running for as long as the bytes
 * last. */
static void test_walk_cap(void **state)
{
    (void)state;
    size_t cap = 64u << 10, n = 0;
    char *j = malloc(cap);
    assert_non_null(j);
    n += (size_t)snprintf(j + n, cap - n,
                          "{\"devices\": [{\"name\": \"x\", \"instance_id\": 0, "
                          "\"version\": 1, \"fields\": [{\"name\": \"s\", \"type\": "
                          "\"struct\", \"array_len\": 4294967296, \"struct\": {\"fields\": [");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(j + n, cap - n, "{\"name\": \"z%d\", \"size\": 0}, ", i);
    n += (size_t)snprintf(j + n, cap - n, "{\"name\": \"b\", \"size\": 1}]}}]}]}");
    assert_true(n < cap);
    size_t dl = 14 + (64u << 10); /* 300 x 64 Ki visits > the cap, 2^24 */
    uint8_t *dev = calloc(1, dl + 1);
    assert_non_null(dev);
    memcpy(dev, "\x04\0\0\0\x01\x01x\0\0\0\0\0\0\0\x01", 15);
    dev[dl] = 0x06;
    mrimg_cpus *cpus;
    mrimg_error e;
    assert_int_equal(guest_cpus_decode(j, n, dev, dl, 0, &cpus, &e), MRIMG_ERR_LIMIT);
    assert_non_null(strstr(e.message, "field visits"));
    assert_null(cpus);
    free(dev);
    free(j);
}

/* A "vmcoreinfo" section as QEMU 10 describes and writes it
 * (hw/misc/vmcoreinfo.c), built by hand: no fixture has the device. */
static size_t vmci_section(uint8_t *p, uint32_t id, unsigned size_bytes)
{
    static const char name[] = "vmcoreinfo";
    size_t n = 0;
    p[n++] = 0x04;
    wr_be32(p + n, id);
    n += 4;
    p[n++] = 10;
    memcpy(p + n, name, 10);
    n += 10;
    wr_be32(p + n, 0); /* instance */
    wr_be32(p + n + 4, 1); /* version */
    n += 8;
    p[n++] = 1; /* has_vmcoreinfo */
    wr_be16(p + n, 1); /* host format */
    wr_be16(p + n + 2, 1); /* guest format: ELF */
    n += 4;
    memset(p + n, 0, size_bytes);
    p[n + size_bytes - 1] = 72; /* size */
    n += size_bytes;
    wr_be64(p + n, 0x100234); /* paddr */
    n += 8;
    p[n++] = 0x7e;
    wr_be32(p + n, id);
    return n + 4;
}

static char *vmci_json(unsigned size_bytes, int count)
{
    char one[512], *j = malloc(1200);
    assert_non_null(j);
    snprintf(one, sizeof(one),
             "{\"name\": \"vmcoreinfo\", \"instance_id\": 0, \"vmsd_name\": \"vmcoreinfo\", "
             "\"version\": 1, \"fields\": [{\"name\": \"has_vmcoreinfo\", \"type\": \"bool\", "
             "\"size\": 1}, {\"name\": \"vmcoreinfo.host_format\", \"type\": \"uint16\", "
             "\"size\": 2}, {\"name\": \"vmcoreinfo.guest_format\", \"type\": \"uint16\", "
             "\"size\": 2}, {\"name\": \"vmcoreinfo.size\", \"type\": \"uint32\", \"size\": %u}, "
             "{\"name\": \"vmcoreinfo.paddr\", \"type\": \"uint64\", \"size\": 8}]}",
             size_bytes);
    snprintf(j, 1200, "{\"page_size\": 4096, \"devices\": [%s%s%s]}", one, count > 1 ? ", " : "",
             count > 1 ? one : "");
    return j;
}

static void test_vmcoreinfo(void **state)
{
    (void)state;
    uint8_t dev[256];
    mrimg_cpus *cpus;
    mrimg_error e;
    /* as QEMU writes it */
    size_t n = vmci_section(dev, 7, 4);
    dev[n] = 0x06;
    char *j = vmci_json(4, 1);
    assert_int_equal(guest_cpus_decode(j, strlen(j), dev, n, 0x5000, &cpus, &e), 0);
    assert_int_equal(mrimg_cpus_count(cpus), 0);
    assert_true(cpus->vmci.present && cpus->vmci.has);
    assert_int_equal(cpus->vmci.guest_format, 1);
    assert_int_equal(cpus->vmci.size, 72);
    assert_int_equal(cpus->vmci.paddr, 0x100234);
    mrimg_cpus_free(cpus);
    free(j);
    /* size described (and written) as 8 bytes */
    n = vmci_section(dev, 7, 8);
    dev[n] = 0x06;
    j = vmci_json(8, 1);
    assert_int_equal(guest_cpus_decode(j, strlen(j), dev, n, 0x5000, &cpus, &e), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(e.message, "vmcoreinfo: field \"vmcoreinfo.size\" is 1 x 8 bytes, "
                                      "expected 1 x 4"));
    free(j);
    /* two of them */
    n = vmci_section(dev, 7, 4);
    n += vmci_section(dev + n, 8, 4);
    dev[n] = 0x06;
    j = vmci_json(4, 2);
    assert_int_equal(guest_cpus_decode(j, strlen(j), dev, n, 0x5000, &cpus, &e), MRIMG_ERR_FORMAT);
    assert_non_null(strstr(e.message, "a second \"vmcoreinfo\" section"));
    free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_state),   cmocka_unit_test(test_notes_reset),
        cmocka_unit_test(test_decode_unchanged), cmocka_unit_test(test_missing_field),
        cmocka_unit_test(test_wrong_size),    cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_json),      cmocka_unit_test(test_walk_cap),
        cmocka_unit_test(test_vmcoreinfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
