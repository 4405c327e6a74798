"""Drop-ins for segmentation_models_pytorch's losses (smp.losses), computed by segloss.

Same class names, constructor arguments, defaults and values as smp 0.3
(DiceLoss, JaccardLoss, TverskyLoss, FocalLoss, LovaszLoss) with `mode` in
"binary", "multiclass", "multilabel": swap
`from segmentation_models_pytorch.losses import DiceLoss` for
`from segloss.torch.smp import DiceLoss`. Each also takes a keyword `threads=`.

smp pools the soft counts over the batch and counts a class absent from the
batch's target as loss 0 (it still enters the mean over classes): here the
absent classes get weight 0 in segloss's mean over classes, which is the same
number. Arguments whose smp behaviour is not reproduced exactly raise
NotImplementedError naming them (docs/python.md lists them).
"""
import torch

from ._dropin import DropIn, as_label_map, is_binary, spec_of, unsupported

__all__ = ["DiceLoss", "JaccardLoss", "TverskyLoss", "FocalLoss", "LovaszLoss"]

BINARY_MODE, MULTICLASS_MODE, MULTILABEL_MODE = "binary", "multiclass", "multilabel"


def _mode(cls, mode):
    if mode not in (BINARY_MODE, MULTICLASS_MODE, MULTILABEL_MODE):
        raise ValueError("%s: mode must be 'binary', 'multiclass' or 'multilabel', got %r" % (cls, mode))
    return mode


def _binary_target(cls, y_pred, y_true):
    """(N, 1, ...) float target of a binary-mode call (y_true (N, ...) or (N, 1, ...))."""
    N = y_pred.shape[0]
    if y_pred.shape[1] != 1:
        raise ValueError("%s: binary mode takes one channel, got %d" % (cls, y_pred.shape[1]))
    if y_true.numel() != y_pred.numel():
        raise ValueError("%s: y_true %s does not match y_pred %s" % (cls, tuple(y_true.shape), tuple(y_pred.shape)))
    return y_true.reshape((N, 1) + tuple(y_pred.shape[2:])).to(torch.float32)


def _multiclass_labels(cls, y_pred, y_true):
    N, C = y_pred.shape[:2]
    lab = as_label_map(y_true, cls)
    if lab.dim() == y_pred.dim() and lab.shape[1] == 1:
        lab = lab[:, 0]
    if tuple(lab.shape) != (N,) + tuple(y_pred.shape[2:]):
        raise ValueError("%s: multiclass y_true must be (N, spatial...) labels for y_pred %s, got %s"
                         % (cls, tuple(y_pred.shape), tuple(y_true.shape)))
    return lab


class _Region(DropIn):
    """smp's DiceLoss / JaccardLoss / TverskyLoss: one score per class over the batch."""

    name = None

    def __init__(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None,
                 eps=1e-7, threads=None):
        super().__init__(threads)
        cls = type(self).__name__
        self.mode = _mode(cls, mode)
        if classes is not None:
            if mode == BINARY_MODE:
                raise AssertionError("Masking classes is not supported with mode=binary")
            classes = [int(c) for c in classes]
        self.classes, self.log_loss, self.from_logits = classes, log_loss, from_logits
        self.smooth, self.ignore_index, self.eps = float(smooth), ignore_index, float(eps)
        if self.smooth + 0 < 0:
            raise ValueError("%s: smooth must be >= 0" % cls)

    def _keys(self):
        return {}

    def forward(self, y_pred, y_true):
        # as DropIn.forward, except that _log_present may hand over its own (input, target)
        # pair, or no spec at all (a loss that is 0)
        self._check_input(y_pred)
        spec, tgt, post = self._plan(y_pred, y_true)
        if spec is None:
            return post(None)
        x, t = tgt if isinstance(tgt, tuple) else (y_pred, tgt)
        value = self._loss(spec)(x, t)
        return post(value) if post is not None else value

    def _plan(self, y_pred, y_true):
        return self._plan_from(*self._prepare(y_pred, y_true))

    def _prepare(self, y_pred, y_true):
        """smp's preparation of one call: (input, target, activation, ignore_index, classes
        present in the batch, chosen classes) in the form segloss takes."""
        cls = type(self).__name__
        C = y_pred.shape[1]
        ign = self.ignore_index
        inp = y_pred
        if self.mode == MULTICLASS_MODE:
            lab = _multiclass_labels(cls, y_pred, y_true)
            tgt = lab
            valid = lab != ign if ign is not None else torch.ones_like(lab, dtype=torch.bool)
            present = [bool(((lab == c) & valid).any()) for c in range(C)]
            act = "softmax" if self.from_logits else "none"
        elif self.mode == BINARY_MODE:
            t = _binary_target(cls, y_pred, y_true)
            act = "sigmoid" if self.from_logits else "none"
            if ign is not None:
                lab = as_label_map(t, cls)[:, 0]
                ok = (lab == 0) | (lab == 1) | (lab == ign)
                if not bool(ok.all()):
                    raise unsupported(cls, "ignore_index with a soft binary target", "segloss ignores labels")
                tgt = lab
                present = [bool((lab == 1).any())]
            else:
                tgt = t
                present = [bool((t > 0).any())]
        else:
            if tuple(y_true.shape) != tuple(y_pred.shape):
                raise ValueError("%s: multilabel y_true must have y_pred's shape %s, got %s"
                                 % (cls, tuple(y_pred.shape), tuple(y_true.shape)))
            tgt = y_true.to(torch.float32)
            act = "sigmoid" if self.from_logits else "none"
            if ign is not None:
                # smp zeroes the ignored (voxel, channel) entries of the probabilities and the
                # target; segloss ignores whole voxels, so the masked probabilities are made
                # here (the sigmoid in torch) and segloss takes them with activation=none.
                mask = (tgt != ign).to(y_pred.dtype)
                inp = (torch.sigmoid(y_pred) if self.from_logits else y_pred) * mask
                tgt = tgt * mask.to(torch.float32)
                act, ign = "none", None
            present = [bool((tgt[:, c] > 0).any()) for c in range(C)]
        chosen = list(range(C)) if self.classes is None else self.classes
        for c in chosen:
            if not 0 <= c < C:
                raise IndexError("%s: class %d out of range for %d channels" % (cls, c, C))
        return inp, tgt, act, ign, present, chosen

    def _plan_from(self, inp, tgt, act, ign, present, chosen):
        C = inp.shape[1]
        # smp: loss · [class present in the batch], then the mean over the chosen classes.
        w = [0.0] * C
        for c in chosen:
            w[c] += 1.0 if present[c] else 0.0
        scale = C / len(chosen)
        if self.log_loss and not all(present) and self.smooth == 0:
            return self._log_present(inp, tgt, act, present, chosen)
        keys = dict(activation=act, batch=True, smooth_nr=self.smooth, smooth_dr=self.smooth, ignore_index=ign,
                    include_background=True if C > 1 else None, weight=w if C > 1 else None)
        keys.update(self._keys())
        spec = spec_of(self.name, **keys)
        if C == 1 and not present[0]:
            return spec, (inp, tgt), (lambda v: v * 0.0)       # smp: the one class is absent, loss 0
        post = self._post(scale)
        return spec, (inp, tgt), post

    def _post(self, scale):
        return (lambda v: v * scale) if scale != 1 else None

    def _log_present(self, y_pred, tgt, act, present, chosen):
        """log_loss with smooth=0 and a class absent from the batch. smp clamps that class's
        score 0 at eps and multiplies −log(eps) by its mask 0: no value, no gradient. segloss's
        log form would compute −log 0 for it, so the absent channels are left out of the call:
        sliced off the logits (sigmoid channels are independent), or, for multiclass, off the
        softmax probabilities computed here (activation=none; the softmax runs over all the
        channels as in smp, and ignored voxels are zeroed in both as smp does). Every voxel's
        class is present, so the sliced one-hot rows stay whole."""
        cls = type(self).__name__
        C = y_pred.shape[1]
        keep = sorted(set(c for c in chosen if present[c]))
        if not keep:        # every chosen class absent: smp's loss is 0, and so is its gradient
            return None, None, lambda v: y_pred.sum() * 0.0
        count = [sum(1 for c in chosen if c == k) for k in keep]
        if self.mode == MULTICLASS_MODE:
            lab = tgt
            valid = lab != self.ignore_index if self.ignore_index is not None else torch.ones_like(lab, dtype=torch.bool)
            if bool(((lab < 0) | (lab >= C))[valid].any()):
                raise ValueError("%s: a label is outside [0, %d)" % (cls, C))
            v = valid.unsqueeze(1).to(y_pred.dtype)
            prob = torch.softmax(y_pred, 1) if act == "softmax" else y_pred
            onehot = torch.nn.functional.one_hot(torch.where(valid, lab, torch.zeros_like(lab)), C)
            x = (prob * v)[:, keep]
            t = (onehot.movedim(-1, 1).to(y_pred.dtype) * v)[:, keep].to(torch.float32)
            act = "none"
        else:               # multilabel (binary has one channel, present)
            x, t = y_pred[:, keep], tgt[:, keep]
        K = len(keep)
        keys = dict(activation=act, batch=True, smooth_nr=0.0, smooth_dr=0.0,
                    include_background=True if K > 1 else None, weight=[float(n) for n in count] if K > 1 else None)
        keys.update(self._keys())
        # segloss: Σ_k count_k L_k / K; smp: the same sum over len(chosen) classes.
        scale = (K if K > 1 else count[0]) / len(chosen)
        return spec_of(self.name, **keys), (x, t), self._post(scale)


class DiceLoss(_Region):
    """segmentation_models_pytorch.losses.DiceLoss: 1 − (2I + smooth)/(Σp + Σg + smooth) per class
    over the batch (log_loss: −log of the score), absent classes 0, mean over classes."""

    name = "dice"

    def __init__(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None,
                 eps=1e-7, *, threads=None):
        super().__init__(mode, classes, log_loss, from_logits, smooth, ignore_index, eps, threads)

    def _keys(self):
        return {"log": True} if self.log_loss else {}


class JaccardLoss(_Region):
    """segmentation_models_pytorch.losses.JaccardLoss: 1 − (I + smooth)/(Σp + Σg − I + smooth)."""

    name = "iou"

    def __init__(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, eps=1e-7, *, threads=None):
        super().__init__(mode, classes, log_loss, from_logits, smooth, None, eps, threads)

    def _keys(self):
        return {"log": True} if self.log_loss else {}


class TverskyLoss(_Region):
    """segmentation_models_pytorch.losses.TverskyLoss: 1 − (I + s)/(I + α·FP + β·FN + s) per class,
    absent classes 0, and the mean over classes raised to gamma."""

    name = "tversky"

    def __init__(self, mode, classes=None, log_loss=False, from_logits=True, smooth=0.0, ignore_index=None,
                 eps=1e-7, alpha=0.5, beta=0.5, gamma=1.0, *, threads=None):
        super().__init__(mode, classes, log_loss, from_logits, smooth, ignore_index, eps, threads)
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)

    def _keys(self):
        return {"alpha": self.alpha, "beta": self.beta}

    def forward(self, y_pred, y_true):
        if not self.log_loss:
            return super().forward(y_pred, y_true)
        # log_loss: segloss's tversky has no log form, so each present chosen class's score is
        # taken from its own call (class weight e_c: segloss's value is (1 − score_c)/C) and
        # smp's −log(max(score, eps)), mask, mean over the chosen classes and power are
        # applied here, under autograd
        self._check_input(y_pred)
        inp, tgt, act, ign, present, chosen = self._prepare(y_pred, y_true)
        C = inp.shape[1]
        total = inp.sum() * 0.0
        for c in chosen:
            if not present[c]:
                continue                     # smp: an absent class's loss is multiplied by 0
            keys = dict(activation=act, batch=True, smooth_nr=self.smooth, smooth_dr=self.smooth, ignore_index=ign,
                        include_background=True if C > 1 else None, alpha=self.alpha, beta=self.beta)
            if C > 1:
                keys["weight"] = [1.0 if k == c else 0.0 for k in range(C)]
            v = self._loss(spec_of("tversky", **keys))(inp, tgt)
            score = 1.0 - v * C
            total = total - torch.log(score.clamp_min(self.eps))
        return (total / len(chosen)) ** self.gamma

    def _post(self, scale):
        g = self.gamma
        return lambda v: (v * scale) ** g


class FocalLoss(DropIn):
    """segmentation_models_pytorch.losses.FocalLoss: the sigmoid focal loss with logits
    (multiclass: summed over the classes, each one-vs-rest)."""

    def __init__(self, mode, alpha=None, gamma=2.0, ignore_index=None, reduction="mean", normalized=False,
                 reduced_threshold=None, *, threads=None):
        super().__init__(threads)
        self.mode = _mode("FocalLoss", mode)
        # smp's focal_loss_with_logits reduces a flat vector (per class in multiclass mode):
        # "sum" and "batchwise_mean" (loss.sum(0) of a 1-D vector) are the mean times the number
        # of entries; "none" is the per-entry loss, which segloss's scalar does not give
        if reduction == "none":
            raise unsupported("FocalLoss", "reduction='none'", "segloss returns the reduced value, not one per entry")
        if reduction not in ("mean", "sum", "batchwise_mean"):
            raise ValueError("FocalLoss: unknown reduction %r" % (reduction,))
        self.reduction = reduction
        # smp's focal_loss_with_logits(normalized=, reduced_threshold=): segloss's focal keys of
        # the same names (docs/losses-distribution.md); reduced_threshold must lie in (0, 1]
        # (segloss's range; 0 would divide by zero in smp)
        self.normalized = bool(normalized)
        if reduced_threshold is not None:
            reduced_threshold = float(reduced_threshold)
            if not 0 < reduced_threshold <= 1:
                raise ValueError("FocalLoss: reduced_threshold must be in (0, 1], got %r" % reduced_threshold)
        self.reduced_threshold = reduced_threshold
        self.alpha, self.gamma, self.ignore_index = alpha, float(gamma), ignore_index

    def _per_class(self, y_pred, y_true):
        """multiclass with normalized=True: smp normalises each class's one-vs-rest term by
        that class's own sum of focal factors, then sums the classes; one segloss call per
        class on its channel (a binary label map, the ignored voxels kept as ignore_index)."""
        lab = _multiclass_labels("FocalLoss", y_pred, y_true)
        keys = dict(activation="sigmoid", gamma=self.gamma, alpha=None if self.alpha is None else float(self.alpha),
                    ignore_index=self.ignore_index, normalized=True, reduced_threshold=self.reduced_threshold)
        spec = spec_of("focal", **keys)
        total = 0
        for c in range(y_pred.shape[1]):
            t = (lab == c).long()
            if self.ignore_index is not None:
                t = torch.where(lab == self.ignore_index, torch.full_like(t, self.ignore_index), t)
            total = total + self._loss(spec)(y_pred[:, c:c + 1], t)
        return total

    def forward(self, y_pred, y_true):
        value = self._mean(y_pred, y_true)
        if self.reduction == "mean":
            return value
        # the entries of each reduced vector: every (channel, voxel) (binary, multilabel) or
        # voxel (multiclass, per class) whose target is not ignore_index
        n = y_true.numel() if self.ignore_index is None else int((y_true != self.ignore_index).sum())
        return value * n

    def _mean(self, y_pred, y_true):
        # as DropIn.forward, except that _plan may hand over its own (input, target) pair
        self._check_input(y_pred)
        if self.normalized and self.mode == MULTICLASS_MODE:
            return self._per_class(y_pred, y_true)
        spec, tgt, post = self._plan(y_pred, y_true)
        x, t = tgt if isinstance(tgt, tuple) else (y_pred, tgt)
        value = self._loss(spec)(x, t)
        return post(value) if post is not None else value

    def _plan(self, y_pred, y_true):
        C = y_pred.shape[1]
        keys = dict(activation="sigmoid", gamma=self.gamma, alpha=None if self.alpha is None else float(self.alpha),
                    ignore_index=self.ignore_index, normalized=True if self.normalized else None,
                    reduced_threshold=self.reduced_threshold)
        scale = 1.0
        if self.mode == MULTICLASS_MODE:
            tgt = _multiclass_labels("FocalLoss", y_pred, y_true)
            scale = float(C)            # smp sums the per-class means
        elif self.mode == BINARY_MODE:
            t = _binary_target("FocalLoss", y_pred, y_true)
            if self.ignore_index is not None:
                tgt = as_label_map(t, "FocalLoss")[:, 0]
                ok = (tgt == 0) | (tgt == 1) | (tgt == self.ignore_index)
                if not bool(ok.all()):
                    raise unsupported("FocalLoss", "a soft target", "smp's focal term exp(−BCE) equals segloss's "
                                      "only for hard targets")
            else:
                tgt = t
        else:
            if tuple(y_true.shape) != tuple(y_pred.shape):
                raise ValueError("FocalLoss: multilabel y_true must have y_pred's shape %s, got %s"
                                 % (tuple(y_pred.shape), tuple(y_true.shape)))
            tgt = y_true.to(torch.float32)
            if self.ignore_index is not None:
                # smp drops the ignored (voxel, channel) entries and averages the others: the
                # kept logits as one (1, 1, M) channel (boolean indexing is exact under autograd)
                keep = tgt != self.ignore_index
                if not bool(keep.any()):
                    raise ValueError("FocalLoss: every entry of y_true is ignore_index (smp's mean over no "
                                     "entries is NaN)")
                keys["ignore_index"] = None
                tgt = tgt[keep].reshape(1, 1, -1)
                if not is_binary(tgt):
                    raise unsupported("FocalLoss", "a soft target (values other than 0 and 1)",
                                      "smp's focal term exp(−BCE) equals segloss's only for hard targets")
                return spec_of("focal", **keys), (y_pred[keep].reshape(1, 1, -1), tgt), None
        if tgt.dtype.is_floating_point and not is_binary(tgt):
            raise unsupported("FocalLoss", "a soft target (values other than 0 and 1)",
                              "smp's focal term exp(−BCE) equals segloss's only for hard targets")
        spec = spec_of("focal", **keys)
        return spec, tgt, (lambda v: v * scale) if scale != 1 else None


class LovaszLoss(DropIn):
    """segmentation_models_pytorch.losses.LovaszLoss: the Lovász hinge on the logits (binary and
    multilabel) or the Lovász-softmax over the present classes (multiclass)."""

    def __init__(self, mode, per_image=False, ignore_index=None, from_logits=True, *, threads=None):
        super().__init__(threads)
        self.mode = _mode("LovaszLoss", mode)
        self.per_image, self.ignore_index, self.from_logits = bool(per_image), ignore_index, from_logits

    def forward(self, y_pred, y_true):
        # as DropIn.forward, except that _plan may hand over its own (input, target) pair
        self._check_input(y_pred)
        spec, tgt, post = self._plan(y_pred, y_true)
        x, t = tgt if isinstance(tgt, tuple) else (y_pred, tgt)
        return self._loss(spec)(x, t)

    def _plan(self, y_pred, y_true):
        if self.mode == MULTILABEL_MODE:
            # smp: the Lovász hinge of the binary mode over every (channel, voxel) entry of an
            # image (per_image) or of the batch, the channels flattened together: the same as
            # the binary hinge on the logits reshaped to (N, 1, C·voxels)
            if tuple(y_true.shape) != tuple(y_pred.shape):
                raise ValueError("LovaszLoss: multilabel y_true must have y_pred's shape %s, got %s"
                                 % (tuple(y_pred.shape), tuple(y_true.shape)))
            N = y_pred.shape[0]
            tgt = as_label_map(y_true, "LovaszLoss").reshape(N, -1)
            spec = spec_of("lovasz", activation="sigmoid", per_image=self.per_image or None,
                           ignore_index=self.ignore_index)
            return spec, (y_pred.reshape(N, 1, -1), tgt), None
        if self.mode == BINARY_MODE:
            # the hinge reads the logits; smp ignores from_logits here
            t = _binary_target("LovaszLoss", y_pred, y_true)
            tgt = as_label_map(t, "LovaszLoss")[:, 0]
            act = "sigmoid"
        else:
            tgt = _multiclass_labels("LovaszLoss", y_pred, y_true)
            act = "softmax" if self.from_logits else "none"
        spec = spec_of("lovasz", activation=act, per_image=self.per_image or None, ignore_index=self.ignore_index)
        return spec, tgt, None
