"""segloss.ndimage against scipy.ndimage (and a scipy-based transcription of
cc3d's multi-label numbering): distance_transform_edt, signed_distance,
label, connected_components; argument errors and the C messages."""
# sanitized: skip (loads libsegloss.so through ctypes)
import numpy as np
from scipy import ndimage as ndi

import pyref  # noqa: F401  (paths)
import slref

import segloss
from segloss import ndimage as sn

chk = slref.Check("segloss.ndimage")
rng = np.random.default_rng(11)


def blobs(shape, sigma=2.0, frac=0.4):
    f = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return f > np.quantile(f, 1.0 - frac)


def raises(what, exc, fn, contains=""):
    try:
        fn()
    except exc as e:
        chk.true("%s: message %r lacks %r" % (what, str(e), contains), contains in str(e))
        return e
    except Exception as e:  # noqa: BLE001 (a wrong exception type is a failure)
        chk.true("%s: raised %s(%s), expected %s" % (what, type(e).__name__, e, exc.__name__), False)
        return None
    chk.true("%s: no exception, expected %s" % (what, exc.__name__), False)
    return None


def cc3d_reference(a, rank):
    """cc3d.connected_components as documented: components of each non-zero
    value separately (scipy.ndimage.label with the structure of that
    connectivity), numbered 1..N in C raster order of each component's first
    voxel over the whole image."""
    st = ndi.generate_binary_structure(a.ndim, rank)
    key = np.zeros(a.shape, np.int64)
    base = 0
    for v in np.unique(a):
        if v == 0:
            continue
        lab, n = ndi.label(a == v, st)
        key[lab > 0] = lab[lab > 0] + base
        base += n
    uniq, first = np.unique(key.ravel(), return_index=True)
    first, uniq = first[uniq > 0], uniq[uniq > 0]
    newid = np.zeros(base + 1, np.int64)
    newid[uniq[np.argsort(first)]] = np.arange(1, len(uniq) + 1)
    return newid[key], len(uniq)


def test_edt():
    cases = [((301,), None), ((64, 57), (1.5, 0.7)), ((64, 57), 0.5), ((23, 41, 37), (2.0, 0.8, 0.8)),
             ((30, 30, 30), None)]
    for shape, sp in cases:
        m = blobs(shape)
        want = ndi.distance_transform_edt(m, sampling=sp)
        for dt in (np.bool_, np.uint8, np.int16, np.float32, np.int64):
            got = sn.distance_transform_edt(m.astype(dt), sampling=sp)
            chk.true("edt %s dtype %s" % (shape, got.dtype), got.dtype == np.float64)
            chk.close("edt64 %s %s in=%s" % (shape, sp, np.dtype(dt)), got, want, rtol=1e-12, atol=1e-12,
                      group="edt_float64")
        got32 = sn.distance_transform_edt(m, sampling=sp, dtype=np.float32)
        chk.true("edt float32 dtype", got32.dtype == np.float32)
        chk.close("edt32 %s" % (shape,), got32, want, rtol=2e-7, atol=1e-6, group="edt_float32")
        for threads in (1, 2):
            chk.true("edt threads=%d bit-identical" % threads,
                     np.array_equal(sn.distance_transform_edt(m, sp, threads=threads), got))
        out = np.full(shape, -1.0)
        r = sn.distance_transform_edt(m, sp, distances=out)
        chk.true("edt distances= returns None", r is None)
        chk.close("edt distances= %s" % (shape,), out, want, rtol=1e-12, atol=1e-12, group="edt_float64")
    # a non-contiguous output array is filled too; a float input with NaN is foreground (numpy's bool(nan))
    m = blobs((40, 50))
    out = np.zeros((50, 40)).T
    sn.distance_transform_edt(m, distances=out)
    chk.close("edt distances= transposed view", out, ndi.distance_transform_edt(m), rtol=1e-12, atol=1e-12,
              group="edt_float64")
    f = m.astype(np.float32)
    f[m] = np.nan
    chk.close("edt NaN input", sn.distance_transform_edt(f), ndi.distance_transform_edt(f), rtol=1e-12, atol=1e-12,
              group="edt_float64")
    # torch tensors, 0-d input
    import torch
    chk.close("edt torch input", sn.distance_transform_edt(torch.from_numpy(m)), ndi.distance_transform_edt(m),
              rtol=1e-12, atol=1e-12, group="edt_float64")
    for tdt in (torch.bfloat16, torch.float16, torch.int64):
        chk.close("edt torch %s input" % tdt, sn.distance_transform_edt(torch.from_numpy(m).to(tdt)),
                  ndi.distance_transform_edt(m), rtol=1e-12, atol=1e-12, group="edt_float64")
    # stated difference: no zero voxel -> +inf (scipy: meaningless numbers)
    chk.true("edt without background is +inf", np.all(np.isinf(sn.distance_transform_edt(np.ones((5, 6))))))
    chk.true("edt of an empty array", sn.distance_transform_edt(np.zeros((0, 4))).shape == (0, 4))

    # scipy's argument errors, and what segloss does not compute
    raises("edt nothing to return", RuntimeError,
           lambda: sn.distance_transform_edt(m, return_distances=False), "at least one of")
    raises("edt return_indices", NotImplementedError,
           lambda: sn.distance_transform_edt(m, return_indices=True), "return_indices")
    raises("edt indices=", RuntimeError,
           lambda: sn.distance_transform_edt(m, indices=np.zeros((2,) + m.shape, np.int32)), "return_indices")
    raises("edt sampling length", RuntimeError, lambda: sn.distance_transform_edt(m, sampling=(1, 2, 3)),
           "length equal to input rank")
    raises("edt distances shape", RuntimeError,
           lambda: sn.distance_transform_edt(m, distances=np.zeros((3, 3))), "wrong shape")
    raises("edt distances dtype", RuntimeError,
           lambda: sn.distance_transform_edt(m, distances=np.zeros(m.shape, np.float32)), "float64")
    e = raises("edt negative sampling (C message)", ValueError,
               lambda: sn.distance_transform_edt(m, sampling=(-1.0, 1.0)), "spacing -1")
    chk.true("edt negative sampling is a segloss.Error", isinstance(e, segloss.Error))
    raises("edt 4-D", NotImplementedError, lambda: sn.distance_transform_edt(np.ones((2, 2, 2, 2))), "4-D")
    raises("edt complex", TypeError, lambda: sn.distance_transform_edt(np.ones((3, 3), np.complex64)), "complex")
    raises("edt dtype int", TypeError, lambda: sn.distance_transform_edt(m, dtype=np.int32), "float32 or float64")
    raises("edt threads 0", ValueError, lambda: sn.distance_transform_edt(m, threads=0), "threads")


def test_signed():
    for shape, sp in [((64, 57), (1.5, 0.7)), ((23, 41, 37), (2.0, 0.8, 0.8))]:
        m = blobs(shape)
        inside = ndi.distance_transform_edt(m, sampling=sp)
        outside = ndi.distance_transform_edt(~m, sampling=sp)
        chk.close("signed %s" % (shape,), sn.signed_distance(m, sp), np.where(m, -inside, outside),
                  rtol=1e-12, atol=1e-12, group="signed")
        chk.close("kervadec %s" % (shape,), sn.signed_distance(m.astype(np.uint8), sp, mode="kervadec"),
                  outside * ~m - (inside - 1) * m, rtol=1e-12, atol=1e-12, group="kervadec")
    chk.true("signed all-zero is +inf", np.all(sn.signed_distance(np.zeros((4, 4)), None) == np.inf))
    chk.true("signed all-one is -inf", np.all(sn.signed_distance(np.ones((4, 4)), None) == -np.inf))
    chk.true("kervadec all-zero is 0", np.all(sn.signed_distance(np.zeros((4, 4)), mode="kervadec") == 0))
    raises("signed unknown mode", ValueError, lambda: sn.signed_distance(np.ones((3, 3)), mode="plain"), "mode")


def test_label():
    for shape in [(200,), (60, 70), (25, 30, 35)]:
        m = blobs(shape, sigma=1.2, frac=0.35)
        for rank in range(1, len(shape) + 1):
            st = ndi.generate_binary_structure(len(shape), rank)
            want, nwant = ndi.label(m, st)
            got, n = sn.label(m.astype(np.int16), st)
            chk.true("label %s rank %d: n %d vs %d" % (shape, rank, n, nwant), n == nwant)
            chk.true("label %s rank %d: labels equal, dtype %s" % (shape, rank, got.dtype),
                     np.array_equal(got, want) and got.dtype == want.dtype)
        want, nwant = ndi.label(m)
        got, n = sn.label(m)
        chk.true("label %s default structure = cross" % (shape,), n == nwant and np.array_equal(got, want))
        out = np.zeros(shape, np.int64)
        r = sn.label(m, output=out)
        chk.true("label output= array returns n and fills it", r == nwant and np.array_equal(out, want))
        got, n = sn.label(m, output=np.uint16)
        chk.true("label output=uint16", got.dtype == np.uint16 and np.array_equal(got, want))
    m = np.indices((40, 40)).sum(axis=0) % 2 == 0   # a checkerboard: 800 components under the cross
    raises("label insufficient bit-depth", RuntimeError, lambda: sn.label(m, output=np.uint8), "bit-depth")
    raises("label structure rank", RuntimeError, lambda: sn.label(m, np.ones((3, 3, 3))), "equal rank")
    raises("label structure size", ValueError, lambda: sn.label(m, np.ones((3, 5))), "equal to 3")
    raises("label other structure", NotImplementedError,
           lambda: sn.label(m, np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]])), "structure")
    raises("label 4-D", NotImplementedError, lambda: sn.label(np.ones((2, 2, 2, 2))), "4-D")
    raises("label complex", TypeError, lambda: sn.label(np.ones((3, 3), np.complex128)), "complex")


def test_components():
    conns = {2: [(4, 1), (8, 2), (6, 1), (18, 2), (26, 2)], 3: [(6, 1), (18, 2), (26, 3)]}
    for shape in [(50, 60), (20, 25, 30)]:
        # a multi-label map: three labels in blobs that touch each other
        f = ndi.gaussian_filter(rng.standard_normal(shape), 1.5)
        a = np.digitize(f, np.quantile(f, [0.35, 0.6, 0.8])).astype(np.uint8)
        a[rng.random(shape) < 0.02] = 0
        for conn, rank in conns[len(shape)]:
            want, nwant = cc3d_reference(a, rank)
            got, n = sn.connected_components(a, connectivity=conn, return_N=True)
            chk.true("cc3d %s conn %d: N %d vs %d" % (shape, conn, n, nwant), n == nwant)
            chk.true("cc3d %s conn %d: labels equal" % (shape, conn), np.array_equal(got, want))
            chk.true("cc3d %s conn %d: dtype %s" % (shape, conn, got.dtype), got.dtype == np.uint16)
        for dt in (np.int32, np.uint64, np.int8):
            got = sn.connected_components(a.astype(dt))
            chk.true("cc3d input dtype %s" % np.dtype(dt),
                     np.array_equal(got, cc3d_reference(a, len(shape))[0]))
        binary = sn.connected_components(a, binary_image=True)
        chk.true("cc3d binary_image", np.array_equal(binary, cc3d_reference((a > 0).astype(np.uint8), len(shape))[0]))
        chk.true("cc3d bool input", np.array_equal(sn.connected_components(a > 0), binary))
        got = sn.connected_components(a, out_dtype=np.uint64)
        chk.true("cc3d out_dtype", got.dtype == np.uint64 and np.array_equal(got, cc3d_reference(a, len(shape))[0]))
    a = np.array([1, 1, 0, 2, 2, 1, 0, 1], np.int32)
    chk.true("cc3d 1-D", np.array_equal(sn.connected_components(a), [1, 1, 0, 2, 2, 3, 0, 4]))
    chk.true("cc3d empty", sn.connected_components(np.zeros((0, 3), np.uint8)).shape == (0,))
    raises("cc3d float", TypeError, lambda: sn.connected_components(np.ones((3, 3), np.float32)), "float32")
    raises("cc3d conn 2-D", ValueError, lambda: sn.connected_components(np.ones((3, 3), np.uint8), 5), "Got: 5")
    raises("cc3d conn 3-D", ValueError, lambda: sn.connected_components(np.ones((3, 3, 3), np.uint8), 8), "Got: 8")
    raises("cc3d 4-D", ValueError, lambda: sn.connected_components(np.ones((2, 2, 2, 2), np.uint8)), "4")
    raises("cc3d delta", NotImplementedError, lambda: sn.connected_components(np.ones((3, 3), np.uint8), delta=1),
           "delta")
    raises("cc3d periodic", NotImplementedError,
           lambda: sn.connected_components(np.ones((3, 3), np.uint8), periodic_boundary=True), "periodic_boundary")


def main():
    test_edt()
    test_signed()
    test_label()
    test_components()
    chk.report()


if __name__ == "__main__":
    main()
