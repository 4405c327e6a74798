/*
 * The permutohedral lattice: fast high-dimensional Gaussian filtering.
 *
 * Adams, Baek & Davis, "Fast High-Dimensional Filtering Using the
 * Permutohedral Lattice" (Eurographics 2010), in the form Krähenbühl &
 * Koltun's densecrf (permutohedral.cpp) uses for the dense CRF: the same
 * feature scaling, blur ([1 2 1]/2 along each of the d+1 lattice axes) and
 * the constant alpha = 1 / (1 + 2^-d), so that the result approximates
 *
 *   out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j
 *
 * Three steps. Splat: each point is lifted onto the hyperplane
 * x_0 + ... + x_d = 0 of R^{d+1}, where the lattice's simplices tile the
 * space; its value is spread over the d+1 vertices of its enclosing simplex
 * with barycentric weights. Blur: along each lattice axis, a vertex takes
 * itself plus half of its two neighbours. Slice: the inverse of the splat,
 * with the same weights. The cost is O(n (d+1)^2) for the build and
 * O((n + m)(d+1) nv) per filtered vector set (m vertices <= n (d+1)).
 *
 * Determinism: the hash table is filled in point order on one thread, so
 * vertex numbers, and hence every float sum, do not depend on the thread
 * count; the parallel loops (neighbour lookup, blur, slice) write disjoint
 * outputs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../core/internal.h"
#include "geom_internal.h"
#include "lattice.h"

/* Lattice coordinates beyond this are refused: they are exact in double,
 * their sums over d+1 axes fit in int32 and the hash mixes them well. */
#define LAT_COORD_MAX (1 << 24)

typedef struct hash_table {
    int32_t *slot;    /* cap entries: 0 = empty, else the vertex number (1-based) */
    int32_t *keys;    /* (m_cap, d) coordinates of the vertices, row v-1 for vertex v */
    uint64_t mask;    /* cap - 1, cap a power of two */
    int d;
    int64_t m;
} hash_table;

static uint64_t hash_key(const int32_t *k, int d)
{
    uint64_t h = 0;
    for (int i = 0; i < d; i++) h = (h + (uint64_t)(uint32_t)k[i]) * 2531011u + 0x9e3779b97f4a7c15u;
    return h ^ (h >> 29);
}

/* The vertex of key k (1-based), 0 when absent; inserted when insert != 0. */
static int32_t hash_find(hash_table *t, const int32_t *k, int insert)
{
    uint64_t h = hash_key(k, t->d) & t->mask;
    for (;;) {
        const int32_t v = t->slot[h];
        if (v == 0) {
            if (!insert) return 0;
            memcpy(t->keys + t->m * t->d, k, (size_t)t->d * sizeof *k);
            t->slot[h] = (int32_t)++t->m;
            return (int32_t)t->m;
        }
        if (memcmp(t->keys + (int64_t)(v - 1) * t->d, k, (size_t)t->d * sizeof *k) == 0) return v;
        h = (h + 1) & t->mask;
    }
}

/*
 * One point: its d+1 enclosing vertices' keys (rows of keys_out, d each)
 * and barycentric weights. f (d) is the feature; 0 on success, -1 when a
 * coordinate is out of range. Scratch arrays are sized SLG_LATTICE_MAX_D+2.
 */
static int embed_point(const float *f, int d, const double *scale, int32_t keys_out[][SLG_LATTICE_MAX_D],
                       double *bary)
{
    double el[SLG_LATTICE_MAX_D + 1], b[SLG_LATTICE_MAX_D + 2];
    int64_t rem0[SLG_LATTICE_MAX_D + 1];
    int rank[SLG_LATTICE_MAX_D + 1];
    const int d1 = d + 1;
    /* elevate onto the hyperplane sum x = 0 (densecrf's basis) */
    double sm = 0.0;
    for (int j = d; j > 0; j--) {
        const double cf = (double)f[j - 1] * scale[j - 1];
        el[j] = sm - j * cf;
        sm += cf;
    }
    el[0] = sm;
    /* the nearest remainder-0 point, coordinate by coordinate */
    int64_t sum = 0;
    for (int i = 0; i <= d; i++) {
        if (!(fabs(el[i]) < (double)LAT_COORD_MAX)) return -1;
        const double v = el[i] / d1, up = ceil(v) * d1, down = floor(v) * d1;
        rem0[i] = (int64_t)(up - el[i] < el[i] - down ? up : down);
        sum += rem0[i];
    }
    sum /= d1;
    /* rank the differential; then fix the point back onto the plane */
    memset(rank, 0, sizeof rank);
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j <= d; j++) {
            if (el[i] - (double)rem0[i] < el[j] - (double)rem0[j]) rank[i]++;
            else rank[j]++;
        }
    if (sum > 0) {
        for (int i = 0; i <= d; i++) {
            if (rank[i] >= d1 - sum) {
                rem0[i] -= d1;
                rank[i] += (int)(sum - d1);
            } else {
                rank[i] += (int)sum;
            }
        }
    } else if (sum < 0) {
        for (int i = 0; i <= d; i++) {
            if (rank[i] < -sum) {
                rem0[i] += d1;
                rank[i] += (int)(d1 + sum);
            } else {
                rank[i] += (int)sum;
            }
        }
    }
    /* barycentric coordinates of the point in its simplex */
    memset(b, 0, sizeof b);
    for (int i = 0; i <= d; i++) {
        const double v = (el[i] - (double)rem0[i]) / d1;
        b[d - rank[i]] += v;
        b[d + 1 - rank[i]] -= v;
    }
    b[0] += 1.0 + b[d + 1];
    /* vertex r of the simplex: rem0 + the canonical simplex's r-th vertex */
    for (int r = 0; r <= d; r++) {
        for (int i = 0; i < d; i++) keys_out[r][i] = (int32_t)(rem0[i] + (rank[i] <= d - r ? r : r - d1));
        bary[r] = b[r];
    }
    return 0;
}

static sl_status build_vertices(slg_lattice *L, hash_table *t, const float *features, char *msg, size_t msglen)
{
    const int d = L->d, d1 = d + 1;
    double scale[SLG_LATTICE_MAX_D];
    /* densecrf: the [1 2 1] blur on this lattice has unit standard deviation */
    const double inv_std = sqrt(2.0 / 3.0) * d1;
    for (int i = 0; i < d; i++) scale[i] = inv_std / sqrt((double)(i + 1) * (i + 2));
    int32_t keys[SLG_LATTICE_MAX_D + 1][SLG_LATTICE_MAX_D];
    double bary[SLG_LATTICE_MAX_D + 1];
    for (int64_t i = 0; i < L->n; i++) {
        const float *f = features + i * d;
        for (int k = 0; k < d; k++)
            if (!isfinite(f[k])) return sl_errf(msg, msglen, SL_ENONFINITE, "lattice: non-finite feature at point %lld", (long long)i);
        if (embed_point(f, d, scale, keys, bary) != 0)
            return sl_errf(msg, msglen, SL_ERANGE, "lattice: feature of point %lld too large (a kernel width too small for the image extent)",
                           (long long)i);
        for (int r = 0; r <= d; r++) {
            L->off[i * d1 + r] = hash_find(t, keys[r], 1);
            L->bary[i * d1 + r] = (float)bary[r];
        }
    }
    L->m = t->m;
    return SL_OK;
}

/* Neighbours of every vertex along every lattice axis j: key + 1 on every
 * coordinate but key - d on coordinate j (the (d+1)-th coordinate is
 * implicit: the keys sum to 0 on the plane), and the opposite. */
static void find_neighbours(slg_lattice *L, hash_table *t)
{
    const int d = L->d;
    const int64_t m = L->m;
#pragma omp parallel for num_threads(sl_threads(L->threads)) if (m >= SLG_PAR_MIN) schedule(static)
    for (int64_t v = 0; v < m; v++) {
        int32_t n1[SLG_LATTICE_MAX_D], n2[SLG_LATTICE_MAX_D];
        const int32_t *key = t->keys + v * d;
        for (int j = 0; j <= d; j++) {
            for (int k = 0; k < d; k++) {
                n1[k] = key[k] + 1;
                n2[k] = key[k] - 1;
            }
            if (j < d) {
                n1[j] = key[j] - d;
                n2[j] = key[j] + d;
            }
            L->nb[((int64_t)j * m + v) * 2] = hash_find(t, n1, 0);
            L->nb[((int64_t)j * m + v) * 2 + 1] = hash_find(t, n2, 0);
        }
    }
}

sl_status slg_lattice_build(slg_lattice *L, const float *features, int64_t n, int d, int threads, char *msg,
                            size_t msglen)
{
    if (!L) return sl_errf(msg, msglen, SL_EINVAL, "lattice: NULL argument");
    memset(L, 0, sizeof *L);
    if (!features || n < 1 || d < 1 || d > SLG_LATTICE_MAX_D)
        return sl_errf(msg, msglen, SL_EINVAL, "lattice: bad arguments (n %lld, d %d; d in 1..%d)", (long long)n, d,
                       SLG_LATTICE_MAX_D);
    const int d1 = d + 1;
    /* vertex numbers are int32 (1-based) and there are at most n (d+1) */
    if (n > (INT32_MAX - 1) / d1) return sl_errf(msg, msglen, SL_EOVERFLOW, "lattice: %lld points are too many", (long long)n);
    const int64_t mmax = n * d1;
    uint64_t cap = 1;
    while (cap < (uint64_t)mmax * 2) cap <<= 1;
    hash_table t = {sl_calloc((int64_t)cap, sizeof(int32_t)), sl_malloc(mmax * d, sizeof(int32_t)), cap - 1, d, 0};
    L->d = d;
    L->n = n;
    L->threads = threads;
    L->off = sl_malloc(mmax, sizeof *L->off);
    L->bary = sl_malloc(mmax, sizeof *L->bary);
    sl_status st = SL_OK;
    if (!t.slot || !t.keys || !L->off || !L->bary) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "lattice: out of memory");
        goto done;
    }
    if ((st = build_vertices(L, &t, features, msg, msglen)) != SL_OK) goto done;
    if (!(L->nb = sl_malloc(L->m * d1 * 2, sizeof *L->nb))) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "lattice: out of memory");
        goto done;
    }
    find_neighbours(L, &t);
done:
    free(t.slot);
    free(t.keys);
    if (st != SL_OK) slg_lattice_free(L);
    return st;
}

sl_status slg_lattice_filter(const slg_lattice *L, const float *values, int nv, float *out)
{
    const int d1 = L->d + 1;
    const int64_t n = L->n, m = L->m, rows = m + 1;
    /* vertex-major (m+1, nv): a blur step gathers nv contiguous floats per
     * neighbour; row 0 stays zero and stands for a missing neighbour */
    float *a = sl_calloc(rows * nv, sizeof *a), *b = sl_malloc(rows * nv, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return SL_ENOMEM;
    }
    const int threads = sl_threads(L->threads);
    /* splat, in point order (sequential: several points share a vertex) */
    for (int64_t i = 0; i < n; i++)
        for (int r = 0; r < d1; r++) {
            float *row = a + (int64_t)L->off[i * d1 + r] * nv;
            const float w = L->bary[i * d1 + r];
            for (int k = 0; k < nv; k++) row[k] += w * values[(int64_t)k * n + i];
        }
    /* blur along each lattice axis: new = old + (left + right) / 2 */
    memset(b, 0, (size_t)nv * sizeof *b);
    for (int j = 0; j < d1; j++) {
        const int32_t *nb = L->nb + (int64_t)j * m * 2;
#pragma omp parallel for num_threads(threads) if (m >= SLG_PAR_MIN) schedule(static)
        for (int64_t v = 0; v < m; v++) {
            const float *o = a + (v + 1) * nv, *p1 = a + (int64_t)nb[2 * v] * nv, *p2 = a + (int64_t)nb[2 * v + 1] * nv;
            float *w = b + (v + 1) * nv;
            for (int k = 0; k < nv; k++) w[k] = o[k] + 0.5f * (p1[k] + p2[k]);
        }
        float *s = a;
        a = b;
        b = s;
    }
    /* slice with the splat's weights; alpha corrects the blur's mass */
    const float alpha = (float)(1.0 / (1.0 + pow(2.0, -L->d)));
#pragma omp parallel for num_threads(threads) if (n >= SLG_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < nv; k++) {
            float s = 0.0f;
            for (int r = 0; r < d1; r++) s += L->bary[i * d1 + r] * a[(int64_t)L->off[i * d1 + r] * nv + k];
            out[(int64_t)k * n + i] = s * alpha;
        }
    }
    free(a);
    free(b);
    return SL_OK;
}

void slg_lattice_free(slg_lattice *L)
{
    if (!L) return;
    free(L->off);
    free(L->bary);
    free(L->nb);
    memset(L, 0, sizeof *L);
}
