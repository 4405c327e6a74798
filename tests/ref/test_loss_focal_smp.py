"""focal(normalized=true) and focal(reduced_threshold=r): segmentation_models_pytorch's focal_loss_with_logits
(reduction="mean"), transcribed here in float64 PyTorch:
# sanitized: skip

    logpt = BCE(output, target);  pt = exp(−logpt)
    focal_term = (1 − pt)^γ,  or with reduced_threshold r: ((1 − pt)/r)^γ, set to 1 where pt < r
    loss = focal_term · logpt · (α t + (1 − α)(1 − t) if alpha)
    normalized: loss /= focal_term.sum().clamp_min(1e-6);   then loss.mean()

on sigmoid channels (one channel, or activation=sigmoid on several), hard and soft targets; activation=none takes
probabilities, so the reference uses F.binary_cross_entropy there. Autograd gives the gradient (Σ focal_term is
differentiated, as in smp) and a central difference checks the C gradient (r = 0.5, where focal_term is continuous)."""
import numpy as np
import torch
import torch.nn.functional as F

import lossref as R
import slref
from smpref import focal_from_logpt
from test_loss_hausdorff_dt import away_from_half


def smp_focal(x, target, C, activation="auto", gamma=2.0, alpha=None, normalized=False, reduced_threshold=0.0,
              mask=None):
    t = R.onehot(target, C)
    if activation == "none":
        logpt = F.binary_cross_entropy(x, t, reduction="none")
    else:
        logpt = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    loss = focal_from_logpt(logpt, t, gamma, alpha, normalized, reduced_threshold or None)
    return loss.mean()


def main():
    chk = slref.Check("focal normalized/reduced vs smp focal_loss_with_logits (PyTorch)")
    variants = [
        {"normalized": True, "_channels": (1,)},
        {"reduced_threshold": 0.5, "_channels": (1,)},
        {"normalized": True, "reduced_threshold": 0.5, "alpha": 0.25, "_channels": (1,)},
        {"normalized": True, "gamma": 1.0, "_activation": "sigmoid", "_channels": (3,)},
        {"reduced_threshold": 0.5, "gamma": 3.0, "_activation": "sigmoid", "_channels": (3,)},
        {"normalized": True, "_activation": "none", "_channels": (1,)},
    ]
    # At pt = r the reduced focal term has a kink (its derivative jumps from 0): a smaller step crosses fewer.
    plain = [v for v in variants if "reduced_threshold" not in v]
    reduced = [v for v in variants if "reduced_threshold" in v]
    R.run_matrix(chk, "focal", lambda p: R.spec_of("focal", p), smp_focal, plain, seed=8)
    # Labels with probabilities at least 0.04 from 0.5 (pt = p or 1 − p stays off the kink at r = 0.5) get the
    # finite differences; soft targets only the autograd comparison.
    rng = np.random.default_rng(8)
    with R.tmpdir() as tmp:
        for params in reduced:
            p = {k: v for k, v in params.items() if not k.startswith("_")}
            act = params.get("_activation", "auto")
            for C in params["_channels"]:
                for N, spatial in R.shapes(slref.QUICK):
                    for kind in ("labels", "soft"):
                        x, y = R.make_inputs(rng, N, C, spatial, kind, activation=act)
                        if kind == "labels":
                            x = away_from_half(rng, x, C, act)
                        spec = R.spec_of("focal", dict(p, activation=act))
                        R.check_loss(chk, "focal", spec, smp_focal, dict(p, activation=act), x, y, C, tmp,
                                     fd=kind == "labels")
    rng = np.random.default_rng(6)
    with R.tmpdir() as tmp:
        for r in (0.3, 0.8):  # focal_term jumps at pt = r: no finite differences
            x, y = R.make_inputs(rng, 2, 1, (9, 10), "labels")
            R.check_loss(chk, "focal reduced", "focal(reduced_threshold=%g)" % r, smp_focal, {"reduced_threshold": r},
                         x, y, 1, tmp, fd=False)
        x, y = R.make_inputs(rng, 2, 1, (6, 7), "labels")
        m = rng.uniform(0, 2, (2, 1, 6, 7)).astype(np.float32)
        # with a mask: Σ m·e / (Σ m·f · Σ m), the weighted form of smp's
        ref_m = lambda x, t, C, mask, **kw: _masked(x, t, C, mask, **kw)
        R.check_loss(chk, "focal masked", "focal(normalized=true)", ref_m, {"normalized": True}, x, y, 1, tmp, mask=m)
        v, _, err = R.run_lib("focal(normalized=true)", *R.make_inputs(rng, 1, 3, (4, 4), "labels"))
        chk.true("normalized under softmax is refused (%s)" % err, v is None and "sigmoid" in err)
    chk.report()


def _masked(x, target, C, mask, gamma=2.0, normalized=True):
    t = R.onehot(target, C)
    logpt = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    f = (1.0 - torch.exp(-logpt)).pow(gamma)
    e = (mask * f * logpt).sum() / (mask * f).sum().clamp_min(1e-6)
    return e / (mask.sum() * C)


if __name__ == "__main__":
    main()
