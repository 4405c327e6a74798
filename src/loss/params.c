/*
 * Applying key=value pairs to a term's parameters, driven by the loss's key
 * table: defaults first, then each given key is looked up, type-checked and
 * range-checked. Every error names the loss, the key and what was wrong.
 * Also: `segloss loss --list` descriptions, generated from the same tables.
 */
#include <stdio.h>
#include <string.h>
#include "params.h"

static const sl_key *find_key(const sl_term_class *cls, const char *key)
{
    for (const sl_key *k = cls->keys; k->key; k++)
        if (!strcmp(k->key, key)) return k;
    return NULL;
}

/* Index of `w` in "a|b|c", or -1. */
static int enum_index(const char *words, const char *w)
{
    int i = 0;
    size_t n = strlen(w);
    for (const char *p = words; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, w, n)) return i;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

static void set_defaults(const sl_term_class *cls, sl_params *p)
{
    memset(p, 0, sizeof *p);
    p->ignore_index = NAN;
    for (const sl_key *k = cls->keys; k->key; k++) {
        char *f = (char *)p + k->offset;
        switch (k->type) {
        case SL_KEY_NUMBER: case SL_KEY_LABEL: *(double *)f = k->def; break;
        case SL_KEY_INT: case SL_KEY_BOOL: case SL_KEY_ENUM: *(int *)f = (int)k->def; break;
        case SL_KEY_LIST: case SL_KEY_NUMBER_OR_LIST: ((sl_list *)f)->n = 0; break;
        case SL_KEY_WEIGHT: p->weight_mode = (int)k->def; break;
        }
    }
}

static sl_status check_range(const sl_term_class *cls, const sl_key *k, double v, char *msg, size_t len)
{
    if (!(v >= k->lo && v <= k->hi))
        return sl_errf(msg, len, SL_EINVAL, "%s: %s=%g is out of range [%g, %g]", cls->info.name, k->key, v, k->lo, k->hi);
    return SL_OK;
}

static const char *kind_name(sl_param_kind kind)
{
    switch (kind) {
    case SL_PARAM_NUMBER: return "a number";
    case SL_PARAM_BOOL: return "true/false";
    case SL_PARAM_WORD: return "a word";
    case SL_PARAM_LIST: return "a list";
    }
    return "a value";
}

static sl_status set_list(const sl_term_class *cls, const sl_key *k, const sl_param *pa, sl_list *l, char *msg,
                          size_t len)
{
    if (pa->list_len < 1 || pa->list_len > SL_LIST_MAX || !pa->list)
        return sl_errf(msg, len, SL_EINVAL, "%s: %s needs 1 to %d numbers", cls->info.name, k->key, SL_LIST_MAX);
    for (int i = 0; i < pa->list_len; i++) {
        sl_status st = check_range(cls, k, pa->list[i], msg, len);
        if (st != SL_OK) return st;
        l->v[i] = pa->list[i];
    }
    l->n = pa->list_len;
    return SL_OK;
}

sl_status sl_params_apply(const sl_term_class *cls, const sl_param *params, int nparams, sl_params *p, char *msg,
                          size_t len)
{
    set_defaults(cls, p);
    for (int i = 0; i < nparams; i++) {
        const sl_param *pa = &params[i];
        if (!pa->key) return sl_errf(msg, len, SL_EINVAL, "%s: parameter without a key", cls->info.name);
        const sl_key *k = find_key(cls, pa->key);
        if (!k) {
            char keys[512];
            sl_loss_describe_keys(cls->info.name, keys, sizeof keys);
            return sl_errf(msg, len, SL_EUNKNOWN, "%s: unknown key '%s' (keys: %s)", cls->info.name, pa->key,
                           keys[0] ? keys : "none");
        }
        char *f = (char *)p + k->offset;
        sl_status st = SL_OK;
        int bad_type = 0;
        switch (k->type) {
        case SL_KEY_NUMBER:
            if (pa->kind != SL_PARAM_NUMBER) { bad_type = 1; break; }
            st = check_range(cls, k, pa->number, msg, len);
            if (st == SL_OK) *(double *)f = pa->number;
            break;
        case SL_KEY_INT:
        case SL_KEY_LABEL:
            if (pa->kind != SL_PARAM_NUMBER) { bad_type = 1; break; }
            if (pa->number != floor(pa->number))
                return sl_errf(msg, len, SL_EINVAL, "%s: %s must be an integer, got %g", cls->info.name, k->key, pa->number);
            st = check_range(cls, k, pa->number, msg, len);
            if (st != SL_OK) break;
            if (k->type == SL_KEY_INT) *(int *)f = (int)pa->number;
            else *(double *)f = pa->number;
            break;
        case SL_KEY_BOOL:
            if (pa->kind != SL_PARAM_BOOL) { bad_type = 1; break; }
            *(int *)f = pa->boolean;
            break;
        case SL_KEY_ENUM: {
            if (pa->kind != SL_PARAM_WORD) { bad_type = 1; break; }
            int idx = enum_index(k->words, pa->word);
            if (idx < 0)
                return sl_errf(msg, len, SL_EINVAL, "%s: %s=%s is not one of %s", cls->info.name, k->key, pa->word, k->words);
            *(int *)f = idx;
            break;
        }
        case SL_KEY_LIST:
            if (pa->kind != SL_PARAM_LIST) { bad_type = 1; break; }
            st = set_list(cls, k, pa, (sl_list *)f, msg, len);
            break;
        case SL_KEY_NUMBER_OR_LIST:
            if (pa->kind == SL_PARAM_NUMBER) {
                st = check_range(cls, k, pa->number, msg, len);
                if (st == SL_OK) { ((sl_list *)f)->n = 1; ((sl_list *)f)->v[0] = pa->number; }
            } else if (pa->kind == SL_PARAM_LIST) {
                st = set_list(cls, k, pa, (sl_list *)f, msg, len);
            } else {
                bad_type = 1;
            }
            break;
        case SL_KEY_WEIGHT:
            if (pa->kind == SL_PARAM_LIST) {
                st = set_list(cls, k, pa, (sl_list *)f, msg, len);
                p->weight_mode = SL_WEIGHT_LIST;
            } else if (pa->kind == SL_PARAM_WORD && !strcmp(pa->word, "inverse")) {
                p->weight_mode = SL_WEIGHT_INVERSE;
            } else if (pa->kind == SL_PARAM_WORD && !strcmp(pa->word, "median")) {
                p->weight_mode = SL_WEIGHT_MEDIAN;
            } else {
                return sl_errf(msg, len, SL_EINVAL, "%s: weight must be a list [w0,w1,...] or inverse|median",
                               cls->info.name);
            }
            break;
        }
        if (bad_type) {
            const char *want = k->type == SL_KEY_BOOL ? "true or false"
                             : k->type == SL_KEY_ENUM ? k->words
                             : k->type == SL_KEY_LIST ? "a list [a,b,...]"
                             : k->type == SL_KEY_NUMBER_OR_LIST ? "a number or a list"
                             : k->type == SL_KEY_INT || k->type == SL_KEY_LABEL ? "an integer" : "a number";
            return sl_errf(msg, len, SL_EINVAL, "%s: %s expects %s, got %s", cls->info.name, k->key, want,
                           kind_name(pa->kind));
        }
        if (st != SL_OK) return st;
    }
    if (cls->validate) return cls->validate(p, msg, len);
    return SL_OK;
}

sl_status sl_loss_describe_keys(const char *name, char *buf, size_t buflen)
{
    if (!name || !buf || buflen == 0) return SL_EINVAL;
    const sl_term_class *cls = sl_term_class_find(name);
    buf[0] = 0;
    if (!cls) return SL_EUNKNOWN;
    size_t n = 0;
    for (const sl_key *k = cls->keys; k->key; k++) {
        char def[96];
        switch (k->type) {
        case SL_KEY_NUMBER: case SL_KEY_INT: snprintf(def, sizeof def, "%g", k->def); break;
        case SL_KEY_BOOL: snprintf(def, sizeof def, "%s", k->def != 0 ? "true" : "false"); break;
        case SL_KEY_ENUM: {
            /* the default's word, then the choices */
            const char *p = k->words;
            for (int i = 0; i < (int)k->def && strchr(p, '|'); i++) p = strchr(p, '|') + 1;
            const char *bar = strchr(p, '|');
            int len = bar ? (int)(bar - p) : (int)strlen(p);
            snprintf(def, sizeof def, "%.*s (%s)", len, p, k->words);
            break;
        }
        case SL_KEY_LABEL: snprintf(def, sizeof def, "none"); break;
        case SL_KEY_WEIGHT:
            snprintf(def, sizeof def, "%s", k->def == SL_WEIGHT_INVERSE ? "inverse" : k->def == SL_WEIGHT_MEDIAN ? "median"
                                                : "none");
            break;
        default: snprintf(def, sizeof def, "none"); break;
        }
        int w = snprintf(buf + n, buflen - n, "%s%s=%s", n ? ", " : "", k->key, def);
        if (w < 0 || (size_t)w >= buflen - n) return SL_EINVAL;
        n += (size_t)w;
    }
    return SL_OK;
}
