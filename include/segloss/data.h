/*
 * segloss/data.h — datasets, augmentation and the batch sampler of the
 * trainer: 2-D slices (image float32 (1, H, W), label map int32 (H, W)).
 * docs/data.md is the manual (generative model, class definitions, splits,
 * every option with its default).
 *
 * Sources (the `source` string of sl_dataset_open):
 *   "phantom"    procedural images with a chosen class ratio ("100:10:1" =
 *                background : large region : small core), noise, blur,
 *                bias field and distractor blobs; splits from disjoint seeds.
 *   "phantom3d"  procedural volumes (D, H, W), phantom's options and model one
 *                dimension up (option depth); 1 mm voxels; 3-D samples.
 *   "colin"      real MRI: axial slices of the Colin27 T1 brain with AAL
 *                labels (1 = deep grey nuclei, 2 = hippocampus + amygdala),
 *                from Debian's mricron-data.
 *   "colin3d"    the same brain as volumes: training = one hemisphere,
 *                test = the other (mirrored), a gap at the midline, no
 *                validation split; 1 mm voxels; 3-D samples.
 *   "nifti:DIR"  DIR/images/NAME.nii[.gz] with DIR/labels/NAME.nii[.gz],
 *                sliced along an axis, split by case; with option
 *                volumes=1 the whole volumes as 3-D samples, with the
 *                files' voxel spacing (every case must have the same
 *                spacing and grid size: no resampling).
 * sl_dataset_from_arrays wraps slices already in memory.
 *
 * Usage (what the trainer does):
 *
 *     sl_data_opts o = SL_DATA_OPTS_DEFAULT;          // phantom 128x128, 100:10:1
 *     sl_data_opts_parse(&o, "ratio=100:10:1,n_train=400", msg, sizeof msg);
 *     sl_dataset *ds;
 *     if (sl_dataset_open(&ds, "phantom", &o, msg, sizeof msg)) { puts(msg); return 1; }
 *     sl_dataset_info info;  sl_dataset_get_info(ds, &info);
 *
 *     sl_sampler_opts so = SL_SAMPLER_OPTS_DEFAULT;   // batch 2, 1/3 forced fg
 *     so.batch_size = 8;  so.seed = 1;
 *     sl_aug_parse(&so.aug, "flip,rotate,scale,gamma,copypaste", msg, sizeof msg);
 *     sl_sampler *sp;
 *     sl_sampler_create(&sp, ds, SL_SPLIT_TRAIN, &so, msg, sizeof msg);
 *     int64_t h, w;  sl_sampler_patch(sp, &h, &w);
 *     float *x = malloc(8 * h * w * sizeof *x);       // (B, 1, h, w)
 *     int32_t *y = malloc(8 * h * w * sizeof *y);     // (B, h, w)
 *     for (int64_t step = 0; step < steps; step++)
 *         sl_sampler_batch(sp, step, x, y, NULL, msg, sizeof msg);
 *     for (int64_t i = 0; i < info.n[SL_SPLIT_VAL]; i++)   // validation
 *         sl_dataset_get(ds, SL_SPLIT_VAL, i, img, lab, msg, sizeof msg);
 *     sl_sampler_free(sp);  sl_dataset_free(ds);
 *
 * Determinism: a dataset is a pure function of its source and options
 * (seed included); batch `step` of a sampler is a pure function of the
 * dataset, the sampler options and `step` — the same for any thread count
 * and any order of calls (batches can be recomputed to resume a run).
 *
 * Errors: every fallible function returns sl_status and, where it takes
 * (msg, msglen), writes one line naming the problem (msg may be NULL).
 * Handles are read-only after creation: sl_dataset_get and
 * sl_sampler_batch may be called from several threads at once.
 *
 * 3-D sources (phantom3d, colin3d) give info.spatial_ndim = 3 and size = (D, H, W);
 * their samples are image (1, D, H, W) and label (D, H, W) through the same
 * calls, and the sampler makes 3-D patches (see sl_sampler_batch).
 */
#ifndef SEGLOSS_DATA_H
#define SEGLOSS_DATA_H

#include "segloss/core.h"

#include "segloss/export.h"

#ifdef __cplusplus
extern "C" {
#endif
SL_API_BEGIN

typedef enum sl_split {
    SL_SPLIT_TRAIN = 0,
    SL_SPLIT_VAL = 1,
    SL_SPLIT_TEST = 2
} sl_split;
#define SL_NUM_SPLITS 3

/* "train", "val", "test"; NULL for anything else. */
const char *sl_split_name(sl_split split);

/* How a slice of another size is brought to the sample size. */
typedef enum sl_resize_mode {
    SL_RESIZE_CROP_PAD = 0, /* centred crop and/or zero pad; pixels copied
                               exactly (offset floor((in - out) / 2)) */
    SL_RESIZE_RESAMPLE = 1, /* stretch to the size: bilinear image, nearest
                               label (PyTorch interpolate bilinear,
                               align_corners=False / nearest-exact; at exact
                               ties we round up where PyTorch's float
                               arithmetic may round down) */
    SL_RESIZE_FIT = 2       /* scale by min(out/in) over both axes (aspect
                               kept, same interpolation), centre, zero pad */
} sl_resize_mode;

/* Intensity normalisation of the nifti source (per case). */
typedef enum sl_intensity_norm {
    SL_INTENSITY_ZSCORE = 0,     /* (x - mean) / std over the case */
    SL_INTENSITY_PERCENTILE = 1, /* clip to [clip_lo, clip_hi] percentiles, then z-score */
    SL_INTENSITY_NONE = 2        /* values as stored (scaled by scl_slope/inter) */
} sl_intensity_norm;

typedef enum sl_slice_filter {
    SL_SLICES_ALL = 0,      /* every slice */
    SL_SLICES_NONZERO = 1,  /* slices whose image has a non-zero voxel (before normalisation) */
    SL_SLICES_LABELLED = 2  /* slices with a voxel of label > 0 */
} sl_slice_filter;

/*
 * Options of every source (each source reads its own group and the common
 * fields). docs/data.md documents each field; sl_data_opts_set takes the
 * field names below as keys.
 */
typedef struct sl_data_opts {
    /* common */
    uint64_t seed;            /* phantom images, nifti case split */
    int64_t height, width;    /* sample size; 0 = the source's own (phantom: 128) */
    sl_resize_mode resize;    /* colin, nifti, arrays: slice -> sample size */
    int threads;              /* OpenMP threads at open (0 = default); results do not depend on it */
    double val_fraction;      /* colin (blocks), nifti (cases): share of validation, [0, 1) */
    double test_fraction;     /* share of test; val + test < 1 */
    double max_memory_mb;     /* colin, nifti: refuse to hold more slice data than this */
    /* phantom */
    char ratio[64];           /* "100:10:1": background : class 1 : ... (2..8 classes, each > 0) */
    double small_fraction;    /* > 0: the last (smallest) class's share, others rescaled; 0 = ratio */
    int64_t n_train, n_val, n_test;
    double contrast;          /* mean intensity step between classes c and c+1 */
    double noise;             /* std of additive Gaussian noise */
    double blur;              /* Gaussian blur sigma (pixels) of the tissue map: partial volume */
    double bias;              /* strength of the multiplicative bias field exp(bias * g) */
    double texture;           /* amplitude of the smooth random texture */
    double irregularity;      /* amplitude of the radial harmonics of the shapes */
    double size_jitter;       /* lognormal sigma of each sample's class areas */
    double p_inside;          /* probability that a class-c object lies inside class c-1 */
    int max_lesions;          /* the smallest class has 1..max_lesions components */
    double distractors;       /* mean number of small-class look-alike blobs (label 0) */
    /* colin */
    char colin_dir[512];      /* folder of ch2bet.nii.gz, aal.nii.gz, aal.nii.txt */
    double min_brain_fraction;/* a slice is used when its brain covers at least this share */
    int block;                /* slices per split block */
    int gap;                  /* slices left out between blocks of different splits */
    /* nifti */
    int axis;                 /* slicing axis, NIfTI names: 'x', 'y' or 'z' */
    sl_intensity_norm norm;
    int norm_nonzero;         /* 1: statistics over non-zero voxels only, zeros stay 0 */
    double clip_lo, clip_hi;  /* percentiles for SL_INTENSITY_PERCENTILE, 0 <= lo < hi <= 100 */
    int num_classes;          /* 0 = 1 + the largest label found */
    sl_slice_filter slices;
    /* 3-D sources (phantom3d) */
    int64_t depth;            /* volume depth D; 0 = the source's own (phantom3d: height, or 64) */
    /* nifti */
    int volumes;              /* 1: whole volumes (D, H, W) as 3-D samples, spacing from
                                 the files (the trainer sets it for a D,H,W patch); 0: slices */
} sl_data_opts;

#define SL_DATA_OPTS_DEFAULT                                                               \
    {.seed = 0, .height = 0, .width = 0, .resize = SL_RESIZE_CROP_PAD, .threads = 0,       \
     .val_fraction = 0.2, .test_fraction = 0.2, .max_memory_mb = 4096.0,                   \
     .ratio = "100:10:1", .small_fraction = 0.0, .n_train = 200, .n_val = 50,              \
     .n_test = 50, .contrast = 1.0, .noise = 0.6, .blur = 1.0, .bias = 0.2,                \
     .texture = 0.3, .irregularity = 0.35, .size_jitter = 0.25, .p_inside = 0.8,           \
     .max_lesions = 3, .distractors = 2.0,                                                 \
     .colin_dir = "/usr/share/mricron/templates", .min_brain_fraction = 0.01,              \
     .block = 8, .gap = 2, .axis = 'z', .norm = SL_INTENSITY_ZSCORE, .norm_nonzero = 0,         \
     .clip_lo = 0.5, .clip_hi = 99.5, .num_classes = 0, .slices = SL_SLICES_ALL,          \
     .depth = 0, .volumes = 0}

/* Sets one field by name from text ("ratio", "100:10:1"), as the CLI does.
 * Enums take their names: resize crop_pad|resample|fit, norm
 * zscore|percentile|none, slices all|nonzero|labelled, axis x|y|z.
 * Range checks are those of sl_dataset_open. Codes: SL_EINVAL (NULL),
 * SL_EUNKNOWN (unknown key), SL_EFORMAT (value does not parse),
 * SL_ERANGE (value out of range); msg names the key. */
sl_status sl_data_opts_set(sl_data_opts *opts, const char *key, const char *value, char *msg,
                           size_t msglen);

/* Applies "key=value,key=value,..." through sl_data_opts_set (empty string:
 * no change). Codes as sl_data_opts_set; on error the earlier keys of the
 * list stay applied. */
sl_status sl_data_opts_parse(sl_data_opts *opts, const char *list, char *msg, size_t msglen);

/* ------------------------------------------------------------------ dataset */

typedef struct sl_dataset sl_dataset;

#define SL_DATA_MAX_CLASSES 256

typedef struct sl_dataset_info {
    int64_t n[SL_NUM_SPLITS];       /* samples per split (may be 0 for val/test) */
    int spatial_ndim;               /* 2 */
    int64_t size[SL_MAX_SPATIAL];   /* sample extents (H, W, 0) */
    int in_channels;                /* 1 */
    int num_classes;                /* C >= 2; labels lie in [0, C) */
    int small_class;                /* the class >= 1 with the smallest non-zero share of
                                       the training split; -1 if no foreground there */
    double spacing[SL_MAX_SPATIAL]; /* voxel size (mm) per axis of size[]: 3-D sources
                                       their known spacing (phantom3d, colin3d: 1) or the
                                       NIfTI pixdim (nifti volumes=1); 2-D sources 1
                                       (their distances are in pixels) */
} sl_dataset_info;

/*
 * Opens a source (see the top of this file); opts NULL = SL_DATA_OPTS_DEFAULT.
 * Everything the source needs is read and checked here (files, labels,
 * per-sample class counts), so the calls that follow do not fail for
 * reasons of the data. *out is NULL on failure. Release with
 * sl_dataset_free. Codes: SL_EINVAL (NULL, bad option), SL_EUNKNOWN
 * (unknown source), SL_EFORMAT (bad ratio string, bad label table),
 * SL_ERANGE (option or label out of range), SL_EIO (missing file or
 * folder; for colin the message names the mricron-data package),
 * SL_ESHAPE (image and label grids differ; slices of different sizes with
 * no sample size set), SL_EEMPTY (no usable slice or case), SL_ENOMEM
 * (including max_memory_mb), and the NIfTI reader's codes.
 */
sl_status sl_dataset_open(sl_dataset **out, const char *source, const sl_data_opts *opts,
                          char *msg, size_t msglen);

/*
 * A dataset over slices in memory (copied): images (N, 1, H, W) float32,
 * labels (N, H, W) int32 in [0, num_classes). The first n_train slices are
 * the training split, the next n_val validation, the next n_test test
 * (n_train + n_val + n_test = N). opts may be NULL; its height, width and
 * resize fields apply. Codes: SL_EINVAL, SL_ERANGE (a label out of range,
 * named with its position), SL_ENONFINITE (NaN/Inf in an image), SL_ENOMEM.
 */
sl_status sl_dataset_from_arrays(sl_dataset **out, const float *images, const int32_t *labels,
                                 int64_t n_train, int64_t n_val, int64_t n_test, int64_t height,
                                 int64_t width, int num_classes, const sl_data_opts *opts,
                                 char *msg, size_t msglen);

/* Releases a dataset; NULL is a no-op. Samplers made from it must be freed first. */
void sl_dataset_free(sl_dataset *ds);

/* Sizes and classes. SL_EINVAL on NULL. */
sl_status sl_dataset_get_info(const sl_dataset *ds, sl_dataset_info *info);

/* Name of class c ("background", ...), owned by the dataset; NULL when c is
 * out of range or ds is NULL. */
const char *sl_dataset_class_name(const sl_dataset *ds, int c);

/*
 * Sample `index` of a split at the sample size: image (1, H, W) float32
 * and label (H, W) int32, caller-allocated (either may be NULL to skip it).
 * Codes: SL_EINVAL (NULL ds, bad split), SL_ERANGE (index outside
 * [0, n[split])), SL_ENOMEM (phantom work buffers).
 */
sl_status sl_dataset_get(const sl_dataset *ds, sl_split split, int64_t index, float *image,
                         int32_t *label, char *msg, size_t msglen);

/* The same at another size (h, w >= 1) with a resize mode, from the
 * source slice (not from the sample-size copy). Phantoms are generated at
 * the sample size and resized from it. */
sl_status sl_dataset_get_at(const sl_dataset *ds, sl_split split, int64_t index, int64_t h,
                            int64_t w, sl_resize_mode mode, float *image, int32_t *label,
                            char *msg, size_t msglen);

/* Pixel counts per class (counts[num_classes]) of sample `index` at the
 * sample size, or of the whole split when index = -1. Codes as
 * sl_dataset_get. */
sl_status sl_dataset_class_counts(const sl_dataset *ds, sl_split split, int64_t index,
                                  int64_t *counts);

/* Realised class fractions of a split (frac[num_classes], summing to 1;
 * all 0 for an empty split). */
sl_status sl_dataset_class_fractions(const sl_dataset *ds, sl_split split, double *frac);

/* Where a sample comes from. */
typedef struct sl_sample_origin {
    int64_t case_index;   /* nifti/arrays: case (file pair) or slice number; colin: 0; phantom: -1 */
    int64_t slice;        /* index along the slicing axis in the volume; phantom: -1 */
    uint64_t stream;      /* phantom: the RNG stream of the sample (split << 56 | index) */
    const char *name;     /* nifti: the image file name (owned by ds); others: the source name */
} sl_sample_origin;

sl_status sl_dataset_origin(const sl_dataset *ds, sl_split split, int64_t index,
                            sl_sample_origin *origin);

/* ------------------------------------------------ k-fold cross-validation */

#define SL_DATA_MAX_FOLDS 10

/*
 * Fold k of a k-fold cross-validation of ds (2 <= folds <= 10, 0 <= fold
 * < folds): a view whose validation split is fold `fold` of the pool (ds's
 * training split, then its validation split: n_train + n_val samples),
 * whose training split is the other folds, and whose test split is ds's.
 * The pool is shuffled by a generator seeded from ds's data seed
 * (data_opts.seed) alone, so the folds are the same for every training;
 * shuffled position j is in fold j mod folds. The unit shuffled is a
 * sample, but for nifti:DIR a case with all its slices (a case is in one
 * fold): fold sizes differ by at most one sample, or one case.
 * Samples are ds's (sl_dataset_origin gives ds's split and index); the
 * view borrows ds, which must outlive it (release it with
 * sl_dataset_free). SL_EINVAL (NULL, ds a view), SL_ERANGE (folds, fold,
 * or fewer pool samples (cases) than folds), SL_ENOMEM.
 */
sl_status sl_dataset_fold(sl_dataset **out, const sl_dataset *ds, int folds, int fold, char *msg,
                          size_t msglen);

/* The fold of every pool sample: fold_of[n_train + n_val] (pool order:
 * training split, then validation split), as sl_dataset_fold draws it.
 * SL_EINVAL, SL_ERANGE (a pool smaller than folds), SL_ENOMEM. */
sl_status sl_dataset_fold_assign(const sl_dataset *ds, int folds, int *fold_of);

/* The class table the colin source uses: for each AAL label value v in
 * [0, n), table[v] = 0, 1 or 2 (see docs/data.md), read from aal.nii.txt
 * in dir. Exposed so that tests can check it against the file. Codes:
 * SL_EIO (file missing; the message names mricron-data), SL_EFORMAT (a
 * required region is not listed), SL_EINVAL. */
sl_status sl_colin_label_table(const char *dir, int32_t *table, int n, char *msg, size_t msglen);

/* ------------------------------------------------------------- resampling */

typedef enum sl_interp {
    SL_INTERP_LINEAR = 0,  /* bilinear */
    SL_INTERP_NEAREST = 1  /* nearest (floor(c + 0.5), see sl_warp2d) */
} sl_interp;

/*
 * Resamples an image and/or a label map through an affine map plus an
 * optional displacement field:
 *   input (y, x) = m · (yo, xo, 1) + disp[:, yo, xo]
 * for every output pixel (yo, xo). A point is inside when its nearest
 * pixel floor(y + 0.5 + 1e-9), floor(x + 0.5 + 1e-9) (half up, ties that
 * float rounding moved by an ulp included) lies in the input; inside points
 * interpolate (bilinear with neighbour indices clamped to the input, or
 * nearest), outside points get 0 (image and label).
 *   img (h, w) float32 or NULL; lab (h, w) int32 or NULL (nearest always)
 *   m   2 x 3, rows y and x
 *   disp (2, oh, ow) float32 or NULL
 *   out_img (oh, ow), out_lab (oh, ow): caller-allocated, NULL to skip
 * Codes: SL_EINVAL (NULL m, bad sizes, non-finite m).
 */
sl_status sl_warp2d(const float *img, const int32_t *lab, int64_t h, int64_t w,
                    const double m[2][3], const float *disp, int64_t oh, int64_t ow,
                    sl_interp img_interp, float *out_img, int32_t *out_lab);

/*
 * The spatial part of an augmentation as parameters. The output (oh, ow)
 * spans a window of `extent` input pixels centred at `center`, rotated by
 * angle_deg, zoomed by `scale` (> 1 enlarges the content), mirrored:
 *   u = (yo - (oh-1)/2, xo - (ow-1)/2)                 centred output coords
 *   u = (flip_y ? -u_y : u_y, flip_x ? -u_x : u_x)
 *   v = R(angle) · diag(extent_y/oh, extent_x/ow) · u / scale,
 *       R = [[cos, -sin], [sin, cos]] acting on (y, x)
 *   input = center + v
 * Multiples of 90 degrees use exact cosines and sines (0, +-1), so
 * rotations by 90 degrees and flips are exact pixel permutations.
 */
typedef struct sl_spatial2d {
    double center[2];   /* (y, x) in input pixels */
    double extent[2];   /* window size (y, x) in input pixels before zoom, > 0 */
    double angle_deg;
    double scale;       /* > 0 */
    int flip[2];        /* mirror along y, along x */
} sl_spatial2d;

/* The matrix m of sl_warp2d for p and an (oh, ow) output. SL_EINVAL for
 * NULL, non-finite values, extent or scale <= 0. */
sl_status sl_spatial2d_matrix(const sl_spatial2d *p, int64_t oh, int64_t ow, double m[2][3]);

/*
 * Resizes a slice (h, w) -> (oh, ow) by a resize mode (see sl_resize_mode).
 * img/lab and out_img/out_lab as sl_warp2d. SL_EINVAL for bad arguments.
 */
sl_status sl_resize2d(const float *img, const int32_t *lab, int64_t h, int64_t w, int64_t oh,
                      int64_t ow, sl_resize_mode mode, float *out_img, int32_t *out_lab);

/*
 * Gaussian blur with standard deviations (sigma_y, sigma_x) in pixels, as
 * scipy.ndimage.gaussian_filter(mode='reflect', truncate=4.0): separable,
 * kernel radius floor(4 sigma + 0.5), weights exp(-x^2 / (2 sigma^2))
 * normalised to sum 1, border (d c b a | a b c d | d c b a), sums in
 * double. A sigma of 0 leaves that axis unchanged. in and out are (h, w)
 * and may be the same buffer. Codes: SL_EINVAL (NULL, bad size, sigma < 0
 * or not finite), SL_ENOMEM.
 */
sl_status sl_blur2d(const float *in, float *out, int64_t h, int64_t w, double sigma_y,
                    double sigma_x);

/* ----------------------------------------------------------- augmentation */

/* Augmentations, as bits of sl_aug_opts.enabled. */
#define SL_AUG_FLIP      (1u << 0)
#define SL_AUG_ROTATE    (1u << 1)
#define SL_AUG_SCALE     (1u << 2)
#define SL_AUG_CROP      (1u << 3) /* random resized crop */
#define SL_AUG_GAMMA     (1u << 4)
#define SL_AUG_CONTRAST  (1u << 5) /* brightness and contrast */
#define SL_AUG_NOISE     (1u << 6)
#define SL_AUG_BLUR      (1u << 7)
#define SL_AUG_ELASTIC   (1u << 8)
#define SL_AUG_COPYPASTE (1u << 9)
#define SL_AUG_ALL       0x3ffu
/* nnU-Net's 2-D default set (no elastic, crop or copy-paste) */
#define SL_AUG_DEFAULT_SET (SL_AUG_FLIP | SL_AUG_ROTATE | SL_AUG_SCALE | SL_AUG_GAMMA | \
                            SL_AUG_CONTRAST | SL_AUG_NOISE | SL_AUG_BLUR)

/* Parameters of each augmentation: a probability per sample and its
 * ranges (docs/data.md gives the formulas). Only the enabled ones run. */
typedef struct sl_aug_opts {
    unsigned enabled;                      /* SL_AUG_* bits; 0 = no augmentation */
    double p_flip;                         /* per axis */
    double p_rotate, rotate_deg;           /* angle ~ U(-rotate_deg, rotate_deg) */
    double p_scale, scale_lo, scale_hi;    /* zoom ~ U(lo, hi) */
    double p_crop, crop_area_lo, crop_area_hi, crop_aspect_lo, crop_aspect_hi;
    double p_gamma, gamma_lo, gamma_hi, gamma_invert;
    double p_contrast, brightness, contrast_lo, contrast_hi;
    double p_noise, noise_std;             /* sigma ~ U(0, noise_std) */
    double p_blur, blur_lo, blur_hi;       /* sigma ~ U(lo, hi) pixels */
    double p_elastic, elastic_alpha_lo, elastic_alpha_hi, elastic_sigma;
    double p_copypaste;
    int copypaste_max;                     /* components pasted: 1..max */
    double copypaste_blend;                /* border blend width (pixels); 0 = hard */
    sl_interp image_interp;                /* image interpolation of the spatial step */
} sl_aug_opts;

#define SL_AUG_OPTS_DEFAULT                                                                \
    {.enabled = 0, .p_flip = 0.5, .p_rotate = 0.2, .rotate_deg = 30.0, .p_scale = 0.2,     \
     .scale_lo = 0.7, .scale_hi = 1.4, .p_crop = 0.3, .crop_area_lo = 0.6,                 \
     .crop_area_hi = 1.0, .crop_aspect_lo = 0.75, .crop_aspect_hi = 4.0 / 3.0,             \
     .p_gamma = 0.3, .gamma_lo = 0.7, .gamma_hi = 1.5, .gamma_invert = 0.1,                \
     .p_contrast = 0.15, .brightness = 0.25, .contrast_lo = 0.75, .contrast_hi = 1.25,     \
     .p_noise = 0.1, .noise_std = 0.1, .p_blur = 0.2, .blur_lo = 0.5, .blur_hi = 1.0,      \
     .p_elastic = 0.2, .elastic_alpha_lo = 3.0, .elastic_alpha_hi = 5.0,                   \
     .elastic_sigma = 16.0, .p_copypaste = 0.5, .copypaste_max = 2,                          \
     .copypaste_blend = 2.0, .image_interp = SL_INTERP_LINEAR}

/* Name of one SL_AUG_* bit ("flip", ...); NULL if not exactly one known bit. */
const char *sl_aug_name(unsigned bit);

/*
 * Applies a comma list to opts: an augmentation name (flip, rotate, scale,
 * crop, gamma, contrast, noise, blur, elastic, copypaste) enables it, "-name"
 * disables it, "none" clears all, "all" enables all, "default" enables
 * SL_AUG_DEFAULT_SET, and "key=value" sets a parameter (the field names of
 * sl_aug_opts; image_interp takes linear|nearest). Items apply in order,
 * so "all,-elastic,p_rotate=0.5" works. Codes: SL_EINVAL (NULL),
 * SL_EUNKNOWN (unknown name or key), SL_EFORMAT, SL_ERANGE; msg names it.
 */
sl_status sl_aug_parse(sl_aug_opts *opts, const char *list, char *msg, size_t msglen);

/* Sets one parameter by name; codes as sl_aug_parse. */
sl_status sl_aug_opts_set(sl_aug_opts *opts, const char *key, const char *value, char *msg,
                          size_t msglen);

/* Checks every field (probabilities in [0, 1], lo <= hi, positive ranges,
 * enabled bits known). SL_OK, SL_EINVAL/SL_ERANGE with the field named. */
sl_status sl_aug_check(const sl_aug_opts *opts, char *msg, size_t msglen);

/* ---------------------------------------------------------------- sampler */

typedef struct sl_sampler sl_sampler;

typedef struct sl_sampler_opts {
    int64_t batch_size;     /* B >= 1 */
    int64_t patch[2];       /* output (h, w); 0 = the sample size */
    double fg_fraction;     /* the last ceil(B * fg_fraction) slots of each batch hold
                               fg_class (nnU-Net's oversample_foreground_percent) */
    int fg_class;           /* class to oversample and copy-paste; -1 = the dataset's
                               small_class */
    uint64_t seed;
    int threads;            /* 0 = OpenMP default; results do not depend on it */
    sl_aug_opts aug;
    int64_t patch_depth;    /* 3-D datasets: the patch is (patch_depth, patch[0], patch[1]);
                               0 = the volume's depth (patch[] 0: its (H, W)) */
} sl_sampler_opts;

#define SL_SAMPLER_OPTS_DEFAULT {2, {0, 0}, 1.0 / 3.0, -1, 0, 0, SL_AUG_OPTS_DEFAULT, 0}

/* What one slot of a batch holds (sl_sampler_batch's meta, optional). */
typedef struct sl_batch_meta {
    int64_t index;          /* sample index in the split */
    int forced;             /* 1 when the slot had to contain fg_class */
    int64_t fg_pixels;      /* pixels of fg_class in the delivered label patch */
    unsigned applied;       /* SL_AUG_* bits that fired for this slot */
    int64_t donor;          /* copy-paste donor index, -1 if none */
} sl_batch_meta;

/*
 * A sampler of training batches from one split of ds (which must outlive
 * it). Checks the options and lists the samples that contain fg_class.
 * Codes: SL_EINVAL (NULL, bad option, named), SL_ERANGE (fg_class not a
 * foreground class), SL_EEMPTY (empty split; no sample with fg_class while
 * fg_fraction > 0 or copy-paste is enabled), SL_ENOMEM.
 */
sl_status sl_sampler_create(sl_sampler **out, const sl_dataset *ds, sl_split split,
                            const sl_sampler_opts *opts, char *msg, size_t msglen);

void sl_sampler_free(sl_sampler *s);

/* Patch size (h, w) of the batches. SL_EINVAL on NULL. */
sl_status sl_sampler_patch(const sl_sampler *s, int64_t *h, int64_t *w);

/* The fg class in use (after resolving -1), or -1 for NULL. */
int sl_sampler_fg_class(const sl_sampler *s);

/*
 * Batch number `step` (>= 0): images (B, 1, h, w) float32, labels
 * (B, h, w) int32, meta (B entries) or NULL. Per slot b: a sample (the
 * last ceil(B * fg_fraction) slots from those containing fg_class), then
 * copy-paste, one spatial resampling (crop window, random resized crop,
 * rotation, zoom, flips, elastic field; labels nearest), then noise, blur,
 * brightness/contrast and gamma on the image. A forced slot whose patch
 * lost fg_class redraws its spatial parameters (up to 10 times, then a
 * plain window centred on a fg_class pixel). Slot b of step t draws from
 * RNG streams of (seed, t, b) only. Codes: SL_EINVAL (NULL, step < 0),
 * SL_ENOMEM.
 */
sl_status sl_sampler_batch(const sl_sampler *s, int64_t step, float *images, int32_t *labels,
                           sl_batch_meta *meta, char *msg, size_t msglen);

/*
 * 3-D datasets (info.spatial_ndim 3, samples (D, H, W)): batches are
 * images (B, 1, pd, ph, pw) and labels (B, pd, ph, pw). Per slot: a volume
 * (forced slots: one containing foreground), for forced slots a voxel of a
 * random foreground class present in it (nnU-Net's oversampling), one
 * spatial resampling — window, flips per axis (flip), a 90-degree multiple
 * in a random plane whose two patch sides are equal composed with small
 * angles U(-rotate_deg, rotate_deg) about each axis (rotate), zoom
 * (scale), elastic field (elastic); trilinear image, nearest labels —
 * then noise, blur, brightness/contrast and gamma. A volume smaller than
 * the patch along an axis is zero-padded (image 0, label 0), centred.
 * crop and copypaste are 2-D only (SL_EUNSUPPORTED at sl_sampler_create).
 * Forced slots that lost the class redraw as in 2-D. fg_pixels counts the
 * voxels of the chosen class.
 */
/* The patch (pd, ph, pw) of a sampler; pd = 1 for a 2-D dataset. */
sl_status sl_sampler_patch3(const sl_sampler *s, int64_t patch[3]);

SL_API_END
#ifdef __cplusplus
}
#endif
#endif
