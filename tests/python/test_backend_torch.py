"""SegLoss(backend="torch"), the native PyTorch path, against the C path
(backend="c") for every loss the native path covers: value and gradient on
CPU tensors, 2-D and 3-D, one sigmoid channel and several softmax channels,
label maps and soft targets; adaptive_dice's running state over training
steps; the refusals (uncovered loss or key, device tensors on the C path,
process_group on the C path). The same comparison on CUDA tensors runs when
a CUDA device is present and is skipped with a message otherwise.

Tolerance: the C library computes in float32 with float64 sums, the native
path here in float64 on the same (float32-representable) logits: value
relative error <= 2e-5, gradient max |diff| / max |grad| <= 1e-4; the whole
catalogue again with the native path in float32 (as on a GPU): 1e-5, 1e-4.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref

from segloss import errors
from segloss.torch import SegLoss, boundary_maps, native

torch.set_num_threads(1)

# (spec, channels it is valid for, target kinds)
CASES = [
    ("ce", (1, 2, 4), ("labels", "soft")),
    ("ce(weight=[0.2,1,3,0.5])", (4,), ("labels", "soft")),
    ("ce(weight=inverse)", (2, 4), ("labels",)),
    ("ce(weight=median,ignore_index=1)", (4,), ("labels",)),
    ("ce(label_smoothing=0.1,ignore_index=255)", (4,), ("labels",)),
    ("ce(activation=sigmoid)", (3,), ("labels", "soft")),
    ("wce", (2, 4), ("labels",)),
    ("bce(pos_weight=2)", (1, 3), ("labels", "soft")),
    ("bce(activation=auto)", (1, 3), ("labels",)),   # softmax CE for C > 1, as the C library
    ("dice", (1, 2, 4), ("labels", "soft")),
    ("dice(batch=true,include_background=false)", (2, 4), ("labels", "soft")),
    ("dice(squared=true,log=true,weight=[0.5,1,2,4])", (4,), ("labels",)),
    ("dice(weight=inverse,ignore_index=3)", (4,), ("labels",)),
    ("dice(smooth_nr=0,smooth_dr=1)", (1, 4), ("labels",)),
    ("iou", (1, 4), ("labels", "soft")),
    ("iou(batch=true,log=true)", (4,), ("labels",)),
    ("logcosh_dice", (1, 4), ("labels", "soft")),
    ("logcosh_dice(batch=true)", (4,), ("labels",)),
    ("tversky(alpha=0.5,beta=0.5)", (1, 4), ("labels", "soft")),
    ("focal_tversky(batch=true)", (4,), ("labels",)),
    ("focal_tversky(gamma=1.5)", (1, 4), ("labels",)),
    ("gdice", (1, 2, 4), ("labels", "soft")),
    ("gdice(batch=true,w_type=simple)", (4,), ("labels",)),
    ("gdice(w_type=uniform,include_background=false)", (4,), ("labels",)),
    ("wdice(weight=[1,5,10,2])", (4,), ("labels", "soft")),
    ("adaptive_dice", (1, 4), ("labels",)),
    ("adaptive_dice(batch=true,momentum=0.5)", (4,), ("labels",)),
    ("asym", (1, 4), ("labels", "soft")),
    ("asym(beta=0.7,batch=true,weight=inverse)", (4,), ("labels",)),
    ("focal_dice", (1, 4), ("labels", "soft")),
    ("focal_dice(weight=inverse,beta=3,include_background=false)", (4,), ("labels",)),
    ("sensspec", (1, 4), ("labels", "soft")),
    ("sensspec(r=0.5,batch=true,ignore_index=2)", (4,), ("labels",)),
    ("mcc", (1, 4), ("labels", "soft")),
    ("mcc(batch=true,include_background=false)", (4,), ("labels",)),
    ("pgdice", (1, 4), ("labels", "soft")),
    ("pgdice(k=1,batch=true,w_type=simple)", (4,), ("labels",)),
    ("focal", (1, 2, 4), ("labels", "soft")),
    ("focal(alpha=0.25,gamma=1,ignore_index=1)", (1, 4), ("labels",)),
    ("focal(alpha=[0.1,0.2,0.3,0.4],gamma=0)", (4,), ("labels",)),
    ("focal(activation=sigmoid,alpha=0.3)", (3,), ("labels", "soft")),
    ("topk", (1, 4), ("labels", "soft")),
    ("topk(k=30,ignore_index=1)", (4,), ("labels",)),
    ("ohem", (1, 4), ("labels", "soft")),
    ("ohem(thresh=0.3,min_kept=0.05)", (4,), ("labels",)),
    ("gwdice", (1, 4), ("labels", "soft")),
    ("gwdice(batch=true,M=[0,1,0.6,1,0,0.3,0.6,0.3,0])", (3,), ("labels",)),
    ("combo", (1, 4), ("labels", "soft")),
    ("combo(alpha=0.8,beta=0.7,include_background=false,batch=true)", (4,), ("labels",)),
    ("dpce", (1, 4), ("labels", "soft")),
    ("dpce(lambda=3,activation=sigmoid)", (3,), ("labels", "soft")),
    ("boundary_aware", (1, 4), ("labels", "soft")),
    ("boundary_aware(width=1,p_boundary=5,p_inner=0.5)", (4,), ("labels",)),
    ("unified_focal", (1, 4), ("labels", "soft")),
    ("unified_focal(variant=symmetric,batch=true,ignore_index=2)", (4,), ("labels",)),
    ("unified_focal(lambda=0.2,delta=0.7,gamma=0.3,activation=sigmoid)", (3,), ("labels", "soft")),
    ("lovasz", (1, 2, 4), ("labels", "soft")),
    ("lovasz(per_image=true,classes=all)", (4,), ("labels",)),
    ("lovasz(ignore_index=255,activation=sigmoid,per_image=true)", (3,), ("labels",)),
    ("hausdorff_dt", (1, 4), ("labels", "soft")),
    ("hausdorff_dt(alpha=1.5,include_background=true)", (4,), ("labels",)),
    ("log_hausdorff_dt", (1, 4), ("labels", "soft")),
    ("log_hausdorff_dt(alpha=1,include_background=true)", (4,), ("labels",)),
    ("exp_log", (2, 4), ("labels", "soft")),
    ("exp_log(gamma_dice=2,gamma_ce=0.5,batch=true,include_background=false,ignore_index=2)", (4,), ("labels",)),
    ("exp_log(gamma_dice=1,gamma_ce=1,w_dice=1,w_ce=1,smooth_nr=0.5)", (4,), ("labels", "soft")),
    ("blob", (1, 4), ("labels", "soft")),
    ("blob(connectivity=face,include_background=true)", (4,), ("labels",)),
    ("cldice", (1, 4), ("labels", "soft")),
    ("cldice(include_background=false,batch=true,pool_classes=true)", (4,), ("labels",)),
    ("cldice(iters=5,weight=[1,2,3,4],ignore_index=2)", (4,), ("labels",)),
    ("edge_dice", (1, 4), ("labels", "soft")),
    ("edge_dice(padding=replicate,batch=true,alpha=0.3)", (4,), ("labels",)),
    ("edge_dice(weight=[1,2,3,4],ignore_index=2,include_background=false)", (4,), ("labels",)),
    ("ssim(window=3)", (1, 4), ("labels", "soft")),
    ("ssim(window=3,sigma=1,padding=zero,weight=[1,2,3,4])", (4,), ("labels",)),
    ("ssim(padding=zero,include_background=false,ignore_index=1)", (4,), ("labels",)),
    ("hausdorff_er", (1, 4), ("labels",)),
    ("hausdorff_er(alpha=1,erosions=3,weight=[1,2,3,4])", (4,), ("labels",)),
    ("hausdorff_er(include_background=false,ignore_index=1)", (4,), ("labels",)),
    ("boundary", (1, 2, 4), ("labels",)),
    ("boundary(idc=[0,2])", (4,), ("labels",)),
    ("dice(soft_label=true)", (1, 4), ("labels", "soft")),
    ("cldice(auto_iters=true,iters=1)", (1, 4), ("labels", "soft")),
    ("cldice(auto_iters=true,iters=0,include_background=false,ignore_index=2)", (4,), ("labels",)),
    ("gdice(normalize=false)", (1, 4), ("labels", "soft")),
    ("gdice(normalize=false,w_type=simple,batch=true,include_background=false)", (4,), ("labels",)),
    ("pgdice(normalize=false,smooth_nr=0.1,smooth_dr=0.1)", (4,), ("labels",)),
    ("focal(normalized=true)", (1,), ("labels", "soft")),
    ("focal(activation=sigmoid,reduced_threshold=0.5,gamma=2,alpha=0.25)", (3,), ("labels", "soft")),
    ("focal(activation=sigmoid,normalized=true,reduced_threshold=0.3,ignore_index=2)", (3,), ("labels",)),
    ("dice(soft_label=true,squared=true,batch=true)", (4,), ("soft",)),
    ("iou(soft_label=true,pool_classes=true)", (4,), ("labels", "soft")),
    ("logcosh_dice(pool_classes=true,include_background=false)", (4,), ("labels",)),
    ("tversky(soft_label=true,alpha=0.3,beta=0.7,ignore_index=2)", (4,), ("labels",)),
    ("focal_tversky(pool_classes=true,batch=true)", (1, 4), ("labels", "soft")),
    ("asym(pool_classes=true)", (4,), ("labels", "soft")),
    ("dice(pool_classes=true,include_background=false)", (4,), ("labels", "soft")),
    ("dice+ce", (1, 2, 4), ("labels", "soft")),
    ("0.5*dice(batch=true)+0.5*ce", (4,), ("labels",)),
    ("gdice+0.01*boundary", (4,), ("labels",)),
    ("dice(activation=sigmoid)+bce", (3,), ("labels",)),
    ("tversky+wce+iou(batch=true)", (4,), ("labels",)),
]


def inputs(rng, C, spatial, kind, empty=None):
    x = rng.normal(0, 2.0, (2, C) + spatial).astype(np.float32)
    hi = 2 if C == 1 else C
    y = rng.integers(0, hi, (2,) + spatial)
    if empty is not None:
        y[y == empty] = (empty + 1) % hi
    if kind == "soft":
        if C == 1:
            y = rng.uniform(0, 1, x.shape).astype(np.float32)
        else:
            z = rng.normal(0, 2.0, x.shape)
            e = np.exp(z - z.max(1, keepdims=True))
            y = (e / e.sum(1, keepdims=True)).astype(np.float32)
    return x, y


def run(spec, backend, x, y, dtype=torch.float64, device="cpu", dist=None, module=None):
    L = module if module is not None else SegLoss(spec, backend=backend)
    xx = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    yy = torch.tensor(y, device=device)
    d = None if dist is None else dist.to(device)
    v = L(xx, yy, d) if d is not None else L(xx, yy)
    v.backward()
    return float(v), xx.grad.detach().cpu().double().numpy()


def compare(chk, what, a, b, vtol=2e-5, gtol=1e-4):
    (va, ga), (vb, gb) = a, b
    dv = abs(va - vb) / max(1.0, abs(va))
    dg = float(np.abs(ga - gb).max() / max(np.abs(ga).max(), 1e-12))
    print("%-72s value %.7g vs %.7g rel %.1e  grad rel max %.1e" % (what, va, vb, dv, dg))
    chk.true("%s: value %.9g vs %.9g (rel %.2e > %g)" % (what, va, vb, dv, vtol), dv <= vtol)
    chk.true("%s: gradient rel max diff %.2e > %g" % (what, dg, gtol), dg <= gtol)
    chk.true("%s: gradient is all zero" % what, np.abs(ga).max() > 0)


def catalogue(chk, device="cpu", dtype=torch.float64, vtol=2e-5, gtol=1e-4):
    rng = np.random.default_rng(14)
    for spec, channels, kinds in CASES:
        for C in channels:
            for kind in kinds:
                for spatial in ((7, 9), (4, 5, 6)):
                    x, y = inputs(rng, C, spatial, kind, empty=(2 if C == 4 else None))
                    dist = None
                    if "boundary" in spec and kind == "soft":
                        continue
                    c = run(spec, "c", x, y)
                    t = run(spec, "torch", x, y, dtype=dtype, device=device, dist=dist)
                    compare(chk, "%s C=%d %s %dD %s %s" % (spec, C, kind, len(spatial), device, dtype), c, t,
                            vtol, gtol)


def adaptive_sequence(chk):
    """Three training steps then an evaluation: the running average must follow the C one."""
    rng = np.random.default_rng(5)
    for spec in ("adaptive_dice", "adaptive_dice(batch=true,include_background=false)"):
        Lc, Lt = SegLoss(spec, backend="c").train(), SegLoss(spec, backend="torch").train()
        for step in range(4):
            if step == 3:
                Lc.eval(), Lt.eval()
            x, y = inputs(rng, 4, (8, 8), "labels")
            compare(chk, "%s step %d (%s)" % (spec, step, "train" if step < 3 else "eval"),
                    run(spec, "c", x, y, module=Lc), run(spec, "torch", x, y, module=Lt))
        # the native running average travels in state_dict
        Lt2 = SegLoss(spec, backend="torch")
        Lt2.load_state_dict(Lt.state_dict())
        Lt2.eval()
        x, y = inputs(rng, 4, (8, 8), "labels")
        compare(chk, "%s after load_state_dict" % spec, run(spec, "torch", x, y, module=Lt),
                run(spec, "torch", x, y, module=Lt2), 1e-12, 1e-12)


def precomputed_maps(chk):
    """boundary with dist= (maps from DataLoader workers) equals the maps computed inside."""
    rng = np.random.default_rng(9)
    x, y = inputs(rng, 3, (10, 11), "labels")
    maps = boundary_maps(torch.tensor(y), 3)
    compare(chk, "boundary dist=boundary_maps(...) vs inside", run("boundary", "torch", x, y),
            run("boundary", "torch", x, y, dist=maps), 1e-12, 1e-12)
    # soft target + dist on the native path equals the C path with the same maps
    _, ys = inputs(rng, 3, (10, 11), "soft")
    compare(chk, "boundary soft target with dist=", run("boundary", "c", x, ys, dist=maps),
            run("boundary", "torch", x, ys, dist=maps))


def distance_losses(chk):
    """dpce, boundary_aware, hausdorff_dt and blob on blocky targets (deep interiors, a sample with one
    label, so no boundary) and anisotropic spacing: the maps come from the C EDT."""
    rng = np.random.default_rng(11)
    y = np.zeros((3, 12, 14), np.int64)
    y[0, 2:9, 3:11] = 1
    y[0, 4:6, 5:8] = 2
    y[1, :, 7:] = 2                      # two labels, a straight boundary
    # y[2]: background only: no boundary (dpce weights 1, boundary_aware all inner)
    x = rng.normal(0, 2.0, (3, 3, 12, 14)).astype(np.float32)
    for spec in ("dpce", "dpce(lambda=2)", "boundary_aware", "boundary_aware(width=3,p_inner=0)", "dpce+dice",
                 "hausdorff_dt", "hausdorff_dt(alpha=1,include_background=true)", "blob", "dice+2*blob(connectivity=face)", "cldice(iters=4)", "edge_dice(padding=replicate)", "ssim", "hausdorff_er(erosions=4)"):
        for spacing in (None, (0.7, 1.6)):
            Lc, Lt = SegLoss(spec, backend="c", spacing=spacing), SegLoss(spec, backend="torch", spacing=spacing)
            compare(chk, "%s blocky, spacing %s" % (spec, spacing), run(spec, "c", x, y, module=Lc),
                    run(spec, "torch", x, y, module=Lt))


def float32_path(chk):
    """The native path in float32 (what runs on a GPU) stays close to the C path."""
    rng = np.random.default_rng(3)
    for spec in ("dice+ce", "gdice(batch=true)", "wce", "boundary", "tversky+iou"):
        x, y = inputs(rng, 4, (16, 16), "labels")
        compare(chk, "%s float32" % spec, run(spec, "c", x, y), run(spec, "torch", x, y, dtype=torch.float32),
                1e-5, 1e-4)


def raises(chk, what, fn, exc, words):
    try:
        fn()
    except exc as e:
        msg = str(e)
        print("%-60s -> %s: %s" % (what, type(e).__name__, msg))
        chk.true("%s: message %r lacks %s" % (what, msg, words), all(w in msg for w in words))
        return
    except Exception as e:  # noqa: BLE001
        chk.true("%s: raised %s: %s, expected %s" % (what, type(e).__name__, e, exc.__name__), False)
        return
    chk.true("%s: did not raise" % what, False)


def refusals(chk):
    x = torch.zeros(1, 3, 4, 4, requires_grad=True)
    y = torch.zeros(1, 4, 4, dtype=torch.int64)
    # every catalogue loss is covered now: the refusal of a loss the native table lacks
    raises(chk, "uncovered loss (native term table)", lambda: native.make_term("newloss", {}),
           native.Unsupported, ["newloss", "not covered"])
    raises(chk, "lovasz with a process group", lambda: SegLoss("lovasz", process_group=object()),
           NotImplementedError, ["lovasz", "process_group"])
    raises(chk, "uncovered key (native term table)", lambda: native.make_term("dice", {"p_inner": 1.0}),
           native.Unsupported, ["p_inner", "dice"])
    # cldice auto_iters on a thick object (city-block depth 5 > iters=1): native == C, and != iters=1
    yb = torch.zeros(1, 16, 17, dtype=torch.int64)
    yb[0, 3:12, 4:13] = 1
    xb = torch.randn(1, 2, 16, 17, dtype=torch.float64)
    fg = "include_background=false"   # the block's depth; class 0's map is deeper (8, from the corners)
    va = [float(SegLoss(sp % fg, backend=b)(xb, yb)) for sp, b in (("cldice(auto_iters=true,iters=1,%s)", "torch"),
                                                                   ("cldice(auto_iters=true,iters=1,%s)", "c"),
                                                                   ("cldice(iters=5,%s)", "c"), ("cldice(iters=1,%s)", "c"))]
    chk.close("cldice auto_iters on a 9x9 block: native == C", va[0], va[1], rtol=2e-5, atol=1e-7, group="auto_iters")
    chk.close("cldice auto_iters on a 9x9 block == iters=5", va[1], va[2], rtol=1e-6, atol=1e-7, group="auto_iters")
    chk.true("cldice auto_iters on a 9x9 block differs from iters=1 (%g vs %g)" % (va[1], va[3]),
             abs(va[1] - va[3]) > 1e-4)
    # the new keys at their default value compute what the C path computes
    xr, yr = torch.randn(2, 3, 5, 6, dtype=torch.float64), torch.randint(0, 3, (2, 5, 6))
    for spec in ("dice(soft_label=false,pool_classes=false)", "focal(normalized=false,reduced_threshold=0)",
                 "gdice(normalize=true)", "cldice(auto_iters=false)"):
        vn = float(SegLoss(spec, backend="torch")(xr, yr))
        vc = float(SegLoss(spec, backend="c")(xr, yr))
        chk.close("%s native == C" % spec, vn, vc, rtol=2e-5, atol=1e-7, group="neutral keys")
    # every native term weights voxels (test_backend_torch_more.py); a mask of the wrong shape is refused
    raises(chk, "mask= of the wrong shape on the native path",
           lambda: SegLoss("dice+topk", backend="torch")(x, y, mask=torch.ones(1, 4, 5)),
           errors.ShapeError, ["mask", "shape"])
    raises(chk, "cldice auto_iters with a process group",
           lambda: SegLoss("cldice(auto_iters=true)", backend="torch", process_group=object()),
           NotImplementedError, ["auto_iters", "process group"])
    raises(chk, "topk with a process group", lambda: SegLoss("dice+topk(k=5)", backend="torch",
                                                              process_group=object()),
           NotImplementedError, ["topk", "process_group"])
    raises(chk, "backend=c with a device tensor", lambda: SegLoss("dice", backend="c")(x.to("meta"), y.to("meta")),
           NotImplementedError, ["backend=\"torch\"", "meta"])
    # the C path reduces fusable specs over a group (tests/python/test_ddp.py); others are refused when called
    raises(chk, "backend=c with a process group, focal", lambda: SegLoss("focal", backend="c",
                                                                           process_group=object())(x, y),
           NotImplementedError, ["process_group", "focal"])
    raises(chk, "bad backend name", lambda: SegLoss("dice", backend="gpu"), ValueError, ["backend"])
    raises(chk, "native: label out of range", lambda: SegLoss("dice", backend="torch")(x, y + 3),
           errors.RangeError, ["label 3"])
    raises(chk, "native: bad spec still refused by the C parser", lambda: SegLoss("dice(batch=maybe)",
                                                                                  backend="torch"),
           ValueError, ["batch"])
    # input-dependent errors: the same exception class on both paths
    rng = np.random.default_rng(2)
    x3 = torch.tensor(rng.normal(0, 1, (2, 3, 6, 6)), dtype=torch.float32)
    y3 = torch.tensor(rng.integers(0, 3, (2, 6, 6)))
    x1 = torch.tensor(rng.normal(0, 1, (2, 1, 6, 6)), dtype=torch.float32)
    y1 = torch.tensor(rng.integers(0, 2, (2, 6, 6)))
    xnan = x3.clone()
    xnan[0, 1, 2, 3] = float("nan")
    soft3 = torch.softmax(x3, 1)
    for spec, xx, yy, exc in [("dice(activation=softmax)", x1, y1, errors.ShapeError),
                              ("dice(weight=[1,2])", x3, y3, errors.ShapeError),
                              ("focal(alpha=[1,2])", x3, y3, errors.ShapeError),
                              ("gwdice(M=[0,1,1,0])", x3, y3, errors.ShapeError),
                              ("boundary(idc=[3])", x3, y3, errors.ShapeError),
                              ("ssim", x3, y3, errors.ShapeError),
                              ("dice", xnan, y3, errors.NonFiniteError),
                              ("ce(activation=none)", x3, y3, errors.RangeError),
                              ("dice(ignore_index=1)", x3, soft3, errors.InvalidArgumentError),
                              ("dice", x3, soft3 * 2, errors.RangeError)]:
        for b in ("c", "torch"):
            raises(chk, "%s backend=%s" % (spec, b), lambda: SegLoss(spec, backend=b)(xx, yy), exc, [spec])
    # auto picks C for CPU tensors: the C path's per-term values are reported
    L = SegLoss("dice+ce")
    L(x, y)
    chk.true("auto on CPU uses the C path", L._native_values is None)


def coverage(chk):
    """Every loss of the C catalogue is covered by the native path and compared above."""
    import ctypes
    from segloss import _lib
    h = _lib.lib()
    h.sl_loss_catalogue.restype = ctypes.POINTER(ctypes.c_char_p)
    names = [h.sl_loss_catalogue(i).contents.value.decode() for i in range(h.sl_loss_catalogue_size())]
    tested = {spec.split("(")[0] for spec, _, _ in CASES}
    for n in names:
        chk.true("catalogue loss %s is not covered by the native path" % n, n in native.CLASSES)
        chk.true("catalogue loss %s has no native-vs-C case" % n, n in tested)
    print("catalogue: %d losses, all covered by the native path" % len(names))


def main():
    chk = slref.Check("SegLoss backend=torch vs backend=c")
    coverage(chk)
    catalogue(chk)
    catalogue(chk, dtype=torch.float32, vtol=1e-5, gtol=1e-4)   # the precision a GPU run uses
    adaptive_sequence(chk)
    precomputed_maps(chk)
    distance_losses(chk)
    float32_path(chk)
    refusals(chk)
    if torch.cuda.is_available():
        catalogue(chk, device="cuda", dtype=torch.float32, vtol=1e-5, gtol=1e-4)
    else:
        print("SKIP: CUDA comparison (torch.cuda.is_available() is false); the CPU comparison above covers the "
              "formulas")
    chk.report()


if __name__ == "__main__":
    main()
