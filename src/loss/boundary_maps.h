/*
 * Shared pieces of the boundary- and distance-based losses (boundary,
 * hausdorff_dt, dpce, boundary_aware, blob): target masks, the grid of one
 * channel with the forward's spacing, a runner that spreads per-(sample,
 * class) map computations over threads, and the voxel-weighted cross-entropy
 * that dpce and boundary_aware share. docs/losses-boundary.md states the
 * conventions.
 *
 * Masks from targets: a soft target is binarised at 0.5 (g > 0.5), the
 * convention MONAI's HausdorffDTLoss uses for its maps; for a label map that
 * is simply label == c (label == 1 for one sigmoid channel).
 */
#ifndef SL_LOSS_BOUNDARY_MAPS_H
#define SL_LOSS_BOUNDARY_MAPS_H

#include "segloss/geometry.h"
#include "term.h"

/* The grid of one channel of one sample, with opts->spacing. */
sl_grid slb_grid(const sl_ctx *cx);

/* m (S) = target of class c in sample n, binarised: g > 0.5. Returns the
 * number of foreground voxels. */
int64_t slb_target_mask(const sl_ctx *cx, int64_t n, int64_t c, uint8_t *m);

/*
 * Hard "label + 1" map of sample n for the losses that weigh voxels by their
 * distance to the target's boundary (dpce, boundary_aware). lab (S) int32:
 *   channel < 0 (multi-class forms): the label map + 1, or for a soft target
 *     1 + argmax_c g_c (the first maximum on ties);
 *   channel >= 0 (binary forms, one map per channel): 1 + (g_channel > 0.5).
 * The + 1 makes every voxel a label for the multi-label EDT.
 */
void slb_hard_labels(const sl_ctx *cx, int64_t n, int64_t channel, int32_t *lab);

/*
 * Distance of every voxel to the nearest voxel of another label (mm, between
 * voxel centres), from a "label + 1" map, into d (S). Returns 0 when the
 * sample has a single label (no boundary: d is then +inf everywhere).
 */
int slb_label_distance(const int32_t *lab, const sl_grid *grid, int threads, float *d, sl_status *st);

/*
 * Runs fn over jobs 0..njobs-1. With at least as many jobs as threads the
 * jobs run in parallel, each with one thread; otherwise one after the other,
 * each with all threads (the EDT is threaded over lines). Either way the
 * results do not depend on the thread count. scratch: scratch_bytes per
 * running job (zeroed once, reused). On failure returns the status of the
 * failing job with the smallest index and its message.
 */
typedef sl_status (*slb_job_fn)(void *user, int64_t job, int threads, void *scratch, char *msg, size_t msglen);
sl_status slb_run_jobs(int64_t njobs, int threads, size_t scratch_bytes, slb_job_fn fn, void *user, char *msg,
                       size_t msglen);

/*
 * Voxel-weighted cross-entropy, the common part of dpce and boundary_aware.
 * Multi-class form (softmax, or activation=none with C > 1):
 *     CE_s = −Σ_c g_c log p_c,  weight w[n, 0, s]      (w is (N, 1, S))
 * Binary form (sigmoid, or activation=none with C = 1), per channel:
 *     CE_{c,s} = −[g log p + (1 − g) log(1 − p)],  weight w[n, c, s]  (w is (N, C, S))
 * value = Σ w·CE / D with D = the number of terms (N·S or N·C·S) when
 * by_weights = 0, or D = Σ w when by_weights = 1 (D = 0: value 0, no
 * gradient). A voxel mask m (sl_target.mask) multiplies every w[n, k, s] by
 * m[n, s], and the number of terms becomes K·Σ m. Adds scale·d(value) to cx->dx (stable logit forms) or cx->dp
 * (activation=none).
 */
int slb_binary_form(const sl_ctx *cx);
sl_status slb_weighted_ce(const sl_ctx *cx, const float *w, int by_weights, double *value);

#endif
