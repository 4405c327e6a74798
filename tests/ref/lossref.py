"""Harness for checking segloss losses against independent PyTorch references.

Each reference is a plain PyTorch (float64) function written from the paper /
docs/losses.md, independent of the C code:

    ref(x, target, C, **params) -> scalar tensor

x is the float64 score tensor (N, C, *spatial) with requires_grad; target is a
LongTensor label map (N, *spatial) or a float64 soft target (N, C, *spatial).
Autograd gives the gradient oracle.

check_loss() saves random inputs as .npy, runs `segloss loss SPEC --grad`, and
compares the value and the gradient with the reference, then checks the C
gradient against a central finite difference of the C value along a random
direction. Everything goes through the CLI, so the .npy reader and writer and
the spec parser are exercised too (and run under the sanitizers).
"""
import json
import os
import tempfile

import numpy as np
import torch

import slref

torch.set_default_dtype(torch.float64)

# ---------------------------------------------------------------- helpers


def probs(x, C, activation="auto"):
    """Probabilities as segloss computes them (softmax for C > 1, sigmoid for C = 1)."""
    if activation == "auto":
        activation = "softmax" if C > 1 else "sigmoid"
    if activation == "softmax":
        return torch.softmax(x, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    return x


def onehot(target, C, dtype=torch.float64):
    """One-hot (N, C, ...) from a label map; a single channel means foreground = label 1.
    Labels outside [0, C) (ignored voxels) give all-zero rows."""
    if target.dtype.is_floating_point:
        return target
    if C == 1:
        return (target == 1).to(dtype).unsqueeze(1)
    t = target.clone()
    bad = (t < 0) | (t >= C)
    t[bad] = 0
    oh = torch.nn.functional.one_hot(t, C).to(dtype)
    oh[bad] = 0
    return oh.movedim(-1, 1)


def valid_mask(target, ignore_index, C):
    """(N, 1, ...) float mask of voxels that count."""
    if target.dtype.is_floating_point or ignore_index is None:
        shape = (target.shape[0], 1) + tuple(target.shape[2:] if target.dtype.is_floating_point else target.shape[1:])
        return torch.ones(shape)
    return (target != ignore_index).to(torch.float64).unsqueeze(1)


# ---------------------------------------------------------------- inputs


def make_inputs(rng, N, C, spatial, target_kind, activation="auto", ignore_index=None, empty_class=None):
    shape = (N, C) + tuple(spatial)
    if activation == "none":
        if C > 1:
            z = rng.normal(0, 1.5, shape)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            x = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        else:
            x = rng.uniform(0.02, 0.98, shape).astype(np.float32)
    else:
        x = rng.normal(0, 2.0, shape).astype(np.float32)
    if target_kind == "labels":
        hi = 2 if C == 1 else C
        y = rng.integers(0, hi, (N,) + tuple(spatial)).astype(np.int64)
        if empty_class is not None:
            y[y == empty_class] = (empty_class + 1) % hi
        if ignore_index is not None:
            y[rng.random(y.shape) < 0.1] = ignore_index
    else:
        if C > 1 and activation != "sigmoid":
            z = rng.normal(0, 2.0, shape)
            e = np.exp(z - z.max(axis=1, keepdims=True))
            y = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        else:
            y = rng.uniform(0, 1, shape).astype(np.float32)
    return x, y


# ---------------------------------------------------------------- running


# Two ways to reach the C code: the CLI (exercises .npy I/O and the
# sanitizers) and ctypes on libsegloss.so (fast). The sanitized build can
# only be reached through the CLI; otherwise every 6th evaluation goes
# through the CLI and the rest through ctypes.
SANITIZED = os.environ.get("SL_SANITIZED", "0") == "1"
_calls = [0]


def _use_cli(extra):
    _calls[0] += 1
    return SANITIZED or bool(extra) or _calls[0] % 6 == 1


class _Dims(__import__("ctypes").Structure):
    import ctypes as _c
    _fields_ = [("n", _c.c_int64), ("c", _c.c_int64), ("spatial_ndim", _c.c_int), ("spatial", _c.c_int64 * 3)]


class _Target(__import__("ctypes").Structure):
    import ctypes as _c
    _fields_ = [("kind", _c.c_int), ("labels", _c.c_void_p), ("soft", _c.c_void_p), ("mask", _c.c_void_p)]


def run_lib(spec, x, y, want_grad=True, mask=None):
    """(value, grad, error) through ctypes; mask: optional (N, 1, spatial...) voxel weights."""
    import ctypes as c
    lib = slref.lib()
    msg = c.create_string_buffer(512)
    loss = c.c_void_p()
    if lib.sl_loss_create(spec.encode(), c.byref(loss), msg, 512) != 0:
        return None, None, msg.value.decode()
    try:
        x = np.ascontiguousarray(x, np.float32)
        d = _Dims(x.shape[0], x.shape[1], x.ndim - 2, (c.c_int64 * 3)(*(list(x.shape[2:]) + [1] * (5 - x.ndim))))
        if y.dtype.kind == "f":
            yy = np.ascontiguousarray(y, np.float32)
            t = _Target(1, None, yy.ctypes.data)
        else:
            yy = np.ascontiguousarray(y, np.int32)
            t = _Target(0, yy.ctypes.data, None)
        mm = None if mask is None else np.ascontiguousarray(mask, np.float32)
        t.mask = None if mm is None else mm.ctypes.data
        g = np.zeros_like(x) if want_grad else None
        v = c.c_double()
        st = lib.sl_loss_forward(loss, x.ctypes.data_as(c.c_void_p), c.byref(d), c.byref(t), None, c.byref(v),
                                 g.ctypes.data_as(c.c_void_p) if want_grad else None, msg, 512)
        if st != 0:
            return None, None, msg.value.decode()
        return v.value, g, None
    finally:
        lib.sl_loss_free(loss)


def _mask_args(mask, tmp):
    """--mask M.npy for the CLI when a mask is given."""
    if mask is None:
        return []
    mp = os.path.join(tmp, "m.npy")
    np.save(mp, np.asarray(mask, np.float32))
    return ["--mask", mp]


def run_cli(spec, x, y, tmp, extra=(), mask=None):
    if not _use_cli(extra):
        return run_lib(spec, x, y, mask=mask)
    xp, yp, gp = (os.path.join(tmp, n) for n in ("x.npy", "y.npy", "g.npy"))
    np.save(xp, x)
    np.save(yp, y)
    rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp, "--grad", gp] + list(extra) +
                             _mask_args(mask, tmp))
    if rc != 0:
        return None, None, err.strip()
    return json.loads(out)["loss"], np.load(gp), None


def value_cli(spec, x, y, tmp, extra=(), mask=None):
    if not _use_cli(extra):
        v, _, err = run_lib(spec, x, y, want_grad=False, mask=mask)
        if err:
            raise RuntimeError(err)
        return v
    xp, yp = os.path.join(tmp, "xf.npy"), os.path.join(tmp, "yf.npy")
    np.save(xp, x)
    np.save(yp, y)
    rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp] + list(extra) + _mask_args(mask, tmp))
    if rc != 0:
        raise RuntimeError(err)
    return json.loads(out)["loss"]


def reference(ref, x, y, C, params, mask=None):
    """Value and autograd gradient of ref; a mask reaches ref as mask= (an (N, 1, ...) float64 tensor)."""
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    yt = torch.tensor(y.astype(np.float64)) if y.dtype.kind == "f" else torch.tensor(y)
    if mask is not None:
        params = dict(params, mask=torch.tensor(np.asarray(mask, np.float64)))
    v = ref(xt, yt, C, **params)
    v.backward()
    return float(v), xt.grad.numpy()


def check_loss(chk, name, spec, ref, params, x, y, C, tmp, rtol=2e-5, grad_rel=5e-5, fd=True, extra=(),
               fd_rel=2e-3, fd_step=None, mask=None):
    """Compares value and gradient with the reference; optionally a finite-difference check.
    mask: optional (N, 1, spatial...) voxel weights, given to segloss (--mask / sl_target.mask)
    and to ref as the keyword mask."""
    val, grad, err = run_cli(spec, x, y, tmp, extra, mask)
    label = "%s %s x%s %s%s" % (name, spec, x.shape, "labels" if y.dtype.kind != "f" else "soft",
                               "" if mask is None else " masked")
    if err is not None:
        chk.true("%s: segloss failed: %s" % (label, err), False)
        return
    rv, rg = reference(ref, x, y, C, params, mask)
    chk.close("%s value" % label, val, rv, rtol=rtol, atol=1e-7, group=name + " value")
    scale = max(float(np.abs(rg).max()), 1e-12)
    chk.close("%s grad" % label, grad, rg, rtol=1e-4, atol=grad_rel * scale, group=name + " grad")
    # Under the sanitizers (SL_QUICK=1) the finite differences are left out:
    # they run the same C path twice more, which the release pass checks.
    if fd and not slref.QUICK:
        # Central difference of the C value along a random direction v:
        # (L(x + hv) − L(x − hv)) / 2h against <grad, v>. The C value is
        # float32 internally, so the tolerance adds the rounding floor
        # ~ 1e-6·|L| / h. With activation=none the step is relative to x so
        # that probabilities stay in (0, 1).
        rng = np.random.default_rng(7)
        v = rng.normal(0, 1, x.shape)
        h = fd_step if fd_step is not None else 1e-2
        if "activation=none" in spec:
            v = v * np.minimum(x, 1 - x) * 0.5
        xp = (x + h * v).astype(np.float32)
        xm = (x - h * v).astype(np.float32)
        step = xp.astype(np.float64) - xm.astype(np.float64)
        lp, lm = value_cli(spec, xp, y, tmp, extra, mask), value_cli(spec, xm, y, tmp, extra, mask)
        fdv = (lp - lm) / (2 * h)
        an = float((grad.astype(np.float64) * step).sum()) / (2 * h)
        tol = fd_rel * abs(an) + 2e-6 * max(abs(lp), abs(lm), 1e-3) / h
        chk.close("%s finite-diff" % label, fdv, an, rtol=0, atol=tol, group=name + " finite-diff")


def spec_of(name, params):
    """Spec text for a loss and a dict of parameters ('_'-prefixed keys and activation=auto are skipped)."""
    items = []
    for k, v in params.items():
        if k.startswith("_") or (k == "activation" and v == "auto"):
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = "[" + ",".join(repr(float(a)) for a in v) + "]"
        items.append("%s=%s" % (k, v))
    return name + ("(" + ",".join(items) + ")" if items else "")


def tmpdir():
    return tempfile.TemporaryDirectory(prefix="segloss-ref-")


def shapes(quick):
    """(N, spatial) combinations: 2-D and 3-D, batch 1 and 3."""
    if quick:
        return [(1, (9, 11)), (2, (4, 5, 6))]
    return [(1, (9, 11)), (3, (7, 10)), (1, (5, 6, 7)), (3, (4, 5, 6))]


def quick_pick(shape_list, i):
    """All shapes in the release pass; under the sanitizers (SL_QUICK=1) one of
    them, alternating with i (run_matrix: the variant and the class count), so
    that the 2-D and 3-D shapes are both still run across a matrix."""
    return [shape_list[i % len(shape_list)]] if slref.QUICK else shape_list


def run_matrix(chk, name, spec_fn, ref, variants, channels=(1, 2, 4), kinds=("labels", "soft"), seed=0, **kw):
    """Runs every variant (dict of params; '_spec' gives the spec text) over shapes, C and target kinds.

    spec_fn(params) -> spec string. A variant may carry '_channels', '_kinds', '_activation',
    '_ignore' (ignore_index value used when generating labels) to restrict or shape the inputs.
    """
    rng = np.random.default_rng(seed)
    with tmpdir() as tmp:
        for vi, params in enumerate(variants):
            p = {k: v for k, v in params.items() if not k.startswith("_")}
            chans = params.get("_channels", channels)
            kinds_here = params.get("_kinds", kinds)
            # under the sanitizers the smallest and largest C only, each with one
            # target kind and one shape, rotating with the variant so that every
            # (C, kind, shape) still runs across a matrix of four variants (memory
            # safety does not need the whole product); the release pass runs all
            if slref.QUICK and len(chans) > 2:
                chans = (chans[0], chans[-1])
            for ci, C in enumerate(chans):
                for ki, kind in enumerate(kinds_here):
                    if slref.QUICK and len(chans) > 1 and len(kinds_here) > 1 and ki != (vi + ci) % len(kinds_here):
                        continue
                    for N, spatial in quick_pick(shapes(slref.QUICK), vi // 2 + ci if slref.QUICK else 0):
                        act = params.get("_activation", "auto")
                        x, y = make_inputs(rng, N, C, spatial, kind, activation=act,
                                           ignore_index=params.get("_ignore"), empty_class=params.get("_empty"))
                        spec = spec_fn(dict(params, activation=act))
                        check_loss(chk, name, spec, ref, dict(p, activation=act), x, y, C, tmp, **kw)
