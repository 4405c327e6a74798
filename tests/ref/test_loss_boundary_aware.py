"""boundary_aware (Kim & Lee 2021) against a PyTorch float64 reference: CE weighted p_boundary where the scipy distance
to the nearest voxel of another target label is <= width·min(spacing), p_inner elsewhere, normalised by Σ weights."""
import os

import numpy as np
import torch

import boundaryref as B
import lossref as R
import slref


def ref_ba(x, target, C, activation="auto", width=2, p_boundary=2.0, p_inner=1.0, spacing=None):
    sp = B.spacing_of(x.shape[2:], spacing)
    lab = B.hard_labels(target, C, activation)
    w = np.full(lab.shape, float(p_inner))
    for n in range(lab.shape[0]):
        for k in range(lab.shape[1]):
            d = B.label_distance(lab[n, k], sp)
            if d is not None:
                w[n, k][d <= width * min(sp) * (1 + 1e-6)] = p_boundary
    return B.weighted_ce(x, target, C, activation, w, by_weights=True)


def spec_of(params):
    return R.spec_of("boundary_aware", {k: v for k, v in params.items() if k != "spacing"})


def run(chk, tmp, x, y, C, params, **kw):
    R.check_loss(chk, "boundary_aware", spec_of(params), ref_ba, params, x, y, C, tmp,
                 extra=B.spacing_arg(params.get("spacing")), **dict(B.FD, **kw))


def main():
    chk = slref.Check("boundary_aware vs PyTorch/scipy")
    rng = np.random.default_rng(4)
    variants = [
        {},
        {"width": 1, "p_boundary": 5.0, "p_inner": 0.5, "_channels": (1, 3)},
        {"width": 3, "p_inner": 0.0, "_channels": (2,)},
        {"activation": "none", "_channels": (1, 3)},
        {"activation": "sigmoid", "_channels": (3,)},
        {"spacing": "aniso", "_channels": (1, 3)},
    ]
    with R.tmpdir() as tmp:
        B.matrix(chk, tmp, rng, variants, run)

        # Equal weights are ce.
        for C in (1, 3):
            x, y = B.logits(rng, 2, C, (12, 14)), B.blobby_labels(rng, 2, C, (12, 14))
            a, ga, ea = R.run_cli("boundary_aware(p_boundary=3,p_inner=3)", x, y, tmp)
            b, gb, eb = R.run_cli("ce", x, y, tmp)
            if chk.true("boundary_aware(equal) and ce run: %s %s" % (ea, eb), ea is None and eb is None):
                chk.close("boundary_aware(equal) == ce value C=%d" % C, a, b, rtol=1e-6, atol=1e-8, group="ba == ce")
                chk.close("boundary_aware(equal) == ce grad C=%d" % C, ga, gb, rtol=1e-5, atol=1e-8, group="ba == ce")

        # Named edge cases.
        N, spatial = 1, (12, 13)
        y = B.blobby_labels(rng, N, 3, spatial)
        y[y == 2] = 0                                            # empty class
        run(chk, tmp, B.logits(rng, N, 3, spatial), y, 3, {})
        y = np.ones((N,) + spatial, np.int64)                    # no boundary: every voxel inner
        run(chk, tmp, B.logits(rng, N, 3, spatial), y, 3, {})
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {"p_inner": 0.0})   # all weights 0: value 0
        y = np.zeros((N,) + spatial, np.int64)
        y[0, 6, 7] = 1                                           # single-voxel lesion
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {})
        run(chk, tmp, B.logits(rng, N, 2, spatial), y, 2, {"spacing": [0.5, 3.0], "width": 3})
        y3 = np.zeros((1, 7, 8, 9), np.int64)
        y3[0, 1:6, 2:7, 2:8] = 1
        run(chk, tmp, B.logits(rng, 1, 2, (7, 8, 9)), y3, 2, {"spacing": [3.0, 0.8, 0.8]})

        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, B.logits(rng, 1, 3, spatial))
        np.save(yp, B.blobby_labels(rng, 1, 3, spatial))
        for spec, want in (("boundary_aware(width=0)", "out of range"), ("boundary_aware(width=1.5)", "integer"),
                           ("boundary_aware(p_boundary=-1)", "out of range"),
                           ("boundary_aware(p_boundary=0,p_inner=0)", "both be 0"),
                           ("boundary_aware(lambda=1)", "unknown key")):
            rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp])
            chk.true("%s fails with '%s' (rc %d: %s)" % (spec, want, rc, err.strip()), rc != 0 and want in err)
    chk.report()


if __name__ == "__main__":
    main()
