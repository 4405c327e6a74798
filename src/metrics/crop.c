/*
 * Reading binary masks out of label maps: the whole-image scan (confusion
 * counts and the bounding box of P | G) and the crop that every geometric
 * metric then works on (metrics_internal.h explains the crop).
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "metrics_internal.h"

/* The dtype switch sits outside the loop; floats compare as doubles, so a
 * NaN or a non-integer value matches no label. */
#define ROW_EQ(T)                                                                  \
    do {                                                                           \
        const T *p = (const T *)s->data + start;                                   \
        for (int64_t i = 0; i < n; i++) out[i] = (int64_t)p[i] == s->label;        \
    } while (0)
#define ROW_EQ_U(T)                                                                \
    do {                                                                           \
        const T *p = (const T *)s->data + start;                                   \
        if (s->label < 0) memset(out, 0, (size_t)n);                               \
        else for (int64_t i = 0; i < n; i++) out[i] = (uint64_t)p[i] == (uint64_t)s->label; \
    } while (0)
#define ROW_EQ_F(T)                                                                \
    do {                                                                           \
        const T *p = (const T *)s->data + start;                                   \
        const double L = (double)s->label;                                         \
        for (int64_t i = 0; i < n; i++) out[i] = (double)p[i] == L;                \
    } while (0)

void slm_row(const slm_src *s, int64_t start, int64_t n, uint8_t *out)
{
    if (s->binary) {
        const uint8_t *p = (const uint8_t *)s->data + start;
        for (int64_t i = 0; i < n; i++) out[i] = p[i] != 0;
        return;
    }
    switch (s->dtype) {
    case SL_DT_F32: ROW_EQ_F(float); break;
    case SL_DT_F64: ROW_EQ_F(double); break;
    case SL_DT_BOOL:
    case SL_DT_U8: ROW_EQ(uint8_t); break;
    case SL_DT_I8: ROW_EQ(int8_t); break;
    case SL_DT_U16: ROW_EQ(uint16_t); break;
    case SL_DT_I16: ROW_EQ(int16_t); break;
    case SL_DT_U32: ROW_EQ(uint32_t); break;
    case SL_DT_I32: ROW_EQ(int32_t); break;
    case SL_DT_U64: ROW_EQ_U(uint64_t); break;
    case SL_DT_I64: ROW_EQ(int64_t); break;
    }
}

sl_status slm_scan_pair(const slm_src *p, const slm_src *g, const slg_vol *v, int threads, slm_scan *out)
{
    const int64_t n0 = v->n[0], n1 = v->n[1], n2 = v->n[2];
    int64_t tp = 0, fp = 0, fn = 0;
    int64_t lo0 = INT64_MAX, lo1 = INT64_MAX, lo2 = INT64_MAX, hi0 = -1, hi1 = -1, hi2 = -1;
    int fail = 0;
    /* Integer sums and min/max: exact in any order, so any thread count
     * gives the same numbers. */
#pragma omp parallel num_threads(sl_threads(threads)) if (v->count >= SLG_PAR_MIN) reduction(+ : tp, fp, fn) \
    reduction(min : lo0, lo1, lo2) reduction(max : hi0, hi1, hi2)
    {
        uint8_t *rp = sl_malloc(n2, 1), *rg = sl_malloc(n2, 1);
        if (!rp || !rg) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for collapse(2) schedule(static)
        for (int64_t i0 = 0; i0 < n0; i0++)
            for (int64_t i1 = 0; i1 < n1; i1++) {
                if (!rp || !rg) continue;
                int64_t start = (i0 * n1 + i1) * n2;
                slm_row(p, start, n2, rp);
                slm_row(g, start, n2, rg);
                int64_t a = 0, b = 0, c = 0, first = -1, last = -1;
                /* branch-free counts (vectorised); the row's extent only
                 * for rows with a voxel of either mask */
                for (int64_t i2 = 0; i2 < n2; i2++) {
                    int x = rp[i2], y = rg[i2];
                    a += x & y;
                    b += x & (y ^ 1);
                    c += (x ^ 1) & y;
                }
                tp += a;
                fp += b;
                fn += c;
                if (a + b + c > 0) {
                    first = 0;
                    while (!(rp[first] | rg[first])) first++;
                    last = n2 - 1;
                    while (!(rp[last] | rg[last])) last--;
                    if (i0 < lo0) lo0 = i0;
                    if (i0 > hi0) hi0 = i0;
                    if (i1 < lo1) lo1 = i1;
                    if (i1 > hi1) hi1 = i1;
                    if (first < lo2) lo2 = first;
                    if (last > hi2) hi2 = last;
                }
            }
        free(rp);
        free(rg);
    }
    if (fail) return SL_ENOMEM;
    out->tp = tp;
    out->fp = fp;
    out->fn = fn;
    out->tn = v->count - tp - fp - fn;
    out->lo[0] = lo0;
    out->lo[1] = lo1;
    out->lo[2] = lo2;
    out->hi[0] = hi0 + 1;
    out->hi[1] = hi1 + 1;
    out->hi[2] = hi2 + 1;
    return SL_OK;
}

slm_crop slm_crop_make(const slg_vol *img, const slm_scan *s)
{
    slm_crop c;
    int64_t n[3];
    for (int a = 0; a < 3; a++) {
        /* only real axes get a margin: a padded axis has extent 1 */
        int real = a >= 3 - img->ndim;
        int64_t m = real ? SLM_CROP_MARGIN : 0;
        c.org[a] = s->lo[a] - m;
        n[a] = s->hi[a] - s->lo[a] + 2 * m;
    }
    c.vol = slg_vol_sub(img, n);
    return c;
}

void slm_crop_fill(const slm_src *s, const slg_vol *img, const slm_crop *c, uint8_t *mask, int threads)
{
    const int64_t c0 = c->vol.n[0], c1 = c->vol.n[1], c2 = c->vol.n[2];
    /* the part of each crop row that lies inside the image */
    int64_t x0 = c->org[2] < 0 ? -c->org[2] : 0;
    int64_t x1 = c->org[2] + c2 > img->n[2] ? img->n[2] - c->org[2] : c2;
#pragma omp parallel for collapse(2) schedule(static) num_threads(sl_threads(threads)) if (c->vol.count >= SLG_PAR_MIN)
    for (int64_t j0 = 0; j0 < c0; j0++)
        for (int64_t j1 = 0; j1 < c1; j1++) {
            uint8_t *row = mask + (j0 * c1 + j1) * c2;
            int64_t i0 = c->org[0] + j0, i1 = c->org[1] + j1;
            if (i0 < 0 || i0 >= img->n[0] || i1 < 0 || i1 >= img->n[1] || x1 <= x0) {
                memset(row, 0, (size_t)c2);
                continue;
            }
            if (x0 > 0) memset(row, 0, (size_t)x0);
            slm_row(s, (i0 * img->n[1] + i1) * img->n[2] + c->org[2] + x0, x1 - x0, row + x0);
            if (x1 < c2) memset(row + x1, 0, (size_t)(c2 - x1));
        }
}
