/*
 * The results store: one JSON file per run (data set, seed, entry),
 * written atomically once the run is evaluated. Its existence is what
 * marks the run done, so a killed benchmark loses at most the runs in
 * progress, and --resume reads these files back instead of training.
 * Doubles are written by cJSON, which prints 17 significant digits when 15
 * do not read back to the same value: the statistics of a resumed
 * benchmark equal those of an uninterrupted one bit for bit.
 */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jsonfile.h"
#include "bench_internal.h"
#include "fileio.h"
#include "outfile.h"

sl_status slb_run_alloc(slb_run *r)
{
    const int C = r->num_classes;
    r->class_names = calloc((size_t)C, sizeof *r->class_names);
    r->values = sl_calloc((int64_t)C * SLB_NMET * (r->n_cases > 0 ? r->n_cases : 1), sizeof *r->values);
    r->curve_loss = sl_calloc(r->nepochs > 0 ? r->nepochs : 1, sizeof *r->curve_loss);
    r->curve_val = sl_calloc((r->nepochs > 0 ? r->nepochs : 1) * (int64_t)C, sizeof *r->curve_val);
    r->overlay_cases = sl_calloc(r->noverlays > 0 ? r->noverlays : 1, sizeof *r->overlay_cases);
    if (!r->class_names || !r->values || !r->curve_loss || !r->curve_val || !r->overlay_cases) return SL_ENOMEM;
    r->class_names[0] = malloc(5);
    if (!r->class_names[0]) return SL_ENOMEM;
    memcpy(r->class_names[0], "mean", 5);
    return SL_OK;
}

void slb_run_derive_mean(slb_run *r)
{
    const int C = r->num_classes;
    for (int m = 0; m < SLB_NMET; m++) {
        double *mean = slb_value(r, 0, m);
        for (int64_t i = 0; i < r->n_cases; i++) {
            double s = 0;
            for (int c = 1; c < C; c++) s += slb_value(r, c, m)[i];
            mean[i] = C > 1 ? s / (C - 1) : NAN;
        }
    }
}

void slb_run_free(slb_run *r)
{
    if (!r) return;
    if (r->class_names)
        for (int c = 0; c < r->num_classes; c++) free(r->class_names[c]);
    free(r->class_names);
    free(r->values);
    free(r->curve_loss);
    free(r->curve_val);
    free(r->overlay_cases);
    memset(r, 0, sizeof *r);
}

sl_status slb_result_path(char *buf, size_t len, const char *dir, const sl_bench_preset *p, int d, int s, int e)
{
    if (p->entries[e].ensemble) { /* one run per data set */
        int n = snprintf(buf, len, "%s/%s/%s__ens__%s.json", dir, SLB_RESULTS_DIR, p->datasets[d].slug, p->entries[e].slug);
        return n < 0 || (size_t)n >= len ? SL_EINVAL : SL_OK;
    }
    char fold[32] = ""; /* only with folds: earlier benchmarks keep their file names */
    if (p->nfolds) snprintf(fold, sizeof fold, "__fold%d", slb_rep_fold(p, s));
    int n = snprintf(buf, len, "%s/%s/%s__seed%llu%s__%s.json", dir, SLB_RESULTS_DIR, p->datasets[d].slug,
                     (unsigned long long)slb_rep_seed(p, s), fold, p->entries[e].slug);
    return n < 0 || (size_t)n >= len ? SL_EINVAL : SL_OK;
}

/* ------------------------------------------------------------------ write */

/* A number as raw JSON text with 17 significant digits, which always reads
 * back to the same double (cJSON's own printer settles for 15 digits when
 * they read back to within an epsilon); NaN and Inf as null. */
cJSON *slb_json_exact(double v)
{
    char buf[40];
    if (!isfinite(v)) return cJSON_CreateNull();
    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

static int add_exact(cJSON *o, const char *key, double v)
{
    cJSON *x = slb_json_exact(v);
    return x && cJSON_AddItemToObject(o, key, x);
}

static cJSON *doubles(const double *v, int64_t n, int64_t stride)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < n; i++) {
        cJSON *x = slb_json_exact(v[i * stride]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *seed_json(uint64_t seed)
{
    if (seed <= ((uint64_t)1 << 53)) return cJSON_CreateNumber((double)seed);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
    return cJSON_CreateString(buf);
}

sl_status slb_run_write(const char *path, const sl_bench_preset *p, const slb_run *r, char *msg, size_t msglen)
{
    const sl_bench_entry *en = &p->entries[r->entry];
    cJSON *root = cJSON_CreateObject(), *o = NULL, *a = NULL;
    int ok = root && cJSON_AddStringToObject(root, "format", "segloss-bench-run") &&
             cJSON_AddNumberToObject(root, "version", 1) &&
             cJSON_AddStringToObject(root, "dataset", p->datasets[r->dataset].name) &&
             (en->ensemble ? cJSON_AddStringToObject(root, "seed", "ens") != NULL
                           : cJSON_AddItemToObject(root, "seed", seed_json(slb_rep_seed(p, r->seed)))) &&
             (!p->nfolds || en->ensemble || cJSON_AddNumberToObject(root, "fold", slb_rep_fold(p, r->seed))) &&
             cJSON_AddStringToObject(root, "entry", en->name) && cJSON_AddStringToObject(root, "loss", en->loss) &&
             cJSON_AddItemToObject(root, "tta", slb_tta_json(en)) && cJSON_AddBoolToObject(root, "int8", en->int8) &&
             cJSON_AddStringToObject(root, "status", r->failed ? "failed" : "ok") &&
             cJSON_AddStringToObject(root, "message", r->message) &&
             add_exact(root, "seconds_train", r->seconds_train) && add_exact(root, "seconds_eval", r->seconds_eval);
    /* only for a budget study's longer runs, so that other files keep their form */
    if (ok && en->budget != 1) ok = cJSON_AddNumberToObject(root, "budget", en->budget) != NULL;
    /* only for CRF entries, so that other files keep their form */
    if (ok && en->crf) ok = cJSON_AddBoolToObject(root, "crf", 1) != NULL;
    if (ok && en->postprocess) ok = cJSON_AddBoolToObject(root, "postprocess", 1) != NULL;
    if (ok && !r->failed) {
        const int C = r->num_classes;
        ok = (a = cJSON_AddArrayToObject(root, "classes")) != NULL;
        for (int c = 0; ok && c < C; c++) {
            cJSON *s = cJSON_CreateString(c == 0 ? "background" : r->class_names[c]);
            ok = s && cJSON_AddItemToArray(a, s);
        }
        ok = ok && cJSON_AddNumberToObject(root, "small_class", r->small_class) &&
             add_exact(root, "fraction", r->fraction) &&
             cJSON_AddNumberToObject(root, "num_params", (double)r->num_params) &&
             cJSON_AddNumberToObject(root, "cases", (double)r->n_cases) && (o = cJSON_AddObjectToObject(root, "metrics"));
        for (int c = 1; ok && c < C; c++) {
            cJSON *co = cJSON_AddObjectToObject(o, r->class_names[c]);
            ok = co != NULL;
            for (int m = 0; ok && m < SLB_NMET; m++) {
                cJSON *v = doubles(slb_value(r, c, m), r->n_cases, 1);
                ok = v && cJSON_AddItemToObject(co, slb_metric_names[m], v);
            }
        }
        cJSON *curve = ok ? cJSON_AddObjectToObject(root, "curve") : NULL, *vd = NULL;
        ok = curve && cJSON_AddItemToObject(curve, "loss", doubles(r->curve_loss, r->nepochs, 1)) &&
             (vd = cJSON_AddObjectToObject(curve, "val_dice"));
        for (int c = 1; ok && c < C; c++) ok = cJSON_AddItemToObject(vd, r->class_names[c], doubles(r->curve_val + c, r->nepochs, C));
        ok = ok && cJSON_AddItemToObject(root, "overlay_cases", cJSON_CreateArray());
        for (int64_t k = 0; ok && k < r->noverlays; k++) {
            cJSON *n = cJSON_CreateNumber((double)r->overlay_cases[k]);
            ok = n && cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(root, "overlay_cases"), n);
        }
    }
    sl_status st = sl_json_file_write(path, ok ? root : NULL, 0, "bench", msg, msglen);
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------------- read */

static const cJSON *member(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* n numbers (null reads as NaN) into v with a stride; 0 when malformed. */
static int read_doubles(const cJSON *a, int64_t n, double *v, int64_t stride, int allow_null)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    int64_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (cJSON_IsNumber(x)) v[i * stride] = x->valuedouble;
        else if (allow_null && cJSON_IsNull(x)) v[i * stride] = NAN;
        else return 0;
        i++;
    }
    return 1;
}

static sl_status parse_run(const cJSON *root, const char *path, const sl_bench_preset *p, int d, int s, int e, slb_run *r,
                           char *msg, size_t msglen)
{
    const sl_bench_entry *en = &p->entries[e];
    const cJSON *it;
    if (!cJSON_IsObject(root) || !(it = member(root, "format")) || !cJSON_IsString(it) ||
        strcmp(it->valuestring, "segloss-bench-run") || !(it = member(root, "version")) || !cJSON_IsNumber(it) ||
        it->valuedouble != 1)
        return sl_errf(msg, msglen, SL_EFORMAT, "%s is not a segloss-bench-run file (version 1)", path);
    const cJSON *ds = member(root, "dataset"), *en_ = member(root, "entry"), *loss = member(root, "loss"),
                *tta = member(root, "tta"), *int8 = member(root, "int8"), *seed = member(root, "seed"),
                *budget = member(root, "budget"), *crf = member(root, "crf"),
                *post = member(root, "postprocess"), *fold = member(root, "fold");
    char seedtext[48];
    const uint64_t sv = slb_rep_seed(p, s);
    snprintf(seedtext, sizeof seedtext, "%llu", (unsigned long long)sv);
    int seed_ok = seed && ((cJSON_IsNumber(seed) && seed->valuedouble == (double)sv && sv <= ((uint64_t)1 << 53)) ||
                           (cJSON_IsString(seed) && !strcmp(seed->valuestring, seedtext)));
    /* "fold" exactly when the preset has folds; an ensemble's "seed" is "ens" */
    if (en->ensemble) {
        snprintf(seedtext, sizeof seedtext, "ens");
        seed_ok = cJSON_IsString(seed) && !strcmp(seed->valuestring, "ens") && !fold;
    } else if (p->nfolds ? !cJSON_IsNumber(fold) || fold->valuedouble != slb_rep_fold(p, s) : fold != NULL) {
        seed_ok = 0;
    }
    if (p->nfolds && !en->ensemble) snprintf(seedtext + strlen(seedtext), sizeof seedtext - strlen(seedtext), " / fold %d", slb_rep_fold(p, s));
    if (!cJSON_IsString(ds) || strcmp(ds->valuestring, p->datasets[d].name) || !cJSON_IsString(en_) ||
        strcmp(en_->valuestring, en->name) || !cJSON_IsString(loss) || strcmp(loss->valuestring, en->loss) ||
        !slb_tta_json_equal(tta, en) || !seed_ok || (post ? !cJSON_IsBool(post) || cJSON_IsTrue(post) != (en->postprocess != 0) : en->postprocess != 0) ||
        /* files written before INT8 entries existed have no "int8": false */
        (int8 ? !cJSON_IsBool(int8) || cJSON_IsTrue(int8) != (en->int8 != 0) : en->int8 != 0) ||
        /* no "budget": 1, the preset's own */
        (budget ? !cJSON_IsNumber(budget) || budget->valuedouble != en->budget : en->budget != 1) ||
        /* no "crf": false */
        (crf ? !cJSON_IsBool(crf) || cJSON_IsTrue(crf) != (en->crf != 0) : en->crf != 0))
        return sl_errf(msg, msglen, SL_EBADSTATE, "%s holds another run than %s / seed %s / %s", path, p->datasets[d].name,
                       seedtext, en->name);
    r->dataset = d;
    r->seed = s;
    r->entry = e;
    const cJSON *status = member(root, "status"), *message = member(root, "message");
    if (!cJSON_IsString(status) || (strcmp(status->valuestring, "ok") && strcmp(status->valuestring, "failed")) ||
        !cJSON_IsString(message))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: status must be \"ok\" or \"failed\", with a message", path);
    snprintf(r->message, sizeof r->message, "%s", message->valuestring);
    const cJSON *tr = member(root, "seconds_train"), *ev = member(root, "seconds_eval");
    if (!cJSON_IsNumber(tr) || !cJSON_IsNumber(ev)) return sl_errf(msg, msglen, SL_EFORMAT, "%s: seconds_train/seconds_eval missing", path);
    r->seconds_train = tr->valuedouble;
    r->seconds_eval = ev->valuedouble;
    if (!strcmp(status->valuestring, "failed")) {
        r->failed = 1;
        return SL_OK;
    }
    const cJSON *classes = member(root, "classes"), *small = member(root, "small_class"), *frac = member(root, "fraction"),
                *cases = member(root, "cases"), *np = member(root, "num_params"), *metrics = member(root, "metrics"),
                *curve = member(root, "curve"), *ov = member(root, "overlay_cases");
    int C = cJSON_IsArray(classes) ? cJSON_GetArraySize(classes) : 0;
    if (C < 2 || C > SL_DATA_MAX_CLASSES || !cJSON_IsNumber(small) || small->valuedouble < 1 || small->valuedouble >= C ||
        small->valuedouble != floor(small->valuedouble) || !cJSON_IsNumber(frac) || !cJSON_IsNumber(cases) ||
        cases->valuedouble < 1 || cases->valuedouble > 1e9 || cases->valuedouble != floor(cases->valuedouble) ||
        !cJSON_IsNumber(np) || !cJSON_IsObject(metrics) || !cJSON_IsObject(curve) || !cJSON_IsArray(ov))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: classes, small_class, fraction, cases, num_params, metrics, curve or "
                                                 "overlay_cases missing or malformed", path);
    const cJSON *closs = member(curve, "loss"), *cval = member(curve, "val_dice");
    if (!cJSON_IsArray(closs) || !cJSON_IsObject(cval)) return sl_errf(msg, msglen, SL_EFORMAT, "%s: curve is malformed", path);
    r->num_classes = C;
    r->small_class = (int)small->valuedouble;
    r->fraction = frac->valuedouble;
    r->n_cases = (int64_t)cases->valuedouble;
    r->num_params = (int64_t)np->valuedouble;
    r->nepochs = cJSON_GetArraySize(closs);
    r->noverlays = cJSON_GetArraySize(ov);
    if (slb_run_alloc(r) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory reading %s", path);
    for (int c = 1; c < C; c++) {
        const cJSON *nm = cJSON_GetArrayItem(classes, c);
        if (!cJSON_IsString(nm) || !(r->class_names[c] = strdup(nm->valuestring)))
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: classes[%d] must be a string", path, c);
        const cJSON *co = member(metrics, nm->valuestring);
        for (int m = 0; m < SLB_NMET; m++)
            if (!co || !read_doubles(member(co, slb_metric_names[m]), r->n_cases, slb_value(r, c, m), 1, 0))
                return sl_errf(msg, msglen, SL_EFORMAT, "%s: metrics.%s.%s must hold %lld numbers", path, nm->valuestring,
                               slb_metric_names[m], (long long)r->n_cases);
        if (!read_doubles(member(cval, nm->valuestring), r->nepochs, r->curve_val + c, C, 1))
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: curve.val_dice.%s must hold %lld numbers", path, nm->valuestring,
                           (long long)r->nepochs);
    }
    if (!read_doubles(closs, r->nepochs, r->curve_loss, 1, 1)) return sl_errf(msg, msglen, SL_EFORMAT, "%s: curve.loss is malformed", path);
    int64_t k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, ov)
    {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= 1e12 || x->valuedouble != floor(x->valuedouble))
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: overlay_cases must hold case indices", path);
        r->overlay_cases[k++] = (int64_t)x->valuedouble;
    }
    /* the mean over the foreground classes of the validation curve, as built */
    for (int64_t ep = 0; ep < r->nepochs; ep++) {
        double sum = 0;
        for (int c = 1; c < C; c++) sum += r->curve_val[ep * C + c];
        r->curve_val[ep * C] = sum / (C - 1);
    }
    slb_run_derive_mean(r);
    return SL_OK;
}

sl_status slb_run_read(const char *path, const sl_bench_preset *p, int d, int s, int e, slb_run *r, char *msg, size_t msglen)
{
    memset(r, 0, sizeof *r);
    cJSON *root;
    sl_status st = sl_json_file_read(path, &root, msg, msglen);
    if (st != SL_OK) return st;
    st = parse_run(root, path, p, d, s, e, r, msg, msglen);
    cJSON_Delete(root);
    if (st != SL_OK) slb_run_free(r);
    return st;
}
