/*
 * Private structures of the nn module, shared by unet.c, optim.c and
 * model_io.c. Not installed.
 */
#ifndef SL_NN_INTERNAL_H
#define SL_NN_INTERNAL_H

#include <stdint.h>
#include "segloss/nn.h"
#include "layers.h"

#define SL_NAME_LEN 48

typedef enum tensor_init { INIT_KAIMING, INIT_ZERO, INIT_ONE } tensor_init;

typedef struct tensor_entry {
    char name[SL_NAME_LEN];
    int is_buffer;
    int64_t offset, numel;
    int ndim;
    int64_t shape[5];
    tensor_init init;
    double fan_in; /* INIT_KAIMING */
} tensor_entry;

/* An activation of the forward pass and, when one is needed, its gradient.
 * `written` says whether the gradient holds a value in the current
 * backward: the first writer overwrites (acc = 0), later ones add. */
typedef struct slot {
    float *v;
    float *g;
    int64_t n;
    int written;
} slot;

/* INT8 state of one convolution (src/nn/quant.c): the input range seen
 * in calibration, the activation scale and zero point, the int8 weights
 * (M rows of K) with per-row scales and row sums. */
typedef struct sl_qsite {
    float lo, hi;
    int seen;
    float scale;
    int zp;
    int8_t *wq;
    float *wscale;
    int32_t *wsum;
    int64_t M, K;
} sl_qsite;

/* Largest product count per output value for int32 sums (quant.c):
 * 2 * 128 * 127 * K < 2^31. */
#define SL_QUANT_MAX_K 66000

typedef enum sl_quant_mode { SL_QUANT_CALIBRATING = 1, SL_QUANT_INT8 = 2 } sl_quant_mode;

/* Sites: enc[s][j] = 2s + j, dec[s][j] = 2D + 2s + j, up[s] = 4D + s,
 * head[l] = 5D + l; 6D in all. */
typedef struct sl_quant {
    sl_quant_mode mode;
    int nsites;
    sl_qsite site[];
} sl_quant;

sl_quant *sl_quant_new(int nsites);
void sl_quant_free(sl_quant *q);
/* Widens the site's range by the finite values of x[0..n). */
void sl_quant_observe(sl_qsite *qs, const float *x, int64_t n);
/* Quantises a site's weights: conv (M = Cout, K = Cin*k*k) as stored, or
 * (transposed = 1) a 2x2 transposed conv's (Cin = K, Cout = M/4, 2, 2);
 * and fixes the activation scale from the observed range. SL_ENOMEM,
 * SL_ENONFINITE (a non-finite weight or range). */
sl_status sl_quant_site_weights(sl_qsite *qs, const float *w, int64_t M, int64_t K, int transposed);

/* conv -> norm -> LeakyReLU */
typedef struct nn_block {
    int64_t cin1, cin2, cout;
    int stride;
    int t_w, t_b, t_g, t_be, t_rm, t_rv; /* tensor indices, -1 when absent */
    /* shape-dependent, set by the planner */
    sl_conv_shape cs;
    int64_t nvox; /* output voxels per channel */
    slot y, a;
    float *mean, *rstd; /* (B, C) for instance norm, (C) for batch norm */
} nn_block;

struct sl_unet {
    sl_unet_config cfg;
    int threads;  /* as requested; 0 = OpenMP default */
    int training;
    int ntensors;
    tensor_entry *tensors;
    int64_t nparams, nbuffers;
    float *params, *grads, *buffers;
    int D, nout;
    int64_t width[SL_UNET_MAX_DEPTH];
    nn_block enc[SL_UNET_MAX_DEPTH][2];
    nn_block dec[SL_UNET_MAX_DEPTH][2];
    int t_up_w[SL_UNET_MAX_DEPTH], t_up_b[SL_UNET_MAX_DEPTH];
    int t_head_w[SL_UNET_MAX_DEPTH], t_head_b[SL_UNET_MAX_DEPTH];
    int pf[SL_UNET_MAX_DEPTH][3]; /* pool factors into stage s (D, H, W); 2-D: D axis 1 */
    int kx[SL_UNET_MAX_DEPTH][3]; /* conv kernel extents of stage s (D, H, W) */
    /* the plan for the current (B, extents, threads) */
    int64_t B;
    int64_t ext[SL_UNET_MAX_DEPTH][3]; /* feature-map extent (D, H, W) of stage s */
    int plan_threads;
    float *acts, *gacts;
    void *work;
    size_t acts_cap, gacts_cap, work_cap; /* allocated bytes */
    slot img;
    slot pool[SL_UNET_MAX_DEPTH];   /* max-pool outputs, stage s >= 1 */
    slot up[SL_UNET_MAX_DEPTH];     /* transposed-conv outputs, decoder stage s */
    slot logits[SL_UNET_MAX_DEPTH]; /* head outputs, level l */
    int have_forward;
    int fwd_training; /* mode of the last forward */
    sl_quant *quant;  /* NULL: float32; else calibrating or int8 (quant.c) */
};

struct sl_optim {
    sl_optim_config cfg;
    float *params, *grads;
    int64_t n;
    int threads;
    int64_t step;
    float *m; /* Adam first moment, SGD momentum buffer (NULL when unused) */
    float *v; /* Adam second moment */
};

/* Parameter and buffer counts a configuration gives, without allocating
 * the arrays (the configuration must pass sl_unet_config_check). */
sl_status sl_unet_count(const sl_unet_config *cfg, int64_t *nparams, int64_t *nbuffers);

/* Number of optimiser state floats per parameter for a configuration. */
int sl_optim_state_per_param(const sl_optim_config *cfg);

/* Resolved OpenMP thread count of a request (0 = default). */
int sl_nn_threads(int requested);

#endif
