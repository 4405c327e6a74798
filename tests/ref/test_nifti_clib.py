"""segloss's NIfTI reader and writer against nifti_clib (Debian libnifti2),
the NIfTI reference implementation, through ctypes.

segloss parses NIfTI itself (see the comment at the top of src/io/nifti.c
for why), so this is the check that it reads what nifti_clib reads:
for real images (Colin27 and AAL from mricron-data), every valid file of
the fuzz corpus (NIfTI-1 and -2, both byte orders, gzip with several
members, extensions, scaling, odd quaternions) and files segloss itself
writes (nifti_clib must read them back identically, geometry included):
  - the grid (nx, ny, ...), datatype, voxel sizes;
  - the voxel bytes (unscaled; nifti_clib does not apply scl_slope);
  - the qform and sform matrices (nifti_clib's qto_xyz / sto_xyz).
nifti_clib's data come from nifti_read_collapsed_image and its header
fields from nifti_image_to_ascii, so no struct layout is assumed on its side.
sanitized: skip (loads libsegloss.so through ctypes)
"""
import ctypes
import glob
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slref  # noqa: E402

C = slref.Check("nifti_clib")

# ---- nifti_clib -------------------------------------------------------------
try:
    NI = ctypes.CDLL("libnifti2.so.2")
except OSError:
    print("skip: libnifti2.so.2 not found (apt-get install libnifti2-dev)")
    sys.exit(0)
NI.nifti_set_debug_level(0)
NI.nifti_image_read.restype = ctypes.c_void_p
NI.nifti_image_read.argtypes = [ctypes.c_char_p, ctypes.c_int]
NI.nifti_image_to_ascii.restype = ctypes.c_void_p
NI.nifti_image_to_ascii.argtypes = [ctypes.c_void_p]
NI.nifti_image_free.argtypes = [ctypes.c_void_p]
NI.nifti_read_collapsed_image.restype = ctypes.c_int64
NI.nifti_read_collapsed_image.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_void_p)]
LIBC = ctypes.CDLL(None)
LIBC.free.argtypes = [ctypes.c_void_p]


def clib_read(path):
    """(fields dict, raw data bytes) as nifti_clib reads them."""
    nim = NI.nifti_image_read(path.encode(), 0)
    if not nim:
        return None, None
    p = NI.nifti_image_to_ascii(nim)
    text = ctypes.string_at(p).decode()
    LIBC.free(p)
    fields = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip().strip("'")
    dims = (ctypes.c_int64 * 8)(*([0] + [-1] * 7))
    data = ctypes.c_void_p()
    n = NI.nifti_read_collapsed_image(nim, dims, ctypes.byref(data))
    raw = ctypes.string_at(data, n) if n > 0 else None
    if data:
        LIBC.free(data)
    NI.nifti_image_free(nim)
    return fields, raw


# ---- segloss -----------------------------------------------------------------
class SlArray(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("ndim", ctypes.c_int), ("shape", ctypes.c_int64 * 8),
                ("data", ctypes.c_void_p)]


class SlNiftiInfo(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int), ("swapped", ctypes.c_int), ("datatype", ctypes.c_int),
                ("dim", ctypes.c_int64 * 8), ("pixdim", ctypes.c_double * 8), ("vox_offset", ctypes.c_int64),
                ("xyzt_units", ctypes.c_int), ("scl_slope", ctypes.c_double), ("scl_inter", ctypes.c_double),
                ("scaled", ctypes.c_int), ("ndim", ctypes.c_int), ("spacing", ctypes.c_double * 8),
                ("spacing_defaulted", ctypes.c_int), ("qform_code", ctypes.c_int), ("sform_code", ctypes.c_int),
                ("quatern", ctypes.c_double * 3), ("qoffset", ctypes.c_double * 3), ("qfac", ctypes.c_double),
                ("srow", (ctypes.c_double * 4) * 3), ("qform", (ctypes.c_double * 4) * 4),
                ("sform", (ctypes.c_double * 4) * 4), ("affine", (ctypes.c_double * 4) * 4),
                ("descrip", ctypes.c_char * 81)]


SL = slref.lib()
SL.sl_nifti_read.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(SlArray), ctypes.POINTER(SlNiftiInfo),
                             ctypes.c_char_p, ctypes.c_size_t]
SL.sl_nifti_write.argtypes = [ctypes.c_char_p, ctypes.POINTER(SlArray), ctypes.c_void_p, ctypes.POINTER(SlNiftiInfo),
                              ctypes.c_char_p, ctypes.c_size_t]
SL.sl_array_free.argtypes = [ctypes.POINTER(SlArray)]
SL.sl_dtype_size.restype = ctypes.c_size_t
SL_NIFTI_NO_SCALE = 1


def sl_read(path):
    a, info = SlArray(), SlNiftiInfo()
    msg = ctypes.create_string_buffer(512)
    st = SL.sl_nifti_read(path.encode(), SL_NIFTI_NO_SCALE, ctypes.byref(a), ctypes.byref(info), msg, 512)
    if st != 0:
        return None, None, None, msg.value.decode()
    n = int(np.prod([a.shape[i] for i in range(a.ndim)])) * SL.sl_dtype_size(a.dtype)
    raw = ctypes.string_at(a.data, n)
    return a, info, raw, ""


def compare(path, label):
    fields, craw = clib_read(path)
    a, info, sraw, err = sl_read(path)
    if not C.true("%s: segloss reads it (%s)" % (label, err), a is not None):
        return None
    if not C.true("%s: nifti_clib reads it" % label, fields is not None and craw is not None):
        SL.sl_array_free(ctypes.byref(a))
        return None
    # Grid: nifti_clib's nx, ny, ... are our shape reversed.
    names = ["nx", "ny", "nz", "nt", "nu", "nv", "nw"]
    cl_dims = [int(fields[n]) for n in names[:int(fields["ndim"])]]
    while len(cl_dims) > 3 and cl_dims[-1] == 1:
        cl_dims.pop()
    C.true("%s: grid %s vs nifti_clib %s" % (label, list(a.shape[:a.ndim]), cl_dims),
           list(a.shape[:a.ndim])[::-1] == cl_dims)
    C.true("%s: datatype" % label, int(fields["datatype"]) == info.datatype)
    if sraw != craw and info.datatype in (16, 64):
        # nifti_clib replaces NaN and +-inf floats by 0 when it reads
        # (nifti_read_buffer); segloss keeps the stored values. Elsewhere
        # the values must agree bit for bit.
        dt = np.float32 if info.datatype == 16 else np.float64
        mine, theirs = np.frombuffer(sraw, dt), np.frombuffer(craw, dt)
        bad = ~np.isfinite(mine)
        C.true("%s: voxels equal (non-finite -> 0 in nifti_clib)" % label,
               mine.shape == theirs.shape and np.all(theirs[bad] == 0) and
               np.array_equal(mine[~bad].view(np.uint8), theirs[~bad].view(np.uint8)))
    else:
        C.true("%s: voxel bytes equal" % label, sraw == craw)
    # Voxel sizes as nifti_clib reports them: |pixdim|, 0 read as 1.
    dx = [float(fields[k]) for k in ("dx", "dy", "dz")[:min(3, a.ndim)]]
    mine = [abs(info.pixdim[i + 1]) or 1.0 for i in range(len(dx))]
    C.close("pixdim %s" % label, mine, [abs(v) for v in dx], rtol=1e-6, group="pixdim")
    for code, ours, key in ((info.qform_code, info.qform, "qto_xyz_matrix"), (info.sform_code, info.sform, "sto_xyz_matrix")):
        if code > 0:
            theirs = np.array([float(v) for v in fields[key].split()]).reshape(4, 4)
            mine = np.array([[ours[r][c] for c in range(4)] for r in range(4)])
            # nifti_image_to_ascii prints %g (6 significant digits).
            C.close("%s %s" % (key, label), mine, theirs, rtol=2e-6, atol=1e-5, group=key.split("_")[0])
    return a, info


ROOT = slref.ROOT
files = [(p, os.path.basename(p)) for p in ("/usr/share/mricron/templates/ch2bet.nii.gz",
                                            "/usr/share/mricron/templates/aal.nii.gz") if os.path.exists(p)]
if not files:
    print("note: mricron-data not installed; real images not compared")
files += [(p, os.path.basename(p)) for p in sorted(glob.glob(os.path.join(ROOT, "tests/fuzz/corpus/nifti/ok_*")))]
files += [(p, "fixture " + os.path.basename(p)) for p in sorted(glob.glob(os.path.join(ROOT, "tests/cli/fixtures/*/*.nii*")))
          + sorted(glob.glob(os.path.join(ROOT, "tests/cli/fixtures/eval/*/*.nii*")))]

with tempfile.TemporaryDirectory() as tmp:
    for path, label in files:
        got = compare(path, label)
        if got is None:
            continue
        a, info = got
        # What segloss writes from it (geometry copied), read back by nifti_clib.
        for ext in (".nii", ".nii.gz"):
            out = os.path.join(tmp, "w" + ext)
            msg = ctypes.create_string_buffer(512)
            st = SL.sl_nifti_write(out.encode(), ctypes.byref(a), None, ctypes.byref(info), msg, 512)
            if C.true("%s: write %s (%s)" % (label, ext, msg.value.decode()), st == 0):
                back = compare(out, "rewritten %s%s" % (label, ext))
                if back is not None:
                    b, binfo = back
                    C.true("%s%s: codes kept" % (label, ext),
                           (binfo.qform_code, binfo.sform_code) == (max(info.qform_code, 0), max(info.sform_code, 0)))
                    SL.sl_array_free(ctypes.byref(b))
        SL.sl_array_free(ctypes.byref(a))

print("compared %d files" % len(files))
C.report()
