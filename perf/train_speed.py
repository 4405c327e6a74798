"""Training speed: the segloss U-Net against the same network in PyTorch eager.

    make build && /usr/bin/python3 perf/train_speed.py [--threads 2] [--rounds 3] [--steps 5]

Both sides: U-Net with 4 stages, base width 16 (16-32-64-128), 1 input
channel, 3 classes, InstanceNorm (affine) + LeakyReLU(0.01), max-pool down,
2x2 transposed-conv up, batch 8 of 128x128; one training step = forward,
softmax cross-entropy, backward, Adam step. PyTorch runs the module from
tests/ref/nn_torch_state.py (the twin the C tests compare against) with
torch.set_num_threads(N); segloss runs build/perf/train_speed --threads N.

The two are measured in alternating rounds (so that a change in machine load
hits both) and the best round of each is compared; the medians are printed
too. GFLOP/s counts the convolution FLOPs of a step (train_speed.c says how)
for both; the sgemm peak is OpenBLAS on 2048^3 at the same thread count,
measured by the C program in the same run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
from nn_torch_state import UNet  # noqa: E402


def torch_round(net, opt, x, y, steps, warmup):
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x)[0], y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    best = float("inf")
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        s = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - s)
    wall = (time.perf_counter() - t0) / steps
    cpu = (time.process_time() - c0) / steps
    return wall, best, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--build", default=os.environ.get("SEGLOSS_BUILD", os.path.join(ROOT, "build")))
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    exe = os.path.join(a.build, "perf", "train_speed")
    if not os.access(exe, os.X_OK):
        sys.exit("train_speed.py: %s not found; run `make build` first" % exe)

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = UNet(1, 3, 4, 16, norm="instance", down="maxpool")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(a.batch, 1, a.size, a.size)
    y = torch.randint(0, 3, (a.batch, a.size, a.size))
    nparams = sum(p.numel() for p in net.parameters())

    load0 = os.getloadavg()[0]
    tw, tb, tc, sw, sb, sc, peak = [], [], [], [], [], [], []
    res = None
    for r in range(a.rounds):
        wall, best, cpu = torch_round(net, opt, x, y, a.steps, a.warmup if r == 0 else 1)
        tw.append(wall)
        tb.append(best)
        tc.append(cpu)
        cmd = [exe, "--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup),
               "--batch", str(a.batch), "--size", str(a.size)]
        if r > 0:
            cmd.append("--no-peak")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        d = json.loads(out)
        res = res or d
        sw.append(d["s_per_step"])
        sb.append(d["best_s_per_step"])
        sc.append(d["cpu_s_per_step"])
        if d["sgemm_peak_gflops"] > 0:
            peak.append(d["sgemm_peak_gflops"])
        print("round %d: PyTorch %.3f s/step (best %.3f), segloss %.3f s/step (best %.3f)"
              % (r + 1, wall, best, d["s_per_step"], d["best_s_per_step"]), flush=True)
    load1 = os.getloadavg()[0]

    gflop = res["gflop_per_step"]
    B = a.batch
    t_best, s_best = min(tb), min(sb)
    print()
    print("U-Net 16-32-64-128, InstanceNorm, batch %d x 1 x %d x %d, 3 classes; %d threads; "
          "%d parameters (segloss %d)" % (B, a.size, a.size, a.threads, nparams, res["params"]))
    print("%-10s %12s %12s %14s %12s" % ("", "img/s best", "img/s median", "CPU s/step", "GFLOP/s"))
    print("%-10s %12.2f %12.2f %14.3f %12.1f" % ("PyTorch", B / t_best, B / statistics.median(tw),
                                               statistics.median(tc), gflop / t_best))
    print("%-10s %12.2f %12.2f %14.3f %12.1f" % ("segloss", B / s_best, B / statistics.median(sw),
                                               statistics.median(sc), gflop / s_best))
    ratio = t_best / s_best
    print("speed ratio segloss / PyTorch: %.2fx (best steps), %.2fx (medians), %.2fx (CPU time)"
          % (ratio, statistics.median(tw) / statistics.median(sw), statistics.median(tc) / statistics.median(sc)))
    pk = max(peak) if peak else 0.0
    print("sgemm peak (OpenBLAS, %d threads, 2048^3): %.1f GFLOP/s; segloss reaches %.1f GFLOP/s = %.0f %% "
          "of it; %.1f GFLOP per step" % (a.threads, pk, gflop / s_best, 100 * gflop / s_best / pk if pk else 0,
                                          gflop))
    print("load average %.1f at the start, %.1f at the end (on %d cores%s)"
          % (load0, load1, os.cpu_count(), "; the machine was busy, figures are noisy" if load0 > 1.5 else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(threads=a.threads, batch=B, size=a.size, torch_best_s=t_best, segloss_best_s=s_best,
                           torch_median_s=statistics.median(tw), segloss_median_s=statistics.median(sw),
                           ratio_best=ratio, gflop_per_step=gflop, segloss_gflops=gflop / s_best,
                           torch_gflops=gflop / t_best, sgemm_peak_gflops=pk, load=[load0, load1]), f, indent=1)


if __name__ == "__main__":
    main()
