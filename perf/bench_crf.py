"""Dense CRF speed: segloss's sl_crf (permutohedral lattice, O(N)) against the same mean field with the exact
O(N^2) Gaussian sums in PyTorch (float32 kernel matrices, built once, then one matrix product per kernel and
iteration) on sizes where the brute force fits in memory; then segloss alone on a 256x256 image and a 64^3
volume. Same process, same inputs, same thread count (BENCH_THREADS, default 2), 5 iterations, 2 classes,
default parameters but theta_alpha = 20 mm (so that the brute force's kernel is not flat over the small images).
Prints RATIO lines (peer time / segloss time) and the load average.
"""
import ctypes as C
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import THREADS, interleaved_min, median_time, ratio_line, slref  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", "3"))
W1, TA, TB, W2, TG, ITERS = 10.0, 20.0, 0.2, 3.0, 3.0, 5


class Grid(C.Structure):
    _fields_ = [("ndim", C.c_int), ("shape", C.c_int64 * 3), ("spacing", C.c_double * 3)]


class Params(C.Structure):
    _fields_ = [("w_appearance", C.c_double), ("theta_alpha", C.c_double), ("theta_beta", C.c_double),
                ("w_smoothness", C.c_double), ("theta_gamma", C.c_double), ("iterations", C.c_int),
                ("threads", C.c_int)]


lib = slref.lib()
fp = C.POINTER(C.c_float)
lib.sl_crf.argtypes = [fp, C.c_int64, fp, C.c_int, C.POINTER(Grid), C.POINTER(Params), fp, C.c_char_p, C.c_size_t]


def scene(shape, seed=0):
    """a ball of class 1 in noise: (2, shape) softmax and the z-scored image"""
    r = np.random.default_rng(seed)
    g = np.meshgrid(*[np.arange(s) - s / 2 for s in shape], indexing="ij")
    fg = sum(x * x for x in g) < (min(shape) / 3) ** 2
    img = fg + 0.5 * r.normal(size=shape)
    img = ((img - img.mean()) / img.std()).astype(np.float32)
    p1 = np.clip(0.3 + 0.4 * fg + 0.3 * r.normal(size=shape), 0.01, 0.99)
    return np.ascontiguousarray(np.stack([1 - p1, p1]).astype(np.float32)), img


def segloss_crf(P, img):
    q = np.empty_like(P)
    g = Grid(img.ndim, (C.c_int64 * 3)(*img.shape, *([0] * (3 - img.ndim))), (C.c_double * 3)(1, 1, 1))
    prm = Params(W1, TA, TB, W2, TG, ITERS, THREADS)
    msg = C.create_string_buffer(256)

    def call():
        st = lib.sl_crf(P.ctypes.data_as(fp), P.shape[0], img.ctypes.data_as(fp), 1, C.byref(g), C.byref(prm),
                        q.ctypes.data_as(fp), msg, 256)
        if st != 0:
            raise RuntimeError(msg.value.decode())
    return call, q


def torch_crf(P, img):
    """the same model with exact kernels: K built once, Q <- softmax(-U + sum_m w_m (K_m Q) / (K_m 1))"""
    out = {}

    def call():
        pos = torch.from_numpy(np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in img.shape],
                                                    indexing="ij"), -1).reshape(-1, img.ndim))
        it = torch.from_numpy(img.reshape(-1, 1))
        d2 = torch.cdist(pos, pos) ** 2
        ka = torch.exp(-d2 / (2 * TA * TA) - torch.cdist(it, it) ** 2 / (2 * TB * TB))
        ks = torch.exp(-d2 / (2 * TG * TG))
        del d2
        na, ns = 1 / ka.sum(1, keepdim=True), 1 / ks.sum(1, keepdim=True)
        p = torch.from_numpy(P.reshape(P.shape[0], -1).T.copy())
        u = -torch.log(torch.clamp(p, min=1e-30))
        q = p
        for _ in range(ITERS):
            q = torch.softmax(-u + W1 * (ka @ q) * na + W2 * (ks @ q) * ns, dim=1)
        out["q"] = q.T.reshape(P.shape).numpy()
    return call, out


def main():
    torch.set_num_threads(THREADS)
    print("load average: %s" % open("/proc/loadavg").read().split()[:3])
    for name, shape in (("2-D 48x48", (48, 48)), ("3-D 16^3", (16, 16, 16))):
        P, img = scene(shape)
        seg, q = segloss_crf(P, img)
        ref, out = torch_crf(P, img)
        t_seg, t_ref = interleaved_min([seg, ref], REPS)
        diff = np.abs(q - out["q"]).max()
        agree = (q.argmax(0) == out["q"].argmax(0)).mean()
        print("%s: max |Q - exact mean field| %.3f, labels equal on %.1f %% of voxels" % (name, diff, 100 * agree))
        print(ratio_line("crf %s (exact torch float32 brute force)" % name, t_seg, "torch", t_ref))
    for name, shape in (("2-D 256x256", (256, 256)), ("3-D 64^3", (64, 64, 64))):
        P, img = scene(shape)
        seg, _ = segloss_crf(P, img)
        t, _ = median_time(seg, REPS)
        print("segloss crf %s, C 2, %d iterations, threads %d: %.3f s" % (name, ITERS, THREADS, t))


if __name__ == "__main__":
    main()
