/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_cpu: the vCPU decoder (lib/guest/cpu.c) and the ELF notes built
 * from its result (lib/guest/notes.c).
 *
 * Input: as fuzz_devices: be32 n, then n bytes of VMDESCRIPTION JSON, then
 * the device state up to and including the EOF byte.
 * Oracles: an error carries a message, a stream offset inside the device
 * state and no result; a result has at most GUEST_CPU_MAX vCPUs with
 * distinct numbers, each readable with mrimg_cpus_get; the notes are one
 * NT_PRSTATUS and one QEMU note per vCPU, 4-byte aligned, and their
 * headers walk the buffer exactly. */
#include "fuzz_common.h"

#include "guest/cpu.h"

static void check_notes(const mrimg_cpus *cpus)
{
    uint8_t *b;
    size_t n;
    mrimg_error e;
    int rc = guest_notes_build(cpus, &b, &n, &e);
    if (rc < 0) {
        FZ_CHECK(rc == MRIMG_ERR_NOMEM, "notes failed: %s", e.message);
        return;
    }
    size_t pos = 0;
    unsigned core = 0, qemu = 0;
    while (pos < n) {
        FZ_CHECK(n - pos >= 20, "note header cut at %zu of %zu", pos, n);
        uint32_t nsz = rd_le32(b + pos), dsz = rd_le32(b + pos + 4), type = rd_le32(b + pos + 8);
        FZ_CHECK(nsz == 5 && dsz % 4 == 0 && dsz <= n - pos - 20, "bad note at %zu", pos);
        if (type == 1)
            core++;
        else
            qemu++;
        pos += 20 + dsz;
    }
    FZ_CHECK(pos == n && core == cpus->n && qemu == cpus->n, "%u+%u notes for %u vCPUs", core,
             qemu, cpus->n);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json;
    uint8_t *tail;
    size_t jl, tl;
    if (fz_split_json_tail(data, size, &json, &jl, &tail, &tl) < 0)
        return 0;
    if (tl == 0) {
        free(json);
        free(tail);
        return 0;
    }
    size_t eof = tl - 1;
    mrimg_cpus *cpus = NULL;
    mrimg_error e;
    memset(&e, 0, sizeof(e));
    int rc = guest_cpus_decode(json, jl, tail, eof, 0x1000, &cpus, &e);
    FZ_LOG("decode: %d %s\n", rc, rc < 0 ? e.message : "");
    if (rc < 0) {
        FZ_CHECK(cpus == NULL && e.message[0], "error %d without a message or with a result",
                 rc);
        FZ_CHECK(e.offset_kind != MRIMG_OFF_STREAM || (e.offset >= 0x1000 && e.offset <= 0x1000 + eof),
                 "error offset %llu outside the device state", (unsigned long long)e.offset);
    } else {
        FZ_CHECK(cpus && mrimg_cpus_count(cpus) <= GUEST_CPU_MAX, "bad vCPU count");
        for (unsigned i = 0; i < cpus->n; i++) {
            mrimg_x86_cpu c;
            c.size = sizeof(c);
            FZ_CHECK(mrimg_cpus_get(cpus, i, &c, &e) == 0, "vCPU %u not readable", i);
            for (unsigned k = 0; k < i && k < 64; k++)
                FZ_CHECK(cpus->cpu[k].index != c.index, "vCPU %u twice", c.index);
        }
        check_notes(cpus);
        mrimg_cpus_free(cpus);
    }
    free(json);
    free(tail);
    return 0;
}
