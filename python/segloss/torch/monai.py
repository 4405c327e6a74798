"""Drop-ins for MONAI's segmentation losses (monai.losses), computed by segloss.

Same class names, constructor arguments, defaults and values as MONAI 1.x
(DiceLoss, DiceCELoss, DiceFocalLoss, FocalLoss, TverskyLoss,
GeneralizedDiceLoss, GeneralizedWassersteinDiceLoss, HausdorffDTLoss,
SoftclDiceLoss): swap `from monai.losses import DiceLoss` for
`from segloss.torch.monai import DiceLoss`. Each also takes a keyword
`threads=` (segloss's thread count).

An argument whose MONAI behaviour segloss does not reproduce exactly raises
NotImplementedError naming it: other_act, reduction="none" (DiceLoss and
TverskyLoss take it, without batch=True), soft_label=True,
weighting_mode="GDL", focal terms
on soft targets, ... (docs/python.md lists them). Inputs without an
activation (sigmoid=softmax=False) must be probabilities in [0, 1]; segloss
refuses other values (RangeError) where MONAI would compute on them.
"""
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


def _activation(cls, sigmoid, softmax, other_act, C):
    if other_act is not None:
        raise unsupported(cls, "other_act", "only sigmoid and softmax are built in")
    if int(bool(sigmoid)) + int(bool(softmax)) > 1:
        raise ValueError("Incompatible values: more than 1 of [sigmoid=True, softmax=True, other_act is not None].")
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


def _none_matrix(cls, input, include_background, batch):
    """MONAI's reduction="none" for the per-(sample, class) losses: segloss's (N, C) values with a dropped
    background column removed, shaped (N, C', 1, ...) as MONAI keeps the reduced spatial axes."""
    if batch:
        raise unsupported(cls, "reduction='none' with batch=True", "segloss gives per-sample values only")
    C, nd = input.shape[1], input.dim() - 2
    drop = not include_background and C > 1
    return lambda m: (m[:, 1:] if drop else m).reshape(tuple(m.shape[:1]) + (m.shape[1] - drop,) + (1,) * nd)


def _groups(input, include_background, batch):
    C = input.shape[1]
    kept = C - 1 if (not include_background and C > 1) else C
    return kept * (1 if batch else input.shape[0])


class DiceLoss(DropIn):
    """monai.losses.DiceLoss."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 squared_pred=False, jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                 weight=None, soft_label=False, *, threads=None):
        super().__init__(threads)
        _activation("DiceLoss", sigmoid, softmax, other_act, 2)
        self.reduction = _reduction("DiceLoss", reduction, ("mean", "sum", "none"))
        if soft_label:
            raise unsupported("DiceLoss", "soft_label=True", "its soft-label Dice formula is not implemented")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax = sigmoid, softmax
        self.squared_pred, self.jaccard = squared_pred, jaccard
        self.smooth_nr, self.smooth_dr, self.batch, self.weight = float(smooth_nr), float(smooth_dr), batch, weight

    def _plan(self, input, target):
        C = input.shape[1]
        act = _activation("DiceLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("DiceLoss", input, target, self.to_onehot_y)
        w = _class_weight("DiceLoss", self.weight, C, self.include_background)
        spec = _dice_spec("DiceLoss", C, act, self.include_background, self.squared_pred, self.jaccard,
                          self.smooth_nr, self.smooth_dr, self.batch, w)
        if self.reduction == "none":
            return spec, tgt, _none_matrix("DiceLoss", input, self.include_background, self.batch)
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
        _activation("GeneralizedDiceLoss", sigmoid, softmax, other_act, 2)
        self.reduction = _reduction("GeneralizedDiceLoss", reduction)
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


class TverskyLoss(DropIn):
    """monai.losses.TverskyLoss (alpha weighs the false positives, beta the false negatives)."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 alpha=0.5, beta=0.5, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                 soft_label=False, *, threads=None):
        super().__init__(threads)
        _activation("TverskyLoss", sigmoid, softmax, other_act, 2)
        self.reduction = _reduction("TverskyLoss", reduction, ("mean", "sum", "none"))
        if soft_label:
            raise unsupported("TverskyLoss", "soft_label=True", "its soft-label formula is not implemented")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax, self.alpha, self.beta = sigmoid, softmax, float(alpha), float(beta)
        self.smooth_nr, self.smooth_dr, self.batch = float(smooth_nr), float(smooth_dr), batch

    def _plan(self, input, target):
        C = input.shape[1]
        act = _activation("TverskyLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("TverskyLoss", input, target, self.to_onehot_y)
        spec = spec_of("tversky", activation=act,
                       include_background=bool(self.include_background) if C > 1 else None,
                       batch=bool(self.batch) or None, alpha=self.alpha, beta=self.beta,
                       smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr)
        if self.reduction == "none":
            return spec, tgt, _none_matrix("TverskyLoss", input, self.include_background, self.batch)
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
            raise unsupported(cls, "use_softmax=True with include_background=False",
                              "MONAI's softmax over the remaining channels is not segloss's")
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
        _activation("DiceCELoss", sigmoid, softmax, other_act, 2)
        self.reduction = _reduction("DiceCELoss", reduction, ("mean",))
        if lambda_dice < 0 or lambda_ce < 0:
            raise ValueError("lambda_dice and lambda_ce should be no less than 0.0.")
        self.include_background, self.to_onehot_y = include_background, to_onehot_y
        self.sigmoid, self.softmax = sigmoid, softmax
        self.squared_pred, self.jaccard = squared_pred, jaccard
        self.smooth_nr, self.smooth_dr, self.batch = float(smooth_nr), float(smooth_dr), batch
        self.lambda_dice, self.lambda_ce, self.label_smoothing = float(lambda_dice), float(lambda_ce), float(label_smoothing)
        self.weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float64).flatten().tolist()

    def _plan(self, input, target):
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
        spec = "%r*%s+%r*%s" % (self.lambda_dice, dice, self.lambda_ce, ce)
        return spec, tgt, None


class DiceFocalLoss(DropIn):
    """monai.losses.DiceFocalLoss (MONAI 1.3/1.4, monai/losses/dice.py): lambda_dice · DiceLoss +
    lambda_focal · FocalLoss. MONAI builds its FocalLoss without use_softmax, so the focal
    term is the sigmoid one on the raw logits whatever sigmoid/softmax say (they act on the
    Dice term only), softmax=True included; weight (one per kept channel) goes to both."""

    def __init__(self, include_background=True, to_onehot_y=False, sigmoid=False, softmax=False, other_act=None,
                 squared_pred=False, jaccard=False, reduction="mean", smooth_nr=1e-5, smooth_dr=1e-5, batch=False,
                 gamma=2.0, weight=None, lambda_dice=1.0, lambda_focal=1.0, alpha=None, *, threads=None):
        super().__init__(threads)
        _activation("DiceFocalLoss", sigmoid, softmax, other_act, 2)
        self.reduction = _reduction("DiceFocalLoss", reduction, ("mean",))
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
                   self.alpha, self.weight, False, "mean")
        return self.lambda_dice * self._loss(dice)(input, tgt) + self.lambda_focal * f


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
        _activation("HausdorffDTLoss", sigmoid, softmax, other_act, 2)
        self.reduction = _reduction("HausdorffDTLoss", reduction, ("mean",))
        if batch:
            raise unsupported("HausdorffDTLoss", "batch=True", "not compared with MONAI")
        self.alpha, self.include_background, self.to_onehot_y = float(alpha), include_background, to_onehot_y
        self.sigmoid, self.softmax = sigmoid, softmax

    def _plan(self, input, target):
        C = input.shape[1]
        act = _activation("HausdorffDTLoss", self.sigmoid, self.softmax, None, C)
        tgt = _region_target("HausdorffDTLoss", input, target, self.to_onehot_y)
        spec = spec_of("hausdorff_dt", activation=act, alpha=self.alpha,
                       include_background=bool(self.include_background) if C > 1 else None)
        return spec, tgt, None


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
