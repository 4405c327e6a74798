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
    """Iso-contour size per code, written independently of surface.c:
    marching squares on every face, loops chained, centroid fans."""
    ncorner = 2 ** nd
    coords = [np.array([(c >> (nd - 1 - a)) & 1 for a in range(nd)], float) for c in range(ncorner)]
    edges = [(a, b) for a in range(ncorner) for b in range(a + 1, ncorner)
             if np.abs(coords[a] - coords[b]).sum() == 1]
    mid = {e: (coords[e[0]] + coords[e[1]]) / 2 * np.array(sp) for e in edges}
    if nd == 2:
        faces = [[0, 1, 3, 2]]
    else:
        faces = []
        for ax in range(3):
            for val in (0, 1):
                cs = [c for c in range(8) if coords[c][ax] == val]
                o = [a for a in range(3) if a != ax]
                # cyclic order around the square
                ring = sorted(cs, key=lambda c: np.arctan2(coords[c][o[1]] - 0.5, coords[c][o[0]] - 0.5))
                faces.append(ring)
    table = np.zeros(2 ** ncorner)
    for code in range(1, 2 ** ncorner - 1):
        fg = [(code >> c) & 1 for c in range(ncorner)]
        segs = []
        for f in faces:
            ring_edges = [tuple(sorted((f[i], f[(i + 1) % 4]))) for i in range(4)]
            crossing = [i for i in range(4) if fg[f[i]] != fg[f[(i + 1) % 4]]]
            if len(crossing) == 2:
                segs.append((ring_edges[crossing[0]], ring_edges[crossing[1]]))
            elif len(crossing) == 4:
                for i in range(4):
                    if fg[f[i]]:
                        segs.append((ring_edges[(i - 1) % 4], ring_edges[i]))
        if nd == 2:
            table[code] = sum(np.linalg.norm(mid[a] - mid[b]) for a, b in segs)
            continue
        nbr = {}
        for a, b in segs:
            nbr.setdefault(a, []).append(b)
            nbr.setdefault(b, []).append(a)
        seen = set()
        total = 0.0
        for start in nbr:
            if start in seen:
                continue
            loop, prev, cur = [], None, start
            while True:
                seen.add(cur)
                loop.append(mid[cur])
                nxt = nbr[cur][0] if nbr[cur][0] != prev else nbr[cur][1]
                prev, cur = cur, nxt
                if cur == start:
                    break
            cen = np.mean(loop, axis=0)
            for i in range(len(loop)):
                total += 0.5 * np.linalg.norm(np.cross(loop[i] - cen, loop[(i + 1) % len(loop)] - cen))
        table[code] = total
    return table
