/*
 * Generalized Dice (Sudre et al. 2017, "Generalised Dice overlap as a deep
 * learning loss function for highly unbalanced segmentations", DLMIA) and
 * its penalised form (Yang, Kweon & Kim 2019, "Major vessel segmentation on
 * X-ray coronary angiography using deep networks with a novel penalty loss
 * function", MIDL).
 *
 * Per sample (or once for the pooled batch with batch=true), over the
 * included classes c:
 *     w_c = 1/(Σg_c)² (square), 1/Σg_c (simple), 1 (uniform)
 *     a class absent from the target (Σg_c = 0: an infinite weight) takes
 *     the largest finite weight of the sample, as MONAI does; the weights
 *     are then normalised to sum 1 (the smoothing terms would otherwise
 *     weigh differently with the volume: 1/(Σg)² is ~1e-8 for a 10⁴-voxel
 *     class);
 *     S = (2 Σ_c w_c tp_c + s_nr) / (Σ_c w_c (Σp_c + Σg_c) + s_dr)
 *     gdice:  1 − S
 *     pgdice: 1 − S / (1 + k(1 − S))
 * and the mean over samples. The weights depend on the target only, so they
 * are constants for the gradient. When no included class is present in a
 * sample, every weight is 0 and S = s_nr/s_dr (0/0 counts as 1): the sample
 * contributes 1 − s_nr/s_dr (0 with the defaults) and no gradient — MONAI's
 * behaviour. With s_nr = s_dr = 0 the value equals MONAI's
 * GeneralizedDiceLoss (whose weights are not normalised: the ratio is
 * invariant to their scale); with smoothing they differ only through it.
 * normalize=false skips the normalisation, so the smoothing is added to the
 * raw weighted sums as MONAI does: then the value equals MONAI's for any
 * smooth_nr, smooth_dr (its defaults 1e-5 included).
 */
#include <stdlib.h>
#include "term.h"

enum { W_SQUARE = 0, W_SIMPLE, W_UNIFORM };

static sl_status finalize_gd(sl_term *t, const sl_ctx *cx, sl_region *r, double *value, char *msg, size_t msglen,
                             int penalised)
{
    const sl_params *pr = &t->prm;
    const int64_t C = cx->C, first = (!pr->include_background && C > 1) ? 1 : 0;
    const int64_t nsamp = r->pooled ? 1 : cx->N;
    double *w = sl_calloc(C, sizeof(double));
    if (!w) return sl_errf(msg, msglen, SL_ENOMEM, "%s: out of memory", t->cls->info.name);
    double total = 0;
    for (int64_t n = 0; n < nsamp; n++) {
        const int64_t g0 = n * C;
        double wmax = 0, W = 0;
        for (int64_t c = first; c < C; c++) {
            double sg = r->sg[g0 + c];
            double wc = pr->mode == W_UNIFORM ? 1.0 : pr->mode == W_SIMPLE ? 1.0 / sg : 1.0 / (sg * sg);
            w[c] = isfinite(wc) ? wc : NAN; /* NaN marks an absent class */
            if (isfinite(wc) && wc > wmax) wmax = wc;
        }
        for (int64_t c = first; c < C; c++) {
            if (isnan(w[c])) w[c] = wmax;
            W += w[c];
        }
        double num = pr->smooth_nr, den = pr->smooth_dr;
        if (W > 0)
            for (int64_t c = first; c < C; c++) {
                if (pr->normalize) w[c] /= W;
                num += 2 * w[c] * r->tp[g0 + c];
                den += w[c] * (r->sp[g0 + c] + r->sg[g0 + c]);
            }
        else
            for (int64_t c = first; c < C; c++) w[c] = 0;
        double S = den > 0 ? num / den : 1.0;
        double L, dS; /* loss and dL/dS */
        if (penalised) {
            double q = 1 + pr->k * (1 - S);
            L = 1 - S / q;
            dS = -(1 + pr->k) / (q * q);
        } else {
            L = 1 - S;
            dS = -1;
        }
        total += L;
        if (!(den > 0)) continue;
        for (int64_t c = first; c < C; c++) {
            r->d_tp[g0 + c] = dS * 2 * w[c] / den / (double)nsamp;
            r->d_sp[g0 + c] = -dS * num * w[c] / (den * den) / (double)nsamp;
        }
    }
    free(w);
    *value = total / (double)nsamp;
    return SL_OK;
}

static sl_status finalize_gdice(sl_term *t, const sl_ctx *cx, sl_region *r, double *value, char *msg, size_t msglen)
{
    return finalize_gd(t, cx, r, value, msg, msglen, 0);
}

static sl_status finalize_pgdice(sl_term *t, const sl_ctx *cx, sl_region *r, double *value, char *msg,
                                 size_t msglen)
{
    return finalize_gd(t, cx, r, value, msg, msglen, 1);
}

/* No `weight` key: the class weights are what w_type computes. */
#define GD_KEYS                                                                                          \
    SL_KEY_ACTIVATION,                                                                                   \
    {"include_background", SL_KEY_BOOL, SL_P(include_background), 1, 0, 1, NULL,                         \
     "false drops class 0 from the sums (C > 1)"},                                                       \
    {"batch", SL_KEY_BOOL, SL_P(batch), 0, 0, 1, NULL, "one score for the pooled batch"},                \
    {"smooth_nr", SL_KEY_NUMBER, SL_P(smooth_nr), 1e-5, 0, 1e6, NULL, "added to the numerator"},         \
    {"smooth_dr", SL_KEY_NUMBER, SL_P(smooth_dr), 1e-5, 0, 1e6, NULL, "added to the denominator"},       \
    {"ignore_index", SL_KEY_LABEL, SL_P(ignore_index), NAN, -1e9, 1e9, NULL, "label whose voxels are skipped"}, \
    {"w_type", SL_KEY_ENUM, SL_P(mode), W_SQUARE, 0, 0, "square|simple|uniform",                         \
     "class weights 1/(Σg)², 1/Σg or 1, normalised to sum 1"},                                          \
    {"normalize", SL_KEY_BOOL, SL_P(normalize), 1, 0, 1, NULL,                                           \
     "false keeps the raw weights (MONAI GeneralizedDiceLoss, smoothing included)"}

static const sl_key gdice_keys[] = {GD_KEYS, SL_KEY_END};

const sl_term_class sl_loss_gdice = {
    {"gdice", "region", "generalized Dice loss, class weights 1/(Σg)² normalised to sum 1",
     "Sudre et al. 2017; equals MONAI GeneralizedDiceLoss with smooth_nr = smooth_dr = 0"},
    gdice_keys, SL_TAKES_MASK, NULL, sl_region_eval, NULL, finalize_gdice};

static const sl_key pgdice_keys[] = {
    GD_KEYS,
    {"k", SL_KEY_NUMBER, SL_P(k), 2.5, 0, 1e3, NULL, "penalty: the loss is 1 − S/(1 + k(1 − S))"},
    SL_KEY_END};

const sl_term_class sl_loss_pgdice = {
    {"pgdice", "region", "penalty generalized Dice loss 1 − S/(1 + k(1 − S))",
     "Yang, Kweon & Kim 2019 (MIDL); k = 0 is gdice"},
    pgdice_keys, SL_TAKES_MASK, NULL, sl_region_eval, NULL, finalize_pgdice};
