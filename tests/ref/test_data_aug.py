#!/usr/bin/python3
"""The data module's resampling kernels against scipy and PyTorch (float64).

- sl_warp2d (rotation + zoom + flip + crop window + displacement field,
  built by sl_spatial2d_matrix) against scipy.ndimage.map_coordinates at the
  same coordinates: bilinear (order=1) at points whose 2x2 neighbourhood is
  inside the image, nearest (order=0) labels away from rounding ties;
- sl_resize2d(resample) against torch.nn.functional.interpolate(bilinear,
  align_corners=False) for the image and nearest-exact for the labels,
  up and down;
- sl_blur2d against scipy.ndimage.gaussian_filter(mode='reflect',
  truncate=4), anisotropic sigmas;
- the elastic field is not compared (it is a random draw); its RMS and
  smoothness are checked in tests/unit/test_data.c.

Loads libsegloss.so through ctypes. sanitized: skip
"""
import ctypes
import math
import sys

import numpy as np
import scipy.ndimage as ndi
import torch

sys.path.insert(0, __import__("os").path.dirname(__file__))
from slref import QUICK, Check, lib  # noqa: E402

L = lib()
F32P = ctypes.POINTER(ctypes.c_float)
I32P = ctypes.POINTER(ctypes.c_int32)
D6 = ctypes.c_double * 6


class Spatial(ctypes.Structure):
    _fields_ = [("center", ctypes.c_double * 2), ("extent", ctypes.c_double * 2),
                ("angle_deg", ctypes.c_double), ("scale", ctypes.c_double), ("flip", ctypes.c_int * 2)]


L.sl_warp2d.argtypes = [F32P, I32P, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, F32P,
                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int, F32P, I32P]
L.sl_warp2d.restype = ctypes.c_int
L.sl_spatial2d_matrix.argtypes = [ctypes.POINTER(Spatial), ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
L.sl_spatial2d_matrix.restype = ctypes.c_int
L.sl_resize2d.argtypes = [F32P, I32P, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                          ctypes.c_int, F32P, I32P]
L.sl_resize2d.restype = ctypes.c_int
L.sl_blur2d.argtypes = [F32P, F32P, ctypes.c_int64, ctypes.c_int64, ctypes.c_double, ctypes.c_double]
L.sl_blur2d.restype = ctypes.c_int


def fp(a):
    return a.ctypes.data_as(F32P)


def ip(a):
    return a.ctypes.data_as(I32P)


def warp(img, lab, m, disp, oh, ow, interp):
    oi = np.zeros((oh, ow), np.float32)
    ol = np.zeros((oh, ow), np.int32)
    st = L.sl_warp2d(fp(img), ip(lab), img.shape[0], img.shape[1], ctypes.byref(m),
                     fp(disp) if disp is not None else None, oh, ow, interp, fp(oi), ip(ol))
    assert st == 0, st
    return oi, ol


def main():
    chk = Check("test_data_aug")
    rng = np.random.default_rng(7)
    cases = 6 if QUICK else 24
    for k in range(cases):
        h, w = int(rng.integers(9, 40)), int(rng.integers(9, 40))
        oh, ow = int(rng.integers(5, 40)), int(rng.integers(5, 40))
        img = rng.standard_normal((h, w)).astype(np.float32)
        lab = rng.integers(0, 4, (h, w)).astype(np.int32)
        sp = Spatial((rng.uniform(0, h - 1), rng.uniform(0, w - 1)),
                     (rng.uniform(0.5, 1.5) * oh, rng.uniform(0.5, 1.5) * ow),
                     rng.uniform(-180, 180), rng.uniform(0.6, 1.6), (int(rng.integers(0, 2)), int(rng.integers(0, 2))))
        m = D6()
        assert L.sl_spatial2d_matrix(ctypes.byref(sp), oh, ow, ctypes.byref(m)) == 0
        disp = (rng.standard_normal((2, oh, ow)) * 0.7).astype(np.float32) if k % 2 else None

        # the reference coordinates, from the documented formula
        yo, xo = np.meshgrid(np.arange(oh, dtype=np.float64), np.arange(ow, dtype=np.float64), indexing="ij")
        uy, ux = yo - (oh - 1) / 2, xo - (ow - 1) / 2
        if sp.flip[0]:
            uy = -uy
        if sp.flip[1]:
            ux = -ux
        fy, fx = sp.extent[0] / oh / sp.scale, sp.extent[1] / ow / sp.scale
        c, s = math.cos(math.radians(sp.angle_deg)), math.sin(math.radians(sp.angle_deg))
        y = sp.center[0] + c * fy * uy - s * fx * ux
        x = sp.center[1] + s * fy * uy + c * fx * ux
        if disp is not None:
            y = y + disp[0]
            x = x + disp[1]

        oi, ol = warp(img, lab, m, disp, oh, ow, 0)
        # bilinear where the whole 2x2 neighbourhood is inside
        inner = (y >= 0) & (y <= h - 1) & (x >= 0) & (x <= w - 1)
        ref = ndi.map_coordinates(img.astype(np.float64), [y, x], order=1, mode="nearest")
        chk.close("warp bilinear %d" % k, oi[inner], ref[inner], rtol=1e-5, atol=2e-5, group="warp_bilinear")
        # outside the image (nearest pixel outside): 0
        outside = (np.floor(y + 0.5) < 0) | (np.floor(y + 0.5) >= h) | (np.floor(x + 0.5) < 0) | (np.floor(x + 0.5) >= w)
        chk.true("warp outside is 0 (%d)" % k, np.all(oi[outside] == 0) and np.all(ol[outside] == 0))
        # nearest labels away from rounding ties
        tie = (np.abs(y - np.floor(y) - 0.5) < 1e-6) | (np.abs(x - np.floor(x) - 0.5) < 1e-6)
        sel = ~outside & ~tie
        refl = ndi.map_coordinates(lab, [y, x], order=0, mode="nearest")
        chk.close("warp nearest labels %d" % k, ol[sel], refl[sel], rtol=0, atol=0, group="warp_nearest")
        # nearest image == nearest label coordinates
        ni, _ = warp(img, lab, m, disp, oh, ow, 1)
        refn = ndi.map_coordinates(img, [y, x], order=0, mode="nearest")
        chk.close("warp nearest image %d" % k, ni[sel], refn[sel], rtol=0, atol=0, group="warp_nearest")

    # resize (resample) against torch.interpolate
    for (h, w, oh, ow) in [(17, 23, 40, 31), (64, 48, 21, 37), (10, 10, 10, 10), (33, 7, 12, 19)]:
        img = rng.standard_normal((h, w)).astype(np.float32)
        lab = rng.integers(0, 5, (h, w)).astype(np.int32)
        oi = np.zeros((oh, ow), np.float32)
        ol = np.zeros((oh, ow), np.int32)
        assert L.sl_resize2d(fp(img), ip(lab), h, w, oh, ow, 1, fp(oi), ip(ol)) == 0
        t = torch.from_numpy(img.astype(np.float64))[None, None]
        ref = torch.nn.functional.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=False)[0, 0].numpy()
        chk.close("resize bilinear %dx%d->%dx%d" % (h, w, oh, ow), oi, ref, rtol=1e-5, atol=2e-6, group="resize_bilinear")
        # nearest-exact in exact integer arithmetic: src = floor((2 dst + 1) in / (2 out))
        iy = ((2 * np.arange(oh) + 1) * h) // (2 * oh)
        ix = ((2 * np.arange(ow) + 1) * w) // (2 * ow)
        chk.close("resize nearest exact %dx%d->%dx%d" % (h, w, oh, ow), ol, lab[np.ix_(iy, ix)], rtol=0, atol=0,
                  group="resize_nearest")
        # PyTorch's nearest-exact agrees except at exact ties, where its float
        # product (dst + 0.5) * (in / out) can land an ulp below the integer
        tl = torch.from_numpy(lab.astype(np.float64))[None, None]
        refl = torch.nn.functional.interpolate(tl, size=(oh, ow), mode="nearest-exact")[0, 0].numpy()
        tie_y = ((2 * np.arange(oh) + 1) * h) % (2 * oh) == 0
        tie_x = ((2 * np.arange(ow) + 1) * w) % (2 * ow) == 0
        sel = ~tie_y[:, None] & ~tie_x[None, :]
        chk.close("resize vs torch nearest-exact %dx%d->%dx%d" % (h, w, oh, ow), ol[sel], refl[sel], rtol=0, atol=0,
                  group="resize_nearest")

    # blur against scipy.ndimage.gaussian_filter
    for (h, w, sy, sx) in [(20, 31, 1.0, 1.0), (13, 9, 2.5, 0.7), (40, 40, 0.5, 3.0), (5, 64, 1.7, 0.0), (3, 3, 2.0, 2.0)]:
        img = rng.standard_normal((h, w)).astype(np.float32)
        out = np.zeros_like(img)
        assert L.sl_blur2d(fp(img), fp(out), h, w, sy, sx) == 0
        ref = ndi.gaussian_filter(img.astype(np.float64), sigma=(sy, sx), mode="reflect", truncate=4.0)
        chk.close("blur %dx%d sigma (%g, %g)" % (h, w, sy, sx), out, ref, rtol=1e-5, atol=1e-6, group="blur")
    chk.report()


if __name__ == "__main__":
    main()
