/*
 * The batch sampler: training batches with foreground oversampling and
 * augmentation, each batch a pure function of (dataset, options, step).
 *
 * Randomness. Slot b of batch t owns the key k = hash(seed, t, b); every
 * decision of the slot draws from its own RNG stream of k (sample choice,
 * copy-paste, spatial, and one per intensity transform), so turning one
 * augmentation on or off does not change the draws of the others, and no
 * slot depends on another: the slots run in parallel and the result does
 * not depend on the thread count.
 *
 * Foreground oversampling (nnU-Net's oversample_foreground_percent): the
 * last ceil(B * fg_fraction) slots take a sample that contains fg_class
 * and a window centred near one of its fg_class pixels; if the augmented
 * patch has lost the class, the spatial draw is repeated (10 times at
 * most), then a plain window on the pixel is used, which always holds it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

struct sl_sampler {
    const sl_dataset *ds;
    sl_split split;
    sl_sampler_opts o;
    int fg_class;
    int64_t n_forced;
    int64_t pd, ph, pw;   /* patch (pd = 1 in 2-D) */
    int64_t *fg_list;     /* samples of the split that contain fg_class */
    int64_t n_fg;
};

enum { ST_CHOICE = 0, ST_COPYPASTE, ST_SPATIAL, ST_NOISE, ST_BLUR, ST_CONTRAST, ST_GAMMA, ST_FGPIX };

sl_status sl_sampler_create(sl_sampler **out, const sl_dataset *ds, sl_split split,
                            const sl_sampler_opts *opts, char *msg, size_t msglen)
{
    if (out) *out = NULL;
    if (!out || !ds) return sl_errf(msg, msglen, SL_EINVAL, "sampler: NULL argument");
    sl_sampler_opts def = SL_SAMPLER_OPTS_DEFAULT;
    const sl_sampler_opts *o = opts ? opts : &def;
    if ((unsigned)split >= SL_NUM_SPLITS) return sl_errf(msg, msglen, SL_EINVAL, "sampler: unknown split %d", (int)split);
    if (o->batch_size < 1 || o->batch_size > (1 << 20))
        return sl_errf(msg, msglen, SL_EINVAL, "sampler: batch_size %lld outside [1, 2^20]", (long long)o->batch_size);
    if (o->patch[0] < 0 || o->patch[1] < 0 || (o->patch[0] == 0) != (o->patch[1] == 0) || o->patch[0] > (1 << 20) ||
        o->patch[1] > (1 << 20))
        return sl_errf(msg, msglen, SL_EINVAL, "sampler: patch %lldx%lld (both 0 or both in [1, 2^20])",
                       (long long)o->patch[0], (long long)o->patch[1]);
    if (!(o->fg_fraction >= 0 && o->fg_fraction <= 1))
        return sl_errf(msg, msglen, SL_EINVAL, "sampler: fg_fraction %g outside [0, 1]", o->fg_fraction);
    if (o->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "sampler: threads %d < 0", o->threads);
    sl_status st = sl_aug_check(&o->aug, msg, msglen);
    if (st != SL_OK) return st;
    if (ds->ndim == 3) {
        if (o->patch_depth < 0 || o->patch_depth > (1 << 20))
            return sl_errf(msg, msglen, SL_EINVAL, "sampler: patch depth %lld outside [0, 2^20]", (long long)o->patch_depth);
        if (o->aug.enabled & (SL_AUG_CROP | SL_AUG_COPYPASTE))
            return sl_errf(msg, msglen, SL_EUNSUPPORTED, "sampler: %s is 2-D only; drop it for a 3-D dataset",
                           (o->aug.enabled & SL_AUG_CROP) ? "crop" : "copypaste");
    }
    if (ds->n[split] == 0) return sl_errf(msg, msglen, SL_EEMPTY, "sampler: the %s split is empty", sl_split_name(split));
    int fg = o->fg_class < 0 ? ds->small_class : o->fg_class;
    if (o->fg_class >= ds->num_classes || o->fg_class == 0 || o->fg_class < -1)
        return sl_errf(msg, msglen, SL_ERANGE, "sampler: fg_class %d is not a foreground class of [1, %d)", o->fg_class,
                       ds->num_classes);
    sl_sampler *s = calloc(1, sizeof *s);
    if (!s) return sl_errf(msg, msglen, SL_ENOMEM, "sampler: out of memory");
    s->ds = ds;
    s->split = split;
    s->o = *o;
    s->fg_class = fg;
    s->ph = o->patch[0] ? o->patch[0] : ds->H;
    s->pw = o->patch[1] ? o->patch[1] : ds->W;
    s->pd = ds->ndim == 3 ? (o->patch_depth ? o->patch_depth : ds->D) : 1;
    s->n_forced = (int64_t)ceil((double)o->batch_size * o->fg_fraction - 1e-9);
    if (ds->ndim == 3) {
        /* forced slots take any volume with foreground; the class is drawn per slot */
        s->fg_list = sl_malloc(ds->n[split], sizeof *s->fg_list);
        if (!s->fg_list) {
            free(s);
            return sl_errf(msg, msglen, SL_ENOMEM, "sampler: out of memory");
        }
        for (int64_t i = 0; i < ds->n[split]; i++) {
            int64_t nfg = 0;
            for (int c = 1; c < ds->num_classes; c++) nfg += ds->counts[split][i * ds->num_classes + c];
            if (nfg > 0) s->fg_list[s->n_fg++] = i;
        }
    } else if (fg > 0) {
        s->fg_list = sl_malloc(ds->n[split], sizeof *s->fg_list);
        if (!s->fg_list) {
            free(s);
            return sl_errf(msg, msglen, SL_ENOMEM, "sampler: out of memory");
        }
        for (int64_t i = 0; i < ds->n[split]; i++)
            if (ds->counts[split][i * ds->num_classes + fg] > 0) s->fg_list[s->n_fg++] = i;
    }
    int need_fg = s->n_forced > 0 || (o->aug.enabled & SL_AUG_COPYPASTE);
    if (need_fg && s->n_fg == 0) {
        sl_sampler_free(s);
        return sl_errf(msg, msglen, SL_EEMPTY,
                       "sampler: no %s sample contains class %d, needed by fg_fraction > 0 or copypaste "
                       "(set fg_fraction=0 and drop copypaste)", sl_split_name(split), fg);
    }
    *out = s;
    return SL_OK;
}

void sl_sampler_free(sl_sampler *s)
{
    if (!s) return;
    free(s->fg_list);
    free(s);
}

sl_status sl_sampler_patch(const sl_sampler *s, int64_t *h, int64_t *w)
{
    if (!s || !h || !w) return SL_EINVAL;
    *h = s->ph;
    *w = s->pw;
    return SL_OK;
}

sl_status sl_sampler_patch3(const sl_sampler *s, int64_t patch[3])
{
    if (!s || !patch) return SL_EINVAL;
    patch[0] = s->pd;
    patch[1] = s->ph;
    patch[2] = s->pw;
    return SL_OK;
}

int sl_sampler_fg_class(const sl_sampler *s) { return s ? s->fg_class : -1; }

static inline double unif(sl_rng *r, double lo, double hi) { return lo + (hi - lo) * sl_rng_uniform(r); }

/* Window-centre coordinate along one axis: the window of f input pixels
 * lies inside [0, n) when it fits (offset drawn as an integer, so a plain
 * crop copies pixels exactly), else it is centred. With a target pixel t
 * (>= 0), the centre is t + jitter, clamped the same way. */
static double window_center(sl_rng *r, int64_t n, double f, double target, double jitter)
{
    double lo = (f - 1.0) / 2.0, hi = (double)n - 1.0 - (f - 1.0) / 2.0;
    if (hi < lo) return ((double)n - 1.0) / 2.0;
    if (target >= 0) {
        double c = target + unif(r, -jitter, jitter);
        return c < lo ? lo : (c > hi ? hi : c);
    }
    int64_t slack = (int64_t)floor(hi - lo);
    return lo + (double)sl_rng_below(r, (uint64_t)slack + 1);
}

typedef struct slot_buf {
    float *img, *dimg, *oimg, *disp;
    int32_t *lab, *dlab;
} slot_buf;

/* The intensity augmentations, after the spatial ones and in this order:
 * noise, blur, brightness/contrast, gamma; each draws from its own stream of
 * the slot's key. shape gives the patch's extents (ndim 2: {ph, pw}; 3:
 * {pd, ph, pw}) for the blur, the one step that depends on the dimension. */
static sl_status intensity_augs(const sl_aug_opts *a, uint64_t key, float *oimg, int ndim, const int64_t *shape,
                                sl_batch_meta *meta)
{
    const int64_t pn = ndim == 3 ? shape[0] * shape[1] * shape[2] : shape[0] * shape[1];
    sl_rng r;
    sl_status st;
    if (a->enabled & SL_AUG_NOISE) {
        sl_rng_seed_stream(&r, key, ST_NOISE);
        if (sl_rng_uniform(&r) < a->p_noise) {
            sld_aug_noise(&r, oimg, pn, unif(&r, 0.0, a->noise_std));
            meta->applied |= SL_AUG_NOISE;
        }
    }
    if (a->enabled & SL_AUG_BLUR) {
        sl_rng_seed_stream(&r, key, ST_BLUR);
        if (sl_rng_uniform(&r) < a->p_blur) {
            double sg = unif(&r, a->blur_lo, a->blur_hi);
            st = ndim == 3 ? sld_blur3d(oimg, shape, sg) : sl_blur2d(oimg, oimg, shape[0], shape[1], sg, sg);
            if (st != SL_OK) return st;
            meta->applied |= SL_AUG_BLUR;
        }
    }
    if (a->enabled & SL_AUG_CONTRAST) {
        sl_rng_seed_stream(&r, key, ST_CONTRAST);
        if (sl_rng_uniform(&r) < a->p_contrast) {
            double mult = unif(&r, 1.0 - a->brightness, 1.0 + a->brightness);
            double f = unif(&r, a->contrast_lo, a->contrast_hi);
            sld_aug_contrast(oimg, pn, mult, f);
            meta->applied |= SL_AUG_CONTRAST;
        }
    }
    if (a->enabled & SL_AUG_GAMMA) {
        sl_rng_seed_stream(&r, key, ST_GAMMA);
        if (sl_rng_uniform(&r) < a->p_gamma) {
            int inv = sl_rng_uniform(&r) < a->gamma_invert;
            double g;
            if (a->gamma_lo < 1.0 && a->gamma_hi > 1.0)
                g = sl_rng_uniform(&r) < 0.5 ? unif(&r, a->gamma_lo, 1.0) : unif(&r, 1.0, a->gamma_hi);
            else
                g = unif(&r, a->gamma_lo, a->gamma_hi);
            sld_aug_gamma(oimg, pn, g, inv);
            meta->applied |= SL_AUG_GAMMA;
        }
    }
    return SL_OK;
}

static sl_status run_slot(const sl_sampler *s, uint64_t key, int64_t b, float *oimg, int32_t *olab,
                          sl_batch_meta *meta, slot_buf *wb)
{
    const sl_dataset *ds = s->ds;
    const sl_aug_opts *a = &s->o.aug;
    const int64_t H = ds->H, W = ds->W, ph = s->ph, pw = s->pw, pn = ph * pw;
    const int forced = b >= s->o.batch_size - s->n_forced;
    const int fg = s->fg_class;
    sl_rng r;
    sl_status st;
    memset(meta, 0, sizeof *meta);
    meta->forced = forced;
    meta->donor = -1;

    /* 1. the sample */
    sl_rng_seed_stream(&r, key, ST_CHOICE);
    int64_t idx = forced ? s->fg_list[sl_rng_below(&r, (uint64_t)s->n_fg)]
                         : (int64_t)sl_rng_below(&r, (uint64_t)ds->n[s->split]);
    meta->index = idx;
    if ((st = sl_dataset_get(ds, s->split, idx, wb->img, wb->lab, NULL, 0)) != SL_OK) return st;

    /* 2. copy-paste from another sample that has the class */
    if ((a->enabled & SL_AUG_COPYPASTE) && fg > 0) {
        sl_rng_seed_stream(&r, key, ST_COPYPASTE);
        if (sl_rng_uniform(&r) < a->p_copypaste) {
            int64_t donor = s->fg_list[sl_rng_below(&r, (uint64_t)s->n_fg)];
            if (donor == idx && s->n_fg > 1) /* another one: shift by 1..n-1 in the list */
                for (int64_t k = 0; k < s->n_fg; k++)
                    if (s->fg_list[k] == idx) {
                        donor = s->fg_list[(k + 1 + (int64_t)sl_rng_below(&r, (uint64_t)s->n_fg - 1)) % s->n_fg];
                        break;
                    }
            if ((st = sl_dataset_get(ds, s->split, donor, wb->dimg, wb->dlab, NULL, 0)) != SL_OK) return st;
            int64_t pasted;
            st = sld_copy_paste(&r, wb->img, wb->lab, wb->dimg, wb->dlab, H, W, fg, a->copypaste_max,
                                a->copypaste_blend, &pasted);
            if (st != SL_OK) return st;
            meta->donor = donor;
            meta->applied |= SL_AUG_COPYPASTE;
        }
    }

    /* a fg pixel to centre forced windows on (after copy-paste) */
    int64_t fy = -1, fx = -1;
    if (forced) {
        int64_t nfg = 0;
        for (int64_t p = 0; p < H * W; p++) nfg += wb->lab[p] == fg;
        sl_rng_seed_stream(&r, key, ST_FGPIX);
        int64_t k = (int64_t)sl_rng_below(&r, (uint64_t)nfg);
        for (int64_t p = 0; p < H * W; p++)
            if (wb->lab[p] == fg && k-- == 0) {
                fy = p / W;
                fx = p % W;
                break;
            }
    }

    /* 3. one spatial resampling */
    sl_rng_seed_stream(&r, key, ST_SPATIAL);
    for (int attempt = 0;; attempt++) {
        int plain = attempt > 10; /* last resort for forced slots */
        sl_spatial2d sp = {{0, 0}, {(double)ph, (double)pw}, 0.0, 1.0, {0, 0}};
        unsigned applied = 0;
        int use_disp = 0;
        if ((a->enabled & SL_AUG_CROP) && sl_rng_uniform(&r) < a->p_crop && !plain) {
            double area = unif(&r, a->crop_area_lo, a->crop_area_hi);
            double asp = exp(unif(&r, log(a->crop_aspect_lo), log(a->crop_aspect_hi)));
            sp.extent[0] = (double)ph * sqrt(area / asp);
            sp.extent[1] = (double)pw * sqrt(area * asp);
            applied |= SL_AUG_CROP;
        }
        if ((a->enabled & SL_AUG_ROTATE) && sl_rng_uniform(&r) < a->p_rotate && !plain) {
            sp.angle_deg = unif(&r, -a->rotate_deg, a->rotate_deg);
            applied |= SL_AUG_ROTATE;
        }
        if ((a->enabled & SL_AUG_SCALE) && sl_rng_uniform(&r) < a->p_scale && !plain) {
            sp.scale = unif(&r, a->scale_lo, a->scale_hi);
            applied |= SL_AUG_SCALE;
        }
        if (a->enabled & SL_AUG_FLIP) {
            for (int ax = 0; ax < 2; ax++)
                if (sl_rng_uniform(&r) < a->p_flip) {
                    sp.flip[ax] = 1;
                    applied |= SL_AUG_FLIP;
                }
        }
        double alpha = 0.0;
        if ((a->enabled & SL_AUG_ELASTIC) && sl_rng_uniform(&r) < a->p_elastic && !plain) {
            alpha = unif(&r, a->elastic_alpha_lo, a->elastic_alpha_hi);
            use_disp = 1;
            applied |= SL_AUG_ELASTIC;
        }
        /* the window's footprint in the input (rotation ignored) */
        double fh = sp.extent[0] / sp.scale, fw = sp.extent[1] / sp.scale;
        if (!plain) {
            sp.center[0] = window_center(&r, H, fh, forced ? (double)fy : -1.0, fh / 4.0);
            sp.center[1] = window_center(&r, W, fw, forced ? (double)fx : -1.0, fw / 4.0);
        } else {
            /* a plain window (flips only) on the pixel, clamped inside the
             * image, at an integer offset: it holds the pixel */
            sp.center[0] = window_center(&r, H, fh, (double)fy, 0.0);
            sp.center[1] = window_center(&r, W, fw, (double)fx, 0.0);
            sp.center[0] = floor(sp.center[0] - (fh - 1) / 2 + 0.5) + (fh - 1) / 2;
            sp.center[1] = floor(sp.center[1] - (fw - 1) / 2 + 0.5) + (fw - 1) / 2;
        }
        if (use_disp && (st = sld_elastic_field(&r, ph, pw, alpha, a->elastic_sigma, wb->disp)) != SL_OK) return st;
        double m[2][3];
        if ((st = sl_spatial2d_matrix(&sp, ph, pw, m)) != SL_OK) return st;
        sl_warp2d(wb->img, wb->lab, H, W, (const double(*)[3])m, use_disp ? wb->disp : NULL, ph, pw,
                  a->image_interp, oimg, olab);
        int64_t nfg = 0;
        if (fg > 0)
            for (int64_t p = 0; p < pn; p++) nfg += olab[p] == fg;
        meta->fg_pixels = nfg;
        if (!forced || nfg > 0 || plain) {
            meta->applied |= applied;
            break;
        }
    }

    /* 4. intensities */
    const int64_t shape2[2] = {ph, pw};
    return intensity_augs(a, key, oimg, 2, shape2, meta);
}

/* ------------------------------------------------------------ 3-D slots */

/* cos and sin of degrees, exact at multiples of 90 (a 90-degree rotation
 * permutes voxels). */
static void cos_sin_deg3(double deg, double *c, double *s)
{
    double q = deg / 90.0;
    if (q == floor(q) && fabs(q) < 1e15) {
        long long k = ((long long)q % 4 + 4) % 4;
        static const double cs[4][2] = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
        *c = cs[k][0];
        *s = cs[k][1];
        return;
    }
    *c = cos(deg * (3.14159265358979323846 / 180.0));
    *s = sin(deg * (3.14159265358979323846 / 180.0));
}

/* a = a * (rotation by deg in the plane of axes (i, j)) */
static void rotate_plane(double a[3][3], int i, int j, double deg)
{
    double c, s;
    cos_sin_deg3(deg, &c, &s);
    for (int r = 0; r < 3; r++) {
        const double ai = a[r][i], aj = a[r][j];
        a[r][i] = c * ai + s * aj;
        a[r][j] = -s * ai + c * aj;
    }
}

/* One slot of a 3-D batch: see sl_sampler_batch's 3-D note in data.h. */
static sl_status run_slot3d(const sl_sampler *s, uint64_t key, int64_t b, float *oimg, int32_t *olab,
                            sl_batch_meta *meta, slot_buf *wb)
{
    const sl_dataset *ds = s->ds;
    const sl_aug_opts *a = &s->o.aug;
    const int64_t in[3] = {ds->D, ds->H, ds->W}, p[3] = {s->pd, s->ph, s->pw}, pn = p[0] * p[1] * p[2];
    const int forced = b >= s->o.batch_size - s->n_forced;
    const int C = ds->num_classes;
    sl_rng r;
    sl_status st;
    memset(meta, 0, sizeof *meta);
    meta->forced = forced;
    meta->donor = -1;

    /* 1. the volume */
    sl_rng_seed_stream(&r, key, ST_CHOICE);
    const int64_t idx = forced ? s->fg_list[sl_rng_below(&r, (uint64_t)s->n_fg)]
                               : (int64_t)sl_rng_below(&r, (uint64_t)ds->n[s->split]);
    meta->index = idx;
    if ((st = sl_dataset_get(ds, s->split, idx, wb->img, wb->lab, NULL, 0)) != SL_OK) return st;

    /* 2. forced: a random foreground class present in the volume, a random voxel of it */
    double target[3] = {-1.0, -1.0, -1.0};
    int cls = s->fg_class;
    if (forced) {
        const int64_t *cnt = ds->counts[s->split] + idx * C;
        int npresent = 0;
        for (int c = 1; c < C; c++) npresent += cnt[c] > 0;
        sl_rng_seed_stream(&r, key, ST_FGPIX);
        int k = (int)sl_rng_below(&r, (uint64_t)npresent);
        for (int c = 1; c < C; c++)
            if (cnt[c] > 0 && k-- == 0) cls = c;
        int64_t v = (int64_t)sl_rng_below(&r, (uint64_t)cnt[cls]);
        for (int64_t i = 0; i < in[0] * in[1] * in[2]; i++)
            if (wb->lab[i] == cls && v-- == 0) {
                target[0] = (double)(i / (in[1] * in[2]));
                target[1] = (double)(i / in[2] % in[1]);
                target[2] = (double)(i % in[2]);
                break;
            }
    }

    /* 3. one spatial resampling: input = centre + A (u - (p - 1) / 2) */
    sl_rng_seed_stream(&r, key, ST_SPATIAL);
    for (int attempt = 0;; attempt++) {
        const int plain = attempt > 10; /* last resort for forced slots: a window on the voxel */
        double A[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
        double scale = 1.0, alpha = 0.0;
        unsigned applied = 0;
        if ((a->enabled & SL_AUG_ROTATE) && sl_rng_uniform(&r) < a->p_rotate && !plain) {
            /* a 90-degree multiple in a plane whose patch sides are equal, then small angles */
            int planes[3][2], np = 0;
            for (int i = 0; i < 3; i++)
                for (int j = i + 1; j < 3; j++)
                    if (p[i] == p[j]) planes[np][0] = i, planes[np][1] = j, np++;
            if (np > 0) {
                const int q = (int)sl_rng_below(&r, (uint64_t)np);
                rotate_plane(A, planes[q][0], planes[q][1], 90.0 * (double)sl_rng_below(&r, 4));
            }
            rotate_plane(A, 1, 2, (2.0 * sl_rng_uniform(&r) - 1.0) * a->rotate_deg);
            rotate_plane(A, 0, 2, (2.0 * sl_rng_uniform(&r) - 1.0) * a->rotate_deg);
            rotate_plane(A, 0, 1, (2.0 * sl_rng_uniform(&r) - 1.0) * a->rotate_deg);
            applied |= SL_AUG_ROTATE;
        }
        if ((a->enabled & SL_AUG_SCALE) && sl_rng_uniform(&r) < a->p_scale && !plain) {
            scale = unif(&r, a->scale_lo, a->scale_hi);
            applied |= SL_AUG_SCALE;
        }
        if (a->enabled & SL_AUG_FLIP)
            for (int ax = 0; ax < 3; ax++)
                if (sl_rng_uniform(&r) < a->p_flip && !plain) {
                    for (int i = 0; i < 3; i++) A[i][ax] = -A[i][ax];
                    applied |= SL_AUG_FLIP;
                }
        if ((a->enabled & SL_AUG_ELASTIC) && sl_rng_uniform(&r) < a->p_elastic && !plain) {
            alpha = unif(&r, a->elastic_alpha_lo, a->elastic_alpha_hi);
            applied |= SL_AUG_ELASTIC;
        }
        double m[3][4], centre[3];
        for (int ax = 0; ax < 3; ax++) {
            const double f = (double)p[ax] / scale; /* footprint (rotation ignored) */
            centre[ax] = window_center(&r, in[ax], f, forced ? target[ax] : -1.0, plain ? 0.0 : f / 4.0);
            /* unzoomed windows start at whole voxels: no augmentation = an exact crop */
            if (plain || scale == 1.0) centre[ax] = floor(centre[ax] - (f - 1) / 2 + 0.5) + (f - 1) / 2;
        }
        for (int i = 0; i < 3; i++) {
            m[i][3] = centre[i];
            for (int j = 0; j < 3; j++) {
                m[i][j] = A[i][j] / scale;
                m[i][3] -= m[i][j] * (double)(p[j] - 1) / 2.0;
            }
        }
        if (alpha > 0 && (st = sld_elastic_field3d(&r, p, alpha, a->elastic_sigma, wb->disp)) != SL_OK) return st;
        sld_warp3d(wb->img, wb->lab, in, (const double(*)[4])m, alpha > 0 ? wb->disp : NULL, p, a->image_interp, oimg,
                   olab);
        int64_t nfg = 0;
        if (cls > 0)
            for (int64_t i = 0; i < pn; i++) nfg += olab[i] == cls;
        meta->fg_pixels = nfg;
        if (!forced || nfg > 0 || plain) {
            meta->applied |= applied;
            break;
        }
    }

    /* 4. intensities */
    return intensity_augs(a, key, oimg, 3, p, meta);
}

sl_status sl_sampler_batch(const sl_sampler *s, int64_t step, float *images, int32_t *labels,
                           sl_batch_meta *meta, char *msg, size_t msglen)
{
    if (!s || !images || !labels) return sl_errf(msg, msglen, SL_EINVAL, "sampler: NULL argument");
    if (step < 0) return sl_errf(msg, msglen, SL_EINVAL, "sampler: step %lld < 0", (long long)step);
    const int64_t B = s->o.batch_size, pn = s->pd * s->ph * s->pw, HW = s->ds->D * s->ds->H * s->ds->W;
    sl_batch_meta *m = meta ? meta : calloc((size_t)B, sizeof *m);
    sl_status *sts = calloc((size_t)B, sizeof *sts);
    if (!m || !sts) {
        if (m != meta) free(m);
        free(sts);
        return sl_errf(msg, msglen, SL_ENOMEM, "sampler: out of memory");
    }
    uint64_t base = s->o.seed ^ 0x73616d706c657221ULL; /* "sampler!" */
    base = sl_splitmix64(&base);
#pragma omp parallel num_threads(sl_threads(s->o.threads))
    {
        slot_buf wb;
        wb.img = sl_malloc(HW, sizeof(float));
        wb.dimg = sl_malloc(HW, sizeof(float));
        wb.lab = sl_malloc(HW, sizeof(int32_t));
        wb.dlab = sl_malloc(HW, sizeof(int32_t));
        wb.disp = sl_malloc(3 * pn, sizeof(float));
        int ok = wb.img && wb.dimg && wb.lab && wb.dlab && wb.disp;
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < B; b++) {
            if (!ok) {
                sts[b] = SL_ENOMEM;
                continue;
            }
            /* slot key: a hash of (seed, step, slot), nothing else */
            uint64_t k = base ^ ((uint64_t)step * 0x9e3779b97f4a7c15ULL);
            k = sl_splitmix64(&k) ^ (uint64_t)b;
            k = sl_splitmix64(&k);
            sts[b] = s->ds->ndim == 3 ? run_slot3d(s, k, b, images + b * pn, labels + b * pn, &m[b], &wb)
                                      : run_slot(s, k, b, images + b * pn, labels + b * pn, &m[b], &wb);
        }
        free(wb.img);
        free(wb.dimg);
        free(wb.lab);
        free(wb.dlab);
        free(wb.disp);
    }
    sl_status st = SL_OK;
    for (int64_t b = 0; b < B && st == SL_OK; b++) st = sts[b];
    if (m != meta) free(m);
    free(sts);
    if (st != SL_OK) return sl_errf(msg, msglen, st, "sampler: %s while making batch %lld", sl_strerror(st), (long long)step);
    return SL_OK;
}
