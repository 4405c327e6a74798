"""Train a small PyTorch U-Net on Colin27 axial slices with segloss losses (CPU, a few minutes).

Data: Debian's mricron-data (/usr/share/mricron/templates): the skull-stripped Colin27 T1
(ch2bet.nii.gz) and the AAL atlas in the same space (aal.nii.gz, aal.nii.txt), labelled as
segloss's `colin` source does (src/data/colin.c): 1 = deep grey nuclei (caudate, putamen,
pallidum, thalamus), 2 = hippocampus + amygdala, 0 = everything else; z-scored over the brain.
Slices are downsampled 2x and cropped to the labelled region; blocks of 8 slices alternate between train and test with a 2-slice
gap between them.

Two runs from the same initial weights:
  1. SegLoss("dice+ce")
  2. SegLoss("0.5*gdice+0.5*boundary"), the boundary loss's distance maps computed by
     segloss.torch.boundary_maps in the DataLoader workers (num_workers=1, forked; segloss
     runs single-threaded there by itself) and passed as dist=.
Each prints the test Dice per class.

    PYTHONPATH=python SEGLOSS_LIB=build/libsegloss.so /usr/bin/python3 examples/train_pytorch.py [--epochs E] [--threads T]
(or, with the package installed into a venv, VENV/bin/python examples/train_pytorch.py)
"""
import argparse
import copy
import gzip
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from segloss.torch import SegLoss, boundary_maps

TEMPLATES = "/usr/share/mricron/templates"
CLASS1 = ("Caudate", "Putamen", "Pallidum", "Thalamus")
CLASS2 = ("Hippocampus", "Amygdala")
NIFTI_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 256: np.int8,
                512: np.uint16, 768: np.uint32}


def read_nifti(path):
    """A NIfTI-1 volume as a numpy array indexed [z, y, x] (scaled by scl_slope/inter when set)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    dims = struct.unpack(endian + "8h", raw[40:56])
    dtype = NIFTI_DTYPES[struct.unpack(endian + "h", raw[70:72])[0]]
    offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", raw[112:120])
    shape = dims[1:1 + dims[0]][:3]
    a = np.frombuffer(raw, np.dtype(dtype).newbyteorder(endian), int(np.prod(shape)), offset)
    a = a.reshape(shape[::-1]).astype(np.float32)     # file order is x fastest
    if slope not in (0.0, 1.0) or inter != 0.0:
        a = a * (slope if slope != 0 else 1.0) + inter
    return a


def load_colin():
    t1 = read_nifti(os.path.join(TEMPLATES, "ch2bet.nii.gz"))
    aal = read_nifti(os.path.join(TEMPLATES, "aal.nii.gz")).astype(np.int32)
    table = {}
    with open(os.path.join(TEMPLATES, "aal.nii.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit():
                region = parts[1].rsplit("_", 1)[0]
                table[int(parts[0])] = 1 if region in CLASS1 else 2 if region in CLASS2 else 0
    lab = np.zeros(aal.shape, np.int64)
    for v, c in table.items():
        if c:
            lab[aal == v] = c
    brain = t1 > 0
    t1 = np.where(brain, (t1 - t1[brain].mean()) / t1[brain].std(), 0).astype(np.float32)
    lab[~brain] = 0
    return t1, lab


def slices(t1, lab, block=8, gap=2):
    """Axial slices holding a labelled class, downsampled 2x, cropped to a multiple of 8;
    blocks of `block` slices alternate train/test with `gap` slices dropped between them."""
    zs = [z for z in range(t1.shape[0]) if (lab[z] > 0).sum() >= 20]
    x = t1[zs][:, ::2, ::2]
    y = lab[zs][:, ::2, ::2]
    # crop to the labelled region (the structures are central) plus a margin, in multiples of 8
    ys, xs = np.nonzero(y.any(0))
    crop = []
    for lo, hi, n in ((ys.min(), ys.max() + 1, y.shape[1]), (xs.min(), xs.max() + 1, y.shape[2])):
        size = min(n // 8 * 8, ((hi - lo + 16) + 7) // 8 * 8)
        start = int(np.clip((lo + hi) // 2 - size // 2, 0, n - size))
        crop.append(slice(start, start + size))
    x, y = x[:, crop[0], crop[1]], y[:, crop[0], crop[1]]
    train, test = [], []
    for i in range(len(zs)):
        b, r = divmod(i, block + gap)
        if r < block:
            (train if b % 2 == 0 else test).append(i)
    return (x[train], y[train]), (x[test], y[test])


class Slices(torch.utils.data.Dataset):
    """(image, labels[, boundary distance maps]) per slice; the maps come from segloss in the worker."""

    def __init__(self, x, y, with_maps=False, flip=True):
        self.x, self.y, self.with_maps, self.flip = x, y, with_maps, flip

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x, y = self.x[i], self.y[i]
        if self.flip and np.random.rand() < 0.5:     # left-right flip: the atlas classes are symmetric
            x, y = x[:, ::-1], y[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(x))[None]
        y = torch.from_numpy(np.ascontiguousarray(y))
        if not self.with_maps:
            return x, y
        return x, y, boundary_maps(y[None], 3)[0]


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, c=8, classes=3):
        super().__init__()
        self.e1, self.e2, self.e3 = block(1, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.u2, self.d2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2), block(4 * c, 2 * c)
        self.u1, self.d1 = nn.ConvTranspose2d(2 * c, c, 2, 2), block(2 * c, c)
        self.out = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([self.u2(e3), e2], 1))
        d1 = self.d1(torch.cat([self.u1(d2), e1], 1))
        return self.out(d1)


def test_dice(model, x, y, classes=3):
    """Dice per foreground class over the whole test set (all slices pooled)."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(x[i:i + 16])[:, None]).argmax(1) for i in range(0, len(x), 16)])
    y = torch.from_numpy(y)
    out = []
    for c in range(1, classes):
        p, g = pred == c, y == c
        out.append(2.0 * float((p & g).sum()) / max(float(p.sum() + g.sum()), 1.0))
    return out


def train(name, spec, init, data, epochs, threads, with_maps):
    (xtr, ytr), (xte, yte) = data
    torch.manual_seed(1)
    model = copy.deepcopy(init)
    loss = SegLoss(spec, threads=threads)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    dl = torch.utils.data.DataLoader(Slices(xtr, ytr, with_maps), batch_size=4, shuffle=True,
                                     num_workers=1 if with_maps else 0,
                                     multiprocessing_context="fork" if with_maps else None)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for batch in dl:
            x, y = batch[0], batch[1]
            dist = batch[2] if with_maps else None
            v = loss(model(x), y, dist=dist)
            opt.zero_grad()
            v.backward()
            opt.step()
            total, n = total + float(v), n + 1
        terms = ", ".join("%s %.3f" % kv for kv in loss.term_values().items())
        print("  [%s] epoch %d/%d  loss %.4f  (last batch: %s)  %.0f s" % (name, epoch + 1, epochs, total / n, terms,
                                                                        time.time() - t0), flush=True)
    d = test_dice(model, xte, yte)
    print("%-24s test Dice: deep grey nuclei %.3f, hippocampus+amygdala %.3f   (%.0f s)"
          % (spec, d[0], d[1], time.time() - t0), flush=True)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    t1, lab = load_colin()
    data = slices(t1, lab)
    (xtr, ytr), (xte, yte) = data
    print("Colin27: %d train / %d test slices of %dx%d; class voxels in train: %s"
          % (len(xtr), len(xte), xtr.shape[1], xtr.shape[2], np.bincount(ytr.ravel(), minlength=3).tolist()))
    torch.manual_seed(0)
    init = UNet()
    train("dice+ce", "dice+ce", init, data, a.epochs, a.threads, with_maps=False)
    train("gdice+boundary", "0.5*gdice+0.5*boundary", init, data, a.epochs, a.threads, with_maps=True)
    print("total %.0f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
