/*
 * 2-D convolution and 2x2 transposed convolution through cblas_sgemm.
 *
 * Convolution as a matrix product (im2col): for one sample, the output
 * (Cout, Ho*Wo) is weight (Cout, Cin*K*K) times the column matrix
 * (Cin*K*K, Ho*Wo) whose column p holds the K*K*Cin input values under
 * output pixel p. Forming the whole column matrix costs K*K times the input
 * in memory traffic (9.4 MB for 16 channels of 128x128), which then has to
 * come back from DRAM for the product. Instead the output rows are cut into
 * tiles of a few image rows, each tile's column block (~256 KB) is formed
 * and multiplied while it is still in L2. The tile boundaries depend only on
 * the layer shape, so each output value is computed by the same sequence of
 * operations whatever the thread count.
 *
 * Threads: the forward splits (sample, tile) pairs among OpenMP threads.
 * The backward splits samples: within a sample, tiles of the input
 * gradient overlap by the kernel halo and are added in tile order, and the
 * weight gradient of each sample goes to its own partial buffer; partials
 * are added in sample order at the end (deterministic, no atomics).
 *
 * A 1x1 convolution with stride 1 needs no column matrix at all: the input
 * sample (Cin, H*W) is the column matrix.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <cblas.h>
#include "internal.h"
#include "layers.h"

#ifdef _OPENMP
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

/* Target size of one column tile in floats (256 KB: half of a Zen/Skylake
 * L2, leaving room for the packed weight panel), and the least number of
 * columns per tile so that sgemm's per-call packing of the weight stays
 * small next to the product. Tuned with perf/train_speed. */
#define TILE_FLOATS 65536
#define TILE_MIN_COLS 256

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Carves 64-byte aligned regions out of the work buffer in a fixed order. */
typedef struct carver {
    char *p;
    size_t used;
} carver;

static void *carve(carver *c, size_t bytes)
{
    void *r = c->p ? c->p + c->used : NULL;
    c->used += round64(bytes);
    return r;
}

int64_t sl_conv2d_out_h(const sl_conv2d_shape *s)
{
    if (!s || s->K < 1 || s->stride < 1 || s->pad < 0 || s->H + 2 * s->pad < s->K) return -1;
    return (s->H + 2 * s->pad - s->K) / s->stride + 1;
}

int64_t sl_conv2d_out_w(const sl_conv2d_shape *s)
{
    if (!s || s->K < 1 || s->stride < 1 || s->pad < 0 || s->W + 2 * s->pad < s->K) return -1;
    return (s->W + 2 * s->pad - s->K) / s->stride + 1;
}

static int is_direct(const sl_conv2d_shape *s)
{
    return s->K == 1 && s->stride == 1 && s->pad == 0 && s->C2 == 0;
}

/* Output rows per tile. */
static int64_t conv_tile_rows(const sl_conv2d_shape *s, int64_t Ho, int64_t Wo)
{
    if (is_direct(s)) return Ho;
    int64_t ck2 = (s->C1 + s->C2) * s->K * s->K;
    int64_t cols = TILE_FLOATS / (ck2 > 0 ? ck2 : 1);
    if (cols < TILE_MIN_COLS) cols = TILE_MIN_COLS;
    int64_t rows = cols / Wo;
    if (rows < 1) rows = 1;
    if (rows > Ho) rows = Ho;
    return rows;
}

/* A "same" convolution: stride 1, odd K, pad (K-1)/2, so Ho = H, Wo = W. */
static int is_same(const sl_conv2d_shape *s)
{
    return s->stride == 1 && s->K > 1 && (s->K & 1) && s->pad == (s->K - 1) / 2;
}

/* The convolution that computes the input gradient of a same convolution:
 * Cout input channels (the output gradient), Cin output channels, the same
 * K and padding. */
static sl_conv2d_shape grad_shape(const sl_conv2d_shape *s)
{
    sl_conv2d_shape t = {s->B, s->Cout, 0, s->C1 + s->C2, s->H, s->W, s->K, 1, s->pad};
    return t;
}

/* Lays out (or sizes, when base is NULL) the work buffer of a convolution:
 * per thread a column tile and a gradient tile (the column gradient, or for
 * a same convolution the columns of the output gradient), the flipped
 * weight of a same convolution, then one weight gradient per sample and one
 * bias gradient (double) per sample. */
typedef struct conv_work {
    float *col;     /* threads x tile_floats */
    float *dcol;    /* threads x dtile_floats */
    float *wflip;   /* (Cin, Cout, K, K), same convolutions */
    float *dw;      /* B x Cout x ck2 */
    double *db;     /* B x Cout */
    size_t tile_floats, dtile_floats;
    size_t bytes;
} conv_work;

static int conv_layout(conv_work *cw, void *base, const sl_conv2d_shape *s, int threads)
{
    int64_t Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s);
    if (Ho < 1 || Wo < 1 || s->B < 1 || s->C1 < 1 || s->C2 < 0 || s->Cout < 1) return 0;
    int64_t ck2, tile = 0, dwn, t;
    if (sl_mul3_size(s->C1 + s->C2, s->K, s->K, &ck2)) return 0;
    /* cblas takes int sizes and leading dimensions */
    if (ck2 > INT_MAX || s->Cout > INT_MAX || s->H * s->W > INT_MAX || Ho * Wo > INT_MAX) return 0;
    if (!is_direct(s) && sl_mul3_size(ck2, conv_tile_rows(s, Ho, Wo), Wo, &tile)) return 0;
    if (sl_mul3_size(s->B, s->Cout, ck2, &dwn)) return 0;
    int64_t dtile = tile, dt, wf = 0;
    if (is_same(s)) {
        sl_conv2d_shape g = grad_shape(s);
        int64_t gk2;
        if (sl_mul3_size(s->Cout, s->K, s->K, &gk2) || gk2 > INT_MAX ||
            sl_mul3_size(gk2, conv_tile_rows(&g, s->H, s->W), s->W, &dtile) ||
            sl_mul_size(gk2, s->C1 + s->C2, &wf))
            return 0;
    }
    if (sl_mul_size(tile, threads, &t) || sl_mul_size(dtile, threads, &dt)) return 0;
    size_t tb, dtb, wfb, dwb, dbb;
    if (sl_bytes(t, sizeof(float), &tb) || sl_bytes(dt, sizeof(float), &dtb) ||
        sl_bytes(wf, sizeof(float), &wfb) || sl_bytes(dwn, sizeof(float), &dwb) ||
        sl_bytes(s->B * s->Cout, sizeof(double), &dbb))
        return 0;
    carver c = {(char *)base, 0};
    cw->col = carve(&c, tb);
    cw->dcol = carve(&c, dtb);
    cw->wflip = carve(&c, wfb);
    cw->dw = carve(&c, dwb);
    cw->db = carve(&c, dbb);
    cw->tile_floats = (size_t)tile;
    cw->dtile_floats = (size_t)dtile;
    cw->bytes = c.used;
    return 1;
}

size_t sl_conv2d_work_bytes(const sl_conv2d_shape *s, int threads)
{
    conv_work cw;
    if (threads < 1) threads = 1;
    return conv_layout(&cw, NULL, s, threads) ? cw.bytes : 0;
}

/* Channel ci of one sample of the concatenated input, or NULL. */
static inline const float *chan_in(const float *in1, const float *in2, int64_t C1, int64_t ci,
                                   int64_t HW)
{
    return ci < C1 ? in1 + ci * HW : (in2 ? in2 + (ci - C1) * HW : NULL);
}

/* Output columns ox whose input column ox*stride - pad + kx is inside
 * [0, W): ox in [*lo, *hi). */
static inline void valid_range(int64_t W, int64_t Wo, int stride, int pad, int kx, int64_t *lo,
                               int64_t *hi)
{
    int64_t a = pad - kx; /* need ox*stride >= a */
    int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int64_t b = W - 1 + pad - kx; /* need ox*stride <= b */
    int64_t h = b < 0 ? 0 : b / stride + 1;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/*
 * col is (C1+C2) * K * K rows by (r1 - r0) * Wo columns: row (ci, ky, kx),
 * column (oy - r0, ox) holds input (ci, oy*stride - pad + ky,
 * ox*stride - pad + kx), or 0 in the padding.
 * in1 is (C1, H, W), in2 is (C2, H, W) of one sample.
 */
static void im2col_tile(float *col, const float *in1, const float *in2, const sl_conv2d_shape *s,
                        int64_t Wo, int64_t r0, int64_t r1)
{
    const int64_t H = s->H, W = s->W, HW = H * W, Cin = s->C1 + s->C2;
    const int K = s->K, st = s->stride, pad = s->pad;
    const int64_t nt = (r1 - r0) * Wo;
    for (int64_t ci = 0; ci < Cin; ci++) {
        const float *src = chan_in(in1, in2, s->C1, ci, HW);
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((ci * K + ky) * K + kx) * nt;
                int64_t lo, hi;
                valid_range(W, Wo, st, pad, kx, &lo, &hi);
                for (int64_t oy = r0; oy < r1; oy++) {
                    float *dst = row + (oy - r0) * Wo;
                    int64_t iy = oy * st - pad + ky;
                    if (iy < 0 || iy >= H) {
                        memset(dst, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *srow = src + iy * W - pad + kx;
                    for (int64_t ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                    if (st == 1) {
                        memcpy(dst + lo, srow + lo, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        for (int64_t ox = lo; ox < hi; ox++) dst[ox] = srow[ox * st];
                    }
                    for (int64_t ox = hi; ox < Wo; ox++) dst[ox] = 0.0f;
                }
            }
    }
}

/* The transpose of im2col_tile: adds each column entry back onto the input
 * position it was read from. d1 is (C1, H, W), d2 is (C2, H, W) or NULL. */
static void col2im_tile(float *d1, float *d2, const float *dcol, const sl_conv2d_shape *s,
                        int64_t Wo, int64_t r0, int64_t r1)
{
    const int64_t H = s->H, W = s->W, HW = H * W, Cin = s->C1 + s->C2;
    const int K = s->K, st = s->stride, pad = s->pad;
    const int64_t nt = (r1 - r0) * Wo;
    for (int64_t ci = 0; ci < Cin; ci++) {
        float *dst = ci < s->C1 ? d1 + ci * HW : (d2 ? d2 + (ci - s->C1) * HW : NULL);
        if (!dst) continue;
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *row = dcol + ((ci * K + ky) * K + kx) * nt;
                int64_t lo, hi;
                valid_range(W, Wo, st, pad, kx, &lo, &hi);
                for (int64_t oy = r0; oy < r1; oy++) {
                    int64_t iy = oy * st - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    float *drow = dst + iy * W - pad + kx;
                    const float *srow = row + (oy - r0) * Wo;
                    if (st == 1) {
                        for (int64_t ox = lo; ox < hi; ox++) drow[ox] += srow[ox];
                    } else {
                        for (int64_t ox = lo; ox < hi; ox++) drow[ox * st] += srow[ox];
                    }
                }
            }
    }
}

void sl_conv2d_forward(float *out, const float *inp1, const float *inp2, const float *weight,
                       const float *bias, const sl_conv2d_shape *s, void *work, int threads)
{
    // out is (B, Cout, Ho, Wo), inp1 is (B, C1, H, W), inp2 is (B, C2, H, W),
    // weight is (Cout, C1 + C2, K, K), bias is (Cout)
    conv_work cw;
    if (threads < 1) threads = 1;
    if (!conv_layout(&cw, work, s, threads)) return;
    const int64_t Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s), HoWo = Ho * Wo;
    const int64_t HW = s->H * s->W, Cout = s->Cout;
    const int64_t ck2 = (s->C1 + s->C2) * s->K * s->K;
    const int64_t rows = conv_tile_rows(s, Ho, Wo), ntiles = (Ho + rows - 1) / rows;
    const int direct = is_direct(s);
    const int64_t units = s->B * ntiles;
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t u = 0; u < units; u++) {
        int64_t b = u / ntiles, t = u % ntiles;
        int64_t r0 = t * rows, r1 = r0 + rows < Ho ? r0 + rows : Ho, nt = (r1 - r0) * Wo;
        const float *in1 = inp1 + b * s->C1 * HW;
        const float *in2 = s->C2 ? inp2 + b * s->C2 * HW : NULL;
        float *o = out + b * Cout * HoWo + r0 * Wo;
        const float *colp;
        int64_t ldb;
        if (direct) {
            colp = in1 + r0 * Wo;
            ldb = HW;
        } else {
            float *col = cw.col + (size_t)THREAD_ID() * cw.tile_floats;
            im2col_tile(col, in1, in2, s, Wo, r0, r1);
            colp = col;
            ldb = nt;
        }
        float beta = 0.0f;
        if (bias) {
            for (int64_t co = 0; co < Cout; co++)
                for (int64_t p = 0; p < nt; p++) o[co * HoWo + p] = bias[co];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cout, (int)nt, (int)ck2, 1.0f,
                    weight, (int)ck2, colp, (int)ldb, beta, o, (int)HoWo);
    }
    sl_nn_blas_leave(prev);
}

/* dst[i] += sum over b of parts[b * n + i], b in order (sums in double). */
static void reduce_parts_f(float *dst, const float *parts, int64_t B, int64_t n, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (int64_t b = 0; b < B; b++) acc += parts[b * n + i];
        dst[i] += (float)acc;
    }
}

static void reduce_parts_d(float *dst, const double *parts, int64_t B, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (int64_t b = 0; b < B; b++) acc += parts[b * n + i];
        dst[i] += (float)acc;
    }
}

void sl_conv2d_backward(float *dinp1, float *dinp2, float *dweight, float *dbias,
                        const float *dout, const float *inp1, const float *inp2,
                        const float *weight, const sl_conv2d_shape *s, int acc, void *work,
                        int threads)
{
    // dout is (B, Cout, Ho, Wo), inp1/dinp1 are (B, C1, H, W), inp2/dinp2 are
    // (B, C2, H, W), weight/dweight are (Cout, C1 + C2, K, K), dbias is (Cout)
    conv_work cw;
    if (threads < 1) threads = 1;
    if (!conv_layout(&cw, work, s, threads)) return;
    const int64_t Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s), HoWo = Ho * Wo;
    const int64_t HW = s->H * s->W, Cout = s->Cout, B = s->B;
    const int64_t ck2 = (s->C1 + s->C2) * s->K * s->K;
    const int64_t rows = conv_tile_rows(s, Ho, Wo), ntiles = (Ho + rows - 1) / rows;
    const int direct = is_direct(s);
    if (s->C2 == 0) dinp2 = NULL;
    const int want_dx = dinp1 || dinp2;
    /*
     * The input gradient of a same convolution is itself a same convolution:
     * dX[ci] = sum over co of dY[co] correlated with W[co, ci] rotated by
     * 180 degrees. Computing it that way (im2col of dY, one sgemm per tile
     * written straight into dX) avoids the column-gradient scatter and the
     * zeroing of dX that col2im needs, about 10 % of a training step.
     */
    const int as_conv = want_dx && is_same(s);
    const sl_conv2d_shape gs = grad_shape(s);
    const int64_t K = s->K, KK = K * K, Cin = s->C1 + s->C2;
    const int64_t grows = as_conv ? conv_tile_rows(&gs, s->H, s->W) : 1;
    const int64_t gtiles = as_conv ? (s->H + grows - 1) / grows : 0, gk2 = Cout * KK;
    if (as_conv)
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int64_t co = 0; co < Cout; co++)
                for (int64_t k = 0; k < KK; k++)
                    cw.wflip[(ci * Cout + co) * KK + k] = weight[(co * Cin + ci) * KK + (KK - 1 - k)];
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const float *in1 = inp1 + b * s->C1 * HW;
        const float *in2 = s->C2 ? inp2 + b * s->C2 * HW : NULL;
        float *d1 = dinp1 ? dinp1 + b * s->C1 * HW : NULL;
        float *d2 = dinp2 ? dinp2 + b * s->C2 * HW : NULL;
        const float *dob = dout + b * Cout * HoWo;
        float *dw = cw.dw + b * Cout * ck2;
        float *col = cw.col + (size_t)THREAD_ID() * cw.tile_floats;
        float *dcol = cw.dcol + (size_t)THREAD_ID() * cw.dtile_floats;
        if (dbias) {
            for (int64_t co = 0; co < Cout; co++) {
                double sum = 0.0;
                for (int64_t p = 0; p < HoWo; p++) sum += dob[co * HoWo + p];
                cw.db[b * Cout + co] = sum;
            }
        }
        if (!direct && !as_conv && !acc) {
            if (d1) memset(d1, 0, (size_t)(s->C1 * HW) * sizeof(float));
            if (d2) memset(d2, 0, (size_t)(s->C2 * HW) * sizeof(float));
        }
        for (int64_t t = 0; t < ntiles; t++) {
            int64_t r0 = t * rows, r1 = r0 + rows < Ho ? r0 + rows : Ho, nt = (r1 - r0) * Wo;
            const float *dy = dob + r0 * Wo;
            const float *colp;
            int64_t ldb;
            if (direct) {
                colp = in1 + r0 * Wo;
                ldb = HW;
            } else {
                im2col_tile(col, in1, in2, s, Wo, r0, r1);
                colp = col;
                ldb = nt;
            }
            /* dW_b (Cout, ck2) (+)= dY_tile (Cout, nt) . col^T (nt, ck2) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cout, (int)ck2, (int)nt, 1.0f,
                        dy, (int)HoWo, colp, (int)ldb, t == 0 ? 0.0f : 1.0f, dw, (int)ck2);
            if (!want_dx || as_conv) continue;
            if (direct) {
                /* dX_b tile (Cin, nt) (+)= W^T (Cin, Cout) . dY_tile (Cout, nt) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck2, (int)nt, (int)Cout,
                            1.0f, weight, (int)ck2, dy, (int)HoWo, acc ? 1.0f : 0.0f, d1 + r0 * Wo,
                            (int)HW);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck2, (int)nt, (int)Cout,
                            1.0f, weight, (int)ck2, dy, (int)HoWo, 0.0f, dcol, (int)nt);
                col2im_tile(d1, d2, dcol, s, Wo, r0, r1);
            }
        }
        for (int64_t t = 0; t < gtiles; t++) {
            /* dX tile (Cin, nt) (+)= wflip (Cin, Cout K K) . cols of dY */
            int64_t r0 = t * grows, r1 = r0 + grows < s->H ? r0 + grows : s->H, nt = (r1 - r0) * s->W;
            im2col_tile(dcol, dob, NULL, &gs, s->W, r0, r1);
            const float beta = acc ? 1.0f : 0.0f;
            if (d1)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->C1, (int)nt, (int)gk2,
                            1.0f, cw.wflip, (int)gk2, dcol, (int)nt, beta, d1 + r0 * s->W, (int)HW);
            if (d2)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->C2, (int)nt, (int)gk2,
                            1.0f, cw.wflip + s->C1 * gk2, (int)gk2, dcol, (int)nt, beta,
                            d2 + r0 * s->W, (int)HW);
        }
    }
    sl_nn_blas_leave(prev);
    reduce_parts_f(dweight, cw.dw, B, Cout * ck2, threads);
    if (dbias) reduce_parts_d(dbias, cw.db, B, Cout);
}

/* ---- 2x2 stride-2 transposed convolution ------------------------------
 * Every output pixel (2i+ky, 2j+kx) receives exactly one input pixel (i, j)
 * through tap (ky, kx): per sample, T (Cout*4, HW) = W^T (Cout*4, Cin) .
 * X (Cin, HW) is one sgemm, and the output is T with its rows interleaved
 * into the 2x finer grid (no overlap, so no accumulation). */

typedef struct convt_work {
    float *t;   /* threads x (Cout*4*HW) */
    float *dw;  /* B x Cin x Cout*4 */
    double *db; /* B x Cout */
    size_t t_floats;
    size_t bytes;
} convt_work;

static int convt_layout(convt_work *cw, void *base, int64_t B, int64_t Cin, int64_t Cout,
                        int64_t H, int64_t W, int threads)
{
    int64_t tf, tt, dwn;
    size_t tb, dwb, dbb;
    if (B < 1 || Cin < 1 || Cout < 1 || H < 1 || W < 1) return 0;
    if (sl_mul3_size(Cout * 4, H, W, &tf) || sl_mul_size(tf, threads, &tt) ||
        sl_mul3_size(B, Cin, Cout * 4, &dwn))
        return 0;
    if (Cin > INT_MAX || Cout * 4 > INT_MAX || H * W > INT_MAX) return 0;
    if (sl_bytes(tt, sizeof(float), &tb) || sl_bytes(dwn, sizeof(float), &dwb) ||
        sl_bytes(B * Cout, sizeof(double), &dbb))
        return 0;
    carver c = {(char *)base, 0};
    cw->t = carve(&c, tb);
    cw->dw = carve(&c, dwb);
    cw->db = carve(&c, dbb);
    cw->t_floats = (size_t)tf;
    cw->bytes = c.used;
    return 1;
}

size_t sl_convt2x2_work_bytes(int64_t B, int64_t Cin, int64_t Cout, int64_t H, int64_t W,
                              int threads)
{
    convt_work cw;
    if (threads < 1) threads = 1;
    return convt_layout(&cw, NULL, B, Cin, Cout, H, W, threads) ? cw.bytes : 0;
}

void sl_convt2x2_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int64_t B, int64_t Cin, int64_t Cout, int64_t H, int64_t W, void *work,
                         int threads)
{
    // out is (B, Cout, 2H, 2W), inp is (B, Cin, H, W), weight is (Cin, Cout, 2, 2), bias is (Cout)
    convt_work cw;
    if (threads < 1) threads = 1;
    if (!convt_layout(&cw, work, B, Cin, Cout, H, W, threads)) return;
    const int64_t HW = H * W, W2 = 2 * W, HW4 = 4 * HW;
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        float *T = cw.t + (size_t)THREAD_ID() * cw.t_floats;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(Cout * 4), (int)HW, (int)Cin,
                    1.0f, weight, (int)(Cout * 4), inp + b * Cin * HW, (int)HW, 0.0f, T, (int)HW);
        float *ob = out + b * Cout * HW4;
        for (int64_t co = 0; co < Cout; co++) {
            const float bv = bias ? bias[co] : 0.0f;
            const float *t00 = T + (co * 4 + 0) * HW, *t01 = T + (co * 4 + 1) * HW;
            const float *t10 = T + (co * 4 + 2) * HW, *t11 = T + (co * 4 + 3) * HW;
            float *oc = ob + co * HW4;
            for (int64_t i = 0; i < H; i++) {
                float *r0 = oc + (2 * i) * W2, *r1 = r0 + W2;
                const int64_t o = i * W;
                for (int64_t j = 0; j < W; j++) {
                    r0[2 * j] = t00[o + j] + bv;
                    r0[2 * j + 1] = t01[o + j] + bv;
                    r1[2 * j] = t10[o + j] + bv;
                    r1[2 * j + 1] = t11[o + j] + bv;
                }
            }
        }
    }
    sl_nn_blas_leave(prev);
}

void sl_convt2x2_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int64_t B, int64_t Cin,
                          int64_t Cout, int64_t H, int64_t W, int acc, void *work, int threads)
{
    // dout is (B, Cout, 2H, 2W), inp/dinp are (B, Cin, H, W),
    // weight/dweight are (Cin, Cout, 2, 2), dbias is (Cout)
    convt_work cw;
    if (threads < 1) threads = 1;
    if (!convt_layout(&cw, work, B, Cin, Cout, H, W, threads)) return;
    const int64_t HW = H * W, W2 = 2 * W, HW4 = 4 * HW, n4 = Cout * 4;
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        float *dT = cw.t + (size_t)THREAD_ID() * cw.t_floats;
        const float *db = dout + b * Cout * HW4;
        /* gather the output gradient back into tap-major order */
        for (int64_t co = 0; co < Cout; co++) {
            float *t00 = dT + (co * 4 + 0) * HW, *t01 = dT + (co * 4 + 1) * HW;
            float *t10 = dT + (co * 4 + 2) * HW, *t11 = dT + (co * 4 + 3) * HW;
            const float *dc = db + co * HW4;
            double sum = 0.0;
            for (int64_t i = 0; i < H; i++) {
                const float *r0 = dc + (2 * i) * W2, *r1 = r0 + W2;
                const int64_t o = i * W;
                for (int64_t j = 0; j < W; j++) {
                    t00[o + j] = r0[2 * j];
                    t01[o + j] = r0[2 * j + 1];
                    t10[o + j] = r1[2 * j];
                    t11[o + j] = r1[2 * j + 1];
                }
            }
            if (dbias) {
                for (int64_t p = 0; p < HW4; p++) sum += dc[p];
                cw.db[b * Cout + co] = sum;
            }
        }
        /* dW_b (Cin, Cout*4) = X_b (Cin, HW) . dT^T (HW, Cout*4) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cin, (int)n4, (int)HW, 1.0f,
                    inp + b * Cin * HW, (int)HW, dT, (int)HW, 0.0f, cw.dw + b * Cin * n4, (int)n4);
        /* dX_b (Cin, HW) (+)= W (Cin, Cout*4) . dT (Cout*4, HW) */
        if (dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cin, (int)HW, (int)n4,
                        1.0f, weight, (int)n4, dT, (int)HW, acc ? 1.0f : 0.0f, dinp + b * Cin * HW,
                        (int)HW);
    }
    sl_nn_blas_leave(prev);
    reduce_parts_f(dweight, cw.dw, B, Cin * n4, threads);
    if (dbias) reduce_parts_d(dbias, cw.db, B, Cout);
}
