"""The 3-D U-Net layer kernels (src/nn/layers.h) against PyTorch autograd.

Forward outputs and every backward gradient of: 3-D convolution (3x3x3 pad
1; anisotropic 1x3x3; stride 2 and stride (1, 2, 2) for SL_DOWN_STRIDED;
1x1x1 with bias; a two-input concatenation; one tile and several tiles),
transposed convolution with kernel = stride (2, 2, 2) and (1, 2, 2),
max-pooling (2, 2, 2) and (1, 2, 2) with ties and NaN, and instance / batch
norm + LeakyReLU over volumes (the kernels take the voxels of a channel as
one axis). The reference is PyTorch (F.conv3d, F.conv_transpose3d,
F.max_pool3d, F.instance_norm, F.batch_norm, F.leaky_relu) in float64 on
the same float32 inputs.

Tolerance, relative to the tensor: |c - ref| <= 1e-5 max|ref| for every
element (float32 sums of up to 16*27 = 432 products; the max diff is
printed per layer). Both accumulate modes of the input gradient (acc = 1
adds, acc = 0 overwrites) are checked, and every kernel runs with 1 and 2
threads, which must agree bit for bit.

Convolutions run on each instruction set this CPU has, capped through
sl_force_isa: with AVX-512 a same convolution whose H*W is a multiple of 16
goes through src/nn/conv_same.c (no column matrix), otherwise through
im2col and cblas_sgemm; both paths are checked against PyTorch, and the
cases include what conv_same splits: output channels not a multiple of 8,
kernel volumes not a multiple of 4, a concatenated input, several chunks
of voxels, and depth slices of exactly 16 voxels.

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
torch.set_num_threads(1)
fp = ctypes.POINTER(ctypes.c_float)
i64 = ctypes.c_int64
ci = ctypes.c_int
cf = ctypes.c_float
vp = ctypes.c_void_p
REL = 1e-5


class ConvShape(ctypes.Structure):
    _fields_ = [("B", i64), ("C1", i64), ("C2", i64), ("Cout", i64), ("inx", i64 * 3),
                ("k", ci * 3), ("stride", ci * 3), ("pad", ci * 3)]


L = slref.nn_kernels()
L.sl_conv_work_bytes.restype = ctypes.c_size_t
L.sl_conv_work_bytes.argtypes = [ctypes.POINTER(ConvShape), ci]
L.sl_conv_forward.argtypes = [fp, fp, fp, fp, fp, ctypes.POINTER(ConvShape), vp, ci]
L.sl_conv_backward.argtypes = [fp, fp, fp, fp, fp, fp, fp, fp, ctypes.POINTER(ConvShape), ci, vp, ci]
L.sl_convt_work_bytes.restype = ctypes.c_size_t
L.sl_convt_work_bytes.argtypes = [i64, i64, i64, ctypes.POINTER(i64), ctypes.POINTER(ci), ci]
L.sl_convt_forward.argtypes = [fp, fp, fp, fp, i64, i64, i64, ctypes.POINTER(i64), ctypes.POINTER(ci), vp, ci]
L.sl_convt_backward.argtypes = [fp, fp, fp, fp, fp, fp, i64, i64, i64, ctypes.POINTER(i64), ctypes.POINTER(ci),
                                ci, vp, ci]
L.sl_maxpool_forward.argtypes = [fp, fp, i64, i64, ctypes.POINTER(i64), ctypes.POINTER(ci), ci]
L.sl_maxpool_backward.argtypes = [fp, fp, fp, i64, i64, ctypes.POINTER(i64), ctypes.POINTER(ci), ci, ci]
L.sl_norm_work_bytes.restype = ctypes.c_size_t
L.sl_norm_work_bytes.argtypes = [i64, i64]
L.sl_instnorm_lrelu_forward.argtypes = [fp, fp, fp, fp, fp, fp, i64, i64, i64, cf, cf, ci]
L.sl_instnorm_lrelu_backward.argtypes = [fp, fp, fp, fp, fp, fp, fp, fp, fp, i64, i64, i64, cf, ci, vp, ci]
L.sl_batchnorm_lrelu_forward.argtypes = [fp, fp, fp, fp, fp, fp, fp, fp, i64, i64, i64, cf, cf, cf, ci, vp, ci]
L.sl_batchnorm_lrelu_backward.argtypes = [fp, fp, fp, fp, fp, fp, fp, fp, fp, i64, i64, i64, cf, ci, ci, vp, ci]
L.sl_isa.restype = ci
L.sl_isa.argtypes = []
L.sl_force_isa.argtypes = [ci]
ISA_NAMES = ("baseline", "AVX2", "AVX-512")
ISAS = sorted({L.sl_isa(), min(L.sl_isa(), 1)}, reverse=True)  # the best, and AVX2 or less
chk = slref.Check("test_nn3d_layers")
rng = np.random.default_rng(4321)


def P(a):
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


def close(what, got, want, group):
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if np.isnan(want).any() or np.isnan(got).any():
        chk.true(what + ": NaN positions", np.array_equal(np.isnan(got), np.isnan(want)))
        got, want = np.nan_to_num(got, nan=0.0), np.nan_to_num(want, nan=0.0)
    scale = float(np.abs(want).max()) if want.size else 1.0
    chk.close(what, got, want, rtol=0.0, atol=REL * max(scale, 1e-30), group=group)


def same(what, a, b):
    chk.true(what + ": 1 and 2 threads bit-identical", np.array_equal(a, b, equal_nan=True))


def a3(t, v):
    return (t * 3)(*v)


# ------------------------------------------------------------- convolution
def conv_case(B, C1, C2, Cout, ext, k, stride, pad, bias):
    s = ConvShape(B, C1, C2, Cout, a3(i64, ext), a3(ci, k), a3(ci, stride), a3(ci, pad))
    tag = "conv3d k%s s%s C%d+%d->%d %s%s" % (k, stride, C1, C2, Cout, ext, " bias" if bias else "")
    x1, x2 = rnd(B, C1, *ext), (rnd(B, C2, *ext) if C2 else None)
    w = rnd(Cout, C1 + C2, *k, scale=1.0 / np.sqrt((C1 + C2) * np.prod(k)))
    b = rnd(Cout) if bias else None
    out_ext = [(ext[a] + 2 * pad[a] - k[a]) // stride[a] + 1 for a in range(3)]
    dout = rnd(B, Cout, *out_ext)
    tx1, tw = t64(x1, True), t64(w, True)
    tx2 = t64(x2, True) if C2 else None
    tb = t64(b, True) if bias else None
    tin = torch.cat([tx1, tx2], 1) if C2 else tx1
    ty = F.conv3d(tin, tw, tb, stride=tuple(stride), padding=tuple(pad))
    ty.backward(torch.tensor(dout.astype(np.float64)))
    base1, base2 = rnd(*x1.shape), (rnd(*x2.shape) if C2 else None)
    for isa in ISAS:
        L.sl_force_isa(isa)
        try:
            conv_run(s, tag + " [%s]" % ISA_NAMES[isa], x1, x2, w, b, dout, base1, base2, out_ext, ty,
                     tx1, tx2, tw, tb)
        finally:
            L.sl_force_isa(-1)


def conv_run(s, tag, x1, x2, w, b, dout, base1, base2, out_ext, ty, tx1, tx2, tw, tb):
    B, C2, Cout, bias = s.B, s.C2, s.Cout, b is not None
    results = []
    for threads in (1, 2):
        wb, wp = work(L.sl_conv_work_bytes(ctypes.byref(s), threads))
        out = np.zeros((B, Cout, *out_ext), np.float32)
        L.sl_conv_forward(P(out), P(x1), P(x2), P(w), P(b), ctypes.byref(s), wp, threads)
        d1, d2 = base1.copy(), (base2.copy() if C2 else None)
        dw = np.full(w.shape, 0.5, np.float32)
        db = np.full((Cout,), 0.25, np.float32) if bias else None
        L.sl_conv_backward(P(d1), P(d2), P(dw), P(db), P(dout), P(x1), P(x2), P(w), ctypes.byref(s), 1, wp, threads)
        e1 = np.full(x1.shape, 7.0, np.float32)
        e2 = np.full(x2.shape, 7.0, np.float32) if C2 else None
        dw0 = np.zeros(w.shape, np.float32)
        L.sl_conv_backward(P(e1), P(e2), P(dw0), None, P(dout), P(x1), P(x2), P(w), ctypes.byref(s), 0, wp, threads)
        results.append((out, d1, d2, dw, db, e1, e2))
    out, d1, d2, dw, db, e1, e2 = results[0]
    g = "conv3d"
    close(tag + " forward", out, ty.detach().numpy(), g)
    close(tag + " dx1 acc", d1.astype(np.float64) - base1, tx1.grad.numpy(), g)
    close(tag + " dx1", e1, tx1.grad.numpy(), g)
    if C2:
        close(tag + " dx2 acc", d2.astype(np.float64) - base2, tx2.grad.numpy(), g)
        close(tag + " dx2", e2, tx2.grad.numpy(), g)
    close(tag + " dw", dw.astype(np.float64) - 0.5, tw.grad.numpy(), g)
    close(tag + " dw (no bias grad)", dw0, tw.grad.numpy(), g)
    if bias:
        close(tag + " db", db.astype(np.float64) - 0.25, tb.grad.numpy(), g)
    for i, name in enumerate(("out", "dx1", "dx2", "dw", "db", "dx1 acc0", "dx2 acc0")):
        if results[0][i] is not None:
            same(tag + " " + name, results[0][i], results[1][i])


conv_case(2, 3, 0, 4, (6, 7, 5), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
conv_case(2, 2, 3, 4, (4, 6, 6), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
conv_case(1, 3, 0, 5, (3, 8, 8), (1, 3, 3), (1, 1, 1), (0, 1, 1), True)
conv_case(2, 2, 2, 3, (3, 6, 8), (1, 3, 3), (1, 1, 1), (0, 1, 1), False)
conv_case(2, 3, 0, 4, (6, 8, 8), (3, 3, 3), (2, 2, 2), (1, 1, 1), False)
conv_case(2, 3, 0, 4, (3, 8, 8), (1, 3, 3), (1, 2, 2), (0, 1, 1), False)
conv_case(2, 3, 0, 4, (4, 8, 8), (3, 3, 3), (1, 2, 2), (1, 1, 1), True)
conv_case(2, 4, 0, 3, (4, 5, 6), (1, 1, 1), (1, 1, 1), (0, 0, 0), True)
conv_case(1, 16, 0, 8, (8, 16, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)  # several tiles
# tiles that start and end inside a depth slice (21 rows of 12 per tile, 13 rows a slice)
conv_case(1, 16, 0, 3, (4, 13, 12), (3, 3, 3), (1, 1, 1), (1, 1, 1), True)
# kernel wider than the input (taps that read only padding), a depth stride
conv_case(2, 2, 0, 3, (5, 3, 2), (3, 5, 5), (2, 1, 1), (1, 2, 2), False)
# conv_same's splits: 13 output channels (8 + 5), 1x3x3 and 3x5x5 kernels
# (9 and 75 taps), C1 = 3 with C2 = 5, 2560 voxels (five forward chunks,
# two weight-gradient chunks, the second partial), 4x4 and 2x8 slices
conv_case(2, 3, 5, 13, (10, 16, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), True)
conv_case(1, 4, 0, 13, (3, 8, 16), (1, 3, 3), (1, 1, 1), (0, 1, 1), False)
conv_case(2, 2, 1, 9, (3, 4, 8), (3, 5, 5), (1, 1, 1), (1, 2, 2), True)
conv_case(2, 5, 0, 6, (4, 4, 4), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
conv_case(1, 3, 0, 8, (5, 2, 8), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)


# ---------------------------------------------------- transposed convolution
def convt_case(B, Cin, Cout, ext, f, bias):
    tag = "convt3d f%s C%d->%d %s%s" % (f, Cin, Cout, ext, " bias" if bias else "")
    x = rnd(B, Cin, *ext)
    w = rnd(Cin, Cout, *f, scale=1.0 / np.sqrt(Cin))
    b = rnd(Cout) if bias else None
    out_ext = [ext[a] * f[a] for a in range(3)]
    dout = rnd(B, Cout, *out_ext)
    tx, tw = t64(x, True), t64(w, True)
    tb = t64(b, True) if bias else None
    ty = F.conv_transpose3d(tx, tw, tb, stride=tuple(f))
    ty.backward(torch.tensor(dout.astype(np.float64)))
    e, fv = a3(i64, ext), a3(ci, f)
    base = rnd(*x.shape)
    results = []
    for threads in (1, 2):
        wb, wp = work(L.sl_convt_work_bytes(B, Cin, Cout, e, fv, threads))
        out = np.zeros((B, Cout, *out_ext), np.float32)
        L.sl_convt_forward(P(out), P(x), P(w), P(b), B, Cin, Cout, e, fv, wp, threads)
        dx = base.copy()
        dw = np.full(w.shape, 0.5, np.float32)
        db = np.full((Cout,), 0.25, np.float32) if bias else None
        L.sl_convt_backward(P(dx), P(dw), P(db), P(dout), P(x), P(w), B, Cin, Cout, e, fv, 1, wp, threads)
        dx0 = np.full(x.shape, 3.0, np.float32)
        dw0 = np.zeros(w.shape, np.float32)
        L.sl_convt_backward(P(dx0), P(dw0), None, P(dout), P(x), P(w), B, Cin, Cout, e, fv, 0, wp, threads)
        results.append((out, dx, dw, db, dx0))
    out, dx, dw, db, dx0 = results[0]
    g = "convt3d"
    close(tag + " forward", out, ty.detach().numpy(), g)
    close(tag + " dx acc", dx.astype(np.float64) - base, tx.grad.numpy(), g)
    close(tag + " dx", dx0, tx.grad.numpy(), g)
    close(tag + " dw", dw.astype(np.float64) - 0.5, tw.grad.numpy(), g)
    if bias:
        close(tag + " db", db.astype(np.float64) - 0.25, tb.grad.numpy(), g)
    for i, name in enumerate(("out", "dx", "dw", "db", "dx acc0")):
        if results[0][i] is not None:
            same(tag + " " + name, results[0][i], results[1][i])


convt_case(2, 4, 3, (3, 4, 5), (2, 2, 2), True)
convt_case(2, 4, 3, (3, 4, 5), (1, 2, 2), False)
convt_case(1, 3, 2, (2, 3, 4), (2, 1, 2), True)


# ------------------------------------------------------------------ max-pool
def pool_case(B, C, ext, f, ties, nan):
    tag = "maxpool3d f%s %s%s%s" % (f, ext, " ties" if ties else "", " NaN" if nan else "")
    x = rnd(B, C, *ext)
    if ties:
        x = np.round(x).astype(np.float32)  # many equal values in a window
    if nan:
        x.reshape(-1)[::37] = np.nan
    out_ext = [ext[a] // f[a] for a in range(3)]
    dout = rnd(B, C, *out_ext)
    tx = t64(x, True)
    ty = F.max_pool3d(tx, kernel_size=tuple(f), stride=tuple(f))
    ty.backward(torch.tensor(dout.astype(np.float64)))
    e, fv = a3(i64, ext), a3(ci, f)
    base = rnd(*x.shape)
    results = []
    for threads in (1, 2):
        out = np.zeros((B, C, *out_ext), np.float32)
        L.sl_maxpool_forward(P(out), P(x), B, C, e, fv, threads)
        dx = base.copy()
        L.sl_maxpool_backward(P(dx), P(dout), P(x), B, C, e, fv, 1, threads)
        dx0 = np.full(x.shape, 5.0, np.float32)
        L.sl_maxpool_backward(P(dx0), P(dout), P(x), B, C, e, fv, 0, threads)
        results.append((out, dx, dx0))
    out, dx, dx0 = results[0]
    g = "maxpool3d"
    close(tag + " forward", out, ty.detach().numpy(), g)
    # the winner (where the gradient goes) must be PyTorch's, exactly
    chk.true(tag + " dx positions", np.array_equal(dx0 != 0, tx.grad.numpy() != 0))
    close(tag + " dx acc", dx.astype(np.float64) - base, tx.grad.numpy(), g)
    close(tag + " dx", dx0, tx.grad.numpy(), g)
    for i, name in enumerate(("out", "dx", "dx acc0")):
        same(tag + " " + name, results[0][i], results[1][i])


pool_case(2, 3, (4, 6, 6), (2, 2, 2), False, False)
pool_case(2, 3, (4, 6, 6), (2, 2, 2), True, False)
pool_case(2, 3, (4, 6, 6), (2, 2, 2), False, True)
pool_case(2, 3, (3, 6, 8), (1, 2, 2), True, False)
pool_case(1, 2, (4, 4, 6), (2, 1, 2), False, True)


# --------------------------------------------------------- norm + LeakyReLU
def norm_case(kind, B, C, ext, slope, training=1):
    tag = "%snorm3d %s slope %g%s" % (kind, ext, slope, "" if training else " eval")
    n = int(np.prod(ext))
    x = rnd(B, C, *ext, scale=2.0) + 0.5
    gamma, beta = rnd(C) * 0.5 + 1.0, rnd(C) * 0.3
    dout = rnd(B, C, *ext)
    rm0, rv0 = rnd(C) * 0.1, np.abs(rnd(C)) + 0.5
    tx, tg, tb = t64(x, True), t64(gamma, True), t64(beta, True)
    trm, trv = t64(rm0), t64(rv0)
    eps, mom = 1e-5, 0.1
    if kind == "instance":
        tn = F.instance_norm(tx, weight=tg, bias=tb, eps=eps)
    else:
        tn = F.batch_norm(tx, trm, trv, weight=tg, bias=tb, training=bool(training), momentum=mom, eps=eps)
    ty = F.leaky_relu(tn, slope)
    ty.backward(torch.tensor(dout.astype(np.float64)))
    results = []
    nstat = B * C if kind == "instance" else C
    for threads in (1, 2):
        wb, wp = work(L.sl_norm_work_bytes(B, C))
        out = np.zeros_like(x)
        mean, rstd = np.zeros(nstat, np.float32), np.zeros(nstat, np.float32)
        rm, rv = rm0.copy(), rv0.copy()
        dx = np.full(x.shape, 9.0, np.float32)
        dg, db = np.zeros(C, np.float32), np.zeros(C, np.float32)
        if kind == "instance":
            L.sl_instnorm_lrelu_forward(P(out), P(mean), P(rstd), P(x), P(gamma), P(beta), B, C, n, eps, slope,
                                        threads)
            L.sl_instnorm_lrelu_backward(P(dx), P(dg), P(db), P(dout), P(out), P(x), P(mean), P(rstd), P(gamma), B,
                                         C, n, slope, 0, wp, threads)
        else:
            L.sl_batchnorm_lrelu_forward(P(out), P(mean), P(rstd), P(rm), P(rv), P(x), P(gamma), P(beta), B, C, n,
                                         eps, mom, slope, training, wp, threads)
            L.sl_batchnorm_lrelu_backward(P(dx), P(dg), P(db), P(dout), P(out), P(x), P(mean), P(rstd), P(gamma),
                                          B, C, n, slope, training, 0, wp, threads)
        results.append((out, dx, dg, db, rm, rv))
    out, dx, dg, db, rm, rv = results[0]
    g = kind + "norm3d"
    close(tag + " forward", out, ty.detach().numpy(), g)
    close(tag + " dx", dx, tx.grad.numpy(), g)
    close(tag + " dgamma", dg, tg.grad.numpy(), g)
    close(tag + " dbeta", db, tb.grad.numpy(), g)
    if kind == "batch":
        close(tag + " running mean", rm, trm.numpy(), g)
        close(tag + " running var", rv, trv.numpy(), g)
    for i, name in enumerate(("out", "dx", "dgamma", "dbeta", "rm", "rv")):
        same(tag + " " + name, results[0][i], results[1][i])


norm_case("instance", 2, 3, (4, 6, 5), 0.01)
norm_case("instance", 1, 2, (8, 16, 16), 0.01)
norm_case("instance", 2, 3, (3, 4, 5), 1.0)
norm_case("batch", 2, 3, (4, 6, 5), 0.01)
norm_case("batch", 2, 3, (4, 6, 5), 0.01, training=0)

chk.report()
sys.exit(1 if chk.failures else 0)
