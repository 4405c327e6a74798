"""dpce (Caliva et al. 2019) against a PyTorch float64 reference: CE weighted per voxel by 1 + λ(1 − d/d_max), d the
scipy distance to the nearest voxel of another target label, averaged over the voxels; λ = 0 is ce."""
import os

import numpy as np
import torch

import boundaryref as B
import lossref as R
import slref


def ref_dpce(x, target, C, activation="auto", spacing=None, **kw):
    lam = kw.get("lambda", 1.0)
    sp = B.spacing_of(x.shape[2:], spacing)
    lab = B.hard_labels(target, C, activation)
    w = np.ones(lab.shape)
    for n in range(lab.shape[0]):
        for k in range(lab.shape[1]):
            d = B.label_distance(lab[n, k], sp)
            if d is not None:
                w[n, k] = 1 + lam * (1 - d / d.max())
    return B.weighted_ce(x, target, C, activation, w, by_weights=False)


def spec_of(params):
    return R.spec_of("dpce", {k: v for k, v in params.items() if k != "spacing"})


def run(chk, tmp, x, y, C, params, **kw):
    R.check_loss(chk, "dpce", spec_of(params), ref_dpce, params, x, y, C, tmp,
                 extra=B.spacing_arg(params.get("spacing")), **dict(B.FD, **kw))


def main():
    chk = slref.Check("dpce vs PyTorch/scipy")
    rng = np.random.default_rng(3)
    variants = [
        {},
        {"lambda": 3.0, "_channels": (1, 3)},
        {"activation": "none", "_channels": (1, 3)},
        {"activation": "sigmoid", "_channels": (3,)},
        {"spacing": "aniso", "_channels": (1, 3)},
    ]
    with R.tmpdir() as tmp:
        B.matrix(chk, tmp, rng, variants, run)

        # lambda = 0 is ce, through the library on both sides.
        for C in (1, 3):
            x, y = B.logits(rng, 2, C, (12, 14)), B.blobby_labels(rng, 2, C, (12, 14))
            a, ga, ea = R.run_cli("dpce(lambda=0)", x, y, tmp)
            b, gb, eb = R.run_cli("ce", x, y, tmp)
            if chk.true("dpce(lambda=0) and ce run: %s %s" % (ea, eb), ea is None and eb is None):
                chk.close("dpce(lambda=0) == ce value C=%d" % C, a, b, rtol=1e-6, atol=1e-8, group="dpce == ce")
                chk.close("dpce(lambda=0) == ce grad C=%d" % C, ga, gb, rtol=1e-5, atol=1e-8, group="dpce == ce")

        # Named edge cases.
        N, spatial = 1, (12, 13)
        y = B.blobby_labels(rng, N, 3, spatial)
        y[y == 2] = 0                                            # empty class
        run(chk, tmp, B.logits(rng, N, 3, spatial), y, 3, {})
        y = np.ones((N,) + spatial, np.int64)                    # one label everywhere: plain CE
        run(chk, tmp, B.logits(rng, N, 3, spatial), y, 3, {})
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {})
        y = np.zeros((N,) + spatial, np.int64)
        y[0, 6, 7] = 1                                           # single-voxel lesion
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {})
        run(chk, tmp, B.logits(rng, N, 2, spatial), y, 2, {"spacing": [0.5, 3.0]})

        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, B.logits(rng, 1, 3, spatial))
        np.save(yp, B.blobby_labels(rng, 1, 3, spatial))
        for spec, want in (("dpce(lambda=-1)", "out of range"), ("dpce(lambda=[1])", "number"),
                           ("dpce(width=2)", "unknown key")):
            rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp])
            chk.true("%s fails with '%s' (rc %d: %s)" % (spec, want, rc, err.strip()), rc != 0 and want in err)
    chk.report()


if __name__ == "__main__":
    main()
