"""logcosh_dice against a PyTorch reference written from Jadon 2020 / docs/losses-region.md:
log(cosh(L)) with L the dice loss exactly as `dice` computes it (per (sample, class),
smooth 1e-5, mean over included groups, optional squared / log / weights)."""
import torch

import lossref as R
import regionref as RR
import slref


def ref_logcosh(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
                smooth_dr=1e-5, weight=None, ignore_index=None, squared=False, log=False):
    s = RR.sums(x, target, C, activation, ignore_index, batch)
    d = RR.dice_score(s, smooth_nr, smooth_dr, squared)
    l = RR.mean_groups(-torch.log(d) if log else 1 - d, C, weight, include_background)
    return torch.log(torch.cosh(l))


def main():
    chk = slref.Check("logcosh_dice vs PyTorch")
    spec = lambda p: R.spec_of("logcosh_dice", p)
    variants = [
        {},
        {"include_background": False, "batch": True, "_channels": (4,)},
        {"squared": True, "_channels": (2,)},
        {"log": True, "_channels": (1, 4), "_kinds": ("soft",)},
        {"weight": [0.5, 1.0, 2.0, 4.0], "smooth_nr": 0.0, "smooth_dr": 1.0, "_channels": (4,)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "logcosh_dice", spec, ref_logcosh, variants)
    RR.both_paths(chk, "logcosh_dice", spec, ref_logcosh, [{}, {"batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
                          {"ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    RR.edge_cases(chk, "logcosh_dice", "logcosh_dice", ref_logcosh)
    RR.bad_spec(chk, "logcosh_dice(squared=1)", ["logcosh_dice", "squared"])
    RR.bad_spec(chk, "logcosh_dice(smooth_nr=-0.5)", ["logcosh_dice", "smooth_nr"])
    chk.report()


if __name__ == "__main__":
    main()
