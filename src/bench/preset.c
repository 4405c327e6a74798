/*
 * Benchmark presets: parsing (cJSON), checking, and the canonical form.
 *
 * A preset names the matrix (data sets x seeds x losses) and the one
 * training configuration every run shares. The configuration of a data
 * set is built as a JSON object in config.json's layout — the preset's
 * "train" section, then the data set's own "train", then its "data" and
 * "data_opts", merged key by key — and read by the trainer's own parser,
 * so a preset accepts exactly the keys of config.json, with the trainer's
 * checks and messages.
 *
 * The canonical form (sl_bench_preset.json, saved as DIR/preset.json) is a
 * preset again: every data set carries its whole resolved configuration,
 * so defaults that change later cannot change what a saved benchmark
 * meant, and parse(canonical) has the same canonical form.
 */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bench_internal.h"
#include "search.h"
#include "segloss/schedule.h"
#include "train/train_internal.h"

#define MAX_SEEDS 64
#define MAX_DATASETS 64
#define MAX_ENTRIES 256

static const cJSON *member(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static sl_status only_keys(const cJSON *o, const char *where, const char *const *keys, int n, char *msg, size_t msglen)
{
    if (!cJSON_IsObject(o)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be an object", where);
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        int found = 0;
        for (int i = 0; i < n && !found; i++) found = it->string && strcmp(it->string, keys[i]) == 0;
        if (!found)
            return sl_errf(msg, msglen, SL_EUNKNOWN, "preset: unknown key %s%s%s", where[0] ? where : "", where[0] ? "." : "",
                           it->string ? it->string : "?");
    }
    return SL_OK;
}

static sl_status get_name(const cJSON *it, const char *where, char *dst, size_t cap, char *msg, size_t msglen)
{
    if (!cJSON_IsString(it)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be a string", where);
    size_t n = strlen(it->valuestring);
    if (n == 0 || n >= cap)
        return sl_errf(msg, msglen, SL_ERANGE, "preset: %s must have 1 to %zu characters", where, cap - 1);
    for (const char *c = it->valuestring; *c; c++)
        if ((unsigned char)*c < 0x20)
            return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s holds a control character", where);
    memcpy(dst, it->valuestring, n + 1);
    return SL_OK;
}

static sl_status get_number(const cJSON *it, const char *where, double lo, double hi, int integral, double *out,
                            char *msg, size_t msglen)
{
    if (!cJSON_IsNumber(it)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be a number", where);
    double v = it->valuedouble;
    if (!(v >= lo && v <= hi) || (integral && v != floor(v)))
        return sl_errf(msg, msglen, SL_ERANGE, "preset: %s = %g is not %s in [%g, %g]", where, v,
                       integral ? "an integer" : "a number", lo, hi);
    *out = v;
    return SL_OK;
}

static sl_status get_u64(const cJSON *it, const char *where, uint64_t *out, char *msg, size_t msglen)
{
    if (cJSON_IsString(it)) { /* seeds beyond 2^53 do not survive a JSON number */
        char *end;
        const char *s = it->valuestring;
        unsigned long long v = strtoull(s, &end, 10);
        if (!s[0] || *end || s[0] == '-' || s[0] == '+' || s[0] == ' ')
            return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s '%s' is not an unsigned integer", where, s);
        *out = (uint64_t)v;
        return SL_OK;
    }
    double v = 0;
    sl_status st = get_number(it, where, 0, 9007199254740992.0, 1, &v, msg, msglen);
    if (st == SL_OK) *out = (uint64_t)v;
    return st;
}

static sl_status get_bool(const cJSON *it, const char *where, int *out, char *msg, size_t msglen)
{
    if (!cJSON_IsBool(it)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be true or false", where);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return SL_OK;
}

/* dst[key] = src[key] for every key, recursively for objects on both sides. */
static int merge_into(cJSON *dst, const cJSON *src)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, src)
    {
        cJSON *have = cJSON_GetObjectItemCaseSensitive(dst, it->string);
        if (have && cJSON_IsObject(have) && cJSON_IsObject(it)) {
            if (!merge_into(have, it)) return 0;
            continue;
        }
        cJSON *copy = cJSON_Duplicate(it, 1);
        if (!copy) return 0;
        if (have) cJSON_ReplaceItemInObjectCaseSensitive(dst, it->string, copy);
        else cJSON_AddItemToObject(dst, it->string, copy);
    }
    return 1;
}

/* A "train" section: config.json's sections that a preset may set. The
 * loss comes from the entries, the seed from "seeds", the data from the
 * data sets. */
static sl_status check_train(const cJSON *o, const char *where, char *msg, size_t msglen)
{
    static const char *const keys[] = {"data_opts", "network", "optimizer", "training"};
    sl_status st = only_keys(o, where, keys, 4, msg, msglen);
    if (st != SL_OK) return st;
    const cJSON *tr = member(o, "training");
    if (cJSON_IsObject(tr) && member(tr, "seed"))
        return sl_errf(msg, msglen, SL_EUNKNOWN, "preset: %s.training.seed is not a preset key (the runs take \"seeds\")", where);
    return SL_OK;
}

static sl_status parse_dataset(const cJSON *dj, const cJSON *train, int i, sl_bench_dataset *d, char *msg, size_t msglen)
{
    static const char *const keys[] = {"name", "data", "data_opts", "train", "sweep"};
    char where[64], sub[600];
    snprintf(where, sizeof where, "datasets[%d]", i);
    sl_status st = only_keys(dj, where, keys, 5, msg, msglen);
    if (st != SL_OK) return st;
    const cJSON *data = member(dj, "data"), *it;
    char w2[96];
    snprintf(w2, sizeof w2, "%s.data", where);
    if (!data) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s needs \"data\" (phantom, phantom3d, colin or nifti:DIR)", where);
    if (!cJSON_IsString(data)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be a string", w2);
    snprintf(w2, sizeof w2, "%s.name", where);
    if ((it = member(dj, "name"))) {
        if ((st = get_name(it, w2, d->name, sizeof d->name, msg, msglen)) != SL_OK) return st;
    } else if ((st = get_name(data, w2, d->name, sizeof d->name, msg, msglen)) != SL_OK) {
        return st;
    }
    slb_slug(d->name, d->slug);
    snprintf(w2, sizeof w2, "%s.sweep", where);
    if ((it = member(dj, "sweep")) && (st = get_bool(it, w2, &d->sweep, msg, msglen)) != SL_OK) return st;
    snprintf(w2, sizeof w2, "%s.train", where);
    const cJSON *own = member(dj, "train");
    if (own && (st = check_train(own, w2, msg, msglen)) != SL_OK) return st;
    const cJSON *dopts = member(dj, "data_opts");
    if (dopts && !cJSON_IsObject(dopts)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s.data_opts must be an object", where);

    /* config.json layout: train, the data set's train, then its data */
    cJSON *cfg = cJSON_CreateObject();
    int ok = cfg != NULL;
    if (ok && train) ok = merge_into(cfg, train);
    if (ok && own) ok = merge_into(cfg, own);
    if (ok) {
        cJSON *wrap = cJSON_CreateObject();
        ok = wrap && cJSON_AddItemToObject(wrap, "data", cJSON_Duplicate(data, 1));
        if (ok && dopts) ok = cJSON_AddItemToObject(wrap, "data_opts", cJSON_Duplicate(dopts, 1));
        ok = ok && merge_into(cfg, wrap);
        cJSON_Delete(wrap);
    }
    if (!ok) {
        cJSON_Delete(cfg);
        return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    }
    sl_train_config c = SL_TRAIN_CONFIG_DEFAULT;
    st = slt_config_apply(&c, cfg, sub, sizeof sub);
    cJSON_Delete(cfg);
    if (st == SL_OK) st = sl_train_config_check(&c, sub, sizeof sub);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "preset: %s (%s): %s", where, d->name, sub);
    d->config = c;
    return SL_OK;
}

static sl_status parse_entry(const cJSON *ej, int i, const int default_tta[2], uint64_t seed, sl_bench_entry *e, char *msg, size_t msglen)
{
    char where[64], w2[96], sub[600];
    snprintf(where, sizeof where, "losses[%d]", i);
    sl_status st;
    const cJSON *search = NULL;
    e->tta = default_tta[0];
    e->tta_n = default_tta[1];
    e->budget = 1;
    if (cJSON_IsString(ej)) {
        if ((st = get_name(ej, where, e->name, sizeof e->name, msg, msglen)) != SL_OK) return st;
        snprintf(e->loss, sizeof e->loss, "%s", ej->valuestring);
    } else if (cJSON_IsObject(ej)) {
        static const char *const keys[] = {"name", "loss", "tta", "int8", "crf", "search", "postprocess", "ensemble"};
        if ((st = only_keys(ej, where, keys, 8, msg, msglen)) != SL_OK) return st;
        const cJSON *loss = member(ej, "loss"), *it;
        if (!loss) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s needs \"loss\" (a spec or schedule)", where);
        snprintf(w2, sizeof w2, "%s.loss", where);
        if (!cJSON_IsString(loss)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be a string", w2);
        if (strlen(loss->valuestring) >= sizeof e->loss)
            return sl_errf(msg, msglen, SL_ERANGE, "preset: %s is longer than %zu characters", w2, sizeof e->loss - 1);
        snprintf(e->loss, sizeof e->loss, "%s", loss->valuestring);
        snprintf(w2, sizeof w2, "%s.name", where);
        it = member(ej, "name");
        if ((st = get_name(it ? it : loss, w2, e->name, sizeof e->name, msg, msglen)) != SL_OK) return st;
        snprintf(w2, sizeof w2, "%s.tta", where);
        if ((it = member(ej, "tta")) && (st = slb_get_tta(it, w2, &e->tta, &e->tta_n, msg, msglen)) != SL_OK) return st;
        snprintf(w2, sizeof w2, "%s.postprocess", where);
        if ((it = member(ej, "postprocess")) && (st = get_bool(it, w2, &e->postprocess, msg, msglen)) != SL_OK) return st;
        snprintf(w2, sizeof w2, "%s.int8", where);
        if ((it = member(ej, "int8")) && (st = get_bool(it, w2, &e->int8, msg, msglen)) != SL_OK) return st;
        snprintf(w2, sizeof w2, "%s.crf", where);
        if ((it = member(ej, "crf")) && (st = get_bool(it, w2, &e->crf, msg, msglen)) != SL_OK) return st;
        search = member(ej, "search");
        snprintf(w2, sizeof w2, "%s.ensemble", where);
        if ((it = member(ej, "ensemble")) && (st = get_bool(it, w2, &e->ensemble, msg, msglen)) != SL_OK) return st;
        if (e->ensemble && e->int8)
            return sl_errf(msg, msglen, SL_EINVAL, "preset: %s: an ensemble entry averages float models; int8 is not for it", where);
    } else {
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s must be a loss spec or an object {name, loss, tta, int8, crf, search, postprocess, ensemble}", where);
    }
    slb_slug(e->name, e->slug);
    /* free weights: search.c checks them and every candidate's spec */
    if (search) return slb_search_parse(search, e->loss, e->name, seed, where, &e->search, msg, msglen);
    char free_name[64];
    if (slb_search_first_free(e->loss, free_name, sizeof free_name))
        return sl_errf(msg, msglen, SL_EINVAL, "preset: %s (%s): free weight '%s' has no range (give the entry a \"search\")", where,
                       e->name, free_name);
    sl_schedule *s = NULL;
    if ((st = sl_schedule_create(e->loss, &s, sub, sizeof sub)) != SL_OK)
        return sl_errf(msg, msglen, st, "preset: %s (%s): %s", where, e->name, sub);
    sl_schedule_free(s);
    return SL_OK;
}

/* Builds p->json, the canonical preset. */
static sl_status canonical(sl_bench_preset *p)
{
    cJSON *root = cJSON_CreateObject(), *a = NULL, *o = NULL;
    int ok = root && cJSON_AddStringToObject(root, "format", "segloss-bench-preset") &&
             cJSON_AddNumberToObject(root, "version", 1) && cJSON_AddStringToObject(root, "name", p->name) &&
             cJSON_AddStringToObject(root, "description", p->description) &&
             cJSON_AddStringToObject(root, "baseline", p->entries[p->baseline].name) &&
             (a = cJSON_AddArrayToObject(root, "seeds"));
    for (int s = 0; ok && s < p->nseeds; s++) {
        cJSON *n;
        if (p->seeds[s] <= ((uint64_t)1 << 53)) n = cJSON_CreateNumber((double)p->seeds[s]);
        else {
            char buf[32];
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)p->seeds[s]);
            n = cJSON_CreateString(buf);
        }
        ok = n && cJSON_AddItemToArray(a, n);
    }
    ok = ok && (a = cJSON_AddArrayToObject(root, "datasets"));
    for (int d = 0; ok && d < p->ndatasets; d++) {
        const sl_bench_dataset *ds = &p->datasets[d];
        cJSON *cfg = slt_config_json(&ds->config);
        ok = cfg && (o = cJSON_CreateObject()) && cJSON_AddItemToArray(a, o) && cJSON_AddStringToObject(o, "name", ds->name) &&
             cJSON_AddStringToObject(o, "data", ds->config.data) && cJSON_AddBoolToObject(o, "sweep", ds->sweep);
        if (ok) {
            /* what is left of config.json is the data set's "train" */
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, "format");
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, "version");
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, "data");
            cJSON_DeleteItemFromObjectCaseSensitive(cfg, "loss");
            cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "training"), "seed");
            ok = cJSON_AddItemToObject(o, "train", cfg);
            cfg = NULL;
        }
        cJSON_Delete(cfg);
    }
    ok = ok && (a = cJSON_AddArrayToObject(root, "losses"));
    for (int e = 0; ok && e < p->nbase_entries; e++) {
        const sl_bench_entry *en = &p->entries[e];
        ok = (o = cJSON_CreateObject()) && cJSON_AddItemToArray(a, o) && cJSON_AddStringToObject(o, "name", en->name) &&
             cJSON_AddStringToObject(o, "loss", en->loss) && cJSON_AddItemToObject(o, "tta", slb_tta_json(en));
        /* only when set, so that presets without INT8 or ensemble entries keep their form */
        if (ok && en->int8) ok = cJSON_AddBoolToObject(o, "int8", 1) != NULL;
        if (ok && en->crf) ok = cJSON_AddBoolToObject(o, "crf", 1) != NULL;
        if (ok && en->search) ok = cJSON_AddItemToObject(o, "search", slb_search_json(en->search));
        if (ok && en->postprocess) ok = cJSON_AddBoolToObject(o, "postprocess", 1) != NULL;
        if (ok && en->ensemble) ok = cJSON_AddBoolToObject(o, "ensemble", 1) != NULL;
    }
    /* only with folds or a study, so that other presets keep their form */
    if (ok && p->nfolds) ok = cJSON_AddNumberToObject(root, "folds", p->nfolds) != NULL;
    if (ok && p->nbudgets) ok = (a = cJSON_AddArrayToObject(root, "budget_study")) != NULL;
    for (int k = 0; ok && k < p->nbudgets; k++) ok = cJSON_AddItemToArray(a, cJSON_CreateNumber(p->budgets[k]));
    ok = ok && (o = cJSON_AddObjectToObject(root, "evaluation")) &&
         cJSON_AddNumberToObject(o, "bootstrap", (double)p->bootstrap) && cJSON_AddNumberToObject(o, "ci_level", p->ci_level) &&
         cJSON_AddNumberToObject(o, "stats_seed", (double)p->stats_seed) &&
         cJSON_AddNumberToObject(o, "overlay_cases", p->overlay_cases) &&
         cJSON_AddNumberToObject(o, "nsd_tolerance", p->nsd_tolerance);
    if (ok) p->json = cJSON_Print(root);
    cJSON_Delete(root);
    return ok && p->json ? SL_OK : SL_ENOMEM;
}

/* "budget_study": [1, F2, ...]: the losses repeated at each factor times the
 * epochs, named "NAME @Fx" (bench.h, sl_bench_preset). */
static sl_status parse_budget_study(const cJSON *it, sl_bench_preset *p, char *msg, size_t msglen)
{
    const int nb = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : 0;
    if (nb < 2 || nb > SL_BENCH_MAX_BUDGETS)
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: budget_study must be an array of 2 to %d budget factors, e.g. [1, 4]",
                       SL_BENCH_MAX_BUDGETS);
    const cJSON *el;
    int k = 0;
    cJSON_ArrayForEach(el, it)
    {
        if (!cJSON_IsNumber(el) || el->valuedouble != floor(el->valuedouble) || el->valuedouble < 1 || el->valuedouble > 64)
            return sl_errf(msg, msglen, SL_ERANGE, "preset: budget_study[%d] must be an integer in [1, 64]", k);
        p->budgets[k] = (int)el->valuedouble;
        if (k == 0 && p->budgets[0] != 1)
            return sl_errf(msg, msglen, SL_ERANGE, "preset: budget_study must start with 1 (the preset's own budget)");
        if (k > 0 && p->budgets[k] <= p->budgets[k - 1])
            return sl_errf(msg, msglen, SL_ERANGE, "preset: budget_study must increase");
        k++;
    }
    const int nbase = p->nentries;
    if ((int64_t)nbase * nb > MAX_ENTRIES)
        return sl_errf(msg, msglen, SL_ERANGE, "preset: the budget study makes %d entries, more than %d", nbase * nb, MAX_ENTRIES);
    sl_bench_entry *en = realloc(p->entries, (size_t)(nbase * nb) * sizeof *en);
    if (!en) return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    p->entries = en;
    for (int b = 1; b < nb; b++)
        for (int i = 0; i < nbase; i++) {
            sl_bench_entry *e = &en[b * nbase + i];
            *e = en[i];
            e->budget = p->budgets[b];
            /* from e's own copy of the name: the compiler cannot tell e from en[i] (b >= 1 makes them two) */
            char base[sizeof e->name];
            memcpy(base, e->name, sizeof base);
            int n = snprintf(e->name, sizeof e->name, "%s @%dx", base, p->budgets[b]);
            if (n < 0 || (size_t)n >= sizeof e->name)
                return sl_errf(msg, msglen, SL_ERANGE, "preset: the budget study's name of '%s' is longer than %d characters",
                               en[i].name, SL_BENCH_NAME - 1);
            slb_slug(e->name, e->slug);
        }
    p->nentries = nbase * nb;
    p->nbudgets = nb;
    for (int a = 0; a < p->nentries; a++)
        for (int b = a + 1; b < p->nentries; b++)
            if (!strcmp(en[a].name, en[b].name) || !strcmp(en[a].slug, en[b].slug))
                return sl_errf(msg, msglen, SL_EINVAL, "preset: losses '%s' and '%s' have the same name or file name", en[a].name,
                               en[b].name);
    return SL_OK;
}

/* The entry an ensemble entry e averages: the first non-ensemble entry
 * with its loss and budget (whose job trains them), or -1. */
int slb_ensemble_source(const sl_bench_preset *p, int e)
{
    for (int k = 0; k < p->nentries; k++)
        if (!p->entries[k].ensemble && !strcmp(p->entries[k].loss, p->entries[e].loss) &&
            p->entries[k].budget == p->entries[e].budget)
            return k;
    return -1;
}

/* Every ensemble entry shares trainings (no training of its own) and has
 * two or more of them. */
static sl_status check_ensembles(const sl_bench_preset *p, char *msg, size_t msglen)
{
    for (int e = 0; e < p->nentries; e++) {
        if (!p->entries[e].ensemble) continue;
        if (slb_ensemble_source(p, e) < 0)
            return sl_errf(msg, msglen, SL_EINVAL,
                           "preset: the ensemble entry '%s' needs an entry that trains its loss '%s' (an ensemble trains nothing)",
                           p->entries[e].name, p->entries[e].loss);
        if (p->nseeds * (p->nfolds ? p->nfolds : 1) < 2)
            return sl_errf(msg, msglen, SL_EINVAL, "preset: the ensemble entry '%s' needs 2 or more seeds or folds to average",
                           p->entries[e].name);
    }
    return SL_OK;
}

static sl_status parse_root(const cJSON *root, sl_bench_preset *p, char *msg, size_t msglen)
{
    static const char *const keys[] = {"format", "version", "name", "description", "baseline", "seeds",
                                       "train", "datasets", "losses", "evaluation", "budget_study", "folds"};
    sl_status st = only_keys(root, "", keys, 12, msg, msglen);
    if (st != SL_OK) return st == SL_EFORMAT ? sl_errf(msg, msglen, st, "preset: not a JSON object") : st;
    const cJSON *it, *el;
    double v = 0;
    if ((it = member(root, "format")) && (!cJSON_IsString(it) || strcmp(it->valuestring, "segloss-bench-preset")))
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: format is not \"segloss-bench-preset\"");
    if ((it = member(root, "version")) && (!cJSON_IsNumber(it) || it->valuedouble != 1))
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: version is not 1 (written by a newer segloss?)");
    if (!(it = member(root, "name"))) return sl_errf(msg, msglen, SL_EFORMAT, "preset: \"name\" is missing");
    if ((st = get_name(it, "name", p->name, sizeof p->name, msg, msglen)) != SL_OK) return st;
    if ((it = member(root, "description"))) {
        if (!cJSON_IsString(it)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: description must be a string");
        if (strlen(it->valuestring) >= sizeof p->description)
            return sl_errf(msg, msglen, SL_ERANGE, "preset: description is longer than %zu characters", sizeof p->description - 1);
        snprintf(p->description, sizeof p->description, "%s", it->valuestring);
    }

    /* evaluation first: its tta is the entries' default */
    int default_tta[2] = {0, 0};
    p->bootstrap = 2000;
    p->ci_level = 0.95;
    p->stats_seed = 1;
    p->overlay_cases = 3;
    p->nsd_tolerance = 1.0;
    if ((it = member(root, "evaluation"))) {
        static const char *const ek[] = {"tta", "bootstrap", "ci_level", "stats_seed", "overlay_cases", "nsd_tolerance"};
        if ((st = only_keys(it, "evaluation", ek, 6, msg, msglen)) != SL_OK) return st;
        if ((el = member(it, "tta")) && (st = slb_get_tta(el, "evaluation.tta", &default_tta[0], &default_tta[1], msg, msglen)) != SL_OK)
            return st;
        if ((el = member(it, "bootstrap"))) {
            if ((st = get_number(el, "evaluation.bootstrap", 1, 1e7, 1, &v, msg, msglen)) != SL_OK) return st;
            p->bootstrap = (int64_t)v;
        }
        if ((el = member(it, "ci_level"))) {
            if ((st = get_number(el, "evaluation.ci_level", 1e-6, 1 - 1e-6, 0, &p->ci_level, msg, msglen)) != SL_OK) return st;
        }
        if ((el = member(it, "stats_seed")) && (st = get_u64(el, "evaluation.stats_seed", &p->stats_seed, msg, msglen)) != SL_OK)
            return st;
        if ((el = member(it, "overlay_cases"))) {
            if ((st = get_number(el, "evaluation.overlay_cases", 0, 50, 1, &v, msg, msglen)) != SL_OK) return st;
            p->overlay_cases = (int)v;
        }
        if ((el = member(it, "nsd_tolerance")) &&
            (st = get_number(el, "evaluation.nsd_tolerance", 0, 1e6, 0, &p->nsd_tolerance, msg, msglen)) != SL_OK)
            return st;
    }

    /* seeds */
    if (!(it = member(root, "seeds"))) return sl_errf(msg, msglen, SL_EFORMAT, "preset: \"seeds\" is missing");
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) < 1 || cJSON_GetArraySize(it) > MAX_SEEDS)
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: seeds must be an array of 1 to %d seeds", MAX_SEEDS);
    p->nseeds = cJSON_GetArraySize(it);
    if (!(p->seeds = calloc((size_t)p->nseeds, sizeof *p->seeds))) return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    int k = 0;
    cJSON_ArrayForEach(el, it)
    {
        char w[32];
        snprintf(w, sizeof w, "seeds[%d]", k);
        if ((st = get_u64(el, w, &p->seeds[k], msg, msglen)) != SL_OK) return st;
        for (int j = 0; j < k; j++)
            if (p->seeds[j] == p->seeds[k]) return sl_errf(msg, msglen, SL_EINVAL, "preset: seed %llu appears twice", (unsigned long long)p->seeds[k]);
        k++;
    }

    if ((it = member(root, "folds"))) {
        if ((st = get_number(it, "folds", 2, SL_DATA_MAX_FOLDS, 1, &v, msg, msglen)) != SL_OK) return st;
        p->nfolds = (int)v;
    }

    /* data sets */
    const cJSON *train = member(root, "train");
    if (train && (st = check_train(train, "train", msg, msglen)) != SL_OK) return st;
    if (!(it = member(root, "datasets"))) return sl_errf(msg, msglen, SL_EFORMAT, "preset: \"datasets\" is missing");
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) < 1 || cJSON_GetArraySize(it) > MAX_DATASETS)
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: datasets must be an array of 1 to %d data sets", MAX_DATASETS);
    p->ndatasets = cJSON_GetArraySize(it);
    if (!(p->datasets = calloc((size_t)p->ndatasets, sizeof *p->datasets)))
        return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    k = 0;
    cJSON_ArrayForEach(el, it)
    {
        if (!cJSON_IsObject(el)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: datasets[%d] must be an object", k);
        if ((st = parse_dataset(el, train, k, &p->datasets[k], msg, msglen)) != SL_OK) return st;
        for (int j = 0; j < k; j++)
            if (!strcmp(p->datasets[j].name, p->datasets[k].name) || !strcmp(p->datasets[j].slug, p->datasets[k].slug))
                return sl_errf(msg, msglen, SL_EINVAL, "preset: data sets '%s' and '%s' have the same name or file name",
                               p->datasets[j].name, p->datasets[k].name);
        k++;
    }

    /* losses */
    if (!(it = member(root, "losses"))) return sl_errf(msg, msglen, SL_EFORMAT, "preset: \"losses\" is missing");
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) < 1 || cJSON_GetArraySize(it) > MAX_ENTRIES)
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: losses must be an array of 1 to %d entries", MAX_ENTRIES);
    p->nentries = cJSON_GetArraySize(it);
    if (!(p->entries = calloc((size_t)p->nentries, sizeof *p->entries)))
        return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    k = 0;
    cJSON_ArrayForEach(el, it)
    {
        if ((st = parse_entry(el, k, default_tta, p->stats_seed, &p->entries[k], msg, msglen)) != SL_OK) return st;
        for (int j = 0; j < k; j++)
            if (!strcmp(p->entries[j].name, p->entries[k].name) || !strcmp(p->entries[j].slug, p->entries[k].slug))
                return sl_errf(msg, msglen, SL_EINVAL, "preset: losses '%s' and '%s' have the same name or file name",
                               p->entries[j].name, p->entries[k].name);
        k++;
    }

    p->nbase_entries = p->nentries;
    if ((it = member(root, "budget_study")) && (st = parse_budget_study(it, p, msg, msglen)) != SL_OK) return st;

    if ((st = check_ensembles(p, msg, msglen)) != SL_OK) return st;

    /* baseline */
    char base[SL_BENCH_NAME] = "dice+ce";
    if ((it = member(root, "baseline")) && (st = get_name(it, "baseline", base, sizeof base, msg, msglen)) != SL_OK) return st;
    p->baseline = -1;
    for (int e = 0; e < p->nbase_entries; e++)
        if (!strcmp(p->entries[e].name, base)) p->baseline = e;
    if (p->baseline < 0)
        return sl_errf(msg, msglen, SL_EINVAL, "preset: the baseline '%s' is not one of the losses%s", base,
                       member(root, "baseline") ? "" : " (set \"baseline\" to one of them)");
    if (canonical(p) != SL_OK) return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    return SL_OK;
}

/* Where a JSON text spells the character NUL (\u0000) inside a string, or
 * NULL: cJSON would end the string there, silently cutting a name or spec. */
static const char *find_nul_escape(const char *t)
{
    int in_string = 0;
    for (const char *c = t; *c; c++) {
        if (!in_string) {
            in_string = *c == '"';
        } else if (*c == '"') {
            in_string = 0;
        } else if (*c == '\\') {
            if (c[1] == 'u' && c[2] == '0' && c[3] == '0' && c[4] == '0' && c[5] == '0') return c;
            if (c[1]) c++; /* the escaped character cannot end the string */
        }
    }
    return NULL;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice in one object, anywhere in the tree, or
 * NULL. cJSON keeps both and lookups find the first, where Python and jq
 * take the last: a preset meaning different things to different readers is
 * refused instead. Sorting keeps a hostile object of many keys O(n log n). */
static const char *duplicate_key(const cJSON *o, int *oom)
{
    const cJSON *it;
    if (cJSON_IsObject(o)) {
        int n = 0;
        cJSON_ArrayForEach(it, o) n++;
        if (n > 1) {
            const char **keys = malloc((size_t)n * sizeof *keys);
            if (!keys) {
                *oom = 1;
                return NULL;
            }
            int k = 0;
            cJSON_ArrayForEach(it, o) keys[k++] = it->string ? it->string : "";
            qsort(keys, (size_t)n, sizeof *keys, cmp_key);
            const char *dup = NULL;
            for (int i = 1; i < n && !dup; i++)
                if (!strcmp(keys[i - 1], keys[i])) dup = keys[i];
            free(keys);
            if (dup) return dup;
        }
    }
    if (cJSON_IsObject(o) || cJSON_IsArray(o)) cJSON_ArrayForEach(it, o)
        {
            const char *dup = duplicate_key(it, oom);
            if (dup || *oom) return dup;
        }
    return NULL;
}

sl_status sl_bench_preset_parse(sl_bench_preset **out, const char *json, char *msg, size_t msglen)
{
    if (!out || !json) return sl_errf(msg, msglen, SL_EINVAL, "preset: NULL argument");
    *out = NULL;
    const char *end = NULL;
    /* require_null_terminated: text after the closing brace is an error */
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        if (!at) at = end;
        /* a closing brace followed by more text: say so */
        cJSON *head = cJSON_ParseWithOpts(json, &end, 0);
        cJSON_Delete(head);
        if (head)
            return sl_errf(msg, msglen, SL_EFORMAT, "preset: text after the end of the JSON object at offset %lld ('%.20s')",
                           (long long)(end - json), end);
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: not valid JSON at offset %lld (near '%.20s')",
                       at ? (long long)(at - json) : -1LL, at ? at : "?");
    }
    const char *nul = find_nul_escape(json);
    if (nul) {
        cJSON_Delete(root);
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: a string holds \\u0000 (NUL) at offset %lld", (long long)(nul - json));
    }
    int oom = 0;
    const char *dup = duplicate_key(root, &oom);
    if (dup || oom) {
        sl_status st = oom ? sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory")
                           : sl_errf(msg, msglen, SL_EFORMAT, "preset: key \"%.80s\" appears twice in one object", dup);
        cJSON_Delete(root);
        return st;
    }
    sl_bench_preset *p = calloc(1, sizeof *p);
    if (!p) {
        cJSON_Delete(root);
        return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    }
    sl_status st = parse_root(root, p, msg, msglen);
    cJSON_Delete(root);
    if (st != SL_OK) {
        sl_bench_preset_free(p);
        return st;
    }
    *out = p;
    return SL_OK;
}

sl_status sl_bench_preset_load(sl_bench_preset **out, const char *path, char *msg, size_t msglen)
{
    if (!out || !path) return sl_errf(msg, msglen, SL_EINVAL, "preset: NULL argument");
    *out = NULL;
    unsigned char *data;
    size_t len;
    sl_status st = sl_file_read(path, &data, &len, msg, msglen);
    if (st != SL_OK) return st;
    char sub[700];
    if (strlen((const char *)data) != len) st = sl_errf(sub, sizeof sub, SL_EFORMAT, "preset: not a text file");
    else st = sl_bench_preset_parse(out, (const char *)data, sub, sizeof sub);
    free(data);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "%s: %s", path, sub);
    return SL_OK;
}

void sl_bench_preset_free(sl_bench_preset *p)
{
    if (!p) return;
    free(p->seeds);
    free(p->datasets);
    /* a budget study's copies share their entry's search */
    const int own = p->nbase_entries ? p->nbase_entries : p->nentries;
    for (int e = 0; p->entries && e < own; e++) free(p->entries[e].search);
    free(p->entries);
    cJSON_free(p->json);
    free(p);
}

int64_t sl_bench_num_runs(const sl_bench_preset *p)
{
    return p ? (int64_t)p->ndatasets * p->nseeds * (p->nfolds ? p->nfolds : 1) * p->nentries : 0;
}
