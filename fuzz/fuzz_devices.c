/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_devices: the device-state walk (lib/stream/devices.c), which
 * delimits the FULL sections after the RAM with the VMDESCRIPTION JSON:
 * field sizes, arrays, nested structs and subsections, recursively.
 *
 * Input: be32 n, then n bytes of JSON, then the device state (the tail of
 * a stream after its RAM END section, up to and including the EOF byte).
 * Oracles: the walk never claims more bytes than there are, a complete
 * walk explains every byte and reports no problem, and every problem
 * names an offset inside the device state. */
#include "fuzz_common.h"

#include "stream/vmdesc.h"

typedef struct prob_ctx {
    uint64_t n;
    size_t eof;
    const uint8_t *tail;
} prob_ctx;

/* every field handed to a visitor lies inside the device state */
static void on_field(void *ctx, const char *dev, const char *vmsd, const char *field,
                     const uint8_t *p, size_t n)
{
    prob_ctx *pc = ctx;
    FZ_CHECK(dev && vmsd && field, "field without names");
    FZ_CHECK(p >= pc->tail && n <= pc->eof && (size_t)(p - pc->tail) <= pc->eof - n,
             "field %s.%s of %zu bytes at %td, outside %zu bytes", vmsd, field, n,
             p - pc->tail, pc->eof);
}

static void on_problem(void *ctx, uint64_t off, const char *msg)
{
    prob_ctx *p = ctx;
    FZ_CHECK(off <= p->eof && msg && msg[0], "problem at %llu of %zu: %s",
             (unsigned long long)off, p->eof, msg ? msg : "(null)");
    p->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json;
    uint8_t *tail;
    size_t jl, tl;
    if (fz_split_json_tail(data, size, &json, &jl, &tail, &tl) < 0)
        return 0;
    vj_doc doc;
    memset(&doc, 0, sizeof(doc));
    size_t where;
    char msg[200];
    if (vj_parse(json, jl, &doc, &where, msg, sizeof(msg)) == 0 && tl > 0) {
        size_t eof = tl - 1; /* tail[eof] is the EOF byte */
        prob_ctx pc = {0, eof, tail};
        sp_devwalk out;
        sp_walk_device_fields(&doc, tail, eof, 0, on_problem, &pc, on_field, &pc, &out);
        FZ_LOG("walk: %llu sections, %llu of %zu bytes, complete %d, skipped %d, %llu problems %s\n",
               (unsigned long long)out.sections, (unsigned long long)out.explained, eof,
               out.complete, out.skipped, (unsigned long long)pc.n, out.note);
        FZ_CHECK(out.explained <= eof, "explained %llu of %zu bytes",
                 (unsigned long long)out.explained, eof);
        if (out.complete)
            FZ_CHECK(out.explained == eof && pc.n == 0,
                     "complete, but %llu of %zu bytes explained, %llu problems",
                     (unsigned long long)out.explained, eof, (unsigned long long)pc.n);
        FZ_CHECK(memchr(out.note, 0, sizeof(out.note)) != NULL, "note not terminated");
    }
    vj_free(&doc);
    free(json);
    free(tail);
    return 0;
}
