/*
 * segloss/train.h — the trainer (a U-Net trained with any loss spec or loss
 * schedule on a data source) and the predictor (a trained model applied to
 * images). docs/train.md is the manual: every field with its default, the
 * files of a run folder, resume semantics, determinism.
 *
 * Training, in process (what the benchmark does for each loss):
 *
 *     sl_train_config cfg = SL_TRAIN_CONFIG_DEFAULT;      // phantom, 128x128, ~1 min
 *     snprintf(cfg.loss, sizeof cfg.loss, "%s", "dice+ce");
 *     snprintf(cfg.out_dir, sizeof cfg.out_dir, "%s", "runs/dice_ce");  // "" = no files
 *     cfg.seed = 1;
 *     sl_train_result res = SL_TRAIN_RESULT_EMPTY;
 *     char msg[512];
 *     if (sl_train_run(&cfg, &res, NULL, NULL, msg, sizeof msg) != SL_OK) { puts(msg); return 1; }
 *     for (int c = 1; c < res.num_classes; c++)
 *         printf("%s dice %.3f hd95 %.1f\n", res.class_names[c], res.test[c].dice, res.test[c].hd95);
 *     sl_train_result_free(&res);
 *
 * The run is a pure function of the configuration: the dataset of (data,
 * data_opts), weights from `seed`, batch t of epoch e from the sampler at
 * global step e * steps_per_epoch + t, the loss of epoch e from the
 * schedule. The nn, loss and data modules give the same numbers for any
 * thread count, so `threads` changes the speed only. A run killed at any
 * moment resumes from its last per-epoch checkpoint (resume = 1) and ends
 * with the same model bytes as an uninterrupted run.
 *
 * The library never prints: progress goes to the optional callback.
 *
 * Prediction (what `segloss predict` does):
 *
 *     sl_unet *net;  sl_unet_load(&net, NULL, "run/model.bin", msg, sizeof msg);
 *     sl_preproc pp;  sl_preproc_load(&pp, NULL, "run/config.json", msg, sizeof msg);
 *     sl_predict_opts po = SL_PREDICT_OPTS_DEFAULT;  po.tta = SL_TTA_FLIP;
 *     sl_array img, lab = SL_ARRAY_EMPTY;            // img: (H, W) or (D, H, W)
 *     sl_predict_image(net, &pp, &img, &po, &lab, msg, sizeof msg);   // lab: uint8 labels
 */
#ifndef SEGLOSS_TRAIN_H
#define SEGLOSS_TRAIN_H

#include "segloss/core.h"
#include "segloss/crf.h"
#include "segloss/data.h"
#include "segloss/geometry.h"
#include "segloss/io.h"
#include "segloss/nn.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

/* ------------------------------------------------------------ configuration */

#define SL_TRAIN_TEXT 2048 /* capacity of the text fields (with the NUL) */

typedef struct sl_train_config {
    /* data */
    char data[SL_TRAIN_TEXT];   /* source: "phantom", "colin" or "nifti:DIR" ("phantom") */
    sl_data_opts data_opts;     /* SL_DATA_OPTS_DEFAULT; data_opts.seed is the data seed
                                   (phantom images, nifti case split), independent of `seed` */
    /* network: sl_unet_config without in_channels, num_classes and seed,
     * which come from the dataset and `seed` */
    int depth;                  /* encoder stages (4) */
    int base_width;             /* channels of stage 0 (8) */
    int max_width;              /* cap on a stage's width, 0 = none (0) */
    sl_norm_kind norm;          /* (SL_NORM_INSTANCE) */
    sl_down_kind down;          /* (SL_DOWN_MAXPOOL) */
    int deep_supervision;       /* 0/1: loss on every decoder output, weights 2^-i
                                   normalised, labels nearest-downsampled (0) */
    /* loss: a spec ("dice+ce") or a schedule ("0:ce; 5:dice+ce",
     * "dice+boundary | ramp(step=0.05)"), see segloss/schedule.h ("dice+ce") */
    char loss[SL_TRAIN_TEXT];
    /* optimisation */
    sl_optim_kind optimizer;    /* (SL_OPTIM_ADAM) */
    double lr;                  /* peak lr (ONECYCLE), initial (POLY), constant (3e-3) */
    double weight_decay;        /* (0) */
    double momentum;            /* SGD momentum (0.99, nesterov, as nnU-Net); Adam's beta1
                                   stays 0.9 */
    double clip_norm;           /* global gradient-norm clip, 0 = off (12, as nnU-Net) */
    sl_sched_kind lr_schedule;  /* (SL_SCHED_ONECYCLE) over epochs * steps_per_epoch */
    int64_t epochs;             /* (12) */
    int64_t steps_per_epoch;    /* (30) */
    int64_t batch_size;         /* (8) */
    int64_t patch[2];           /* training patch (h, w); 0 = the sample size rounded
                                   down to a multiple of 2^(depth-1), at most 128
                                   a side ({0, 0}) */
    double fg_fraction;         /* share of each batch forced to hold the smallest class
                                   (1/3, nnU-Net's oversample_foreground_percent) */
    char augment[SL_TRAIN_TEXT];/* sl_aug_parse list ("flip,rotate,scale"); "none" = off */
    uint64_t seed;              /* weights and batches (0) */
    int threads;                /* OpenMP threads, 0 = default; results do not depend on it */
    /* output */
    char out_dir[SL_TRAIN_TEXT];/* run folder; "" = keep nothing on disk (no checkpoint) */
    int resume;                 /* 1: continue the run in out_dir from its checkpoint */
    int force;                  /* 1: replace a run already in out_dir */
    int64_t stop_after;         /* > 0: stop after this many epochs of this call, as if the
                                   process had been killed there (result.completed = 0) (0) */
    const sl_dataset *dataset;  /* optional: an open dataset to use instead of opening
                                   (data, data_opts) again (borrowed; must be the dataset
                                   those give, since config.json records them) (NULL) */
    int64_t patch_depth;        /* 3-D sources (phantom3d): the patch is (patch_depth,
                                   patch[0], patch[1]); 0 = the volume rounded down to a
                                   multiple of 2^(depth-1), at most 64 a side. Must be 0
                                   for 2-D sources (appended field) (0) */
    int skip_test;              /* 1: the test split is neither loaded nor evaluated (test
                                   metrics NaN), for choices made on validation only, such
                                   as the benchmark's weight search; not in config.json (0) */
    int anisotropic;            /* 3-D runs: 1 = when the data's voxel spacing is not
                                   isotropic, sl_unet_plan_anisotropic sets the pooling
                                   and kernels (nnU-Net's rule; recorded in config.json
                                   "plan" and in model.bin); 0 = isotropic net always.
                                   Written to config.json only when 0 (1) */
    double pct_start;           /* OneCycle: share of the steps spent rising to the peak
                                   lr, in (0, 1); 0 = the default 0.3. Written to
                                   config.json (optimizer.pct_start) only when set (0) */
} sl_train_config;

#define SL_TRAIN_CONFIG_DEFAULT                                                               \
    {.data = "phantom", .data_opts = SL_DATA_OPTS_DEFAULT, .depth = 4, .base_width = 8,       \
     .max_width = 0, .norm = SL_NORM_INSTANCE, .down = SL_DOWN_MAXPOOL,                       \
     .deep_supervision = 0, .loss = "dice+ce", .optimizer = SL_OPTIM_ADAM, .lr = 3e-3,        \
     .weight_decay = 0.0, .momentum = 0.99, .clip_norm = 12.0,                                \
     .lr_schedule = SL_SCHED_ONECYCLE, .epochs = 12, .steps_per_epoch = 30, .batch_size = 8,  \
     .patch = {0, 0}, .fg_fraction = 1.0 / 3.0, .augment = "flip,rotate,scale", .seed = 0,    \
     .threads = 0, .out_dir = "", .resume = 0, .force = 0, .stop_after = 0, .dataset = NULL, \
     .patch_depth = 0, .skip_test = 0, .anisotropic = 1, .pct_start = 0.0}

/* Checks every field (ranges, names, the loss schedule, the augmentation
 * list) without opening anything. SL_OK or SL_EINVAL / SL_EFORMAT /
 * SL_EUNKNOWN / SL_ERANGE with the field named in msg. */
sl_status sl_train_config_check(const sl_train_config *cfg, char *msg, size_t msglen);

/* The configuration as JSON (the content of config.json, without the
 * "dataset" and "predict" sections, which need the open dataset). *json is
 * malloc'ed; release with free(). SL_EINVAL, SL_ENOMEM. */
sl_status sl_train_config_to_json(const sl_train_config *cfg, char **json);

/* Reads a config.json (or any JSON object with the same keys) into *cfg:
 * *cfg is first set to SL_TRAIN_CONFIG_DEFAULT, then every key present is
 * applied; unknown keys are errors (SL_EUNKNOWN), so are values of the
 * wrong type (SL_EFORMAT). The run-control fields (out_dir, resume, force,
 * stop_after, threads, dataset) are not read. SL_EIO if the file cannot be
 * read. sl_train_config_parse does the same from a string. */
sl_status sl_train_config_load(sl_train_config *cfg, const char *path, char *msg, size_t msglen);
sl_status sl_train_config_parse(sl_train_config *cfg, const char *json, char *msg, size_t msglen);

/* Names used in config.json and by the CLI; parsers return SL_EUNKNOWN for
 * another name (and leave *out unchanged). optimizer: adam, adamw, sgd;
 * schedule: constant, onecycle, poly; norm: instance, batch, none; down:
 * maxpool, strided. Names of unknown values are NULL. */
const char *sl_train_optim_name(sl_optim_kind k);
sl_status sl_train_optim_parse(const char *name, sl_optim_kind *out);
const char *sl_train_sched_name(sl_sched_kind k);
sl_status sl_train_sched_parse(const char *name, sl_sched_kind *out);
const char *sl_train_norm_name(sl_norm_kind k);
sl_status sl_train_norm_parse(const char *name, sl_norm_kind *out);
const char *sl_train_down_name(sl_down_kind k);
sl_status sl_train_down_parse(const char *name, sl_down_kind *out);

/* ------------------------------------------------------------------- progress */

typedef enum sl_train_event {
    SL_TRAIN_START = 0, /* before the first step of this call (epoch = first epoch to run) */
    SL_TRAIN_STEP = 1,  /* after each optimiser step */
    SL_TRAIN_EPOCH = 2, /* after an epoch's validation and checkpoint */
    SL_TRAIN_TEST = 3,  /* after the final test evaluation */
    SL_TRAIN_STOP = 4   /* stopped early (stop_after or the callback) */
} sl_train_event;

typedef struct sl_train_progress {
    sl_train_event event;
    int64_t epoch;           /* 0-based epoch of the event */
    int64_t epochs;          /* total epochs of the run */
    int64_t step;            /* steps done in this epoch (STEP), else steps_per_epoch */
    int64_t steps_per_epoch;
    int64_t global_step;     /* optimiser steps done in the whole run */
    int64_t total_steps;
    double loss;             /* STEP: this step's loss; EPOCH: the epoch's mean */
    double epoch_loss;       /* mean loss of the epoch so far */
    double lr;               /* learning rate of the last step */
    int nterms;              /* terms of the epoch's loss */
    const char *const *term_names; /* [nterms] */
    const double *term_values;     /* [nterms] unweighted, epoch mean so far */
    int num_classes;
    const char *const *class_names; /* [num_classes] */
    const double *val_dice;  /* [num_classes] at EPOCH (entry 0 = background, NaN when
                                there is no validation split); NULL otherwise */
    double seconds;          /* seconds spent by this call so far */
    double eta;              /* estimated seconds left (NaN until a step has been timed) */
    int resumed;             /* 1 when this call continued a checkpoint */
} sl_train_progress;

/* The callback: return 0 to go on, non-zero to stop as if killed (the last
 * checkpoint stays; the call returns SL_OK with result.completed = 0). */
typedef int (*sl_train_callback)(const sl_train_progress *p, void *user);

/* --------------------------------------------------------------------- result */

/* Test metrics of one class: means over the test samples of the per-sample
 * values of sl_metrics_eval (border surfaces, HD95 = max of the two directed
 * 95th percentiles, NSD at 1 pixel). Empty masks as docs/metrics.md#empty-masks says:
 * both empty: dice = precision = recall = nsd = 1, hd95 = 0; one empty:
 * those 0 and hd95 = the sample's diagonal sqrt(H^2 + W^2) (pixels; 1 mm
 * pixels for phantom and colin), counted in n_empty_pred / n_empty_gt. */
typedef struct sl_train_class_metrics {
    double dice, hd95, nsd, recall, precision;
    double dice_global;     /* 2 sum TP / (2 sum TP + sum FP + sum FN) over the split */
    int64_t n_cases;        /* test samples */
    int64_t n_empty_both;   /* class absent from both target and prediction */
    int64_t n_empty_pred;   /* present in the target, absent from the prediction */
    int64_t n_empty_gt;     /* absent from the target, present in the prediction */
} sl_train_class_metrics;

typedef struct sl_train_log_row {
    int64_t epoch;
    double lr;              /* learning rate of the epoch's last step */
    double loss;            /* mean training loss of the epoch */
    int stage;              /* loss-schedule stage of the epoch */
    double *terms;          /* [result.nterm_cols] unweighted epoch means, NaN for a
                               column that is not a term of the epoch's stage */
    double *val_dice;       /* [num_classes]; [0] = background; NaN without validation */
    double seconds;         /* wall time of the epoch (training + validation) */
} sl_train_log_row;

typedef struct sl_train_result {
    int completed;          /* 1: all epochs done, test metrics filled in */
    int64_t epochs_done;
    int num_classes;
    char **class_names;     /* [num_classes] */
    sl_train_class_metrics *test; /* [num_classes]; entry 0 (background) is left 0 */
    int nterm_cols;
    char **term_cols;       /* log columns: term names over every stage ("dice", "ce",
                               a repeated name gets "#2") */
    int64_t nrows;
    sl_train_log_row *log;  /* [nrows], one per epoch done (resumed rows included) */
    double seconds;         /* wall time of this call */
    int64_t num_params;
} sl_train_result;

#define SL_TRAIN_RESULT_EMPTY {0, 0, 0, NULL, NULL, 0, NULL, 0, NULL, 0.0, 0}

/* Releases what a result holds and resets it; NULL is a no-op. */
void sl_train_result_free(sl_train_result *r);

/* ------------------------------------------------------------------------ run */

/*
 * Trains, validates every epoch, tests at the end. With out_dir set, the
 * folder holds (docs/train.md): config.json (written first), log.csv
 * (rewritten each epoch), checkpoint.bin (each epoch, atomically; removed
 * when the run completes), model.bin and metrics.json (at the end;
 * metrics.json marks a complete run). Every file is written to a temporary
 * name and renamed. A folder that holds a run (any of those files) is
 * refused unless resume (continue it; the configuration must equal the
 * saved one, apart from threads) or force (its run files are removed).
 * result may be NULL; else it is filled (free with sl_train_result_free,
 * also after a failure). cb may be NULL.
 * Codes: SL_EINVAL (bad config, named), SL_EBADSTATE (folder holds a run
 * and neither resume nor force; resume of a complete run; resume with
 * another configuration, the first differing key named; a checkpoint
 * missing), SL_EIO (folder or file not writable/readable, with the
 * system's reason), SL_EFORMAT (corrupt checkpoint), SL_ENONFINITE (the
 * loss became NaN/Inf: the epoch and step are named), the data module's
 * codes (sl_dataset_open, sl_sampler_create), SL_ENOMEM.
 */
sl_status sl_train_run(const sl_train_config *cfg, sl_train_result *result, sl_train_callback cb,
                       void *user, char *msg, size_t msglen);

/* ----------------------------------------------------------------- prediction */

/* How an image is brought to what the network saw in training. */
typedef enum sl_preproc_mask {
    SL_PREPROC_ALL = 0,      /* statistics over every voxel */
    SL_PREPROC_NONZERO = 1,  /* over voxels != 0; zeros stay 0 (nifti norm_nonzero) */
    SL_PREPROC_POSITIVE = 2  /* over voxels > 0; the others become 0 (colin) */
} sl_preproc_mask;

typedef struct sl_preproc {
    sl_intensity_norm norm;  /* zscore, percentile (clip, then z-score), none */
    sl_preproc_mask mask;
    int per_slice;           /* 1: statistics per 2-D slice (phantom); 0: per volume */
    double clip_lo, clip_hi; /* percentiles for SL_INTENSITY_PERCENTILE */
    int axis;                /* 'z', 'y' or 'x': which slices of a 3-D (D, H, W) array
                                the network takes ('z': [k, :, :], 'y': [:, k, :],
                                'x': [:, :, k], as the nifti source cuts them) */
    sl_resize_mode resize;   /* crop_pad: slices are predicted at their own size;
                                resample / fit: mapped to `size` and back */
    int64_t size[2];         /* the training sample size (H, W) */
    int64_t patch[3];        /* 3-D models: the training patch (D, H, W), the sliding
                                window of prediction (config.json's predict section);
                                {0, 0, 0} for 2-D models (appended field) */
} sl_preproc;

/* The preprocessing of a run: phantom: z-score per image; colin: z-score
 * over the volume's voxels > 0 (others 0), axis z; nifti: its data options
 * (norm, norm_nonzero, clip_lo/hi, axis, resize, height/width).
 * sample_h/sample_w: the dataset's sample size (config.json "predict"
 * records it; give 0, 0 when not known: then resample/fit need
 * data_opts.height/width). SL_EINVAL for an unknown source. */
sl_status sl_preproc_from_config(sl_preproc *pp, const sl_train_config *cfg, int64_t sample_h,
                                 int64_t sample_w, char *msg, size_t msglen);

/* The preprocessing recorded in a run's config.json ("predict" section,
 * written by sl_train_run with the dataset's sample size); for a file
 * without that section, sl_preproc_from_config on its configuration.
 * num_classes (may be NULL) receives dataset.num_classes, or 0 when the
 * file does not say. Codes as sl_train_config_load. */
sl_status sl_preproc_load(sl_preproc *pp, int *num_classes, const char *config_path, char *msg, size_t msglen);

/* Normalises n slices of (h, w) float32 in place as pp says (per slice, or
 * all n slices as one volume). SL_EINVAL, SL_ENOMEM. */
sl_status sl_preproc_normalise(const sl_preproc *pp, float *x, int64_t n, int64_t h, int64_t w);

/* Test-time augmentation: the softmax of transformed inputs, each mapped
 * back, averaged; then the argmax. docs/train.md#test-time-augmentation.
 * ROT: every element "mirror W, then k quarter turns in the (H, W) plane"
 * (k = 0..3): 8 for 2-D models; 16 for 3-D models (those times mirror D),
 * which hold the 8 mirrorings of FLIP. AUG: tta_n seeded draws (tta_seed)
 * of a random ROT element plus the training's intensity transforms (noise,
 * brightness/contrast, gamma with SL_AUG_OPTS_DEFAULT's odds and ranges).
 * The whole slice or volume is transformed and predicted as without TTA. */
typedef enum sl_tta { SL_TTA_NONE = 0, SL_TTA_FLIP = 1, SL_TTA_ROT = 2, SL_TTA_AUG = 3 } sl_tta;

typedef struct sl_predict_opts {
    sl_tta tta;      /* FLIP: mean softmax of the 4 mirrorings (none, y, x, both);
                        3-D models: of the 8 mirrorings over (D, H, W) */
    int threads;     /* 0 = default */
    int64_t batch;   /* slices per forward pass (8) */
    double step;     /* 3-D models: sliding-window step as a fraction of the patch,
                        (0, 1]; 0 = 0.5 (appended field) */
    int tta_n;       /* AUG: number of draws, 1..256 (appended field) (0) */
    uint64_t tta_seed; /* AUG: seed of the draws (appended field) (0) */
} sl_predict_opts;

#define SL_PREDICT_OPTS_DEFAULT {SL_TTA_NONE, 0, 8, 0.5, 0, 0}

/* "none", "flip", "rot", "aug:N" (N in 1..256) -> *tta, *n (0 unless aug).
 * SL_EUNKNOWN for another word, SL_ERANGE for a bad N, SL_EINVAL for NULL. */
sl_status sl_tta_parse(const char *s, sl_tta *tta, int *n);

/* The name sl_tta_parse reads, into buf; buf, or NULL for an unknown tta. */
const char *sl_tta_name(sl_tta tta, int n, char *buf, size_t len);

/*
 * Predicts n normalised slices images (n, 1, h, w) of any size: each is
 * zero-padded (centred: floor of the excess before, the rest after) to a
 * multiple of 2^(depth-1), run through net in evaluation mode (the net is
 * left in evaluation mode), and cropped back. probs (n, C, h,
 * w) receives the softmax probabilities (TTA mean), labels (n, h, w) the
 * argmax (ties to the lower class); either may be NULL.
 * SL_EINVAL, SL_ESHAPE (the net does not take one channel),
 * SL_EUNSUPPORTED (more than SL_DATA_MAX_CLASSES classes), SL_ENOMEM, the
 * net's codes.
 */
sl_status sl_predict_slices(sl_unet *net, const float *images, int64_t n, int64_t h, int64_t w,
                            const sl_predict_opts *opts, float *probs, int32_t *labels, char *msg,
                            size_t msglen);

/*
 * Predicts an image as read from a file: (H, W), or a volume (D, H, W) in
 * segloss's NIfTI order, cut into 2-D slices along pp->axis; any numeric
 * dtype (converted to float32, not modified). Normalises as pp says,
 * resizes for resample/fit models, predicts, and writes the label map of
 * the same shape to *out (overwritten, not freed first; allocated: uint8
 * when num_classes <= 256, else int16; release with sl_array_free). A (1, H, W) or (H, W, 1) array is
 * taken as 2-D when pp->axis slicing gives one slice.
 * SL_EINVAL, SL_ESHAPE (not 2-D or 3-D), SL_ENONFINITE (NaN/Inf in the
 * image), SL_ENOMEM, the net's codes.
 */
sl_status sl_predict_image(sl_unet *net, const sl_preproc *pp, const sl_array *image,
                           const sl_predict_opts *opts, sl_array *out, char *msg, size_t msglen);

/*
 * 3-D models (sl_unet_config.spatial_ndim 3): the image must be a volume
 * (D, H, W) (a 2-D image: SL_ESHAPE, "the model is 3-D"); it is normalised
 * as one volume and predicted by sl_sliding_window with the training patch
 * pp->patch, step opts->step and Gaussian importance weights; each window
 * gives the softmax (TTA: the mean softmax of its 8 mirrorings, each mapped
 * back), and the labels are the argmax of the aggregated probabilities.
 * pp->patch all 0 for a 3-D model: SL_EINVAL.
 */

/* sl_predict_image that also writes the softmax probabilities the labels
 * are the argmax of (the TTA mean; for resample/fit models, interpolated
 * back to the image grid) to *probs: float32 (C, image shape...), channels
 * first in the image's own layout (allocated; release with sl_array_free;
 * overwritten, not freed first). probs may be NULL. Codes as
 * sl_predict_image. */
sl_status sl_predict_image_probs(sl_unet *net, const sl_preproc *pp, const sl_array *image,
                                 const sl_predict_opts *opts, sl_array *out, sl_array *probs, char *msg,
                                 size_t msglen);

/*
 * Dense CRF post-processing of a prediction (segloss/crf.h; segloss
 * predict --crf): image is what sl_predict_image_probs took, probs its
 * softmax (float32 (C, image shape...)), replaced by the CRF's marginals,
 * and *labels (allocated as sl_predict_image's) their argmax. The image is
 * normalised as the predictor normalises it, so theta_beta is in the units
 * the network saw. model_ndim 2: the CRF runs on each slice along pp->axis
 * (a 2-D image whole); 3: on the volume. spacing: mm per image axis (array
 * order; NULL: 1 mm). labels may be NULL. After an error probs may be
 * partly replaced. Codes: SL_EINVAL, SL_ESHAPE (probs not (C, image
 * shape...)), sl_crf's codes, SL_ENOMEM.
 */
sl_status sl_predict_crf(const sl_preproc *pp, int model_ndim, const sl_array *image, const double *spacing,
                         const sl_crf_params *params, sl_array *probs, sl_array *labels, char *msg, size_t msglen);
/* ------------------------------------------------------------- ensembles */

/* Whether nmodels models with their preprocessings pps[k] (sl_preproc_load
 * of each run's config.json) can be ensembled: the same num_classes,
 * spatial_ndim and in_channels, the same intensity normalisation (norm,
 * mask, per_slice; clip_lo/hi for percentile) and, for 2-D models, the
 * same slicing axis. Resize mode, sample size and 3-D patch may differ
 * (each model predicts back to the image grid). SL_EINVAL with one line
 * naming the first model (counted from 1) that differs from model 1. */
sl_status sl_ensemble_check(sl_unet *const *nets, const sl_preproc *pps, int nmodels, char *msg, size_t msglen);

/*
 * An ensemble's prediction: for each model, sl_predict_image_probs with its
 * own preprocessing and the shared opts (TTA included); the softmax
 * probabilities averaged over the models (in double, rounded once: one
 * model, or a model repeated, gives exactly that model's output); *out the
 * argmax of the mean (ties to the lower class), *probs (may be NULL) the
 * mean, in the layouts of sl_predict_image_probs. Models are run one
 * after another. Codes: those of sl_ensemble_check and
 * sl_predict_image_probs.
 */
sl_status sl_predict_ensemble(sl_unet *const *nets, const sl_preproc *pps, int nmodels, const sl_array *image,
                              const sl_predict_opts *opts, sl_array *out, sl_array *probs, char *msg, size_t msglen);

/* ------------------------------------------------------- sliding window */

/*
 * Sliding-window inference, independent of the network (nnU-Net v2's
 * predict_sliding_window_return_logits): windows of opts->patch overlap by
 * (1 - step); each is passed to fn, and every voxel of out is the
 * importance-weighted mean of the outputs of the windows covering it,
 *     out = sum_w g_w f(window_w) / sum_w g_w,
 * g the Gaussian map of sl_window_gaussian (or 1 with gaussian = 0). An
 * axis shorter than the patch is zero-padded to it (floor(excess / 2)
 * before) and cropped back. The values of fn are aggregated linearly as
 * they come (nnU-Net aggregates logits).
 */

/* One window: patch (in_channels, patch...) float32 -> out (out_channels,
 * patch...) float32, caller-allocated by sl_sliding_window. A non-OK status
 * stops the aggregation and is returned (msg as written by fn). */
typedef sl_status (*sl_window_fn)(const float *patch, float *out, void *user, char *msg, size_t msglen);

typedef struct sl_window_opts {
    int64_t patch[3];    /* window extents, one per spatial axis (first ndim used) */
    double step;         /* window step as a fraction of the patch, (0, 1] (0.5) */
    int gaussian;        /* 1: Gaussian importance weighting; 0: plain mean */
    double sigma_scale;  /* Gaussian sigma = patch * sigma_scale per axis (1/8) */
} sl_window_opts;

#define SL_WINDOW_OPTS_DEFAULT {{0, 0, 0}, 0.5, 1, 0.125}

/* Window starts along one axis (nnU-Net's compute_steps_for_sliding_window):
 * k = ceil((size - patch) / (patch * step)) + 1 windows at
 * round(i * (size - patch) / (k - 1)) (half to even); one window at 0 when
 * size <= patch. starts may be NULL to get *count only. SL_EINVAL. */
sl_status sl_window_starts(int64_t size, int64_t patch, double step, int64_t *starts, int64_t *count);

/* The importance map (patch[0..ndim)) float32 of nnU-Net's compute_gaussian:
 * prod over axes of exp(-d^2 / (2 sigma^2)), d the offset from floor(p/2),
 * sigma = p * sigma_scale, 0 beyond scipy's radius floor(4 sigma + 0.5);
 * maximum 1; zeros replaced by the smallest positive value. SL_EINVAL,
 * SL_ENOMEM. */
sl_status sl_window_gaussian(int ndim, const int64_t *patch, double sigma_scale, float *map);

/* image (in_channels, size...) float32 -> out (out_channels, size...)
 * float32, ndim 1..3 spatial axes. Codes: SL_EINVAL (bad sizes or
 * options), SL_ENOMEM, fn's codes. Calls fn from the calling thread, one
 * window at a time, first axis outermost. */
sl_status sl_sliding_window(const float *image, int in_channels, int ndim, const int64_t size[3],
                            int out_channels, const sl_window_opts *opts, sl_window_fn fn, void *user,
                            float *out, char *msg, size_t msglen);

/* ---------------------------------------------------- post-processing */

/*
 * Connected-component post-processing chosen on the validation split
 * (nnU-Net v2's per-class rule; docs/train.md#post-processing). Components
 * are fully connected (8 in 2-D, 26 in 3-D, as nnU-Net v2); removed voxels
 * become background 0.
 */
typedef struct sl_postprocess {
    int num_classes;                          /* C, 2..SL_DATA_MAX_CLASSES */
    int keep_largest[SL_DATA_MAX_CLASSES];    /* [c] 1: keep only class c's largest component
                                                 (all of them on a tie, as nnU-Net) */
    int64_t min_size[SL_DATA_MAX_CLASSES];    /* [c] > 0: remove class c's components of
                                                 fewer voxels (after keep_largest) */
    double dice_before[SL_DATA_MAX_CLASSES];  /* [c] validation mean Dice without and with */
    double dice_after[SL_DATA_MAX_CLASSES];   /*     the rule (choose fills them; else NaN) */
} sl_postprocess;

/* Applies the rule in place to labels (grid shape, int32 in [0, C)).
 * SL_EINVAL (bad rule or grid), SL_ENOMEM. */
sl_status sl_postprocess_apply(const sl_postprocess *pp, int32_t *labels, const sl_grid *grid, char *msg,
                               size_t msglen);

/* The same on a 2-D or 3-D uint8 / int16 / int32 label array (as predict
 * writes). SL_ERANGE for a label >= C. */
sl_status sl_postprocess_apply_array(const sl_postprocess *pp, sl_array *labels, char *msg, size_t msglen);

/*
 * Chooses the rule from ncases predictions pred and targets target (each
 * ncases x grid shape, int32). For each foreground class c, with D = the
 * mean over cases of c's Dice (1 when both are empty): keep the largest
 * component if D improves (strictly, as nnU-Net v2); otherwise try every
 * minimum size S = s + 1, s a distinct size of c's predicted components,
 * and keep the S of the highest D (ties: smallest) if D improves.
 * SL_EINVAL, SL_ENOMEM.
 */
sl_status sl_postprocess_choose(const int32_t *pred, const int32_t *target, int64_t ncases,
                                const sl_grid *grid, int num_classes, sl_postprocess *out, char *msg,
                                size_t msglen);

/* postprocess.json, written atomically / read (unknown keys: SL_EUNKNOWN,
 * bad values: SL_EFORMAT, unreadable: SL_EIO). */
sl_status sl_postprocess_save(const sl_postprocess *pp, const char *path, char *msg, size_t msglen);
sl_status sl_postprocess_load(sl_postprocess *pp, const char *path, char *msg, size_t msglen);

/* Predicts the validation split of ds (its samples as given, i.e.
 * normalised as in training; no TTA; 3-D models by sliding windows of
 * pp->patch) with net and chooses the rule (sl_postprocess_choose).
 * SL_EEMPTY without a validation split; the predictor's codes. */
sl_status sl_postprocess_fit(sl_unet *net, const sl_preproc *pp, const sl_dataset *ds, int threads,
                             sl_postprocess *out, char *msg, size_t msglen);

/* For a finished run folder (config.json, model.bin): predicts the
 * validation split without TTA, chooses the rule, writes
 * run_dir/postprocess.json and fills *out. SL_EEMPTY without a validation
 * split; the dataset's, model loader's and writer's codes. */
sl_status sl_postprocess_fit_run(const char *run_dir, int threads, sl_postprocess *out, char *msg,
                                 size_t msglen);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
