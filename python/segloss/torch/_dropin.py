"""What the MONAI and smp drop-ins share: a module that turns its constructor
arguments and the shapes of each call into a segloss spec (built once per
spec and cached), a target in the form SegLoss takes, and an exact rescaling
of the value (reduction="sum", a sum over classes, ...)."""
import torch

from ._core import SegLoss


def unsupported(cls, arg, why):
    """The NotImplementedError for an argument segloss does not reproduce exactly."""
    return NotImplementedError("%s: %s is not supported by segloss (%s); use the original "
                               "implementation for it" % (cls, arg, why))


def spec_of(name, **keys):
    """'name(k=v,...)' with bools as true/false and lists as [a,b]; None values are left out."""
    items = []
    for k, v in keys.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = "[" + ",".join(repr(float(a)) for a in v) + "]"
        elif isinstance(v, float):
            v = repr(v)
        items.append("%s=%s" % (k, v))
    return name + ("(" + ",".join(items) + ")" if items else "")


def as_label_map(target, what):
    """Integer labels from a target that holds class indices (any dtype); ValueError
    for values that are not whole numbers (they would be truncated silently)."""
    if target.dtype.is_floating_point:
        if not torch.equal(target, target.round()):
            raise ValueError("%s: the target holds class indices but has non-integer values" % what)
    return target.long()


def is_binary(t):
    return bool(((t == 0) | (t == 1)).all())


class DropIn(torch.nn.Module):
    """Base: subclasses implement _plan(input, target) -> (spec, target, post), where post
    maps the SegLoss value to the returned one (a scale or a power, exact under autograd)."""

    def __init__(self, threads=None):
        super().__init__()
        self.threads = threads
        self._losses = {}

    def _loss(self, spec, reduction="mean"):
        key = spec if reduction == "mean" else (spec, reduction)
        if key not in self._losses:
            self._losses[key] = SegLoss(spec, threads=self.threads, reduction=reduction)
        m = self._losses[key]
        m.train(self.training)
        return m

    def _check_input(self, input):
        if not isinstance(input, torch.Tensor):
            raise TypeError("%s: input must be a torch.Tensor" % type(self).__name__)
        if input.dim() < 3:
            raise ValueError("%s: input must be (B, C, spatial...), got shape %s"
                             % (type(self).__name__, tuple(input.shape)))

    def forward(self, input, target):
        self._check_input(input)
        spec, tgt, post = self._plan(input, target)
        # reduction="none" (where a subclass allows it): SegLoss's (N, K) values, shaped by post
        value = self._loss(spec, "none" if getattr(self, "reduction", None) == "none" else "mean")(input, tgt)
        return post(value) if post is not None else value

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_losses"] = {}
        return d
