/*
 * The procedural phantom: 2-D images with a chosen class ratio, made to be
 * hard in the ways medical images are (docs/data.md, "phantom", has the
 * model with its parameters).
 *
 * Labels. Class 1 is one irregular region; each class c >= 2 lies inside
 * class c-1 (probability p_inside) or beside it, touching it from outside;
 * the last class (the small core) has 1..max_lesions components. Every
 * object is a star-shaped blob
 *     rho(p) = |E R (p - centre)| / r(theta),
 *     r(theta) = 1 + sum_{k=2..5} a_k cos(k theta + phi_k),
 * (E an elongation, R an orientation) and takes exactly the `area` allowed
 * pixels of smallest rho (a quickselect), so each sample's class areas hit
 * their targets to the pixel unless the image runs out of room. The targets
 * are the requested shares times a lognormal jitter of mean 1, so the
 * realised fractions of a split match the ratio on average.
 *
 * Image. Tissue means 1 + c * contrast (jittered per sample), distractor
 * blobs in the background with the small class's mean and the small class's
 * size, a smooth random texture, a Gaussian blur (partial volume), a
 * multiplicative bias field exp(bias * g), additive Gaussian noise, and a
 * z-score over the image.
 *
 * Randomness. Sample i of split s draws from RNG stream (s << 56 | i) of
 * the dataset seed — label layout from one stream, intensities from a
 * second — so the splits come from disjoint streams, a sample does not
 * depend on any other, and the label alone can be regenerated cheaply.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"
#include "sources.h"
#include "segloss/geometry.h"

#define PH_MIN_SIZE 16
#define PH_HARMONICS 4 /* k = 2..5 */
/* Objects are near-round (aspect 1..1.8), distractors elongated (3..5, like
 * vessels that mimic lesions): shape is the cue that tells them apart when
 * there is no context (two classes), context is the other (a core lies in
 * or on its parent region, a distractor away from all foreground). */
#define OBJ_ASPECT_LO 1.0
#define OBJ_ASPECT_HI 1.8
#define DIS_ASPECT_LO 3.0
#define DIS_ASPECT_HI 5.0

sl_status sld_parse_ratio(const char *s, double *frac, int *k, char *msg, size_t msglen)
{
    if (!s || !*s) return sl_errf(msg, msglen, SL_EFORMAT, "phantom ratio is empty (expected e.g. 100:10:1)");
    int n = 0;
    double sum = 0.0;
    const char *p = s;
    while (1) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        char buf[64];
        if (len == 0 || len >= sizeof buf)
            return sl_errf(msg, msglen, SL_EFORMAT, "phantom ratio '%s': empty or overlong entry", s);
        memcpy(buf, p, len);
        buf[len] = '\0';
        double v;
        if (!sld_parse_double(buf, &v))
            return sl_errf(msg, msglen, SL_EFORMAT, "phantom ratio '%s': '%s' is not a number", s, buf);
        if (!(v > 0)) return sl_errf(msg, msglen, SL_ERANGE, "phantom ratio '%s': every share must be > 0", s);
        if (n == SLD_MAX_PHANTOM_CLASSES)
            return sl_errf(msg, msglen, SL_ERANGE, "phantom ratio '%s': more than %d classes", s, SLD_MAX_PHANTOM_CLASSES);
        frac[n++] = v;
        sum += v;
        if (!colon) break;
        p = colon + 1;
    }
    if (n < 2) return sl_errf(msg, msglen, SL_EFORMAT, "phantom ratio '%s': need at least 2 classes (background:foreground)", s);
    for (int c = 0; c < n; c++) frac[c] /= sum;
    *k = n;
    return SL_OK;
}

static sl_status phantom_generate(const sl_dataset *ds, int split, int64_t index, float *img, int32_t *lab_out);

sl_status sld_open_phantom(sl_dataset **out, const char *arg, const sl_data_opts *o, char *msg, size_t msglen)
{
    (void)arg;
    double frac[SLD_MAX_PHANTOM_CLASSES];
    int K;
    sl_status st = sld_parse_ratio(o->ratio, frac, &K, msg, msglen);
    if (st != SL_OK) return st;
    if (o->small_fraction > 0) {
        /* the last class takes small_fraction; the others keep their ratio */
        double rest = 0.0;
        for (int c = 0; c < K - 1; c++) rest += frac[c];
        for (int c = 0; c < K - 1; c++) frac[c] *= (1.0 - o->small_fraction) / rest;
        frac[K - 1] = o->small_fraction;
    }
    if (frac[0] < 0.1)
        return sl_errf(msg, msglen, SL_ERANGE, "phantom ratio '%s': background share %.3g is below 0.1", o->ratio, frac[0]);
    int64_t H = o->height ? o->height : 128, W = o->width ? o->width : 128;
    if (H < PH_MIN_SIZE || W < PH_MIN_SIZE)
        return sl_errf(msg, msglen, SL_ERANGE, "phantom size %lldx%lld: each side must be at least %d", (long long)H,
                       (long long)W, PH_MIN_SIZE);
    if (o->n_train >= ((int64_t)1 << 48) || o->n_val >= ((int64_t)1 << 48) || o->n_test >= ((int64_t)1 << 48))
        return sl_errf(msg, msglen, SL_ERANGE, "phantom: split sizes must be below 2^48");
    sl_dataset *ds = sld_alloc(SLD_PHANTOM, o);
    if (!ds) return sl_errf(msg, msglen, SL_ENOMEM, "phantom: out of memory");
    ds->generate = phantom_generate;
    ds->pk = K;
    memcpy(ds->pfrac, frac, sizeof frac);
    uint64_t sm = o->seed ^ 0x70686e746f6d2121ULL; /* "phntom!!": phantoms apart from other seed users */
    ds->pseed = sl_splitmix64(&sm);
    ds->H = H;
    ds->W = W;
    ds->n[0] = o->n_train;
    ds->n[1] = o->n_val;
    ds->n[2] = o->n_test;
    const char *names[SLD_MAX_PHANTOM_CLASSES] = {"background"};
    char buf[SLD_MAX_PHANTOM_CLASSES][24];
    for (int c = 1; c < K; c++) {
        if (c == K - 1) snprintf(buf[c], sizeof buf[c], K == 2 ? "lesion" : "core");
        else if (K == 3) snprintf(buf[c], sizeof buf[c], "large");
        else snprintf(buf[c], sizeof buf[c], "region%d", c);
        names[c] = buf[c];
    }
    if ((st = sld_set_classes(ds, K, names)) != SL_OK) {
        sl_dataset_free(ds);
        return sl_errf(msg, msglen, SL_ENOMEM, "phantom: out of memory");
    }
    if ((st = sld_finish(ds, msg, msglen)) != SL_OK) {
        sl_dataset_free(ds);
        return st;
    }
    *out = ds;
    return SL_OK;
}

/* ------------------------------------------------------------ generator */

typedef struct cand {
    double rho;
    int64_t idx;
} cand;

/* Puts the k smallest rho first (Hoare quickselect, median-of-three pivot:
 * deterministic, so equal inputs give equal shapes). */
static void select_k(cand *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        double x = a[lo].rho, y = a[mid].rho, z = a[hi].rho;
        double piv = (x < y) ? ((y < z) ? y : (x < z ? z : x)) : ((x < z) ? x : (y < z ? z : y));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i].rho < piv) i++;
            while (a[j].rho > piv) j--;
            if (i <= j) {
                cand t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

typedef struct ph_work {
    int64_t H, W, HW;
    sl_grid grid;
    uint8_t *mask;
    float *dist;
    cand *cands;
    int64_t *pick;
} ph_work;

/* Distance of every pixel to the nearest pixel where mask == 0 (mask set
 * by the caller); +inf when the mask has no zero. */
static sl_status edt(ph_work *w)
{
    sl_edt_opts eo = {SL_EDT_PLAIN, 1};
    return sl_edt(w->mask, SL_DT_U8, &w->grid, &eo, w->dist, SL_DT_F32, NULL, 0);
}

/* A star-shaped blob: centre, orientation, elongation and radial harmonics. */
typedef struct blob_shape {
    double cy, cx, cosr, sinr, ey, ex;
    double a[PH_HARMONICS], cphi[PH_HARMONICS], sphi[PH_HARMONICS];
} blob_shape;

/* aspect ratio (long : short axis) drawn log-uniform in [aspect_lo, aspect_hi] */
static void random_shape(sl_rng *r, double cy, double cx, double irregularity, double aspect_lo,
                         double aspect_hi, blob_shape *b)
{
    b->cy = cy;
    b->cx = cx;
    double ang = 2.0 * 3.14159265358979323846 * sl_rng_uniform(r);
    b->cosr = cos(ang);
    b->sinr = sin(ang);
    double la = log(aspect_lo) + (log(aspect_hi) - log(aspect_lo)) * sl_rng_uniform(r);
    double e = exp(0.5 * la); /* ey / ex = aspect, ey * ex = 1 (area kept) */
    b->ey = e;
    b->ex = 1.0 / e;
    for (int k = 0; k < PH_HARMONICS; k++) {
        b->a[k] = irregularity * sl_rng_uniform(r) / (double)(k + 1);
        double phi = 2.0 * 3.14159265358979323846 * sl_rng_uniform(r);
        b->cphi[k] = cos(phi);
        b->sphi[k] = sin(phi);
    }
}

/* rho = |q| / r(theta) with q the pixel in the blob's frame. The harmonics
 * cos(k theta + phi) come from powers of (cos theta + i sin theta): no
 * trigonometric call per pixel. */
static double blob_rho(const blob_shape *b, double y, double x)
{
    double dy = y - b->cy, dx = x - b->cx;
    double u = (b->cosr * dy + b->sinr * dx) / b->ey;
    double v = (-b->sinr * dy + b->cosr * dx) / b->ex;
    double len = sqrt(u * u + v * v);
    if (len == 0.0) return 0.0;
    double c1 = v / len, s1 = u / len; /* theta = atan2(u, v) */
    double ck = c1 * c1 - s1 * s1, sk = 2.0 * c1 * s1; /* k = 2 */
    double rad = 1.0;
    for (int k = 0; k < PH_HARMONICS; k++) {
        rad += b->a[k] * (ck * b->cphi[k] - sk * b->sphi[k]);
        double nc = ck * c1 - sk * s1, ns = sk * c1 + ck * s1;
        ck = nc;
        sk = ns;
    }
    if (rad < 0.3) rad = 0.3;
    return len / rad;
}

/* Radius around the centre outside which no pixel has rho <= t:
 * |q| <= t * max r(theta) <= t * (1 + sum a_k), |p - c| <= |q| * max(ey, ex). */
static double blob_reach(const blob_shape *b, double t)
{
    double amax = 1.0;
    for (int k = 0; k < PH_HARMONICS; k++) amax += b->a[k];
    return t * amax * (b->ey > b->ex ? b->ey : b->ex);
}

/* Collects (rho, index) of the allowed pixels within `reach` (a box). */
static int64_t collect(ph_work *w, const blob_shape *b, double reach, const uint8_t *allow)
{
    int64_t y0 = (int64_t)floor(b->cy - reach), y1 = (int64_t)ceil(b->cy + reach) + 1;
    int64_t x0 = (int64_t)floor(b->cx - reach), x1 = (int64_t)ceil(b->cx + reach) + 1;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    if (y1 > w->H) y1 = w->H;
    if (x1 > w->W) x1 = w->W;
    int64_t n = 0;
    for (int64_t y = y0; y < y1; y++)
        for (int64_t x = x0; x < x1; x++) {
            int64_t p = y * w->W + x;
            if (!allow[p]) continue;
            w->cands[n].rho = blob_rho(b, (double)y, (double)x);
            w->cands[n].idx = p;
            n++;
        }
    return n;
}

/* Rasterises a blob: the `area` allowed pixels (allow[p] != 0) of smallest
 * rho get out[p] = value (all allowed pixels if there are fewer). The
 * search starts in the box that holds the blob when nothing is clipped
 * (rho <= sqrt(area / pi)) and falls back to the whole image when the
 * selected threshold could reach beyond the box, so the result is the
 * whole-image selection either way. Returns the pixels taken. */
static int64_t place_blob(ph_work *w, const blob_shape *b, int64_t area, const uint8_t *allow,
                          int32_t *out, int32_t value)
{
    if (area <= 0) return 0;
    double t = sqrt((double)area / 3.14159265358979323846);
    double reach = blob_reach(b, t) + 2.0;
    int64_t n = collect(w, b, reach, allow);
    int whole = reach >= (double)(w->H + w->W);
    if (n >= area) {
        select_k(w->cands, n, area);
        double thr = 0.0;
        for (int64_t i = 0; i < area; i++)
            if (w->cands[i].rho > thr) thr = w->cands[i].rho;
        if (blob_reach(b, thr) + 1.5 > reach && !whole) n = -1; /* may miss pixels: redo */
    } else if (!whole) {
        n = -1;
    }
    if (n < 0) {
        n = collect(w, b, (double)(w->H + w->W), allow);
        if (area > n) area = n;
        if (area <= 0) return 0;
        select_k(w->cands, n, area);
    } else if (area > n) {
        area = n;
    }
    for (int64_t i = 0; i < area; i++) out[w->cands[i].idx] = value;
    return area;
}

/* Picks uniformly among pixels p with lo <= dist[p] <= hi and border
 * distance >= margin; -1 when there is none. */
static int64_t pick_pixel(ph_work *w, sl_rng *r, const uint8_t *ok, double lo, double hi, double margin)
{
    int64_t n = 0;
    for (int64_t y = 0; y < w->H; y++)
        for (int64_t x = 0; x < w->W; x++) {
            int64_t p = y * w->W + x;
            if (!ok[p] || !(w->dist[p] >= lo && w->dist[p] <= hi)) continue;
            int64_t by = y < w->H - 1 - y ? y : w->H - 1 - y, bx = x < w->W - 1 - x ? x : w->W - 1 - x;
            if ((double)(by < bx ? by : bx) >= margin) w->pick[n++] = p;
        }
    if (n == 0) return -1;
    return w->pick[sl_rng_below(r, (uint64_t)n)];
}

/* Pixel with the largest dist among ok pixels (first in raster order). */
static int64_t argmax_pixel(const ph_work *w, const uint8_t *ok)
{
    int64_t best = -1;
    for (int64_t p = 0; p < w->HW; p++)
        if (ok[p] && (best < 0 || w->dist[p] > w->dist[best])) best = p;
    return best;
}

/* Sum of `modes` random plane waves with wavelengths in [lam_lo, lam_hi]
 * pixels: a smooth field of unit variance (over the random phases),
 * computed separably: cos(a + b) = cos a cos b - sin a sin b. */
static void smooth_field(sl_rng *r, int64_t H, int64_t W, int modes, double lam_lo, double lam_hi,
                         float *f, double *cy, double *sy, double *cx, double *sx)
{
    const double two_pi = 2.0 * 3.14159265358979323846;
    double norm = sqrt(2.0 / modes);
    memset(f, 0, (size_t)(H * W) * sizeof *f);
    for (int m = 0; m < modes; m++) {
        double lam = lam_lo + (lam_hi - lam_lo) * sl_rng_uniform(r);
        double th = two_pi * sl_rng_uniform(r), ph = two_pi * sl_rng_uniform(r);
        double ky = two_pi / lam * sin(th), kx = two_pi / lam * cos(th);
        for (int64_t y = 0; y < H; y++) {
            cy[y] = cos(ky * (double)y + ph);
            sy[y] = sin(ky * (double)y + ph);
        }
        for (int64_t x = 0; x < W; x++) {
            cx[x] = cos(kx * (double)x);
            sx[x] = sin(kx * (double)x);
        }
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++)
                f[y * W + x] += (float)(norm * (cy[y] * cx[x] - sy[y] * sx[x]));
    }
}

static uint64_t poisson(sl_rng *r, double mean)
{
    if (mean <= 0) return 0;
    double l = exp(-mean), p = 1.0;
    uint64_t k = 0;
    do {
        k++;
        p *= sl_rng_uniform(r);
    } while (p > l && k < 1000);
    return k - 1;
}

static sl_status phantom_generate(const sl_dataset *ds, int split, int64_t index, float *img, int32_t *lab_out)
{
    const sl_data_opts *o = &ds->opts;
    const int K = ds->pk;
    ph_work w;
    memset(&w, 0, sizeof w);
    w.H = ds->H;
    w.W = ds->W;
    w.HW = w.H * w.W;
    w.grid.ndim = 2;
    w.grid.shape[0] = w.H;
    w.grid.shape[1] = w.W;
    w.grid.spacing[0] = w.grid.spacing[1] = 1.0;
    w.mask = sl_malloc(w.HW, 1);
    w.dist = sl_malloc(w.HW, sizeof *w.dist);
    w.cands = sl_malloc(w.HW, sizeof *w.cands);
    w.pick = sl_malloc(w.HW, sizeof *w.pick);
    uint8_t *allow = sl_malloc(w.HW, 1);
    uint8_t *distractor = sl_calloc(w.HW, 1);
    int32_t *mark = sl_malloc(w.HW, sizeof *mark);
    int32_t *lab = lab_out ? lab_out : sl_malloc(w.HW, sizeof *lab);
    sl_status st = SL_OK;
    if (!w.mask || !w.dist || !w.cands || !w.pick || !allow || !distractor || !mark || !lab) {
        st = SL_ENOMEM;
        goto done;
    }
    memset(lab, 0, (size_t)w.HW * sizeof *lab);

    const uint64_t stream = ((uint64_t)split << 56) | (uint64_t)index;
    sl_rng r;
    sl_rng_seed_stream(&r, ds->pseed, stream);
    const double HWd = (double)w.HW, minside = (double)(w.H < w.W ? w.H : w.W);
    const double sj = o->size_jitter;
    const double pi = 3.14159265358979323846;

    /* per-sample areas: share * lognormal jitter of mean 1 */
    double g[SLD_MAX_PHANTOM_CLASSES] = {0};
    for (int c = 1; c < K; c++) g[c] = ds->pfrac[c] * exp(sj * sl_rng_normal(&r) - 0.5 * sj * sj);
    /* the last class: components, their areas and inside/beside */
    enum { MAXC = 64 };
    int ncomp = 1 + (int)sl_rng_below(&r, (uint64_t)o->max_lesions);
    double wsum = 0.0, wts[MAXC];
    int inside[MAXC];
    for (int j = 0; j < ncomp; j++) {
        wts[j] = 0.5 + sl_rng_uniform(&r);
        wsum += wts[j];
        inside[j] = K >= 3 ? sl_rng_uniform(&r) < o->p_inside : 0;
    }
    int64_t carea[MAXC];
    for (int j = 0; j < ncomp; j++) {
        carea[j] = (int64_t)llround(g[K - 1] * HWd * wts[j] / wsum);
        if (carea[j] < 1) carea[j] = 1;
    }
    /* intermediate classes c = 2..K-2: one object each, inside or beside */
    int mid_inside[SLD_MAX_PHANTOM_CLASSES] = {0};
    for (int c = 2; c < K - 1; c++) mid_inside[c] = sl_rng_uniform(&r) < o->p_inside;
    /* region areas: own area plus the children that sit inside */
    int64_t region[SLD_MAX_PHANTOM_CLASSES] = {0};
    for (int c = K - 2; c >= 1; c--) {
        int64_t own = (int64_t)llround(g[c] * HWd), kids = 0;
        if (c + 1 == K - 1) {
            for (int j = 0; j < ncomp; j++)
                if (inside[j]) kids += carea[j];
        } else if (mid_inside[c + 1]) {
            kids = region[c + 1];
        }
        region[c] = own + kids;
    }

    if (K == 2) {
        /* class 1 is the small class itself: lesions anywhere */
        for (int j = 0; j < ncomp; j++) {
            double rj = sqrt((double)carea[j] / pi);
            /* away from the lesions placed so far and from the border */
            for (int64_t p = 0; p < w.HW; p++) allow[p] = w.mask[p] = lab[p] == 0;
            st = edt(&w);
            if (st != SL_OK) goto done;
            int64_t c0 = pick_pixel(&w, &r, allow, rj + 1, INFINITY, rj + 2);
            if (c0 < 0) c0 = argmax_pixel(&w, allow);
            blob_shape b;
            random_shape(&r, (double)(c0 / w.W), (double)(c0 % w.W), o->irregularity, OBJ_ASPECT_LO, OBJ_ASPECT_HI, &b);
            place_blob(&w, &b, carea[j], allow, lab, 1);
        }
    } else {
        /* class 1: one region near the centre */
        double cy = (double)(w.H - 1) / 2 + (sl_rng_uniform(&r) - 0.5) * 0.3 * (double)w.H;
        double cx = (double)(w.W - 1) / 2 + (sl_rng_uniform(&r) - 0.5) * 0.3 * (double)w.W;
        blob_shape b;
        random_shape(&r, cy, cx, o->irregularity, OBJ_ASPECT_LO, OBJ_ASPECT_HI, &b);
        for (int64_t p = 0; p < w.HW; p++) allow[p] = 1;
        place_blob(&w, &b, region[1], allow, lab, 1);
        /* classes 2..K-1, each inside or beside its parent class */
        for (int c = 2; c < K; c++) {
            int n = c == K - 1 ? ncomp : 1;
            for (int j = 0; j < n; j++) {
                int64_t area = c == K - 1 ? carea[j] : region[c];
                int in = c == K - 1 ? inside[j] : mid_inside[c];
                double rj = sqrt((double)area / pi);
                int64_t c0 = -1;
                if (in) {
                    /* centre deep enough inside the parent */
                    for (int64_t p = 0; p < w.HW; p++) w.mask[p] = lab[p] == c - 1;
                    if ((st = edt(&w)) != SL_OK) goto done;
                    c0 = pick_pixel(&w, &r, w.mask, rj, INFINITY, 0);
                    if (c0 < 0) c0 = argmax_pixel(&w, w.mask);
                    if (c0 < 0) in = 0; /* parent full: fall back to beside */
                }
                if (!in) {
                    /* centre outside the parent, about one radius from it,
                     * so the object touches the parent */
                    for (int64_t p = 0; p < w.HW; p++) w.mask[p] = lab[p] != c - 1;
                    if ((st = edt(&w)) != SL_OK) goto done;
                    for (int64_t p = 0; p < w.HW; p++) allow[p] = lab[p] == 0;
                    c0 = pick_pixel(&w, &r, allow, 0.6 * rj, 1.2 * rj + 1, rj + 1);
                    if (c0 < 0) c0 = pick_pixel(&w, &r, allow, 0, INFINITY, 0);
                    if (c0 < 0) continue; /* no background left */
                }
                /* inside: the parent's pixels at least 1.5 from its outside,
                 * so the object never touches what surrounds the parent
                 * (w.dist still holds the parent's inner distances) */
                for (int64_t p = 0; p < w.HW; p++)
                    allow[p] = in ? lab[p] == c - 1 && w.dist[p] >= 1.5f : lab[p] == 0;
                random_shape(&r, (double)(c0 / w.W), (double)(c0 % w.W), o->irregularity, OBJ_ASPECT_LO, OBJ_ASPECT_HI, &b);
                place_blob(&w, &b, area, allow, lab, c);
            }
        }
    }

    /* distractors: blobs of the small class's size, far from all foreground */
    uint64_t nd = poisson(&r, o->distractors);
    double lesion = g[K - 1] * HWd / (double)ncomp;
    for (uint64_t d = 0; d < nd; d++) {
        double area = lesion * (0.5 + sl_rng_uniform(&r));
        if (area < 4) area = 4;
        double rd = sqrt(area / pi);
        for (int64_t p = 0; p < w.HW; p++) w.mask[p] = lab[p] == 0 && !distractor[p];
        if ((st = edt(&w)) != SL_OK) goto done;
        double gap = fmax(4.0, 0.05 * minside);
        int64_t c0 = pick_pixel(&w, &r, w.mask, 3.5 * rd + gap, INFINITY, 2.5 * rd + 1);
        if (c0 < 0) continue;
        blob_shape b;
        random_shape(&r, (double)(c0 / w.W), (double)(c0 % w.W), o->irregularity, DIS_ASPECT_LO, DIS_ASPECT_HI, &b);
        for (int64_t p = 0; p < w.HW; p++) allow[p] = w.mask[p];
        /* rasterised into a scratch map: distractor pixels keep label 0 */
        memset(mark, 0, (size_t)w.HW * sizeof *mark);
        place_blob(&w, &b, (int64_t)llround(area), allow, mark, 1);
        for (int64_t p = 0; p < w.HW; p++)
            if (mark[p]) distractor[p] = 1;
    }

    if (img) {
        sl_rng ri;
        sl_rng_seed_stream(&ri, ds->pseed ^ 0x696d616765737472ULL, stream); /* "imagestr" */
        double mu[SLD_MAX_PHANTOM_CLASSES];
        for (int c = 0; c < K; c++) mu[c] = 1.0 + o->contrast * ((double)c + (c ? 0.15 * sl_rng_normal(&ri) : 0.0));
        double *cyv = malloc((size_t)(2 * w.H + 2 * w.W) * sizeof *cyv);
        float *field = sl_malloc(w.HW, sizeof *field);
        if (!cyv || !field) {
            free(cyv);
            free(field);
            st = SL_ENOMEM;
            goto done;
        }
        double *syv = cyv + w.H, *cxv = syv + w.H, *sxv = cxv + w.W;
        for (int64_t p = 0; p < w.HW; p++) img[p] = (float)(distractor[p] ? mu[K - 1] : mu[lab[p]]);
        if (o->texture > 0) {
            smooth_field(&ri, w.H, w.W, 16, 0.08 * minside, 0.3 * minside, field, cyv, syv, cxv, sxv);
            for (int64_t p = 0; p < w.HW; p++) img[p] += (float)(o->texture * field[p]);
        }
        if (o->blur > 0) st = sl_blur2d(img, img, w.H, w.W, o->blur, o->blur);
        if (st == SL_OK && o->bias > 0) {
            smooth_field(&ri, w.H, w.W, 2, 1.0 * minside, 2.0 * minside, field, cyv, syv, cxv, sxv);
            for (int64_t p = 0; p < w.HW; p++) img[p] *= (float)exp(o->bias * field[p]);
        }
        free(cyv);
        free(field);
        if (st != SL_OK) goto done;
        if (o->noise > 0)
            for (int64_t p = 0; p < w.HW; p++) img[p] += (float)(o->noise * sl_rng_normal(&ri));
        double mean, sd;
        sld_mean_std(img, w.HW, &mean, &sd);
        if (!(sd > 0)) sd = 1.0;
        for (int64_t p = 0; p < w.HW; p++) img[p] = (float)(((double)img[p] - mean) / sd);
    }

done:
    free(w.mask);
    free(w.dist);
    free(w.cands);
    free(w.pick);
    free(allow);
    free(distractor);
    free(mark);
    if (lab != lab_out) free(lab);
    return st;
}
