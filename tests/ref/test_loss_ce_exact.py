"""ce / bce with activation=none on exact 0 and 1 probabilities.
# sanitized: skip

bce(activation=none) is PyTorch's F.binary_cross_entropy, which clamps its logs at −100 and divides its gradient by
max(p(1 − p), 1e-12): compared value and gradient with PyTorch itself (float64), hard and soft targets, with
channel weights. ce(activation=none) on C > 1 channels is −Σ g log p with 0·log 0 = 0 (torch.xlogy), as
F.nll_loss(log p) / soft cross-entropy give wherever they are finite (the reference: g·log p on g > 0 only); a zero probability on a class the target
needs is an infinite loss, refused with SL_ENONFINITE."""
import numpy as np
import torch
import torch.nn.functional as F

import lossref as R
import slref


def ref_bce(x, target, C, weight=None, mask=None):
    g = R.onehot(target, C)
    w = None if weight is None else torch.tensor(weight).view((1, C) + (1,) * (x.dim() - 2)).expand_as(x)
    return F.binary_cross_entropy(x, g, weight=w)


def ref_ce(x, target, C):
    g = R.onehot(target, C)
    # 0·log 0 = 0 with a zero gradient (torch.xlogy's own gradient is 0/0 there)
    xs = torch.where(g > 0, x, torch.ones_like(x))
    return -(g * torch.log(xs)).sum(1).mean()


def exact_probs(rng, shape):
    """Probabilities with many exact 0s and 1s (and ordinary values)."""
    x = rng.uniform(0.05, 0.95, shape)
    r = rng.random(shape)
    x[r < 0.3] = 0.0
    x[r > 0.7] = 1.0
    return x.astype(np.float32)


def main():
    chk = slref.Check("ce/bce on exact 0/1 probabilities vs PyTorch")
    rng = np.random.default_rng(3)
    with R.tmpdir() as tmp:
        for spatial in ((6, 7), (3, 4, 5)):
            # bce: hard labels (one channel) and soft targets (three channels), p = 0 and 1 against both labels.
            x = exact_probs(rng, (2, 1) + spatial)
            y = rng.integers(0, 2, (2,) + spatial)
            R.check_loss(chk, "bce", "bce(activation=none)", ref_bce, {}, x, y, 1, tmp, fd=False)
            x = exact_probs(rng, (2, 3) + spatial)
            y = exact_probs(rng, (2, 3) + spatial)
            R.check_loss(chk, "bce", "bce(activation=none,weight=[0.5,1.0,2.0])", ref_bce, {"weight": [0.5, 1.0, 2.0]},
                         x, y, 3, tmp, fd=False)
            # ce: one-hot predictions that are right (p = 1 on the label, exact 0 elsewhere), and soft targets
            # with zeros where the prediction is 0.
            C = 4
            y = rng.integers(0, C, (2,) + spatial)
            x = np.moveaxis(np.eye(C, dtype=np.float32)[y], -1, 1).copy()
            R.check_loss(chk, "ce", "ce(activation=none)", ref_ce, {}, x, y, C, tmp, fd=False)
            soft = rng.uniform(0.1, 1.0, (2, C) + spatial)
            soft[rng.random(soft.shape) < 0.4] = 0
            soft[:, 0] += 0.05
            soft /= soft.sum(1, keepdims=True)
            xs = soft.astype(np.float32)
            ys = np.where(rng.random(soft.shape) < 0.5, soft, 0) * (xs > 0)
            ys[:, 0] = 1 - ys[:, 1:].sum(1)
            R.check_loss(chk, "ce", "ce(activation=none)", ref_ce, {}, xs, ys.astype(np.float32), C, tmp, fd=False)
        # p = 0 on the labelled class: an infinite loss, refused with a message naming the cause.
        x = np.zeros((1, 3, 2, 2), np.float32)
        x[:, 1] = 1
        y = np.zeros((1, 2, 2), np.int64)
        v, _, err = R.run_lib("ce(activation=none)", x, y)
        chk.true("ce: p = 0 on the target class is refused (%s)" % err, v is None and err and "log(0)" in err)
    chk.report()


if __name__ == "__main__":
    main()
