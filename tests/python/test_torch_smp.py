"""segloss.torch.smp against transcriptions of segmentation_models_pytorch's losses
(smp/losses/dice.py, jaccard.py, tversky.py, focal.py, _functional.py; smp 0.3) written
here in float64 PyTorch; LovaszLoss against tests/ref's transcription of the authors'
lovasz_losses.py. Binary, multiclass and multilabel modes, classes, ignore_index, a class
absent from the batch, and the arguments that must raise NotImplementedError.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch
import torch.nn.functional as F

import pyref  # noqa: F401  (paths)
import slref
import test_loss_lovasz as TL

from segloss.torch import smp as S

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- smp, transcribed

def s_prepare(mode, y_pred, y_true, from_logits, ignore_index):
    bs, C = y_pred.shape[:2]
    if from_logits:
        y_pred = y_pred.log_softmax(1).exp() if mode == "multiclass" else F.logsigmoid(y_pred).exp()
    if mode == "binary":
        y_true = y_true.reshape(bs, 1, -1)
        y_pred = y_pred.reshape(bs, 1, -1)
        if ignore_index is not None:
            mask = y_true != ignore_index
            y_pred = y_pred * mask
            y_true = y_true * mask
    elif mode == "multiclass":
        y_true = y_true.reshape(bs, -1)
        y_pred = y_pred.reshape(bs, C, -1)
        if ignore_index is not None:
            mask = y_true != ignore_index
            y_pred = y_pred * mask.unsqueeze(1)
            y_true = F.one_hot((y_true * mask).long(), C).permute(0, 2, 1) * mask.unsqueeze(1)
        else:
            y_true = F.one_hot(y_true.long(), C).permute(0, 2, 1)
    else:
        y_true = y_true.reshape(bs, C, -1)
        y_pred = y_pred.reshape(bs, C, -1)
        if ignore_index is not None:
            mask = y_true != ignore_index
            y_pred = y_pred * mask
            y_true = y_true * mask
    return y_pred, y_true.to(y_pred.dtype)


def s_region(kind, mode, y_pred, y_true, classes=None, log_loss=False, from_logits=True, smooth=0.0,
             ignore_index=None, eps=1e-7, alpha=0.5, beta=0.5, gamma=1.0):
    p, t = s_prepare(mode, y_pred, y_true, from_logits, ignore_index)
    dims = (0, 2)
    inter = (p * t).sum(dims)
    if kind == "dice":
        card = (p + t).sum(dims)
        score = (2 * inter + smooth) / (card + smooth).clamp_min(eps)
    elif kind == "jaccard":
        card = (p + t).sum(dims)
        score = (inter + smooth) / (card - inter + smooth).clamp_min(eps)
    else:
        fp, fn = (p * (1 - t)).sum(dims), ((1 - p) * t).sum(dims)
        score = (inter + smooth) / (inter + alpha * fp + beta * fn + smooth).clamp_min(eps)
    loss = -torch.log(score.clamp_min(eps)) if log_loss else 1.0 - score
    loss = loss * (t.sum(dims) > 0).to(loss.dtype)
    if classes is not None:
        loss = loss[classes]
    return loss.mean() ** gamma if kind == "tversky" else loss.mean()


def s_focal_logits(output, target, gamma=2.0, alpha=None):
    target = target.type(output.type())
    logpt = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    pt = torch.exp(-logpt)
    loss = (1.0 - pt).pow(gamma) * logpt
    if alpha is not None:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.mean()


def s_focal(mode, y_pred, y_true, alpha=None, gamma=2.0, ignore_index=None):
    if mode in ("binary", "multilabel"):
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        if ignore_index is not None:
            keep = y_true != ignore_index
            y_pred, y_true = y_pred[keep], y_true[keep]
        return s_focal_logits(y_pred, y_true, gamma, alpha)
    loss = 0
    keep = y_true != ignore_index if ignore_index is not None else None
    for c in range(y_pred.shape[1]):
        ct, cp = (y_true == c).long(), y_pred[:, c]
        if keep is not None:
            ct, cp = ct[keep], cp[keep]
        loss = loss + s_focal_logits(cp, ct, gamma, alpha)
    return loss


def s_lovasz_grad(gt_sorted):
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def s_lovasz_hinge(logits, labels, per_image=False, ignore=None):
    """smp's _lovasz_hinge (binary and multilabel modes): every entry of the image or batch."""
    def flat(s, lab):
        s, lab = s.reshape(-1), lab.reshape(-1)
        if ignore is not None:
            keep = lab != ignore
            s, lab = s[keep], lab[keep]
        if lab.numel() == 0:
            return s.sum() * 0.0
        errors = 1.0 - s * (2.0 * lab.to(s.dtype) - 1.0)
        errors_sorted, perm = torch.sort(errors, descending=True)
        return torch.dot(F.relu(errors_sorted), s_lovasz_grad(lab[perm].to(s.dtype)))
    if per_image:
        return sum(flat(a, b) for a, b in zip(logits, labels)) / logits.shape[0]
    return flat(logits, labels)


# ---------------------------------------------------------------- comparing

def compare(chk, what, ours, ref, x, y, rtol=2e-5):
    xo = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    v = ours(xo, torch.tensor(y))
    (0.6 * v).backward()
    xr = torch.tensor(x.astype(np.float64), requires_grad=True)
    yr = torch.tensor(y.astype(np.float64) if y.dtype.kind == "f" else y)
    rv = ref(xr, yr)
    (0.6 * rv).backward()
    key = what.split(" ")[0]
    chk.close("%s value" % what, float(v), float(rv), rtol=rtol, atol=1e-6, group=key + " value")
    g = xr.grad.numpy()
    chk.close("%s grad" % what, xo.grad.numpy(), g, rtol=1e-4, atol=5e-5 * max(np.abs(g).max(), 1e-12),
              group=key + " grad")


def raises(chk, what, fn, exc, words=()):
    try:
        fn()
    except exc as e:
        print("%-44s -> %s: %s" % (what, type(e).__name__, e))
        chk.true("%s: message %r lacks %s" % (what, str(e), words), all(w in str(e) for w in words))
        return
    except Exception as e:  # noqa: BLE001
        chk.true("%s: raised %s(%s)" % (what, type(e).__name__, e), False)
        return
    chk.true("%s: raised nothing" % what, False)


def main():
    chk = slref.Check("segloss.torch.smp vs smp transcriptions")
    rng = np.random.default_rng(23)
    for N, C, sp in ((2, 4, (9, 10)), (1, 3, (5, 6, 7))):
        for absent in (None, 2):
            x = rng.normal(0, 2, (N, C) + sp).astype(np.float32)
            lab = rng.integers(0, C, (N,) + sp)
            if absent is not None:
                lab[lab == absent] = 0
            lab_ign = lab.copy()
            lab_ign[rng.random(lab.shape) < 0.1] = 255
            tag = "C=%d %s%s" % (C, sp, " absent class" if absent is not None else "")
            probs = torch.softmax(torch.tensor(x), 1).numpy()
            for kind, cls in (("dice", S.DiceLoss), ("jaccard", S.JaccardLoss), ("tversky", S.TverskyLoss)):
                variants = [dict(), dict(smooth=0.5), dict(classes=[1, 2]), dict(log_loss=True, smooth=1e-3)]
                if kind != "jaccard":
                    variants.append(dict(ignore_index=255))
                # log_loss with smooth=0: an absent class (clamped at eps, masked to 0 by smp)
                variants += [dict(log_loss=True), dict(log_loss=True, classes=[2, 0, 2])]
                if kind == "dice":
                    variants += [dict(log_loss=True, ignore_index=255), dict(log_loss=True, from_logits=False)]
                if kind == "tversky":
                    variants = [v for v in variants if not v.get("log_loss")]
                    variants += [dict(alpha=0.3, beta=0.7, gamma=1.5)]
                for kw in variants:
                    y = lab_ign if "ignore_index" in kw else lab
                    if kw.get("from_logits") is False:
                        compare(chk, "%s multiclass %s %s" % (cls.__name__, kw, tag), cls("multiclass", **kw),
                                lambda a, b: s_region(kind, "multiclass", a, b, **kw), probs, y)
                        continue
                    compare(chk, "%s multiclass %s %s" % (cls.__name__, kw, tag), cls("multiclass", **kw),
                            lambda a, b: s_region(kind, "multiclass", a, b, **kw), x, y)
                compare(chk, "%s multiclass from_logits=False %s" % (cls.__name__, tag),
                        cls("multiclass", from_logits=False),
                        lambda a, b: s_region(kind, "multiclass", a, b, from_logits=False), probs, lab)
                # binary: channel 1 of the label map as foreground
                xb = x[:, :1].copy()
                yb = (lab == 1).astype(np.int64)[:, None]
                compare(chk, "%s binary %s" % (cls.__name__, tag), cls("binary"),
                        lambda a, b: s_region(kind, "binary", a, b), xb, yb)
                compare(chk, "%s binary float target %s" % (cls.__name__, tag), cls("binary"),
                        lambda a, b: s_region(kind, "binary", a, b), xb, yb.astype(np.float32))
                if kind != "jaccard":
                    ybi = yb.copy()
                    ybi[lab_ign[:, None] == 255] = 255
                    compare(chk, "%s binary ignore %s" % (cls.__name__, tag), cls("binary", ignore_index=255),
                            lambda a, b: s_region(kind, "binary", a, b, ignore_index=255), xb, ybi)
                yml = (rng.random((N, C) + sp) < 0.3).astype(np.float32)
                if absent is not None:
                    yml[:, absent] = 0
                compare(chk, "%s multilabel %s" % (cls.__name__, tag), cls("multilabel"),
                        lambda a, b: s_region(kind, "multilabel", a, b), x, yml)
                if kind != "tversky":
                    compare(chk, "%s multilabel log_loss %s" % (cls.__name__, tag), cls("multilabel", log_loss=True),
                            lambda a, b: s_region(kind, "multilabel", a, b, log_loss=True), x, yml)
                # smp's multilabel ignore_index masks single (voxel, channel) entries
                ymi = yml.copy()
                ymi[rng.random(ymi.shape) < 0.15] = 255
                ml_kw = [dict(ignore_index=255)]
                if kind == "dice":
                    ml_kw += [dict(ignore_index=255, log_loss=True), dict(ignore_index=255, from_logits=False)]
                if kind == "tversky":
                    ml_kw = [dict(ignore_index=255, alpha=0.3, beta=0.7)]
                if kind == "jaccard":
                    ml_kw = []          # smp's JaccardLoss has no ignore_index
                for kw in ml_kw:
                    xin = torch.sigmoid(torch.tensor(x)).numpy() if kw.get("from_logits") is False else x
                    compare(chk, "%s multilabel %s %s" % (cls.__name__, kw, tag), cls("multilabel", **kw),
                            lambda a, b: s_region(kind, "multilabel", a, b, **kw), xin, ymi)
            # binary with an empty mask: loss 0, no gradient
            compare(chk, "DiceLoss binary empty %s" % tag, S.DiceLoss("binary"),
                    lambda a, b: s_region("dice", "binary", a, b), x[:, :1].copy(), np.zeros((N, 1) + sp, np.int64))
            compare(chk, "DiceLoss binary empty log_loss %s" % tag, S.DiceLoss("binary", log_loss=True),
                    lambda a, b: s_region("dice", "binary", a, b, log_loss=True), x[:, :1].copy(),
                    np.zeros((N, 1) + sp, np.int64))
            for kw in (dict(), dict(alpha=0.25, gamma=1.0), dict(ignore_index=255)):
                y = lab_ign if "ignore_index" in kw else lab
                compare(chk, "FocalLoss multiclass %s %s" % (kw, tag), S.FocalLoss("multiclass", **kw),
                        lambda a, b: s_focal("multiclass", a, b, **kw), x, y)
                yb = (lab == 1).astype(np.float32)[:, None]
                if "ignore_index" in kw:
                    yb[lab_ign[:, None] == 255] = 255
                compare(chk, "FocalLoss binary %s %s" % (kw, tag), S.FocalLoss("binary", **kw),
                        lambda a, b: s_focal("binary", a, b, **kw), x[:, :1].copy(), yb)
            yml = (rng.random((N, C) + sp) < 0.3).astype(np.float32)
            compare(chk, "FocalLoss multilabel %s" % tag, S.FocalLoss("multilabel", alpha=0.4),
                    lambda a, b: s_focal("multilabel", a, b, alpha=0.4), x, yml)
            ymi = yml.copy()
            ymi[rng.random(ymi.shape) < 0.15] = 255
            compare(chk, "FocalLoss multilabel ignore_index %s" % tag, S.FocalLoss("multilabel", ignore_index=255),
                    lambda a, b: s_focal("multilabel", a, b, ignore_index=255), x, ymi)
            compare(chk, "FocalLoss multilabel ignore_index alpha %s" % tag,
                    S.FocalLoss("multilabel", ignore_index=255, alpha=0.3, gamma=1.0),
                    lambda a, b: s_focal("multilabel", a, b, ignore_index=255, alpha=0.3, gamma=1.0), x, ymi)
            for kw in (dict(), dict(per_image=True), dict(ignore_index=255)):
                y = lab_ign if "ignore_index" in kw else lab
                compare(chk, "LovaszLoss multiclass %s %s" % (kw, tag), S.LovaszLoss("multiclass", **kw),
                        lambda a, b: TL.ref_lovasz(a, b, C, per_image=kw.get("per_image", False),
                                                   ignore_index=kw.get("ignore_index")), x, y)
                yb = (lab == 1).astype(np.int64)
                if "ignore_index" in kw:
                    yb[lab_ign == 255] = 255
                compare(chk, "LovaszLoss binary %s %s" % (kw, tag), S.LovaszLoss("binary", **kw),
                        lambda a, b: TL.ref_lovasz(a, b[:, 0], 1, per_image=kw.get("per_image", False),
                                                   ignore_index=kw.get("ignore_index")), x[:, :1].copy(), yb[:, None])
                yml = (rng.random((N, C) + sp) < 0.3).astype(np.float32)
                if "ignore_index" in kw:
                    yml[rng.random(yml.shape) < 0.15] = 255
                compare(chk, "LovaszLoss multilabel %s %s" % (kw, tag), S.LovaszLoss("multilabel", **kw),
                        lambda a, b: s_lovasz_hinge(a, b, per_image=kw.get("per_image", False),
                                                    ignore=kw.get("ignore_index")), x, yml)

    x = torch.randn(2, 3, 6, 7)
    y = torch.randint(0, 3, (2, 6, 7))
    raises(chk, "mode", lambda: S.DiceLoss("multi"), ValueError, ["mode"])
    raises(chk, "classes with binary", lambda: S.DiceLoss("binary", classes=[0]), AssertionError, ["binary"])
    # TverskyLoss(log_loss=True) is reproduced: tests/python/test_torch_smp_tversky_log.py
    # normalized and reduced_threshold are reproduced: tests/python/test_torch_smp_focal_args.py
    raises(chk, "Focal reduced_threshold 0", lambda: S.FocalLoss("binary", reduced_threshold=0.0), ValueError,
           ["reduced_threshold"])
    raises(chk, "Focal reduction", lambda: S.FocalLoss("binary", reduction="none"), NotImplementedError,
           ["reduction"])
    raises(chk, "Focal soft target", lambda: S.FocalLoss("binary")(x[:, :1], torch.rand(2, 1, 6, 7)),
           NotImplementedError, ["soft target"])
    raises(chk, "Lovasz multilabel shape", lambda: S.LovaszLoss("multilabel")(x, y), ValueError, ["multilabel"])
    raises(chk, "multiclass target shape", lambda: S.DiceLoss("multiclass")(x, y[:, :5]), ValueError, ["(2, 5, 7)"])
    raises(chk, "label out of range", lambda: S.DiceLoss("multiclass")(x, y + 3), ValueError, ["outside"])
    raises(chk, "binary with 3 channels", lambda: S.DiceLoss("binary")(x, y), ValueError, ["one channel"])
    raises(chk, "classes out of range", lambda: S.DiceLoss("multiclass", classes=[5])(x, y), IndexError, ["5"])
    chk.report()


if __name__ == "__main__":
    main()
