"""PyTorch twin of the segloss U-Net, and the reference states for
tests/unit/test_nn_torch.c.

    /usr/bin/python3 tests/ref/nn_torch_state.py OUTDIR

writes OUTDIR/state_<k>.bin for a few configurations and prints one line per
file. Each file (all little-endian, llm.c style):

    int32[64]   header: [0] magic 0x4E4E4C53 ("SLNN"), [1] version 1,
                [2] in_channels, [3] num_classes, [4] depth, [5] base_width,
                [6] norm (0 instance, 1 batch, 2 none), [7] down (0 maxpool,
                1 strided), [8] deep_supervision, [9] B, [10] H, [11] W,
                [12] steps (3), [13] parameter tensors, [14] buffer tensors,
                [15] parameter floats, [16] buffer floats, [17] outputs,
                [18..20] float32 bits of lr, weight_decay, leaky_slope
    per tensor (parameters, then buffers): char[64] name, int32 ndim,
                int32[4] shape
    float32     initial parameters, initial buffers
    float32     images (B, Cin, H, W);  int32 labels (B, H, W)
    float32     logits of the first forward (B, C, H, W)
    float32     losses [steps + 1] (before each step and after the last)
    float32     gradients of the first backward (all parameters)
    float32     parameters after `steps` Adam steps
    float32     buffers after the last forward

The loss both sides use: softmax cross-entropy averaged over the pixels of
each output level, levels weighted by 2^-l normalised (deep supervision),
targets of level l taken as labels[:, ::2^l, ::2^l]. The reference runs in
float64 from the same float32 weights and inputs.

The UNet class is also what perf/train_speed.py times against segloss.
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NORMS = {"instance": 0, "batch": 1, "none": 2}
DOWNS = {"maxpool": 0, "strided": 1}


def make_norm(kind, c, eps, momentum):
    if kind == "instance":
        return nn.InstanceNorm2d(c, eps=eps, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(c, eps=eps, momentum=momentum)
    return nn.Identity()


class Stage(nn.Module):
    """conv3x3 -> norm -> LeakyReLU, twice (the first conv may have stride 2)."""

    def __init__(self, cin, cout, stride, norm, slope, eps, momentum):
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.norm1 = make_norm(norm, cout, eps, momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.norm2 = make_norm(norm, cout, eps, momentum)
        self.slope = slope

    def forward(self, x):
        x = F.leaky_relu(self.norm1(self.conv1(x)), self.slope)
        return F.leaky_relu(self.norm2(self.conv2(x)), self.slope)


class UNet(nn.Module):
    """The segloss U-Net (include/segloss/nn.h) with the same parameter names
    and order: enc0.., then up{s}, dec{s} for s = depth-2 .. 0, then heads."""

    def __init__(self, in_channels=1, num_classes=2, depth=4, base_width=16, norm="instance",
                 down="maxpool", deep_supervision=False, slope=0.01, eps=1e-5, momentum=0.1, max_width=0):
        super().__init__()
        w = []
        for s in range(depth):
            ws = base_width * 2 ** s
            w.append(min(ws, max_width) if max_width > 0 else ws)
        self.depth, self.down, self.w = depth, down, w
        for s in range(depth):
            cin = in_channels if s == 0 else w[s - 1]
            stride = 2 if (down == "strided" and s > 0) else 1
            self.add_module("enc%d" % s, Stage(cin, w[s], stride, norm, slope, eps, momentum))
        for s in range(depth - 2, -1, -1):
            self.add_module("up%d" % s, nn.ConvTranspose2d(w[s + 1], w[s], 2, 2))
            self.add_module("dec%d" % s, Stage(2 * w[s], w[s], 1, norm, slope, eps, momentum))
        self.nout = depth - 1 if (deep_supervision and depth >= 3) else 1
        for lv in range(self.nout):
            self.add_module("head%d" % lv, nn.Conv2d(w[lv], num_classes, 1))

    def forward(self, x):
        skips = []
        for s in range(self.depth):
            if s > 0 and self.down == "maxpool":
                x = F.max_pool2d(x, 2)
            x = getattr(self, "enc%d" % s)(x)
            skips.append(x)
        outs = {}
        if self.depth == 1:
            outs[0] = self.head0(x)
        for s in range(self.depth - 2, -1, -1):
            x = getattr(self, "up%d" % s)(x)
            x = getattr(self, "dec%d" % s)(torch.cat([skips[s], x], 1))
            if s < self.nout:
                outs[s] = getattr(self, "head%d" % s)(x)
        return [outs[lv] for lv in range(self.nout)]


def ds_weights(n):
    w = np.array([2.0 ** -i for i in range(n)])
    return w / w.sum()


def ds_loss(outs, labels):
    w = ds_weights(len(outs))
    loss = 0
    for lv, o in enumerate(outs):
        f = 2 ** lv
        loss = loss + float(w[lv]) * F.cross_entropy(o, labels[:, ::f, ::f])
    return loss


CONFIGS = [
    # in, classes, depth, base, norm, down, ds, B, H, W, lr, wd
    dict(in_channels=1, num_classes=3, depth=3, base_width=4, norm="instance", down="maxpool", ds=False,
         B=2, H=16, W=16, lr=1e-2, wd=0.0),
    dict(in_channels=2, num_classes=2, depth=3, base_width=4, norm="batch", down="strided", ds=True,
         B=3, H=16, W=24, lr=1e-2, wd=1e-2),
    dict(in_channels=1, num_classes=4, depth=4, base_width=8, norm="instance", down="strided", ds=True,
         B=2, H=32, W=32, lr=3e-3, wd=0.0),
    dict(in_channels=3, num_classes=2, depth=2, base_width=6, norm="none", down="maxpool", ds=False,
         B=2, H=12, W=20, lr=1e-2, wd=0.0),
    dict(in_channels=1, num_classes=2, depth=1, base_width=5, norm="instance", down="maxpool", ds=False,
         B=2, H=9, W=7, lr=1e-2, wd=0.0),
]
STEPS = 3
SLOPE = 0.01


def write_state(path, cfg, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = UNet(cfg["in_channels"], cfg["num_classes"], cfg["depth"], cfg["base_width"], cfg["norm"],
               cfg["down"], cfg["ds"], SLOPE)
    # make every parameter non-trivial (norm weights off 1, biases off 0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() == 1:
                base = 1.0 if name.split(".")[-2].startswith("norm") and name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn_like(p))
    for p in net.parameters():
        p.data = p.data.float()  # the C side gets these exact float32 values
    params = [(n, p) for n, p in net.named_parameters()]
    buffers = [(n, b) for n, b in net.named_buffers() if not n.endswith("num_batches_tracked")]
    B, H, W = cfg["B"], cfg["H"], cfg["W"]
    images = rng.standard_normal((B, cfg["in_channels"], H, W)).astype(np.float32)
    labels = rng.integers(0, cfg["num_classes"], size=(B, H, W)).astype(np.int32)
    p0 = np.concatenate([p.detach().numpy().ravel() for _, p in params]).astype(np.float32)
    b0 = (np.concatenate([b.numpy().ravel() for _, b in buffers]).astype(np.float32)
          if buffers else np.zeros(0, np.float32))

    net = net.double()
    net.train()
    x = torch.tensor(images.astype(np.float64))
    y = torch.tensor(labels.astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
    losses = []
    logits0 = grads0 = None
    for step in range(STEPS + 1):
        opt.zero_grad()
        outs = net(x)
        loss = ds_loss(outs, y)
        losses.append(loss.item())
        if step == STEPS:
            break
        loss.backward()
        if step == 0:
            logits0 = outs[0].detach().numpy().astype(np.float32)
            grads0 = np.concatenate([p.grad.numpy().ravel() for p in net.parameters()]).astype(np.float32)
        opt.step()
    p3 = np.concatenate([p.detach().numpy().ravel() for p in net.parameters()]).astype(np.float32)
    b3 = (np.concatenate([b.numpy().ravel() for n, b in net.named_buffers()
                          if not n.endswith("num_batches_tracked")]).astype(np.float32)
          if buffers else np.zeros(0, np.float32))

    hdr = np.zeros(64, np.int32)
    hdr[0], hdr[1] = 0x4E4E4C53, 1
    hdr[2:13] = [cfg["in_channels"], cfg["num_classes"], cfg["depth"], cfg["base_width"], NORMS[cfg["norm"]],
                 DOWNS[cfg["down"]], int(cfg["ds"]), B, H, W, STEPS]
    hdr[13], hdr[14], hdr[15], hdr[16], hdr[17] = len(params), len(buffers), p0.size, b0.size, net.nout
    hdr[18:21] = np.array([cfg["lr"], cfg["wd"], SLOPE], np.float32).view(np.int32)
    with open(path, "wb") as f:
        f.write(hdr.astype("<i4").tobytes())
        for name, t in params + buffers:
            shape = list(t.shape) + [0] * (4 - t.dim())
            f.write(struct.pack("<64s5i", name.encode(), t.dim(), *shape))
        for a in (p0, b0, images):
            f.write(a.astype("<f4").tobytes())
        f.write(labels.astype("<i4").tobytes())
        for a in (logits0, np.array(losses, np.float32), grads0, p3, b3):
            f.write(np.asarray(a).astype("<f4").tobytes())


def main():
    out = sys.argv[1]
    torch.set_num_threads(1)
    for k, cfg in enumerate(CONFIGS):
        path = os.path.join(out, "state_%d.bin" % k)
        write_state(path, cfg, 100 + k)
        print(path)


if __name__ == "__main__":
    main()
