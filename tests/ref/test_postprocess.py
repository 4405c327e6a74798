"""Post-processing chosen on validation (sl_postprocess_choose,
sl_postprocess_apply) against a transcription of nnU-Net v2's per-class rule
(nnunetv2/postprocessing/remove_connected_components.py,
determine_postprocessing: remove_all_but_largest_component_from_segmentation
for one label is kept when the label's mean Dice over the cases is higher
after it than before; acvl_utils' remove_all_but_largest_component keeps
every component of the largest size, skimage.measure.label with
connectivity None = full connectivity), plus segloss's second step (the
best minimum component size from the predicted sizes, kept when it raises
the mean Dice), on random 2-D and 3-D cases with several classes.

The library is loaded through ctypes, which the sanitized build cannot do:
sanitized: skip
"""
import ctypes
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(__file__))
from slref import Check, lib  # noqa: E402

MAXC = 256


class PP(ctypes.Structure):
    _fields_ = [("num_classes", ctypes.c_int), ("keep_largest", ctypes.c_int * MAXC),
                ("min_size", ctypes.c_int64 * MAXC), ("dice_before", ctypes.c_double * MAXC),
                ("dice_after", ctypes.c_double * MAXC)]


class Grid(ctypes.Structure):
    _fields_ = [("ndim", ctypes.c_int), ("shape", ctypes.c_int64 * 3), ("spacing", ctypes.c_double * 3)]


L = lib()
L.sl_postprocess_choose.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(Grid), ctypes.c_int,
                                    ctypes.POINTER(PP), ctypes.c_char_p, ctypes.c_size_t]
L.sl_postprocess_apply.argtypes = [ctypes.POINTER(PP), ctypes.c_void_p, ctypes.POINTER(Grid), ctypes.c_char_p, ctypes.c_size_t]


def components(mask):
    """skimage.measure.label(mask, connectivity=None): full connectivity."""
    return ndimage.label(mask, structure=np.ones((3,) * mask.ndim))


# ---- nnU-Net v2, transcribed ------------------------------------------------------------------
def remove_all_but_largest_component(binary):
    lab, n = components(binary)
    if n == 0:
        return binary.copy()
    sizes = np.bincount(lab.ravel())[1:]
    keep = [i + 1 for i, j in enumerate(sizes) if j == max(sizes)]
    return np.isin(lab, keep)


def keep_largest(seg, c):
    mask = seg == c
    ret = seg.copy()
    ret[mask & ~remove_all_but_largest_component(mask)] = 0
    return ret


def dice(pred, gt, c):
    p, g = pred == c, gt == c
    P, G, tp = int(p.sum()), int(g.sum()), int((p & g).sum())
    return 2.0 * tp / (P + G) if P + G > 0 else 1.0


def mean_dice(preds, gts, c):
    s = 0
    for p, g in zip(preds, gts):
        s += dice(p, g, c)
    return s / len(preds)


# ---- segloss's minimum size step, written from its description ------------------------------------
def remove_small(seg, c, S):
    lab, n = components(seg == c)
    sizes = np.concatenate([[0], np.bincount(lab.ravel())[1:]]) if n else np.zeros(1, int)
    ret = seg.copy()
    ret[(lab > 0) & (sizes[lab] < S)] = 0
    return ret


def choose(preds, gts, C):
    rule = {}
    for c in range(1, C):
        base = mean_dice(preds, gts, c)
        pp = [keep_largest(p, c) for p in preds]
        d = mean_dice(pp, gts, c)
        if d > base:  # nnU-Net v2: do_this = pp Dice > baseline Dice
            rule[c] = (1, 0, base, d)
            continue
        sizes = sorted({int(s) for p in preds for s in np.bincount(components(p == c)[0].ravel())[1:]})
        best, bestS = -1.0, 0
        for s in sizes:
            d = mean_dice([remove_small(p, c, s + 1) for p in preds], gts, c)
            if d > best:
                best, bestS = d, s + 1
        rule[c] = (0, bestS, base, best) if bestS and best > base else (0, 0, base, base)
    return rule


def random_case(rng, shape, C):
    """A target of a few blobs per class, and a prediction: the target with
    some blobs dropped, shifted or grown, and spurious specks."""
    gt = np.zeros(shape, np.int32)
    for c in range(1, C):
        for _ in range(rng.integers(0, 3)):
            centre = [rng.integers(0, n) for n in shape]
            r = rng.uniform(0.8, 2.5)
            grid = np.indices(shape)
            d2 = sum((grid[a] - centre[a]) ** 2 for a in range(len(shape)))
            gt[d2 <= r * r] = c
    pred = gt.copy()
    if rng.random() < 0.5:
        pred = np.roll(pred, rng.integers(-1, 2), axis=rng.integers(0, len(shape)))
    specks = rng.random(shape) < rng.uniform(0.0, 0.06)
    pred[specks] = rng.integers(0, C, size=int(specks.sum()))
    return pred.astype(np.int32), gt


ck = Check("test_postprocess")
rng = np.random.default_rng(2024)
msg = ctypes.create_string_buffer(512)
trials = 0
for t in range(40 if not os.environ.get("SL_QUICK") == "1" else 10):
    nd = 2 if t % 2 == 0 else 3
    shape = (14, 17) if nd == 2 else (5, 7, 8)
    C = int(rng.integers(2, 5))
    n = int(rng.integers(1, 5))
    cases = [random_case(rng, shape, C) for _ in range(n)]
    preds = np.ascontiguousarray(np.stack([p for p, _ in cases]))
    gts = np.ascontiguousarray(np.stack([g for _, g in cases]))
    g = Grid(nd, (ctypes.c_int64 * 3)(*(list(shape) + [0] * (3 - nd))), (ctypes.c_double * 3)(1, 1, 1))
    out = PP()
    st = L.sl_postprocess_choose(preds.ctypes.data, gts.ctypes.data, n, ctypes.byref(g), C, ctypes.byref(out), msg, 512)
    if not ck.true("trial %d: status %d %s" % (t, st, msg.value), st == 0):
        continue
    want = choose(list(preds), list(gts), C)
    for c in range(1, C):
        kl, ms, before, after = want[c]
        ck.true("trial %d class %d: keep_largest %d vs %d, min_size %d vs %d" % (t, c, out.keep_largest[c], kl, out.min_size[c], ms),
                out.keep_largest[c] == kl and out.min_size[c] == ms)
        ck.close("dice trial %d class %d" % (t, c), [out.dice_before[c], out.dice_after[c]], [before, after], rtol=0, atol=1e-12)
        trials += kl or ms > 0
    # the chosen rule applied case by case equals the transcription's post-processed labels
    for i in range(n):
        lab = np.ascontiguousarray(preds[i].copy())
        gi = Grid(nd, (ctypes.c_int64 * 3)(*(list(shape) + [0] * (3 - nd))), (ctypes.c_double * 3)(1, 1, 1))
        st = L.sl_postprocess_apply(ctypes.byref(out), lab.ctypes.data, ctypes.byref(gi), msg, 512)
        ref = preds[i]
        for c in range(1, C):
            kl, ms = want[c][:2]
            ref = keep_largest(ref, c) if kl else (remove_small(ref, c, ms) if ms else ref)
        ck.true("apply trial %d case %d" % (t, i), st == 0 and np.array_equal(lab, ref))
print("classes with a step kept: %d" % trials)
ck.true("the random cases exercise both steps", trials > 5)
ck.report()
