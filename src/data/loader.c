/* Background batch loader.
 *
 * Batches are numbered by a global sequence number seq = epoch * bpe + b.
 * A ring of nslots = max(prefetch, workers) + 1 batch buffers holds the
 * batch the caller is using plus those in flight. Each worker takes the next
 * unassigned seq whose slot is free, fills the whole batch, and marks it
 * ready; ss_loader_next waits for the slot of the next seq in order.
 *
 * Determinism: the epoch permutation comes from (seed, epoch); each image's
 * generator from (seed, epoch, dataset index, view), and for the k-th
 * repeat (k > 0) of an index in the list, from that and k. Which worker
 * fills which batch never matters. */
#include "selfsup/data.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PERM_TAG 0x5045524d5554ull /* "PERMUT" */

typedef struct slot {
    float *x[SS_LOADER_MAX_VIEWS];
    int32_t *y, *idx;
    int32_t *occ; /* occurrence of idx[i] in the index list (NULL: no repeats) */
    int64_t n, seq;
    int ready;
} slot;

struct ss_loader {
    const ss_dataset *d;
    ss_loader_opts o;
    int32_t *base; /* indices in epoch order before shuffling */
    /* An index list that repeats images (a labelled set oversampled, as
     * --semi does): occ[i] counts earlier positions holding base[i], and each
     * repeat gets its own augmentation stream. NULL when nothing repeats, so
     * runs without repeats draw exactly what they always drew. */
    int32_t *occ, *pperm, *perm_occ;
    int64_t nbase, bpe;
    size_t per;    /* floats per image */
    int nslots;
    slot *slots;

    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready;
    int64_t next_assign, consumed;
    int held, busy, shutdown;
    atomic_int stop; /* abort fills in progress (seek, free) */
    int64_t perm_epoch;
    int32_t *perm;
    pthread_t *threads;
    int nthreads;
    double wait_s;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Under the lock: make L->perm the order of `epoch`. */
static void ensure_perm(ss_loader *L, int64_t epoch)
{
    if (L->perm_epoch == epoch) return;
    /* With repeats, shuffle positions (the shuffle does not look at the
     * values, so the order of indices is the same as without). */
    int32_t *a = L->occ ? L->pperm : L->perm;
    if (L->occ)
        for (int64_t i = 0; i < L->nbase; i++) a[i] = (int32_t)i;
    else memcpy(a, L->base, (size_t)L->nbase * sizeof(int32_t));
    if (L->o.shuffle) {
        ss_rng r;
        ss_rng_seed(&r, L->o.seed ^ PERM_TAG, (uint64_t)epoch);
        ss_rng_shuffle_i32(&r, a, L->nbase);
    }
    if (L->occ)
        for (int64_t i = 0; i < L->nbase; i++) {
            L->perm[i] = L->base[a[i]];
            L->perm_occ[i] = L->occ[a[i]];
        }
    L->perm_epoch = epoch;
}

static uint64_t image_stream(int64_t epoch, int32_t index, int view)
{
    uint64_t h = ss_mix64((uint64_t)epoch + 0x45504f43ull);
    h = ss_mix64(h ^ (uint64_t)(uint32_t)index);
    return ss_mix64(h ^ ((uint64_t)view + 0x56494557ull));
}

/* Fill one batch (outside the lock). Returns 0 when aborted. */
static int fill_slot(ss_loader *L, slot *s, int64_t epoch)
{
    const ss_dataset *d = L->d;
    int c = d->c, h = d->h, w = d->w;
    size_t hw = (size_t)h * w;
    const float k = 1.0f / 255.0f;
    for (int64_t i = 0; i < s->n; i++) {
        if (atomic_load_explicit(&L->stop, memory_order_relaxed)) return 0;
        int32_t j = s->idx[i];
        s->y[i] = d->labels ? d->labels[j] : -1;
        const uint8_t *src = d->pixels + (size_t)j * L->per;
        for (int v = 0; v < L->o.views; v++) {
            float *dst = s->x[v] + (size_t)i * L->per;
            for (size_t p = 0; p < L->per; p++) dst[p] = (float)src[p] * k;
            if (L->o.transform[v]) {
                ss_rng r;
                uint64_t st = image_stream(epoch, j, v);
                if (s->occ && s->occ[i] > 0) st = ss_mix64(st + 0x52455045ull * (uint64_t)s->occ[i]);
                ss_rng_seed(&r, L->o.seed, st);
                L->o.transform[v](L->o.transform_ctx[v], dst, c, h, w, &r);
            }
            if (L->o.std[0] != 0.0f) {
                for (int ch = 0; ch < c; ch++) {
                    float m = L->o.mean[ch < 3 ? ch : 2], sd = L->o.std[ch < 3 ? ch : 2];
                    float inv = sd != 0.0f ? 1.0f / sd : 1.0f;
                    float *q = dst + (size_t)ch * hw;
                    for (size_t p = 0; p < hw; p++) q[p] = (q[p] - m) * inv;
                }
            }
        }
    }
    return 1;
}

static void *worker(void *arg)
{
    ss_loader *L = arg;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->shutdown && L->next_assign - (L->consumed - L->held) >= L->nslots)
            pthread_cond_wait(&L->cv_work, &L->mu);
        if (L->shutdown) break;
        int64_t seq = L->next_assign++;
        slot *s = &L->slots[seq % L->nslots];
        int64_t epoch = seq / L->bpe, b = seq % L->bpe;
        ensure_perm(L, epoch);
        int64_t start = (b * L->o.world + L->o.rank) * L->o.batch;
        int64_t n = L->nbase - start < L->o.batch ? L->nbase - start : L->o.batch;
        memcpy(s->idx, L->perm + start, (size_t)n * sizeof(int32_t));
        if (s->occ) memcpy(s->occ, L->perm_occ + start, (size_t)n * sizeof(int32_t));
        s->n = n;
        s->seq = seq;
        s->ready = 0;
        L->busy++;
        pthread_mutex_unlock(&L->mu);
        int ok = fill_slot(L, s, epoch);
        pthread_mutex_lock(&L->mu);
        L->busy--;
        if (ok) s->ready = 1;
        pthread_cond_broadcast(&L->cv_ready);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void free_slots(ss_loader *L)
{
    if (!L->slots) return;
    for (int i = 0; i < L->nslots; i++) {
        for (int v = 0; v < SS_LOADER_MAX_VIEWS; v++) free(L->slots[i].x[v]);
        free(L->slots[i].y);
        free(L->slots[i].idx);
        free(L->slots[i].occ);
    }
    free(L->slots);
}

void ss_loader_free(ss_loader *L)
{
    if (!L) return;
    if (L->threads) {
        pthread_mutex_lock(&L->mu);
        L->shutdown = 1;
        atomic_store(&L->stop, 1);
        pthread_cond_broadcast(&L->cv_work);
        pthread_mutex_unlock(&L->mu);
        for (int i = 0; i < L->nthreads; i++) pthread_join(L->threads[i], NULL);
        free(L->threads);
    }
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_ready);
    free_slots(L);
    free(L->base);
    free(L->perm);
    free(L->occ);
    free(L->pperm);
    free(L->perm_occ);
    free(L);
}

ss_status ss_loader_new(const ss_dataset *d, const ss_loader_opts *o, ss_loader **out)
{
    if (!out) return ss_seterr(SS_ERR_INVALID, "ss_loader_new: out is NULL");
    *out = NULL;
    if (!d || !o) return ss_seterr(SS_ERR_INVALID, "ss_loader_new: NULL data set or options");
    if (d->n <= 0 || !d->pixels || d->c <= 0 || d->h <= 0 || d->w <= 0)
        return ss_seterr(SS_ERR_INVALID, "loader: data set %s is empty", d->source);
    if (o->batch <= 0) return ss_seterr(SS_ERR_INVALID, "loader: batch size %d must be positive", o->batch);
    int views = o->views ? o->views : 1;
    if (views < 1 || views > SS_LOADER_MAX_VIEWS)
        return ss_seterr(SS_ERR_INVALID, "loader: views %d not in 1..%d", o->views, SS_LOADER_MAX_VIEWS);
    if (o->world < 0 || (o->world > 0 && (o->rank < 0 || o->rank >= o->world)) || (o->world == 0 && o->rank != 0))
        return ss_seterr(SS_ERR_INVALID, "loader: rank %d of world %d (expected 0 <= rank < world)", o->rank,
                         o->world);
    if (o->indices && o->nindices < 0)
        return ss_seterr(SS_ERR_INVALID, "loader: negative index count %lld", (long long)o->nindices);

    ss_loader *L = calloc(1, sizeof *L);
    if (!L) return ss_seterr(SS_ERR_NOMEM, "loader: out of memory");
    L->d = d;
    L->o = *o;
    L->o.views = views;
    L->o.indices = NULL;
    if (L->o.workers <= 0) L->o.workers = 1;
    if (L->o.workers > 64) L->o.workers = 64;
    if (L->o.prefetch <= 0) L->o.prefetch = 2;
    if (L->o.prefetch > 64) L->o.prefetch = 64;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_ready, NULL);
    atomic_init(&L->stop, 0);
    L->perm_epoch = -1;
    L->per = (size_t)d->c * d->h * d->w;
    L->nbase = o->indices ? o->nindices : d->n;
    ss_status st = SS_OK;
    L->base = malloc((size_t)(L->nbase ? L->nbase : 1) * sizeof(int32_t));
    L->perm = malloc((size_t)(L->nbase ? L->nbase : 1) * sizeof(int32_t));
    if (!L->base || !L->perm) {
        st = ss_seterr(SS_ERR_NOMEM, "loader: out of memory for %lld indices", (long long)L->nbase);
        goto fail;
    }
    for (int64_t i = 0; i < L->nbase; i++) {
        int64_t j = o->indices ? o->indices[i] : i;
        if (j < 0 || j >= d->n) {
            st = ss_seterr(SS_ERR_RANGE, "loader: index %lld at position %lld is outside %s (0..%lld)", (long long)j,
                           (long long)i, d->source, (long long)d->n - 1);
            goto fail;
        }
        L->base[i] = (int32_t)j;
    }
    if (o->indices && L->nbase > 1) { /* repeats? */
        int32_t *seen = calloc((size_t)d->n, sizeof(int32_t));
        if (!seen) {
            st = ss_seterr(SS_ERR_NOMEM, "loader: out of memory");
            goto fail;
        }
        int any = 0;
        for (int64_t i = 0; i < L->nbase && !any; i++) any = seen[L->base[i]]++ > 0;
        if (any) {
            memset(seen, 0, (size_t)d->n * sizeof(int32_t));
            L->occ = malloc((size_t)L->nbase * sizeof(int32_t));
            L->pperm = malloc((size_t)L->nbase * sizeof(int32_t));
            L->perm_occ = malloc((size_t)L->nbase * sizeof(int32_t));
            if (L->occ && L->pperm && L->perm_occ)
                for (int64_t i = 0; i < L->nbase; i++) L->occ[i] = seen[L->base[i]]++;
        }
        free(seen);
        if (any && (!L->occ || !L->pperm || !L->perm_occ)) {
            st = ss_seterr(SS_ERR_NOMEM, "loader: out of memory");
            goto fail;
        }
    }
    if (L->o.world <= 0) L->o.world = 1;
    int64_t gbatch = (int64_t)o->batch * L->o.world;
    int drop = o->drop_last || L->o.world > 1;
    L->bpe = drop ? L->nbase / gbatch : (L->nbase + gbatch - 1) / gbatch;
    if (L->bpe <= 0) {
        st = ss_seterr(SS_ERR_INVALID, "loader: %lld images give no batch of %lld%s", (long long)L->nbase,
                       (long long)gbatch, L->o.world > 1 ? " (batch x processes)" : o->drop_last ? " (drop_last)" : "");
        goto fail;
    }
    int inflight = L->o.prefetch > L->o.workers ? L->o.prefetch : L->o.workers;
    L->nslots = inflight + 1;
    size_t xbytes;
    if (ss_mul_overflow(L->per, (size_t)o->batch, &xbytes) || ss_mul_overflow(xbytes, sizeof(float), &xbytes)) {
        st = ss_seterr(SS_ERR_NOMEM, "loader: batch of %d images of %zu values overflows", o->batch, L->per);
        goto fail;
    }
    L->slots = calloc((size_t)L->nslots, sizeof(slot));
    if (!L->slots) {
        st = ss_seterr(SS_ERR_NOMEM, "loader: out of memory");
        goto fail;
    }
    for (int i = 0; i < L->nslots; i++) {
        slot *s = &L->slots[i];
        s->seq = -1;
        for (int v = 0; v < views; v++)
            if (!(s->x[v] = malloc(xbytes))) goto nomem;
        s->y = malloc((size_t)o->batch * sizeof(int32_t));
        s->idx = malloc((size_t)o->batch * sizeof(int32_t));
        if (!s->y || !s->idx) goto nomem;
        if (L->occ && !(s->occ = malloc((size_t)o->batch * sizeof(int32_t)))) goto nomem;
    }
    L->threads = calloc((size_t)L->o.workers, sizeof(pthread_t));
    if (!L->threads) goto nomem;
    for (int i = 0; i < L->o.workers; i++) {
        if (pthread_create(&L->threads[i], NULL, worker, L) != 0) {
            st = ss_seterr(SS_ERR_NOMEM, "loader: cannot start worker thread %d", i);
            goto fail;
        }
        L->nthreads++;
    }
    *out = L;
    return SS_OK;
nomem:
    st = ss_seterr(SS_ERR_NOMEM, "loader: out of memory for %d batch buffers of %zu bytes", L->nslots, xbytes);
fail:
    ss_loader_free(L);
    return st;
}

ss_status ss_loader_next(ss_loader *L, ss_batch *b)
{
    if (!L || !b) return ss_seterr(SS_ERR_INVALID, "ss_loader_next: NULL argument");
    pthread_mutex_lock(&L->mu);
    if (L->held) {
        L->held = 0;
        pthread_cond_broadcast(&L->cv_work);
    }
    slot *s = &L->slots[L->consumed % L->nslots];
    if (!(s->ready && s->seq == L->consumed)) {
        double t0 = now_s();
        while (!(s->ready && s->seq == L->consumed)) pthread_cond_wait(&L->cv_ready, &L->mu);
        L->wait_s += now_s() - t0;
    }
    L->held = 1;
    L->consumed++;
    memset(b, 0, sizeof *b);
    b->n = s->n;
    b->c = L->d->c;
    b->h = L->d->h;
    b->w = L->d->w;
    b->views = L->o.views;
    for (int v = 0; v < L->o.views; v++) b->x[v] = s->x[v];
    b->y = s->y;
    b->idx = s->idx;
    b->epoch = s->seq / L->bpe;
    b->index_in_epoch = s->seq % L->bpe;
    b->offset = (int64_t)L->o.rank * L->o.batch;
    pthread_mutex_unlock(&L->mu);
    return SS_OK;
}

int64_t ss_loader_batches_per_epoch(const ss_loader *L) { return L ? L->bpe : 0; }

ss_status ss_loader_seek(ss_loader *L, int64_t epoch, int64_t batch)
{
    if (!L) return ss_seterr(SS_ERR_INVALID, "ss_loader_seek: NULL loader");
    if (epoch < 0 || batch < 0 || batch >= L->bpe || epoch > INT64_MAX / L->bpe - 1)
        return ss_seterr(SS_ERR_RANGE, "loader seek: epoch %lld batch %lld out of range (batch 0..%lld)",
                         (long long)epoch, (long long)batch, (long long)L->bpe - 1);
    pthread_mutex_lock(&L->mu);
    /* Stop new work, abort fills in progress, wait for them to leave. */
    int64_t target = epoch * L->bpe + batch;
    L->next_assign = INT64_MAX / 2; /* nothing assignable while we wait */
    L->consumed = INT64_MAX / 2 - L->nslots; /* window closed: next_assign - consumed >= nslots */
    L->held = 0;
    atomic_store(&L->stop, 1);
    while (L->busy > 0) pthread_cond_wait(&L->cv_ready, &L->mu);
    atomic_store(&L->stop, 0);
    for (int i = 0; i < L->nslots; i++) {
        L->slots[i].ready = 0;
        L->slots[i].seq = -1;
    }
    L->next_assign = L->consumed = target;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    return SS_OK;
}

double ss_loader_wait_seconds(const ss_loader *L)
{
    if (!L) return 0;
    ss_loader *M = (ss_loader *)L;
    pthread_mutex_lock(&M->mu);
    double w = M->wait_s;
    pthread_mutex_unlock(&M->mu);
    return w;
}
