/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "pchunk.h"
#include "vec.h"

#include <errno.h>
#include <stdlib.h>

enum { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE };

struct pchunk_slot {
    int state;
    int rc;
    mrimg_error err;
    uint8_t *buf; /* dict_size bytes of dictionary, then chunk_size bytes */
    pchunk_job job;
};

static void *worker_main(void *arg);

typedef struct {
    pchunk *p;
    unsigned id;
} worker_arg;

static worker_arg *wargs_of(pchunk *p) { return (worker_arg *)(p->tids + p->threads); }

int pchunk_init(pchunk *p, unsigned threads, size_t chunk_size, size_t dict_size,
                pchunk_work_fn work, pchunk_emit_fn emit, void *ctx, mrimg_error *err)
{
    memset(p, 0, sizeof(*p));
    p->threads = threads ? threads : 1;
    p->chunk_size = chunk_size;
    p->dict_size = dict_size;
    p->work = work;
    p->emit = emit;
    p->ctx = ctx;
    p->nslots = p->threads == 1 ? 1 : 2 * p->threads;
    p->slots = xcalloc(p->nslots, sizeof(*p->slots), err);
    if (!p->slots)
        return MRIMG_ERR_NOMEM;
    for (unsigned i = 0; i < p->nslots; i++) {
        p->slots[i].buf = xmalloc(dict_size + chunk_size, err);
        if (!p->slots[i].buf) {
            pchunk_free(p);
            return MRIMG_ERR_NOMEM;
        }
    }
    pchunk_slot *s0 = &p->slots[0];
    s0->job.seq = 0;
    s0->job.in = s0->buf + dict_size;
    s0->job.dict = s0->buf + dict_size;
    if (p->threads > 1) {
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv_work, NULL);
        pthread_cond_init(&p->cv_done, NULL);
        /* one allocation: thread ids then worker args */
        p->tids = xcalloc(1, p->threads * (sizeof(pthread_t) + sizeof(worker_arg)), err);
        if (!p->tids) {
            pchunk_free(p);
            return MRIMG_ERR_NOMEM;
        }
        worker_arg *wa = wargs_of(p);
        for (unsigned i = 0; i < p->threads; i++) {
            wa[i].p = p;
            wa[i].id = i;
            int e = pthread_create(&p->tids[i], NULL, worker_main, &wa[i]);
            if (e != 0) {
                pchunk_free(p);
                return err_sys(err, e, "cannot start a compression thread");
            }
            p->started++;
        }
    }
    return 0;
}

static pchunk_slot *slot_of(pchunk *p, uint64_t seq) { return &p->slots[seq % p->nslots]; }

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    pchunk *p = wa->p;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        pchunk_slot *pick = NULL;
        while (!p->stop) {
            for (unsigned i = 0; i < p->nslots; i++) {
                pchunk_slot *s = &p->slots[i];
                if (s->state == SLOT_READY && (!pick || s->job.seq < pick->job.seq))
                    pick = s;
            }
            if (pick)
                break;
            pthread_cond_wait(&p->cv_work, &p->mu);
        }
        if (p->stop)
            break;
        pick->state = SLOT_BUSY;
        pthread_mutex_unlock(&p->mu);
        mrimg_error_clear(&pick->err);
        int rc = p->work(p->ctx, wa->id, &pick->job, &pick->err);
        pthread_mutex_lock(&p->mu);
        pick->rc = rc;
        pick->state = SLOT_DONE;
        pthread_cond_broadcast(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Emit the oldest chunk, waiting for it if needed. */
static int emit_one(pchunk *p, mrimg_error *err)
{
    pchunk_slot *s = slot_of(p, p->emit_seq);
    if (p->threads > 1) {
        pthread_mutex_lock(&p->mu);
        while (s->state != SLOT_DONE)
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    if (s->rc < 0) {
        if (err)
            *err = s->err;
        return s->rc;
    }
    int rc = p->emit(p->ctx, &s->job, err);
    if (rc < 0)
        return rc;
    /* workers scan the states under the lock: change them under it too */
    if (p->threads > 1)
        pthread_mutex_lock(&p->mu);
    s->state = SLOT_FREE;
    if (p->threads > 1)
        pthread_mutex_unlock(&p->mu);
    p->emit_seq++;
    return 0;
}

/* Hand the slot being filled to the workers and prepare the next one. */
static int submit(pchunk *p, bool last, mrimg_error *err)
{
    pchunk_slot *s = slot_of(p, p->next_seq);
    s->job.last = last;
    if (p->threads == 1) {
        s->rc = p->work(p->ctx, 0, &s->job, &s->err);
        s->state = SLOT_DONE;
    } else {
        pthread_mutex_lock(&p->mu);
        s->state = SLOT_READY;
        pthread_cond_signal(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
    }
    p->next_seq++;
    if (last)
        return 0;
    pchunk_slot *n = slot_of(p, p->next_seq);
    /* n last held chunk next_seq - nslots: it is free once that chunk was
     * emitted.  (Testing n->state here, outside the lock, raced with the
     * worker that writes it.) */
    while (p->next_seq - p->emit_seq >= p->nslots) {
        int rc = emit_one(p, err);
        if (rc < 0)
            return rc;
    }
    /* the new chunk's dictionary is the tail of the one just submitted */
    size_t dl = MRIMG_MIN(p->dict_size, s->job.in_len);
    uint8_t *in = n->buf + p->dict_size;
    memcpy(in - dl, s->job.in + s->job.in_len - dl, dl);
    n->job.seq = p->next_seq;
    n->job.in = in;
    n->job.in_len = 0;
    n->job.dict = in - dl;
    n->job.dict_len = dl;
    n->job.last = false;
    return 0;
}

int pchunk_write(pchunk *p, const void *data, size_t len, mrimg_error *err)
{
    const uint8_t *d = data;
    while (len) {
        pchunk_slot *s = slot_of(p, p->next_seq);
        size_t room = p->chunk_size - s->job.in_len;
        size_t n = MRIMG_MIN(room, len);
        memcpy((uint8_t *)s->job.in + s->job.in_len, d, n);
        s->job.in_len += n;
        d += n;
        len -= n;
        if (s->job.in_len == p->chunk_size) {
            int rc = submit(p, false, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int pchunk_finish(pchunk *p, mrimg_error *err)
{
    int rc = submit(p, true, err);
    while (rc == 0 && p->emit_seq < p->next_seq)
        rc = emit_one(p, err);
    return rc;
}

void pchunk_free(pchunk *p)
{
    if (p->threads > 1 && p->tids) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
        for (unsigned i = 0; i < p->started; i++)
            pthread_join(p->tids[i], NULL);
        free(p->tids);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv_work);
        pthread_cond_destroy(&p->cv_done);
    }
    if (p->slots) {
        for (unsigned i = 0; i < p->nslots; i++) {
            free(p->slots[i].buf);
            free(p->slots[i].job.out);
        }
        free(p->slots);
    }
    memset(p, 0, sizeof(*p));
}

int pchunk_out_reserve(pchunk_job *job, size_t want, mrimg_error *err)
{
    return vec_reserve(job->out, job->out_cap, want, 0, want) ? 0 : err_nomem(err);
}
