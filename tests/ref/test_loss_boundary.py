"""boundary (Kervadec et al. 2019) against a PyTorch float64 reference written from LIVIAETS/boundary-loss:
SurfaceLoss = mean over (sample, class in idc, voxel) of p·φ, φ from one_hot2dist (scipy EDT, sampling=spacing).
Blobby targets, 2-D and 3-D, C in {1, 2, 3}, labels and soft targets, spacing, --dist, edge cases, bad input."""
import os

import numpy as np
import torch

import boundaryref as B
import lossref as R
import slref


def ref_boundary(x, target, C, activation="auto", idc=None, spacing=None):
    p = R.probs(x, C, activation)
    m = B.masks_of(target, C)
    sp = B.spacing_of(x.shape[2:], spacing)
    phi = np.zeros(m.shape)
    for n in range(m.shape[0]):
        for c in range(m.shape[1]):
            phi[n, c] = B.kervadec_map(m[n, c], sp)
    if idc is None:
        idc = [0] if C == 1 else list(range(1, C))
    idc = [int(i) for i in idc]
    return (p[:, idc] * torch.tensor(phi)[:, idc]).mean()


def ref_maps(y, C, spacing):
    m = B.masks_of(y, C)
    sp = B.spacing_of(m.shape[2:], spacing)
    phi = np.zeros(m.shape, np.float32)
    for n in range(m.shape[0]):
        for c in range(m.shape[1]):
            phi[n, c] = B.kervadec_map(m[n, c], sp)
    return phi


def spec_of(params):
    return R.spec_of("boundary", {k: v for k, v in params.items() if k != "spacing"})


def run(chk, tmp, x, y, C, params, label_extra=(), **kw):
    extra = list(B.spacing_arg(params.get("spacing"))) + list(label_extra)
    R.check_loss(chk, "boundary", spec_of(params), ref_boundary, params, x, y, C, tmp, extra=extra, **dict(B.FD, **kw))


def main():
    chk = slref.Check("boundary vs PyTorch/scipy (LIVIAETS SurfaceLoss)")
    rng = np.random.default_rng(1)
    variants = [
        {},
        {"activation": "none"},
        {"idc": [0, 1, 2], "_channels": (3,)},
        {"idc": [2], "_channels": (3,)},
        {"spacing": "aniso"},
    ]
    with R.tmpdir() as tmp:
        B.matrix(chk, tmp, rng, variants, run)

        # --dist with the maps the loss would compute: the same numbers.
        for C, spatial, spacing in ((3, (20, 22), None), (1, (9, 10, 11), [2.0, 1.0, 0.5])):
            N = 2
            x, y = B.logits(rng, N, C, spatial), B.blobby_labels(rng, N, C, spatial)
            dp = os.path.join(tmp, "dist.npy")
            np.save(dp, ref_maps(y, C, spacing))
            v1, g1, e1 = R.run_cli(spec_of({}), x, y, tmp, B.spacing_arg(spacing))
            v2, g2, e2 = R.run_cli(spec_of({}), x, y, tmp, B.spacing_arg(spacing) + ["--dist", dp])
            if chk.true("boundary --dist run: %s %s" % (e1, e2), e1 is None and e2 is None):
                chk.close("boundary --dist value C=%d" % C, v2, v1, rtol=1e-6, atol=1e-7, group="boundary --dist")
                chk.close("boundary --dist grad C=%d" % C, g2, g1, rtol=1e-6, atol=1e-9, group="boundary --dist")
            # the user's maps are used as they are: a scaled map scales the loss
            np.save(dp, 3 * ref_maps(y, C, spacing))
            v3, _, e3 = R.run_cli(spec_of({}), x, y, tmp, B.spacing_arg(spacing) + ["--dist", dp])
            if chk.true("boundary --dist x3: %s" % e3, e3 is None):
                chk.close("boundary --dist x3 value", v3, 3 * v1, rtol=1e-5, atol=1e-7, group="boundary --dist")

        # Named edge cases.
        N, spatial = 1, (12, 13)
        x = B.logits(rng, N, 3, spatial)
        y = B.blobby_labels(rng, N, 3, spatial)
        y[y == 2] = 0                                   # empty class 2: φ ≡ 0
        run(chk, tmp, x, y, 3, {})
        y = np.ones((N,) + spatial, np.int64)           # class 1 fills the image: φ ≡ 0 there too
        run(chk, tmp, B.logits(rng, N, 2, spatial), y, 2, {})
        y = np.ones((N,) + spatial, np.int64)           # all-foreground single sigmoid channel
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {})
        y = np.zeros((N,) + spatial, np.int64)
        y[0, 6, 7] = 1                                  # single-voxel lesion
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {})
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {"spacing": [0.5, 3.0]})
        y3 = np.zeros((1, 7, 8, 9), np.int64)
        y3[0, 3, 4, 4] = 2
        y3[0, 0:3, 0:4, 0:4] = 1
        run(chk, tmp, B.logits(rng, 1, 3, (7, 8, 9)), y3, 3, {"spacing": [3.0, 0.8, 0.8]})

        # Bad parameters and inputs: one clear line each.
        x, y = B.logits(rng, 1, 3, spatial), B.blobby_labels(rng, 1, 3, spatial)
        np.save(os.path.join(tmp, "x.npy"), x)
        np.save(os.path.join(tmp, "y.npy"), y)
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        for spec, want in (("boundary(idc=[5])", "idc lists class 5"), ("boundary(idc=[1.5])", "class indices"),
                           ("boundary(idc=[1,1])", "twice"), ("boundary(idc=[-1])", "out of range"),
                           ("boundary(idc=2)", "list"), ("boundary(foo=1)", "unknown key")):
            rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp])
            chk.true("%s fails with a message containing '%s' (rc %d: %s)" % (spec, want, rc, err.strip()),
                     rc != 0 and want in err)
        dp = os.path.join(tmp, "bad.npy")
        np.save(dp, np.zeros((1, 2) + spatial, np.float32))
        rc, out, err = slref.cli(["loss", "boundary", "--input", xp, "--target", yp, "--dist", dp])
        chk.true("--dist of the wrong shape fails (rc %d: %s)" % (rc, err.strip()), rc == 1 and "--dist" in err)
        d = np.zeros((1, 3) + spatial, np.float32)
        d[0, 1, 2, 3] = np.nan
        np.save(dp, d)
        rc, out, err = slref.cli(["loss", "boundary", "--input", xp, "--target", yp, "--dist", dp])
        chk.true("--dist with NaN fails (rc %d: %s)" % (rc, err.strip()), rc == 1 and "NaN" in err)
    chk.report()


if __name__ == "__main__":
    main()
