/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-place hole punching for sparse (mapped-ram) images.
 *
 * Only pages of the RAM blocks' pages regions are ever punched: those whose
 * bitmap bit is clear (not part of the image: QEMU never reads them) and
 * those whose bytes are all zero (a hole reads back as the same zeros);
 * besides them, all-zero pages of the alignment padding between a block's
 * bitmap and its pages, and of the zero padding of libvirt's XML region.
 * Each punch is independent, so an interrupted run leaves a valid image
 * with the same guest state.  Existing holes are skipped with SEEK_DATA /
 * SEEK_HOLE; pages are read in large buffers and dropped from the page
 * cache afterwards, as `fallocate --dig-holes` does. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../image.h"
#include "../io/pages.h"

#define SP_CHUNK (8u << 20)

typedef struct spz {
    mrimg_image *img;
    int fd;                      /* read-write descriptor of the same file */
    uint64_t run_off, run_len;   /* pending punch */
    mrimg_sparsify_stats *st;
    mrimg_progress_fn progress;
    void *pctx;
    uint64_t done, total;
} spz;

static int punch_flush(spz *z, mrimg_error *err)
{
    if (!z->run_len)
        return 0;
    if (fallocate(z->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)z->run_off,
                  (off_t)z->run_len) != 0) {
        int e = errno;
        if (e == EOPNOTSUPP || e == ENOSYS)
            return err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                           "the file system cannot punch holes%s",
                           z->st->runs_punched ? " (some holes were punched before this)"
                                               : "; nothing was changed");
        return err_side(err, MRIMG_SIDE_INPUT,
                        err_sys(err, e, "cannot punch a hole in the input at offset %llu",
                                (unsigned long long)z->run_off));
    }
    z->st->bytes_punched += z->run_len;
    z->st->runs_punched++;
    z->run_len = 0;
    return 0;
}

static int punch(spz *z, uint64_t off, uint64_t len, mrimg_error *err)
{
    if (z->run_len && z->run_off + z->run_len == off) {
        z->run_len += len;
        return 0;
    }
    int rc = punch_flush(z, err);
    z->run_off = off;
    z->run_len = len;
    return rc;
}

static int tick(spz *z, uint64_t n, mrimg_error *err)
{
    z->done += n;
    if (z->progress && z->progress(z->pctx, z->done, z->total))
        return err_set(err, MRIMG_ERR_INTERRUPTED, MRIMG_OFF_NONE, 0, "interrupted");
    return 0;
}

/* Punch the zero pages of what was read, and the clear pages not yet in
 * a hole; holes are skipped. */
static int on_run(void *opaque, const pg_run *r, mrimg_error *err)
{
    spz *z = opaque;
    if (r->kind == PG_HOLE || r->kind == PG_CLEAR_HOLE)
        return 0;
    uint64_t ps = r->ps, len = r->n * ps;
    int rc = 0;
    z->st->pages_examined += r->n;
    if (r->kind == PG_CLEAR) {
        rc = punch(z, r->off, len, err);
    } else {
        z->st->bytes_read += len;
        for (uint64_t j = 0; j < r->n && rc == 0; j++)
            if (mem_is_zero(r->data + j * ps, (size_t)ps))
                rc = punch(z, r->off + j * ps, ps, err);
    }
    return rc == 0 ? tick(z, len, err) : rc;
}

/* Regions in file order: the bitmapped ones punch their clear pages and
 * their zero pages, the others only zero pages. */
static int do_regions(spz *z, const pg_region *reg, size_t n, mrimg_error *err)
{
    pg_opts o = {.flags = PG_WANT_CLEAR, .max_read = SP_CHUNK, .what = "pages"};
    int rc = pg_read(&z->img->src, reg, n, &o, on_run, z, err);
    return rc == 0 ? punch_flush(z, err) : rc;
}

/* Every block's alignment gap between its bitmap and its pages (zero
 * padding) and its pages region. */
static int do_blocks(spz *z, mrimg_error *err)
{
    mrimg_image *img = z->img;
    pg_region *reg = xcalloc(2 * (size_t)img->nblocks + 1, sizeof(*reg), err);
    int rc = MRIMG_ERR_NOMEM;
    if (reg) {
        size_t n = 0;
        for (unsigned i = 0; i < img->nblocks; i++) {
            const img_block *b = &img->blocks[i];
            uint64_t ps = b->info.page_size;
            uint64_t gap = round_up(b->info.bitmap_offset + b->info.bitmap_size, ps);
            if (gap < b->info.pages_offset) {
                reg[n] = (pg_region){.base = gap, .ps = ps, .first = 0,
                                     .end = (b->info.pages_offset - gap) / ps, .id = i};
                n++;
            }
            reg[n] = (pg_region){.base = b->info.pages_offset, .ps = ps, .first = 0,
                                 .end = b->info.pages, .bits = &b->data, .id = i};
            n++;
        }
        rc = do_regions(z, reg, n, err);
    }
    free(reg);
    return rc;
}

int mrimg_sparsify(const char *path, uint64_t stream_offset, mrimg_progress_fn progress,
                   void *pctx, mrimg_sparsify_stats *stats, mrimg_error *err)
{
    mrimg_error_clear(err);
    if (stats && !vstruct_ok(stats))
        return err_set(err, MRIMG_ERR_INVAL, MRIMG_OFF_NONE, 0,
                       "mrimg_sparsify_stats.size is not set");
    /* the whole struct of this version; the caller gets what fits in its */
    mrimg_sparsify_stats *caller = stats, local;
    stats = &local;
    memset(stats, 0, sizeof(*stats));
    mrimg_open_opts oo = {.stream_offset = stream_offset};
    mrimg_image *img = mrimg_open(path, &oo, err);
    if (!img) {
        if (caller)
            vstruct_copy(caller, stats, sizeof(*stats));
        return err ? err->code : MRIMG_ERR_IO;
    }
    spz z = {.img = img, .fd = -1, .st = stats, .progress = progress,
             .pctx = pctx};
    int rc = 0;
    const mrimg_container_info *ci = &img->ci;
    bool mapped = false;
    if (ci->payload_format == MRIMG_FORMAT_RAW || ci->payload_format == MRIMG_FORMAT_SPARSE) {
        rc = mrimg_scan(img, 0, NULL, NULL, err);
        mapped = rc == 0 && img->si.mapped_ram;
    }
    if (rc == 0 && !mapped && !ci->is_libvirt)
        rc = err_set(err, MRIMG_ERR_UNSUPPORTED, MRIMG_OFF_NONE, 0,
                     "a plain QEMU stream has no pages region to give holes back to; convert "
                     "it to a sparse (mapped-ram) image instead");
    if (rc < 0)
        goto out;

    /* in place, so only the regular file just read: O_NONBLOCK cannot wait
     * for a FIFO's writer, and the file must be the one mrimg_open read */
    z.fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (z.fd < 0) {
        rc = err_side(err, MRIMG_SIDE_INPUT, err_sys(err, errno, "cannot open the input for writing"));
        goto out;
    }
    struct stat st, st0;
    if (fstat(z.fd, &st) != 0 || fstat(img->src.fd, &st0) != 0) {
        rc = err_side(err, MRIMG_SIDE_INPUT, err_sys(err, errno, "cannot stat the input"));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_side(err, MRIMG_SIDE_INPUT,
                      err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                              "the input is %s: only a regular file can be sparsified in "
                              "place",
                              io_kind_name(st.st_mode)));
        goto out;
    }
    if (st.st_dev != st0.st_dev || st.st_ino != st0.st_ino ||
        (uint64_t)st.st_size != img->src.size) {
        rc = err_side(err, MRIMG_SIDE_INPUT,
                      err_set(err, MRIMG_ERR_IO, MRIMG_OFF_NONE, 0,
                              "the input changed while being read"));
        goto out;
    }
    int fl = fcntl(z.fd, F_GETFL);
    if (fl < 0 || fcntl(z.fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        rc = err_side(err, MRIMG_SIDE_INPUT,
                      err_sys(err, errno, "cannot open the input for writing"));
        goto out;
    }
    stats->allocated_before = (uint64_t)st.st_blocks * 512;
    if (mapped)
        for (unsigned i = 0; i < img->nblocks; i++)
            z.total += img->blocks[i].info.used_length;

    /* the zero padding of libvirt's XML region */
    if (ci->is_libvirt) {
        uint64_t used = MRIMG_HEADER_SIZE +
                        (ci->cookie ? (uint64_t)ci->cookie_offset + ci->cookie_len + 1
                                    : (uint64_t)ci->xml_len + 1);
        uint64_t a = round_up(used, 4096), b = ci->payload_offset / 4096 * 4096;
        pg_region pad = {.base = a, .ps = 4096, .first = 0, .end = b > a ? (b - a) / 4096 : 0};
        rc = do_regions(&z, &pad, 1, err);
    }
    if (mapped && rc == 0)
        rc = do_blocks(&z, err);
    if (rc == 0 && fsync(z.fd) != 0)
        rc = err_side(err, MRIMG_SIDE_INPUT, err_sys(err, errno, "cannot sync the input"));
    /* holes and skipped ranges do not tick: the bar ends at 100 % */
    if (rc == 0 && progress)
        (void)progress(pctx, z.total, z.total);
    if (fstat(z.fd, &st) == 0)
        stats->allocated_after = (uint64_t)st.st_blocks * 512;
out:
    if (z.fd >= 0)
        close(z.fd);
    mrimg_close(img);
    if (caller)
        vstruct_copy(caller, stats, sizeof(*stats));
    return rc;
}
