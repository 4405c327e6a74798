/* The fused two-pass evaluation of region + cross-entropy specs (fused.c). */
#ifndef SL_LOSS_FUSED_H
#define SL_LOSS_FUSED_H
#include "fastexp.h"
#include "term.h"

/* Softmax's first pass over voxels s0..s0+len of one sample's scores xn
 * ((C, S), C >= 2): mx[i] the largest score, sum[i] = Σ_c exp(x_c − mx[i])
 * and, when e is not NULL, e[c*stride + i] = exp(x_c − mx[i]). Every loop is
 * elementwise over i, so vector width changes no result; always inlined, so
 * each instruction-set build of a kernel (fused.c, fused_hard.c) has its own
 * copy. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void sl_block_expsum(const float *xn, int64_t C, int64_t S, int64_t s0, int64_t len, int64_t stride,
                                   float *mx, float *sum, float *e)
{
    /* starting from the first two channels avoids a copy */
    const float *x0 = xn + s0, *x1 = xn + S + s0;
    for (int64_t i = 0; i < len; i++) mx[i] = x1[i] > x0[i] ? x1[i] : x0[i];
    for (int64_t c = 2; c < C; c++)
        for (int64_t i = 0; i < len; i++) {
            float v = xn[c * S + s0 + i];
            mx[i] = v > mx[i] ? v : mx[i];
        }
    for (int64_t i = 0; i < len; i++) sum[i] = 0;
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < len; i++) {
            float v = sl_exp_nonpos(xn[c * S + s0 + i] - mx[i]);
            if (e) e[c * stride + i] = v;
            sum[i] += v;
        }
}

/* q^γ into qg[i] and q^(γ−1) into qg1[i] for a block of bases q ≥ 0: integer
 * γ = ig in [0, 8] by multiplication in elementwise loops (they vectorise;
 * qg1 = 1 for γ = 0), other γ (ig = −1) by pow() in double, with
 * q^(γ−1) = 0 at q = 0 (the limit the focal gradients take, focal.c). */
static inline void sl_block_powers(const float *q, int64_t len, int ig, double gamma, float *qg, float *qg1)
{
    if (ig >= 0) {
        for (int64_t i = 0; i < len; i++) qg1[i] = 1.0f, qg[i] = ig > 0 ? q[i] : 1.0f;
        for (int r = 1; r < ig; r++)
            for (int64_t i = 0; i < len; i++) qg1[i] = qg[i], qg[i] *= q[i];
        return;
    }
    for (int64_t i = 0; i < len; i++) {
        qg[i] = (float)pow((double)q[i], gamma);
        qg1[i] = q[i] > 0 ? (float)pow((double)q[i], gamma - 1.0) : 0.0f;
    }
}

/* 1 when every term can be fused under activation `act` (softmax or
 * sigmoid): region losses with region_finalize, and ce/wce/bce; all with
 * the same ignore_index. */
int sl_fused_eligible(const sl_term *terms, int nterms, int64_t C, int act);

/* Evaluates all terms in two passes over cx->x; sets each term's
 * last_value, writes the total to *value and, when grad is not NULL, the
 * whole gradient (every element overwritten). cx carries the dims, target,
 * activation and threads; its p/logp/dp/dx are not used. */
sl_status sl_fused_forward(sl_term *terms, int nterms, const sl_ctx *cx, double *value, float *grad, char *msg,
                           size_t msglen);

/* 1 when the spec is a single focal term the one-pass kernel takes
 * (softmax, hard labels or soft targets, not smp's normalized/reduced
 * forms, no mask), or a single ce/wce under softmax on hard labels (γ = 0,
 * with or without label smoothing). */
int sl_fused_focal_eligible(const sl_term *terms, int nterms, const sl_target *tg, int act, int64_t C);

/* Evaluates that term in one pass over cx->x: sets its last_value, writes
 * weight·value to *value and, when grad is not NULL, the whole gradient. */
sl_status sl_fused_focal(sl_term *t, const sl_ctx *cx, double *value, float *grad, char *msg, size_t msglen);

/* fused_hard.c: 1 when the spec is a single topk or ohem term under softmax
 * with a label map and no mask (ignore_index allowed). */
int sl_fused_hard_eligible(const sl_term *terms, int nterms, const sl_target *tg, int act);

/* Evaluates that term from the scores: per-voxel CE, selection without a
 * sort, the gradient of the selected voxels (0 elsewhere, every element
 * written). Sets its last_value and *value = weight·value. */
sl_status sl_fused_hard(sl_term *t, const sl_ctx *cx, double *value, float *grad, char *msg, size_t msglen);

/* fused_focal_sig.c: 1 for a single focal term under sigmoid (labels or
 * soft targets; smp's normalized/reduced forms with labels only) or a single
 * binary cross-entropy (bce, or ce/wce under sigmoid) without label
 * smoothing (soft targets only without weights or pos_weight); no mask.
 * sl_fused_focal_sig evaluates it in one pass as sl_fused_focal does (two
 * for smp's normalized form). */
int sl_fused_focal_sig_eligible(const sl_term *terms, int nterms, const sl_target *tg, int act);
sl_status sl_fused_focal_sig(sl_term *t, const sl_ctx *cx, double *value, float *grad, char *msg, size_t msglen);

/* focal.c: α per class (softmax: a scalar a means [1 − a, a, ..., a]). */
sl_status sl_focal_alpha(const sl_params *pr, int64_t C, int softmax, double *a, int *has, char *msg, size_t msglen);

/* The instruction set of the fused kernels: sl_isa() (src/core/isa.c). */
#endif
