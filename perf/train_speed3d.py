"""Training speed of the 3-D U-Net: segloss against the same network in PyTorch eager.

    make build && /usr/bin/python3 perf/train_speed3d.py [--threads 2] [--rounds 3] [--steps 3]
                                                        [--batch 2] [--size 48 | --size D,H,W]

Both sides: 3-D U-Net with 4 stages, base width 16 (16-32-64-128), 1 input
channel, 3 classes, InstanceNorm3d (affine) + LeakyReLU(0.01), 2x2x2
max-pool down, 2x2x2 transposed-conv up, 3x3x3 convolutions; batch 2 of
48^3 by default; one training step = forward, softmax cross-entropy,
backward, Adam step. PyTorch runs the functional twin of
tests/ref/unet3dref.py (F.conv3d, F.instance_norm, F.max_pool3d,
F.conv_transpose3d -- the module the 3-D step test compares against) on
float32 weights copied from a segloss net of the same configuration, with
torch.set_num_threads(N); segloss runs build/perf/train_speed3d --threads N.

The two alternate round by round (a change in machine load hits both) and
the best step of each is compared; medians are printed too. GFLOP/s counts
the convolution FLOPs of a step (train_speed3d.c says how) for both; the
sgemm peak is OpenBLAS on 2048^3 at the same thread count, measured by the
C program in the same run. Peak memory: ru_maxrss of the segloss program,
and of this Python process (torch and its libraries included) with its
value before the first PyTorch step. CPU time per step (all threads) is
printed too: on a shared machine it is the steadier measure. The kernel set
OpenBLAS picked (its core name) is printed: OpenBLAS 0.3.21 gives CPUs it does
not know its AVX2 Haswell kernels even where AVX-512 is there, and
OPENBLAS_CORETYPE=SKYLAKEX (set before starting this script; the C program
inherits it) selects the AVX-512 ones. Where the CPU has AVX-512, segloss's
3x3x3 convolutions do not call OpenBLAS at all (src/nn/conv_same.c; the
script says which kernels ran), and the sgemm peak is a reference only.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import unet3dref as U  # noqa: E402


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_round(st, cfg, opt, x, y, steps, warmup):
    params = [v for v in st.values() if v.requires_grad]

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(U.torch_forward(st, x, cfg)[0], y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    best, t0, c0 = float("inf"), time.perf_counter(), time.process_time()
    for _ in range(steps):
        s = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - s)
    assert params
    return (time.perf_counter() - t0) / steps, best, (time.process_time() - c0) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", default="48")
    ap.add_argument("--build", default=os.environ.get("SEGLOSS_BUILD", os.path.join(ROOT, "build")))
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    exe = os.path.join(a.build, "perf", "train_speed3d")
    if not os.access(exe, os.X_OK):
        sys.exit("train_speed3d.py: %s not found; run `make build` first" % exe)
    size = [int(v) for v in a.size.split(",")]
    size = size * 3 if len(size) == 1 else size
    if len(size) != 3:
        sys.exit("train_speed3d.py: --size takes S or D,H,W")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    L = U.lib()
    cfg = U.config(ndim=3, cin=1, classes=3, depth=4, width=16, norm="instance", down="maxpool", seed=1)
    net = U.create(L, cfg, 1)
    st = U.state(L, net, dtype=torch.float32)
    L.sl_unet_free(net)
    opt = torch.optim.Adam([v for v in st.values() if v.requires_grad], lr=1e-3)
    x = torch.randn(a.batch, 1, *size)
    y = torch.randint(0, 3, (a.batch, *size))
    nparams = sum(v.numel() for v in st.values() if v.requires_grad)

    load0 = os.getloadavg()[0]
    rss0 = maxrss_mib()
    tw, tb, tc, sw, sb, sc, peak = [], [], [], [], [], [], []
    res = None
    for r in range(a.rounds):
        wall, best, cpu = torch_round(st, cfg, opt, x, y, a.steps, a.warmup if r == 0 else 1)
        tw.append(wall)
        tb.append(best)
        tc.append(cpu)
        cmd = [exe, "--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup),
               "--batch", str(a.batch), "--size", ",".join(map(str, size))]
        if r > 0:
            cmd.append("--no-peak")
        d = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        res = res or d
        sw.append(d["s_per_step"])
        sb.append(d["best_s_per_step"])
        sc.append(d["cpu_s_per_step"])
        if d["sgemm_peak_gflops"] > 0:
            peak.append(d["sgemm_peak_gflops"])
        print("round %d: PyTorch %.3f s/step (best %.3f), segloss %.3f s/step (best %.3f)"
              % (r + 1, wall, best, d["s_per_step"], d["best_s_per_step"]), flush=True)
    load1 = os.getloadavg()[0]
    rss1 = maxrss_mib()

    gflop = res["gflop_per_step"]
    t_best, s_best = min(tb), min(sb)
    pk = max(peak) if peak else 0.0
    print()
    print("3-D U-Net 16-32-64-128, InstanceNorm, batch %d x 1 x %s, 3 classes; %d threads; %d parameters "
          "(segloss %d)" % (a.batch, "x".join(map(str, size)), a.threads, nparams, res["params"]))
    print("%-10s %12s %14s %12s %10s" % ("", "s/step best", "s/step median", "CPU s/step", "GFLOP/s"))
    print("%-10s %12.3f %14.3f %12.3f %10.1f" % ("PyTorch", t_best, statistics.median(tw), statistics.median(tc),
                                               gflop / t_best))
    print("%-10s %12.3f %14.3f %12.3f %10.1f" % ("segloss", s_best, statistics.median(sw), statistics.median(sc),
                                               gflop / s_best))
    print("speed ratio segloss / PyTorch: %.2fx (best steps), %.2fx (medians), %.2fx (CPU time per step)"
          % (t_best / s_best, statistics.median(tw) / statistics.median(sw),
             statistics.median(tc) / statistics.median(sc)))
    print("sgemm peak (OpenBLAS, %d threads, 2048^3): %.1f GFLOP/s; segloss reaches %.0f %% of it, PyTorch %.0f %%; "
          "%.1f GFLOP per step" % (a.threads, pk, 100 * gflop / s_best / pk if pk else 0,
                                   100 * gflop / t_best / pk if pk else 0, gflop))
    print("segloss's 3x3x3 convolutions: %s%s" % (res.get("conv_kernels", "?"),
          " (src/nn/conv_same.c: OpenBLAS's sgemm peak above is a reference, not their ceiling)"
          if "AVX-512" in res.get("conv_kernels", "") else ""))
    print("OpenBLAS kernels: %s%s (PyTorch's conv3d is oneDNN's and does not use them)"
          % (res.get("openblas_core", "?"), "; OPENBLAS_CORETYPE=%s" % os.environ["OPENBLAS_CORETYPE"]
             if "OPENBLAS_CORETYPE" in os.environ else ""))
    print("peak memory: segloss %.0f MiB (whole program); PyTorch process %.0f MiB (%.0f MiB before its first step)"
          % (res["maxrss_mib"], rss1, rss0))
    print("load average %.1f at the start, %.1f at the end (on %d cores%s)"
          % (load0, load1, os.cpu_count(), "; the machine was busy, figures are noisy" if load0 > 1.5 else ""))
    ratio = t_best / s_best
    print("RATIO unet3d_step: %.2fx (segloss %.3f s, PyTorch eager %.3f s, threads %d; segloss %.1f GFLOP/s, "
          "sgemm peak %.1f GFLOP/s, OpenBLAS %s; peak RSS segloss %.0f MiB, PyTorch process %.0f MiB)"
          % (ratio, s_best, t_best, a.threads, gflop / s_best, pk, res.get("openblas_core", "?"), res["maxrss_mib"],
             rss1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(threads=a.threads, batch=a.batch, size=size, torch_best_s=t_best, segloss_best_s=s_best,
                           torch_median_s=statistics.median(tw), segloss_median_s=statistics.median(sw),
                           ratio_best=ratio, gflop_per_step=gflop, segloss_gflops=gflop / s_best,
                           torch_gflops=gflop / t_best, torch_cpu_s=statistics.median(tc),
                           segloss_cpu_s=statistics.median(sc), sgemm_peak_gflops=pk, segloss_maxrss_mib=res["maxrss_mib"],
                           torch_process_maxrss_mib=rss1, load=[load0, load1],
                           openblas_core=res.get("openblas_core")), f, indent=1)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
