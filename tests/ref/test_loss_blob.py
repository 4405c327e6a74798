"""blob (Kofler et al. 2023) against a PyTorch float64 re-implementation of neuronflow/blob_loss
compute_blob_loss_multi with a MONAI-style soft Dice criterion (smooth 1e-5): components from scipy.ndimage.label; for
each blob the prediction is multiplied by (background of the class | the blob) and compared with the blob; mean over the
blobs of a (sample, class), then over the (sample, class) groups that have blobs."""
import os

import numpy as np
import scipy.ndimage as ndi
import torch

import boundaryref as B
import lossref as R
import slref


def dice_loss(p, t, snr, sdr):
    return 1 - (2 * (p * t).sum() + snr) / (p.sum() + t.sum() + sdr)


def ref_blob(x, target, C, activation="auto", include_background=False, connectivity="full", smooth_nr=1e-5,
             smooth_dr=1e-5):
    p = R.probs(x, C, activation)
    m = B.masks_of(target, C)
    first = 1 if (not include_background and C > 1) else 0
    nd = x.dim() - 2
    structure = ndi.generate_binary_structure(nd, nd if connectivity == "full" else 1)
    groups = []
    for n in range(x.shape[0]):
        for c in range(first, C):
            comp, K = ndi.label(m[n, c], structure=structure)
            losses = []
            for k in range(1, K + 1):
                label_mask = comp == 0
                label_mask[comp == k] = True
                the_label = torch.tensor((comp == k).astype(np.float64))
                masked = p[n, c] * torch.tensor(label_mask.astype(np.float64))
                losses.append(dice_loss(masked, the_label, smooth_nr, smooth_dr))
            if losses:
                groups.append(sum(losses) / len(losses))
    if not groups:
        return x.sum() * 0
    return sum(groups) / len(groups)


def spec_of(params):
    return R.spec_of("blob", params)


def run(chk, tmp, x, y, C, params, **kw):
    R.check_loss(chk, "blob", spec_of(params), ref_blob, params, x, y, C, tmp, **dict(B.FD, **kw))


def main():
    chk = slref.Check("blob vs PyTorch/scipy (neuronflow blob_loss masking)")
    rng = np.random.default_rng(5)
    variants = [
        {},
        {"connectivity": "face"},
        {"include_background": True, "_channels": (2, 3)},
        {"activation": "none", "_channels": (1, 3)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "_channels": (1, 3)},
    ]
    with R.tmpdir() as tmp:
        B.matrix(chk, tmp, rng, variants, run)

        # Named edge cases.
        N, spatial = 2, (12, 13)
        x = B.logits(rng, N, 3, spatial)
        y = B.blobby_labels(rng, N, 3, spatial)
        y[y == 2] = 0                                        # empty class 2: no blobs there
        y[1] = 0                                             # and sample 1 without any blob
        run(chk, tmp, x, y, 3, {})
        y = np.zeros((N,) + spatial, np.int64)               # no blob anywhere: 0
        run(chk, tmp, B.logits(rng, N, 2, spatial), y, 2, {}, fd=False)
        y = np.ones((N,) + spatial, np.int64)                # one blob filling the image
        run(chk, tmp, B.logits(rng, N, 1, spatial), y, 1, {})
        y = np.zeros((1,) + spatial, np.int64)
        y[0, 6, 7] = 1                                       # a single-voxel lesion next to a big one
        y[0, 0:5, 0:6] = 1
        run(chk, tmp, B.logits(rng, 1, 1, spatial), y, 1, {})
        y = np.zeros((1,) + spatial, np.int64)               # diagonal neighbours: 1 blob (full) or 2 (face)
        y[0, 3, 3] = y[0, 4, 4] = 1
        for conn in ("full", "face"):
            run(chk, tmp, B.logits(rng, 1, 1, spatial), y, 1, {"connectivity": conn})
        y3 = np.zeros((1, 7, 8, 9), np.int64)
        y3[0, 3, 4, 4] = 2
        y3[0, 0:3, 0:4, 0:4] = 1
        y3[0, 4, 5, 5] = 1                                   # 3-D corner neighbours of the class-2 voxel
        y3[0, 2, 3, 3] = 2
        for conn in ("full", "face"):
            run(chk, tmp, B.logits(rng, 1, 3, (7, 8, 9)), y3, 3, {"connectivity": conn})

        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, B.logits(rng, 1, 3, spatial))
        np.save(yp, B.blobby_labels(rng, 1, 3, spatial))
        for spec, want in (("blob(connectivity=4)", "full|face"), ("blob(connectivity=edge)", "full|face"),
                           ("blob(smooth_nr=-1)", "out of range"), ("blob(alpha=1)", "unknown key")):
            rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp])
            chk.true("%s fails with '%s' (rc %d: %s)" % (spec, want, rc, err.strip()), rc != 0 and want in err)
    chk.report()


if __name__ == "__main__":
    main()
