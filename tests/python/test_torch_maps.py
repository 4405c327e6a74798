"""SegLoss(...)(logits, target, maps=target_maps(...)): the target-only maps of
the boundary family (boundary's signed distances, dpce's and boundary_aware's
CE weights, hausdorff_dt's target distance term, blob's components, cldice's
target skeleton) precomputed on the host, as a DataLoader worker would, must
give the same value and gradient as computing them inside the loss: native
path (float64 and float32 logits; maps in the logits' dtype), 1-3 channels,
label maps and soft targets, 2-D and 3-D; bound 1e-12 relative in float64 (the
same operations; observed 0), 1e-6 in float32. Maps from ANOTHER target must
change the result (so the comparison can fail). The C path takes boundary's
map as dist= (same bound against the C path without maps). The maps are also
computed in a DataLoader worker process (collate_fn) and consumed there-after.
Bad maps= are refused by name.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import torch

import pyref  # noqa: F401  (paths)
import slref

from segloss import errors
from segloss.torch import SegLoss, target_maps

# (spec, channels, target kinds)
CASES = [
    ("dpce", (1, 3), ("labels", "soft")),
    ("boundary_aware(width=1)", (1, 3), ("labels", "soft")),
    ("hausdorff_dt", (1, 3), ("labels", "soft")),
    ("log_hausdorff_dt(include_background=true)", (3,), ("labels",)),
    ("blob", (1, 3), ("labels", "soft")),
    ("cldice(iters=2)", (1, 3), ("labels", "soft")),
    ("cldice(auto_iters=true,ignore_index=2)", (3,), ("labels",)),
    ("0.5*boundary+dice", (1, 3), ("labels",)),
    ("dpce+hausdorff_dt+blob+cldice+boundary", (2,), ("labels",)),
]


def data(C, shape, kind, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    N = 2
    x = torch.randn((N, C) + shape, generator=g, dtype=torch.float64).to(dtype)
    lab = (torch.rand((N,) + shape, generator=g) < 0.3).long()
    if C > 2:
        lab[torch.rand((N,) + shape, generator=g) < 0.2] = 2
    lab[:, :1] = 0   # some background everywhere
    if kind == "labels":
        return x, lab
    oh = torch.nn.functional.one_hot(lab.clamp(max=max(C - 1, 1)), max(C, 2)).movedim(-1, 1).to(dtype)
    soft = oh[:, 1:2] if C == 1 else oh[:, :C]
    return x, (0.8 * soft + 0.1 * torch.rand(soft.shape, generator=g, dtype=torch.float64).to(dtype)).clamp(0, 1)


def blocky(t, C):
    """A target of other geometry: one block of label 1 (and of 2 with C > 2)."""
    spatial = tuple(t.shape[2:]) if t.is_floating_point() else tuple(t.shape[1:])
    lab = torch.zeros((t.shape[0],) + spatial, dtype=torch.long)
    lab[..., 2:6] = 1
    if C > 2:
        lab[..., 8:10] = 2
    if not t.is_floating_point():
        return lab
    oh = torch.nn.functional.one_hot(lab, max(C, 2)).movedim(-1, 1).to(t.dtype)
    return oh[:, 1:2] if C == 1 else oh[:, :C]


def value_grad(loss, x, t, **kw):
    xx = x.detach().clone().requires_grad_(True)
    v = loss(xx, t, **kw)
    v.backward()
    return float(v), xx.grad


def rel(a, b):
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-300))


def main():
    chk = slref.Check("SegLoss maps= (target-only maps precomputed) vs computed in the loss")
    worst = {torch.float64: 0.0, torch.float32: 0.0}
    for spec, chans, kinds in CASES:
        for C in chans:
            for kind in kinds:
                for shape in ((12, 13), (5, 7, 6)):
                    if "cldice(auto" in spec and len(shape) == 3:
                        continue
                    for dtype in (torch.float64, torch.float32):
                        x, t = data(C, shape, kind, 7, dtype)
                        loss = SegLoss(spec, backend="torch", threads=1)
                        maps = target_maps(spec, t, C, threads=1, dtype=dtype)
                        v0, g0 = value_grad(loss, x, t)
                        v1, g1 = value_grad(loss, x, t, maps=maps)
                        dv, dg = abs(v1 - v0) / max(abs(v0), 1e-300), rel(g1, g0)
                        worst[dtype] = max(worst[dtype], dv, dg)
                        tol = 1e-12 if dtype == torch.float64 else 1e-6
                        what = "%s C=%d %s %dD %s" % (spec, C, kind, len(shape), str(dtype)[6:])
                        chk.true("%s: value rel %.2e, grad rel %.2e > %g" % (what, dv, dg, tol), max(dv, dg) <= tol)
                        if dtype == torch.float64 and len(shape) == 2:
                            # maps of another target must change the loss: the maps are used
                            t2 = blocky(t, C)
                            v2, g2 = value_grad(loss, x, t, maps=target_maps(spec, t2, C, dtype=dtype))
                            chk.true("%s: maps of another target should change the result (%.2e, %.2e)"
                                     % (what, abs(v2 - v0), rel(g2, g0)), abs(v2 - v0) + rel(g2, g0) > 1e-6)
    print("worst rel difference: float64 %.1e (bound 1e-12), float32 %.1e (bound 1e-6)"
          % (worst[torch.float64], worst[torch.float32]))

    # the C path: boundary's map is dist=; the others are computed by the C library in its call
    x, t = data(3, (12, 13), "labels", 3, torch.float32)
    for spec in ("0.5*boundary+dice", "dpce+boundary+hausdorff_dt"):
        loss = SegLoss(spec, backend="c", threads=1)
        v0, g0 = value_grad(loss, x, t)
        v1, g1 = value_grad(loss, x, t, maps=target_maps(spec, t, 3))
        chk.true("%s C path: maps= changes value %.2e grad %.2e" % (spec, abs(v1 - v0), rel(g1, g0)),
                 abs(v1 - v0) <= 1e-6 * abs(v0) and rel(g1, g0) <= 1e-6)

    # in a DataLoader worker: the maps computed in collate_fn, in another process
    spec, C = "dpce+hausdorff_dt+blob+cldice", 3
    xs, ts = data(C, (12, 13), "labels", 5, torch.float64)

    def collate(items):
        x = torch.stack([i[0] for i in items])
        t = torch.stack([i[1] for i in items])
        return x, t, target_maps(spec, t, C, threads=1, dtype=torch.float64)

    ds = list(zip(xs, ts))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate)
    (xb, tb, mb), = list(loader)
    loss = SegLoss(spec, backend="torch", threads=1)
    v0, g0 = value_grad(loss, xb, tb)
    v1, g1 = value_grad(loss, xb, tb, maps=mb)
    chk.true("maps from a DataLoader worker: value rel %.2e grad rel %.2e" % (abs(v1 - v0) / abs(v0), rel(g1, g0)),
             abs(v1 - v0) <= 1e-12 * abs(v0) and rel(g1, g0) <= 1e-12)

    # refusals
    loss = SegLoss("dice+dpce", backend="torch")
    for bad, exc, needle in (([1], TypeError, "dict"), ({0: torch.zeros(2, 3)}, errors.InvalidArgumentError, "key 0"),
                             ({5: torch.zeros(2, 3)}, errors.InvalidArgumentError, "key 5"),
                             ({1: torch.zeros(3, 3)}, errors.ShapeError, "N = 2")):
        try:
            loss(xb, tb, maps=bad)
            chk.true("maps=%r should be refused" % (bad,), False)
        except exc as e:
            chk.true("maps=%r: %s should name %r" % (type(bad).__name__, e, needle), needle in str(e))
    chk.report()


if __name__ == "__main__":
    import sys
    sys.exit(main())
