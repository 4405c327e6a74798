"""Shared helpers for the reference tests (Debian's /usr/bin/python3).

- cli(args): runs the segloss binary ($SEGLOSS, default build/segloss) and
  returns (returncode, stdout, stderr).
- lib(): the shared library ($SEGLOSS_BUILD/libsegloss.so) through ctypes.
  nn_kernels(): the same plus the internal nn layer kernels (test-only).
  Scripts that call lib() must contain the line "sanitized: skip" in a
  comment (the sanitized build cannot be loaded into Python).
- Check: collects named comparisons, prints "max |diff| ..." lines and exits
  non-zero if any failed.
"""
import ctypes
import os
import subprocess
import sys

ROOT = os.environ.get("SEGLOSS_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SEGLOSS_BUILD", os.path.join(ROOT, "build"))
SEGLOSS = os.environ.get("SEGLOSS", os.path.join(BUILD, "segloss"))
QUICK = os.environ.get("SL_QUICK", "0") == "1"


def cli(args, check=False):
    env = None
    if QUICK and args and args[0] == "loss" and "OPENBLAS_NUM_THREADS" not in os.environ:
        # `segloss loss` calls no BLAS, but OpenBLAS starts its thread pool when the binary loads:
        # under ASan that is about a third of each of the thousands of calls the loss references make
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([SEGLOSS] + [str(a) for a in args], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise RuntimeError("segloss %s failed (%d): %s" % (" ".join(map(str, args)), r.returncode, r.stderr.strip()))
    return r.returncode, r.stdout, r.stderr


_lib = None


def lib():
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(os.path.join(BUILD, "libsegloss.so"))
    return _lib


class _NnKernels:
    """libsegloss.so plus the internal layer kernels of src/nn/layers.h.

    The library exports only its public API; the kernels, which the nn
    references test one by one, are reached through the one test-only
    export, sl_test_nn_kernel(name) (src/nn/test_kernels.c). Attribute access
    works as on the CDLL: K.sl_conv2d_forward, with argtypes/restype
    settable, and any public name falls through to the library.
    """

    def __init__(self, so):
        self._so = so
        self._fns = {}
        so.sl_test_nn_kernel.restype = ctypes.c_void_p
        so.sl_test_nn_kernel.argtypes = [ctypes.c_char_p]

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._fns:
            addr = self._so.sl_test_nn_kernel(name.encode())
            # CDLL's defaults for a fresh function: int result, no argtypes.
            self._fns[name] = ctypes.CFUNCTYPE(ctypes.c_int)(addr) if addr else getattr(self._so, name)
        return self._fns[name]


def nn_kernels():
    """lib() with the internal nn layer kernels reachable by name (see _NnKernels)."""
    return _NnKernels(lib())


class Check:
    """Records comparisons; report() prints them and exits 1 on any failure."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.count = 0
        self.worst = {}

    def close(self, what, got, want, rtol=1e-5, atol=1e-6, group=None):
        import numpy as np
        got = np.asarray(got, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        self.count += 1
        if got.shape != want.shape:
            self.failures.append("%s: shape %s != %s" % (what, got.shape, want.shape))
            return False
        both_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
        diff = np.where(both_inf, 0.0, np.abs(got - want))
        diff = np.where(np.isnan(diff), np.inf, diff)
        md = float(diff.max()) if diff.size else 0.0
        key = group or what.split(" ")[0]
        self.worst[key] = max(self.worst.get(key, 0.0), md)
        ok = bool(np.all(diff <= atol + rtol * np.abs(np.where(both_inf, 0.0, want))))
        if not ok:
            self.failures.append("%s: max |diff| %.3g (rtol %g, atol %g)" % (what, md, rtol, atol))
        return ok

    def true(self, what, cond):
        self.count += 1
        if not cond:
            self.failures.append(what)
        return bool(cond)

    def report(self):
        for k in sorted(self.worst):
            print("max |diff| %-40s %.3g" % (k, self.worst[k]))
        for f in self.failures[:50]:
            print("FAILED:", f)
        print("%s: %d checks, %d failed" % (self.name, self.count, len(self.failures)))
        sys.exit(1 if self.failures else 0)
