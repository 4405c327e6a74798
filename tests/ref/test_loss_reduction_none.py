"""reduction="none" (sl_loss_forward_none, segloss loss --reduction none): the (N, C) matrix of a per-class loss
and the per-sample values of the others, with the gradient of a weighted sum Σ u·M, against float64 PyTorch.
# sanitized: skip

References (docs/losses.md#per-sample-and-per-class-values-reductionnone):
  class mode   M_nc = Σ_t weight_t·w_c·L_t,nc: MONAI's DiceLoss(reduction="none") matrix written out for dice, iou,
               tversky (per (sample, class) soft counts), and the per-group values of the ssim, edge_dice,
               hausdorff_er and cldice references of test_loss_mask_more.py (mask of ones);
  sample mode  M_n = the loss of sample n alone: each loss's reference on the batch of one x[n:n+1].
The gradient is autograd of Σ u·M with a random upstream u; a central difference of Σ u·M through the C library
checks it again (release pass). Also: the mean of M's included entries is the ordinary value; errors for
batch=true, a stateful loss and a non-finite upstream; the CLI writes the matrix and its --upstream gradient."""
import ctypes
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

import boundaryref as B
import lossref as R
import slref
import test_loss_mask as M
import test_loss_mask_more as MM

SL_EINVAL, SL_ENONFINITE = 1, 5


def _lib():
    lib = slref.lib()
    vp = ctypes.c_void_p
    lib.sl_loss_none_columns.argtypes = [vp, vp, vp, ctypes.c_char_p, ctypes.c_size_t]
    lib.sl_loss_forward_none.argtypes = [vp, vp, vp, vp, vp, vp, vp, vp, ctypes.c_char_p, ctypes.c_size_t]
    return lib


def run_none(spec, x, y, upstream=None, want_grad=True):
    """(M, grad, status, message) through ctypes."""
    lib = _lib()
    msg = ctypes.create_string_buffer(512)
    loss = ctypes.c_void_p()
    assert lib.sl_loss_create(spec.encode(), ctypes.byref(loss), msg, 512) == 0, msg.value
    try:
        x = np.ascontiguousarray(x, np.float32)
        soft = y.dtype.kind == "f"
        yy = np.ascontiguousarray(y, np.float32 if soft else np.int32)
        d = R._Dims(x.shape[0], x.shape[1], x.ndim - 2,
                    (ctypes.c_int64 * 3)(*(list(x.shape[2:]) + [1] * (5 - x.ndim))))
        t = R._Target(1 if soft else 0, None if soft else yy.ctypes.data, yy.ctypes.data if soft else None, None)
        cols = ctypes.c_int64()
        st = lib.sl_loss_none_columns(loss, ctypes.byref(d), ctypes.byref(cols), msg, 512)
        if st != 0:
            return None, None, st, msg.value.decode()
        vals = np.zeros((x.shape[0], cols.value))
        up = None if upstream is None else np.ascontiguousarray(upstream, np.float64)
        g = np.zeros_like(x) if want_grad else None
        st = lib.sl_loss_forward_none(loss, x.ctypes.data, ctypes.byref(d), ctypes.byref(t), None, vals.ctypes.data,
                                      None if up is None else up.ctypes.data, None if g is None else g.ctypes.data,
                                      msg, 512)
        return vals, g, st, msg.value.decode()
    finally:
        lib.sl_loss_free(loss)


# ---------------------------------------------------------------- references: (N, K) matrices


def counts(x, y, C):
    p, g = R.probs(x, C, "auto"), R.onehot(y, C)
    ax = list(range(2, x.dim()))
    return (p * g).sum(ax), p.sum(ax), g.sum(ax)


def m_dice(x, y, C, include_background=True, weight=None):
    """MONAI DiceLoss(reduction="none") (N, C), weight applied per class, a dropped background column 0."""
    tp, sp, sg = counts(x, y, C)
    l = 1 - (2 * tp + 1e-5) / (sp + sg + 1e-5)
    if weight is not None:
        l = l * torch.tensor(weight, dtype=torch.float64)
    if not include_background and C > 1:
        l = torch.cat([l[:, :1] * 0, l[:, 1:]], 1)
    return l


def m_iou(x, y, C):
    tp, sp, sg = counts(x, y, C)
    return 1 - (tp + 1e-5) / (sp + sg - tp + 1e-5)


def m_tversky(x, y, C, alpha=0.3, beta=0.7):
    tp, sp, sg = counts(x, y, C)
    return 1 - (tp + 1e-5) / (tp + alpha * (sp - tp) + beta * (sg - tp) + 1e-5)


def per_class(ref, **kw):
    """The (N, C) values of a test_loss_mask_more reference (a mask of ones)."""
    return lambda x, y, C: ref(x, y, C, torch.ones((x.shape[0], 1) + tuple(x.shape[2:]), dtype=torch.float64),
                               groups=True, **kw)


def per_sample(ref):
    """(N, 1): ref on each sample alone."""
    return lambda x, y, C: torch.stack([ref(x[n:n + 1], y[n:n + 1], C) for n in range(x.shape[0])]).reshape(-1, 1)


def ones_mask(fn):
    return lambda x, y, C: fn(x, y, C, torch.ones((x.shape[0], 1) + tuple(x.shape[2:]), dtype=torch.float64))


ce = ones_mask(M.ref_ce)
focal = ones_mask(M.ref_focal)
dice_scalar = ones_mask(M.ref_dice)
lovasz = ones_mask(MM.ref_lovasz)
blob = ones_mask(MM.ref_blob)

# name, spec, matrix reference, channels, target kinds, finite-difference step
CASES = [
    ("dice", "dice", m_dice, (1, 3), ("labels", "soft"), 1e-2),
    ("dice", "dice(include_background=false,weight=[1,2,0.5])",
     lambda x, y, C: m_dice(x, y, C, False, [1, 2, 0.5]), (3,), ("labels",), 1e-2),
    ("iou+tversky", "0.5*iou+2*tversky", lambda x, y, C: 0.5 * m_iou(x, y, C) + 2 * m_tversky(x, y, C), (3,),
     ("labels",), 1e-2),
    ("ssim", "ssim(window=3)", per_class(MM.ref_ssim), (1, 3), ("labels",), 1e-2),
    ("edge_dice", "edge_dice", per_class(MM.ref_edge_dice), (3,), ("soft",), 1e-3),
    ("hausdorff_er", "hausdorff_er(erosions=3)", per_class(MM.ref_hausdorff_er), (2,), ("labels",), 1e-4),
    ("cldice", "cldice", per_class(MM.ref_cldice), (3,), ("labels",), 1e-4),
    ("ce", "ce", per_sample(ce), (1, 3), ("labels", "soft"), 1e-2),
    ("focal", "focal", per_sample(focal), (3,), ("labels",), 1e-2),
    ("dice+ce", "dice+ce", per_sample(lambda x, y, C: dice_scalar(x, y, C) + ce(x, y, C)), (3,), ("labels",), 1e-2),
    ("lovasz", "lovasz", per_sample(lovasz), (1, 3), ("labels",), 1e-4),
    ("blob", "blob", per_sample(blob), (2,), ("labels",), 1e-2),
]


def check_case(chk, name, spec, ref, x, y, C, step):
    rng = np.random.default_rng(5)
    u = None
    vals, g, st, msg = run_none(spec, x, y, None, want_grad=False)
    if not chk.true("%s %s x%s runs (%d %s)" % (name, spec, x.shape, st, msg), st == 0):
        return
    u = rng.normal(0, 1, vals.shape)
    vals, g, st, msg = run_none(spec, x, y, u)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    yt = torch.tensor(y.astype(np.float64)) if y.dtype.kind == "f" else torch.tensor(y)
    Mr = ref(xt, yt, C)
    (torch.tensor(u) * Mr).sum().backward()
    label = "%s %s x%s %s" % (name, spec, x.shape, "soft" if y.dtype.kind == "f" else "labels")
    chk.true("%s: matrix shape %s == reference %s" % (label, vals.shape, tuple(Mr.shape)), vals.shape == tuple(Mr.shape))
    chk.close("%s matrix" % label, vals, Mr.detach().numpy(), rtol=2e-5, atol=1e-7, group=name + " matrix")
    rg = xt.grad.numpy()
    chk.close("%s grad of Σ u·M" % label, g, rg, rtol=1e-4, atol=5e-5 * max(float(np.abs(rg).max()), 1e-12),
              group=name + " grad")
    if not slref.QUICK:
        v = np.random.default_rng(7).normal(0, 1, x.shape)
        xp, xm = (x + step * v).astype(np.float32), (x - step * v).astype(np.float32)
        lp = float((u * run_none(spec, xp, y, None, False)[0]).sum())
        lm = float((u * run_none(spec, xm, y, None, False)[0]).sum())
        fd = (lp - lm) / (2 * step)
        an = float((g.astype(np.float64) * (xp.astype(np.float64) - xm)).sum()) / (2 * step)
        chk.close("%s finite-diff" % label, fd, an, rtol=0,
                  atol=2e-2 * abs(an) + 2e-6 * max(abs(lp), abs(lm), 1e-3) / step, group=name + " finite-diff")


def main():
    chk = slref.Check("reduction=none: per-sample and per-class values vs PyTorch")
    rng = np.random.default_rng(1617)
    shapes = B.shapes(slref.QUICK)
    for i, (name, spec, ref, channels, kinds, step) in enumerate(CASES):
        for C in channels:
            for ki, kind in enumerate(kinds):
                for N, spatial in ([shapes[(i + C + ki) % len(shapes)]] if slref.QUICK else shapes[1::2]):
                    N = max(N, 2)
                    check_case(chk, name, spec, ref, B.logits(rng, N, C, spatial), B.targets(rng, N, C, spatial, kind),
                               C, step)

    # The mean of the included entries is the ordinary value (equal voxel counts); the default gradient (no
    # upstream) is the gradient of Σ M.
    x, y = B.logits(rng, 3, 4, (9, 10)), B.blobby_labels(rng, 3, 4, (9, 10))
    for spec, incl in (("dice", slice(0, 4)), ("dice(include_background=false)", slice(1, 4)), ("dice+ce", None),
                       ("tversky", slice(0, 4)), ("ce", None), ("hausdorff_er", slice(0, 4))):
        vals, g, st, msg = run_none(spec, x, y)
        v, g0, e = R.run_lib(spec, x, y)
        if chk.true("%s none and mean run (%s %s)" % (spec, msg, e), st == 0 and e is None):
            m = vals.mean() if incl is None else vals[:, incl].mean()
            chk.close("%s: mean of M == the ordinary value" % spec, m, v, rtol=1e-6, atol=1e-8, group="consistency")
            k = vals[:, incl].size if incl is not None else vals.size
            chk.close("%s: grad of Σ M == N·K × the ordinary gradient" % spec, g, g0 * k, rtol=1e-4,
                      atol=1e-6 * max(1.0, float(np.abs(g0 * k).max())), group="consistency")

    # Errors.
    for spec, words in (("dice(batch=true)", "batch=true"), ("adaptive_dice", "stateful"),
                        ("ce+tversky(batch=true)", "tversky")):
        _, _, st, msg = run_none(spec, x, y)
        chk.true("%s refused with SL_EINVAL naming '%s' (%d: %s)" % (spec, words, st, msg),
                 st == SL_EINVAL and words in msg)
    up = np.ones((3, 4))
    up[1, 2] = np.nan
    _, _, st, msg = run_none("dice", x, y, up)
    chk.true("NaN upstream -> SL_ENONFINITE (%d: %s)" % (st, msg), st == SL_ENONFINITE and "upstream" in msg)
    yb = y.copy()
    yb[2, 3, 4] = 7
    _, _, st, msg = run_none("dice", x, yb)
    want = "index %d" % (2 * 90 + 3 * 10 + 4)
    chk.true("a bad label names the batch's index (%d: %s)" % (st, msg), st != 0 and want in msg)

    # CLI: --reduction none writes the matrix; --upstream gives the gradient of Σ u·M.
    with R.tmpdir() as tmp:
        xp, yp, vp, gp, up_p = (os.path.join(tmp, f) for f in ("x.npy", "y.npy", "v.npy", "g.npy", "u.npy"))
        np.save(xp, x)
        np.save(yp, y)
        u = rng.normal(0, 1, (3, 4))
        np.save(up_p, u)
        rc, out, err = slref.cli(["loss", "dice", "--input", xp, "--target", yp, "--reduction", "none",
                                  "--values", vp, "--upstream", up_p, "--grad", gp])
        if chk.true("CLI --reduction none runs (rc %d: %s)" % (rc, err.strip()), rc == 0):
            vals, g, _, _ = run_none("dice", x, y, u)
            chk.close("CLI matrix == library", np.load(vp), vals, rtol=0, atol=0, group="cli")
            chk.close("CLI gradient == library", np.load(gp), g, rtol=0, atol=0, group="cli")
            chk.true("CLI prints the matrix's shape (%s)" % out.strip(), json.loads(out) == {"reduction": "none",
                                                                                           "shape": [3, 4]})
        for extra, words in ((["--values", vp], "--reduction none"), (["--reduction", "sum"], "mean|none"),
                             (["--reduction", "none"], "--values"),
                             (["--reduction", "none", "--values", vp, "--upstream", xp], "upstream")):
            if os.path.exists(gp):
                os.remove(gp)
            rc, out, err = slref.cli(["loss", "dice", "--input", xp, "--target", yp, "--grad", gp] + extra)
            chk.true("CLI %s refused naming '%s' (rc %d: %s), no gradient written" % (extra, words, rc, err.strip()),
                     rc != 0 and words in err and not os.path.exists(gp))
    chk.report()


if __name__ == "__main__":
    main()
