"""lovasz against a PyTorch float64 implementation of Berman et al. 2018's
algorithm (sorted errors, Lovász extension of the Jaccard loss; autograd
through the sort is the gradient oracle): Lovász-softmax on probabilities,
Lovász hinge on logits for sigmoid channels."""
import numpy as np
import torch

import distref as D
import lossref as R
import slref


def jaccard_increments(g_sorted):
    """δ_k = J_k − J_{k−1} of the Jaccard loss along the sorted order (paper, Alg. 1)."""
    gts = g_sorted.sum()
    inter = gts - g_sorted.cumsum(0)
    union = gts + (1 - g_sorted).cumsum(0)
    J = 1 - inter / union
    return torch.cat([J[:1], J[1:] - J[:-1]])


def ref_lovasz(x, target, C, activation="auto", per_image=False, classes="present", ignore_index=None):
    if activation == "auto":
        activation = "softmax" if C > 1 else "sigmoid"
    hinge = activation == "sigmoid"
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    valid = R.valid_mask(target, ignore_index, C)[:, 0] > 0  # (N, ...)
    N = x.shape[0]
    groups = [[n] for n in range(N)] if per_image else [list(range(N))]
    total = (x * 0).sum()
    for grp in groups:
        losses = []
        for c in range(C):
            es, gs = [], []
            for n in grp:
                m = valid[n]
                gc = g[n, c][m]
                es.append(1 - x[n, c][m] * (2 * gc - 1) if hinge else (gc - p[n, c][m]).abs())
                gs.append(gc)
            e, gc = torch.cat(es), torch.cat(gs)
            if not hinge and classes == "present" and float(gc.sum()) == 0:
                continue
            if e.numel() == 0:
                losses.append((x * 0).sum())
                continue
            order = torch.sort(e.detach(), descending=True, stable=True).indices
            f = torch.relu(e[order]) if hinge else e[order]
            losses.append(torch.dot(f, jaccard_increments(gc[order])))
        if losses:
            total = total + sum(losses) / len(losses)
    return total / len(groups)


def main():
    chk = slref.Check("lovasz vs PyTorch")
    fd = D.kw(fd_step=1e-4)
    variants = [
        {},
        {"per_image": True},
        {"classes": "all", "_channels": (2, 4)},
        {"per_image": True, "classes": "all", "_channels": (4,), "_kinds": ("labels",)},
        {"ignore_index": 255, "_ignore": 255, "_kinds": ("labels",), "_channels": (1, 4)},
        {"_activation": "none", "_channels": (1, 4)},
        {"_activation": "sigmoid", "_channels": (2, 4), "per_image": True},
        {"_empty": 2, "_channels": (4,), "_kinds": ("labels",)},
    ]
    R.run_matrix(chk, "lovasz", lambda p: R.spec_of("lovasz", p), ref_lovasz, variants, **fd)
    D.edge_cases(chk, "lovasz", "lovasz(ignore_index=9)", ref_lovasz, {"ignore_index": 9}, **fd)
    D.edge_cases(chk, "lovasz", "lovasz(ignore_index=9,per_image=true,classes=all)", ref_lovasz,
                 {"ignore_index": 9, "per_image": True, "classes": "all"}, channels=(1, 3), **fd)

    with R.tmpdir() as tmp:
        # Ties: equal errors are ranked by index (stable order); equal logits in every voxel.
        x = np.zeros((1, 1, 3, 4), np.float32)
        y = (np.arange(12).reshape(1, 3, 4) % 3 == 0).astype(np.int64)
        R.check_loss(chk, "lovasz ties", "lovasz", ref_lovasz, {}, x, y, 1, tmp, fd=False)
        x = np.zeros((1, 3, 3, 4), np.float32)
        y = (np.arange(12).reshape(1, 3, 4) % 3)
        R.check_loss(chk, "lovasz ties", "lovasz", ref_lovasz, {}, x, y, 3, tmp, fd=False)
        # A perfect hinge prediction (all margins >= 1) costs 0 with a zero gradient.
        y = np.array([[[1, 0, 1, 0]]], np.int64)
        x = np.where(y[:, None] == 1, 3.0, -3.0).astype(np.float32)
        v, g, err = R.run_cli("lovasz", x, y, tmp)
        chk.true("lovasz hinge perfect: %s" % err, err is None and v == 0 and not np.any(g))
        # Larger 3-D volume: the radix sort path (more than 32 voxels per class, many bytes).
        rng = np.random.default_rng(4)
        x, y = R.make_inputs(rng, 2, 3, (12, 16, 10), "labels")
        R.check_loss(chk, "lovasz large", "lovasz", ref_lovasz, {}, x, y, 3, tmp, **fd)
        x, y = R.make_inputs(rng, 2, 1, (12, 16, 10), "labels")
        R.check_loss(chk, "lovasz large", "lovasz(per_image=true)", ref_lovasz, {"per_image": True}, x, y, 1, tmp, **fd)

    D.bad_params(chk, "lovasz", [
        ("lovasz(classes=some)", "present|all"),
        ("lovasz(per_image=1)", "true or false"),
        ("lovasz(gamma=2)", "unknown key 'gamma'"),
        ("lovasz(ignore_index=0.5)", "ignore_index"),
    ])
    D.threads_identical(chk, "lovasz", ["lovasz", "lovasz(per_image=true,activation=sigmoid)"])
    chk.report()


if __name__ == "__main__":
    main()
