"""Exact distance transforms and connected components, with the signatures
of scipy.ndimage and cc3d, computed by libsegloss (threaded, linear time).

    distance_transform_edt(input, sampling=None, ...)   scipy.ndimage's, float64 by default
    signed_distance(mask, spacing=None, mode="signed")  signed / Kervadec maps
    label(input, structure=None, output=None)           scipy.ndimage.label
    connected_components(labels, connectivity=26)       cc3d.connected_components

Arrays are numpy arrays or torch tensors (CPU or not; results are numpy
arrays), 1-D, 2-D or 3-D in C order (a 3-D image is (D, H, W) and its
spacing (sz, sy, sx)). An argument of the reference function whose
behaviour segloss does not reproduce exactly raises NotImplementedError
naming it; nothing is approximated.
"""
import ctypes

import numpy as np

from . import _geom
from . import _lib
from . import errors

__all__ = ["distance_transform_edt", "signed_distance", "label", "connected_components"]


def _edt(a, spacing, mode, dtype, threads, out=None):
    a = _geom.to_numpy(a, "input")
    if a.ndim == 0:
        a = a.reshape(1)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise errors.DTypeError("dtype must be float32 or float64, got %s" % dtype)
    if out is None:
        out = np.empty(a.shape, dtype)
    if a.size == 0:
        return out
    g = _geom.grid(a.shape, spacing)
    opts = _geom.EdtOpts(_geom.EDT_MODES[mode], _lib.threads(threads))
    buf = _lib.msgbuf()
    _lib.check(_geom.L().sl_edt(_geom.ptr(a), _geom.cdtype(a, "input"), ctypes.byref(g), ctypes.byref(opts),
                                _geom.ptr(out), _geom.DTYPES[dtype], buf, _lib.MSG_LEN), buf)
    return out


def distance_transform_edt(input, sampling=None, return_distances=True, return_indices=False,
                           distances=None, indices=None, *, dtype=np.float64, threads=None):
    """scipy.ndimage.distance_transform_edt: the distance (in units of
    `sampling`) of every non-zero voxel to the nearest zero voxel; 0 on zero
    voxels. Same arguments, same result (float64 by default, to 1e-12
    relative; `dtype=np.float32` halves the memory).

    sampling: None (1), one number for every axis, or one per axis.
    distances: an output array (shape of input, dtype `dtype`); filled in
      place and None is returned, as scipy does.
    return_indices / indices (the feature transform): NotImplementedError.
    threads: library threads (default: segloss's rule, see segloss._lib.threads).

    One difference, stated: an input without any zero voxel gives +inf
    everywhere (scipy returns meaningless finite numbers there).
    """
    # scipy's own argument check, with its exception type and wording
    msgs = []
    if not return_distances and not return_indices:
        msgs.append("at least one of return_distances/return_indices must be True")
    if distances is not None and not return_distances:
        msgs.append("return_distances must be True if distances is supplied")
    if indices is not None and not return_indices:
        msgs.append("return_indices must be True if indices is supplied")
    if msgs:
        raise RuntimeError(", ".join(msgs))
    if return_indices or indices is not None:
        raise NotImplementedError("distance_transform_edt: return_indices / indices (the feature transform) "
                                  "is not computed by segloss; use scipy.ndimage for it")
    a = _geom.to_numpy(input, "input")
    if a.ndim == 0:
        a = a.reshape(1)
    if sampling is not None and np.ndim(sampling) != 0 and np.size(sampling) != a.ndim:
        raise RuntimeError("sequence argument must have length equal to input rank")
    if distances is None:
        return _edt(a, sampling, "plain", dtype, threads)
    if not isinstance(distances, np.ndarray):
        raise RuntimeError("distances must be a numpy array")
    if distances.shape != a.shape:
        raise RuntimeError("distances array has wrong shape")
    if distances.dtype != np.dtype(dtype):
        raise RuntimeError("distances array must be of type %s (the dtype argument)" % np.dtype(dtype))
    if distances.flags.c_contiguous and distances.flags.writeable and distances.flags.aligned \
            and distances.dtype.isnative:
        _edt(a, sampling, "plain", dtype, threads, out=distances)
    else:
        distances[...] = _edt(a, sampling, "plain", dtype, threads)
    return None


def signed_distance(mask, spacing=None, mode="signed", *, dtype=np.float64, threads=None):
    """Signed Euclidean distance map of a mask (non-zero = inside), in mm.

    mode="signed":   -(distance to the nearest outside voxel) inside,
                     +(distance to the nearest inside voxel) outside; no zero
                     level (the boundary lies between -s and +s); an all-zero
                     mask gives +inf everywhere, an all-non-zero one -inf.
                     Equal to np.where(m, -edt(m), edt(~m)) with scipy's edt.
    mode="kervadec": edt(~m) * ~m - (edt(m) - 1) * m, the map of Kervadec et
                     al. (MIDL 2019) as their one_hot2dist computes it; 0
                     everywhere for an all-zero or all-non-zero mask.
    spacing: None (1), one number, or one per axis. dtype: float64 or float32.
    """
    if mode not in ("signed", "kervadec"):
        raise errors.UnknownNameError("signed_distance: unknown mode %r (signed or kervadec)" % (mode,))
    return _edt(mask, spacing, mode, dtype, threads)


def _structure_rank(structure, ndim):
    """The connectivity rank r of a structuring element equal to
    scipy's generate_binary_structure(ndim, r); None for any other element."""
    off = np.indices((3,) * ndim).reshape(ndim, -1).T - 1
    dist = np.abs(off).sum(axis=1).reshape((3,) * ndim)
    for r in range(1, ndim + 1):
        if np.array_equal(structure, dist <= r):
            return r
    return None


# connectivity passed to sl_components_label for a rank of scipy's structure
_RANK_CONN = {1: {1: 2}, 2: {1: 4, 2: 8}, 3: {1: 6, 2: 18, 3: 26}}


def _components(mask, conn):
    """sl_components_label on a uint8 mask: (int32 labels, count)."""
    lab = np.empty(mask.shape, np.int32)
    g = _geom.grid(mask.shape)
    c = _geom.Components()
    buf = _lib.msgbuf()
    _lib.check(_geom.L().sl_components_label(_geom.ptr(mask), ctypes.byref(g), conn, _geom.ptr(lab),
                                             ctypes.byref(c), buf, _lib.MSG_LEN), buf)
    n = int(c.count)
    _geom.L().sl_components_free(ctypes.byref(c))
    return lab, n


def label(input, structure=None, output=None):
    """scipy.ndimage.label: components of the non-zero voxels, numbered 1..n
    in raster order of each component's first voxel (scipy's numbering,
    identical label for label); returns (labels, n), or n alone when
    `output` is an array (filled in place), as scipy does.

    structure: None (the cross: face connectivity, scipy's default) or any
      scipy.ndimage.generate_binary_structure(ndim, r) array (r = ndim: full
      8 / 26 connectivity). Another structuring element: NotImplementedError.
    output: None (int32), a dtype, or an array of the input's shape.
    """
    a = _geom.to_numpy(input, "input")
    shape = a.shape
    if a.ndim == 0:
        a = a.reshape(1)
    nd = a.ndim
    if structure is None:
        rank = 1
    else:
        st = np.asarray(structure).astype(bool)
        if st.ndim != nd:
            raise RuntimeError("structure and input must have equal rank")
        if any(s != 3 for s in st.shape):
            raise ValueError("structure dimensions must be equal to 3")
        rank = _structure_rank(st, nd)
        if rank is None:
            raise NotImplementedError("label: structure %s is not one of scipy's generate_binary_structure(%d, r) "
                                      "elements; segloss labels with those only" % (st.astype(int).tolist(), nd))
    if nd > 3:
        raise NotImplementedError("label: segloss handles 1-D, 2-D and 3-D inputs, got %d-D" % nd)
    if a.size == 0:
        lab, n = np.zeros(a.shape, np.int32), 0
    else:
        lab, n = _components(_geom.as_mask(a), _RANK_CONN[nd][rank])
    lab = lab.reshape(shape)
    if isinstance(output, np.ndarray):
        if output.shape != shape:
            raise RuntimeError("output shape not correct")
        if n > 0 and n > _max_of(output.dtype):
            raise RuntimeError("insufficient bit-depth in requested output type")
        output[...] = lab
        return n
    if output is not None:
        dt = np.dtype(output)
        if n > _max_of(dt):
            raise RuntimeError("insufficient bit-depth in requested output type")
        lab = lab.astype(dt)
    return lab, n


def _max_of(dt):
    dt = np.dtype(dt)
    if dt.kind in "iu":
        return np.iinfo(dt).max
    if dt.kind == "f":
        return 2 ** (np.finfo(dt).nmant + 1)
    return 1


def connected_components(labels, connectivity=26, return_N=False, *, max_labels=-1, out_dtype=None,
                         delta=0, periodic_boundary=False, binary_image=False):
    """cc3d.connected_components: the components of every label separately
    (two touching voxels are connected only when their values are equal;
    0 is background), numbered 1..N over the whole image in raster (C
    memory) order of each component's first voxel, as cc3d numbers them
    (its relabelling pass keeps the order of the provisional labels of its
    raster scan). One exception, stated: cc3d releases from late 2024 label
    binary 3-D images with 26-connectivity through a 2x2x2-block pass and
    number those components in block order; the components are the same,
    their numbers may be permuted.

    connectivity: 6, 18 or 26 for 3-D; 4 or 8 (also 6 / 18 / 26, as cc3d
      accepts them: 6 -> 4, 18 and 26 -> 8) for 2-D; 1-D: 6, 18 or 26.
    return_N: also return N.
    out_dtype: None (the smallest of uint16, uint32, uint64 holding N; cc3d
      chooses from an estimate and may pick a wider type, the values are
      the same) or one of those dtypes.
    binary_image: every non-zero value is one label.
    max_labels is a memory hint in cc3d and is ignored; delta != 0 and
    periodic_boundary raise NotImplementedError.
    Cost: one exact labelling per distinct non-zero value.
    """
    if delta != 0:
        raise NotImplementedError("connected_components: delta != 0 (continuous-value grouping) is not "
                                  "supported by segloss")
    if periodic_boundary:
        raise NotImplementedError("connected_components: periodic_boundary is not supported by segloss")
    a = _geom.to_numpy(labels, "labels")
    if a.ndim not in (1, 2, 3):
        raise errors.ShapeError("Only 1D, 2D, and 3D arrays supported. Got: %d" % a.ndim)
    if a.ndim == 2 and connectivity not in (4, 8, 6, 18, 26):
        raise ValueError("Only 4, 8, and 6, 18, 26 connectivities are supported for 2D images. Got: %s"
                         % (connectivity,))
    if a.ndim != 2 and connectivity not in (6, 18, 26):
        raise ValueError("Only 6, 18, and 26 connectivities are supported for 3D images. Got: %s"
                         % (connectivity,))
    if a.dtype.kind == "f":
        raise TypeError("Type %s not currently supported." % a.dtype)
    if a.size == 0:
        z = np.zeros((0,), dtype=a.dtype)
        return (z, 0) if return_N else z
    conn = {3: connectivity, 2: 4 if connectivity in (4, 6) else 8, 1: 0}[a.ndim]

    if binary_image or a.dtype == np.bool_:
        values = [None]
    else:
        values = _unique_nonzero(a)
    parts = []   # (first voxel, value index, component number within the value)
    labs = []
    for vi, v in enumerate(values):
        m = _geom.as_mask(a) if v is None else (a == v).view(np.uint8)
        lab, n = _components(m, conn)
        labs.append((m, lab))
        if n == 0:
            continue
        # Components are numbered in raster order of their first voxel, so
        # along the raster the running maximum of the labels steps up
        # exactly at each component's first voxel.
        flat = lab.ravel()
        nz = np.flatnonzero(flat)
        steps = np.flatnonzero(np.diff(np.maximum.accumulate(flat[nz]), prepend=0))
        parts.append(np.stack([nz[steps], np.full(n, vi), np.arange(1, n + 1)], axis=1))
    order = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
    order = order[np.argsort(order[:, 0], kind="stable")]
    total = len(order)
    if out_dtype is None:
        dt = np.uint16 if total < 2 ** 16 - 1 else np.uint32 if total < 2 ** 32 - 1 else np.uint64
    else:
        dt = np.dtype(out_dtype)
        if dt not in (np.uint16, np.uint32, np.uint64):
            raise ValueError("out_dtype must be uint16, uint32 or uint64, got %s" % dt)
        if total > np.iinfo(dt).max:
            raise errors.SizeOverflowError("connected_components: %d components do not fit in %s" % (total, dt))
    out = np.zeros(a.shape, dt)
    for vi, (m, lab) in enumerate(labs):
        sel = order[:, 1] == vi
        if not sel.any():
            continue
        remap = np.zeros(int(order[sel, 2].max()) + 1, dt)
        remap[order[sel, 2]] = np.flatnonzero(sel) + 1
        where = m.view(bool)
        out[where] = remap[lab[where]]
    return (out, total) if return_N else out


def _unique_nonzero(a):
    """Distinct non-zero values of an integer array (sl_labels_unique: one pass, no sort of the image)."""
    lm = _geom.LabelMap(_geom.ptr(a), _geom.cdtype(a, "labels"))
    count = ctypes.c_int64()
    buf = _lib.msgbuf()
    L = _geom.L()
    _lib.check(L.sl_labels_unique(ctypes.byref(lm), a.size, None, 0, ctypes.byref(count), buf, _lib.MSG_LEN), buf)
    vals = np.empty(count.value, np.int64)
    _lib.check(L.sl_labels_unique(ctypes.byref(lm), a.size, vals.ctypes.data_as(_geom.c_i64p), count.value,
                                  ctypes.byref(count), buf, _lib.MSG_LEN), buf)
    return [a.dtype.type(v) for v in vals if v != 0]
