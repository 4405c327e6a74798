"""Every loss of the catalogue through segloss.torch.SegLoss (autograd) against
the float64 PyTorch references of tests/ref/test_loss_<name>.py: the value, and
the gradient that backward() delivers (scaled by a grad_output of 0.7).
Blobby targets for the distance-based losses (tests/ref/boundaryref.py).
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import importlib

import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import boundaryref as B
import lossref as R
import slref

from segloss import _lib
from segloss.torch import SegLoss

# name -> (reference module, function, extra reference params, kind of target)
# "blob": a blobby label map (distances and components are meaningful there).
TABLE = {
    "ce": ("test_loss_ce", "ref_ce", {}, "rand"),
    "bce": ("test_loss_ce", "ref_ce", {"binary": True, "activation": "sigmoid"}, "rand"),
    "wce": ("test_loss_ce", "ref_ce", {"weight": "inverse"}, "rand"),
    "focal": ("test_loss_focal", "ref_focal", {}, "rand"),
    "topk": ("test_loss_topk", "ref_topk", {}, "rand"),
    "ohem": ("test_loss_topk", "ref_ohem", {}, "rand"),
    "dpce": ("test_loss_dpce", "ref_dpce", {}, "blob"),
    "dice": ("test_loss_dice", "ref_dice", {}, "rand"),
    "logcosh_dice": ("test_loss_logcosh_dice", "ref_logcosh", {}, "rand"),
    "iou": ("test_loss_iou", "ref_iou", {}, "rand"),
    "lovasz": ("test_loss_lovasz", "ref_lovasz", {}, "rand"),
    "tversky": ("test_loss_tversky", "ref_tversky", {}, "rand"),
    "focal_tversky": ("test_loss_focal_tversky", "ref_ftl", {}, "rand"),
    "asym": ("test_loss_asym", "ref_asym", {}, "rand"),
    "sensspec": ("test_loss_sensspec", "ref_sensspec", {}, "rand"),
    "gdice": ("test_loss_gdice", "ref_gdice", {}, "rand"),
    "pgdice": ("test_loss_gdice", "ref_pgdice", {}, "rand"),
    "gwdice": ("test_loss_gwdice", "ref_gwdice", {}, "rand"),
    "focal_dice": ("test_loss_focal_dice", "ref_focal_dice", {}, "rand"),
    "wdice": ("test_loss_wdice", "ref_wdice", {"weight": "inverse", "_spec": "wdice(weight=inverse)"}, "rand"),
    "adaptive_dice": ("test_loss_adaptive_dice", "ref_adaptive", {}, "rand"),
    "mcc": ("test_loss_mcc", "ref_mcc", {}, "rand"),
    "boundary": ("test_loss_boundary", "ref_boundary", {}, "blob"),
    "hausdorff_dt": ("test_loss_hausdorff_dt", "ref_hd", {}, "blob"),
    "hausdorff_er": ("test_loss_hausdorff_er", "ref_hausdorff_er", {}, "blob"),
    "boundary_aware": ("test_loss_boundary_aware", "ref_ba", {}, "blob"),
    "edge_dice": ("test_loss_edge_dice", "ref_edge_dice", {}, "blob"),
    "cldice": ("test_loss_cldice", "ref_cldice", {}, "blob"),
    "blob": ("test_loss_blob", "ref_blob", {}, "blob"),
    "ssim": ("test_loss_ssim", "ref_ssim", {}, "blob"),
    "combo": ("test_loss_combo", "ref_combo", {}, "rand"),
    "unified_focal": ("test_loss_unified_focal", "ref_unified", {}, "rand"),
    "exp_log": ("test_loss_exp_log", "ref_exp_log", {}, "rand"),
    "log_hausdorff_dt": ("test_loss_exp_log", "ref_log_hd", {}, "blob"),
}


def catalogue():
    import ctypes
    h = _lib.lib()

    class Info(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("family", ctypes.c_char_p), ("summary", ctypes.c_char_p),
                    ("reference", ctypes.c_char_p)]
    h.sl_loss_catalogue.restype = ctypes.POINTER(Info)
    return [h.sl_loss_catalogue(i).contents.name.decode() for i in range(h.sl_loss_catalogue_size())]


def inputs(rng, kind, N, C, spatial):
    if kind == "blob":
        y = B.blobby_labels(rng, N, C, spatial)
        x = B.logits(rng, N, C, spatial).astype(np.float32)
    else:
        x, y = R.make_inputs(rng, N, C, spatial, "labels")
    return x, y


def main():
    chk = slref.Check("SegLoss vs the PyTorch references")
    names = catalogue()
    missing = [n for n in names if n not in TABLE]
    chk.true("catalogue losses without a SegLoss check: %s" % missing, not missing)
    rng = np.random.default_rng(5)
    cases = [(2, (12, 13)), (1, (11, 12, 6))] if not slref.QUICK else [(2, (12, 13))]
    for name in names:
        if name not in TABLE:
            continue
        modname, fn, params, kind = TABLE[name]
        ref = getattr(importlib.import_module(modname), fn)
        for C in (1, 3):
            if name in ("bce", "exp_log") and C == 1:   # two-channel-or-more losses
                continue
            for N, spatial in cases:
                if name == "ssim" and len(spatial) == 3:
                    continue
                x, y = inputs(rng, kind, N, C, spatial)
                spec = params.get("_spec", name)
                rparams = {k: v for k, v in params.items() if k != "_spec"}
                loss = SegLoss(spec, threads=2).eval()   # eval(): adaptive_dice without state updates
                xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
                v = loss(xt, torch.from_numpy(y))
                (0.7 * v).backward()
                rv, rg = R.reference(ref, x, y, C, rparams)
                label = "%s C=%d %s" % (name, C, x.shape)
                chk.close("%s value" % label, float(v), rv, rtol=2e-5, atol=1e-6, group=name + " value")
                scale = max(float(np.abs(rg).max()), 1e-12)
                chk.close("%s grad" % label, xt.grad.numpy(), 0.7 * rg, rtol=1e-4, atol=5e-5 * scale,
                          group=name + " grad")
    chk.report()


if __name__ == "__main__":
    main()
