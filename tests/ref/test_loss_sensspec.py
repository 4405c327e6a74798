"""sensspec against a PyTorch float64 reference written from Brosch et al. 2015:
r·Σ(g−p)²g/(Σg + s) + (1−r)·Σ(g−p)²(1−g)/(Σ(1−g) + s) per (sample, class),
averaged over groups as the other region losses."""
import numpy as np
import torch

import distref as D
import lossref as R
import slref


def ref_sensspec(x, target, C, activation="auto", include_background=True, batch=False, smooth_dr=1e-5,
                 weight=None, ignore_index=None, r=0.05):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    axes = ([0] if batch else []) + list(range(2, x.dim()))
    err = (g - p) ** 2 * m
    sens = (err * g).sum(axes) / ((g * m).sum(axes) + smooth_dr)
    spec = (err * (1 - g)).sum(axes) / (((1 - g) * m).sum(axes) + smooth_dr)
    l = r * sens + (1 - r) * spec
    if weight is not None:
        l = l * torch.tensor(weight)
    if not include_background and C > 1:
        l = l[..., 1:]
    return l.mean()


def main():
    chk = slref.Check("sensspec vs PyTorch")
    variants = [
        {},
        {"r": 0.5},
        {"r": 1.0, "_channels": (1, 4)},
        {"batch": True},
        {"include_background": False, "_channels": (2, 4)},
        {"smooth_dr": 1.0, "_channels": (2,)},
        {"weight": [0.5, 1.0, 2.0, 4.0], "_channels": (4,)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4)},
        {"_activation": "sigmoid", "_channels": (2, 4), "_kinds": ("soft",)},
        {"_empty": 1, "_channels": (4,), "_kinds": ("labels",)},
    ]
    R.run_matrix(chk, "sensspec", lambda p: R.spec_of("sensspec", p), ref_sensspec, variants, **D.kw())
    D.edge_cases(chk, "sensspec", "sensspec(ignore_index=9)", ref_sensspec, {"ignore_index": 9}, **D.kw())
    with R.tmpdir() as tmp:
        # smooth_dr = 0 with an empty class: the sensitivity term is 0 (not 0/0).
        rng = np.random.default_rng(1)
        x = rng.normal(0, 2, (1, 3, 4, 5)).astype(np.float32)
        y = rng.integers(0, 2, (1, 4, 5)).astype(np.int64)
        y[0, 0, 0], y[0, 0, 1] = 0, 1
        def ref0(x, t, C, **k):
            p = R.probs(x, C)
            g = R.onehot(t, C)
            err = (g - p) ** 2
            pos = torch.where(g.sum((2, 3)) > 0, (err * g).sum((2, 3)) / g.sum((2, 3)).clamp(min=1e-300),
                              torch.zeros(1, C))
            neg = (err * (1 - g)).sum((2, 3)) / (1 - g).sum((2, 3))
            return (0.05 * pos + 0.95 * neg).mean()
        R.check_loss(chk, "sensspec zero-smoothing", "sensspec(smooth_dr=0)", ref0, {}, x, y, 3, tmp)
    D.bad_params(chk, "sensspec", [
        ("sensspec(r=1.5)", "r=1.5"),
        ("sensspec(r=-0.1)", "out of range"),
        ("sensspec(smooth_nr=1)", "unknown key 'smooth_nr'"),
        ("sensspec(smooth_dr=-1)", "smooth_dr"),
        ("sensspec(weight=[1,2,3,4,5])", "weight has 5 values"),
    ])
    D.threads_identical(chk, "sensspec", ["sensspec", "sensspec(batch=true)"])
    chk.report()


if __name__ == "__main__":
    main()
