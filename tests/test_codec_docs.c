/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The lists of formats and codecs that people read — imgconv --help, its
 * -l refusal and the man pages — say exactly what mrimg_codec_info() and
 * mrimg_format_name() say.  The help is built from the tables; the man pages
 * are written by hand, so each of their lists is checked here: a codec added
 * to the library without its man page lines fails this test. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrimg.h"

/* ---- the lists, from the library ------------------------------------------- */

enum { ALL_FORMATS, CODECS, LEVELS, DEFAULTS };

/* "a, b, c<last>d" of: the libvirt formats; the codecs with a libvirt format;
 * those of them that take a level; the same with their default level. */
static char *list(int what, const char *last)
{
    const char *item[64];
    char buf[64][32];
    int n = 0;
    if (what == ALL_FORMATS) {
        for (int f = 0; mrimg_format_name(f); f++)
            item[n++] = mrimg_format_name(f);
    } else {
        const mrimg_codec_desc *d;
        for (int id = 0; (d = mrimg_codec_info(id)) != NULL; id++) {
            if (d->format == MRIMG_FORMAT_NONE || (what != CODECS && !d->has_levels))
                continue;
            snprintf(buf[n], sizeof(buf[n]), "%s", d->name);
            if (what == DEFAULTS)
                snprintf(buf[n], sizeof(buf[n]), "%s %d", d->name, d->level_default);
            item[n] = buf[n];
            n++;
        }
    }
    assert_true(n >= 2);
    char *s = calloc(1, 2048);
    assert_non_null(s);
    for (int i = 0; i < n; i++) {
        strcat(s, i == 0 ? "" : i == n - 1 ? last : ", ");
        strcat(s, item[i]);
    }
    return s;
}

/* "Ranges: gzip, bzip2, lzop 1-9; xz 0-9; zstd 1-19." : codecs with the
 * same range grouped, in the order of their first one. */
static char *ranges(void)
{
    char *s = calloc(1, 2048);
    assert_non_null(s);
    strcpy(s, "Ranges: ");
    const mrimg_codec_desc *d, *e;
    bool done[64] = {false};
    bool first = true;
    for (int id = 0; (d = mrimg_codec_info(id)) != NULL; id++) {
        if (done[id] || !d->has_levels || d->format == MRIMG_FORMAT_NONE)
            continue;
        strcat(s, first ? "" : "; ");
        first = false;
        bool one = true;
        for (int k = id; (e = mrimg_codec_info(k)) != NULL; k++) {
            if (done[k] || !e->has_levels || e->format == MRIMG_FORMAT_NONE ||
                e->level_min != d->level_min || e->level_max != d->level_max)
                continue;
            done[k] = true;
            strcat(s, one ? "" : ", ");
            strcat(s, e->name);
            one = false;
        }
        sprintf(s + strlen(s), " %d-%d", d->level_min, d->level_max);
    }
    strcat(s, ".");
    return s;
}

/* ---- the man pages, as text -------------------------------------------------- */

/* A man page as running text: request names (".BR") and quotes dropped,
 * \- and \(en as '-', font changes gone, white space folded, no space
 * before punctuation. */
static char *man_text(const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/../docs/%s", MRIMG_TESTDATA, name);
    size_t len;
    char *src = (char *)read_file(path, &len), *t = calloc(1, len + 1);
    assert_non_null(src);
    assert_non_null(t);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = src + i;
        if (*p == '.' && (i == 0 || p[-1] == '\n')) { /* a request: keep its arguments */
            while (i + 1 < len && src[i + 1] != ' ' && src[i + 1] != '\n')
                i++;
            continue;
        }
        if (*p == '"')
            continue;
        if (p[0] == '\\' && i + 1 < len && p[1] == '-') {
            t[k++] = '-';
            i++;
        } else if (p[0] == '\\' && i + 3 < len && !strncmp(p + 1, "(en", 3)) {
            t[k++] = '-';
            i += 3;
        } else if (p[0] == '\\' && i + 2 < len && p[1] == 'f') {
            i += 2;
        } else if (*p == '\n' || *p == '\t' || *p == ' ') {
            if (k && t[k - 1] != ' ')
                t[k++] = ' ';
        } else {
            if (strchr(",.;)", *p) && k && t[k - 1] == ' ')
                k--;
            t[k++] = *p;
        }
    }
    free(src);
    return t;
}

static void expect_in(const char *text, const char *page, const char *phrase)
{
    if (!strstr(text, phrase))
        fail_msg("%s does not say \"%s\" (the library's list)", page, phrase);
}

static void test_man_pages(void **state)
{
    (void)state;
    char *conv = man_text("imgconv.1"), *info = man_text("imginfo.1"),
         *vfy = man_text("imgverify.1");
    char *all_and = list(ALL_FORMATS, " and "), *all_comma = list(ALL_FORMATS, ", ");
    char *codecs_or = list(CODECS, " or "), *lv = list(LEVELS, ", "),
         *lv_and = list(LEVELS, " and "), *def = list(DEFAULTS, ", "), *rg = ranges();
    char phrase[1024];

    /* imgconv(1): DESCRIPTION, FORMATS, -l, the -l refusal */
    expect_in(conv, "imgconv.1", all_and);
    expect_in(conv, "imgconv.1", all_comma);
    snprintf(phrase, sizeof(phrase), "The default is what libvirt's tools use: %s.", def);
    expect_in(conv, "imgconv.1", phrase);
    expect_in(conv, "imgconv.1", rg);
    snprintf(phrase, sizeof(phrase), "(%s)", lv);
    expect_in(conv, "imgconv.1", phrase);
    /* imginfo(1): the payloads it describes */
    snprintf(phrase, sizeof(phrase), "a QEMU migration stream that is %s compressed", codecs_or);
    expect_in(info, "imginfo.1", phrase);
    /* imgverify(1): the formats, and payload.format's magics */
    expect_in(vfy, "imgverify.1", all_and);
    snprintf(phrase, sizeof(phrase), "the tool's magic for %s", lv_and);
    expect_in(vfy, "imgverify.1", phrase);

    free(conv), free(info), free(vfy), free(all_and), free(all_comma), free(codecs_or);
    free(lv), free(lv_and), free(def), free(rg);
}

/* ---- imgconv --help and its -l refusal -------------------------------------- */

static char *run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s/imgconv %s 2>&1", MRIMG_TOOLS, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *out = calloc(1, 1u << 16);
    assert_non_null(out);
    size_t n = fread(out, 1, (1u << 16) - 1, p);
    out[n] = 0;
    pclose(p);
    return out;
}

static void test_imgconv_help(void **state)
{
    (void)state;
    char *help = run("--help");
    char *all = list(ALL_FORMATS, ", "), *def = list(DEFAULTS, ", ");
    char want[1024];
    /* the line under "Formats (-O):" is exactly the libvirt formats */
    snprintf(want, sizeof(want), "Formats (-O):\n  %s\n", all);
    expect_in(help, "imgconv --help", want);
    /* the default levels: every codec that takes one, nothing else */
    snprintf(want, sizeof(want), "what libvirt's tools use:\n%24s%s)\n", "", def);
    expect_in(help, "imgconv --help", want);
    free(help);

    char *lv = list(LEVELS, " or ");
    char *msg = run("-l 3 -O qemu in.sav out.sav");
    snprintf(want, sizeof(want),
             "imgconv: -l/--level applies only to compressed outputs (-O %s), not to qemu\n",
             lv);
    expect_in(msg, "imgconv -l without a compressed -O", want);
    free(msg), free(lv), free(all), free(def);
}

/* ---- the refusal of an unknown libvirt format ---------------------------------- */

/* The container layer (below the codecs) and the verifier word the list
 * of libvirt formats themselves: it must be the table's. */
static void test_unknown_format_message(void **state)
{
    (void)state;
    char path[4096];
    char *dir = test_fixture_copy("libvirt/raw.sav", "codec-docs", "format7.sav", path,
                                  sizeof(path));
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    const uint8_t seven[4] = {MRIMG_FORMAT_COUNT, 0, 0, 0}; /* little-endian header */
    assert_int_equal(fseek(f, 28, SEEK_SET), 0);
    assert_int_equal(fwrite(seven, 1, 4, f), 4);
    assert_int_equal(fclose(f), 0);

    char *all = list(ALL_FORMATS, ", ");
    char want[1024];
    snprintf(want, sizeof(want), "unsupported save image format %d (expected 0..%d: %s)",
             MRIMG_FORMAT_COUNT, MRIMG_FORMAT_COUNT - 1, all);
    mrimg_error err;
    mrimg_image *img = t_open(path, NULL, &err);
    assert_null(img);
    expect_in(err.message, "mrimg_open's refusal", want);

    mrimg_verify_result *r = NULL;
    assert_int_equal(t_verify(path, NULL, &r, &err), 0);
    bool found = false;
    for (unsigned i = 0; i < r->nproblems; i++)
        if (!strcmp(r->problems[i].check, "container.format")) {
            expect_in(r->problems[i].message, "container.format", want);
            found = true;
        }
    assert_true(found);
    mrimg_verify_free(r);
    free(all);
    test_rmdir_all(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_man_pages),
        cmocka_unit_test(test_imgconv_help),
        cmocka_unit_test(test_unknown_format_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
