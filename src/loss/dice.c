/*
 * Dice loss (Milletari et al. 2016, V-Net; MONAI DiceLoss conventions).
 *
 * Per group (sample × class, or class with batch=true):
 *     D = (2·tp + s_nr) / (Σp + Σg + s_dr)          (squared: Σp² + Σg²)
 *     loss_g = 1 − D                                  (log=true: −log D)
 * then the mean over included groups of w_c·loss_g (region.c). With the
 * defaults (s_nr = s_dr = 1e-5, include_background=true, batch=false) this
 * is MONAI's DiceLoss(softmax=True) / DiceLoss(sigmoid=True) to float
 * precision. nnU-Net's soft Dice is batch=true, include_background=false
 * (it returns −D; the gradient is the same). segmentation_models_pytorch
 * pools over the batch (batch=true).
 *
 * An empty class (Σg = 0) gives D = s_nr / (Σp + s_dr): the loss is ~1
 * unless the prediction is empty too, and its gradient pushes p down.
 */
#include <stdlib.h>
#include "term.h"

static sl_status finalize_dice(sl_term *t, const sl_ctx *cx, sl_region *r, double *value, char *msg,
                               size_t msglen)
{
    const sl_params *pr = &t->prm;
    double *lg = sl_calloc(2 * r->G, sizeof(double));
    if (!lg) return sl_errf(msg, msglen, SL_ENOMEM, "dice: out of memory");
    double *dl = lg + r->G;
    for (int64_t g = 0; g < r->G; g++) {
        double num = 2 * r->tp[g] + pr->smooth_nr;
        double den = (pr->squared ? r->sp2[g] + r->sg2[g] : r->sp[g] + r->sg[g]) + pr->smooth_dr;
        double D = den > 0 ? num / den : 1.0; /* 0/0 only with zero smoothing and empty p and g: perfect */
        lg[g] = pr->log ? -log(D) : 1 - D;
    }
    sl_status st = sl_region_mean(cx, pr, r, lg, dl, value, msg, msglen);
    for (int64_t g = 0; st == SL_OK && g < r->G; g++) {
        double num = 2 * r->tp[g] + pr->smooth_nr;
        double den = (pr->squared ? r->sp2[g] + r->sg2[g] : r->sp[g] + r->sg[g]) + pr->smooth_dr;
        if (!(den > 0) || dl[g] == 0) continue;
        double D = num / den;
        double dD = pr->log ? -dl[g] / D : -dl[g]; /* d(mean)/dD */
        r->d_tp[g] = dD * 2 / den;
        double dden = -dD * num / (den * den);
        if (pr->squared) r->d_sp2[g] = dden;
        else r->d_sp[g] = dden;
    }
    free(lg);
    return st;
}

static const sl_key dice_keys[] = {
    SL_KEYS_REGION(1e-5),
    {"squared", SL_KEY_BOOL, SL_P(squared), 0, 0, 1, NULL, "Σp²+Σg² in the denominator (V-Net form)"},
    {"log", SL_KEY_BOOL, SL_P(log), 0, 0, 1, NULL, "−log D instead of 1 − D"},
    SL_KEY_SOFT_LABEL,
    SL_KEY_POOL_CLASSES,
    SL_KEY_END};

const sl_term_class sl_loss_dice = {
    {"dice", "region", "soft Dice loss 1 − (2tp + s)/(Σp + Σg + s)",
     "Milletari et al. 2016 (V-Net); matches MONAI DiceLoss"},
    dice_keys, SL_TAKES_MASK | SL_PER_CLASS, NULL, sl_region_eval, NULL, finalize_dice};
