"""Drop-ins for MONAI's segmentation losses (monai.losses), computed by segloss.

Same class names, constructor arguments, defaults and values as MONAI 1.x
(DiceLoss, DiceCELoss, DiceFocalLoss, FocalLoss, TverskyLoss,
GeneralizedDiceLoss, GeneralizedWassersteinDiceLoss, HausdorffDTLoss,
SoftclDiceLoss): swap `from monai.losses import DiceLoss` for
`from segloss.torch.monai import DiceLoss`. Each also takes a keyword
`threads=` (segloss's thread count).

An argument whose MONAI behaviour segloss does not reproduce exactly raises
NotImplementedError naming it: reduction="none" of the compound losses, soft_label=True,
weighting_mode="GDL", focal terms
on soft targets, ... (docs/python.md lists them). Inputs without an
activation (sigmoid=softmax=False) must be probabilities in [0, 1]; segloss
refuses other values (RangeError) where MONAI would compute on them.
"""
import warnings

import torch

from ._dropin import DropIn, as_label_map, is_binary, spec_of, unsupported

__all__ = ["DiceLoss", "DiceCELoss", "DiceFocalLoss", "FocalLoss", "TverskyLoss", "GeneralizedDiceLoss",
           "GeneralizedWassersteinDiceLoss", "HausdorffDTLoss", "SoftclDiceLoss"]


def _reduction(cls, reduction, allowed=("mean", "sum")):
    r = getattr(reduction, "value", reduction)
    if r not in ("mean", "sum", "none"):
        raise ValueError('%s: unsupported reduction %r, available options are ["mean", "sum", "none"]' % (cls, r))
    if r not in allowed:
        raise unsupported(cls, "reduction=%r" % r, "segloss returns the reduced scalar")
    return r


def _activation(cls, sigmoid, softmax, other_act, C, allow_other=False):
    """segloss's activation key. other_act (a callable on the whole input, as
    MONAI) is applied in PyTorch by DropIn.forward before the segloss call, which
    then takes probabilities (activation none): exact, the gradient flows through
    it by autograd. Classes whose MONAI code does not apply it to the input of
    the whole loss (DiceCELoss, DiceFocalLoss: the Dice term only) refuse it."""
    if other_act is not None and not callable(other_act):
        raise TypeError(f"other_act must be None or callable but is {type(other_act).__name__}.")
    if int(bool(sigmoid)) + int(bool(softmax)) + int(other_act is not None) > 1:
        raise ValueError("Incompatible values: more than 1 of [sigmoid=True, softmax=True, other_act is not None].")
    if other_act is not None and not allow_other:
        raise unsupported(cls, "other_act", "MONAI applies it to the Dice term only; segloss computes the terms "
                                            "in one call on one input")
    if sigmoid:
        return "sigmoid"
    if softmax and C > 1:      # MONAI ignores softmax for one channel (with a warning)
        return "softmax"
    return "none"


def _region_target(cls, input, target, to_onehot_y):
    """MONAI's target handling for the region losses: to_onehot_y turns a (B, 1, ...) label
    map into one-hot (ignored for one channel); otherwise the target has the input's shape."""
    C = input.shape[1]
    if to_onehot_y and C > 1:
        if target.dim() != input.dim() or target.shape[1] != 1:
            raise ValueError("%s: with to_onehot_y the target must be (B, 1, spatial...), got %s"
                             % (cls, tuple(target.shape)))
        return as_label_map(target, cls)[:, 0]
    if tuple(target.shape) != tuple(input.shape):
        raise AssertionError("ground truth has different shape (%s) from input (%s)"
                             % (tuple(target.shape), tuple(input.shape)))
    return target.to(torch.float32) if not target.dtype.is_floating_point else target


def _class_weight(cls, weight, C, include_background):
    """MONAI's class weights (one per channel left after dropping the background, or a
    scalar) as segloss's one-per-channel list; None when MONAI would not apply them."""
    kept = C - 1 if (not include_background and C > 1) else C
    if weight is None or kept == 1:     # MONAI neither checks nor applies them for one channel
        return None
    w = torch.as_tensor(weight, dtype=torch.float64).flatten()
    if w.numel() == 1 and torch.as_tensor(weight).dim() == 0:
        w = w.repeat(kept)
    if w.numel() != kept:
        raise ValueError("%s: the length of the weight sequence should be the same as the number of classes. "
                         "If `include_background=False`, the weight should not include the background category "
                         "class 0." % cls)
    if float(w.min()) < 0:
        raise ValueError("%s: the value/values of the `weight` should be no less than 0." % cls)
    w = w.tolist()
    return ([1.0] + w) if kept != C else w


def _dice_spec(cls, C, act, include_background, squared_pred, jaccard, smooth_nr, smooth_dr, batch, weight):
    keys = dict(activation=act, include_background=bool(include_background) if C > 1 else None,
                batch=bool(batch) or None, squared=bool(squared_pred) or None, weight=weight)
    if jaccard:
        # MONAI: 1 − (2I + s_nr)/(2(S − I) + s_dr) = segloss iou with the smoothing halved.
        return spec_of("iou", smooth_nr=smooth_nr / 2, smooth_dr=smooth_dr / 2, **keys)
    return spec_of("dice", smooth_nr=smooth_nr, smooth_dr=smooth_dr, **keys)


def _groups(input, include_background, batch):
    C = input.shape[1]
    kept = C - 1 if (not include_background and C > 1) else C
    return kept * (1 if batch else input.shape[0])


def _none_shape(f, input):
    """MONAI's reduction="none": the per-group losses viewed with the input's number of
    axes, f.shape[0:2] followed by ones (a broadcastable shape)."""
    return f.view(list(f.shape[0:2]) + [1] * (input.dim() - 2))


def _class_values(module, input, tgt, C, include_background, batch, weight, spec_for):
    """MONAI's reduction="none" for the losses with one value per (sample, class), or per
    class with batch: the (B, C') or (C',) tensor of weight_c * f. segloss returns the mean
    over the groups of w_c * f with w its class weights, so the weight e_c (1 for class c, 0
    elsewhere) gives f_c / C' for one sample (or the batch): one call per group, each with
    its own exact gradient, the values scaled by C' (and MONAI's weight) under autograd."""
    first = 1 if (not include_background and C > 1) else 0
    kept = C - first
    samples = [slice(None)] if batch else [slice(b, b + 1) for b in range(input.shape[0])]
    rows = []
    for sl in samples:
        row = []
        for c in range(first, C):
            e = None
            if C > 1:
                e = [0.0] * C
                e[c] = 1.0
            v = module._loss(spec_for(e))(input[sl], tgt[sl]) * kept
            row.append(v * weight[c] if weight is not None else v)
        rows.append(torch.stack(row))
    return rows[0] if batch else torch.stack(rows)


class DiceLoss(DropIn):
    """monai.losses.DiceLoss."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 squared_pred=False, jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                 weight=None, soft_label=False, *, threads=None):
        super().__init__(threads)
        _activation("DiceLoss", sigmoid, softmax, other_act, 2, allow_other=True)
        self.other_act = other_act
        self.reduction = _reduction("DiceLoss", reduction, ("mean", "sum", "none"))
        if soft_label:
            raise unsupported("DiceLoss", "soft_label=True", "its soft-label Dice formula is not implemented")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax = sigmoid, softmax
        self.squared_pred, self.jaccard = squared_pred, jaccard
        self.smooth_nr, self.smooth_dr, self.batch, self.weight = float(smooth_nr), float(smooth_dr), batch, weight

    def _none(self, input, target):
        C = input.shape[1]
        act = _activation("DiceLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("DiceLoss", input, target, self.to_onehot_y)
        w = _class_weight("DiceLoss", self.weight, C, self.include_background)
        f = _class_values(self, input, tgt, C, self.include_background, self.batch, w,
                          lambda e: _dice_spec("DiceLoss", C, act, self.include_background, self.squared_pred,
                                               self.jaccard, self.smooth_nr, self.smooth_dr, self.batch, e))
        return _none_shape(f, input)

    def _plan(self, input, target):
        C = input.shape[1]
        act = _activation("DiceLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("DiceLoss", input, target, self.to_onehot_y)
        w = _class_weight("DiceLoss", self.weight, C, self.include_background)
        spec = _dice_spec("DiceLoss", C, act, self.include_background, self.squared_pred, self.jaccard,
                          self.smooth_nr, self.smooth_dr, self.batch, w)
        n = _groups(input, self.include_background, self.batch)
        return spec, tgt, (lambda v: v * n) if self.reduction == "sum" else None


class GeneralizedDiceLoss(DropIn):
    """monai.losses.GeneralizedDiceLoss (MONAI 1.x: w = 1/(Σg)², 1/Σg or 1 per sample and
    class, an absent class taking the sample's largest weight, the smoothing added to the
    raw weighted sums). segloss's gdice with normalize=false computes exactly this, the
    default smooth_nr = smooth_dr = 1e-5 included."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 w_type="square", reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False, soft_label=False,
                 *, threads=None):
        super().__init__(threads)
        _activation("GeneralizedDiceLoss", sigmoid, softmax, other_act, 2, allow_other=True)
        self.other_act = other_act
        self.reduction = _reduction("GeneralizedDiceLoss", reduction, ("mean", "sum", "none"))
        w_type = getattr(w_type, "value", w_type)
        if w_type not in ("square", "simple", "uniform"):
            raise ValueError("GeneralizedDiceLoss: w_type %r is not one of square, simple, uniform" % (w_type,))
        if soft_label:
            raise unsupported("GeneralizedDiceLoss", "soft_label=True", "its soft-label formula is not implemented")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax, self.w_type, self.batch = sigmoid, softmax, w_type, batch
        self.smooth_nr, self.smooth_dr = float(smooth_nr), float(smooth_dr)

    def _plan(self, input, target):
        C = input.shape[1]
        act = _activation("GeneralizedDiceLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("GeneralizedDiceLoss", input, target, self.to_onehot_y)
        spec = spec_of("gdice", activation=act, include_background=bool(self.include_background) if C > 1 else None,
                       batch=bool(self.batch) or None, w_type=self.w_type, smooth_nr=self.smooth_nr,
                       smooth_dr=self.smooth_dr, normalize=False)
        n = 1 if self.batch else input.shape[0]
        return spec, tgt, (lambda v: v * n) if self.reduction == "sum" else None

    def _none(self, input, target):
        """MONAI: one value per sample (B, 1), or (1,) with batch: the loss of each sample
        alone (the weights are per sample), or the batch's."""
        spec, tgt, _ = self._plan(input, target)
        if self.batch:
            f = self._loss(spec)(input, tgt).reshape(1)
        else:
            f = torch.stack([self._loss(spec)(input[b:b + 1], tgt[b:b + 1]) for b in range(input.shape[0])])[:, None]
        return _none_shape(f, input)


class TverskyLoss(DropIn):
    """monai.losses.TverskyLoss (alpha weighs the false positives, beta the false negatives)."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 alpha=0.5, beta=0.5, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                 soft_label=False, *, threads=None):
        super().__init__(threads)
        _activation("TverskyLoss", sigmoid, softmax, other_act, 2, allow_other=True)
        self.other_act = other_act
        self.reduction = _reduction("TverskyLoss", reduction, ("mean", "sum", "none"))
        if soft_label:
            raise unsupported("TverskyLoss", "soft_label=True", "its soft-label formula is not implemented")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax, self.alpha, self.beta = sigmoid, softmax, float(alpha), float(beta)
        self.smooth_nr, self.smooth_dr, self.batch = float(smooth_nr), float(smooth_dr), batch

    def _spec(self, C, act, weight=None):
        return spec_of("tversky", activation=act, include_background=bool(self.include_background) if C > 1 else None,
                       batch=bool(self.batch) or None, alpha=self.alpha, beta=self.beta,
                       smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr, weight=weight)

    def _none(self, input, target):
        C = input.shape[1]
        act = _activation("TverskyLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("TverskyLoss", input, target, self.to_onehot_y)
        # MONAI's TverskyLoss returns the (B, C') (batch: (C',)) scores as they are, no view
        return _class_values(self, input, tgt, C, self.include_background, self.batch, None,
                             lambda e: self._spec(C, act, e))

    def _plan(self, input, target):
        C = input.shape[1]
        act = _activation("TverskyLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("TverskyLoss", input, target, self.to_onehot_y)
        spec = self._spec(C, act)
        n = _groups(input, self.include_background, self.batch)
        return spec, tgt, (lambda v: v * n) if self.reduction == "sum" else None


def _focal_weight(cls, weight, kept):
    """MONAI's FocalLoss class weights: a scalar or one weight per channel left after dropping
    the background, multiplying that channel's whole term. A list or None. With a single
    channel left MONAI releases differ (1.3/1.4 ignore the weight, later development
    versions multiply by a scalar and reject a list), so that case is refused."""
    if weight is None:
        return None
    if kept == 1:
        raise unsupported(cls, "weight with a single channel left", "MONAI 1.3/1.4 ignore it, later versions "
                          "multiply by a scalar weight and reject a list")
    w = torch.as_tensor(weight, dtype=torch.float64).flatten()
    if torch.as_tensor(weight).dim() == 0:
        w = w.repeat(kept)
    if w.numel() != kept:
        raise ValueError("%s: the length of the `weight` sequence should be the same as the number of classes. "
                         "If `include_background=False`, the weight should not include the background category "
                         "class 0." % cls)
    if float(w.min()) < 0:
        raise ValueError("%s: the value/values of the `weight` should be no less than 0." % cls)
    return w.tolist()


def _onehot(cls, input, target, to_onehot_y):
    """The (B, C, ...) float one-hot target MONAI's focal term sees (hard targets only)."""
    C = input.shape[1]
    if to_onehot_y and C > 1:
        if target.dim() != input.dim() or target.shape[1] != 1:
            raise ValueError("%s: with to_onehot_y the target must be (B, 1, spatial...), got %s"
                             % (cls, tuple(target.shape)))
        lab = as_label_map(target, cls)[:, 0]
        if int(lab.min()) < 0 or int(lab.max()) >= C:
            raise ValueError("%s: a label is outside [0, %d)" % (cls, C))
        return torch.nn.functional.one_hot(lab, C).movedim(-1, 1).to(torch.float32)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError("ground truth has different shape (%s) from input (%s)"
                         % (tuple(target.shape), tuple(input.shape)))
    if not is_binary(target):
        raise unsupported(cls, "a soft target (values other than 0 and 1)",
                          "MONAI's focal term σ(−x(2t−1))^γ equals segloss's only for hard targets")
    return target.to(torch.float32)


def _focal(module, cls, input, target, include_background, to_onehot_y, gamma, alpha, weight, use_softmax,
           reduction):
    """MONAI's FocalLoss value through segloss (MONAI 1.3 and 1.4, monai/losses/focal_loss.py).

    Sigmoid (MONAI's default): BCE-with-logits per channel times (1 − p_t)^γ (times
    α t + (1 − α)(1 − t) with alpha), mean over (B, kept channels, voxels): segloss's sigmoid
    focal on the kept channels (the background channel is sliced off the logits, exact under
    autograd). Class weights multiply a channel's whole term, which segloss's per-channel
    alpha does not express, so each channel is its own segloss call and the weighted mean
    of their values is taken here.
    Softmax (use_softmax=True): −(1 − p_c)^γ log p_c · t_c · a_c with a_c = MONAI's
    [1 − α, α, ...] times its class weight: segloss's softmax focal with the per-class list
    a; MONAI's mean runs over (B, C, voxels), segloss's over (B, voxels): a factor 1/C."""
    C = input.shape[1]
    t = _onehot(cls, input, target, to_onehot_y)
    alpha = None if alpha is None else float(alpha)
    if use_softmax:
        if C == 1:
            raise ValueError("%s: use_softmax=True needs more than one channel" % cls)
        if not include_background:
            # MONAI drops channel 0 of the logits and the one-hot target first, so its softmax
            # runs over the remaining channels, and it ignores alpha (with a warning); a
            # background voxel's target row is then all zero and adds nothing. segloss's
            # softmax focal takes the same sliced input and rows (exact under autograd).
            input, t = input[:, 1:], t[:, 1:]
            kept = C - 1
            if alpha is not None:
                warnings.warn("`include_background=False`, `alpha` ignored when using softmax.")
            w = _focal_weight(cls, weight, kept)
            if kept == 1:       # a softmax over one channel is 1: MONAI's loss is 0
                v = input.sum() * 0.0
            else:
                v = module._loss(spec_of("focal", activation="softmax", gamma=float(gamma), alpha=w))(input, t) / kept
            if reduction == "sum":
                v = v * (input.shape[0] * kept)
            return v
        w = _focal_weight(cls, weight, C)
        a = alpha
        if w is not None:
            af = [1.0 - alpha] + [alpha] * (C - 1) if alpha is not None else [1.0] * C
            a = [x * y for x, y in zip(af, w)]
        v = module._loss(spec_of("focal", activation="softmax", gamma=float(gamma), alpha=a))(input, t) / C
        kept = C
    else:
        if not include_background and C > 1:
            input, t = input[:, 1:], t[:, 1:]
        kept = input.shape[1]
        w = _focal_weight(cls, weight, kept)
        loss = module._loss(spec_of("focal", activation="sigmoid", gamma=float(gamma), alpha=alpha))
        if w is None:
            v = loss(input, t)
        else:
            v = sum(wc * loss(input[:, c:c + 1], t[:, c:c + 1]) for c, wc in enumerate(w)) / kept
    if reduction == "sum":      # MONAI: the sum over (B, channels) of spatial means
        v = v * (input.shape[0] * kept)
    return v


class FocalLoss(DropIn):
    """monai.losses.FocalLoss of MONAI 1.3/1.4 (sigmoid by default, use_softmax=True for the
    softmax form; alpha and per-channel weight, the weight ignored for a single channel)."""

    def __init__(self, include_background=True, to_onehot_y=False, gamma=2.0, alpha=None, weight=None,
                 reduction="mean", use_softmax=False, *, threads=None):
        super().__init__(threads)
        self.reduction = _reduction("FocalLoss", reduction)
        self.include_background, self.to_onehot_y, self.gamma = include_background, to_onehot_y, float(gamma)
        self.alpha, self.weight, self.use_softmax = alpha, weight, use_softmax

    def forward(self, input, target):
        self._check_input(input)
        return _focal(self, "FocalLoss", input, target, self.include_background, self.to_onehot_y, self.gamma,
                      self.alpha, self.weight, self.use_softmax, self.reduction)


class DiceCELoss(DropIn):
    """monai.losses.DiceCELoss of MONAI 1.3/1.4: lambda_dice · DiceLoss + lambda_ce ·
    cross-entropy on the raw logits (CrossEntropyLoss for several channels, BCEWithLogitsLoss
    for one). weight (one per channel) goes to CrossEntropyLoss(weight=...) /
    BCEWithLogitsLoss(pos_weight=...) and, without its background entry when
    include_background=False, to the Dice term."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 squared_pred=False, jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                 weight=None, lambda_dice=1.0, lambda_ce=1.0, label_smoothing=0.0, *, threads=None):
        super().__init__(threads)
        _activation("DiceCELoss", sigmoid, softmax, other_act, 2, allow_other=True)
        self.dice_act = other_act   # MONAI: the Dice term's other_act; the CE term takes the raw logits
        self.reduction = _reduction("DiceCELoss", reduction, ("mean", "sum"))
        if lambda_dice < 0 or lambda_ce < 0:
            raise ValueError("lambda_dice and lambda_ce should be no less than 0.0.")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax = sigmoid, softmax
        self.squared_pred, self.jaccard = squared_pred, jaccard
        self.smooth_nr, self.smooth_dr, self.batch = float(smooth_nr), float(smooth_dr), batch
        self.lambda_dice, self.lambda_ce, self.label_smoothing = float(lambda_dice), float(lambda_ce), float(label_smoothing)
        self.weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float64).flatten().tolist()

    def forward(self, input, target):
        if self.dice_act is None and self.reduction == "mean":
            return super().forward(input, target)
        # other_act or reduction="sum": the two terms as two segloss calls, each on its own
        # input (MONAI's other_act acts on the Dice term only) and with its own scale
        self._check_input(input)
        dice, ce, tgt = self._terms(input, target)
        dice_in = self.dice_act(input) if self.dice_act is not None else input
        d, c = self._loss(dice)(dice_in, tgt), self._loss(ce)(input, tgt)
        if self.reduction == "sum":
            # MONAI: DiceLoss(reduction="sum"), the sum over its (sample, class) groups, and
            # PyTorch's CrossEntropyLoss / BCEWithLogitsLoss(reduction="sum"): the weighted
            # mean times its denominator, sum of w[y] over the voxels for class indices (PyTorch
            # divides by it), the number of voxels for one-hot targets and for one channel
            d = d * _groups(input, self.include_background, self.batch)
            if tgt.dim() == input.dim() - 1 and self.weight is not None:
                denom = torch.as_tensor(self.weight, dtype=torch.float64)[tgt.long()].sum()
            else:
                denom = tgt.numel() // (tgt.shape[1] if tgt.dim() == input.dim() else 1)
            c = c * float(denom)
        return self.lambda_dice * d + self.lambda_ce * c

    def _plan(self, input, target):
        dice, ce, tgt = self._terms(input, target)
        return "%r*%s+%r*%s" % (self.lambda_dice, dice, self.lambda_ce, ce), tgt, None

    def _terms(self, input, target):
        """The Dice and cross-entropy specs and the target."""
        C = input.shape[1]
        if input.dim() != target.dim():
            raise ValueError("the number of dimensions for input and target should be the same, got shape %s "
                             "and %s." % (tuple(input.shape), tuple(target.shape)))
        act = _activation("DiceCELoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("DiceCELoss", input, target, self.to_onehot_y)
        w = self.weight
        if w is not None and len(w) != C:
            raise ValueError("DiceCELoss: weight has %d entries for %d channels (MONAI passes it to the "
                             "cross-entropy, one per channel)" % (len(w), C))
        if w is not None and min(w) < 0:
            raise ValueError("DiceCELoss: the value/values of the `weight` should be no less than 0.")
        # MONAI 1.3/1.4: the Dice term gets weight[1:] without the background (one per kept
        # channel; ignored when one channel is left), the cross-entropy the whole weight.
        dw = None
        if w is not None and C > 1:
            dw = _class_weight("DiceCELoss", w[1:] if not self.include_background else w, C,
                               self.include_background)
        dice = _dice_spec("DiceCELoss", C, act, self.include_background, self.squared_pred, self.jaccard,
                          self.smooth_nr, self.smooth_dr, self.batch, dw)
        if C == 1:
            # BCEWithLogitsLoss(pos_weight=weight) on the logits (MONAI's binary branch has no
            # label smoothing)
            ce = spec_of("bce", pos_weight=None if w is None else float(w[0]))
        else:
            # CrossEntropyLoss(weight=weight): PyTorch's weighted mean, as segloss's ce
            ce = spec_of("ce", activation="softmax", label_smoothing=self.label_smoothing or None, weight=w)
        return dice, ce, tgt


class DiceFocalLoss(DropIn):
    """monai.losses.DiceFocalLoss (MONAI 1.3/1.4, monai/losses/dice.py): lambda_dice · DiceLoss +
    lambda_focal · FocalLoss. MONAI builds its FocalLoss without use_softmax, so the focal
    term is the sigmoid one on the raw logits whatever sigmoid/softmax say (they act on the
    Dice term only), softmax=True included; weight (one per kept channel) goes to both."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 squared_pred=False, jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                 gamma=2.0, weight=None, lambda_dice=1.0, lambda_focal=1.0, alpha=None, *, threads=None):
        super().__init__(threads)
        _activation("DiceFocalLoss", sigmoid, softmax, other_act, 2, allow_other=True)
        self.dice_act = other_act   # MONAI: the Dice term's other_act; the focal term takes the raw logits
        self.reduction = _reduction("DiceFocalLoss", reduction, ("mean", "sum"))
        if lambda_dice < 0 or lambda_focal < 0:
            raise ValueError("lambda_dice and lambda_focal should be no less than 0.0.")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax = sigmoid, softmax
        self.squared_pred, self.jaccard = squared_pred, jaccard
        self.smooth_nr, self.smooth_dr, self.batch = float(smooth_nr), float(smooth_dr), batch
        self.gamma, self.alpha = float(gamma), alpha
        self.lambda_dice, self.lambda_focal = float(lambda_dice), float(lambda_focal)
        self.weight = weight

    def forward(self, input, target):
        self._check_input(input)
        C = input.shape[1]
        if input.dim() != target.dim():
            raise ValueError("the number of dimensions for input and target should be the same, got shape %s "
                             "and %s." % (tuple(input.shape), tuple(target.shape)))
        act = _activation("DiceFocalLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("DiceFocalLoss", input, target, self.to_onehot_y)
        # MONAI 1.3/1.4 passes the same weight (one per kept channel) to DiceLoss and FocalLoss.
        dw = _class_weight("DiceFocalLoss", self.weight, C, self.include_background)
        dice = _dice_spec("DiceFocalLoss", C, act, self.include_background, self.squared_pred, self.jaccard,
                          self.smooth_nr, self.smooth_dr, self.batch, dw)
        # The focal term is evaluated on the raw input (MONAI's FocalLoss applies its own sigmoid).
        f = _focal(self, "DiceFocalLoss", input, target, self.include_background, self.to_onehot_y, self.gamma,
                   self.alpha, self.weight, False, self.reduction)
        dice_in = self.dice_act(input) if self.dice_act is not None else input
        d = self._loss(dice)(dice_in, tgt)
        if self.reduction == "sum":     # MONAI: both terms with reduction="sum"
            d = d * _groups(input, self.include_background, self.batch)
        return self.lambda_dice * d + self.lambda_focal * f


class GeneralizedWassersteinDiceLoss(DropIn):
    """monai.losses.GeneralizedWassersteinDiceLoss (softmax over the logits, a label-map target).

    MONAI divides dist_matrix by its maximum and, with weighting_mode="default", gives every
    foreground class α = 1; segloss's α_l is M[l][0], so the two agree when every foreground
    class is at the maximal distance from the background (true for the usual matrices, e.g.
    1 − identity). Other matrices and weighting_mode="GDL" raise NotImplementedError."""

    def __init__(self, dist_matrix, weighting_mode="default", reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5,
                 *, threads=None):
        super().__init__(threads)
        self.reduction = _reduction("GeneralizedWassersteinDiceLoss", reduction)
        if weighting_mode not in ("default", "GDL"):
            raise ValueError("weighting_mode must be either 'default' or 'GDL, got %s." % weighting_mode)
        if weighting_mode != "default":
            raise unsupported("GeneralizedWassersteinDiceLoss", "weighting_mode='GDL'",
                              "volume-based class weights are not offered")
        M = torch.as_tensor(dist_matrix, dtype=torch.float64)
        if M.dim() != 2 or M.shape[0] != M.shape[1]:
            raise ValueError("dist_matrix must be C x C, got %s" % (tuple(M.shape),))
        if float(M.max()) > 0:
            M = M / M.max()
        if M.shape[0] > 1 and not bool((M[1:, 0] == 1).all()):
            raise unsupported("GeneralizedWassersteinDiceLoss", "a dist_matrix whose foreground classes are not "
                              "all at the maximal distance from the background",
                              "segloss weighs class l by M[l][0], MONAI by 1")
        self.M = M
        self.smooth_nr, self.smooth_dr = float(smooth_nr), float(smooth_dr)

    def _plan(self, input, target):
        C = input.shape[1]
        if C != self.M.shape[0]:
            raise ValueError("dist_matrix is %d x %d for %d channels" % (self.M.shape[0], self.M.shape[0], C))
        if C == 1:
            raise ValueError("GeneralizedWassersteinDiceLoss needs a softmax over at least 2 channels")
        t = as_label_map(target, "GeneralizedWassersteinDiceLoss")
        if t.dim() == input.dim():
            if t.shape[1] != 1:
                raise ValueError("the target must be a label map (B, spatial...) or (B, 1, spatial...)")
            t = t[:, 0]
        spec = spec_of("gwdice", activation="softmax", smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr,
                       M=self.M.flatten().tolist())
        n = input.shape[0]
        return spec, t, (lambda v: v * n) if self.reduction == "sum" else None


class HausdorffDTLoss(DropIn):
    """monai.losses.HausdorffDTLoss (Karimi & Salcudean): distance fields from exact EDTs."""

    def __init__(self, alpha=2.0, include_background=False, to_onehot_y=False, sigmoid=False, softmax=False,
                 other_act=None, reduction="mean", batch=False, *, threads=None):
        super().__init__(threads)
        _activation("HausdorffDTLoss", sigmoid, softmax, other_act, 2, allow_other=True)
        self.other_act = other_act
        self.reduction = _reduction("HausdorffDTLoss", reduction, ("mean", "sum", "none"))
        # batch=True: MONAI's per-channel mean over the batch and the voxels; every sample
        # has as many voxels, so it is the mean over the samples of the per-sample means
        self.batch = bool(batch)
        self.alpha, self.include_background, self.to_onehot_y = float(alpha), include_background, to_onehot_y
        self.sigmoid, self.softmax = sigmoid, softmax

    def _plan(self, input, target):
        C = input.shape[1]
        act = _activation("HausdorffDTLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("HausdorffDTLoss", input, target, self.to_onehot_y)
        spec = spec_of("hausdorff_dt", activation=act, alpha=self.alpha,
                       include_background=bool(self.include_background) if C > 1 else None)
        # MONAI: the mean over (sample, channel) of per-channel means; "sum" is their sum
        n = _groups(input, self.include_background, self.batch)
        return spec, tgt, (lambda v: v * n) if self.reduction == "sum" else None

    def _none(self, input, target):
        """MONAI's reduction="none": (B, C', 1, ...), one value per sample and channel. The
        activation is applied in PyTorch (MONAI's sigmoid/softmax, under autograd) and each
        (sample, channel) is one segloss call on that channel's probabilities (activation none;
        MONAI's distance fields threshold them at 0.5 per channel)."""
        C = input.shape[1]
        act = _activation("HausdorffDTLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("HausdorffDTLoss", input, target, self.to_onehot_y)
        p = torch.sigmoid(input) if act == "sigmoid" else torch.softmax(input, 1) if act == "softmax" else input
        if not tgt.dtype.is_floating_point or tgt.dim() == input.dim() - 1:      # a label map: one-hot
            tgt = torch.nn.functional.one_hot(tgt.long(), C).movedim(-1, 1).to(p.dtype)
        first = 1 if (not self.include_background and C > 1) else 0
        spec = spec_of("hausdorff_dt", activation="none", alpha=self.alpha)
        f = torch.stack([torch.stack([self._loss(spec)(p[b:b + 1, c:c + 1], tgt[b:b + 1, c:c + 1])
                                      for c in range(first, C)]) for b in range(input.shape[0])])
        if self.batch:
            f = f.mean(0, keepdim=True)
        return _none_shape(f, input)


class SoftclDiceLoss(DropIn):
    """monai.losses.SoftclDiceLoss (Shit et al. 2021). As MONAI: forward(y_true, y_pred), both
    (B, C, spatial...) probabilities / one-hot, channels 1..C−1 and the batch pooled into one
    ratio pair."""

    def __init__(self, iter_=3, smooth=1.0, *, threads=None):
        super().__init__(threads)
        self.iter_, self.smooth = int(iter_), float(smooth)

    def forward(self, y_true, y_pred):
        self._check_input(y_pred)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ValueError("y_true %s and y_pred %s must have the same shape"
                             % (tuple(y_true.shape), tuple(y_pred.shape)))
        if y_pred.shape[1] < 2:
            raise ValueError("SoftclDiceLoss: MONAI skips channel 0, so at least 2 channels are needed")
        spec = spec_of("cldice", activation="none", include_background=False, batch=True, pool_classes=True,
                       iters=self.iter_, smooth_nr=self.smooth, smooth_dr=self.smooth)
        yt = y_true if y_true.dtype.is_floating_point else y_true.float()
        return self._loss(spec)(y_pred, yt)
