"""ctypes bindings of the public U-Net API (include/segloss/nn.h) and a
functional PyTorch twin of the segloss U-Net in 2-D and 3-D, anisotropic
pool/kernel fields included. Shared by tests/ref/test_nn3d_step.py and
perf/train_speed3d.py.

The twin reads its weights from a dict keyed by segloss's tensor names
(which follow PyTorch's state_dict keys of the same module tree), so both
sides start from the same float32 values.
"""
import ctypes

import numpy as np
import torch
import torch.nn.functional as F

import slref

MAXD = 8
i64 = ctypes.c_int64
fp = ctypes.POINTER(ctypes.c_float)
NORMS = {"instance": 0, "batch": 1, "none": 2}
DOWNS = {"maxpool": 0, "strided": 1}


class UnetConfig(ctypes.Structure):
    _fields_ = [("spatial_ndim", ctypes.c_int), ("in_channels", ctypes.c_int), ("num_classes", ctypes.c_int),
                ("depth", ctypes.c_int), ("base_width", ctypes.c_int), ("max_width", ctypes.c_int),
                ("norm", ctypes.c_int), ("down", ctypes.c_int), ("deep_supervision", ctypes.c_int),
                ("leaky_slope", ctypes.c_float), ("norm_eps", ctypes.c_float), ("bn_momentum", ctypes.c_float),
                ("seed", ctypes.c_uint64), ("pool", (ctypes.c_int * 3) * MAXD),
                ("kernel", (ctypes.c_int * 3) * MAXD)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("is_buffer", ctypes.c_int), ("offset", i64), ("numel", i64),
                ("ndim", ctypes.c_int), ("shape", i64 * 5)]


class Dims(ctypes.Structure):
    _fields_ = [("n", i64), ("c", i64), ("spatial_ndim", ctypes.c_int), ("spatial", i64 * 3)]


class Schedule(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("total_steps", i64), ("pct_start", ctypes.c_double),
                ("div_factor", ctypes.c_double), ("final_div_factor", ctypes.c_double),
                ("cycle_momentum", ctypes.c_int), ("base_momentum", ctypes.c_double),
                ("max_momentum", ctypes.c_double), ("power", ctypes.c_double)]


class OptimConfig(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("lr", ctypes.c_double), ("beta1", ctypes.c_double),
                ("beta2", ctypes.c_double), ("eps", ctypes.c_double), ("weight_decay", ctypes.c_double),
                ("momentum", ctypes.c_double), ("dampening", ctypes.c_double), ("nesterov", ctypes.c_int),
                ("clip_norm", ctypes.c_double), ("schedule", Schedule)]


def optim_config(kind=0, lr=1e-3, momentum=0.0):
    """kind 0 Adam, 1 AdamW, 2 SGD; the other fields at their defaults."""
    return OptimConfig(kind, lr, 0.9, 0.999, 1e-8, 0.0, momentum, 0.0, 0, 0.0,
                       Schedule(0, 0, 0.3, 25.0, 1e4, 1, 0.85, 0.95, 0.9))


def lib():
    L = slref.lib()
    vpp = ctypes.POINTER(ctypes.c_void_p)
    msg = [ctypes.c_char_p, ctypes.c_size_t]
    L.sl_unet_create.argtypes = [vpp, ctypes.POINTER(UnetConfig)] + msg
    L.sl_unet_free.argtypes = [ctypes.c_void_p]
    L.sl_unet_free.restype = None
    L.sl_unet_params.argtypes = [ctypes.c_void_p]
    L.sl_unet_params.restype = fp
    L.sl_unet_grads.argtypes = [ctypes.c_void_p]
    L.sl_unet_grads.restype = fp
    L.sl_unet_buffers.argtypes = [ctypes.c_void_p]
    L.sl_unet_buffers.restype = fp
    L.sl_unet_num_params.argtypes = [ctypes.c_void_p]
    L.sl_unet_num_params.restype = i64
    L.sl_unet_num_buffers.argtypes = [ctypes.c_void_p]
    L.sl_unet_num_buffers.restype = i64
    L.sl_unet_num_tensors.argtypes = [ctypes.c_void_p]
    L.sl_unet_tensor.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(TensorInfo)]
    L.sl_unet_set_threads.argtypes = [ctypes.c_void_p, ctypes.c_int]
    L.sl_unet_set_training.argtypes = [ctypes.c_void_p, ctypes.c_int]
    L.sl_unet_zero_grad.argtypes = [ctypes.c_void_p]
    L.sl_unet_forward.argtypes = [ctypes.c_void_p, fp, ctypes.POINTER(Dims), fp] + msg
    L.sl_unet_backward_ds.argtypes = [ctypes.c_void_p, ctypes.POINTER(fp)] + msg
    L.sl_unet_num_outputs.argtypes = [ctypes.c_void_p]
    L.sl_unet_output.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(fp), ctypes.POINTER(Dims)]
    L.sl_unet_level_factors.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    L.sl_unet_ds_weights.argtypes = [ctypes.c_void_p, fp]
    L.sl_unet_get_config.argtypes = [ctypes.c_void_p, ctypes.POINTER(UnetConfig)]
    L.sl_unet_plan_anisotropic.argtypes = [ctypes.POINTER(UnetConfig), ctypes.POINTER(ctypes.c_double),
                                           ctypes.POINTER(i64)] + msg
    L.sl_unet_save.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p] + msg
    L.sl_unet_load.argtypes = [vpp, vpp, ctypes.c_char_p] + msg
    L.sl_optim_create.argtypes = [vpp, ctypes.c_void_p, ctypes.POINTER(OptimConfig)] + msg
    L.sl_optim_free.argtypes = [ctypes.c_void_p]
    L.sl_optim_free.restype = None
    L.sl_optim_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    L.sl_optim_set_threads.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return L


def config(ndim=3, cin=1, classes=2, depth=3, width=4, norm="instance", down="maxpool", ds=0, seed=7,
           pool=None, kernel=None, max_width=0):
    """An sl_unet_config; pool/kernel: {stage: (f per axis)} (missing = 0 = default)."""
    c = UnetConfig(ndim, cin, classes, depth, width, max_width, NORMS[norm], DOWNS[down], ds, 0.01, 1e-5, 0.1, seed)
    for s, v in (pool or {}).items():
        for a, f in enumerate(v):
            c.pool[s][a] = f
    for s, v in (kernel or {}).items():
        for a, k in enumerate(v):
            c.kernel[s][a] = k
    return c


def create(L, cfg, threads=1):
    h = ctypes.c_void_p()
    m = ctypes.create_string_buffer(256)
    rc = L.sl_unet_create(ctypes.byref(h), ctypes.byref(cfg), m, 256)
    if rc != 0:
        raise RuntimeError("sl_unet_create: %s" % m.value.decode())
    L.sl_unet_set_threads(h, threads)
    return h


def tensors(L, net):
    """[(name, is_buffer, offset, shape)] in table order."""
    out = []
    for i in range(L.sl_unet_num_tensors(net)):
        ti = TensorInfo()
        L.sl_unet_tensor(net, i, ctypes.byref(ti))
        out.append((ti.name.decode(), ti.is_buffer, ti.offset, tuple(ti.shape[k] for k in range(ti.ndim))))
    return out


def arrays(L, net):
    """numpy views (float32) of params, grads, buffers."""
    n, nb = L.sl_unet_num_params(net), L.sl_unet_num_buffers(net)
    p = np.ctypeslib.as_array(L.sl_unet_params(net), (n,))
    g = np.ctypeslib.as_array(L.sl_unet_grads(net), (n,))
    b = np.ctypeslib.as_array(L.sl_unet_buffers(net), (nb,)) if nb else np.zeros(0, np.float32)
    return p, g, b


def state(L, net, dtype=torch.float64, grad=True):
    """The net's weights as a dict of torch leaf tensors (params require grad)."""
    p, _, b = arrays(L, net)
    st = {}
    for name, is_buf, off, shape in tensors(L, net):
        src = b if is_buf else p
        t = torch.tensor(src[off:off + int(np.prod(shape))].reshape(shape).astype(np.float64), dtype=dtype)
        if grad and not is_buf:
            t.requires_grad_(True)
        st[name] = t
    return st


def resolved(cfg):
    """Per-stage pool factors and kernels on the net's spatial axes, defaults filled in."""
    nd = cfg.spatial_ndim
    pf = [[1] * nd if s == 0 else [cfg.pool[s][a] or 2 for a in range(nd)] for s in range(cfg.depth)]
    kx = [[cfg.kernel[s][a] or 3 for a in range(nd)] for s in range(cfg.depth)]
    return pf, kx


def torch_forward(st, x, cfg, training=True):
    """Logits of every output level (a list, level 0 first)."""
    nd = cfg.spatial_ndim
    conv = F.conv3d if nd == 3 else F.conv2d
    convt = F.conv_transpose3d if nd == 3 else F.conv_transpose2d
    pool = F.max_pool3d if nd == 3 else F.max_pool2d
    pf, kx = resolved(cfg)
    norm = {v: k for k, v in NORMS.items()}[cfg.norm]
    slope, eps, mom = float(cfg.leaky_slope), float(cfg.norm_eps), float(cfg.bn_momentum)

    def block(stage, i, h, s, stride):
        y = conv(h, st["%s.conv%d.weight" % (stage, i)], st.get("%s.conv%d.bias" % (stage, i)),
                 stride=tuple(stride), padding=tuple((k - 1) // 2 for k in kx[s]))
        if norm == "instance":
            y = F.instance_norm(y, weight=st["%s.norm%d.weight" % (stage, i)], bias=st["%s.norm%d.bias" % (stage, i)],
                                eps=eps)
        elif norm == "batch":
            y = F.batch_norm(y, st["%s.norm%d.running_mean" % (stage, i)], st["%s.norm%d.running_var" % (stage, i)],
                             weight=st["%s.norm%d.weight" % (stage, i)], bias=st["%s.norm%d.bias" % (stage, i)],
                             training=training, momentum=mom, eps=eps)
        return F.leaky_relu(y, slope)

    D = cfg.depth
    nout = D - 1 if cfg.deep_supervision and D >= 3 else 1
    feats, h = [], x
    for s in range(D):
        stride = [1] * nd
        if s > 0 and cfg.down == DOWNS["maxpool"]:
            h = pool(h, kernel_size=tuple(pf[s]), stride=tuple(pf[s]))
        elif s > 0:
            stride = pf[s]
        h = block("enc%d" % s, 1, h, s, stride)
        h = block("enc%d" % s, 2, h, s, [1] * nd)
        feats.append(h)
    outs = [None] * nout
    if D == 1:
        outs[0] = conv(h, st["head0.weight"], st["head0.bias"])
    for s in range(D - 2, -1, -1):
        up = convt(h, st["up%d.weight" % s], st["up%d.bias" % s], stride=tuple(pf[s + 1]))
        h = block("dec%d" % s, 1, torch.cat([feats[s], up], 1), s, [1] * nd)
        h = block("dec%d" % s, 2, h, s, [1] * nd)
        if s < nout:
            outs[s] = conv(h, st["head%d.weight" % s], st["head%d.bias" % s])
    return outs


def level_factors(cfg, level):
    pf, _ = resolved(cfg)
    f = [1] * cfg.spatial_ndim
    for s in range(1, level + 1):
        f = [f[a] * pf[s][a] for a in range(cfg.spatial_ndim)]
    return f


def ds_loss(outs, labels, cfg):
    """Softmax cross-entropy averaged over the voxels of each level, levels
    weighted 2^-l normalised, targets taken by nearest downsampling."""
    w = np.array([2.0 ** -l for l in range(len(outs))])
    w /= w.sum()
    total = 0.0
    for l, o in enumerate(outs):
        f = level_factors(cfg, l)
        sl = (slice(None),) + tuple(slice(None, None, k) for k in f)
        total = total + float(w[l]) * F.cross_entropy(o, labels[sl])
    return total
