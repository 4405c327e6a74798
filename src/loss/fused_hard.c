/*
 * topk and ohem on the fused path: softmax scores, a label map, one term.
 *
 * The plain path (topk.c) materialises p and log p (N, C, S), builds a
 * double per voxel, selects and writes the gradient: about eight passes
 * over (N, C, S) memory. Here:
 *   pass 1: per voxel, ℓ = log Σ_c exp(x_c − mx) + (mx − x_y) from the
 *           scores (no probability tensor), −1 where ignored, into a float
 *           per voxel; topk also counts ℓ's top 16 bits per thread, ohem
 *           counts its hard voxels (p_true = exp(−ℓ) < thresh, decided as
 *           topk.c decides it); the finiteness of the scores on the way.
 *           On 2..8 classes ℓ, the probabilities and the check come from
 *           fused_dce.c's block kernel (16 voxels in registers, the same
 *           arithmetic and bits as the generic block here: 0.76-0.83x);
 *   select: the K-th largest ℓ, T, from the histogram's bucket that holds
 *           rank K (quickselect on that bucket's values only, no sort); ℓ > T
 *           is taken and ℓ == T in index order (sample, voxel), lowest first,
 *           as topk.c does;
 *   pass 2: per voxel, the gradient k·(p − onehot) for the selected voxels
 *           and 0 elsewhere, and Σ ℓ selected. When the gradient is wanted,
 *           pass 1 leaves p in its rows (as fused_dce.c does) and pass 2
 *           turns them into the gradient in place: the exponentials once.
 * ℓ uses sl_exp_nonpos and sl_log_pos (≤ 2 ulp) where the plain path takes
 * log p from a double log, so the two differ by float rounding: the value
 * and gradient agree to 1e-6 (tests/unit/test_fused.c); a voxel's place
 * relative to T could only differ for two ℓ within a few ulp of each other
 * across the boundary (exact ties are the same in both: identical inputs
 * give identical ℓ).
 * Not here (the plain path takes them): a voxel mask, soft targets, the
 * sigmoid and activation=none forms, a sum reducer. reduction=none runs
 * each sample as a batch of one, so it comes here too.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"
#include "fused.h"
#include "fused_dce.h"

extern const sl_term_class sl_loss_topk, sl_loss_ohem;

#define HB 256          /* voxels per block */
#define NBUCKET 32768   /* top 16 bits of a non-negative float: sign bit 0 */
#define HLANES 16
#if defined(__GNUC__)
#define HB_INLINE __attribute__((always_inline)) inline
#else
#define HB_INLINE
#endif

typedef struct {
    const sl_ctx *cx;
    int ohem;
    int32_t ignore;      /* the ignore label, or INT32_MIN: none (labels are >= 0 then) */
    double lo, hi;       /* ohem: ℓ > hi is hard, ℓ < lo is not, between exp(−ℓ) < thresh decides */
    double thresh;
    float *l;            /* [N·S] ℓ, −1 where ignored */
    int64_t *hist;       /* topk: [threads][NBUCKET] */
    /* pass 2 */
    int mode;            /* 0: ℓ > T (and ℓ == T when every tie is taken), 1: ohem's hard set */
    float T;
    int all_ties;
    const int64_t *quota; /* per chunk, ties of T it takes (when !all_ties) */
    float k;             /* weight / K */
    float *grad;
    sl_dce_hard_fn h16;  /* fused_dce.c's pass-1 block on 2..8 classes, or NULL */
} hard_job;

typedef struct {
    int64_t valid, hard;
    int bad;
} hard_part;

static inline unsigned bucket(float v)
{
    uint32_t u;
    v += 0.0f; /* −0 → +0 */
    memcpy(&u, &v, sizeof u);
    return u >> 16;
}

/* ohem's predicate, as topk.c's on the double of the same float: outside the
 * margin the comparison decides, inside it exp does. */
static inline int ohem_hard(const hard_job *j, float lf)
{
    const double l = lf;
    return l > j->hi ? 1 : l < j->lo ? 0 : exp(-l) < j->thresh;
}

/* Softmax pieces of one block: mx[i], sum[i] = Σ_c e_c and, when p is not
 * NULL, p[c*HB + i] = e_c / sum (as fused.c's block_probs). */
static HB_INLINE void hb_softmax(const float *xn, int64_t C, int64_t S, int64_t s0, int64_t len, float *mx,
                                 float *sum, float *p, int64_t stride)
{
    sl_block_expsum(xn, C, S, s0, len, stride, mx, sum, p);
    if (!p) return;
    float r[HB];
    for (int64_t i = 0; i < len; i++) r[i] = 1.0f / sum[i];
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < len; i++) p[c * stride + i] *= r[i];
}

/* The selection of one block into sel[i] (1 or 0); *ties: chunk's remaining
 * quota of ℓ == T. Returns the number selected. */
static HB_INLINE int hard_select(const hard_job *j, const float *l, int64_t len, float *sel, int64_t *ties)
{
    int cnt = 0;
    if (j->mode == 1) {
        for (int64_t i = 0; i < len; i++) {
            const double v = l[i];
            sel[i] = v > j->hi ? 1.0f : 0.0f;
            cnt += v >= j->lo && v <= j->hi; /* inside the margin: exp decides, below */
        }
        if (cnt)
            for (int64_t i = 0; i < len; i++)
                if ((double)l[i] >= j->lo && (double)l[i] <= j->hi) sel[i] = ohem_hard(j, l[i]) ? 1.0f : 0.0f;
    } else {
        const float T = j->T;
        int eq = 0;
        if (j->all_ties)
            for (int64_t i = 0; i < len; i++) sel[i] = l[i] >= T ? 1.0f : 0.0f;
        else
            for (int64_t i = 0; i < len; i++) {
                sel[i] = l[i] > T ? 1.0f : 0.0f;
                eq += l[i] == T;
            }
        if (eq) /* ties taken in index order while the chunk's quota lasts */
            for (int64_t i = 0; i < len && *ties > 0; i++)
                if (l[i] == T) sel[i] = 1.0f, (*ties)--;
    }
    cnt = 0;
    for (int64_t i = 0; i < len; i++) cnt += sel[i] != 0;
    return cnt;
}

/* Pass 1 over voxels [a, b) of sample n. hist: this thread's counts or NULL. */
static HB_INLINE void hard_pass1_body(const hard_job *j, int64_t n, int64_t a, int64_t b, int64_t *hist,
                                      hard_part *out)
{
    const sl_ctx *cx = j->cx;
    const int64_t C = cx->C, S = cx->S;
    const float *xn = cx->x + n * C * S;
    float *gn = j->grad ? j->grad + n * C * S : NULL;
    float mx[HB], sum[HB], xy[HB];
    int bad = 0;
    int64_t valid = 0, hard = 0;
    for (int64_t s0 = a; s0 < b; s0 += HB) {
        const int64_t len = b - s0 < HB ? b - s0 : HB;
        const int32_t *lab = cx->target->labels + n * S + s0;
        float *l = j->l + n * S + s0;
        if (j->h16) { /* 2..8 classes: 16 voxels in registers (fused_dce.c), the same arithmetic */
            valid += j->h16(xn, cx->target->labels + n * S, S, s0, len, j->ignore, l, gn, &bad);
        } else {
            hb_softmax(xn, C, S, s0, len, mx, sum, gn ? gn + s0 : NULL, S); /* p kept in the gradient's rows */
            for (int64_t i = 0; i < len; i++) xy[i] = 0;
            for (int64_t c = 0; c < C; c++) {
                const int32_t cc = (int32_t)c;
                const float *xc = xn + c * S + s0;
                for (int64_t i = 0; i < len; i++) {
                    bad |= !(fabsf(xc[i]) <= FLT_MAX);
                    xy[i] += lab[i] == cc ? xc[i] : 0.0f; /* one class matches: exact */
                }
            }
            int nv = 0;
            for (int64_t i = 0; i < len; i++) {
                const int ok = lab[i] != j->ignore;
                l[i] = ok ? sl_log_pos(sum[i]) + (mx[i] - xy[i]) : -1.0f; /* sum >= 1: the largest term is e^0 */
                nv += ok;
            }
            valid += nv;
        }
        if (hist)
            for (int64_t i = 0; i < len; i++)
                if (l[i] >= 0) hist[bucket(l[i])]++;
        if (j->ohem) { /* the predicate pass 2 applies (hard_select): ℓ = −1 is never hard */
            float sel[HB];
            int64_t none = 0;
            hard += hard_select(j, l, len, sel, &none);
        }
    }
    out->valid = valid, out->hard = hard, out->bad = bad;
}

/* Pass 2 over [a, b) of sample n (chunk ch): gradient and Σ ℓ selected. */
static HB_INLINE double hard_pass2_body(const hard_job *j, int64_t n, int64_t ch, int64_t a, int64_t b)
{
    const sl_ctx *cx = j->cx;
    const int64_t C = cx->C, S = cx->S;
    float *gn = j->grad ? j->grad + n * C * S : NULL;
    float sel[HB];
    int64_t ties = j->quota ? j->quota[n * sl_nchunks(S) + ch] : 0;
    double acc = 0;
    for (int64_t s0 = a; s0 < b; s0 += HB) {
        const int64_t len = b - s0 < HB ? b - s0 : HB;
        const float *l = j->l + n * S + s0;
        const int cnt = hard_select(j, l, len, sel, &ties);
        float lane[HLANES] = {0};
        int64_t i = 0;
        for (; i + HLANES <= len; i += HLANES)
            for (int q = 0; q < HLANES; q++) lane[q] += sel[i + q] * l[i + q]; /* sel is 0 where ℓ = −1 */
        for (int q = 0; i < len; i++, q++) lane[q] += sel[i] * l[i];
        for (int q = 0; q < HLANES; q++) acc += (double)lane[q];
        if (!gn) continue;
        if (cnt == 0) { /* nothing selected: zeros, no exponentials */
            for (int64_t c = 0; c < C; c++) memset(gn + c * S + s0, 0, sizeof(float) * (size_t)len);
            continue;
        }
        const int32_t *lab = cx->target->labels + n * S + s0;
        for (i = 0; i < len; i++) sel[i] *= j->k;
        for (int64_t c = 0; c < C; c++) { /* pass 1 left p there: the gradient in place */
            const int32_t cc = (int32_t)c;
            float *o = gn + c * S + s0;
            for (i = 0; i < len; i++) o[i] = sel[i] * (o[i] - (lab[i] == cc ? 1.0f : 0.0f));
        }
    }
    return acc;
}

/* The kernels per instruction set (as fused.c's: same bits on each). */
typedef void (*hp1_fn)(const hard_job *, int64_t, int64_t, int64_t, int64_t *, hard_part *);
typedef double (*hp2_fn)(const hard_job *, int64_t, int64_t, int64_t, int64_t);
static void hp1_base(const hard_job *j, int64_t n, int64_t a, int64_t b, int64_t *h, hard_part *o)
{
    hard_pass1_body(j, n, a, b, h, o);
}
static double hp2_base(const hard_job *j, int64_t n, int64_t ch, int64_t a, int64_t b)
{
    return hard_pass2_body(j, n, ch, a, b);
}
#if SL_X86
SL_T_AVX2 static void hp1_avx2(const hard_job *j, int64_t n, int64_t a, int64_t b, int64_t *h, hard_part *o)
{
    hard_pass1_body(j, n, a, b, h, o);
}
SL_T_AVX2 static double hp2_avx2(const hard_job *j, int64_t n, int64_t ch, int64_t a, int64_t b)
{
    return hard_pass2_body(j, n, ch, a, b);
}
SL_T_AVX512 static void hp1_avx512(const hard_job *j, int64_t n, int64_t a, int64_t b, int64_t *h, hard_part *o)
{
    hard_pass1_body(j, n, a, b, h, o);
}
SL_T_AVX512 static double hp2_avx512(const hard_job *j, int64_t n, int64_t ch, int64_t a, int64_t b)
{
    return hard_pass2_body(j, n, ch, a, b);
}
#endif

/* ---- selection ------------------------------------------------------------------ */

static inline void swap_f(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

/* Value of rank r (0-based, ascending) of a[0..n); reorders a. Quickselect
 * with a 3-way partition and a median-of-three pivot; past a depth limit
 * (pathological pivots) insertion sort of what is left. */
static float select_rank_f(float *a, int64_t n, int64_t r)
{
    int64_t lo = 0, hi = n;
    for (int depth = 0; hi - lo > 16 && depth < 64; depth++) {
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi - 1];
        float piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t lt = lo, i = lo, gt = hi - 1;
        while (i <= gt) {
            if (a[i] < piv) swap_f(&a[lt++], &a[i++]);
            else if (a[i] > piv) swap_f(&a[i], &a[gt--]);
            else i++;
        }
        if (r < lt) hi = lt;
        else if (r > gt) lo = gt + 1;
        else return piv;
    }
    for (int64_t i = lo + 1; i < hi; i++) /* insertion sort of the rest */
        for (int64_t k = i; k > lo && a[k - 1] > a[k]; k--) swap_f(&a[k - 1], &a[k]);
    return a[r];
}

/* T, the K-th largest of the valid ℓ (hist: the merged bucket counts), and
 * how many ℓ are above it and equal to it. */
static sl_status find_threshold(const hard_job *j, int64_t M, const int64_t *hist, int64_t valid, int64_t K,
                                int threads, float *T, int64_t *above, int64_t *eq)
{
    const int64_t r = valid - K; /* ascending rank of T */
    int64_t below = 0;
    unsigned bk = 0;
    while (below + hist[bk] <= r) below += hist[bk++];
    const int64_t m = hist[bk];
    int64_t higher = valid - below - m;
    /* each thread gathers its share of the bucket into its own slot of m */
    float *tmp = sl_malloc(m * (int64_t)threads, sizeof(float));
    int64_t *got = sl_calloc(threads, sizeof(int64_t));
    if (!tmp || !got) {
        free(tmp), free(got);
        return SL_ENOMEM;
    }
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int t = 0, nt = 1;
#endif
        const int64_t i0 = M * t / nt, i1 = M * (t + 1) / nt;
        float *dst = tmp + m * t;
        int64_t c = 0;
        for (int64_t i = i0; i < i1; i++)
            if (j->l[i] >= 0 && bucket(j->l[i]) == bk) dst[c++] = j->l[i];
        got[t] = c;
    }
    int64_t c = got[0];
    for (int t = 1; t < threads; t++) {
        memmove(tmp + c, tmp + m * t, sizeof(float) * (size_t)got[t]);
        c += got[t];
    }
    *T = select_rank_f(tmp, m, r - below);
    int64_t gt = 0, e = 0;
    for (int64_t i = 0; i < m; i++) gt += tmp[i] > *T, e += tmp[i] == *T;
    *above = higher + gt;
    *eq = e;
    free(tmp);
    free(got);
    return SL_OK;
}

/* The ties ℓ == T of one (sample, chunk), counted into q. */
typedef struct tie_run {
    const hard_job *j;
    int64_t *q;
    int64_t nch;
} tie_run;

static void count_ties(void *arg, int64_t n, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread)
{
    const tie_run *r = arg;
    const int64_t S = r->j->cx->S;
    int64_t e = 0;
    (void)scratch, (void)thread;
    for (int64_t s = lo; s < hi; s++) e += r->j->l[n * S + s] == r->j->T;
    r->q[n * r->nch + ch] = e;
}

/* Per chunk, how many of the ties ℓ == T it takes: the first `take` in index order. */
static int64_t *tie_quotas(const hard_job *j, int64_t take, int threads)
{
    const int64_t N = j->cx->N, S = j->cx->S, nch = sl_nchunks(S);
    int64_t *q = sl_calloc(N * nch, sizeof(int64_t));
    if (!q) return NULL;
    tie_run r = {j, q, nch};
    sl_for_chunks(N, S, threads, 0, count_ties, &r); /* no scratch: cannot fail */
    for (int64_t i = 0; i < N * nch; i++) {
        const int64_t e = q[i] < take ? q[i] : take;
        q[i] = e;
        take -= e;
    }
    return q;
}

/* ---- entry points --------------------------------------------------------------- */

int sl_fused_hard_eligible(const sl_term *terms, int nterms, const sl_target *tg, int act)
{
    if (nterms != 1 || (terms[0].cls != &sl_loss_topk && terms[0].cls != &sl_loss_ohem)) return 0;
    return act == SL_ACT_SOFTMAX && tg->kind == SL_TARGET_LABELS && !tg->mask;
}

/* One (sample, chunk) of either pass: pass 1 into its part and its
 * thread's histogram, pass 2's sum into sums. */
typedef struct hard_run {
    const hard_job *j;
    hp1_fn p1;
    hp2_fn p2;
    hard_part *part;
    int64_t *hist;
    double *sums;
    int64_t nch;
} hard_run;

static void pass1_chunk(void *arg, int64_t n, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread)
{
    const hard_run *r = arg;
    (void)scratch;
    r->p1(r->j, n, lo, hi, r->hist ? r->hist + (int64_t)thread * NBUCKET : NULL, &r->part[n * r->nch + ch]);
}

static void pass2_chunk(void *arg, int64_t n, int64_t ch, int64_t lo, int64_t hi, void *scratch, int thread)
{
    const hard_run *r = arg;
    (void)thread;
    (void)scratch;
    r->sums[n * r->nch + ch] = r->p2(r->j, n, ch, lo, hi);
}

/* Pass 1 in parallel; merges the histograms into hist[0..NBUCKET) when given. */
static int run_pass1(hard_job *j, hp1_fn fn, hard_part *part, int64_t *hist, int threads)
{
    const int64_t N = j->cx->N, S = j->cx->S, nch = sl_nchunks(S);
    hard_run r = {.j = j, .p1 = fn, .part = part, .hist = hist, .nch = nch};
    sl_for_chunks(N, S, threads, 0, pass1_chunk, &r); /* no scratch: cannot fail */
    int bad = 0;
    for (int64_t i = 0; i < N * nch; i++) bad |= part[i].bad;
    if (hist)
        for (int t = 1; t < threads; t++)
            for (int64_t k = 0; k < NBUCKET; k++) hist[k] += hist[(int64_t)t * NBUCKET + k];
    return bad;
}

sl_status sl_fused_hard(sl_term *t, const sl_ctx *cx, double *value, float *grad, char *msg, size_t msglen)
{
    const int64_t N = cx->N, C = cx->C, S = cx->S, nch = sl_nchunks(S);
    const sl_params *pr = &t->prm;
    const char *name = t->cls->info.name;
    const int threads = cx->threads > 0 ? cx->threads : 1;
    hard_job j = {.cx = cx, .ohem = t->cls == &sl_loss_ohem, .grad = grad};
    j.ignore = isnan(pr->ignore_index) ? INT32_MIN : (int32_t)pr->ignore_index;
    j.h16 = sl_dce_hard_kernel(C, sl_isa());
    if (j.ohem) { /* topk.c's bounds; pass 1 counts the hard set (mode 1) */
        j.mode = 1;
        const double L0 = pr->thresh > 0 ? -log(pr->thresh) : INFINITY, dl = 1e-9 * (1 + fabs(L0));
        j.thresh = pr->thresh;
        j.lo = pr->thresh > 0 ? L0 - dl : INFINITY; /* thresh 0: nothing is hard */
        j.hi = pr->thresh > 0 ? L0 + dl : INFINITY;
    }
    j.l = sl_malloc(N * S, sizeof(float));
    hard_part *part = sl_calloc(N * nch, sizeof(hard_part));
    j.hist = j.ohem ? NULL : sl_calloc((int64_t)threads * NBUCKET, sizeof(int64_t));
    double *sums = sl_calloc(N * nch, sizeof(double));
    int64_t *quota = NULL;
    sl_status st = j.l && part && sums && (j.ohem || j.hist) ? SL_OK : SL_ENOMEM;
    hp1_fn p1 = hp1_base;
    hp2_fn p2 = hp2_base;
#if SL_X86
    switch (sl_isa()) {
    case SL_ISA_AVX512: p1 = hp1_avx512, p2 = hp2_avx512; break;
    case SL_ISA_AVX2: p1 = hp1_avx2, p2 = hp2_avx2; break;
    default: break;
    }
#endif
    if (st != SL_OK) goto done;
    if (run_pass1(&j, p1, part, j.hist, threads)) {
        st = sl_errf(msg, msglen, SL_ENONFINITE, "loss: the scores contain NaN or Inf");
        goto done;
    }
    int64_t valid = 0, hard = 0, K = 0;
    for (int64_t i = 0; i < N * nch; i++) valid += part[i].valid, hard += part[i].hard;
    if (j.ohem) {
        K = hard, j.mode = 1;
        const int64_t kmin = (int64_t)floor((double)valid * pr->min_kept);
        if (hard < kmin) { /* the kmin largest instead: a histogram pass of its own */
            K = kmin, j.mode = 0;
            j.hist = sl_calloc((int64_t)threads * NBUCKET, sizeof(int64_t));
            if (!j.hist) st = SL_ENOMEM;
            else {
#pragma omp parallel num_threads(threads)
                {
#ifdef _OPENMP
                    int64_t *h = j.hist + (int64_t)omp_get_thread_num() * NBUCKET;
#else
                    int64_t *h = j.hist;
#endif
#pragma omp for schedule(static)
                    for (int64_t i = 0; i < N * S; i++)
                        if (j.l[i] >= 0) h[bucket(j.l[i])]++;
                }
                for (int tt = 1; tt < threads; tt++)
                    for (int64_t k = 0; k < NBUCKET; k++) j.hist[k] += j.hist[(int64_t)tt * NBUCKET + k];
            }
        }
    } else {
        K = (int64_t)floor((double)valid * pr->k / 100.0);
        if (K < 1) K = 1;
    }
    if (st == SL_OK && valid > 0 && K > 0 && j.mode == 0) {
        int64_t above = 0, eq = 0;
        st = find_threshold(&j, N * S, j.hist, valid, K, threads, &j.T, &above, &eq);
        j.all_ties = st == SL_OK && K - above == eq;
        if (st == SL_OK && !j.all_ties && !(quota = tie_quotas(&j, K - above, threads))) st = SL_ENOMEM;
        j.quota = quota;
    }
    if (st != SL_OK) goto done;
    if (valid == 0 || K == 0) { /* everything ignored, or ohem with nothing kept: 0, no gradient */
        if (grad) memset(grad, 0, sizeof(float) * (size_t)(N * C * S));
        t->last_value = 0;
        *value = 0;
        goto done;
    }
    j.k = (float)(t->weight / (double)K);
    hard_run r2 = {.j = &j, .p2 = p2, .sums = sums, .nch = nch};
    sl_for_chunks(N, S, threads, 0, pass2_chunk, &r2); /* no scratch: cannot fail */
    const double val = sl_sum_ordered(sums, N * nch) / (double)K;
    t->last_value = val;
    *value = t->weight * val;
done:
    free(j.l);
    free(part);
    free(j.hist);
    free(sums);
    free(quota);
    if (st == SL_ENOMEM) return sl_errf(msg, msglen, st, "%s: out of memory", name);
    return st;
}
