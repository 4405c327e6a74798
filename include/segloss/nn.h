/*
 * segloss/nn.h — a 2-D or 3-D U-Net with hand-written forward and backward
 * passes, its optimisers and learning-rate schedules, and model files.
 *
 * The network (docs/nn.md has the picture), shown for 2-D; in 3-D every
 * 3x3 is 3x3x3 and every 2x2 is 2x2x2, unless the anisotropy fields of
 * sl_unet_config (pool, kernel) say 1 along an axis:
 *   encoder stage s = 0 .. depth-1, width w_s = base_width * 2^s (capped at
 *   max_width when that is > 0):
 *     [s > 0: 2x2 max-pool, or the first convolution has stride 2]
 *     conv3x3(pad 1) -> norm -> LeakyReLU -> conv3x3 -> norm -> LeakyReLU
 *   decoder stage s = depth-2 .. 0:
 *     2x2 stride-2 transposed convolution (w_{s+1} -> w_s, with bias)
 *     concatenate [skip of encoder stage s, upsampled]  (2 w_s channels)
 *     conv3x3 -> norm -> LeakyReLU -> conv3x3 -> norm -> LeakyReLU
 *   head: 1x1 convolution (w_0 -> num_classes, with bias) = logits.
 *   Deep supervision adds a 1x1 head at decoder stages 1 .. depth-2.
 * Norm is InstanceNorm (affine, eps 1e-5; the default, as nnU-Net), or
 * BatchNorm (affine, running statistics), or none. Convolutions followed by
 * a norm have no bias (the norm's mean subtraction would cancel it); with
 * norm = none they have one.
 *
 * Usage:
 *     sl_unet_config cfg = SL_UNET_CONFIG_DEFAULT;
 *     cfg.num_classes = 3;
 *     sl_unet *net;  sl_optim *opt;  char msg[256];
 *     if (sl_unet_create(&net, &cfg, msg, sizeof msg)) { puts(msg); return 1; }
 *     sl_optim_config oc = SL_OPTIM_CONFIG_DEFAULT;          // Adam, lr 1e-3
 *     sl_optim_create(&opt, net, &oc, msg, sizeof msg);
 *     sl_dims d = {8, 1, 2, {128, 128, 0}};                   // (B, Cin, H, W)
 *     for (int64_t step = 0; step < steps; step++) {
 *         sl_unet_zero_grad(net);
 *         sl_unet_forward(net, images, &d, logits, msg, sizeof msg);
 *         loss = my_loss(logits, target, dlogits);            // any loss
 *         sl_unet_backward(net, dlogits, msg, sizeof msg);
 *         sl_optim_step(opt, NULL);
 *     }
 *     sl_unet_save(net, opt, "model.slnet", msg, sizeof msg);
 *     sl_optim_free(opt);  sl_unet_free(net);
 *
 * Threads and determinism: the layers run OpenMP threads over samples and
 * fixed image tiles, with OpenBLAS set to one thread while they run (the
 * setting is process-wide and restored afterwards). Every reduction adds
 * per-sample partials in sample order, so a given seed gives bit-identical
 * outputs, gradients and loss trajectories for any thread count.
 *
 * A handle is not safe to use from two threads at once; separate handles
 * are independent (apart from the OpenBLAS thread setting above).
 */
#ifndef SEGLOSS_NN_H
#define SEGLOSS_NN_H

#include "segloss/core.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

/* ------------------------------------------------------------------ model */

typedef enum sl_norm_kind {
    SL_NORM_INSTANCE = 0, /* per (sample, channel) over the pixels, affine */
    SL_NORM_BATCH = 1,    /* per channel over batch and pixels, running stats */
    SL_NORM_NONE = 2      /* no normalisation; convolutions get biases */
} sl_norm_kind;

typedef enum sl_down_kind {
    SL_DOWN_MAXPOOL = 0, /* 2x2 max-pool before the stage's first conv */
    SL_DOWN_STRIDED = 1  /* the stage's first 3x3 conv has stride 2 (nnU-Net) */
} sl_down_kind;

/* Most encoder stages a net can have. */
#define SL_UNET_MAX_DEPTH 8

typedef struct sl_unet_config {
    int spatial_ndim;     /* 2: images (B, C, H, W); 3: volumes (B, C, D, H, W) */
    int in_channels;      /* image channels, >= 1 */
    int num_classes;      /* output channels, >= 1 */
    int depth;            /* encoder stages, 1..8; depth - 1 downsamplings */
    int base_width;       /* channels of stage 0, >= 1 */
    int max_width;        /* cap on a stage's width; 0 = no cap */
    sl_norm_kind norm;
    sl_down_kind down;
    int deep_supervision; /* 0/1: extra heads at decoder stages 1..depth-2 */
    float leaky_slope;    /* LeakyReLU negative slope, >= 0 (0.01) */
    float norm_eps;       /* > 0 (1e-5) */
    float bn_momentum;    /* BatchNorm running-stat momentum in [0, 1] (0.1) */
    uint64_t seed;        /* weight initialisation seed */
    /* Anisotropy (appended; all 0 = isotropic, the behaviour before these
     * fields existed). Index a runs over the spatial axes in dims order
     * ((H, W) in 2-D, (D, H, W) in 3-D); entries a >= spatial_ndim must be 0.
     * pool[s][a], s >= 1: down-sampling factor (1 or 2) along axis a into
     *   encoder stage s (max-pool window or the strided conv's stride), and
     *   the up-sampling factor of the transposed conv from stage s back to
     *   s - 1; 0 = 2. pool[0] must be all 0.
     * kernel[s][a]: extent (1 or 3) along axis a of every 3x3 convolution of
     *   encoder stage s and decoder stage s; 0 = 3.
     * sl_unet_plan_anisotropic fills both from the voxel spacing. */
    int pool[SL_UNET_MAX_DEPTH][3];
    int kernel[SL_UNET_MAX_DEPTH][3];
} sl_unet_config;

#define SL_UNET_CONFIG_DEFAULT                                                           \
    {2, 1, 2, 4, 16, 0, SL_NORM_INSTANCE, SL_DOWN_MAXPOOL, 0, 0.01f, 1e-5f, 0.1f, 0,     \
     {{0}}, {{0}}}

typedef struct sl_unet sl_unet;

/* Checks a configuration without building anything. SL_OK, SL_EINVAL (a
 * field out of range, named in msg), SL_EOVERFLOW (the widths do not fit).
 * cfg NULL: SL_EINVAL. */
sl_status sl_unet_config_check(const sl_unet_config *cfg, char *msg, size_t msglen);

/*
 * nnU-Net's rule for anisotropic voxels (docs/nn.md): fills cfg->pool and
 * cfg->kernel for cfg->depth stages from the voxel spacing (spatial_ndim
 * values, e.g. mm, all > 0, dims order) and the patch extents (spatial_ndim
 * values). With sp the spacing of stage s's feature map (the input spacing
 * times the factors pooled so far) and m = min over axes of sp:
 *   kernel[s][a] = 3 if sp[a] < 2 m, else 1 (a much coarser axis gets no
 *     context mixing yet); the deepest stage gets 3 on every axis;
 *   pool[s+1][a] = 2 if sp[a] < 2 m and the stage's extent along a is at
 *     least 8 (so the deepest map keeps >= 4 voxels), else 1.
 * Isotropic spacing gives kernel 3 and pool 2 everywhere (while the patch
 * allows). The other fields of cfg are kept. SL_EINVAL: NULL, a spacing
 * that is not finite and > 0, a patch extent < 1, spatial_ndim not 2 or 3,
 * or a stage where no axis can be pooled (the patch is too small for the
 * depth: msg names the stage).
 */
sl_status sl_unet_plan_anisotropic(sl_unet_config *cfg, const double *spacing,
                                   const int64_t *patch, char *msg, size_t msglen);

/* The total down-sampling factor of output level `level` along each
 * spatial axis (factors[0 .. spatial_ndim-1]; the product of the pool
 * factors of stages 1..level): level l's logits have extents
 * spatial[a] / factors[a]. SL_EINVAL on NULL or a level outside
 * [0, depth). */
sl_status sl_unet_level_factors(const sl_unet *net, int level, int factors[3]);

/*
 * Builds a network and initialises its weights from cfg->seed:
 *   3x3 and 1x1 convolutions: Kaiming-normal, fan-in mode, gain for
 *     LeakyReLU: std = sqrt(2 / (1 + a^2)) / sqrt(Cin * taps), taps = the
 *     kernel's size (K * K, or Kd * Kh * Kw in 3-D), a = leaky_slope
 *     (nnU-Net's InitWeights_He; PyTorch's kaiming_normal_);
 *   transposed convolutions: the same with fan-in Cin (each output pixel
 *     sees one input pixel of Cin channels);
 *   all biases 0; norm weight 1, norm bias 0; running mean 0, variance 1.
 * Tensor i draws from RNG stream i of the seed (segloss/rng.h), so its
 * values do not depend on the other tensors. The net starts in training
 * mode with the default thread count.
 * *out is set to NULL on failure. Release with sl_unet_free.
 * Returns SL_OK, the codes of sl_unet_config_check, SL_ENOMEM.
 */
sl_status sl_unet_create(sl_unet **out, const sl_unet_config *cfg, char *msg, size_t msglen);

/* Releases everything the net owns. NULL is a no-op. */
void sl_unet_free(sl_unet *net);

/* The net's configuration (copied into *cfg). SL_EINVAL on NULL. */
sl_status sl_unet_get_config(const sl_unet *net, sl_unet_config *cfg);

/* Number of trainable parameters (floats), or -1 for NULL. */
int64_t sl_unet_num_params(const sl_unet *net);

/* The parameter and gradient arrays: one contiguous allocation each of
 * sl_unet_num_params floats, laid out as the tensor table says. Owned by the
 * net (valid until sl_unet_free); the caller may read and write them (for
 * example to load weights). NULL for a NULL net. */
float *sl_unet_params(sl_unet *net);
float *sl_unet_grads(sl_unet *net);

/* Non-trainable state (BatchNorm running mean and variance, in tensor
 * table order; 0 floats for the other norms). */
int64_t sl_unet_num_buffers(const sl_unet *net);
float *sl_unet_buffers(sl_unet *net);

/* One entry of the tensor table. Parameters come first in the order
 * enc0, enc1, ..., enc{depth-1}, then for s = depth-2 .. 0: up{s}, dec{s},
 * then head0, head1, ...; within a stage conv1.weight, [conv1.bias],
 * norm1.weight, norm1.bias, conv2.*, norm2.*. The buffers follow as
 * "<stage>.norm<k>.running_mean" / "running_var". Names follow PyTorch's
 * state_dict keys of the same module tree (tests/ref/nn_torch_state.py). */
typedef struct sl_tensor_info {
    const char *name;  /* e.g. "enc1.conv2.weight"; owned by the net */
    int is_buffer;     /* 0: offset into params/grads; 1: into buffers */
    int64_t offset;    /* in floats */
    int64_t numel;
    int ndim;          /* 1, 4 (2-D convs) or 5 (3-D convs) */
    int64_t shape[5];  /* PyTorch shape: conv (Cout, Cin, [Kd,] Kh, Kw),
                          transposed conv (Cin, Cout, [fd,] fh, fw), vectors (C) */
} sl_tensor_info;

/* Number of entries (parameters and buffers), or -1 for NULL. */
int sl_unet_num_tensors(const sl_unet *net);
/* Entry `index` in [0, sl_unet_num_tensors). SL_EINVAL on NULL or a bad index. */
sl_status sl_unet_tensor(const sl_unet *net, int index, sl_tensor_info *info);

/* OpenMP threads for the passes; 0 = the OpenMP default. Results do not
 * depend on it. SL_EINVAL for NULL or a negative count. */
sl_status sl_unet_set_threads(sl_unet *net, int threads);

/* Training mode (1, the default) or evaluation mode (0). Only BatchNorm
 * differs: batch statistics and running-stat updates in training, the
 * running statistics in evaluation. */
sl_status sl_unet_set_training(sl_unet *net, int training);

/*
 * Forward pass. images is (B, Cin, H, W) as dims = {B, Cin, 2, {H, W}} for
 * a 2-D net, (B, Cin, D, H, W) as {B, Cin, 3, {D, H, W}} for a 3-D one;
 * logits (caller-allocated, B * num_classes * voxels floats) receives the
 * level-0 output (B, num_classes, [D,] H, W). Each extent must be divisible
 * by the product of the pool factors along its axis (2^(depth-1) when
 * isotropic). The activations needed by the backward are kept in the net,
 * in arenas that grow to the largest shape seen (a shape that fits is
 * laid out in the existing memory).
 * Returns SL_OK; SL_EINVAL (NULL pointer); SL_ESHAPE (channels differ from
 * in_channels, an extent not divisible, or a dimensionality other than the
 * net's; named in msg);
 * SL_EOVERFLOW; SL_ENOMEM. NaN/Inf in images propagate, not checked.
 */
sl_status sl_unet_forward(sl_unet *net, const float *images, const sl_dims *dims, float *logits,
                          char *msg, size_t msglen);

/*
 * Backward pass of the last forward: dlogits is d(loss)/d(logits), same
 * shape as the level-0 logits. Parameter gradients are ADDED to the
 * gradient array (call sl_unet_zero_grad between steps, or not, to
 * accumulate over several batches). SL_EINVAL (NULL), SL_EBADSTATE (no
 * forward since creation or loading).
 */
sl_status sl_unet_backward(sl_unet *net, const float *dlogits, char *msg, size_t msglen);

/* The same with deep supervision: dlogits[i] is the gradient for output
 * level i (see sl_unet_output), or NULL for a level with no loss; the array
 * has sl_unet_num_outputs entries. The caller applies the level weights
 * (sl_unet_ds_weights) inside its losses. */
sl_status sl_unet_backward_ds(sl_unet *net, const float *const *dlogits, char *msg,
                              size_t msglen);

/* Sets every parameter gradient to 0. SL_EINVAL for NULL. */
sl_status sl_unet_zero_grad(sl_unet *net);

/* Number of outputs: depth - 1 with deep supervision (levels 0 .. depth-2,
 * at least 1), else 1. -1 for NULL. */
int sl_unet_num_outputs(const sl_unet *net);

/* Output level `level` of the last forward: *logits points into the net
 * (valid until the next forward or free), *dims = (B, num_classes,
 * spatial[a] / factor[a]) with the factors of sl_unet_level_factors
 * (H / 2^level, W / 2^level when isotropic). Either out-pointer may be NULL.
 * SL_EINVAL (NULL net, bad level), SL_EBADSTATE (no forward yet). */
sl_status sl_unet_output(const sl_unet *net, int level, const float **logits, sl_dims *dims);

/* Deep-supervision weights: w_i = 2^-i normalised to sum 1, i over
 * sl_unet_num_outputs levels (1 without deep supervision). weights has
 * room for sl_unet_num_outputs floats. SL_EINVAL on NULL. */
sl_status sl_unet_ds_weights(const sl_unet *net, float *weights);

/*
 * Nearest-neighbour downsampling by striding, for deep-supervision targets:
 * out[n, c, i, j] = in[n, c, i * factor, j * factor] (the same index as
 * PyTorch's F.interpolate(mode="nearest") with scale 1/factor). Works for
 * any element type of `elem_size` bytes: label maps (give c = 1), one-hot
 * or soft targets. in is dims (N, C, spatial...), out has extents
 * spatial / factor. factor >= 1; each extent must be divisible by it.
 * SL_EINVAL (NULL, factor < 1, elem_size 0), SL_ESHAPE (not divisible),
 * SL_EOVERFLOW.
 */
sl_status sl_nn_downsample_nearest(void *out, const void *in, const sl_dims *dims,
                                   size_t elem_size, int factor, char *msg, size_t msglen);

/* The same with one factor per spatial axis (factors[0 .. spatial_ndim-1],
 * each >= 1), for the levels of an anisotropic net: pass the factors of
 * sl_unet_level_factors. */
sl_status sl_nn_downsample_nearest_axes(void *out, const void *in, const sl_dims *dims,
                                        size_t elem_size, const int *factors, char *msg,
                                        size_t msglen);

/* ------------------------------------------------------ INT8 inference
 *
 * Post-training static quantisation of every convolution (docs/nn.md):
 * int8 weights with one scale per output channel, int8 inputs with one
 * scale and zero point per convolution calibrated on example images,
 * int32 accumulation; normalisation, LeakyReLU and pooling stay float32.
 *
 *     sl_unet_calibrate(net);                                   // start recording ranges
 *     sl_unet_forward(net, calib, &d, out, msg, sizeof msg);    // float forwards, any number
 *     sl_unet_quantize(net, msg, sizeof msg);                   // now int8
 *     sl_unet_forward(net, images, &d, out, msg, sizeof msg);   // int8 inference
 *     sl_unet_dequantize(net);                                  // back to float32
 *
 * Quantisation copies the weights as they are: the float parameters are
 * not changed, and later changes to them are not seen until the net is
 * calibrated and quantised again. An int8 net has no backward. Only the
 * isotropic 2-D net is quantised: sl_unet_calibrate returns
 * SL_EUNSUPPORTED for a 3-D or anisotropic net.
 */

/* Starts a calibration (dropping any earlier int8 state): forwards run in
 * float32 and record the range of every convolution's input.
 * SL_EINVAL (NULL), SL_EUNSUPPORTED (a 3-D or anisotropic net), SL_ENOMEM. */
sl_status sl_unet_calibrate(sl_unet *net);

/* Ends the calibration: quantises the weights, fixes the activation
 * scales, and makes later forwards int8. SL_EBADSTATE (no calibration
 * started, or no forward since), SL_ENONFINITE (a weight or a recorded
 * range is not finite), SL_EUNSUPPORTED (a convolution over more than
 * 66000 / 9 input channels: its int32 sums could overflow), SL_ENOMEM,
 * SL_EINVAL; msg names the problem. On
 * failure the net is left calibrating. */
sl_status sl_unet_quantize(sl_unet *net, char *msg, size_t msglen);

/* Back to float32 forwards (a no-op for a float net). SL_EINVAL for NULL. */
sl_status sl_unet_dequantize(sl_unet *net);

/* 1 when forwards run in int8, else 0 (also for NULL). */
int sl_unet_is_quantized(const sl_unet *net);

/* -------------------------------------------------------- optimisation */

typedef enum sl_optim_kind {
    SL_OPTIM_ADAM = 0,  /* Kingma & Ba 2015; weight decay as L2 on the gradient */
    SL_OPTIM_ADAMW = 1, /* Loshchilov & Hutter 2019; decoupled weight decay */
    SL_OPTIM_SGD = 2    /* with optional (Nesterov) momentum, as torch.optim.SGD */
} sl_optim_kind;

typedef enum sl_sched_kind {
    SL_SCHED_CONSTANT = 0, /* lr every step */
    SL_SCHED_ONECYCLE = 1, /* Smith & Topin 2019, as torch's OneCycleLR */
    SL_SCHED_POLY = 2      /* lr * (1 - step / total_steps)^power (nnU-Net) */
} sl_sched_kind;

typedef struct sl_lr_schedule {
    sl_sched_kind kind;
    int64_t total_steps;     /* ONECYCLE, POLY: > 0 */
    double pct_start;        /* ONECYCLE: fraction of steps rising (0.3) */
    double div_factor;       /* ONECYCLE: initial lr = lr / div_factor (25) */
    double final_div_factor; /* ONECYCLE: min lr = initial lr / this (1e4) */
    int cycle_momentum;      /* ONECYCLE: cycle Adam's beta1 / SGD's momentum (1) */
    double base_momentum;    /* ... from max_momentum down to this at the peak (0.85) */
    double max_momentum;     /* (0.95) */
    double power;            /* POLY exponent (0.9) */
} sl_lr_schedule;

#define SL_LR_SCHEDULE_DEFAULT {SL_SCHED_CONSTANT, 0, 0.3, 25.0, 1e4, 1, 0.85, 0.95, 0.9}

typedef struct sl_optim_config {
    sl_optim_kind kind;
    double lr;           /* peak lr for ONECYCLE, initial lr for POLY (1e-3) */
    double beta1, beta2; /* Adam(W) (0.9, 0.999) */
    double eps;          /* Adam(W) (1e-8) */
    double weight_decay; /* >= 0 (0); applied to every parameter */
    double momentum;     /* SGD, in [0, 1) (0) */
    double dampening;    /* SGD (0) */
    int nesterov;        /* SGD: needs momentum > 0 and dampening 0 */
    double clip_norm;    /* > 0: clip the global L2 gradient norm to this
                            before each step, as clip_grad_norm_; 0 = off */
    sl_lr_schedule schedule;
} sl_optim_config;

#define SL_OPTIM_CONFIG_DEFAULT                                                          \
    {SL_OPTIM_ADAM, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0.0, 0.0, 0, 0.0, SL_LR_SCHEDULE_DEFAULT}

typedef struct sl_optim sl_optim;

/* Checks an optimiser configuration. SL_OK or SL_EINVAL (named in msg). */
sl_status sl_optim_config_check(const sl_optim_config *cfg, char *msg, size_t msglen);

/* An optimiser over the net's parameter and gradient arrays (the net must
 * outlive it). Its threads follow the net's at creation; see
 * sl_optim_set_threads. *out NULL on failure; release with sl_optim_free.
 * SL_EINVAL, SL_ENOMEM. */
sl_status sl_optim_create(sl_optim **out, sl_unet *net, const sl_optim_config *cfg, char *msg,
                          size_t msglen);

/* The same over any flat arrays params and grads of n floats (borrowed;
 * they must outlive the optimiser). */
sl_status sl_optim_create_flat(sl_optim **out, float *params, float *grads, int64_t n,
                               const sl_optim_config *cfg, char *msg, size_t msglen);

/* Releases the optimiser (not the arrays it steps). NULL is a no-op. */
void sl_optim_free(sl_optim *opt);

/* Threads for the update and the norm; results do not depend on it. */
sl_status sl_optim_set_threads(sl_optim *opt, int threads);

typedef struct sl_optim_stats {
    double lr;        /* learning rate used by this step */
    double momentum;  /* beta1 (Adam/AdamW) or momentum (SGD) used */
    double grad_norm; /* global L2 norm of the gradient before clipping
                         (computed only when clip_norm > 0, else -1) */
    int64_t step;     /* steps taken, this one included */
} sl_optim_stats;

/*
 * One update from the current gradients (which are left as they are,
 * except for clipping, which scales them in place). Step k (0-based) uses
 * the schedule's lr and momentum at k. stats may be NULL.
 * SL_OK, SL_EINVAL (NULL), SL_ENONFINITE (the gradient norm is NaN/Inf
 * with clipping on: nothing is changed).
 */
sl_status sl_optim_step(sl_optim *opt, sl_optim_stats *stats);

/* Replaces the base lr (the rate the schedule scales: peak, initial or
 * constant) from the next step on; the schedule's step counter goes on.
 * The trainer's per-stage '@lr='. SL_EINVAL (NULL, lr not finite and > 0). */
sl_status sl_optim_set_lr(sl_optim *opt, double lr);

/* Steps taken so far (restored by loading), -1 for NULL. */
int64_t sl_optim_num_steps(const sl_optim *opt);

/* The optimiser's configuration. SL_EINVAL on NULL. */
sl_status sl_optim_get_config(const sl_optim *opt, sl_optim_config *cfg);

/* The learning rate (and momentum, may be NULL) that the schedule gives
 * at 0-based step `step` for peak/base rate `lr` and base momentum
 * `momentum` (returned unchanged unless ONECYCLE cycles it). Steps beyond
 * total_steps give the final value. SL_EINVAL (NULL, bad schedule). */
sl_status sl_lr_schedule_at(const sl_lr_schedule *s, double lr, double momentum, int64_t step,
                         double *lr_out, double *momentum_out);

/* Global L2 norm of g[0..n) (in double, fixed-order chunks). */
sl_status sl_nn_grad_norm(const float *g, int64_t n, int threads, double *norm);

/* torch.nn.utils.clip_grad_norm_: total = ||g||_2; if total > max_norm,
 * g *= max_norm / (total + 1e-6). *total_norm (may be NULL) gets total.
 * SL_EINVAL (NULL g, max_norm <= 0), SL_ENONFINITE (norm not finite; g
 * unchanged). */
sl_status sl_nn_clip_grad_norm(float *g, int64_t n, double max_norm, int threads,
                               double *total_norm);

/* ---------------------------------------------------------- model files */

/*
 * Writes the configuration, parameters, buffers and (when opt is not NULL)
 * the optimiser state to `path` atomically: a temporary file in the same
 * folder is written, flushed to disk and renamed over path, so a crash
 * leaves either the old file or the new one. Format: docs/nn.md
 * (magic "SLUNET\r\n", version, CRC-32). SL_EINVAL, SL_EIO (with the
 * system's reason in msg).
 */
sl_status sl_unet_save(const sl_unet *net, const sl_optim *opt, const char *path, char *msg,
                       size_t msglen);

/*
 * Reads a model file. Everything is validated before use: magic, version,
 * header size, configuration, tensor counts, the exact file size, the
 * CRC-32 and finite parameters; a truncated or corrupt file gives SL_EFORMAT
 * (or SL_EIO if it cannot be read) with the reason in msg, and nothing is
 * allocated. On success *net is a new net in training mode; if opt is not
 * NULL, *opt receives the saved optimiser (bound to *net) or NULL when the
 * file has none. Release both as usual.
 */
sl_status sl_unet_load(sl_unet **net, sl_optim **opt, const char *path, char *msg,
                       size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
