/*
 * segloss/crf.h — fully connected CRF post-processing (dense CRF) and the
 * permutohedral-lattice Gaussian filter it runs on.
 *
 * The model is the one of Krähenbühl & Koltun, "Efficient Inference in
 * Fully Connected CRFs with Gaussian Edge Potentials" (NIPS 2011):
 *
 *   E(x) = sum_i U_i(x_i) + sum_{i<j} [x_i != x_j] k(f_i, f_j)     (Potts)
 *   k(f_i, f_j) = w1 exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2)
 *               + w2 exp(-|p_i - p_j|^2 / 2 theta_gamma^2)
 *
 * with U_i(l) = -log P_i(l) (P: the network's softmax), p_i the voxel's
 * position in mm (index times spacing) and I_i its intensities (one or more
 * channels, in the units of the image given: segloss passes the normalised
 * image the network saw). Inference is the paper's mean field with a fixed
 * number of iterations:
 *
 *   Q^0 = P;   Q^{t+1}_i(l) ∝ exp(-U_i(l) + sum_m w_m Qbar^m_i(l)),
 *   Qbar^m_i(l) = sum_j k_m(f_i, f_j) Q^t_j(l) / sum_j k_m(f_i, f_j)
 *
 * i.e. each kernel's message is normalised by the kernel's mass at i, as the
 * authors' code (densecrf) does, and like that code the sums run over all j
 * including j = i. With Potts, sum_{l' != l} Qbar(l') = 1 - Qbar(l), so
 * the update above is the paper's after the softmax.
 *
 * The Gaussian sums are computed with the permutohedral lattice of Adams,
 * Baek & Davis (Eurographics 2010) in the form of densecrf's
 * permutohedral.cpp: O(N (d+1)^2) instead of O(N^2). It approximates the
 * kernel's shape (its impulse response is close to a Gaussian 5-10 % wider
 * than asked, scaled by 0.6-0.9); the scale cancels in the normalised
 * messages, which tests/unit/test_crf.c checks against the exact O(N^2)
 * sums (within 0.03 on values in [0, 1]).
 *
 * Defaults. The authors' published example (densecrf's inference.cpp, and
 * pydensecrf's README, used as is by DeepLab and most reuses) sets
 * w1 = 10, theta_alpha = 80 px, theta_beta = 13 (on 0..255 RGB), w2 = 3,
 * theta_gamma = 3 px, with 5 iterations (the paper fits w1, theta_alpha,
 * theta_beta per data set by grid search). segloss keeps w1, w2, the
 * spatial widths (mm, which is pixels at 1 mm spacing) and the iterations,
 * and rescales theta_beta to segloss's z-scored intensities (standard
 * deviation 1): 13 grey levels are about 0.2 of the standard deviation of
 * a natural image's grey levels (~60), so theta_beta = 0.2.
 *
 * Basic use (out: a (2, H, W) softmax, replaced by the CRF's marginals;
 * img: the (H, W) image as the network saw it):
 *
 *     sl_grid g = SL_GRID_DEFAULT;
 *     g.ndim = 2; g.shape[0] = H; g.shape[1] = W;
 *     sl_crf_params cp = SL_CRF_PARAMS_DEFAULT;
 *     sl_status st = sl_crf(out, 2, img, 1, &g, &cp, out, msg, sizeof msg);
 *
 * Threads: OpenMP with num_threads(threads) (0 = the default). Results are
 * bit-identical for every thread count: the lattice is built in voxel order
 * on one thread and every parallel loop writes disjoint outputs.
 */
#ifndef SEGLOSS_CRF_H
#define SEGLOSS_CRF_H

#include "segloss/core.h"
#include "segloss/geometry.h" /* sl_grid */

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

/* Parameters of sl_crf (every width > 0 and finite, weights >= 0). */
typedef struct sl_crf_params {
    double w_appearance;  /* w1, weight of the appearance (bilateral) kernel (10) */
    double theta_alpha;   /* its spatial width in mm (80) */
    double theta_beta;    /* its intensity width, in image units (0.2: z-scored images) */
    double w_smoothness;  /* w2, weight of the smoothness kernel (3) */
    double theta_gamma;   /* its spatial width in mm (3) */
    int iterations;       /* mean-field iterations, 0..1000 (5; 0 returns P) */
    int threads;          /* 0 = OpenMP default */
} sl_crf_params;

#define SL_CRF_PARAMS_DEFAULT {10.0, 80.0, 0.2, 3.0, 3.0, 5, 0}

/*
 * Mean-field inference of the dense CRF.
 *
 *   probs  (C, spatial...)  the network's softmax, each voxel's C values
 *                           >= 0, finite, with a positive sum (renormalised
 *                           here; 0 becomes 1e-30 before the log)
 *   image  (M, spatial...)  intensities, M >= 1 channels, finite
 *   grid   the spatial frame (1-D, 2-D or 3-D, spacing in mm)
 *   q      (C, spatial...)  out: the CRF's marginals Q (may alias probs)
 *
 * C in 1..1024, M in 1..8. A width that is small against the spacing is
 * fine (the kernel then reaches no neighbour), but features
 * (extent * spacing / width, intensity / theta_beta) beyond about
 * 2^24 / (d+1)^2, d the kernel's feature dimension, give SL_ERANGE.
 * Codes: SL_EINVAL (NULL, bad parameter), SL_ESHAPE (C or M out of range,
 * grid), SL_ENONFINITE / SL_ERANGE (bad probs or image), SL_ENOMEM.
 */
sl_status sl_crf(const float *probs, int64_t C, const float *image, int M, const sl_grid *grid,
                 const sl_crf_params *params, float *q, char *msg, size_t msglen);

/*
 * Parses "key=value,key=value" into *params (keys not given keep their
 * value): w1, theta_a, theta_b, w2, theta_g (doubles), iters (integer).
 * The result is checked as sl_crf checks it. SL_EINVAL with a one-line
 * message naming the key for an unknown key, a malformed or out-of-range
 * value; *params is untouched then.
 */
sl_status sl_crf_params_parse(const char *text, sl_crf_params *params, char *msg, size_t msglen);

/*
 * The lattice filter alone: out[k][i] ≈ sum_j exp(-|f_i - f_j|^2 / 2) values[k][j]
 * for n points with d-dimensional features (the caller divides by the
 * widths). features (n, d), values and out (nv, n); d in 1..16, nv >= 1.
 * out may not alias values. Codes as sl_crf.
 */
sl_status sl_lattice_filter(const float *features, int64_t n, int d, const float *values, int nv, float *out,
                            int threads, char *msg, size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
