/*
 * The benchmark runner: the matrix as jobs, trained by a pool of worker
 * threads on top of sl_train_run, each run evaluated on the test split and
 * stored; then the statistics and the report.
 *
 * Jobs. Entries of a data set and seed that share a loss (they differ only
 * in test-time augmentation, INT8 or post-processing) share one training: a job is (data set, seed,
 * loss) with the entries that use it. Jobs run in preset order, data set
 * first, then seed, then loss. With folds a seed is K replicates (data
 * set, seed, fold, loss), each training on its fold's view of the data
 * set. Ensemble entries have no job: once every training they average has
 * a result, run_ensembles predicts the test split with all those models
 * (inference only, in the calling thread) and stores one run.
 *
 * Threads. The small networks of a benchmark keep one core busy with poor
 * parallel efficiency (a step of a 64x64 batch is a few ms of work per
 * layer, and ~100 OpenMP regions per step each end in a barrier), so the
 * runner trains `threads` jobs at once with one thread each: on 2 cores
 * two runs at once finish the matrix in about half the time of one run on
 * two threads. Results do not depend on it: a run is a pure function of
 * its configuration (segloss/train.h). OpenBLAS's thread count is a
 * process-wide setting that the nn module switches to 1 around each
 * kernel and back; two nets in two threads would race on it (docs/nn.md),
 * so the runner sets it to 1 for the whole call, which makes that switch a
 * no-op, and restores it at the end.
 *
 * Resume. A run is done when its result file exists. A job whose trainer
 * folder holds a checkpoint continues from it (resume); one whose folder
 * holds a complete training that a finished entry of the job used (an
 * entry added later, e.g. INT8) reuses that model; any other folder is
 * started again (force). So a killed benchmark loses at most the epochs in
 * progress of the jobs in flight.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>
#include <cblas.h>
#include "bench_internal.h"
#include "search.h"
#include "segloss/metrics.h"
#include "segloss/schedule.h"
#include "fileio.h"
#include "outfile.h"
#include "nn/layers.h" /* sl_nn_blas_reserve */
#include "train/train_internal.h" /* slt_config_diff: the trainer's config comparison */

#define MSG 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* ------------------------------------------------------------------ state */

/* A data set opened once for all its runs, with its test split in memory. */
typedef struct ds_cache {
    sl_dataset *ds;
    sl_dataset_info info;
    int nd;                  /* spatial dimensions: 2 (slices) or 3 (volumes) */
    int64_t n, D, H, W;      /* test cases and their size (D = 1 for slices) */
    int64_t vox;             /* D * H * W: the stride of a case */
    float *img;              /* (n, 1, [D,] H, W) normalised, as the network sees them */
    int32_t *lab;            /* (n, [D,] H, W) */
    double fraction;         /* share of the small class in the test split */
    int64_t noverlays;
    int64_t overlay_cases[50];
    int64_t overlay_slice[50]; /* volumes: the axial slice drawn (the one with the most
                                  small-class voxels of the target); 0 for slices */
    float *calib;            /* (ncalib, 1, H, W) training images for INT8 entries */
    int64_t ncalib;
    sl_dataset *fold[SL_DATA_MAX_FOLDS]; /* the folds' views of ds (preset folds) */
} ds_cache;

typedef struct job {
    int d, s;
    int nent;
    int *ent;                /* entries sharing the training */
    double cost;             /* steps x batch x pixels: what the ETA counts */
    int search;              /* 1: a searched entry (search.h): its search on data set d,
                                then its runs for every seed (s unused) */
    double seed_cost;        /* the cost of one seed's training */
} job;

typedef struct ctx {
    const sl_bench_preset *p;
    const char *dir;
    ds_cache *dsc;           /* [ndatasets] */
    slb_run **runs;          /* [d][s][e], NULL until known */
    job *jobs;
    int njobs, next_job;
    double *job_done;        /* [njobs] cost done so far */
    double cost_total;
    pthread_mutex_t mu;
    sl_bench_callback cb;
    void *user;
    atomic_int stop;
    sl_status err;
    char errmsg[MSG];
    int64_t runs_total, runs_done, runs_resumed, runs_failed, counter;
    double t0;
} ctx;

static int64_t run_index(const sl_bench_preset *p, int d, int s, int e)
{
    return ((int64_t)d * slb_nreps(p) + s) * p->nentries + e;
}

static double eta_locked(const ctx *c)
{
    double done = 0;
    for (int j = 0; j < c->njobs; j++) done += c->job_done[j];
    if (!(done > 0)) return NAN;
    double left = c->cost_total - done;
    return left <= 0 ? 0 : (now_s() - c->t0) * left / done;
}

/* Calls the user's callback under the lock; a non-zero answer stops the call. */
static void emit_locked(ctx *c, sl_bench_progress *pg)
{
    pg->runs = c->runs_total;
    pg->runs_done = c->runs_done;
    pg->runs_resumed = c->runs_resumed;
    pg->seconds = now_s() - c->t0;
    pg->eta = eta_locked(c);
    if (c->cb && c->cb(pg, c->user)) atomic_store(&c->stop, 1);
}

static void fail_locked(ctx *c, sl_status st, const char *m)
{
    if (c->err == SL_OK) {
        c->err = st;
        snprintf(c->errmsg, sizeof c->errmsg, "%s", m);
    }
    atomic_store(&c->stop, 1);
}

/* --------------------------------------------------------------- data sets */

/* Test cases drawn as overlays: among the cases that contain the small
 * class, evenly spread over their sizes (smallest, median, largest for 3). */
static sl_status pick_overlays(ds_cache *dc, int want)
{
    const int sc = dc->info.small_class;
    dc->noverlays = 0;
    if (want <= 0 || sc < 1) return SL_OK;
    int64_t *cnt = sl_malloc(dc->n, sizeof *cnt), *idx = sl_malloc(dc->n, sizeof *idx);
    if (!cnt || !idx) {
        free(cnt);
        free(idx);
        return SL_ENOMEM;
    }
    int64_t m = 0;
    const int64_t vox = dc->vox;
    for (int64_t i = 0; i < dc->n; i++) {
        int64_t k = 0;
        for (int64_t q = 0; q < vox; q++) k += dc->lab[i * vox + q] == sc;
        if (k > 0) {
            cnt[m] = k;
            idx[m++] = i;
        }
    }
    for (int64_t i = 1; i < m; i++) /* by size, then index: insertion sort keeps it stable */
        for (int64_t j = i; j > 0 && cnt[j] < cnt[j - 1]; j--) {
            int64_t a = cnt[j], b = idx[j];
            cnt[j] = cnt[j - 1];
            idx[j] = idx[j - 1];
            cnt[j - 1] = a;
            idx[j - 1] = b;
        }
    if (want > m) want = (int)m;
    for (int k = 0; k < want; k++) {
        int64_t at = want == 1 ? (m - 1) / 2 : (int64_t)llround((double)k * (double)(m - 1) / (double)(want - 1));
        const int64_t i = idx[at], hw = dc->H * dc->W;
        int64_t best = 0, zbest = 0;
        for (int64_t z = 0; z < dc->D; z++) { /* a volume is drawn by its slice with the most of the small class */
            int64_t nz = 0;
            for (int64_t q = 0; q < hw; q++) nz += dc->lab[i * vox + z * hw + q] == sc;
            if (nz > best) {
                best = nz;
                zbest = z;
            }
        }
        dc->overlay_slice[dc->noverlays] = zbest;
        dc->overlay_cases[dc->noverlays++] = i;
    }
    free(cnt);
    free(idx);
    return SL_OK;
}

static sl_status open_dataset(ctx *c, int d, int threads, char *msg, size_t msglen)
{
    const sl_bench_preset *p = c->p;
    const sl_bench_dataset *bd = &p->datasets[d];
    ds_cache *dc = &c->dsc[d];
    sl_data_opts o = bd->config.data_opts;
    o.threads = threads;
    /* as sl_train_run: a D,H,W patch on nifti:DIR takes the whole volumes */
    if (bd->config.patch_depth && strncmp(bd->config.data, "nifti:", 6) == 0) o.volumes = 1;
    char sub[MSG];
    sl_status st = sl_dataset_open(&dc->ds, bd->config.data, &o, sub, sizeof sub);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "bench: data set %s: %s", bd->name, sub);
    sl_dataset_get_info(dc->ds, &dc->info);
    dc->n = dc->info.n[SL_SPLIT_TEST];
    dc->nd = dc->info.spatial_ndim == 3 ? 3 : 2;
    dc->D = dc->nd == 3 ? dc->info.size[0] : 1;
    dc->H = dc->info.size[dc->nd - 2];
    dc->W = dc->info.size[dc->nd - 1];
    dc->vox = dc->D * dc->H * dc->W;
    if (dc->n < 1) return sl_errf(msg, msglen, SL_EEMPTY, "bench: data set %s has no test cases", bd->name);
    if (dc->info.small_class < 1)
        return sl_errf(msg, msglen, SL_EEMPTY, "bench: data set %s has no foreground class in its training split", bd->name);
    dc->img = sl_malloc(dc->n * dc->vox, sizeof *dc->img);
    dc->lab = sl_malloc(dc->n * dc->vox, sizeof *dc->lab);
    if (!dc->img || !dc->lab) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory for the test split of %s", bd->name);
    for (int64_t i = 0; i < dc->n; i++)
        if ((st = sl_dataset_get(dc->ds, SL_SPLIT_TEST, i, dc->img + i * dc->vox, dc->lab + i * dc->vox, sub,
                                 sizeof sub)) != SL_OK)
            return sl_errf(msg, msglen, st, "bench: data set %s: %s", bd->name, sub);
    double frac[SL_DATA_MAX_CLASSES];
    sl_dataset_class_fractions(dc->ds, SL_SPLIT_TEST, frac);
    dc->fraction = frac[dc->info.small_class];
    for (int k = 0; k < p->nfolds; k++)
        if ((st = sl_dataset_fold(&dc->fold[k], dc->ds, p->nfolds, k, sub, sizeof sub)) != SL_OK)
            return sl_errf(msg, msglen, st, "bench: data set %s: %s", bd->name, sub);
    if (pick_overlays(dc, p->overlay_cases) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    int any_int8 = 0;
    for (int e = 0; e < p->nentries; e++) any_int8 |= p->entries[e].int8;
    if (any_int8 && dc->nd == 3)
        return sl_errf(msg, msglen, SL_EUNSUPPORTED, "bench: data set %s holds volumes; INT8 entries are for 2-D networks only",
                       bd->name);
    if (any_int8) {
        /* the calibration set of INT8 entries: the first training images */
        const int64_t hw = dc->H * dc->W, nt = dc->info.n[SL_SPLIT_TRAIN];
        dc->ncalib = nt < SL_BENCH_INT8_CALIB ? nt : SL_BENCH_INT8_CALIB;
        int32_t *lab = sl_malloc(hw, sizeof *lab);
        dc->calib = sl_malloc(dc->ncalib * hw, sizeof *dc->calib);
        if (!lab || !dc->calib) {
            free(lab);
            return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory for the calibration images of %s", bd->name);
        }
        for (int64_t i = 0; i < dc->ncalib && st == SL_OK; i++)
            st = sl_dataset_get(dc->ds, SL_SPLIT_TRAIN, i, dc->calib + i * hw, lab, sub, sizeof sub);
        free(lab);
        if (st != SL_OK) return sl_errf(msg, msglen, st, "bench: data set %s: %s", bd->name, sub);
    }
    return SL_OK;
}

/* The image with its target, once per overlay case of data set d: written
 * after every data set has opened (and a forced replacement has removed
 * the old benchmark's overlays). */
static sl_status write_case_overlays(ctx *c, int d, char *msg, size_t msglen)
{
    const sl_bench_preset *p = c->p;
    const sl_bench_dataset *bd = &p->datasets[d];
    ds_cache *dc = &c->dsc[d];
    sl_status st;
    char path[SL_TRAIN_TEXT + 256];
    snprintf(path, sizeof path, "%s/%s/%s", c->dir, SLB_OVERLAY_DIR, bd->slug);
    if ((st = sl_mkdirs(path, msg, msglen)) != SL_OK) return st;
    for (int64_t k = 0; k < dc->noverlays; k++) {
        const int64_t i = dc->overlay_cases[k], at = i * dc->vox + dc->overlay_slice[k] * dc->H * dc->W;
        slb_overlay_path(path, sizeof path, c->dir, p, d, i, -1);
        if ((st = slb_overlay_write(path, dc->img + at, dc->lab + at, NULL, dc->H, dc->W, dc->info.num_classes, msg, msglen)) !=
            SL_OK)
            return st;
    }
    return SL_OK;
}

static void free_caches(ctx *c)
{
    if (!c->dsc) return;
    for (int d = 0; d < c->p->ndatasets; d++) {
        for (int k = 0; k < SL_DATA_MAX_FOLDS; k++) sl_dataset_free(c->dsc[d].fold[k]); /* views before their dataset */
        sl_dataset_free(c->dsc[d].ds);
        free(c->dsc[d].img);
        free(c->dsc[d].lab);
        free(c->dsc[d].calib);
    }
    free(c->dsc);
    c->dsc = NULL;
}

/* -------------------------------------------------------------- evaluation */

/* One window of a 3-D net: patch (1, pd, ph, pw) -> logits (C, pd, ph, pw). */
typedef struct vol_net {
    sl_unet *net;
    const int64_t *patch;
} vol_net;

static sl_status window_logits(const float *patch, float *out, void *user, char *msg, size_t msglen)
{
    const vol_net *v = user;
    sl_dims d = {1, 1, 3, {v->patch[0], v->patch[1], v->patch[2]}};
    return sl_unet_forward(v->net, patch, &d, out, msg, msglen);
}

/* Labels of the test volumes of dc by sliding windows of the training
 * patch (Gaussian weights, step 1/2). Without TTA exactly as the trainer's
 * test phase (logits aggregated, then the argmax), so an entry's metrics
 * are the trainer's metrics.json per case; with TTA as segloss predict
 * (the mean softmax of the 8 mirrorings of each window aggregated). The
 * cached images are already normalised as the network saw them, so pp's
 * normalisation is switched off. */
static sl_status predict_volumes(const ds_cache *dc, sl_unet *net, const sl_preproc *pp, const sl_predict_opts *po, int32_t *pred,
                                 char *msg, size_t msglen)
{
    const int C = dc->info.num_classes;
    const int64_t size[3] = {dc->D, dc->H, dc->W};
    sl_status st = SL_OK;
    if (pp->patch[0] < 1 || pp->patch[1] < 1 || pp->patch[2] < 1)
        return sl_errf(msg, msglen, SL_EFORMAT, "config.json of the run has no 3-D training patch");
    if (po->tta == SL_TTA_NONE) {
        sl_window_opts wo = SL_WINDOW_OPTS_DEFAULT;
        memcpy(wo.patch, pp->patch, sizeof wo.patch);
        vol_net v = {net, pp->patch};
        float *lg = sl_malloc(C * dc->vox, sizeof *lg);
        if (!lg) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
        sl_unet_set_training(net, 0);
        for (int64_t i = 0; i < dc->n && st == SL_OK; i++) {
            st = sl_sliding_window(dc->img + i * dc->vox, 1, 3, size, C, &wo, window_logits, &v, lg, msg, msglen);
            if (st == SL_OK) slt_argmax(lg, 1, C, dc->vox, pred + i * dc->vox);
        }
        free(lg);
        return st;
    }
    sl_preproc q = *pp;
    q.norm = SL_INTENSITY_NONE;
    for (int64_t i = 0; i < dc->n && st == SL_OK; i++) {
        /* borrowed: sl_predict_image reads the image (into its own copy) */
        sl_array img = {SL_DT_F32, 3, {dc->D, dc->H, dc->W}, dc->img + i * dc->vox};
        sl_array lab = SL_ARRAY_EMPTY;
        if ((st = sl_predict_image(net, &q, &img, po, &lab, msg, msglen)) != SL_OK) break;
        for (int64_t v = 0; v < dc->vox; v++)
            pred[i * dc->vox + v] = lab.dtype == SL_DT_U8 ? ((const uint8_t *)lab.data)[v] : ((const int16_t *)lab.data)[v];
        sl_array_free(&lab);
    }
    return st;
}

static sl_status score(ctx *c, int d, int e, slb_run *r, const int32_t *pred, char *msg, size_t msglen);

/* Tests one entry's predictions of the job's model and fills r (its sizes
 * and metrics; the caller adds the curves). */
static sl_status evaluate(ctx *c, int d, int e, sl_unet *net, const sl_preproc *pp, int64_t batch, slb_run *r, int32_t *pred, char *msg,
                          size_t msglen)
{
    const sl_bench_preset *p = c->p;
    const ds_cache *dc = &c->dsc[d];
    sl_predict_opts po = SL_PREDICT_OPTS_DEFAULT;
    po.tta = (sl_tta)p->entries[e].tta;
    po.tta_n = p->entries[e].tta_n;
    po.threads = 1;
    po.batch = batch;
    sl_status st = SL_OK;
    if (p->entries[e].int8) {
        /* post-training quantisation: ranges from float forwards of the
         * calibration images, then int8 forwards of the test split */
        sl_predict_opts co = po;
        co.tta = SL_TTA_NONE;
        if ((st = sl_unet_calibrate(net)) != SL_OK) return sl_errf(msg, msglen, st, "bench: out of memory");
        if ((st = sl_predict_slices(net, dc->calib, dc->ncalib, dc->H, dc->W, &co, NULL, NULL, msg, msglen)) == SL_OK)
            st = sl_unet_quantize(net, msg, msglen);
    }
    if (st == SL_OK && p->entries[e].crf) {
        const int64_t size[3] = {dc->D, dc->H, dc->W};
        st = slb_predict_crf(net, pp, &po, dc->img, dc->n, dc->nd, size, dc->info.num_classes, pred, msg, msglen);
    } else if (st == SL_OK && dc->nd == 3)
        st = predict_volumes(dc, net, pp, &po, pred, msg, msglen);
    else if (st == SL_OK) st = sl_predict_slices(net, dc->img, dc->n, dc->H, dc->W, &po, NULL, pred, msg, msglen);
    if (st == SL_OK && p->entries[e].postprocess) {
        /* the rule of the float (or INT8) net on the validation split, without TTA */
        const int64_t size[3] = {dc->nd == 3 ? dc->D : dc->H, dc->nd == 3 ? dc->H : dc->W, dc->W};
        st = slb_postprocess_cases(net, pp, dc->ds, dc->nd, dc->n, size, pred, msg, msglen);
    }
    sl_unet_dequantize(net); /* the job's other entries see the float net */
    if (st != SL_OK) return st;
    return score(c, d, e, r, pred, msg, msglen);
}

/* The metrics of predictions pred of the test split of data set d per
 * case into r, and entry e's overlays. */
static sl_status score(ctx *c, int d, int e, slb_run *r, const int32_t *pred, char *msg, size_t msglen)
{
    const sl_bench_preset *p = c->p;
    const ds_cache *dc = &c->dsc[d];
    const int C = dc->info.num_classes;
    const int64_t vox = dc->vox;
    sl_status st = SL_OK;
    sl_grid g = SL_GRID_DEFAULT; /* pixels for slices; volumes in mm (their spacing; 1 for phantom3d, colin3d) */
    g.ndim = dc->nd;
    if (dc->nd == 3) {
        g.shape[0] = dc->D;
        g.shape[1] = dc->H;
        g.shape[2] = dc->W;
        for (int a = 0; a < 3; a++) g.spacing[a] = dc->info.spacing[a];
    } else {
        g.shape[0] = dc->H;
        g.shape[1] = dc->W;
    }
    sl_metric_opts mo = SL_METRIC_OPTS_DEFAULT;
    mo.metrics = SL_MET_OVERLAP | SL_MET_DISTANCE | SL_MET_NSD | SL_MET_LESION;
    mo.nsd_tolerance = p->nsd_tolerance;
    mo.threads = 1;
    /* one side empty: the sample's diagonal (pixels; volumes: mm) */
    double diag = sqrt((double)(dc->H * dc->H + dc->W * dc->W));
    if (dc->nd == 3) {
        const double ext[3] = {(double)dc->D * g.spacing[0], (double)dc->H * g.spacing[1], (double)dc->W * g.spacing[2]};
        diag = sqrt(ext[0] * ext[0] + ext[1] * ext[1] + ext[2] * ext[2]);
    }
    int64_t labels[SL_DATA_MAX_CLASSES];
    sl_metric_result *res = calloc((size_t)C, sizeof *res);
    if (!res) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    for (int k = 1; k < C; k++) labels[k - 1] = k;
    for (int64_t i = 0; i < dc->n; i++) {
        sl_labelmap pm = {pred + i * vox, SL_DT_I32}, tm = {dc->lab + i * vox, SL_DT_I32};
        if ((st = sl_metrics_eval(&pm, &tm, &g, labels, C - 1, &mo, res, msg, msglen)) != SL_OK) break;
        for (int k = 1; k < C; k++) {
            const sl_metric_result *q = &res[k - 1];
            slb_value(r, k, SLB_DICE)[i] = q->dice;
            slb_value(r, k, SLB_HD95)[i] = isfinite(q->hd_perc) ? q->hd_perc : diag; /* one side empty: docs/metrics.md */
            slb_value(r, k, SLB_NSD)[i] = q->nsd;
            slb_value(r, k, SLB_RECALL)[i] = q->recall;
            slb_value(r, k, SLB_PRECISION)[i] = q->precision;
            slb_value(r, k, SLB_LESION_F1)[i] = q->lesion_f1;
        }
    }
    free(res);
    if (st != SL_OK) return st;
    slb_run_derive_mean(r);
    /* overlays of this entry */
    char path[SL_TRAIN_TEXT + 256];
    for (int64_t k = 0; k < dc->noverlays; k++) {
        const int64_t i = dc->overlay_cases[k], at = i * vox + dc->overlay_slice[k] * dc->H * dc->W;
        r->overlay_cases[k] = i;
        slb_overlay_path(path, sizeof path, c->dir, p, d, i, e);
        if ((st = slb_overlay_write(path, dc->img + at, dc->lab + at, pred + at, dc->H, dc->W, C, msg, msglen)) != SL_OK)
            return st;
    }
    return SL_OK;
}

/* ------------------------------------------------------------------- jobs */

typedef struct train_view {
    ctx *c;
    int j;
    const char *dataset, *entry;
    uint64_t seed;
    double base, part;       /* the job's cost done before this training, and its own */
} train_view;

static int on_train(const sl_train_progress *tp, void *user)
{
    train_view *v = user;
    ctx *c = v->c;
    if (tp->event == SL_TRAIN_STEP || tp->event == SL_TRAIN_EPOCH) {
        pthread_mutex_lock(&c->mu);
        c->job_done[v->j] = v->base + v->part * (double)tp->global_step / (double)(tp->total_steps > 0 ? tp->total_steps : 1);
        if (tp->event == SL_TRAIN_EPOCH) {
            sl_bench_progress pg = {0};
            pg.event = SL_BENCH_EPOCH;
            pg.dataset = v->dataset;
            pg.entry = v->entry;
            pg.seed = v->seed;
            pg.epoch = tp->epoch;
            pg.epochs = tp->epochs;
            emit_locked(c, &pg);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return atomic_load(&c->stop);
}

/* Stores a finished run (result file written) and reports it. */
static void finish_run(ctx *c, slb_run *r, double seconds_all)
{
    const sl_bench_preset *p = c->p;
    char line[512];
    if (r->failed) snprintf(line, sizeof line, "failed: %.400s", r->message);
    else {
        int k = snprintf(line, sizeof line, "Dice");
        for (int cl = 1; cl < r->num_classes && k > 0 && (size_t)k < sizeof line - 64; cl++) {
            const double *v = slb_value(r, cl, SLB_DICE);
            double s = 0;
            for (int64_t i = 0; i < r->n_cases; i++) s += v[i];
            k += snprintf(line + k, sizeof line - (size_t)k, " %s %.3f", r->class_names[cl], s / (double)r->n_cases);
        }
        if (k > 0 && (size_t)k < sizeof line) snprintf(line + k, sizeof line - (size_t)k, " (%.1f s)", seconds_all);
    }
    pthread_mutex_lock(&c->mu);
    c->runs[run_index(p, r->dataset, r->seed, r->entry)] = r;
    c->runs_done++;
    c->runs_failed += r->failed;
    sl_bench_progress pg = {0};
    pg.event = SL_BENCH_RUN;
    pg.run = ++c->counter;
    pg.dataset = p->datasets[r->dataset].name;
    pg.entry = p->entries[r->entry].name;
    pg.seed = slb_rep_seed(p, r->seed);
    pg.failed = r->failed;
    pg.message = line;
    emit_locked(c, &pg);
    pthread_mutex_unlock(&c->mu);
}

/* The training of job j for seed s with `loss` (the entries' own, or a
 * search's choice) and the evaluation of its entries. */
/* The budget study's longer runs (factor × the epochs) stretch the loss's
 * schedule to match (stage starts, ramp steps), so that "NAME @4x" is the
 * same recipe over a longer run (segloss/schedule.h, sl_schedule_stretch). */
static sl_status stretch_loss(sl_train_config *cfg, int factor, char *msg, size_t msglen)
{
    if (factor == 1) return SL_OK;
    char sub[600], *spec = malloc(sizeof cfg->loss);
    if (!spec) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    sl_status st = sl_schedule_stretch(cfg->loss, factor, spec, sizeof cfg->loss, sub, sizeof sub);
    if (st == SL_OK) memcpy(cfg->loss, spec, sizeof cfg->loss);
    else sl_errf(msg, msglen, st, "bench: %s stretched %d times: %s", cfg->loss, factor, sub);
    free(spec);
    return st;
}

static sl_status run_seed(ctx *c, int j, int s, const char *loss, char *msg, size_t msglen)
{
    const sl_bench_preset *p = c->p;
    const job *jb = &c->jobs[j];
    const int d = jb->d;
    const sl_bench_dataset *bd = &p->datasets[d];
    const ds_cache *dc = &c->dsc[d];
    int todo = 0;
    const slb_run *sib = NULL; /* a finished, not failed run of this job: its model is on disk */
    pthread_mutex_lock(&c->mu);
    for (int k = 0; k < jb->nent; k++) {
        const slb_run *q = c->runs[run_index(p, d, s, jb->ent[k])];
        todo += q == NULL;
        if (q && !q->failed && !sib) sib = q;
    }
    pthread_mutex_unlock(&c->mu);
    if (!todo) return SL_OK;

    const sl_bench_entry *first = &p->entries[jb->ent[0]];
    const uint64_t seed = slb_rep_seed(p, s);
    const int fold = slb_rep_fold(p, s);
    char rep[64]; /* "seed S" or "seed S / fold K", for messages */
    if (fold < 0) snprintf(rep, sizeof rep, "seed %llu", (unsigned long long)seed);
    else snprintf(rep, sizeof rep, "seed %llu / fold %d", (unsigned long long)seed, fold);
    /* a searched job's seeds come after its search, in seed order */
    const double base = jb->search ? jb->cost - (double)(slb_nreps(p) - s) * jb->seed_cost : 0;
    train_view tv = {c, j, bd->name, first->name, seed, base, jb->seed_cost};
    pthread_mutex_lock(&c->mu);
    sl_bench_progress pg = {0};
    pg.event = SL_BENCH_TRAIN;
    pg.dataset = bd->name;
    pg.entry = first->name;
    pg.seed = seed;
    emit_locked(c, &pg);
    pthread_mutex_unlock(&c->mu);
    if (atomic_load(&c->stop)) return SL_OK;

    sl_train_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    *cfg = bd->config;
    snprintf(cfg->loss, sizeof cfg->loss, "%s", loss);
    cfg->epochs *= first->budget; /* the budget study's longer runs */
    sl_status st = stretch_loss(cfg, first->budget, msg, msglen);
    if (st != SL_OK) {
        free(cfg);
        return st;
    }
    cfg->seed = seed;
    cfg->threads = 1;
    cfg->dataset = fold < 0 ? dc->ds : dc->fold[fold]; /* a fold trains and validates on its view */
    char fdir[32] = "";
    if (fold >= 0) snprintf(fdir, sizeof fdir, "/fold%d", fold);
    int n = snprintf(cfg->out_dir, sizeof cfg->out_dir, "%s/%s/%s/seed%llu%s/%s", c->dir, SLB_RUNS_DIR, bd->slug,
                     (unsigned long long)seed, fdir, first->slug);
    char ck[SL_TRAIN_TEXT + 32];
    if (n < 0 || (size_t)n >= sizeof cfg->out_dir || sl_path_join(ck, sizeof ck, cfg->out_dir, "checkpoint.bin") != SL_OK) {
        free(cfg);
        return sl_errf(msg, msglen, SL_EINVAL, "bench: the output folder's path is too long");
    }
    if ((st = sl_mkdirs(cfg->out_dir, msg, msglen)) != SL_OK) {
        free(cfg);
        return st;
    }
    cfg->resume = sl_file_exists(ck);
    cfg->force = !cfg->resume;
    /* An entry added to a finished benchmark (--resume with a grown preset)
     * whose training another entry already did: the complete trainer
     * folder (metrics.json written after model.bin) holds that model, and
     * the finished run holds its curves, so nothing trains again. */
    char done_path[SL_TRAIN_TEXT + 32];
    const int reuse = sib && !cfg->resume && sl_path_join(done_path, sizeof done_path, cfg->out_dir, "metrics.json") == SL_OK &&
                      sl_file_exists(done_path);
    double t0 = now_s();
    sl_train_result tr = SL_TRAIN_RESULT_EMPTY;
    char sub[MSG];
    if (!reuse) st = sl_train_run(cfg, &tr, on_train, &tv, sub, sizeof sub);
    double t_train = reuse ? 0 : now_s() - t0;
    sl_unet *net = NULL;
    int32_t *pred = NULL;
    slb_run *r = NULL;
    if (st == SL_ENONFINITE) {
        /* a loss that diverges is a result of the benchmark, not an error */
        for (int k = 0; k < jb->nent; k++) {
            if (!(r = calloc(1, sizeof *r))) {
                st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
                goto done;
            }
            r->dataset = d;
            r->seed = s;
            r->entry = jb->ent[k];
            r->failed = 1;
            r->seconds_train = t_train;
            snprintf(r->message, sizeof r->message, "%.500s", sub);
            char path[SL_TRAIN_TEXT + 256];
            slb_result_path(path, sizeof path, c->dir, p, d, s, jb->ent[k]);
            if ((st = slb_run_write(path, p, r, msg, msglen)) != SL_OK) goto done;
            finish_run(c, r, t_train);
            r = NULL;
        }
        st = SL_OK;
        goto done;
    }
    if (st != SL_OK) {
        st = sl_errf(msg, msglen, st, "bench: %s / %s / %s: %s", bd->name, rep, first->name, sub);
        goto done;
    }
    if (!reuse && !tr.completed) goto done; /* stopped: the checkpoint stays for --resume */
    pthread_mutex_lock(&c->mu);
    c->job_done[j] = base + jb->seed_cost;
    pthread_mutex_unlock(&c->mu);

    char path[SL_TRAIN_TEXT + 256];
    sl_path_join(path, sizeof path, cfg->out_dir, "model.bin");
    if ((st = sl_unet_load(&net, NULL, path, msg, msglen)) != SL_OK) goto done;
    sl_unet_set_threads(net, 1);
    sl_preproc pp; /* volumes: the sliding window's patch, from the run's config.json */
    memset(&pp, 0, sizeof pp);
    sl_path_join(path, sizeof path, cfg->out_dir, "config.json");
    if (dc->nd == 3 && (st = sl_preproc_load(&pp, NULL, path, msg, msglen)) != SL_OK) goto done;
    if (!(pred = sl_malloc(dc->n * dc->vox, sizeof *pred))) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
        goto done;
    }
    for (int k = 0; k < jb->nent; k++) {
        const int e = jb->ent[k];
        pthread_mutex_lock(&c->mu);
        int have = c->runs[run_index(p, d, s, e)] != NULL;
        pthread_mutex_unlock(&c->mu);
        if (have) continue;
        double te = now_s();
        if (!(r = calloc(1, sizeof *r))) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
            goto done;
        }
        const int C = dc->info.num_classes;
        r->dataset = d;
        r->seed = s;
        r->entry = e;
        r->num_classes = C;
        r->small_class = dc->info.small_class;
        r->fraction = dc->fraction;
        r->n_cases = dc->n;
        r->nepochs = reuse ? sib->nepochs : tr.nrows;
        r->noverlays = dc->noverlays;
        r->num_params = reuse ? sib->num_params : tr.num_params;
        r->seconds_train = t_train;
        if (slb_run_alloc(r) != SL_OK) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
            goto done;
        }
        for (int cl = 1; cl < C; cl++)
            if (!(r->class_names[cl] = strdup(reuse ? sib->class_names[cl] : tr.class_names[cl]))) {
                st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
                goto done;
            }
        if (reuse) {
            memcpy(r->curve_loss, sib->curve_loss, (size_t)r->nepochs * sizeof *r->curve_loss);
            memcpy(r->curve_val, sib->curve_val, (size_t)(r->nepochs * C) * sizeof *r->curve_val);
        } else
            for (int64_t ep = 0; ep < tr.nrows; ep++) {
                r->curve_loss[ep] = tr.log[ep].loss;
                double sum = 0;
                for (int cl = 1; cl < C; cl++) {
                    r->curve_val[ep * C + cl] = tr.log[ep].val_dice[cl];
                    sum += tr.log[ep].val_dice[cl];
                }
                r->curve_val[ep * C] = sum / (C - 1);
            }
        if ((st = evaluate(c, d, e, net, &pp, cfg->batch_size, r, pred, sub, sizeof sub)) != SL_OK) {
            st = sl_errf(msg, msglen, st, "bench: evaluating %s / %s / %s: %s", bd->name, rep, p->entries[e].name, sub);
            goto done;
        }
        r->seconds_eval = now_s() - te;
        slb_result_path(path, sizeof path, c->dir, p, d, s, e);
        if ((st = slb_run_write(path, p, r, msg, msglen)) != SL_OK) goto done;
        finish_run(c, r, t_train + r->seconds_eval);
        r = NULL;
        t_train = 0; /* the shared training counts once */
    }
done:
    if (r) {
        slb_run_free(r);
        free(r);
    }
    free(pred);
    sl_unet_free(net);
    sl_train_result_free(&tr);
    free(cfg);
    return st;
}

/* The runner's side of a search's training (search.h): the progress of
 * job j under `label`, the stop, then the trainer. */
typedef struct search_hook {
    ctx *c;
    int j;
} search_hook;

static sl_status search_train(void *user, const sl_train_config *cfg, const char *label, double base, double part, sl_train_result *tr,
                              char *msg, size_t msglen)
{
    const search_hook *h = user;
    ctx *c = h->c;
    const sl_bench_preset *p = c->p;
    train_view tv = {c, h->j, p->datasets[c->jobs[h->j].d].name, label, p->seeds[0], base, part};
    sl_bench_progress pg = {0};
    pg.event = SL_BENCH_TRAIN;
    pg.dataset = tv.dataset;
    pg.entry = label;
    pg.seed = tv.seed;
    pthread_mutex_lock(&c->mu);
    emit_locked(c, &pg);
    pthread_mutex_unlock(&c->mu);
    if (atomic_load(&c->stop)) return SL_OK; /* tr->completed = 0: stopped */
    const int factor = p->entries[c->jobs[h->j].ent[0]].budget; /* cfg's epochs have it already */
    if (factor == 1) return sl_train_run(cfg, tr, on_train, &tv, msg, msglen);
    sl_train_config *own = malloc(sizeof *own);
    if (!own) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    *own = *cfg;
    sl_status st = stretch_loss(own, factor, msg, msglen);
    if (st == SL_OK) st = sl_train_run(own, tr, on_train, &tv, msg, msglen);
    free(own);
    return st;
}

/* Job j: one training and its entries; for a searched entry, the search
 * (continued or read back from its file), then a run per seed with the
 * chosen spec. */
static sl_status run_job(ctx *c, int j, char *msg, size_t msglen)
{
    const sl_bench_preset *p = c->p;
    const job *jb = &c->jobs[j];
    const int e = jb->ent[0];
    if (!jb->search) return run_seed(c, j, jb->s, p->entries[e].loss, msg, msglen);
    int todo = 0;
    pthread_mutex_lock(&c->mu);
    for (int s = 0; s < slb_nreps(p); s++) todo += c->runs[run_index(p, jb->d, s, e)] == NULL;
    pthread_mutex_unlock(&c->mu);
    if (!todo) return SL_OK;
    sl_train_config *cfg = malloc(sizeof *cfg);
    slb_search_outcome *o = malloc(sizeof *o);
    sl_status st = SL_OK;
    if (!cfg || !o) st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    if (st == SL_OK) {
        *cfg = p->datasets[jb->d].config;
        cfg->epochs *= p->entries[e].budget;
        cfg->seed = p->seeds[0];
        cfg->threads = 1;
        cfg->dataset = c->dsc[jb->d].ds;
        search_hook h = {c, j};
        slb_search_job sj = {p, c->dir, jb->d, e, cfg, jb->seed_cost / (double)cfg->epochs, search_train, &h};
        st = slb_search_run(&sj, o, msg, msglen);
    }
    for (int s = 0; st == SL_OK && o->done && s < slb_nreps(p) && !atomic_load(&c->stop); s++) st = run_seed(c, j, s, o->spec, msg, msglen);
    free(cfg);
    free(o);
    return st;
}

/* ------------------------------------------------------------- ensembles */

/* Adds the mean softmax of one member model over the test split of dc to
 * acc (n, C, vox): slices as the job's evaluation predicts them, volumes
 * by sliding windows as segloss predict does (the cached volumes are
 * normalised already). */
static sl_status ensemble_add(const ds_cache *dc, sl_unet *net, const sl_preproc *pp, const sl_predict_opts *po, float *pr,
                              double *acc, char *msg, size_t msglen)
{
    const int64_t C = dc->info.num_classes, n = dc->n, vox = dc->vox;
    sl_status st = SL_OK;
    if (dc->nd == 2) {
        if ((st = sl_predict_slices(net, dc->img, n, dc->H, dc->W, po, pr, NULL, msg, msglen)) != SL_OK) return st;
        for (int64_t i = 0; i < n * C * vox; i++) acc[i] += pr[i];
        return SL_OK;
    }
    sl_preproc q = *pp;
    q.norm = SL_INTENSITY_NONE;
    for (int64_t i = 0; i < n && st == SL_OK; i++) {
        sl_array img = {SL_DT_F32, 3, {dc->D, dc->H, dc->W}, dc->img + i * vox}, lab = SL_ARRAY_EMPTY, pa = SL_ARRAY_EMPTY;
        if ((st = sl_predict_image_probs(net, &q, &img, po, &lab, &pa, msg, msglen)) == SL_OK) {
            const float *v = pa.data;
            for (int64_t k = 0; k < C * vox; k++) acc[i * C * vox + k] += v[k];
        }
        sl_array_free(&lab);
        sl_array_free(&pa);
    }
    return st;
}

/* The members' curves (mean over them) and sizes into r. */
static sl_status ensemble_run_init(ctx *c, int d, int src, slb_run *r)
{
    const sl_bench_preset *p = c->p;
    const ds_cache *dc = &c->dsc[d];
    const int R = slb_nreps(p), C = dc->info.num_classes;
    const slb_run *m0 = c->runs[run_index(p, d, 0, src)];
    r->num_classes = C;
    r->small_class = dc->info.small_class;
    r->fraction = dc->fraction;
    r->n_cases = dc->n;
    r->nepochs = m0->nepochs;
    for (int k = 1; k < R; k++)
        if (c->runs[run_index(p, d, k, src)]->nepochs < r->nepochs) r->nepochs = c->runs[run_index(p, d, k, src)]->nepochs;
    r->noverlays = dc->noverlays;
    r->num_params = m0->num_params;
    if (slb_run_alloc(r) != SL_OK) return SL_ENOMEM;
    for (int cl = 1; cl < C; cl++)
        if (!(r->class_names[cl] = strdup(m0->class_names[cl]))) return SL_ENOMEM;
    for (int64_t i = 0; i < r->nepochs; i++) {
        for (int k = 0; k < R; k++) {
            const slb_run *m = c->runs[run_index(p, d, k, src)];
            r->curve_loss[i] += m->curve_loss[i] / R;
            for (int cl = 0; cl < C; cl++) r->curve_val[i * C + cl] += m->curve_val[i * C + cl] / R;
        }
    }
    return SL_OK;
}

/* Ensemble entry e on data set d: the mean softmax of the models of every
 * seed and fold of its source entry, its argmax scored on the test split.
 * The run is stored in every replicate's slot (bench_internal.h). */
static sl_status run_ensemble(ctx *c, int d, int e, char *msg, size_t msglen)
{
    char sub[MSG] = "";
    const sl_bench_preset *p = c->p;
    const ds_cache *dc = &c->dsc[d];
    const int R = slb_nreps(p), src = slb_ensemble_source(p, e);
    const int64_t C = dc->info.num_classes, N = dc->n * C * dc->vox;
    const double t0 = now_s();
    slb_run *r = calloc(1, sizeof *r);
    double *acc = NULL;
    float *pr = NULL;
    int32_t *pred = NULL;
    sl_unet *net = NULL;
    sl_status st = SL_OK;
    if (!r) return sl_errf(sub, sizeof sub, SL_ENOMEM, "bench: out of memory");
    r->dataset = d;
    r->entry = e;
    for (int k = 0; k < R && !r->failed; k++) /* a diverged member: the ensemble fails with it */
        if (c->runs[run_index(p, d, k, src)]->failed) {
            r->failed = 1;
            snprintf(r->message, sizeof r->message, "a training of the ensemble failed (seed %llu): %.400s",
                     (unsigned long long)slb_rep_seed(p, k), c->runs[run_index(p, d, k, src)]->message);
        }
    if (r->failed) goto write;
    if (ensemble_run_init(c, d, src, r) != SL_OK || !(acc = sl_calloc(N, sizeof *acc)) || !(pr = sl_malloc(N, sizeof *pr)) ||
        !(pred = sl_malloc(dc->n * dc->vox, sizeof *pred))) {
        st = sl_errf(sub, sizeof sub, SL_ENOMEM, "bench: out of memory");
        goto done;
    }
    sl_predict_opts po = SL_PREDICT_OPTS_DEFAULT;
    po.tta = p->entries[e].tta ? SL_TTA_FLIP : SL_TTA_NONE;
    po.threads = 1;
    po.batch = p->datasets[d].config.batch_size;
    for (int k = 0; k < R; k++) {
        char dir[SL_TRAIN_TEXT + 256], path[SL_TRAIN_TEXT + 300], fdir[32] = "";
        if (p->nfolds) snprintf(fdir, sizeof fdir, "/fold%d", slb_rep_fold(p, k));
        snprintf(dir, sizeof dir, "%s/%s/%s/seed%llu%s/%s", c->dir, SLB_RUNS_DIR, p->datasets[d].slug,
                 (unsigned long long)slb_rep_seed(p, k), fdir, p->entries[src].slug);
        sl_preproc pp;
        memset(&pp, 0, sizeof pp);
        sl_path_join(path, sizeof path, dir, "model.bin");
        if ((st = sl_unet_load(&net, NULL, path, sub, sizeof sub)) != SL_OK) goto done;
        sl_unet_set_threads(net, 1);
        sl_path_join(path, sizeof path, dir, "config.json");
        if (dc->nd == 3 && (st = sl_preproc_load(&pp, NULL, path, sub, sizeof sub)) != SL_OK) goto done;
        if ((st = ensemble_add(dc, net, &pp, &po, pr, acc, sub, sizeof sub)) != SL_OK) goto done;
        sl_unet_free(net);
        net = NULL;
    }
    /* the mean rounded once, as sl_predict_ensemble (segloss predict) rounds it */
    for (int64_t i = 0; i < N; i++) pr[i] = (float)(acc[i] / R);
    slt_argmax(pr, dc->n, C, dc->vox, pred);
    if ((st = score(c, d, e, r, pred, sub, sizeof sub)) != SL_OK) goto done;
    r->seconds_eval = now_s() - t0;
write:;
    char path[SL_TRAIN_TEXT + 256];
    slb_result_path(path, sizeof path, c->dir, p, d, 0, e);
    if ((st = slb_run_write(path, p, r, sub, sizeof sub)) != SL_OK) goto done;
    finish_run(c, r, r->seconds_eval);
    pthread_mutex_lock(&c->mu);
    for (int k = 1; k < R; k++) c->runs[run_index(p, d, k, e)] = r;
    c->runs_done += R - 1;
    pthread_mutex_unlock(&c->mu);
    r = NULL;
done:
    if (r) {
        slb_run_free(r);
        free(r);
    }
    sl_unet_free(net);
    free(acc);
    free(pr);
    free(pred);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "bench: ensemble %s / %s: %s", p->datasets[d].name, p->entries[e].name, sub);
    return SL_OK;
}

/* Every ensemble run without a result whose member trainings all have
 * one (a stopped call leaves the others for later). */
static sl_status run_ensembles(ctx *c, char *msg, size_t msglen)
{
    const sl_bench_preset *p = c->p;
    for (int d = 0; d < p->ndatasets; d++)
        for (int e = 0; e < p->nentries; e++) {
            if (!p->entries[e].ensemble || c->runs[run_index(p, d, 0, e)]) continue;
            const int src = slb_ensemble_source(p, e);
            int ready = 1;
            for (int k = 0; k < slb_nreps(p); k++) ready &= c->runs[run_index(p, d, k, src)] != NULL;
            if (!ready || atomic_load(&c->stop)) continue;
            sl_status st = run_ensemble(c, d, e, msg, msglen);
            if (st != SL_OK) return st;
        }
    return SL_OK;
}

static void *worker(void *arg)
{
    ctx *c = arg;
    char msg[MSG];
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int j = atomic_load(&c->stop) ? c->njobs : c->next_job++;
        pthread_mutex_unlock(&c->mu);
        if (j >= c->njobs) break;
        sl_status st = run_job(c, j, msg, sizeof msg);
        if (st != SL_OK) {
            pthread_mutex_lock(&c->mu);
            fail_locked(c, st, msg);
            pthread_mutex_unlock(&c->mu);
            break;
        }
    }
    return NULL;
}

/* A job's cost (steps x batch x pixels, vox pixels a sample) for entry e:
 * one training, or a search and one training per seed. */
static void set_job_cost(const sl_bench_preset *p, job *jb, int e, double vox)
{
    const sl_bench_entry *en = &p->entries[e];
    const sl_train_config *cf = &p->datasets[jb->d].config;
    const double epoch = (double)cf->steps_per_epoch * (double)cf->batch_size * vox;
    jb->seed_cost = epoch * (double)cf->epochs * (double)en->budget;
    jb->cost = jb->seed_cost;
    if (en->search) jb->cost = jb->seed_cost * slb_nreps(p) + epoch * slb_search_epochs(en->search, cf->epochs * en->budget);
}

static sl_status build_jobs(ctx *c)
{
    const sl_bench_preset *p = c->p;
    const int E = p->nentries;
    c->jobs = calloc((size_t)p->ndatasets * slb_nreps(p) * E, sizeof *c->jobs);
    int *used = calloc((size_t)E, sizeof *used);
    if (!c->jobs || !used) {
        free(used);
        return SL_ENOMEM;
    }
    for (int d = 0; d < p->ndatasets; d++) {
        /* without the data sets (counting tasks) every pixel counts 1 */
        const double vox = c->dsc ? (double)c->dsc[d].vox : 1.0;
        for (int s = 0; s < slb_nreps(p); s++) { /* seeds, and folds within a seed */
            memset(used, 0, (size_t)E * sizeof *used);
            for (int e = 0; e < E; e++) {
                /* ensembles train nothing (run_ensembles); a searched entry is one job for every
                 * seed, where its first seed's would be */
                if (used[e] || p->entries[e].ensemble || (p->entries[e].search && s > 0)) continue;
                job *jb = &c->jobs[c->njobs++];
                jb->d = d;
                jb->s = s;
                jb->search = p->entries[e].search != NULL;
                set_job_cost(p, jb, e, vox);
                if (!(jb->ent = calloc((size_t)E, sizeof *jb->ent))) {
                    free(used);
                    return SL_ENOMEM;
                }
                if (jb->search) {
                    used[e] = 1;
                    jb->ent[jb->nent++] = e;
                    continue;
                }
                for (int k = e; k < E; k++)
                    if (!used[k] && !p->entries[k].search && !p->entries[k].ensemble && !strcmp(p->entries[k].loss, p->entries[e].loss) &&
                        p->entries[k].budget == p->entries[e].budget) {
                        used[k] = 1;
                        jb->ent[jb->nent++] = k;
                    }
            }
        }
    }
    free(used);
    return SL_OK;
}

/* ------------------------------------------------------------ the folder */

static int is_empty_dir(const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh) return 1;
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(dh)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, SL_LOCK_FILE)) {
            empty = 0;
            break;
        }
    closedir(dh);
    return empty;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes what a benchmark writes in dir, and nothing else. */
static sl_status remove_benchmark(const char *dir, char *msg, size_t msglen)
{
    static const char *const trees[] = {SLB_RESULTS_DIR, SLB_RUNS_DIR, SLB_OVERLAY_DIR};
    static const char *const files[] = {"results.csv", "summary.csv", "results.json", "report.md", "report.html", SLB_PRESET_FILE};
    char path[SL_TRAIN_TEXT + 64];
    for (size_t i = 0; i < sizeof trees / sizeof *trees; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, trees[i]);
        if (sl_file_exists(path) && nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            return sl_errf(msg, msglen, SL_EIO, "bench: cannot remove %s: %s", path, strerror(errno));
    }
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (remove(path) != 0 && errno != ENOENT)
            return sl_errf(msg, msglen, SL_EIO, "bench: cannot remove %s: %s", path, strerror(errno));
    }
    return SL_OK;
}

/* Whether a benchmark started with preset `saved` can go on with `mine`:
 * everything a result depends on must be equal (seeds, data sets,
 * training, evaluation); the list of entries may grow or shrink, but an
 * entry kept under its name must keep its definition. So a finished
 * benchmark can be extended with new losses (or a budget study) without training the old ones
 * again. Returns 0 when compatible, else 1 with the difference in diff.
 * Both trees are changed. */
static int preset_differs(cJSON *saved, cJSON *mine, char *diff, size_t difflen)
{
    cJSON *ls = cJSON_DetachItemFromObjectCaseSensitive(saved, "losses");
    cJSON *lm = cJSON_DetachItemFromObjectCaseSensitive(mine, "losses");
    cJSON_DeleteItemFromObjectCaseSensitive(saved, "description");
    cJSON_DeleteItemFromObjectCaseSensitive(mine, "description");
    /* a budget study only adds entries ("NAME @4x"), which the entry check
     * below covers: a finished benchmark can grow one */
    cJSON_DeleteItemFromObjectCaseSensitive(saved, "budget_study");
    cJSON_DeleteItemFromObjectCaseSensitive(mine, "budget_study");
    int differs = !cJSON_IsArray(ls) || !cJSON_IsArray(lm) || slt_config_diff(saved, mine, "", diff, difflen);
    const cJSON *a, *b;
    if (!differs) cJSON_ArrayForEach(a, ls)
        {
            const cJSON *na = cJSON_GetObjectItemCaseSensitive(a, "name");
            cJSON_ArrayForEach(b, lm)
            {
                const cJSON *nb = cJSON_GetObjectItemCaseSensitive(b, "name");
                if (cJSON_IsString(na) && cJSON_IsString(nb) && !strcmp(na->valuestring, nb->valuestring) &&
                    slt_config_diff(a, b, "", diff, difflen)) {
                    char d2[400];
                    snprintf(d2, sizeof d2, "entry '%.60s' changed: %.300s", na->valuestring, diff);
                    snprintf(diff, difflen, "%s", d2);
                    differs = 1;
                }
            }
            if (differs) break;
        }
    cJSON_Delete(ls);
    cJSON_Delete(lm);
    return differs;
}

/* A fresh benchmark in DIR: its preset.json and results folder. */
static sl_status start_fresh(const sl_bench_preset *p, const char *dir, char *msg, size_t msglen)
{
    char path[SL_TRAIN_TEXT + 64];
    snprintf(path, sizeof path, "%s/%s", dir, SLB_PRESET_FILE);
    sl_status st = sl_out_write_file(path, p->json, strlen(p->json), msg, msglen);
    if (st != SL_OK) return st;
    snprintf(path, sizeof path, "%s/%s", dir, SLB_RESULTS_DIR);
    return sl_mkdirs(path, msg, msglen);
}

/* Checks DIR against the options and leaves it ready: *fresh = 1 when it
 * holds no earlier results. With force and an earlier benchmark, *replace
 * = 1 and nothing is removed yet: the caller replaces the old benchmark
 * (remove_benchmark, start_fresh) once the data sets have opened. */
static sl_status prepare_dir(const sl_bench_preset *p, const sl_bench_opts *o, int *fresh, int *replace, char *msg, size_t msglen)
{
    const char *dir = o->out_dir;
    char path[SL_TRAIN_TEXT + 64];
    if (sl_path_join(path, sizeof path, dir, SLB_PRESET_FILE) != SL_OK) return sl_errf(msg, msglen, SL_EINVAL, "bench: output path too long");
    int have = sl_file_exists(path);
    *fresh = 0;
    if (!have) {
        if (o->report_only) return sl_errf(msg, msglen, SL_EBADSTATE, "bench: %s holds no benchmark to report on", dir);
        if (!is_empty_dir(dir))
            return sl_errf(msg, msglen, SL_EBADSTATE, "bench: %s is not empty and holds no segloss benchmark; choose another --out", dir);
    } else if (o->force) {
        *replace = 1;
        *fresh = 1;
        return SL_OK;
    } else if (!o->resume && !o->report_only) {
        return sl_errf(msg, msglen, SL_EBADSTATE, "bench: %s holds a benchmark; --resume continues it, --force replaces it", dir);
    } else {
        unsigned char *data;
        size_t len;
        sl_status st = sl_file_read(path, &data, &len, msg, msglen);
        if (st != SL_OK) return st;
        const int same = len == strlen(p->json) && !memcmp(data, p->json, len);
        cJSON *saved = cJSON_Parse((const char *)data), *mine = cJSON_Parse(p->json);
        free(data);
        char diff[400] = "";
        int differs = !saved || !mine || preset_differs(saved, mine, diff, sizeof diff);
        cJSON_Delete(saved);
        cJSON_Delete(mine);
        if (differs)
            return sl_errf(msg, msglen, SL_EBADSTATE, "bench: %s was started with another preset (%s); --force replaces it", dir,
                           diff[0] ? diff : "unreadable preset.json");
        /* entries added or removed: the folder's preset becomes this one */
        if (!same && !o->report_only && (st = sl_out_write_file(path, p->json, strlen(p->json), msg, msglen)) != SL_OK) return st;
    }
    if (!have) {
        *fresh = 1;
        return start_fresh(p, dir, msg, msglen);
    }
    snprintf(path, sizeof path, "%s/%s", dir, SLB_RESULTS_DIR);
    return sl_mkdirs(path, msg, msglen);
}

/* ----------------------------------------------------------------- report */

static sl_status write_report(ctx *c, double seconds, double cpu, sl_bench_outcome *out, char *msg, size_t msglen)
{
    slb_tables t;
    sl_status st = slb_tables_build(c->p, c->runs, &t, msg, msglen);
    if (st != SL_OK) return st;
    slb_search_outcome **search = NULL;
    if ((st = slb_search_load_all(c->p, c->dir, &search, msg, msglen)) != SL_OK) {
        slb_tables_free(&t);
        return st;
    }
    slb_report rep = {c->p, c->runs, &t, c->dir, seconds, cpu, search};
    if ((st = slb_write_csv(&rep, msg, msglen)) == SL_OK && (st = slb_write_json(&rep, msg, msglen)) == SL_OK &&
        (st = slb_write_markdown(&rep, msg, msglen)) == SL_OK && (st = slb_write_html(&rep, msg, msglen)) == SL_OK && out) {
        slb_str s = {0};
        slb_ranking_text(&rep, &s);
        if (s.failed) {
            slb_str_free(&s);
            st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
        } else {
            out->ranking = s.p;
        }
    }
    slb_tables_free(&t);
    slb_search_free_all(c->p, search);
    return st;
}

void sl_bench_outcome_free(sl_bench_outcome *o)
{
    if (!o) return;
    free(o->ranking);
    sl_bench_outcome empty = SL_BENCH_OUTCOME_EMPTY;
    *o = empty;
}

/* ------------------------------------------------------------------ tasks */

static void free_jobs(ctx *c)
{
    if (c->jobs)
        for (int j = 0; j < c->njobs; j++) free(c->jobs[j].ent);
    free(c->jobs);
    c->jobs = NULL;
    c->njobs = 0;
}

int64_t sl_bench_num_tasks(const sl_bench_preset *p)
{
    if (!p) return 0;
    ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    int64_t n = build_jobs(&c) == SL_OK ? c.njobs : 0;
    free_jobs(&c);
    return n;
}

/* A run's shared state, empty but for what the call was given. */
static void ctx_init(ctx *c, const sl_bench_preset *p, const sl_bench_opts *o, sl_bench_callback cb, void *user,
                     double t0)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    c->dir = o->out_dir;
    c->cb = cb;
    c->user = user;
    c->t0 = t0;
    c->runs_total = sl_bench_num_runs(p);
    atomic_init(&c->stop, 0);
    pthread_mutex_init(&c->mu, NULL);
}

/* Task o->run alone (bench.h, "Tasks"). The tasks of one benchmark run at
 * once, on other machines too, so DIR's lock is held only while the folder
 * is checked or started; the training's own folder is locked by the
 * trainer, each task writes only its own runs' result files, and the task
 * that trains a data set's first job writes that data set's overlays. */
static sl_status run_task(const sl_bench_preset *p, const sl_bench_opts *o, sl_bench_callback cb, void *user, sl_bench_outcome *out,
                          char *msg, size_t msglen)
{
    const double t0 = now_s(), cpu0 = cpu_s();
    ctx c;
    ctx_init(&c, p, o, cb, user, t0);
    sl_status st = SL_OK;
    int lock_fd = -1, done_runs = 0;
    if (build_jobs(&c) != SL_OK) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
        goto done;
    }
    if (o->run < 0 || o->run >= c.njobs) {
        st = sl_errf(msg, msglen, SL_EINVAL, "bench: task %lld is out of range: preset '%s' has %d tasks (0 to %d)", (long long)o->run,
                     p->name, c.njobs, c.njobs - 1);
        goto done;
    }
    const int k = (int)o->run;
    const job *jb = &c.jobs[k];
    if ((st = sl_mkdirs(c.dir, msg, msglen)) != SL_OK) goto done;
    /* DIR's lock, waiting (up to ten minutes) for a task that checks or
     * starts the folder at the same moment */
    for (int tries = 0;; tries++) {
        st = sl_dir_lock(c.dir, &lock_fd, msg, msglen);
        if (st != SL_EBADSTATE || tries >= 6000) break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (st != SL_OK) goto done;
    sl_bench_opts po = *o;
    po.resume = 1; /* a started folder must hold this preset */
    int fresh = 0, replace = 0;
    st = prepare_dir(p, &po, &fresh, &replace, msg, msglen);
    sl_dir_unlock(lock_fd, NULL);
    lock_fd = -1;
    if (st != SL_OK) goto done;
    if (!(c.runs = calloc((size_t)c.runs_total, sizeof *c.runs))) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
        goto done;
    }
    /* a searched entry's task holds every seed's run */
    const int s0 = jb->search ? 0 : jb->s, s1 = jb->search ? slb_nreps(p) : jb->s + 1, task_runs = jb->nent * (s1 - s0);
    for (int s = s0; s < s1; s++)
        for (int i = 0; i < jb->nent; i++) {
            char path[SL_TRAIN_TEXT + 256];
            slb_result_path(path, sizeof path, c.dir, p, jb->d, s, jb->ent[i]);
            if (!sl_file_exists(path)) continue;
            slb_run *r = calloc(1, sizeof *r);
            if (!r) {
                st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
                goto done;
            }
            if ((st = slb_run_read(path, p, jb->d, s, jb->ent[i], r, msg, msglen)) != SL_OK) {
                free(r);
                goto done;
            }
            c.runs[run_index(p, jb->d, s, jb->ent[i])] = r;
            c.runs_done++;
            c.runs_failed += r->failed;
        }
    c.runs_resumed = c.runs_done;
    done_runs = (int)c.runs_done;
    if (done_runs < task_runs) {
        if (!(c.dsc = calloc((size_t)p->ndatasets, sizeof *c.dsc)) || !(c.job_done = calloc((size_t)c.njobs, sizeof *c.job_done))) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
            goto done;
        }
        if ((st = open_dataset(&c, jb->d, 1, msg, msglen)) != SL_OK) goto done;
        if ((st = sl_nn_blas_reserve(1, msg, msglen)) != SL_OK) goto done;
        int first = 0;
        while (c.jobs[first].d != jb->d) first++;
        if (first == k) {
            if ((st = write_case_overlays(&c, jb->d, msg, msglen)) != SL_OK) goto done;
            if (p->nfolds && (st = slb_write_folds(c.dir, p, jb->d, c.dsc[jb->d].ds, msg, msglen)) != SL_OK) goto done;
        } else { /* the folder this task's overlays go to */
            char path[SL_TRAIN_TEXT + 256];
            snprintf(path, sizeof path, "%s/%s/%s", c.dir, SLB_OVERLAY_DIR, p->datasets[jb->d].slug);
            if ((st = sl_mkdirs(path, msg, msglen)) != SL_OK) goto done;
        }
        set_job_cost(p, &c.jobs[k], jb->ent[0], (double)c.dsc[jb->d].vox);
        c.cost_total = c.jobs[k].cost;
        sl_bench_progress pg = {0};
        pg.event = SL_BENCH_START;
        pthread_mutex_lock(&c.mu);
        emit_locked(&c, &pg);
        pthread_mutex_unlock(&c.mu);
#ifdef OPENBLAS_VERSION
        const int blas_prev = openblas_get_num_threads();
        openblas_set_num_threads(1);
#endif
        st = run_job(&c, k, msg, msglen);
#ifdef OPENBLAS_VERSION
        if (blas_prev > 1) openblas_set_num_threads(blas_prev);
#endif
        if (st != SL_OK) goto done;
        done_runs = 0;
        for (int s = s0; s < s1; s++)
            for (int i = 0; i < jb->nent; i++) done_runs += c.runs[run_index(p, jb->d, s, jb->ent[i])] != NULL;
    }
    if (out) out->completed = done_runs == task_runs;
done:
    if (lock_fd >= 0) sl_dir_unlock(lock_fd, NULL);
    if (out) {
        out->runs = c.runs_total;
        out->runs_done = c.runs_done;
        out->runs_resumed = c.runs_resumed;
        out->runs_failed = c.runs_failed;
        out->seconds = now_s() - t0;
        out->cpu_seconds = cpu_s() - cpu0;
    }
    free_caches(&c);
    free_jobs(&c);
    free(c.job_done);
    if (c.runs)
        for (int64_t i = 0; i < c.runs_total; i++) {
            if (!slb_rep_listed(p, (int)(i % p->nentries), (int)(i / p->nentries % slb_nreps(p)))) continue; /* aliases */
            slb_run_free(c.runs[i]);
            free(c.runs[i]);
        }
    free(c.runs);
    pthread_mutex_destroy(&c.mu);
    return st;
}

sl_status sl_bench_run(const sl_bench_preset *p, const sl_bench_opts *o, sl_bench_callback cb, void *user, sl_bench_outcome *out,
                       char *msg, size_t msglen)
{
    if (out) {
        sl_bench_outcome empty = SL_BENCH_OUTCOME_EMPTY;
        *out = empty;
    }
    if (!p || !o || !o->out_dir || !o->out_dir[0]) return sl_errf(msg, msglen, SL_EINVAL, "bench: NULL preset, options or output folder");
    if (o->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "bench: threads must be >= 0");
    if ((o->resume != 0) + (o->force != 0) + (o->report_only != 0) > 1)
        return sl_errf(msg, msglen, SL_EINVAL, "bench: resume, force and report_only exclude each other");
    if (strlen(o->out_dir) > SL_TRAIN_TEXT - 512) return sl_errf(msg, msglen, SL_EINVAL, "bench: the output folder's path is too long");
    if (o->run_only) {
        if (o->resume || o->force || o->report_only)
            return sl_errf(msg, msglen, SL_EINVAL, "bench: a single task (run_only) excludes resume, force and report_only");
        return run_task(p, o, cb, user, out, msg, msglen);
    }
    const double t0 = now_s(), cpu0 = cpu_s();
    ctx c;
    ctx_init(&c, p, o, cb, user, t0);
    int fresh = 0, replace = 0, lock_fd = -1;
    /* the folder and its lock first, held to the end of the call */
    const int created = !sl_file_exists(c.dir);
    sl_status st = sl_mkdirs(c.dir, msg, msglen);
    if (st != SL_OK) goto done;
    if ((st = sl_dir_lock(c.dir, &lock_fd, msg, msglen)) != SL_OK) goto done;
    if ((st = prepare_dir(p, o, &fresh, &replace, msg, msglen)) != SL_OK) goto done;
    if (!(c.runs = calloc((size_t)c.runs_total, sizeof *c.runs))) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
        goto done;
    }
    if (!fresh) {
        char path[SL_TRAIN_TEXT + 256];
        for (int d = 0; d < p->ndatasets; d++)
            for (int s = 0; s < slb_nreps(p); s++)
                for (int e = 0; e < p->nentries; e++) {
                    if (!slb_rep_listed(p, e, s)) continue; /* an ensemble's one file, read at replicate 0 */
                    slb_result_path(path, sizeof path, c.dir, p, d, s, e);
                    if (!sl_file_exists(path)) continue;
                    slb_run *r = calloc(1, sizeof *r);
                    if (!r) {
                        st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
                        goto done;
                    }
                    if ((st = slb_run_read(path, p, d, s, e, r, msg, msglen)) != SL_OK) {
                        free(r);
                        goto done;
                    }
                    const int copies = p->entries[e].ensemble ? slb_nreps(p) : 1;
                    for (int k = 0; k < copies; k++) c.runs[run_index(p, d, s + k, e)] = r;
                    c.runs_done += copies;
                    c.runs_failed += r->failed;
                }
    }
    c.runs_resumed = c.runs_done;
    /* report_only needs every training; ensembles it may still evaluate */
    int64_t untrained = 0, trained_total = 0;
    for (int64_t i = 0; i < c.runs_total; i++)
        if (!p->entries[i % p->nentries].ensemble) {
            trained_total++;
            untrained += c.runs[i] == NULL;
        }
    if (o->report_only && untrained) {
        st = sl_errf(msg, msglen, SL_EBADSTATE, "bench: %lld of %lld runs in %s have no result; finish them with --resume",
                     (long long)untrained, (long long)trained_total, c.dir);
        goto done;
    }
    if (c.runs_done < c.runs_total) {
        const int threads = sl_threads(o->threads);
        if (!(c.dsc = calloc((size_t)p->ndatasets, sizeof *c.dsc))) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
            goto done;
        }
        for (int d = 0; d < p->ndatasets; d++)
            if ((st = open_dataset(&c, d, threads, msg, msglen)) != SL_OK) goto done;
        /* the workers call sgemm from up to `threads` threads at once:
         * OpenBLAS's per-thread buffers must fit for all of them, or the
         * run fails here with one line instead of spinning in OpenBLAS's
         * retry (and before --force has removed anything) */
        if ((st = sl_nn_blas_reserve(threads, msg, msglen)) != SL_OK) goto done;
        /* force: every check has passed and the data is open; only now
         * does the old benchmark go */
        if (replace) {
            if ((st = remove_benchmark(c.dir, msg, msglen)) != SL_OK) goto done;
            if ((st = start_fresh(p, c.dir, msg, msglen)) != SL_OK) goto done;
            replace = 0;
        }
        for (int d = 0; d < p->ndatasets; d++)
            if ((st = write_case_overlays(&c, d, msg, msglen)) != SL_OK ||
                (p->nfolds && (st = slb_write_folds(c.dir, p, d, c.dsc[d].ds, msg, msglen)) != SL_OK))
                goto done;
        if (build_jobs(&c) != SL_OK || !(c.job_done = calloc((size_t)c.njobs, sizeof *c.job_done))) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
            goto done;
        }
        /* what this call trains: jobs with a run left */
        for (int j = 0; j < c.njobs; j++) {
            int todo = 0;
            const job *jb = &c.jobs[j];
            for (int s = jb->search ? 0 : jb->s; s < (jb->search ? slb_nreps(p) : jb->s + 1); s++)
                for (int k = 0; k < jb->nent; k++) todo += c.runs[run_index(p, jb->d, s, jb->ent[k])] == NULL;
            if (todo) c.cost_total += c.jobs[j].cost;
        }
        sl_bench_progress pg = {0};
        pg.event = SL_BENCH_START;
        pthread_mutex_lock(&c.mu);
        emit_locked(&c, &pg);
        pthread_mutex_unlock(&c.mu);
#ifdef OPENBLAS_VERSION
        const int blas_prev = openblas_get_num_threads();
        openblas_set_num_threads(1);
#endif
        int nw = threads < c.njobs ? threads : c.njobs;
        pthread_t *tid = calloc((size_t)(nw > 0 ? nw : 1), sizeof *tid);
        int started = 0;
        if (tid && nw > 1)
            for (; started < nw; started++)
                if (pthread_create(&tid[started], NULL, worker, &c) != 0) break;
        if (started == 0) worker(&c); /* one thread, or none could start: this one works */
        for (int k = 0; k < started; k++) pthread_join(tid[k], NULL);
        free(tid);
#ifdef OPENBLAS_VERSION
        if (blas_prev > 1) openblas_set_num_threads(blas_prev);
#endif
        if (c.err != SL_OK) {
            st = sl_errf(msg, msglen, c.err, "%s", c.errmsg);
            goto done;
        }
        /* the ensembles of finished trainings (inference only, this thread) */
        if ((st = run_ensembles(&c, msg, msglen)) != SL_OK) goto done;
        if (c.runs_done < c.runs_total) { /* stopped by the callback */
            st = SL_OK;
            goto done;
        }
    }
    {
        sl_bench_progress pg = {0};
        pg.event = SL_BENCH_REPORT;
        pthread_mutex_lock(&c.mu);
        emit_locked(&c, &pg);
        pthread_mutex_unlock(&c.mu);
    }
    /* the report states the time of the call that trained; a call that only
     * reads results (resume of a finished benchmark, report_only) has none */
    if (c.runs_resumed == c.runs_total) st = write_report(&c, NAN, NAN, out, msg, msglen);
    else st = write_report(&c, now_s() - t0, cpu_s() - cpu0, out, msg, msglen);
    if (st == SL_OK && out) out->completed = 1;
done:
    if (out) {
        out->runs = c.runs_total;
        out->runs_done = c.runs_done;
        out->runs_resumed = c.runs_resumed;
        out->runs_failed = c.runs_failed;
        out->seconds = now_s() - t0;
        out->cpu_seconds = cpu_s() - cpu0;
    }
    free_caches(&c);
    if (c.jobs)
        for (int j = 0; j < c.njobs; j++) free(c.jobs[j].ent);
    free(c.jobs);
    free(c.job_done);
    if (c.runs)
        for (int64_t i = 0; i < c.runs_total; i++) {
            if (!slb_rep_listed(p, (int)(i % p->nentries), (int)(i / p->nentries % slb_nreps(p)))) continue; /* aliases */
            slb_run_free(c.runs[i]);
            free(c.runs[i]);
        }
    free(c.runs);
    pthread_mutex_destroy(&c.mu);
    /* a folder this call made for a benchmark that never started goes again */
    if (st != SL_OK && created && !fresh) {
        sl_dir_unlock(lock_fd, c.dir);
        lock_fd = -1;
        rmdir(c.dir);
    }
    sl_dir_unlock(lock_fd, NULL);
    return st;
}
