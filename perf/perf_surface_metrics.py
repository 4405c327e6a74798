"""HD95 + ASSD + NSD on a 256^3 case with a large structure: segloss against
the scipy-based implementation of the same convention, in one process, the
same thread count, the ratio printed (a benchmark, not a test: it prints,
it does not assert).

  border   MONAI / MetricsReloaded convention: border voxels by erosion with
           the cross, scipy's EDT of each border's complement on the whole
           image, numpy percentiles (max of the directed 95th), pooled ASSD,
           NSD at 1 mm — what MedPy-style code does
  surfels  DeepMind surface-distance's procedure (tests/ref/dmsurfref.py:
           its neighbour codes, area table and EDTs of the padded image),
           area-weighted: robust Hausdorff 95, mean of the directed means,
           surface Dice at 1 mm

Run: /usr/bin/python3 perf/perf_surface_metrics.py [--build build] [--n 256] [--threads 1]
scipy is single-threaded; --threads sets segloss's threads (default 1, the
same as scipy). The reference and segloss run in turn, --repeat rounds
(default 2), and the best wall time of each is kept; each comparison
prints a detail row (wall and CPU seconds) and a line
    RATIO <what>: <x>x (segloss <t> s, scipy <t> s, threads T)
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.environ.get("SEGLOSS_BUILD", os.path.join(HERE, "..", "build")))
ap.add_argument("--n", type=int, default=256)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--repeat", type=int, default=2)
args = ap.parse_args()
os.environ["SEGLOSS_BUILD"] = args.build
import slref  # noqa: E402

slref.BUILD = args.build
import dmsurfref as D  # noqa: E402
import geomref as G  # noqa: E402


def clock(fn):
    c, t = time.process_time(), time.perf_counter()
    res = fn()
    return time.perf_counter() - t, time.process_time() - c, res


def interleaved(ref, ours, repeat):
    """(best of the reference, best of segloss), each (wall, cpu, result), run in turn"""
    best = [None, None]
    for _ in range(repeat):
        for i, fn in enumerate((ref, ours)):
            r = clock(fn)
            if best[i] is None or r[0] < best[i][0]:
                best[i] = r
    return best


def border_ref(p, g, sp, q=95.0, tau=1.0):
    st = ndimage.generate_binary_structure(3, 1)
    bp = p & ~ndimage.binary_erosion(p, st, border_value=0)
    bg = g & ~ndimage.binary_erosion(g, st, border_value=0)
    dp = ndimage.distance_transform_edt(~bg, sampling=sp)[bp]
    dg = ndimage.distance_transform_edt(~bp, sampling=sp)[bg]
    return {"hd_perc": max(np.percentile(dp, q), np.percentile(dg, q)),
            "assd": (dp.sum() + dg.sum()) / (len(dp) + len(dg)),
            "nsd": (np.sum(dp <= tau) + np.sum(dg <= tau)) / (len(dp) + len(dg))}


def surfel_ref(p, g, sp, q=95.0, tau=1.0):
    sd = D.surface_distances(g, p, sp)
    a_gp, a_pg = D.average_surface_distance(sd)
    return {"hd_perc": D.robust_hausdorff(sd, q), "assd": (a_gp + a_pg) / 2, "nsd": D.surface_dice(sd, tau)}


n, th = args.n, args.threads
sp = (2.0, 0.8, 0.8)
r = np.random.default_rng(2)
z, y, x = np.ogrid[:n, :n, :n]
c = (n - 1) / 2
f = ((z - c) / (0.38 * n)) ** 2 + ((y - c) / (0.33 * n)) ** 2 + ((x - c) / (0.40 * n)) ** 2
f = f + 0.12 * ndimage.zoom(r.standard_normal((16, 16, 16)), n / 16, order=1)
gt = f < 1.0
pred = (f + 0.05 * ndimage.zoom(r.standard_normal((32, 32, 32)), n / 32, order=1)) < 1.02
pu, gu = pred.astype(np.uint8), gt.astype(np.uint8)
print("perf_surface_metrics: %d^3, spacing %s, large structure (%.0f %% of the volume), segloss threads %d"
      % (n, sp, 100 * gt.mean(), th))
print("load average %.2f on %d cores (os.cpu_count)" % (os.getloadavg()[0], os.cpu_count()))
groups = G.MET_DISTANCE | G.MET_NSD
for name, ref, kw in (("border (MONAI convention)", border_ref, {}),
                      ("surfels (DeepMind)", surfel_ref, {"surface": "surfels", "assd_mode": "mean"})):
    (w0, c0, want), (w1, c1, got) = interleaved(
        lambda: ref(pred, gt, sp), lambda: G.evaluate_mask(pu, gu, sp, metrics=groups, threads=th, **kw), args.repeat)
    diff = max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-300) for k in want)
    print("%-28s scipy %7.2f s (cpu %7.2f) | segloss %6.3f s (cpu %6.2f) | ratio wall %5.1fx cpu %5.1fx | "
          "max rel diff %.2g" % (name, w0, c0, w1, c1, w0 / w1, c0 / c1, diff), flush=True)
    print("RATIO HD95+ASSD+NSD %s: %.1fx (segloss %.3f s, scipy %.3f s, threads %d)" % (name, w0 / w1, w1, w0, th),
          flush=True)
print("load average at the end %.2f" % os.getloadavg()[0])
