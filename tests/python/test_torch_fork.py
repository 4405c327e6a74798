"""Forked children after a parallel region: a loss in a forked child and in
PyTorch DataLoader workers (forked) runs single-threaded and finishes, under a
timeout (GNU OpenMP hangs in a forked child whose parent ran a parallel region
with more than one thread).
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import os
import signal
import time

import torch

import pyref  # noqa: F401  (paths)
import slref

from segloss import _lib
from segloss.torch import SegLoss, boundary_maps

TIMEOUT = 60


class Volumes(torch.utils.data.Dataset):
    """Each item: logits, labels, the boundary maps and a loss value, all computed in the worker."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(1, 3, 24, 24, 24, generator=g)
        y = torch.randint(0, 3, (1, 24, 24, 24), generator=g)
        d = boundary_maps(y, 3)
        v = SegLoss("dice+ce+0.1*boundary")(x, y, dist=d)
        return x[0], y[0], d[0], v, _lib.threads(), _lib.threads(4)


def main():
    chk = slref.Check("fork after a parallel region")
    torch.set_num_threads(2)
    x = torch.randn(2, 4, 40, 40, 40)
    y = torch.randint(0, 4, (2, 40, 40, 40))
    loss = SegLoss("dice+ce+0.1*boundary", threads=2)
    want = float(loss(x, y))           # a parallel region with 2 threads in the parent
    boundary_maps(y, 4, threads=2)

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        signal.alarm(TIMEOUT)          # the child ends itself if it hangs
        try:
            v = float(loss(x, y))
            os.write(wfd, ("%r %d" % (v, _lib.threads())).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    t0 = time.time()
    done = 0
    while time.time() - t0 < TIMEOUT + 5:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    if not done:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    out = os.read(rfd, 256).decode().split()
    chk.true("forked child finished within %d s: %r" % (TIMEOUT, out), len(out) == 2)
    if len(out) == 2:
        chk.close("value in the forked child", float(out[0]), want, rtol=1e-6, atol=1e-7)
        chk.true("threads in the child %s" % out[1], out[1] == "1")
    print("forked child: %.2f s" % (time.time() - t0))

    # DataLoader workers (fork start method), again after a parallel region in the parent.
    t0 = time.time()
    ds = Volumes()
    dl = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, timeout=TIMEOUT,
                                     multiprocessing_context="fork")
    got = list(dl)
    print("DataLoader with 2 workers: %.2f s" % (time.time() - t0))
    chk.true("batches %d" % len(got), len(got) == 2)
    for b, (xb, yb, db, vb, t1, t4) in enumerate(got):
        chk.true("worker threads %s %s" % (t1.tolist(), t4.tolist()), t1.tolist() == [1, 1] and t4.tolist() == [1, 1])
        for j in range(2):
            i = 2 * b + j
            x1, y1, d1, v1 = ds[i][:4]          # the same item in the parent
            chk.close("worker boundary maps item %d" % i, db[j], d1, rtol=0, atol=0, group="worker maps")
            chk.close("worker loss item %d" % i, float(vb[j]), float(v1), rtol=1e-6, atol=1e-7, group="worker loss")
    chk.report()


if __name__ == "__main__":
    main()
