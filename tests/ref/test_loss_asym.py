"""asym against a PyTorch reference written from Hashemi et al. 2018 / docs/losses-region.md:
1 − F_β, F_β = ((1+β²)tp + s_nr)/((1+β²)tp + β²·fn + fp + s_dr) per (sample, class), mean
over included groups. β² weighs the false negatives (the survey's formula (7) puts it on
the false positives by mistake), so a larger β must favour recall: checked directly."""
import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def ref_asym(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
             smooth_dr=1e-5, weight=None, ignore_index=None, beta=1.5):
    p, g, m = RR.masked(x, target, C, activation, ignore_index)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    tp = (p * g).sum(axes)
    fp = (p * (1 - g)).sum(axes)
    fn = ((1 - p) * g).sum(axes)
    b2 = beta * beta
    f = ((1 + b2) * tp + smooth_nr) / ((1 + b2) * tp + b2 * fn + fp + smooth_dr)
    return RR.mean_groups(1 - f, C, weight, include_background)


def recall_property(chk):
    """Two binary predictions with the same number of errors: one misses k foreground voxels
    (false negatives), the other adds k false positives. With β > 1 the misses must cost more,
    with β < 1 less, with β = 1 the same, and the gap must grow with β."""
    big = np.zeros((1, 10, 10), np.int64)
    big[0, 2:6, 2:7] = 1                    # 20 voxels
    small = big.copy()
    small[0, 2, 2:7] = 0                    # 15 of them
    # misses: target big, prediction small (tp 15, fn 5, fp 0); extras: the other way round
    p_fn, y_fn = small[:, None].astype(np.float32), big
    p_fp, y_fp = big[:, None].astype(np.float32), small
    gaps = []
    for beta in (0.5, 1.0, 1.5, 2.0, 3.0):
        spec = "asym(activation=none,beta=%g)" % beta
        with R.tmpdir() as tmp:
            lfn = R.value_cli(spec, p_fn, y_fn, tmp)
            lfp = R.value_cli(spec, p_fp, y_fp, tmp)
        gaps.append(lfn - lfp)
        sign = np.sign(beta - 1.0)
        chk.true("asym recall: beta=%g: L(misses) %.6g vs L(extras) %.6g should compare as sign %d"
                 % (beta, lfn, lfp, sign), np.sign(round(lfn - lfp, 12)) == sign)
    chk.true("asym recall: the gap L(misses) − L(extras) grows with beta: %s" % gaps,
             all(b > a for a, b in zip(gaps, gaps[1:])))


def main():
    chk = slref.Check("asym vs PyTorch")
    spec = lambda p: R.spec_of("asym", p)
    variants = [
        {},
        {"beta": 1.0, "_kinds": ("labels",), "_channels": (2,)},
        {"beta": 3.0, "batch": True, "include_background": False, "_channels": (4,)},
        {"beta": 0.5, "weight": [0.5, 1.0, 2.0, 4.0], "_channels": (4,), "_kinds": ("soft",)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "asym", spec, ref_asym, variants)
    RR.both_paths(chk, "asym", spec, ref_asym, [{}, {"batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
                          {"ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    RR.edge_cases(chk, "asym", "asym", ref_asym)
    recall_property(chk)
    # β = 1 is the Dice loss.
    RR.same_value(chk, "asym(beta=1)=dice", "asym(beta=1)", "dice")
    RR.bad_spec(chk, "asym(beta=-1)", ["asym", "beta"])
    RR.bad_spec(chk, "asym(beta=true)", ["asym", "beta"])
    chk.report()


if __name__ == "__main__":
    main()
