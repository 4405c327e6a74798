/*
 * The trainer: sl_train_run.
 *
 * One epoch = steps_per_epoch optimiser steps on sampler batches, then a
 * validation pass (pooled Dice per class over the validation split), then
 * a checkpoint. Everything that decides the numbers is a function of the
 * configuration and the epoch/step counters:
 *   - batch t of epoch e is sl_sampler_batch(global step e * S + t), a pure
 *     function of (dataset, sampler options, step);
 *   - the loss of epoch e (spec and weights) comes from the schedule, whose
 *     only state (stateful losses) is saved in the checkpoint;
 *   - the optimiser's moments and step counter are saved with the model.
 * So restoring a checkpoint of epoch e and running on gives the same
 * numbers as never having stopped. Validation runs the net in evaluation
 * mode and writes nothing that training reads.
 *
 * Deep supervision (nnU-Net): the loss is sum_i w_i L(output_i, labels
 * downsampled by 2^i, nearest), w_i = 2^-i normalised. Stateful losses
 * update their state from level 0 only (training = 1 there, 0 elsewhere),
 * so their statistics describe the full-resolution output. The logged term
 * values are those of level 0; the logged loss is the weighted total.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "jsonfile.h"
#include "segloss/metrics.h"
#include "nn/model_mem.h"
#include "train_internal.h"

#define CKPT_MAGIC "SLTRCKPT"
#define CKPT_VERSION 1
#define MAX_LEVELS 8

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct split_cache {
    int64_t n;
    float *img;     /* (n, 1, [D,] H, W) */
    int32_t *lab;   /* (n, [D,] H, W) */
} split_cache;

typedef struct run {
    const sl_train_config *cfg;
    char msg2[512];
    /* files */
    int files, created_dir, wrote;
    int lock_fd; /* the folder's lock, held for the whole call (-1: none) */
    int replace; /* force: the old run's files go once the new run has started */
    char p_config[SL_TRAIN_TEXT + 32], p_log[SL_TRAIN_TEXT + 32], p_ckpt[SL_TRAIN_TEXT + 32],
        p_model[SL_TRAIN_TEXT + 32], p_metrics[SL_TRAIN_TEXT + 32];
    /* data */
    sl_dataset *ds_owned;
    const sl_dataset *ds;
    sl_dataset_info info;
    int C;
    int nd;                /* spatial dimensions: 2 (slices) or 3 (volumes) */
    int64_t D, H, W;       /* sample size (D = 1 in 2-D) */
    int64_t pd, ph, pw;    /* patch (pd = 1 in 2-D) */
    int64_t svox, pvox;    /* voxels of a sample, of a patch */
    double spacing[3];     /* voxel size (mm) per spatial axis, dims order: the data's for
                              volumes; 1 for slices (2-D distances stay in pixels) */
    char units[128];       /* metrics.json's units text */
    int stage_lrs;         /* 1: a stage of the loss schedule sets its own lr ('@lr=') */
    int planned;           /* 1: the net's pooling/kernels come from sl_unet_plan_anisotropic */
    int lf[MAX_LEVELS][3]; /* down-sampling factors of each output level (dims order) */
    sl_sampler *sp;
    split_cache val, test;
    char **class_names;
    /* model */
    sl_schedule *sched;
    sl_unet *net;
    sl_optim *opt;
    int nout;
    float dsw[MAX_LEVELS];
    /* buffers */
    float *x, *logits, *grad[MAX_LEVELS];
    int32_t *y, *ylev[MAX_LEVELS];
    float *vprobs;
    int32_t *vlab;
    /* log */
    int ncols;
    char **cols;
    int **stage_cols;      /* [stage][term] -> column */
    int nstages;
    int64_t nrows, caprows;
    sl_train_log_row *rows;
    /* identity */
    char *identity;        /* printed slt_config_json */
    /* progress */
    sl_train_callback cb;
    void *user;
    sl_train_progress pg;
    double t0, step_time, val_time;
    int resuming;
    int64_t epochs_this_call;
    /* per-epoch accumulators: vd[C] validation Dice, tsum/tcols[ncols + 1]
     * term sums and means, metrics[C] the test metrics */
    double *vd, *tsum, *tcols;
    sl_train_class_metrics *metrics;
} run;

/* What one epoch's steps share: its loss (from the schedule), stage, term
 * names, the running loss sum and the last lr. */
typedef struct epoch_state {
    sl_loss *loss;
    int stage, nt;
    const char *term_names[64];
    double lsum, lr, t_start;
} epoch_state;

/* ------------------------------------------------------------ small helpers */

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Dims of a batch of patches with c channels: (b, c, [pd,] ph, pw). */
static sl_dims patch_dims(const run *R, int64_t b, int64_t c)
{
    sl_dims d = {b, c, R->nd, {R->ph, R->pw, 0}};
    if (R->nd == 3) {
        d.spatial[0] = R->pd;
        d.spatial[1] = R->ph;
        d.spatial[2] = R->pw;
    }
    return d;
}

/* Voxels of one patch at output level l. */
static int64_t level_vox(const run *R, int l)
{
    const int64_t p[3] = {R->pd, R->ph, R->pw};
    int64_t n = 1;
    for (int a = 0; a < R->nd; a++) n *= p[3 - R->nd + a] / R->lf[l][a];
    return n;
}

static void free_rows(sl_train_log_row *rows, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        free(rows[i].terms);
        free(rows[i].val_dice);
    }
    free(rows);
}

void sl_train_result_free(sl_train_result *r)
{
    if (!r) return;
    for (int c = 0; r->class_names && c < r->num_classes; c++) free(r->class_names[c]);
    free(r->class_names);
    free(r->test);
    for (int i = 0; r->term_cols && i < r->nterm_cols; i++) free(r->term_cols[i]);
    free(r->term_cols);
    free_rows(r->log, r->nrows);
    sl_train_result tmp = SL_TRAIN_RESULT_EMPTY;
    *r = tmp;
}

static sl_status add_row(run *R, const sl_train_log_row *src)
{
    if (R->nrows == R->caprows) {
        int64_t cap = R->caprows ? 2 * R->caprows : 16;
        sl_train_log_row *p = realloc(R->rows, (size_t)cap * sizeof *p);
        if (!p) return SL_ENOMEM;
        R->rows = p;
        R->caprows = cap;
    }
    sl_train_log_row *d = &R->rows[R->nrows];
    *d = *src;
    d->terms = malloc((size_t)(R->ncols ? R->ncols : 1) * sizeof(double));
    d->val_dice = malloc((size_t)R->C * sizeof(double));
    if (!d->terms || !d->val_dice) {
        free(d->terms);
        free(d->val_dice);
        return SL_ENOMEM;
    }
    memcpy(d->terms, src->terms, (size_t)R->ncols * sizeof(double));
    memcpy(d->val_dice, src->val_dice, (size_t)R->C * sizeof(double));
    R->nrows++;
    return SL_OK;
}

/* Log columns: the term names of every stage, in order of first
 * appearance; the k-th use of a name within one stage is "name#k". */
static sl_status build_columns(run *R, char *msg, size_t msglen)
{
    R->nstages = sl_schedule_num_stages(R->sched);
    R->stage_cols = calloc((size_t)R->nstages, sizeof *R->stage_cols);
    if (!R->stage_cols) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    for (int s = 0; s < R->nstages; s++) {
        sl_loss *loss;
        sl_status st = sl_schedule_loss_for_epoch(R->sched, sl_schedule_stage_start(R->sched, s), &loss, msg, msglen);
        if (st != SL_OK) return st;
        int nt = sl_loss_num_terms(loss);
        R->stage_cols[s] = calloc((size_t)(nt ? nt : 1), sizeof(int));
        if (!R->stage_cols[s]) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
        for (int i = 0; i < nt; i++) {
            const char *name = sl_loss_term_name(loss, i);
            int k = 1;
            for (int j = 0; j < i; j++) k += strcmp(sl_loss_term_name(loss, j), name) == 0;
            char key[160];
            if (k == 1) snprintf(key, sizeof key, "%s", name);
            else snprintf(key, sizeof key, "%s#%d", name, k);
            int col = -1;
            for (int c = 0; c < R->ncols; c++)
                if (strcmp(R->cols[c], key) == 0) col = c;
            if (col < 0) {
                char **p = realloc(R->cols, (size_t)(R->ncols + 1) * sizeof *p);
                if (!p) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
                R->cols = p;
                if (!(R->cols[R->ncols] = dupstr(key))) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
                col = R->ncols++;
            }
            R->stage_cols[s][i] = col;
        }
    }
    return SL_OK;
}

/* ------------------------------------------------------------ output files */

static void csv_num(slt_buf *b, double v)
{
    char t[40];
    int n = isfinite(v) ? snprintf(t, sizeof t, ",%.9g", v) : snprintf(t, sizeof t, ",");
    slt_put(b, t, (size_t)n);
}

static sl_status write_log_csv(run *R, char *msg, size_t msglen)
{
    slt_buf b = {0};
    slt_put(&b, "epoch,stage,lr,loss", 19);
    for (int c = 0; c < R->ncols; c++) {
        slt_put(&b, ",term_", 6);
        slt_put(&b, R->cols[c], strlen(R->cols[c]));
    }
    for (int c = 1; c < R->C; c++) {
        slt_put(&b, ",val_dice_", 10);
        slt_put(&b, R->class_names[c], strlen(R->class_names[c]));
    }
    slt_put(&b, ",seconds\n", 9);
    for (int64_t i = 0; i < R->nrows; i++) {
        const sl_train_log_row *r = &R->rows[i];
        char t[64];
        int n = snprintf(t, sizeof t, "%lld,%d", (long long)r->epoch, r->stage);
        slt_put(&b, t, (size_t)n);
        csv_num(&b, r->lr);
        csv_num(&b, r->loss);
        for (int c = 0; c < R->ncols; c++) csv_num(&b, r->terms[c]);
        for (int c = 1; c < R->C; c++) csv_num(&b, r->val_dice[c]);
        n = snprintf(t, sizeof t, ",%.3f\n", r->seconds);
        slt_put(&b, t, (size_t)n);
    }
    sl_status st = b.failed ? sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory")
                            : sl_out_write_file(R->p_log, b.p, b.len, msg, msglen);
    free(b.p);
    return st;
}

static sl_status write_json(const char *path, cJSON *root, char *msg, size_t msglen)
{
    return sl_json_file_write(path, root, 1, "train", msg, msglen);
}

/* Volumes: dataset.spacing (mm, D, H, W) and dataset.plan, the network's
 * pooling and kernels per stage ("anisotropic" when sl_unet_plan_anisotropic
 * chose them, "isotropic" otherwise; model.bin holds the same numbers). */
static int add_plan_json(const run *R, cJSON *o)
{
    cJSON *a = cJSON_AddArrayToObject(o, "spacing"), *p = NULL, *pool = NULL, *ker = NULL;
    int ok = a != NULL;
    for (int k = 0; ok && k < 3; k++) ok = cJSON_AddItemToArray(a, cJSON_CreateNumber(R->spacing[k]));
    ok = ok && (p = cJSON_AddObjectToObject(o, "plan")) &&
         cJSON_AddStringToObject(p, "kind", R->planned ? "anisotropic" : "isotropic") &&
         (pool = cJSON_AddArrayToObject(p, "pool")) && (ker = cJSON_AddArrayToObject(p, "kernel"));
    sl_unet_config uc = SL_UNET_CONFIG_DEFAULT;
    if (ok) sl_unet_get_config(R->net, &uc);
    for (int s = 0; ok && s < uc.depth; s++) {
        cJSON *ps = cJSON_CreateArray(), *ks = cJSON_CreateArray();
        ok = ps && ks && cJSON_AddItemToArray(pool, ps) && cJSON_AddItemToArray(ker, ks);
        if (!ok) {
            cJSON_Delete(ps);
            cJSON_Delete(ks);
        }
        /* 0 in the config means the default: 2 (pool, none into stage 0), 3 (kernel) */
        for (int k = 0; ok && k < 3; k++) {
            const int pv = s == 0 ? 1 : (uc.pool[s][k] ? uc.pool[s][k] : 2), kv = uc.kernel[s][k] ? uc.kernel[s][k] : 3;
            ok = cJSON_AddItemToArray(ps, cJSON_CreateNumber(pv)) && cJSON_AddItemToArray(ks, cJSON_CreateNumber(kv));
        }
    }
    return ok;
}

static sl_status write_config_json(run *R, char *msg, size_t msglen)
{
    const sl_train_config *c = R->cfg;
    cJSON *root = slt_config_json(c), *o = NULL, *a = NULL;
    int ok = root != NULL;
    ok = ok && cJSON_AddStringToObject(root, "segloss_version", sl_version());
    ok = ok && (o = cJSON_AddObjectToObject(root, "dataset")) && cJSON_AddNumberToObject(o, "num_classes", R->C) &&
         (a = cJSON_AddArrayToObject(o, "class_names"));
    for (int k = 0; ok && k < R->C; k++) {
        cJSON *s = cJSON_CreateString(R->class_names[k]);
        ok = s && cJSON_AddItemToArray(a, s);
    }
    /* (H, W), or (D, H, W) for volumes */
    const int64_t ss[3] = {R->D, R->H, R->W}, ps[3] = {R->pd, R->ph, R->pw};
    ok = ok && (a = cJSON_AddArrayToObject(o, "sample_size"));
    for (int k = 3 - R->nd; ok && k < 3; k++) {
        cJSON *s = cJSON_CreateNumber((double)ss[k]);
        ok = s && cJSON_AddItemToArray(a, s);
    }
    ok = ok && (a = cJSON_AddArrayToObject(o, "patch"));
    for (int k = 3 - R->nd; ok && k < 3; k++) {
        cJSON *s = cJSON_CreateNumber((double)ps[k]);
        ok = s && cJSON_AddItemToArray(a, s);
    }
    ok = ok && cJSON_AddNumberToObject(o, "n_train", (double)R->info.n[0]) &&
         cJSON_AddNumberToObject(o, "n_val", (double)R->info.n[1]) &&
         cJSON_AddNumberToObject(o, "n_test", (double)R->info.n[2]) &&
         cJSON_AddNumberToObject(o, "small_class", R->info.small_class);
    if (ok && R->nd == 3) ok = add_plan_json(R, o);
    sl_preproc pp;
    sl_status st = sl_preproc_from_config(&pp, c, R->H, R->W, msg, msglen);
    if (st != SL_OK) {
        cJSON_Delete(root);
        return st;
    }
    if (R->nd == 3) {
        pp.patch[0] = R->pd;
        pp.patch[1] = R->ph;
        pp.patch[2] = R->pw;
    }
    cJSON *pj = ok ? slt_preproc_json(&pp) : NULL;
    ok = ok && pj && (o = cJSON_AddObjectToObject(root, "predict"));
    if (ok) cJSON_AddItemToObject(o, "preprocessing", pj);
    else cJSON_Delete(pj);
    ok = ok && (o = cJSON_AddObjectToObject(root, "run")) && cJSON_AddNumberToObject(o, "threads", c->threads) &&
         cJSON_AddNumberToObject(o, "num_params", (double)sl_unet_num_params(R->net));
    if (!ok) {
        cJSON_Delete(root);
        return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    }
    st = write_json(R->p_config, root, msg, msglen);
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------ checkpoint */

static sl_status write_checkpoint(run *R, int64_t epochs_done, char *msg, size_t msglen)
{
    sl_status st;
    unsigned char *model = NULL;
    size_t mlen = 0;
    if ((st = slnn_unet_save_mem(R->net, R->opt, &model, &mlen, msg, msglen)) != SL_OK) return st;
    size_t slen = 0;
    sl_schedule_state_size(R->sched, &slen);
    unsigned char *sstate = malloc(slen ? slen : 1);
    if (!sstate) {
        free(model);
        return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    }
    sl_schedule_state_get(R->sched, sstate, slen, &slen);

    slt_buf b = {0};
    slt_put(&b, CKPT_MAGIC, 8);
    slt_put_u64(&b, CKPT_VERSION);
    slt_put_str(&b, R->identity);
    slt_put_u64(&b, (uint64_t)epochs_done);
    slt_put_u64(&b, slen);
    slt_put(&b, sstate, slen);
    slt_put_u64(&b, (uint64_t)R->ncols);
    for (int c = 0; c < R->ncols; c++) slt_put_str(&b, R->cols[c]);
    slt_put_u64(&b, (uint64_t)R->C);
    slt_put_u64(&b, (uint64_t)R->nrows);
    for (int64_t i = 0; i < R->nrows; i++) {
        const sl_train_log_row *r = &R->rows[i];
        slt_put_u64(&b, (uint64_t)r->epoch);
        slt_put_f64(&b, r->lr);
        slt_put_f64(&b, r->loss);
        slt_put_u64(&b, (uint64_t)r->stage);
        for (int c = 0; c < R->ncols; c++) slt_put_f64(&b, r->terms[c]);
        for (int c = 0; c < R->C; c++) slt_put_f64(&b, r->val_dice[c]);
        slt_put_f64(&b, r->seconds);
    }
    slt_put_u64(&b, mlen);
    slt_put(&b, model, mlen);
    free(model);
    free(sstate);
    if (!b.failed) slt_put_u64(&b, slt_crc32(b.p, b.len));
    if (b.failed) st = sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    else st = sl_out_write_file(R->p_ckpt, b.p, b.len, msg, msglen);
    free(b.p);
    return st;
}

/* Restores net, optimiser, schedule state and log rows; *epochs_done. */
static sl_status read_checkpoint(run *R, int64_t *epochs_done, char *msg, size_t msglen)
{
    unsigned char *data;
    size_t len;
    sl_status st = sl_file_read(R->p_ckpt, &data, &len, msg, msglen);
    if (st != SL_OK) return st;
    const char *path = R->p_ckpt;
    if (len < 8 + 8 + 8 || memcmp(data, CKPT_MAGIC, 8) != 0) {
        free(data);
        return sl_errf(msg, msglen, SL_EFORMAT, "%s is not a segloss checkpoint", path);
    }
    slt_reader crc_r = {data + len - 8, 8, 0, 0};
    if (slt_get_u64(&crc_r) != slt_crc32(data, len - 8)) {
        free(data);
        return sl_errf(msg, msglen, SL_EFORMAT, "%s is corrupt (CRC mismatch; truncated or damaged)", path);
    }
    slt_reader r = {data, len - 8, 8, 0};
    const unsigned char *s;
    size_t n;
    sl_train_log_row row = {0};
    double *terms = NULL, *vd = NULL;
    if (slt_get_u64(&r) != CKPT_VERSION) {
        st = sl_errf(msg, msglen, SL_EFORMAT, "%s: unknown checkpoint version", path);
        goto done;
    }
    n = slt_get_bytes(&r, &s);
    if (r.failed) goto corrupt;
    if (n != strlen(R->identity) || memcmp(s, R->identity, n) != 0) {
        char *old = malloc(n + 1);
        char diff[512] = "the configuration differs";
        if (old) {
            memcpy(old, s, n);
            old[n] = 0;
            cJSON *a = cJSON_Parse(old), *b = cJSON_Parse(R->identity);
            if (a && b) slt_config_diff(a, b, "", diff, sizeof diff);
            cJSON_Delete(a);
            cJSON_Delete(b);
            free(old);
        }
        st = sl_errf(msg, msglen, SL_EBADSTATE, "cannot resume %s with another configuration (saved vs now: %s)",
                     R->cfg->out_dir, diff);
        goto done;
    }
    *epochs_done = (int64_t)slt_get_u64(&r);
    n = slt_get_bytes(&r, &s);
    if (r.failed) goto corrupt;
    if ((st = sl_schedule_state_set(R->sched, s, n, R->msg2, sizeof R->msg2)) != SL_OK) {
        st = sl_errf(msg, msglen, st, "%s: loss schedule state: %s", path, R->msg2);
        goto done;
    }
    uint64_t ncols = slt_get_u64(&r);
    if (r.failed || ncols != (uint64_t)R->ncols) goto corrupt;
    for (int c = 0; c < R->ncols; c++) {
        n = slt_get_bytes(&r, &s);
        if (r.failed || n != strlen(R->cols[c]) || memcmp(s, R->cols[c], n)) goto corrupt;
    }
    if (slt_get_u64(&r) != (uint64_t)R->C) goto corrupt;
    uint64_t nrows = slt_get_u64(&r);
    if (r.failed || nrows > (uint64_t)1e7) goto corrupt;
    terms = calloc((size_t)R->ncols + 1, sizeof *terms);
    vd = calloc((size_t)R->C, sizeof *vd);
    if (!terms || !vd) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
        goto done;
    }
    for (uint64_t i = 0; i < nrows; i++) {
        row.epoch = (int64_t)slt_get_u64(&r);
        row.lr = slt_get_f64(&r);
        row.loss = slt_get_f64(&r);
        row.stage = (int)slt_get_u64(&r);
        for (int c = 0; c < R->ncols; c++) terms[c] = slt_get_f64(&r);
        for (int c = 0; c < R->C; c++) vd[c] = slt_get_f64(&r);
        row.seconds = slt_get_f64(&r);
        row.terms = terms;
        row.val_dice = vd;
        if (r.failed) goto corrupt;
        if (add_row(R, &row) != SL_OK) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
            goto done;
        }
    }
    n = slt_get_bytes(&r, &s);
    if (r.failed || r.pos != r.len || *epochs_done < 0 || *epochs_done > R->cfg->epochs ||
        (uint64_t)*epochs_done != nrows)
        goto corrupt;
    sl_unet *net = NULL;
    sl_optim *opt = NULL;
    st = slnn_unet_load_mem(&net, &opt, s, n, "the checkpoint's model", R->msg2, sizeof R->msg2);
    if (st != SL_OK) {
        st = sl_errf(msg, msglen, st, "%s: %s", path, R->msg2);
        goto done;
    }
    if (!opt) {
        sl_unet_free(net);
        goto corrupt;
    }
    sl_unet_config a, b;
    sl_unet_get_config(net, &a);
    sl_unet_get_config(R->net, &b);
    if (memcmp(&a, &b, sizeof a) != 0 || sl_unet_num_params(net) != sl_unet_num_params(R->net)) {
        sl_optim_free(opt);
        sl_unet_free(net);
        st = sl_errf(msg, msglen, SL_EBADSTATE, "%s: the saved network differs from the configuration", path);
        goto done;
    }
    sl_optim_free(R->opt);
    sl_unet_free(R->net);
    R->net = net;
    R->opt = opt;
    st = SL_OK;
    goto done;
corrupt:
    st = sl_errf(msg, msglen, SL_EFORMAT, "%s is corrupt (bad layout)", path);
done:
    free(terms);
    free(vd);
    free(data);
    return st;
}

/* ------------------------------------------------------------ evaluation */

static sl_status load_split(run *R, sl_split split, split_cache *c, char *msg, size_t msglen)
{
    c->n = R->info.n[split];
    if (c->n == 0) return SL_OK;
    const int64_t hw = R->svox;
    c->img = sl_malloc(c->n * hw, sizeof *c->img);
    c->lab = sl_malloc(c->n * hw, sizeof *c->lab);
    if (!c->img || !c->lab) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory for the %s split", sl_split_name(split));
    for (int64_t i = 0; i < c->n; i++) {
        sl_status st = sl_dataset_get(R->ds, split, i, c->img + i * hw, c->lab + i * hw, msg, msglen);
        if (st != SL_OK) return st;
    }
    return SL_OK;
}

/* The sliding-window forward of a 3-D net: one patch (1, pd, ph, pw) ->
 * logits (C, pd, ph, pw). */
static sl_status window_forward(const float *patch, float *out, void *user, char *msg, size_t msglen)
{
    run *R = user;
    sl_dims d = patch_dims(R, 1, 1);
    return sl_unet_forward(R->net, patch, &d, out, msg, msglen);
}

/* Labels of every sample of a split into R->vlab: slices by padded
 * forwards, volumes by Gaussian-weighted sliding windows of the training
 * patch (step 1/2; logits aggregated, then the argmax). */
static sl_status predict_split(run *R, const split_cache *c, char *msg, size_t msglen)
{
    if (R->nd == 3) {
        sl_window_opts wo = SL_WINDOW_OPTS_DEFAULT;
        wo.patch[0] = R->pd;
        wo.patch[1] = R->ph;
        wo.patch[2] = R->pw;
        const int64_t size[3] = {R->D, R->H, R->W};
        float *lg = sl_malloc(R->C * R->svox, sizeof *lg);
        if (!lg) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory for the evaluation");
        sl_unet_set_training(R->net, 0);
        sl_status st = SL_OK;
        for (int64_t i = 0; i < c->n && st == SL_OK; i++) {
            st = sl_sliding_window(c->img + i * R->svox, 1, 3, size, R->C, &wo, window_forward, R, lg, msg, msglen);
            if (st == SL_OK) slt_argmax(lg, 1, R->C, R->svox, R->vlab + i * R->svox);
        }
        free(lg);
        return st;
    }
    sl_predict_opts po = SL_PREDICT_OPTS_DEFAULT;
    po.threads = R->cfg->threads;
    po.batch = R->cfg->batch_size;
    return sl_predict_slices(R->net, c->img, c->n, R->H, R->W, &po, NULL, R->vlab, msg, msglen);
}

/* Pooled Dice per class over the validation split (NaN without one). */
static sl_status validate(run *R, double *dice, char *msg, size_t msglen)
{
    for (int c = 0; c < R->C; c++) dice[c] = NAN;
    if (R->val.n == 0) return SL_OK;
    sl_status st = predict_split(R, &R->val, msg, msglen);
    if (st != SL_OK) return st;
    const int64_t N = R->val.n * R->svox;
    for (int c = 0; c < R->C; c++) {
        int64_t tp = 0, fp = 0, fn = 0;
        for (int64_t i = 0; i < N; i++) {
            int p = R->vlab[i] == c, g = R->val.lab[i] == c;
            tp += p & g;
            fp += p & !g;
            fn += (!p) & g;
        }
        dice[c] = 2 * tp + fp + fn > 0 ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 1.0;
    }
    return SL_OK;
}

/* HD95's substitute when one side is empty: the sample's diagonal, in
 * pixels for slices and in mm (extent times spacing) for volumes. */
static double empty_distance(const run *R)
{
    if (R->nd != 3) return sqrt((double)(R->H * R->H + R->W * R->W));
    const double d = (double)R->D * R->spacing[0], h = (double)R->H * R->spacing[1], w = (double)R->W * R->spacing[2];
    return sqrt(d * d + h * h + w * w);
}

static sl_status test_metrics(run *R, sl_train_class_metrics *m, char *msg, size_t msglen)
{
    const int C = R->C;
    memset(m, 0, (size_t)C * sizeof *m);
    for (int c = 1; c < C; c++) {
        m[c].dice = m[c].hd95 = m[c].nsd = m[c].recall = m[c].precision = m[c].dice_global = NAN;
    }
    if (R->test.n == 0) return SL_OK;
    sl_status st = predict_split(R, &R->test, msg, msglen);
    if (st != SL_OK) return st;
    const int64_t hw = R->svox;
    const double diag = empty_distance(R);
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = R->nd;
    if (R->nd == 3) {
        g.shape[0] = R->D;
        g.shape[1] = R->H;
        g.shape[2] = R->W;
        for (int a = 0; a < 3; a++) g.spacing[a] = R->spacing[a];
    } else {
        g.shape[0] = R->H;
        g.shape[1] = R->W;
    }
    sl_metric_opts mo = SL_METRIC_OPTS_DEFAULT;
    mo.metrics = SL_MET_OVERLAP | SL_MET_DISTANCE | SL_MET_NSD;
    mo.threads = R->cfg->threads;
    int64_t *labels = malloc((size_t)C * sizeof *labels);
    sl_metric_result *res = malloc((size_t)C * sizeof *res);
    double *sum = calloc((size_t)C * 5, sizeof *sum);
    int64_t *cnt = calloc((size_t)C * 3, sizeof *cnt);
    if (!labels || !res || !sum || !cnt) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
        goto done;
    }
    for (int c = 1; c < C; c++) labels[c - 1] = c;
    for (int64_t i = 0; i < R->test.n; i++) {
        sl_labelmap p = {R->vlab + i * hw, SL_DT_I32}, t = {R->test.lab + i * hw, SL_DT_I32};
        if ((st = sl_metrics_eval(&p, &t, &g, labels, C - 1, &mo, res, msg, msglen)) != SL_OK) goto done;
        for (int c = 1; c < C; c++) {
            const sl_metric_result *q = &res[c - 1];
            double hd = q->hd_perc;
            if (q->empty_pred && q->empty_gt) cnt[c * 3 + 0]++;
            else if (q->empty_pred) cnt[c * 3 + 1]++;
            else if (q->empty_gt) cnt[c * 3 + 2]++;
            if (!isfinite(hd)) hd = diag; /* one side empty: docs/metrics.md's substitute */
            sum[c * 5 + 0] += q->dice;
            sum[c * 5 + 1] += hd;
            sum[c * 5 + 2] += q->nsd;
            sum[c * 5 + 3] += q->recall;
            sum[c * 5 + 4] += q->precision;
        }
    }
    for (int c = 1; c < C; c++) {
        const double n = (double)R->test.n;
        m[c].dice = sum[c * 5 + 0] / n;
        m[c].hd95 = sum[c * 5 + 1] / n;
        m[c].nsd = sum[c * 5 + 2] / n;
        m[c].recall = sum[c * 5 + 3] / n;
        m[c].precision = sum[c * 5 + 4] / n;
        m[c].n_cases = R->test.n;
        m[c].n_empty_both = cnt[c * 3 + 0];
        m[c].n_empty_pred = cnt[c * 3 + 1];
        m[c].n_empty_gt = cnt[c * 3 + 2];
        int64_t tp = 0, fp = 0, fn = 0;
        for (int64_t i = 0; i < R->test.n * hw; i++) {
            int pp = R->vlab[i] == c, gg = R->test.lab[i] == c;
            tp += pp & gg;
            fp += pp & !gg;
            fn += (!pp) & gg;
        }
        m[c].dice_global = 2 * tp + fp + fn > 0 ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 1.0;
    }
    st = SL_OK;
done:
    free(labels);
    free(res);
    free(sum);
    free(cnt);
    return st;
}

/* metrics.json's "units": slices in pixels; volumes in mm with the
 * spacing used (phantom3d's sentence is the one it always had). */
static const char *metric_units(run *R)
{
    if (R->nd != 3) return "pixels (1 mm for phantom and colin)";
    if (strncmp(R->cfg->data, "nifti:", 6) != 0) return "mm (1 mm isotropic voxels for phantom3d)";
    snprintf(R->units, sizeof R->units, "mm (the volumes' voxel spacing %gx%gx%g mm, D x H x W)", R->spacing[0],
             R->spacing[1], R->spacing[2]);
    return R->units;
}

static sl_status write_metrics_json(run *R, const sl_train_class_metrics *m, double seconds, char *msg, size_t msglen)
{
    cJSON *root = cJSON_CreateObject(), *arr = NULL, *o = NULL;
    int ok = root && (arr = cJSON_AddArrayToObject(root, "test"));
    for (int c = 1; ok && c < R->C; c++) {
        ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(arr, o) && cJSON_AddNumberToObject(o, "class", c) &&
             cJSON_AddStringToObject(o, "name", R->class_names[c]) && cJSON_AddNumberToObject(o, "dice", m[c].dice) &&
             cJSON_AddNumberToObject(o, "hd95", m[c].hd95) && cJSON_AddNumberToObject(o, "nsd", m[c].nsd) &&
             cJSON_AddNumberToObject(o, "recall", m[c].recall) &&
             cJSON_AddNumberToObject(o, "precision", m[c].precision) &&
             cJSON_AddNumberToObject(o, "dice_global", m[c].dice_global) &&
             cJSON_AddNumberToObject(o, "n_cases", (double)m[c].n_cases) &&
             cJSON_AddNumberToObject(o, "n_empty_both", (double)m[c].n_empty_both) &&
             cJSON_AddNumberToObject(o, "n_empty_pred", (double)m[c].n_empty_pred) &&
             cJSON_AddNumberToObject(o, "n_empty_gt", (double)m[c].n_empty_gt);
    }
    char conv[256];
    sl_metric_opts mo = SL_METRIC_OPTS_DEFAULT;
    sl_metric_opts_describe(&mo, R->nd, conv, sizeof conv);
    ok = ok && (o = cJSON_AddObjectToObject(root, "conventions")) &&
         cJSON_AddStringToObject(o, "mean", R->nd == 3 ? "over the test samples (3-D volumes), every sample counted"
                                                       : "over the test samples (2-D slices), every sample counted") &&
         cJSON_AddStringToObject(o, "empty",
                                 "both empty: dice, nsd, recall, precision 1 and hd95 0; one empty: those 0 and hd95 = "
                                 "empty_distance (counted in n_empty_pred / n_empty_gt)") &&
         cJSON_AddNumberToObject(o, "empty_distance", empty_distance(R)) &&
         cJSON_AddStringToObject(o, "units", metric_units(R)) &&
         cJSON_AddStringToObject(o, "metric_opts", conv) &&
         cJSON_AddStringToObject(o, "dice_global", "2 sum TP / (2 sum TP + sum FP + sum FN) over the test split");
    ok = ok && cJSON_AddNumberToObject(root, "epochs", (double)R->cfg->epochs) &&
         cJSON_AddNumberToObject(root, "seconds", seconds) &&
         cJSON_AddNumberToObject(root, "num_params", (double)sl_unet_num_params(R->net));
    if (!ok) {
        cJSON_Delete(root);
        return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    }
    sl_status st = write_json(R->p_metrics, root, msg, msglen);
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------ the folder */

static sl_status prepare_dir(run *R, int *resuming, char *msg, size_t msglen)
{
    const sl_train_config *c = R->cfg;
    const char *d = c->out_dir;
    *resuming = 0;
    if (sl_path_join(R->p_config, sizeof R->p_config, d, "config.json") || sl_path_join(R->p_log, sizeof R->p_log, d, "log.csv") ||
        sl_path_join(R->p_ckpt, sizeof R->p_ckpt, d, "checkpoint.bin") || sl_path_join(R->p_model, sizeof R->p_model, d, "model.bin") ||
        sl_path_join(R->p_metrics, sizeof R->p_metrics, d, "metrics.json"))
        return sl_errf(msg, msglen, SL_EINVAL, "train: output folder name too long");
    /* the folder and its lock first: the state read below must not change
     * under this call (another train in the same folder) */
    R->created_dir = !sl_file_exists(d);
    sl_status st = sl_mkdirs(d, msg, msglen);
    if (st != SL_OK) return st;
    if ((st = sl_dir_lock(d, &R->lock_fd, msg, msglen)) != SL_OK) return st;
    const char *files[] = {R->p_config, R->p_log, R->p_ckpt, R->p_model, R->p_metrics};
    int any = 0;
    for (int i = 0; i < 5; i++) any |= sl_file_exists(files[i]);
    const int complete = sl_file_exists(R->p_metrics), ckpt = sl_file_exists(R->p_ckpt);
    if (c->resume) {
        if (complete)
            return sl_errf(msg, msglen, SL_EBADSTATE, "%s holds a complete run (metrics.json): nothing to resume", d);
        if (ckpt) *resuming = 1;
        else if (!sl_file_exists(R->p_config))
            return sl_errf(msg, msglen, SL_EBADSTATE, "%s holds no run to resume (no checkpoint.bin)", d);
        /* killed before the first checkpoint: start again at epoch 0 (checked against config.json below) */
    } else if (c->force) {
        /* nothing is removed yet: remove_old_run() runs once every check of
         * the new run has passed, so a bad option or data source keeps the
         * old run */
        R->replace = any;
    } else if (any) {
        return sl_errf(msg, msglen, SL_EBADSTATE, "%s already holds %s run: use resume (--resume) to continue it or force (--force) to replace it",
                       d, complete ? "a complete" : "an unfinished");
    }
    return SL_OK;
}

/* force: the old run's files, removed just before the new config.json. */
static sl_status remove_old_run(run *R, char *msg, size_t msglen)
{
    const char *files[] = {R->p_metrics, R->p_model, R->p_ckpt, R->p_log, R->p_config};
    for (int i = 0; i < 5; i++)
        if (unlink(files[i]) != 0 && errno != ENOENT)
            return sl_errf(msg, msglen, SL_EIO, "cannot remove %s to replace the run: %s", files[i], strerror(errno));
    return SL_OK;
}

static void free_run(run *R)
{
    free(R->x);
    free(R->y);
    free(R->logits);
    for (int l = 0; l < MAX_LEVELS; l++) {
        free(R->grad[l]);
        free(R->ylev[l]);
    }
    free(R->vprobs);
    free(R->vlab);
    free(R->val.img);
    free(R->val.lab);
    free(R->test.img);
    free(R->test.lab);
    for (int c = 0; R->class_names && c < R->C; c++) free(R->class_names[c]);
    free(R->class_names);
    for (int i = 0; i < R->ncols; i++) free(R->cols[i]);
    free(R->cols);
    for (int s = 0; R->stage_cols && s < R->nstages; s++) free(R->stage_cols[s]);
    free(R->stage_cols);
    free_rows(R->rows, R->nrows);
    free(R->identity);
    free(R->vd);
    free(R->tsum);
    free(R->tcols);
    free(R->metrics);
    sl_optim_free(R->opt);
    sl_unet_free(R->net);
    sl_schedule_free(R->sched);
    sl_sampler_free(R->sp);
    sl_dataset_free(R->ds_owned);
}

/* Copies what the caller keeps into result. */
static sl_status fill_result(run *R, sl_train_result *res, const sl_train_class_metrics *m)
{
    res->num_classes = R->C;
    res->num_params = sl_unet_num_params(R->net);
    res->class_names = calloc((size_t)R->C, sizeof *res->class_names);
    res->test = calloc((size_t)R->C, sizeof *res->test);
    res->term_cols = calloc((size_t)(R->ncols ? R->ncols : 1), sizeof *res->term_cols);
    if (!res->class_names || !res->test || !res->term_cols) return SL_ENOMEM;
    for (int c = 0; c < R->C; c++)
        if (!(res->class_names[c] = dupstr(R->class_names[c]))) return SL_ENOMEM;
    res->nterm_cols = R->ncols;
    for (int c = 0; c < R->ncols; c++)
        if (!(res->term_cols[c] = dupstr(R->cols[c]))) return SL_ENOMEM;
    if (m) memcpy(res->test, m, (size_t)R->C * sizeof *m);
    /* the rows move to the result */
    res->log = R->rows;
    res->nrows = R->nrows;
    R->rows = NULL;
    R->nrows = R->caprows = 0;
    return SL_OK;
}

/* ------------------------------------------------------------ set-up */

/* The run's identity and its folder: lock, resume or replace decisions,
 * and (resume before the first checkpoint) the saved configuration must be
 * the one given now. */
static sl_status setup_files(run *R, char *msg, size_t msglen)
{
    const sl_train_config *cfg = R->cfg;
    cJSON *id = slt_config_json(cfg);
    R->identity = id ? cJSON_PrintUnformatted(id) : NULL;
    cJSON_Delete(id);
    if (!R->identity) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    if (!R->files) return SL_OK;
    sl_status st = prepare_dir(R, &R->resuming, msg, msglen);
    if (st != SL_OK || !cfg->resume || R->resuming) return st;
    /* no checkpoint yet: the configuration must still be the one started */
    sl_train_config saved;
    if ((st = sl_train_config_load(&saved, R->p_config, msg, msglen)) != SL_OK) return st;
    cJSON *a = slt_config_json(&saved), *b = slt_config_json(cfg);
    char diff[512];
    int differs = a && b ? slt_config_diff(a, b, "", diff, sizeof diff) : 0;
    cJSON_Delete(a);
    cJSON_Delete(b);
    if (differs)
        return sl_errf(msg, msglen, SL_EBADSTATE, "cannot resume %s with another configuration (saved vs now: %s)",
                       cfg->out_dir, diff);
    return SL_OK;
}

/* The dataset, its class names, the patch and the training sampler. */
static sl_status setup_data(run *R, char *msg, size_t msglen)
{
    const sl_train_config *cfg = R->cfg;
    sl_status st;
    if (cfg->dataset) {
        R->ds = cfg->dataset;
    } else {
        sl_data_opts dopt = cfg->data_opts;
        dopt.threads = cfg->threads;
        /* a D,H,W patch on nifti:DIR trains on the whole volumes */
        if (cfg->patch_depth && strncmp(cfg->data, "nifti:", 6) == 0) dopt.volumes = 1;
        if ((st = sl_dataset_open(&R->ds_owned, cfg->data, &dopt, msg, msglen)) != SL_OK) return st;
        R->ds = R->ds_owned;
    }
    sl_dataset_get_info(R->ds, &R->info);
    R->C = R->info.num_classes;
    R->nd = R->info.spatial_ndim;
    R->D = R->nd == 3 ? R->info.size[0] : 1;
    R->H = R->info.size[R->nd - 2];
    R->W = R->info.size[R->nd - 1];
    R->svox = R->D * R->H * R->W;
    for (int a = 0; a < 3; a++) R->spacing[a] = R->nd == 3 ? R->info.spacing[a] : 1.0;
    if (cfg->patch_depth && R->nd != 3)
        return sl_errf(msg, msglen, SL_EINVAL,
                       "train: a 3-D patch (D,H,W) needs a volume source such as phantom3d; '%s' gives 2-D slices (give H,W)",
                       cfg->data);
    R->class_names = calloc((size_t)R->C, sizeof *R->class_names);
    if (!R->class_names) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    for (int c = 0; c < R->C; c++) {
        const char *nm = sl_dataset_class_name(R->ds, c);
        char buf[32];
        if (!nm) {
            snprintf(buf, sizeof buf, "class%d", c);
            nm = buf;
        }
        if (!(R->class_names[c] = dupstr(nm))) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    }
    const int64_t mult = (int64_t)1 << (cfg->depth - 1);
    /* default patch: the sample rounded down to a multiple of 2^(depth-1),
     * at most 128 a side (random crops of larger samples keep a step's cost
     * that of a 128x128 image; evaluation still sees whole samples) */
    R->ph = cfg->patch[0] ? cfg->patch[0] : R->H / mult * mult;
    R->pw = cfg->patch[1] ? cfg->patch[1] : R->W / mult * mult;
    if (!cfg->patch[0]) {
        const int64_t cap = 128 / mult * mult > 0 ? 128 / mult * mult : mult;
        if (R->ph > cap) R->ph = cap;
        if (R->pw > cap) R->pw = cap;
    }
    R->pd = 1;
    if (R->nd == 3) {
        /* volumes: the default patch is each side rounded down to a multiple
         * of 2^(depth-1), at least one multiple (the sampler zero-pads a
         * shorter volume), at most 64 */
        const int64_t n3[3] = {R->D, R->H, R->W}, give[3] = {cfg->patch_depth, cfg->patch[0], cfg->patch[1]};
        int64_t p3[3];
        const int64_t cap = 64 / mult * mult > 0 ? 64 / mult * mult : mult;
        for (int a = 0; a < 3; a++) {
            p3[a] = give[a] ? give[a] : n3[a] / mult * mult;
            if (!give[a] && p3[a] < mult) p3[a] = mult;
            if (!give[a] && p3[a] > cap) p3[a] = cap;
        }
        R->pd = p3[0];
        R->ph = p3[1];
        R->pw = p3[2];
    }
    if (R->ph < 1 || R->pw < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "train: samples of %lldx%lld are smaller than 2^(depth-1) = %lld",
                       (long long)R->H, (long long)R->W, (long long)mult);
    R->pvox = R->pd * R->ph * R->pw;
    sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;
    so.batch_size = cfg->batch_size;
    so.patch[0] = R->ph;
    so.patch[1] = R->pw;
    so.patch_depth = R->nd == 3 ? R->pd : 0;
    so.fg_fraction = cfg->fg_fraction;
    so.fg_class = -1;
    /* batches and weights draw from unrelated seeds */
    so.seed = cfg->seed ^ 0x73616d706c657273ull; /* "samplers" */
    so.threads = cfg->threads;
    if ((st = sl_aug_parse(&so.aug, cfg->augment, msg, msglen)) != SL_OK) return st;
    return sl_sampler_create(&R->sp, R->ds, SL_SPLIT_TRAIN, &so, msg, msglen);
}

/* nnU-Net's rule for anisotropic volumes: when the voxel spacing differs
 * between axes (and cfg->anisotropic), sl_unet_plan_anisotropic sets the
 * pooling and kernels from the spacing and the patch. Isotropic data keep
 * the default net (so phantom3d and colin3d runs are as before). */
static sl_status plan_network(run *R, sl_unet_config *uc, char *msg, size_t msglen)
{
    R->planned = 0;
    if (R->nd != 3 || !R->cfg->anisotropic) return SL_OK;
    if (R->spacing[0] == R->spacing[1] && R->spacing[1] == R->spacing[2]) return SL_OK;
    const int64_t patch[3] = {R->pd, R->ph, R->pw};
    sl_status st = sl_unet_plan_anisotropic(uc, R->spacing, patch, R->msg2, sizeof R->msg2);
    if (st != SL_OK)
        return sl_errf(msg, msglen, st, "train: spacing %gx%gx%g mm: %s (or --anisotropic off)", R->spacing[0],
                       R->spacing[1], R->spacing[2], R->msg2);
    R->planned = 1;
    return SL_OK;
}

/* The loss schedule, the network and its optimiser (restored from the
 * checkpoint when resuming); *start_epoch is the first epoch to run. */
static sl_status setup_model(run *R, int64_t *start_epoch, char *msg, size_t msglen)
{
    const sl_train_config *cfg = R->cfg;
    sl_status st;
    *start_epoch = 0;
    if ((st = sl_schedule_create(cfg->loss, &R->sched, msg, msglen)) != SL_OK) return st;
    if ((st = build_columns(R, msg, msglen)) != SL_OK) return st;
    for (int i = 0; i < sl_schedule_num_stages(R->sched); i++) R->stage_lrs |= !isnan(sl_schedule_stage_lr(R->sched, i));
    sl_unet_config uc = SL_UNET_CONFIG_DEFAULT;
    uc.spatial_ndim = R->nd;
    uc.in_channels = R->info.in_channels;
    uc.num_classes = R->C;
    uc.depth = cfg->depth;
    uc.base_width = cfg->base_width;
    uc.max_width = cfg->max_width;
    uc.norm = cfg->norm;
    uc.down = cfg->down;
    uc.deep_supervision = cfg->deep_supervision;
    uc.seed = cfg->seed;
    if ((st = plan_network(R, &uc, msg, msglen)) != SL_OK) return st;
    if ((st = sl_unet_create(&R->net, &uc, msg, msglen)) != SL_OK) return st;
    sl_optim_config oc;
    slt_optim_config(cfg, &oc);
    if ((st = sl_optim_create(&R->opt, R->net, &oc, msg, msglen)) != SL_OK) return st;
    if (R->resuming && (st = read_checkpoint(R, start_epoch, msg, msglen)) != SL_OK) return st;
    if (cfg->threads > 0) {
        sl_unet_set_threads(R->net, cfg->threads);
        sl_optim_set_threads(R->opt, cfg->threads);
    }
    R->nout = sl_unet_num_outputs(R->net);
    if (R->nout > MAX_LEVELS) R->nout = MAX_LEVELS;
    sl_unet_ds_weights(R->net, R->dsw);
    for (int l = 0; l < R->nout; l++)
        if ((st = sl_unet_level_factors(R->net, l, R->lf[l])) != SL_OK)
            return sl_errf(msg, msglen, st, "train: output level %d has no down-sampling factors", l);
    return SL_OK;
}

/* Step buffers (one per output level), the evaluation splits, the epoch
 * accumulators; then config.json, once everything before training has
 * worked (force: the old run's files go just before it). */
static sl_status setup_buffers(run *R, char *msg, size_t msglen)
{
    const sl_train_config *cfg = R->cfg;
    const int64_t B = cfg->batch_size, C = R->C, phw = R->pvox;
    sl_status st;
    R->x = sl_malloc(B * phw, sizeof *R->x);
    R->y = sl_malloc(B * phw, sizeof *R->y);
    R->logits = sl_malloc(B * C * phw, sizeof *R->logits);
    if (!R->x || !R->y || !R->logits) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    for (int l = 0; l < R->nout; l++) {
        const int64_t n = B * level_vox(R, l);
        if (!(R->grad[l] = sl_malloc(n * C, sizeof(float)))) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
        if (l > 0 && !(R->ylev[l] = sl_malloc(n, sizeof(int32_t))))
            return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    }
    if ((st = load_split(R, SL_SPLIT_VAL, &R->val, msg, msglen)) != SL_OK) return st;
    /* skip_test: R->test stays empty, so test_metrics gives NaN */
    if (!cfg->skip_test && (st = load_split(R, SL_SPLIT_TEST, &R->test, msg, msglen)) != SL_OK) return st;
    int64_t nmax = R->val.n > R->test.n ? R->val.n : R->test.n;
    if (nmax > 0 && !(R->vlab = sl_malloc(nmax * R->svox, sizeof *R->vlab)))
        return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    R->vd = calloc((size_t)R->C, sizeof *R->vd);
    R->tsum = calloc((size_t)(R->ncols + 1), sizeof *R->tsum);
    R->tcols = calloc((size_t)(R->ncols + 1), sizeof *R->tcols);
    R->metrics = calloc((size_t)R->C, sizeof *R->metrics);
    if (!R->vd || !R->tsum || !R->tcols || !R->metrics) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    if (R->files) {
        R->wrote = 1;
        if (R->replace && (st = remove_old_run(R, msg, msglen)) != SL_OK) return st;
        if ((st = write_config_json(R, msg, msglen)) != SL_OK) return st;
    }
    return SL_OK;
}

/* ------------------------------------------------------------ one step */

/* Global step g = e * S + t: the sampler's batch, forward, the loss over
 * every output level (deep supervision weights folded into the gradients),
 * backward, the optimiser step. Adds the level-0 term values to R->tsum
 * and returns the weighted loss in *loss_out and the step's lr in *lr. */
static sl_status train_step(run *R, epoch_state *es, int64_t e, int64_t t, double *loss_out, double *lr, char *msg,
                            size_t msglen)
{
    const int64_t g = e * R->cfg->steps_per_epoch + t, B = R->cfg->batch_size;
    const int threads = R->cfg->threads;
    /* distances in mm for volumes: the data's spacing, times the level's
     * down-sampling factors for the deep-supervision outputs; slices: 1 */
    const sl_forward_opts fo0 = {{R->spacing[0], R->spacing[1], R->spacing[2]}, NULL, threads, 1};
    sl_forward_opts fo1 = {{1.0, 1.0, 1.0}, NULL, threads, 0};
    sl_status st;
    if ((st = sl_sampler_batch(R->sp, g, R->x, R->y, NULL, msg, msglen)) != SL_OK) return st;
    sl_dims d = patch_dims(R, B, 1);
    if ((st = sl_unet_forward(R->net, R->x, &d, R->logits, msg, msglen)) != SL_OK) return st;
    double total_loss = 0.0, v;
    sl_dims ld = patch_dims(R, B, R->C);
    sl_target tg = {SL_TARGET_LABELS, R->y, NULL};
    if ((st = sl_loss_forward(es->loss, R->logits, &ld, &tg, &fo0, &v, R->grad[0], R->msg2, sizeof R->msg2)) != SL_OK)
        return sl_errf(msg, msglen, st, "train: epoch %lld step %lld: %s", (long long)e, (long long)t, R->msg2);
    for (int i = 0; i < es->nt; i++) R->tsum[R->stage_cols[es->stage][i]] += sl_loss_term_value(es->loss, i);
    if (R->nout > 1) {
        total_loss = R->dsw[0] * v;
        const int64_t n0 = B * R->C * R->pvox;
        for (int64_t i = 0; i < n0; i++) R->grad[0][i] *= R->dsw[0];
        for (int l = 1; l < R->nout; l++) {
            const float *lg;
            sl_dims od;
            if ((st = sl_unet_output(R->net, l, &lg, &od)) != SL_OK) return st;
            sl_dims yd = patch_dims(R, B, 1);
            if ((st = sl_nn_downsample_nearest_axes(R->ylev[l], R->y, &yd, sizeof(int32_t), R->lf[l], msg, msglen)) !=
                SL_OK)
                return st;
            sl_target tl = {SL_TARGET_LABELS, R->ylev[l], NULL};
            /* volumes: mm on the level's coarser grid; slices keep the level's
             * own pixels (as 2-D runs always did) */
            if (R->nd == 3)
                for (int a = 0; a < 3; a++) fo1.spacing[a] = R->spacing[a] * R->lf[l][a];
            if ((st = sl_loss_forward(es->loss, lg, &od, &tl, &fo1, &v, R->grad[l], R->msg2, sizeof R->msg2)) != SL_OK)
                return sl_errf(msg, msglen, st, "train: epoch %lld step %lld, output level %d: %s", (long long)e,
                               (long long)t, l, R->msg2);
            total_loss += R->dsw[l] * v;
            const int64_t nl = B * R->C * level_vox(R, l);
            for (int64_t i = 0; i < nl; i++) R->grad[l][i] *= R->dsw[l];
        }
    } else {
        total_loss = v;
    }
    if (!isfinite(total_loss))
        return sl_errf(msg, msglen, SL_ENONFINITE, "train: the loss is %g at epoch %lld step %lld (lower the lr?)",
                       total_loss, (long long)e, (long long)t);
    sl_unet_zero_grad(R->net);
    if (R->nout > 1) st = sl_unet_backward_ds(R->net, (const float *const *)R->grad, msg, msglen);
    else st = sl_unet_backward(R->net, R->grad[0], msg, msglen);
    if (st != SL_OK) return st;
    sl_optim_stats os;
    if ((st = sl_optim_step(R->opt, &os)) != SL_OK)
        return sl_errf(msg, msglen, st, "train: epoch %lld step %lld: the gradient is not finite", (long long)e,
                       (long long)t);
    *lr = os.lr;
    *loss_out = total_loss;
    return SL_OK;
}

/* The progress fields every event of epoch e shares. */
static void progress_epoch(run *R, const epoch_state *es, int64_t e)
{
    sl_train_progress *pg = &R->pg;
    pg->epoch = e;
    pg->lr = es->lr;
    pg->nterms = es->nt < 64 ? es->nt : 64;
    pg->term_names = es->term_names;
    pg->term_values = R->tcols;
    pg->seconds = now_s() - R->t0;
}

/* One epoch's steps; *stopped when the callback asked to stop. */
static sl_status run_steps(run *R, epoch_state *es, int64_t e, int *stopped, char *msg, size_t msglen)
{
    const int64_t S = R->cfg->steps_per_epoch, E = R->cfg->epochs, total = E * S;
    for (int64_t t = 0; t < S; t++) {
        const double ts = now_s();
        double loss = 0.0;
        sl_status st = train_step(R, es, e, t, &loss, &es->lr, msg, msglen);
        if (st != SL_OK) return st;
        es->lsum += loss;
        const double dt = now_s() - ts;
        R->step_time = isnan(R->step_time) ? dt : 0.9 * R->step_time + 0.1 * dt;
        if (!R->cb) continue;
        for (int i = 0; i < es->nt; i++) R->tcols[i] = R->tsum[R->stage_cols[es->stage][i]] / (double)(t + 1);
        const int64_t g = e * S + t;
        progress_epoch(R, es, e);
        R->pg.event = SL_TRAIN_STEP;
        R->pg.step = t + 1;
        R->pg.global_step = g + 1;
        R->pg.loss = loss;
        R->pg.epoch_loss = es->lsum / (double)(t + 1);
        R->pg.val_dice = NULL;
        R->pg.eta = R->step_time * (double)(total - g - 1) + R->val_time * (double)(E - e);
        if (R->cb(&R->pg, R->user)) {
            *stopped = 1;
            return SL_OK;
        }
    }
    return SL_OK;
}

/* ------------------------------------------------------------ end of epoch */

/* Validation, the log row, the checkpoint and log.csv, the EPOCH event. */
static sl_status end_epoch(run *R, epoch_state *es, int64_t e, int *stopped, char *msg, size_t msglen)
{
    const int64_t S = R->cfg->steps_per_epoch, E = R->cfg->epochs, total = E * S;
    const double tv = now_s();
    sl_status st = validate(R, R->vd, msg, msglen);
    if (st != SL_OK) return st;
    R->val_time = now_s() - tv;
    sl_train_log_row row;
    for (int i = 0; i < R->ncols; i++) R->tcols[i] = NAN;
    for (int i = 0; i < es->nt; i++) R->tcols[R->stage_cols[es->stage][i]] = R->tsum[R->stage_cols[es->stage][i]] / (double)S;
    row.epoch = e;
    row.lr = es->lr;
    row.loss = es->lsum / (double)S;
    row.stage = es->stage;
    row.terms = R->tcols;
    row.val_dice = R->vd;
    row.seconds = now_s() - es->t_start;
    if (add_row(R, &row) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    if (R->files) {
        if ((st = write_checkpoint(R, e + 1, msg, msglen)) != SL_OK) return st;
        if ((st = write_log_csv(R, msg, msglen)) != SL_OK) return st;
    }
    R->epochs_this_call++;
    if (R->cb) {
        for (int i = 0; i < es->nt; i++) R->tcols[i] = R->tsum[R->stage_cols[es->stage][i]] / (double)S;
        progress_epoch(R, es, e);
        R->pg.event = SL_TRAIN_EPOCH;
        R->pg.step = S;
        R->pg.global_step = (e + 1) * S;
        R->pg.loss = R->pg.epoch_loss = es->lsum / (double)S;
        R->pg.val_dice = R->vd;
        R->pg.eta = isnan(R->step_time) ? NAN
                                        : R->step_time * (double)(total - (e + 1) * S) + R->val_time * (double)(E - e - 1);
        if (R->cb(&R->pg, R->user)) *stopped = 1;
    }
    if (R->cfg->stop_after > 0 && R->epochs_this_call >= R->cfg->stop_after && e + 1 < E) *stopped = 1;
    return SL_OK;
}

/* Epochs start_epoch .. E-1 (or until stopped). */
static sl_status run_epochs(run *R, int64_t start_epoch, int *stopped, char *msg, size_t msglen)
{
    for (int64_t e = start_epoch; e < R->cfg->epochs && !*stopped; e++) {
        epoch_state es;
        memset(&es, 0, sizeof es);
        es.t_start = now_s();
        es.lr = NAN;
        sl_status st = sl_schedule_loss_for_epoch(R->sched, e, &es.loss, msg, msglen);
        if (st != SL_OK) return st;
        es.stage = sl_schedule_stage_of(R->sched, e);
        if (R->stage_lrs) { /* '@lr=': the stage's base lr (the lr schedule runs on over the global step) */
            const double slr = sl_schedule_stage_lr(R->sched, es.stage);
            sl_optim_set_lr(R->opt, isnan(slr) ? R->cfg->lr : slr);
        }
        es.nt = sl_loss_num_terms(es.loss);
        for (int i = 0; i < es.nt && i < 64; i++) es.term_names[i] = sl_loss_term_name(es.loss, i);
        for (int i = 0; i <= R->ncols; i++) R->tsum[i] = 0.0;
        sl_unet_set_training(R->net, 1);
        if ((st = run_steps(R, &es, e, stopped, msg, msglen)) != SL_OK) return st;
        if (*stopped) break;
        if ((st = end_epoch(R, &es, e, stopped, msg, msglen)) != SL_OK) return st;
    }
    return SL_OK;
}

/* ------------------------------------------------------------ the end */

/* Stopped early: the STOP event and a partial result (the checkpoint stays). */
static sl_status finish_stopped(run *R, sl_train_result *result)
{
    if (R->cb) {
        R->pg.event = SL_TRAIN_STOP;
        R->pg.val_dice = NULL;
        R->pg.seconds = now_s() - R->t0;
        R->cb(&R->pg, R->user);
    }
    if (result) {
        result->completed = 0;
        result->epochs_done = R->nrows;
        if (fill_result(R, result, NULL) != SL_OK) return SL_ENOMEM;
        result->seconds = now_s() - R->t0;
    }
    return SL_OK;
}

/* Completed: test metrics, model.bin, the final log and metrics.json (which
 * marks the run complete, so the checkpoint goes), the TEST event. */
static sl_status finish_test(run *R, sl_train_result *result, char *msg, size_t msglen)
{
    const int64_t E = R->cfg->epochs;
    sl_status st = test_metrics(R, R->metrics, msg, msglen);
    if (st != SL_OK) return st;
    if (R->files) {
        if ((st = sl_unet_save(R->net, NULL, R->p_model, msg, msglen)) != SL_OK) return st;
        if ((st = write_log_csv(R, msg, msglen)) != SL_OK) return st;
        if ((st = write_metrics_json(R, R->metrics, now_s() - R->t0, msg, msglen)) != SL_OK) return st;
        unlink(R->p_ckpt);
    }
    if (R->cb) {
        R->pg.event = SL_TRAIN_TEST;
        R->pg.epoch = E - 1;
        R->pg.val_dice = NULL;
        R->pg.seconds = now_s() - R->t0;
        R->pg.eta = 0.0;
        R->cb(&R->pg, R->user);
    }
    if (result) {
        result->completed = 1;
        result->epochs_done = E;
        if (fill_result(R, result, R->metrics) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
        result->seconds = now_s() - R->t0;
    }
    return SL_OK;
}

/* ------------------------------------------------------------ the run */

sl_status sl_train_run(const sl_train_config *cfg, sl_train_result *result, sl_train_callback cb, void *user,
                       char *msg, size_t msglen)
{
    const double t0 = now_s();
    if (result) {
        sl_train_result e = SL_TRAIN_RESULT_EMPTY;
        *result = e;
    }
    sl_status st = sl_train_config_check(cfg, msg, msglen);
    if (st != SL_OK) return st;
    run Rs;
    memset(&Rs, 0, sizeof Rs);
    run *R = &Rs;
    R->cfg = cfg;
    R->cb = cb;
    R->user = user;
    R->t0 = t0;
    R->lock_fd = -1;
    R->files = cfg->out_dir[0] != 0;
    R->step_time = NAN;
    int64_t start_epoch = 0;

    if ((st = setup_files(R, msg, msglen)) != SL_OK) goto done;
    if ((st = setup_data(R, msg, msglen)) != SL_OK) goto done;
    if ((st = setup_model(R, &start_epoch, msg, msglen)) != SL_OK) goto done;
    if ((st = setup_buffers(R, msg, msglen)) != SL_OK) goto done;

    sl_train_progress *pg = &R->pg;
    pg->epochs = cfg->epochs;
    pg->steps_per_epoch = cfg->steps_per_epoch;
    pg->total_steps = cfg->epochs * cfg->steps_per_epoch;
    pg->num_classes = R->C;
    pg->class_names = (const char *const *)R->class_names;
    pg->resumed = R->resuming;
    pg->eta = NAN;
    pg->epoch = start_epoch;
    pg->global_step = start_epoch * cfg->steps_per_epoch;
    pg->event = SL_TRAIN_START;
    int stopped = cb && cb(pg, user);
    if ((st = run_epochs(R, start_epoch, &stopped, msg, msglen)) != SL_OK) goto done;
    if (stopped) {
        if (finish_stopped(R, result) != SL_OK) st = sl_errf(msg, msglen, SL_ENOMEM, "train: out of memory");
    } else {
        st = finish_test(R, result, msg, msglen);
    }
done:
    if (st != SL_OK && result) {
        sl_train_result_free(result);
    }
    /* a folder made by this call for a run that never started goes again */
    if (st != SL_OK && R->files && R->created_dir && !R->wrote) {
        sl_dir_unlock(R->lock_fd, cfg->out_dir);
        R->lock_fd = -1;
        rmdir(cfg->out_dir);
    }
    sl_dir_unlock(R->lock_fd, NULL);
    free_run(R);
    return st;
}
