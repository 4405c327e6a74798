"""Label fusion (sl_fuse) against a transcription of Warfield, Zou & Wells,
"Simultaneous truth and performance level estimation (STAPLE)", IEEE TMI
23(7) 2004, written here in numpy: the binary EM (eqs. for W_i, p_j, q_j)
and the multi-category EM (confusion matrices theta_j[s'][s]) with the
prior fixed at the fraction of decisions; majority voting. Hand cases (a
rater that is always right, a rater that always says background), random
raters with known sensitivity/specificity, 1 vs 4 threads, bad input.

The library is loaded through ctypes, which the sanitized build cannot do:
sanitized: skip
"""
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(__file__))
import famref as F  # noqa: E402
import geomref as G  # noqa: E402
from slref import Check  # noqa: E402

ck = Check("test_staple")
rng = np.random.default_rng(2004)


# ---- Warfield 2004, transcribed --------------------------------------------------------------
def staple_binary(D, init=0.99, max_iter=200, tol=1e-8):
    """D: (R, n) 0/1. Returns W, p, q, iterations. Prior gamma = mean of D."""
    R, n = D.shape
    g = D.mean()
    p = np.full(R, init)
    q = np.full(R, init)
    it = 0
    for it in range(1, max_iter + 1):
        a = g * np.prod(np.where(D == 1, p[:, None], 1 - p[:, None]), axis=0)
        b = (1 - g) * np.prod(np.where(D == 0, q[:, None], 1 - q[:, None]), axis=0)
        W = a / (a + b)
        p_new = (D * W).sum(axis=1) / W.sum()
        q_new = ((1 - D) * (1 - W)).sum(axis=1) / (1 - W).sum()
        delta = max(np.abs(p_new - p).max(), np.abs(q_new - q).max())
        p, q = p_new, q_new
        if delta <= tol:
            break
    a = g * np.prod(np.where(D == 1, p[:, None], 1 - p[:, None]), axis=0)
    b = (1 - g) * np.prod(np.where(D == 0, q[:, None], 1 - q[:, None]), axis=0)
    W = a / (a + b)
    return W, p, q, it


def staple_multi(D, K, init=0.99, max_iter=200, tol=1e-8):
    """D: (R, n) indices in [0, K). theta[j, d, s] = P(D_j = d | T = s)."""
    R, n = D.shape
    f = np.bincount(D.ravel(), minlength=K) / D.size
    theta = np.full((R, K, K), (1 - init) / (K - 1))
    for j in range(R):
        np.fill_diagonal(theta[j], init)

    def post(theta):
        W = np.tile(f[:, None], (1, n))
        for j in range(R):
            W = W * theta[j][D[j]].T   # theta[j][D[j], s] -> (n, K) -> (K, n)
        return W / W.sum(axis=0)

    it = 0
    for it in range(1, max_iter + 1):
        W = post(theta)
        new = np.zeros_like(theta)
        for j in range(R):
            for d in range(K):
                new[j, d] = W[:, D[j] == d].sum(axis=1) / W.sum(axis=1)
        delta = np.abs(new - theta).max()
        theta = new
        if delta <= tol:
            break
    return post(theta), theta, it


def sens_spec(W, D):
    """P(D = s | T = s), P(D != s | T != s) from the posterior W (K, n)"""
    R = D.shape[0]
    K = W.shape[0]
    se = np.zeros((R, K))
    sp = np.zeros((R, K))
    for j in range(R):
        for s in range(K):
            se[j, s] = (W[s] * (D[j] == s)).sum() / W[s].sum()
            sp[j, s] = ((1 - W[s]) * (D[j] != s)).sum() / (1 - W[s]).sum()
    return se, sp


# ---- random raters with known performance --------------------------------------------------------
def raters_from(truth, K, R, err):
    out = []
    for j in range(R):
        r = truth.copy()
        flip = rng.random(truth.shape) < err[j]
        r[flip] = rng.integers(0, K, int(flip.sum()))
        out.append(r)
    return out


for shape, K, R, dt in (((30, 40), 2, 3, np.uint8), ((12, 14, 16), 3, 5, np.int16), ((50, 60), 4, 4, np.int32),
                        ((10, 12, 9), 2, 7, np.int64)):
    f = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    truth = np.digitize(f, np.quantile(f, np.linspace(0, 1, K + 1)[1:-1])).astype(dt)
    err = rng.permutation(np.linspace(0.03, 0.3, R))  # spread, so the best and worst are clear
    raters = [r.astype(dt) for r in raters_from(truth, K, R, err)]
    D = np.stack([r.ravel() for r in raters]).astype(np.int64)
    what = "%s K=%d R=%d" % (shape, K, R)
    fused, info = F.fuse(raters)
    W, theta, it = staple_multi(D, K)
    se, sp = sens_spec(W, D)
    ck.true("%s: labels 0..K-1" % what, info["labels"] == list(range(K)))
    ck.true("%s: iterations %d == reference %d" % (what, info["iterations"], it), info["iterations"] == it)
    ck.true("%s: fused == argmax W" % what, np.array_equal(fused.ravel(), np.argmax(W, axis=0)))
    ck.close("%s: sensitivity per rater and label" % what, info["sensitivity"], se, rtol=1e-9, atol=1e-10,
             group="multiclass")
    ck.close("%s: specificity per rater and label" % what, info["specificity"], sp, rtol=1e-9, atol=1e-10,
             group="multiclass")
    ck.close("%s: prior" % what, info["prior"], np.bincount(D.ravel(), minlength=K) / D.size, rtol=0, atol=1e-15,
             group="prior")
    # the EM finds who is good: the rater with the fewest errors has the
    # highest estimated (sensitivity + specificity) / 2, the worst the lowest
    score = (info["sensitivity"] + info["specificity"]).mean(axis=1)
    print("  %s: error rates %s, estimated (se + sp) / 2 %s" % (what, np.round(err, 3), np.round(score / 2, 3)))
    ck.true("%s: best and worst rater recovered" % what,
            np.argmax(score) == np.argmin(err) and np.argmin(score) == np.argmax(err))
    # fixed iteration counts (tol 0): the same trajectory
    for iters in (1, 3):
        _, i2 = F.fuse(raters, tol=0.0, max_iter=iters)
        W2, _, _ = staple_multi(D, K, tol=0.0, max_iter=iters)
        se2, sp2 = sens_spec(W2, D)
        ck.close("%s: after %d iteration(s)" % (what, iters), [i2["sensitivity"], i2["specificity"]], [se2, sp2],
                 rtol=1e-10, atol=1e-12, group="trajectory")
    _, a1 = F.fuse(raters, threads=1)
    _, a4 = F.fuse(raters, threads=4)
    ck.true("%s: 1 and 4 threads bit-identical" % what,
            np.array_equal(a1["sensitivity"], a4["sensitivity"]) and np.array_equal(a1["specificity"],
                                                                                    a4["specificity"]))
    # binary mode: binary STAPLE per non-zero label
    fb, ib = F.fuse(raters, mode="binary")
    want = np.zeros(D.shape[1], np.int64)
    best = np.zeros(D.shape[1])
    for s in range(1, K):
        Db = (D == s).astype(np.int64)
        Wb, p, q, itb = staple_binary(Db)
        ck.close("%s binary label %d: sensitivity p_j" % (what, s), ib["sensitivity"][:, s],
                 (Wb * Db).sum(axis=1) / Wb.sum(), rtol=1e-9, atol=1e-10, group="binary")
        ck.close("%s binary label %d: specificity q_j" % (what, s), ib["specificity"][:, s],
                 ((1 - Wb) * (1 - Db)).sum(axis=1) / (1 - Wb).sum(), rtol=1e-9, atol=1e-10, group="binary")
        take = (Wb > 0.5) & (Wb > best)
        want[take] = s
        best[take] = Wb[take]
    ck.true("%s binary: fused labels" % what, np.array_equal(fb.ravel(), want))
    if K == 2:
        ck.close("%s: K = 2 multi-class == binary STAPLE" % what, info["sensitivity"][:, 1], ib["sensitivity"][:, 1],
                 rtol=1e-9, atol=1e-10, group="binary")
    # majority vote: most frequent, smallest label on ties
    fm, _ = F.fuse(raters, method="majority")
    counts = np.stack([(D == s).sum(axis=0) for s in range(K)])
    ck.true("%s: majority vote" % what, np.array_equal(fm.ravel(), np.argmax(counts, axis=0)))

# ---- hand cases ---------------------------------------------------------------------------------
truth = np.zeros((20, 20), np.uint8)
truth[5:15, 5:12] = 1
always_bg = np.zeros_like(truth)
fused, info = F.fuse([truth, truth, always_bg])
ck.true("hand: two perfect raters and one that says background everywhere -> the truth",
        np.array_equal(fused, truth))
ck.close("hand: the perfect raters' sensitivity and specificity 1", info["sensitivity"][:2, 1].tolist() +
         info["specificity"][:2, 1].tolist(), [1, 1, 1, 1], rtol=0, atol=1e-6, group="hand")
ck.close("hand: the background rater: sensitivity 0, specificity 1", [info["sensitivity"][2, 1],
                                                                       info["specificity"][2, 1]], [0, 1],
         rtol=0, atol=1e-6, group="hand")
fused, _ = F.fuse([truth, truth * 3, truth * 3], method="majority")
ck.true("hand: majority of labels 1, 3, 3 -> 3", np.array_equal(fused, truth * 3))
fused, _ = F.fuse([truth, truth * 3], method="majority")
ck.true("hand: a tie of labels 1 and 3 -> 1 (the smallest)", np.array_equal(fused, truth))
fused, info = F.fuse([np.full((4, 4), 2, np.uint8)] * 3)
ck.true("hand: one label everywhere -> that label, nothing estimated",
        np.all(fused == 2) and info["labels"] == [2] and np.isnan(info["sensitivity"]).all())

# ---- bad input -----------------------------------------------------------------------------------
for what, code, args, kw in (("one rater", 1, ([truth],), {}),
                             ("non-integer label", 4, ([truth.astype(np.float32) + 0.5, truth],), {}),
                             ("init 1", 1, ([truth, truth],), {"init": 1.0}),
                             ("max_iter 0", 1, ([truth, truth],), {"max_iter": 0})):
    try:
        F.fuse(*args, **kw)
        ck.true(what + ": refused", False)
    except G.SlError as e:
        ck.true("%s: code %d (got %d: %s)" % (what, code, e.code, e), e.code == code)
ck.report()
