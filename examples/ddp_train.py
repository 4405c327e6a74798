"""Data-parallel training with segloss losses whose batch statistics span all ranks.

A small convolutional network learns to segment synthetic images (a bright disk =
class 1 and a dark square = class 2 on noise) with
SegLoss("dice(batch=true,include_background=false)+ce", process_group=WORLD):
the batch Dice's pooled sums are all-reduced over the ranks before the ratio is
taken, so every rank sees the Dice of the GLOBAL batch, and the gradients are
scaled so that DDP's averaging gives the gradient of one process on the whole
batch. Runs on CPU (gloo) or on GPUs (nccl, one per rank); with process_group the
loss runs through the native PyTorch backend on the tensors' own device
(--backend auto), or on CPU through the C kernels (--backend c), which hand their
sums to the same all-reduce between their two passes.

    PYTHONPATH=python SEGLOSS_LIB=build/libsegloss.so \\
        python3 -m torch.distributed.run --nproc_per_node 2 examples/ddp_train.py [--epochs E] [--spec SPEC] [--backend c]

With Debian's torch 1.13 under Python 3.11 the launcher itself fails before starting
the workers (AttributeError in to_map: its --redirects/--tee default "0" parses to None);
add `--redirects 2 --tee 1` after --nproc_per_node 2 there.

Rank 0 prints the global loss per epoch and, at the end, the test Dice per class.
"""
import argparse
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from segloss.torch import SegLoss


def synthetic(n, size, seed):
    """n images (1, size, size) and label maps: a disk (1) and a square (2) at random places."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    imgs = torch.randn(n, 1, size, size, generator=g) * 0.4
    labels = torch.zeros(n, size, size, dtype=torch.int64)
    for i in range(n):
        cy, cx, r = (torch.randint(6, size - 6, (2,), generator=g).tolist() + [int(torch.randint(3, 6, (1,), generator=g))])
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        sy, sx = torch.randint(0, size - 5, (2,), generator=g).tolist()
        square = torch.zeros_like(disk)
        square[sy:sy + 4, sx:sx + 4] = True
        labels[i][square] = 2
        labels[i][disk] = 1
        imgs[i, 0] += 1.5 * disk - 1.2 * square
    return imgs, labels


def network():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=2, dilation=2),
                         nn.ReLU(), nn.Conv2d(16, 3, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--spec", default="dice(batch=true,include_background=false)+ce")
    ap.add_argument("--batch", type=int, default=8, help="per-rank batch size")
    ap.add_argument("--backend", default="auto", choices=("auto", "c", "torch"),
                    help="SegLoss backend: auto (native with a process group), c (CPU only), torch")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    torch.set_num_threads(1)
    torch.manual_seed(0)                       # the same initial weights on every rank

    train = TensorDataset(*synthetic(120, 32, seed=1))
    test_x, test_y = synthetic(32, 32, seed=2)
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(train, batch_size=args.batch, sampler=sampler)

    model = DDP(network().to(device), device_ids=[device.index] if cuda else None)
    loss_fn = SegLoss(args.spec, backend=args.backend, process_group=dist.group.WORLD)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        total, steps = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = loss_fn(model(x), y)        # the loss of the global batch, the same on every rank
            loss.backward()                    # DDP averages; SegLoss scaled so the result is exact
            opt.step()
            total, steps = total + float(loss), steps + 1
        if rank == 0:
            print("epoch %d  loss %.4f  (%s, %d ranks, global batch %d)"
                  % (epoch, total / steps, args.spec, world, args.batch * world), flush=True)
    if rank == 0:
        model.eval()
        with torch.no_grad():
            pred = model.module(test_x.to(device)).argmax(1).cpu()
        dice = []
        for c in (1, 2):
            p, t = pred == c, test_y == c
            dice.append(2.0 * float((p & t).sum()) / max(float(p.sum() + t.sum()), 1.0))
        print("test Dice: disk %.3f  square %.3f" % tuple(dice))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
