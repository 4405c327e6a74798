"""gdice and pgdice against PyTorch references written from Sudre et al. 2017, Yang et al.
2019 and docs/losses-region.md: per sample (or pooled with batch=true) over the included
classes, w_c = 1/(Σg)² | 1/Σg | 1, an absent class taking the largest finite weight of the
sample, weights normalised to sum 1, S = (2 Σ w tp + s_nr)/(Σ w (Σp + Σg) + s_dr);
gdice = 1 − S, pgdice = 1 − S/(1 + k(1 − S)); the mean over samples.

Also: with zero smoothing gdice equals MONAI's GeneralizedDiceLoss, transcribed here from
its documented algorithm (unnormalised weights, infinite weights replaced by the sample's
maximum)."""
import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def gd_score(x, target, C, activation, include_background, batch, smooth_nr, smooth_dr, ignore_index, w_type):
    s = RR.sums(x, target, C, activation, ignore_index, batch)
    tp, sp, sg = (s[k] if not batch else s[k].unsqueeze(0) for k in ("tp", "sp", "sg"))
    if not include_background and C > 1:
        tp, sp, sg = tp[:, 1:], sp[:, 1:], sg[:, 1:]
    with torch.no_grad():
        if w_type == "uniform":
            w = torch.ones_like(sg)
        else:
            w = 1.0 / (sg * sg) if w_type == "square" else 1.0 / sg
        finite = torch.isfinite(w)
        wmax = torch.where(finite, w, torch.zeros_like(w)).max(1, keepdim=True).values
        w = torch.where(finite, w, wmax.expand_as(w))
        tot = w.sum(1, keepdim=True)
        w = torch.where(tot > 0, w / tot.clamp(min=1e-300), torch.zeros_like(w))
    num = 2 * (w * tp).sum(1) + smooth_nr
    den = (w * (sp + sg)).sum(1) + smooth_dr
    return num / den


def ref_gdice(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
              smooth_dr=1e-5, ignore_index=None, w_type="square"):
    return (1 - gd_score(x, target, C, activation, include_background, batch, smooth_nr, smooth_dr, ignore_index,
                         w_type)).mean()


def ref_pgdice(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
               smooth_dr=1e-5, ignore_index=None, w_type="square", k=2.5):
    S = gd_score(x, target, C, activation, include_background, batch, smooth_nr, smooth_dr, ignore_index, w_type)
    return (1 - S / (1 + k * (1 - S))).mean()


def ref_monai_gdl(x, target, C, w_type="square", batch=False, include_background=True, **kw):
    """MONAI GeneralizedDiceLoss(softmax/sigmoid, smooth_nr=0, smooth_dr=0) as documented."""
    p = R.probs(x, C)
    g = R.onehot(target, C)
    if not include_background and C > 1:
        p, g = p[:, 1:], g[:, 1:]
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    inter = (g * p).sum(axes)
    ground_o = g.sum(axes)
    denominator = ground_o + p.sum(axes)
    w = {"square": lambda v: 1.0 / (v * v), "simple": lambda v: 1.0 / v, "uniform": torch.ones_like}[w_type](ground_o)
    infs = torch.isinf(w)
    w = torch.where(infs, torch.zeros_like(w), w)
    if batch:
        w = w + infs * w.max()
        return 1.0 - 2.0 * (inter * w).sum(0) / (denominator * w).sum(0)
    w = w + infs * w.max(1, keepdim=True).values
    return (1.0 - 2.0 * (inter * w).sum(1) / (denominator * w).sum(1)).mean()


def main():
    chk = slref.Check("gdice/pgdice vs PyTorch")
    spec = lambda p: R.spec_of("gdice", p)
    variants = [
        {},
        {"w_type": "simple", "include_background": False, "_channels": (2, 4)},
        {"w_type": "uniform", "batch": True, "_channels": (1, 4), "_kinds": ("soft",)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "batch": True, "include_background": False, "_empty": 2,
         "_channels": (4,), "_kinds": ("labels",)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "gdice", spec, ref_gdice, variants)
    RR.both_paths(chk, "gdice", spec, ref_gdice, [{}, {"w_type": "simple", "_channels": (4,)}, {"batch": True, "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
                          {"ignore_index": 3, "_ignore": 3, "_channels": (2,), "_kinds": ("labels",)},
                          {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)}])
    RR.edge_cases(chk, "gdice", "gdice", ref_gdice)
    pvariants = [
        {},
        {"k": 0.5, "w_type": "simple", "include_background": False, "_channels": (4,), "_kinds": ("soft",)},
        {"k": 10.0, "batch": True, "_channels": (1, 4), "_kinds": ("labels",)},
        {"ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,), "_activation": "none"},
        {"_activation": "sigmoid", "w_type": "uniform", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "pgdice", lambda p: R.spec_of("pgdice", p), ref_pgdice, pvariants)
    RR.both_paths(chk, "pgdice", lambda p: R.spec_of("pgdice", p), ref_pgdice, [{}, {"k": 5.0, "batch": True, "_channels": (4,)}])
    RR.edge_cases(chk, "pgdice", "pgdice", ref_pgdice)
    RR.same_value(chk, "pgdice(k=0)=gdice", "pgdice(k=0)", "gdice")
    # gdice(smooth 0) = MONAI GeneralizedDiceLoss, every w_type, per sample and batch,
    # with a class absent from some samples
    rng = np.random.default_rng(8)
    with R.tmpdir() as tmp:
        for w_type in ("square", "simple", "uniform"):
            for batch in (False, True):
                for C, incl in ((1, True), (4, True), (4, False)):
                    x, y = R.make_inputs(rng, 3, C, (6, 7), "labels")
                    if C == 4:
                        y[0][y[0] == 2] = 1
                    sp = "gdice(smooth_nr=0,smooth_dr=0,w_type=%s,batch=%s,include_background=%s)" % (
                        w_type, str(batch).lower(), str(incl).lower())
                    R.check_loss(chk, "gdice=MONAI", sp, ref_monai_gdl,
                                 {"w_type": w_type, "batch": batch, "include_background": incl}, x, y, C, tmp,
                                 fd=False)
    RR.bad_spec(chk, "gdice(w_type=cube)", ["gdice", "w_type", "square|simple|uniform"])
    RR.bad_spec(chk, "gdice(weight=[1,2])", ["gdice", "weight"])
    RR.bad_spec(chk, "pgdice(k=-1)", ["pgdice", "k"])
    RR.threads_identical(chk, "gdice")
    chk.report()


if __name__ == "__main__":
    main()
