/* The fused passes for softmax + int32 labels + region terms + at most one
 * common cross-entropy, C = 2..8 (fused_dce.c); fused.c picks them. */
#ifndef SL_LOSS_FUSED_DCE_H
#define SL_LOSS_FUSED_DCE_H
#include <stdint.h>

typedef struct {
    const float *x;         /* scores (N, C, S) */
    const int32_t *labels;  /* (N, S) */
    int64_t N, C, S;
    int32_t ignore;         /* the common ignore_index, or −1 (no label has it) */
    int nce;                /* 0 or 1 common cross-entropy term */
    int sp2;                /* 1: some term reads Σp² (squared); 0 leaves it 0 */
    const float *wc;        /* its class weights [C] (nce = 1) */
    const double *K;        /* pass 2: weighted d_tp, d_sp, d_sp2 per (n, c), as fused.c's */
    const float *kc;        /* pass 2: k·w_c of the CE term per class */
    float *grad;            /* pass 2: (N, C, S), every element written */
} sl_dce_job;

/* Pass 1 over voxels [a, b) of sample n adds to acc what fused.c's pass 1
 * adds (6 region sums per class, the CE numerator and denominator, the count
 * of blocks with a non-finite score); pass 2 writes the gradient there. */
typedef void (*sl_dce_pass1_fn)(const sl_dce_job *j, int64_t n, int64_t a, int64_t b, double *acc);
typedef void (*sl_dce_pass2_fn)(const sl_dce_job *j, int64_t n, int64_t a, int64_t b);

/* The kernels for C on instruction set isa (SL_ISA_*); 0 when C is not 2..8. */
int sl_dce_kernels(int64_t C, int isa, sl_dce_pass1_fn *p1, sl_dce_pass2_fn *p2);

/* The one-pass focal loss (and cross-entropy, γ = 0) on int32 labels under
 * softmax: fused.c's sl_fused_focal sets it up. */
typedef struct {
    const float *x;        /* scores (N, C, S) */
    const int32_t *labels; /* (N, S) */
    int64_t N, C, S;
    int32_t ignore;        /* the ignore_index, or −1 (no label has it) */
    const float *alpha;    /* [C]: α_c, or the CE's class weights */
    float k, gamma;        /* k = weight / (the valid count, or Σ w_y for the CE) */
    int igamma;            /* γ, an integer in 0..8 */
    float eps;             /* the CE's label smoothing (γ = 0), or 0 */
    float *grad;           /* (N, C, S), every element written; NULL: the value alone */
} sl_dce_focal_job;

/* Over voxels [a, b) of sample n: returns Σ −α_y q^γ log p_y (NaN when a
 * score is not finite) and writes the gradient there. */
typedef double (*sl_dce_focal_fn)(const sl_dce_focal_job *j, int64_t n, int64_t a, int64_t b);

/* The kernel for C on instruction set isa; NULL when C is not 2..8. */
sl_dce_focal_fn sl_dce_focal_kernel(int64_t C, int isa);

/* topk and ohem's first pass over one block of at most 256 voxels from s0
 * (xn, lab: sample n's scores and labels; ig: the ignore label or
 * INT32_MIN): the per-voxel CE into l (−1 where ignored), the probabilities
 * into pn's rows unless pn is NULL; returns the valid count and sets *bad
 * when a score is not finite. */
typedef int (*sl_dce_hard_fn)(const float *xn, const int32_t *lab, int64_t S, int64_t s0, int64_t len, int32_t ig,
                              float *l, float *pn, int *bad);

/* The kernel for C on instruction set isa; NULL when C is not 2..8. */
sl_dce_hard_fn sl_dce_hard_kernel(int64_t C, int isa);

/* 1 when sl_dce_kernels has kernels for C. */
int sl_dce_serves(int64_t C);
#endif
