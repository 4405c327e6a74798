"""Loading libsegloss.so and the small pieces every binding needs.

- lib(): the ctypes.CDLL, loaded once. Where it comes from, in this order:
  $SEGLOSS_LIB (a file), the copy installed inside the package, the build
  folder of the checkout this package sits in ($SEGLOSS_BUILD, else
  <checkout>/build), then the system library path. When none loads, the
  error lists every path tried.
- msgbuf(), check(): the C one-line message buffer and the status -> exception step.
- threads(n): the explicit thread count passed to every C call.
- as_f32(), as_labels(), ...: C-contiguous numpy arrays of the C types.
"""
import ctypes
import ctypes.util
import os
import sys

import numpy as np

from . import errors

MSG_LEN = 512
MAX_SPATIAL = 3   # SL_MAX_SPATIAL

_lib = None
_forked_child = False


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    paths = []
    env = os.environ.get("SEGLOSS_LIB")
    if env:
        paths.append(env)
    paths.append(os.path.join(here, "libsegloss.so"))
    build = os.environ.get("SEGLOSS_BUILD")
    if build:
        paths.append(os.path.join(build, "libsegloss.so"))
    # python/segloss/_lib.py in a checkout: the checkout is two levels up.
    paths.append(os.path.join(os.path.dirname(os.path.dirname(here)), "build", "libsegloss.so"))
    found = ctypes.util.find_library("segloss")
    paths.append(found if found else "libsegloss.so")
    return paths


def lib():
    """The shared library (loaded on first use)."""
    global _lib
    if _lib is None:
        tried = []
        for path in _candidates():
            # A file path that does not exist is only recorded; a bare name
            # goes to the dynamic loader (system library path).
            if os.sep in path and not os.path.exists(path):
                tried.append("%s (no such file)" % path)
                continue
            try:
                handle = ctypes.CDLL(path)
            except OSError as e:
                tried.append("%s (%s)" % (path, e))
                continue
            _declare(handle)
            _lib = handle
            break
        if _lib is None:
            raise OSError("segloss: cannot load libsegloss.so; tried: " + "; ".join(tried)
                          + ". Build it with `make build` or set SEGLOSS_LIB to its path.")
    return _lib


def _declare(h):
    """Prototypes of the functions every binding uses (others are declared next to their users)."""
    h.sl_strerror.restype = ctypes.c_char_p
    h.sl_strerror.argtypes = [ctypes.c_int]
    h.sl_version.restype = ctypes.c_char_p
    h.sl_version.argtypes = []


def msgbuf():
    """A buffer for the C one-line message (pass it and MSG_LEN to the call)."""
    return ctypes.create_string_buffer(MSG_LEN)


def check(status, buf=None, what=""):
    """Raises the exception mapped from a non-zero C status with the C message."""
    if status == 0:
        return
    msg = buf.value.decode("utf-8", "replace") if buf is not None else ""
    if not msg:
        msg = lib().sl_strerror(int(status)).decode()
    raise errors.from_status(status, (what + ": " + msg) if what else msg)


# ---------------------------------------------------------------- threads


def _after_fork_in_child():
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _in_dataloader_worker():
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        return torch.utils.data.get_worker_info() is not None
    except AttributeError:
        return False


def threads(n=None):
    """The thread count for a C call.

    n if given, else torch.get_num_threads() when torch is already imported,
    else the number of cores. Always 1 in a forked child and in a PyTorch
    DataLoader worker: GNU OpenMP hangs in a forked child whose parent ran a
    parallel region, and DataLoader workers are forked.
    """
    if n is not None:
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError("threads must be a positive integer, got %r" % (n,))
    if _forked_child or _in_dataloader_worker():
        return 1
    if n is not None:
        return int(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- arrays


class Dims(ctypes.Structure):
    """sl_dims of include/segloss/core.h."""
    _fields_ = [("n", ctypes.c_int64), ("c", ctypes.c_int64), ("spatial_ndim", ctypes.c_int),
                ("spatial", ctypes.c_int64 * MAX_SPATIAL)]


def dims(shape):
    """sl_dims for a channels-first shape (N, C, spatial...); ValueError for a shape it cannot hold."""
    shape = tuple(int(s) for s in shape)
    if not 3 <= len(shape) <= 2 + MAX_SPATIAL:
        raise errors.ShapeError("expected (N, C, spatial...) with 1 to %d spatial axes, got shape %s"
                                % (MAX_SPATIAL, shape))
    sp = list(shape[2:]) + [1] * (MAX_SPATIAL - (len(shape) - 2))
    return Dims(shape[0], shape[1], len(shape) - 2, (ctypes.c_int64 * MAX_SPATIAL)(*sp))


def as_f32(a, what="array"):
    """A C-contiguous float32 numpy array of a. No copy when a already is one;
    a copy (with conversion) for other float dtypes or non-contiguous arrays.
    TypeError for non-numeric input."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise errors.DTypeError("%s: expected a numeric array, got dtype %s" % (what, a.dtype))
    return np.ascontiguousarray(a, dtype=np.float32)


def as_f64(a, what="array"):
    """As as_f32, for float64."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise errors.DTypeError("%s: expected a numeric array, got dtype %s" % (what, a.dtype))
    return np.ascontiguousarray(a, dtype=np.float64)


def as_labels(a, what="labels", out=None):
    """A C-contiguous int32 numpy array of integer (or bool) labels. No copy
    for int32 C-contiguous input; other integer dtypes are converted after a
    range check (a value outside int32 raises ValueError rather than wrap);
    float input raises TypeError (labels are never rounded silently). out, an
    int32 C-contiguous array of the same shape, receives a conversion instead
    of a new array (a caller's reused buffer: no fresh pages to fault in)."""
    a = np.asarray(a)
    if a.dtype.kind == "b":
        return np.ascontiguousarray(a, dtype=np.int32)
    if a.dtype.kind not in "iu":
        raise errors.DTypeError("%s: expected an integer label array, got dtype %s" % (what, a.dtype))
    if a.dtype == np.int32 and a.flags.c_contiguous:
        return a
    # only 32-bit unsigned and 64-bit types can hold values outside int32
    if a.size and (a.itemsize > 4 or a.dtype == np.uint32):
        lo, hi = int(a.min()), int(a.max())
        if lo < -2**31 or hi > 2**31 - 1:
            raise errors.RangeError("%s: value %d does not fit in int32" % (what, lo if lo < -2**31 else hi))
    if out is not None and out.shape == a.shape and out.dtype == np.int32 and out.flags.c_contiguous:
        np.copyto(out, a, casting="unsafe")
        return out
    return np.ascontiguousarray(a, dtype=np.int32)


def ptr(a, ctype=ctypes.c_void_p):
    """The data pointer of a numpy array (None for None)."""
    if a is None:
        return None
    return a.ctypes.data_as(ctype) if ctype is not ctypes.c_void_p else ctypes.c_void_p(a.ctypes.data)
