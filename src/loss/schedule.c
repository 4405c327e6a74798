/*
 * Loss schedules (include/segloss/schedule.h, docs/schedules.md): stages of
 * epochs with their own spec, and weight ramps within a stage.
 *
 * Built only on the public loss API: each stage owns an sl_loss made by
 * sl_loss_create from its spec; the spec's own term weights are remembered
 * at creation and a ramp overrides two of them per epoch. The state of the
 * stage losses goes through sl_loss_state_get/set, framed per stage.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "segloss/schedule.h"

#define SCHED_MAX_LEN 65536
#define SCHED_MAX_STAGES 1024

typedef struct {
    int64_t start;
    char *spec;
    sl_loss *loss;
    int nterms;
    double *base; /* the spec's term weights */
    int has_ramp;
    sl_ramp ramp; /* resolved: no NaN left */
    double lr;    /* '@lr=' of the stage; NaN = not given */
} stage;

struct sl_schedule {
    int nstages;
    stage *st;
};

void sl_schedule_free(sl_schedule *s)
{
    if (!s) return;
    for (int i = 0; i < s->nstages; i++) {
        free(s->st[i].spec);
        free(s->st[i].base);
        sl_loss_free(s->st[i].loss);
    }
    free(s->st);
    free(s);
}

/* ---- ramps ----------------------------------------------------------------- */

/* Fills NaN defaults and checks a ramp against a stage of nterms terms. */
static sl_status ramp_resolve(sl_ramp *r, int nterms, const char *where, char *msg, size_t msglen)
{
    if (isnan(r->shrink_start)) r->shrink_start = 1 - r->grow_start;
    if (isnan(r->shrink_step)) r->shrink_step = r->grow_step;
    const double v[6] = {r->grow_start, r->grow_step, r->grow_cap, r->shrink_start, r->shrink_step, r->shrink_floor};
    static const char *const names[6] = {"start", "step", "cap", "shrink_start", "shrink_step", "floor"};
    for (int i = 0; i < 6; i++)
        if (!isfinite(v[i]) || v[i] < 0)
            return sl_errf(msg, msglen, SL_EINVAL, "%sramp: %s=%g must be finite and >= 0", where, names[i], v[i]);
    if (r->grow < 0 || r->grow >= nterms)
        return sl_errf(msg, msglen, SL_EINVAL, "%sramp: grow=%d is not a term index of a %d-term spec (0..%d)", where,
                       r->grow, nterms, nterms - 1);
    if (r->shrink < -1 || r->shrink >= nterms)
        return sl_errf(msg, msglen, SL_EINVAL, "%sramp: shrink=%d is not a term index of a %d-term spec (0..%d, or -1)",
                       where, r->shrink, nterms, nterms - 1);
    if (r->shrink == r->grow)
        return sl_errf(msg, msglen, SL_EINVAL, "%sramp: grow and shrink are the same term (%d)", where, r->grow);
    if (r->grow_cap < r->grow_start)
        return sl_errf(msg, msglen, SL_EINVAL, "%sramp: cap=%g is below start=%g", where, r->grow_cap, r->grow_start);
    if (r->shrink >= 0 && r->shrink_floor > r->shrink_start)
        return sl_errf(msg, msglen, SL_EINVAL, "%sramp: floor=%g is above shrink_start=%g", where, r->shrink_floor,
                       r->shrink_start);
    return SL_OK;
}

/* Weights of stage t at epoch e (≥ its start) into w[0..nterms). */
static void stage_weights(const stage *t, int64_t epoch, double *w)
{
    for (int i = 0; i < t->nterms; i++) w[i] = t->base[i];
    if (!t->has_ramp) return;
    const sl_ramp *r = &t->ramp;
    const double e = (double)(epoch - t->start);
    double g = r->grow_start + r->grow_step * e;
    w[r->grow] = g < r->grow_cap ? g : r->grow_cap;
    if (r->shrink >= 0) {
        double s = r->shrink_start - r->shrink_step * e;
        w[r->shrink] = s > r->shrink_floor ? s : r->shrink_floor;
    }
}

/* "ramp" or "ramp(key=number,...)" in [p, end). */
static sl_status parse_ramp(const char *p, const char *end, sl_ramp *r, const char *where, char *msg, size_t msglen)
{
    const sl_ramp def = SL_RAMP_DEFAULT;
    *r = def;
    while (p < end && isspace((unsigned char)*p)) p++;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    if (end - p < 4 || strncmp(p, "ramp", 4) != 0 || (end - p > 4 && (isalnum((unsigned char)p[4]) || p[4] == '_')))
        return sl_errf(msg, msglen, SL_EFORMAT, "%safter '|' expected 'ramp', found '%.*s'", where,
                       (int)(end - p < 24 ? end - p : 24), p);
    p += 4;
    while (p < end && isspace((unsigned char)*p)) p++;
    if (p == end) return SL_OK;
    if (*p != '(' || end[-1] != ')')
        return sl_errf(msg, msglen, SL_EFORMAT, "%sramp: expected '(key=value,...)' after 'ramp'", where);
    p++, end--;
    int seen = 0;
    while (1) {
        while (p < end && isspace((unsigned char)*p)) p++;
        const char *k0 = p;
        while (p < end && (isalnum((unsigned char)*p) || *p == '_')) p++;
        size_t kl = (size_t)(p - k0);
        while (p < end && isspace((unsigned char)*p)) p++;
        if (kl == 0 || p == end || *p != '=')
            return sl_errf(msg, msglen, SL_EFORMAT, "%sramp: expected key=value at '%.*s'", where,
                           (int)(end - k0 < 24 ? end - k0 : 24), k0);
        p++;
        char num[64];
        while (p < end && isspace((unsigned char)*p)) p++;
        const char *v0 = p;
        while (p < end && *p != ',' && !isspace((unsigned char)*p)) p++;
        size_t vl = (size_t)(p - v0);
        char *stop = NULL;
        double v = NAN;
        if (vl > 0 && vl < sizeof num) {
            memcpy(num, v0, vl);
            num[vl] = 0;
            errno = 0;
            v = strtod(num, &stop);
            if (*stop || errno == ERANGE || !isfinite(v) || strchr(num, 'x') || strchr(num, 'X')) v = NAN;
        }
        if (isnan(v))
            return sl_errf(msg, msglen, SL_EINVAL, "%sramp: %.*s needs a number, got '%.*s'", where, (int)kl, k0,
                           (int)(vl < 24 ? vl : 24), v0);
        static const char *const keys[] = {"grow", "start", "step", "cap", "shrink", "shrink_start", "shrink_step",
                                           "floor"};
        int which = -1;
        for (int i = 0; i < 8; i++)
            if (strlen(keys[i]) == kl && !strncmp(keys[i], k0, kl)) which = i;
        if (which < 0)
            return sl_errf(msg, msglen, SL_EUNKNOWN,
                           "%sramp: unknown key '%.*s' (keys: grow, start, step, cap, shrink, shrink_start, "
                           "shrink_step, floor)",
                           where, (int)kl, k0);
        if (seen & (1 << which))
            return sl_errf(msg, msglen, SL_EINVAL, "%sramp: %s given twice", where, keys[which]);
        seen |= 1 << which;
        if ((which == 0 || which == 4) && (v != floor(v) || fabs(v) > 1e6))
            return sl_errf(msg, msglen, SL_EINVAL, "%sramp: %s must be an integer term index, got %g", where,
                           keys[which], v);
        switch (which) {
        case 0: r->grow = (int)v; break;
        case 1: r->grow_start = v; break;
        case 2: r->grow_step = v; break;
        case 3: r->grow_cap = v; break;
        case 4: r->shrink = (int)v; break;
        case 5: r->shrink_start = v; break;
        case 6: r->shrink_step = v; break;
        default: r->shrink_floor = v; break;
        }
        while (p < end && isspace((unsigned char)*p)) p++;
        if (p == end) break;
        if (*p != ',') return sl_errf(msg, msglen, SL_EFORMAT, "%sramp: expected ',' or ')' after %s", where, keys[which]);
        p++;
    }
    return SL_OK;
}

/* "@lr=NUMBER" in [p, end) (p at the '@'): the stage's learning rate,
 * finite and > 0. */
static sl_status parse_stage_lr(const char *p, const char *end, double *lr, const char *where, char *msg,
                                size_t msglen)
{
    p++;
    while (p < end && isspace((unsigned char)*p)) p++;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    if (end - p < 3 || strncmp(p, "lr", 2) != 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "%safter '@' expected 'lr=NUMBER', found '%.*s'", where,
                       (int)(end - p < 24 ? end - p : 24), p);
    p += 2;
    while (p < end && isspace((unsigned char)*p)) p++;
    if (p == end || *p != '=') return sl_errf(msg, msglen, SL_EFORMAT, "%s@lr: expected '=' after 'lr'", where);
    p++;
    while (p < end && isspace((unsigned char)*p)) p++;
    char num[64];
    size_t n = (size_t)(end - p);
    double v = NAN;
    if (n > 0 && n < sizeof num) {
        memcpy(num, p, n);
        num[n] = 0;
        char *stop = NULL;
        errno = 0;
        v = strtod(num, &stop);
        if (*stop || errno == ERANGE || strchr(num, 'x') || strchr(num, 'X')) v = NAN;
    }
    if (!(isfinite(v) && v > 0))
        return sl_errf(msg, msglen, SL_EINVAL, "%s@lr needs a finite number > 0, got '%.*s'", where,
                       (int)(n < 24 ? n : 24), p);
    *lr = v;
    return SL_OK;
}

/* ---- construction ------------------------------------------------------------ */

static sl_status stage_init(stage *t, int64_t start, const char *spec, size_t speclen, const sl_ramp *ramp,
                            const char *where, char *msg, size_t msglen)
{
    memset(t, 0, sizeof *t);
    t->start = start;
    t->lr = NAN;
    t->spec = malloc(speclen + 1);
    if (!t->spec) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    memcpy(t->spec, spec, speclen);
    t->spec[speclen] = 0;
    char sub[256];
    sl_status st = sl_loss_create(t->spec, &t->loss, sub, sizeof sub);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "%s%s", where, sub);
    t->nterms = sl_loss_num_terms(t->loss);
    t->base = malloc((size_t)t->nterms * sizeof(double));
    if (!t->base) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    for (int i = 0; i < t->nterms; i++) t->base[i] = sl_loss_term_weight(t->loss, i);
    if (ramp) {
        t->ramp = *ramp;
        t->has_ramp = 1;
        st = ramp_resolve(&t->ramp, t->nterms, where, msg, msglen);
        if (st != SL_OK) return st;
    }
    return SL_OK;
}

static sl_schedule *alloc_schedule(int n)
{
    sl_schedule *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->st = calloc((size_t)n, sizeof *s->st);
    if (!s->st) {
        free(s);
        return NULL;
    }
    return s;
}

sl_status sl_schedule_create_ramp(const char *spec, const sl_ramp *ramp, sl_schedule **out, char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!spec || !out) return sl_errf(msg, msglen, SL_EINVAL, "schedule: NULL argument");
    sl_schedule *s = alloc_schedule(1);
    if (!s) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    s->nstages = 1;
    sl_status st = stage_init(&s->st[0], 0, spec, strlen(spec), ramp, "schedule: ", msg, msglen);
    if (st != SL_OK) {
        sl_schedule_free(s);
        return st;
    }
    *out = s;
    return SL_OK;
}

sl_status sl_schedule_create(const char *text, sl_schedule **out, char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!text || !out) return sl_errf(msg, msglen, SL_EINVAL, "schedule: NULL argument");
    size_t len = strlen(text);
    if (len > SCHED_MAX_LEN)
        return sl_errf(msg, msglen, SL_EFORMAT, "schedule: longer than %d characters", SCHED_MAX_LEN);
    int n = 1;
    for (const char *c = text; *c; c++) n += *c == ';';
    if (n > SCHED_MAX_STAGES) return sl_errf(msg, msglen, SL_EFORMAT, "schedule: more than %d stages", SCHED_MAX_STAGES);
    sl_schedule *s = alloc_schedule(n);
    if (!s) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    sl_status st = SL_OK;
    const char *p = text;
    for (int i = 0; i < n && st == SL_OK; i++) {
        const char *end = strchr(p, ';');
        if (!end) end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        char where[96];
        snprintf(where, sizeof where, "schedule stage %d: ", i + 1);
        if (a == b) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%sempty stage%s", where,
                         n > 1 ? " (stages are separated by ';')" : "");
            break;
        }
        /* [epoch ':'] */
        int64_t start = -1;
        const char *colon = memchr(a, ':', (size_t)(b - a));
        if (colon) {
            const char *e0 = a, *e1 = colon;
            while (e1 > e0 && isspace((unsigned char)e1[-1])) e1--;
            int64_t v = 0;
            int ok = e1 > e0;
            for (const char *c = e0; c < e1 && ok; c++) {
                if (!isdigit((unsigned char)*c) || v > (INT64_MAX - 9) / 10) ok = 0;
                else v = v * 10 + (*c - '0');
            }
            if (!ok) {
                st = sl_errf(msg, msglen, SL_EFORMAT, "%sthe start epoch '%.*s' is not a non-negative integer", where,
                             (int)(e1 - e0 < 24 ? e1 - e0 : 24), e0);
                break;
            }
            start = v;
            snprintf(where, sizeof where, "schedule stage %d (epoch %lld): ", i + 1, (long long)start);
            a = colon + 1;
            while (a < b && isspace((unsigned char)*a)) a++;
        } else if (n > 1) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%sno start epoch ('EPOCH:spec'; only a single stage may omit it)",
                         where);
            break;
        } else {
            start = 0;
        }
        if (i == 0 && start != 0) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%sthe first stage must start at epoch 0 (epochs 0..%lld would have no loss)",
                         where, (long long)start - 1);
            break;
        }
        if (i > 0 && start == s->st[i - 1].start) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%soverlaps stage %d, which also starts at epoch %lld", where, i,
                         (long long)start);
            break;
        }
        if (i > 0 && start < s->st[i - 1].start) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%sstarts before stage %d (epoch %lld): stages must be in increasing order",
                         where, i, (long long)s->st[i - 1].start);
            break;
        }
        /* ['@lr=' number] at the end */
        double stage_lr = NAN;
        const char *at = memchr(a, '@', (size_t)(b - a));
        if (at) {
            st = parse_stage_lr(at, b, &stage_lr, where, msg, msglen);
            if (st != SL_OK) break;
            b = at;
            while (b > a && isspace((unsigned char)b[-1])) b--;
        }
        /* spec ['|' ramp] */
        const char *bar = b > a ? memchr(a, '|', (size_t)(b - a)) : NULL;
        const char *se = bar ? bar : b;
        while (se > a && isspace((unsigned char)se[-1])) se--;
        if (se == a) {
            st = sl_errf(msg, msglen, SL_EFORMAT, "%sno loss spec", where);
            break;
        }
        sl_ramp rr, *rp = NULL;
        if (bar) {
            if (memchr(bar + 1, '|', (size_t)(b - bar - 1))) {
                st = sl_errf(msg, msglen, SL_EFORMAT, "%smore than one '|' (one ramp per stage)", where);
                break;
            }
            st = parse_ramp(bar + 1, b, &rr, where, msg, msglen);
            if (st != SL_OK) break;
            rp = &rr;
        }
        s->nstages = i + 1;
        st = stage_init(&s->st[i], start, a, (size_t)(se - a), rp, where, msg, msglen);
        s->st[i].lr = stage_lr;
        p = *end ? end + 1 : end;
    }
    if (st != SL_OK) {
        sl_schedule_free(s); /* frees the stages built so far (nstages counts them) */
        return st;
    }
    *out = s;
    return SL_OK;
}

/* ---- stretching ----------------------------------------------------------------- */

/* v in the shortest "%.Ng" that reads back as v (at most 17 digits). */
static int put_number(char *buf, size_t len, double v)
{
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, len, "%.*g", prec, v);
        if (n < 0 || (size_t)n >= len || strtod(buf, NULL) == v) break;
    }
    return n;
}

/* Appends printf output to out at *at; 0 when it no longer fits. */
static int append(char *out, size_t outlen, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = *at < outlen ? vsnprintf(out + *at, outlen - *at, fmt, ap) : -1;
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen - *at) return 0;
    *at += (size_t)n;
    return 1;
}

sl_status sl_schedule_stretch(const char *text, int factor, char *out, size_t outlen, char *msg, size_t msglen)
{
    if (!text || !out || outlen == 0) return sl_errf(msg, msglen, SL_EINVAL, "schedule: NULL argument");
    if (factor < 1) return sl_errf(msg, msglen, SL_EINVAL, "schedule: stretch factor %d must be >= 1", factor);
    sl_schedule *s = NULL;
    sl_status st = sl_schedule_create(text, &s, msg, msglen);
    if (st != SL_OK) return st;
    /* nothing counted in epochs: the text itself, byte for byte */
    if (factor == 1 || (s->nstages == 1 && !s->st[0].has_ramp)) {
        sl_schedule_free(s);
        if (strlen(text) >= outlen) return sl_errf(msg, msglen, SL_ERANGE, "schedule: longer than %zu characters", outlen - 1);
        snprintf(out, outlen, "%s", text);
        return SL_OK;
    }
    size_t at = 0;
    int ok = 1;
    for (int i = 0; ok && i < s->nstages; i++) {
        const stage *t = &s->st[i];
        if (t->start > INT64_MAX / factor) {
            const long long start = (long long)t->start;
            sl_schedule_free(s);
            return sl_errf(msg, msglen, SL_ERANGE, "schedule: stage %d's start epoch %lld times %d overflows", i + 1, start,
                           factor);
        }
        ok = append(out, outlen, &at, "%s%lld:%s", i ? "; " : "", (long long)(t->start * factor), t->spec);
        if (ok && t->has_ramp) {
            const sl_ramp *r = &t->ramp;
            char v[6][32];
            put_number(v[0], sizeof v[0], r->grow_start);
            put_number(v[1], sizeof v[1], r->grow_step / factor);
            put_number(v[2], sizeof v[2], r->grow_cap);
            put_number(v[3], sizeof v[3], r->shrink_start);
            put_number(v[4], sizeof v[4], r->shrink_step / factor);
            put_number(v[5], sizeof v[5], r->shrink_floor);
            ok = append(out, outlen, &at, " | ramp(grow=%d,start=%s,step=%s,cap=%s,shrink=%d,shrink_start=%s,shrink_step=%s,floor=%s)",
                        r->grow, v[0], v[1], v[2], r->shrink, v[3], v[4], v[5]);
        }
        if (ok && !isnan(t->lr)) {
            char v[32];
            put_number(v, sizeof v, t->lr);
            ok = append(out, outlen, &at, " @lr=%s", v);
        }
    }
    sl_schedule_free(s);
    if (!ok) return sl_errf(msg, msglen, SL_ERANGE, "schedule: the stretched schedule is longer than %zu characters", outlen - 1);
    return SL_OK;
}

/* ---- queries -------------------------------------------------------------------- */

int sl_schedule_num_stages(const sl_schedule *s) { return s ? s->nstages : 0; }

double sl_schedule_stage_lr(const sl_schedule *s, int i)
{
    return s && i >= 0 && i < s->nstages ? s->st[i].lr : NAN;
}

int64_t sl_schedule_stage_start(const sl_schedule *s, int i)
{
    return s && i >= 0 && i < s->nstages ? s->st[i].start : -1;
}

const char *sl_schedule_stage_spec(const sl_schedule *s, int i)
{
    return s && i >= 0 && i < s->nstages ? s->st[i].spec : NULL;
}

int sl_schedule_stage_of(const sl_schedule *s, int64_t epoch)
{
    if (!s || epoch < 0) return -1;
    int k = 0;
    while (k + 1 < s->nstages && s->st[k + 1].start <= epoch) k++;
    return k;
}

sl_status sl_schedule_weights(const sl_schedule *s, int64_t epoch, double *w, int cap, int *nterms)
{
    if (!s || !nterms || epoch < 0 || cap < 0 || (cap > 0 && !w)) return SL_EINVAL;
    const stage *t = &s->st[sl_schedule_stage_of(s, epoch)];
    double *tmp = malloc((size_t)t->nterms * sizeof(double));
    if (!tmp) return SL_ENOMEM;
    stage_weights(t, epoch, tmp);
    for (int i = 0; i < t->nterms && i < cap; i++) w[i] = tmp[i];
    free(tmp);
    *nterms = t->nterms;
    return SL_OK;
}

static sl_status set_weights(const stage *t, sl_loss *loss, int64_t epoch, char *msg, size_t msglen)
{
    double *w = malloc((size_t)t->nterms * sizeof(double));
    if (!w) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    stage_weights(t, epoch, w);
    sl_status st = SL_OK;
    for (int i = 0; i < t->nterms && st == SL_OK; i++) {
        st = sl_loss_set_term_weight(loss, i, w[i]);
        if (st != SL_OK) st = sl_errf(msg, msglen, st, "schedule: weight %g of term %d refused", w[i], i);
    }
    free(w);
    return st;
}

sl_status sl_schedule_loss_for_epoch(sl_schedule *s, int64_t epoch, sl_loss **loss, char *msg, size_t msglen)
{
    if (loss) *loss = NULL;
    if (!s || !loss) return sl_errf(msg, msglen, SL_EINVAL, "schedule: NULL argument");
    if (epoch < 0) return sl_errf(msg, msglen, SL_EINVAL, "schedule: epoch %lld is negative", (long long)epoch);
    stage *t = &s->st[sl_schedule_stage_of(s, epoch)];
    sl_status st = set_weights(t, t->loss, epoch, msg, msglen);
    if (st == SL_OK) *loss = t->loss;
    return st;
}

sl_status sl_schedule_apply(const sl_schedule *s, sl_loss *loss, int64_t epoch, char *msg, size_t msglen)
{
    if (!s || !loss) return sl_errf(msg, msglen, SL_EINVAL, "schedule: NULL argument");
    if (epoch < 0) return sl_errf(msg, msglen, SL_EINVAL, "schedule: epoch %lld is negative", (long long)epoch);
    int k = sl_schedule_stage_of(s, epoch);
    const stage *t = &s->st[k];
    int same = sl_loss_num_terms(loss) == t->nterms;
    for (int i = 0; same && i < t->nterms; i++)
        same = !strcmp(sl_loss_term_name(loss, i), sl_loss_term_name(t->loss, i));
    if (!same) {
        char have[160] = "";
        size_t o = 0;
        for (int i = 0; i < sl_loss_num_terms(loss) && o + 1 < sizeof have; i++) {
            int w = snprintf(have + o, sizeof have - o, "%s%s", i ? "+" : "", sl_loss_term_name(loss, i));
            if (w < 0) break;
            o += (size_t)w;
        }
        return sl_errf(msg, msglen, SL_EBADSTATE,
                       "schedule: epoch %lld is in stage %d ('%s'), but the loss has the terms '%s' "
                       "(use sl_schedule_loss_for_epoch across stages)",
                       (long long)epoch, k + 1, t->spec, have);
    }
    return set_weights(t, loss, epoch, msg, msglen);
}

/* ---- state ------------------------------------------------------------------------ *
 * "SLSC" u32 version (1) u32 nstages, then per stage: u64 start epoch,
 * u64 byte count, the stage loss's state buffer. Little-endian. */

#define SCHED_MAGIC "SLSC"

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

sl_status sl_schedule_state_size(const sl_schedule *s, size_t *bytes)
{
    if (!s || !bytes) return SL_EINVAL;
    size_t n = 12;
    for (int i = 0; i < s->nstages; i++) {
        size_t b;
        sl_status st = sl_loss_state_size(s->st[i].loss, &b);
        if (st != SL_OK) return st;
        if (b > SIZE_MAX - 16 - n) return SL_EOVERFLOW;
        n += 16 + b;
    }
    *bytes = n;
    return SL_OK;
}

sl_status sl_schedule_state_get(const sl_schedule *s, void *buf, size_t len, size_t *written)
{
    size_t need;
    if (!s || !buf) return SL_EINVAL;
    sl_status st = sl_schedule_state_size(s, &need);
    if (st != SL_OK) return st;
    if (len < need) return SL_EINVAL;
    unsigned char *p = buf;
    memcpy(p, SCHED_MAGIC, 4);
    put64(p + 4, 1u | ((uint64_t)(uint32_t)s->nstages << 32)); /* u32 version, u32 nstages */
    p += 12;
    for (int i = 0; i < s->nstages; i++) {
        size_t b, w;
        sl_loss_state_size(s->st[i].loss, &b);
        put64(p, (uint64_t)s->st[i].start);
        put64(p + 8, (uint64_t)b);
        st = sl_loss_state_get(s->st[i].loss, p + 16, b, &w);
        if (st != SL_OK) return st;
        p += 16 + b;
    }
    if (written) *written = need;
    return SL_OK;
}

sl_status sl_schedule_state_set(sl_schedule *s, const void *buf, size_t len, char *msg, size_t msglen)
{
    if (!s || (!buf && len)) return sl_errf(msg, msglen, SL_EINVAL, "schedule state: NULL argument");
    const unsigned char *p = buf, *end = p + len;
    if (len < 12 || memcmp(p, SCHED_MAGIC, 4) != 0)
        return sl_errf(msg, msglen, SL_EFORMAT, "schedule state: not a segloss schedule-state buffer");
    uint64_t head = get64(p + 4);
    if ((uint32_t)head != 1u)
        return sl_errf(msg, msglen, SL_EFORMAT, "schedule state: version %u is not supported", (unsigned)(uint32_t)head);
    if ((uint32_t)(head >> 32) != (uint32_t)s->nstages)
        return sl_errf(msg, msglen, SL_EBADSTATE, "schedule state: saved from %u stages, this schedule has %d",
                       (unsigned)(head >> 32), s->nstages);
    p += 12;
    /* Frame check first. */
    const unsigned char *q = p;
    for (int i = 0; i < s->nstages; i++) {
        if (end - q < 16) return sl_errf(msg, msglen, SL_EFORMAT, "schedule state: truncated at stage %d", i + 1);
        uint64_t start = get64(q), b = get64(q + 8);
        if (start != (uint64_t)s->st[i].start)
            return sl_errf(msg, msglen, SL_EBADSTATE, "schedule state: stage %d started at epoch %llu, here at %lld",
                           i + 1, (unsigned long long)start, (long long)s->st[i].start);
        if (b > (uint64_t)(end - q - 16))
            return sl_errf(msg, msglen, SL_EFORMAT, "schedule state: truncated in stage %d", i + 1);
        q += 16 + b;
    }
    if (q != end)
        return sl_errf(msg, msglen, SL_EFORMAT, "schedule state: %lld bytes after the last stage", (long long)(end - q));
    /* Keep the current states to roll back if a stage refuses its part. */
    size_t cur;
    sl_status st = sl_schedule_state_size(s, &cur);
    unsigned char *backup = st == SL_OK ? malloc(cur) : NULL;
    if (!backup || sl_schedule_state_get(s, backup, cur, NULL) != SL_OK) {
        free(backup);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    }
    q = p;
    int failed_at = -1;
    for (int i = 0; i < s->nstages; i++) {
        uint64_t b = get64(q + 8);
        char sub[200];
        st = sl_loss_state_set(s->st[i].loss, q + 16, (size_t)b, sub, sizeof sub);
        if (st != SL_OK) {
            sl_errf(msg, msglen, st, "schedule state: stage %d: %s", i + 1, sub);
            failed_at = i;
            break;
        }
        q += 16 + b;
    }
    if (failed_at >= 0) {
        const unsigned char *r = backup + 12;
        for (int i = 0; i < failed_at; i++) {
            uint64_t b = get64(r + 8);
            sl_loss_state_set(s->st[i].loss, r + 16, (size_t)b, NULL, 0);
            r += 16 + b;
        }
    }
    free(backup);
    return st;
}
