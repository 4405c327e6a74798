/*
 * The fused path's two passes (fused.c) for its most common case: softmax
 * over C = 2..8 channels, int32 labels, region terms and at most one
 * cross-entropy of the common form (hard labels, no smoothing) — dice+ce,
 * and dice, tversky, gdice, ... with or without ce; and, in one pass, the
 * focal loss and a lone ce or wce on labels (focal_body16), and topk and
 * ohem's first pass (hard_block16).
 *
 * Why a kernel of its own: the generic passes stage every quantity (p, g,
 * the valid mask, w_y, ...) in VB-voxel scratch rows, one loop per class and
 * per quantity, so each voxel's data goes through L1 a dozen times. Here C
 * is a compile-time constant (one copy of the kernel per C) and 16 voxels
 * are one vector (sl_v16f, fastexp.h) carried through a straight-line body:
 * the C scores, their exponentials, the probabilities and the one-hot target
 * stay in registers from the load of the scores to the last sum (pass 1) or
 * to the store of the gradient (pass 2). One exponential per logit and
 * pass, a logarithm per class and lane per block (pass 1, see pass1_block),
 * no gathers: w_y and x_y are selections over the classes.
 *
 * Same arithmetic on every instruction set: the vector code is the same
 * float operations lane by lane whatever the target maps it to (one AVX-512
 * register, two AVX2 ones, four SSE ones; no -ffast-math, no contraction in
 * ISO C), and pass 1 sums in sixteen fixed lanes (lane = voxel index mod 16
 * within a block of VB voxels) that are added in order into doubles. So the
 * AVX-512, AVX2 and baseline copies give the same bits
 * (tests/unit/test_fused_isa.c). Pass 2's arithmetic is that of fused.c's
 * pass 2, so the gradient has its bits too.
 *
 * When the gradient is wanted, pass 1 leaves the probabilities in the
 * gradient's buffer and pass 2 turns them into the gradient in place: one
 * exponential per logit in all instead of two (the exponentials and the
 * softmax took half of pass 2), for one more write and read of a buffer
 * the size of the scores, which pass 1's arithmetic hides (it is bound by
 * compute, not by memory). Pass 2 reads each line before it writes it, so
 * its stores need no read of their own. The probabilities pass 2 reads are
 * the ones it would have computed, bit for bit.
 */
#include <stdint.h>
#include <string.h>
#include "fastexp.h"
#include "fused.h"
#include "fused_dce.h"

#define VB 256   /* voxels per block: at most 16 terms per lane before the lanes go into doubles */
#define LANES 16 /* voxels carried at once: one sl_v16f */
#define CMAX 8
#define PD (4 * VB) /* pass 1 prefetches its scores and labels this many voxels ahead */
#if defined(__GNUC__)
#define SL_INLINE __attribute__((always_inline)) inline
#else
#define SL_INLINE
#endif

#if SL_HAVE_V16
typedef sl_v16f vf;
typedef sl_v16i vi;

/* Lanes of v where the mask m is true, +0 elsewhere. */
static SL_INLINE vf keep(vi m, vf v) { return (vf)(m & (vi)v); }

/* The C scores (or probabilities) and the labels of cnt voxels (1..16)
 * from s on; lanes past cnt get 0 and the label `pad` (an ignored voxel's),
 * so that they add nothing to any sum. */
static SL_INLINE void load16(const float *xn, const int32_t *lab, int64_t S, int64_t s, int64_t cnt, int32_t pad,
                             vf *x, vi *y, const int C)
{
    if (cnt == LANES) {
        for (int c = 0; c < C; c++) memcpy(&x[c], xn + c * S + s, sizeof x[c]);
        memcpy(y, lab + s, sizeof *y);
        return;
    }
    float xb[LANES];
    int32_t yb[LANES];
    for (int c = 0; c < C; c++) {
        for (int l = 0; l < LANES; l++) xb[l] = l < cnt ? xn[c * S + s + l] : 0.0f;
        memcpy(&x[c], xb, sizeof xb);
    }
    for (int l = 0; l < LANES; l++) yb[l] = l < cnt ? lab[s + l] : pad;
    memcpy(y, yb, sizeof yb);
}

/* The block PD voxels after s0: one line of each score row and of the
 * labels. C + 1 streams read (and C written) per thread are more than the
 * hardware prefetchers keep ahead of (5-9 % of dice+ce's time in an A/B; a
 * prefetch past the end of a buffer is harmless). */
static SL_INLINE void prefetch_block(const float *xn, const int32_t *lab, int64_t S, int64_t s0, const int C)
{
    for (int64_t o = 0; o < VB; o += 16) {
        for (int c = 0; c < C; c++) __builtin_prefetch(xn + c * S + s0 + PD + o);
        if (!(o & 16)) __builtin_prefetch(lab + s0 + PD + o);
    }
}

/* v[c] of cnt voxels (1..16) into the C rows of d from s on. */
static SL_INLINE void store16(float *d, int64_t S, int64_t s, int64_t cnt, const vf *v, const int C)
{
    if (cnt == LANES) /* a constant size: one vector store, not a copy loop */
        for (int c = 0; c < C; c++) memcpy(d + c * S + s, &v[c], sizeof v[c]);
    else
        for (int c = 0; c < C; c++) memcpy(d + c * S + s, &v[c], (size_t)cnt * sizeof(float));
}

/* Softmax of 16 voxels: probabilities p[c], the largest score mx and
 * sum = Σ exp(x − mx) (>= 1) per lane. */
static SL_INLINE void softmax16(const vf *x, vf *p, vf *mx, vf *sum, const int C)
{
    vf m = sl_v16_sel(x[0] > x[1], x[0], x[1]), s = {0};
#pragma GCC unroll 8
    for (int c = 2; c < C; c++) m = sl_v16_sel(x[c] > m, x[c], m);
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        p[c] = sl_exp_nonpos_v16_unclamped(x[c] - m); /* x[c] - m <= 0 or NaN */
        s += p[c];
    }
    const vf one = s * 0.0f + 1.0f, inv = one / s;
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) p[c] *= inv;
    *mx = m;
    *sum = s;
}

/* softmax16, and per lane 0 for finite scores, NaN otherwise: NaN anywhere
 * or +Inf makes some x − mx NaN and so the sum NaN (sum − sum is NaN then);
 * −Inf is the smallest score (lo − lo). Arithmetic, not compares: GCC turned
 * the vector compares here into one scalar compare per lane, a third of the
 * loop's instructions. */
static SL_INLINE vf softmax16_checked(const vf *x, vf *p, vf *mx, vf *sum, const int C)
{
    vf lo = sl_v16_sel(x[0] < x[1], x[0], x[1]);
#pragma GCC unroll 8
    for (int c = 2; c < C; c++) lo = sl_v16_sel(x[c] < lo, x[c], lo);
    softmax16(x, p, mx, sum, C);
    return (*sum - *sum) + (lo - lo);
}

/* Pass 1's sums over one (sample, chunk) in double lanes: each block's
 * float lanes (at most 16 terms each) are converted and added here, eight
 * lanes at a time, and the eight lanes are added in order at the chunk's
 * end. Converting and adding the sixteen lanes one by one at every block's
 * end took a sixth of pass 1. */
typedef double vd __attribute__((vector_size(64)));
typedef float vh __attribute__((vector_size(32)));
typedef struct {
    vd tp[CMAX], sp[CMAX], sg[CMAX], sp2[CMAX], lg[CMAX], cnt, nu, de;
    vf bad; /* 0, or NaN in a lane that saw a non-finite score */
} dsums;

/* *d += the 16 lanes of v: lanes 0-7, then 8-15. */
static SL_INLINE void add_lanes(vd *d, vf v)
{
    vh lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    *d += __builtin_convertvector(lo, vd);
    *d += __builtin_convertvector(hi, vd);
}

/* The lanes of v added in lane order. */
static SL_INLINE double lane_sum(vd v)
{
    double t[8], s = 0;
    memcpy(t, &v, sizeof t);
    for (int l = 0; l < 8; l++) s += t[l];
    return s;
}

/* Class c's sums over the ng groups of a block from the scratch of
 * pass1_block: tp, sp, sg, and Σp² (when a term is squared) and the
 * product of the sums of exponentials (when there is a CE) only when asked:
 * the loop takes a fifth of pass 1. */
static SL_INLINE void class_sums(const vf *pb, const vi *yb, const vf *sb, int ng, int c, dsums *ds, const int want_sp2,
                                 const int want_prod)
{
    const vf zero = {0}, one = zero + 1.0f;
    vf tp = zero, sp = zero, sg = zero, sp2 = zero, prod = one;
    for (int q = 0; q < ng; q++) {
        const vi hit = yb[q] == c;
        const vf pv = pb[q];
        tp += keep(hit, pv);
        sp += pv;
        sg += keep(hit, one);
        if (want_sp2) sp2 += pv * pv;
        if (want_prod) prod *= sl_v16_sel(hit, sb[q], one);
    }
    add_lanes(&ds->tp[c], tp), add_lanes(&ds->sp[c], sp), add_lanes(&ds->sg[c], sg);
    if (want_sp2) add_lanes(&ds->sp2[c], sp2);
    if (want_prod) add_lanes(&ds->lg[c], sl_log_pos_v16(prod));
}

/*
 * Pass 1 over one block of at most VB voxels from s0: the region sums per
 * class (tp, sp, sg, sp2), the valid count, the CE's numerator and
 * denominator, in float lanes, then into ds; the probabilities into pn's
 * rows when pn is not NULL.
 *
 * Two loops over the block. The first takes the softmax of each group of
 * 16 voxels and what needs the scores (the CE's terms, the check for
 * non-finite scores) and leaves the probabilities, the sums of exponentials
 * and the labels in the block's scratch (L1); the second takes the region
 * sums and the products below from there, one class at a time. One loop
 * holding every sum of every class needs more vector registers than there
 * are (5C sums, the exponential's constants, the scores): it kept half of
 * them in memory, reloaded and stored again for every 16 voxels.
 *
 * Ignored voxels get the label −1 and the probability 0, so "y == c" also
 * says "valid" and they add nothing to Σp (pass 2 writes 0 for them
 * whatever it reads).
 *
 * The CE numerator Σ w_y·(log Σexp + mx − x_y) takes its log Σexp part as
 * logs of products: prod multiplies, per lane, the sums of the voxels
 * labelled c (at most 16 factors in [1, C], so below 8^16 = 2^48), and the
 * part is Σ_c w_c·log prod: C logarithms per block of up to 256 voxels
 * instead of one per voxel, and no less accurate (one rounding per factor
 * against one per logarithm).
 *
 * Non-finite scores need no test per score (softmax16_checked).
 */
static SL_INLINE void pass1_block(const sl_dce_job *j, const float *xn, const int32_t *lab, int64_t s0, int64_t len,
                                  const float *wc, dsums *ds, float *pn, const int C)
{
    const vf zero = {0}, one = zero + 1.0f;
    const vi ig = (vi){0} + j->ignore;
    vf pb[CMAX][VB / LANES], sb[VB / LANES], cnt = zero, nu = zero, de = zero, bad = zero;
    vi yb[VB / LANES];
    const int ng = (int)((len + LANES - 1) / LANES);
    prefetch_block(xn, lab, j->S, s0, C);
    for (int q = 0; q < ng; q++) {
        const int64_t i = (int64_t)q * LANES, k = len - i < LANES ? len - i : LANES;
        vf x[CMAX], p[CMAX], mx, sum;
        vi y;
        load16(xn, lab, j->S, s0 + i, k, j->ignore, x, &y, C);
        bad += softmax16_checked(x, p, &mx, &sum, C);
        const vi valid = y != ig;
        y |= ~valid;
        vf xy = zero, wy = zero;
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const vi hit = y == c;
            p[c] = keep(valid, p[c]);
            pb[c][q] = p[c];
            xy = sl_v16_sel(hit, x[c], xy); /* one class matches: exact */
            wy = sl_v16_sel(hit, zero + wc[c], wy);
        }
        if (pn) store16(pn, j->S, s0 + i, k, p, C);
        sb[q] = sum;
        yb[q] = y;
        cnt += keep(valid, one);
        nu += wy * (mx - xy); /* wy = 0 for an ignored voxel */
        de += wy;
    }
    add_lanes(&ds->cnt, cnt), add_lanes(&ds->nu, nu), add_lanes(&ds->de, de);
    ds->bad += bad;
    for (int c = 0; c < C; c++) {
        if (j->sp2 && j->nce) class_sums(pb[c], yb, sb, ng, c, ds, 1, 1);
        else if (j->sp2) class_sums(pb[c], yb, sb, ng, c, ds, 1, 0);
        else if (j->nce) class_sums(pb[c], yb, sb, ng, c, ds, 0, 1);
        else class_sums(pb[c], yb, sb, ng, c, ds, 0, 0);
    }
}

/* Pass 1 over voxels [a, b) of sample n: adds fused.c's sums to acc. */
static SL_INLINE void pass1_body(const sl_dce_job *j, int64_t n, int64_t a, int64_t b, double *acc, const int C)
{
    const int64_t S = j->S;
    float wc[CMAX] = {0};
    for (int c = 0; c < C; c++) wc[c] = j->nce ? j->wc[c] : 0.0f;
    dsums ds;
    memset(&ds, 0, sizeof ds);
    for (int64_t s0 = a; s0 < b; s0 += VB)
        pass1_block(j, j->x + n * C * S, j->labels + n * S, s0, b - s0 < VB ? b - s0 : VB, wc, &ds,
                    j->grad ? j->grad + n * C * S : NULL, C);
    const double cn = lane_sum(ds.cnt);
    double num = lane_sum(ds.nu), nbad = 0;
    for (int l = 0; l < LANES; l++) nbad += ds.bad[l] != ds.bad[l];
    for (int c = 0; c < C; c++) {
        double *o = acc + 6 * c;
        const double g = lane_sum(ds.sg[c]);
        o[0] += lane_sum(ds.tp[c]), o[1] += lane_sum(ds.sp[c]), o[2] += g, o[3] += lane_sum(ds.sp2[c]);
        o[4] += g; /* Σ(g·v)² = Σ g·v for 0/1 values */
        o[5] += cn;
        num += (double)wc[c] * lane_sum(ds.lg[c]);
    }
    if (j->nce) acc[6 * C] += num, acc[6 * C + 1] += lane_sum(ds.de);
    acc[6 * C + 2 * j->nce] += nbad != 0;
}

/* The per-(n, c) coefficients of pass 2 as floats. */
typedef struct {
    float ktp[CMAX], ksp[CMAX], ksp2[CMAX], kc[CMAX];
} coef2;

static SL_INLINE void coef2_load(const sl_dce_job *j, int64_t n, coef2 *k, const int C)
{
    memset(k, 0, sizeof *k);
    const int64_t NC = j->N * C;
    for (int c = 0; c < C; c++) {
        k->ktp[c] = (float)j->K[n * C + c];
        k->ksp[c] = (float)j->K[NC + n * C + c];
        k->ksp2[c] = (float)(2 * j->K[2 * NC + n * C + c]);
        k->kc[c] = j->kc[c];
    }
}

/* The gradient of 16 voxels with probabilities p[c] into out[c]: the
 * region terms' dL/dp = ksp + ksp2·p + ktp·g through the softmax Jacobian,
 * plus the common CE's k·w_y·(p − g); 0 for an ignored voxel. */
static SL_INLINE void grad16(const sl_dce_job *j, const coef2 *k, const vf *p, vi y, vf *out, const int C)
{
    vf dc[CMAX], dot = {0}, kw = {0};
    const vi valid = y != (vi){0} + j->ignore;
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        const vi hit = y == c;
        dc[c] = k->ksp[c] + k->ksp2[c] * p[c];
        dc[c] = sl_v16_sel(hit, dc[c] + k->ktp[c], dc[c]);
        kw = sl_v16_sel(hit, kw * 0.0f + k->kc[c], kw); /* one class matches: exact */
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) dot += p[c] * dc[c];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
        const vf o = p[c] * (dc[c] - dot) + kw * sl_v16_sel(y == c, p[c] - 1.0f, p[c]);
        out[c] = keep(valid, o);
    }
}

/* Pass 2 over voxels [a, b) of sample n: pass 1 left the probabilities in
 * the gradient's rows; each group of 16 voxels is read and overwritten with
 * its gradient. */
static SL_INLINE void pass2_body(const sl_dce_job *j, int64_t n, int64_t a, int64_t b, const int C)
{
    const int64_t S = j->S;
    const int32_t *lab = j->labels + n * S;
    float *gn = j->grad + n * C * S;
    coef2 k;
    coef2_load(j, n, &k, C);
    for (int64_t s = a; s < b; s += LANES) {
        const int64_t cnt = b - s < LANES ? b - s : LANES;
        vf p[CMAX], out[CMAX];
        vi y;
        load16(gn, lab, S, s, cnt, j->ignore, p, &y, C);
        grad16(j, &k, p, y, out, C);
        store16(gn, S, s, cnt, out, C);
    }
}

/* ---- one pass: the focal loss and the cross-entropy ------------------------ */

/*
 * The focal loss on labels (fused.c's focal kernel has the formulas; the
 * cross-entropy is γ = 0 with α the class weights) over voxels [a, b) of
 * sample n, 16 voxels at a time in registers as pass 1 above: the sum of
 * the voxel terms −α_y q^γ log p_y (q = Σ_{c≠y} p_c), and the gradient
 * k·u·([c = y] − p_c) with u = −α_y (q^γ − γ q^(γ−1) p_y log p_y) when grad
 * is not NULL. Integer γ in 1..8 by multiplication, with one logarithm per
 * voxel (log p_y = x_y − max − log Σexp). At γ = 0 (g0: the cross-entropy)
 * no term needs log p_y per voxel: the value takes Σ α_y log Σexp as logs
 * of products, as pass 1 does (per class and lane, at most 16 factors in
 * [1, C] per block, C logarithms per block of VB voxels), and u = −α_y.
 * When every α_c is 1 (the plain ce, form 3) the classes need not be told
 * apart: one product per lane over the valid voxels, one logarithm per
 * block, and α_y·v is v on a valid voxel (0.96x the time of form 1; the
 * same gradient bits, the value within float rounding of it).
 * With label smoothing ε (form 2, fused.c's ce_smooth_body has the
 * formulas) each class carries a_c = w_c·([c = y](1 − ε) + ε/C): the voxel's
 * term is Σ_c a_c (mx − x_c) + A log Σexp with A = Σ_c a_c (one value per
 * label, so the logarithms again as logs of per-class products), and the
 * gradient k·(A·p_c − a_c).
 * A NaN or infinite score makes the sum NaN (softmax16_checked); the caller
 * tells it from an overflow by a scan.
 */
enum { FORM_FOCAL = 0, FORM_CE = 1, FORM_CE_SMOOTH = 2, FORM_CE_UNIT = 3 };
static SL_INLINE double focal_body16(const sl_dce_focal_job *j, int64_t n, int64_t a, int64_t b, const int C,
                                    const int form)
{
    const int g0 = form != FORM_FOCAL, unit = form == FORM_CE_UNIT;
    const int64_t S = j->S;
    const float *xn = j->x + n * C * S;
    const int32_t *lab = j->labels + n * S;
    float *gn = j->grad ? j->grad + n * C * S : NULL;
    const vf zero = {0}, one = zero + 1.0f;
    const vi ig = (vi){0} + j->ignore;
    const int gi = j->igamma;
    float al[CMAX] = {0}, ahit[CMAX] = {0}, amiss[CMAX] = {0}, aall[CMAX] = {0};
    for (int c = 0; c < C; c++) al[c] = j->alpha[c];
    if (form == FORM_CE_SMOOTH) { /* a_c for y = c and y ≠ c; A for each label, summed in class order */
        const float e1 = 1.0f - j->eps, eC = j->eps / (float)C;
        for (int c = 0; c < C; c++) ahit[c] = al[c] * (e1 + eC), amiss[c] = al[c] * (0.0f + eC);
        for (int y = 0; y < C; y++) {
            float A = 0.0f;
            for (int c = 0; c < C; c++) A += c == y ? ahit[c] : amiss[c];
            aall[y] = A;
        }
    }
    vd total = {0};
    for (int64_t s0 = a; s0 < b; s0 += VB) {
        const int64_t e = b - s0 < VB ? b - s0 : VB;
        prefetch_block(xn, lab, S, s0, C);
        vf lanes = zero, prod[CMAX];
        for (int c = 0; c < C; c++) prod[c] = one;
        for (int64_t i = s0; i < s0 + e; i += LANES) {
            const int64_t k = s0 + e - i < LANES ? s0 + e - i : LANES;
            vf x[CMAX], p[CMAX], mx, sum;
            vi y;
            load16(xn, lab, S, i, k, j->ignore, x, &y, C);
            const vf nf = softmax16_checked(x, p, &mx, &sum, C);
            y |= ~(y != ig); /* −1 for an ignored voxel, whatever its label: it matches no class */
            vf xy = zero, py = zero, ay = zero, q = zero;
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) { /* one class matches: exact */
                const vi hit = y == c;
                xy = sl_v16_sel(hit, x[c], xy);
                if (unit) continue;
                ay = sl_v16_sel(hit, zero + al[c], ay); /* 0 for an ignored voxel */
                if (g0) {
                    prod[c] *= sl_v16_sel(hit, sum, one);
                } else {
                    py = sl_v16_sel(hit, p[c], py);
                    q += sl_v16_sel(hit, zero, p[c]);
                }
            }
            vf u;
            if (form == FORM_CE_SMOOTH) {
                const vi valid = y >= 0;
                vf ac[CMAX], A = zero, t = zero;
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const vi hit = y == c;
                    ac[c] = keep(valid, sl_v16_sel(hit, zero + ahit[c], zero + amiss[c]));
                    A = sl_v16_sel(hit, zero + aall[c], A);
                    t += ac[c] * (mx - x[c]);
                }
                lanes += nf + t;
                if (!gn) continue;
                vf out[CMAX];
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) out[c] = j->k * (A * p[c] - ac[c]);
                store16(gn, S, i, k, out, C);
                continue;
            }
            if (unit) { /* α_y = 1 on valid voxels: ay·v = v, one product over all classes */
                const vi valid = y >= 0;
                prod[0] *= sl_v16_sel(valid, sum, one);
                lanes += nf + keep(valid, mx - xy);
                u = keep(valid, zero - j->k);
            } else if (g0) {
                lanes += nf + ay * (mx - xy);
                u = (zero - j->k) * ay;
            } else {
                vf lp = xy - mx - sl_log_pos_v16(sum); /* log p_y */
                lp = sl_v16_sel(lp < zero, lp, zero);
                vf qg = one, qg1 = one;
                for (int r = 0; r < gi; r++) qg1 = qg, qg *= q;
                lanes += nf - ay * qg * lp;
                u = (zero - j->k) * ay * (qg - j->gamma * qg1 * py * lp);
            }
            if (!gn) continue;
            vf out[CMAX];
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) out[c] = u * (sl_v16_sel(y == c, one, zero) - p[c]);
            store16(gn, S, i, k, out, C);
        }
        if (unit)
            lanes += sl_log_pos_v16(prod[0]);
        else if (g0)
            for (int c = 0; c < C; c++)
                lanes += (form == FORM_CE_SMOOTH ? aall[c] : al[c]) * sl_log_pos_v16(prod[c]);
        add_lanes(&total, lanes);
    }
    return lane_sum(total);
}

/* 1 when every class weight is 1 (the plain ce): FORM_CE_UNIT. */
static SL_INLINE int unit_alpha(const sl_dce_focal_job *j, const int C)
{
    int u = 1;
    for (int c = 0; c < C; c++) u &= j->alpha[c] == 1.0f;
    return u;
}

/* ---- topk and ohem's first pass (fused_hard.c) ----------------------------- */

/*
 * One block of at most VB voxels from s0 of sample n: the CE of each voxel,
 * ℓ = log Σexp + mx − x_y, into l (−1 where ignored), the probabilities into
 * pn's rows when pn is not NULL (all voxels: pass 2 multiplies an ignored
 * one's by 0). Returns the valid count; *bad becomes 1 when a score is NaN
 * or infinite. The arithmetic of fused_hard.c's generic block (the same
 * exponentials, sums in class order, logarithm and reciprocal), 16 voxels
 * in registers.
 */
static SL_INLINE int hard_block16(const float *xn, const int32_t *lab, int64_t S, int64_t s0, int64_t len,
                                  int32_t ignore, float *l, float *pn, int *bad, const int C)
{
    const vf zero = {0}, one = zero + 1.0f;
    const vi ig = (vi){0} + ignore;
    vf nv = zero, nf = zero;
    prefetch_block(xn, lab, S, s0, C);
    for (int64_t i = 0; i < len; i += LANES) {
        const int64_t k = len - i < LANES ? len - i : LANES;
        vf x[CMAX], p[CMAX], mx, sum, xy = zero;
        vi y;
        load16(xn, lab, S, s0 + i, k, ignore, x, &y, C);
        nf += softmax16_checked(x, p, &mx, &sum, C);
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) xy = sl_v16_sel(y == c, x[c], xy); /* one class matches: exact */
        const vi valid = y != ig;
        const vf v = sl_v16_sel(valid, sl_log_pos_v16(sum) + (mx - xy), zero - 1.0f);
        if (k == LANES) memcpy(l + i, &v, sizeof v); /* a constant size: one store */
        else memcpy(l + i, &v, (size_t)k * sizeof(float));
        nv += keep(valid, one);
        if (pn) store16(pn, S, s0 + i, k, p, C);
    }
    float f[LANES], c[LANES];
    memcpy(f, &nf, sizeof f);
    memcpy(c, &nv, sizeof c);
    int n = 0;
    for (int q = 0; q < LANES; q++) *bad |= f[q] != f[q], n += (int)c[q];
    return n;
}

/* ---- one copy per (instruction set, C) ------------------------------------ */

#define DCE_BASE(Cn)                                                                                             \
    static void p1_base_##Cn(const sl_dce_job *j, int64_t n, int64_t a, int64_t b, double *acc)                 \
    {                                                                                                            \
        pass1_body(j, n, a, b, acc, Cn);                                                                         \
    }                                                                                                            \
    static void p2_base_##Cn(const sl_dce_job *j, int64_t n, int64_t a, int64_t b)                              \
    {                                                                                                            \
        pass2_body(j, n, a, b, Cn);                                                                              \
    }                                                                                                            \
    static double f_base_##Cn(const sl_dce_focal_job *j, int64_t n, int64_t a, int64_t b)                       \
    {                                                                                                            \
        return j->igamma    ? focal_body16(j, n, a, b, Cn, FORM_FOCAL)                                           \
               : j->eps > 0 ? focal_body16(j, n, a, b, Cn, FORM_CE_SMOOTH)                                       \
               : unit_alpha(j, Cn) ? focal_body16(j, n, a, b, Cn, FORM_CE_UNIT)                                  \
                                   : focal_body16(j, n, a, b, Cn, FORM_CE);                                      \
    }                                                                                                            \
    static int h_base_##Cn(const float *xn, const int32_t *lab, int64_t S, int64_t s0, int64_t len, int32_t ig,  \
                           float *l, float *pn, int *bad)                                                        \
    {                                                                                                            \
        return hard_block16(xn, lab, S, s0, len, ig, l, pn, bad, Cn);                                           \
    }
DCE_BASE(2) DCE_BASE(3) DCE_BASE(4) DCE_BASE(5) DCE_BASE(6) DCE_BASE(7) DCE_BASE(8)
#define DCE_TABLE(pre) {NULL, NULL, pre##_2, pre##_3, pre##_4, pre##_5, pre##_6, pre##_7, pre##_8}
static const sl_dce_pass1_fn p1_base[CMAX + 1] = DCE_TABLE(p1_base);
static const sl_dce_pass2_fn p2_base[CMAX + 1] = DCE_TABLE(p2_base);
static const sl_dce_focal_fn f_base[CMAX + 1] = DCE_TABLE(f_base);
static const sl_dce_hard_fn h_base[CMAX + 1] = DCE_TABLE(h_base);

#if SL_X86
#define DCE_ISA(Cn, isa, ATTR, ISA)                                                                              \
    ATTR static void p1_##isa##_##Cn(const sl_dce_job *j, int64_t n, int64_t a, int64_t b, double *acc)        \
    {                                                                                                            \
        pass1_body(j, n, a, b, acc, Cn);                                                                         \
    }                                                                                                            \
    ATTR static void p2_##isa##_##Cn(const sl_dce_job *j, int64_t n, int64_t a, int64_t b)                     \
    {                                                                                                            \
        pass2_body(j, n, a, b, Cn);                                                                              \
    }                                                                                                            \
    ATTR static double f_##isa##_##Cn(const sl_dce_focal_job *j, int64_t n, int64_t a, int64_t b)              \
    {                                                                                                            \
        return j->igamma    ? focal_body16(j, n, a, b, Cn, FORM_FOCAL)                                           \
               : j->eps > 0 ? focal_body16(j, n, a, b, Cn, FORM_CE_SMOOTH)                                       \
               : unit_alpha(j, Cn) ? focal_body16(j, n, a, b, Cn, FORM_CE_UNIT)                                  \
                                   : focal_body16(j, n, a, b, Cn, FORM_CE);                                      \
    }                                                                                                            \
    ATTR static int h_##isa##_##Cn(const float *xn, const int32_t *lab, int64_t S, int64_t s0, int64_t len,     \
                                   int32_t ig, float *l, float *pn, int *bad)                                    \
    {                                                                                                            \
        return hard_block16(xn, lab, S, s0, len, ig, l, pn, bad, Cn);                                           \
    }
#define DCE_AVX2(Cn) DCE_ISA(Cn, avx2, SL_T_AVX2, SL_ISA_AVX2)
#define DCE_AVX512(Cn) DCE_ISA(Cn, avx512, SL_T_AVX512, SL_ISA_AVX512)
DCE_AVX2(2) DCE_AVX2(3) DCE_AVX2(4) DCE_AVX2(5) DCE_AVX2(6) DCE_AVX2(7) DCE_AVX2(8)
DCE_AVX512(2) DCE_AVX512(3) DCE_AVX512(4) DCE_AVX512(5) DCE_AVX512(6) DCE_AVX512(7) DCE_AVX512(8)
static const sl_dce_pass1_fn p1_avx2[CMAX + 1] = DCE_TABLE(p1_avx2);
static const sl_dce_pass2_fn p2_avx2[CMAX + 1] = DCE_TABLE(p2_avx2);
static const sl_dce_pass1_fn p1_avx512[CMAX + 1] = DCE_TABLE(p1_avx512);
static const sl_dce_pass2_fn p2_avx512[CMAX + 1] = DCE_TABLE(p2_avx512);
static const sl_dce_focal_fn f_avx2[CMAX + 1] = DCE_TABLE(f_avx2);
static const sl_dce_focal_fn f_avx512[CMAX + 1] = DCE_TABLE(f_avx512);
static const sl_dce_hard_fn h_avx2[CMAX + 1] = DCE_TABLE(h_avx2);
static const sl_dce_hard_fn h_avx512[CMAX + 1] = DCE_TABLE(h_avx512);
#endif

#endif /* SL_HAVE_V16 */

int sl_dce_serves(int64_t C)
{
    sl_dce_pass1_fn p1;
    sl_dce_pass2_fn p2;
    return sl_dce_kernels(C, SL_ISA_BASE, &p1, &p2);
}

int sl_dce_kernels(int64_t C, int isa, sl_dce_pass1_fn *p1, sl_dce_pass2_fn *p2)
{
#if SL_HAVE_V16
    if (C < 2 || C > CMAX) return 0;
    *p1 = p1_base[C], *p2 = p2_base[C];
#if SL_X86
    if (isa == SL_ISA_AVX512) *p1 = p1_avx512[C], *p2 = p2_avx512[C];
    if (isa == SL_ISA_AVX2) *p1 = p1_avx2[C], *p2 = p2_avx2[C];
#endif
    return 1;
#else /* a compiler without vector extensions: fused.c's generic passes */
    return 0;
#endif
}

sl_dce_focal_fn sl_dce_focal_kernel(int64_t C, int isa)
{
#if SL_HAVE_V16
    if (C < 2 || C > CMAX) return NULL;
#if SL_X86
    if (isa == SL_ISA_AVX512) return f_avx512[C];
    if (isa == SL_ISA_AVX2) return f_avx2[C];
#endif
    return f_base[C];
#else
    (void)C, (void)isa;
    return NULL;
#endif
}

sl_dce_hard_fn sl_dce_hard_kernel(int64_t C, int isa)
{
#if SL_HAVE_V16
    if (C < 2 || C > CMAX) return NULL;
#if SL_X86
    if (isa == SL_ISA_AVX512) return h_avx512[C];
    if (isa == SL_ISA_AVX2) return h_avx2[C];
#endif
    return h_base[C];
#else
    (void)C, (void)isa;
    return NULL;
#endif
}
