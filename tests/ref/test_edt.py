"""Geometry against scipy: EDT (plain, multi-label, signed, Kervadec),
border voxels, surfels, connected components, skeleton topology.

The library is loaded through ctypes, which the sanitized build cannot do:
sanitized: skip
(the same code paths run under ASan+UBSan in tests/unit/test_geometry.c).

References are independent: scipy.ndimage.distance_transform_edt on the
whole image in float64, scipy.ndimage.label, binary_erosion, and numpy
compositions of those for the conventions scipy has no mode for.
"""
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(__file__))
import geomref as G  # noqa: E402
from slref import QUICK, Check  # noqa: E402
from surfelref import area_table_ref, codes_ref  # noqa: E402

ck = Check("test_edt")
rng = np.random.default_rng(20240611)


def blobs(shape, sigma=2.0, frac=0.5, seed=None):
    r = np.random.default_rng(seed) if seed is not None else rng
    f = ndimage.gaussian_filter(r.standard_normal(shape), sigma)
    return f > np.quantile(f, 1.0 - frac)


CASES = [
    ((64,), (0.7,)),
    ((48, 41), (1.3, 0.6)),
    ((33, 40), (1.0, 1.0)),
    ((24, 30, 27), (2.5, 0.8, 1.1)),
    ((20, 21, 22), (1.0, 1.0, 1.0)),
]
if not QUICK:
    CASES.append(((64, 70, 66), (3.0, 0.7, 0.75)))

# ---- plain EDT ------------------------------------------------------------
for shape, sp in CASES:
    for frac in (0.5, 0.97):
        m = blobs(shape, 1.5, frac) if len(shape) > 1 else rng.random(shape) < frac
        want = ndimage.distance_transform_edt(m, sampling=sp)
        for out, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
            for dt in (np.uint8, np.bool_, np.int16, np.float32):
                got = G.edt(m.astype(dt), sp, out=out, threads=2)
                ck.close("edt plain %s %s frac=%g in=%s out=%s" % (shape, sp, frac, np.dtype(dt).name,
                                                                   np.dtype(out).name),
                         got, want, rtol=rtol, atol=0, group="edt_plain_" + np.dtype(out).name)
        # threads: 1 vs 2 bit-identical
        a = G.edt(m.astype(np.uint8), sp, threads=1)
        b = G.edt(m.astype(np.uint8), sp, threads=2)
        ck.true("edt threads 1 vs 2 identical %s" % (shape,), np.array_equal(a, b))

# hand-made: a single background voxel -> Euclidean distance to it
for shape, sp in (((9, 11), (1.5, 0.5)), ((7, 8, 9), (2.0, 1.0, 0.5))):
    m = np.ones(shape, np.uint8)
    c = tuple(s // 2 for s in shape)
    m[c] = 0
    idx = np.indices(shape).astype(float)
    want = np.sqrt(sum(((idx[a] - c[a]) * sp[a]) ** 2 for a in range(len(shape))))
    ck.close("edt single zero voxel %s" % (shape,), G.edt(m, sp), want, rtol=1e-12, atol=0, group="edt_hand")
    # a single foreground voxel: its distance is the smallest spacing
    m = np.zeros(shape, np.uint8)
    m[c] = 1
    d = G.edt(m, sp)
    ck.close("edt single fg voxel %s" % (shape,), d[c], min(sp), group="edt_hand")
    ck.true("edt single fg voxel zero elsewhere", np.count_nonzero(d) == 1)

# no background at all: +inf everywhere (scipy is meaningless there)
for shape in ((5,), (4, 6), (3, 4, 5)):
    d = G.edt(np.ones(shape, np.uint8), None)
    ck.true("edt no background gives +inf %s" % (shape,), np.all(np.isposinf(d)))
    d = G.edt(np.zeros(shape, np.uint8), None)
    ck.true("edt all background gives 0 %s" % (shape,), np.all(d == 0))
# a NaN in a float input is foreground, as numpy's bool(nan)
m = np.zeros((5, 5), np.float32)
m[2, 2] = np.nan
ck.close("edt NaN is foreground", G.edt(m, None)[2, 2], 1.0, group="edt_hand")

# ---- multi-label ------------------------------------------------------------
def multilabel_ref(lab, sp):
    out = np.zeros(lab.shape)
    for L in np.unique(lab):
        if L == 0:
            continue
        sel = lab == L
        if sel.all():
            out[sel] = np.inf
        else:
            out[sel] = ndimage.distance_transform_edt(sel, sampling=sp)[sel]
    return out


for shape, sp in CASES[:5]:
    lab = np.zeros(shape, np.int32)
    for L in (1, 2, 3, 7):
        lab[blobs(shape, 2.0, 0.3)] = L
    lab[blobs(shape, 1.0, 0.1)] = 0
    for dt in (np.int32, np.uint8, np.int64):
        got = G.edt(lab.astype(dt), sp, mode="multilabel", threads=2)
        ck.close("edt multilabel %s %s" % (shape, np.dtype(dt).name), got, multilabel_ref(lab, sp),
                 rtol=1e-12, atol=0, group="edt_multilabel")
# touching labels without background: every voxel next to another label is 1 voxel away
lab = np.array([[1, 1, 2, 2, 2], [1, 1, 2, 2, 2]], np.int16)
ck.close("edt multilabel touching labels", G.edt(lab, (1.0, 2.0), mode="multilabel"),
         multilabel_ref(lab, (1.0, 2.0)), group="edt_multilabel")
ck.true("edt multilabel single label everywhere is +inf",
        np.all(np.isposinf(G.edt(np.full((4, 5), 3, np.int32), None, mode="multilabel"))))
try:
    G.edt(np.zeros((3, 3), np.float32), None, mode="multilabel")
    ck.true("edt multilabel refuses float input", False)
except G.SlError as e:
    ck.true("edt multilabel refuses float input (SL_EDTYPE)", e.code == 3)

# ---- signed maps -------------------------------------------------------------
def signed_ref(m, sp):
    if not m.any():
        return np.full(m.shape, np.inf)
    if m.all():
        return np.full(m.shape, -np.inf)
    return np.where(m, -ndimage.distance_transform_edt(m, sampling=sp),
                    ndimage.distance_transform_edt(~m, sampling=sp))


def kervadec_ref(m, sp):
    """LIVIAETS boundary-loss one_hot2dist for one channel."""
    pos = m.astype(bool)
    if not pos.any() or pos.all():
        return np.zeros(m.shape)
    neg = ~pos
    return (ndimage.distance_transform_edt(neg, sampling=sp) * neg
            - (ndimage.distance_transform_edt(pos, sampling=sp) - 1) * pos)


for shape, sp in CASES:
    m = blobs(shape, 1.5, 0.3) if len(shape) > 1 else rng.random(shape) < 0.3
    for out, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        ck.close("edt signed %s %s" % (shape, np.dtype(out).name), G.edt(m.astype(np.uint8), sp, "signed", out),
                 signed_ref(m, sp), rtol=rtol, atol=0, group="edt_signed")
        ck.close("edt kervadec %s %s" % (shape, np.dtype(out).name),
                 G.edt(m.astype(np.uint8), sp, "kervadec", out), kervadec_ref(m, sp), rtol=rtol,
                 atol=1e-6 if out == np.float32 else 1e-12, group="edt_kervadec")
for fill in (0, 1):
    m = np.full((6, 7), fill, np.uint8)
    ck.close("edt kervadec constant mask %d is 0" % fill, G.edt(m, None, "kervadec"), np.zeros(m.shape),
             group="edt_kervadec")
    ck.close("edt signed constant mask %d" % fill, G.edt(m, None, "signed"), signed_ref(m.astype(bool), (1, 1)),
             group="edt_signed")
# boundary convention: outermost inside voxel -s, innermost outside voxel +s
m = np.zeros((1, 8), np.uint8)
m[0, 2:6] = 1
ck.close("edt signed 1-row boundary values", G.edt(m, (1.0, 0.5), "signed")[0],
         [1.0, 0.5, -0.5, -1.0, -1.0, -0.5, 0.5, 1.0], group="edt_signed")

# ---- border voxels -------------------------------------------------------------
for shape in ((30,), (30, 41), (17, 22, 19)):
    m = blobs(shape, 1.5, 0.5) if len(shape) > 1 else rng.random(shape) < 0.6
    want = m & ~ndimage.binary_erosion(m, ndimage.generate_binary_structure(len(shape), 1), border_value=0)
    ck.true("border voxels equal mask XOR erosion %s" % (shape,), np.array_equal(G.border(m), want))
full = np.ones((4, 5, 6), bool)
ck.true("border of a full image is its outer shell",
        np.array_equal(G.border(full), full & ~ndimage.binary_erosion(full, border_value=0)))


# ---- surfels -----------------------------------------------------------------
for shape, sp in (((25, 31), (1.0, 1.0)), ((25, 31), (1.4, 0.6)), ((14, 17, 15), (2.0, 0.9, 1.2))):
    m = blobs(shape, 1.5, 0.4)
    table = area_table_ref(len(shape), sp)
    want = table[codes_ref(m)]
    ck.close("surfels weights %s %s" % (shape, sp), G.surface_elements(m, sp), want, rtol=1e-12, atol=1e-12,
             group="surfels")
t2 = area_table_ref(2, (1.0, 1.0))
ck.close("surfels 2-D unit lengths (corner, edge, diagonal)", [t2[1], t2[3], t2[6]],
         [np.sqrt(0.5), 1.0, 2 * np.sqrt(0.5)], group="surfels")
# analytic 3-D values with spacing 1: a corner, an edge, a face of the cell
m = np.zeros((2, 2, 2), np.uint8)
m[1, 1, 1] = 1
w = G.surface_elements(m, (1.0, 1.0, 1.0))
ck.close("surfels 3-D single-corner triangle area", w[1, 1, 1], np.sqrt(3) / 8, group="surfels")
m = np.zeros((3, 3, 3), np.uint8)
m[:, :, :1] = 1
w = G.surface_elements(m, (1.0, 1.0, 1.0))
ck.close("surfels 3-D flat face area", w[1, 1, 1], 1.0, group="surfels")
# a large ball: marching cubes on a binary staircase overestimates a sphere's
# area by a few per cent (measured with DeepMind's areas: 8-9 % for r = 6..20); accept [1.0, 1.1]
r = 12.0
zz, yy, xx = np.mgrid[:32, :32, :32] - 15.5
ball = zz ** 2 + yy ** 2 + xx ** 2 <= r ** 2
area = G.surface_elements(ball, (1.0, 1.0, 1.0)).sum()
ck.close("surfels ball area / (4 pi r^2) - 1.05", area / (4 * np.pi * r ** 2) - 1.05, 0.0, rtol=0, atol=0.05,
         group="surfels_ball")

# ---- connected components ---------------------------------------------------------
for shape, conns in (((80,), (0, 2)), ((40, 50), (0, 4, 8)), ((20, 26, 23), (0, 6, 18, 26))):
    for frac in (0.3, 0.55):
        m = rng.random(shape) < frac
        for c in conns:
            rank = {0: len(shape), 2: 1, 4: 1, 8: 2, 6: 1, 18: 2, 26: 3}[c]
            want, n = ndimage.label(m, ndimage.generate_binary_structure(len(shape), rank))
            lab, cnt, sizes, bbox = G.components(m, c)
            ck.true("components labels == scipy.ndimage.label %s conn=%d frac=%g" % (shape, c, frac),
                    cnt == n and np.array_equal(lab, want))
            ck.true("components sizes %s conn=%d" % (shape, c), np.array_equal(sizes, np.bincount(want.ravel())[1:]))
            objs = ndimage.find_objects(want)
            ok = all(all(bbox[k][a] == objs[k][a].start and bbox[k][3 + a] == objs[k][a].stop
                         for a in range(len(shape))) for k in range(n))
            ck.true("components bounding boxes %s conn=%d" % (shape, c), ok)
try:
    G.components(np.ones((3, 3), np.uint8), 6)
    ck.true("components refuses 6-connectivity in 2-D", False)
except G.SlError as e:
    ck.true("components refuses 6-connectivity in 2-D (SL_EINVAL)", e.code == 1)


# ---- skeleton: topology, thinness, inclusion ---------------------------------------------
def n_components(m, rank):
    return ndimage.label(m, ndimage.generate_binary_structure(m.ndim, rank))[1]


for shape, frac, sigma in (((60, 70), 0.5, 3.0), ((60, 70), 0.3, 2.0), ((26, 30, 28), 0.4, 2.5)):
    for seed in range(2 if QUICK else 4):
        m = blobs(shape, sigma, frac, seed=seed)
        s = G.skeletonize(m)
        nd = m.ndim
        ck.true("skeleton inside mask %s seed %d" % (shape, seed), not np.any(s & ~m))
        ck.true("skeleton keeps foreground components %s seed %d" % (shape, seed),
                n_components(s, nd) == n_components(m, nd))
        # background components (holes / cavities) with the dual connectivity, outside = background
        ck.true("skeleton keeps background components %s seed %d" % (shape, seed),
                n_components(np.pad(~s, 1, constant_values=True), 1)
                == n_components(np.pad(~m, 1, constant_values=True), 1))
        ck.true("skeleton is thin (no 2x2%s block) %s seed %d" % ("x2" if nd == 3 else "", shape, seed),
                not np.any(ndimage.binary_erosion(s, np.ones((2,) * nd), border_value=0)))
        ck.true("skeleton is a fixed point %s seed %d" % (shape, seed), np.array_equal(G.skeletonize(s), s))

ck.report()
