"""segloss.torch.monai against transcriptions of MONAI's loss code (monai/losses/dice.py,
focal_loss.py, tversky.py; MONAI 1.3/1.4 where the releases differ: class weights)
written here in float64 PyTorch, plus the MONAI
references already in tests/ref (GeneralizedDiceLoss, GeneralizedWassersteinDiceLoss,
HausdorffDTLoss, SoftclDiceLoss). Value and gradient, labels and one-hot targets, an
empty class, and the arguments that must raise NotImplementedError.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch
import torch.nn.functional as F

import pyref  # noqa: F401  (paths)
import boundaryref as B
import slref
import test_loss_cldice as TCL
import test_loss_gdice as TGD
import test_loss_gwdice as TGW
import test_loss_hausdorff_dt as THD

from segloss.torch import monai as M

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- MONAI, transcribed

def m_prep(input, target, sigmoid=False, softmax=False, to_onehot_y=False, include_background=True):
    if sigmoid:
        input = torch.sigmoid(input)
    C = input.shape[1]
    if softmax and C > 1:
        input = torch.softmax(input, 1)
    if to_onehot_y and C > 1:
        target = F.one_hot(target[:, 0].long(), C).movedim(-1, 1).to(input.dtype)
    if not include_background and C > 1:
        target, input = target[:, 1:], input[:, 1:]
    assert target.shape == input.shape
    return input, target


def m_dice(input, target, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False,
           squared_pred=False, jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
           weight=None):
    input, target = m_prep(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, input.dim()))
    if batch:
        axes = [0] + axes
    inter = (target * input).sum(axes)
    if squared_pred:
        ground_o, pred_o = (target ** 2).sum(axes), (input ** 2).sum(axes)
    else:
        ground_o, pred_o = target.sum(axes), input.sum(axes)
    den = ground_o + pred_o
    if jaccard:
        den = 2.0 * (den - inter)
    f = 1.0 - (2.0 * inter + smooth_nr) / (den + smooth_dr)
    if weight is not None and target.shape[1] != 1:
        w = torch.as_tensor(weight, dtype=f.dtype)
        if w.dim() == 0:
            w = w.repeat(target.shape[1])
        f = f * w
    return f.mean() if reduction == "mean" else f.sum()


def m_tversky(input, target, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False,
              alpha=0.5, beta=0.5, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    input, target = m_prep(input, target, sigmoid, softmax, to_onehot_y, include_background)
    p0, g0 = input, target
    p1, g1 = 1 - p0, 1 - g0
    axes = list(range(2, input.dim()))
    if batch:
        axes = [0] + axes
    tp = (p0 * g0).sum(axes)
    fp = alpha * (p0 * g1).sum(axes)
    fn = beta * (p1 * g0).sum(axes)
    score = (tp + smooth_nr) / (tp + fp + fn + smooth_dr)
    f = 1.0 - score
    return f.mean() if reduction == "mean" else f.sum()


def m_focal(input, target, include_background=True, to_onehot_y=False, gamma=2.0, alpha=None, weight=None,
            reduction="mean", use_softmax=False):
    C = input.shape[1]
    if to_onehot_y and C > 1:
        target = F.one_hot(target[:, 0].long(), C).movedim(-1, 1).to(input.dtype)
    if not include_background and C > 1:
        target, input = target[:, 1:], input[:, 1:]
    if use_softmax:
        ls = input.log_softmax(1)
        loss = -(1 - ls.exp()).pow(gamma) * ls * target
        if alpha is not None:
            af = torch.tensor([1 - alpha] + [alpha] * (target.shape[1] - 1))
            loss = af.view([1, -1] + [1] * (loss.dim() - 2)) * loss
    else:
        i, t = input, target
        max_val = (-i).clamp(min=0)
        ce = i - i * t + max_val + ((-max_val).exp() + (-i - max_val).exp()).log()
        p = F.logsigmoid(-i * (t * 2.0 - 1.0))
        loss = (p * gamma).exp() * ce
        if alpha is not None:
            loss = (t * alpha + (1 - t) * (1 - alpha)) * loss
    if weight is not None and loss.shape[1] != 1:    # MONAI 1.3/1.4: not for a single channel
        w = torch.as_tensor(weight, dtype=loss.dtype)
        if w.dim() == 0:
            w = w.repeat(loss.shape[1])
        loss = loss * w.view([1, -1] + [1] * (loss.dim() - 2))
    flat = loss.reshape(loss.shape[0], loss.shape[1], -1).mean(-1)
    return flat.mean() if reduction == "mean" else flat.sum()


def m_ce(input, target, label_smoothing=0.0, weight=None):
    w = None if weight is None else torch.as_tensor(weight, dtype=input.dtype)
    if input.shape[1] == 1:      # BCEWithLogitsLoss(pos_weight=weight)
        return F.binary_cross_entropy_with_logits(input, target, pos_weight=w)
    if target.shape[1] == 1 and input.shape[1] != 1:
        return F.cross_entropy(input, target[:, 0].long(), weight=w, label_smoothing=label_smoothing)
    return F.cross_entropy(input, target, weight=w, label_smoothing=label_smoothing)


def m_dicece(input, target, lambda_dice=1.0, lambda_ce=1.0, label_smoothing=0.0, weight=None, **kw):
    # MONAI 1.3/1.4: DiceLoss(weight=weight[1:] if not include_background else weight)
    dw = weight
    if weight is not None and not kw.get("include_background", True):
        dw = weight[1:]
    return (lambda_dice * m_dice(input, target, weight=dw, **kw)
            + lambda_ce * m_ce(input, target, label_smoothing, weight))


def m_dicefocal(input, target, lambda_dice=1.0, lambda_focal=1.0, gamma=2.0, alpha=None, weight=None, **kw):
    # MONAI 1.3/1.4: the same weight to DiceLoss and to the (sigmoid) FocalLoss
    d = m_dice(input, target, weight=weight, **kw)
    C = input.shape[1]
    t = target
    if kw.get("to_onehot_y") and C > 1:
        t = F.one_hot(target[:, 0].long(), C).movedim(-1, 1).to(input.dtype)
    f = m_focal(input, t, include_background=kw.get("include_background", True), gamma=gamma, alpha=alpha,
                weight=weight, use_softmax=False)
    return lambda_dice * d + lambda_focal * f


def m_gdl(input, target, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False,
          w_type="square", reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False):
    """monai.losses.GeneralizedDiceLoss.forward (MONAI 1.x), smoothing included."""
    input, target = m_prep(input, target, sigmoid, softmax, to_onehot_y, include_background)
    axes = list(range(2, input.dim()))
    if batch:
        axes = [0] + axes
    intersection = (target * input).sum(axes)
    ground_o = target.sum(axes)
    denominator = ground_o + input.sum(axes)
    w = {"square": lambda v: torch.reciprocal(v * v), "simple": torch.reciprocal,
         "uniform": lambda v: torch.ones_like(v)}[w_type](ground_o)
    infs = torch.isinf(w)
    if batch:
        w[infs] = 0.0
        w = w + infs * torch.max(w)
    else:
        w[infs] = 0.0
        w = w + infs * torch.max(w, dim=1)[0].unsqueeze(dim=1)
    d = 0 if batch else 1
    numer = 2.0 * (intersection * w).sum(d, keepdim=True) + smooth_nr
    denom = (denominator * w).sum(d, keepdim=True) + smooth_dr
    f = 1.0 - numer / denom
    return f.mean() if reduction == "mean" else f.sum()


# ---------------------------------------------------------------- comparing

def compare(chk, what, ours, ref, x, y, rtol=2e-5):
    """ours(x32, y) against ref(x64, y64): value and the gradient of 0.6·value."""
    xo = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    yo = torch.tensor(y)
    v = ours(xo, yo)
    (0.6 * v).backward()
    xr = torch.tensor(x.astype(np.float64), requires_grad=True)
    yr = torch.tensor(y.astype(np.float64) if y.dtype.kind == "f" else y)
    rv = ref(xr, yr)
    (0.6 * rv).backward()
    chk.close("%s value" % what, float(v), float(rv), rtol=rtol, atol=1e-6, group=what.split(" ")[0] + " value")
    g = xr.grad.numpy()
    chk.close("%s grad" % what, xo.grad.numpy(), g, rtol=1e-4, atol=5e-5 * max(np.abs(g).max(), 1e-12),
              group=what.split(" ")[0] + " grad")


def raises(chk, what, fn, exc, words=()):
    try:
        fn()
    except exc as e:
        print("%-50s -> %s: %s" % (what, type(e).__name__, e))
        chk.true("%s: message %r lacks %s" % (what, str(e), words), all(w in str(e) for w in words))
        return
    except Exception as e:  # noqa: BLE001
        chk.true("%s: raised %s(%s)" % (what, type(e).__name__, e), False)
        return
    chk.true("%s: raised nothing" % what, False)


def inputs(rng, N, C, spatial, empty=None):
    x = rng.normal(0, 2, (N, C) + spatial).astype(np.float32)
    hi = 2 if C == 1 else C
    lab = rng.integers(0, hi, (N, 1) + spatial)
    if empty is not None:
        lab[lab == empty] = (empty + 1) % hi
    onehot = (np.eye(C)[lab[:, 0]].transpose(0, -1, *range(1, lab.ndim - 1)).astype(np.float32) if C > 1
              else lab.astype(np.float32))
    return x, lab.astype(np.int64), onehot


def main():
    chk = slref.Check("segloss.torch.monai vs MONAI transcriptions")
    rng = np.random.default_rng(17)
    shapes = [(2, 3, (9, 10)), (1, 4, (5, 6, 7)), (2, 1, (8, 9))]
    if slref.QUICK:
        shapes = shapes[:1]
    for N, C, sp in shapes:
        for empty in (None, 1):
            x, lab, oh = inputs(rng, N, C, sp, empty)
            probs = (torch.softmax(torch.tensor(x), 1) if C > 1 else torch.sigmoid(torch.tensor(x))).numpy()
            tag = "C=%d %s%s" % (C, sp, " empty class" if empty is not None else "")
            act = dict(softmax=True) if C > 1 else dict(sigmoid=True)
            dice_kw = [dict(act, to_onehot_y=True), dict(act, include_background=False, to_onehot_y=True),
                       dict(act, batch=True, squared_pred=True), dict(act, jaccard=True, smooth_nr=0.3),
                       dict(act, reduction="sum", smooth_dr=1.0), dict(act, weight=[0.5, 2.0, 1.0, 3.0][:C]),
                       dict(act, include_background=False, weight=2.5, to_onehot_y=True),
                       dict(sigmoid=True, to_onehot_y=True), dict(act, jaccard=True, squared_pred=True)]
            for kw in dice_kw:
                tgt = lab if kw.get("to_onehot_y") and C > 1 else oh
                compare(chk, "DiceLoss %s %s" % (kw, tag), M.DiceLoss(**kw), lambda a, b: m_dice(a, b, **kw), x, tgt)
            compare(chk, "DiceLoss(probabilities) %s" % tag, M.DiceLoss(),
                    lambda a, b: m_dice(a, b), probs, oh)
            for kw in (dict(act), dict(act, alpha=0.3, beta=0.7, batch=True), dict(act, include_background=False,
                                                                                      reduction="sum")):
                compare(chk, "TverskyLoss %s %s" % (kw, tag), M.TverskyLoss(**kw),
                        lambda a, b: m_tversky(a, b, **kw), x, oh)
            for kw in (dict(), dict(gamma=0.5, alpha=0.25), dict(include_background=False, to_onehot_y=True),
                       dict(weight=2.5, reduction="sum"), dict(weight=[1.5] * C, include_background=True), dict(use_softmax=True, alpha=0.3),
                       dict(use_softmax=True, gamma=1.0), dict(weight=[0.5, 2.0, 1.0, 3.0][:C]),
                       dict(weight=[2.0, 0.25, 1.0][:max(C - 1, 1)], include_background=False, alpha=0.25,
                            to_onehot_y=True, reduction="sum"),
                       dict(use_softmax=True, weight=[0.5, 2.0, 1.0, 3.0][:C], alpha=0.3),
                       dict(use_softmax=True, weight=[3.0, 1.0, 0.5, 2.0][:C], gamma=0.5)):
                if kw.get("use_softmax") and C == 1:
                    continue
                if kw.get("weight") is not None and (C == 1 or (C == 2 and kw.get("include_background") is False)):
                    continue        # a weight with one channel left: refused (tested below)
                tgt = lab if kw.get("to_onehot_y") and C > 1 else oh
                compare(chk, "FocalLoss %s %s" % (kw, tag), M.FocalLoss(**kw), lambda a, b: m_focal(a, b, **kw),
                        x, tgt)
            for kw in (dict(act, to_onehot_y=True), dict(act, include_background=False, lambda_ce=0.3,
                                                          label_smoothing=0.1, to_onehot_y=True),
                       dict(act, batch=True, lambda_dice=0.5), dict(act, to_onehot_y=True, weight=[0.5, 2.0, 1.0, 3.0][:C]),
                       dict(act, weight=[3.0, 0.5, 1.5, 1.0][:C], include_background=False, label_smoothing=0.2),
                       dict(act, weight=[1.0, 2.5, 0.2, 1.0][:C], jaccard=True, to_onehot_y=True, lambda_ce=0.7)):
                tgt = lab if kw.get("to_onehot_y") and C > 1 else oh
                if C == 1:
                    kw = {k: v for k, v in kw.items() if k != "label_smoothing"}
                compare(chk, "DiceCELoss %s %s" % (kw, tag), M.DiceCELoss(**kw), lambda a, b: m_dicece(a, b, **kw),
                        x, tgt)
            for kw in (dict(sigmoid=True, to_onehot_y=True), dict(sigmoid=True, include_background=False, gamma=1.0,
                                                                   lambda_focal=0.5, to_onehot_y=True),
                       dict(sigmoid=True, alpha=0.25, to_onehot_y=True, batch=True),
                       dict(sigmoid=True, to_onehot_y=True, weight=[0.5, 2.0, 1.0, 3.0][:C]),
                       dict(sigmoid=True, include_background=False, weight=[2.0, 0.5, 1.5][:max(C - 1, 1)],
                            alpha=0.3, gamma=1.5),
                       dict(sigmoid=True, weight=1.7, to_onehot_y=True), dict(act, to_onehot_y=True),
                       dict(act, include_background=False, alpha=0.25, gamma=1.0, to_onehot_y=True),
                       dict(act, weight=[1.0, 0.5, 2.0, 1.5][:C], batch=True, lambda_dice=0.3)):
                if kw.get("weight") is not None and (C == 1 or (C == 2 and kw.get("include_background") is False)):
                    continue        # a weight with one channel left: refused (tested below)
                tgt = lab if kw.get("to_onehot_y") and C > 1 else oh
                compare(chk, "DiceFocalLoss %s %s" % (kw, tag), M.DiceFocalLoss(**kw),
                        lambda a, b: m_dicefocal(a, b, **kw), x, tgt)
            gdl_kw = [dict(act, to_onehot_y=True), dict(act, to_onehot_y=True, w_type="simple", batch=True),
                      dict(act, include_background=False, reduction="sum"),
                      dict(act, w_type="uniform", smooth_nr=0.5, smooth_dr=2.0),
                      dict(sigmoid=True, batch=True, smooth_nr=0.0, smooth_dr=1e-3)]
            for kw in gdl_kw:
                tgt = lab if kw.get("to_onehot_y") and C > 1 else oh
                compare(chk, "GeneralizedDiceLoss(MONAI defaults) %s %s" % (kw, tag), M.GeneralizedDiceLoss(**kw),
                        lambda a, b: m_gdl(a, b, **kw), x, tgt)
            if C > 1:
                for kw in (dict(), dict(w_type="simple", include_background=False), dict(w_type="uniform", batch=True)):
                    compare(chk, "GeneralizedDiceLoss %s %s" % (kw, tag),
                            M.GeneralizedDiceLoss(softmax=True, to_onehot_y=True, smooth_nr=0, smooth_dr=0, **kw),
                            lambda a, b: TGD.ref_monai_gdl(a, b[:, 0], C, **kw), x, lab)
                compare(chk, "GeneralizedWassersteinDiceLoss %s" % tag,
                        M.GeneralizedWassersteinDiceLoss(2 * (1 - np.eye(C))),
                        lambda a, b: TGW.ref_monai_default(a, b[:, 0], C), x, lab)
    # Distance- and skeleton-based losses on blobby targets.
    for N, C, sp in ((2, 3, (16, 17)), (1, 2, (9, 10, 11))):
        y = B.blobby_labels(rng, N, C, sp)
        x = B.logits(rng, N, C, sp).astype(np.float32)
        oh = np.eye(C)[y].transpose(0, -1, *range(1, y.ndim)).astype(np.float32)
        compare(chk, "HausdorffDTLoss C=%d %s" % (C, sp), M.HausdorffDTLoss(softmax=True, to_onehot_y=True),
                lambda a, b: THD.ref_hd(a, b[:, 0], C), x, y[:, None])
        compare(chk, "HausdorffDTLoss(include_background) C=%d" % C,
                M.HausdorffDTLoss(softmax=True, include_background=True, alpha=1.0),
                lambda a, b: THD.ref_hd(a, b.argmax(1), C, include_background=True, alpha=1.0), x, oh)
        probs = torch.softmax(torch.tensor(x), 1).numpy()
        cl = M.SoftclDiceLoss()
        compare(chk, "SoftclDiceLoss C=%d %s" % (C, sp), lambda a, b: cl(b, a),
                lambda a, b: TCL.monai_literal(b, a), probs, oh)

    # Arguments segloss does not reproduce exactly raise NotImplementedError naming them.
    x, lab, oh = inputs(rng, 2, 3, (6, 7))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(oh)
    # A drop-in survives pickling and deepcopy (after use: its cached SegLoss objects are rebuilt).
    import copy
    import pickle
    dc = M.DiceCELoss(softmax=True, to_onehot_y=True, lambda_ce=0.5)
    want = float(dc(xt, torch.tensor(lab)))
    for what, m in (("pickle", pickle.loads(pickle.dumps(dc))), ("deepcopy", copy.deepcopy(dc))):
        chk.close("DiceCELoss after %s" % what, float(m(xt, torch.tensor(lab))), want, rtol=0, atol=0,
                  group="drop-in copies")
    raises(chk, "DiceLoss other_act", lambda: M.DiceLoss(other_act=torch.tanh), NotImplementedError, ["other_act"])
    # DiceLoss/TverskyLoss take reduction="none" (tests/python/test_torch_reduction_none.py); the compounds do not
    raises(chk, "DiceCELoss reduction none", lambda: M.DiceCELoss(reduction="none"), NotImplementedError, ["reduction"])
    raises(chk, "DiceLoss reduction none, batch", lambda: M.DiceLoss(reduction="none", batch=True, softmax=True, to_onehot_y=True)(
        xt, torch.tensor(lab)), NotImplementedError, ["batch=True"])
    raises(chk, "DiceLoss soft_label", lambda: M.DiceLoss(soft_label=True), NotImplementedError, ["soft_label"])
    raises(chk, "DiceLoss sigmoid+softmax", lambda: M.DiceLoss(sigmoid=True, softmax=True), ValueError, ["sigmoid"])
    raises(chk, "GWDL GDL mode", lambda: M.GeneralizedWassersteinDiceLoss(1 - np.eye(3), weighting_mode="GDL"),
           NotImplementedError, ["GDL"])
    raises(chk, "GWDL matrix", lambda: M.GeneralizedWassersteinDiceLoss([[0, 1, .5], [1, 0, 1], [.5, 1, 0]]),
           NotImplementedError, ["dist_matrix"])
    raises(chk, "FocalLoss soft target", lambda: M.FocalLoss()(xt, yt * 0.5), NotImplementedError, ["soft target"])
    x1 = torch.tensor(rng.normal(0, 2, (2, 1, 6, 7)), dtype=torch.float32)
    y1 = (torch.rand(2, 1, 6, 7) > 0.5).float()
    raises(chk, "FocalLoss weight on one channel", lambda: M.FocalLoss(weight=2.0)(x1, y1), NotImplementedError,
           ["weight", "single channel"])
    raises(chk, "DiceFocalLoss weight on one kept channel",
           lambda: M.DiceFocalLoss(sigmoid=True, include_background=False, weight=[2.0])(xt[:, :2], yt[:, :2]),
           NotImplementedError, ["weight", "single channel"])
    raises(chk, "FocalLoss weight length", lambda: M.FocalLoss(weight=[1, 2])(xt, yt), ValueError, ["weight"])
    raises(chk, "FocalLoss negative weight", lambda: M.FocalLoss(weight=[1, -2, 1])(xt, yt), ValueError, ["weight"])
    raises(chk, "DiceCELoss weight length", lambda: M.DiceCELoss(softmax=True, weight=[1, 2])(xt, yt), ValueError,
           ["weight"])
    raises(chk, "DiceFocalLoss weight length", lambda: M.DiceFocalLoss(sigmoid=True, weight=[1, 2])(xt, yt),
           ValueError, ["weight"])
    raises(chk, "FocalLoss softmax without background",
           lambda: M.FocalLoss(use_softmax=True, include_background=False)(xt, yt), NotImplementedError,
           ["include_background"])
    raises(chk, "HausdorffDTLoss batch", lambda: M.HausdorffDTLoss(batch=True), NotImplementedError, ["batch"])
    raises(chk, "DiceLoss shape", lambda: M.DiceLoss(softmax=True)(xt, yt[:, :2]), AssertionError, ["shape"])
    raises(chk, "DiceLoss weight length", lambda: M.DiceLoss(softmax=True, weight=[1, 2])(xt, yt), ValueError,
           ["weight"])
    raises(chk, "DiceLoss no activation on logits", lambda: M.DiceLoss()(xt, yt), ValueError, ["outside [0, 1]"])
    raises(chk, "to_onehot_y fractional labels", lambda: M.DiceLoss(softmax=True, to_onehot_y=True)(
        xt, torch.full((2, 1, 6, 7), 0.5)), ValueError, ["non-integer"])
    chk.report()


if __name__ == "__main__":
    main()
