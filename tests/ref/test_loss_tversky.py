"""tversky against a PyTorch reference written from Salehi et al. 2017 / docs/losses-region.md:
1 − (tp + s_nr)/(tp + α·fp + β·fn + s_dr) per (sample, class), α on the false positives,
β on the false negatives, mean over included groups (MONAI's TverskyLoss reduction)."""
import torch

import lossref as R
import regionref as RR
import slref


def ref_tversky(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
                smooth_dr=1e-5, weight=None, ignore_index=None, alpha=0.3, beta=0.7):
    p, g, m = RR.masked(x, target, C, activation, ignore_index)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    tp = (p * g).sum(axes)
    fp = (p * (1 - g)).sum(axes)
    fn = ((1 - p) * g).sum(axes)
    ti = (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    return RR.mean_groups(1 - ti, C, weight, include_background)


def main():
    chk = slref.Check("tversky vs PyTorch")
    spec = lambda p: R.spec_of("tversky", p)
    variants = [
        {},
        {"alpha": 0.5, "beta": 0.5, "_kinds": ("labels",)},
        {"alpha": 0.9, "beta": 0.1, "smooth_nr": 0.0, "smooth_dr": 1.0, "_channels": (2,)},
        {"include_background": False, "batch": True, "_channels": (4,)},
        {"weight": [0.5, 1.0, 2.0, 4.0], "_channels": (4,), "_kinds": ("soft",)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "tversky", spec, ref_tversky, variants)
    RR.both_paths(chk, "tversky", spec, ref_tversky, [{}, {"batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
                          {"ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    RR.edge_cases(chk, "tversky", "tversky", ref_tversky)
    # α = β = 0.5 is the Dice loss (MONAI's TverskyLoss default).
    RR.same_value(chk, "tversky(0.5,0.5)=dice", "tversky(alpha=0.5,beta=0.5)", "dice")
    RR.bad_spec(chk, "tversky(alpha=-1)", ["tversky", "alpha"])
    RR.bad_spec(chk, "tversky(alpha=0,beta=0)", ["tversky", "alpha", "beta"])
    RR.bad_spec(chk, "tversky(gamma=2)", ["tversky", "gamma"])
    RR.threads_identical(chk, "tversky(batch=true)")
    chk.report()


if __name__ == "__main__":
    main()
