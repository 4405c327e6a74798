"""cldice(auto_iters=true): the iteration count follows the target's object size.
# sanitized: skip

With the default iters=3 the soft skeleton of an object thicker than ~4 voxels is only its rim: a missed disk of
radius 9 hardly changes the loss. auto_iters raises iters to the deepest object's city-block radius (the largest
distance, in face steps, from a target voxel to the background), computed here independently with scipy's
distance_transform_cdt(metric='taxicab'): cldice(auto_iters=true) must equal cldice(iters=K) for that K (value and
gradient), and on the missed-disk example the loss must see the disk."""
import numpy as np
from scipy import ndimage as ndi

import boundaryref as B
import lossref as R
import slref


def depth(y, C, first):
    """Max taxicab distance to the background over the used maps that have background (scipy)."""
    k = 0
    for n in range(y.shape[0]):
        for c in range(first, C):
            m = (y[n] == c) if C > 1 else (y[n] == 1)
            if m.all() or not m.any():
                continue
            k = max(k, int(ndi.distance_transform_cdt(m, metric="taxicab").max()))
    return k


def main():
    chk = slref.Check("cldice auto_iters")
    rng = np.random.default_rng(4)
    for N, spatial in ((1, (24, 26)), (2, (20, 21)), (1, (10, 11, 12))):
        for C, inc in ((1, True), (3, False), (3, True)):
            y = B.blobby_labels(rng, N, C, spatial, frac=0.4, sigma=3.0)
            x = B.logits(rng, N, C, spatial)
            first = 1 if (not inc and C > 1) else 0
            K = min(max(3, depth(y, C, first)), 100)
            bg = "" if inc else ",include_background=false"
            a, ga, ea = R.run_lib("cldice(auto_iters=true%s)" % bg, x, y)
            b, gb, eb = R.run_lib("cldice(iters=%d%s)" % (K, bg), x, y)
            chk.true("runs (%s %s)" % (ea, eb), ea is None and eb is None)
            if ea is None and eb is None:
                chk.close("auto_iters == iters=%d value (C=%d %s)" % (K, C, spatial), a, b, rtol=0, atol=0, group="equal")
                chk.close("auto_iters == iters=%d grad" % K, ga, gb, rtol=0, atol=0, group="equal")
    # The example of the issue: a thin line found, a disk of radius 9 missed.
    H = 40
    yy, xx = np.mgrid[0:H, 0:H]
    y = np.zeros((1, H, H), np.int64)
    y[0, 5, 3:37] = 1                                          # a thin line
    y[0][(yy - 25) ** 2 + (xx - 20) ** 2 <= 81] = 1           # a disk of radius 9
    p = np.where(y == 1, 0.97, 0.03).astype(np.float32)[:, None]
    p[0, 0][(yy - 25) ** 2 + (xx - 20) ** 2 <= 81] = 0.03     # the disk is missed
    perfect = np.where(y == 1, 0.97, 0.03).astype(np.float32)[:, None]
    disk = ((yy - 25) ** 2 + (xx - 20) ** 2 <= 81)[None, None]
    v3, g3, _ = R.run_lib("cldice(activation=none)", p, y)
    p3, _, _ = R.run_lib("cldice(activation=none)", perfect, y)
    va, ga, _ = R.run_lib("cldice(activation=none,auto_iters=true)", p, y)
    pa, _, _ = R.run_lib("cldice(activation=none,auto_iters=true)", perfect, y)
    print("missed disk of radius 9: iters=3 %.5f (perfect %.5f), auto_iters %.5f (perfect %.5f)" % (v3, p3, va, pa))
    print("gradient on the disk: iters=3 min %.3g, auto_iters min %.3g" % (g3[disk].min(), ga[disk].min()))
    # The disk's skeleton is its centre, which three erosions never reach: iters=3 cannot tell a missed disk
    # from a found one; auto_iters can, and its gradient pulls the disk's centre up.
    chk.true("iters=3 is blind to the disk (%.5f == %.5f)" % (v3, p3), abs(v3 - p3) < 1e-4 and g3[disk].min() > -1e-6)
    chk.true("auto_iters sees it (%.5f > %.5f + 0.01)" % (va, pa), va > pa + 0.01)
    chk.true("auto_iters pushes the disk up (min grad %.3g < -1e-3)" % ga[disk].min(), ga[disk].min() < -1e-3)
    chk.report()


if __name__ == "__main__":
    main()
