/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_json: the strict, bounded JSON reader of the VMDESCRIPTION
 * (lib/stream/json.c).  The input is the JSON text.  Oracles: validating
 * only and building the tree agree (same verdict, same error offset); the
 * tree's nodes lie inside the text and link to valid nodes. */
#include "fuzz_common.h"

#include "stream/vmdesc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);

    size_t w1 = 0, w2 = 0;
    char m1[200] = "", m2[200] = "";
    int r1 = vj_parse(text, size, NULL, &w1, m1, sizeof(m1));
    vj_doc doc;
    memset(&doc, 0, sizeof(doc));
    int r2 = vj_parse(text, size, &doc, &w2, m2, sizeof(m2));
    if (r2 == 0 || r1 == 0) {
        FZ_CHECK(r1 == r2, "validate-only %d, tree %d (%s)", r1, r2, r2 ? m2 : m1);
    } else {
        /* the tree may fail earlier for lack of memory or node budget */
        FZ_CHECK(w1 <= size && w2 <= size && m1[0] && m2[0], "error offsets %zu %zu of %zu", w1,
                 w2, size);
    }
    if (r2 == 0) {
        FZ_CHECK(doc.count > 0, "an empty tree");
        for (size_t i = 0; i < doc.count; i++) {
            const vj_node *n = &doc.n[i];
            FZ_CHECK(n->type <= VJ_OBJ, "node type %u", n->type);
            FZ_CHECK((uint64_t)n->off + n->len <= size && (uint64_t)n->key_off + n->key_len <= size,
                     "node %zu outside the text", i);
            FZ_CHECK(n->child < (int32_t)doc.count && n->next < (int32_t)doc.count &&
                         n->child != (int32_t)i && n->next != (int32_t)i,
                     "node %zu links", i);
        }
        uint64_t v;
        (void)vj_u64(&doc, 0, &v);
        (void)vj_get(&doc, 0, "devices");
    }
    vj_free(&doc);
    free(text);
    return 0;
}
