/*
 * Convolution (2-D and 3-D, per-axis kernel, stride and padding) and
 * transposed convolution with kernel = stride (per-axis factors) through
 * cblas_sgemm. A 2-D layer is the 3-D one with depth extent 1, kernel 1
 * and stride 1 along that axis: both run the same code.
 *
 * Convolution as a matrix product (im2col): for one sample, the output
 * (Cout, Do*Ho*Wo) is weight (Cout, Cin*Kd*Kh*Kw) times the column matrix
 * whose column p holds the Cin*Kd*Kh*Kw input values under output voxel p.
 * Forming the whole column matrix costs Kd*Kh*Kw times the input in memory
 * traffic (9.4 MB for 16 channels of 128x128 in 2-D, 27x the input in 3-D),
 * which then has to come back from DRAM for the product. Instead the output
 * "rows" -- the (od, oh) pairs, each a row of Wo voxels -- are cut into
 * tiles of a few rows, each tile's column block (~256 KB) is formed and
 * multiplied while it is still in L2. The tile boundaries depend only on
 * the layer shape, so each output value is computed by the same sequence
 * of operations whatever the thread count.
 *
 * Threads: the forward splits (sample, tile) pairs among OpenMP threads.
 * The backward splits samples: within a sample, tiles of the input
 * gradient overlap by the kernel halo and are added in tile order, and the
 * weight gradient of each sample goes to its own partial buffer; partials
 * are added in sample order at the end (deterministic, no atomics).
 *
 * A 1x1(x1) convolution with stride 1 needs no column matrix at all: the
 * input sample (Cin, D*H*W) is the column matrix.
 *
 * On a CPU with AVX-512, a same convolution (every 3x3 and 3x3x3 layer of
 * the U-Nets) skips all of the above: conv_same.c reads the input in place
 * for the forward, the input gradient and the weight gradient (about 2x
 * the whole 3-D training step; docs/nn.md). Its results differ from the
 * cblas path's in the last bits (another summation order), and are, like
 * them, the same for any thread count.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <cblas.h>
#include "conv_same.h"
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

/* ---- shapes ------------------------------------------------------------ */

sl_conv_shape sl_conv_shape_2d(const sl_conv2d_shape *s)
{
    sl_conv_shape t = {s->B, s->C1, s->C2, s->Cout, {1, s->H, s->W}, {1, s->K, s->K},
                       {1, s->stride, s->stride}, {0, s->pad, s->pad}};
    return t;
}

int64_t sl_conv_out(const sl_conv_shape *s, int axis)
{
    if (!s || axis < 0 || axis > 2) return -1;
    const int k = s->k[axis], st = s->stride[axis], pad = s->pad[axis];
    const int64_t n = s->in[axis];
    if (k < 1 || st < 1 || pad < 0 || n < 1 || n + 2 * pad < k) return -1;
    return (n + 2 * pad - k) / st + 1;
}

int64_t sl_conv2d_out_h(const sl_conv2d_shape *s)
{
    if (!s) return -1;
    sl_conv_shape t = sl_conv_shape_2d(s);
    return sl_conv_out(&t, 1);
}

int64_t sl_conv2d_out_w(const sl_conv2d_shape *s)
{
    if (!s) return -1;
    sl_conv_shape t = sl_conv_shape_2d(s);
    return sl_conv_out(&t, 2);
}

static int64_t kvol(const sl_conv_shape *s) { return (int64_t)s->k[0] * s->k[1] * s->k[2]; }

static int is_direct(const sl_conv_shape *s)
{
    for (int a = 0; a < 3; a++)
        if (s->k[a] != 1 || s->stride[a] != 1 || s->pad[a] != 0) return 0;
    return s->C2 == 0;
}

/* A "same" convolution: stride 1, odd kernel with pad (k-1)/2 on every
 * axis (so the output has the input's extent), and not 1x1x1. */
static int is_same(const sl_conv_shape *s)
{
    int big = 0;
    for (int a = 0; a < 3; a++) {
        if (s->stride[a] != 1 || !(s->k[a] & 1) || s->pad[a] != (s->k[a] - 1) / 2) return 0;
        big |= s->k[a] > 1;
    }
    return big;
}

/* Output extents, 0 when the shape is invalid. */
static int out_ext(const sl_conv_shape *s, int64_t o[3])
{
    for (int a = 0; a < 3; a++)
        if ((o[a] = sl_conv_out(s, a)) < 1) return 0;
    return 1;
}

/* Output rows (od, oh pairs of Wo voxels) per tile. */
static int64_t conv_tile_rows(const sl_conv_shape *s, int64_t rows_total, int64_t Wo)
{
    if (is_direct(s)) return rows_total;
    int64_t ck = (s->C1 + s->C2) * kvol(s);
    int64_t cols = TILE_FLOATS / (ck > 0 ? ck : 1);
    if (cols < TILE_MIN_COLS) cols = TILE_MIN_COLS;
    int64_t rows = cols / Wo;
    if (rows < 1) rows = 1;
    if (rows > rows_total) rows = rows_total;
    return rows;
}

/* The convolution that computes the input gradient of a same convolution:
 * Cout input channels (the output gradient), Cin output channels, the same
 * kernel and padding. */
static sl_conv_shape grad_shape(const sl_conv_shape *s)
{
    sl_conv_shape t = *s;
    t.C1 = s->Cout;
    t.C2 = 0;
    t.Cout = s->C1 + s->C2;
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
    float *wflip;   /* (Cin, Cout, Kd, Kh, Kw), same convolutions */
    float *dw;      /* B x Cout x ck */
    double *db;     /* B x Cout */
    float *apack;   /* same convolutions: the (flipped) weight packed for conv_same */
    uint16_t *masks; /* same convolutions: threads x SL_CS_DW_MASKS, for conv_same */
    size_t tile_floats, dtile_floats;
    size_t bytes;
} conv_work;

static int conv_layout(conv_work *cw, void *base, const sl_conv_shape *s, int threads)
{
    int64_t o[3], kv, nin, nout;
    if (!out_ext(s, o) || s->B < 1 || s->C1 < 1 || s->C2 < 0 || s->Cout < 1) return 0;
    if (sl_mul3_size(s->k[0], s->k[1], s->k[2], &kv)) return 0;
    int64_t ck, tile = 0, dwn, t;
    if (sl_mul_size(s->C1 + s->C2, kv, &ck)) return 0;
    if (sl_mul3_size(s->in[0], s->in[1], s->in[2], &nin) || sl_mul3_size(o[0], o[1], o[2], &nout))
        return 0;
    /* cblas takes int sizes and leading dimensions */
    if (ck > INT_MAX || s->Cout > INT_MAX || nin > INT_MAX || nout > INT_MAX) return 0;
    if (!is_direct(s) && sl_mul3_size(ck, conv_tile_rows(s, o[0] * o[1], o[2]), o[2], &tile))
        return 0;
    if (sl_mul3_size(s->B, s->Cout, ck, &dwn)) return 0;
    int64_t dtile = tile, dt, wf = 0;
    if (is_same(s)) {
        sl_conv_shape g = grad_shape(s);
        int64_t gk;
        if (sl_mul_size(s->Cout, kv, &gk) || gk > INT_MAX ||
            sl_mul3_size(gk, conv_tile_rows(&g, s->in[0] * s->in[1], s->in[2]), s->in[2], &dtile) ||
            sl_mul_size(gk, s->C1 + s->C2, &wf))
            return 0;
    }
    /* the packed weights of conv_same, sized whatever this CPU runs (the
     * work buffer must not depend on the instruction set); the sizes are
     * the weights' own, rounded up to 8 rows */
    int64_t apk = 0, mk = 0;
    if (is_same(s)) {
        mk = (int64_t)SL_CS_DW_MASKS * threads;
        const int64_t fw = sl_conv_same_packed_floats(s->Cout, ck);
        const int64_t gw = sl_conv_same_packed_floats(s->C1, s->Cout * kv) +
                           sl_conv_same_packed_floats(s->C2, s->Cout * kv);
        apk = fw > gw ? fw : gw;
    }
    if (sl_mul_size(tile, threads, &t) || sl_mul_size(dtile, threads, &dt)) return 0;
    size_t tb, dtb, wfb, dwb, dbb, apb, mkb;
    if (sl_bytes(t, sizeof(float), &tb) || sl_bytes(dt, sizeof(float), &dtb) ||
        sl_bytes(wf, sizeof(float), &wfb) || sl_bytes(dwn, sizeof(float), &dwb) ||
        sl_bytes(s->B * s->Cout, sizeof(double), &dbb) || sl_bytes(apk, sizeof(float), &apb) ||
        sl_bytes(mk, sizeof(uint16_t), &mkb))
        return 0;
    carver c = {(char *)base, 0};
    cw->col = carve(&c, tb);
    cw->dcol = carve(&c, dtb);
    cw->wflip = carve(&c, wfb);
    cw->dw = carve(&c, dwb);
    cw->db = carve(&c, dbb);
    cw->apack = carve(&c, apb);
    cw->masks = carve(&c, mkb);
    cw->tile_floats = (size_t)tile;
    cw->dtile_floats = (size_t)dtile;
    cw->bytes = c.used;
    return 1;
}

size_t sl_conv_work_bytes(const sl_conv_shape *s, int threads)
{
    conv_work cw;
    if (threads < 1) threads = 1;
    return s && conv_layout(&cw, NULL, s, threads) ? cw.bytes : 0;
}

size_t sl_conv2d_work_bytes(const sl_conv2d_shape *s, int threads)
{
    if (!s) return 0;
    sl_conv_shape t = sl_conv_shape_2d(s);
    return sl_conv_work_bytes(&t, threads);
}

/* Channel ci of one sample of the concatenated input, or NULL. */
static inline const float *chan_in(const float *in1, const float *in2, int64_t C1, int64_t ci,
                                   int64_t n)
{
    return ci < C1 ? in1 + ci * n : (in2 ? in2 + (ci - C1) * n : NULL);
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

/* The input row (depth slice id, row ih) that output row r = od*Ho + oh
 * reads through kernel taps (kz, ky); -1 in the padding. */
static inline int64_t in_row(const sl_conv_shape *s, int64_t Ho, int64_t r, int kz, int ky)
{
    const int64_t od = r / Ho, oh = r % Ho;
    const int64_t id = od * s->stride[0] - s->pad[0] + kz;
    const int64_t ih = oh * s->stride[1] - s->pad[1] + ky;
    if (id < 0 || id >= s->in[0] || ih < 0 || ih >= s->in[1]) return -1;
    return id * s->in[1] + ih;
}

/* Whether a convolution keeps the H and W extents (stride 1, kernel
 * 2 pad + 1 along both), so that consecutive output rows of one depth
 * slice read consecutive input rows: im2col_tile_hw applies. */
static int keeps_hw(const sl_conv_shape *s)
{
    return s->stride[1] == 1 && s->stride[2] == 1 && s->k[1] == 2 * s->pad[1] + 1 &&
           s->k[2] == 2 * s->pad[2] + 1;
}

/*
 * im2col_tile for a convolution that keeps H and W (keeps_hw): the same
 * column matrix, written with a few long copies instead of one short copy
 * per output row. For tap (kz, ky, kx) the rows of a tile that share a depth
 * slice are, laid end to end, the input rows ih = oh + ky - pad_h laid end
 * to end and shifted by kx - pad_w; so one copy moves the whole run, and the
 * columns it filled from the neighbouring row (the padding) are zeroed after
 * it. The copy reads only inside the run's input rows. Profile of a 3-D
 * step: the per-row version spent 20 % of the step in im2col and memcpy
 * calls on rows of 32 floats.
 */
static void im2col_tile_hw(float *col, const float *in1, const float *in2, const sl_conv_shape *s,
                           int64_t r0, int64_t r1)
{
    const int64_t D = s->in[0], H = s->in[1], W = s->in[2], n = D * H * W, Cin = s->C1 + s->C2;
    const int Kd = s->k[0], Kh = s->k[1], Kw = s->k[2];
    const int64_t nt = (r1 - r0) * W;
    for (int64_t ci = 0; ci < Cin; ci++) {
        const float *src = chan_in(in1, in2, s->C1, ci, n);
        for (int kz = 0; kz < Kd; kz++)
            for (int ky = 0; ky < Kh; ky++)
                for (int kx = 0; kx < Kw; kx++) {
                    float *row = col + (((ci * Kd + kz) * Kh + ky) * Kw + kx) * nt;
                    const int64_t dy = ky - s->pad[1], sh = kx - s->pad[2];
                    /* output columns [lo, hi) read inside the input row */
                    const int64_t lo = sh < 0 ? -sh : 0, hi = sh > 0 ? W - sh : W;
                    for (int64_t r = r0; r < r1;) {
                        const int64_t od = r / H, oh = r % H;
                        const int64_t re = (od + 1) * H < r1 ? (od + 1) * H : r1, nr = re - r;
                        const int64_t id = od * s->stride[0] - s->pad[0] + kz;
                        float *dst = row + (r - r0) * W;
                        /* output rows [va, vb) of this slice read inside the input */
                        int64_t va = oh > -dy ? oh : -dy, vb = oh + nr < H - dy ? oh + nr : H - dy;
                        if (id < 0 || id >= D || hi <= lo || vb <= va) va = vb = oh;
                        /* most runs have no padding rows: skip the empty calls */
                        if (va > oh) memset(dst, 0, (size_t)((va - oh) * W) * sizeof(float));
                        if (oh + nr > vb)
                            memset(dst + (vb - oh) * W, 0, (size_t)((oh + nr - vb) * W) * sizeof(float));
                        if (vb > va) {
                            float *d = dst + (va - oh) * W;
                            const float *sp = src + (id * H + va + dy) * W + sh;
                            const int64_t m = (vb - va) * W;
                            memcpy(d + lo, sp + lo, (size_t)(m - lo - (W - hi)) * sizeof(float));
                            for (int64_t q = 0; q < m; q += W) {
                                for (int64_t x = 0; x < lo; x++) d[q + x] = 0.0f;
                                for (int64_t x = hi; x < W; x++) d[q + x] = 0.0f;
                            }
                        }
                        r = re;
                    }
                }
    }
}

/*
 * col is (C1+C2) * Kd * Kh * Kw rows by (r1 - r0) * Wo columns: row
 * (ci, kz, ky, kx), column (r - r0, ox) for output row r = (od, oh) holds
 * input (ci, od*sd - pd + kz, oh*sh - ph + ky, ox*sw - pw + kx), or 0 in
 * the padding. in1 is (C1, D, H, W), in2 is (C2, D, H, W) of one sample.
 */
static void im2col_tile(float *col, const float *in1, const float *in2, const sl_conv_shape *s,
                        int64_t Ho, int64_t Wo, int64_t r0, int64_t r1)
{
    if (keeps_hw(s)) {
        im2col_tile_hw(col, in1, in2, s, r0, r1);
        return;
    }
    const int64_t W = s->in[2], n = s->in[0] * s->in[1] * W, Cin = s->C1 + s->C2;
    const int Kd = s->k[0], Kh = s->k[1], Kw = s->k[2], st = s->stride[2], pad = s->pad[2];
    const int64_t nt = (r1 - r0) * Wo;
    for (int64_t ci = 0; ci < Cin; ci++) {
        const float *src = chan_in(in1, in2, s->C1, ci, n);
        for (int kz = 0; kz < Kd; kz++)
            for (int ky = 0; ky < Kh; ky++)
                for (int kx = 0; kx < Kw; kx++) {
                    float *row = col + (((ci * Kd + kz) * Kh + ky) * Kw + kx) * nt;
                    int64_t lo, hi;
                    valid_range(W, Wo, st, pad, kx, &lo, &hi);
                    for (int64_t r = r0; r < r1; r++) {
                        float *dst = row + (r - r0) * Wo;
                        int64_t ir = in_row(s, Ho, r, kz, ky);
                        if (ir < 0) {
                            memset(dst, 0, (size_t)Wo * sizeof(float));
                            continue;
                        }
                        const float *srow = src + ir * W - pad + kx;
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
 * position it was read from. d1 is (C1, D, H, W), d2 is (C2, D, H, W) or NULL. */
static void col2im_tile(float *d1, float *d2, const float *dcol, const sl_conv_shape *s,
                        int64_t Ho, int64_t Wo, int64_t r0, int64_t r1)
{
    const int64_t W = s->in[2], n = s->in[0] * s->in[1] * W, Cin = s->C1 + s->C2;
    const int Kd = s->k[0], Kh = s->k[1], Kw = s->k[2], st = s->stride[2], pad = s->pad[2];
    const int64_t nt = (r1 - r0) * Wo;
    for (int64_t ci = 0; ci < Cin; ci++) {
        float *dst = ci < s->C1 ? d1 + ci * n : (d2 ? d2 + (ci - s->C1) * n : NULL);
        if (!dst) continue;
        for (int kz = 0; kz < Kd; kz++)
            for (int ky = 0; ky < Kh; ky++)
                for (int kx = 0; kx < Kw; kx++) {
                    const float *row = dcol + (((ci * Kd + kz) * Kh + ky) * Kw + kx) * nt;
                    int64_t lo, hi;
                    valid_range(W, Wo, st, pad, kx, &lo, &hi);
                    for (int64_t r = r0; r < r1; r++) {
                        int64_t ir = in_row(s, Ho, r, kz, ky);
                        if (ir < 0) continue;
                        float *drow = dst + ir * W - pad + kx;
                        const float *srow = row + (r - r0) * Wo;
                        if (st == 1) {
                            for (int64_t ox = lo; ox < hi; ox++) drow[ox] += srow[ox];
                        } else {
                            for (int64_t ox = lo; ox < hi; ox++) drow[ox * st] += srow[ox];
                        }
                    }
                }
    }
}

/* Output voxels per work unit of same_forward: units are (sample, chunk)
 * pairs, so a batch of 2 still splits among threads. */
#define SAME_CHUNK 512

/* sl_conv_forward of a same convolution through conv_same (AVX-512). */
static void same_forward(float *out, const float *inp1, const float *inp2, const float *weight,
                         const float *bias, const sl_conv_shape *s, float *apack, int threads)
{
    const int64_t n = s->in[0] * s->in[1] * s->in[2], Cout = s->Cout;
    const int64_t ck = (s->C1 + s->C2) * kvol(s), chunks = (n + SAME_CHUNK - 1) / SAME_CHUNK;
    sl_conv_same_pack(apack, weight, ck, Cout, ck);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t u = 0; u < s->B * chunks; u++) {
        const int64_t b = u / chunks, p0 = u % chunks * SAME_CHUNK;
        const int64_t p1 = p0 + SAME_CHUNK < n ? p0 + SAME_CHUNK : n;
        float *ob = out + b * Cout * n;
        if (bias)
            for (int64_t co = 0; co < Cout; co++)
                for (int64_t p = p0; p < p1; p++) ob[co * n + p] = bias[co];
        sl_conv_same_run(ob, apack, Cout, inp1 + b * s->C1 * n, s->C2 ? inp2 + b * s->C2 * n : NULL,
                         s->C1, s->C2, s, p0, p1, bias != NULL);
    }
}

void sl_conv_forward(float *out, const float *inp1, const float *inp2, const float *weight,
                     const float *bias, const sl_conv_shape *s, void *work, int threads)
{
    // out is (B, Cout, Do, Ho, Wo), inp1 is (B, C1, D, H, W), inp2 is (B, C2, D, H, W),
    // weight is (Cout, C1 + C2, Kd, Kh, Kw), bias is (Cout)
    conv_work cw;
    int64_t o[3];
    if (threads < 1) threads = 1;
    if (!conv_layout(&cw, work, s, threads)) return;
    out_ext(s, o);
    const int64_t Ho = o[1], Wo = o[2], nrows = o[0] * o[1], nout = nrows * Wo;
    const int64_t nin = s->in[0] * s->in[1] * s->in[2], Cout = s->Cout;
    const int64_t ck = (s->C1 + s->C2) * kvol(s);
    const int64_t rows = conv_tile_rows(s, nrows, Wo), ntiles = (nrows + rows - 1) / rows;
    const int direct = is_direct(s);
    if (is_same(s) && sl_conv_same_ready(s)) {
        same_forward(out, inp1, inp2, weight, bias, s, cw.apack, threads);
        return;
    }
    const int64_t units = s->B * ntiles;
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t u = 0; u < units; u++) {
        int64_t b = u / ntiles, t = u % ntiles;
        int64_t r0 = t * rows, r1 = r0 + rows < nrows ? r0 + rows : nrows, nt = (r1 - r0) * Wo;
        const float *in1 = inp1 + b * s->C1 * nin;
        const float *in2 = s->C2 ? inp2 + b * s->C2 * nin : NULL;
        float *op = out + b * Cout * nout + r0 * Wo;
        const float *colp;
        int64_t ldb;
        if (direct) {
            colp = in1 + r0 * Wo;
            ldb = nin;
        } else {
            float *col = cw.col + (size_t)THREAD_ID() * cw.tile_floats;
            im2col_tile(col, in1, in2, s, Ho, Wo, r0, r1);
            colp = col;
            ldb = nt;
        }
        float beta = 0.0f;
        if (bias) {
            for (int64_t co = 0; co < Cout; co++)
                for (int64_t p = 0; p < nt; p++) op[co * nout + p] = bias[co];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cout, (int)nt, (int)ck, 1.0f,
                    weight, (int)ck, colp, (int)ldb, beta, op, (int)nout);
    }
    sl_nn_blas_leave(prev);
}

void sl_conv2d_forward(float *out, const float *inp1, const float *inp2, const float *weight,
                       const float *bias, const sl_conv2d_shape *s, void *work, int threads)
{
    sl_conv_shape t = sl_conv_shape_2d(s);
    sl_conv_forward(out, inp1, inp2, weight, bias, &t, work, threads);
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

void sl_conv_backward(float *dinp1, float *dinp2, float *dweight, float *dbias, const float *dout,
                      const float *inp1, const float *inp2, const float *weight,
                      const sl_conv_shape *s, int acc, void *work, int threads)
{
    // dout is (B, Cout, Do, Ho, Wo), inp1/dinp1 are (B, C1, D, H, W), inp2/dinp2 are
    // (B, C2, D, H, W), weight/dweight are (Cout, C1 + C2, Kd, Kh, Kw), dbias is (Cout)
    conv_work cw;
    int64_t o[3];
    if (threads < 1) threads = 1;
    if (!conv_layout(&cw, work, s, threads)) return;
    out_ext(s, o);
    const int64_t Ho = o[1], Wo = o[2], nrows = o[0] * o[1], nout = nrows * Wo;
    const int64_t nin = s->in[0] * s->in[1] * s->in[2], Cout = s->Cout, B = s->B;
    const int64_t KV = kvol(s), Cin = s->C1 + s->C2, ck = Cin * KV;
    const int64_t rows = conv_tile_rows(s, nrows, Wo), ntiles = (nrows + rows - 1) / rows;
    const int direct = is_direct(s);
    if (s->C2 == 0) dinp2 = NULL;
    const int want_dx = dinp1 || dinp2;
    /*
     * The input gradient of a same convolution is itself a same convolution:
     * dX[ci] = sum over co of dY[co] correlated with W[co, ci] rotated by
     * 180 degrees along every axis. Computing it that way (im2col of dY, one
     * sgemm per tile written straight into dX) avoids the column-gradient
     * scatter and the zeroing of dX that col2im needs, about 10 % of a
     * training step.
     */
    const int as_conv = want_dx && is_same(s);
    const sl_conv_shape gs = grad_shape(s);
    const int64_t grows_total = s->in[0] * s->in[1], W = s->in[2];
    const int64_t grows = as_conv ? conv_tile_rows(&gs, grows_total, W) : 1;
    const int64_t gtiles = as_conv ? (grows_total + grows - 1) / grows : 0, gk = Cout * KV;
    if (as_conv)
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int64_t co = 0; co < Cout; co++)
                for (int64_t k = 0; k < KV; k++)
                    cw.wflip[(ci * Cout + co) * KV + k] = weight[(co * Cin + ci) * KV + (KV - 1 - k)];
    /* Same convolutions on AVX-512 go through conv_same: the weight gradient
     * with no column matrix, the input gradient from the flipped weight's
     * rows of inp1's and of inp2's channels, packed. */
    const int same = is_same(s) && sl_conv_same_ready(s);
    float *ap1 = cw.apack, *ap2 = cw.apack + (same ? sl_conv_same_packed_floats(s->C1, gk) : 0);
    if (same && as_conv) {
        sl_conv_same_pack(ap1, cw.wflip, gk, s->C1, gk);
        if (s->C2) sl_conv_same_pack(ap2, cw.wflip + s->C1 * gk, gk, s->C2, gk);
    }
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const float *in1 = inp1 + b * s->C1 * nin;
        const float *in2 = s->C2 ? inp2 + b * s->C2 * nin : NULL;
        float *d1 = dinp1 ? dinp1 + b * s->C1 * nin : NULL;
        float *d2 = dinp2 ? dinp2 + b * s->C2 * nin : NULL;
        const float *dob = dout + b * Cout * nout;
        float *dw = cw.dw + b * Cout * ck;
        float *col = cw.col + (size_t)THREAD_ID() * cw.tile_floats;
        float *dcol = cw.dcol + (size_t)THREAD_ID() * cw.dtile_floats;
        if (dbias) {
            for (int64_t co = 0; co < Cout; co++) {
                double sum = 0.0;
                for (int64_t p = 0; p < nout; p++) sum += dob[co * nout + p];
                cw.db[b * Cout + co] = sum;
            }
        }
        if (same) {
            sl_conv_same_dweight(dw, dob, Cout, in1, in2, s->C1, s->C2, s,
                                 cw.masks + (size_t)THREAD_ID() * SL_CS_DW_MASKS);
            if (d1) sl_conv_same_run(d1, ap1, s->C1, dob, NULL, Cout, 0, &gs, 0, nin, acc);
            if (d2) sl_conv_same_run(d2, ap2, s->C2, dob, NULL, Cout, 0, &gs, 0, nin, acc);
            continue;
        }
        if (!direct && !as_conv && !acc) {
            if (d1) memset(d1, 0, (size_t)(s->C1 * nin) * sizeof(float));
            if (d2) memset(d2, 0, (size_t)(s->C2 * nin) * sizeof(float));
        }
        for (int64_t t = 0; t < ntiles; t++) {
            int64_t r0 = t * rows, r1 = r0 + rows < nrows ? r0 + rows : nrows, nt = (r1 - r0) * Wo;
            const float *dy = dob + r0 * Wo;
            const float *colp;
            int64_t ldb;
            if (direct) {
                colp = in1 + r0 * Wo;
                ldb = nin;
            } else {
                im2col_tile(col, in1, in2, s, Ho, Wo, r0, r1);
                colp = col;
                ldb = nt;
            }
            /* dW_b (Cout, ck) (+)= dY_tile (Cout, nt) . col^T (nt, ck) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cout, (int)ck, (int)nt, 1.0f,
                        dy, (int)nout, colp, (int)ldb, t == 0 ? 0.0f : 1.0f, dw, (int)ck);
            if (!want_dx || as_conv) continue;
            if (direct) {
                /* dX_b tile (Cin, nt) (+)= W^T (Cin, Cout) . dY_tile (Cout, nt) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck, (int)nt, (int)Cout,
                            1.0f, weight, (int)ck, dy, (int)nout, acc ? 1.0f : 0.0f, d1 + r0 * Wo,
                            (int)nin);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck, (int)nt, (int)Cout,
                            1.0f, weight, (int)ck, dy, (int)nout, 0.0f, dcol, (int)nt);
                col2im_tile(d1, d2, dcol, s, Ho, Wo, r0, r1);
            }
        }
        for (int64_t t = 0; t < gtiles; t++) {
            /* dX tile (Cin, nt) (+)= wflip (Cin, Cout Kd Kh Kw) . cols of dY */
            int64_t r0 = t * grows, r1 = r0 + grows < grows_total ? r0 + grows : grows_total;
            int64_t nt = (r1 - r0) * W;
            im2col_tile(dcol, dob, NULL, &gs, s->in[1], W, r0, r1);
            const float beta = acc ? 1.0f : 0.0f;
            if (d1)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->C1, (int)nt, (int)gk,
                            1.0f, cw.wflip, (int)gk, dcol, (int)nt, beta, d1 + r0 * W, (int)nin);
            if (d2)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)s->C2, (int)nt, (int)gk,
                            1.0f, cw.wflip + s->C1 * gk, (int)gk, dcol, (int)nt, beta, d2 + r0 * W,
                            (int)nin);
        }
    }
    sl_nn_blas_leave(prev);
    reduce_parts_f(dweight, cw.dw, B, Cout * ck, threads);
    if (dbias) reduce_parts_d(dbias, cw.db, B, Cout);
}

void sl_conv2d_backward(float *dinp1, float *dinp2, float *dweight, float *dbias,
                        const float *dout, const float *inp1, const float *inp2,
                        const float *weight, const sl_conv2d_shape *s, int acc, void *work,
                        int threads)
{
    sl_conv_shape t = sl_conv_shape_2d(s);
    sl_conv_backward(dinp1, dinp2, dweight, dbias, dout, inp1, inp2, weight, &t, acc, work, threads);
}

/* ---- transposed convolution, kernel = stride = f per axis --------------
 * Every output voxel (z*fd + a, y*fh + b, x*fw + c) receives exactly one
 * input voxel (z, y, x) through tap (a, b, c): per sample,
 * T (Cout*F, DHW) = W^T (Cout*F, Cin) . X (Cin, DHW) is one sgemm
 * (F = fd*fh*fw), and the output is T with its rows interleaved into the
 * finer grid (no overlap, so no accumulation). */

typedef struct convt_work {
    float *t;   /* threads x (Cout*F*DHW) */
    float *dw;  /* B x Cin x Cout*F */
    double *db; /* B x Cout */
    size_t t_floats;
    size_t bytes;
} convt_work;

static int convt_layout(convt_work *cw, void *base, int64_t B, int64_t Cin, int64_t Cout,
                        const int64_t in[3], const int f[3], int threads)
{
    int64_t tf, tt, dwn, n, F;
    size_t tb, dwb, dbb;
    if (B < 1 || Cin < 1 || Cout < 1) return 0;
    for (int a = 0; a < 3; a++)
        if (in[a] < 1 || f[a] < 1) return 0;
    if (sl_mul3_size(in[0], in[1], in[2], &n) || sl_mul3_size(f[0], f[1], f[2], &F)) return 0;
    if (sl_mul3_size(Cout, F, n, &tf) || sl_mul_size(tf, threads, &tt) ||
        sl_mul3_size(B, Cin, Cout * F, &dwn))
        return 0;
    if (Cin > INT_MAX || Cout * F > INT_MAX || n > INT_MAX) return 0;
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

size_t sl_convt_work_bytes(int64_t B, int64_t Cin, int64_t Cout, const int64_t in[3],
                           const int f[3], int threads)
{
    convt_work cw;
    if (threads < 1) threads = 1;
    return convt_layout(&cw, NULL, B, Cin, Cout, in, f, threads) ? cw.bytes : 0;
}

/* The row of the output grid (D fd, H fh, W fw) that input row (z, y) of
 * tap (a, b, c) lands on; its voxels follow with stride fw. */
static inline int64_t convt_row(const int64_t in[3], const int f[3], int64_t z, int64_t y, int a,
                                int b, int c)
{
    return ((z * f[0] + a) * (in[1] * f[1]) + (y * f[1] + b)) * (in[2] * f[2]) + c;
}

/* out (one channel of the fine grid) gets tap plane t (D, H, W) + bias. */
static void convt_scatter(float *o, const float *t, const int64_t in[3], const int f[3], int a,
                          int b, int c, float bias)
{
    const int64_t H = in[1], W = in[2];
    for (int64_t z = 0; z < in[0]; z++)
        for (int64_t y = 0; y < H; y++) {
            float *orow = o + convt_row(in, f, z, y, a, b, c);
            const float *trow = t + (z * H + y) * W;
            for (int64_t x = 0; x < W; x++) orow[x * f[2]] = trow[x] + bias;
        }
}

/* The inverse: tap plane t (D, H, W) gathered from one channel of the grid. */
static void convt_gather(float *t, const float *o, const int64_t in[3], const int f[3], int a,
                         int b, int c)
{
    const int64_t H = in[1], W = in[2];
    for (int64_t z = 0; z < in[0]; z++)
        for (int64_t y = 0; y < H; y++) {
            const float *orow = o + convt_row(in, f, z, y, a, b, c);
            float *trow = t + (z * H + y) * W;
            for (int64_t x = 0; x < W; x++) trow[x] = orow[x * f[2]];
        }
}

void sl_convt_forward(float *out, const float *inp, const float *weight, const float *bias,
                      int64_t B, int64_t Cin, int64_t Cout, const int64_t in[3], const int f[3],
                      void *work, int threads)
{
    // out is (B, Cout, D fd, H fh, W fw), inp is (B, Cin, D, H, W),
    // weight is (Cin, Cout, fd, fh, fw), bias is (Cout)
    convt_work cw;
    if (threads < 1) threads = 1;
    if (!convt_layout(&cw, work, B, Cin, Cout, in, f, threads)) return;
    const int F = f[0] * f[1] * f[2];
    const int64_t n = in[0] * in[1] * in[2], nF = n * F;
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        float *T = cw.t + (size_t)THREAD_ID() * cw.t_floats;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(Cout * F), (int)n, (int)Cin,
                    1.0f, weight, (int)(Cout * F), inp + b * Cin * n, (int)n, 0.0f, T, (int)n);
        float *ob = out + b * Cout * nF;
        for (int64_t co = 0; co < Cout; co++) {
            const float bv = bias ? bias[co] : 0.0f;
            int tap = 0;
            for (int ta = 0; ta < f[0]; ta++)
                for (int tb = 0; tb < f[1]; tb++)
                    for (int tc = 0; tc < f[2]; tc++, tap++)
                        convt_scatter(ob + co * nF, T + (co * F + tap) * n, in, f, ta, tb, tc, bv);
        }
    }
    sl_nn_blas_leave(prev);
}

void sl_convt_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *weight, int64_t B, int64_t Cin,
                       int64_t Cout, const int64_t in[3], const int f[3], int acc, void *work,
                       int threads)
{
    // dout is (B, Cout, D fd, H fh, W fw), inp/dinp are (B, Cin, D, H, W),
    // weight/dweight are (Cin, Cout, fd, fh, fw), dbias is (Cout)
    convt_work cw;
    if (threads < 1) threads = 1;
    if (!convt_layout(&cw, work, B, Cin, Cout, in, f, threads)) return;
    const int F = f[0] * f[1] * f[2];
    const int64_t n = in[0] * in[1] * in[2], nF = n * F, nC = Cout * F;
    int prev = sl_nn_blas_enter();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        float *dT = cw.t + (size_t)THREAD_ID() * cw.t_floats;
        const float *db = dout + b * Cout * nF;
        /* gather the output gradient back into tap-major order */
        for (int64_t co = 0; co < Cout; co++) {
            int tap = 0;
            for (int ta = 0; ta < f[0]; ta++)
                for (int tb = 0; tb < f[1]; tb++)
                    for (int tc = 0; tc < f[2]; tc++, tap++)
                        convt_gather(dT + (co * F + tap) * n, db + co * nF, in, f, ta, tb, tc);
            if (dbias) {
                double sum = 0.0;
                for (int64_t p = 0; p < nF; p++) sum += db[co * nF + p];
                cw.db[b * Cout + co] = sum;
            }
        }
        /* dW_b (Cin, Cout*F) = X_b (Cin, n) . dT^T (n, Cout*F) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Cin, (int)nC, (int)n, 1.0f,
                    inp + b * Cin * n, (int)n, dT, (int)n, 0.0f, cw.dw + b * Cin * nC, (int)nC);
        /* dX_b (Cin, n) (+)= W (Cin, Cout*F) . dT (Cout*F, n) */
        if (dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Cin, (int)n, (int)nC,
                        1.0f, weight, (int)nC, dT, (int)n, acc ? 1.0f : 0.0f, dinp + b * Cin * n,
                        (int)n);
    }
    sl_nn_blas_leave(prev);
    reduce_parts_f(dweight, cw.dw, B, Cin * nC, threads);
    if (dbias) reduce_parts_d(dbias, cw.db, B, Cout);
}

/* The 2-D decoder's 2x2 stride-2 transposed convolution. */
static const int F2x2[3] = {1, 2, 2};

size_t sl_convt2x2_work_bytes(int64_t B, int64_t Cin, int64_t Cout, int64_t H, int64_t W,
                              int threads)
{
    const int64_t in[3] = {1, H, W};
    return sl_convt_work_bytes(B, Cin, Cout, in, F2x2, threads);
}

void sl_convt2x2_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int64_t B, int64_t Cin, int64_t Cout, int64_t H, int64_t W, void *work,
                         int threads)
{
    const int64_t in[3] = {1, H, W};
    sl_convt_forward(out, inp, weight, bias, B, Cin, Cout, in, F2x2, work, threads);
}

void sl_convt2x2_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int64_t B, int64_t Cin,
                          int64_t Cout, int64_t H, int64_t W, int acc, void *work, int threads)
{
    const int64_t in[3] = {1, H, W};
    sl_convt_backward(dinp, dweight, dbias, dout, inp, weight, B, Cin, Cout, in, F2x2, acc, work,
                      threads);
}
