/*
 * Augmentation options (names, parsing, checks) and the kernels the sampler
 * applies to one sample: intensity transforms, the elastic displacement
 * field, and copy-paste of small-class objects.
 *
 * The intensity transforms follow batchgenerators / nnU-Net:
 *   noise     x += sigma * N(0, 1),  sigma ~ U(0, noise_std)
 *   blur      Gaussian, sigma ~ U(blur_lo, blur_hi) pixels
 *   contrast  x *= m, m ~ U(1 - brightness, 1 + brightness), then
 *             x = (x - mean) * f + mean, f ~ U(contrast_lo, contrast_hi),
 *             clipped to the range x had before the contrast step
 *             (ContrastAugmentationTransform with preserve_range)
 *   gamma     x = min + range * ((x - min) / range)^g, then mean and std
 *             restored (GammaTransform with retain_stats); g from
 *             U(gamma_lo, 1) or U(1, gamma_hi) with equal odds; with
 *             probability gamma_invert on -x (invert_image)
 * Copy-paste follows Ghiasi et al., "Simple copy-paste is a strong data
 * augmentation method for instance segmentation" (CVPR 2021), for one
 * small class, with a feathered border instead of a hard cut.
 */
#define _POSIX_C_SOURCE 200809L /* strdup, strtok_r */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"
#include "segloss/geometry.h"

static const char *const aug_names[] = {"flip", "rotate", "scale", "crop", "gamma",
                                        "contrast", "noise", "blur", "elastic", "copypaste"};
#define NAUG 10

const char *sl_aug_name(unsigned bit)
{
    for (int i = 0; i < NAUG; i++)
        if (bit == (1u << i)) return aug_names[i];
    return NULL;
}

/* parameter table: name, offset, range (inclusive), integer */
typedef struct aug_field {
    const char *name;
    size_t offset;
    double lo, hi;
    int is_int;
} aug_field;

#define A(name, lo, hi) {#name, offsetof(sl_aug_opts, name), lo, hi, 0}
static const aug_field afields[] = {
    A(p_flip, 0, 1),
    A(p_rotate, 0, 1), A(rotate_deg, 0, 180),
    A(p_scale, 0, 1), A(scale_lo, 0.05, 20), A(scale_hi, 0.05, 20),
    A(p_crop, 0, 1), A(crop_area_lo, 0.01, 4), A(crop_area_hi, 0.01, 4),
    A(crop_aspect_lo, 0.1, 10), A(crop_aspect_hi, 0.1, 10),
    A(p_gamma, 0, 1), A(gamma_lo, 0.05, 20), A(gamma_hi, 0.05, 20), A(gamma_invert, 0, 1),
    A(p_contrast, 0, 1), A(brightness, 0, 0.99), A(contrast_lo, 0, 20), A(contrast_hi, 0, 20),
    A(p_noise, 0, 1), A(noise_std, 0, 100),
    A(p_blur, 0, 1), A(blur_lo, 0, 20), A(blur_hi, 0, 20),
    A(p_elastic, 0, 1), A(elastic_alpha_lo, 0, 1000), A(elastic_alpha_hi, 0, 1000), A(elastic_sigma, 0.5, 100),
    A(p_copypaste, 0, 1),
    {"copypaste_max", offsetof(sl_aug_opts, copypaste_max), 1, 64, 1},
    A(copypaste_blend, 0, 64),
};
#undef A
#define NAFIELDS (sizeof afields / sizeof afields[0])

static double field_get(const sl_aug_opts *o, const aug_field *f)
{
    const char *p = (const char *)o + f->offset;
    return f->is_int ? (double)*(const int *)(const void *)p : *(const double *)(const void *)p;
}

sl_status sl_aug_check(const sl_aug_opts *o, char *msg, size_t msglen)
{
    if (!o) return sl_errf(msg, msglen, SL_EINVAL, "augmentation: NULL options");
    if (o->enabled & ~SL_AUG_ALL)
        return sl_errf(msg, msglen, SL_EINVAL, "augmentation: unknown bits 0x%x in enabled", o->enabled & ~SL_AUG_ALL);
    for (size_t i = 0; i < NAFIELDS; i++) {
        double v = field_get(o, &afields[i]);
        if (!(v >= afields[i].lo && v <= afields[i].hi))
            return sl_errf(msg, msglen, SL_ERANGE, "augmentation %s = %g is outside [%g, %g]", afields[i].name, v,
                           afields[i].lo, afields[i].hi);
    }
    static const struct {
        const char *lo, *hi;
        size_t olo, ohi;
    } pairs[] = {
        {"scale_lo", "scale_hi", offsetof(sl_aug_opts, scale_lo), offsetof(sl_aug_opts, scale_hi)},
        {"crop_area_lo", "crop_area_hi", offsetof(sl_aug_opts, crop_area_lo), offsetof(sl_aug_opts, crop_area_hi)},
        {"crop_aspect_lo", "crop_aspect_hi", offsetof(sl_aug_opts, crop_aspect_lo), offsetof(sl_aug_opts, crop_aspect_hi)},
        {"gamma_lo", "gamma_hi", offsetof(sl_aug_opts, gamma_lo), offsetof(sl_aug_opts, gamma_hi)},
        {"contrast_lo", "contrast_hi", offsetof(sl_aug_opts, contrast_lo), offsetof(sl_aug_opts, contrast_hi)},
        {"blur_lo", "blur_hi", offsetof(sl_aug_opts, blur_lo), offsetof(sl_aug_opts, blur_hi)},
        {"elastic_alpha_lo", "elastic_alpha_hi", offsetof(sl_aug_opts, elastic_alpha_lo), offsetof(sl_aug_opts, elastic_alpha_hi)},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        double lo = *(const double *)(const void *)((const char *)o + pairs[i].olo);
        double hi = *(const double *)(const void *)((const char *)o + pairs[i].ohi);
        if (lo > hi)
            return sl_errf(msg, msglen, SL_ERANGE, "augmentation %s (%g) is larger than %s (%g)", pairs[i].lo, lo,
                           pairs[i].hi, hi);
    }
    if (o->image_interp != SL_INTERP_LINEAR && o->image_interp != SL_INTERP_NEAREST)
        return sl_errf(msg, msglen, SL_EINVAL, "augmentation image_interp %d is not linear or nearest", (int)o->image_interp);
    return SL_OK;
}

sl_status sl_aug_opts_set(sl_aug_opts *o, const char *key, const char *value, char *msg, size_t msglen)
{
    if (!o || !key || !value) return sl_errf(msg, msglen, SL_EINVAL, "augmentation: NULL argument");
    if (strcmp(key, "image_interp") == 0) {
        if (strcmp(value, "linear") == 0) o->image_interp = SL_INTERP_LINEAR;
        else if (strcmp(value, "nearest") == 0) o->image_interp = SL_INTERP_NEAREST;
        else return sl_errf(msg, msglen, SL_EFORMAT, "augmentation image_interp: '%s' is not linear or nearest", value);
        return SL_OK;
    }
    for (size_t i = 0; i < NAFIELDS; i++) {
        const aug_field *f = &afields[i];
        if (strcmp(f->name, key) != 0) continue;
        char *p = (char *)o + f->offset;
        if (f->is_int) {
            int64_t v;
            if (!sld_parse_i64(value, &v))
                return sl_errf(msg, msglen, SL_EFORMAT, "augmentation %s: '%s' is not an integer", key, value);
            if ((double)v < f->lo || (double)v > f->hi)
                return sl_errf(msg, msglen, SL_ERANGE, "augmentation %s = %s is outside [%g, %g]", key, value, f->lo, f->hi);
            *(int *)(void *)p = (int)v;
        } else {
            double v;
            if (!sld_parse_double(value, &v))
                return sl_errf(msg, msglen, SL_EFORMAT, "augmentation %s: '%s' is not a number", key, value);
            if (v < f->lo || v > f->hi)
                return sl_errf(msg, msglen, SL_ERANGE, "augmentation %s = %s is outside [%g, %g]", key, value, f->lo, f->hi);
            *(double *)(void *)p = v;
        }
        return SL_OK;
    }
    return sl_errf(msg, msglen, SL_EUNKNOWN, "augmentation parameter '%s' is unknown", key);
}

sl_status sl_aug_parse(sl_aug_opts *o, const char *list, char *msg, size_t msglen)
{
    if (!o || !list) return sl_errf(msg, msglen, SL_EINVAL, "augmentation: NULL argument");
    char *copy = strdup(list);
    if (!copy) return sl_errf(msg, msglen, SL_ENOMEM, "augmentation: out of memory");
    sl_status st = SL_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item && st == SL_OK; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ') item++;
        char *eq = strchr(item, '=');
        if (eq) {
            *eq = '\0';
            st = sl_aug_opts_set(o, item, eq + 1, msg, msglen);
            continue;
        }
        int neg = item[0] == '-';
        const char *name = item + neg;
        if (!neg && strcmp(name, "none") == 0) {
            o->enabled = 0;
            continue;
        }
        if (!neg && strcmp(name, "all") == 0) {
            o->enabled = SL_AUG_ALL;
            continue;
        }
        if (!neg && strcmp(name, "default") == 0) {
            o->enabled |= SL_AUG_DEFAULT_SET;
            continue;
        }
        int k = -1;
        for (int i = 0; i < NAUG; i++)
            if (strcmp(name, aug_names[i]) == 0) k = i;
        if (k < 0) {
            st = sl_errf(msg, msglen, SL_EUNKNOWN,
                         "augmentation '%s' is unknown (flip, rotate, scale, crop, gamma, contrast, noise, blur, "
                         "elastic, copypaste, none, all, default, or key=value)", name);
            break;
        }
        if (neg) o->enabled &= ~(1u << k);
        else o->enabled |= 1u << k;
    }
    free(copy);
    return st;
}

/* ------------------------------------------------------------ kernels */

sl_status sld_elastic_field(sl_rng *r, int64_t oh, int64_t ow, double alpha, double sigma,
                            float *disp)
{
    int64_t n = oh * ow;
    for (int64_t i = 0; i < 2 * n; i++) disp[i] = (float)(2.0 * sl_rng_uniform(r) - 1.0);
    sl_status st = sl_blur2d(disp, disp, oh, ow, sigma, sigma);
    if (st == SL_OK) st = sl_blur2d(disp + n, disp + n, oh, ow, sigma, sigma);
    if (st != SL_OK) return st;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)disp[i] * disp[i] + (double)disp[n + i] * disp[n + i];
    double rms = sqrt(ss / (double)n);
    double k = rms > 0 ? alpha / rms : 0.0;
    for (int64_t i = 0; i < 2 * n; i++) disp[i] = (float)(disp[i] * k);
    return SL_OK;
}

void sld_aug_noise(sl_rng *r, float *x, int64_t n, double sigma)
{
    for (int64_t i = 0; i < n; i++) x[i] += (float)(sigma * sl_rng_normal(r));
}

void sld_aug_contrast(float *x, int64_t n, double mult, double factor)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(x[i] * mult);
    double mean, sd, lo = INFINITY, hi = -INFINITY;
    sld_mean_std(x, n, &mean, &sd);
    for (int64_t i = 0; i < n; i++) {
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    for (int64_t i = 0; i < n; i++) {
        double v = ((double)x[i] - mean) * factor + mean;
        x[i] = (float)fmin(fmax(v, lo), hi);
    }
}

void sld_aug_gamma(float *x, int64_t n, double gamma, int invert)
{
    if (invert)
        for (int64_t i = 0; i < n; i++) x[i] = -x[i];
    double mean, sd, lo = INFINITY, hi = -INFINITY;
    sld_mean_std(x, n, &mean, &sd);
    for (int64_t i = 0; i < n; i++) {
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    double range = hi - lo;
    if (range > 0) {
        for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + range * pow(((double)x[i] - lo) / range, gamma));
        double m2, s2;
        sld_mean_std(x, n, &m2, &s2);
        /* retain_stats: back to the mean and std before the power */
        double k = s2 > 0 ? sd / s2 : 1.0;
        for (int64_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - m2) * k + mean);
    }
    if (invert)
        for (int64_t i = 0; i < n; i++) x[i] = -x[i];
}

sl_status sld_copy_paste(sl_rng *r, float *img, int32_t *lab, const float *dimg,
                         const int32_t *dlab, int64_t h, int64_t w, int cls, int max_comp,
                         double blend, int64_t *pasted)
{
    *pasted = 0;
    const int64_t n = h * w;
    sl_grid g = SL_GRID_DEFAULT;
    g.ndim = 2;
    g.shape[0] = h;
    g.shape[1] = w;
    uint8_t *mask = sl_malloc(n, 1);
    int32_t *cl = sl_malloc(n, sizeof *cl);
    sl_components comps = SL_COMPONENTS_EMPTY;
    uint8_t *pm = NULL;
    float *dist = NULL;
    int64_t *ids = NULL;
    sl_status st = SL_OK;
    if (!mask || !cl) {
        st = SL_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) mask[i] = dlab[i] == cls;
    if ((st = sl_components_label(mask, &g, 8, cl, &comps, NULL, 0)) != SL_OK) goto done;
    if (comps.count == 0) goto done;
    int k = 1 + (int)sl_rng_below(r, (uint64_t)max_comp);
    if (k > comps.count) k = (int)comps.count;
    /* patch margin: the blend width, and at least 2 pixels of context */
    const int64_t m = blend > 2 ? (int64_t)ceil(blend) : 2;
    /* k distinct components: a partial Fisher-Yates shuffle of the ids */
    ids = sl_malloc(comps.count, sizeof *ids);
    if (!ids) {
        st = SL_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < comps.count; i++) ids[i] = i;
    for (int j = 0; j < k; j++) {
        int64_t pick = j + (int64_t)sl_rng_below(r, (uint64_t)(comps.count - j));
        int64_t cid = ids[pick];
        ids[pick] = ids[j];
        ids[j] = cid;
        const int64_t *bb = comps.bbox + cid * 2 * SL_MAX_SPATIAL;
        /* patch = component bbox grown by the blend width, clipped */
        int64_t y0 = bb[0] - m, y1 = bb[SL_MAX_SPATIAL] + m, x0 = bb[1] - m, x1 = bb[SL_MAX_SPATIAL + 1] + m;
        if (y0 < 0) y0 = 0;
        if (x0 < 0) x0 = 0;
        if (y1 > h) y1 = h;
        if (x1 > w) x1 = w;
        int64_t ph = y1 - y0, pw = x1 - x0, pn = ph * pw;
        free(pm);
        free(dist);
        pm = sl_malloc(pn, 1);
        dist = sl_malloc(pn, sizeof *dist);
        if (!pm || !dist) {
            st = SL_ENOMEM;
            goto done;
        }
        /* alpha = 1 on the component and 1 - d / blend outside it, d the
         * distance to the component: a linear feather of `blend` pixels */
        for (int64_t y = 0; y < ph; y++)
            for (int64_t x = 0; x < pw; x++) pm[y * pw + x] = cl[(y0 + y) * w + x0 + x] != cid + 1;
        sl_grid pg = SL_GRID_DEFAULT;
        pg.ndim = 2;
        pg.shape[0] = ph;
        pg.shape[1] = pw;
        sl_edt_opts eo = {SL_EDT_PLAIN, 1};
        if ((st = sl_edt(pm, SL_DT_U8, &pg, &eo, dist, SL_DT_F32, NULL, 0)) != SL_OK) goto done;
        /* placement: of 16 random shifts keeping the patch inside, the
         * one with the lowest score = 4 x (component pixels landing on
         * class cls, or on recipient pixels that are exactly 0 where the
         * donor's are not) + (context pixels around the component whose
         * recipient label differs from the donor's). The context term puts
         * a core that sat inside a large region back inside one; the zero
         * term keeps objects off masked-out background and padding (colin
         * and norm_nonzero data are exactly 0 outside the body). */
        int64_t best_dy = 0, best_dx = 0, best_sc = -1;
        for (int t = 0; t < 16; t++) {
            int64_t ty = (int64_t)sl_rng_below(r, (uint64_t)(h - ph + 1)) - y0;
            int64_t tx = (int64_t)sl_rng_below(r, (uint64_t)(w - pw + 1)) - x0;
            int64_t sc = 0;
            for (int64_t y = 0; y < ph; y++)
                for (int64_t x = 0; x < pw; x++) {
                    int64_t di = (y0 + y + ty) * w + x0 + x + tx, si = (y0 + y) * w + x0 + x;
                    int32_t rl = lab[di];
                    if (!pm[y * pw + x]) sc += 4 * ((rl == cls) + (img[di] == 0.0f && dimg[si] != 0.0f));
                    else sc += rl != dlab[si];
                }
            if (best_sc < 0 || sc < best_sc) {
                best_sc = sc;
                best_dy = ty;
                best_dx = tx;
            }
        }
        for (int64_t y = 0; y < ph; y++)
            for (int64_t x = 0; x < pw; x++) {
                int64_t s = (y0 + y) * w + x0 + x, d = (y0 + y + best_dy) * w + x0 + x + best_dx;
                double a;
                if (!pm[y * pw + x]) a = 1.0;
                else if (blend > 0) a = fmax(0.0, 1.0 - dist[y * pw + x] / blend);
                else a = 0.0;
                if (a <= 0) continue;
                img[d] = (float)(a * dimg[s] + (1.0 - a) * img[d]);
                if (!pm[y * pw + x]) {
                    if (lab[d] != cls) (*pasted)++;
                    lab[d] = cls;
                }
            }
    }
done:
    free(mask);
    free(cl);
    free(pm);
    free(dist);
    free(ids);
    sl_components_free(&comps);
    return st;
}
