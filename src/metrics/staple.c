/*
 * Label fusion of several raters: majority vote and STAPLE (Warfield, Zou &
 * Wells, IEEE TMI 2004), multi-class and binary per label. The definitions
 * are in include/segloss/metrics.h; tests/ref/test_staple.py checks them
 * against a transcription of the paper's EM.
 *
 * Every rater's labels are first mapped to compact indices 0..K-1 (one byte
 * per voxel and rater), so one EM iteration is one pass over R n bytes. The
 * E and M steps are fused: each voxel's posterior W over the K labels is
 * computed from the current confusion matrices and immediately added to
 * the M-step sums, so W is never stored. Sums go to fixed chunks added in
 * chunk order: any thread count gives the same bits.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "families_internal.h"
#include "internal.h"

#define FUSE_CHUNK 65536
#define MAXK 255

/* ---- labels to compact indices --------------------------------------------------- */

/* The sorted union of the distinct labels of every rater. */
static sl_status label_union(const sl_labelmap *r, int R, int64_t n, int64_t **labels, int *K, char *msg,
                             size_t msglen)
{
    int64_t *all = NULL, nall = 0;
    for (int j = 0; j < R; j++) {
        int64_t cnt;
        sl_status st = sl_labels_unique(&r[j], n, NULL, 0, &cnt, msg, msglen);
        if (st != SL_OK) {
            free(all);
            return st == SL_ERANGE ? sl_errf(msg, msglen, st, "rater %d: a value is not an integer label", j + 1)
                                   : sl_errf(msg, msglen, st, "rater %d: cannot list its labels", j + 1);
        }
        int64_t *grow = realloc(all, (size_t)(nall + cnt) * sizeof *all);
        if (!grow) {
            free(all);
            return sl_errf(msg, msglen, SL_ENOMEM, "out of memory for the labels");
        }
        all = grow;
        st = sl_labels_unique(&r[j], n, all + nall, cnt, &cnt, msg, msglen);
        if (st != SL_OK) {
            free(all);
            return st;
        }
        nall += cnt;
    }
    /* merge: insertion into a sorted distinct list (K is small) */
    int64_t k = 0;
    for (int64_t i = 0; i < nall; i++) {
        int64_t v = all[i], pos = 0;
        while (pos < k && all[pos] < v) pos++;
        if (pos < k && all[pos] == v) continue;
        if (k >= MAXK + 1) break;
        memmove(all + pos + 1, all + pos, (size_t)(k - pos) * sizeof *all);
        all[pos] = v;
        k++;
    }
    if (k > MAXK) {
        free(all);
        return sl_errf(msg, msglen, SL_EUNSUPPORTED, "more than %d distinct labels among the raters", MAXK);
    }
    *labels = all;
    *K = (int)k;
    return SL_OK;
}

static int index_of(const int64_t *labels, int K, int64_t v)
{
    int lo = 0, hi = K - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (labels[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ---- STAPLE's EM on compact indices ------------------------------------------------ */

/* theta[(j * K + d) * K + s] = P(rater j says d | T = s) */
#define TH(j, d, s) theta[((int64_t)(j) * K + (d)) * K + (s)]

/* The posterior over the K labels of voxel i (w[K], normalised). */
static void posterior(const uint8_t *idx, int R, int64_t n, int K, const double *prior, const double *theta,
                      int64_t i, double *w)
{
    double z = 0.0;
    for (int s = 0; s < K; s++) {
        double a = prior[s];
        for (int j = 0; j < R; j++) a *= TH(j, idx[(int64_t)j * n + i], s);
        w[s] = a;
        z += a;
    }
    /* every label impossible under the current estimate (a zero entry for
     * each): fall back on the prior rather than divide 0 by 0 */
    if (z > 0.0)
        for (int s = 0; s < K; s++) w[s] /= z;
    else
        for (int s = 0; s < K; s++) w[s] = prior[s];
}

/*
 * Runs EM to convergence and then one final pass that fills, when given,
 * sens[j*K+s] = P(D=s | T=s), spec[j*K+s] = P(D!=s | T!=s), and for every
 * voxel the posterior through `visit` (argmax or a threshold, by caller).
 */
typedef struct em_out {
    int iterations, converged;
} em_out;

static sl_status staple_em(const uint8_t *idx, int R, int64_t n, int K, const double *prior, double *theta,
                           const sl_fuse_opts *o, em_out *eo)
{
    const int64_t nch = (n + FUSE_CHUNK - 1) / FUSE_CHUNK;
    const int64_t per = (int64_t)R * K * K + K; /* M-step numerators, then denominators */
    double *part = sl_calloc(nch * per, sizeof *part);
    double *next = sl_malloc(per, sizeof *next);
    if (!part || !next) {
        free(part);
        free(next);
        return SL_ENOMEM;
    }
    eo->iterations = 0;
    eo->converged = 0;
    for (int it = 0; it < o->max_iter; it++) {
        memset(part, 0, (size_t)(nch * per) * sizeof *part);
#pragma omp parallel for schedule(static) num_threads(sl_threads(o->threads)) if (nch > 1)
        for (int64_t c = 0; c < nch; c++) {
            double *num = part + c * per, *den = num + (int64_t)R * K * K, w[MAXK];
            int64_t e = (c + 1) * FUSE_CHUNK < n ? (c + 1) * FUSE_CHUNK : n;
            for (int64_t i = c * FUSE_CHUNK; i < e; i++) {
                posterior(idx, R, n, K, prior, theta, i, w);
                for (int s = 0; s < K; s++) den[s] += w[s];
                for (int j = 0; j < R; j++) {
                    double *row = num + ((int64_t)j * K + idx[(int64_t)j * n + i]) * K;
                    for (int s = 0; s < K; s++) row[s] += w[s];
                }
            }
        }
        for (int64_t q = 0; q < per; q++) next[q] = part[q];
        for (int64_t c = 1; c < nch; c++)
            for (int64_t q = 0; q < per; q++) next[q] += part[c * per + q];
        const double *den = next + (int64_t)R * K * K;
        double delta = 0.0;
        for (int j = 0; j < R; j++)
            for (int d = 0; d < K; d++)
                for (int s = 0; s < K; s++) {
                    /* a label with no posterior mass keeps its estimate */
                    double v = den[s] > 0.0 ? next[((int64_t)j * K + d) * K + s] / den[s] : TH(j, d, s);
                    double ch = fabs(v - TH(j, d, s));
                    if (ch > delta) delta = ch;
                    TH(j, d, s) = v;
                }
        eo->iterations = it + 1;
        if (delta <= o->tol) {
            eo->converged = 1;
            break;
        }
    }
    free(part);
    free(next);
    return SL_OK;
}

/* The final pass: sensitivity and specificity per rater and label from the
 * final posterior, and per voxel the callback's use of it. mode 0: argmax
 * into fused (label index); mode 1 (binary): W of index 1 compared with
 * best[i] / fused[i] for label `lab`. */
static sl_status final_pass(const uint8_t *idx, int R, int64_t n, int K, const double *prior, const double *theta,
                            const sl_fuse_opts *o, int mode, const int64_t *labels, int64_t lab, int64_t *fused,
                            double *best, double *sens, double *spec)
{
    const int64_t nch = (n + FUSE_CHUNK - 1) / FUSE_CHUNK;
    /* per chunk: hit[j][s] = sum W_s [D=s], den[s] = sum W_s,
     * rej[j][s] = sum (1 - W_s) [D != s], cden[s] = sum (1 - W_s) */
    const int64_t per = 2 * (int64_t)R * K + 2 * K;
    double *part = sl_calloc(nch * per, sizeof *part);
    if (!part) return SL_ENOMEM;
#pragma omp parallel for schedule(static) num_threads(sl_threads(o->threads)) if (nch > 1)
    for (int64_t c = 0; c < nch; c++) {
        double *hit = part + c * per, *rej = hit + (int64_t)R * K, *den = rej + (int64_t)R * K, *cden = den + K;
        double w[MAXK];
        int64_t e = (c + 1) * FUSE_CHUNK < n ? (c + 1) * FUSE_CHUNK : n;
        for (int64_t i = c * FUSE_CHUNK; i < e; i++) {
            posterior(idx, R, n, K, prior, theta, i, w);
            for (int s = 0; s < K; s++) {
                den[s] += w[s];
                cden[s] += 1.0 - w[s];
            }
            for (int j = 0; j < R; j++) {
                int d = idx[(int64_t)j * n + i];
                for (int s = 0; s < K; s++) {
                    if (d == s) hit[j * K + s] += w[s];
                    else rej[j * K + s] += 1.0 - w[s];
                }
            }
            if (mode == 0) {
                int arg = 0;
                for (int s = 1; s < K; s++)
                    if (w[s] > w[arg]) arg = s;
                fused[i] = labels[arg];
            } else if (w[1] > 0.5 && w[1] > best[i]) {
                best[i] = w[1];
                fused[i] = lab;
            }
        }
    }
    for (int64_t c = 1; c < nch; c++)
        for (int64_t q = 0; q < per; q++) part[q] += part[c * per + q];
    const double *hit = part, *rej = part + (int64_t)R * K, *den = rej + (int64_t)R * K, *cden = den + K;
    for (int j = 0; j < R; j++)
        for (int s = 0; s < K; s++) {
            sens[j * K + s] = den[s] > 0.0 ? hit[j * K + s] / den[s] : NAN;
            spec[j * K + s] = cden[s] > 0.0 ? rej[j * K + s] / cden[s] : NAN;
        }
    free(part);
    return SL_OK;
}

static void theta_init(double *theta, int R, int K, double init)
{
    for (int j = 0; j < R; j++)
        for (int d = 0; d < K; d++)
            for (int s = 0; s < K; s++) TH(j, d, s) = d == s ? init : (1.0 - init) / (K - 1);
}

/* ---- the public entry ---------------------------------------------------------------- */

static sl_status opts_check(const sl_fuse_opts *o, char *msg, size_t msglen)
{
    if (o->method != SL_FUSE_STAPLE && o->method != SL_FUSE_MAJORITY)
        return sl_errf(msg, msglen, SL_EINVAL, "unknown fusion method %d", (int)o->method);
    if (o->mode != SL_STAPLE_MULTICLASS && o->mode != SL_STAPLE_BINARY)
        return sl_errf(msg, msglen, SL_EINVAL, "unknown STAPLE mode %d", (int)o->mode);
    if (o->max_iter < 1) return sl_errf(msg, msglen, SL_EINVAL, "max_iter must be >= 1 (got %d)", o->max_iter);
    if (!(o->tol >= 0.0) || !isfinite(o->tol)) return sl_errf(msg, msglen, SL_EINVAL, "tol must be >= 0");
    if (!(o->init > 0.0 && o->init < 1.0))
        return sl_errf(msg, msglen, SL_EINVAL, "init must be in (0, 1) (got %g)", o->init);
    if (o->threads < 0) return sl_errf(msg, msglen, SL_EINVAL, "threads must be >= 0");
    return SL_OK;
}

sl_status sl_fuse(const sl_labelmap *raters, int nraters, int64_t n, const sl_fuse_opts *opts, int64_t *fused,
                  sl_fuse_result *result, char *msg, size_t msglen)
{
    sl_fuse_opts o = SL_FUSE_OPTS_DEFAULT;
    if (opts) o = *opts;
    if (!raters || !fused || nraters < 2 || n < 1)
        return sl_errf(msg, msglen, SL_EINVAL, "fusion needs >= 2 raters, n >= 1 voxels and an output");
    for (int j = 0; j < nraters; j++) {
        if (!raters[j].data) return sl_errf(msg, msglen, SL_EINVAL, "rater %d: no data", j + 1);
        if (!slm_dtype_ok(raters[j].dtype)) return sl_errf(msg, msglen, SL_EDTYPE, "rater %d: unknown dtype", j + 1);
    }
    sl_status st = opts_check(&o, msg, msglen);
    if (st != SL_OK) return st;
    if (result) *result = (sl_fuse_result)SL_FUSE_RESULT_EMPTY;

    const int R = nraters;
    int64_t *labels = NULL;
    int K = 0;
    st = label_union(raters, R, n, &labels, &K, msg, msglen);
    if (st != SL_OK) return st;
    int64_t rn;
    uint8_t *idx = NULL, *bin = NULL;
    double *theta = NULL, *prior = NULL, *sens = NULL, *spec = NULL, *best = NULL, *sk = NULL, *pk = NULL;
    int iterations = 0, converged = 1;
    if (sl_mul_size(R, n, &rn) != SL_OK) {
        free(labels);
        return sl_errf(msg, msglen, SL_EOVERFLOW, "raters x voxels overflows");
    }
    idx = sl_malloc(rn, 1);
    prior = sl_calloc(K, sizeof *prior);
    sens = sl_malloc((int64_t)R * K, sizeof *sens);
    spec = sl_malloc((int64_t)R * K, sizeof *spec);
    if (!idx || !prior || !sens || !spec) {
        st = sl_errf(msg, msglen, SL_ENOMEM, "out of memory for %d raters of %lld voxels", R, (long long)n);
        goto done;
    }
    for (int j = 0; j < R; j++)
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            slm_label_at(&raters[j], i, &v); /* validated by label_union */
            idx[(int64_t)j * n + i] = (uint8_t)index_of(labels, K, v);
        }
    for (int64_t q = 0; q < rn; q++) prior[idx[q]] += 1.0;
    for (int s = 0; s < K; s++) prior[s] /= (double)rn;
    for (int64_t q = 0; q < (int64_t)R * K; q++) sens[q] = spec[q] = NAN;

    if (o.method == SL_FUSE_MAJORITY) {
        for (int64_t i = 0; i < n; i++) {
            int cnt[MAXK] = {0}, arg = 0;
            for (int j = 0; j < R; j++) cnt[idx[(int64_t)j * n + i]]++;
            for (int s = 1; s < K; s++)
                if (cnt[s] > cnt[arg]) arg = s;
            fused[i] = labels[arg];
        }
    } else if (K == 1) {
        /* every rater gives one label everywhere: nothing to estimate */
        for (int64_t i = 0; i < n; i++) fused[i] = labels[0];
    } else if (o.mode == SL_STAPLE_MULTICLASS) {
        theta = sl_malloc((int64_t)R * K * K, sizeof *theta);
        if (!theta) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
            goto done;
        }
        theta_init(theta, R, K, o.init);
        em_out eo;
        st = staple_em(idx, R, n, K, prior, theta, &o, &eo);
        if (st == SL_OK) st = final_pass(idx, R, n, K, prior, theta, &o, 0, labels, 0, fused, NULL, sens, spec);
        if (st != SL_OK) {
            st = sl_errf(msg, msglen, st, "out of memory in STAPLE");
            goto done;
        }
        iterations = eo.iterations;
        converged = eo.converged;
    } else {
        /* binary STAPLE per non-zero label on the masks (rater == L) */
        bin = sl_malloc(rn, 1);
        best = sl_malloc(n, sizeof *best);
        theta = sl_malloc((int64_t)R * 4, sizeof *theta);
        sk = sl_malloc((int64_t)R * 2, sizeof *sk);
        pk = sl_malloc((int64_t)R * 2, sizeof *pk);
        if (!bin || !best || !theta || !sk || !pk) {
            st = sl_errf(msg, msglen, SL_ENOMEM, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++) fused[i] = 0, best[i] = 0.0;
        for (int s = 0; s < K; s++) {
            if (labels[s] == 0) continue;
            for (int64_t q = 0; q < rn; q++) bin[q] = idx[q] == s;
            double pr2[2] = {1.0 - prior[s], prior[s]};
            theta_init(theta, R, 2, o.init);
            em_out eo;
            st = staple_em(bin, R, n, 2, pr2, theta, &o, &eo);
            if (st == SL_OK)
                st = final_pass(bin, R, n, 2, pr2, theta, &o, 1, NULL, labels[s], fused, best, sk, pk);
            if (st != SL_OK) {
                st = sl_errf(msg, msglen, st, "out of memory in STAPLE");
                goto done;
            }
            for (int j = 0; j < R; j++) {
                sens[j * K + s] = sk[j * 2 + 1];
                spec[j * K + s] = pk[j * 2 + 1];
            }
            if (eo.iterations > iterations) iterations = eo.iterations;
            converged = converged && eo.converged;
        }
    }
    if (result) {
        result->nraters = R;
        result->nlabels = K;
        result->labels = labels;
        result->sensitivity = sens;
        result->specificity = spec;
        result->prior = prior;
        result->iterations = iterations;
        result->converged = o.method == SL_FUSE_STAPLE ? converged : 0;
        labels = NULL;
        sens = spec = prior = NULL;
    }
done:
    free(labels);
    free(idx);
    free(bin);
    free(theta);
    free(prior);
    free(sens);
    free(spec);
    free(best);
    free(sk);
    free(pk);
    return st;
}

void sl_fuse_result_free(sl_fuse_result *r)
{
    if (!r) return;
    free(r->labels);
    free(r->sensitivity);
    free(r->specificity);
    free(r->prior);
    *r = (sl_fuse_result)SL_FUSE_RESULT_EMPTY;
}

sl_status sl_fuse_method_parse(const char *name, sl_fuse_method *out)
{
    if (!name || !out) return SL_EINVAL;
    if (strcmp(name, "staple") == 0) *out = SL_FUSE_STAPLE;
    else if (strcmp(name, "majority") == 0) *out = SL_FUSE_MAJORITY;
    else return SL_EUNKNOWN;
    return SL_OK;
}

sl_status sl_staple_mode_parse(const char *name, sl_staple_mode *out)
{
    if (!name || !out) return SL_EINVAL;
    if (strcmp(name, "multiclass") == 0) *out = SL_STAPLE_MULTICLASS;
    else if (strcmp(name, "binary") == 0) *out = SL_STAPLE_BINARY;
    else return SL_EUNKNOWN;
    return SL_OK;
}
