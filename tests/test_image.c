/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image handle (lib/image.c): the stream head is parsed once per
 * image and kept, whoever asks for it (opening a pipe, convert, the guest
 * outputs, img_addressable). */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"

/* A second peek reads nothing: the head is spoiled in the file after the
 * first, and the second still answers with the first's configuration
 * (the same one, kept on the handle), which is not the scan's. */
static void test_head_read_once(void **state)
{
    (void)state;
    char path[4096];
    char *dir = test_fixture_copy("qemu/plain.mig", "image", "plain.mig", path, sizeof(path));
    mrimg_image *img = test_open(path);
    mrimg_error e;
    const sp_config *c1 = NULL, *c2 = NULL;
    assert_int_equal(img_peek_config(img, &c1, &e), 0);
    assert_true(c1->present);
    char machine[sizeof(c1->machine)];
    memcpy(machine, c1->machine, sizeof(machine));
    assert_true(machine[0] != '\0');

    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    static const uint8_t junk[64] = {0xde, 0xad, 0xbe, 0xef};
    assert_int_equal(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    close(fd);

    assert_int_equal(img_peek_config(img, &c2, &e), 0);
    assert_ptr_equal(c1, c2);
    assert_string_equal(c2->machine, machine);
    bool mapped = true;
    assert_int_equal(img_head_mapped(img, &mapped, &e), 0);
    assert_false(mapped);
    /* the public capability query stays the scan's: nothing before one */
    assert_null(mrimg_stream_capability(img, 0));
    /* and the spoiled head would have been refused, had it been read */
    img->head_read = false;
    assert_true(img_peek_config(img, &c2, &e) < 0);
    mrimg_close(img);
    test_rmdir_all(dir);
    free(dir);
}

/* After a scan the scan's configuration is the answer (no read). */
static void test_head_after_scan(void **state)
{
    (void)state;
    mrimg_image *img = test_open(fixture_path("qemu/mapped.mig"));
    mrimg_error e;
    assert_int_equal(mrimg_scan(img, 0, NULL, NULL, &e), 0);
    const sp_config *c = NULL;
    assert_int_equal(img_peek_config(img, &c, &e), 0);
    assert_ptr_equal(c, &img->cfg);
    assert_false(img->head_read);
    bool mapped = false;
    assert_int_equal(img_head_mapped(img, &mapped, &e), 0);
    assert_true(mapped);
    mrimg_close(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_read_once),
        cmocka_unit_test(test_head_after_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
