"""mcc against a PyTorch float64 reference written from Abhishek & Hamarneh 2021:
soft tp, fp, fn, tn per (sample, class) (or per class with batch=true), MCC from
them literally, 1 − MCC averaged over groups as the other region losses."""
import numpy as np
import torch

import distref as D
import lossref as R
import slref


def ref_mcc(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
            smooth_dr=1e-5, weight=None, ignore_index=None):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    axes = ([0] if batch else []) + list(range(2, x.dim()))
    tp = (p * g * m).sum(axes)
    fp = (p * (1 - g) * m).sum(axes)
    fn = ((1 - p) * g * m).sum(axes)
    tn = ((1 - p) * (1 - g) * m).sum(axes)
    P = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    ok = P > 0
    den = torch.sqrt(torch.where(ok, P, torch.ones_like(P)))
    mcc = torch.where(ok, (tp * tn - fp * fn + smooth_nr) / (den + smooth_dr),
                      torch.full_like(P, smooth_nr / smooth_dr))
    l = 1 - mcc
    if weight is not None:
        l = l * torch.tensor(weight)
    if not include_background and C > 1:
        l = l[..., 1:]
    return l.mean()


def main():
    chk = slref.Check("mcc vs PyTorch")
    variants = [
        {},
        {"batch": True},
        {"include_background": False, "_channels": (2, 4)},
        {"batch": True, "smooth_nr": 0.0, "smooth_dr": 1.0, "_channels": (1,)},
        {"smooth_nr": 0.5, "smooth_dr": 2.0, "_channels": (2,)},
        {"weight": [0.5, 1.0, 2.0, 4.0], "_channels": (4,)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4)},
        {"_activation": "sigmoid", "_channels": (2, 4), "_kinds": ("soft",)},
        {"_empty": 1, "_channels": (4,), "_kinds": ("labels",)},
        {"batch": True, "include_background": False, "_empty": 2, "_channels": (4,), "_kinds": ("labels",)},
    ]
    R.run_matrix(chk, "mcc", lambda p: R.spec_of("mcc", p), ref_mcc, variants, **D.kw())
    D.edge_cases(chk, "mcc", "mcc(ignore_index=9)", ref_mcc, {"ignore_index": 9}, **D.kw())
    D.edge_cases(chk, "mcc", "mcc(batch=true,ignore_index=9)", ref_mcc, {"batch": True, "ignore_index": 9},
                 channels=(1, 3), **D.kw())
    with R.tmpdir() as tmp:
        # A perfect binary prediction has MCC ~ 1; its exact inverse ~ -1 (loss ~ 2).
        y = np.array([[[0, 1, 1, 0, 1, 0]]], np.int64)
        x = np.where(y[:, None] == 1, 12.0, -12.0).astype(np.float32)
        v, _, err = R.run_cli("mcc", x, y, tmp)
        chk.true("mcc perfect: %s" % err, err is None)
        chk.close("mcc perfect value", v, 0.0, atol=1e-4)
        v, _, err = R.run_cli("mcc", -x, y, tmp)
        chk.close("mcc inverse value", v, 2.0, atol=1e-4)
    D.bad_params(chk, "mcc", [
        ("mcc(smooth_dr=0)", "smooth_dr"),
        ("mcc(smooth_nr=-1)", "out of range"),
        ("mcc(weight=[1,2,3])", "weight has 3 values"),
        ("mcc(weight=sqrt)", "weight"),
        ("mcc(r=0.5)", "unknown key 'r'"),
    ])
    D.threads_identical(chk, "mcc", ["mcc", "mcc(batch=true)"])
    chk.report()


if __name__ == "__main__":
    main()
