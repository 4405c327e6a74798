"""focal_dice against a PyTorch reference written from Wang & Chung 2018 / docs/losses-region.md:
Σ_c w_c (1 − D_c^{1/β}) / Σ_c w_c over the included classes, per sample (or pooled with
batch=true), then the mean over samples; D the soft Dice score of dice."""
import torch

import lossref as R
import regionref as RR
import slref


def ref_focal_dice(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
                   smooth_dr=1e-5, weight=None, ignore_index=None, beta=2.0):
    s = RR.sums(x, target, C, activation, ignore_index, batch)
    d = RR.dice_score(s, smooth_nr, smooth_dr)
    w = RR.class_weights(target, C, weight, ignore_index)
    return RR.wnorm_groups(1 - d ** (1.0 / beta), C, w, include_background)


def main():
    chk = slref.Check("focal_dice vs PyTorch")
    spec = lambda p: R.spec_of("focal_dice", p)
    variants = [
        {},
        {"beta": 0.5, "weight": [1.0, 5.0, 10.0, 0.5], "_channels": (4,)},
        {"beta": 3.0, "batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
        {"weight": "inverse", "_channels": (4,), "_kinds": ("labels",)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "focal_dice", spec, ref_focal_dice, variants)
    RR.both_paths(chk, "focal_dice", spec, ref_focal_dice, [{}, {"batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
                          {"ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    RR.edge_cases(chk, "focal_dice", "focal_dice", ref_focal_dice)
    RR.same_value(chk, "focal_dice(beta=1)=dice", "focal_dice(beta=1)", "dice")
    RR.bad_spec(chk, "focal_dice(beta=0)", ["focal_dice", "beta"])
    RR.bad_spec(chk, "focal_dice(weight=[0,0])", ["focal_dice", "weight"])
    chk.report()


if __name__ == "__main__":
    main()
