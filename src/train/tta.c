/*
 * Test-time augmentation beyond mirroring: the dihedral group of the plane
 * (--tta rot) and seeded random draws from the training augmentation family
 * (--tta aug:N). flip and none stay in predict.c, untouched.
 *
 * Every geometric element g is "mirror W, then rotate the (H, W) plane by
 * k quarter turns counterclockwise" (numpy: rot90(flip(x, W), k) over the
 * (H, W) axes), and for 3-D models optionally "mirror D" too. The whole
 * normalised slice (2-D) or volume (3-D) is transformed, predicted as
 * without TTA (a rotated slice of (h, w) becomes (w, h) and gets predict's
 * own padding; a rotated volume is cut into windows of the training patch
 * as it is), and the softmax is mapped back through g^-1 before averaging.
 * So a non-square slice or in-plane patch needs nothing special: the net is
 * fully convolutional and sees the rotated content whole.
 *
 * rot: 2-D 8 elements (k = 0..3, mirror W or not): the dihedral group D4.
 * 3-D 16 elements: D4 in-plane times mirror D or not. This holds the 8
 * mirrorings of --tta flip (mirror H = rot 2 of mirror W; mirror H and W =
 * rot 2) and no element twice; 4 rotations x 8 mirrorings would repeat each
 * element twice.
 *
 * aug:N: draw j (0..N-1) takes k ~ U{0..3}, mirror W ~ Bernoulli(1/2), and
 * for 3-D models mirror D ~ Bernoulli(1/2), from stream j of the seed; then
 * on each slice (2-D) or the volume (3-D), from its own stream, the
 * training's intensity transforms with SL_AUG_OPTS_DEFAULT's probabilities
 * and ranges, in the sampler's order: noise (p 0.1, sigma ~ U(0, 0.1)),
 * brightness/contrast (p 0.15, m ~ U(0.75, 1.25), f ~ U(0.75, 1.25)),
 * gamma (p 0.3, g ~ U(0.7, 1) or U(1, 1.5), inverted with p 0.1).
 * Intensity changes need no inverse on the output.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/data_internal.h"
#include "segloss/rng.h"
#include "train_internal.h"

#define TTA_MAX_N 256

sl_status sl_tta_parse(const char *s, sl_tta *tta, int *n)
{
    if (!s || !tta || !n) return SL_EINVAL;
    if (!strcmp(s, "none")) *tta = SL_TTA_NONE, *n = 0;
    else if (!strcmp(s, "flip")) *tta = SL_TTA_FLIP, *n = 0;
    else if (!strcmp(s, "rot")) *tta = SL_TTA_ROT, *n = 0;
    else if (!strncmp(s, "aug:", 4)) {
        char *end;
        long v = strtol(s + 4, &end, 10);
        if (s[4] < '0' || s[4] > '9' || *end || v < 1 || v > TTA_MAX_N) return SL_ERANGE;
        *tta = SL_TTA_AUG, *n = (int)v;
    } else return SL_EUNKNOWN;
    return SL_OK;
}

const char *sl_tta_name(sl_tta tta, int n, char *buf, size_t len)
{
    if (!buf || len == 0) return NULL;
    switch (tta) {
    case SL_TTA_NONE: snprintf(buf, len, "none"); break;
    case SL_TTA_FLIP: snprintf(buf, len, "flip"); break;
    case SL_TTA_ROT: snprintf(buf, len, "rot"); break;
    case SL_TTA_AUG: snprintf(buf, len, "aug:%d", n); break;
    default: return NULL;
    }
    return buf;
}

sl_status slt_tta_check(const sl_predict_opts *o, char *msg, size_t msglen)
{
    if ((unsigned)o->tta > SL_TTA_AUG) return sl_errf(msg, msglen, SL_EINVAL, "predict: unknown tta %d", (int)o->tta);
    if (o->tta == SL_TTA_AUG && (o->tta_n < 1 || o->tta_n > TTA_MAX_N))
        return sl_errf(msg, msglen, SL_EINVAL, "predict: tta aug:%d needs 1 to %d draws", o->tta_n, TTA_MAX_N);
    return SL_OK;
}

/* One geometric element. */
typedef struct tta_elem {
    int rot, flip_w, flip_d;
} tta_elem;

/* The elements of o's set into e (room for 16 or tta_n); their count. */
static int tta_plan(const sl_predict_opts *o, int three_d, tta_elem *e)
{
    if (o->tta == SL_TTA_ROT) {
        int m = 0;
        for (int fd = 0; fd <= three_d; fd++)
            for (int fw = 0; fw < 2; fw++)
                for (int k = 0; k < 4; k++) e[m++] = (tta_elem){k, fw, fd};
        return m;
    }
    for (int j = 0; j < o->tta_n; j++) {
        sl_rng r;
        sl_rng_seed_stream(&r, o->tta_seed, (uint64_t)j);
        e[j].rot = (int)sl_rng_below(&r, 4);
        e[j].flip_w = (int)sl_rng_below(&r, 2);
        e[j].flip_d = three_d ? (int)sl_rng_below(&r, 2) : 0;
    }
    return o->tta_n;
}

/* The source index in x (d, h, w) of position (z, i, j) of g(x), which is
 * (d, h', w') with (h', w') = (w, h) for odd rotations. */
static inline int64_t src_index(const tta_elem *g, int64_t d, int64_t h, int64_t w, int64_t z, int64_t i, int64_t j)
{
    int64_t y, x;
    switch (g->rot) {
    case 0: y = i, x = j; break;
    case 1: y = j, x = w - 1 - i; break;
    case 2: y = h - 1 - i, x = w - 1 - j; break;
    default: y = h - 1 - j, x = i; break;
    }
    if (g->flip_w) x = w - 1 - x;
    if (g->flip_d) z = d - 1 - z;
    return (z * h + y) * w + x;
}

/* dst (c, g(d, h, w)) = g(src (c, d, h, w)) */
static void tta_forward(const tta_elem *g, const float *src, float *dst, int64_t c, int64_t d, int64_t h, int64_t w)
{
    const int64_t H2 = g->rot & 1 ? w : h, W2 = g->rot & 1 ? h : w, n = d * h * w;
    for (int64_t k = 0; k < c; k++)
        for (int64_t z = 0; z < d; z++)
            for (int64_t i = 0; i < H2; i++)
                for (int64_t j = 0; j < W2; j++)
                    dst[k * n + (z * H2 + i) * W2 + j] = src[k * n + src_index(g, d, h, w, z, i, j)];
}

/* acc (c, d, h, w) += wt * g^-1(p), p (c, g(d, h, w)) */
static void tta_back_add(const tta_elem *g, const float *p, float *acc, int64_t c, int64_t d, int64_t h, int64_t w, float wt)
{
    const int64_t H2 = g->rot & 1 ? w : h, W2 = g->rot & 1 ? h : w, n = d * h * w;
    for (int64_t k = 0; k < c; k++)
        for (int64_t z = 0; z < d; z++)
            for (int64_t i = 0; i < H2; i++)
                for (int64_t j = 0; j < W2; j++)
                    acc[k * n + src_index(g, d, h, w, z, i, j)] += wt * p[k * n + (z * H2 + i) * W2 + j];
}

/* The intensity part of draw j on block `block` (a slice or the volume)
 * of n values, in the sampler's order. */
static void tta_intensity(const sl_predict_opts *o, int j, int64_t block, float *x, int64_t n)
{
    const sl_aug_opts a = SL_AUG_OPTS_DEFAULT;
    sl_rng r;
    sl_rng_seed_stream(&r, o->tta_seed ^ 0x6a09e667f3bcc909ull, ((uint64_t)j << 40) ^ (uint64_t)block);
    if (sl_rng_uniform(&r) < a.p_noise) sld_aug_noise(&r, x, n, a.noise_std * sl_rng_uniform(&r));
    if (sl_rng_uniform(&r) < a.p_contrast) {
        double m = 1.0 - a.brightness + 2.0 * a.brightness * sl_rng_uniform(&r);
        double f = a.contrast_lo + (a.contrast_hi - a.contrast_lo) * sl_rng_uniform(&r);
        sld_aug_contrast(x, n, m, f);
    }
    if (sl_rng_uniform(&r) < a.p_gamma) {
        double u = sl_rng_uniform(&r);
        double g = sl_rng_uniform(&r) < 0.5 ? a.gamma_lo + (1.0 - a.gamma_lo) * u : 1.0 + (a.gamma_hi - 1.0) * u;
        sld_aug_gamma(x, n, g, sl_rng_uniform(&r) < a.gamma_invert);
    }
}

sl_status slt_predict_slices_tta(sl_unet *net, const float *images, int64_t n, int64_t h, int64_t w,
                                 const sl_predict_opts *o, int64_t C, float *probs, int32_t *labels, char *msg,
                                 size_t msglen)
{
    tta_elem e[TTA_MAX_N];
    const int ne = tta_plan(o, 0, e);
    const int64_t B = o->batch < n ? o->batch : n, hw = h * w;
    sl_predict_opts one = *o;
    one.tta = SL_TTA_NONE;
    float *xt = sl_malloc(B * hw, sizeof *xt), *pt = sl_malloc(B * C * hw, sizeof *pt);
    float *acc = probs ? NULL : sl_malloc(B * C * hw, sizeof *acc);
    sl_status st = SL_OK;
    if (!xt || !pt || (!probs && !acc)) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "predict: out of memory");
        goto done;
    }
    for (int64_t k0 = 0; k0 < n; k0 += B) {
        const int64_t b = n - k0 < B ? n - k0 : B;
        float *pb = probs ? probs + k0 * C * hw : acc;
        memset(pb, 0, (size_t)(b * C * hw) * sizeof *pb);
        for (int t = 0; t < ne; t++) {
            const tta_elem *g = &e[t];
            const int64_t H2 = g->rot & 1 ? w : h, W2 = g->rot & 1 ? h : w;
            for (int64_t k = 0; k < b; k++) {
                tta_forward(g, images + (k0 + k) * hw, xt + k * hw, 1, 1, h, w);
                if (o->tta == SL_TTA_AUG) tta_intensity(o, t, k0 + k, xt + k * hw, hw);
            }
            if ((st = sl_predict_slices(net, xt, b, H2, W2, &one, pt, NULL, msg, msglen)) != SL_OK) goto done;
            for (int64_t k = 0; k < b; k++)
                tta_back_add(g, pt + k * C * hw, pb + k * C * hw, C, 1, h, w, 1.0f / (float)ne);
        }
        if (labels) slt_argmax(pb, b, C, hw, labels + k0 * hw);
    }
done:
    free(xt);
    free(pt);
    free(acc);
    return st;
}

sl_status slt_predict_volume_tta(const float *vol, const int64_t size[3], const sl_predict_opts *o, int64_t C,
                                 slt_volume_fn fn, void *user, float *probs, char *msg, size_t msglen)
{
    tta_elem e[TTA_MAX_N];
    const int ne = tta_plan(o, 1, e);
    const int64_t d = size[0], h = size[1], w = size[2], n = d * h * w;
    float *xt = sl_malloc(n, sizeof *xt), *pt = sl_malloc(C * n, sizeof *pt);
    sl_status st = SL_OK;
    if (!xt || !pt) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "predict: out of memory");
        goto done;
    }
    memset(probs, 0, (size_t)(C * n) * sizeof *probs);
    for (int t = 0; t < ne; t++) {
        const tta_elem *g = &e[t];
        const int64_t gs[3] = {d, g->rot & 1 ? w : h, g->rot & 1 ? h : w};
        tta_forward(g, vol, xt, 1, d, h, w);
        if (o->tta == SL_TTA_AUG) tta_intensity(o, t, 0, xt, n);
        if ((st = fn(xt, gs, pt, user, msg, msglen)) != SL_OK) goto done;
        tta_back_add(g, pt, probs, C, d, h, w, 1.0f / (float)ne);
    }
done:
    free(xt);
    free(pt);
    return st;
}
