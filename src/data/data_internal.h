/*
 * Private parts of the data module: the dataset object shared by the
 * sources (phantom.c, colin.c, nifti_dir.c, dataset.c), the augmentation
 * kernels the sampler calls (augment.c), and small parsing helpers.
 */
#ifndef SL_DATA_INTERNAL_H
#define SL_DATA_INTERNAL_H

#include <stdint.h>
#include "internal.h"
#include "segloss/data.h"
#include "segloss/rng.h"

#define SLD_MAX_PHANTOM_CLASSES 8

/* One stored 2-D slice at its native size (colin, nifti, arrays). */
typedef struct sld_slice {
    const float *img;   /* (h, w), normalised */
    const int32_t *lab; /* (h, w), in [0, num_classes) */
    int64_t h, w;
    int64_t case_index; /* nifti: case; arrays: position in the input */
    int64_t slice;      /* index along the slicing axis; arrays: -1 */
} sld_slice;

typedef enum sld_kind { SLD_PHANTOM, SLD_COLIN, SLD_NIFTI, SLD_ARRAYS } sld_kind;

/* The sample callback of a generated source (the phantom): writes sample
 * (split, index) at (H, W), or (D, H, W) for 3-D, into img/lab (either may be NULL). SL_ENOMEM
 * only. Sources with stored slices leave it NULL. */
typedef sl_status (*sld_generate_fn)(const sl_dataset *ds, int split, int64_t index, float *img, int32_t *lab);

struct sl_dataset {
    sld_kind kind;
    sld_generate_fn generate;   /* NULL: samples are the stored slices */
    char source[16];            /* "phantom", "colin", "nifti", "arrays" */
    sl_data_opts opts;          /* as given (after defaults) */
    int num_classes;
    char **names;               /* [num_classes], owned */
    int64_t n[SL_NUM_SPLITS];
    int64_t H, W;               /* sample size */
    int ndim;                   /* 2, or 3 for volume sources (phantom3d) */
    int64_t D;                  /* volume depth (1 for 2-D): samples are (D, H, W) */
    double spacing[3];          /* voxel size (mm) of the sample axes, size order; 1 by default */
    int small_class;
    int64_t *counts[SL_NUM_SPLITS]; /* [n * num_classes] at the sample size */
    /* stored slices (not phantom) */
    sld_slice *slices[SL_NUM_SPLITS];
    void **bufs;                /* owned buffers the slices point into */
    int64_t nbufs, capbufs;
    char **case_names;          /* nifti: image file names */
    int64_t ncases;
    /* phantom */
    int pk;                     /* classes */
    double pfrac[SLD_MAX_PHANTOM_CLASSES]; /* requested shares, sum 1 */
    uint64_t pseed;             /* derived from opts.seed */
    /* a fold view (folds.c): samples of a split are those of another
     * dataset's; map[s][i] = (split << 56) | index there (NULL: the same
     * split and index). A view borrows everything above but n, counts and
     * small_class from that dataset, which must outlive it. */
    int view;
    int64_t *map[SL_NUM_SPLITS];
};

/* Where sample (split, index) lives: the stored slice or generated sample
 * of a view's dataset (the identity for other datasets). */
static inline void sld_resolve(const sl_dataset *ds, int *split, int64_t *index)
{
    if (ds->map[*split]) {
        const int64_t m = ds->map[*split][*index];
        *split = (int)(m >> 56);
        *index = m & (((int64_t)1 << 56) - 1);
    }
}

/* Allocates an empty dataset of a kind with opts copied. NULL on ENOMEM. */
sl_dataset *sld_alloc(sld_kind kind, const sl_data_opts *opts);
/* Takes ownership of a malloc'd buffer (freed with the dataset). */
sl_status sld_own(sl_dataset *ds, void *buf);
/* Sets num_classes and the names (copied). */
sl_status sld_set_classes(sl_dataset *ds, int num_classes, const char *const *names);
/* Computes the per-sample class counts at the sample size (parallel over
 * samples; deterministic) and small_class. Called last by every opener. */
sl_status sld_finish(sl_dataset *ds, char *msg, size_t msglen);
/* Bytes of slice data that `voxels` voxels of image + label take. */
double sld_mb(int64_t voxels);

/* The sources sl_dataset_open knows (src/data/sources.c), the way the loss
 * catalogue lists the losses: a name ("phantom") or a prefix that takes the
 * rest of the string ("nifti:" + folder), and the opener, called with
 * validated common options. dataset.c knows no source by name. */
typedef sl_status (*sld_opener)(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg,
                                size_t msglen);
typedef struct sld_source {
    const char *name; /* "phantom"; with has_arg, the prefix "nifti:" */
    int has_arg;
    sld_opener open;
} sld_source;
extern const sld_source sld_sources[];
extern const int sld_num_sources;

/* Parses a ratio string into shares summing to 1; returns the class count
 * via *k. SL_EFORMAT / SL_ERANGE with msg. */
sl_status sld_parse_ratio(const char *s, double *frac, int *k, char *msg, size_t msglen);

/* Splits n_blocks blocks over splits so that every prefix is as close as
 * possible to the shares (1 - v - t, v, t): block b goes to the split with
 * the largest deficit share * (b + 1) - count (ties: train, val, test). */
int sld_block_split(int64_t b, const double share[SL_NUM_SPLITS], int64_t count[SL_NUM_SPLITS]);

/* Text parsing for the option setters: whole-string numbers only. */
int sld_parse_double(const char *s, double *out);
int sld_parse_i64(const char *s, int64_t *out);
int sld_parse_u64(const char *s, uint64_t *out);

/* Intensity statistics: mean and std (population) of x[0..n) in double. */
void sld_mean_std(const float *x, int64_t n, double *mean, double *std);

/* ----------------------------------------------------------- augmentation */

/* Elastic displacement field (2, oh, ow): white noise U(-1, 1) per
 * component, Gaussian-smoothed with sigma, scaled so that the RMS length of
 * the displacement vectors is alpha. */
sl_status sld_elastic_field(sl_rng *r, int64_t oh, int64_t ow, double alpha, double sigma,
                            float *disp);

/* ---- 3-D (warp3d.c) */

/* Affine + displacement warp of a volume in[3] = (D, H, W) to out[3]:
 * input coordinate = m[:, :3] . (zo, yo, xo) + m[:, 3] + disp[:, o] (disp
 * (3, od, oh, ow) or NULL); conventions of sl_warp2d (labels nearest,
 * outside 0). img/out_img and lab/out_lab may be NULL pairs. */
void sld_warp3d(const float *img, const int32_t *lab, const int64_t in[3], const double m[3][4], const float *disp,
                const int64_t out[3], sl_interp img_interp, float *out_img, int32_t *out_lab);

/* In-place Gaussian blur of a (D, H, W) volume with one sigma (voxels) on
 * every axis, as scipy.ndimage.gaussian_filter(mode='reflect',
 * truncate=4). SL_ENOMEM. */
sl_status sld_blur3d(float *v, const int64_t n3[3], double sigma);

/* Elastic displacement field (3, D, H, W): noise U(-1, 1) per component,
 * blurred with sigma, scaled to RMS vector length alpha. */
sl_status sld_elastic_field3d(sl_rng *r, const int64_t n3[3], double alpha, double sigma, float *disp);

/* Intensity augmentations on an (n) image, each with its own draws. */
void sld_aug_noise(sl_rng *r, float *x, int64_t n, double sigma);
void sld_aug_contrast(float *x, int64_t n, double mult, double factor);
void sld_aug_gamma(float *x, int64_t n, double gamma, int invert);

/*
 * Copy-paste of components of class `cls` from a donor (dimg, dlab) into a
 * recipient (img, lab), all (h, w): picks up to `max_comp` components of
 * the donor (8-connected), places each at a random shift where it overlaps
 * the recipient's class-`cls` pixels least, blends the donor image into the
 * recipient with weight 1 on the component falling linearly to 0 over
 * `blend` pixels outside it, and writes `cls` into the label under the
 * component. Returns the number of pasted pixels in *pasted.
 */
sl_status sld_copy_paste(sl_rng *r, float *img, int32_t *lab, const float *dimg,
                         const int32_t *dlab, int64_t h, int64_t w, int cls, int max_comp,
                         double blend, int64_t *pasted);

#endif
