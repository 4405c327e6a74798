/*
 * Optimisers (Adam, AdamW, SGD with momentum / Nesterov), gradient-norm
 * clipping and learning-rate schedules.
 *
 * The update rules follow torch.optim in PyTorch 1.13 operation by
 * operation, so that a run here and a run there stay within float rounding
 * of each other (tests/ref/test_nn_optim.py):
 *   Adam:  g += wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *          p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW: p *= 1 - lr wd, then Adam without the g += wd p
 *   SGD:   g += wd p;  buf = g at the first step, else mu buf + (1 - damp) g;
 *          d = g + mu buf (Nesterov) or buf;  p -= lr d
 * t counts steps from 1. When OneCycle cycles the momentum, the bias
 * correction uses the beta1 of the current step, as PyTorch does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "nn_internal.h"

/* ---------------------------------------------------------- schedules */

static sl_status schedule_check(const sl_lr_schedule *s, char *msg, size_t msglen)
{
    if (!s) return sl_errf(msg, msglen, SL_EINVAL, "schedule is NULL");
    switch (s->kind) {
    case SL_SCHED_CONSTANT:
        return SL_OK;
    case SL_SCHED_ONECYCLE:
        if (s->total_steps < 1)
            return sl_errf(msg, msglen, SL_EINVAL, "onecycle: total_steps must be >= 1, got %lld", (long long)s->total_steps);
        if (!(s->pct_start > 0.0 && s->pct_start < 1.0))
            return sl_errf(msg, msglen, SL_EINVAL, "onecycle: pct_start must be in (0, 1), got %g", s->pct_start);
        /* PyTorch divides by the phase lengths pct_start * total - 1 and
         * total - 1 - (pct_start * total - 1): both must be positive */
        if (!(s->pct_start * (double)s->total_steps - 1.0 > 0.0) ||
            !((double)s->total_steps - s->pct_start * (double)s->total_steps > 0.0))
            return sl_errf(msg, msglen, SL_EINVAL, "onecycle: pct_start %g leaves an empty phase of %lld steps",
                           s->pct_start, (long long)s->total_steps);
        if (!(s->div_factor > 0.0) || !(s->final_div_factor > 0.0) || !isfinite(s->div_factor) ||
            !isfinite(s->final_div_factor))
            return sl_errf(msg, msglen, SL_EINVAL, "onecycle: div_factor and final_div_factor must be > 0");
        if (s->cycle_momentum && !(s->base_momentum >= 0.0 && s->base_momentum < 1.0 &&
                                   s->max_momentum >= 0.0 && s->max_momentum < 1.0))
            return sl_errf(msg, msglen, SL_EINVAL, "onecycle: momenta must be in [0, 1)");
        return SL_OK;
    case SL_SCHED_POLY:
        if (s->total_steps < 1)
            return sl_errf(msg, msglen, SL_EINVAL, "poly: total_steps must be >= 1, got %lld", (long long)s->total_steps);
        if (!(s->power >= 0.0) || !isfinite(s->power))
            return sl_errf(msg, msglen, SL_EINVAL, "poly: power must be >= 0, got %g", s->power);
        return SL_OK;
    }
    return sl_errf(msg, msglen, SL_EINVAL, "unknown schedule kind %d", (int)s->kind);
}

/* torch's _annealing_cos: from start to end as pct goes 0 -> 1 */
static double anneal_cos(double start, double end, double pct)
{
    return end + (start - end) / 2.0 * (cos(3.14159265358979323846 * pct) + 1.0);
}

sl_status sl_lr_schedule_at(const sl_lr_schedule *s, double lr, double momentum, int64_t step,
                         double *lr_out, double *momentum_out)
{
    sl_status st = schedule_check(s, NULL, 0);
    if (st || !lr_out || step < 0) return SL_EINVAL;
    double m = momentum;
    switch (s->kind) {
    case SL_SCHED_CONSTANT:
        *lr_out = lr;
        break;
    case SL_SCHED_POLY: {
        int64_t t = step < s->total_steps ? step : s->total_steps;
        *lr_out = lr * pow(1.0 - (double)t / (double)s->total_steps, s->power);
        break;
    }
    case SL_SCHED_ONECYCLE: {
        /* two phases as OneCycleLR(three_phase=False): steps 0 .. e1 rise
         * from lr/div to lr (momentum max -> base), e1 .. total-1 fall to
         * lr/div/final_div (momentum base -> max); e1 = pct * total - 1 */
        const double initial = lr / s->div_factor, min_lr = initial / s->final_div_factor;
        const double e1 = s->pct_start * (double)s->total_steps - 1.0;
        const double e2 = (double)s->total_steps - 1.0;
        double t = (double)(step < s->total_steps ? step : s->total_steps - 1);
        if (t <= e1) {
            double pct = t / e1;
            *lr_out = anneal_cos(initial, lr, pct);
            m = anneal_cos(s->max_momentum, s->base_momentum, pct);
        } else {
            double pct = (t - e1) / (e2 - e1);
            *lr_out = anneal_cos(lr, min_lr, pct);
            m = anneal_cos(s->base_momentum, s->max_momentum, pct);
        }
        if (!s->cycle_momentum) m = momentum;
        break;
    }
    }
    if (momentum_out) *momentum_out = m;
    return SL_OK;
}

/* ------------------------------------------------------- gradient norm */

sl_status sl_nn_grad_norm(const float *g, int64_t n, int threads, double *norm)
{
    if (!g || !norm || n < 0) return SL_EINVAL;
    int64_t nch = sl_nchunks(n);
    double *part = nch ? malloc((size_t)nch * sizeof(double)) : NULL;
    if (nch && !part) return SL_ENOMEM;
#pragma omp parallel for num_threads(sl_threads(threads)) schedule(static)
    for (int64_t ch = 0; ch < nch; ch++) {
        int64_t a = ch * SL_CHUNK, b = a + SL_CHUNK < n ? a + SL_CHUNK : n;
        double s = 0.0;
        for (int64_t i = a; i < b; i++) s += (double)g[i] * (double)g[i];
        part[ch] = s;
    }
    *norm = sqrt(sl_sum_ordered(part, nch));
    free(part);
    return SL_OK;
}

sl_status sl_nn_clip_grad_norm(float *g, int64_t n, double max_norm, int threads, double *total_norm)
{
    if (!g || n < 0 || !(max_norm > 0.0)) return SL_EINVAL;
    double norm;
    sl_status st = sl_nn_grad_norm(g, n, threads, &norm);
    if (st) return st;
    if (total_norm) *total_norm = norm;
    if (!isfinite(norm)) return SL_ENONFINITE;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const float cf = (float)coef;
#pragma omp parallel for num_threads(sl_threads(threads)) schedule(static)
        for (int64_t i = 0; i < n; i++) g[i] *= cf;
    }
    return SL_OK;
}

/* ---------------------------------------------------------- optimisers */

int sl_optim_state_per_param(const sl_optim_config *cfg)
{
    switch (cfg->kind) {
    case SL_OPTIM_ADAM:
    case SL_OPTIM_ADAMW:
        return 2;
    case SL_OPTIM_SGD:
        /* OneCycle sets the momentum even when the base is 0 */
        return (cfg->momentum != 0.0 ||
                (cfg->schedule.kind == SL_SCHED_ONECYCLE && cfg->schedule.cycle_momentum))
                   ? 1
                   : 0;
    }
    return 0;
}

sl_status sl_optim_config_check(const sl_optim_config *c, char *msg, size_t msglen)
{
    if (!c) return sl_errf(msg, msglen, SL_EINVAL, "optimiser config is NULL");
    if (c->kind != SL_OPTIM_ADAM && c->kind != SL_OPTIM_ADAMW && c->kind != SL_OPTIM_SGD)
        return sl_errf(msg, msglen, SL_EINVAL, "unknown optimiser kind %d", (int)c->kind);
    if (!(c->lr >= 0.0) || !isfinite(c->lr))
        return sl_errf(msg, msglen, SL_EINVAL, "lr must be >= 0, got %g", c->lr);
    if (!(c->weight_decay >= 0.0) || !isfinite(c->weight_decay))
        return sl_errf(msg, msglen, SL_EINVAL, "weight_decay must be >= 0, got %g", c->weight_decay);
    if (!(c->clip_norm >= 0.0) || !isfinite(c->clip_norm))
        return sl_errf(msg, msglen, SL_EINVAL, "clip_norm must be >= 0 (0 = off), got %g", c->clip_norm);
    if (c->kind != SL_OPTIM_SGD) {
        if (!(c->beta1 >= 0.0 && c->beta1 < 1.0))
            return sl_errf(msg, msglen, SL_EINVAL, "beta1 must be in [0, 1), got %g", c->beta1);
        if (!(c->beta2 >= 0.0 && c->beta2 < 1.0))
            return sl_errf(msg, msglen, SL_EINVAL, "beta2 must be in [0, 1), got %g", c->beta2);
        if (!(c->eps > 0.0) || !isfinite(c->eps))
            return sl_errf(msg, msglen, SL_EINVAL, "eps must be > 0, got %g", c->eps);
    } else {
        if (!(c->momentum >= 0.0 && c->momentum < 1.0))
            return sl_errf(msg, msglen, SL_EINVAL, "momentum must be in [0, 1), got %g", c->momentum);
        if (!(c->dampening >= 0.0 && c->dampening <= 1.0))
            return sl_errf(msg, msglen, SL_EINVAL, "dampening must be in [0, 1], got %g", c->dampening);
        if (c->nesterov && (c->momentum <= 0.0 || c->dampening != 0.0))
            return sl_errf(msg, msglen, SL_EINVAL, "nesterov needs momentum > 0 and dampening 0");
    }
    return schedule_check(&c->schedule, msg, msglen);
}

sl_status sl_optim_create_flat(sl_optim **out, float *params, float *grads, int64_t n,
                               const sl_optim_config *cfg, char *msg, size_t msglen)
{
    if (!out) return sl_errf(msg, msglen, SL_EINVAL, "out is NULL");
    *out = NULL;
    if (!params || !grads || n < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "optimiser needs parameter and gradient arrays of n >= 1 floats");
    sl_status st = sl_optim_config_check(cfg, msg, msglen);
    if (st) return st;
    sl_optim *o = calloc(1, sizeof *o);
    if (!o) return sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
    o->cfg = *cfg;
    o->params = params;
    o->grads = grads;
    o->n = n;
    int k = sl_optim_state_per_param(cfg);
    if (k >= 1) o->m = sl_calloc(n, sizeof(float));
    if (k >= 2) o->v = sl_calloc(n, sizeof(float));
    if ((k >= 1 && !o->m) || (k >= 2 && !o->v)) {
        sl_optim_free(o);
        return sl_errf(msg, msglen, SL_ENOMEM, "out of memory for optimiser state of %lld floats", (long long)n);
    }
    *out = o;
    return SL_OK;
}

sl_status sl_optim_create(sl_optim **out, sl_unet *net, const sl_optim_config *cfg, char *msg,
                          size_t msglen)
{
    if (!out) return sl_errf(msg, msglen, SL_EINVAL, "out is NULL");
    *out = NULL;
    if (!net) return sl_errf(msg, msglen, SL_EINVAL, "net is NULL");
    sl_status st = sl_optim_create_flat(out, net->params, net->grads, net->nparams, cfg, msg, msglen);
    if (!st) (*out)->threads = net->threads;
    return st;
}

void sl_optim_free(sl_optim *opt)
{
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    free(opt);
}

sl_status sl_optim_set_threads(sl_optim *opt, int threads)
{
    if (!opt || threads < 0) return SL_EINVAL;
    opt->threads = threads;
    return SL_OK;
}

sl_status sl_optim_set_lr(sl_optim *opt, double lr)
{
    if (!opt || !(isfinite(lr) && lr > 0)) return SL_EINVAL;
    opt->cfg.lr = lr;
    return SL_OK;
}

int64_t sl_optim_num_steps(const sl_optim *opt) { return opt ? opt->step : -1; }

sl_status sl_optim_get_config(const sl_optim *opt, sl_optim_config *cfg)
{
    if (!opt || !cfg) return SL_EINVAL;
    *cfg = opt->cfg;
    return SL_OK;
}

sl_status sl_optim_step(sl_optim *opt, sl_optim_stats *stats)
{
    if (!opt) return SL_EINVAL;
    const sl_optim_config *c = &opt->cfg;
    const int th = sl_threads(opt->threads);
    const int64_t n = opt->n;
    float *p = opt->params, *g = opt->grads;
    double lr, mom, gnorm = -1.0;
    double base_m = c->kind == SL_OPTIM_SGD ? c->momentum : c->beta1;
    sl_lr_schedule_at(&c->schedule, c->lr, base_m, opt->step, &lr, &mom);
    if (c->clip_norm > 0.0) {
        sl_status st = sl_nn_clip_grad_norm(g, n, c->clip_norm, th, &gnorm);
        if (st) return st;
    }
    const int64_t t = opt->step + 1;
    const float wd = (float)c->weight_decay;
    switch (c->kind) {
    case SL_OPTIM_ADAM:
    case SL_OPTIM_ADAMW: {
        const float b1 = (float)mom, b2 = (float)c->beta2, eps = (float)c->eps;
        const double bc1 = 1.0 - pow(mom, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
        const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
        const float decay = (float)(1.0 - lr * c->weight_decay);
        const int adamw = c->kind == SL_OPTIM_ADAMW;
        float *m = opt->m, *v = opt->v;
#pragma omp parallel for num_threads(th) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            if (adamw) p[i] *= decay;
            else if (wd != 0.0f) gi += wd * p[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            float denom = sqrtf(v[i]) / bc2_sqrt + eps;
            p[i] -= step_size * (m[i] / denom);
        }
        break;
    }
    case SL_OPTIM_SGD: {
        const float mu = (float)mom, damp = (float)c->dampening, flr = (float)lr;
        const int first = opt->step == 0, nest = c->nesterov;
        float *buf = opt->m;
#pragma omp parallel for num_threads(th) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float d = g[i];
            if (wd != 0.0f) d += wd * p[i];
            if (buf) {
                if (first) buf[i] = d;
                else buf[i] = mu * buf[i] + (1.0f - damp) * d;
                d = nest ? d + mu * buf[i] : buf[i];
            }
            p[i] -= flr * d;
        }
        break;
    }
    }
    opt->step = t;
    if (stats) {
        stats->lr = lr;
        stats->momentum = mom;
        stats->grad_norm = gnorm;
        stats->step = t;
    }
    return SL_OK;
}
