/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz_xml: the two XML readers, on the domain XML of a save image.
 *
 *   mrimg_xml_strip_secrets() (lib/info): the tokenizer that removes VNC/SPICE
 *     passwords and disk cookies.  Oracles: nothing removed means nothing
 *     changed; the output is never longer; stripping is idempotent (the
 *     output strips to itself with nothing removed).
 *   vx_check() (lib/verify): the bounded well-formedness checker.
 *
 * The input is the XML text; a NUL in it is an error for the stripper (as
 * in a save image, where the XML ends at its NUL). */
#include "fuzz_common.h"

#include "verify/vfy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an unterminated copy: the readers must stay inside len */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);

    mrimg_error err;
    unsigned removed = 0;
    char *out = mrimg_xml_strip_secrets(text, size, &removed, &err);
    FZ_CHECK(!out || !memchr(text, 0, size),
             "a NUL byte before len was accepted (documented as an error); the result, a C "
             "string, silently ends at the NUL");
    if (out) {
        size_t ol = strlen(out);
        FZ_CHECK(ol <= size, "stripped XML is longer (%zu > %zu)", ol, size);
        if (!removed)
            FZ_CHECK(ol == size && memcmp(out, text, size) == 0, "nothing removed, but changed");
        unsigned again = 0;
        char *out2 = mrimg_xml_strip_secrets(out, ol, &again, &err);
        FZ_CHECK(out2, "the stripped XML does not parse: %s", err.message);
        FZ_CHECK(again == 0 && strcmp(out2, out) == 0, "stripping is not idempotent (%u more)",
                 again);
        free(out2);
        free(out);
    } else {
        FZ_CHECK(err.code < 0 && err.message[0], "failed without a message");
    }

    vx_result r;
    vx_check(text, size, &r);
    if (!r.ok)
        FZ_CHECK(r.where <= size && r.msg[0], "vx_check: where %zu of %zu", r.where, size);
    FZ_CHECK(memchr(r.root, 0, sizeof(r.root)) != NULL, "root name not terminated");
    free(text);
    return 0;
}
