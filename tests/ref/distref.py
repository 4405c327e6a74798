"""Helpers shared by the reference tests of focal, topk, ohem, lovasz, mcc and
sensspec: the named edge cases and the bad-parameter checks.
(Not a test itself: run_one only picks up test_*.py.)"""
import numpy as np

import lossref as R
import slref

# Under the sanitizers (SL_QUICK=1) the finite-difference checks are left
# out: they triple the CLI calls, and that pass looks for memory errors.
FD = {} if not slref.QUICK else {"fd": False}


def kw(**extra):
    """check_loss keywords: extra, plus fd=False in quick mode."""
    return dict(extra, **FD)


def edge_cases(chk, name, spec, ref, params, channels=(1, 2, 4), seed=11, **kw):
    """Named edge cases through check_loss: an empty class, all voxels one
    class, and ignore_index everywhere but one voxel (when params has
    ignore_index)."""
    rng = np.random.default_rng(seed)
    with R.tmpdir() as tmp:
        for C in channels:
            hi = 2 if C == 1 else C
            x = rng.normal(0, 2, (2, C, 5, 6)).astype(np.float32)
            # empty class: the last class never appears
            y = rng.integers(0, hi - 1, (2, 5, 6)).astype(np.int64)
            R.check_loss(chk, name + " empty-class", spec, ref, params, x, y, C, tmp, **kw)
            # all voxels one class: background, then the last class
            for lab in (0, hi - 1):
                y = np.full((2, 5, 6), lab, np.int64)
                R.check_loss(chk, name + " all-one-class", spec, ref, params, x, y, C, tmp, **kw)
            ii = params.get("ignore_index")
            if ii is not None:
                y = np.full((2, 5, 6), ii, np.int64)
                y[1, 2, 3] = hi - 1
                R.check_loss(chk, name + " ignore-all-but-one", spec, ref, params, x, y, C, tmp, **kw)
                # every voxel ignored: defined as 0 with a zero gradient
                y = np.full((2, 5, 6), ii, np.int64)
                val, grad, err = R.run_cli(spec, x, y, tmp)
                chk.true("%s all-ignored C=%d: %s" % (name, C, err), err is None)
                if err is None:
                    chk.close(name + " all-ignored value", val, 0.0, atol=0)
                    chk.close(name + " all-ignored grad", grad, np.zeros_like(grad), atol=0)


def bad_params(chk, name, cases, C=2):
    """cases: (spec, needle): each must fail with exit 1 or 2 and one stderr line containing needle."""
    import os
    rng = np.random.default_rng(0)
    with R.tmpdir() as tmp:
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, rng.normal(0, 1, (1, C, 4, 5)).astype(np.float32))
        np.save(yp, rng.integers(0, C, (1, 4, 5)).astype(np.int64))
        for spec, needle in cases:
            rc, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp])
            lines = [l for l in err.splitlines() if l.strip()]
            ok = rc in (1, 2) and len(lines) == 1 and needle in lines[0]
            chk.true("%s bad parameter %r: rc %d, stderr %r (want %r)" % (name, spec, rc, err.strip(), needle), ok)


def threads_identical(chk, name, specs, C=3, shape=(2, 40, 30, 20), seed=13):
    """1 and 2 threads give bit-identical values and gradients (fixed-order sums).
    The volume spans several SL_CHUNK chunks per sample."""
    rng = np.random.default_rng(seed)
    with R.tmpdir() as tmp:
        for kind in ("labels", "soft"):
            x, y = R.make_inputs(rng, shape[0], C, shape[1:], kind)
            for spec in specs:
                v1, g1, e1 = R.run_cli(spec, x, y, tmp, extra=("--threads", "1"))
                v2, g2, e2 = R.run_cli(spec, x, y, tmp, extra=("--threads", "2"))
                ok = e1 is None and e2 is None and v1 == v2 and np.array_equal(g1, g2)
                chk.true("%s %s %s: 1 and 2 threads differ (%s %s)" % (name, spec, kind, e1, e2), ok)
