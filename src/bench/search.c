/*
 * Compound weights chosen by successive halving: the preset's "search"
 * object, its candidates and schedule, the search itself (trainings on the
 * training split scored on the validation split), its outcome file, and
 * its part of the report. search.h states the rules; docs/benchmark.md is
 * the manual.
 *
 * Design choices, each for a reason:
 * - Once per data set, on the first seed: the chosen weights are then one
 *   fixed loss for every seed, so the entry's spread over seeds measures
 *   the same thing as every other entry's (searching per seed would make
 *   each seed a different loss), and the search costs one search, not one
 *   per seed. The candidates are the same on every data set (drawn from the
 *   preset's stats_seed and the entry's name).
 * - Each rung retrains its survivors from scratch with the larger budget
 *   rather than continuing their checkpoints: the learning-rate schedule
 *   (one-cycle, poly) is laid over a run's whole length, so a short run's
 *   checkpoint has already annealed; a retrained candidate's score is the
 *   score of a proper run of that budget, and the last rung's training is
 *   exactly the run the entry's first seed does (a run is a pure function
 *   of its configuration).
 * - The score is the trainer's own validation metric, the Dice pooled
 *   over the validation split, averaged over the foreground classes, at
 *   the last epoch of the training; the trainer is told not to load the
 *   test split at all (skip_test).
 */
#define _POSIX_C_SOURCE 200809L
#include "jsonfile.h"
#include "search.h"
#include <cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fileio.h"
#include "outfile.h"
#include "segloss/rng.h"
#include "segloss/schedule.h"

static const cJSON *member(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* ------------------------------------------------------------ free names */

/* The free name starting at t[i], or 0: an identifier not continuing a
 * number or word, followed (after blanks) by '*'. *len = its length. */
static int free_name_at(const char *t, size_t i, size_t *len)
{
    if (!(isalpha((unsigned char)t[i]) || t[i] == '_')) return 0;
    if (i > 0 && (isalnum((unsigned char)t[i - 1]) || t[i - 1] == '_' || t[i - 1] == '.')) return 0;
    size_t n = 0;
    while (isalnum((unsigned char)t[i + n]) || t[i + n] == '_') n++;
    size_t k = i + n;
    while (t[k] == ' ' || t[k] == '\t') k++;
    if (t[k] != '*') return 0;
    *len = n;
    return 1;
}

int slb_search_first_free(const char *loss, char *name, size_t len)
{
    for (size_t i = 0; loss[i]; i++) {
        size_t n;
        if (free_name_at(loss, i, &n)) {
            snprintf(name, len, "%.*s", (int)n, loss + i);
            return 1;
        }
    }
    return 0;
}

static int find_name(const sl_bench_search *s, const char *t, size_t n)
{
    for (int k = 0; k < s->nfree; k++)
        if (strlen(s->names[k]) == n && !strncmp(s->names[k], t, n)) return k;
    return -1;
}

sl_status slb_search_spec(const sl_bench_search *s, const char *loss, int k, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; loss[i];) {
        size_t n;
        int f = free_name_at(loss, i, &n) ? find_name(s, loss + i, n) : -1;
        char num[32];
        const char *piece = loss + i;
        size_t plen = 1;
        if (f >= 0) {
            snprintf(num, sizeof num, "%.3g", s->values[k][f]);
            piece = num;
            plen = strlen(num);
            i += n;
        } else {
            i++;
        }
        if (o + plen + 1 > len) return SL_ERANGE;
        memcpy(out + o, piece, plen);
        o += plen;
    }
    out[o] = 0;
    return SL_OK;
}

/* -------------------------------------------------------------- the object */

static double round3(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.3g", v);
    return strtod(buf, NULL);
}

/* Weight j of a point at fraction u in [0, 1] of its range. */
static double at_fraction(const sl_bench_search *s, int j, double u)
{
    if (s->logscale[j]) return round3(exp(log(s->lo[j]) + u * (log(s->hi[j]) - log(s->lo[j]))));
    return round3(s->lo[j] + u * (s->hi[j] - s->lo[j]));
}

/* FNV-1a of the entry's name: its candidates' stream. */
static uint64_t name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 1099511628211ULL;
    return h;
}

static sl_status make_candidates(sl_bench_search *s, const char *name, uint64_t seed, const char *where, char *msg, size_t msglen)
{
    if (!s->grid) {
        sl_rng r;
        sl_rng_seed_stream(&r, seed, name_hash(name));
        for (int k = 0; k < s->n; k++)
            for (int j = 0; j < s->nfree; j++) s->values[k][j] = at_fraction(s, j, sl_rng_uniform(&r));
        return SL_OK;
    }
    /* m points per free weight, m^k = n; the first weight varies slowest */
    int m = (int)llround(pow((double)s->n, 1.0 / s->nfree)), total = 1;
    for (int j = 0; j < s->nfree; j++) total *= m;
    if (m < 2 || total != s->n)
        return sl_errf(msg, msglen, SL_ERANGE, "preset: %s.search.n = %d is not m^%d with m >= 2 (a grid of %d free weight%s)", where,
                       s->n, s->nfree, s->nfree, s->nfree > 1 ? "s" : "");
    for (int k = 0; k < s->n; k++) {
        int rest = k;
        for (int j = s->nfree - 1; j >= 0; j--) {
            s->values[k][j] = at_fraction(s, j, (double)(rest % m) / (m - 1));
            rest /= m;
        }
    }
    return SL_OK;
}

static sl_status parse_range(const cJSON *it, const char *where, sl_bench_search *s, int j, char *msg, size_t msglen)
{
    const int na = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : 0;
    const cJSON *a = cJSON_GetArrayItem(it, 0), *b = cJSON_GetArrayItem(it, 1), *sc = cJSON_GetArrayItem(it, 2);
    if ((na != 2 && na != 3) || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || (na == 3 && !cJSON_IsString(sc)))
        return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s.search.%s must be [lo, hi] or [lo, hi, \"log\"|\"linear\"]", where,
                       s->names[j]);
    s->lo[j] = a->valuedouble;
    s->hi[j] = b->valuedouble;
    s->logscale[j] = 0;
    if (na == 3) {
        if (!strcmp(sc->valuestring, "log")) s->logscale[j] = 1;
        else if (strcmp(sc->valuestring, "linear"))
            return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s.search.%s: scale '%.20s' is not \"log\" or \"linear\"", where,
                           s->names[j], sc->valuestring);
    }
    if (!isfinite(s->lo[j]) || !isfinite(s->hi[j]) || !(s->lo[j] >= 0) || !(s->lo[j] < s->hi[j]) ||
        (s->logscale[j] && !(s->lo[j] > 0)))
        return sl_errf(msg, msglen, SL_ERANGE, "preset: %s.search.%s = [%g, %g] is not a range 0 %s lo < hi", where, s->names[j],
                       s->lo[j], s->hi[j], s->logscale[j] ? "<" : "<=");
    return SL_OK;
}

static sl_status get_int(const cJSON *o, const char *key, const char *where, int lo, int hi, int *out, char *msg, size_t msglen)
{
    const cJSON *it = member(o, key);
    if (!it) return SL_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < lo || it->valuedouble > hi)
        return sl_errf(msg, msglen, SL_ERANGE, "preset: %s.search.%s must be an integer in [%d, %d]", where, key, lo, hi);
    *out = (int)it->valuedouble;
    return SL_OK;
}

/* The reserved keys, the free weights' ranges, the settings. */
static sl_status parse_object(const cJSON *o, const char *loss, const char *where, sl_bench_search *s, char *msg, size_t msglen)
{
    static const char *const reserved[] = {"method", "n", "eta", "min_epochs"};
    if (!cJSON_IsObject(o)) return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s.search must be an object", where);
    const cJSON *it;
    sl_status st;
    cJSON_ArrayForEach(it, o)
    {
        int res = 0;
        for (int i = 0; i < 4; i++) res |= !strcmp(it->string, reserved[i]);
        if (res) continue;
        const size_t n = strlen(it->string);
        size_t len = 0;
        int ident = n > 0 && n < SLB_SEARCH_NAME && (isalpha((unsigned char)it->string[0]) || it->string[0] == '_');
        for (size_t i = 0; ident && i < n; i++) ident = isalnum((unsigned char)it->string[i]) || it->string[i] == '_';
        if (!ident)
            return sl_errf(msg, msglen, SL_EUNKNOWN, "preset: unknown key %s.search.%.40s (not method, n, eta, min_epochs or a free weight)",
                           where, it->string);
        int used = 0;
        for (size_t i = 0; loss[i] && !used; i++)
            used = free_name_at(loss, i, &len) && len == n && !strncmp(loss + i, it->string, n);
        if (!used)
            return sl_errf(msg, msglen, SL_EINVAL, "preset: %s.search.%s: the spec '%.100s' has no free weight '%s'", where,
                           it->string, loss, it->string);
        if (s->nfree >= SLB_SEARCH_MAX_FREE)
            return sl_errf(msg, msglen, SL_ERANGE, "preset: %s.search has more than %d free weights", where, SLB_SEARCH_MAX_FREE);
        snprintf(s->names[s->nfree], SLB_SEARCH_NAME, "%s", it->string);
        if ((st = parse_range(it, where, s, s->nfree, msg, msglen)) != SL_OK) return st;
        s->nfree++;
    }
    for (size_t i = 0; loss[i]; i++) {
        size_t n;
        if (free_name_at(loss, i, &n) && find_name(s, loss + i, n) < 0)
            return sl_errf(msg, msglen, SL_EINVAL, "preset: %s: free weight '%.*s' of the spec has no range in \"search\"", where,
                           (int)(n < 40 ? n : 40), loss + i);
    }
    if (s->nfree == 0) return sl_errf(msg, msglen, SL_EINVAL, "preset: %s.search: the spec has no free weight", where);
    if ((it = member(o, "method"))) {
        if (!cJSON_IsString(it) || (strcmp(it->valuestring, "random") && strcmp(it->valuestring, "grid")))
            return sl_errf(msg, msglen, SL_EFORMAT, "preset: %s.search.method must be \"random\" or \"grid\"", where);
        s->grid = !strcmp(it->valuestring, "grid");
    }
    int me = 1;
    if ((st = get_int(o, "n", where, 2, SLB_SEARCH_MAX_CAND, &s->n, msg, msglen)) != SL_OK ||
        (st = get_int(o, "eta", where, 2, s->n, &s->eta, msg, msglen)) != SL_OK ||
        (st = get_int(o, "min_epochs", where, 1, 1000000, &me, msg, msglen)) != SL_OK)
        return st;
    s->min_epochs = me;
    return SL_OK;
}

sl_status slb_search_parse(const cJSON *o, const char *loss, const char *name, uint64_t seed, const char *where,
                           sl_bench_search **out, char *msg, size_t msglen)
{
    *out = NULL;
    sl_bench_search *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    s->n = 8;
    s->eta = 2;
    s->min_epochs = 1;
    sl_status st = parse_object(o, loss, where, s, msg, msglen);
    if (st == SL_OK) st = make_candidates(s, name, seed, where, msg, msglen);
    char *spec = st == SL_OK ? malloc(SL_TRAIN_TEXT) : NULL;
    if (st == SL_OK && !spec) st = sl_errf(msg, msglen, SL_ENOMEM, "preset: out of memory");
    for (int k = 0; st == SL_OK && k < s->n; k++) {
        char sub[600];
        sl_schedule *sch = NULL;
        if (slb_search_spec(s, loss, k, spec, SL_TRAIN_TEXT) != SL_OK)
            st = sl_errf(msg, msglen, SL_ERANGE, "preset: %s: candidate %d's spec is longer than %d characters", where, k, SL_TRAIN_TEXT - 1);
        else if ((st = sl_schedule_create(spec, &sch, sub, sizeof sub)) != SL_OK)
            st = sl_errf(msg, msglen, st, "preset: %s: candidate %d (%.200s): %s", where, k, spec, sub);
        sl_schedule_free(sch);
    }
    free(spec);
    if (st != SL_OK) {
        free(s);
        return st;
    }
    *out = s;
    return SL_OK;
}

cJSON *slb_search_json(const sl_bench_search *s)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    for (int j = 0; ok && j < s->nfree; j++) {
        cJSON *a = cJSON_AddArrayToObject(o, s->names[j]);
        ok = a && cJSON_AddItemToArray(a, cJSON_CreateNumber(s->lo[j])) && cJSON_AddItemToArray(a, cJSON_CreateNumber(s->hi[j])) &&
             cJSON_AddItemToArray(a, cJSON_CreateString(s->logscale[j] ? "log" : "linear"));
    }
    ok = ok && cJSON_AddStringToObject(o, "method", s->grid ? "grid" : "random") && cJSON_AddNumberToObject(o, "n", s->n) &&
         cJSON_AddNumberToObject(o, "eta", s->eta) && cJSON_AddNumberToObject(o, "min_epochs", (double)s->min_epochs);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------------- schedule */

int slb_search_schedule(int n, int eta, int64_t epochs, int64_t min_epochs, int keep[SLB_SEARCH_MAX_RUNGS],
                        int64_t ep[SLB_SEARCH_MAX_RUNGS])
{
    if (n < 2 || n > SLB_SEARCH_MAX_CAND || eta < 2 || epochs < 1 || min_epochs < 1) return 0;
    int R = 0;
    for (int m = n; m > 1; m = m / eta > 1 ? m / eta : 1) keep[R++] = m;
    for (int r = R - 1; r >= 0; r--) {
        int64_t e = epochs;
        for (int k = r; k < R - 1; k++) e /= eta;
        ep[r] = e < min_epochs ? (min_epochs < epochs ? min_epochs : epochs) : e;
    }
    return R;
}

double slb_search_epochs(const sl_bench_search *s, int64_t epochs)
{
    int keep[SLB_SEARCH_MAX_RUNGS];
    int64_t ep[SLB_SEARCH_MAX_RUNGS];
    const int R = slb_search_schedule(s->n, s->eta, epochs, s->min_epochs, keep, ep);
    double total = 0;
    for (int r = 0; r < R; r++) total += (double)keep[r] * (double)ep[r];
    return total;
}

void slb_search_rank(const double *score, int *idx, int m)
{
    for (int i = 1; i < m; i++) /* insertion sort: m <= 64, and stable */
        for (int j = i; j > 0; j--) {
            const double a = score[idx[j - 1]], b = score[idx[j]];
            const int swap = (isnan(a) && !isnan(b)) || (!isnan(a) && !isnan(b) && b > a) ||
                             ((a == b || (isnan(a) && isnan(b))) && idx[j] < idx[j - 1]);
            if (!swap) break;
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

/* The candidates of rung r: all for r = 0, else the best keep[r] of rung
 * r - 1 (which must be complete). Returns how many. */
static int rung_members(const slb_search_outcome *o, int ncand, int r, int *idx)
{
    if (r == 0) {
        for (int k = 0; k < ncand; k++) idx[k] = k;
        return ncand;
    }
    int m = 0;
    for (int k = 0; k < ncand; k++)
        if (o->trained[r - 1][k]) idx[m++] = k;
    slb_search_rank(o->score[r - 1], idx, m);
    return o->keep[r] < m ? o->keep[r] : m;
}

/* --------------------------------------------------------------- the file */

sl_status slb_search_path(char *buf, size_t len, const char *dir, const sl_bench_preset *p, int d, int e)
{
    int n = snprintf(buf, len, "%s/%s/%s__search__%s.json", dir, SLB_RESULTS_DIR, p->datasets[d].slug, p->entries[e].slug);
    return n < 0 || (size_t)n >= len ? SL_EINVAL : SL_OK;
}

static cJSON *weights_json(const sl_bench_search *s, int k)
{
    cJSON *w = cJSON_CreateObject();
    for (int j = 0; w && j < s->nfree; j++)
        if (!cJSON_AddItemToObject(w, s->names[j], slb_json_exact(s->values[k][j]))) {
            cJSON_Delete(w);
            return NULL;
        }
    return w;
}

cJSON *slb_search_outcome_json(const sl_bench_preset *p, int d, int e, const slb_search_outcome *o)
{
    const sl_bench_entry *en = &p->entries[e];
    const sl_bench_search *s = en->search;
    char spec[SL_TRAIN_TEXT];
    cJSON *root = cJSON_CreateObject(), *a = NULL, *x = NULL;
    int ok = root && cJSON_AddStringToObject(root, "format", "segloss-bench-search") && cJSON_AddNumberToObject(root, "version", 1) &&
             cJSON_AddStringToObject(root, "dataset", p->datasets[d].name) && cJSON_AddStringToObject(root, "entry", en->name) &&
             cJSON_AddStringToObject(root, "loss", en->loss) && cJSON_AddItemToObject(root, "search", slb_search_json(s)) &&
             cJSON_AddNumberToObject(root, "seed", (double)p->seeds[0]) &&
             cJSON_AddStringToObject(root, "status", o->done ? "done" : "running") &&
             cJSON_AddStringToObject(root, "score", "validation Dice at the last epoch (pooled over the validation split, mean "
                                                    "over the foreground classes); null: the loss became non-finite") &&
             cJSON_AddBoolToObject(root, "test_split_read", 0) && (a = cJSON_AddArrayToObject(root, "candidates"));
    for (int k = 0; ok && k < s->n; k++)
        ok = slb_search_spec(s, en->loss, k, spec, sizeof spec) == SL_OK && (x = cJSON_CreateObject()) && cJSON_AddItemToArray(a, x) &&
             cJSON_AddNumberToObject(x, "index", k) && cJSON_AddItemToObject(x, "weights", weights_json(s, k)) &&
             cJSON_AddStringToObject(x, "spec", spec);
    ok = ok && (a = cJSON_AddArrayToObject(root, "rungs"));
    for (int r = 0; ok && r < o->nrungs; r++) {
        cJSON *ti = NULL, *vd = NULL;
        ok = (x = cJSON_CreateObject()) && cJSON_AddItemToArray(a, x) && cJSON_AddNumberToObject(x, "epochs", (double)o->epochs[r]) &&
             cJSON_AddNumberToObject(x, "candidates", o->keep[r]) && (ti = cJSON_AddArrayToObject(x, "trained")) &&
             (vd = cJSON_AddArrayToObject(x, "val_dice"));
        for (int k = 0; ok && k < s->n; k++)
            if (o->trained[r][k])
                ok = cJSON_AddItemToArray(ti, cJSON_CreateNumber(k)) && cJSON_AddItemToArray(vd, slb_json_exact(o->score[r][k]));
    }
    if (ok && o->done)
        ok = cJSON_AddNumberToObject(root, "chosen", o->chosen) && cJSON_AddItemToObject(root, "chosen_weights", weights_json(s, o->chosen)) &&
             cJSON_AddStringToObject(root, "chosen_spec", o->spec);
    ok = ok && cJSON_AddItemToObject(root, "cpu_seconds", slb_json_exact(o->cpu_seconds)) &&
         cJSON_AddItemToObject(root, "seconds", slb_json_exact(o->seconds));
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static sl_status write_outcome(const char *path, const sl_bench_preset *p, int d, int e, const slb_search_outcome *o, char *msg,
                               size_t msglen)
{
    cJSON *root = slb_search_outcome_json(p, d, e, o);
    sl_status st = sl_json_file_write(path, root, 0, "bench", msg, msglen);
    cJSON_Delete(root);
    return st;
}

/* The rungs of a file into o (its schedule already set). */
static sl_status parse_rungs(const cJSON *a, const char *path, int ncand, slb_search_outcome *o, char *msg, size_t msglen)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != o->nrungs)
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: rungs must hold %d rungs", path, o->nrungs);
    for (int r = 0; r < o->nrungs; r++) {
        const cJSON *x = cJSON_GetArrayItem(a, r), *ep = member(x, "epochs"), *ti = member(x, "trained"), *vd = member(x, "val_dice");
        const int m = cJSON_IsArray(ti) ? cJSON_GetArraySize(ti) : -1;
        if (!cJSON_IsNumber(ep) || ep->valuedouble != (double)o->epochs[r] || m < 0 || m > o->keep[r] || !cJSON_IsArray(vd) ||
            cJSON_GetArraySize(vd) != m)
            return sl_errf(msg, msglen, SL_EFORMAT, "%s: rungs[%d] is malformed or of another schedule", path, r);
        for (int i = 0; i < m; i++) {
            const cJSON *k = cJSON_GetArrayItem(ti, i), *v = cJSON_GetArrayItem(vd, i);
            if (!cJSON_IsNumber(k) || k->valuedouble != floor(k->valuedouble) || k->valuedouble < 0 || k->valuedouble >= ncand ||
                !(cJSON_IsNumber(v) || cJSON_IsNull(v)))
                return sl_errf(msg, msglen, SL_EFORMAT, "%s: rungs[%d] holds a bad candidate or score", path, r);
            o->trained[r][(int)k->valuedouble] = 1;
            o->score[r][(int)k->valuedouble] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
    }
    return SL_OK;
}

static sl_status parse_outcome(const cJSON *root, const char *path, const sl_bench_preset *p, int d, int e, slb_search_outcome *o,
                               char *msg, size_t msglen)
{
    const sl_bench_entry *en = &p->entries[e];
    const cJSON *it = member(root, "format"), *ds = member(root, "dataset"), *ent = member(root, "entry"), *loss = member(root, "loss");
    if (!cJSON_IsString(it) || strcmp(it->valuestring, "segloss-bench-search") || !(it = member(root, "version")) ||
        !cJSON_IsNumber(it) || it->valuedouble != 1)
        return sl_errf(msg, msglen, SL_EFORMAT, "%s is not a segloss-bench-search file (version 1)", path);
    if (!cJSON_IsString(ds) || strcmp(ds->valuestring, p->datasets[d].name) || !cJSON_IsString(ent) ||
        strcmp(ent->valuestring, en->name) || !cJSON_IsString(loss) || strcmp(loss->valuestring, en->loss))
        return sl_errf(msg, msglen, SL_EBADSTATE, "%s holds another search than %s / %s", path, p->datasets[d].name, en->name);
    sl_status st = parse_rungs(member(root, "rungs"), path, en->search->n, o, msg, msglen);
    if (st != SL_OK) return st;
    const cJSON *status = member(root, "status"), *cpu = member(root, "cpu_seconds"), *sec = member(root, "seconds");
    if (!cJSON_IsString(status) || !cJSON_IsNumber(cpu) || !cJSON_IsNumber(sec))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: status, cpu_seconds or seconds missing", path);
    o->cpu_seconds = cpu->valuedouble;
    o->seconds = sec->valuedouble;
    o->done = !strcmp(status->valuestring, "done");
    if (!o->done) return SL_OK;
    const cJSON *ch = member(root, "chosen"), *cs = member(root, "chosen_spec");
    if (!cJSON_IsNumber(ch) || ch->valuedouble != floor(ch->valuedouble) || ch->valuedouble < 0 || ch->valuedouble >= en->search->n ||
        !cJSON_IsString(cs))
        return sl_errf(msg, msglen, SL_EFORMAT, "%s: chosen or chosen_spec missing", path);
    o->chosen = (int)ch->valuedouble;
    if (slb_search_spec(en->search, en->loss, o->chosen, o->spec, sizeof o->spec) != SL_OK || strcmp(o->spec, cs->valuestring))
        return sl_errf(msg, msglen, SL_EBADSTATE, "%s: chosen_spec is not candidate %d's spec", path, o->chosen);
    return SL_OK;
}

/* o's schedule for entry e on data set d. */
static void outcome_init(const sl_bench_preset *p, int d, int e, slb_search_outcome *o)
{
    const sl_bench_search *s = p->entries[e].search;
    memset(o, 0, sizeof *o);
    o->nrungs = slb_search_schedule(s->n, s->eta, p->datasets[d].config.epochs * p->entries[e].budget, s->min_epochs, o->keep, o->epochs);
}

sl_status slb_search_read(const char *path, const sl_bench_preset *p, int d, int e, slb_search_outcome *o, char *msg, size_t msglen)
{
    outcome_init(p, d, e, o);
    cJSON *root;
    sl_status st = sl_json_file_read(path, &root, msg, msglen);
    if (st != SL_OK) return st;
    st = parse_outcome(root, path, p, d, e, o, msg, msglen);
    cJSON_Delete(root);
    return st;
}

/* ----------------------------------------------------------------- search */

static double thread_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return NAN;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The validation Dice of a training's last epoch, mean over the foreground. */
static double last_val_dice(const sl_train_result *tr)
{
    if (tr->nrows < 1 || tr->num_classes < 2) return NAN;
    double sum = 0;
    for (int c = 1; c < tr->num_classes; c++) sum += tr->log[tr->nrows - 1].val_dice[c];
    return sum / (tr->num_classes - 1);
}

/* Trains candidate k at rung r and records its score. *stopped = 1 when
 * the runner stopped it. */
static sl_status train_candidate(const slb_search_job *sj, slb_search_outcome *o, int r, int k, double base, sl_train_config *cfg,
                                 int *stopped, char *msg, size_t msglen)
{
    const sl_bench_entry *en = &sj->p->entries[sj->e];
    *cfg = *sj->base;
    cfg->epochs = o->epochs[r];
    cfg->skip_test = 1; /* the search never reads the test split */
    cfg->out_dir[0] = 0;
    if (slb_search_spec(en->search, en->loss, k, cfg->loss, sizeof cfg->loss) != SL_OK)
        return sl_errf(msg, msglen, SL_ERANGE, "bench: candidate %d's spec is too long", k);
    char label[SL_BENCH_NAME + 96];
    snprintf(label, sizeof label, "%s [search %d/%d: candidate %d]", en->name, r + 1, o->nrungs, k);
    sl_train_result tr = SL_TRAIN_RESULT_EMPTY;
    char sub[1024];
    const double c0 = thread_cpu_s(), w0 = wall_s();
    sl_status st = sj->train(sj->user, cfg, label, base, sj->epoch_cost * (double)o->epochs[r], &tr, sub, sizeof sub);
    o->cpu_seconds += thread_cpu_s() - c0;
    o->seconds += wall_s() - w0;
    if (st == SL_ENONFINITE) { /* a weighting that diverges loses, it does not stop the search */
        o->trained[r][k] = 1;
        o->score[r][k] = NAN;
        st = SL_OK;
    } else if (st != SL_OK) {
        st = sl_errf(msg, msglen, st, "bench: %s / %s: search candidate %d (%.200s): %s", sj->p->datasets[sj->d].name, en->name, k,
                     cfg->loss, sub);
    } else if (!tr.completed) {
        *stopped = 1;
    } else {
        o->trained[r][k] = 1;
        o->score[r][k] = last_val_dice(&tr);
    }
    sl_train_result_free(&tr);
    return st;
}

sl_status slb_search_run(const slb_search_job *sj, slb_search_outcome *o, char *msg, size_t msglen)
{
    const sl_bench_preset *p = sj->p;
    const sl_bench_search *s = p->entries[sj->e].search;
    char path[SL_TRAIN_TEXT + 256];
    sl_status st;
    if (slb_search_path(path, sizeof path, sj->dir, p, sj->d, sj->e) != SL_OK)
        return sl_errf(msg, msglen, SL_EINVAL, "bench: the output folder's path is too long");
    if (sl_file_exists(path)) {
        if ((st = slb_search_read(path, p, sj->d, sj->e, o, msg, msglen)) != SL_OK || o->done) return st;
    } else {
        outcome_init(p, sj->d, sj->e, o);
    }
    sl_dataset_info info;
    sl_dataset_get_info(sj->base->dataset, &info);
    if (info.n[SL_SPLIT_VAL] < 1)
        return sl_errf(msg, msglen, SL_EEMPTY, "bench: data set %s has no validation split, which the search of %s needs",
                       p->datasets[sj->d].name, p->entries[sj->e].name);
    sl_train_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    int idx[SLB_SEARCH_MAX_CAND], stopped = 0;
    double base = 0; /* cost of the trainings before this one */
    st = SL_OK;
    for (int r = 0; r < o->nrungs && st == SL_OK && !stopped; r++) {
        const int m = rung_members(o, s->n, r, idx);
        for (int i = 0; i < m && st == SL_OK && !stopped; i++) {
            if (!o->trained[r][idx[i]]) {
                st = train_candidate(sj, o, r, idx[i], base, cfg, &stopped, msg, msglen);
                if (st == SL_OK && !stopped) st = write_outcome(path, p, sj->d, sj->e, o, msg, msglen);
            }
            base += sj->epoch_cost * (double)o->epochs[r];
        }
    }
    free(cfg);
    if (st != SL_OK || stopped) return st;
    int m = 0;
    for (int k = 0; k < s->n; k++)
        if (o->trained[o->nrungs - 1][k]) idx[m++] = k;
    slb_search_rank(o->score[o->nrungs - 1], idx, m);
    o->chosen = idx[0];
    o->done = 1;
    if (slb_search_spec(s, p->entries[sj->e].loss, o->chosen, o->spec, sizeof o->spec) != SL_OK)
        return sl_errf(msg, msglen, SL_ERANGE, "bench: the chosen spec is too long");
    return write_outcome(path, p, sj->d, sj->e, o, msg, msglen);
}

/* ----------------------------------------------------------------- report */

static const slb_search_outcome *outcome_of(const slb_report *r, int d, int e)
{
    return r->search && r->p->entries[e].search ? r->search[(int64_t)d * r->p->nentries + e] : NULL;
}

const char *slb_report_spec(const slb_report *r, int d, int e)
{
    const slb_search_outcome *o = outcome_of(r, d, e);
    return o && o->done ? o->spec : r->p->entries[e].loss;
}

sl_status slb_search_load_all(const sl_bench_preset *p, const char *dir, slb_search_outcome ***out, char *msg, size_t msglen)
{
    *out = NULL;
    int any = 0;
    for (int e = 0; e < p->nentries; e++) any |= p->entries[e].search != NULL;
    if (!any) return SL_OK;
    slb_search_outcome **all = calloc((size_t)p->ndatasets * p->nentries, sizeof *all);
    if (!all) return sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
    sl_status st = SL_OK;
    char path[SL_TRAIN_TEXT + 256];
    for (int d = 0; d < p->ndatasets && st == SL_OK; d++)
        for (int e = 0; e < p->nentries && st == SL_OK; e++) {
            if (!p->entries[e].search) continue;
            slb_search_outcome *o = malloc(sizeof *o);
            if (!(all[d * p->nentries + e] = o)) st = sl_errf(msg, msglen, SL_ENOMEM, "bench: out of memory");
            else if ((st = slb_search_path(path, sizeof path, dir, p, d, e)) != SL_OK)
                st = sl_errf(msg, msglen, SL_EINVAL, "bench: the output folder's path is too long");
            else if ((st = slb_search_read(path, p, d, e, o, msg, msglen)) == SL_OK && !o->done)
                st = sl_errf(msg, msglen, SL_EBADSTATE, "bench: %s holds an unfinished search", path);
        }
    if (st != SL_OK) {
        slb_search_free_all(p, all);
        return st;
    }
    *out = all;
    return SL_OK;
}

void slb_search_free_all(const sl_bench_preset *p, slb_search_outcome **all)
{
    if (!all) return;
    for (int64_t i = 0; i < (int64_t)p->ndatasets * p->nentries; i++) free(all[i]);
    free(all);
}

static const char *const no_test_sentence =
    "The search trained on the training split and scored on the validation split only: the trainer did not load the test "
    "split during the search, and the chosen entry was tested like every other entry afterwards.";

/* "a=0.1, b=2.5" */
static void weights_text(const sl_bench_search *s, int k, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (int j = 0; j < s->nfree && o < len; j++) {
        int n = snprintf(buf + o, len - o, "%s%s=%.3g", j ? ", " : "", s->names[j], s->values[k][j]);
        if (n < 0) break;
        o += (size_t)n;
    }
}

/* The candidates of (d, e) in the order of the last rung each reached
 * (deepest first), each rung by score: the table's rows. */
static int table_order(const slb_search_outcome *o, int n, int *rows)
{
    int m = 0, seen[SLB_SEARCH_MAX_CAND] = {0};
    for (int r = o->nrungs - 1; r >= 0; r--) {
        int idx[SLB_SEARCH_MAX_CAND], k = 0;
        for (int c = 0; c < n; c++)
            if (o->trained[r][c] && !seen[c]) idx[k++] = c;
        slb_search_rank(o->score[r], idx, k);
        for (int i = 0; i < k; i++) {
            seen[idx[i]] = 1;
            rows[m++] = idx[i];
        }
    }
    return m;
}

void slb_search_markdown(const slb_report *r, slb_str *s)
{
    const sl_bench_preset *p = r->p;
    int any = 0;
    for (int e = 0; e < p->nentries; e++) any |= p->entries[e].search != NULL;
    if (!any || !r->search) return;
    slb_puts(s, "\n## Weight search\n\n");
    slb_printf(s, "Free weights chosen by successive halving on each data set's validation split, with the first seed (%llu); "
                  "each rung retrains its survivors from scratch with the larger budget, the last with the preset's own. "
                  "Score: the validation Dice at a training's last epoch (mean over the foreground classes); – not trained at "
                  "that rung, nan a non-finite loss. CPU: the trainings' thread CPU time, summed. %s\n",
               (unsigned long long)p->seeds[0], no_test_sentence);
    for (int e = 0; e < p->nentries; e++) {
        const sl_bench_search *sr = p->entries[e].search;
        if (!sr) continue;
        for (int d = 0; d < p->ndatasets; d++) {
            const slb_search_outcome *o = outcome_of(r, d, e);
            if (!o) continue;
            char w[256];
            weights_text(sr, o->chosen, w, sizeof w);
            slb_printf(s, "\n### %s on %s\n\nChosen: %s (`%s`), candidate %d of %d (%s, eta %d); search CPU %.1f s (wall %.1f s).\n\n",
                       p->entries[e].name, p->datasets[d].name, w, o->spec, o->chosen, sr->n, sr->grid ? "grid" : "random", sr->eta,
                       o->cpu_seconds, o->seconds);
            slb_puts(s, "| candidate | weights |");
            for (int k = 0; k < o->nrungs; k++) slb_printf(s, " rung %d (%d × %lld ep) |", k + 1, o->keep[k], (long long)o->epochs[k]);
            slb_puts(s, "\n|---|---|");
            for (int k = 0; k < o->nrungs; k++) slb_puts(s, "---:|");
            slb_puts(s, "\n");
            int rows[SLB_SEARCH_MAX_CAND];
            const int m = table_order(o, sr->n, rows);
            for (int i = 0; i < m; i++) {
                const int c = rows[i];
                weights_text(sr, c, w, sizeof w);
                slb_printf(s, "| %d%s | %s |", c, c == o->chosen ? " (chosen)" : "", w);
                for (int k = 0; k < o->nrungs; k++) {
                    if (o->trained[k][c]) slb_printf(s, " %.4f |", o->score[k][c]);
                    else slb_puts(s, " – |");
                }
                slb_puts(s, "\n");
            }
        }
    }
}

void slb_search_html(const slb_report *r, slb_str *h)
{
    const sl_bench_preset *p = r->p;
    int any = 0;
    for (int e = 0; e < p->nentries; e++) any |= p->entries[e].search != NULL;
    if (!any || !r->search) return;
    slb_puts(h, "<section id=\"search\"><h2>Weight search</h2>\n<p>Free weights chosen by successive halving on each data set's "
                "validation split with the first seed; each rung retrains its survivors with the larger budget, the last with the "
                "preset's own. Score: the validation Dice at a training's last epoch. ");
    slb_html(h, no_test_sentence);
    slb_puts(h, "</p>\n");
    for (int e = 0; e < p->nentries; e++) {
        const sl_bench_search *sr = p->entries[e].search;
        for (int d = 0; sr && d < p->ndatasets; d++) {
            const slb_search_outcome *o = outcome_of(r, d, e);
            if (!o) continue;
            char w[256];
            slb_puts(h, "<h3>");
            slb_html(h, p->entries[e].name);
            slb_puts(h, " on ");
            slb_html(h, p->datasets[d].name);
            slb_puts(h, "</h3>\n<p>Chosen: <code>");
            slb_html(h, o->spec);
            slb_printf(h, "</code>, candidate %d of %d; search CPU %.1f s (wall %.1f s).</p>\n<table><thead><tr><th>candidate</th>"
                          "<th>weights</th>",
                       o->chosen, sr->n, o->cpu_seconds, o->seconds);
            for (int k = 0; k < o->nrungs; k++) slb_printf(h, "<th>rung %d (%d × %lld ep)</th>", k + 1, o->keep[k], (long long)o->epochs[k]);
            slb_puts(h, "</tr></thead><tbody>\n");
            int rows[SLB_SEARCH_MAX_CAND];
            const int m = table_order(o, sr->n, rows);
            for (int i = 0; i < m; i++) {
                const int c = rows[i];
                weights_text(sr, c, w, sizeof w);
                slb_printf(h, "<tr><td>%d%s</td><td>", c, c == o->chosen ? " (chosen)" : "");
                slb_html(h, w);
                slb_puts(h, "</td>");
                for (int k = 0; k < o->nrungs; k++) {
                    if (o->trained[k][c]) slb_printf(h, "<td class=\"num\">%.4f</td>", o->score[k][c]);
                    else slb_puts(h, "<td class=\"num\">–</td>");
                }
                slb_puts(h, "</tr>\n");
            }
            slb_puts(h, "</tbody></table>\n");
        }
    }
    slb_puts(h, "</section>\n");
}

cJSON *slb_search_results_json(const slb_report *r)
{
    const sl_bench_preset *p = r->p;
    cJSON *a = cJSON_CreateArray();
    for (int e = 0; a && e < p->nentries; e++)
        for (int d = 0; a && p->entries[e].search && d < p->ndatasets; d++) {
            const slb_search_outcome *o = outcome_of(r, d, e);
            cJSON *x = o ? slb_search_outcome_json(p, d, e, o) : NULL;
            if (o && (!x || !cJSON_AddItemToArray(a, x))) {
                cJSON_Delete(x);
                cJSON_Delete(a);
                a = NULL;
            }
        }
    return a;
}
