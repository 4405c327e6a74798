"""Independent reference for corner-grid surfels (used by test_edt.py and
test_metrics.py): neighbourhood codes on the corner grid and the size of
the surface element of every code, written separately from
src/geometry/surface.c. Code bit k is the voxel at offset (dz, dy, dx) with
k = dz*4 + dy*2 + dx from the cell's first voxel. 2-D: marching-squares
contour length through the edge midpoints. 3-D: DeepMind's area table
(dmsurfref.py), whose code numbers the voxels the other way round (bit
7 - k), so the table is read at the bit-reversed code.
"""
import functools

import numpy as np


def codes_ref(m):
    """neighbour codes on the corner grid: corner p between voxels p-1 and p"""
    nd = m.ndim
    pm = np.pad(m.astype(np.uint8), 1)
    code = np.zeros(tuple(s + 1 for s in m.shape), np.int64)
    for k in range(2 ** nd):
        off = [(k >> (nd - 1 - a)) & 1 for a in range(nd)]  # bit k: (dz, dy, dx)
        sl = tuple(slice(o, o + s + 1) for o, s in zip(off, m.shape))
        code |= pm[sl].astype(np.int64) << k
    return code


def area_table_ref(nd, sp):
    if nd == 3:
        import dmsurfref
        dm = dmsurfref.area_table(tuple(float(x) for x in sp))
        return np.array([dm[int("{:08b}".format(k)[::-1], 2)] for k in range(256)])
    return _area_table(nd, tuple(float(x) for x in sp)).copy()


@functools.lru_cache(maxsize=None)
def _area_table(nd, sp):
    """2-D: contour length per code, written independently of surface.c:
    marching squares through the edge midpoints (the diagonal codes cut
    each foreground corner off)."""
    assert nd == 2
    coords = [np.array([(c >> (1 - a)) & 1 for a in range(2)], float) for c in range(4)]
    edges = [(a, b) for a in range(4) for b in range(a + 1, 4) if np.abs(coords[a] - coords[b]).sum() == 1]
    mid = {e: (coords[e[0]] + coords[e[1]]) / 2 * np.array(sp) for e in edges}
    ring = [0, 1, 3, 2]
    ring_edges = [tuple(sorted((ring[i], ring[(i + 1) % 4]))) for i in range(4)]
    table = np.zeros(16)
    for code in range(1, 15):
        fg = [(code >> c) & 1 for c in range(4)]
        crossing = [i for i in range(4) if fg[ring[i]] != fg[ring[(i + 1) % 4]]]
        if len(crossing) == 2:
            segs = [(ring_edges[crossing[0]], ring_edges[crossing[1]])]
        else:
            segs = [(ring_edges[(i - 1) % 4], ring_edges[i]) for i in range(4) if fg[ring[i]]]
        table[code] = sum(np.linalg.norm(mid[a] - mid[b]) for a, b in segs)
    return table
