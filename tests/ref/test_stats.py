"""The benchmark's statistics against scipy/numpy on fixed numbers.
sanitized: skip (ctypes on libsegloss.so)"""
import ctypes as C

import numpy as np
from scipy import stats

import slref


def main():
    chk = slref.Check("stats vs scipy")
    lib = slref.lib()
    dp = C.POINTER(C.c_double)

    def arr(v):
        a = np.ascontiguousarray(v, np.float64)
        return a, a.ctypes.data_as(dp)

    def wilcoxon(x, y):
        xa, xp = arr(x)
        ya, yp = arr(y)
        s, p = C.c_double(), C.c_double()
        st = lib.sl_wilcoxon(xp, yp, C.c_int64(len(xa)), C.byref(s), C.byref(p))
        assert st == 0, st
        return s.value, p.value

    rng = np.random.default_rng(5)
    cases = []
    for n in (5, 8, 12, 20, 30, 50):  # exact
        cases.append((rng.normal(0.3, 1, n), rng.normal(0, 1, n)))
    for n in (51, 80, 200):  # normal approximation
        cases.append((rng.normal(0.1, 1, n), rng.normal(0, 1, n)))
    # ties and zeros (Dice values on a coarse grid): normal approximation with tie correction
    x = np.round(rng.uniform(0.5, 1, 40), 2)
    y = np.round(x + rng.choice([-0.02, -0.01, 0, 0.01, 0.03], 40), 2)
    cases.append((x, y))
    cases.append((np.array([0.9, 0.8, 0.7, 0.95, 0.85, 0.6]), np.array([0.85, 0.82, 0.6, 0.9, 0.8, 0.61])))
    for i, (x, y) in enumerate(cases):
        ref = stats.wilcoxon(x, y)
        s, p = wilcoxon(x, y)
        chk.close("wilcoxon case %d (n=%d) statistic" % (i, len(x)), s, ref.statistic, rtol=1e-12, atol=1e-12,
                  group="wilcoxon statistic")
        chk.close("wilcoxon case %d (n=%d) p" % (i, len(x)), p, ref.pvalue, rtol=1e-9, atol=1e-12,
                  group="wilcoxon p-value")
    s, p = wilcoxon([1.0, 2.0], [1.0, 2.0])
    chk.true("all-zero differences give p = 1", p == 1.0 and s == 0.0)
    xa, xp = arr([1.0, np.nan])
    s_, p_ = C.c_double(), C.c_double()
    chk.true("NaN is refused", lib.sl_wilcoxon(xp, xp, C.c_int64(2), C.byref(s_), C.byref(p_)) == 5)

    # summaries
    v = rng.normal(2, 3, 101)
    va, vp = arr(v)
    m, sd, med = C.c_double(), C.c_double(), C.c_double()
    lib.sl_summary(vp, C.c_int64(len(v)), C.byref(m), C.byref(sd), C.byref(med))
    chk.close("mean", m.value, v.mean(), rtol=1e-12)
    chk.close("std (ddof=1)", sd.value, v.std(ddof=1), rtol=1e-12)
    chk.close("median", med.value, np.median(v), rtol=1e-12)

    # bootstrap: a percentile bootstrap with many resamples agrees with numpy's to
    # Monte-Carlo precision, and the normal-theory interval for a large sample.
    d = rng.normal(0.05, 0.1, 60)
    da, dptr = arr(d)
    lo, hi = C.c_double(), C.c_double()
    lib.sl_bootstrap_ci(dptr, C.c_int64(60), C.c_int64(20000), C.c_double(0.95), C.c_uint64(1), C.byref(lo),
                        C.byref(hi))
    idx = np.random.default_rng(2).integers(0, 60, (20000, 60))
    means = d[idx].mean(1)
    rlo, rhi = np.percentile(means, [2.5, 97.5])
    se = d.std(ddof=1) / np.sqrt(60)
    chk.close("bootstrap lower vs numpy bootstrap", lo.value, rlo, rtol=0, atol=0.1 * se, group="bootstrap vs numpy")
    chk.close("bootstrap upper vs numpy bootstrap", hi.value, rhi, rtol=0, atol=0.1 * se, group="bootstrap vs numpy")
    chk.close("bootstrap lower vs normal theory", lo.value, d.mean() - 1.96 * se, rtol=0, atol=0.2 * se,
              group="bootstrap vs normal")
    lo2, hi2 = C.c_double(), C.c_double()
    lib.sl_bootstrap_ci(dptr, C.c_int64(60), C.c_int64(20000), C.c_double(0.95), C.c_uint64(1), C.byref(lo2),
                        C.byref(hi2))
    chk.true("bootstrap is deterministic for a seed", lo.value == lo2.value and hi.value == hi2.value)
    chk.report()


if __name__ == "__main__":
    main()
