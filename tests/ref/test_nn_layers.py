"""Every U-Net layer kernel (src/nn/layers.h) against PyTorch autograd.

Forward outputs and all backward gradients of: 2-D convolution (3x3 pad 1,
3x3 stride 2, 1x1, with and without bias, single input and a two-input
concatenation, one tile and several tiles), 2x2 stride-2 transposed
convolution, instance norm + LeakyReLU, batch norm + LeakyReLU (training and
eval, running statistics), LeakyReLU alone, 2x2 max-pool (with ties and NaN)
and nearest downsampling. The reference is PyTorch in float64 on the same
float32 inputs; the C kernels compute in float32, so the tolerance is
relative to the largest reference value: |c - ref| <= 1e-4 |ref| + 2e-5 max|ref|
(float32 rounding of sums over up to 600 terms). Both accumulate modes of the
input gradient (acc = 0 overwrite, acc = 1 add) are checked, and every
kernel is run with 1 and 2 threads, which must agree bit for bit. The
convolutions run on each instruction set this CPU has (AVX-512: the same
3x3 convolutions through src/nn/conv_same.c; else im2col and sgemm).

Loads libsegloss.so through ctypes -- sanitized: skip
"""
import ctypes
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import slref  # noqa: E402

torch.set_default_dtype(torch.float64)
fp = ctypes.POINTER(ctypes.c_float)
i64 = ctypes.c_int64


class ConvShape(ctypes.Structure):
    _fields_ = [("B", i64), ("C1", i64), ("C2", i64), ("Cout", i64), ("H", i64), ("W", i64),
                ("K", ctypes.c_int), ("stride", ctypes.c_int), ("pad", ctypes.c_int)]


class Dims(ctypes.Structure):
    _fields_ = [("n", i64), ("c", i64), ("spatial_ndim", ctypes.c_int), ("spatial", i64 * 3)]


L = slref.nn_kernels()
L.sl_conv2d_work_bytes.restype = ctypes.c_size_t
L.sl_convt2x2_work_bytes.restype = ctypes.c_size_t
L.sl_convt2x2_work_bytes.argtypes = [i64] * 5 + [ctypes.c_int]
L.sl_norm_work_bytes.restype = ctypes.c_size_t
L.sl_norm_work_bytes.argtypes = [i64, i64]
chk = slref.Check("test_nn_layers")
rng = np.random.default_rng(1234)


def P(a):
    """float32 pointer of a numpy array (None -> NULL)."""
    if a is None:
        return None
    assert a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
    return a.ctypes.data_as(fp)


def work(nbytes):
    buf = np.zeros(int(nbytes) + 128, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64
    return buf, ctypes.c_void_p(buf.ctypes.data + off)


def rnd(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def t64(a, grad=False):
    t = torch.tensor(a.astype(np.float64))
    t.requires_grad_(grad)
    return t


def close(what, got, want, group=None):
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if np.isnan(want).any() or np.isnan(got).any():
        # NaN where the reference has NaN, numbers elsewhere
        chk.true(what + ": NaN positions", np.array_equal(np.isnan(got), np.isnan(want)))
        got, want = np.nan_to_num(got, nan=0.0), np.nan_to_num(want, nan=0.0)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    chk.close(what, got, want, rtol=1e-4, atol=2e-5 * scale, group=group)


def same(what, a, b):
    chk.true(what + ": 1 and 2 threads bit-identical", np.array_equal(a, b, equal_nan=True))


# ------------------------------------------------------------- convolution
def conv_case(B, C1, C2, Cout, H, W, K, stride, pad, bias, isa_name=""):
    s = ConvShape(B, C1, C2, Cout, H, W, K, stride, pad)
    tag = "conv %dx%d s%d C%d+%d->%d %dx%d%s%s" % (K, K, stride, C1, C2, Cout, H, W, " bias" if bias else "",
                                                 isa_name)
    x1, x2 = rnd(B, C1, H, W), (rnd(B, C2, H, W) if C2 else None)
    w = rnd(Cout, C1 + C2, K, K, scale=1.0 / np.sqrt((C1 + C2) * K * K))
    b = rnd(Cout) if bias else None
    Ho, Wo = (H + 2 * pad - K) // stride + 1, (W + 2 * pad - K) // stride + 1
    dout = rnd(B, Cout, Ho, Wo)
    # reference
    tx1, tw = t64(x1, True), t64(w, True)
    tx2 = t64(x2, True) if C2 else None
    tb = t64(b, True) if bias else None
    tin = torch.cat([tx1, tx2], 1) if C2 else tx1
    ty = F.conv2d(tin, tw, tb, stride=stride, padding=pad)
    ty.backward(torch.tensor(dout.astype(np.float64)))
    results = []
    base1, base2 = rnd(*x1.shape), (rnd(*x2.shape) if C2 else None)
    for threads in (1, 2):
        wb, wp = work(L.sl_conv2d_work_bytes(ctypes.byref(s), threads))
        out = np.zeros((B, Cout, Ho, Wo), np.float32)
        L.sl_conv2d_forward(P(out), P(x1), P(x2), P(w), P(b), ctypes.byref(s), wp, threads)
        # acc = 1: gradients are added onto what is there
        d1 = base1.copy()
        d2 = base2.copy() if C2 else None
        dw = np.full(w.shape, 0.5, np.float32)
        db = np.full((Cout,), 0.25, np.float32) if bias else None
        L.sl_conv2d_backward(P(d1), P(d2), P(dw), P(db), P(dout), P(x1), P(x2), P(w), ctypes.byref(s), 1, wp, threads)
        # acc = 0: the input gradients are overwritten
        e1 = np.full(x1.shape, 7.0, np.float32)
        e2 = np.full(x2.shape, 7.0, np.float32) if C2 else None
        dw0 = np.zeros(w.shape, np.float32)
        L.sl_conv2d_backward(P(e1), P(e2), P(dw0), None, P(dout), P(x1), P(x2), P(w), ctypes.byref(s), 0, wp, threads)
        results.append((out, d1 - base1, (d2 - base2) if C2 else None, dw, db, e1, e2))
        if threads == 1:
            close(tag + " forward", out, ty.detach().numpy(), "conv_forward")
            close(tag + " dinp1 (acc)", d1 - base1, tx1.grad.numpy(), "conv_dinp")
            close(tag + " dinp1", e1, tx1.grad.numpy(), "conv_dinp")
            if C2:
                close(tag + " dinp2 (acc)", d2 - base2, tx2.grad.numpy(), "conv_dinp")
                close(tag + " dinp2", e2, tx2.grad.numpy(), "conv_dinp")
            close(tag + " dweight", dw - 0.5, tw.grad.numpy(), "conv_dweight")
            close(tag + " dweight (fresh)", dw0, tw.grad.numpy(), "conv_dweight")
            if bias:
                close(tag + " dbias", db - 0.25, tb.grad.numpy(), "conv_dbias")
    for a, b2 in zip(results[0], results[1]):
        if a is not None:
            same(tag, a, b2)
    # only dinp1 wanted (dinp2 NULL) and no input gradient at all
    if C2:
        wb, wp = work(L.sl_conv2d_work_bytes(ctypes.byref(s), 2))
        f1 = np.zeros(x1.shape, np.float32)
        dwx = np.zeros(w.shape, np.float32)
        L.sl_conv2d_backward(P(f1), None, P(dwx), None, P(dout), P(x1), P(x2), P(w), ctypes.byref(s), 0, wp, 2)
        close(tag + " dinp1 alone", f1, tx1.grad.numpy(), "conv_dinp")
    dwn = np.zeros(w.shape, np.float32)
    wb, wp = work(L.sl_conv2d_work_bytes(ctypes.byref(s), 2))
    L.sl_conv2d_backward(None, None, P(dwn), None, P(dout), P(x1), P(x2), P(w), ctypes.byref(s), 0, wp, 2)
    close(tag + " dweight without dinp", dwn, tw.grad.numpy(), "conv_dweight")


conv_cases = [
    (2, 3, 0, 4, 8, 8, 3, 1, 1, False),
    (2, 3, 0, 5, 7, 9, 3, 1, 1, True),
    (1, 4, 3, 6, 6, 10, 3, 1, 1, False),   # concatenated input (decoder)
    (3, 2, 0, 4, 8, 6, 3, 2, 1, False),    # strided down-convolution
    (2, 3, 0, 3, 7, 5, 3, 2, 1, True),     # strided, odd sizes
    (2, 5, 0, 3, 6, 7, 1, 1, 0, True),     # 1x1 head (direct path)
    (2, 4, 0, 2, 5, 5, 3, 1, 0, False),    # no padding
    (2, 64, 0, 8, 32, 32, 3, 1, 1, False),  # several tiles (tile = 8 rows)
    (2, 40, 24, 8, 24, 20, 3, 1, 1, True),  # several tiles, concatenated
    (2, 64, 0, 8, 32, 32, 3, 2, 1, False),  # several tiles, strided
]
if slref.QUICK:
    conv_cases = conv_cases[:4]
# Each case on every instruction set this CPU has, capped through
# sl_force_isa: with AVX-512 a same 3x3 convolution with H*W a multiple of
# 16 goes through src/nn/conv_same.c, otherwise through im2col and sgemm.
L.sl_isa.restype = ctypes.c_int
L.sl_force_isa.argtypes = [ctypes.c_int]
for isa in sorted({L.sl_isa(), min(L.sl_isa(), 1)}, reverse=True):
    L.sl_force_isa(isa)
    try:
        for c in conv_cases:
            conv_case(*c, isa_name=" [%s]" % ("baseline", "AVX2", "AVX-512")[isa])
    finally:
        L.sl_force_isa(-1)


# ------------------------------------------------ transposed convolution
def convt_case(B, Cin, Cout, H, W, bias):
    tag = "convt2x2 %d->%d %dx%d" % (Cin, Cout, H, W)
    x = rnd(B, Cin, H, W)
    w = rnd(Cin, Cout, 2, 2, scale=1 / np.sqrt(Cin))
    b = rnd(Cout) if bias else None
    dout = rnd(B, Cout, 2 * H, 2 * W)
    tx, tw = t64(x, True), t64(w, True)
    tb = t64(b, True) if bias else None
    ty = F.conv_transpose2d(tx, tw, tb, stride=2)
    ty.backward(torch.tensor(dout.astype(np.float64)))
    res = []
    base = rnd(*x.shape)
    for threads in (1, 2):
        wb, wp = work(L.sl_convt2x2_work_bytes(B, Cin, Cout, H, W, threads))
        out = np.zeros((B, Cout, 2 * H, 2 * W), np.float32)
        L.sl_convt2x2_forward(P(out), P(x), P(w), P(b), i64(B), i64(Cin), i64(Cout), i64(H), i64(W), wp, threads)
        dx = base.copy()
        dw = np.zeros(w.shape, np.float32)
        db = np.zeros(Cout, np.float32) if bias else None
        L.sl_convt2x2_backward(P(dx), P(dw), P(db), P(dout), P(x), P(w), i64(B), i64(Cin), i64(Cout), i64(H), i64(W), 1, wp, threads)
        dx0 = np.full(x.shape, 3.0, np.float32)
        dw0 = np.zeros(w.shape, np.float32)
        L.sl_convt2x2_backward(P(dx0), P(dw0), None, P(dout), P(x), P(w), i64(B), i64(Cin), i64(Cout), i64(H), i64(W), 0, wp, threads)
        res.append((out, dx - base, dw, dx0))
        close(tag + " forward", out, ty.detach().numpy(), "convt_forward")
        close(tag + " dinp (acc)", dx - base, tx.grad.numpy(), "convt_dinp")
        close(tag + " dinp", dx0, tx.grad.numpy(), "convt_dinp")
        close(tag + " dweight", dw, tw.grad.numpy(), "convt_dweight")
        if bias:
            close(tag + " dbias", db, tb.grad.numpy(), "convt_dbias")
    for a, b2 in zip(res[0], res[1]):
        same(tag, a, b2)


for c in [(2, 8, 4, 4, 4, True), (3, 5, 3, 3, 6, False), (1, 16, 8, 8, 8, True)]:
    convt_case(*c)


# ------------------------------------------------------- normalisation
def inorm_case(B, C, H, W, slope, shift):
    tag = "instnorm+lrelu(%g) C%d %dx%d" % (slope, C, H, W)
    x = rnd(B, C, H, W, scale=2.0) + np.float32(shift)
    g, be = rnd(C) + 1, rnd(C)
    dout = rnd(B, C, H, W)
    tx, tg, tb = t64(x, True), t64(g, True), t64(be, True)
    ty = F.leaky_relu(F.instance_norm(tx, weight=tg, bias=tb, eps=1e-5), slope)
    ty.backward(torch.tensor(dout.astype(np.float64)))
    tm = tx.detach().mean(dim=(2, 3))
    tv = tx.detach().var(dim=(2, 3), unbiased=False)
    res = []
    HW = H * W
    base = rnd(*x.shape)
    for threads in (1, 2):
        out = np.zeros_like(x)
        mean = np.zeros((B, C), np.float32)
        rstd = np.zeros((B, C), np.float32)
        L.sl_instnorm_lrelu_forward(P(out), P(mean), P(rstd), P(x), P(g), P(be), i64(B), i64(C), i64(HW),
                                    ctypes.c_float(1e-5), ctypes.c_float(slope), threads)
        wb, wp = work(L.sl_norm_work_bytes(B, C))
        dx = base.copy()
        dg = np.full(C, 1.0, np.float32)
        db = np.full(C, -1.0, np.float32)
        L.sl_instnorm_lrelu_backward(P(dx), P(dg), P(db), P(dout), P(out), P(x), P(mean), P(rstd), P(g),
                                     i64(B), i64(C), i64(HW), ctypes.c_float(slope), 1, wp, threads)
        dx0 = np.zeros_like(x)
        dg0, db0 = np.zeros(C, np.float32), np.zeros(C, np.float32)
        L.sl_instnorm_lrelu_backward(P(dx0), P(dg0), P(db0), P(dout), P(out), P(x), P(mean), P(rstd), P(g),
                                     i64(B), i64(C), i64(HW), ctypes.c_float(slope), 0, wp, threads)
        res.append((out, mean, rstd, dx - base, dg, db, dx0))
        if threads == 1:
            close(tag + " forward", out, ty.detach().numpy(), "instnorm_forward")
            close(tag + " mean", mean, tm.numpy(), "instnorm_stats")
            chk.close(tag + " rstd", rstd, 1 / np.sqrt(tv.numpy() + 1e-5), rtol=1e-5, atol=0, group="instnorm_stats")
            close(tag + " dinp (acc)", dx - base, tx.grad.numpy(), "instnorm_dinp")
            close(tag + " dinp", dx0, tx.grad.numpy(), "instnorm_dinp")
            close(tag + " dgamma", dg - 1, tg.grad.numpy(), "instnorm_dparams")
            close(tag + " dbeta", db + 1, tb.grad.numpy(), "instnorm_dparams")
    for a, b2 in zip(res[0], res[1]):
        same(tag, a, b2)


for c in [(2, 3, 8, 8, 0.01, 0.0), (3, 4, 5, 7, 1.0, 0.0), (2, 2, 16, 16, 0.01, 10.0), (1, 5, 3, 3, 0.2, -3.0)]:
    inorm_case(*c)


def bnorm_case(B, C, H, W, slope, training):
    tag = "batchnorm+lrelu(%g) C%d %dx%d %s" % (slope, C, H, W, "train" if training else "eval")
    x = rnd(B, C, H, W, scale=1.5) + 0.5
    g, be = rnd(C) + 1, rnd(C)
    rm0, rv0 = rnd(C) * 0.1, np.abs(rnd(C)) + 0.5
    dout = rnd(B, C, H, W)
    tx, tg, tb = t64(x, True), t64(g, True), t64(be, True)
    trm, trv = torch.tensor(rm0.astype(np.float64)), torch.tensor(rv0.astype(np.float64))
    ty = F.leaky_relu(F.batch_norm(tx, trm, trv, tg, tb, training=training, momentum=0.1, eps=1e-5), slope)
    ty.backward(torch.tensor(dout.astype(np.float64)))
    res = []
    HW = H * W
    for threads in (1, 2):
        out = np.zeros_like(x)
        mean, rstd = np.zeros(C, np.float32), np.zeros(C, np.float32)
        rm, rv = rm0.copy(), rv0.copy()
        wb, wp = work(L.sl_norm_work_bytes(B, C))
        L.sl_batchnorm_lrelu_forward(P(out), P(mean), P(rstd), P(rm), P(rv), P(x), P(g), P(be), i64(B), i64(C), i64(HW),
                                     ctypes.c_float(1e-5), ctypes.c_float(0.1), ctypes.c_float(slope), int(training), wp, threads)
        dx = np.zeros_like(x)
        dg, db = np.zeros(C, np.float32), np.zeros(C, np.float32)
        L.sl_batchnorm_lrelu_backward(P(dx), P(dg), P(db), P(dout), P(out), P(x), P(mean), P(rstd), P(g),
                                      i64(B), i64(C), i64(HW), ctypes.c_float(slope), int(training), 0, wp, threads)
        res.append((out, mean, rstd, rm, rv, dx, dg, db))
        if threads == 1:
            close(tag + " forward", out, ty.detach().numpy(), "batchnorm_forward")
            close(tag + " running_mean", rm, trm.numpy(), "batchnorm_running")
            close(tag + " running_var", rv, trv.numpy(), "batchnorm_running")
            close(tag + " dinp", dx, tx.grad.numpy(), "batchnorm_dinp")
            close(tag + " dgamma", dg, tg.grad.numpy(), "batchnorm_dparams")
            close(tag + " dbeta", db, tb.grad.numpy(), "batchnorm_dparams")
    for a, b2 in zip(res[0], res[1]):
        same(tag, a, b2)


for c in [(2, 3, 8, 8, 0.01, True), (4, 2, 5, 3, 1.0, True), (3, 3, 4, 4, 0.01, False)]:
    bnorm_case(*c)


# ----------------------------------------------------------- LeakyReLU
for slope in (0.01, 0.0, 0.3):
    x = rnd(1000)
    x[:10] = 0.0  # the kink: PyTorch's mask is x > 0
    dout = rnd(1000)
    tx = t64(x, True)
    ty = F.leaky_relu(tx, slope)
    ty.backward(torch.tensor(dout.astype(np.float64)))
    out = np.zeros_like(x)
    L.sl_lrelu_forward(P(out), P(x), i64(1000), ctypes.c_float(slope), 2)
    base = rnd(1000)
    dx = base.copy()
    L.sl_lrelu_backward(P(dx), P(dout), P(x), i64(1000), ctypes.c_float(slope), 1, 2)
    dx0 = np.zeros_like(x)
    L.sl_lrelu_backward(P(dx0), P(dout), P(x), i64(1000), ctypes.c_float(slope), 0, 1)
    close("lrelu(%g) forward" % slope, out, ty.detach().numpy(), "lrelu")
    close("lrelu(%g) dinp (acc)" % slope, dx - base, tx.grad.numpy(), "lrelu")
    close("lrelu(%g) dinp" % slope, dx0, tx.grad.numpy(), "lrelu")


# ------------------------------------------------------------ max-pool
def pool_case(B, C, H, W, ties, nan):
    tag = "maxpool2 %dx%d%s%s" % (H, W, " ties" if ties else "", " nan" if nan else "")
    x = rnd(B, C, H, W)
    if ties:
        x = np.round(x).astype(np.float32)  # many equal values in a window
    if nan:
        x.reshape(-1)[::17] = np.nan
    dout = rnd(B, C, H // 2, W // 2)
    tx = t64(x, True)
    ty = F.max_pool2d(tx, 2)
    ty.backward(torch.tensor(dout.astype(np.float64)))
    res = []
    base = rnd(*x.shape)
    for threads in (1, 2):
        out = np.zeros((B, C, H // 2, W // 2), np.float32)
        L.sl_maxpool2_forward(P(out), P(x), i64(B), i64(C), i64(H), i64(W), threads)
        dx = base.copy()
        L.sl_maxpool2_backward(P(dx), P(dout), P(x), i64(B), i64(C), i64(H), i64(W), 1, threads)
        dx0 = np.full(x.shape, 9.0, np.float32)
        L.sl_maxpool2_backward(P(dx0), P(dout), P(x), i64(B), i64(C), i64(H), i64(W), 0, threads)
        res.append((out, dx - base, dx0))
        close(tag + " forward", out, ty.detach().numpy(), "maxpool")
        close(tag + " dinp (acc)", dx - base, tx.grad.numpy(), "maxpool")
        close(tag + " dinp", dx0, tx.grad.numpy(), "maxpool")
    for a, b2 in zip(res[0], res[1]):
        same(tag, a, b2)


for c in [(2, 3, 8, 6, False, False), (2, 2, 6, 8, True, False), (1, 2, 4, 4, False, True)]:
    pool_case(*c)


# ------------------------------------------------ nearest downsampling
L.sl_nn_downsample_nearest.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(Dims), ctypes.c_size_t,
                                       ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
for (shape, f, dt) in [((2, 1, 8, 12), 2, np.int32), ((1, 3, 8, 8), 4, np.float32), ((2, 1, 12, 6), 3, np.uint8),
                       ((1, 2, 4, 8, 8), 2, np.int64)]:
    a = rng.integers(0, 5, size=shape).astype(dt)
    nd = len(shape) - 2
    d = Dims(shape[0], shape[1], nd, (i64 * 3)(*(list(shape[2:]) + [0] * (3 - nd))))
    out = np.zeros(shape[:2] + tuple(s // f for s in shape[2:]), dt)
    msg = ctypes.create_string_buffer(200)
    rc = L.sl_nn_downsample_nearest(out.ctypes.data, a.ctypes.data, ctypes.byref(d), a.itemsize, f, msg, 200)
    mode = "nearest"
    want = F.interpolate(torch.tensor(a.astype(np.float64)), scale_factor=1.0 / f, mode=mode).numpy()
    chk.true("downsample %s by %d: rc %d" % (shape, f, rc), rc == 0)
    close("downsample %s by %d %s" % (shape, f, np.dtype(dt).name), out, want, "downsample")
d = Dims(1, 1, 2, (i64 * 3)(6, 7, 0))
buf = np.zeros(64, np.int32)
msg = ctypes.create_string_buffer(200)
rc = L.sl_nn_downsample_nearest(buf.ctypes.data, buf.ctypes.data, ctypes.byref(d), 4, 2, msg, 200)
chk.true("downsample 6x7 by 2 is SL_ESHAPE (2), got %d: %s" % (rc, msg.value), rc == 2 and b"divisible" in msg.value)

chk.report()
