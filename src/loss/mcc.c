/*
 * Matthews correlation coefficient loss (Abhishek & Hamarneh, "Matthews
 * Correlation Coefficient Loss for Deep Convolutional Networks: Application
 * to Skin Lesion Segmentation", ISBI 2021; their MCC-Loss code).
 *
 * Per group (sample × class, or class with batch=true), from the soft counts
 * over the valid voxels (cnt of them):
 *     tp = Σ p g,  fp = Σp − tp,  fn = Σg − tp,  tn = cnt − Σp − Σg + tp
 *     MCC = (tp·tn − fp·fn + s_nr) / (√((tp+fp)(tp+fn)(tn+fp)(tn+fn)) + s_dr)
 *     loss_g = 1 − MCC,  then the mean over groups (region.c: weights,
 *     include_background).
 * Algebraically tp·tn − fp·fn = cnt·tp − Σp·Σg and the four factors are
 * Σp, Σg, cnt − Σg, cnt − Σp, which is how it is computed (fewer
 * cancellations). The loss lies in [0, 2].
 *
 * Smoothing (smooth_nr = smooth_dr = 1e-5 by default, as the other region
 * losses): negligible next to the counts (the numerator and denominator
 * scale as cnt²) except where the denominator vanishes. That happens when
 * the target of a group is constant — a class absent from the sample, or
 * filling it — or (activation=none only) the prediction is: the correlation
 * is undefined, MCC = s_nr/s_dr (1 by default, loss 0) and the group gives
 * no gradient. So per-sample MCC does not penalise false positives of a
 * class absent from a sample; batch=true pools the counts over the batch.
 * The authors' code pools the whole batch of one sigmoid channel with
 * s_nr = 0, s_dr = 1: mcc(batch=true,smooth_nr=0,smooth_dr=1) on C = 1.
 * segmentation_models_pytorch's MCCLoss adds its eps to each of tp, tn, fp,
 * fn, which no setting here reproduces exactly (the difference is O(eps/cnt)).
 *
 * Gradient, with D the square root and A = cnt·tp − Σp·Σg:
 *     ∂MCC/∂tp = cnt/(D + s_dr)
 *     ∂MCC/∂Σp = −Σg/(D + s_dr) − (A + s_nr)/(D + s_dr)² · ∂D/∂Σp,
 *     ∂D/∂Σp = (cnt − 2Σp)·Σg(cnt − Σg)/(2D)
 * applied per voxel as d_tp·g + d_sp by sl_region_backprop (a region_finalize
 * loss: the framework computes the sums and applies the coefficients).
 */
#include <stdlib.h>
#include "term.h"

/* From the region sums: the value and d(value)/d(tp, Σp) per group (the
 * framework applies them, in sl_region_eval or its fused passes). */
static sl_status finalize_mcc(sl_term *t, const sl_ctx *cx, sl_region *r, double *value, char *msg, size_t msglen)
{
    const sl_params *pr = &t->prm;
    double *lg = sl_calloc(2 * r->G, sizeof(double));
    if (!lg) return sl_errf(msg, msglen, SL_ENOMEM, "mcc: out of memory");
    double *dl = lg + r->G;
    for (int64_t g = 0; g < r->G; g++) {
        double n = r->cnt[g], sp = r->sp[g], sg = r->sg[g];
        double A = n * r->tp[g] - sp * sg;
        double P = sp * (n - sp) * sg * (n - sg);
        double D = P > 0 ? sqrt(P) : 0.0;
        lg[g] = D > 0 ? 1.0 - (A + pr->smooth_nr) / (D + pr->smooth_dr) : 1.0 - pr->smooth_nr / pr->smooth_dr;
    }
    sl_status st = sl_region_mean(cx, pr, r, lg, dl, value, msg, msglen);
    for (int64_t g = 0; st == SL_OK && g < r->G; g++) {
        double n = r->cnt[g], sp = r->sp[g], sg = r->sg[g];
        double P = sp * (n - sp) * sg * (n - sg);
        if (!(P > 0) || dl[g] == 0) continue; /* degenerate group: constant, no gradient */
        double D = sqrt(P), A = n * r->tp[g] - sp * sg, den = D + pr->smooth_dr;
        double dD = (n - 2 * sp) * sg * (n - sg) / (2 * D);
        r->d_tp[g] = -dl[g] * n / den;
        r->d_sp[g] = -dl[g] * (-sg / den - (A + pr->smooth_nr) / (den * den) * dD);
    }
    free(lg);
    return st;
}

static sl_status mcc_validate(const sl_params *p, char *msg, size_t msglen)
{
    if (!(p->smooth_dr > 0))
        return sl_errf(msg, msglen, SL_EINVAL, "mcc: smooth_dr must be > 0 (it defines the loss of a constant target)");
    return SL_OK;
}

static const sl_key mcc_keys[] = {SL_KEYS_REGION(1e-5), SL_KEY_END};

const sl_term_class sl_loss_mcc = {
    {"mcc", "region", "1 − soft Matthews correlation coefficient per (sample, class)",
     "Abhishek & Hamarneh 2021 (MCC-Loss); their setting is batch=true,smooth_nr=0,smooth_dr=1"},
    mcc_keys, SL_TAKES_MASK | SL_PER_CLASS, mcc_validate, sl_region_eval, NULL, finalize_mcc};
