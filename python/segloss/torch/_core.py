"""SegLoss: a segloss spec as a torch.nn.Module (one C call per forward)."""
import ctypes
import sys

import numpy as np
import torch

from .. import _lib, errors

_c = ctypes


class _Target(_c.Structure):
    """sl_target of include/segloss/loss.h, field by field."""
    _fields_ = [("kind", _c.c_int), ("labels", _c.c_void_p), ("soft", _c.c_void_p), ("mask", _c.c_void_p)]


class _ForwardOpts(_c.Structure):
    """sl_forward_opts of include/segloss/loss.h."""
    _fields_ = [("spacing", _c.c_double * _lib.MAX_SPATIAL), ("dist", _c.c_void_p),
                ("threads", _c.c_int), ("training", _c.c_int)]


class _Grid(_c.Structure):
    """sl_grid of include/segloss/geometry.h."""
    _fields_ = [("ndim", _c.c_int), ("shape", _c.c_int64 * _lib.MAX_SPATIAL),
                ("spacing", _c.c_double * _lib.MAX_SPATIAL)]


class _EdtOpts(_c.Structure):
    _fields_ = [("mode", _c.c_int), ("threads", _c.c_int)]


# int (*sl_reduce_fn)(double *sums, int64_t n, void *user) of include/segloss/loss.h
_ReduceFn = _c.CFUNCTYPE(_c.c_int, _c.POINTER(_c.c_double), _c.c_int64, _c.c_void_p)

_declared = False


def _L():
    global _declared
    h = _lib.lib()
    if not _declared:
        vp, cp, sz = _c.c_void_p, _c.c_char_p, _c.c_size_t
        h.sl_loss_create.argtypes = [cp, _c.POINTER(vp), cp, sz]
        h.sl_loss_free.argtypes = [vp]
        h.sl_loss_free.restype = None
        h.sl_loss_forward.argtypes = [vp, vp, _c.POINTER(_lib.Dims), _c.POINTER(_Target),
                                      _c.POINTER(_ForwardOpts), _c.POINTER(_c.c_double), vp, cp, sz]
        h.sl_loss_none_columns.argtypes = [vp, _c.POINTER(_lib.Dims), _c.POINTER(_c.c_int64), cp, sz]
        h.sl_loss_forward_none.argtypes = [vp, vp, _c.POINTER(_lib.Dims), _c.POINTER(_Target),
                                           _c.POINTER(_ForwardOpts), vp, vp, vp, cp, sz]
        h.sl_loss_num_terms.argtypes = [vp]
        h.sl_loss_term_name.argtypes = [vp, _c.c_int]
        h.sl_loss_term_name.restype = cp
        h.sl_loss_term_weight.argtypes = [vp, _c.c_int]
        h.sl_loss_term_weight.restype = _c.c_double
        h.sl_loss_term_value.argtypes = [vp, _c.c_int]
        h.sl_loss_term_value.restype = _c.c_double
        h.sl_loss_set_term_weight.argtypes = [vp, _c.c_int, _c.c_double]
        h.sl_loss_state_size.argtypes = [vp, _c.POINTER(sz)]
        h.sl_loss_state_get.argtypes = [vp, vp, sz, _c.POINTER(sz)]
        h.sl_loss_state_set.argtypes = [vp, vp, sz, cp, sz]
        h.sl_loss_set_reducer.argtypes = [vp, _ReduceFn, vp]
        h.sl_edt.argtypes = [vp, _c.c_int, _c.POINTER(_Grid), _c.POINTER(_EdtOpts), vp, _c.c_int, cp, sz]
        _declared = True
    return h


def _check_cpu(t, what):
    if t.device.type != "cpu":
        raise errors.UnsupportedError(
            "%s is on %s; the C backend (backend=\"c\") runs on the CPU only: use SegLoss(..., backend=\"torch\") "
            "(or the default backend=\"auto\") to compute the loss on %s" % (what, t.device, t.device.type))


def _spacing(spacing, ndim):
    if spacing is None:
        return [1.0] * ndim
    sp = [float(s) for s in (spacing if hasattr(spacing, "__len__") else [spacing] * ndim)]
    if len(sp) != ndim:
        raise errors.ShapeError("spacing has %d values for %d spatial axes" % (len(sp), ndim))
    return sp


def _logits_array(logits):
    """float32 C-contiguous numpy copy/view of the logits (float16/bfloat16 widen exactly;
    float64 rounds to float32, which is what the C library computes in)."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError("logits must be a torch.Tensor, got %s" % type(logits).__name__)
    _check_cpu(logits, "logits")
    if not logits.dtype.is_floating_point:
        raise errors.DTypeError("logits must be floating point (float16, bfloat16, float32, float64), got %s"
                                % logits.dtype)
    if logits.dim() < 3 or logits.dim() > 2 + _lib.MAX_SPATIAL:
        raise errors.ShapeError("logits must be (N, C, spatial...) with 1 to 3 spatial axes, got shape %s"
                                % (tuple(logits.shape),))
    return logits.detach().to(torch.float32).contiguous().numpy()


def _reusable(buf, shape):
    """buf when it may be written again for an array of `shape`: the right shape and no
    reference to it but the module's (a gradient handed to autograd stays referenced by
    x.grad until the user drops it, and is then never overwritten)."""
    # three references: the module's attribute, this function's argument, getrefcount's
    if buf is not None and buf.shape == tuple(shape) and sys.getrefcount(buf) <= 3:
        return buf
    return None


def _target_arrays(target, shape, label_buf=None):
    """(kind, labels int32 | None, soft float32 | None) for a target tensor that goes with
    logits of `shape`: labels (N, spatial...) or (N, 1, spatial...) of an integer (or bool)
    dtype; a one-hot/soft target (N, C, spatial...) of a float dtype."""
    if isinstance(target, np.ndarray):
        target = torch.from_numpy(target)
    if not isinstance(target, torch.Tensor):
        raise TypeError("target must be a torch.Tensor, got %s" % type(target).__name__)
    _check_cpu(target, "target")
    N, spatial = shape[0], tuple(shape[2:])
    tshape = tuple(target.shape)
    if target.dtype.is_floating_point:
        if tshape != tuple(shape):
            raise errors.ShapeError(
                "a float target is a one-hot/soft target and must have the logits' shape %s, got %s "
                "(pass a label map as an integer tensor)" % (tuple(shape), tshape))
        return 1, None, target.detach().to(torch.float32).contiguous().numpy()
    if target.is_complex():
        raise errors.DTypeError("target dtype %s is neither integer labels nor a float soft target" % target.dtype)
    if tshape == (N, 1) + spatial:
        target = target.reshape((N,) + spatial)
    elif tshape != (N,) + spatial:
        raise errors.ShapeError("a label map must be (N, spatial...) = %s or (N, 1, spatial...) for logits %s, got %s"
                                % ((N,) + spatial, tuple(shape), tshape))
    src = target.detach().numpy()
    labels = _lib.as_labels(src, "target", label_buf)
    return 0, labels, None


def _mask_array(mask, shape):
    """The per-voxel weight map as float32 C-contiguous (N, 1, spatial...) for logits of
    `shape`: (N, 1, spatial...) or (N, spatial...) of a float, integer or bool dtype
    (converted to float32: a copy unless it already is float32 and contiguous).
    Negative, NaN and Inf weights are left to the C library, which refuses them."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor):
        raise TypeError("mask must be a torch.Tensor, got %s" % type(mask).__name__)
    _check_cpu(mask, "mask")
    if mask.is_complex():
        raise errors.DTypeError("mask dtype %s is not a real weight" % mask.dtype)
    N, spatial = shape[0], tuple(shape[2:])
    if tuple(mask.shape) == (N,) + spatial:
        mask = mask.reshape((N, 1) + spatial)
    elif tuple(mask.shape) != (N, 1) + spatial:
        raise errors.ShapeError("mask shape %s does not match the target: it must be (N, 1, spatial...) = %s or "
                                "(N, spatial...) for logits %s" % (tuple(mask.shape), (N, 1) + spatial, tuple(shape)))
    return mask.detach().to(torch.float32).contiguous().numpy()


class _SegLossFn(torch.autograd.Function):
    """Value and gradient from one C call; backward scales the kept gradient."""

    @staticmethod
    def forward(ctx, logits, module, target, dist, mask, want_grad):
        value, grad = module._evaluate(logits, target, dist, want_grad, mask)
        # Kept as an attribute, not through save_for_backward: backward hands the buffer on
        # and drops this reference, so that autograd can adopt it as x.grad without a copy
        # (a saved tensor would still hold it, and autograd would clone 4 bytes a voxel).
        ctx.grad = torch.from_numpy(grad) if want_grad else None
        ctx.logits_dtype = logits.dtype
        return torch.tensor(value, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        grad, ctx.grad = ctx.grad, None
        if grad is None:
            raise RuntimeError("SegLoss: trying to backward through the graph a second time (the gradient was "
                               "handed on by the first backward); evaluate the loss again")
        if grad_output.numel() == 1 and float(grad_output) == 1.0:
            # loss.backward(): the kept gradient as it is (no pass over it, no new buffer)
            return grad.to(ctx.logits_dtype), None, None, None, None, None
        g = grad.to(torch.float64 if ctx.logits_dtype == torch.float64 else torch.float32)
        g = (g * grad_output.to(g.dtype)).to(ctx.logits_dtype)
        return g, None, None, None, None, None


class _SegLossNoneFn(torch.autograd.Function):
    """reduction="none": the (N, K) values from one C call; backward makes a second call with the
    upstream gradient as the weights of the sum (the gradient of Σ u·M is not a scaled copy of one
    kept gradient)."""

    @staticmethod
    def forward(ctx, logits, module, target, dist, mask):
        values, _ = module._evaluate_none(logits, target, dist, mask, None, False)
        ctx.module, ctx.args = module, (logits.detach(), target, dist, mask)
        ctx.logits_dtype = logits.dtype
        return torch.from_numpy(values).to(logits.dtype if logits.dtype.is_floating_point else torch.float64)

    @staticmethod
    def backward(ctx, grad_output):
        logits, target, dist, mask = ctx.args
        up = grad_output.detach().to(torch.float64).contiguous().numpy()
        _, grad = ctx.module._evaluate_none(logits, target, dist, mask, up, True)
        return torch.from_numpy(grad).to(ctx.logits_dtype), None, None, None, None


class SegLoss(torch.nn.Module):
    """A segloss loss spec (docs/losses.md) as a PyTorch loss.

        loss = SegLoss("dice+ce")                       # or "0.5*gdice+0.5*boundary", ...
        value = loss(logits, target)                    # logits (N, C, spatial...)
        value.backward()

    target: a label map (N, spatial...) or (N, 1, spatial...) of an integer or
    bool dtype (int64 is checked to fit int32), or a one-hot / soft target
    (N, C, spatial...) of a float dtype. dist: optional precomputed distance
    maps (N, C, spatial...) for the `boundary` loss (see boundary_maps()).
    mask: optional per-voxel weights (N, 1, spatial...) or (N, spatial...),
    float (bool/int converted), finite and >= 0 (docs/losses.md#masks): 0
    excludes a voxel from every statistic, a mean becomes sum(w*l)/sum(w), a
    region sum sum(p*g) becomes sum(w*p*g); a loss that cannot weight voxels
    refuses it. Both backends (docs/losses.md#masks).

    One C call computes the value and, when the logits require a gradient and
    grad mode is on, the gradient; backward() only scales it by grad_output.
    Logits of float16/bfloat16 are widened exactly to float32, float64 is
    rounded to float32 (the library computes in float32 with float64 sums);
    the value and the gradient come back in the logits' dtype. No gradient
    flows to the target or to dist.

    spacing: voxel size per spatial axis in array order (mm), for the
    distance-based losses. threads: an explicit thread count (default: torch's).
    In train() mode stateful losses (adaptive_dice) update their state; the
    state and the term weights travel in state_dict(), pickling and deepcopy.

    backend: "c" (the C kernels; CPU tensors only), "torch" (the same formulas
    in torch operations on the logits' device, autograd for the gradient; a
    loss it does not cover is refused at construction), or "auto" (default):
    "c" for CPU tensors, "torch" for other devices or with a process_group.
    reduction: "mean" (default: the scalar loss) or "none" (MONAI/smp's
    reduction="none", either backend): a tensor (N, C) of per-(sample, class)
    values w_c·L_nc when every term is a per-class loss (dice, iou, tversky,
    focal_tversky, asym, mcc, sensspec, ssim, hausdorff_er, edge_dice,
    cldice), else (N, 1) of per-sample values (each sample a batch of one);
    its backward passes the upstream gradient to the library as the weights
    of the sum (docs/losses.md#per-sample-and-per-class-values-reductionnone).
    process_group: a torch.distributed group (e.g. group.WORLD); the pooled
    sums of the batch statistics are all-reduced over it before the ratios
    are taken and the gradient is scaled by the world size, so that under
    DDP the value is the global batch's loss on every rank and DDP's
    averaged gradient equals the single-process one. With backend="c" the C
    library hands its sums to an all-reduce between its two passes
    (sl_loss_set_reducer): specs of region losses and ce/wce/bce without a
    mask; others are refused when called (docs/python.md, DDP).
    """

    def __init__(self, spec, *, spacing=None, threads=None, backend="auto", process_group=None, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ValueError("reduction must be 'mean' or 'none', got %r" % (reduction,))
        if reduction == "none" and process_group is not None:
            raise errors.UnsupportedError("%s: reduction=\"none\" cannot be combined with a process_group: per-sample "
                                          "values need no statistics from other processes" % spec)
        self.reduction = reduction
        if not isinstance(spec, str):
            raise TypeError("spec must be a string such as 'dice+ce', got %s" % type(spec).__name__)
        if backend not in ("auto", "c", "torch"):
            raise ValueError("backend must be 'auto', 'c' or 'torch', got %r" % (backend,))
        if threads is not None:
            _lib.threads(threads)  # validates
        self.spec = spec
        self.spacing = None if spacing is None else tuple(float(s) for s in spacing)
        self.threads = threads
        self.backend = backend
        self.process_group = process_group
        self._handle = None
        self._native = None          # the native terms, built on first use (or now for backend="torch")
        self._native_values = None   # per-term values of the last native forward
        self._create()
        if backend == "torch" or (process_group is not None and backend == "auto"):
            self._native_terms()

    # ---- the C object

    def _create(self):
        h = _L()
        buf = _lib.msgbuf()
        p = _c.c_void_p()
        _lib.check(h.sl_loss_create(self.spec.encode(), _c.byref(p), buf, _lib.MSG_LEN), buf)
        self._handle = p
        self._reducer = None
        if self.process_group is not None and self.backend == "c":
            self._reducer = _ReduceFn(self._all_reduce)
            _lib.check(h.sl_loss_set_reducer(self._handle, self._reducer, None))

    def _all_reduce(self, ptr, n, _user):
        """The C library's sum reducer: its n doubles, summed over the process
        group in place. An exception cannot cross the C frames: it is kept
        and raised again when sl_loss_forward returns (SL_EIO)."""
        try:
            import torch.distributed as dist
            sums = torch.from_numpy(np.ctypeslib.as_array(ptr, shape=(n,)))   # the C buffer itself
            dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=self.process_group)
            return 0
        except BaseException as e:  # noqa: B036 (KeyboardInterrupt too: re-raised after the C call)
            self._reduce_error = e
            return 1

    def __del__(self):
        handle = self.__dict__.get("_handle")
        if handle is not None and handle.value:
            try:
                _L().sl_loss_free(handle)
            except Exception:  # interpreter shutdown: the library may be gone
                pass
            self._handle = None

    def _evaluate_none(self, logits, target, dist, mask, upstream, want_grad):
        """reduction="none": (values (N, K) float64, grad or None) through sl_loss_forward_none."""
        h = _L()
        x, d, tgt, opts, keep = self._prepare(logits, target, dist, mask)
        buf = _lib.msgbuf()
        cols = _c.c_int64()
        _lib.check(h.sl_loss_none_columns(self._handle, _c.byref(d), _c.byref(cols), buf, _lib.MSG_LEN), buf,
                   self.spec)
        values = np.zeros((x.shape[0], cols.value))
        if upstream is not None and tuple(upstream.shape) != values.shape:
            raise errors.ShapeError("%s: the upstream gradient has shape %s, the values %s"
                                    % (self.spec, tuple(upstream.shape), values.shape))
        up = None if upstream is None else np.ascontiguousarray(upstream, np.float64)
        grad = np.empty(x.shape, np.float32) if want_grad else None
        st = h.sl_loss_forward_none(self._handle, x.ctypes.data, _c.byref(d), _c.byref(tgt), _c.byref(opts),
                                    values.ctypes.data, None if up is None else up.ctypes.data,
                                    None if grad is None else grad.ctypes.data, buf, _lib.MSG_LEN)
        _lib.check(st, buf, self.spec)
        return values, grad

    def _prepare(self, logits, target, dist, mask, reuse_labels=False):
        """The C call's arguments: (x, dims, target struct, opts, arrays to keep alive). With
        reuse_labels, a label conversion goes into the buffer of the previous call and is kept
        for the next one."""
        x = _logits_array(logits)
        shape = x.shape
        if reuse_labels:
            label_buf = _reusable(self.__dict__.get("_label_buf"), (shape[0],) + tuple(shape[2:]))
            kind, labels, soft = _target_arrays(target, shape, label_buf)
            # a conversion this module made (the user's labels come as views of torch memory, which
            # never own their data): reused next call
            if labels is not None and (labels is label_buf or labels.flags.owndata):
                self._label_buf = labels
        else:
            kind, labels, soft = _target_arrays(target, shape)
        mask_arr = None if mask is None else _mask_array(mask, shape)
        d = _lib.dims(shape)
        opts = _ForwardOpts()
        for i, s in enumerate(_spacing(self.spacing, len(shape) - 2)):
            opts.spacing[i] = s
        for i in range(len(shape) - 2, _lib.MAX_SPATIAL):
            opts.spacing[i] = 1.0
        dist_arr = None
        if dist is not None:
            if isinstance(dist, np.ndarray):
                dist = torch.from_numpy(dist)
            _check_cpu(dist, "dist")
            if tuple(dist.shape) != tuple(shape):
                raise errors.ShapeError("dist must have the logits' shape %s, got %s"
                                        % (tuple(shape), tuple(dist.shape)))
            dist_arr = dist.detach().to(torch.float32).contiguous().numpy()
            opts.dist = dist_arr.ctypes.data
        opts.threads = _lib.threads(self.threads)
        opts.training = 1 if self.training else 0
        tgt = _Target(kind, None if labels is None else labels.ctypes.data,
                      None if soft is None else soft.ctypes.data,
                      None if mask_arr is None else mask_arr.ctypes.data)
        return x, d, tgt, opts, (labels, soft, mask_arr, dist_arr)

    def _evaluate(self, logits, target, dist, want_grad, mask=None):
        h = _L()
        x, d, tgt, opts, keep = self._prepare(logits, target, dist, mask, reuse_labels=True)
        shape = x.shape
        grad = None
        if want_grad:
            grad = _reusable(self.__dict__.get("_grad_buf"), shape)
            if grad is None:
                grad = np.empty(shape, np.float32)
            self._grad_buf = grad
        value = _c.c_double()
        buf = _lib.msgbuf()
        self._reduce_error = None
        st = h.sl_loss_forward(self._handle, x.ctypes.data, _c.byref(d), _c.byref(tgt), _c.byref(opts),
                               _c.byref(value), None if grad is None else grad.ctypes.data, buf, _lib.MSG_LEN)
        err, self._reduce_error = self._reduce_error, None
        if st and err is not None:
            raise err
        _lib.check(st, buf, self.spec)
        if self._reducer is not None and grad is not None:
            # grad is d(global loss)/d(this rank's logits); DDP averages over the ranks
            import torch.distributed as dist
            grad *= dist.get_world_size(self.process_group)
        return value.value, grad

    # ---- the loss

    def forward(self, logits, target, dist=None, mask=None, maps=None):
        if getattr(self, "reduction", "mean") == "none":
            if self._use_native(logits):   # native.evaluate_none: each sample a batch of one, as the C path
                return self._forward_native(logits, target, dist, mask,
                                            None if maps is None else self._check_maps(maps, logits), none=True)
            if maps is not None:
                raise errors.UnsupportedError("%s: reduction=\"none\" computes its target maps itself; maps= is "
                                              "for the mean reduction" % self.spec)
            self._native_values = None
            return _SegLossNoneFn.apply(logits, self, target, dist, mask)
        if maps is not None:
            maps = self._check_maps(maps, logits)
        if self._use_native(logits):
            return self._forward_native(logits, target, dist, mask, maps)
        if maps and dist is None:
            # the C library computes the other target maps itself, in the same call on the CPU
            names = self.term_names
            dist = next((maps[i] for i in maps if names[i] == "boundary"), None)
        want_grad = bool(torch.is_grad_enabled() and isinstance(logits, torch.Tensor) and logits.requires_grad)
        self._native_values = None
        return _SegLossFn.apply(logits, self, target, dist, mask, want_grad)

    # ---- the native (torch) backend: python/segloss/torch/native.py

    def _use_native(self, logits):
        if self.backend == "torch":
            return True
        if self.backend == "c" or not isinstance(logits, torch.Tensor):
            return False
        # auto: the C kernels for CPU tensors, unless the batch statistics must be reduced over a group
        return logits.device.type != "cpu" or self.process_group is not None

    def _native_terms(self):
        if self._native is None:
            from . import native
            try:
                self._native = [native.make_term(name, params) for _, name, params in native.parse_spec(self.spec)]
            except native.Unsupported as e:
                raise errors.UnsupportedError("%s: %s; use backend=\"c\" with CPU tensors" % (self.spec, e)) from None
            inexact = [t.name for t in self._native
                       if t.name in ("topk", "ohem") or (t.name == "lovasz" and not t.P["per_image"])]
            if self.process_group is not None and inexact:
                self._native = None
                raise errors.UnsupportedError(
                    "%s: %s sorts or selects voxels over the whole batch, which is not the union of the ranks' "
                    "selections: it cannot be made exact under a process group (drop process_group to compute it "
                    "per rank)" % (self.spec, inexact[0]))
            if self.process_group is not None and any(t.name == "cldice" and t.P.get("auto_iters")
                                                      for t in self._native):
                self._native = None
                raise errors.UnsupportedError(
                    "%s: cldice auto_iters takes the depth of the rank's own targets, which can differ between "
                    "ranks: it cannot be made exact under a process group (give iters= instead)" % self.spec)
            if [t.name for t in self._native] != self.term_names:
                raise errors.Error("%s: the native parser read terms %s, the C library %s"
                                   % (self.spec, [t.name for t in self._native], self.term_names))
        return self._native

    def _check_maps(self, maps, logits):
        """maps= as target_maps() returns it: {term index: tensor (N, ...)} for terms of this spec that
        take one. Returns it (a dict); the values move to the logits' device in the native path."""
        from . import native
        if not isinstance(maps, dict):
            raise TypeError("maps must be the dict that SegLoss.target_maps returns, got %s" % type(maps).__name__)
        names = self.term_names
        N = logits.shape[0] if isinstance(logits, torch.Tensor) and logits.dim() > 0 else None
        for k, v in maps.items():
            if not isinstance(k, int) or not 0 <= k < len(names) or names[k] not in native.MAPPED:
                raise errors.InvalidArgumentError(
                    "%s: maps key %r is not the index of a term that takes a target map (%s); use "
                    "SegLoss.target_maps" % (self.spec, k, ", ".join(native.MAPPED)))
            if not isinstance(v, torch.Tensor) or v.dim() < 2 or (N is not None and v.shape[0] != N):
                raise errors.ShapeError("%s: maps[%d] (%s) must be a tensor with the logits' N = %s samples first, "
                                        "got %s" % (self.spec, k, names[k], N,
                                                    tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__))
        return maps

    def target_maps(self, target, num_classes, dtype=torch.float32):
        """The maps of this spec's terms that depend on the target only, computed
        on the host by the C library (distance transforms, connected components)
        or by the native formulas (cldice's target skeleton): a dict
        {term index: tensor} for boundary (its signed distance maps, as dist=),
        dpce and boundary_aware (the per-voxel CE weights), hausdorff_dt and
        log_hausdorff_dt (the target's distance term d_g^alpha), blob (the
        target's connected components, int64) and cldice (the target's soft
        skeleton). Meant for DataLoader workers (e.g. in a collate_fn, on the
        batch's target): pass it as loss(logits, target, maps=maps), on any
        device; the native path then skips those computations, and the values
        and gradients are the same as without maps. The C path (CPU) computes
        them in its own call and uses only boundary's (as dist=).
        target: as for forward, on the CPU; num_classes: C of the logits;
        dtype: the floating dtype of the maps (the logits' dtype gives the same
        numbers as computing them in the loss)."""
        from . import native
        if isinstance(target, np.ndarray):
            target = torch.from_numpy(target)
        if not isinstance(target, torch.Tensor):
            raise TypeError("target must be a torch.Tensor, got %s" % type(target).__name__)
        _check_cpu(target, "target")
        C = int(num_classes)
        if C < 1:
            raise ValueError("num_classes must be >= 1, got %d" % C)
        terms = []
        for i, (_, name, params) in enumerate(native.parse_spec(self.spec)):
            if name in native.MAPPED:
                try:
                    t = native.make_term(name, params)
                except native.Unsupported as e:
                    raise errors.UnsupportedError("%s: %s" % (self.spec, e)) from None
                t.index = i
                terms.append(t)
        labels = soft = None
        if target.dtype.is_floating_point:
            if target.dim() < 3 or target.shape[1] != C:
                raise errors.ShapeError("a float (soft) target must be (N, C = %d, spatial...), got %s"
                                        % (C, tuple(target.shape)))
            soft = target.detach().to(dtype)
            shape = tuple(soft.shape)
        else:
            if target.dim() >= 3 and target.shape[1] == 1:
                target = target.reshape((target.shape[0],) + tuple(target.shape[2:]))
            labels = _lib.as_labels(target.detach().numpy(), "target")
            if labels.ndim < 2 or labels.ndim > 1 + _lib.MAX_SPATIAL:
                raise errors.ShapeError("target must be a label map (N, spatial...) with 1 to 3 spatial axes, got %s"
                                        % (labels.shape,))
            ignores = {int(t.P["ignore_index"]) for t in terms if t.P.get("ignore_index") is not None}
            hi = 2 if C == 1 else C
            bad = ((labels < 0) | (labels >= hi)) & ~np.isin(labels, list(ignores))
            if bad.any():
                raise errors.RangeError("%s: target has label %d outside [0, %d)" % (self.spec, int(labels[bad][0]), hi))
            labels = torch.from_numpy(labels.astype(np.int64))
            shape = (labels.shape[0], C) + tuple(labels.shape[1:])
        nsp = len(shape) - 2
        spacing = _spacing(self.spacing, nsp)
        x = torch.zeros((), dtype=dtype).expand(shape)   # the terms read only its shape and dtype here
        inp = native.Inputs(x, labels, soft, None,
                            label_distance=lambda hard: _label_distance(hard, spacing, self.threads),
                            spacing=spacing, components=lambda m, conn: _components(m, conn, nsp))
        out = {}
        for t in terms:
            if t.name == "boundary":
                if labels is None:
                    raise errors.UnsupportedError("%s: boundary's distance maps need a label-map target" % self.spec)
                out[t.index] = boundary_maps(labels, C, self.spacing, self.threads).to(dtype)
            else:
                m = t.target_map(inp)
                out[t.index] = m.to(dtype) if m.dtype.is_floating_point else m
        return out

    def _forward_native(self, logits, target, dist, mask=None, maps=None, none=False):
        from . import native
        terms = self._native_terms()
        if not isinstance(logits, torch.Tensor):
            raise TypeError("logits must be a torch.Tensor, got %s" % type(logits).__name__)
        if not logits.dtype.is_floating_point:
            raise errors.DTypeError("logits must be floating point, got %s" % logits.dtype)
        if logits.dim() < 3 or logits.dim() > 2 + _lib.MAX_SPATIAL:
            raise errors.ShapeError("logits must be (N, C, spatial...) with 1 to 3 spatial axes, got shape %s"
                                    % (tuple(logits.shape),))
        x = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
        shape, dev = tuple(x.shape), x.device
        if isinstance(target, np.ndarray):
            target = torch.from_numpy(target)
        if not isinstance(target, torch.Tensor):
            raise TypeError("target must be a torch.Tensor, got %s" % type(target).__name__)
        labels = soft = None
        N, C, spatial = shape[0], shape[1], shape[2:]
        if target.dtype.is_floating_point:
            if tuple(target.shape) != shape:
                raise errors.ShapeError(
                    "a float target is a one-hot/soft target and must have the logits' shape %s, got %s "
                    "(pass a label map as an integer tensor)" % (shape, tuple(target.shape)))
            soft = target.detach().to(device=dev, dtype=x.dtype)
        else:
            if tuple(target.shape) == (N, 1) + spatial:
                target = target.reshape((N,) + spatial)
            elif tuple(target.shape) != (N,) + spatial:
                raise errors.ShapeError("a label map must be (N, spatial...) = %s or (N, 1, spatial...) for logits "
                                        "%s, got %s" % ((N,) + spatial, shape, tuple(target.shape)))
            labels = target.detach().to(device=dev, dtype=torch.int64)
            ignores = {int(t.P["ignore_index"]) for t in terms if t.P.get("ignore_index") is not None}
            hi = 2 if C == 1 else C
            bad = (labels < 0) | (labels >= hi)
            for ii in ignores:
                bad &= labels != ii
            if bool(bad.any()):
                raise errors.RangeError("%s: target has label %d outside [0, %d)" % (
                    self.spec, int(labels[bad].flatten()[0]), hi))
        native.validate(terms, C, spatial, self.spec, x, soft)
        weights = None
        if mask is not None:
            weights = self._native_mask(mask, terms, shape, x)
        maps_given, maps = maps or {}, None
        if any(t.name == "boundary" and i not in maps_given for i, t in enumerate(terms)):
            if dist is not None:
                if tuple(dist.shape) != shape:
                    raise errors.ShapeError("dist must have the logits' shape %s, got %s" % (shape, tuple(dist.shape)))
                maps = torch.as_tensor(dist).detach().to(device=dev, dtype=x.dtype)
            elif labels is not None:
                # target-only maps: the C library's exact EDT on the host, from the small integer target
                maps = boundary_maps(target.detach().cpu(), C, self.spacing, self.threads).to(device=dev, dtype=x.dtype)
            else:
                raise errors.UnsupportedError("%s: boundary with a soft target needs dist= (see boundary_maps)"
                                              % self.spec)
        for i, t in enumerate(terms):
            t.training = self.training
            t.index = i
        spacing = _spacing(self.spacing, len(spatial))
        inp = native.Inputs(x, labels, soft, maps,
                            label_distance=lambda hard: _label_distance(hard, spacing, self.threads),
                            spacing=spacing, components=lambda mask, conn: _components(mask, conn, len(spatial)),
                            weights=weights)
        if maps_given:
            inp.premaps = {k: v.to(dev) for k, v in maps_given.items()}
        if none:
            values, self._native_values = native.evaluate_none(terms, self.weights, inp, self.spec)
            return values.to(logits.dtype)
        value, vals = native.evaluate(terms, self.weights, inp, self.process_group)
        self._native_values = vals
        return value.to(logits.dtype)

    def _native_mask(self, mask, terms, shape, x):
        """mask= on the native path: the C path's shape and value checks, then (N, 1, ...) in x's dtype."""
        from . import native
        other = [t.name for t in terms if t.name not in native.MASKED]
        if other:
            raise errors.UnsupportedError(
                "%s: mask= is not implemented for %s in the native (torch) backend (it is for %s); use "
                "backend=\"c\" with CPU tensors" % (self.spec, other[0], ", ".join(native.MASKED)))
        if isinstance(mask, np.ndarray):
            mask = torch.from_numpy(mask)
        if not isinstance(mask, torch.Tensor):
            raise TypeError("mask must be a torch.Tensor, got %s" % type(mask).__name__)
        N, spatial = shape[0], tuple(shape[2:])
        if tuple(mask.shape) == (N,) + spatial:
            mask = mask.reshape((N, 1) + spatial)
        elif tuple(mask.shape) != (N, 1) + spatial:
            raise errors.ShapeError("mask shape %s does not match the target: it must be (N, 1, spatial...) = %s or "
                                    "(N, spatial...) for logits %s" % (tuple(mask.shape), (N, 1) + spatial, shape))
        w = mask.detach().to(device=x.device, dtype=x.dtype)
        if not bool(torch.isfinite(w).all()):
            raise errors.NonFiniteError("%s: the mask contains NaN or Inf" % self.spec)
        if bool((w < 0).any()):
            raise errors.RangeError("%s: the mask has a negative weight" % self.spec)
        return w

    # ---- terms

    def __len__(self):
        return _L().sl_loss_num_terms(self._handle)

    @property
    def term_names(self):
        """Loss names of the terms, in spec order."""
        h = _L()
        return [h.sl_loss_term_name(self._handle, i).decode() for i in range(len(self))]

    @property
    def weights(self):
        """Current term weights, in spec order."""
        return [_L().sl_loss_term_weight(self._handle, i) for i in range(len(self))]

    def set_weight(self, term, weight):
        """Sets a term's weight (for schedules); term is an index or a loss name that occurs once."""
        i = self._index(term)
        st = _L().sl_loss_set_term_weight(self._handle, i, float(weight))
        if st:
            raise errors.from_status(st, "%s: term %d: weight %r is not finite" % (self.spec, i, weight))

    def _index(self, term):
        names = self.term_names
        if isinstance(term, str):
            hits = [i for i, n in enumerate(names) if n == term]
            if len(hits) != 1:
                raise errors.UnknownNameError("%s: %s term %r (terms: %s)" % (
                    self.spec, "no" if not hits else "more than one", term, ", ".join(names)))
            return hits[0]
        i = int(term)
        if not 0 <= i < len(names):
            raise IndexError("%s: term index %d out of range (%d terms)" % (self.spec, i, len(names)))
        return i

    def term_values(self):
        """{name: unweighted value} of the terms from the last forward (NaN before the first).
        A name that occurs more than once is suffixed with its index ("dice#2")."""
        h = _L()
        names = self.term_names
        out = {}
        for i, n in enumerate(names):
            key = n if names.count(n) == 1 else "%s#%d" % (n, i)
            if self._native_values is not None:
                out[key] = float(self._native_values[i])
            else:
                out[key] = h.sl_loss_term_value(self._handle, i)
        return out

    # ---- state (state_dict, pickle, deepcopy)

    def _state_bytes(self):
        h = _L()
        size = _c.c_size_t()
        _lib.check(h.sl_loss_state_size(self._handle, _c.byref(size)))
        buf = (_c.c_ubyte * max(size.value, 1))()
        written = _c.c_size_t()
        _lib.check(h.sl_loss_state_get(self._handle, buf, size.value, _c.byref(written)))
        return bytes(buf[:written.value])

    def _restore(self, saved):
        if saved.get("spec") != self.spec:
            raise errors.BadStateError("state of loss %r cannot be loaded into loss %r" % (saved.get("spec"), self.spec))
        weights = list(saved["weights"])
        if len(weights) != len(self):
            raise errors.BadStateError("state has %d term weights, loss %r has %d terms"
                                       % (len(weights), self.spec, len(self)))
        state = bytes(saved["state"])
        raw = (_c.c_ubyte * max(len(state), 1)).from_buffer_copy(state.ljust(1, b"\0"))
        buf = _lib.msgbuf()
        _lib.check(_L().sl_loss_state_set(self._handle, raw, len(state), buf, _lib.MSG_LEN), buf, self.spec)
        for i, w in enumerate(weights):
            self.set_weight(i, w)
        hist = saved.get("native_history")
        if hist is not None:
            for t, h in zip(self._native_terms(), hist):
                t.history = None if h is None else torch.tensor(h, dtype=torch.float64)

    def get_extra_state(self):
        st = {"spec": self.spec, "weights": self.weights, "state": self._state_bytes()}
        if self._native is not None:  # adaptive_dice's running average of the native backend
            st["native_history"] = [None if t.__dict__.get("history") is None else t.history.cpu().tolist()
                                    for t in self._native]
        return st

    def set_extra_state(self, state):
        self._restore(state)

    def __getstate__(self):
        d = self.__dict__.copy()
        d.pop("_handle", None)
        d.pop("_reducer", None)     # a ctypes callback does not pickle; _create makes it again
        d.pop("_reduce_error", None)
        d["process_group"] = None   # a process group does not pickle; set it again after loading
        d["_native_values"] = None
        d.pop("_grad_buf", None)     # scratch buffers, not state
        d.pop("_label_buf", None)
        d["_saved"] = self.get_extra_state()
        return d

    def __setstate__(self, d):
        d = dict(d)
        saved = d.pop("_saved")
        self.__dict__.update(d)
        self._handle = None
        self._create()
        self._restore(saved)

    def extra_repr(self):
        s = repr(self.spec)
        if self.spacing is not None:
            s += ", spacing=%s" % (self.spacing,)
        if self.threads is not None:
            s += ", threads=%d" % self.threads
        if self.backend != "auto":
            s += ", backend=%r" % self.backend
        if self.process_group is not None:
            s += ", process_group=%r" % (self.process_group,)
        return s


def target_maps(spec, target, num_classes, spacing=None, threads=None, dtype=torch.float32):
    """SegLoss(spec, spacing=spacing, threads=threads).target_maps(target,
    num_classes, dtype): the target-only maps of a spec's terms, for
    loss(logits, target, maps=...) (e.g. computed in a DataLoader collate_fn)."""
    return SegLoss(spec, spacing=spacing, threads=threads).target_maps(target, num_classes, dtype)


def boundary_maps(target, num_classes, spacing=None, threads=None):
    """The signed distance maps the `boundary` loss uses (Kervadec et al.'s
    one_hot2dist: +distance outside a class, -(EDT inside - 1) inside, 0 for a
    class absent from or filling a sample), as a float32 tensor (N, C, spatial...).

    target: a label map (N, spatial...) as an integer tensor or array. Meant for
    DataLoader workers: pass the result as SegLoss(...)(logits, target, dist=maps).
    With num_classes = 1 the single channel is the map of label 1 (foreground).
    """
    if isinstance(target, torch.Tensor):
        _check_cpu(target, "target")
        target = target.detach().numpy()
    lab = _lib.as_labels(target, "target")
    if lab.ndim < 2 or lab.ndim > 1 + _lib.MAX_SPATIAL:
        raise errors.ShapeError("target must be a label map (N, spatial...) with 1 to 3 spatial axes, got shape %s"
                                % (lab.shape,))
    C = int(num_classes)
    if C < 1:
        raise ValueError("num_classes must be >= 1, got %d" % C)
    N, spatial = lab.shape[0], lab.shape[1:]
    grid = _Grid()
    grid.ndim = len(spatial)
    for i, (n, s) in enumerate(zip(spatial, _spacing(spacing, len(spatial)))):
        grid.shape[i], grid.spacing[i] = n, s
    opts = _EdtOpts(3, _lib.threads(threads))   # SL_EDT_SIGNED_KERVADEC
    out = np.empty((N, C) + spatial, np.float32)
    h = _L()
    buf = _lib.msgbuf()
    for n in range(N):
        for c in range(C):
            mask = np.ascontiguousarray(lab[n] == (1 if C == 1 else c), dtype=np.uint8)
            st = h.sl_edt(mask.ctypes.data, 3, _c.byref(grid), _c.byref(opts),   # SL_DT_U8
                          out[n, c].ctypes.data, 0, buf, _lib.MSG_LEN)             # SL_DT_F32
            _lib.check(st, buf, "boundary_maps")
    return torch.from_numpy(out)


def _label_distance(hard, spacing, threads=None):
    """For hard label maps (..., spatial) of int32 (device tensor): the distance
    (mm, between voxel centres) from each voxel to the nearest voxel of another
    label, by the C library's exact multi-label EDT on the host; +inf in a map
    with a single label. Returned on the maps' device, float32. Only the small
    integer maps cross to the host."""
    dev = hard.device
    lab = np.ascontiguousarray(hard.detach().cpu().numpy(), dtype=np.int32)
    nsp = len(spacing)
    spatial = lab.shape[-nsp:]
    flat = lab.reshape((-1,) + spatial)
    out = np.empty(flat.shape, np.float32)
    grid = _Grid()
    grid.ndim = nsp
    for i, (n, sp) in enumerate(zip(spatial, spacing)):
        grid.shape[i], grid.spacing[i] = n, sp
    opts = _EdtOpts(1, _lib.threads(threads))   # SL_EDT_MULTILABEL
    h = _L()
    buf = _lib.msgbuf()
    for m in range(flat.shape[0]):
        if (flat[m] == flat[m].flat[0]).all():
            out[m] = np.inf
            continue
        st = h.sl_edt(flat[m].ctypes.data, 8, _c.byref(grid), _c.byref(opts),    # SL_DT_I32
                      out[m].ctypes.data, 0, buf, _lib.MSG_LEN)                   # SL_DT_F32
        _lib.check(st, buf, "label distance")
    return torch.from_numpy(out.reshape(lab.shape)).to(dev)


def _components(mask, connectivity, nsp):
    """Connected-component labels (int64, 1..K in raster order of first voxels,
    0 = background) of boolean masks (..., spatial) by the C library on the
    host (sl_components_label); connectivity "full" or "face". Only the uint8
    masks cross to the host; the labels go back to the masks' device."""
    h = _L()
    if not getattr(h, "_sl_components_declared", False):
        h.sl_components_label.argtypes = [_c.c_void_p, _c.POINTER(_Grid), _c.c_int, _c.c_void_p, _c.c_void_p,
                                          _c.c_char_p, _c.c_size_t]
        h._sl_components_declared = True
    dev = mask.device
    m = np.ascontiguousarray(mask.detach().cpu().numpy(), dtype=np.uint8)
    spatial = m.shape[-nsp:]
    flat = m.reshape((-1,) + spatial)
    out = np.zeros(flat.shape, np.int32)
    grid = _Grid()
    grid.ndim = nsp
    for i, n in enumerate(spatial):
        grid.shape[i], grid.spacing[i] = n, 1.0
    conn = 0 if connectivity == "full" else 2 * nsp
    buf = _lib.msgbuf()
    for j in range(flat.shape[0]):
        if not flat[j].any():
            continue
        st = h.sl_components_label(flat[j].ctypes.data, _c.byref(grid), conn, out[j].ctypes.data, None,
                                   buf, _lib.MSG_LEN)
        _lib.check(st, buf, "connected components")
    return torch.from_numpy(out.reshape(m.shape).astype(np.int64)).to(dev)
