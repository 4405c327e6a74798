#!/usr/bin/python3
"""Speed of the geometry and metrics modules against scipy, side by side.

    /usr/bin/python3 perf/bench_geometry.py [--build build] [--n 256] [--threads 2]

1. EDT of 256^3 anisotropic masks (spacing 2.0 x 0.8 x 0.8 mm), a smooth
   ellipsoid (an organ) and an irregular one: scipy.ndimage.
   distance_transform_edt vs sl_edt (float32 and float64, 2 and 1 threads),
   wall and CPU time, ratios, max relative difference, peak memory.
2. HD95 + ASSD + NSD of one 256^3 case (a large structure), MONAI /
   MetricsReloaded convention (border voxels, max of the directed 95th
   percentiles, pooled ASSD, NSD at 1 mm), against a scipy implementation of
   the same convention (what MONAI and MedPy do: erosion for the borders,
   two whole-image EDTs, numpy percentiles); plus a small structure in the
   same volume (where the bounding-box crop pays), and DeepMind's surfels
   against a scipy implementation of their procedure (crop to the bounding
   box, neighbour codes, two EDTs).

Peak memory: the growth of the process's peak resident set (VmHWM, reset
through /proc/self/clear_refs before each call) over the resident set
before the call, so numpy's and the C library's allocations count alike.
Not a test: it prints numbers; docs/metrics.md records them.
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("SEGLOSS_BUILD", os.path.join(HERE, "..", "build")))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs for the library")
    return ap.parse_args()


args = parse()
os.environ["SEGLOSS_BUILD"] = args.build
import slref  # noqa: E402

slref.BUILD = args.build
import geomref as G  # noqa: E402
from surfelref import area_table_ref  # noqa: E402


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


class M:
    """one measurement: best wall seconds, CPU seconds of that run (all
    threads of the process), peak extra bytes"""

    def __init__(self):
        self.wall, self.cpu, self.peak = None, None, 0


def measure(fn, repeat=1):
    """(M, result)"""
    m, res = M(), None
    for _ in range(repeat):
        res = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        base = _status("VmRSS")
        c = time.process_time()
        t = time.perf_counter()
        res = fn()
        dt = time.perf_counter() - t
        dc = time.process_time() - c
        m.peak = max(m.peak, _status("VmHWM") - base)
        if m.wall is None or dt < m.wall:
            m.wall, m.cpu = dt, dc
    return m, res


def mb(b):
    return "%.0f MB" % (b / 2 ** 20)


def shape_field(n, seed, scale):
    """a smooth, irregular 3-D structure filling a good part of the volume"""
    r = np.random.default_rng(seed)
    z, y, x = np.ogrid[:n, :n, :n]
    c = (n - 1) / 2
    ell = ((z - c) / (0.38 * n)) ** 2 + ((y - c) / (0.33 * n)) ** 2 + ((x - c) / (0.40 * n)) ** 2
    small = ndimage.zoom(r.standard_normal((16, 16, 16)), n / 16, order=1)
    return ell + scale * small


def row(name, ref, sl, extra="", threads=None):
    print("%-42s scipy %7.3f s (cpu %6.2f) %7s | segloss %6.3f s (cpu %6.2f) %7s | wall %6.1fx cpu %6.1fx %s"
          % (name, ref.wall, ref.cpu, mb(ref.peak), sl.wall, sl.cpu, mb(sl.peak), ref.wall / sl.wall,
             ref.cpu / sl.cpu, extra))
    # the project's one-line form (best wall times; scipy once, segloss best of --repeat)
    print("RATIO %s: %.1fx (segloss %.3f s, scipy %.3f s, threads %d)"
          % (name, ref.wall / sl.wall, sl.wall, ref.wall, th if threads is None else threads), flush=True)


n, th = args.n, args.threads
sp = (2.0, 0.8, 0.8)
print("bench_geometry: %d^3, spacing %s, threads %d, build %s" % (n, sp, th, args.build))
print("machine: %d cores (os.cpu_count), load average %.2f" % (os.cpu_count(), os.getloadavg()[0]))

# ---- 1. EDT -------------------------------------------------------------------------
# scipy's EDT time depends strongly on the shape (its feature transform does
# more work on irregular masks), so two masks: a smooth ellipsoid (an organ)
# and an irregular one (a smooth noise field added to it)
for mname, mask in (("ellipsoid", shape_field(n, 1, 0.0) < 1.0), ("irregular", shape_field(n, 1, 0.15) < 1.0)):
    mask_u8 = mask.astype(np.uint8)
    mref, ref = measure(lambda: ndimage.distance_transform_edt(mask, sampling=sp))
    for out, nth in ((np.float32, th), (np.float64, th), (np.float32, 1)):
        msl, got = measure(lambda: G.edt(mask_u8, sp, out=out, threads=nth), args.repeat)
        rel = np.max(np.abs(got.astype(np.float64) - ref) / np.maximum(ref, 1e-300))
        row("EDT %s %s%s" % (mname, np.dtype(out).name, " 1 thread" if nth == 1 else ""), mref, msl,
            "max rel diff %.2g" % rel, nth)
    del ref, got


# ---- 2. surface metrics -----------------------------------------------------------------
def ref_border_metrics(p, g, sp, q=95.0, tau=1.0):
    """MONAI / MetricsReloaded convention with scipy on the whole image"""
    st = ndimage.generate_binary_structure(3, 1)
    bp = p & ~ndimage.binary_erosion(p, st, border_value=0)
    bg = g & ~ndimage.binary_erosion(g, st, border_value=0)
    dp = ndimage.distance_transform_edt(~bg, sampling=sp)[bp]
    dg = ndimage.distance_transform_edt(~bp, sampling=sp)[bg]
    return {"hd_perc": max(np.percentile(dp, q), np.percentile(dg, q)),
            "assd": (dp.sum() + dg.sum()) / (len(dp) + len(dg)),
            "nsd": (np.sum(dp <= tau) + np.sum(dg <= tau)) / (len(dp) + len(dg))}


def ref_surfel_metrics(p, g, sp, q=95.0, tau=1.0):
    """DeepMind surface-distance's procedure (crop to the bounding box,
    neighbour codes, EDTs on the crop), with this project's surfel weights"""
    u = p | g
    idx = np.nonzero(u)
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    cp, cg = np.pad(p[sl], 1).astype(np.uint8), np.pad(g[sl], 1).astype(np.uint8)

    def codes(m):
        c = np.zeros(tuple(s - 1 for s in m.shape), np.int64)
        for k in range(8):
            dz, dy, dx = (k >> 2) & 1, (k >> 1) & 1, k & 1
            c |= m[dz:dz + c.shape[0], dy:dy + c.shape[1], dx:dx + c.shape[2]].astype(np.int64) << k
        return c
    kp, kg = codes(cp), codes(cg)
    sp_, sg_ = (kp != 0) & (kp != 255), (kg != 0) & (kg != 255)
    table = area_table_ref(3, sp)
    dp = ndimage.distance_transform_edt(~sg_, sampling=sp)[sp_]
    dg = ndimage.distance_transform_edt(~sp_, sampling=sp)[sg_]
    wp, wg = table[kp[sp_]], table[kg[sg_]]

    def perc(d, w):
        o = np.lexsort((w, d))
        d, w = d[o], w[o]
        cum = np.cumsum(w) / np.sum(w)
        return d[min(np.searchsorted(cum, q / 100.0), len(d) - 1)]
    return {"hd_perc": max(perc(dp, wp), perc(dg, wg)),
            "assd": (np.sum(dp * wp) + np.sum(dg * wg)) / (wp.sum() + wg.sum()),
            "nsd": (wp[dp <= tau].sum() + wg[dg <= tau].sum()) / (wp.sum() + wg.sum())}


f = shape_field(n, 2, 0.12)
gt = f < 1.0
pred = (f + 0.05 * ndimage.zoom(np.random.default_rng(3).standard_normal((32, 32, 32)), n / 32, order=1)) < 1.02
small_gt = np.zeros_like(gt)
small_pred = np.zeros_like(gt)
c = n // 3
zz, yy, xx = np.ogrid[:n, :n, :n]
small_gt[(zz - c) ** 2 / 64 + (yy - c) ** 2 / 100 + (xx - 2 * c) ** 2 / 81 < 1] = True
small_pred[(zz - c - 1) ** 2 / 64 + (yy - c) ** 2 / 110 + (xx - 2 * c + 1) ** 2 / 81 < 1] = True
groups = G.MET_DISTANCE | G.MET_NSD

for name, p, g in (("HD95+ASSD+NSD large structure", pred, gt), ("HD95+ASSD+NSD small structure", small_pred,
                                                                  small_gt)):
    mref, want = measure(lambda: ref_border_metrics(p, g, sp))
    pu, gu = p.astype(np.uint8), g.astype(np.uint8)
    msl, got = measure(lambda: G.evaluate_mask(pu, gu, sp, metrics=groups, threads=th), args.repeat)
    diff = max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-300) for k in want)
    row(name + " (border)", mref, msl, "max rel diff %.2g" % diff)

p, g = pred, gt
mref, want = measure(lambda: ref_surfel_metrics(p, g, sp))
pu, gu = p.astype(np.uint8), g.astype(np.uint8)
msl, got = measure(lambda: G.evaluate_mask(pu, gu, sp, metrics=groups, surface="surfels", threads=th),
                   args.repeat)
diff = max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-300) for k in want)
row("HD95+ASSD+NSD large structure (surfels)", mref, msl, "max rel diff %.2g" % diff)

# every metric group at once, for the record (no scipy counterpart as a whole)
for what, bits in (("boundary IoU", G.MET_BIOU), ("lesions", G.MET_LESION), ("clDice", G.MET_CLDICE),
                   ("all groups", G.MET_ALL)):
    msl, got = measure(lambda: G.evaluate_mask(pu, gu, sp, metrics=bits, threads=th), 1)
    print("%-42s segloss %6.3f s (cpu %6.2f) %7s" % (what + ", large structure", msl.wall, msl.cpu, mb(msl.peak)))
print("load average after: %.2f" % os.getloadavg()[0])
