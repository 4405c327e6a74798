"""sl_sliding_window against a numpy/scipy transcription of nnU-Net v2's
sliding-window inference (nnunetv2/inference/sliding_window_prediction.py:
compute_gaussian, compute_steps_for_sliding_window; predict_from_raw_data.py:
pad_nd_image to the patch, the Gaussian-weighted accumulation of logits and
of the weights, the division, the crop back). The forward is a fixed
position-dependent map (a random per-voxel bias and gain within the window,
mixing the input channels), so overlapping windows disagree and the
weighting decides the result. Volumes that need several windows per axis,
and one shorter than the patch on one axis (padding)."""
# sanitized: skip (loads libsegloss.so through ctypes)
import ctypes
import os

import numpy as np
from scipy.ndimage import gaussian_filter

import pyref  # noqa: F401  (paths)
import slref

chk = slref.Check("sliding window vs nnU-Net")
lib = ctypes.CDLL(os.environ["SEGLOSS_LIB"])


# ---- nnU-Net v2, transcribed
def compute_gaussian(tile_size, sigma_scale=1.0 / 8, value_scaling_factor=1.0):
    tmp = np.zeros(tile_size)
    center_coords = [i // 2 for i in tile_size]
    sigmas = [i * sigma_scale for i in tile_size]
    tmp[tuple(center_coords)] = 1
    g = gaussian_filter(tmp, sigmas, 0, mode="constant", cval=0)
    g = g / (np.max(g) / value_scaling_factor)
    mask = g == 0
    g[mask] = np.min(g[~mask])
    return g


def compute_steps_for_sliding_window(image_size, tile_size, tile_step_size):
    target = [i * tile_step_size for i in tile_size]
    num_steps = [int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, target, tile_size)]
    steps = []
    for dim in range(len(tile_size)):
        max_step_value = image_size[dim] - tile_size[dim]
        actual = max_step_value / (num_steps[dim] - 1) if num_steps[dim] > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num_steps[dim])])
    return steps


def nnunet_predict(data, tile, step, forward, cout):
    """data (C, *spatial) -> aggregated (cout, *spatial), as nnU-Net."""
    spatial = data.shape[1:]
    # pad_nd_image(..., 'constant', value 0): to at least the patch, floor half before
    full = [max(s, t) for s, t in zip(spatial, tile)]
    below = [(f - s) // 2 for f, s in zip(full, spatial)]
    pad = [(0, 0)] + [(b, f - s - b) for b, f, s in zip(below, full, spatial)]
    d = np.pad(data, pad, mode="constant", constant_values=0)
    g = compute_gaussian(tile)
    steps = compute_steps_for_sliding_window(full, tile, step)
    logits = np.zeros((cout,) + tuple(full))
    n_pred = np.zeros(tuple(full))
    for sz in steps[0]:
        for sy in steps[1]:
            for sx in steps[2]:
                sl = (slice(sz, sz + tile[0]), slice(sy, sy + tile[1]), slice(sx, sx + tile[2]))
                pred = forward(d[(slice(None),) + sl])
                logits[(slice(None),) + sl] += pred * g
                n_pred[sl] += g
    logits /= n_pred
    crop = tuple(slice(b, b + s) for b, s in zip(below, spatial))
    return logits[(slice(None),) + crop]


# ---- the forward: (cin, tile) -> (cout, tile), position-dependent
rng = np.random.default_rng(5)


def make_forward(cin, cout, tile):
    w = rng.standard_normal((cout, cin))
    bias = rng.standard_normal((cout,) + tuple(tile))
    gain = 1.0 + 0.3 * rng.standard_normal((cout,) + tuple(tile))

    def f(x):
        return gain * np.tensordot(w, x, axes=(1, 0)) + bias
    return f


FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float),
                      ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)


class WindowOpts(ctypes.Structure):
    _fields_ = [("patch", ctypes.c_int64 * 3), ("step", ctypes.c_double), ("gaussian", ctypes.c_int),
                ("sigma_scale", ctypes.c_double)]


lib.sl_sliding_window.restype = ctypes.c_int
lib.sl_sliding_window.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.POINTER(WindowOpts),
                                  FN, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_char_p,
                                  ctypes.c_size_t]


def segloss_predict(data, tile, step, forward, cout):
    cin = data.shape[0]
    spatial = data.shape[1:]
    n = int(np.prod(tile))

    def cb(px, pout, user, msg, msglen):
        x = np.ctypeslib.as_array(px, shape=(cin * n,)).astype(np.float64).reshape((cin,) + tuple(tile))
        y = forward(x).astype(np.float32).ravel()
        np.ctypeslib.as_array(pout, shape=(cout * n,))[:] = y
        return 0
    cfn = FN(cb)
    x = np.ascontiguousarray(data, dtype=np.float32)
    out = np.zeros((cout,) + tuple(spatial), dtype=np.float32)
    size = (ctypes.c_int64 * 3)(*spatial)
    o = WindowOpts((ctypes.c_int64 * 3)(*tile), step, 1, 1.0 / 8)
    msg = ctypes.create_string_buffer(256)
    st = lib.sl_sliding_window(x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), cin, 3, size, cout,
                               ctypes.byref(o), cfn, None, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                               msg, 256)
    chk.true("status %d: %s" % (st, msg.value.decode()), st == 0)
    return out


cases = [
    # (spatial, tile, step, cin, cout)
    ((20, 37, 29), (8, 16, 16), 0.5, 1, 3),   # several windows per axis, 2.5-type rounding
    ((5, 30, 40), (8, 16, 12), 0.5, 2, 2),    # first axis shorter than the patch: padded
    ((24, 24, 24), (16, 16, 16), 0.25, 1, 2), # finer steps
]
for spatial, tile, step, cin, cout in cases:
    data = rng.standard_normal((cin,) + spatial)
    # the C side sees float32 input; the reference gets the same values
    data = data.astype(np.float32).astype(np.float64)
    fwd = make_forward(cin, cout, tile)
    want = nnunet_predict(data, tile, step, fwd, cout)
    got = segloss_predict(data, tile, step, fwd, cout)
    chk.close("aggregation %s tile %s step %g" % (spatial, tile, step), got, want, rtol=1e-5, atol=1e-5,
              group="aggregation")
    # the importance map itself
    g = np.zeros(int(np.prod(tile)), dtype=np.float32)
    lib.sl_window_gaussian.restype = ctypes.c_int
    st = lib.sl_window_gaussian(3, (ctypes.c_int64 * 3)(*tile), ctypes.c_double(1.0 / 8),
                                g.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    chk.true("gaussian status", st == 0)
    chk.close("gaussian %s" % (tile,), g.reshape(tile), compute_gaussian(tile), rtol=1e-6, atol=1e-7, group="gaussian")
    # the window starts
    full = [max(s, t) for s, t in zip(spatial, tile)]
    for a, want_steps in enumerate(compute_steps_for_sliding_window(full, tile, step)):
        k = ctypes.c_int64(0)
        starts = (ctypes.c_int64 * 64)()
        lib.sl_window_starts(ctypes.c_int64(spatial[a]), ctypes.c_int64(tile[a]), ctypes.c_double(step), starts,
                             ctypes.byref(k))
        chk.true("starts axis %d of %s: %s vs %s" % (a, spatial, list(starts[:k.value]), want_steps),
                 list(starts[:k.value]) == want_steps)
chk.report()
