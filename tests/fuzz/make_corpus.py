#!/usr/bin/python3
"""Writes the fuzz corpora of bad (and a few good) inputs:

    tests/fuzz/corpus/nifti/   NIfTI-1/2 files, plain and gzip
    tests/fuzz/corpus/npy/     .npy files
    tests/fuzz/corpus/png/     PNG files

Run with Debian's interpreter from the repository root:
    /usr/bin/python3 tests/fuzz/make_corpus.py

Every file is tiny (at most a few hundred bytes) and deterministic, so the
output is committed and replayed in every test run by
build/fuzz/fuzz_<name>_replay. Each name says what is wrong with it;
names starting with ok_ are valid files (seeds for the fuzzer, and a check
that the success path runs clean under the sanitizers). Crashes that
libFuzzer finds later are added by hand as crash_<id> files.

Uses only the standard library (struct, gzip, zlib): the files are built
byte by byte from the NIfTI-1/2 and NEP 1 specifications, independently of
the C code under test.
"""
import gzip
import io
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- NIfTI ---------------------------------------------------------------

# NIfTI-1 field offsets (nifti1.h) and struct formats.
N1 = {
    "sizeof_hdr": (0, "i"), "dim_info": (39, "b"), "dim": (40, "8h"),
    "datatype": (70, "h"), "bitpix": (72, "h"), "pixdim": (76, "8f"),
    "vox_offset": (108, "f"), "scl_slope": (112, "f"), "scl_inter": (116, "f"),
    "xyzt_units": (123, "B"), "qform_code": (252, "h"), "sform_code": (254, "h"),
    "quatern": (256, "3f"), "qoffset": (268, "3f"), "srow_x": (280, "4f"),
    "srow_y": (296, "4f"), "srow_z": (312, "4f"), "magic": (344, "4s"),
    "descrip": (148, "80s"),
}
# NIfTI-2 (nifti2.h).
N2 = {
    "sizeof_hdr": (0, "i"), "magic": (4, "8s"), "datatype": (12, "h"), "bitpix": (14, "h"),
    "dim": (16, "8q"), "pixdim": (104, "8d"), "vox_offset": (168, "q"),
    "scl_slope": (176, "d"), "scl_inter": (184, "d"), "qform_code": (344, "i"),
    "sform_code": (348, "i"), "quatern": (352, "3d"), "qoffset": (376, "3d"),
    "srow_x": (400, "4d"), "srow_y": (432, "4d"), "srow_z": (464, "4d"),
    "xyzt_units": (500, "i"),
}

DT = {"u1": (2, 8), "i2": (4, 16), "i4": (8, 32), "f4": (16, 32), "f8": (64, 64),
      "i1": (256, 8), "u2": (512, 16), "u4": (768, 32), "i8": (1024, 64), "u8": (1280, 64)}


def nifti(version=1, shape=(2, 2, 2), dtype="u1", data=None, order="<", **over):
    """A single-file NIfTI image; `shape` is (nx, ny, nz, ...) in NIfTI order.
    Keyword overrides replace header fields after the defaults are set."""
    spec = N1 if version == 1 else N2
    size = 348 if version == 1 else 540
    vox = 352 if version == 1 else 544
    code, bits = DT[dtype]
    f = {
        "sizeof_hdr": size, "dim": [len(shape)] + list(shape) + [1] * (7 - len(shape)),
        "datatype": code, "bitpix": bits, "pixdim": [1.0] + [1.0] * 7, "vox_offset": vox,
        "scl_slope": 1.0, "scl_inter": 0.0, "xyzt_units": 2, "qform_code": 1, "sform_code": 1,
        "quatern": [0.0, 0.0, 0.0], "qoffset": [-1.0, -2.0, -3.0],
        "srow_x": [1.0, 0, 0, -1.0], "srow_y": [0, 1.0, 0, -2.0], "srow_z": [0, 0, 1.0, -3.0],
        "magic": b"n+1\0" if version == 1 else b"n+2\0\r\n\x1a\n",
    }
    f.update(over)
    h = bytearray(size)
    for k, v in f.items():
        off, fmt = spec[k]
        vals = v if isinstance(v, (list, tuple)) else [v]
        struct.pack_into(order + fmt, h, off, *vals)
    n = 1
    for s in shape:
        n *= max(s, 0)
    if data is None:
        data = bytes((i * 7 + 1) % 256 for i in range(n * bits // 8))
    # The data start at vox_offset when that is a small sane offset past the
    # header; otherwise (a hostile offset) where a normal file has them.
    vo = f["vox_offset"]
    start = int(vo) if vo == vo and size <= vo < 4096 else vox
    return bytes(h) + b"\0" * (start - size) + data


def gz(b, mtime=0):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=mtime) as g:
        g.write(b)
    return out.getvalue()


def nifti_corpus():
    c = {}
    ok = nifti()
    c["ok_n1_u1_2x2x2.nii"] = ok
    c["ok_n1_u1_2x2x2.nii.gz"] = gz(ok)
    c["ok_n1_bigendian_i2.nii"] = nifti(dtype="i2", order=">")
    c["ok_n2_f4_3x2.nii"] = nifti(version=2, shape=(3, 2), dtype="f4",
                                  data=struct.pack("<6f", 0.5, -1, 2, 3.25, float("nan"), float("inf")))
    c["ok_n2_bigendian_f8.nii"] = nifti(version=2, shape=(2, 1, 2), dtype="f8", order=">",
                                        data=struct.pack(">4d", 1, 2, 3, 4))
    c["ok_n1_scaled_u1.nii"] = nifti(scl_slope=0.5, scl_inter=10.0)
    c["ok_n1_nan_slope_is_unscaled.nii"] = nifti(scl_slope=float("nan"))
    c["ok_n1_4d_trailing_unit_axis.nii"] = nifti(shape=(2, 2, 2, 1))
    c["ok_n1_5d.nii"] = nifti(shape=(2, 1, 1, 2, 2))
    c["ok_n1_extension_before_data.nii"] = nifti(vox_offset=368)
    c["ok_n1_zero_pixdim_defaults.nii"] = nifti(pixdim=[1, 0, 2, 0, 0, 0, 0, 0])
    c["ok_n1_negative_qfac.nii"] = nifti(pixdim=[-1, 1, 1, 2, 0, 0, 0, 0], sform_code=0)
    c["ok_n1_no_orientation.nii"] = nifti(qform_code=0, sform_code=0)
    c["ok_n1_meters.nii"] = nifti(xyzt_units=1, pixdim=[1, 0.001, 0.001, 0.002, 0, 0, 0, 0])
    c["ok_n1_unnormalised_quaternion.nii"] = nifti(quatern=[0.9, 0.9, 0.9], sform_code=0)
    c["ok_gz_two_members.nii.gz"] = gz(ok[:200]) + gz(ok[200:])
    c["ok_gz_trailing_garbage.nii.gz"] = gz(ok) + b"\0\0\0\0"
    c["ok_n2_i8_scaled.nii"] = nifti(version=2, shape=(2,), dtype="i8", scl_slope=2.0, scl_inter=1.0,
                                     data=struct.pack("<2q", -5, 1 << 40))

    c["empty"] = b""
    c["one_byte"] = b"\x5c"
    c["three_bytes"] = ok[:3]
    c["sizeof_hdr_349"] = nifti(sizeof_hdr=349)
    c["sizeof_hdr_0"] = nifti(sizeof_hdr=0)
    c["sizeof_hdr_negative"] = nifti(sizeof_hdr=-348)
    c["header_truncated_200"] = ok[:200]
    c["header_truncated_347"] = ok[:347]
    c["n2_header_truncated_539"] = nifti(version=2)[:539]
    c["magic_wrong"] = nifti(magic=b"n+3\0")
    c["magic_n2_in_n1"] = nifti(magic=b"n+2\0")
    c["magic_two_file_ni1"] = nifti(magic=b"ni1\0")
    c["magic_two_file_ni2"] = nifti(version=2, magic=b"ni2\0\r\n\x1a\n")
    c["analyze75_no_magic"] = nifti(magic=b"\0\0\0\0")
    c["dim0_zero"] = nifti(dim=[0, 2, 2, 2, 1, 1, 1, 1])
    c["dim0_eight"] = nifti(dim=[8, 2, 2, 2, 1, 1, 1, 1])
    c["dim0_negative"] = nifti(dim=[-3, 2, 2, 2, 1, 1, 1, 1])
    c["dim0_32767"] = nifti(dim=[32767, 2, 2, 2, 1, 1, 1, 1])
    c["dim2_zero"] = nifti(dim=[3, 2, 0, 2, 1, 1, 1, 1])
    c["dim3_negative"] = nifti(dim=[3, 2, 2, -2, 1, 1, 1, 1])
    c["dims_7x32767_overflow"] = nifti(dim=[7] + [32767] * 7)
    c["dims_huge_no_data"] = nifti(dim=[3, 32767, 32767, 32767, 1, 1, 1, 1])
    c["dims_1000x1000x100_no_data"] = nifti(dim=[3, 1000, 1000, 100, 1, 1, 1, 1])
    c["dims_1000x1000x100_no_data.gz"] = gz(nifti(dim=[3, 1000, 1000, 100, 1, 1, 1, 1]))
    c["n2_dims_int64_overflow"] = nifti(version=2, dim=[3, 1 << 40, 1 << 40, 1 << 40, 1, 1, 1, 1])
    c["n2_dims_over_1TiB"] = nifti(version=2, dim=[3, 1 << 20, 1 << 20, 1 << 2, 1, 1, 1, 1])
    c["n2_dim_negative"] = nifti(version=2, dim=[3, 2, -(1 << 62), 2, 1, 1, 1, 1])
    c["n2_dim_int64_min"] = nifti(version=2, dim=[3, 2, -(1 << 63), 2, 1, 1, 1, 1])
    for name, code in [("complex64", 32), ("rgb24", 128), ("rgba32", 2304), ("float128", 1536),
                       ("complex128", 1792), ("binary", 1), ("unknown0", 0), ("code3", 3), ("code_neg", -2)]:
        c["datatype_" + name] = nifti(datatype=code, bitpix=8)
    c["bitpix_mismatch_u1_16"] = nifti(bitpix=16)
    c["bitpix_mismatch_f4_64"] = nifti(dtype="f4", bitpix=64)
    c["bitpix_zero"] = nifti(bitpix=0)
    c["vox_offset_zero"] = nifti(vox_offset=0)
    c["vox_offset_inside_header"] = nifti(vox_offset=100)
    c["vox_offset_nan"] = nifti(vox_offset=float("nan"))
    c["vox_offset_inf"] = nifti(vox_offset=float("inf"))
    c["vox_offset_negative"] = nifti(vox_offset=-352.0)
    c["vox_offset_fraction"] = nifti(vox_offset=352.5)
    c["vox_offset_1e30"] = nifti(vox_offset=1e30)
    c["vox_offset_past_end"] = nifti(vox_offset=100000)
    c["vox_offset_past_end.gz"] = gz(nifti(vox_offset=100000))
    c["n2_vox_offset_negative"] = nifti(version=2, vox_offset=-1)
    c["n2_vox_offset_int64_max"] = nifti(version=2, vox_offset=(1 << 63) - 1)
    c["n2_vox_offset_inside_header"] = nifti(version=2, vox_offset=539)
    c["data_one_byte_short"] = ok[:-1]
    c["data_missing"] = ok[:352]
    c["data_f8_short"] = nifti(dtype="f8")[:-3]
    c["bigendian_data_short"] = nifti(dtype="i2", order=">")[:-1]
    c["n2_data_short"] = nifti(version=2, dtype="f4")[:-1]
    c["pixdim_nan"] = nifti(pixdim=[1, float("nan"), 1, 1, 0, 0, 0, 0])
    c["pixdim_inf"] = nifti(pixdim=[1, 1, float("-inf"), 1, 0, 0, 0, 0])
    c["n2_pixdim_overflow_in_mm"] = nifti(version=2, xyzt_units=1, pixdim=[1, 1e307, 1, 1, 0, 0, 0, 0])
    c["qform_nan"] = nifti(quatern=[float("nan"), 0, 0], sform_code=0)
    c["qoffset_inf"] = nifti(qoffset=[0, float("inf"), 0], sform_code=0)
    c["sform_nan"] = nifti(srow_y=[0, 1, float("nan"), 0])
    c["n2_qform_huge"] = nifti(version=2, quatern=[1e300, 1e300, 1e300], sform_code=0)
    c["n2_srow_huge_finite"] = nifti(version=2, srow_x=[1e308, 0, 0, 0])

    gzok = gz(ok)
    c["gz_magic_only"] = b"\x1f\x8b"
    c["gz_header_only"] = gzok[:10]
    c["gz_truncated_middle"] = gzok[: len(gzok) // 2]
    c["gz_truncated_before_crc"] = gzok[:-8]
    c["gz_truncated_in_crc"] = gzok[:-3]
    bad = bytearray(gzok)
    bad[-6] ^= 0xFF  # CRC-32
    c["gz_bad_crc"] = bytes(bad)
    bad = bytearray(gzok)
    bad[-2] ^= 0x01  # ISIZE
    c["gz_bad_length"] = bytes(bad)
    bad = bytearray(gzok)
    bad[12] ^= 0xFF  # inside the deflate stream
    c["gz_corrupt_deflate"] = bytes(bad)
    bad = bytearray(gzok)
    bad[2] = 7  # compression method other than deflate
    c["gz_bad_method"] = bytes(bad)
    c["gz_empty_payload"] = gz(b"")
    c["gz_of_garbage"] = gz(b"hello, this is not a NIfTI file at all" * 12)
    c["gz_truncated_header"] = gz(ok[:300])
    c["gz_data_short"] = gz(ok[:-1])
    c["zlib_not_gzip"] = zlib.compress(ok)
    c["npy_given_as_nifti"] = npy_file("<f4", (2, 2), b"\0" * 16)
    return c


# ---- npy -----------------------------------------------------------------

def npy_file(descr, shape, data, fortran=False, version=1, header=None):
    if header is None:
        sh = "(" + "".join("%d, " % s for s in shape).rstrip(" ")
        if len(shape) > 1:
            sh = sh.rstrip(",")
        sh += ")"
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", sh)
    h = header.encode("latin1")
    pre = 10 if version == 1 else 12
    total = pre + len(h) + 1
    pad = (64 - total % 64) % 64
    h = h + b" " * pad + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h)) + h + data


def npy_corpus():
    c = {}
    c["ok_f4_2x3.npy"] = npy_file("<f4", (2, 3), struct.pack("<6f", 0, 1, -2, 3.5, float("nan"), float("-inf")))
    c["ok_bigendian_i8.npy"] = npy_file(">i8", (3,), struct.pack(">3q", -1, 2, 1 << 40))
    c["ok_v2_u2.npy"] = npy_file("<u2", (2, 2), struct.pack("<4H", 1, 2, 3, 65535), version=2)
    c["ok_v3_bool.npy"] = npy_file("|b1", (4,), b"\x00\x01\x01\x00", version=3)
    c["ok_scalar.npy"] = npy_file("<f8", (), struct.pack("<d", 3.0))
    c["ok_zero_size.npy"] = npy_file("<i4", (0, 3), b"")
    c["ok_u1_3d.npy"] = npy_file("|u1", (2, 2, 2), bytes(range(8)))
    c["ok_8_axes.npy"] = npy_file("|i1", (1,) * 8, b"\x05")

    c["empty"] = b""
    c["magic_only"] = b"\x93NUMPY"
    c["bad_magic"] = b"\x93NUMPZ\x01\x00\x10\x00" + b" " * 15 + b"\n"
    c["version_9"] = b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16
    c["v2_truncated_length"] = b"\x93NUMPY\x02\x00\x10\x00"
    c["header_longer_than_file"] = b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f4'"
    c["v2_header_length_4GiB"] = b"\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr': '<f4'}"
    c["fortran_order"] = npy_file("<f4", (2, 2), b"\0" * 16, fortran=True)
    for name, d in [("complex", "<c8"), ("object", "|O"), ("unicode", "<U5"), ("void", "|V8"),
                    ("f2", "<f2"), ("f16", "<f16"), ("datetime", "<M8[ns]"), ("bytes", "|S4"),
                    ("bad_order", "!f4"), ("empty_descr", ""), ("long_size", "<i99999999999")]:
        c["dtype_" + name] = npy_file(d, (2,), b"\0" * 16)
    c["structured_dtype"] = npy_file(None, None, b"\0" * 8,
                                     header="{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }")
    c["huge_shape"] = npy_file("<f4", (1 << 40, 1 << 40), b"")
    c["shape_overflow"] = npy_file("<f8", (1 << 62, 4), b"")
    c["shape_over_1TiB"] = npy_file("|u1", (1 << 41,), b"")
    c["shape_too_many_digits"] = npy_file(None, None, b"",
                                          header="{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }")
    c["shape_negative"] = npy_file(None, None, b"", header="{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }")
    c["shape_9_axes"] = npy_file("|u1", (1,) * 9, b"\x00")
    c["shape_not_tuple"] = npy_file(None, None, b"\0" * 4, header="{'descr': '<f4', 'fortran_order': False, 'shape': 1, }")
    c["shape_nested"] = npy_file(None, None, b"\0" * 4, header="{'descr': '<f4', 'fortran_order': False, 'shape': ((1,),), }")
    c["shape_unclosed"] = npy_file(None, None, b"\0" * 4, header="{'descr': '<f4', 'fortran_order': False, 'shape': (1, ")
    c["missing_shape"] = npy_file(None, None, b"\0" * 4, header="{'descr': '<f4', 'fortran_order': False, }")
    c["missing_descr"] = npy_file(None, None, b"\0" * 4, header="{'fortran_order': False, 'shape': (1,), }")
    c["duplicate_key"] = npy_file(None, None, b"\0" * 4,
                                  header="{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }")
    c["unknown_key"] = npy_file(None, None, b"\0" * 4,
                                header="{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1, }")
    c["unterminated_string"] = npy_file(None, None, b"", header="{'descr': '<f4")
    c["escape_in_string"] = npy_file(None, None, b"\0" * 4, header="{'descr': '<f\\4', 'fortran_order': False, 'shape': (1,), }")
    c["fortran_order_not_bool"] = npy_file(None, None, b"\0" * 4, header="{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }")
    c["no_braces"] = npy_file(None, None, b"\0" * 4, header="'descr': '<f4', 'fortran_order': False, 'shape': (1,)")
    c["data_truncated"] = npy_file("<f4", (2, 3), b"\0" * 23)
    c["data_too_long"] = npy_file("<f4", (2, 3), b"\0" * 25)
    c["data_missing"] = npy_file("<i8", (4,), b"")
    c["nifti_given_as_npy"] = nifti()
    return c


# ---- PNG -------------------------------------------------------------------

def chunk(kind, data, crc=None):
    c = zlib.crc32(kind + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", c)


def png_file(w, h, depth=8, color=0, rows=None, interlace=0, plte=None, extra=b"", idat=None, ihdr=None, iend=True):
    sig = b"\x89PNG\r\n\x1a\n"
    hdr = ihdr if ihdr is not None else struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 1)
    if rows is None:
        rowbytes = (w * depth * ch + 7) // 8
        rows = b"".join(b"\x00" + bytes((x * 37 + y * 11) % 256 for x in range(rowbytes)) for y in range(h))
    body = chunk(b"IHDR", hdr)
    if plte is not None:
        body += chunk(b"PLTE", plte)
    body += extra
    body += chunk(b"IDAT", zlib.compress(rows) if idat is None else idat)
    if iend:
        body += chunk(b"IEND", b"")
    return sig + body


def adam7_rows(w, h):
    """Raw (filter 0) scanlines of an 8-bit gray Adam7-interlaced image."""
    out = b""
    for xs, ys, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        pw, ph = max(0, -(-(w - xs) // dx)), max(0, -(-(h - ys) // dy))
        if pw and ph:
            out += b"".join(b"\x00" + bytes((7 * x + y) % 256 for x in range(pw)) for y in range(ph))
    return out


def png_corpus():
    c = {}
    ok = png_file(5, 4)
    c["ok_gray8_5x4.png"] = ok
    c["ok_gray16_3x3.png"] = png_file(3, 3, depth=16)
    c["ok_gray1_9x2.png"] = png_file(9, 2, depth=1)
    c["ok_gray4_3x2.png"] = png_file(3, 2, depth=4)
    c["ok_palette_4x4.png"] = png_file(4, 4, depth=8, color=3, plte=bytes(range(256)) * 3,
                                       rows=b"".join(b"\x00" + bytes([0, 1, 2, 3]) for _ in range(4)))
    c["ok_rgb_2x2.png"] = png_file(2, 2, color=2)
    c["ok_rgba_2x2.png"] = png_file(2, 2, color=6)
    c["ok_gray_alpha_2x2.png"] = png_file(2, 2, color=4)
    c["ok_interlaced_7x7.png"] = png_file(7, 7, interlace=1, rows=adam7_rows(7, 7))
    c["ok_trns_palette.png"] = png_file(2, 1, color=3, plte=b"\x00\x00\x00\xff\xff\xff",
                                        rows=b"\x00\x00\x01", extra=chunk(b"tRNS", b"\x00"))

    c["empty"] = b""
    c["signature_only"] = ok[:8]
    c["bad_signature"] = b"\x89PNG\r\n\x1a\x0b" + ok[8:]
    c["truncated_ihdr"] = ok[:20]
    c["truncated_idat"] = ok[:-20]
    c["no_iend"] = png_file(5, 4, iend=False)
    c["bad_ihdr_crc"] = ok[:29] + b"\x00\x00\x00\x00" + ok[33:]
    bad = bytearray(ok)
    bad[45] ^= 0xFF
    c["bad_idat_crc_or_data"] = bytes(bad)
    c["zero_width"] = png_file(0, 4, rows=b"\x00" * 4)
    c["zero_height"] = png_file(4, 0, rows=b"")
    c["huge_dims_no_data"] = png_file(65535, 65535, rows=b"\x00" * 16)
    c["huge_dims_16bit"] = png_file(60000, 60000, depth=16, rows=b"\x00" * 16)
    c["width_2_31"] = png_file(1 << 31, 1, rows=b"\x00")
    c["bad_depth_3"] = png_file(2, 2, depth=3, rows=b"\x00" * 4)
    c["bad_color_5"] = png_file(2, 2, color=5)
    c["palette_missing_plte"] = png_file(2, 2, color=3, rows=b"\x00\x00\x00" * 2)
    c["palette_index_out_of_range"] = png_file(2, 1, color=3, plte=b"\x00\x00\x00", rows=b"\x00\x05\x07")
    c["ihdr_wrong_length"] = png_file(2, 2, ihdr=struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0) + b"\x00")
    c["bad_filter_byte"] = png_file(2, 2, rows=b"\x09\x00\x00\x09\x00\x00")
    c["idat_not_zlib"] = png_file(4, 4, idat=b"this is not zlib data")
    c["idat_short_rows"] = png_file(8, 8, rows=b"\x00" * 10)
    c["bad_interlace_method"] = png_file(2, 2, interlace=7)
    c["chunk_length_huge"] = ok[:33] + b"\x7f\xff\xff\xff" + ok[37:]
    c["npy_given_as_png"] = npy_file("<f4", (2,), b"\0" * 8)
    return c


def write(folder, files):
    d = os.path.join(HERE, "corpus", folder)
    os.makedirs(d, exist_ok=True)
    keep = set(files)
    for old in os.listdir(d):
        # Generated files are rewritten; crash_* regressions found by the
        # fuzzer are kept as they are.
        if old not in keep and not old.startswith("crash_"):
            os.remove(os.path.join(d, old))
    for name, data in sorted(files.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d files" % (d, len(files)))


if __name__ == "__main__":
    write("nifti", nifti_corpus())
    write("npy", npy_corpus())
    write("png", png_corpus())
