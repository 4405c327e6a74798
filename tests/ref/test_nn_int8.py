"""The INT8 kernels (src/nn/quant.c) against PyTorch's quantisation.

- Activation scale and zero point: torch.ao.quantization.MinMaxObserver
  (qint8, per-tensor affine, range [-128, 127]) on the same min and max;
  must agree exactly.
- Weights: PerChannelMinMaxObserver (qint8, per-channel symmetric, range
  [-127, 127]) for the scales, torch.fake_quantize_per_channel_affine for
  the integers; scales and every integer must agree exactly.
- Convolutions (3x3 pad 1, 3x3 stride 2, a two-input concatenation, 1x1
  with bias) and the 2x2 transposed convolution: the C int8 kernels
  against float64 F.conv2d / F.conv_transpose2d of the fake-quantised
  input and weights (torch.fake_quantize_per_tensor_affine and
  _per_channel_affine). The C kernel sums integers exactly and scales once
  in float32, so the tolerance is float32 rounding: |c - ref| <= 1e-6 |ref|
  + 1e-6 max|ref|. 1 and 2 threads must agree bit for bit.

Loads libsegloss.so through ctypes -- sanitized: skip
"""
import ctypes
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

sys.path.insert(0, os.path.dirname(__file__))
import slref  # noqa: E402

fp = ctypes.POINTER(ctypes.c_float)
i8p = ctypes.POINTER(ctypes.c_int8)
i32p = ctypes.POINTER(ctypes.c_int32)
i64 = ctypes.c_int64


class ConvShape(ctypes.Structure):
    _fields_ = [("B", i64), ("C1", i64), ("C2", i64), ("Cout", i64), ("H", i64), ("W", i64),
                ("K", ctypes.c_int), ("stride", ctypes.c_int), ("pad", ctypes.c_int)]


L = slref.nn_kernels()
L.sl_quant_act_params.argtypes = [ctypes.c_float, ctypes.c_float, fp, ctypes.POINTER(ctypes.c_int)]
L.sl_quant_weights.argtypes = [i8p, fp, i32p, fp, i64, i64]
L.sl_qconv2d_forward.argtypes = [fp, fp, fp, i8p, fp, i32p, fp, ctypes.c_float, ctypes.c_int,
                                 ctypes.POINTER(ConvShape), ctypes.c_int]
L.sl_qconvt2x2_forward.argtypes = [fp, fp, i8p, fp, i32p, fp, ctypes.c_float, ctypes.c_int] + [i64] * 5 + [ctypes.c_int]
chk = slref.Check("test_nn_int8")
rng = np.random.default_rng(99)


def P(a, t=fp):
    return None if a is None else a.ctypes.data_as(t)


def act_params(lo, hi):
    s, z = ctypes.c_float(), ctypes.c_int()
    L.sl_quant_act_params(lo, hi, ctypes.byref(s), ctypes.byref(z))
    return s.value, z.value


def weights(w2d):
    M, K = w2d.shape
    q = np.zeros((M, K), np.int8)
    sc = np.zeros(M, np.float32)
    rs = np.zeros(M, np.int32)
    L.sl_quant_weights(P(q, i8p), P(sc), P(rs, i32p), P(np.ascontiguousarray(w2d, np.float32)), M, K)
    return q, sc, rs


def torch_act_params(lo, hi):
    ob = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_affine, quant_min=-128, quant_max=127)
    ob(torch.tensor([lo, hi], dtype=torch.float32))
    s, z = ob.calculate_qparams()
    return float(s), int(z)


def torch_weight_scales(w, axis):
    ob = PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                  quant_min=-127, quant_max=127)
    ob(torch.tensor(w))
    s, z = ob.calculate_qparams()
    return s.float(), z.int()


def fq_act(x, s, z):
    return torch.fake_quantize_per_tensor_affine(torch.tensor(x), s, z, -128, 127).double()


def fq_weight(w, s, axis):
    z = torch.zeros(s.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(torch.tensor(w), s, z, axis, -127, 127).double()


# ---------------------------------------------------------- parameters
for lo, hi in [(-1.0, 3.0), (0.5, 2.0), (-4.0, -0.25), (-0.013, 0.71), (-1e-3, 1e4), (-7.5, 7.5)]:
    s, z = act_params(lo, hi)
    ts, tz = torch_act_params(lo, hi)
    chk.true("act params [%g, %g]: scale %r vs torch %r" % (lo, hi, s, ts), np.float32(s) == np.float32(ts))
    chk.true("act params [%g, %g]: zero point %d vs torch %d" % (lo, hi, z, tz), z == tz)

w = rng.standard_normal((6, 27)).astype(np.float32)
w[2] = 0.0  # an all-zero channel: scale 1 in C (torch: eps), integers 0 either way
w[4] *= 1e-3
q, sc, rs = weights(w)
ts, _ = torch_weight_scales(w, 0)
rows = [r for r in range(6) if r != 2]
chk.true("weight scales equal torch's (non-zero rows)", np.array_equal(sc[rows], ts.numpy()[rows]))
tq = torch.fake_quantize_per_channel_affine(torch.tensor(w), torch.tensor(sc), torch.zeros(6, dtype=torch.int32), 0, -127, 127)
tint = np.rint(tq.numpy().astype(np.float64) / sc[:, None].astype(np.float64)).astype(np.int64)
chk.true("weight integers equal torch's fake_quantize (max |diff| %d)" % np.abs(tint - q).max(), np.array_equal(tint, q))
chk.true("zero channel quantises to 0", not q[2].any())
chk.true("row sums", np.array_equal(rs, q.astype(np.int64).sum(1)))
chk.true("weights in [-127, 127]", q.min() >= -127)


# ----------------------------------------------------------- convolution
def close(what, got, want, group):
    scale = max(1.0, float(np.abs(want).max()))
    chk.close(what, got, want, rtol=1e-6, atol=1e-6 * scale, group=group)


def conv_case(B, C1, C2, Cout, H, W, K, stride, pad, bias):
    tag = "qconv %dx%d s%d C%d+%d->%d %dx%d%s" % (K, K, stride, C1, C2, Cout, H, W, " bias" if bias else "")
    x1 = (rng.standard_normal((B, C1, H, W)) * 1.3 + 0.4).astype(np.float32)
    x2 = rng.standard_normal((B, C2, H, W)).astype(np.float32) if C2 else None
    wt = (rng.standard_normal((Cout, C1 + C2, K, K)) / np.sqrt((C1 + C2) * K * K)).astype(np.float32)
    b = rng.standard_normal(Cout).astype(np.float32) if bias else None
    xs = np.concatenate([x1, x2], 1) if C2 else x1
    s_in, z_in = act_params(float(xs.min()), float(xs.max()))
    q, sc, rs = weights(wt.reshape(Cout, -1))
    s = ConvShape(B, C1, C2, Cout, H, W, K, stride, pad)
    Ho, Wo = (H + 2 * pad - K) // stride + 1, (W + 2 * pad - K) // stride + 1
    outs = []
    for threads in (1, 2):
        out = np.zeros((B, Cout, Ho, Wo), np.float32)
        L.sl_qconv2d_forward(P(out), P(x1), P(x2), P(q, i8p), P(sc), P(rs, i32p), P(b), s_in, z_in,
                             ctypes.byref(s), threads)
        outs.append(out)
    chk.true(tag + ": 1 and 2 threads bit-identical", np.array_equal(outs[0], outs[1]))
    ref = F.conv2d(fq_act(xs, s_in, z_in), fq_weight(wt, torch.tensor(sc), 0),
                   None if b is None else torch.tensor(b).double(), stride=stride, padding=pad)
    close(tag, outs[0], ref.numpy(), "qconv")
    # the quantisation is real: the float convolution differs
    fl = F.conv2d(torch.tensor(xs).double(), torch.tensor(wt).double(), None if b is None else torch.tensor(b).double(),
                  stride=stride, padding=pad).numpy()
    chk.true(tag + ": differs from the float convolution", np.abs(fl - outs[0]).max() > 0)


conv_case(2, 3, 0, 5, 9, 11, 3, 1, 1, False)
conv_case(2, 4, 3, 6, 8, 8, 3, 1, 1, False)
conv_case(1, 5, 0, 4, 10, 7, 3, 2, 1, True)
conv_case(3, 8, 0, 3, 6, 5, 1, 1, 0, True)
conv_case(1, 2, 0, 3, 80, 75, 3, 1, 1, True)  # several row tiles


def convt_case(B, Cin, Cout, H, W, bias):
    tag = "qconvt2x2 C%d->%d %dx%d%s" % (Cin, Cout, H, W, " bias" if bias else "")
    x = (rng.standard_normal((B, Cin, H, W)) + 0.2).astype(np.float32)
    wt = (rng.standard_normal((Cin, Cout, 2, 2)) / np.sqrt(Cin)).astype(np.float32)
    b = rng.standard_normal(Cout).astype(np.float32) if bias else None
    s_in, z_in = act_params(float(x.min()), float(x.max()))
    # rows (Cout*4, Cin), one scale per output channel shared by its 4 rows
    ts, _ = torch_weight_scales(wt, 1)
    q = np.zeros((Cout * 4, Cin), np.int8)
    sc = np.repeat(ts.numpy(), 4).astype(np.float32)
    fqw = fq_weight(wt, ts, 1)
    qi = np.rint(fqw.numpy() / ts.numpy()[None, :, None, None].astype(np.float64)).astype(np.int8)
    q[:] = qi.transpose(1, 2, 3, 0).reshape(Cout * 4, Cin)
    rs = q.astype(np.int32).sum(1).astype(np.int32)
    outs = []
    for threads in (1, 2):
        out = np.zeros((B, Cout, 2 * H, 2 * W), np.float32)
        L.sl_qconvt2x2_forward(P(out), P(x), P(q, i8p), P(sc), P(rs, i32p), P(b), s_in, z_in, B, Cin, Cout, H, W,
                               threads)
        outs.append(out)
    chk.true(tag + ": 1 and 2 threads bit-identical", np.array_equal(outs[0], outs[1]))
    ref = F.conv_transpose2d(fq_act(x, s_in, z_in), fqw, None if b is None else torch.tensor(b).double(), stride=2)
    close(tag, outs[0], ref.numpy(), "qconvt2x2")


convt_case(2, 4, 3, 5, 6, True)
convt_case(1, 6, 2, 70, 65, False)  # several pixel tiles
chk.report()
