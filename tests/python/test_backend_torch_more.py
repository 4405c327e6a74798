"""SegLoss(backend="torch"), the native PyTorch path, against the C path for what
issue 16 added to the C path later: (1) mask= (per-voxel weights) for dpce,
lovasz, hausdorff_er, boundary_aware, edge_dice, cldice, blob and ssim (and
the other terms the native path did not weight yet: asym, focal_dice, wdice,
adaptive_dice, combo, unified_focal, gwdice, topk, ohem), and
(2) reduction="none" (the (N, K) matrix of sl_loss_forward_none: (N, C) when
every term is a per-class loss, else (N, 1), each sample a batch of one).

Tolerance as tests/python/test_backend_torch.py: the C library computes in
float32 with float64 sums, the native path here in float64 on the same
float32 logits: value error / max(1, |value|) <= 2e-5, gradient max |diff| /
max |grad| <= 1e-4 (for reduction="none": the matrix, and the gradient of
Σ u·M with a random upstream u). Each masked case also checks that the mask
moves the value (|masked − unmasked| > 1e-5), so a path that ignored the
mask would fail; and one hand-made case reproduces the native path's old
form (weights multiplied into p and g before ssim's windows) and shows that
it differs from the C value. Edge cases: a sample whose weights are all 0,
a blob whose voxels all weigh 0. Refusals: batch=true and adaptive_dice
under reduction="none" raise the C path's error class on the native path too.
On CUDA tensors the same comparisons run when a CUDA device is present
(skipped with a message otherwise).
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref

from segloss import errors
from segloss.torch import SegLoss

torch.set_num_threads(1)

# (spec, channel counts, target kinds): the eight terms that gained a mask on the native path
MASKED = [
    ("dpce", (1, 4), ("labels", "soft")),
    ("dpce(lambda=2,activation=sigmoid)", (3,), ("labels",)),
    ("boundary_aware", (1, 4), ("labels", "soft")),
    ("boundary_aware(width=1,p_boundary=5,p_inner=0.5)", (4,), ("labels",)),
    ("lovasz", (1, 4), ("labels", "soft")),
    ("lovasz(per_image=true,classes=all,ignore_index=2)", (4,), ("labels",)),
    ("lovasz(activation=sigmoid,per_image=true)", (3,), ("labels",)),
    ("blob", (1, 4), ("labels",)),
    ("blob(connectivity=face,include_background=true)", (4,), ("labels", "soft")),
    ("cldice", (1, 4), ("labels", "soft")),
    ("cldice(iters=4,weight=inverse,ignore_index=2)", (4,), ("labels",)),
    ("cldice(auto_iters=true,batch=true,pool_classes=true)", (4,), ("labels",)),
    ("edge_dice", (1, 4), ("labels", "soft")),
    ("edge_dice(padding=replicate,batch=true,ignore_index=1,weight=[1,2,3,4])", (4,), ("labels",)),
    ("ssim(window=3)", (1, 4), ("labels", "soft")),
    ("ssim(window=3,padding=zero,ignore_index=1,weight=median)", (4,), ("labels",)),
    ("hausdorff_er(erosions=4)", (1, 4), ("labels",)),   # soft targets: (p − g)² erodes to 0 (value 0)
    ("hausdorff_er(erosions=3,ignore_index=2,weight=inverse,include_background=false)", (4,), ("labels",)),
    ("dice+0.5*lovasz+ssim(window=3)+blob", (4,), ("labels",)),
    # the other native terms that lacked a mask: region sums (asym, focal_dice, wdice, adaptive_dice, combo's dice
    # part), unified_focal's Tversky sums (Σ m·q·h, once), gwdice, and topk/ohem ranking m·ℓ
    ("asym", (1, 4), ("labels", "soft")),
    ("focal_dice(weight=inverse,beta=3,include_background=false)", (4,), ("labels",)),
    ("wdice(weight=[1,5,10,2])", (4,), ("labels",)),
    ("adaptive_dice", (4,), ("labels",)),
    ("combo", (1, 4), ("labels", "soft")),
    ("combo(alpha=0.8,beta=0.7,batch=true)", (4,), ("labels",)),
    ("unified_focal", (1, 4), ("labels", "soft")),
    ("unified_focal(activation=sigmoid,variant=symmetric,ignore_index=2)", (3,), ("labels",)),
    ("gwdice", (1, 4), ("labels",)),
    ("topk", (1, 4), ("labels", "soft")),
    ("topk(k=30,ignore_index=1,activation=sigmoid)", (3,), ("labels",)),
    ("ohem", (1, 4), ("labels", "soft")),
    ("ohem(thresh=0.3,min_kept=0.05)", (4,), ("labels",)),
]

# (spec, channel counts, columns: "C" or 1) for reduction="none"
NONE = [
    ("dice", (1, 3), "C"),
    ("0.5*iou+2*tversky(alpha=0.3,beta=0.7)", (3,), "C"),
    ("dice(include_background=false,weight=inverse,log=true)", (3,), "C"),
    ("focal_tversky+asym+mcc+sensspec", (1, 3), "C"),
    ("ssim(window=3)+hausdorff_er(erosions=3)", (3,), "C"),
    ("edge_dice(weight=[1,2,3])+cldice(auto_iters=true)", (3,), "C"),
    ("dice+ce", (1, 3), 1),
    ("ce(weight=inverse)+focal", (3,), 1),
    ("lovasz+blob+dpce", (3,), 1),
    ("topk+gdice+logcosh_dice", (3,), 1),
    ("dice(pool_classes=true)", (3,), 1),
    ("hausdorff_dt+boundary_aware+boundary", (3,), 1),
    ("exp_log", (3,), 1),
]


def inputs(rng, N, C, spatial, kind):
    """Logits, a target with every class present (blobs of several voxels), a weight map."""
    x = rng.normal(0, 2.0, (N, C) + spatial).astype(np.float32)
    hi = 2 if C == 1 else C
    # blocky labels: components of a few voxels, so blob and the distance maps see real objects
    coarse = rng.integers(0, hi, (N,) + tuple((s + 1) // 2 for s in spatial))
    y = coarse
    for a in range(len(spatial)):
        y = np.repeat(y, 2, axis=1 + a)
    y = y[(slice(None),) + tuple(slice(0, s) for s in spatial)].astype(np.int64)
    if kind == "soft":
        if C == 1:
            y = rng.uniform(0, 1, x.shape).astype(np.float32)
        else:
            z = rng.normal(0, 2.0, x.shape)
            e = np.exp(z - z.max(1, keepdims=True))
            y = (e / e.sum(1, keepdims=True)).astype(np.float32)
    return x, y


def weight_map(rng, N, spatial, kind):
    shape = (N, 1) + spatial
    if kind == "binary":
        return (rng.random(shape) < 0.7).astype(np.float32)
    w = rng.uniform(0.2, 3.0, shape)
    w[rng.random(shape) < 0.2] = 0
    w[rng.random(shape) < 0.05] = 10.0
    return w.astype(np.float32)


def run(spec, backend, x, y, mask=None, dtype=torch.float64, device="cpu", reduction="mean", up=None, module=None):
    """(values, gradient of Σ up·values) as float64 numpy arrays."""
    L = module if module is not None else SegLoss(spec, backend=backend, reduction=reduction)
    xx = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    yy = torch.tensor(y, device=device)
    m = None if mask is None else torch.tensor(mask, device=device)
    v = L(xx, yy, mask=m)
    u = torch.ones_like(v) if up is None else torch.tensor(up, dtype=v.dtype, device=device).reshape(v.shape)
    (v * u).sum().backward()
    return v.detach().cpu().double().numpy(), xx.grad.detach().cpu().double().numpy()


def compare(chk, what, a, b, vtol=2e-5, gtol=1e-4):
    (va, ga), (vb, gb) = a, b
    if not chk.true("%s: shape %s vs %s" % (what, va.shape, vb.shape), va.shape == vb.shape):
        return
    dv = float(np.abs(va - vb).max() / max(1.0, float(np.abs(va).max())))
    dg = float(np.abs(ga - gb).max() / max(float(np.abs(ga).max()), 1e-12))
    print("%-84s value rel %.1e  grad rel max %.1e" % (what, dv, dg))
    chk.true("%s: value rel diff %.2e > %g" % (what, dv, vtol), dv <= vtol)
    chk.true("%s: gradient rel max diff %.2e > %g" % (what, dg, gtol), dg <= gtol)
    chk.true("%s: gradient is all zero" % what, np.abs(ga).max() > 0)
    chk.close("%s value" % what, vb, va, rtol=0, atol=vtol * max(1.0, float(np.abs(va).max())), group="value")


def masks(chk, device="cpu", dtype=torch.float64):
    rng = np.random.default_rng(16)
    for spec, channels, kinds in MASKED:
        for C in channels:
            for kind in kinds:
                for spatial in ((7, 9), (4, 5, 6)):
                    x, y = inputs(rng, 2, C, spatial, kind)
                    for mk in ("binary", "weights"):
                        m = weight_map(rng, 2, spatial, mk)
                        c = run(spec, "c", x, y, m)
                        t = run(spec, "torch", x, y, m, dtype=dtype, device=device)
                        what = "mask %s C=%d %s %dD %s %s" % (spec, C, kind, len(spatial), mk, device)
                        compare(chk, what, c, t)
                        if device == "cpu":
                            plain = run(spec, "c", x, y)[0]
                            chk.true("%s: the mask moves the value (%.7g vs %.7g unmasked)" % (what, float(c[0]),
                                                                                               float(plain)),
                                     abs(float(c[0]) - float(plain)) > 1e-5)


def mask_edges(chk):
    """A sample whose weights are all 0 and a blob whose voxels all weigh 0, native == C."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 2.0, (2, 3, 9, 10)).astype(np.float32)
    y = np.zeros((2, 9, 10), np.int64)
    y[:, 1:4, 1:4] = 1
    y[:, 5:8, 5:9] = 1        # two blobs of class 1
    y[:, 1:3, 6:9] = 2
    m = weight_map(rng, 2, (9, 10), "weights")
    m[1] = 0                  # sample 1 weighs nothing
    m[0, 0, 1:4, 1:4] = 0     # the first blob of sample 0 weighs nothing
    for spec in ("blob", "ssim(window=3)", "hausdorff_er(erosions=3)", "cldice", "edge_dice", "lovasz(per_image=true)",
                 "dpce", "boundary_aware"):
        compare(chk, "mask edge cases %s" % spec, run(spec, "c", x, y, m), run(spec, "torch", x, y, m))
        compare(chk, "mask edge cases %s reduction=none" % spec, run(spec, "c", x, y, m, reduction="none"),
                run(spec, "torch", x, y, m, reduction="none"))
    # the native path's form before this change (weights multiplied into p and g before the SSIM windows) is not
    # the C library's masked SSIM: the comparison above can tell them apart
    m = weight_map(rng, 2, (9, 10), "weights")
    vc = float(run("ssim(window=3)", "c", x, y, m)[0])
    xx = torch.tensor(x, dtype=torch.float64)
    p = torch.softmax(xx, 1) * torch.tensor(m, dtype=torch.float64)
    g = torch.nn.functional.one_hot(torch.tensor(y), 3).permute(0, 3, 1, 2).double() * torch.tensor(m).double()
    k = torch.exp(-((torch.arange(3.0, dtype=torch.float64) - 1) / 1.5) ** 2 / 2)
    k = (k / k.sum()).unsqueeze(1) * (k / k.sum())
    K = k.reshape(1, 1, 3, 3)

    def f(t):
        return torch.nn.functional.conv2d(t.reshape(6, 1, 9, 10), K)

    mx, my = f(p), f(g)
    sx, sy, sxy = f(p * p) - mx * mx, f(g * g) - my * my, f(p * g) - mx * my
    S = (2 * mx * my + 1e-4) * (2 * sxy + 9e-4) / ((mx * mx + my * my + 1e-4) * (sx + sy + 9e-4))
    old = float(1 - S.mean())
    print("ssim masked: C %.6f, weights multiplied into p and g first %.6f" % (vc, old))
    chk.true("the old native form of masked ssim (%.6f) differs from the C value (%.6f)" % (old, vc),
             abs(old - vc) > 1e-3)


def reduction_none(chk, device="cpu", dtype=torch.float64):
    rng = np.random.default_rng(61)
    for spec, channels, cols in NONE:
        for C in channels:
            for spatial in ((6, 7), (4, 5, 4)):
                x, y = inputs(rng, 3, C, spatial, "labels")
                for mk in (None, "weights"):
                    m = None if mk is None else weight_map(rng, 3, spatial, mk)
                    K = C if cols == "C" else 1
                    u = rng.uniform(-1, 2, (3, K))
                    c = run(spec, "c", x, y, m, reduction="none", up=u)
                    t = run(spec, "torch", x, y, m, dtype=dtype, device=device, reduction="none", up=u)
                    what = "none %s C=%d %dD%s %s" % (spec, C, len(spatial), " mask" if mk else "", device)
                    chk.true("%s: shape %s == (3, %d)" % (what, t[0].shape, K), t[0].shape == (3, K))
                    compare(chk, what, c, t)
    # term_values() after reduction="none": the last sample's terms, as the C path (class mode and sample mode)
    x, y = inputs(rng, 3, 3, (6, 7), "labels")
    m = weight_map(rng, 3, (6, 7), "weights")
    for spec in ("dice(include_background=false)+2*ssim(window=3)", "dice(weight=inverse)+mcc", "dice+ce+blob"):
        tv = []
        for backend in ("c", "torch"):
            L = SegLoss(spec, backend=backend, reduction="none")
            L(torch.tensor(x, dtype=torch.float64 if backend == "torch" else torch.float32), torch.tensor(y),
              mask=torch.tensor(m))
            tv.append(L.term_values())
        chk.true("none %s term_values keys %s == %s" % (spec, sorted(tv[0]), sorted(tv[1])), sorted(tv[0]) == sorted(tv[1]))
        for k in tv[0]:
            chk.close("none %s term_values()[%s] native == C" % (spec, k), tv[1].get(k, np.nan), tv[0][k], rtol=2e-5,
                      atol=1e-7, group="none term values")
    # the mean of the included columns over the samples is the ordinary value (equal voxel counts, no mask)
    x, y = inputs(rng, 3, 3, (6, 7), "labels")
    for spec, first in (("dice(include_background=false)", 1), ("ssim(window=3)+cldice", 0)):
        M = run(spec, "torch", x, y, reduction="none")[0]
        v = run(spec, "torch", x, y)[0]
        chk.close("none %s: mean of the included columns == the mean loss" % spec, float(M[:, first:].mean()),
                  float(v), rtol=1e-12, atol=1e-12, group="none mean")
    # maps= (precomputed target maps) with reduction="none" on the native path: the same matrix and gradient
    for spec in ("blob+cldice", "dpce+hausdorff_dt"):
        L = SegLoss(spec, backend="torch", reduction="none")
        maps = L.target_maps(torch.tensor(y), 3, dtype=torch.float64)
        xx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        v = L(xx, torch.tensor(y), maps=maps)
        v.sum().backward()
        compare(chk, "none %s maps= vs computed inside" % spec, run(spec, "torch", x, y, reduction="none"),
                (v.detach().numpy(), xx.grad.numpy()), 1e-12, 1e-12)


def raises(chk, what, fn, exc, words):
    try:
        fn()
    except exc as e:
        msg = str(e)
        print("%-72s -> %s: %s" % (what, type(e).__name__, msg))
        chk.true("%s: message %r lacks %s" % (what, msg, words), all(w in msg for w in words))
        return
    except Exception as e:  # noqa: BLE001
        chk.true("%s: raised %s: %s, expected %s" % (what, type(e).__name__, e, exc.__name__), False)
        return
    chk.true("%s: did not raise" % what, False)


def refusals(chk):
    rng = np.random.default_rng(2)
    x, y = inputs(rng, 2, 3, (6, 7), "labels")
    xt, yt = torch.tensor(x), torch.tensor(y)
    for spec, word in (("dice(batch=true)", "batch=true"), ("ce+adaptive_dice", "stateful")):
        for backend in ("c", "torch"):
            raises(chk, "%s reduction=none backend=%s" % (spec, backend),
                   lambda: SegLoss(spec, reduction="none", backend=backend)(xt, yt), errors.InvalidArgumentError,
                   [word, "reduction=none"])
    raises(chk, "reduction=none with a process_group",
           lambda: SegLoss("dice", reduction="none", process_group=object()), errors.UnsupportedError,
           ["process_group"])
    # bad masks on the native path: the C path's errors
    bad = torch.ones(2, 1, 6, 7)
    bad[0, 0, 0, 0] = -1
    raises(chk, "native mask= negative weight (blob)", lambda: SegLoss("blob", backend="torch")(xt, yt, mask=bad),
           errors.RangeError, ["negative"])


def main():
    chk = slref.Check("SegLoss backend=torch: masks of the eight, reduction=none, vs backend=c")
    masks(chk)
    mask_edges(chk)
    reduction_none(chk)
    # float32 native path (as on a GPU): the same bounds on a few cases
    rng = np.random.default_rng(8)
    x, y = inputs(rng, 2, 4, (10, 12), "labels")
    m = weight_map(rng, 2, (10, 12), "weights")
    for spec in ("lovasz+ssim(window=3)", "cldice+edge_dice", "dpce+blob"):
        compare(chk, "float32 native mask %s" % spec, run(spec, "c", x, y, m),
                run(spec, "torch", x, y, m, dtype=torch.float32), 1e-5, 1e-4)
    compare(chk, "float32 native reduction=none dice+hausdorff_er", run("dice+hausdorff_er", "c", x, y, m,
                                                                         reduction="none"),
            run("dice+hausdorff_er", "torch", x, y, m, dtype=torch.float32, reduction="none"), 1e-5, 1e-4)
    refusals(chk)
    if torch.cuda.is_available():
        masks(chk, device="cuda")
        reduction_none(chk, device="cuda")
    else:
        print("CUDA comparison skipped: no CUDA device (torch.cuda.is_available() is False)")
    chk.report()


if __name__ == "__main__":
    main()
