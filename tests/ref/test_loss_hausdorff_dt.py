"""hausdorff_dt (Karimi & Salcudean 2019) against MONAI HausdorffDTLoss's definition, re-implemented here in PyTorch
float64 with scipy maps: per channel, distance_field = edt(mask) + edt(~mask) of (p > 0.5) and of (g > 0.5), zero when
the mask is all background or all foreground; loss = mean of (p − g)² (d_p^α + d_g^α) per (sample, channel), then the
mean. Scores are drawn away from p = 0.5 so that the finite differences never flip a prediction mask."""
import os

import numpy as np
import torch

import boundaryref as B
import lossref as R
import slref


def ref_hd(x, target, C, activation="auto", alpha=2.0, include_background=False, spacing=None):
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    sp = B.spacing_of(x.shape[2:], spacing)
    first = 1 if (not include_background and C > 1) else 0
    pm, gm = p.detach().numpy() > 0.5, g.numpy() > 0.5
    per = []
    for c in range(first, C):
        for n in range(x.shape[0]):
            dp = torch.tensor(B.monai_field(pm[n, c], sp))
            dg = torch.tensor(B.monai_field(gm[n, c], sp))
            per.append(((p[n, c] - g[n, c]) ** 2 * (dp ** alpha + dg ** alpha)).mean())
    return torch.stack(per).mean()


def away_from_half(rng, x, C, act, margin=0.04):
    """Redraws the voxels whose probability of some class lies within `margin` of 0.5."""
    x = x.copy()
    for _ in range(100):
        p = R.probs(torch.tensor(x.astype(np.float64)), C, act).numpy()
        bad = (np.abs(p - 0.5) < margin).any(axis=1)
        if not bad.any():
            return x
        fresh = B.logits(rng, x.shape[0], C, x.shape[2:], activation=act)
        x = np.where(bad[:, None], fresh, x).astype(np.float32)
    raise RuntimeError("could not draw scores away from 0.5")


def spec_of(params):
    return R.spec_of("hausdorff_dt", {k: v for k, v in params.items() if k != "spacing"})


def run(chk, tmp, x, y, C, params, **kw):
    R.check_loss(chk, "hausdorff_dt", spec_of(params), ref_hd, params, x, y, C, tmp,
                 extra=B.spacing_arg(params.get("spacing")), **dict(B.FD, **kw))


def main():
    chk = slref.Check("hausdorff_dt vs MONAI HausdorffDTLoss definition (PyTorch/scipy)")
    rng = np.random.default_rng(2)
    variants = [
        {},
        {"include_background": True},
        {"alpha": 1.0, "_channels": (1, 3)},
        {"alpha": 1.5, "_channels": (2,)},
        {"activation": "none", "_channels": (1, 3)},
        {"spacing": "aniso", "_channels": (1, 3)},
    ]
    with R.tmpdir() as tmp:
        B.matrix(chk, tmp, rng, variants, run, prepare=lambda rng, x, C, act: away_from_half(rng, x, C, act))

        # Named edge cases.
        N, spatial = 1, (12, 13)
        x = away_from_half(rng, B.logits(rng, N, 3, spatial), 3, "auto")
        y = B.blobby_labels(rng, N, 3, spatial)
        y[y == 2] = 0                                            # empty target class: d_g ≡ 0
        run(chk, tmp, x, y, 3, {})
        y = np.ones((N,) + spatial, np.int64)                    # all-foreground target class
        run(chk, tmp, away_from_half(rng, B.logits(rng, N, 2, spatial), 2, "auto"), y, 2, {})
        run(chk, tmp, away_from_half(rng, B.logits(rng, N, 1, spatial), 1, "auto"), y, 1, {})
        y = np.zeros((N,) + spatial, np.int64)
        y[0, 6, 7] = 1                                           # single-voxel lesion
        run(chk, tmp, away_from_half(rng, B.logits(rng, N, 1, spatial), 1, "auto"), y, 1, {})
        run(chk, tmp, away_from_half(rng, B.logits(rng, N, 1, spatial), 1, "auto"), y, 1, {"spacing": [0.5, 3.0]})
        xe = np.full((N, 1) + spatial, -4.0, np.float32)         # empty prediction: d_p ≡ 0
        run(chk, tmp, xe, y, 1, {})
        y3 = np.zeros((1, 7, 8, 9), np.int64)
        y3[0, 3, 4, 4] = 2
        y3[0, 0:3, 0:4, 0:4] = 1
        run(chk, tmp, away_from_half(rng, B.logits(rng, 1, 3, (7, 8, 9)), 3, "auto"), y3, 3,
            {"spacing": [3.0, 0.8, 0.8], "include_background": True})

        # Bad parameters.
        x, y = B.logits(rng, 1, 3, spatial), B.blobby_labels(rng, 1, 3, spatial)
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, x)
        np.save(yp, y)
        for spec, want in (("hausdorff_dt(alpha=-1)", "out of range"), ("hausdorff_dt(alpha=true)", "number"),
                           ("hausdorff_dt(include_background=1)", "true or false"),
                           ("hausdorff_dt(idc=[1])", "unknown key")):
            rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp])
            chk.true("%s fails with '%s' (rc %d: %s)" % (spec, want, rc, err.strip()), rc != 0 and want in err)
    chk.report()


if __name__ == "__main__":
    main()
