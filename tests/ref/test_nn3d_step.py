"""A whole 3-D U-Net training step against PyTorch, through the public API.

For each configuration (3-D; instance norm + max-pool + deep supervision
with anisotropic pool (1,2,2)/(2,2,2) and a 1x3x3 first stage; batch norm +
strided down-sampling; no norm; a 2-D anisotropic net) the net is created
by segloss, and a functional PyTorch twin (tests/ref/unet3dref.py: conv3d,
instance_norm / batch_norm, max_pool3d, conv_transpose3d, leaky_relu) is
built in float64 from the same float32 weights. Checked:

- forward: the logits of every output level (sl_unet_output), and their
  extents (sl_unet_level_factors);
- backward: sl_unet_backward_ds fed PyTorch's gradient of the
  deep-supervision cross-entropy w.r.t. each level's logits; every
  parameter gradient compared with autograd's;
- one optimiser step (SGD, momentum 0.9, lr 0.05: the new parameters are a
  linear function of the gradient, so the comparison is not disturbed by
  Adam's sign-like first step on noise-floor gradients), then the loss of
  a second forward against PyTorch's after torch.optim.SGD's step;
- BatchNorm running statistics after the forward;
- 1 and 2 threads give bit-identical logits, gradients and parameters;
- save/load (model format v2 with the optimiser) round-trips the
  configuration, parameters and the forward's output bit for bit;
- bad input: 2-D images for a 3-D net, an extent not divisible by the pool
  factors along its axis (one message naming the axis), and the planner's
  rule on an anisotropic spacing.

Tolerance: every tensor within 1e-5 of its max |ref| (element-wise
|c - ref| <= 1e-5 max|ref|); the max difference is printed per group.

Loads libsegloss.so through ctypes -- sanitized: skip
"""
import ctypes
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import slref  # noqa: E402
import unet3dref as U  # noqa: E402

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
L = U.lib()
chk = slref.Check("test_nn3d_step")
REL = 1e-5


def close(what, got, want, group):
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.abs(want).max()) if want.size else 0.0
    chk.close(what, got, want, rtol=0.0, atol=REL * max(scale, 1e-30), group=group)


def P(a):
    return a.ctypes.data_as(U.fp)


def c_step(cfg, images, dl, threads, lr, mom):
    """segloss: forward, backward with the given level gradients, one SGD
    step, a second forward. Returns (levels, grads, params, buffers, logits2, net)."""
    net = U.create(L, cfg, threads)
    m = ctypes.create_string_buffer(256)
    nd = cfg.spatial_ndim
    dims = U.Dims(images.shape[0], images.shape[1], nd, (ctypes.c_int64 * 3)(*images.shape[2:], *([0] * (3 - nd))))
    out = np.zeros((images.shape[0], cfg.num_classes) + images.shape[2:], np.float32)
    rc = L.sl_unet_forward(net, P(images), ctypes.byref(dims), P(out), m, 256)
    assert rc == 0, m.value
    levels = []
    for l in range(L.sl_unet_num_outputs(net)):
        ptr, od = U.fp(), U.Dims()
        L.sl_unet_output(net, l, ctypes.byref(ptr), ctypes.byref(od))
        shape = (od.n, od.c) + tuple(od.spatial[a] for a in range(od.spatial_ndim))
        levels.append(np.ctypeslib.as_array(ptr, shape).copy())
    chk.true("sl_unet_forward's logits = level 0", np.array_equal(out, levels[0]))
    arr = (U.fp * len(dl))(*[P(d) for d in dl])
    rc = L.sl_unet_backward_ds(net, arr, m, 256)
    assert rc == 0, m.value
    p, g, b = U.arrays(L, net)
    grads, bufs = g.copy(), b.copy()
    opt = ctypes.c_void_p()
    oc = U.optim_config(kind=2, lr=lr, momentum=mom)
    rc = L.sl_optim_create(ctypes.byref(opt), net, ctypes.byref(oc), m, 256)
    assert rc == 0, m.value
    L.sl_optim_set_threads(opt, threads)
    L.sl_optim_step(opt, None)
    params = p.copy()
    out2 = np.zeros_like(out)
    rc = L.sl_unet_forward(net, P(images), ctypes.byref(dims), P(out2), m, 256)
    assert rc == 0, m.value
    levels2 = []
    for l in range(L.sl_unet_num_outputs(net)):
        ptr, od = U.fp(), U.Dims()
        L.sl_unet_output(net, l, ctypes.byref(ptr), ctypes.byref(od))
        shape = (od.n, od.c) + tuple(od.spatial[a] for a in range(od.spatial_ndim))
        levels2.append(np.ctypeslib.as_array(ptr, shape).copy())
    return levels, grads, params, bufs, levels2, net, opt


def run(tag, cfg, shape, lr=0.05, mom=0.9, save=False):
    rng = np.random.default_rng(11)
    images = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, cfg.num_classes, size=(shape[0],) + tuple(shape[2:]))
    # the reference: a net only to read the initial weights
    net0 = U.create(L, cfg, 1)
    table = U.tensors(L, net0)
    st = U.state(L, net0)
    L.sl_unet_free(net0)
    nd = cfg.spatial_ndim
    pf, kx = U.resolved(cfg)
    for name, _, _, tshape in table:
        if name.endswith("conv1.weight") or name.endswith("conv2.weight"):
            s = int(name[3])
            chk.true("%s %s: shape (Cout, Cin, %s)" % (tag, name, kx[s]), len(tshape) == 2 + nd and
                     list(tshape[2:]) == kx[s])
        if name.startswith("up") and name.endswith("weight"):
            s = int(name[2])
            chk.true("%s %s: shape (Cin, Cout, %s)" % (tag, name, pf[s + 1]), list(tshape[2:]) == pf[s + 1])
    x = torch.tensor(images.astype(np.float64))
    y = torch.tensor(labels)
    outs = U.torch_forward(st, x, cfg, training=True)
    for o in outs:
        o.retain_grad()
    loss = U.ds_loss(outs, y, cfg)
    loss.backward()
    dl = [np.ascontiguousarray(o.grad.numpy().astype(np.float32)) for o in outs]
    names = [t[0] for t in table if not t[1]]
    with torch.no_grad():
        ref_bufs = {k: v.clone() for k, v in st.items() if "running" in k}
    # SGD step in float64 on the reference, then the loss after it
    params = [st[n] for n in names]
    sgd = torch.optim.SGD(params, lr=lr, momentum=mom)
    sgd.step()
    with torch.no_grad():
        outs2 = U.torch_forward(st, x, cfg, training=True)
        loss2 = float(U.ds_loss(outs2, y, cfg))

    res = {}
    for threads in (1, 2):
        res[threads] = c_step(cfg, images, dl, threads, lr, mom)
    levels, grads, newp, bufs, levels2, net, opt = res[1]
    g = tag
    chk.true(tag + ": output levels", len(levels) == len(outs))
    for l, o in enumerate(outs):
        close("%s logits level %d" % (tag, l), levels[l], o.detach().numpy(), g + " forward")
        f = (ctypes.c_int * 3)()
        L.sl_unet_level_factors(net, l, f)
        chk.true("%s level %d factors" % (tag, l), list(f)[:nd] == U.level_factors(cfg, l))
    for name, is_buf, off, tshape in table:
        n = int(np.prod(tshape))
        if is_buf:
            close("%s %s after forward" % (tag, name), bufs[off:off + n].reshape(tshape), ref_bufs[name].numpy(),
                  g + " buffers")
            continue
        close("%s grad %s" % (tag, name), grads[off:off + n].reshape(tshape), st[name].grad.numpy(), g + " grads")
        close("%s param after SGD %s" % (tag, name), newp[off:off + n].reshape(tshape), st[name].detach().numpy(),
              g + " step")
    with torch.no_grad():
        c_outs = [torch.tensor(a.astype(np.float64)) for a in levels2]
        c_loss2 = float(U.ds_loss(c_outs, y, cfg))
    close(tag + " loss after the step", np.array([c_loss2]), np.array([loss2]), g + " loss")
    print("  %s: loss %.6f -> %.6f (segloss %.6f)" % (tag, float(loss), loss2, c_loss2))
    for i, what in enumerate(("logits", "grads", "params", "buffers", "logits after step")):
        a, b = res[1][i], res[2][i]
        if isinstance(a, list):
            same = all(np.array_equal(u, v) for u, v in zip(a, b))
        else:
            same = np.array_equal(a, b)
        chk.true("%s %s: 1 and 2 threads bit-identical" % (tag, what), same)
    if save:
        save_load(tag, cfg, res[1][5], res[1][6], images)
    for t in (1, 2):
        L.sl_optim_free(res[t][6])
        L.sl_unet_free(res[t][5])


def save_load(tag, cfg, net, opt, images):
    m = ctypes.create_string_buffer(256)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.slnet").encode()
        rc = L.sl_unet_save(net, opt, path, m, 256)
        chk.true(tag + " save: " + m.value.decode(), rc == 0)
        with open(path, "rb") as f:
            head = f.read(12)
        chk.true(tag + " file is format version 2", int.from_bytes(head[8:12], "little") == 2)
        net2, opt2 = ctypes.c_void_p(), ctypes.c_void_p()
        rc = L.sl_unet_load(ctypes.byref(net2), ctypes.byref(opt2), path, m, 256)
        chk.true(tag + " load: " + m.value.decode(), rc == 0 and bool(opt2.value))
        c1, c2 = U.UnetConfig(), U.UnetConfig()
        L.sl_unet_get_config(net, ctypes.byref(c1))
        L.sl_unet_get_config(net2, ctypes.byref(c2))
        chk.true(tag + " load: the configuration round-trips", bytes(c1) == bytes(c2))
        p1, _, b1 = U.arrays(L, net)
        p2, _, b2 = U.arrays(L, net2)
        chk.true(tag + " load: parameters and buffers bit-identical", np.array_equal(p1, p2) and np.array_equal(b1, b2))
        nd = cfg.spatial_ndim
        dims = U.Dims(images.shape[0], images.shape[1], nd, (ctypes.c_int64 * 3)(*images.shape[2:], *([0] * (3 - nd))))
        o1 = np.zeros((images.shape[0], cfg.num_classes) + images.shape[2:], np.float32)
        o2 = np.zeros_like(o1)
        L.sl_unet_set_threads(net2, 1)
        L.sl_unet_set_threads(net, 1)
        L.sl_unet_forward(net, P(images), ctypes.byref(dims), P(o1), m, 256)
        L.sl_unet_forward(net2, P(images), ctypes.byref(dims), P(o2), m, 256)
        chk.true(tag + " load: forward bit-identical", np.array_equal(o1, o2))
        L.sl_optim_free(opt2)
        L.sl_unet_free(net2)


run("3d-instance-maxpool-ds-aniso",
    U.config(ndim=3, cin=2, classes=3, depth=3, width=4, norm="instance", down="maxpool", ds=1,
             pool={1: (1, 2, 2), 2: (2, 2, 2)}, kernel={0: (1, 3, 3)}),
    (2, 2, 4, 8, 8), save=True)
run("3d-batch-strided", U.config(ndim=3, cin=1, classes=2, depth=3, width=4, norm="batch", down="strided"),
    (2, 1, 8, 8, 8), save=True)
run("3d-none-maxpool", U.config(ndim=3, cin=1, classes=2, depth=2, width=3, norm="none", down="maxpool"),
    (1, 1, 4, 6, 4))
run("3d-instance-strided-aniso-ds",
    U.config(ndim=3, cin=1, classes=2, depth=4, width=3, norm="instance", down="strided", ds=1,
             pool={1: (1, 2, 2), 2: (1, 2, 2), 3: (2, 2, 2)}, kernel={0: (1, 3, 3), 1: (1, 3, 3)}),
    (1, 1, 4, 16, 16))
run("2d-instance-aniso", U.config(ndim=2, cin=1, classes=2, depth=3, width=4, pool={1: (1, 2), 2: (2, 2)},
                                  kernel={0: (1, 3)}), (2, 1, 8, 16))

# ----------------------------------------------------------------- errors
m = ctypes.create_string_buffer(256)
net = U.create(L, U.config(ndim=3, depth=3, pool={1: (1, 2, 2)}), 1)
img = np.zeros((1, 1, 8, 8, 8), np.float32)
out = np.zeros((1, 2, 8, 8, 8), np.float32)
d2 = U.Dims(1, 1, 2, (ctypes.c_int64 * 3)(8, 8, 0))
rc = L.sl_unet_forward(net, P(img), ctypes.byref(d2), P(out), m, 256)
chk.true("2-D images for a 3-D net: SL_ESHAPE naming both: " + m.value.decode(),
         rc == 2 and b"3-D" in m.value and b"2 spatial" in m.value)
d3 = U.Dims(1, 1, 3, (ctypes.c_int64 * 3)(6, 8, 8))  # D pooled once (stage 2): 6 is fine, 6 -> 3
rc = L.sl_unet_forward(net, P(img), ctypes.byref(d3), P(out), m, 256)
chk.true("D = 6 with one pooling along D: accepted (%s)" % m.value.decode(), rc == 0)
d3 = U.Dims(1, 1, 3, (ctypes.c_int64 * 3)(5, 8, 8))
rc = L.sl_unet_forward(net, P(img), ctypes.byref(d3), P(out), m, 256)
chk.true("D = 5 not divisible by 2: " + m.value.decode(), rc == 2 and m.value.startswith(b"D must be divisible by 2"))
d3 = U.Dims(1, 1, 3, (ctypes.c_int64 * 3)(8, 8, 6))
rc = L.sl_unet_forward(net, P(img), ctypes.byref(d3), P(out), m, 256)
chk.true("W = 6 not divisible by 4: " + m.value.decode(), rc == 2 and m.value.startswith(b"W must be divisible by 4"))
L.sl_unet_free(net)
h = ctypes.c_void_p()
bad = U.config(ndim=3, pool={1: (3, 2, 2)})
rc = L.sl_unet_create(ctypes.byref(h), ctypes.byref(bad), m, 256)
chk.true("pool factor 3: SL_EINVAL: " + m.value.decode(), rc == 1 and b"pool[1][0]" in m.value and not h.value)
bad = U.config(ndim=3, kernel={1: (2, 3, 3)})
rc = L.sl_unet_create(ctypes.byref(h), ctypes.byref(bad), m, 256)
chk.true("kernel 2: SL_EINVAL: " + m.value.decode(), rc == 1 and b"kernel[1][0]" in m.value)
bad = U.config(ndim=2, pool={1: (2, 2, 2)})
rc = L.sl_unet_create(ctypes.byref(h), ctypes.byref(bad), m, 256)
chk.true("2-D net with a third pool axis: SL_EINVAL: " + m.value.decode(), rc == 1 and b"pool[1][2]" in m.value)

# ---------------------------------------------------------------- planner
def plan(spacing, patch, depth, ndim=3):
    c = U.config(ndim=ndim, depth=depth)
    rc = L.sl_unet_plan_anisotropic(ctypes.byref(c), (ctypes.c_double * 3)(*spacing), (ctypes.c_int64 * 3)(*patch),
                                    m, 256)
    if rc:
        return rc, m.value.decode()
    return 0, ([list(c.pool[s])[:ndim] for s in range(depth)], [list(c.kernel[s])[:ndim] for s in range(depth)])


def plan_py(spacing, patch, depth):
    """The rule of nn.h / docs/nn.md, written out again."""
    sp, size = list(spacing), list(patch)
    pools, kernels = [[0] * len(sp)], []
    for s in range(depth):
        mn = min(sp)
        last = s == depth - 1
        kernels.append([3 if last or v < 2 * mn else 1 for v in sp])
        if last:
            break
        p = [2 if sp[a] < 2 * mn and size[a] >= 8 else 1 for a in range(len(sp))]
        pools.append(p)
        sp = [sp[a] * p[a] for a in range(len(sp))]
        size = [size[a] // p[a] for a in range(len(sp))]
    return pools, kernels


for spacing, patch, depth in (((3.0, 0.8, 0.8), (32, 128, 128), 5), ((1.0, 1.0, 1.0), (64, 64, 64), 4),
                              ((5.0, 0.5, 0.5), (16, 256, 256), 6), ((1.0, 1.0, 2.5), (64, 64, 32), 4),
                              ((2.0, 1.0, 1.0), (32, 64, 64), 3)):
    rc, got = plan(spacing, patch, depth)
    want = plan_py(spacing, patch, depth)
    chk.true("plan %s %s depth %d: %s" % (spacing, patch, depth, got), rc == 0 and got == want)
rc, got = plan((3.0, 0.8, 0.8), (32, 128, 128), 5)
chk.true("plan 3/0.8 mm: stage 0 kernel 1x3x3, first pool 1x2x2", got[1][0] == [1, 3, 3] and got[0][1] == [1, 2, 2])
rc, got = plan((1.0, 1.0, 1.0), (8, 8, 8), 4)
chk.true("plan: patch 8^3 too small for depth 4: " + str(got), rc == 1 and "stage 2" in got)
rc, got = plan((1.0, 0.0, 1.0), (8, 8, 8), 2)
chk.true("plan: spacing 0: " + str(got), rc == 1 and "spacing" in got)

chk.report()
sys.exit(1 if chk.failures else 0)
