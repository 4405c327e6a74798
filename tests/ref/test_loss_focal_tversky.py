"""focal_tversky against a PyTorch reference written from Abraham & Khan 2019 /
docs/losses-region.md: the mean over included (sample, class) groups of (1 − TI)^γ, the
exponent applied per group, TI the Tversky index with α on FP and β on FN."""
import torch

import lossref as R
import regionref as RR
import slref


def ref_ftl(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
            smooth_dr=1e-5, weight=None, ignore_index=None, alpha=0.3, beta=0.7, gamma=0.75):
    p, g, m = RR.masked(x, target, C, activation, ignore_index)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    tp = (p * g).sum(axes)
    fp = (p * (1 - g)).sum(axes)
    fn = ((1 - p) * g).sum(axes)
    ti = (tp + smooth_nr) / (tp + alpha * fp + beta * fn + smooth_dr)
    return RR.mean_groups((1 - ti).clamp(min=0) ** gamma, C, weight, include_background)


def main():
    chk = slref.Check("focal_tversky vs PyTorch")
    spec = lambda p: R.spec_of("focal_tversky", p)
    variants = [
        {},
        {"gamma": 2.0, "alpha": 0.5, "beta": 0.5, "_kinds": ("soft",)},
        {"gamma": 0.5, "batch": True, "include_background": False, "_channels": (4,)},
        {"weight": [0.5, 1.0, 2.0, 4.0], "smooth_nr": 0.0, "smooth_dr": 1.0, "_channels": (4,), "_kinds": ("labels",)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "focal_tversky", spec, ref_ftl, variants)
    RR.both_paths(chk, "focal_tversky", spec, ref_ftl, [{}, {"batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
                          {"ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    RR.edge_cases(chk, "focal_tversky", "focal_tversky", ref_ftl)
    # γ = 1 is the Tversky loss.
    RR.same_value(chk, "focal_tversky(gamma=1)=tversky", "focal_tversky(gamma=1)", "tversky")
    RR.bad_spec(chk, "focal_tversky(gamma=0)", ["focal_tversky", "gamma"])
    RR.bad_spec(chk, "focal_tversky(gamma=-1)", ["focal_tversky", "gamma"])
    RR.bad_spec(chk, "focal_tversky(smooth_nr=1,smooth_dr=0)", ["focal_tversky", "smooth_nr"])
    RR.bad_spec(chk, "focal_tversky(beta=-0.1)", ["focal_tversky", "beta"])
    chk.report()


if __name__ == "__main__":
    main()
