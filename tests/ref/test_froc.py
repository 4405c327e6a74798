"""Lesion-wise FROC (sl_froc, sl_froc_case) against a transcription of the
CAMELYON16 evaluation (Evaluation_FROC.py): per case the false-positive
candidates' scores and each lesion's best hit score (0 if missed), then
computeFROC (thresholds sorted(set(FPs + TPs))[1:], FP per case and
sensitivity at each, the closing (0, 0)) and numpy.interp of the
sensitivity at 1/4, 1/2, 1, 2, 4, 8 FP per case. Candidates: components of
prob >= 0.5 scored by their maximum, a hit = a shared voxel (scipy.ndimage).

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

ck = Check("test_froc")
rng = np.random.default_rng(16)
RATES = [0.25, 0.5, 1, 2, 4, 8]


def camelyon_froc(fps, tps, ncases, nlesions):
    """computeFROC of the CAMELYON16 evaluation, transcribed"""
    total_fps, total_tps = [], []
    all_probs = sorted(set(list(fps) + list(tps)))
    for thr in all_probs[1:]:
        total_fps.append((np.asarray(fps) >= thr).sum())
        total_tps.append((np.asarray(tps) >= thr).sum())
    total_fps.append(0)
    total_tps.append(0)
    return np.asarray(total_fps) / float(ncases), np.asarray(total_tps) / float(nlesions)


def sens_at(fpc, sens, rates):
    return np.interp(rates, fpc[::-1], sens[::-1])


def candidates_ref(prob, gt, thr=0.5):
    st = ndimage.generate_binary_structure(prob.ndim, prob.ndim)
    lc, nc = ndimage.label(prob >= thr, st)
    lg, ng = ndimage.label(gt, st)
    best = ndimage.maximum(prob, lc, range(1, nc + 1)) if nc else []
    fps, les = [], np.zeros(ng)
    for k in range(1, nc + 1):
        hits = np.unique(lg[(lc == k) & (lg > 0)])
        if len(hits) == 0:
            fps.append(best[k - 1])
        for h in hits:
            les[h - 1] = max(les[h - 1], best[k - 1])
    return fps, list(les)


# ---- hand case ------------------------------------------------------------------------------
# 2 cases, 4 lesions with best scores 0.9, 0.6, 0 (missed), 0.8; FPs 0.7, 0.95, 0.55
fps, tps = [0.7, 0.95, 0.55], [0.9, 0.6, 0.0, 0.8]
got, (cf, cs) = F.froc(fps, tps, 2, RATES)
wf, ws = camelyon_froc(fps, tps, 2, 4)
ck.close("hand: FROC curve FP per case", cf, wf, rtol=0, atol=1e-15, group="hand")
ck.close("hand: FROC curve sensitivity", cs, ws, rtol=0, atol=1e-15, group="hand")
ck.close("hand: sensitivity at 1/4..8 FP per case", got, sens_at(wf, ws, RATES), rtol=0, atol=1e-15, group="hand")
# by hand: thresholds 0.55, 0.6, 0.7, 0.8, 0.9, 0.95 (0 dropped), then (0, 0);
# at 0.9: FP {0.95} -> 0.5 per case, lesions {0.9} -> 1/4
ck.close("hand: at threshold 0.9 -> (0.5 FP/case, 1/4)", [cf[4], cs[4]], [0.5, 0.25], rtol=0, atol=0, group="hand")
ck.close("hand: at threshold 0.6 -> (1 FP/case, 3/4)", [cf[1], cs[1]], [1.0, 0.75], rtol=0, atol=0, group="hand")

# ---- random cases: candidates from probability maps --------------------------------------------
allf, allt, nc = [], [], 0
for shape in ((40, 48), (50, 40), (16, 20, 18), (44, 44)):
    g = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) > 0.25
    p = np.clip(ndimage.gaussian_filter(g.astype(float), 1.5) + 0.35 * ndimage.gaussian_filter(
        rng.standard_normal(shape), 1.5) * 3, 0, 1).astype(np.float32)
    a, b = F.froc_case(p, g)
    wa, wb = candidates_ref(p, g)
    ck.close("candidates %s: false-positive scores" % (shape,), sorted(a), sorted(np.float64(wa)), rtol=0, atol=0,
             group="candidates")
    ck.close("candidates %s: lesion scores" % (shape,), sorted(b), sorted(np.float64(wb)), rtol=0, atol=0,
             group="candidates")
    allf += a
    allt += b
    nc += 1
got, (cf, cs) = F.froc(allf, allt, nc, RATES)
wf, ws = camelyon_froc(allf, allt, nc, len(allt))
ck.close("random: FROC curve", np.r_[cf, cs], np.r_[wf, ws], rtol=0, atol=1e-15, group="curve")
ck.close("random: sensitivity at 1/4..8 FP per case (np.interp)", got, sens_at(wf, ws, RATES), rtol=0, atol=1e-15,
         group="interp")
print("  random: %d candidates FP, %d lesions; sensitivity at %s FP/case: %s" % (len(allf), len(allt), RATES,
                                                                                np.round(got, 3)))
# integer-valued scores: many ties
fps = list(rng.integers(0, 5, 40) / 4.0)
tps = list(rng.integers(0, 5, 25) / 4.0)
got, (cf, cs) = F.froc(fps, tps, 7, RATES + [0.0, 100.0])
wf, ws = camelyon_froc(fps, tps, 7, 25)
ck.close("ties: sensitivity incl. rates 0 and beyond the curve", got, sens_at(wf, ws, RATES + [0.0, 100.0]), rtol=0,
         atol=1e-15, group="interp")
# no false positive at all
got, (cf, cs) = F.froc([], [0.9, 0.3], 1, RATES)
ck.close("no false positives: curve and rates", got, sens_at(*camelyon_froc([], [0.9, 0.3], 1, 2), RATES), rtol=0,
         atol=1e-15, group="hand")
for what, args in (("no lesion", ([0.5], [], 1, RATES)), ("zero cases", ([0.5], [0.5], 0, RATES)),
                   ("NaN score", ([np.nan], [0.5], 1, RATES))):
    try:
        F.froc(*args)
        ck.true(what + ": refused", False)
    except (G.SlError, ValueError) as e:
        ck.true(what + ": refused (%s)" % e, True)
ck.report()
